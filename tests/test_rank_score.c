/* test_rank_score.c: the serving path. The SDIM vector gathered from stored bucket sums equals the
 * one computed directly from the raw window with the same embeddings (1e-5); scores from stored
 * buckets equal scores from buckets built from the window; input order, empty users and limits.
 *
 * Stored buckets are built here with a naive loop over the window (mdl_embed + enc_simhash_sign),
 * standing in for the encoder's store, so this test does not depend on it.
 */
#include "test_common.h"

#include "core_alloc.h"
#include "core_err.h"
#include "core_util.h"
#include "enc_simhash.h"
#include "rank_blas.h"
#include "rank_isa.h"
#include "rank_net.h"
#include "rank_score.h"

#include <math.h>

enum { T = 600, N = 30, B = 40 };

typedef struct fx {
    mdl_model *m;
    sch_behavior win[T];
    float *V;      // (S, nb, C)
    uint32_t *cnt; // (S, nb)
    uint64_t item[B], cat[B];
} fx;

static uint32_t variant_q_short = 1; /* make_variant's head: with q (.) u_short or not */
static uint32_t variant_cross = 1;   /* make_variant's head: with the cross statistics or not */

static void make_variant(fx *f, uint32_t long_kind, uint32_t short_kind, uint32_t temporal_kind,
                         uint32_t n_dense) {
    mdl_config cfg;
    char err[256];
    memset(f, 0, sizeof *f);
    mdl_config_default(&cfg);
    cfg.item_rows = 5000;
    cfg.cat_rows = 200;
    cfg.long_kind = long_kind;
    cfg.short_kind = short_kind;
    cfg.temporal_kind = temporal_kind;
    cfg.n_dense = n_dense;
    cfg.q_short = variant_q_short;
    cfg.cross = variant_cross;
    cfg.n_recent = 20;
    cfg.h1 = 32;
    cfg.h2 = 16;
    assert_int_equal(mdl_model_init(&f->m, &cfg, err, sizeof err), 0);
    /* embeddings at a scale where buckets differ clearly */
    for (size_t i = 0; i < (size_t)cfg.item_rows * cfg.C / 2; i++)
        f->m->p.item_emb[i] *= 10.f;
    core_rng r;
    core_rng_seed(&r, 3);
    for (int j = 0; j < T; j++)
        f->win[j] = (sch_behavior){1 + core_rng_below(&r, 3000), 1 + core_rng_below(&r, 100),
                                   1700000000 - (T - j) * 600, 1};
    for (int b = 0; b < B; b++) {
        f->item[b] = 1 + core_rng_below(&r, 3000);
        f->cat[b] = 1 + core_rng_below(&r, 100);
    }
    /* the store's bucket sums, by a naive loop */
    int S = (int)cfg.S, nb = 1 << cfg.tau, C = (int)cfg.C;
    f->V = calloc((size_t)S * nb * C, sizeof(float));
    f->cnt = calloc((size_t)S * nb, sizeof(uint32_t));
    assert_true(f->V && f->cnt);
    float x[1024];
    uint16_t sig[64];
    for (int j = 0; j < T; j++) {
        mdl_embed(f->m, f->win[j].item_id, f->win[j].category_id, x);
        enc_simhash_sign(sig, x, f->m->p.simhash_r, S, (int)cfg.tau, C);
        for (int i = 0; i < S; i++) {
            for (int c = 0; c < C; c++)
                f->V[((size_t)i * nb + sig[i]) * C + c] += x[c];
            f->cnt[i * nb + sig[i]]++;
        }
    }
}

static void make(fx *f, uint32_t long_kind) {
    mdl_config d;
    mdl_config_default(&d);
    make_variant(f, long_kind, d.short_kind, d.temporal_kind, 0);
}

static void unmake(fx *f) {
    free(f->V);
    free(f->cnt);
    mdl_model_destroy(f->m);
}

/* u_long(q) straight from the raw window, in double (window embeddings and signatures computed
 * once per call with the encoder's own functions) */
static void sdim_direct(const fx *f, const float *q, double *u) {
    const mdl_config *c = &f->m->cfg;
    int S = (int)c->S, C = (int)c->C;
    static float x[T][64];
    static uint16_t xs[T][64];
    uint16_t qs[64];
    double v[1024];
    assert_true(C <= 64 && S <= 64);
    for (int j = 0; j < T; j++) {
        mdl_embed(f->m, f->win[j].item_id, f->win[j].category_id, x[j]);
        enc_simhash_sign(xs[j], x[j], f->m->p.simhash_r, S, (int)c->tau, C);
    }
    enc_simhash_sign(qs, q, f->m->p.simhash_r, S, (int)c->tau, C);
    for (int k = 0; k < C; k++)
        u[k] = 0;
    for (int i = 0; i < S; i++) {
        for (int k = 0; k < C; k++)
            v[k] = 0;
        for (int j = 0; j < T; j++)
            if (xs[j][i] == qs[i])
                for (int k = 0; k < C; k++)
                    v[k] += x[j][k];
        double nrm = 0;
        for (int k = 0; k < C; k++)
            nrm += v[k] * v[k];
        nrm = fmax(sqrt(nrm), 1e-6);
        for (int k = 0; k < C; k++)
            u[k] += v[k] / nrm / S;
    }
}

static void test_sdim_stored_equals_window(void **state) {
    (void)state;
    fx f;
    make(&f, MDL_LONG_SDIM);
    char err[256];
    rank_net *net;
    enc_sigcache *sc;
    rank_net_shape sh = {.max_B = B, .max_U = 1, .max_T = T};
    assert_int_equal(rank_net_new(&net, &f.m->cfg, &sh, err, sizeof err), 0);
    assert_int_equal(enc_sigcache_new(&sc, f.m, 4096), 0);
    /* the window rides along for the cross statistics only; SDIM reads the stored buckets */
    rank_history h = {.bucket_sum = f.V,
                      .bucket_cnt = f.cnt,
                      .window_len = T,
                      .window = f.win,
                      .T = T,
                      .now_ts = 1700000000};
    rank_batch bt = {
        .users = &h, .U = 1, .item_id = f.item, .category_id = f.cat, .B = B, .sigcache = sc};
    float p_stored[B], p_window[B];
    assert_int_equal(rank_net_forward(net, f.m, &bt, NULL, p_stored), 0);
    int C = (int)f.m->cfg.C, nonzero = 0;
    for (int b = 0; b < B; b++) {
        const float *z = rank_net_head_input(net, (uint32_t)b);
        double u[1024];
        sdim_direct(&f, z, u); /* z starts with q */
        for (int k = 0; k < C; k++) {
            if (fabs(z[C + k] - u[k]) > 1e-5) fail_msg("b %d k %d: %g vs %g", b, k, z[C + k], u[k]);
            nonzero += u[k] != 0;
        }
    }
    assert_true(nonzero > B * C / 2);
    /* the same scores when the net builds the buckets from the raw window itself */
    h = (rank_history){.window = f.win, .T = T, .now_ts = 1700000000};
    assert_int_equal(rank_net_forward(net, f.m, &bt, NULL, p_window), 0);
    for (int b = 0; b < B; b++)
        assert_true(fabs(p_stored[b] - p_window[b]) < 1e-6);
    /* and without a signature cache (training): signatures computed once per distinct item in the
     * forward give the same bits, hence the same scores, twice in a row */
    float p_nocache[B];
    bt.sigcache = NULL;
    for (int rep = 0; rep < 2; rep++) {
        assert_int_equal(rank_net_forward(net, f.m, &bt, NULL, p_nocache), 0);
        for (int b = 0; b < B; b++)
            assert_true(p_nocache[b] == p_window[b]);
    }
    rank_net_destroy(net);
    enc_sigcache_destroy(sc);
    unmake(&f);
}

/* avgpool from stored buckets equals the plain mean of the window */
static void test_avgpool_stored_equals_mean(void **state) {
    (void)state;
    fx f;
    make(&f, MDL_LONG_AVGPOOL);
    char err[256];
    rank_net *net;
    rank_net_shape sh = {.max_B = B, .max_U = 1, .max_T = 0};
    assert_int_equal(rank_net_new(&net, &f.m->cfg, &sh, err, sizeof err), 0);
    rank_history h = {.bucket_sum = f.V, .bucket_cnt = f.cnt, .window_len = T};
    rank_batch bt = {.users = &h, .U = 1, .item_id = f.item, .category_id = f.cat, .B = 3};
    float p[3];
    assert_int_equal(rank_net_forward(net, f.m, &bt, NULL, p), 0);
    int C = (int)f.m->cfg.C;
    double mean[1024] = {0};
    float x[1024];
    for (int j = 0; j < T; j++) {
        mdl_embed(f.m, f.win[j].item_id, f.win[j].category_id, x);
        for (int k = 0; k < C; k++)
            mean[k] += x[k] / T;
    }
    for (int b = 0; b < 3; b++) {
        const float *z = rank_net_head_input(net, (uint32_t)b);
        for (int k = 0; k < C; k++)
            assert_true(fabs(z[C + k] - mean[k]) < 1e-5);
    }
    rank_net_destroy(net);
    unmake(&f);
}

static void test_rank_score_order_and_limits(void **state) {
    (void)state;
    fx f;
    make(&f, MDL_LONG_SDIM);
    rank_scratch *s;
    assert_int_equal(rank_scratch_new(&s, f.m, B, 0), 0);
    sch_behavior rec[N];
    for (int k = 0; k < N; k++)
        rec[k] = f.win[T - N + k];
    rank_history h = {.bucket_sum = f.V,
                      .bucket_cnt = f.cnt,
                      .window_len = T,
                      .recent = rec,
                      .N = N,
                      .now_ts = 1700000000};
    float all[B], one;
    assert_int_equal(rank_score(all, s, f.m, &h, f.item, f.cat, B), 0);
    for (int b = 0; b < B; b++) {
        assert_true(all[b] > 0.f && all[b] < 1.f);
        assert_int_equal(rank_score(&one, s, f.m, &h, &f.item[b], &f.cat[b], 1), 0);
        assert_true(fabs(one - all[b]) < 1e-6); /* order kept, no cross-candidate leakage */
    }
    /* reversed input gives reversed output */
    uint64_t ri[B], rc[B];
    float rev[B];
    for (int b = 0; b < B; b++)
        ri[b] = f.item[B - 1 - b], rc[b] = f.cat[B - 1 - b];
    assert_int_equal(rank_score(rev, s, f.m, &h, ri, rc, B), 0);
    for (int b = 0; b < B; b++)
        assert_true(fabs(rev[b] - all[B - 1 - b]) < 1e-6);
    /* an unknown user: empty history, still scores, and differently from a known one */
    rank_history empty = {.now_ts = 1700000000};
    float none[B];
    int differ = 0;
    assert_int_equal(rank_score(none, s, f.m, &empty, f.item, f.cat, B), 0);
    for (int b = 0; b < B; b++) {
        assert_true(none[b] > 0.f && none[b] < 1.f);
        differ += fabs(none[b] - all[b]) > 1e-6;
    }
    assert_true(differ > B / 2);
    /* the request path allocates nothing: with every allocation failing it still scores */
    float again[B];
    core_alloc_fail_after(0, 1);
    int arc = rank_score(again, s, f.m, &h, f.item, f.cat, B);
    core_alloc_fail_after(-1, 0);
    assert_int_equal(arc, 0);
    for (int b = 0; b < B; b++)
        assert_true(again[b] == all[b]);
    /* limits */
    assert_int_equal(rank_score(all, s, f.m, &h, f.item, f.cat, B + 1), CORE_ETOOBIG);
    mdl_model *other;
    assert_int_equal(mdl_model_clone(&other, f.m), 0);
    assert_int_equal(rank_score(all, s, other, &h, f.item, f.cat, B), CORE_EINVAL);
    mdl_model_destroy(other);
    rank_scratch_destroy(s);
    unmake(&f);
}

/* attention over a window longer than the scratch was sized for is refused, not overrun */
static void test_attention_window_limit(void **state) {
    (void)state;
    fx f;
    make(&f, MDL_LONG_ATTN);
    rank_scratch *s;
    assert_int_equal(rank_scratch_new(&s, f.m, B, 100), 0);
    rank_history h = {.window = f.win, .T = 101, .now_ts = 1700000000};
    float out[B];
    assert_int_equal(rank_score(out, s, f.m, &h, f.item, f.cat, B), CORE_ETOOBIG);
    h.T = 100;
    assert_int_equal(rank_score(out, s, f.m, &h, f.item, f.cat, B), 0);
    rank_scratch_destroy(s);
    unmake(&f);
}

/* exact attention runs in blocks of candidates: a batch of 130 equals one-at-a-time scoring */
static void test_attention_blocks_equal_single(void **state) {
    (void)state;
    fx f;
    make(&f, MDL_LONG_ATTN);
    enum { NB = 130 };
    uint64_t it[NB], ca[NB];
    for (int b = 0; b < NB; b++)
        it[b] = 1 + (uint64_t)b * 37 % 3000, ca[b] = 1 + (uint64_t)b % 100;
    rank_scratch *s;
    assert_int_equal(rank_scratch_new(&s, f.m, NB, T), 0);
    rank_history h = {.window = f.win, .T = T, .now_ts = 1700000000};
    float all[NB], one;
    assert_int_equal(rank_score(all, s, f.m, &h, it, ca, NB), 0);
    for (int b = 0; b < NB; b++) {
        assert_int_equal(rank_score(&one, s, f.m, &h, &it[b], &ca[b], 1), 0);
        assert_true(fabsf(one - all[b]) < 1e-6f);
    }
    rank_scratch_destroy(s);
    unmake(&f);
}

/* every allocation of the setup path fails cleanly (ASan checks for leaks) */
static void test_scratch_alloc_failures(void **state) {
    (void)state;
    fx f;
    make(&f, MDL_LONG_ATTN);
    for (int persistent = 0; persistent < 2; persistent++) {
        rank_scratch *s = NULL;
        TEST_ALLOC_SWEEP(persistent, rank_scratch_new(&s, f.m, B, 100), assert_true(sweep_n < 64),
                         rank_scratch_destroy(s));
    }
    unmake(&f);
}

/* The cross block of each candidate equals a plain scan of its own user's window, in double:
 * counts of its category and item, the time since the latest of each (1.5 when absent), the hour-
 * and day-decayed counts and the count at the request's time of day. Three users interleaved
 * (one with an empty window), categories and items absent from a window, behaviors after the
 * request time (gap 0) and on earlier days at nearly the same time of day (both sides of the
 * hour, across midnight). */
static void test_cross_statistics_match_a_scan(void **state) {
    (void)state;
    enum { XU = 3, XB = 30, XT = 240 };
    fx f;
    make_variant(&f, MDL_LONG_NONE, MDL_SHORT_DIN, MDL_TEMPORAL_NONE, 0);
    const int64_t now =
        1700000000 - 1700000000 % 86400 + 600; /* 00:10 UTC: the hour spans midnight */
    static sch_behavior win[XU][XT];
    uint32_t Tu[XU] = {XT, 0, 57};
    core_rng r;
    core_rng_seed(&r, 11);
    for (int u = 0; u < XU; u++)
        for (uint32_t j = 0; j < Tu[u]; j++) {
            int64_t back; /* oldest first, the last few after the request */
            switch (core_rng_below(&r, 4)) {
            case 0:
                back = 86400 * (int64_t)(1 + core_rng_below(&r, 20)) +
                       (int64_t)core_rng_below(&r, 7300) - 3650;
                break; /* ~ same time of day */
            case 1:
                back = (int64_t)core_rng_below(&r, 4 * 3600);
                break;
            case 2:
                back = (int64_t)core_rng_below(&r, 60 * 86400);
                break;
            default:
                back = -(int64_t)core_rng_below(&r, 300);
                break;
            }
            win[u][j] = (sch_behavior){1 + core_rng_below(&r, 30), 1 + core_rng_below(&r, 8),
                                       now - back, 1};
        }
    rank_history h[XU];
    for (int u = 0; u < XU; u++)
        h[u] = (rank_history){.window = win[u], .T = Tu[u], .now_ts = now + u};
    uint64_t it[XB], ca[XB];
    uint32_t us[XB];
    for (int b = 0; b < XB; b++) { /* categories 9 and 10, items 31..35 never occur */
        it[b] = 1 + core_rng_below(&r, 35);
        ca[b] = 1 + core_rng_below(&r, 10);
        us[b] = (uint32_t)(b * 7 % XU);
    }
    char err[256];
    rank_net *net;
    rank_net_shape sh = {.max_B = XB, .max_U = XU, .max_T = XT, .train = 1};
    assert_int_equal(rank_net_new(&net, &f.m->cfg, &sh, err, sizeof err), 0);
    rank_batch bt = {.users = h, .U = XU, .item_id = it, .category_id = ca, .user = us, .B = XB};
    for (int pass = 0; pass < 2; pass++) { /* the second forward reuses the stamped tables */
        assert_int_equal(rank_net_forward(net, f.m, &bt, NULL, NULL), 0);
        mdl_mlp_cols col;
        mdl_mlp_layout(&f.m->cfg, &col);
        assert_true(col.cross > 0);
        int seen = 0, never = 0, tod = 0;
        for (int b = 0; b < XB; b++) {
            const rank_history *hu = &h[us[b]];
            double nc = 0, ni = 0, eh = 0, ed = 0, nt = 0;
            int64_t lc = INT64_MIN, li = INT64_MIN;
            for (uint32_t j = 0; j < hu->T; j++) {
                const sch_behavior *w = &hu->window[j];
                double gap = hu->now_ts > w->ts ? (double)(hu->now_ts - w->ts) : 0.;
                if (w->category_id == ca[b]) {
                    int64_t d = ((w->ts - hu->now_ts) % 86400 + 86400) % 86400;
                    nc += 1;
                    eh += exp(-gap / 3600.);
                    ed += exp(-gap / 86400.);
                    nt += d < 3600 || 86400 - d < 3600;
                    if (w->ts > lc) lc = w->ts;
                }
                if (w->item_id == it[b]) {
                    ni += 1;
                    if (w->ts > li) li = w->ts;
                }
            }
            double want[8] = {
                log1p(nc),
                nc > 0,
                lc == INT64_MIN ? 1.5 : log1p(fmax(0., (double)(hu->now_ts - lc)) / 60.) / 10.,
                log1p(eh),
                log1p(ed),
                log1p(nt),
                log1p(ni),
                li == INT64_MIN ? 1.5 : log1p(fmax(0., (double)(hu->now_ts - li)) / 60.) / 10.};
            const float *z = rank_net_head_input(net, (uint32_t)b) + col.cross;
            for (int k = 0; k < 8; k++)
                if (fabs(z[k] - want[k]) > 1e-5 * (1 + fabs(want[k])))
                    fail_msg("pass %d candidate %d (user %u) statistic %d: %.7g, scan %.7g", pass,
                             b, us[b], k, z[k], want[k]);
            seen += nc > 0;
            never += nc == 0;
            tod += nt > 0;
        }
        assert_true(seen > 5 && never > 5 && tod > 3); /* every case occurs */
    }
    rank_net_destroy(net);
    unmake(&f);
}

/* Serving one user with many candidates folds the user-side first-layer terms (u_long of sdim and
 * avgpool, u_short, dense) into per-user projections; that must give the scores of the plain head
 * (the training-mode net never folds) for every variant, and still allocate nothing. */
static void test_folded_head_equals_assembled(void **state) {
    (void)state;
    enum { NB = 520 }; /* >= S * nb = 128 and >= n_recent: the serving net folds; two blocks */
    static const uint32_t longs[] = {MDL_LONG_NONE, MDL_LONG_AVGPOOL, MDL_LONG_SDIM, MDL_LONG_ATTN};
    static const uint32_t shorts[] = {MDL_SHORT_NONE, MDL_SHORT_DIN, MDL_SHORT_SELFATTN};
    uint64_t it[NB], ca[NB];
    for (int b = 0; b < NB; b++)
        it[b] = 1 + (uint64_t)b * 53 % 3000, ca[b] = 1 + (uint64_t)b * 7 % 100;
    float dense[3] = {0.5f, -1.25f, 2.f};
    int variants = 0;
    for (size_t li = 0; li < sizeof longs / sizeof *longs; li++)
        for (size_t si = 0; si < sizeof shorts / sizeof *shorts; si++)
            for (uint32_t tin = 0; tin <= 1; tin++) {
                if (longs[li] == MDL_LONG_NONE && shorts[si] == MDL_SHORT_NONE && !tin) continue;
                uint32_t nd = (uint32_t)(variants % 2) * 3; /* every other variant has dense */
                /* each short kind with and without q (.) u_short, four long/tin pairs each */
                variant_q_short = (uint32_t)(li + si + tin) % 2;
                variant_cross = (uint32_t)(li + si + tin + 1) % 2 || li == 3;
                fx f;
                make_variant(&f, longs[li], shorts[si], tin ? MDL_TEMPORAL_TIN : MDL_TEMPORAL_NONE,
                             nd);
                sch_behavior rec[N];
                for (int k = 0; k < N; k++)
                    rec[k] = f.win[T - N + k];
                int attn = longs[li] == MDL_LONG_ATTN;
                rank_history h = {.bucket_sum = attn ? NULL : f.V,
                                  .bucket_cnt = attn ? NULL : f.cnt,
                                  .window_len = T,
                                  .window = f.win,
                                  .T = attn || variant_cross ? T : 0,
                                  .recent = rec,
                                  .N = N,
                                  .now_ts = 1700000000,
                                  .dense = nd ? dense : NULL};
                char err[256];
                rank_net *plain;
                enc_sigcache *sc;
                rank_net_shape sh = {.max_B = NB, .max_U = 1, .max_T = T, .train = 1};
                assert_int_equal(rank_net_new(&plain, &f.m->cfg, &sh, err, sizeof err), 0);
                assert_int_equal(enc_sigcache_new(&sc, f.m, 4096), 0);
                rank_batch bt = {
                    .users = &h, .U = 1, .item_id = it, .category_id = ca, .B = NB, .sigcache = sc};
                float want[NB], got[NB];
                assert_int_equal(rank_net_forward(plain, f.m, &bt, NULL, want), 0);
                assert_false(rank_net_folded(plain));
                /* a serving net told not to fold runs the plain head: the same scores */
                rank_net *nofold;
                rank_net_shape shn = {.max_B = NB, .max_U = 1, .max_T = T, .no_fold = 1};
                float nf[NB];
                assert_int_equal(rank_net_new(&nofold, &f.m->cfg, &shn, err, sizeof err), 0);
                assert_int_equal(rank_net_forward(nofold, f.m, &bt, NULL, nf), 0);
                assert_false(rank_net_folded(nofold));
                for (int b = 0; b < NB; b++)
                    assert_true(fabs((double)nf[b] - want[b]) <= 1e-6);
                rank_net_destroy(nofold);
                rank_scratch *s;
                assert_int_equal(rank_scratch_new(&s, f.m, NB, T), 0);
                core_alloc_fail_after(0, 1);
                int rc = rank_score(got, s, f.m, &h, it, ca, NB);
                core_alloc_fail_after(-1, 0);
                assert_int_equal(rc, 0);
                double worst = 0;
                int spread = 0;
                for (int b = 0; b < NB; b++) {
                    double d = fabs((double)got[b] - want[b]);
                    worst = d > worst ? d : worst;
                    spread += fabsf(want[b] - want[0]) > 1e-4f;
                }
                if (worst > 2e-6)
                    fail_msg("variant long %u short %u tin %u dense %u q_short %u: folded head "
                             "differs by %g",
                             longs[li], shorts[si], tin, nd, variant_q_short, worst);
                assert_true(spread > NB / 2); /* the scores depend on the candidate */
                /* fewer candidates than the fold repays: the plain head, same scores */
                assert_int_equal(rank_score(got, s, f.m, &h, it, ca, 8), 0);
                for (int b = 0; b < 8; b++)
                    assert_true(fabs((double)got[b] - want[b]) <= 2e-6);
                /* a user with no recent behaviors, right after one with them: u_short is 0,
                 * not what the last request left in the scratch */
                rank_history h0 = h;
                h0.N = 0;
                rank_batch b0 = bt;
                b0.users = &h0;
                assert_int_equal(rank_net_forward(plain, f.m, &b0, NULL, want), 0);
                assert_int_equal(rank_score(got, s, f.m, &h, it, ca, NB), 0);
                assert_int_equal(rank_score(got, s, f.m, &h0, it, ca, NB), 0);
                for (int b = 0; b < NB; b++)
                    if (fabs((double)got[b] - want[b]) > 2e-6)
                        fail_msg("variant long %u short %u tin %u q_short %u, no recent: candidate "
                                 "%d folded %g plain %g",
                                 longs[li], shorts[si], tin, variant_q_short, b, got[b], want[b]);
                /* every other compute path on the same requests (folded, with no recent
                 * behaviors, unfolded), within its bound of the fp32 path that s runs */
                float ref_h[NB], ref_h0[NB], pg[NB];
                assert_int_equal(rank_score(ref_h, s, f.m, &h, it, ca, NB), 0);
                assert_int_equal(rank_score(ref_h0, s, f.m, &h0, it, ca, NB), 0);
                for (int i = 0; i < RANK_ISA_COUNT; i++) {
                    if (i == RANK_ISA_FP32 || !rank_isa_available((rank_isa)i)) continue;
                    rank_scratch *sp;
                    assert_int_equal(rank_scratch_new_isa(&sp, f.m, NB, T, (rank_isa)i), 0);
                    for (int pass = 0; pass < 3; pass++) {
                        const rank_history *hh = pass == 1 ? &h0 : &h;
                        const float *r = pass == 1 ? ref_h0 : ref_h;
                        uint32_t nb = pass == 2 ? 8 : NB;
                        assert_int_equal(rank_score(pg, sp, f.m, hh, it, ca, nb), 0);
                        for (uint32_t b = 0; b < nb; b++)
                            if (!(fabs((double)pg[b] - r[b]) <= rank_isa_max_dp((rank_isa)i)))
                                fail_msg("variant long %u short %u tin %u dense %u: path %s "
                                         "pass %d candidate %u: %g vs fp32 %g",
                                         longs[li], shorts[si], tin, nd, rank_isa_name((rank_isa)i),
                                         pass, b, pg[b], r[b]);
                    }
                    assert_int_equal(rank_scratch_route_fallbacks(sp), 0);
                    rank_scratch_destroy(sp);
                }
                rank_scratch_destroy(s);
                rank_net_destroy(plain);
                enc_sigcache_destroy(sc);
                unmake(&f);
                variants++;
            }
    assert_int_equal(variants, 23);
    variant_q_short = 1;
    variant_cross = 1;
}

int main(void) {
    /* exact comparisons with fp32 references: score on the fp32 path (the reduced-precision
     * paths are bounded against it in test_rank_paths) */
    setenv("TRAIL_ISA", "fp32", 1);
    rank_blas_single_thread();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sdim_stored_equals_window),
        cmocka_unit_test(test_avgpool_stored_equals_mean),
        cmocka_unit_test(test_rank_score_order_and_limits),
        cmocka_unit_test(test_attention_window_limit),
        cmocka_unit_test(test_scratch_alloc_failures),
        cmocka_unit_test(test_attention_blocks_equal_single),
        cmocka_unit_test(test_folded_head_equals_assembled),
        cmocka_unit_test(test_cross_statistics_match_a_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
