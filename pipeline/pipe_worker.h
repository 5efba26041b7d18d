/* pipe_worker.h: the encoder worker's consume loop: a consumer-group member that applies events to
 * a state sink in batches (one write transaction each) with the consumed offsets written in the
 * same transaction, dead-letters malformed messages, and drains on stop.
 *
 * The sink is a small table of functions so the loop can be tested without LMDB; pipe_store.c binds
 * it to enc_store (enc_batch_*), which is what `trail encode --brokers` uses.
 *
 * Guarantees (with a sink whose commit is atomic, as LMDB's is):
 * - effectively-once state: an event's effect and the offset after it commit together; on
 *   assignment a partition resumes at the stored offset, or from the beginning when this sink has
 *   none (a rebuild);
 * - at-least-once delivery into the sink, dead-letter topic included: a batch holding dead-lettered
 *   messages commits only after the dead-letter producer has them acknowledged;
 * - Kafka's committed offsets are a monitoring hint, stored only after the sink commit.
 */
#ifndef TRAIL_PIPE_WORKER_H
#define TRAIL_PIPE_WORKER_H

#include "pipe_kafka.h"
#include "pipe_metrics.h"
#include "sch_event.h"

#include <stdint.h>

typedef struct pipe_sink {
    void *ctx;
    int (*begin)(void *ctx);
    /** CORE_OK; CORE_EINVAL/CORE_ERANGE/CORE_EFORMAT reject the event (dead-lettered); any other
     *  code is a store failure and stops the worker. */
    int (*apply)(void *ctx, const sch_event *ev);
    int (*set_offset)(void *ctx, const char *source, int64_t next_offset);
    int (*commit)(void *ctx);
    void (*abort)(void *ctx);
    /** CORE_OK with *next_offset, or CORE_ENOTFOUND. */
    int (*get_offset)(void *ctx, const char *source, int64_t *next_offset);
} pipe_sink;

typedef struct pipe_worker_conf {
    const char *brokers, *topic, *group;
    const char *dlq_topic;     /* NULL: "<topic>.dlq" */
    const pipe_props *props;   /* librdkafka properties for the consumer and the DLQ producer */
    uint32_t batch_max;        /* events per write transaction (default 10000) */
    uint32_t batch_ms;         /* longest a batch stays open, ms (default 50) */
    int until_end;             /* exit once the assigned partitions reach the end offsets seen at start */
    int progress;              /* 0 none, 1 a line every 2 s, 2 a terminal progress bar */
    volatile int *stop;        /* set to 1 (signal handler) to drain and exit */
} pipe_worker_conf;

void pipe_worker_conf_default(pipe_worker_conf *conf);

/** @brief Make SIGTERM and SIGINT set *stop to 1 (the drain request the loops poll).
 *  @remark process-wide; the last call wins. */
void pipe_stop_on_signals(volatile int *stop);

/** @brief Run the loop until *stop, --until-end completion, or a fatal error. On every exit path
 *  the open batch is committed (or aborted on a store failure), the consumer leaves the group and
 *  the dead-letter producer is flushed.
 *  @return CORE_OK, CORE_EKAFKA (fatal Kafka error or setup), or the sink's failure code. */
int pipe_worker_run(const pipe_worker_conf *conf, const pipe_sink *sink, pipe_metrics *met,
                    char *errstr, size_t errstr_size);

#endif
