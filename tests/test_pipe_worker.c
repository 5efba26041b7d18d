/* test_pipe_worker.c: the consume loop against librdkafka's mock cluster (in process, loopback),
 * with an in-memory sink whose per-user fingerprint depends on the order of events, so a lost,
 * duplicated or reordered event changes it. Covers: the partitioner matches librdkafka's, batches
 * carry their offsets, malformed messages reach the dead-letter topic with their headers, a second
 * run resumes at the stored offsets, an empty sink rebuilds from the beginning, a stop drains and
 * commits, a store failure stores no offsets, and brokers going down mid-stream lose nothing.
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

#include <inttypes.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#define NUSERS 40

static int g_went_down; /* set when the fake sink took the brokers down */

// ---------------------------------------------------------------------------------------------
// A fake sink: per-user order-sensitive fingerprint and count, offsets by source, staged batches

typedef struct fake_sink {
    uint64_t fp[NUSERS], cnt[NUSERS];         /* committed */
    uint64_t sfp[NUSERS], scnt[NUSERS];       /* staged in the open batch */
    char src[16][64];
    int64_t off[16], soff[16];
    int nsrc, open;
    int fail_commit;      /* commit returns CORE_ESTORE */
    uint64_t applied;     /* committed applies */
    uint64_t stop_after;  /* set *stop once this many applies were staged (0: never) */
    uint64_t staged_total;
    volatile int *stop;
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
    for (int u = 0; u < NUSERS; u++) n += f->scnt[u] - f->cnt[u];
    f->applied += n;
    memcpy(f->fp, f->sfp, sizeof f->fp);
    memcpy(f->cnt, f->scnt, sizeof f->cnt);
    memcpy(f->off, f->soff, sizeof f->off);
    return CORE_OK;
}
static void f_abort(void *ctx) { ((fake_sink *)ctx)->open = 0; }
static int f_get_offset(void *ctx, const char *s, int64_t *next) {
    fake_sink *f = ctx;
    int i = find_src(f, s);
    if (i < 0 || f->off[i] < 0) return CORE_ENOTFOUND;
    *next = f->off[i];
    return CORE_OK;
}
static void fake_init(fake_sink *f, pipe_sink *s) {
    memset(f, 0, sizeof(*f));
    *s = (pipe_sink){f, f_begin, f_apply, f_set_offset, f_commit, f_abort, f_get_offset};
}

// ---------------------------------------------------------------------------------------------
// Fixture: one mock cluster for the file

static pipe_mock *g_mock;
static const char *g_brokers;

static int setup(void **state) {
    (void)state;
    char err[512];
    core_log_level = CORE_LOG_WARNING;
    if (pipe_mock_new(&g_mock, 1, 0, "parts,w,drain,fail,down", 4, err, sizeof err)) {
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
    sch_event ev = {.user_id = (uint64_t)(i % NUSERS), .item_id = 1000 + (uint64_t)i * 7,
                    .category_id = 10 + (uint64_t)(i % 13), .ts = 1511544070 + i,
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
        assert_int_equal(pipe_producer_send(p, topic, -1, key, (size_t)k, buf, (size_t)n, NULL, 0,
                                            0, NULL),
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
            assert_int_equal(pipe_producer_send(p, topic, -1, key, (size_t)k, b, strlen(b), NULL,
                                                0, 0, NULL),
                             CORE_OK);
        }
    }
    assert_int_equal(pipe_producer_flush(p, 10000, NULL), CORE_OK);
    uint64_t d, f;
    pipe_producer_counts(p, &d, &f);
    assert_int_equal(f, 0);
    pipe_producer_destroy(p);
}

static int run_worker(const char *topic, const char *group, pipe_sink *s, int until_end,
                      volatile int *stop, uint32_t batch_max, pipe_metrics **met_out) {
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
    if (batch_max) wc.batch_max = batch_max;
    assert_int_equal(pipe_metrics_new(&met, topic), CORE_OK);
    int rc = pipe_worker_run(&wc, s, met, err, sizeof err);
    if (rc) fprintf(stderr, "worker: %s\n", err);
    pipe_props_free(&props);
    if (met_out) *met_out = met;
    else pipe_metrics_destroy(met);
    return rc;
}

static int64_t sum_offsets(const fake_sink *f) {
    int64_t s = 0;
    for (int i = 0; i < f->nsrc; i++) s += f->off[i];
    return s;
}

// ---------------------------------------------------------------------------------------------
// Tests

static void test_partition_of_matches_librdkafka(void **state) {
    (void)state;
    pipe_producer *p;
    pipe_consumer *c;
    char err[512], key[24];
    assert_int_equal(pipe_producer_new(&p, g_brokers, NULL, err, sizeof err), CORE_OK);
    for (int u = 0; u < 200; u++) {
        int k = snprintf(key, sizeof key, "%d", u * 7919);
        assert_int_equal(pipe_producer_send(p, "parts", -1, key, (size_t)k, "x", 1, NULL, 0, 0, NULL),
                         CORE_OK);
    }
    assert_int_equal(pipe_producer_flush(p, 10000, NULL), CORE_OK);
    pipe_producer_destroy(p);
    assert_int_equal(pipe_consumer_new(&c, g_brokers, NULL, "parts", NULL, NULL, err, sizeof err),
                     CORE_OK);
    int np = 0;
    assert_int_equal(pipe_consumer_partition_count(c, "parts", 5000, &np), CORE_OK);
    assert_int_equal(np, 4);
    int32_t parts[4] = {0, 1, 2, 3};
    int64_t offs[4] = {PIPE_OFFSET_BEGINNING, PIPE_OFFSET_BEGINNING, PIPE_OFFSET_BEGINNING,
                       PIPE_OFFSET_BEGINNING};
    assert_int_equal(pipe_consumer_assign(c, "parts", parts, offs, 4), CORE_OK);
    int seen = 0, per[4] = {0};
    int64_t t0 = core_now_ns();
    while (seen < 200 && core_now_ns() - t0 < 20000000000ll) {
        pipe_msg m;
        if (!pipe_consumer_poll(c, 200, &m) || m.err) continue;
        assert_int_equal(m.partition, pipe_partition_of(m.key, m.key_len, 4));
        per[m.partition]++;
        seen++;
    }
    assert_int_equal(seen, 200);
    for (int i = 0; i < 4; i++) assert_true(per[i] > 20); /* keys spread over the partitions */
    pipe_consumer_close(c);
}

static void test_until_end_dead_letters_then_resumes_and_rebuilds(void **state) {
    (void)state;
    static fake_sink f, g;
    pipe_sink s, sg;
    uint64_t fp[NUSERS] = {0}, cnt[NUSERS] = {0};
    volatile int stop = 0;
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
    volatile int stop = 0;
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
    volatile int stop = 0;
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
    while (!__atomic_load_n(&g_went_down, __ATOMIC_SEQ_CST)) nanosleep(&tick, NULL);
    nanosleep(&ts, NULL); /* down for 3 s, mid-stream */
    pipe_mock_set_down(g_mock, 0);
    return NULL;
}

static void test_brokers_down_mid_stream_lose_nothing(void **state) {
    (void)state;
    static fake_sink f;
    pipe_sink s;
    uint64_t fp[NUSERS] = {0}, cnt[NUSERS] = {0};
    volatile int stop = 0;
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partition_of_matches_librdkafka),
        cmocka_unit_test(test_until_end_dead_letters_then_resumes_and_rebuilds),
        cmocka_unit_test(test_stop_drains_and_commits),
        cmocka_unit_test(test_store_failure_stores_no_offsets),
        cmocka_unit_test(test_brokers_down_mid_stream_lose_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
