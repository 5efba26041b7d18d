/* pipe_cli.h: the pipeline's commands (broker, produce, record, the Kafka encode worker, bench
 * pipeline) and the option rows they share. */
#ifndef TRAIL_PIPE_CLI_H
#define TRAIL_PIPE_CLI_H

#include "core_opts.h"

extern const core_cmd *const pipe_cmds[]; /* NULL-terminated */
extern const core_cmd pipe_broker_cmd, pipe_produce_cmd, pipe_record_cmd, pipe_bench_cmd;
extern const core_cmd pipe_encode_cmd; /* the Kafka worker: trail lists `encode` itself */

int pipe_cmd_broker(int argc, char **argv);  /* trail broker */
int pipe_cmd_produce(int argc, char **argv); /* trail produce */
int pipe_cmd_record(int argc, char **argv);  /* trail record */
int pipe_cmd_encode(int argc, char **argv);  /* trail encode --brokers ... (encode-kafka) */
int pipe_cmd_bench(int argc, char **argv);   /* trail bench pipeline */

/* CORE_OPT_FUNC parsers: -X key=value into a pipe_props; a partitioner's name into a
 * pipe_partitioner */
int pipe_opt_prop(const char *value, void *props, char *err, size_t err_size);
int pipe_opt_partitioner(const char *value, void *part, char *err, size_t err_size);

#define PIPE_OPT_PROPS(props, help)                                                                \
    {                                                                                              \
        CORE_OPT_ROW("kafka-property", CORE_OPT_FUNC, props, "key=value", help),                   \
            .fn = pipe_opt_prop, .flags = CORE_OPT_MULTI, .short_name = 'X'                        \
    }

#endif
