/* test_pipe_worker.c: the consume loop against librdkafka's mock cluster (in process, loopback),
 * with an in-memory sink whose per-user fingerprint depends on the order of events, so a lost,
 * duplicated or reordered event changes it. Covers: pipe_partition_of equals the partition a
 * librdkafka producer picks under each keyed partitioner, batches carry their offsets, malformed
 * messages reach the dead-letter topic with their headers, a second run resumes at the stored
 * offsets, an empty sink rebuilds from the beginning, a stop drains and commits, a store failure
 * stores no offsets, brokers going down mid-stream lose nothing; misrouted messages (key not the
 * user id, key of another partition) are counted and dead-lettered, applied or fatal as asked,
 * tombstones are skipped, a consistent_random topic checks clean under that setting; client
 * prefixes keep consumer properties off the dead-letter producer; /readyz turns 200 once caught up.
 *
 * What the mock cluster shows: librdkafka's producer-side partitioning, message keys, headers,
 * null values and explicit partitions travel as a real broker would carry them. What it cannot:
 * producers of other languages (the Java murmur2 equivalence rests on librdkafka's documentation),
 * partitions added to a live topic (the mock has no CreatePartitions), real readiness under load.
 */
#include "test_common.h"
#include "pipe_test_util.h"

#include "core_alloc.h"
#include "core_err.h"
#include "core_log.h"
#include "core_util.h"
#include "pipe_kafka.h"
#include "pipe_metrics.h"
#include "pipe_worker.h"
#include "sch_event.h"

#include <stdatomic.h>
#include <inttypes.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#define NUSERS 40

static int g_went_down; /* set when the fake sink took the brokers down */

// ---------------------------------------------------------------------------------------------
// A fake sink: per-user order-sensitive fingerprint and count, offsets by source, staged batches

typedef struct fake_sink {
    uint64_t fp[NUSERS], cnt[NUSERS];   /* committed */
    uint64_t sfp[NUSERS], scnt[NUSERS]; /* staged in the open batch */
    char src[16][64];
    int64_t off[16], soff[16];
    int nsrc, open;
    int fail_commit;     /* commit returns CORE_ESTORE */
    uint64_t applied;    /* committed applies */
    uint64_t stop_after; /* set *stop once this many applies were staged (0: never) */
    uint64_t staged_total;
    atomic_int *stop;
    pipe_mock *down_at_mock; /* take the brokers down after down_at applies */
    uint64_t down_at;
} fake_sink;

static uint64_t fold(uint64_t fp, const sch_event *ev) {
    return (fp ^ ev->item_id) * 0x100000001B3ull + (uint64_t)ev->ts;
}

static int f_begin(void *ctx) {
    fake_sink *f = ctx;
    assert_false(f->open);
    memcpy(f->sfp, f->fp, sizeof f->fp);
    memcpy(f->scnt, f->cnt, sizeof f->cnt);
    memcpy(f->soff, f->off, sizeof f->off);
    f->open = 1;
    return CORE_OK;
}
static int f_apply(void *ctx, const sch_event *ev) {
    fake_sink *f = ctx;
    assert_true(f->open);
    assert_true(ev->user_id < NUSERS);
    f->sfp[ev->user_id] = fold(f->sfp[ev->user_id], ev);
    f->scnt[ev->user_id]++;
    f->staged_total++;
    if (f->stop_after && f->staged_total == f->stop_after) *f->stop = 1;
    if (f->down_at_mock && f->staged_total == f->down_at) {
        pipe_mock_set_down(f->down_at_mock, 1);
        __atomic_store_n(&g_went_down, 1, __ATOMIC_SEQ_CST);
    }
    return CORE_OK;
}
static int find_src(fake_sink *f, const char *s) {
    for (int i = 0; i < f->nsrc; i++)
        if (!strcmp(f->src[i], s)) return i;
    return -1;
}
static int f_set_offset(void *ctx, const char *s, int64_t next) {
    fake_sink *f = ctx;
    int i = find_src(f, s);
    if (i < 0) {
        assert_true(f->nsrc < 16);
        i = f->nsrc++;
        snprintf(f->src[i], sizeof f->src[i], "%s", s);
        f->off[i] = -1;
    }
    f->soff[i] = next;
    return CORE_OK;
}
static int f_commit(void *ctx) {
    fake_sink *f = ctx;
    f->open = 0;
    if (f->fail_commit) return CORE_ESTORE;
    uint64_t n = 0;
    for (int u = 0; u < NUSERS; u++)
        n += f->scnt[u] - f->cnt[u];
    f->applied += n;
    memcpy(f->fp, f->sfp, sizeof f->fp);
    memcpy(f->cnt, f->scnt, sizeof f->cnt);
    memcpy(f->off, f->soff, sizeof f->off);
    return CORE_OK;
}
static void f_abort(void *ctx) {
    ((fake_sink *)ctx)->open = 0;
}
static int f_get_offset(void *ctx, const char *s, int64_t *next) {
    fake_sink *f = ctx;
    int i = find_src(f, s);
    if (i < 0 || f->off[i] < 0) return CORE_ENOTFOUND;
    *next = f->off[i];
    return CORE_OK;
}
static void fake_init(fake_sink *f, pipe_sink *s) {
    memset(f, 0, sizeof(*f));
    *s = (pipe_sink){f, f_begin, f_apply, f_set_offset, f_commit, f_abort, f_get_offset, NULL};
}

// ---------------------------------------------------------------------------------------------
// Fixture: one mock cluster for the file

static pipe_mock *g_mock;
static const char *g_brokers;

static int setup(void **state) {
    (void)state;
    char err[512];
    core_log_level = CORE_LOG_WARNING;
    if (pipe_mock_new(&g_mock, 1, 0, "parts,w,drain,fail,down,mis,crc,warn,ready", 4, err,
                      sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    g_brokers = pipe_mock_bootstraps(g_mock);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    pipe_mock_destroy(g_mock);
    return 0;
}

static void group_props(pipe_props *p) {
    assert_int_equal(pipe_props_add(p, "session.timeout.ms", "6000"), CORE_OK);
    assert_int_equal(pipe_props_add(p, "heartbeat.interval.ms", "500"), CORE_OK);
    assert_int_equal(pipe_props_add(p, "max.poll.interval.ms", "7000"), CORE_OK);
}

/* Event i of a deterministic stream: user i % NUSERS. */
static sch_event event_of(int i) {
    sch_event ev = {.user_id = (uint64_t)(i % NUSERS),
                    .item_id = 1000 + (uint64_t)i * 7,
                    .category_id = 10 + (uint64_t)(i % 13),
                    .ts = 1511544070 + i,
                    .action = SCH_ACTION_CLICK};
    return ev;
}

static void produce_events(const char *topic, int from, int to, int with_bad, uint64_t *fp,
                           uint64_t *cnt) {
    pipe_producer *p;
    char err[512], buf[300], key[24];
    assert_int_equal(pipe_producer_new(&p, g_brokers, NULL, err, sizeof err), CORE_OK);
    for (int i = from; i < to; i++) {
        sch_event ev = event_of(i);
        int n = sch_event_to_json(&ev, buf, sizeof buf);
        int k = snprintf(key, sizeof key, "%" PRIu64, ev.user_id);
        assert_int_equal(
            pipe_producer_send(p, topic, -1, key, (size_t)k, buf, (size_t)n, NULL, 0, 0, NULL),
            CORE_OK);
        if (fp) {
            fp[ev.user_id] = fold(fp[ev.user_id], &ev);
            cnt[ev.user_id]++;
        }
        if (with_bad && i % 50 == 7) {
            static const char *bad[] = {"{\"user_id\": 1, \"item_id\": \"x\"}", "not json",
                                        "{\"user_id\": 3, \"item_id\": 4, \"category_id\": 5, "
                                        "\"action\": \"click\", \"ts\": 1, \"extra\": 1}"};
            const char *b = bad[(i / 50) % 3];
            assert_int_equal(
                pipe_producer_send(p, topic, -1, key, (size_t)k, b, strlen(b), NULL, 0, 0, NULL),
                CORE_OK);
        }
    }
    assert_int_equal(pipe_producer_flush(p, 10000, NULL), CORE_OK);
    uint64_t d, f;
    pipe_producer_counts(p, &d, &f);
    assert_int_equal(f, 0);
    pipe_producer_destroy(p);
}

/* Overrides of the worker's defaults for one run (NULL: none). */
typedef struct run_opts {
    pipe_partitioner partitioner;
    pipe_misrouted on_misrouted;
    char *err;         /* the worker's errstr, 512 bytes */
    pipe_metrics *met; /* use this one (the caller destroys it) */
} run_opts;

static int run_worker_opts(const char *topic, const char *group, pipe_sink *s, int until_end,
                           atomic_int *stop, uint32_t batch_max, pipe_metrics **met_out,
                           const run_opts *ro) {
    pipe_worker_conf wc;
    pipe_props props = {0};
    pipe_metrics *met;
    char err[512] = "";
    group_props(&props);
    pipe_worker_conf_default(&wc);
    wc.brokers = g_brokers;
    wc.topic = topic;
    wc.group = group;
    wc.props = &props;
    wc.until_end = until_end;
    wc.stop = stop;
    if (ro) {
        wc.partitioner = ro->partitioner;
        wc.on_misrouted = ro->on_misrouted;
    }
    if (batch_max) wc.batch_max = batch_max;
    if (ro && ro->met)
        met = ro->met;
    else
        assert_int_equal(pipe_metrics_new(&met, topic), CORE_OK);
    int rc = pipe_worker_run(&wc, s, met, err, sizeof err);
    if (rc && !(ro && ro->err)) fprintf(stderr, "worker: %s\n", err);
    if (ro && ro->err) snprintf(ro->err, 512, "%s", err);
    pipe_props_free(&props);
    if (met_out)
        *met_out = met;
    else if (!(ro && ro->met))
        pipe_metrics_destroy(met);
    return rc;
}

static int run_worker(const char *topic, const char *group, pipe_sink *s, int until_end,
                      atomic_int *stop, uint32_t batch_max, pipe_metrics **met_out) {
    return run_worker_opts(topic, group, s, until_end, stop, batch_max, met_out, NULL);
}

static int64_t sum_offsets(const fake_sink *f) {
    int64_t s = 0;
    for (int i = 0; i < f->nsrc; i++)
        s += f->off[i];
    return s;
}

// ---------------------------------------------------------------------------------------------
// Tests

static const pipe_partitioner keyed[] = {PIPE_PART_CONSISTENT, PIPE_PART_CONSISTENT_RANDOM,
                                         PIPE_PART_MURMUR2,    PIPE_PART_MURMUR2_RANDOM,
                                         PIPE_PART_FNV1A,      PIPE_PART_FNV1A_RANDOM};

/* A producer whose `partitioner` property is part's name (NULL props for the default). */
static pipe_producer *producer_with(pipe_partitioner part) {
    pipe_producer *p;
    pipe_props props = {0};
    char err[512];
    assert_int_equal(pipe_props_add(&props, "partitioner", pipe_partitioner_name(part)), CORE_OK);
    assert_int_equal(pipe_producer_new(&p, g_brokers, &props, err, sizeof err), CORE_OK);
    pipe_props_free(&props);
    return p;
}

static void test_partition_of_matches_librdkafka(void **state) {
    (void)state;
    char key[24];
    const int nk = 100, np = (int)(sizeof keyed / sizeof keyed[0]);
    /* Each keyed partitioner's producer sends 100 keys, the partitioner's name as the value. */
    for (int i = 0; i < np; i++) {
        pipe_producer *p = producer_with(keyed[i]);
        const char *name = pipe_partitioner_name(keyed[i]);
        for (int u = 0; u < nk; u++) {
            int k = snprintf(key, sizeof key, "%d", u * 7919);
            assert_int_equal(pipe_producer_send(p, "parts", -1, key, (size_t)k, name, strlen(name),
                                                NULL, 0, 0, NULL),
                             CORE_OK);
        }
        assert_int_equal(pipe_producer_flush(p, 10000, NULL), CORE_OK);
        pipe_producer_destroy(p);
    }
    pipe_consumer *c = pipe_test_consume_from_start(g_brokers, "parts", 5000);
    int seen = 0, per[4] = {0}, differ = 0;
    int64_t t0 = core_now_ns();
    while (seen < nk * np && core_now_ns() - t0 < 20000000000ll) {
        pipe_msg m;
        char name[32];
        pipe_partitioner part;
        if (!pipe_consumer_poll(c, 200, &m) || m.err) continue;
        snprintf(name, sizeof name, "%.*s", (int)m.len, (const char *)m.payload);
        assert_int_equal(pipe_partitioner_parse(name, &part, name, sizeof name), CORE_OK);
        assert_int_equal(m.partition, pipe_partition_of(part, m.key, m.key_len, 4));
        per[m.partition]++;
        seen++;
        differ += pipe_partition_of(PIPE_PART_CONSISTENT_RANDOM, m.key, m.key_len, 4) !=
                  pipe_partition_of(PIPE_PART_MURMUR2_RANDOM, m.key, m.key_len, 4);
    }
    assert_int_equal(seen, nk * np);
    for (int i = 0; i < 4; i++)
        assert_true(per[i] > 20 * np); /* keys spread over the partitions */
    assert_true(differ >
                seen / 2); /* CRC32 and murmur2 disagree on most keys: the setting matters */
    pipe_consumer_close(c);
    /* No key decides under random, or for a keyless message under a *_random partitioner. */
    assert_int_equal(pipe_partition_of(PIPE_PART_RANDOM, "7", 1, 4), -1);
    assert_int_equal(pipe_partition_of(PIPE_PART_MURMUR2_RANDOM, NULL, 0, 4), -1);
    pipe_partitioner part;
    char err[256];
    assert_int_equal(pipe_partitioner_parse("crc32", &part, err, sizeof err), CORE_EINVAL);
    assert_non_null(strstr(err, "'crc32'"));
}

static void test_until_end_dead_letters_then_resumes_and_rebuilds(void **state) {
    (void)state;
    static fake_sink f, g;
    pipe_sink s, sg;
    uint64_t fp[NUSERS] = {0}, cnt[NUSERS] = {0};
    atomic_int stop = 0;
    pipe_metrics *met;
    fake_init(&f, &s);
    produce_events("w", 0, 400, 1, fp, cnt);
    assert_int_equal(run_worker("w", "g-w", &s, 1, &stop, 64, &met), CORE_OK);
    assert_memory_equal(f.fp, fp, sizeof fp);
    assert_memory_equal(f.cnt, cnt, sizeof cnt);
    assert_int_equal(f.nsrc, 4);
    assert_int_equal(sum_offsets(&f), 400 + 8); /* 8 malformed among them, offsets past them too */
    assert_int_equal(pipe_metrics_get(met, PIPE_M_DEAD_LETTERED), 8);
    assert_int_equal(pipe_metrics_get(met, PIPE_M_REBUILDS), 4);
    size_t len;
    char *text = pipe_metrics_render(met, &len);
    assert_non_null(text);
    assert_non_null(strstr(text, "trail_pipeline_dead_lettered_total 8\n"));
    assert_non_null(strstr(text, "trail_pipeline_freshness_seconds_count 400\n"));
    /* receive to visible, per tier: every applied behavior once in each */
    assert_non_null(strstr(text, "trail_pipeline_freshness_recent_seconds_count 400\n"));
    assert_non_null(strstr(text, "trail_pipeline_freshness_buckets_seconds_count 400\n"));
    /* what the process is, as trail serve reports it (core_proc.h) */
    assert_non_null(strstr(text, "\ntrail_build_info{version=\""));
    assert_non_null(strstr(text, "\nprocess_resident_memory_bytes "));
    assert_non_null(strstr(text, "\nprocess_start_time_seconds "));
    assert_non_null(strstr(text, "\nprocess_open_fds "));
    core_free(text);
    pipe_metrics_destroy(met);

    /* The dead-letter topic holds the 8 malformed messages with reason and source headers. */
    pipe_consumer *c = pipe_test_consume_from_start(g_brokers, "w.dlq", 5000);
    int seen = 0, with_field_reason = 0;
    int64_t t0 = core_now_ns();
    while (seen < 8 && core_now_ns() - t0 < 20000000000ll) {
        pipe_msg m;
        if (!pipe_consumer_poll(c, 200, &m) || m.err) continue;
        const void *v;
        size_t vl;
        char buf[300];
        assert_int_equal(pipe_consumer_header(c, "trail.reason", &v, &vl), CORE_OK);
        snprintf(buf, sizeof buf, "%.*s", (int)vl, (const char *)v);
        if (strstr(buf, "item_id") || strstr(buf, "extra")) with_field_reason++;
        assert_true(vl > 0);
        assert_int_equal(pipe_consumer_header(c, "trail.source.topic", &v, &vl), CORE_OK);
        assert_int_equal(vl, 1);
        assert_memory_equal(v, "w", 1);
        assert_int_equal(pipe_consumer_header(c, "trail.source.partition", &v, &vl), CORE_OK);
        assert_int_equal(pipe_consumer_header(c, "trail.source.offset", &v, &vl), CORE_OK);
        seen++;
    }
    assert_int_equal(seen, 8);
    assert_true(with_field_reason >= 4); /* the reasons name the offending field */
    pipe_consumer_close(c);

    /* More events: the same sink resumes at its stored offsets and applies only the new ones. */
    produce_events("w", 400, 600, 0, fp, cnt);
    uint64_t before = f.applied;
    assert_int_equal(run_worker("w", "g-w", &s, 1, &stop, 0, NULL), CORE_OK);
    assert_int_equal(f.applied - before, 200);
    assert_memory_equal(f.fp, fp, sizeof fp);

    /* An empty sink in the same group rebuilds every partition from the beginning. */
    fake_init(&g, &sg);
    assert_int_equal(run_worker("w", "g-w", &sg, 1, &stop, 0, NULL), CORE_OK);
    assert_memory_equal(g.fp, fp, sizeof fp);
    assert_memory_equal(g.cnt, cnt, sizeof cnt);
}

static void test_stop_drains_and_commits(void **state) {
    (void)state;
    static fake_sink f;
    pipe_sink s;
    atomic_int stop = 0;
    fake_init(&f, &s);
    produce_events("drain", 0, 1000, 0, NULL, NULL);
    f.stop_after = 333;
    f.stop = &stop;
    assert_int_equal(run_worker("drain", "g-drain", &s, 0, &stop, 100, NULL), CORE_OK);
    assert_false(f.open);
    /* Everything staged was committed, and the offsets say exactly how much. */
    assert_true(f.applied >= 333);
    assert_int_equal(sum_offsets(&f), (int64_t)f.applied);
}

static void test_store_failure_stores_no_offsets(void **state) {
    (void)state;
    static fake_sink f;
    pipe_sink s;
    atomic_int stop = 0;
    fake_init(&f, &s);
    produce_events("fail", 0, 100, 0, NULL, NULL);
    f.fail_commit = 1;
    assert_int_equal(run_worker("fail", "g-fail", &s, 1, &stop, 10, NULL), CORE_ESTORE);
    assert_int_equal(f.applied, 0);
    int64_t next;
    assert_int_equal(f_get_offset(&f, "kafka:fail:0", &next), CORE_ENOTFOUND);
}

static void *bring_up_later(void *arg) {
    (void)arg;
    struct timespec tick = {0, 10 * 1000 * 1000}, ts = {3, 0};
    while (!__atomic_load_n(&g_went_down, __ATOMIC_SEQ_CST))
        nanosleep(&tick, NULL);
    nanosleep(&ts, NULL); /* down for 3 s, mid-stream */
    pipe_mock_set_down(g_mock, 0);
    return NULL;
}

static void test_brokers_down_mid_stream_lose_nothing(void **state) {
    (void)state;
    static fake_sink f;
    pipe_sink s;
    uint64_t fp[NUSERS] = {0}, cnt[NUSERS] = {0};
    atomic_int stop = 0;
    pthread_t th;
    fake_init(&f, &s);
    produce_events("down", 0, 2000, 0, fp, cnt);
    f.down_at_mock = g_mock;
    f.down_at = 300; /* brokers go down while the worker is mid-stream */
    assert_int_equal(pthread_create(&th, NULL, bring_up_later, NULL), 0);
    assert_int_equal(run_worker("down", "g-down", &s, 1, &stop, 50, NULL), CORE_OK);
    pthread_join(th, NULL);
    assert_memory_equal(f.fp, fp, sizeof fp);
    assert_memory_equal(f.cnt, cnt, sizeof cnt);
    assert_int_equal(sum_offsets(&f), 2000);
}

/* Send one raw message: key (NULL none), value (NULL a tombstone), partition (-1: the default
 * partitioner's), one header x-src=src when src is given. */
static void send_raw(const char *topic, const char *key, const char *val, int32_t partition,
                     const char *src) {
    pipe_producer *p;
    char err[512];
    pipe_header h = {"x-src", src, src ? strlen(src) : 0};
    assert_int_equal(pipe_producer_new(&p, g_brokers, NULL, err, sizeof err), CORE_OK);
    assert_int_equal(pipe_producer_send(p, topic, partition, key, key ? strlen(key) : 0, val,
                                        val ? strlen(val) : 0, src ? &h : NULL, src ? 1 : 0, 0,
                                        NULL),
                     CORE_OK);
    assert_int_equal(pipe_producer_flush(p, 10000, NULL), CORE_OK);
    pipe_producer_destroy(p);
}

static int32_t part_of(const char *key) {
    return pipe_partition_of(PIPE_PARTITIONER_DEFAULT, key, strlen(key), 4);
}

static void test_misrouted_and_tombstones(void **state) {
    (void)state;
    static fake_sink f, g, h;
    pipe_sink s;
    uint64_t fp[NUSERS] = {0}, cnt[NUSERS] = {0};
    atomic_int stop = 0;
    pipe_metrics *met;
    char buf[300], err[512];
    produce_events("mis", 0, 200, 0, fp, cnt);
    /* user 5's event keyed "6" (key_mismatch), user 7's keyed "7" on the next partition
     * (wrong_partition), a tombstone, and invalid JSON; the last two carry a source header. */
    sch_event e5 = event_of(5), e7 = event_of(7);
    e5.ts += 1000;
    e7.ts += 1000;
    sch_event_to_json(&e5, buf, sizeof buf);
    send_raw("mis", "6", buf, -1, NULL);
    sch_event_to_json(&e7, buf, sizeof buf);
    send_raw("mis", "7", buf, (part_of("7") + 1) % 4, "from-7");
    send_raw("mis", "8", NULL, -1, NULL);
    send_raw("mis", "9", "not json", -1, "from-9");

    /* dlq (the default): counted, dead-lettered, the state holds only the well-routed events. */
    fake_init(&f, &s);
    assert_int_equal(run_worker("mis", "g-mis", &s, 1, &stop, 0, &met), CORE_OK);
    assert_memory_equal(f.fp, fp, sizeof fp);
    assert_int_equal(sum_offsets(&f), 204);
    assert_int_equal(pipe_metrics_get(met, PIPE_M_MISROUTED_KEY), 1);
    assert_int_equal(pipe_metrics_get(met, PIPE_M_MISROUTED_PARTITION), 1);
    assert_int_equal(pipe_metrics_get(met, PIPE_M_TOMBSTONES), 1);
    assert_int_equal(pipe_metrics_get(met, PIPE_M_DEAD_LETTERED), 3);
    assert_int_equal(pipe_metrics_get(met, PIPE_M_APPLIED), 200);
    size_t len;
    char *text = pipe_metrics_render(met, &len);
    assert_non_null(strstr(text, "trail_pipeline_misrouted_total{reason=\"key_mismatch\"} 1\n"));
    assert_non_null(strstr(text, "trail_pipeline_misrouted_total{reason=\"wrong_partition\"} 1\n"));
    assert_non_null(strstr(text, "trail_pipeline_tombstones_total 1\n"));
    assert_non_null(
        strstr(text, "trail_pipeline_partitioner_info{partitioner=\"murmur2_random\"} 1"));
    core_free(text);
    pipe_metrics_destroy(met);

    /* The dead letters: reason codes, and the source's own headers kept. */
    pipe_consumer *c = pipe_test_consume_from_start(g_brokers, "mis.dlq", 5000);
    int seen = 0, codes = 0, kept = 0;
    int64_t t0 = core_now_ns();
    while (seen < 3 && core_now_ns() - t0 < 20000000000ll) {
        pipe_msg m;
        const void *v;
        size_t vl;
        char code[32], src[32] = "";
        if (!pipe_consumer_poll(c, 200, &m) || m.err) continue;
        assert_int_equal(pipe_consumer_header(c, "trail.reason.code", &v, &vl), CORE_OK);
        snprintf(code, sizeof code, "%.*s", (int)vl, (const char *)v);
        if (pipe_consumer_header(c, "x-src", &v, &vl) == CORE_OK)
            snprintf(src, sizeof src, "%.*s", (int)vl, (const char *)v);
        assert_int_equal(pipe_consumer_header(c, "trail.reason", &v, &vl), CORE_OK);
        if (!strcmp(code, "key_mismatch")) codes |= 1, kept += !src[0];
        if (!strcmp(code, "wrong_partition")) codes |= 2, kept += !strcmp(src, "from-7");
        if (!strcmp(code, "invalid")) codes |= 4, kept += !strcmp(src, "from-9");
        seen++;
    }
    assert_int_equal(seen, 3);
    assert_int_equal(codes, 7);
    assert_int_equal(kept, 3);
    pipe_consumer_close(c);

    /* apply: still counted, and applied. */
    fp[5] = fold(fp[5], &e5);
    fp[7] = fold(fp[7], &e7);
    fake_init(&g, &s);
    run_opts ro = {PIPE_PARTITIONER_DEFAULT, PIPE_MISROUTED_APPLY, NULL, NULL};
    assert_int_equal(run_worker_opts("mis", "g-mis-apply", &s, 1, &stop, 0, &met, &ro), CORE_OK);
    assert_memory_equal(g.fp, fp, sizeof fp);
    assert_int_equal(pipe_metrics_get(met, PIPE_M_MISROUTED_KEY), 1);
    assert_int_equal(pipe_metrics_get(met, PIPE_M_MISROUTED_PARTITION), 1);
    assert_int_equal(pipe_metrics_get(met, PIPE_M_DEAD_LETTERED), 1); /* the invalid one */
    pipe_metrics_destroy(met);

    /* fail: the worker stops at the first, naming it; nothing past it is committed. */
    fake_init(&h, &s);
    ro = (run_opts){PIPE_PARTITIONER_DEFAULT, PIPE_MISROUTED_FAIL, err, NULL};
    assert_int_equal(run_worker_opts("mis", "g-mis-fail", &s, 1, &stop, 0, NULL, &ro), CORE_EINVAL);
    assert_non_null(strstr(err, "misrouted message mis/"));
    assert_true(strstr(err, "key_mismatch: key '6' is not the event's user_id 5") ||
                strstr(err, "wrong_partition: key '7'"));
    assert_false(h.open);
    assert_true(sum_offsets(&h) < 204);

    /* random cannot be checked: refused up front. */
    ro = (run_opts){PIPE_PART_RANDOM, PIPE_MISROUTED_DLQ, err, NULL};
    assert_int_equal(run_worker_opts("mis", "g-mis-r", &s, 1, &stop, 0, NULL, &ro), CORE_EINVAL);
    assert_non_null(strstr(err, "partitioner random"));
}

/* A topic written by librdkafka's default partitioner (kcat, confluent-kafka): clean under
 * --partitioner consistent_random, and most users misrouted under the murmur2 default. */
static void test_consistent_random_topic(void **state) {
    (void)state;
    static fake_sink f, g;
    pipe_sink s;
    uint64_t fp[NUSERS] = {0};
    atomic_int stop = 0;
    pipe_metrics *met;
    char buf[300], key[24];
    pipe_producer *p = producer_with(PIPE_PART_CONSISTENT_RANDOM);
    for (int i = 0; i < 200; i++) {
        sch_event ev = event_of(i);
        int n = sch_event_to_json(&ev, buf, sizeof buf);
        int k = snprintf(key, sizeof key, "%" PRIu64, ev.user_id);
        assert_int_equal(
            pipe_producer_send(p, "crc", -1, key, (size_t)k, buf, (size_t)n, NULL, 0, 0, NULL),
            CORE_OK);
        fp[ev.user_id] = fold(fp[ev.user_id], &ev);
    }
    assert_int_equal(pipe_producer_flush(p, 10000, NULL), CORE_OK);
    pipe_producer_destroy(p);
    fake_init(&f, &s);
    run_opts ro = {PIPE_PART_CONSISTENT_RANDOM, PIPE_MISROUTED_DLQ, NULL, NULL};
    assert_int_equal(run_worker_opts("crc", "g-crc", &s, 1, &stop, 0, &met, &ro), CORE_OK);
    assert_memory_equal(f.fp, fp, sizeof fp);
    assert_int_equal(pipe_metrics_get(met, PIPE_M_MISROUTED_PARTITION), 0);
    pipe_metrics_destroy(met);
    fake_init(&g, &s);
    assert_int_equal(run_worker("crc", "g-crc-m", &s, 1, &stop, 0, &met), CORE_OK);
    assert_true(pipe_metrics_get(met, PIPE_M_MISROUTED_PARTITION) > 100);
    assert_int_equal(pipe_metrics_get(met, PIPE_M_MISROUTED_KEY), 0);
    pipe_metrics_destroy(met);
}

// ---------------------------------------------------------------------------------------------
// Properties: client prefixes and refusals (no cluster needed)

static void test_props_prefixes_and_refusals(void **state) {
    (void)state;
    pipe_props p = {0}, c, pr;
    char err[512];
    const unsigned worker = PIPE_CLIENT_CONSUMER | PIPE_CLIENT_PRODUCER | PIPE_CLIENT_WORKER;
    assert_int_equal(pipe_props_add(&p, "session.timeout.ms", "6000"), CORE_OK); /* C */
    assert_int_equal(pipe_props_add(&p, "acks", "all"), CORE_OK);                /* P */
    assert_int_equal(pipe_props_add(&p, "client.id", "x"), CORE_OK);             /* * */
    assert_int_equal(pipe_props_add(&p, "producer.linger.ms", "20"), CORE_OK);
    assert_int_equal(pipe_props_add(&p, "consumer.client.id", "y"), CORE_OK);
    assert_int_equal(pipe_props_check(&p, worker, "b:9092", err, sizeof err), CORE_OK);
    assert_int_equal(pipe_props_select(&p, PIPE_CLIENT_CONSUMER, &c), CORE_OK);
    assert_int_equal(pipe_props_select(&p, PIPE_CLIENT_PRODUCER, &pr), CORE_OK);
    assert_int_equal(c.n, 3);
    assert_string_equal(pipe_props_get(&c, "session.timeout.ms"), "6000");
    assert_string_equal(pipe_props_get(&c, "client.id"), "y"); /* the later, prefixed one */
    assert_null(pipe_props_get(&c, "acks"));
    assert_null(pipe_props_get(&c, "linger.ms"));
    assert_int_equal(pr.n, 3);
    assert_string_equal(pipe_props_get(&pr, "acks"), "all");
    assert_string_equal(pipe_props_get(&pr, "linger.ms"), "20");
    assert_string_equal(pipe_props_get(&pr, "client.id"), "x");
    assert_null(pipe_props_get(&pr, "session.timeout.ms"));
    pipe_props_free(&c);
    pipe_props_free(&pr);
    pipe_props_free(&p);

    static const struct {
        const char *key, *val;
        unsigned clients;
        const char *says; /* NULL: accepted */
    } cases[] = {
        {"enable.auto.offset.store", "true", worker, "kafka.enable.auto.offset.store: refused"},
        {"consumer.enable.auto.commit", "false", worker,
         "kafka.consumer.enable.auto.commit: refused"},
        {"isolation.level", "read_uncommitted", worker, "must be read_committed"},
        {"isolation.level", "read_committed", worker, NULL},
        {"group.id", "other", worker, "set by --group"},
        {"producer.acks", "1", worker, "must be all"},
        {"enable.auto.commit", "false", PIPE_CLIENT_CONSUMER, NULL}, /* trail record's own */
        {"bootstrap.servers", "other:9092", worker, "differs from --brokers b:9092"},
        {"producer.metadata.broker.list", "other:9092", PIPE_CLIENT_PRODUCER, "differs"},
        {"bootstrap.servers", "b:9092", PIPE_CLIENT_PRODUCER, NULL},
        {"consumer.acks", "all", worker, "librdkafka takes it for producers only"},
        {"consumer.fetch.wait.max.ms", "10", PIPE_CLIENT_PRODUCER, "runs no consumer"},
        {"producer.linger.ms", "10", PIPE_CLIENT_CONSUMER, "runs no producer"},
        {"session.timeout.ms", "6000", PIPE_CLIENT_PRODUCER, "a consumer property"},
        {"partitioner", "consistent_random", PIPE_CLIENT_PRODUCER, "--partitioner"},
        {"consumer.", "x", worker, "no property name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pipe_props q = {0};
        err[0] = 0;
        assert_int_equal(pipe_props_add(&q, cases[i].key, cases[i].val), CORE_OK);
        int rc = pipe_props_check(&q, cases[i].clients, "b:9092", err, sizeof err);
        if (!cases[i].says) {
            assert_int_equal(rc, CORE_OK);
        } else {
            if (rc != CORE_EINVAL || !strstr(err, cases[i].says))
                fail_msg("%s=%s: rc %d, '%s'", cases[i].key, cases[i].val, rc, err);
            assert_non_null(strstr(err, cases[i].key)); /* the error names the property */
        }
        pipe_props_free(&q);
    }
}

/* Consumer properties no longer reach the dead-letter producer, so librdkafka has nothing to warn
 * about (it logged CONFWARN for each at every start). */
static int g_confwarn;
static void catch_confwarn(int level, const char *line, void *opaque) {
    (void)level;
    (void)opaque;
    if (strstr(line, "CONFWARN")) __atomic_store_n(&g_confwarn, 1, __ATOMIC_SEQ_CST);
}

static void test_no_confwarn_at_start(void **state) {
    (void)state;
    static fake_sink f;
    pipe_sink s;
    atomic_int stop = 0;
    fake_init(&f, &s);
    produce_events("warn", 0, 20, 0, NULL, NULL);
    core_log_set(catch_confwarn, NULL);
    int rc = run_worker("warn", "g-warn", &s, 1, &stop, 0, NULL); /* session.timeout.ms & co */
    core_log_set(NULL, NULL);
    assert_int_equal(rc, CORE_OK);
    assert_int_equal(f.applied, 20);
    assert_false(__atomic_load_n(&g_confwarn, __ATOMIC_SEQ_CST));
}

// ---------------------------------------------------------------------------------------------
// Readiness: /readyz on the metrics port, any address

static void test_readyz_unit_and_bind(void **state) {
    (void)state;
    pipe_metrics *m;
    char why[256], resp[8192], err[512], *body;
    int port;
    assert_int_equal(pipe_metrics_new(&m, "t"), CORE_OK);
    pipe_metrics_set_ready_max_lag(m, 10);
    assert_false(pipe_metrics_ready(m, why, sizeof why));
    assert_string_equal(why, "no partitions assigned");
    pipe_metrics_set_partition(m, 0, 1, -1);
    assert_false(pipe_metrics_ready(m, why, sizeof why));
    assert_non_null(strstr(why, "partition 0: lag not known"));
    pipe_metrics_set_partition(m, 0, 1, 10);
    pipe_metrics_set_partition(m, 2, 1, 11);
    assert_false(pipe_metrics_ready(m, why, sizeof why));
    assert_string_equal(why, "partition 2: lag 11 above 10");
    pipe_metrics_set_partition(m, 2, 0, 11); /* revoked: no longer counts */
    assert_true(pipe_metrics_ready(m, why, sizeof why));
    /* 127.0.0.2 is loopback too, yet no "127.0.0.1" or "localhost": refused before */
    assert_int_equal(pipe_metrics_serve(m, "127.0.0.2:0", &port, err, sizeof err), CORE_OK);
    assert_int_equal(pipe_test_http_get("127.0.0.2", port, "/readyz", resp, sizeof resp, &body),
                     200);
    assert_non_null(strstr(body, "\"ready\": true"));
    assert_int_equal(pipe_test_http_get("127.0.0.2", port, "/healthz", resp, sizeof resp, &body),
                     200);
    pipe_metrics_set_partition(m, 0, 1, 50);
    assert_int_equal(pipe_test_http_get("127.0.0.2", port, "/readyz", resp, sizeof resp, &body),
                     503);
    assert_non_null(strstr(body, "\"reason\": \"partition 0: lag 50 above 10\""));
    assert_int_equal(pipe_test_http_get("127.0.0.2", port, "/nope", resp, sizeof resp, &body), 404);
    pipe_metrics_destroy(m);
    /* a name, and errors that name the address */
    assert_int_equal(pipe_metrics_new(&m, "t"), CORE_OK);
    assert_int_equal(pipe_metrics_serve(m, "localhost:0", &port, err, sizeof err), CORE_OK);
    pipe_metrics_destroy(m);
    assert_int_equal(pipe_metrics_new(&m, "t"), CORE_OK);
    assert_int_equal(pipe_metrics_serve(m, "::1:9464", &port, err, sizeof err), CORE_EINVAL);
    assert_non_null(strstr(err, "'::1:9464'"));
    assert_int_equal(pipe_metrics_serve(m, "no-such-host.invalid:0", &port, err, sizeof err),
                     CORE_EINVAL);
    assert_non_null(strstr(err, "no-such-host.invalid:0"));
    pipe_metrics_destroy(m);
}

typedef struct ready_run {
    pipe_sink *s;
    pipe_metrics *met;
    atomic_int stop;
    int rc;
} ready_run;

static void *ready_worker(void *arg) {
    ready_run *r = arg;
    run_opts ro = {PIPE_PARTITIONER_DEFAULT, PIPE_MISROUTED_DLQ, NULL, r->met};
    r->rc = run_worker_opts("ready", "g-ready", r->s, 0, &r->stop, 0, NULL, &ro);
    return NULL;
}

/* A live worker: /readyz says 503 (why) until its partitions are assigned and the statistics
 * after the assignment put every lag within the bound, then 200. */
static void test_readyz_worker(void **state) {
    (void)state;
    static fake_sink f;
    static ready_run r;
    pipe_sink s;
    char resp[8192], err[512], *body;
    int port, status = 0;
    pthread_t th;
    fake_init(&f, &s);
    produce_events("ready", 0, 100, 0, NULL, NULL);
    r.s = &s;
    assert_int_equal(pipe_metrics_new(&r.met, "ready"), CORE_OK);
    assert_int_equal(pipe_metrics_serve(r.met, "127.0.0.1:0", &port, err, sizeof err), CORE_OK);
    assert_int_equal(pipe_test_http_get("127.0.0.1", port, "/readyz", resp, sizeof resp, &body),
                     503);
    assert_non_null(strstr(body, "no partitions assigned"));
    assert_int_equal(pthread_create(&th, NULL, ready_worker, &r), 0);
    int64_t t0 = core_now_ns();
    while (status != 200 && core_now_ns() - t0 < 30000000000ll) {
        status = pipe_test_http_get("127.0.0.1", port, "/readyz", resp, sizeof resp, &body);
        if (status != 200) {
            struct timespec ts = {0, 100000000};
            nanosleep(&ts, NULL);
        };
    }
    r.stop = 1;
    pthread_join(th, NULL);
    assert_int_equal(status, 200);
    assert_int_equal(r.rc, CORE_OK);
    assert_int_equal(f.applied, 100);
    pipe_metrics_destroy(r.met);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partition_of_matches_librdkafka),
        cmocka_unit_test(test_until_end_dead_letters_then_resumes_and_rebuilds),
        cmocka_unit_test(test_stop_drains_and_commits),
        cmocka_unit_test(test_store_failure_stores_no_offsets),
        cmocka_unit_test(test_brokers_down_mid_stream_lose_nothing),
        cmocka_unit_test(test_misrouted_and_tombstones),
        cmocka_unit_test(test_consistent_random_topic),
        cmocka_unit_test(test_props_prefixes_and_refusals),
        cmocka_unit_test(test_no_confwarn_at_start),
        cmocka_unit_test(test_readyz_unit_and_bind),
        cmocka_unit_test(test_readyz_worker),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
