/* rank_cli.c: `trail bench rank` (serving latency of SDIM against exact target attention) and
 * `trail model info` with the serving path.
 *
 * The bench builds one user in memory from a synthetic window: bucket sums by embedding each
 * behavior (mdl_embed) and hashing it (enc_simhash_sign), exactly the encoder's rule, so no store
 * is involved; the timed part is rank_score, the serving call, with a warm signature cache.
 */
#include "rank_cli.h"
#include "core_alloc.h"
#include "core_cpu.h"
#include "core_err.h"
#include "core_proc.h"
#include "core_util.h"
#include "enc_simhash.h"
#include "mdl.h"
#include "rank_blas.h"
#include "rank_engine.h"
#include "rank_isa.h"
#include "rank_kernels.h"
#include "rank_net.h"
#include "rank_pgemm.h"
#include "mdl_cli.h"
#include "rank_score.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// ---------------------------------------------------------------------------------------------
// trail model info, with the serving path

static const core_cmd model_info_cmd = {"model info",
                                        "print a model file's config, versions, and serving path",
                                        rank_cmd_model_info, NULL, NULL};

int rank_cmd_model_info(int argc, char **argv) {
    char err[256];
    if (rank_isa_init(err, sizeof err)) {
        fprintf(stderr, "trail: %s\n", err);
        return 2;
    }
    return mdl_cmd_info_ext(&model_info_cmd, argc, argv, rank_isa_describe);
}

// ---------------------------------------------------------------------------------------------
// trail bench rank

typedef struct bench_user {
    sch_behavior *window; // (T)
    float *V;             // (S, nb, C)
    uint32_t *cnt;        // (S, nb)
} bench_user;

static int64_t thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* time `iters` calls of rank_score after `warm` untimed ones: wall-clock ns per call into t and
 * this thread's CPU ns into cpu (both sorted). On a shared machine the difference is time spent
 * waiting for a core. */
static int time_scores(int64_t *t, int64_t *cpu, int iters, int warm, float *out, rank_scratch *s,
                       const mdl_model *m, const rank_history *h, const uint64_t *item,
                       const uint64_t *cat, uint32_t B) {
    for (int i = -warm; i < iters; i++) {
        int64_t c0 = thread_cpu_ns(), t0 = core_now_ns();
        int rc = rank_score(out, s, m, h, item, cat, B);
        int64_t t1 = core_now_ns(), c1 = thread_cpu_ns();
        if (rc) return rc;
        if (i >= 0) t[i] = t1 - t0, cpu[i] = c1 - c0;
    }
    for (uint32_t b = 0; b < B; b++)
        if (!(out[b] > 0.f && out[b] < 1.f)) return CORE_ERANGE;
    qsort(t, (size_t)iters, sizeof *t, core_cmp_i64);
    qsort(cpu, (size_t)iters, sizeof *cpu, core_cmp_i64);
    return CORE_OK;
}

/* The head alone at the same shapes (B x D -> h1 -> h2 -> 1 with ReLU), the floor under any
 * variant: it says how much of a request is the MLP and how much everything else. */
static int time_mlp(int64_t *t, int iters, const mdl_model *m, uint32_t B) {
    const mdl_config *c = &m->cfg;
    int D = (int)mdl_mlp_in_dim(c), H1 = (int)c->h1, H2 = (int)c->h2;
    float *z = core_calloc((size_t)B * D, sizeof(float)), *a1 = core_malloc((size_t)B * H1 * 4),
          *a2 = core_malloc((size_t)B * H2 * 4), *lg = core_malloc((size_t)B * 4);
    int rc = CORE_ENOMEM;
    if (!z || !a1 || !a2 || !lg) goto done;
    for (size_t i = 0; i < (size_t)B * D; i++)
        z[i] = m->p.item_emb[i % ((size_t)c->item_rows * c->C / 2)];
    for (int i = -5; i < iters; i++) {
        int64_t t0 = core_now_ns();
        rank_matmul_forward(a1, z, m->p.w1, m->p.b1, (int)B, D, H1);
        rank_relu_forward(a1, a1, (int)B * H1);
        rank_matmul_forward(a2, a1, m->p.w2, m->p.b2, (int)B, H1, H2);
        rank_relu_forward(a2, a2, (int)B * H2);
        rank_matmul_forward(lg, a2, m->p.w3, m->p.b3, (int)B, H2, 1);
        if (i >= 0) t[i] = core_now_ns() - t0;
    }
    qsort(t, (size_t)iters, sizeof *t, core_cmp_i64);
    rc = CORE_OK;
done:
    core_free(z);
    core_free(a1);
    core_free(a2);
    core_free(lg);
    return rc;
}

/* The arithmetic per request that no exact rewrite removes, at the bench's shapes, timed alone
 * over blocks of 512 candidates as rank_net runs them: the first layer over the candidate-by-user
 * inputs (q (.) u_long, u_tin, and the N short attention weights against W1_us hs^T: B x (2C + N)
 * -> h1), the second layer (h1 -> h2), and the attention scores of the short and TIN branches
 * plus TIN's pooling (B x N x C each). With q_short, q (.) u_short adds C input columns and the
 * short pooling (att hs) one more B x N x C product; with cross, MDL_CROSS_DIM columns. The q
 * block is left out (a per-item cache across requests could hold it); the user-only terms are
 * folded (rank_net.c). A request costs the q block, gathers, softmax and copies above it. */
static int time_floor(int64_t *t, int iters, const mdl_model *m, uint32_t B) {
    const mdl_config *c = &m->cfg;
    mdl_mlp_cols col;
    mdl_mlp_layout(c, &col);
    int qs = col.usq >= 0; /* q (.) u_short is in the head */
    int C = (int)c->C, H1 = (int)c->h1, H2 = (int)c->h2, N = (int)c->n_recent;
    int K = (2 + qs) * C + (col.cross >= 0 ? MDL_CROSS_DIM : 0) + N;
    size_t big = (size_t)B * (size_t)(H1 > K ? H1 : K);
    float *x = core_malloc(big * sizeof(float)), *w = core_malloc((size_t)H1 * K * 4),
          *a1 = core_malloc((size_t)B * H1 * 4), *a2 = core_malloc((size_t)B * H2 * 4),
          *att = core_malloc((size_t)B * N * 4), *kv = core_malloc((size_t)N * C * 4);
    int rc = CORE_ENOMEM;
    if (!x || !w || !a1 || !a2 || !att || !kv) goto done;
    for (size_t i = 0; i < big; i++)
        x[i] = (float)(i % 17) * 0.01f;
    for (size_t i = 0; i < (size_t)H1 * K; i++)
        w[i] = (float)(i % 13) * 0.01f;
    for (size_t i = 0; i < (size_t)N * C; i++)
        kv[i] = (float)(i % 11) * 0.01f;
    for (size_t i = 0; i < (size_t)B * N; i++)
        att[i] = 1.f / (float)N;
    for (int i = -5; i < iters; i++) {
        int64_t t0 = core_now_ns();
        for (uint32_t b0 = 0; b0 < B; b0 += 512) { /* blocks as rank_net runs them */
            int nb = (int)(B - b0 < 512 ? B - b0 : 512);
            float *xb = x + (size_t)b0 * K, *ab = att + (size_t)b0 * N;
            rank_gemm(0, 1, nb, H1, K, 1.f, xb, K, w, K, 0.f, a1, H1);
            rank_gemm(0, 1, nb, H2, H1, 1.f, a1, H1, m->p.w2, H1, 0.f, a2, H2);
            for (int br = 0; br < 2; br++) /* short and TIN scores */
                rank_gemm(0, 1, nb, N, C, 1.f, xb, C, kv, C, 0.f, ab, N);
            for (int pl = 0; pl < 1 + qs; pl++) /* TIN pooling, and short pooling for q_short */
                rank_gemm(0, 0, nb, C, N, 1.f, ab, N, kv, C, 0.f, xb, C);
        }
        if (i >= 0) t[i] = core_now_ns() - t0;
    }
    qsort(t, (size_t)iters, sizeof *t, core_cmp_i64);
    rc = CORE_OK;
done:
    core_free(x);
    core_free(w);
    core_free(a1);
    core_free(a2);
    core_free(att);
    core_free(kv);
    return rc;
}

/* rank_net_forward on one user, alternating a serving net that folds the head and one that
 * does not (shape.no_fold), same signature cache: wall ns per call into tf and tp, sorted. */
static int time_heads(int64_t *tf, int64_t *tp, int iters, const mdl_model *m,
                      const rank_history *h, const uint64_t *item, const uint64_t *cat, uint32_t B,
                      float *out) {
    char err[256];
    rank_net *nf = NULL, *np = NULL;
    enc_sigcache *sc = NULL;
    rank_net_shape sh = {.max_B = B, .max_U = 1, .max_T = mdl_reads_window(&m->cfg) ? h->T : 0};
    int rc = rank_net_new(&nf, &m->cfg, &sh, err, sizeof err);
    sh.no_fold = 1;
    if (!rc) rc = rank_net_new(&np, &m->cfg, &sh, err, sizeof err);
    if (!rc) rc = enc_sigcache_new(&sc, m, 1u << 16);
    rank_batch bt = {
        .users = h, .U = 1, .item_id = item, .category_id = cat, .B = B, .sigcache = sc};
    for (int i = -5; i < iters && !rc; i++) {
        int64_t t0 = core_now_ns();
        rc = rank_net_forward(nf, m, &bt, NULL, out);
        int64_t t1 = core_now_ns();
        if (!rc) rc = rank_net_forward(np, m, &bt, NULL, out);
        int64_t t2 = core_now_ns();
        if (i >= 0) tf[i] = t1 - t0, tp[i] = t2 - t1;
    }
    if (!rc && !rank_net_folded(nf)) rc = CORE_EINVAL; /* the bench shape must fold */
    rank_net_destroy(nf);
    rank_net_destroy(np);
    enc_sigcache_destroy(sc);
    if (rc) return rc;
    qsort(tf, (size_t)iters, sizeof *tf, core_cmp_i64);
    qsort(tp, (size_t)iters, sizeof *tp, core_cmp_i64);
    return CORE_OK;
}

/* One compute path on the bench's request: p50/p99 over its runs and its largest difference
 * from the fp32 path's probabilities. */
typedef struct path_result {
    int ran;
    int iters;
    double p50, p99, max_diff;
} path_result;

/* up to `iters` runs, fewer if a run is slow (the scalar reference): at most ~2 s of them */
static int time_path(path_result *pr, rank_isa isa, const mdl_model *m, const rank_history *h,
                     const uint64_t *item, const uint64_t *cat, uint32_t B, uint32_t wT, int iters,
                     const float *ref, float *out) {
    rank_scratch *s = NULL;
    int rc = rank_scratch_new_isa(&s, m, B, wT, isa);
    if (rc) return rc;
    int64_t *t = core_malloc((size_t)iters * sizeof *t),
            *c = core_malloc((size_t)iters * sizeof *c);
    if (!t || !c) {
        rc = CORE_ENOMEM;
        goto done;
    }
    int64_t t0 = core_now_ns();
    if ((rc = rank_score(out, s, m, h, item, cat, B))) goto done;
    int64_t one = core_now_ns() - t0, budget = 2000000000ll;
    int n = iters;
    if (one > 0 && (int64_t)n * one > budget)
        n = (int)(budget / one) < 10 ? 10 : (int)(budget / one);
    if ((rc = time_scores(t, c, n, 3, out, s, m, h, item, cat, B))) goto done;
    pr->ran = 1;
    pr->iters = n;
    pr->p50 = core_pct_us(t, n, 50);
    pr->p99 = core_pct_us(t, n, 99);
    pr->max_diff = 0;
    for (uint32_t b = 0; ref && b < B; b++) {
        double d = fabs((double)out[b] - ref[b]);
        if (d > pr->max_diff) pr->max_diff = d;
    }
done:
    core_free(t);
    core_free(c);
    rank_scratch_destroy(s);
    return rc;
}

/* The head's two layers alone on a path, at the bench's shapes and blocks (candidates x the
 * folded head's GEMM columns plus N short weights -> h1 -> h2): its wall time per request,
 * sorted, and the multiply-adds one request takes (*macs). */
static int time_head_path(int64_t *t, double *macs, int iters, rank_isa isa, const mdl_model *m,
                          uint32_t B) {
    const mdl_config *c = &m->cfg;
    rank_engine *e = NULL;
    int rc = rank_engine_new(&e, m, isa), H1 = (int)c->h1, H2 = (int)c->h2, N = (int)c->n_recent;
    if (rc) return rc;
    int Dw = e->Ds + N;
    float *z = core_malloc((size_t)512 * Dw * sizeof *z), *a1 = core_malloc((size_t)512 * H1 * 4);
    float *a2 = core_malloc((size_t)512 * H2 * 4), *ws = core_malloc((size_t)H1 * N * 4);
    void *scr = core_aligned_alloc(
        rank_pgemm_scratch_bytes(RANK_ISA_AMX_BF16, Dw + 32 * (RANK_ENGINE_SEGS + 1)));
    rank_pw short_w;
    memset(&short_w, 0, sizeof short_w);
    rc = CORE_ENOMEM;
    if (!z || !a1 || !a2 || !ws || !scr) goto done;
    if ((rc = rank_pw_alloc(&short_w, isa, H1, N))) goto done;
    for (size_t i = 0; i < (size_t)512 * Dw; i++)
        z[i] = (float)((int)(i % 29) - 14) * 0.01f;
    for (size_t i = 0; i < (size_t)H1 * N; i++)
        ws[i] = (float)((int)(i % 13) - 6) * 0.02f;
    rank_pw_pack(&short_w, ws, (size_t)N, 1, N, 1.f);
    rank_pseg sg[RANK_ENGINE_SEGS + 1];
    int ns = 0;
    for (int k = e->gather_f16 ? 1 : 0; k < e->w1c.n; k++) /* q's block: from the q-term cache */
        sg[ns++] = (rank_pseg){z + e->w1c.off[k], Dw, &e->w1c.w[k]};
    sg[ns++] = (rank_pseg){z + e->Ds, Dw, &short_w};
    rank_pseg s2 = {a1, H1, &e->w2};
    *macs = (double)H1 * H2;
    for (int k = 0; k < ns; k++)
        *macs += (double)H1 * sg[k].w->K;
    *macs *= B;
    for (int i = -3; i < iters; i++) {
        int64_t t0 = core_now_ns();
        for (uint32_t b0 = 0; b0 < B; b0 += 512) {
            int nb = (int)(B - b0 < 512 ? B - b0 : 512);
            rank_pgemm(a1, H1, nb, sg, ns, m->p.b1, RANK_PG_RELU, scr);
            rank_pgemm(a2, H2, nb, &s2, 1, m->p.b2, RANK_PG_RELU, scr);
        }
        if (i >= 0) t[i] = core_now_ns() - t0;
    }
    qsort(t, (size_t)iters, sizeof *t, core_cmp_i64);
    rc = CORE_OK;
done:
    rank_pw_free(&short_w);
    core_free(z);
    core_free(a1);
    core_free(a2);
    core_free(ws);
    core_free(scr);
    rank_engine_destroy(e);
    return rc;
}

/* every path this CPU runs on the same request, fp32 first (the reference) */
static int time_paths(path_result *pr, const mdl_model *m, const rank_history *h,
                      const uint64_t *item, const uint64_t *cat, uint32_t B, uint32_t wT, int iters,
                      float *out) {
    float *ref = core_malloc(B * sizeof *ref);
    int rc =
        ref ? time_path(&pr[RANK_ISA_FP32], RANK_ISA_FP32, m, h, item, cat, B, wT, iters, NULL, ref)
            : CORE_ENOMEM;
    for (int i = 0; !rc && i < RANK_ISA_COUNT; i++)
        if (i != RANK_ISA_FP32 && rank_isa_available((rank_isa)i))
            rc = time_path(&pr[i], (rank_isa)i, m, h, item, cat, B, wT, iters, ref, out);
    core_free(ref);
    return rc;
}

/* one user: T behaviors over 200k items in 5k categories, one every ~10 minutes, and its SDIM
 * buckets, built as the encoder would (mdl_embed + enc_simhash_sign) */
static int bench_user_build(bench_user *u, const mdl_model *m, uint64_t T, int64_t now,
                            core_rng *r) {
    const mdl_config *cfg = &m->cfg;
    int S = (int)cfg->S, nb = 1 << cfg->tau, C = (int)cfg->C;
    float x[1024];
    uint16_t sig[64];
    u->window = core_malloc((T ? T : 1) * sizeof *u->window);
    u->V = core_calloc((size_t)S * nb * C, sizeof *u->V);
    u->cnt = core_calloc((size_t)S * nb, sizeof *u->cnt);
    if (!u->window || !u->V || !u->cnt) return CORE_ENOMEM;
    for (uint64_t j = 0; j < T; j++) {
        uint64_t it = 1 + core_rng_below(r, 200000);
        u->window[j] = (sch_behavior){it, 1 + it % 5000, now - (int64_t)(T - j) * 600, 1};
        mdl_embed(m, u->window[j].item_id, u->window[j].category_id, x);
        enc_simhash_sign(sig, x, m->p.simhash_r, S, (int)cfg->tau, C);
        for (int i = 0; i < S; i++) {
            float *v = u->V + ((size_t)i * nb + sig[i]) * C;
            for (int k = 0; k < C; k++)
                v[k] += x[k];
            u->cnt[i * nb + sig[i]]++;
        }
    }
    return CORE_OK;
}

static const core_cmd bench_cmd = {
    "bench rank", "serving latency: SDIM against exact target attention", rank_cmd_bench,
    "Scores B candidates for one user with a T-behavior window and N recent behaviors, once\n"
    "with long=sdim and once with long=attention (same weights), one thread. The defaults are\n"
    "the configuration a trained full model serves: C=64 S=16 tau=4 (field-wise) MLP 200-80,\n"
    "sdim+selfattn+tin, q (.) u_short in the head and the cross statistics. --isa picks the\n"
    "path the headline numbers and the attention baseline run on; every path the CPU runs is\n"
    "timed as well, and compared with fp32 on the same request.\n",
    NULL};

/* the bench's timings and what its report prints besides them */
typedef struct bench_stats {
    double s50, s99, a50, a99, m50, m99, f50, f99, n50, n99, hf50, hp50, sc50, ac50;
    double head50, head_macs, peak;
    int fresh_n, folds;
    rank_isa isa;
    path_result pr[RANK_ISA_COUNT];
} bench_stats;

static void bench_report(const mdl_config *cfg, uint64_t B, uint64_t T, uint64_t N, uint64_t iters,
                         uint64_t aiters, const bench_stats *st, int json);

int rank_cmd_bench(int argc, char **argv) {
    uint64_t B = 1000, T = 10000, N = 50, iters = 300, aiters = 30, seed = 1, qshort = 1, bits = 0;
    uint64_t cross = 1;
    char ierr[256];
    if (rank_isa_init(ierr, sizeof ierr)) {
        fprintf(stderr, "trail: bench rank: %s\n", ierr);
        return 2;
    }
    int json = 0, rc, ret = 1;
    const core_opt opts[] = {
        CORE_OPT_JSON(&json),
        CORE_OPT_U64("candidates", &B, "B", 1, 100000, "candidates per request"),
        CORE_OPT_U64("window", &T, "T", 0, 1000000, "the user's long-term behaviors"),
        CORE_OPT_U64("recent", &N, "N", 1, 1024, "recent behaviors"),
        CORE_OPT_U64("iters", &iters, "K", 1, 1000000, "timed SDIM requests"),
        CORE_OPT_U64("attention-iters", &aiters, "K", 1, 100000, "timed exact-attention requests"),
        CORE_OPT_U64("seed", &seed, "X", 0, UINT64_MAX, "model and request seed"),
        {CORE_OPT_ROW("q-short", CORE_OPT_U64, &qshort, "0|1", "q (.) u_short in the head"),
         .umax = 1},
        {CORE_OPT_ROW("bits", CORE_OPT_U64, &bits, "TAU", "bits per signature"), .umin = 1,
         .umax = 12, .def = "4"},
        {CORE_OPT_ROW("cross", CORE_OPT_U64, &cross, "0|1", "the cross statistics in the head"),
         .umax = 1},
        RANK_OPT_ISA,
        CORE_OPT_ENDROW};
    if ((rc = core_opts_parse(&bench_cmd, opts, argc, argv)) != CORE_OPTS_GO) return rc;

    mdl_config cfg;
    char err[256];
    mdl_model *m = NULL, *ma = NULL;
    rank_scratch *ss = NULL, *sa = NULL;
    bench_user u = {0};
    uint64_t *item = NULL, *cat = NULL;
    float *out = NULL;
    /* one block of timings: iters each of ts, tm, tf, tfresh, thf, thp, thead, cs; aiters each
     * of ta, ca */
    int64_t *tbuf = core_malloc((8 * iters + 2 * aiters) * sizeof *tbuf);
    int64_t *ts = tbuf, *tm = ts + iters, *tf = tm + iters, *tfresh = tf + iters;
    int64_t *thf = tfresh + iters, *thp = thf + iters, *thead = thp + iters, *cs = thead + iters;
    int64_t *ta = cs + iters, *ca = ta + aiters;
    bench_stats st;
    memset(&st, 0, sizeof st);
    int fresh_n = (int)(iters < 100 ? iters : 100);
    mdl_config_default(&cfg);
    cfg.n_recent = (uint32_t)N;
    cfg.seed = seed;
    cfg.q_short = (uint32_t)qshort; /* 0: the head the ranker issue specifies */
    cfg.cross = (uint32_t)cross;
    if (bits) cfg.tau = (uint32_t)bits;
    if ((rc = mdl_model_init(&m, &cfg, err, sizeof err))) {
        fprintf(stderr, "trail: bench rank: %s\n", err);
        core_free(tbuf);
        return 1;
    }
    /* the baseline: the same weights with exact target attention over the window */
    if ((rc = mdl_model_clone(&ma, m))) goto fail;
    ma->cfg.long_kind = MDL_LONG_ATTN;
    mdl_params_bind(&ma->p, &ma->cfg, ma->arena);

    int S = (int)cfg.S, nb = 1 << cfg.tau;
    item = core_malloc(B * sizeof *item);
    cat = core_malloc(B * sizeof *cat);
    out = core_malloc(B * sizeof *out);
    rc = CORE_ENOMEM;
    if (!tbuf || !item || !cat || !out) goto fail;
    core_rng r;
    core_rng_seed(&r, seed ^ 0x62656e6368ull);
    int64_t now = 1700000000;
    if ((rc = bench_user_build(&u, m, T, now, &r))) goto fail;
    for (uint64_t b = 0; b < B; b++) {
        item[b] = 1 + core_rng_below(&r, 200000);
        cat[b] = 1 + item[b] % 5000;
    }
    uint32_t nrec = (uint32_t)(T < N ? T : N);
    rank_history h = {.bucket_sum = u.V,
                      .bucket_cnt = u.cnt,
                      .window_len = (uint32_t)T,
                      .window = u.window,
                      .T = (uint32_t)T,
                      .recent = u.window + (T - nrec),
                      .N = nrec,
                      .now_ts = now};

    uint32_t wT = mdl_reads_window(&cfg) ? (uint32_t)T : 0; /* window rows the scorer reads */
    if ((rc = rank_scratch_new(&ss, m, (uint32_t)B, wT))) goto fail;
    if ((rc = time_scores(ts, cs, (int)iters, 5, out, ss, m, &h, item, cat, (uint32_t)B)))
        goto fail;
    rank_scratch_destroy(ss);
    ss = NULL;
    /* the head with and without the folded first layer, alternating request by request in this
     * process, so the machine's drift hits both alike */
    int folds = B >= (uint64_t)S * nb && B >= N; /* the folded head needs that many candidates */
    if (folds && (rc = time_heads(thf, thp, (int)iters, m, &h, item, cat, (uint32_t)B, out)))
        goto fail;
    /* the same user with new candidates every request (uniform over the 200k items), on a new
     * scratch: the signature cache mostly misses */
    if ((rc = rank_scratch_new(&ss, m, (uint32_t)B, wT))) goto fail;
    for (int i = 0; i < fresh_n; i++) {
        for (uint64_t b = 0; b < B; b++) {
            item[b] = 1 + core_rng_below(&r, 200000);
            cat[b] = 1 + item[b] % 5000;
        }
        int64_t t0 = core_now_ns();
        if ((rc = rank_score(out, ss, m, &h, item, cat, (uint32_t)B))) goto fail;
        tfresh[i] = core_now_ns() - t0;
    }
    qsort(tfresh, (size_t)fresh_n, sizeof *tfresh, core_cmp_i64);
    rank_scratch_destroy(ss);
    ss = NULL;
    /* every path this CPU runs on the same request, fp32 first (the reference) */
    rank_isa isa = rank_isa_current();
    if ((rc = time_paths(st.pr, m, &h, item, cat, (uint32_t)B, wT, (int)iters, out))) goto fail;
    /* the chosen path's head GEMMs alone, against its instruction's peak on this core */
    if ((rc = time_head_path(thead, &st.head_macs, (int)iters, isa, m, (uint32_t)B))) goto fail;
    st.head50 = core_pct_us(thead, (size_t)iters, 50);
    st.peak = rank_pgemm_peak_gmacs(isa, 200);
    if ((rc = time_mlp(tm, (int)iters, m, (uint32_t)B))) goto fail;
    if ((rc = time_floor(tf, (int)iters, m, (uint32_t)B))) goto fail;
    if ((rc = rank_scratch_new(&sa, ma, (uint32_t)B, (uint32_t)T))) goto fail;
    if ((rc = time_scores(ta, ca, (int)aiters, 2, out, sa, ma, &h, item, cat, (uint32_t)B)))
        goto fail;

    st.s50 = core_pct_us(ts, (size_t)iters, 50), st.s99 = core_pct_us(ts, (size_t)iters, 99);
    st.a50 = core_pct_us(ta, (size_t)aiters, 50), st.a99 = core_pct_us(ta, (size_t)aiters, 99);
    st.m50 = core_pct_us(tm, (size_t)iters, 50), st.m99 = core_pct_us(tm, (size_t)iters, 99);
    st.f50 = core_pct_us(tf, (size_t)iters, 50), st.f99 = core_pct_us(tf, (size_t)iters, 99);
    st.n50 = core_pct_us(tfresh, fresh_n, 50), st.n99 = core_pct_us(tfresh, fresh_n, 99);
    st.hf50 = folds ? core_pct_us(thf, (size_t)iters, 50) : NAN;
    st.hp50 = folds ? core_pct_us(thp, (size_t)iters, 50) : NAN;
    st.sc50 = core_pct_us(cs, (size_t)iters, 50), st.ac50 = core_pct_us(ca, (size_t)aiters, 50);
    st.fresh_n = fresh_n, st.folds = folds, st.isa = isa;
    bench_report(&cfg, B, T, N, iters, aiters, &st, json);
    ret = 0;
fail:
    if (ret) fprintf(stderr, "trail: bench rank: %s\n", core_strerror(rc));
    rank_scratch_destroy(ss);
    rank_scratch_destroy(sa);
    mdl_model_destroy(m);
    mdl_model_destroy(ma);
    core_free(u.window);
    core_free(u.V);
    core_free(u.cnt);
    core_free(item);
    core_free(cat);
    core_free(out);
    core_free(tbuf);
    return ret;
}

int rank_opt_isa(const char *value, void *dst, char *err, size_t err_size) {
    (void)dst;
    return rank_isa_force(value, err, err_size);
}

const core_cmd *const rank_cmds[] = {&model_info_cmd, &bench_cmd, NULL};

/* the bench's result: one JSON object, or lines */
static void bench_report(const mdl_config *cfg, uint64_t B, uint64_t T, uint64_t N, uint64_t iters,
                         uint64_t aiters, const bench_stats *st, int json) {
    char hfs[32] = "null", hps[32] = "null"; /* JSON: no A/B when the head cannot fold */
    if (st->folds) {
        snprintf(hfs, sizeof hfs, "%.1f", st->hf50);
        snprintf(hps, sizeof hps, "%.1f", st->hp50);
    }
    double load = core_proc_load1();
    char vname[96];
    mdl_variant_str(cfg, vname, sizeof vname);
    if (json) {
        printf("{\"candidates\": %llu, \"window\": %llu, \"recent\": %llu, \"C\": %d, \"S\": %d, "
               "\"tau\": %u, \"mlp\": \"%u-%u\", \"threads\": 1, \"variant\": \"%s\", "
               "\"user_state\": \"built in memory from the window by the bench (mdl_embed + "
               "enc_simhash_sign)\", \"signature_cache\": \"warm\", "
               "\"sdim_iters\": %llu, \"sdim_p50_us\": %.1f, \"sdim_p99_us\": %.1f, "
               "\"sdim_new_candidates_iters\": %d, \"sdim_new_candidates_p50_us\": %.1f, "
               "\"sdim_new_candidates_p99_us\": %.1f, \"folded_head_p50_us\": %s, "
               "\"plain_head_p50_us\": %s, "
               "\"attention_iters\": %llu, \"attention_p50_us\": %.1f, \"attention_p99_us\": %.1f, "
               "\"speedup\": %.2f, \"mlp_only_p50_us\": %.1f, \"mlp_only_p99_us\": %.1f, "
               "\"floor_sgemm_p50_us\": %.1f, \"floor_sgemm_p99_us\": %.1f, "
               "\"sdim_cpu_p50_us\": %.1f, \"attention_cpu_p50_us\": %.1f, \"loadavg_1m\": %.2f",
               (unsigned long long)B, (unsigned long long)T, (unsigned long long)N, cfg->C, cfg->S,
               cfg->tau, cfg->h1, cfg->h2, vname, (unsigned long long)iters, st->s50, st->s99,
               st->fresh_n, st->n50, st->n99, hfs, hps, (unsigned long long)aiters, st->a50,
               st->a99, st->a50 / st->s50, st->m50, st->m99, st->f50, st->f99, st->sc50, st->ac50,
               load);
        printf(", \"isa\": \"%s\", \"precision\": \"%s\", \"cpu_features\": \"%s\", "
               "\"openblas_core\": \"%s\", \"max_abs_diff_vs_fp32\": %.3g, \"paths\": {",
               rank_isa_name(st->isa), rank_isa_precision(st->isa), core_cpu_features(),
               rank_isa_openblas_core(), st->pr[st->isa].max_diff);
        for (int i = 0, first = 1; i < RANK_ISA_COUNT; i++) {
            if (!st->pr[i].ran) continue;
            printf("%s\"%s\": {\"precision\": \"%s\", \"iters\": %d, \"p50_us\": %.1f, "
                   "\"p99_us\": %.1f, \"max_abs_diff_vs_fp32\": %.3g}",
                   first ? "" : ", ", rank_isa_name((rank_isa)i), rank_isa_precision((rank_isa)i),
                   st->pr[i].iters, st->pr[i].p50, st->pr[i].p99, st->pr[i].max_diff);
            first = 0;
        }
        printf("}, \"head_gemm_p50_us\": %.1f, \"head_gmacs_per_s\": %.1f, "
               "\"peak_gmacs_per_s\": %.1f}\n",
               st->head50, st->head_macs / st->head50 / 1e3, st->peak);
    } else {
        printf("bench rank: %llu candidates, window %llu, recent %llu, %s, one thread\n",
               (unsigned long long)B, (unsigned long long)T, (unsigned long long)N, vname);
        printf("  sdim       p50 %9.1f us   p99 %9.1f us   (%llu runs)\n", st->s50, st->s99,
               (unsigned long long)iters);
        printf("  sdim, new candidates every request (signature cache cold)  p50 %9.1f us   p99 "
               "%9.1f us\n",
               st->n50, st->n99);
        printf("  head A/B   folded p50 %9.1f us   plain p50 %9.1f us   (alternating calls)\n",
               st->hf50, st->hp50);
        printf("  attention  p50 %9.1f us   p99 %9.1f us   (%llu runs)\n", st->a50, st->a99,
               (unsigned long long)aiters);
        printf("  speedup    %.2fx (attention p50 / sdim p50)\n", st->a50 / st->s50);
        printf(
            "  MLP alone  p50 %9.1f us   p99 %9.1f us   (the head's sgemms at the same shapes)\n",
            st->m50, st->m99);
        printf("  floor      p50 %9.1f us   p99 %9.1f us   (the sgemms no exact rewrite removes)\n",
               st->f50, st->f99);
        printf("  thread CPU p50: sdim %.1f us, attention %.1f us; load average %.2f\n", st->sc50,
               st->ac50, load);
        printf("  path       %s (%s); OpenBLAS core %s; CPU %s\n", rank_isa_name(st->isa),
               rank_isa_precision(st->isa), rank_isa_openblas_core(), core_cpu_features());
        for (int i = 0; i < RANK_ISA_COUNT; i++)
            if (st->pr[i].ran)
                printf("    %-12s p50 %9.1f us   p99 %9.1f us   max |p - p_fp32| %.2e  (%d runs)\n",
                       rank_isa_name((rank_isa)i), st->pr[i].p50, st->pr[i].p99, st->pr[i].max_diff,
                       st->pr[i].iters);
        printf("  head GEMMs on %s: p50 %.1f us, %.1f GMAC/s; the instruction's peak here %.1f "
               "GMAC/s\n",
               rank_isa_name(st->isa), st->head50, st->head_macs / st->head50 / 1e3, st->peak);
    }
}
