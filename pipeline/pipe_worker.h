/* pipe_worker.h: the encoder worker's consume loop: a consumer-group member that applies events to
 * a state sink in batches (one write transaction each) with the consumed offsets written in the
 * same transaction, dead-letters malformed messages, checks every message's routing, skips
 * tombstones, and drains on stop.
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
 * - Kafka's committed offsets are a monitoring hint, stored only after the sink commit;
 * - routing: a message applies only if its key is its event's decimal user_id (as `trail produce`
 *   writes it) and the configured partitioner maps that key to the partition it came from, so one
 *   user's state is never split across workers without a count and a log line; otherwise it is
 *   misrouted: counted by reason (key_mismatch, wrong_partition) and dead-lettered, applied or
 *   fatal as on_misrouted says. A null value (tombstone) is counted and skipped.
 */
#ifndef TRAIL_PIPE_WORKER_H
#define TRAIL_PIPE_WORKER_H

#include "pipe_kafka.h"
#include "pipe_metrics.h"
#include "sch_event.h"

#include <stdatomic.h>
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
    /** Optional (NULL: a commit makes its behaviors visible in every tier). Tier 2: commit shows
     *  a behavior in its user's recent sequence, window and counters; this brings the bucket sums
     *  of users that trail them up to date, for about budget_ns, in one transaction, calling
     *  done(arg, user_id) after it commits for each user whose sums now hold every committed
     *  behavior. *left: users still trailing (0: every tier caught up). Any error stops the
     *  worker. */
    int (*catch_up)(void *ctx, int64_t budget_ns, void (*done)(void *arg, uint64_t user_id),
                    void *arg, uint64_t *left);
} pipe_sink;

/* What a misrouted message does. */
typedef enum pipe_misrouted {
    PIPE_MISROUTED_DLQ,   /* dead-lettered with its reason (default): state never splits, the
                             message is kept for a re-keyed replay, the worker keeps going */
    PIPE_MISROUTED_APPLY, /* applied anyway (still counted): a topic known to be mixed */
    PIPE_MISROUTED_FAIL,  /* the worker stops with an error naming the message */
} pipe_misrouted;

/** @brief "dlq", "apply" or "fail". @return CORE_OK or CORE_EINVAL with errstr naming it. */
int pipe_misrouted_parse(const char *name, pipe_misrouted *out, char *errstr, size_t errstr_size);

typedef struct pipe_worker_conf {
    const char *brokers, *topic, *group;
    const char *dlq_topic;   /* NULL: "<topic>.dlq" */
    const pipe_props *props; /* librdkafka properties: consumer.* to the consumer, producer.* to
                                the DLQ producer, others to each that takes them (pipe_kafka.h);
                                checked with pipe_props_check(PIPE_CLIENT_WORKER) */
    pipe_partitioner partitioner; /* how the topic's producers map keys (PIPE_PARTITIONER_DEFAULT);
                                     `random` is refused: no key would decide a user's partition */
    pipe_misrouted on_misrouted;  /* PIPE_MISROUTED_DLQ by default */
    uint32_t batch_max;           /* events per write transaction (default 10000) */
    uint32_t batch_ms;            /* longest a batch stays open, ms (default 15) */
    int until_end; /* exit once the assigned partitions reach the end offsets seen at start */
    int progress;  /* 0 none, 1 a line every 2 s, 2 a terminal progress bar */
    /* optional: called on the worker thread for each applied behavior once it is visible to
       readers in one tier's part of its user's state (PIPE_TIER_RECENT, PIPE_TIER_BUCKETS), with
       milliseconds since the worker received it and since its producer stamped it (-1: no
       timestamp) */
    void (*on_visible)(void *arg, int tier, double from_receive_ms, double from_produce_ms);
    void *visible_arg;
    atomic_int *stop; /* required: set to 1 (signal handler, another thread) to drain
                         and exit; an atomic, read by the loop and librdkafka waits */
} pipe_worker_conf;

void pipe_worker_conf_default(pipe_worker_conf *conf);

/** @brief Make SIGTERM and SIGINT set *stop to 1 (the drain request the loops poll).
 *  @remark process-wide; the last call wins. */
void pipe_stop_on_signals(atomic_int *stop);

/** @brief Run the loop until *stop, --until-end completion, or a fatal error. On every exit path
 *  the open batch is committed (or aborted on a store failure), the consumer leaves the group and
 *  the dead-letter producer is flushed.
 *  @return CORE_OK, CORE_EKAFKA (fatal Kafka error or setup), CORE_EINVAL (a property or the
 *  partitioner refused, or a misrouted message under PIPE_MISROUTED_FAIL; errstr says which), or
 *  the sink's failure code. */
int pipe_worker_run(const pipe_worker_conf *conf, const pipe_sink *sink, pipe_metrics *met,
                    char *errstr, size_t errstr_size);

#endif
