/* pipe_metrics.h: the encoder worker's counters, histograms and per-partition lag, rendered as
 * Prometheus text and served with readiness and liveness (core_http, its own threads).
 *
 * Writers: the worker thread. Readers: the HTTP thread. Counters and histogram buckets are atomics;
 * the per-partition table is under a mutex. No allocation on the update path.
 */
#ifndef TRAIL_PIPE_METRICS_H
#define TRAIL_PIPE_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct pipe_metrics pipe_metrics;
struct enc_store;

enum {
    PIPE_M_CONSUMED,      /* messages polled from assigned partitions */
    PIPE_M_APPLIED,       /* events in committed LMDB batches (impressions included: no-ops) */
    PIPE_M_DEAD_LETTERED, /* messages sent to the dead-letter topic */
    PIPE_M_KAFKA_ERRORS,  /* consumer errors reported by librdkafka (retried) */
    PIPE_M_BATCHES,       /* committed LMDB write transactions */
    PIPE_M_REBALANCES,    /* assignments received */
    PIPE_M_REBUILDS,      /* partitions assigned with no stored state, replayed from the start */
    PIPE_M_MISROUTED_KEY, /* messages whose key is not their event's user_id */
    PIPE_M_MISROUTED_PARTITION, /* messages whose key maps to another partition */
    PIPE_M_TOMBSTONES,          /* null-value messages, skipped */
    PIPE_M_N
};

int pipe_metrics_new(pipe_metrics **out, const char *topic);
void pipe_metrics_destroy(pipe_metrics *m);

void pipe_metrics_add(pipe_metrics *m, int counter, uint64_t n);
uint64_t pipe_metrics_get(const pipe_metrics *m, int counter);
void pipe_metrics_observe_commit(pipe_metrics *m, double seconds);
/** @brief One freshness sample: commit wall time minus the message's timestamp. */
void pipe_metrics_observe_freshness(pipe_metrics *m, double seconds);
enum { PIPE_TIER_RECENT = 0, PIPE_TIER_BUCKETS = 1 };
/** @brief One behavior became visible to readers: in the tier's part of its user's state (recent
 *  sequence, window and counters; or the bucket sums), seconds after the worker received it. */
void pipe_metrics_observe_visible(pipe_metrics *m, int tier, double seconds);
/** @brief Keep up to cap raw freshness samples (milliseconds) for a benchmark's percentiles. */
int pipe_metrics_keep_samples(pipe_metrics *m, size_t cap);
/** @brief The kept samples (valid until destroy; not thread-safe against concurrent observe). */
const double *pipe_metrics_samples(const pipe_metrics *m, size_t *n);
/** @brief Per-partition gauges: lag (high watermark minus committed LMDB offset, -1 unknown),
 *  whether assigned here. */
void pipe_metrics_set_partition(pipe_metrics *m, int32_t partition, int assigned, int64_t lag);
void pipe_metrics_set_caught_up(pipe_metrics *m, int caught_up);
/** @brief The partitioner the worker checks keys with, exported as an info gauge for routers. */
void pipe_metrics_set_partitioner(pipe_metrics *m, const char *name);
/** @brief The store whose damage counts (enc_store_damage) the metrics report; set before serving.
 */
void pipe_metrics_set_store(pipe_metrics *m, struct enc_store *st);

/** Default of --ready-max-lag: per partition, messages the store may trail the high watermark by
 *  and still answer ready (about 0.1 s of a 10,000 events/s partition; statistics, where the high
 *  watermark comes from, are 1 s apart). */
#define PIPE_READY_MAX_LAG_DEFAULT 1000
/** @brief Readiness bound (set before serving). */
void pipe_metrics_set_ready_max_lag(pipe_metrics *m, int64_t max_lag);
/** @brief 1 when at least one partition is assigned and every assigned partition's lag is known
 *  and at most the bound; else 0 with why (JSON-safe text) naming the first reason. */
int pipe_metrics_ready(pipe_metrics *m, char *why, size_t cap);

/** @brief Render Prometheus text into a new buffer (core_free it). */
char *pipe_metrics_render(pipe_metrics *m, size_t *len);

/** @brief Serve GET /metrics, GET /readyz (200 ready, 503 with a JSON reason) and GET /healthz
 *  (200 while the process serves) on addr: "HOST:PORT", "[IPv6]:PORT" or ":PORT" (every
 *  interface); HOST a name or a numeric address; port 0 picks a free one.
 *  @param[out] port_out the bound port. */
int pipe_metrics_serve(pipe_metrics *m, const char *addr, int *port_out, char *errstr,
                       size_t errstr_size);

#endif
