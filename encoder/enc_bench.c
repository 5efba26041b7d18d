/* enc_bench.c: `trail bench encode`: encoder throughput on a synthetic Zipf workload.
 *
 * Workload (issue item 9): E events (5,000,000) over U users (20,000) whose activity is Zipf(1):
 * user rank r gets a share proportional to 1/r, so the heaviest users overflow the window (10,000)
 * and exercise eviction. Items are Zipf(1) over 1,000,000 ids, categories a hash of the item into
 * 10,000, timestamps increasing. Model: a random C=64, S=16, tau=3 model.
 *
 * Two numbers:
 * - kernel_events_per_s: in memory, the signature lookup (cache) plus the bucket update and window
 *   append/evict of enc_ustate_apply, user after user (the order a batch applies them in);
 * - events_per_s: end to end, decoded events through enc_batch_apply and enc_batch_commit into a
 *   fresh LMDB store (fsync per commit unless --no-sync), until the last commit returns.
 * Also json_decode_events_per_s: sch_event_from_json on the first events (the decode step the
 * end-to-end figure starts after).
 */
#include "core_alloc.h"
#include "core_err.h"
#include "core_proc.h"
#include "core_report.h"
#include "core_util.h"
#include "enc_state_int.h"
#include "enc_store.h"
#include "mdl.h"
#include "enc_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

double *enc_zipf_cdf(uint32_t n) {
    double *cdf = core_malloc(n * sizeof *cdf), s = 0;
    if (!cdf) return NULL;
    for (uint32_t r = 0; r < n; r++)
        cdf[r] = (s += 1.0 / (r + 1));
    for (uint32_t r = 0; r < n; r++)
        cdf[r] /= s;
    return cdf;
}

uint32_t enc_zipf_draw(const double *cdf, uint32_t n, core_rng *rng) {
    double u = core_rng_uniform(rng);
    uint32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* CPU seconds of this process: with other work on the machine, wall time overstates the cost. */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t dir_bytes(const char *dir) {
    char p[4200];
    struct stat sb;
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    return stat(p, &sb) == 0 ? (uint64_t)sb.st_blocks * 512 : 0;
}

/* E events of U Zipf users over NITEMS Zipf items, and their order user by user */
typedef struct workload {
    sch_event *ev;
    uint32_t *order, *start; /* order[start[u]..start[u+1]): user u's events in arrival order */
    uint64_t full;           /* users with at least L events */
} workload;

#define NITEMS 1000000u
#define NCATS 10000u

static int make_workload(workload *w, uint64_t E, uint64_t U, uint64_t L, uint64_t seed) {
    uint32_t *uidx = core_malloc(E * sizeof *uidx), *fill = core_malloc(U * sizeof *fill);
    double *ucdf = enc_zipf_cdf((uint32_t)U), *icdf = enc_zipf_cdf(NITEMS);
    w->ev = core_malloc(E * sizeof *w->ev);
    w->order = core_malloc(E * sizeof *w->order);
    w->start = core_calloc(U + 1, sizeof *w->start);
    int rc = 1;
    if (!w->ev || !uidx || !fill || !w->order || !w->start || !ucdf || !icdf) {
        fprintf(stderr, "trail bench encode: out of memory for %llu events\n",
                (unsigned long long)E);
        goto out;
    }
    core_rng rng;
    core_rng_seed(&rng, seed);
    for (uint64_t i = 0; i < E; i++) {
        uint32_t u = enc_zipf_draw(ucdf, (uint32_t)U, &rng), it = enc_zipf_draw(icdf, NITEMS, &rng);
        sch_event *e = &w->ev[i];
        memset(e, 0, sizeof *e);
        /* ids scattered over the id space as real ids are, so LMDB keys do not arrive sorted */
        e->user_id = core_hash_id(u, 11) & SCH_ID_MAX;
        e->item_id = core_hash_id(it, 12) & SCH_ID_MAX;
        e->category_id = core_hash_id(it, 13) % NCATS;
        e->ts = 1700000000 + (int64_t)(i / 10);
        e->action = (uint8_t)(1 + core_rng_below(&rng, 4));
        uidx[i] = u;
        w->start[u + 1]++;
    }
    w->full = 0;
    for (uint64_t u = 0; u < U; u++)
        w->full += w->start[u + 1] >= L;
    for (uint64_t u = 0; u < U; u++)
        w->start[u + 1] += w->start[u];
    /* stable counting sort by user: each user's events in arrival order */
    memcpy(fill, w->start, U * sizeof *fill);
    for (uint64_t i = 0; i < E; i++)
        w->order[fill[uidx[i]]++] = (uint32_t)i;
    rc = 0;
out:
    core_free(uidx);
    core_free(fill);
    core_free(ucdf);
    core_free(icdf);
    return rc;
}

/* the encoding rule alone over the behaviors user after user, as a batch hands them to it (the
 * copy is not timed): wall and CPU seconds, and the signature cache's hit rate */
static int time_kernel(enc_ustate *us, enc_sigcache *cache, const sch_event *ev,
                       const uint32_t *order, const uint32_t *start, uint64_t E, uint64_t U,
                       double *wall_s, double *cpu, double *hit_rate) {
    sch_behavior *bh = core_malloc(E * sizeof *bh);
    if (!bh) return 1;
    for (uint64_t j = 0; j < E; j++) {
        const sch_event *e = &ev[order[j]];
        bh[j] = (sch_behavior){e->item_id, e->category_id, e->ts, e->action};
    }
    int64_t t0 = core_now_ns();
    double c0 = cpu_s();
    for (uint64_t u = 0; u < U; u++) {
        enc_ustate_reset(us);
        if (enc_ustate_apply_many(us, cache, bh + start[u], start[u + 1] - start[u])) abort();
    }
    *wall_s = (double)(core_now_ns() - t0) / 1e9, *cpu = cpu_s() - c0;
    uint64_t hits, misses;
    enc_sigcache_stats(cache, &hits, &misses);
    *hit_rate = (double)hits / (double)(hits + misses ? hits + misses : 1);
    core_free(bh);
    return 0;
}

/* events decoded from JSON per second, on a sample of ev (each encoded first, untimed) */
static int json_decode_rate(const sch_event *ev, uint64_t nj, double *rate) {
    char line[512], why[128];
    sch_event d;
    int64_t t = 0;
    for (uint64_t i = 0; i < nj; i++) {
        int n = sch_event_to_json(&ev[i], line, sizeof line);
        int64_t t0 = core_now_ns();
        int rc = sch_event_from_json(&d, line, (size_t)n, why, sizeof why);
        t += core_now_ns() - t0;
        if (rc || d.user_id != ev[i].user_id) {
            fprintf(stderr, "trail bench encode: JSON round trip failed: %s\n", why);
            return 1;
        }
    }
    *rate = nj / ((double)t / 1e9);
    return 0;
}

/* the end-to-end run: ev through enc_batch_apply and enc_batch_commit (a batch of K) into a
 * fresh store in dir (NULL: a temporary one, removed afterwards) */
typedef struct e2e_result {
    double s, cpu;
    uint64_t commits, users, chunks, store_bytes;
} e2e_result;

static int end_to_end(const mdl_model *m, const sch_event *ev, uint64_t E, uint64_t L, uint64_t K,
                      int durable, const char *dir, e2e_result *res) {
    enc_store_conf conf;
    enc_store *st = NULL;
    enc_batch *b = NULL;
    char err[1024], tmpl[4096];
    int rc = CORE_OK, ret = 1;
    if (!dir && core_tmpdir_make(tmpl, sizeof tmpl, "trail-bench")) {
        fprintf(stderr, "trail bench encode: mkdtemp %s failed\n", tmpl);
        return 1;
    }
    enc_store_conf_default(&conf);
    conf.path = dir ? dir : tmpl;
    conf.window = (uint32_t)L;
    conf.recent = L < 64 ? (uint32_t)L : 64;
    conf.durable = durable;
    conf.map_size = (size_t)4 << 30;
    if (enc_store_open(&st, &conf, err, sizeof err) ||
        enc_store_bind_model(st, m, err, sizeof err)) {
        fprintf(stderr, "trail bench encode: %s\n", err);
        goto out;
    }
    int64_t t0 = core_now_ns();
    double c0 = cpu_s();
    for (uint64_t i = 0; i < E && !rc; i++) {
        if (!b && (rc = enc_batch_begin(st, &b))) break;
        if ((rc = enc_batch_apply(b, &ev[i]))) break;
        if (enc_batch_size(b) >= K || i + 1 == E) {
            rc = enc_batch_commit(b);
            b = NULL;
            res->commits++;
        }
    }
    res->s = (double)(core_now_ns() - t0) / 1e9, res->cpu = cpu_s() - c0;
    if (rc || (rc = enc_store_users(st, &res->users, &res->chunks))) {
        fprintf(stderr, "trail bench encode: store: %s\n", core_strerror(rc));
        goto out;
    }
    res->store_bytes = dir_bytes(conf.path);
    ret = 0;
out:
    if (b) enc_batch_abort(b);
    enc_store_close(st);
    if (!dir) core_rmtree(tmpl);
    return ret;
}

const core_cmd enc_bench_cmd = {"bench encode", "encoder throughput (kernel and end to end), JSON",
                                enc_cmd_bench_encode, NULL, NULL};

int enc_cmd_bench_encode(int argc, char **argv) {
    uint64_t E = 5000000, U = 20000, L = 10000, K = 1000000, seed = 1;
    const char *dir = NULL;
    int json = 0, no_sync = 0, kernel_only = 0;
    const core_opt opts[] = {
        CORE_OPT_JSON(&json),
        CORE_OPT_U64("events", &E, "E", 1, 100000000, "events"),
        CORE_OPT_U64("users", &U, "U", 1, 10000000, "users (Zipf)"),
        CORE_OPT_U64("window", &L, "L", 1, 1000000, "behaviors kept per user"),
        CORE_OPT_U64("batch", &K, "K", 1, 100000000, "events per commit"),
        {CORE_OPT_ROW("store", CORE_OPT_PATH, &dir, "DIR", "the store"),
         .def = "a fresh one in $TMPDIR, removed afterwards"},
        CORE_OPT_FLG("no-sync", &no_sync, "do not fsync each commit"),
        CORE_OPT_U64("seed", &seed, "X", 0, UINT64_MAX, "workload and model seed"),
        CORE_OPT_FLG("kernel-only", &kernel_only, "time the encoding rule alone, no store (JSON)"),
        CORE_OPT_ENDROW};
    int ret = core_opts_parse(&enc_bench_cmd, opts, argc, argv), durable = !no_sync;
    if (ret != CORE_OPTS_GO) return ret;
    mdl_config cfg;
    mdl_model *m = NULL;
    workload w = {0};
    enc_sigcache *cache = NULL;
    enc_ustate *us = NULL;
    char err[1024];
    ret = 1;
    mdl_config_default(&cfg);
    cfg.C = 64;
    cfg.S = 16;
    cfg.tau = 3;
    cfg.seed = seed;
    if (mdl_model_init(&m, &cfg, err, sizeof err)) {
        fprintf(stderr, "trail bench encode: %s\n", err);
        return 1;
    }
    // ---- workload, JSON decode (a sample), kernel
    uint64_t nj = E < 200000 ? E : 200000;
    double json_rate, kernel_s, kernel_cpu, hit_rate;
    if (make_workload(&w, E, U, L, seed) || json_decode_rate(w.ev, nj, &json_rate) ||
        enc_sigcache_new(&cache, m, 1u << 18) || enc_ustate_new(&us, m, (uint32_t)L) ||
        time_kernel(us, cache, w.ev, w.order, w.start, E, U, &kernel_s, &kernel_cpu, &hit_rate))
        goto out;
    e2e_result e = {0};
    if (!kernel_only && end_to_end(m, w.ev, E, L, K, durable, dir, &e)) goto out;
    core_report r;
    core_report_begin(&r, stdout, json || kernel_only ? CORE_REPORT_JSON_TIGHT : CORE_REPORT_TEXT,
                      "bench encode");
    core_report_str(&r, "bench", "encode");
    core_report_u64(&r, "events", E);
    core_report_u64(&r, "users", U);
    core_report_u64(&r, "window", L);
    if (kernel_only) {
        core_report_num(&r, "kernel_events_per_s", "%.0f", E / kernel_s);
        core_report_num(&r, "kernel_s", "%.3f", kernel_s);
        core_report_num(&r, "kernel_cpu_events_per_s", "%.0f", E / kernel_cpu);
        core_report_num(&r, "sigcache_hit_rate", "%.4f", hit_rate);
        core_report_end(&r);
        ret = 0;
        goto out;
    }
    core_report_u64(&r, "dim", cfg.C);
    core_report_u64(&r, "signatures", cfg.S);
    core_report_u64(&r, "bits", cfg.tau);
    core_report_num(&r, "events_per_s", "%.0f", E / e.s);
    core_report_num(&r, "kernel_events_per_s", "%.0f", E / kernel_s);
    core_report_num(&r, "json_decode_events_per_s", "%.0f", json_rate);
    core_report_num(&r, "end_to_end_s", "%.3f", e.s);
    core_report_num(&r, "kernel_s", "%.3f", kernel_s);
    core_report_u64(&r, "batch", K);
    core_report_u64(&r, "commits", e.commits);
    core_report_bool(&r, "durable", durable);
    core_report_u64(&r, "users_stored", e.users);
    core_report_u64(&r, "chunks_stored", e.chunks);
    core_report_u64(&r, "users_window_full", w.full);
    core_report_num(&r, "store_mb", "%.1f", (double)e.store_bytes / 1048576.0);
    /* pages in use, all DBs */
    core_report_num(&r, "store_bytes_per_user", "%.0f",
                    e.users ? (double)e.store_bytes / (double)e.users : 0);
    core_report_num(&r, "user_zipf_s", "%.1f", 1.0);
    core_report_u64(&r, "items", NITEMS);
    core_report_num(&r, "item_zipf_s", "%.1f", 1.0);
    core_report_u64(&r, "seed", seed);
    core_report_num(&r, "kernel_cpu_events_per_s", "%.0f", E / kernel_cpu);
    core_report_num(&r, "cpu_events_per_s", "%.0f", E / e.cpu);
    core_report_num(&r, "load_avg_1m", "%.2f", core_proc_load1());
    core_report_num(&r, "sigcache_hit_rate", "%.4f", hit_rate);
    core_report_end(&r);
    ret = 0;
out:
    enc_ustate_destroy(us);
    enc_sigcache_destroy(cache);
    core_free(w.ev);
    core_free(w.order);
    core_free(w.start);
    mdl_model_destroy(m);
    return ret;
}
