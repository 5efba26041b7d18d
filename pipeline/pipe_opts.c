/* pipe_opts.c: the option parsers the pipeline's command tables share (pipe_cli.h). */
#include "pipe_cli.h"
#include "pipe_kafka.h"

int pipe_opt_prop(const char *value, void *props, char *err, size_t err_size) {
    return pipe_props_add_kv(props, value, err, err_size);
}

int pipe_opt_partitioner(const char *value, void *part, char *err, size_t err_size) {
    return pipe_partitioner_parse(value, part, err, err_size);
}
