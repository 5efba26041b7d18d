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
#include "core_args.h"
#include "core_err.h"
#include "core_util.h"
#include "enc_state_int.h"
#include "enc_store.h"
#include "mdl.h"
#include "enc_cli.h"

#include <dirent.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Cumulative Zipf(1) distribution over n ranks. cdf: (n) */
static double *zipf_cdf(uint32_t n) {
    double *cdf = core_malloc(n * sizeof *cdf), s = 0;
    if (!cdf) return NULL;
    for (uint32_t r = 0; r < n; r++) cdf[r] = (s += 1.0 / (r + 1));
    for (uint32_t r = 0; r < n; r++) cdf[r] /= s;
    return cdf;
}

static uint32_t zipf_draw(const double *cdf, uint32_t n, core_rng *rng) {
    double u = core_rng_uniform(rng);
    uint32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (cdf[mid] < u) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* CPU seconds of this process: with other work on the machine, wall time overstates the cost. */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The 1-minute load average (other work on the machine makes the wall-clock rates noisy). */
static double load1(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

static uint64_t dir_bytes(const char *dir) {
    char p[4200];
    struct stat sb;
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    return stat(p, &sb) == 0 ? (uint64_t)sb.st_blocks * 512 : 0;
}

static void rm_store(const char *dir) {
    char p[4200];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", dir);
    unlink(p);
    rmdir(dir);
}

static void usage_bench(FILE *f) {
    fprintf(f, "usage: trail bench encode [--json] [--events E] [--users U] [--window L] [--batch K]\n"
               "                          [--store DIR] [--no-sync] [--seed X] [--kernel-only]\n"
               "  defaults: 5000000 events, 20000 users (Zipf), window 10000, batch 1000000,\n"
               "  a fresh store in $TMPDIR removed afterwards, fsync per commit\n");
}

int enc_cmd_bench_encode(int argc, char **argv) {
    static const struct option opts[] = {
        {"json", 0, 0, 'j'},  {"events", 1, 0, 'e'}, {"users", 1, 0, 'u'},   {"window", 1, 0, 'w'},
        {"batch", 1, 0, 'b'}, {"store", 1, 0, 's'},  {"no-sync", 0, 0, 'n'}, {"seed", 1, 0, 'S'},
        {"kernel-only", 0, 0, 'k'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    uint64_t E = 5000000, U = 20000, L = 10000, K = 1000000, seed = 1, v;
    const char *dir = NULL;
    int c, json = 0, durable = 1, kernel_only = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'e': if (core_parse_u64(optarg, 1, 100000000, "--events", &E)) return 2; break;
        case 'u': if (core_parse_u64(optarg, 1, 10000000, "--users", &U)) return 2; break;
        case 'w': if (core_parse_u64(optarg, 1, 1000000, "--window", &L)) return 2; break;
        case 'b': if (core_parse_u64(optarg, 1, 100000000, "--batch", &K)) return 2; break;
        case 'S': if (core_parse_u64(optarg, 0, UINT64_MAX, "--seed", &seed)) return 2; break;
        case 's': dir = optarg; break;
        case 'n': durable = 0; break;
        case 'k': kernel_only = 1; break;
        case 'h': usage_bench(stdout); return 0;
        default: usage_bench(stderr); return 2;
        }
    }
    (void)v;
    if (optind != argc) {
        usage_bench(stderr);
        return 2;
    }
    const uint32_t NITEMS = 1000000, NCATS = 10000;
    mdl_config cfg;
    mdl_model *m = NULL;
    sch_event *ev = NULL;
    uint32_t *uidx = NULL, *order = NULL, *start = NULL;
    double *ucdf = NULL, *icdf = NULL;
    enc_sigcache *cache = NULL;
    enc_ustate *us = NULL;
    enc_store *st = NULL;
    enc_batch *b = NULL;
    char err[1024], tmpl[4096];
    int ret = 1, made_dir = 0;
    mdl_config_default(&cfg);
    cfg.C = 64;
    cfg.S = 16;
    cfg.tau = 3;
    cfg.seed = seed;
    if (mdl_model_init(&m, &cfg, err, sizeof err)) {
        fprintf(stderr, "trail bench encode: %s\n", err);
        return 1;
    }
    // ---- workload
    ev = core_malloc(E * sizeof *ev);
    uidx = core_malloc(E * sizeof *uidx);
    order = core_malloc(E * sizeof *order);
    start = core_calloc(U + 1, sizeof *start);
    ucdf = zipf_cdf((uint32_t)U);
    icdf = zipf_cdf(NITEMS);
    if (!ev || !uidx || !order || !start || !ucdf || !icdf) {
        fprintf(stderr, "trail bench encode: out of memory for %llu events\n", (unsigned long long)E);
        goto out;
    }
    core_rng rng;
    core_rng_seed(&rng, seed);
    for (uint64_t i = 0; i < E; i++) {
        uint32_t u = zipf_draw(ucdf, (uint32_t)U, &rng), it = zipf_draw(icdf, NITEMS, &rng);
        sch_event *e = &ev[i];
        memset(e, 0, sizeof *e);
        /* ids scattered over the id space as real ids are, so LMDB keys do not arrive sorted */
        e->user_id = core_hash_id(u, 11) & SCH_ID_MAX;
        e->item_id = core_hash_id(it, 12) & SCH_ID_MAX;
        e->category_id = core_hash_id(it, 13) % NCATS;
        e->ts = 1700000000 + (int64_t)(i / 10);
        e->action = (uint8_t)(1 + core_rng_below(&rng, 4));
        uidx[i] = u;
        start[u + 1]++;
    }
    uint64_t full = 0;
    for (uint64_t u = 0; u < U; u++) full += start[u + 1] >= L;
    for (uint64_t u = 0; u < U; u++) start[u + 1] += start[u];
    { /* stable counting sort by user: each user's events in arrival order */
        uint32_t *fill = core_malloc(U * sizeof *fill);
        if (!fill) goto out;
        memcpy(fill, start, U * sizeof *fill);
        for (uint64_t i = 0; i < E; i++) order[fill[uidx[i]]++] = (uint32_t)i;
        core_free(fill);
    }
    // ---- JSON decode (a sample)
    uint64_t nj = E < 200000 ? E : 200000;
    double json_rate;
    {
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
                goto out;
            }
        }
        json_rate = nj / ((double)t / 1e9);
    }
    // ---- kernel
    if (enc_sigcache_new(&cache, m, 1u << 18) || enc_ustate_new(&us, m, (uint32_t)L)) goto out;
    /* the behaviors user after user, as a batch hands them to the rule (not timed) */
    sch_behavior *bh = core_malloc(E * sizeof *bh);
    if (!bh) goto out;
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
    double kernel_s = (double)(core_now_ns() - t0) / 1e9, kernel_cpu = cpu_s() - c0;
    uint64_t hits, misses;
    enc_sigcache_stats(cache, &hits, &misses);
    double hit_rate = (double)hits / (double)(hits + misses ? hits + misses : 1);
    core_free(bh);
    if (kernel_only) {
        printf("{\"bench\":\"encode\",\"events\":%llu,\"users\":%llu,\"window\":%llu,"
               "\"kernel_events_per_s\":%.0f,\"kernel_s\":%.3f,\"kernel_cpu_events_per_s\":%.0f,"
               "\"sigcache_hit_rate\":%.4f}\n",
               (unsigned long long)E, (unsigned long long)U, (unsigned long long)L, E / kernel_s,
               kernel_s, E / kernel_cpu, hit_rate);
        ret = 0;
        goto out;
    }
    // ---- end to end
    enc_store_conf conf;
    enc_store_conf_default(&conf);
    if (!dir) {
        const char *tmp = getenv("TMPDIR");
        snprintf(tmpl, sizeof tmpl, "%s/trail-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(tmpl)) {
            fprintf(stderr, "trail bench encode: mkdtemp %s failed\n", tmpl);
            goto out;
        }
        dir = tmpl;
        made_dir = 1;
    }
    conf.path = dir;
    conf.window = (uint32_t)L;
    conf.recent = L < 64 ? (uint32_t)L : 64;
    conf.durable = durable;
    conf.map_size = (size_t)4 << 30;
    if (enc_store_open(&st, &conf, err, sizeof err) || enc_store_bind_model(st, m, err, sizeof err)) {
        fprintf(stderr, "trail bench encode: %s\n", err);
        goto out;
    }
    uint64_t commits = 0;
    int rc;
    t0 = core_now_ns();
    c0 = cpu_s();
    for (uint64_t i = 0; i < E; i++) {
        if (!b && (rc = enc_batch_begin(st, &b))) goto fail_rc;
        if ((rc = enc_batch_apply(b, &ev[i]))) goto fail_rc;
        if (enc_batch_size(b) >= K || i + 1 == E) {
            rc = enc_batch_commit(b);
            b = NULL;
            commits++;
            if (rc) goto fail_rc;
        }
    }
    double e2e_s = (double)(core_now_ns() - t0) / 1e9, e2e_cpu = cpu_s() - c0;
    uint64_t users, chunks;
    if ((rc = enc_store_users(st, &users, &chunks))) goto fail_rc;
    double store_mb = (double)dir_bytes(dir) / 1048576.0;
    if (json) {
        printf("{\"bench\":\"encode\",\"events\":%llu,\"users\":%llu,\"window\":%llu,\"dim\":%u,"
               "\"signatures\":%u,\"bits\":%u,\"events_per_s\":%.0f,\"kernel_events_per_s\":%.0f,"
               "\"json_decode_events_per_s\":%.0f,\"end_to_end_s\":%.3f,\"kernel_s\":%.3f,"
               "\"batch\":%llu,\"commits\":%llu,\"durable\":%s,\"users_stored\":%llu,"
               "\"chunks_stored\":%llu,\"users_window_full\":%llu,\"store_mb\":%.1f,"
               "\"user_zipf_s\":1.0,\"items\":%u,\"item_zipf_s\":1.0,\"seed\":%llu,"
               "\"kernel_cpu_events_per_s\":%.0f,\"cpu_events_per_s\":%.0f,\"load_avg_1m\":%.2f,\"sigcache_hit_rate\":%.4f}\n",
               (unsigned long long)E, (unsigned long long)U, (unsigned long long)L, cfg.C, cfg.S,
               cfg.tau, E / e2e_s, E / kernel_s, json_rate, e2e_s, kernel_s, (unsigned long long)K,
               (unsigned long long)commits, durable ? "true" : "false", (unsigned long long)users,
               (unsigned long long)chunks, (unsigned long long)full, store_mb, NITEMS,
               (unsigned long long)seed, E / kernel_cpu, E / e2e_cpu, load1(), hit_rate);
    } else {
        printf("bench encode: %llu events, %llu users (%llu fill the %llu window), C=%u S=%u tau=%u\n"
               "  kernel      %.0f events/s (%.3f s)\n  end to end  %.0f events/s (%.3f s, %llu "
               "commits of %llu, %s)\n  json decode %.0f events/s\n  store %.1f MB\n",
               (unsigned long long)E, (unsigned long long)U, (unsigned long long)full,
               (unsigned long long)L, cfg.C, cfg.S, cfg.tau, E / kernel_s, kernel_s, E / e2e_s, e2e_s,
               (unsigned long long)commits, (unsigned long long)K, durable ? "fsync" : "no sync",
               json_rate, store_mb);
    }
    ret = 0;
    goto out;
fail_rc:
    fprintf(stderr, "trail bench encode: store: %s\n", core_strerror(rc));
out:
    if (b) enc_batch_abort(b);
    enc_store_close(st);
    if (made_dir) rm_store(tmpl);
    enc_ustate_destroy(us);
    enc_sigcache_destroy(cache);
    core_free(ev);
    core_free(uidx);
    core_free(order);
    core_free(start);
    core_free(ucdf);
    core_free(icdf);
    mdl_model_destroy(m);
    return ret;
}
