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
#include "core_report.h"
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
#include "mdl_opts.h"
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
    int rc = rank_cli_isa_init(&model_info_cmd);
    return rc ? rc : mdl_cmd_info_ext(&model_info_cmd, argc, argv, rank_isa_describe);
}

// ---------------------------------------------------------------------------------------------
// trail bench rank

/* The bench's request: one user (window and SDIM buckets built in memory) and B candidates. */
typedef struct bench_req {
    rank_history h;
    sch_behavior *window; // (T)
    float *V;             // (S, nb, C)
    uint32_t *cnt;        // (S, nb)
    uint64_t *item, *cat; // (B)
    float *out;           // (B)
    uint32_t B, wT;       /* wT: the window rows the scorer reads */
} bench_req;

/* One timed call: a request's worth of some work on q; ctx holds the work's own state. */
typedef int (*bench_call)(void *ctx, const bench_req *q);

static int64_t thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* Time iters calls after warm untimed ones: the wall-clock p50/p99 into *wall and, if cpu, this
 * thread's CPU time's (on a shared machine the difference is time spent waiting for a core). */
static int time_calls(core_pcts *wall, core_pcts *cpu, int iters, int warm, bench_call call,
                      void *ctx, const bench_req *q) {
    int64_t *t = core_malloc(2 * (size_t)iters * sizeof *t), *c = t + iters;
    int rc = t ? CORE_OK : CORE_ENOMEM;
    for (int i = -warm; i < iters && !rc; i++) {
        int64_t c0 = thread_cpu_ns(), t0 = core_now_ns();
        rc = call(ctx, q);
        int64_t t1 = core_now_ns(), c1 = thread_cpu_ns();
        if (i >= 0) t[i] = t1 - t0, c[i] = c1 - c0;
    }
    if (!rc) *wall = core_pcts_us(t, (size_t)iters);
    if (!rc && cpu) *cpu = core_pcts_us(c, (size_t)iters);
    core_free(t);
    return rc;
}

/* rank_score, the serving call, with m on scratch s */
typedef struct score_ctx {
    const mdl_model *m;
    rank_scratch *s;
} score_ctx;

static int call_score(void *ctx, const bench_req *q) {
    score_ctx *x = ctx;
    return rank_score(q->out, x->s, x->m, &q->h, q->item, q->cat, q->B);
}

/* every probability of the last call in (0, 1) */
static int scores_ok(const bench_req *q) {
    for (uint32_t b = 0; b < q->B; b++)
        if (!(q->out[b] > 0.f && q->out[b] < 1.f)) return CORE_ERANGE;
    return CORE_OK;
}

/* time_calls of rank_score with m on a new scratch reading wT window rows */
static int time_scores(core_pcts *wall, core_pcts *cpu, int iters, int warm, const mdl_model *m,
                       const bench_req *q, uint32_t wT) {
    score_ctx x = {m, NULL};
    int rc = rank_scratch_new(&x.s, m, q->B, wT);
    if (!rc) rc = time_calls(wall, cpu, iters, warm, call_score, &x, q);
    rank_scratch_destroy(x.s);
    return rc ? rc : scores_ok(q);
}

/* Buffers for the GEMM-only timings, filled with a fixed pattern: (i % mod - off) * scale */
static void fill(float *p, size_t n, int mod, int off, float scale) {
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((int)(i % (size_t)mod) - off) * scale;
}

typedef struct gemm_ctx {
    const mdl_model *m;
    float *x, *w, *a1, *a2, *att, *kv; /* each sized for the largest of the three uses */
    int K, qs;
    const rank_engine *e; /* the head path's */
    rank_pseg sg[RANK_ENGINE_SEGS + 1];
    int ns;
    void *scr;
} gemm_ctx;

/* The head alone at the same shapes (B x D -> h1 -> h2 -> 1 with ReLU), the floor under any
 * variant: it says how much of a request is the MLP and how much everything else. */
static int call_mlp(void *ctx, const bench_req *q) {
    gemm_ctx *g = ctx;
    const mdl_params *p = &g->m->p;
    int B = (int)q->B, D = (int)mdl_mlp_in_dim(&g->m->cfg), H1 = (int)g->m->cfg.h1,
        H2 = (int)g->m->cfg.h2;
    rank_matmul_forward(g->a1, g->x, p->w1, p->b1, B, D, H1);
    rank_relu_forward(g->a1, g->a1, B * H1);
    rank_matmul_forward(g->a2, g->a1, p->w2, p->b2, B, H1, H2);
    rank_relu_forward(g->a2, g->a2, B * H2);
    rank_matmul_forward(g->att, g->a2, p->w3, p->b3, B, H2, 1);
    return CORE_OK;
}

/* The arithmetic per request that no exact rewrite removes, at the bench's shapes, timed alone
 * over blocks of 512 candidates as rank_net runs them: the first layer over the candidate-by-user
 * inputs (q (.) u_long, u_tin, and the N short attention weights against W1_us hs^T: B x (2C + N)
 * -> h1), the second layer (h1 -> h2), and the attention scores of the short and TIN branches
 * plus TIN's pooling (B x N x C each). With q_short, q (.) u_short adds C input columns and the
 * short pooling (att hs) one more B x N x C product; with cross, MDL_CROSS_DIM columns. The q
 * block is left out (a per-item cache across requests could hold it); the user-only terms are
 * folded (rank_net.c). A request costs the q block, gathers, softmax and copies above it. */
static int call_floor(void *ctx, const bench_req *q) {
    gemm_ctx *g = ctx;
    int C = (int)g->m->cfg.C, H1 = (int)g->m->cfg.h1, H2 = (int)g->m->cfg.h2,
        N = (int)g->m->cfg.n_recent, K = g->K;
    for (uint32_t b0 = 0; b0 < q->B; b0 += 512) { /* blocks as rank_net runs them */
        int nb = (int)(q->B - b0 < 512 ? q->B - b0 : 512);
        float *xb = g->x + (size_t)b0 * K, *ab = g->att + (size_t)b0 * N;
        rank_gemm(0, 1, nb, H1, K, 1.f, xb, K, g->w, K, 0.f, g->a1, H1);
        rank_gemm(0, 1, nb, H2, H1, 1.f, g->a1, H1, g->m->p.w2, H1, 0.f, g->a2, H2);
        for (int br = 0; br < 2; br++) /* short and TIN scores */
            rank_gemm(0, 1, nb, N, C, 1.f, xb, C, g->kv, C, 0.f, ab, N);
        for (int pl = 0; pl < 1 + g->qs; pl++) /* TIN pooling, and short pooling for q_short */
            rank_gemm(0, 0, nb, C, N, 1.f, ab, N, g->kv, C, 0.f, xb, C);
    }
    return CORE_OK;
}

/* The head's two layers alone on a path, at the bench's shapes and blocks (candidates x the
 * folded head's GEMM columns plus N short weights -> h1 -> h2). */
static int call_head(void *ctx, const bench_req *q) {
    gemm_ctx *g = ctx;
    int H1 = (int)g->m->cfg.h1, H2 = (int)g->m->cfg.h2;
    rank_pseg s2 = {g->a1, H1, &g->e->w2};
    for (uint32_t b0 = 0; b0 < q->B; b0 += 512) {
        int nb = (int)(q->B - b0 < 512 ? q->B - b0 : 512);
        rank_pgemm(g->a1, H1, nb, g->sg, g->ns, g->m->p.b1, RANK_PG_RELU, g->scr);
        rank_pgemm(g->a2, H2, nb, &s2, 1, g->m->p.b2, RANK_PG_RELU, g->scr);
    }
    return CORE_OK;
}

/* the bench's timings and what its report prints besides them */
typedef struct bench_stats {
    core_pcts sdim, sdim_cpu, fresh, attn, attn_cpu, mlp, floor, head, folded, plain;
    double head_macs, peak;
    int fresh_n;
    rank_isa isa;
    struct {
        int ran, iters;
        core_pcts t;
        double max_diff;
    } path[RANK_ISA_COUNT];
} bench_stats;

/* The MLP, floor and head-path GEMMs alone (see call_mlp, call_floor, call_head). */
static int time_gemms(bench_stats *st, const mdl_model *m, const bench_req *q, int iters) {
    const mdl_config *c = &m->cfg;
    mdl_mlp_cols col;
    mdl_mlp_layout(c, &col);
    rank_engine *e = NULL;
    rank_pw short_w = {0};
    int B = (int)q->B, C = (int)c->C, H1 = (int)c->h1, N = (int)c->n_recent;
    int D = (int)mdl_mlp_in_dim(c), qs = col.usq >= 0; /* q (.) u_short is in the head */
    int K = (2 + qs) * C + (col.cross >= 0 ? MDL_CROSS_DIM : 0) + N;
    int rc = rank_engine_new(&e, m, st->isa);
    if (rc) return rc;
    int Dw = e->Ds + N, X = K > H1 ? K : H1;
    X = X > D ? X : D;
    X = X > Dw ? X : Dw;
    gemm_ctx g = {.m = m, .K = K, .qs = qs, .e = e};
    float *buf = core_malloc(
        ((size_t)B * (X + H1 + c->h2 + N) + (size_t)H1 * (K > N ? K : N) + (size_t)N * C) *
        sizeof *buf);
    g.scr = core_aligned_alloc(
        rank_pgemm_scratch_bytes(RANK_ISA_AMX_BF16, Dw + 32 * (RANK_ENGINE_SEGS + 1)));
    rc = buf && g.scr ? rank_pw_alloc(&short_w, st->isa, H1, N) : CORE_ENOMEM;
    if (rc) goto done;
    g.x = buf, g.a1 = g.x + (size_t)B * X, g.a2 = g.a1 + (size_t)B * H1;
    g.att = g.a2 + (size_t)B * c->h2, g.w = g.att + (size_t)B * N;
    g.kv = g.w + (size_t)H1 * (K > N ? K : N);
    for (size_t i = 0; i < (size_t)B * D; i++)
        g.x[i] = m->p.item_emb[i % ((size_t)c->item_rows * c->C / 2)];
    if ((rc = time_calls(&st->mlp, NULL, iters, 5, call_mlp, &g, q))) goto done;
    fill(g.x, (size_t)B * X, 17, 0, 0.01f);
    fill(g.w, (size_t)H1 * K, 13, 0, 0.01f);
    fill(g.kv, (size_t)N * C, 11, 0, 0.01f);
    for (size_t i = 0; i < (size_t)B * N; i++)
        g.att[i] = 1.f / (float)N;
    if ((rc = time_calls(&st->floor, NULL, iters, 5, call_floor, &g, q))) goto done;
    /* the head path: q's block comes from the q-term cache; the short weights as one segment */
    fill(g.x, (size_t)B * Dw, 29, 14, 0.01f);
    fill(g.w, (size_t)H1 * N, 13, 6, 0.02f);
    rank_pw_pack(&short_w, g.w, (size_t)N, 1, N, 1.f);
    for (int k = e->gather_f16 ? 1 : 0; k < e->w1c.n; k++)
        g.sg[g.ns++] = (rank_pseg){g.x + e->w1c.off[k], Dw, &e->w1c.w[k]};
    g.sg[g.ns++] = (rank_pseg){g.x + e->Ds, Dw, &short_w};
    st->head_macs = (double)H1 * c->h2;
    for (int k = 0; k < g.ns; k++)
        st->head_macs += (double)H1 * g.sg[k].w->K;
    st->head_macs *= B;
    rc = time_calls(&st->head, NULL, iters, 3, call_head, &g, q);
done:
    rank_pw_free(&short_w);
    core_free(buf);
    core_free(g.scr);
    rank_engine_destroy(e);
    return rc;
}

/* rank_net_forward on one user, alternating a serving net that folds the head and one that
 * does not (shape.no_fold), same signature cache, request by request in this process, so the
 * machine's drift hits both alike. */
static int time_heads(bench_stats *st, int iters, const mdl_model *m, const bench_req *q) {
    char err[256];
    rank_net *nf = NULL, *np = NULL;
    enc_sigcache *sc = NULL;
    rank_net_shape sh = {
        .max_B = q->B, .max_U = 1, .max_T = mdl_reads_window(&m->cfg) ? q->h.T : 0};
    int64_t *tf = core_malloc(2 * (size_t)iters * sizeof *tf), *tp = tf + iters;
    int rc = tf ? rank_net_new(&nf, &m->cfg, &sh, err, sizeof err) : CORE_ENOMEM;
    sh.no_fold = 1;
    if (!rc) rc = rank_net_new(&np, &m->cfg, &sh, err, sizeof err);
    if (!rc) rc = enc_sigcache_new(&sc, m, 1u << 16);
    rank_batch bt = {.users = &q->h,
                     .U = 1,
                     .item_id = q->item,
                     .category_id = q->cat,
                     .B = q->B,
                     .sigcache = sc};
    for (int i = -5; i < iters && !rc; i++) {
        int64_t t0 = core_now_ns();
        rc = rank_net_forward(nf, m, &bt, NULL, q->out);
        int64_t t1 = core_now_ns();
        if (!rc) rc = rank_net_forward(np, m, &bt, NULL, q->out);
        if (i >= 0) tf[i] = t1 - t0, tp[i] = core_now_ns() - t1;
    }
    if (!rc && !rank_net_folded(nf)) rc = CORE_EINVAL; /* the bench shape must fold */
    if (!rc) {
        st->folded = core_pcts_us(tf, (size_t)iters);
        st->plain = core_pcts_us(tp, (size_t)iters);
    }
    rank_net_destroy(nf);
    rank_net_destroy(np);
    enc_sigcache_destroy(sc);
    core_free(tf);
    return rc;
}

/* Every path this CPU runs on the same request, fp32 first (the reference): p50/p99 over up to
 * iters runs (fewer if a run is slow, as the scalar reference is: ~2 s of them, at least 10) and
 * the largest difference from the fp32 path's probabilities. */
static int time_paths(bench_stats *st, const mdl_model *m, const bench_req *q, int iters) {
    float *ref = core_malloc(q->B * sizeof *ref);
    int rc = ref ? CORE_OK : CORE_ENOMEM;
    for (int k = 0; !rc && k < RANK_ISA_COUNT; k++) {
        int i = k ? (k == RANK_ISA_FP32 ? 0 : k) : RANK_ISA_FP32; /* fp32, then the others */
        if (!rank_isa_available((rank_isa)i)) continue;
        score_ctx x = {m, NULL};
        int64_t one = 0, budget = 2000000000ll, n = iters;
        if (!(rc = rank_scratch_new_isa(&x.s, m, q->B, q->wT, (rank_isa)i))) {
            int64_t t0 = core_now_ns();
            rc = call_score(&x, q);
            one = core_now_ns() - t0;
        }
        if (one > 0 && n * one > budget) n = budget / one < 10 ? 10 : budget / one;
        if (!rc) rc = time_calls(&st->path[i].t, NULL, (int)n, 3, call_score, &x, q);
        if (!rc) rc = scores_ok(q);
        rank_scratch_destroy(x.s);
        st->path[i].ran = !rc;
        st->path[i].iters = (int)n;
        for (uint32_t b = 0; b < q->B; b++) {
            if (i == RANK_ISA_FP32) ref[b] = q->out[b];
            double d = fabs((double)q->out[b] - ref[b]);
            if (d > st->path[i].max_diff) st->path[i].max_diff = d;
        }
    }
    core_free(ref);
    return rc;
}

/* one user: T behaviors over 200k items in 5k categories, one every ~10 minutes, and its SDIM
 * buckets, built as the encoder would (mdl_embed + enc_simhash_sign); B candidates */
static int bench_req_build(bench_req *q, const mdl_model *m, uint32_t B, uint32_t T, uint32_t N,
                           int64_t now, core_rng *r) {
    const mdl_config *cfg = &m->cfg;
    int S = (int)cfg->S, nb = 1 << cfg->tau, C = (int)cfg->C;
    float x[1024];
    uint16_t sig[64];
    q->window = core_malloc((T ? T : 1) * sizeof *q->window);
    q->V = core_calloc((size_t)S * nb * C, sizeof *q->V);
    q->cnt = core_calloc((size_t)S * nb, sizeof *q->cnt);
    q->item = core_malloc(B * sizeof *q->item);
    q->cat = core_malloc(B * sizeof *q->cat);
    q->out = core_malloc(B * sizeof *q->out);
    if (!q->window || !q->V || !q->cnt || !q->item || !q->cat || !q->out) return CORE_ENOMEM;
    for (uint32_t j = 0; j < T; j++) {
        uint64_t it = 1 + core_rng_below(r, 200000);
        q->window[j] = (sch_behavior){it, 1 + it % 5000, now - (int64_t)(T - j) * 600, 1};
        mdl_embed(m, q->window[j].item_id, q->window[j].category_id, x);
        enc_simhash_sign(sig, x, m->p.simhash_r, S, (int)cfg->tau, C);
        for (int i = 0; i < S; i++) {
            float *v = q->V + ((size_t)i * nb + sig[i]) * C;
            for (int k = 0; k < C; k++)
                v[k] += x[k];
            q->cnt[i * nb + sig[i]]++;
        }
    }
    uint32_t nrec = T < N ? T : N;
    q->h = (rank_history){.bucket_sum = q->V,
                          .bucket_cnt = q->cnt,
                          .window_len = T,
                          .window = q->window,
                          .T = T,
                          .recent = q->window + (T - nrec),
                          .N = nrec,
                          .now_ts = now};
    q->B = B;
    q->wT = mdl_reads_window(cfg) ? T : 0;
    return CORE_OK;
}

/* new candidates, uniform over the 200k items */
static void new_candidates(bench_req *q, core_rng *r) {
    for (uint32_t b = 0; b < q->B; b++) {
        q->item[b] = 1 + core_rng_below(r, 200000);
        q->cat[b] = 1 + q->item[b] % 5000;
    }
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

static void bench_report(const mdl_config *cfg, const bench_req *q, uint64_t iters, uint64_t aiters,
                         const bench_stats *st, int json);

/* Every timing of the bench on one model m, its attention twin ma and one request. */
static int bench_run(bench_stats *st, const mdl_model *m, const mdl_model *ma, bench_req *q,
                     int iters, int aiters, core_rng *r) {
    int rc, S = (int)m->cfg.S, nb = 1 << m->cfg.tau;
    st->isa = rank_isa_current();
    if ((rc = time_scores(&st->sdim, &st->sdim_cpu, iters, 5, m, q, q->wT))) return rc;
    /* the head with and without the folded first layer; it needs that many candidates */
    st->folded = st->plain = (core_pcts){NAN, NAN};
    if (q->B >= (uint32_t)(S * nb) && q->B >= m->cfg.n_recent && (rc = time_heads(st, iters, m, q)))
        return rc;
    /* the same user with new candidates every request, on a new scratch: the signature cache
     * mostly misses (the candidates are drawn outside the timed call) */
    score_ctx x = {m, NULL};
    int64_t *t = core_malloc((size_t)st->fresh_n * sizeof *t);
    rc = t ? rank_scratch_new(&x.s, m, q->B, q->wT) : CORE_ENOMEM;
    for (int i = 0; !rc && i < st->fresh_n; i++) {
        new_candidates(q, r);
        int64_t t0 = core_now_ns();
        rc = call_score(&x, q);
        t[i] = core_now_ns() - t0;
    }
    if (!rc) st->fresh = core_pcts_us(t, (size_t)st->fresh_n);
    core_free(t);
    rank_scratch_destroy(x.s);
    if (rc || (rc = time_paths(st, m, q, iters)) || (rc = time_gemms(st, m, q, iters))) return rc;
    /* the chosen path's head GEMMs against its instruction's peak on this core */
    st->peak = rank_pgemm_peak_gmacs(st->isa, 200);
    return time_scores(&st->attn, &st->attn_cpu, aiters, 2, ma, q, q->h.T);
}

int rank_cmd_bench(int argc, char **argv) {
    uint64_t B = 1000, T = 10000, N = 50, iters = 300, aiters = 30, seed = 1, qshort = 1, bits = 0;
    uint64_t cross = 1;
    int json = 0, rc = rank_cli_isa_init(&bench_cmd);
    if (rc) return rc;
    mdl_config cfg;
    mdl_config_default(&cfg);
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
        {CORE_OPT_ROW("hidden", CORE_OPT_FUNC, &cfg, "H1,H2", "the MLP's widths"),
         .fn = mdl_opt_hidden, .def = "200,80"},
        RANK_OPT_ISA,
        CORE_OPT_ENDROW};
    if ((rc = core_opts_parse(&bench_cmd, opts, argc, argv)) != CORE_OPTS_GO) return rc;

    char err[256];
    mdl_model *m = NULL, *ma = NULL;
    bench_req q = {0};
    bench_stats st = {.fresh_n = (int)(iters < 100 ? iters : 100)};
    cfg.n_recent = (uint32_t)N;
    cfg.seed = seed;
    cfg.q_short = (uint32_t)qshort; /* 0: the head the ranker issue specifies */
    cfg.cross = (uint32_t)cross;
    if (bits) cfg.tau = (uint32_t)bits;
    if (mdl_model_init(&m, &cfg, err, sizeof err)) {
        fprintf(stderr, "trail: bench rank: %s\n", err);
        return 1;
    }
    core_rng r;
    core_rng_seed(&r, seed ^ 0x62656e6368ull);
    /* the baseline: the same weights with exact target attention over the window */
    if (!(rc = mdl_model_clone(&ma, m))) {
        ma->cfg.long_kind = MDL_LONG_ATTN;
        mdl_params_bind(&ma->p, &ma->cfg, ma->arena);
        rc = bench_req_build(&q, m, (uint32_t)B, (uint32_t)T, (uint32_t)N, 1700000000, &r);
    }
    if (!rc) {
        new_candidates(&q, &r);
        rc = bench_run(&st, m, ma, &q, (int)iters, (int)aiters, &r);
    }
    if (rc)
        fprintf(stderr, "trail: bench rank: %s\n", core_strerror(rc));
    else
        bench_report(&cfg, &q, iters, aiters, &st, json);
    mdl_model_destroy(m);
    mdl_model_destroy(ma);
    core_free(q.window);
    core_free(q.V);
    core_free(q.cnt);
    core_free(q.item);
    core_free(q.cat);
    core_free(q.out);
    return rc ? 1 : 0;
}

int rank_cli_isa_init(const core_cmd *cmd) {
    char err[256];
    if (!rank_isa_init(err, sizeof err)) return 0;
    fprintf(stderr, "trail: %s: %s\n", cmd->name, err);
    return 2;
}

int rank_opt_isa(const char *value, void *dst, char *err, size_t err_size) {
    (void)dst;
    return rank_isa_force(value, err, err_size);
}

const core_cmd *const rank_cmds[] = {&model_info_cmd, &bench_cmd, NULL};

/* the bench's result: one JSON object, or "key value" lines */
static void bench_report(const mdl_config *cfg, const bench_req *q, uint64_t iters, uint64_t aiters,
                         const bench_stats *st, int json) {
    char vname[96], title[256];
    mdl_variant_str(cfg, vname, sizeof vname);
    snprintf(title, sizeof title, "bench rank: %u candidates, window %u, recent %u, %s, one thread",
             q->B, q->h.T, cfg->n_recent, vname);
    core_report r;
    core_report_begin(&r, stdout, json ? CORE_REPORT_JSON : CORE_REPORT_TEXT, title);
    core_report_u64(&r, "candidates", q->B);
    core_report_u64(&r, "window", q->h.T);
    core_report_u64(&r, "recent", cfg->n_recent);
    core_report_u64(&r, "C", cfg->C);
    core_report_u64(&r, "S", cfg->S);
    core_report_u64(&r, "tau", cfg->tau);
    core_report_strf(&r, "mlp", "%u-%u", cfg->h1, cfg->h2);
    core_report_u64(&r, "threads", 1);
    core_report_str(&r, "variant", vname);
    core_report_str(&r, "user_state",
                    "built in memory from the window by the bench (mdl_embed + enc_simhash_sign)");
    core_report_str(&r, "signature_cache", "warm");
    core_report_u64(&r, "sdim_iters", iters);
    core_report_pcts(&r, "sdim", st->sdim);
    core_report_u64(&r, "sdim_new_candidates_iters", (uint64_t)st->fresh_n);
    core_report_pcts(&r, "sdim_new_candidates", st->fresh);
    core_report_num(&r, "folded_head_p50_us", "%.1f", st->folded.p50); /* NaN: did not fold */
    core_report_num(&r, "plain_head_p50_us", "%.1f", st->plain.p50);
    core_report_u64(&r, "attention_iters", aiters);
    core_report_pcts(&r, "attention", st->attn);
    core_report_num(&r, "speedup", "%.2f", st->attn.p50 / st->sdim.p50);
    core_report_pcts(&r, "mlp_only", st->mlp);
    core_report_pcts(&r, "floor_sgemm", st->floor);
    core_report_num(&r, "sdim_cpu_p50_us", "%.1f", st->sdim_cpu.p50);
    core_report_num(&r, "attention_cpu_p50_us", "%.1f", st->attn_cpu.p50);
    core_report_num(&r, "loadavg_1m", "%.2f", core_proc_load1());
    core_report_str(&r, "isa", rank_isa_name(st->isa));
    core_report_str(&r, "precision", rank_isa_precision(st->isa));
    core_report_str(&r, "cpu_features", core_cpu_features());
    core_report_str(&r, "openblas_core", rank_isa_openblas_core());
    core_report_num(&r, "max_abs_diff_vs_fp32", "%.3g", st->path[st->isa].max_diff);
    core_report_obj(&r, "paths");
    for (int i = 0; i < RANK_ISA_COUNT; i++) {
        if (!st->path[i].ran) continue;
        core_report_obj(&r, rank_isa_name((rank_isa)i));
        core_report_str(&r, "precision", rank_isa_precision((rank_isa)i));
        core_report_u64(&r, "iters", (uint64_t)st->path[i].iters);
        core_report_pcts(&r, NULL, st->path[i].t);
        core_report_num(&r, "max_abs_diff_vs_fp32", "%.3g", st->path[i].max_diff);
        core_report_close(&r);
    }
    core_report_close(&r);
    core_report_num(&r, "head_gemm_p50_us", "%.1f", st->head.p50);
    core_report_num(&r, "head_gmacs_per_s", "%.1f", st->head_macs / st->head.p50 / 1e3);
    core_report_num(&r, "peak_gmacs_per_s", "%.1f", st->peak);
    core_report_end(&r);
}
