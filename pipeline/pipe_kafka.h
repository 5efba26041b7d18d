/* pipe_kafka.h: the project's seam over librdkafka (pipe_kafka.c and pipe_broker.c are the only
 * files that include rdkafka.h).
 *
 * A producer (keyed sends with headers, delivery accounting, flush), a consumer (group member with
 * an eager rebalance callback that lets the caller choose each assigned partition's start offset,
 * or a plain assigned reader for `trail record`), watermark and partition-count queries, and the
 * statistics callback. Kafka properties travel as string pairs and reach rd_kafka_conf_set
 * unchanged, so SASL/SSL and every other librdkafka property pass through.
 *
 * Not here: batching, state, dead-lettering policy (pipe_worker.c), the mock cluster (pipe_broker.c).
 */
#ifndef TRAIL_PIPE_KAFKA_H
#define TRAIL_PIPE_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#define PIPE_OFFSET_BEGINNING (-2) /* RD_KAFKA_OFFSET_BEGINNING */
#define PIPE_OFFSET_END (-1)       /* RD_KAFKA_OFFSET_END */

// ---------------------------------------------------------------------------------------------
// Properties: librdkafka key/value pairs, in the order given (a later key overrides an earlier one)

typedef struct pipe_props {
    char **kv;  // (2 * n) key, value, key, value, ...
    size_t n, cap;
} pipe_props;

int pipe_props_add(pipe_props *p, const char *key, const char *val);
/** @brief Parse "key=value" (a -X argument); a leading "kafka." is stripped. */
int pipe_props_add_kv(pipe_props *p, const char *kv, char *errstr, size_t errstr_size);
/** @brief The last value given for key, or NULL. */
const char *pipe_props_get(const pipe_props *p, const char *key);
void pipe_props_free(pipe_props *p);

// ---------------------------------------------------------------------------------------------
// Producer

typedef struct pipe_producer pipe_producer;

typedef struct pipe_header {
    const char *name;
    const void *value;
    size_t len;
} pipe_header;

/** @brief A producer for `brokers`; props override the defaults (acks=all, idempotence on, lz4
 *  off, linger 5 ms, partitioner murmur2_random so keyed partitions match Java clients and
 *  pipe_partition_of). */
int pipe_producer_new(pipe_producer **out, const char *brokers, const pipe_props *props,
                      char *errstr, size_t errstr_size);
/** @brief Queue one message (copied). Waits, serving delivery reports, while the local queue is
 *  full. @param partition -1 lets the partitioner choose from the key. @param ts_ms 0 = now.
 *  @return CORE_OK, CORE_ESTOPPED if *stop became nonzero while waiting, or CORE_EKAFKA. */
int pipe_producer_send(pipe_producer *p, const char *topic, int32_t partition, const void *key,
                       size_t key_len, const void *val, size_t val_len, const pipe_header *hdrs,
                       size_t n_hdrs, int64_t ts_ms, volatile int *stop);
/** @brief Serve delivery reports for up to timeout_ms. */
void pipe_producer_poll(pipe_producer *p, int timeout_ms);
/** @brief Wait until every queued message is delivered or failed (timeout_ms < 0: forever, unless
 *  *stop). @return CORE_OK if the queue drained, CORE_ESTOPPED/CORE_EKAFKA otherwise. */
int pipe_producer_flush(pipe_producer *p, int timeout_ms, volatile int *stop);
/** @brief Messages acknowledged by the broker and messages that failed permanently, so far. */
void pipe_producer_counts(const pipe_producer *p, uint64_t *delivered, uint64_t *failed);
void pipe_producer_destroy(pipe_producer *p);

// ---------------------------------------------------------------------------------------------
// Consumer

typedef struct pipe_consumer pipe_consumer;

/** One polled message; pointers are valid until the next pipe_consumer_poll or _close. */
typedef struct pipe_msg {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const void *key;
    size_t key_len;
    const void *payload;
    size_t len;
    int64_t ts_ms;       /* message timestamp (CreateTime), -1 if none */
    int err;             /* 0, or a librdkafka error code (message-level or consumer error) */
    int err_fatal;       /* the handle hit a fatal error: stop */
    const char *errstr;  /* when err != 0 */
} pipe_msg;

typedef struct pipe_consumer_cbs {
    /** Partitions were assigned: fill offsets[i] (>= 0, or PIPE_OFFSET_BEGINNING) for parts[i]. */
    void (*assign)(void *opaque, const char *topic, const int32_t *parts, int64_t *offsets, int n);
    /** Partitions are about to be revoked: finish and commit work for them now. */
    void (*revoke)(void *opaque, const char *topic, const int32_t *parts, int n);
    /** librdkafka statistics JSON (statistics.interval.ms). */
    void (*stats)(void *opaque, const char *json, size_t len);
    void *opaque;
} pipe_consumer_cbs;

/** @brief A consumer-group member subscribed to topic (group != NULL), or, with group == NULL, a
 *  plain reader to be positioned with pipe_consumer_assign. Defaults: enable.auto.offset.store=false,
 *  auto.offset.reset=earliest, eager assignor; props override. */
int pipe_consumer_new(pipe_consumer **out, const char *brokers, const char *group,
                      const char *topic, const pipe_props *props, const pipe_consumer_cbs *cbs,
                      char *errstr, size_t errstr_size);
/** @brief Read topic's partition count from the cluster's metadata. */
int pipe_consumer_partition_count(pipe_consumer *c, const char *topic, int timeout_ms, int *n);
/** @brief Low and high watermark (next offset to be written) of one partition. */
int pipe_consumer_watermarks(pipe_consumer *c, const char *topic, int32_t partition,
                             int timeout_ms, int64_t *lo, int64_t *hi);
/** @brief Assign partitions directly (no group) starting at offsets. */
int pipe_consumer_assign(pipe_consumer *c, const char *topic, const int32_t *parts,
                         const int64_t *offsets, int n);
/** @brief Poll one message or event. @return 1 with *out filled, 0 on timeout. */
int pipe_consumer_poll(pipe_consumer *c, int timeout_ms, pipe_msg *out);
/** @brief Value of the message header `name` on the message last polled (not NUL-terminated).
 *  @return CORE_OK or CORE_ENOTFOUND. */
int pipe_consumer_header(pipe_consumer *c, const char *name, const void **val, size_t *len);
/** @brief Store next offsets (after the LMDB commit) and send them to the group coordinator,
 *  asynchronously; a monitoring hint only. */
void pipe_consumer_store_offsets(pipe_consumer *c, const char *topic, const int32_t *parts,
                                 const int64_t *next_offsets, int n);
/** @brief Leave the group (runs the revoke callback), then destroy. NULL-safe. */
void pipe_consumer_close(pipe_consumer *c);

// ---------------------------------------------------------------------------------------------
// In-process mock cluster (pipe_broker.c): `trail broker`, tests and `trail bench pipeline`

typedef struct pipe_mock pipe_mock;

/** @brief Start librdkafka's mock cluster with n_brokers brokers on 127.0.0.1 (listening on
 *  port, port+1, ... when port > 0, else on free ports) and create each comma-separated topic of
 *  `topics` (may be NULL) with `partitions` partitions. Lives until pipe_mock_destroy. */
int pipe_mock_new(pipe_mock **out, int n_brokers, int port, const char *topics, int partitions,
                  char *errstr, size_t errstr_size);
/** @brief The bootstrap address, host:port[,host:port]. */
const char *pipe_mock_bootstraps(const pipe_mock *mk);
/** @brief Take every broker down (connections closed, new ones refused, data kept) or up. */
void pipe_mock_set_down(pipe_mock *mk, int down);
void pipe_mock_destroy(pipe_mock *mk);

/** @brief The partition librdkafka's murmur2 partitioner (and Java's default) picks for a key
 *  (the decimal user id), among n partitions. Scoring routes a user to the worker that owns it
 *  with this. */
int32_t pipe_partition_of(const void *key, size_t key_len, int32_t n);

/** @brief librdkafka's version string, e.g. "2.0.2". */
const char *pipe_kafka_version(void);
/** @brief Messages a librdkafka error code describes. */
const char *pipe_kafka_err2str(int err);

#endif
