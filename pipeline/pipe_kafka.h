/* pipe_kafka.h: the project's seam over librdkafka (pipe_kafka.c and pipe_broker.c are the only
 * files that include rdkafka.h).
 *
 * A producer (keyed sends with headers, delivery accounting, flush), a consumer (group member with
 * an eager rebalance callback that lets the caller choose each assigned partition's start offset,
 * or a plain assigned reader for `trail record`), watermark and partition-count queries, and the
 * statistics callback. Kafka properties travel as string pairs and reach rd_kafka_conf_set
 * unchanged, so SASL/SSL and every other librdkafka property pass through.
 *
 * Not here: batching, state, dead-lettering policy (pipe_worker.c), the mock cluster
 * (pipe_broker.c).
 */
#ifndef TRAIL_PIPE_KAFKA_H
#define TRAIL_PIPE_KAFKA_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define PIPE_OFFSET_BEGINNING (-2) /* RD_KAFKA_OFFSET_BEGINNING */
#define PIPE_OFFSET_END (-1)       /* RD_KAFKA_OFFSET_END */

// ---------------------------------------------------------------------------------------------
// Properties: librdkafka key/value pairs, in the order given (a later key overrides an earlier one)
//
// A key may carry a client prefix, as Kafka Connect's worker configs do: `consumer.KEY` reaches
// only the consumer, `producer.KEY` only the producer. An unprefixed key reaches every client of
// the command that librdkafka accepts it for (its C/P column: C the consumer, P the producer, *
// both), so a consumer property never reaches the worker's dead-letter producer.

typedef struct pipe_props {
    char **kv; // (2 * n) key, value, key, value, ...
    size_t n, cap;
} pipe_props;

int pipe_props_add(pipe_props *p, const char *key, const char *val);
/** @brief Parse "key=value" (a -X argument); a leading "kafka." is stripped. */
int pipe_props_add_kv(pipe_props *p, const char *kv, char *errstr, size_t errstr_size);
/** @brief The last value given for key, or NULL. */
const char *pipe_props_get(const pipe_props *p, const char *key);
void pipe_props_free(pipe_props *p);

/* The clients a command runs, for pipe_props_check and pipe_props_select. */
enum {
    PIPE_CLIENT_PRODUCER = 1,
    PIPE_CLIENT_CONSUMER = 2,
    PIPE_CLIENT_WORKER = 4, /* the consumer is the encoder worker and the producer its dead-letter
                               producer: the properties its guarantees rest on are trail's */
};

/** @brief Refuse what the command's clients cannot take, naming the property and why: a prefix
 *  for a client the command does not run (`consumer.*` on `trail produce`), a prefixed property
 *  librdkafka does not accept for that client (`consumer.acks`), a `bootstrap.servers` (or
 *  `metadata.broker.list`, in any prefix) that differs from `brokers`, and `partitioner` (the
 *  commands' --partitioner sets it). With PIPE_CLIENT_WORKER also `enable.auto.offset.store`,
 *  `enable.auto.commit`, `group.id` (--group), `isolation.level` other than read_committed, and a
 *  dead-letter `acks` other than all. @param clients PIPE_CLIENT_* bits. */
int pipe_props_check(const pipe_props *p, unsigned clients, const char *brokers, char *errstr,
                     size_t errstr_size);
/** @brief Into *out (empty), the properties that reach one client (PIPE_CLIENT_PRODUCER or
 *  PIPE_CLIENT_CONSUMER), prefixes stripped, in order. */
int pipe_props_select(const pipe_props *p, unsigned client, pipe_props *out);

// ---------------------------------------------------------------------------------------------
// Partitioners: librdkafka's, by its names

typedef enum pipe_partitioner {
    PIPE_PART_RANDOM,            /* no key decides: a user's events spread over partitions */
    PIPE_PART_CONSISTENT,        /* CRC32(key) % P */
    PIPE_PART_CONSISTENT_RANDOM, /* CRC32, keyless messages random: librdkafka clients' default
                                    (kcat, confluent-kafka-python, Go, .NET) */
    PIPE_PART_MURMUR2,           /* (murmur2(key) & 0x7fffffff) % P: Java's default */
    PIPE_PART_MURMUR2_RANDOM,    /* murmur2, keyless messages random */
    PIPE_PART_FNV1A,             /* FNV-1a(key) % P */
    PIPE_PART_FNV1A_RANDOM,      /* FNV-1a, keyless messages random */
    PIPE_PART_N
} pipe_partitioner;

/* trail's default: what Java producers, Kafka Connect and Kafka Streams use, and what `trail
 * produce` has always written, so topics produced before the setting existed keep checking clean.
 */
#define PIPE_PARTITIONER_DEFAULT PIPE_PART_MURMUR2_RANDOM

/** @brief librdkafka's name of a partitioner ("murmur2_random"). */
const char *pipe_partitioner_name(pipe_partitioner part);
/** @brief The partitioner named `name` (librdkafka's names). @return CORE_OK or CORE_EINVAL with
 *  errstr naming the value and the accepted names. */
int pipe_partitioner_parse(const char *name, pipe_partitioner *out, char *errstr,
                           size_t errstr_size);
/** @brief The partition librdkafka's partitioner `part` picks for a key among n, computed by
 *  librdkafka's own function. Scoring routes a user (key: the decimal user id) to the worker that
 *  owns it with this. @return -1 when no key decides: `random`, or a keyless message under a
 *  *_random partitioner. */
int32_t pipe_partition_of(pipe_partitioner part, const void *key, size_t key_len, int32_t n);

// ---------------------------------------------------------------------------------------------
// Producer

typedef struct pipe_producer pipe_producer;

typedef struct pipe_header {
    const char *name;
    const void *value;
    size_t len;
} pipe_header;

/** @brief A producer for `brokers`; props (the ones that reach a producer, pipe_props_select)
 *  override the defaults (acks=all, idempotence on, linger 5 ms, partitioner
 *  PIPE_PARTITIONER_DEFAULT; `trail produce --partitioner` sets `partitioner` in props). */
int pipe_producer_new(pipe_producer **out, const char *brokers, const pipe_props *props,
                      char *errstr, size_t errstr_size);
/** @brief Queue one message (copied). Waits, serving delivery reports, while the local queue is
 *  full. @param partition -1 lets the partitioner choose from the key. @param ts_ms 0 = now.
 *  @return CORE_OK, CORE_ESTOPPED if *stop became nonzero while waiting, or CORE_EKAFKA. */
int pipe_producer_send(pipe_producer *p, const char *topic, int32_t partition, const void *key,
                       size_t key_len, const void *val, size_t val_len, const pipe_header *hdrs,
                       size_t n_hdrs, int64_t ts_ms, atomic_int *stop);
/** @brief Serve delivery reports for up to timeout_ms. */
void pipe_producer_poll(pipe_producer *p, int timeout_ms);
/** @brief Wait until every queued message is delivered or failed (timeout_ms < 0: forever, unless
 *  *stop). @return CORE_OK if the queue drained, CORE_ESTOPPED/CORE_EKAFKA otherwise. */
int pipe_producer_flush(pipe_producer *p, int timeout_ms, atomic_int *stop);
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
    int64_t ts_ms;      /* message timestamp (CreateTime), -1 if none */
    int err;            /* 0, or a librdkafka error code (message-level or consumer error) */
    int err_fatal;      /* the handle hit a fatal error: stop */
    const char *errstr; /* when err != 0 */
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
 *  plain reader to be positioned with pipe_consumer_assign. Defaults:
 * enable.auto.offset.store=false, auto.offset.reset=earliest, eager assignor; props (the ones that
 * reach a consumer, pipe_props_select) override. */
int pipe_consumer_new(pipe_consumer **out, const char *brokers, const char *group,
                      const char *topic, const pipe_props *props, const pipe_consumer_cbs *cbs,
                      char *errstr, size_t errstr_size);
/** @brief Read topic's partition count from the cluster's metadata. */
int pipe_consumer_partition_count(pipe_consumer *c, const char *topic, int timeout_ms, int *n);
/** @brief Low and high watermark (next offset to be written) of one partition. */
int pipe_consumer_watermarks(pipe_consumer *c, const char *topic, int32_t partition, int timeout_ms,
                             int64_t *lo, int64_t *hi);
/** @brief Assign partitions directly (no group) starting at offsets. */
int pipe_consumer_assign(pipe_consumer *c, const char *topic, const int32_t *parts,
                         const int64_t *offsets, int n);
/** @brief Poll one message or event. @return 1 with *out filled, 0 on timeout. */
int pipe_consumer_poll(pipe_consumer *c, int timeout_ms, pipe_msg *out);
/** @brief Value of the message header `name` on the message last polled (not NUL-terminated).
 *  @return CORE_OK or CORE_ENOTFOUND. */
int pipe_consumer_header(pipe_consumer *c, const char *name, const void **val, size_t *len);
/** @brief Every header of the message last polled, in order: the first cap into out (names,
 *  values valid until the next poll; a null value has value NULL). @return how many it has. */
size_t pipe_consumer_headers(pipe_consumer *c, pipe_header *out, size_t cap);
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

/** @brief librdkafka's version string, e.g. "2.0.2". */
const char *pipe_kafka_version(void);
/** @brief Messages a librdkafka error code describes. */
const char *pipe_kafka_err2str(int err);

#endif
