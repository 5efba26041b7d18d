/* pipe_bench.c: `trail bench pipeline --json`: events per second from a topic on the local broker
 * to committed LMDB state, and freshness percentiles at a fixed offered rate.
 *
 * Everything runs in this process on loopback: librdkafka's mock cluster, a producer, and the
 * encoder worker loop writing a fresh store in a temporary directory (durable commits, the
 * default; the store's default window, 10,000). Users are Zipf(1) over --users ids (rank r gets a
 * share proportional to 1/r), items uniform. Phase 1 pre-loads N events and times the worker from
 * its first batch until every behavior is in every tier of the state (group join time excluded).
 * Phase 2 starts the worker, waits for its assignment, offers R events/s for S seconds stamped with
 * the send time, and reports freshness: for each behavior, the time from the worker receiving it
 * (and from its producer stamping it) until a reader sees it in its user's recent sequence (and,
 * separately, in its bucket sums). bytes_written_per_event is what the process handed to write(2)
 * (/proc/self/io wchar: LMDB's page writes) during phase 2, over its events. The mock broker
 * returns one message set per partition per fetch and keeps data in memory: it is not a throughput
 * reference, and the output says so.
 */
#include "core_alloc.h"
#include "core_err.h"
#include "core_log.h"
#include "core_report.h"
#include "core_util.h"
#include "enc_cli.h"
#include "enc_store.h"
#include "mdl.h"
#include "pipe_kafka.h"
#include "pipe_metrics.h"
#include "pipe_store.h"
#include "pipe_worker.h"
#include "pipe_cli.h"

#include <stdatomic.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The store sink, timed from its first begin to its last commit (phase 1). ss comes first: the
 * store sink's own calls, given this struct as their context, find theirs at its address. */
typedef struct timed_sink {
    pipe_store_sink ss;
    pipe_sink inner;
    int64_t t_first_ns, t_last_ns;
} timed_sink;

static int t_begin(void *ctx) {
    timed_sink *t = ctx;
    if (!t->t_first_ns) t->t_first_ns = core_now_ns();
    return t->inner.begin(t->inner.ctx);
}
static int t_commit(void *ctx) {
    timed_sink *t = ctx;
    int rc = t->inner.commit(t->inner.ctx);
    t->t_last_ns = core_now_ns();
    return rc;
}
static int t_catch_up(void *ctx, int64_t budget_ns, void (*done)(void *, uint64_t), void *arg,
                      uint64_t *left) {
    timed_sink *t = ctx;
    int rc = t->inner.catch_up(t->inner.ctx, budget_ns, done, arg, left);
    t->t_last_ns = core_now_ns();
    return rc;
}

/* Freshness samples (ms) of phase 2, per tier: from receive, and from produce. */
typedef struct fresh_samples {
    double *v[2][2]; // [tier][0 receive, 1 produce] (cap)
    size_t n[2][2], cap;
    atomic_uint_fast64_t done; /* behaviors visible in the buckets tier (the last one) */
} fresh_samples;

static void on_visible(void *arg, int tier, double from_recv_ms, double from_prod_ms) {
    fresh_samples *f = arg;
    double x[2] = {from_recv_ms, from_prod_ms};
    for (int k = 0; k < 2; k++)
        if (x[k] >= 0 && f->n[tier][k] < f->cap) f->v[tier][k][f->n[tier][k]++] = x[k];
    if (tier == PIPE_TIER_BUCKETS) atomic_fetch_add(&f->done, 1);
}

/* Bytes this process handed to write(2) and friends so far (/proc/self/io wchar); -1 unknown. */
static int64_t bytes_written(void) {
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    long long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "wchar: %lld", &v) == 1) break;
    if (f) fclose(f);
    return v;
}

/* bench pipeline's options, and what it measured: phase 1's throughput, phase 2's freshness
 * (samples sorted) */
typedef struct bench_run {
    uint64_t n, rate, secs, parts, batch, users, tiers, batch_ms;
    uint64_t applied; /* phase 1's events */
    double load_s;
    int64_t load_bytes, live_bytes; /* written during each phase (-1 unknown) */
    uint64_t live_events;
    fresh_samples f;
} bench_run;

/* One phase's worker: on the topic bench-load (phase 1: until_end, drain it) or bench-live, into
 * its own store (DIR/load or DIR/live) through the timed sink. */
typedef struct bench {
    pipe_worker_conf wc;
    pipe_props props;
    enc_store *st;
    timed_sink ts;
    pipe_sink sink;
    pipe_metrics *met;
    atomic_int stop;
    int rc;
    char err[512];
} bench;

/* phase 1 (until_end) or 2's worker and store; fresh: phase 2's samples. @return 0, or 1 with the
 * reason in err */
static int bench_init(bench *b, const char *dir, const mdl_model *m, const char *brokers,
                      const bench_run *run, int until_end, fresh_samples *fresh, char *err,
                      size_t err_size) {
    char path[4200];
    enc_store_conf sc;
    enc_store_conf_default(&sc);
    snprintf(path, sizeof path, "%s/%s", dir, until_end ? "load" : "live");
    sc.path = path;
    sc.defer_sums = run->tiers == 2;
    if (enc_store_open(&b->st, &sc, err, err_size) || enc_store_bind_model(b->st, m, err, err_size))
        return 1;
    pipe_store_sink_init(&b->ts.ss, b->st, run->tiers == 2, &b->ts.inner);
    b->sink = b->ts.inner;
    b->sink.ctx = &b->ts;
    b->sink.begin = t_begin;
    b->sink.commit = t_commit;
    b->sink.catch_up = run->tiers == 2 ? t_catch_up : NULL;
    pipe_worker_conf_default(&b->wc);
    b->wc.brokers = brokers;
    b->wc.topic = b->wc.group = until_end ? "bench-load" : "bench-live";
    b->wc.props = &b->props;
    b->wc.until_end = until_end;
    b->wc.stop = &b->stop;
    b->wc.batch_max = (uint32_t)run->batch;
    if (run->batch_ms) b->wc.batch_ms = (uint32_t)run->batch_ms;
    b->wc.on_visible = fresh ? on_visible : NULL;
    b->wc.visible_arg = fresh;
    snprintf(err, err_size, "out of memory");
    return pipe_props_add(&b->props, "session.timeout.ms", "6000") ||
           pipe_props_add(&b->props, "heartbeat.interval.ms", "500") ||
           (!until_end && pipe_props_add(&b->props, "fetch.wait.max.ms", "10")) ||
           pipe_metrics_new(&b->met, b->wc.topic);
}

static void bench_free(bench *b) {
    pipe_metrics_destroy(b->met);
    pipe_props_free(&b->props);
    enc_store_close(b->st);
}

static void *worker_main(void *arg) {
    bench *b = arg;
    b->rc = pipe_worker_run(&b->wc, &b->sink, b->met, b->err, sizeof b->err);
    return NULL;
}

typedef struct workload {
    const double *cdf; // (users) Zipf(1) over user ranks
    uint32_t users;
    core_rng r;
    int64_t ts;
} workload;

static void sleep_ns(int64_t ns) {
    struct timespec sl = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    nanosleep(&sl, NULL);
}

static int send_events(pipe_producer *p, const char *topic, uint64_t n, double rate, workload *wl) {
    char buf[300], key[24];
    int64_t t0 = core_now_ns();
    core_rng *r = &wl->r;
    for (uint64_t i = 0; i < n; i++) {
        sch_event ev = {.user_id = 1 + enc_zipf_draw(wl->cdf, wl->users, r),
                        .item_id = 1 + core_rng_below(r, 50000),
                        .action = SCH_ACTION_CLICK,
                        .ts = wl->ts++ / 16};
        ev.category_id = 1 + ev.item_id % 3000;
        int len = sch_event_to_json(&ev, buf, sizeof buf);
        int kl = snprintf(key, sizeof key, "%" PRIu64, ev.user_id);
        if (pipe_producer_send(p, topic, -1, key, (size_t)kl, buf, (size_t)len, NULL, 0, 0, NULL))
            return CORE_EKAFKA;
        if (rate > 0) {
            int64_t due = t0 + (int64_t)((double)(i + 1) * 1e9 / rate), now = core_now_ns();
            if (due > now) sleep_ns(due - now);
            pipe_producer_poll(p, 0);
        }
    }
    return pipe_producer_flush(p, 60000, NULL);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double per_event(int64_t bytes, uint64_t events) {
    return bytes >= 0 && events ? (double)bytes / (double)events : -1;
}

/* the q quantile (1: the max) of tier t's samples from receive (k 0) or produce (k 1); -1: none */
static double fresh_q(const fresh_samples *f, int t, int k, double q) {
    size_t n = f->n[t][k], i = (size_t)(q * (double)(n ? n - 1 : 0) + 0.5);
    return n ? f->v[t][k][i < n ? i : n - 1] : -1;
}

static void bench_print(const bench_run *r, const mdl_config *c, int json) {
    core_report o;
    core_report_begin(&o, stdout, json ? CORE_REPORT_JSON_TIGHT : CORE_REPORT_TEXT,
                      "bench pipeline");
    core_report_str(&o, "bench", "pipeline");
    core_report_u64(&o, "events", r->applied);
    core_report_u64(&o, "partitions", r->parts);
    core_report_u64(&o, "batch_max", r->batch);
    core_report_u64(&o, "batch_ms", r->batch_ms);
    core_report_u64(&o, "tiers", r->tiers);
    core_report_u64(&o, "users", r->users);
    core_report_str(&o, "user_distribution", "zipf1");
    core_report_bool(&o, "durable_commits", 1);
    core_report_num(&o, "events_per_s", "%.0f", r->load_s > 0 ? r->applied / r->load_s : 0);
    core_report_num(&o, "load_seconds", "%.3f", r->load_s);
    core_report_num(&o, "load_bytes_written_per_event", "%.1f",
                    per_event(r->load_bytes, r->applied));
    core_report_u64(&o, "offered_rate", r->rate);
    core_report_u64(&o, "freshness_events", r->f.n[0][0]);
    const fresh_samples *f = &r->f;
    core_report_num(&o, "freshness_recent_p50_ms", "%.2f", fresh_q(f, 0, 0, 0.50));
    core_report_num(&o, "freshness_recent_p99_ms", "%.2f", fresh_q(f, 0, 0, 0.99));
    core_report_num(&o, "freshness_recent_max_ms", "%.2f", fresh_q(f, 0, 0, 1));
    core_report_num(&o, "freshness_buckets_p50_ms", "%.2f", fresh_q(f, 1, 0, 0.50));
    core_report_num(&o, "freshness_buckets_p99_ms", "%.2f", fresh_q(f, 1, 0, 0.99));
    core_report_num(&o, "freshness_buckets_max_ms", "%.2f", fresh_q(f, 1, 0, 1));
    core_report_num(&o, "freshness_recent_from_produce_p50_ms", "%.2f", fresh_q(f, 0, 1, 0.50));
    core_report_num(&o, "freshness_recent_from_produce_p99_ms", "%.2f", fresh_q(f, 0, 1, 0.99));
    core_report_num(&o, "freshness_buckets_from_produce_p50_ms", "%.2f", fresh_q(f, 1, 1, 0.50));
    core_report_num(&o, "freshness_buckets_from_produce_p99_ms", "%.2f", fresh_q(f, 1, 1, 0.99));
    core_report_num(&o, "bytes_written_per_event", "%.1f",
                    per_event(r->live_bytes, r->live_events));
    core_report_u64(&o, "model_C", c->C);
    core_report_u64(&o, "model_S", c->S);
    core_report_u64(&o, "model_tau", c->tau);
    core_report_strf(&o, "broker", "librdkafka %s mock cluster, in process, loopback",
                     pipe_kafka_version());
    core_report_str(&o, "note",
                    "freshness: worker receive (from_produce: producer timestamp) to visible to a "
                    "reader; the local mock broker is not a throughput reference (in-memory, one "
                    "message set per partition per fetch); events_per_s excludes group join");
    core_report_end(&o);
}

/* Phase 2: a worker thread on b (set up), events offered at run->rate once it has joined its
 * group; the freshness samples, sorted, into run->f (b's). @return 0, or 1 with the reason in
 * err. */
static int phase_live(bench *b, pipe_producer *p, uint64_t n2, workload *wl, bench_run *run,
                      char *err, size_t err_size) {
    pthread_t th;
    if (pthread_create(&th, NULL, worker_main, b)) return snprintf(err, err_size, "no thread"), 1;
    int64_t t_wait = core_now_ns();
    while (!pipe_metrics_get(b->met, PIPE_M_REBALANCES) && core_now_ns() - t_wait < 30000000000ll)
        sleep_ns(20000000);
    sleep_ns(1000000000); /* settle */
    int64_t w0 = bytes_written();
    int src = send_events(p, "bench-live", n2, (double)run->rate, wl);
    t_wait = core_now_ns();
    /* every behavior visible in every tier (the last tier's samples arrive last) */
    while (atomic_load(&run->f.done) < n2 && core_now_ns() - t_wait < 60000000000ll)
        sleep_ns(20000000);
    b->stop = 1;
    pthread_join(th, NULL);
    int64_t w1 = bytes_written();
    run->live_bytes = w0 >= 0 && w1 >= w0 ? w1 - w0 : -1;
    run->live_events = pipe_metrics_get(b->met, PIPE_M_APPLIED);
    if (src || b->rc) {
        snprintf(err, err_size, "phase 2: %.400s", b->rc ? b->err : "producing failed");
        return 1;
    }
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 2; k++)
            qsort(run->f.v[t][k], run->f.n[t][k], sizeof(double), cmp_double);
    return 0;
}

const core_cmd pipe_bench_cmd = {
    "bench pipeline", "local broker -> worker -> LMDB throughput and freshness", pipe_cmd_bench,
    "Local mock broker -> encoder worker -> committed LMDB state, in process: phase 1 drains a\n"
    "pre-loaded topic (throughput), phase 2 offers --rate events/s for --seconds (freshness).\n",
    NULL};

int pipe_cmd_bench(int argc, char **argv) {
    bench_run run = {.n = 100000,
                     .rate = 2000,
                     .secs = 10,
                     .parts = 4,
                     .batch = 10000,
                     .users = 2000,
                     .tiers = 2,
                     .live_bytes = -1};
    const char *model = NULL;
    int json = 0, rc = 1;
    char err[512], dir[4096];
    const core_opt opts[] = {
        CORE_OPT_JSON(&json),
        CORE_OPT_U64("events", &run.n, "N", 1000, 90000000, "phase 1's pre-loaded events"),
        CORE_OPT_U64("rate", &run.rate, "R", 1, 1000000, "phase 2's offered events per second"),
        CORE_OPT_U64("seconds", &run.secs, "S", 1, 3600, "phase 2's length"),
        CORE_OPT_U64("partitions", &run.parts, "P", 1, 64, "the topics' partitions"),
        CORE_OPT_U64("batch", &run.batch, "N", 1, 1000000, "events per LMDB transaction"),
        CORE_OPT_U64("users", &run.users, "U", 1, 10000000, "user ids, drawn Zipf(1)"),
        {CORE_OPT_ROW("batch-ms", CORE_OPT_U64, &run.batch_ms, "MS", "longest a batch stays open"),
         .umin = 1, .umax = 60000, .def = "the worker's, 15"},
        CORE_OPT_U64("tiers", &run.tiers, "T", 1, 2,
                     "2: bucket sums caught up between batches (the worker's way); 1: every\n"
                     "commit writes them (the design before two tiers, for comparison)"),
        {CORE_OPT_ROW("model", CORE_OPT_PATH, &model, "M", "the model the worker encodes with"),
         .def = "a fresh default model"},
        CORE_OPT_LOG_LEVEL,
        CORE_OPT_ENDROW};
    if ((rc = core_opts_parse(&pipe_bench_cmd, opts, argc, argv)) != CORE_OPTS_GO) return rc;
    rc = 1;
    core_log_level = CORE_LOG_ERR;
    mdl_model *m = NULL;
    pipe_mock *mk = NULL;
    pipe_producer *p = NULL;
    bench b1 = {0}, b2 = {0};
    workload wl = {.users = (uint32_t)run.users, .ts = 1511544070ll * 16};
    mdl_config cfg;
    mdl_config_default(&cfg);
    if (core_tmpdir_make(dir, sizeof dir, "trail-bench")) {
        fprintf(stderr, "trail: bench pipeline: mkdtemp %s failed\n", dir);
        return 1;
    }
    if ((model ? mdl_model_load(&m, model, err, sizeof err)
               : mdl_model_init(&m, &cfg, err, sizeof err)) ||
        pipe_mock_new(&mk, 1, 0, "bench-load,bench-live", (int)run.parts, err, sizeof err) ||
        pipe_producer_new(&p, pipe_mock_bootstraps(mk), NULL, err, sizeof err))
        goto fail;
    snprintf(err, sizeof err, "out of memory");
    if (!(wl.cdf = enc_zipf_cdf((uint32_t)run.users))) goto fail;
    core_rng_seed(&wl.r, 42);

    /* Phase 1: throughput over a pre-loaded topic. */
    int64_t w0 = bytes_written();
    if (send_events(p, "bench-load", run.n, 0, &wl)) {
        snprintf(err, sizeof err, "pre-loading the topic failed");
        goto fail;
    }
    if (bench_init(&b1, dir, m, pipe_mock_bootstraps(mk), &run, 1, NULL, err, sizeof err))
        goto fail;
    worker_main(&b1);
    if (b1.rc) {
        snprintf(err, sizeof err, "phase 1 worker: %.400s", b1.err);
        goto fail;
    }
    run.load_s = (double)(b1.ts.t_last_ns - b1.ts.t_first_ns) / 1e9;
    run.applied = pipe_metrics_get(b1.met, PIPE_M_APPLIED);
    int64_t w1 = bytes_written();
    run.load_bytes = w0 >= 0 && w1 >= w0 ? w1 - w0 : -1;

    /* Phase 2: freshness at a fixed offered rate. */
    if (bench_init(&b2, dir, m, b1.wc.brokers, &run, 0, &run.f, err, sizeof err)) goto fail;
    uint64_t n2 = run.rate * run.secs;
    run.batch_ms = b2.wc.batch_ms; /* the worker's default when not given */
    run.f.cap = n2;
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 2; k++)
            if (!(run.f.v[t][k] = core_malloc(n2 * sizeof(double)))) goto fail; /* err: memory */
    if (phase_live(&b2, p, n2, &wl, &run, err, sizeof err)) goto fail;
    bench_print(&run, &m->cfg, json);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "trail: bench pipeline: %s\n", err);
out:
    bench_free(&b1);
    bench_free(&b2);
    pipe_producer_destroy(p);
    pipe_mock_destroy(mk);
    mdl_model_destroy(m);
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 2; k++)
            core_free(run.f.v[t][k]);
    core_free((void *)(uintptr_t)wl.cdf);
    if (core_rmtree(dir)) fprintf(stderr, "trail: bench pipeline: could not remove %s\n", dir);
    return rc;
}
