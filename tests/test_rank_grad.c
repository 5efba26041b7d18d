/* test_rank_grad.c: gradient checks of the whole network, every parameter group of every variant
 * (long none|avgpool|sdim|attention x short none|selfattn|din x temporal none|tin), on small
 * shapes with three users (one with an empty history) and candidates interleaved across users.
 *
 * Loss L = sum_b w_b logit_b (w random), so dlogits = w. The network runs in float (there is no
 * double build of it); L is summed in double and the difference quotient is Richardson-extrapolated
 * with a step of 0.12, shrunk when a step would cross a ReLU kink. Per parameter group:
 *  - single entries (the 4 largest |grad| and 3 random ones): relative error <= 1e-3, or
 *    absolute error <= 3e-4 for small entries (the float rounding floor of the quotient);
 *  - the directional derivative along a random +-1 direction over all the group's entries
 *    (which catches a wrong or missing row anywhere in the group): error <= 1e-2 sum |grad| + 3e-4,
 *    the documented float tolerance, since each entry then moves by only 0.12 / sqrt(entries) and
 *    the signed sum cancels;
 *  - tensors a variant does not use must get exactly zero gradient, used ones a nonzero one.
 * SDIM signatures are frozen during the check by a pre-warmed signature cache, as the hash has no
 * gradient (docs/MODEL.md section 5.2).
 */
#include "test_common.h"

#include "core_err.h"
#include "core_util.h"
#include "enc_simhash.h"
#include "rank_blas.h"
#include "rank_net.h"

#include <math.h>

enum { U = 3, B = 8 };

typedef struct fixture {
    mdl_model *m;
    rank_net *net;
    enc_sigcache *sc;
    sch_behavior win[U][14], rec[U][7];
    rank_history users[U];
    float dense[U][2];
    uint64_t item[B], cat[B];
    uint32_t user[B];
    rank_batch bt;
    float w[B];
} fixture;

/* Every trainable tensor from N(0, sd^2) (LayerNorm gains around 1). The long attention's
 * projections (format version 2) draw from their own stream, so every other tensor keeps the
 * values, and every check the point, it had before they existed. */
static void randomize(mdl_model *m, uint64_t seed) {
    core_rng r, rl;
    core_rng_seed(&r, seed);
    core_rng_seed(&rl, seed ^ 0x6c6f6e67ull);
    for (int i = 0; i < m->n_tensors; i++) {
        const mdl_tensor *t = &m->tensors[i];
        if (!t->trainable) continue;
        float *x = m->arena + t->offset;
        int is_ln_w = strstr(t->name, "ln") && strstr(t->name, "_w");
        double sd = strstr(t->name, "emb") ? 0.5 : 0.4;
        core_rng *g = !strcmp(t->name, "w_lq") || !strcmp(t->name, "w_lk") ? &rl : &r;
        for (size_t k = 0; k < t->count; k++)
            x[k] = (float)((is_ln_w ? 1.0 : 0.0) + sd * core_rng_gauss(g));
    }
}

/* t2: user 2's window length (9 by default). Long attention projects on the candidate side unless a
 * user's window is shorter than its candidate group (user 2 has 3 candidates), so t2 = 2 puts user
 * 2 on the key side while user 0 (14 rows, 2 candidates) stays on the query side. */
static uint32_t fixture_q_short = 1;          /* the head with or without q (.) u_short */
static uint32_t fixture_cross = 0;            /* the cross statistics in the head */
static float fixture_keep[B * RANK_BRANCHES]; /* branch dropout's multipliers, when used */
static int fixture_dropout = 0;

static void setup_fixture(fixture *f, uint32_t lk, uint32_t sk, uint32_t tk, uint32_t t2) {
    mdl_config cfg;
    char err[256];
    memset(f, 0, sizeof *f);
    mdl_config_default(&cfg);
    cfg.C = 8;
    cfg.S = 4;
    cfg.tau = 2;
    cfg.item_rows = 97;
    cfg.cat_rows = 13;
    cfg.long_kind = lk;
    cfg.short_kind = sk;
    cfg.temporal_kind = tk;
    cfg.n_recent = 5;
    cfg.n_blocks = 2;
    cfg.n_heads = 2;
    cfg.ffn_dim = 6;
    cfg.tin_buckets = 6;
    cfg.h1 = 10;
    cfg.h2 = 6;
    cfg.n_dense = 2;
    cfg.seed = 7;
    cfg.q_short = fixture_q_short;
    cfg.cross = fixture_cross;
    assert_int_equal(mdl_model_init(&f->m, &cfg, err, sizeof err), 0);
    randomize(f->m, 99 + lk * 16 + sk * 4 + tk);
    rank_net_shape sh = {.max_B = B, .max_U = U, .max_T = 14, .train = 1};
    assert_int_equal(rank_net_new(&f->net, &cfg, &sh, err, sizeof err), 0);
    assert_int_equal(enc_sigcache_new(&f->sc, f->m, 1u << 16), 0);

    core_rng r;
    core_rng_seed(&r, 5);
    uint32_t T[U] = {14, 0, t2}, N[U] = {7, 0, 3};
    int64_t now = 1700000000;
    for (int u = 0; u < U; u++) {
        for (uint32_t j = 0; j < T[u]; j++)
            f->win[u][j] = (sch_behavior){1 + core_rng_below(&r, 40), 1 + core_rng_below(&r, 6),
                                          now - 86400 * (int64_t)(T[u] - j), 1};
        for (uint32_t j = 0; j < N[u]; j++) /* gaps from seconds to weeks: several TIN buckets */
            f->rec[u][j] = (sch_behavior){1 + core_rng_below(&r, 40), 1 + core_rng_below(&r, 6),
                                          now - (int64_t)(30 << (2 * (N[u] - j))), 1};
        f->dense[u][0] = (float)u - 0.5f;
        f->dense[u][1] = 0.25f * (float)u;
        f->users[u] = (rank_history){.window = f->win[u],
                                     .T = T[u],
                                     .recent = f->rec[u],
                                     .N = N[u],
                                     .now_ts = now,
                                     .dense = f->dense[u]};
    }
    for (int b = 0; b < B; b++) {
        f->item[b] = 1 + core_rng_below(&r, 40);
        f->cat[b] = 1 + core_rng_below(&r, 6);
        f->user[b] = (uint32_t)((b * 2 + b / 3) % U);
        f->w[b] = (float)(core_rng_uniform(&r) * 2 - 1);
    }
    f->bt = (rank_batch){.users = f->users,
                         .U = U,
                         .item_id = f->item,
                         .category_id = f->cat,
                         .user = f->user,
                         .B = B,
                         .sigcache = f->sc,
                         .branch_keep = fixture_dropout ? fixture_keep : NULL};
}

static void teardown_fixture(fixture *f) {
    rank_net_destroy(f->net);
    enc_sigcache_destroy(f->sc);
    mdl_model_destroy(f->m);
}

static double loss(fixture *f);

#define H 0.12 /* finite-difference step (Richardson-extrapolated, see numeric) */

/* The absolute floor is the float32 forward's noise, not a slack for bugs: through two
 * LayerNorm'd self-attention blocks the rounding of the loss gives single-entry differences errors
 * of 3e-4 to 7e-4 whatever the step (measured with the randomization seeds 99 to 499, with and
 * without q_short; they do not shrink as H does). A wrong term moves a gradient by far more:
 * dropping q (.) u_short's share of dq fails by 1e-2 and up. */
static int grad_ok(double an, double nu, double rel) {
    if (isnan(nu)) return 1; /* skipped at a kink; counted in n_skipped */
    double d = fabs(an - nu);
    return d <= rel * fmax(fabs(an), fabs(nu)) || d <= 1e-3;
}

static int n_skipped, n_checks;

/* d/dt L(p + t dir) at t = 0 by central differences with Richardson extrapolation:
 * D(h) = (L(p+h dir) - L(p-h dir)) / 2h has error c h^2 + O(h^4), so (4 D(h/2) - D(h)) / 3 removes
 * the h^2 term; that lets h stay large enough for float rounding to stay small. A step that flips
 * a ReLU crosses a kink, where no difference quotient means anything: h shrinks until none flips.
 * Returns NAN (and counts a skip) if h would have to shrink below 1/64 of its start. */
static double numeric(fixture *f, float *p, const float *keep, const double *dir, size_t n,
                      double h) {
    loss(f);
    uint64_t base = rank_net_relu_pattern(f->net);
    n_checks++;
    for (double h_min = h / 64; h >= h_min; h /= 4) {
        double D[2];
        int flipped = 0;
        for (int s = 0; s < 2 && !flipped; s++) {
            double hs = s ? h / 2 : h, l[2];
            for (int sign = 0; sign < 2; sign++) {
                for (size_t k = 0; k < n; k++)
                    if (dir[k] == 1 || dir[k] == -1)
                        p[k] = keep[k] + (float)((sign ? -hs : hs) * dir[k]);
                l[sign] = loss(f);
                flipped |= rank_net_relu_pattern(f->net) != base;
            }
            D[s] = (l[0] - l[1]) / (2 * hs);
        }
        memcpy(p, keep, n * sizeof(float));
        if (!flipped) return (4 * D[1] - D[0]) / 3;
    }
    n_skipped++;
    return NAN;
}

static double loss(fixture *f) {
    float lg[B];
    assert_int_equal(rank_net_forward(f->net, f->m, &f->bt, lg, NULL), 0);
    double l = 0;
    for (int b = 0; b < B; b++)
        l += (double)f->w[b] * lg[b];
    return l;
}

/* Is tensor t used by this variant? (Unused ones must get exactly zero gradient.) */
static int tensor_used(const mdl_config *c, const char *name) {
    int sa = c->short_kind == MDL_SHORT_SELFATTN, sh = c->short_kind != MDL_SHORT_NONE;
    if (!strncmp(name, "blk", 3) || !strncmp(name, "lnf", 3) || !strcmp(name, "pos_emb")) return sa;
    if (!strcmp(name, "w_tq") || !strcmp(name, "w_tk")) return sh;
    if (!strcmp(name, "w_lq") || !strcmp(name, "w_lk")) return c->long_kind == MDL_LONG_ATTN;
    if (!strcmp(name, "tin_emb")) return c->temporal_kind != MDL_TEMPORAL_NONE;
    return strcmp(name, "simhash_r") != 0;
}

static int check_variant(uint32_t lk, uint32_t sk, uint32_t tk, uint32_t t2) {
    int n_bad = 0;
    fixture f;
    setup_fixture(&f, lk, sk, tk, t2);
    mdl_model *m = f.m;
    char vname[96];
    mdl_variant_str(&m->cfg, vname, sizeof vname);
    float *garena = calloc(m->n_floats, sizeof(float));
    assert_non_null(garena);
    mdl_params g;
    mdl_params_bind(&g, &m->cfg, garena);
    loss(&f); /* warms the signature cache: signatures are frozen from here on */
    float lg[B];
    assert_int_equal(rank_net_forward(f.net, m, &f.bt, lg, NULL), 0);
    rank_net_backward(f.net, m, &f.bt, f.w, &g);

    /* the touched lists cover every row with a nonzero embedding gradient */
    const uint32_t *tir, *tcr;
    uint32_t nti, ntc;
    rank_net_touched(f.net, &tir, &nti, &tcr, &ntc);
    uint8_t ti[97] = {0}, tc[13] = {0};
    for (uint32_t i = 0; i < nti; i++)
        assert_int_equal(ti[tir[i]]++, 0);
    for (uint32_t i = 0; i < ntc; i++)
        assert_int_equal(tc[tcr[i]]++, 0);
    for (uint32_t r = 0; r < 97; r++)
        for (uint32_t c = 0; c < 4; c++)
            if (g.item_emb[r * 4 + c] != 0.f || g.item_bias[r] != 0.f) assert_true(ti[r]);
    for (uint32_t r = 0; r < 13; r++)
        for (uint32_t c = 0; c < 4; c++)
            if (g.cat_emb[r * 4 + c] != 0.f) assert_true(tc[r]);

    core_rng r;
    core_rng_seed(&r, 1234);
    for (int ti_ = 0; ti_ < m->n_tensors; ti_++) {
        const mdl_tensor *t = &m->tensors[ti_];
        float *p = m->arena + t->offset, *gr = garena + t->offset;
        int used = tensor_used(&m->cfg, t->name);
        double gmax = 0;
        for (size_t k = 0; k < t->count; k++)
            gmax = fmax(gmax, fabs(gr[k]));
        if (!used) {
            if (gmax != 0) fail_msg("%s: unused tensor %s has gradient %g", vname, t->name, gmax);
            continue;
        }
        if (gmax == 0) fail_msg("%s: tensor %s got no gradient", vname, t->name);

        /* directional derivative over the whole group */
        double *dir = calloc(t->count, sizeof(double));
        uint8_t *taken = calloc(t->count, 1);
        float *keep = malloc(t->count * sizeof(float));
        assert_true(dir && taken && keep);
        memcpy(keep, p, t->count * sizeof(float));
        double gd = 0, nnz = 0, gl1 = 0;
        for (size_t k = 0; k < t->count; k++) { /* every entry: a missed one has grad 0 */
            dir[k] = core_rng_uniform(&r) < 0.5 ? -1 : 1;
            gd += dir[k] * gr[k];
            gl1 += fabs(gr[k]);
            nnz++;
        }
        /* the whole step has norm H, as a single-entry step has */
        double nd = numeric(&f, p, keep, dir, t->count, H / sqrt(nnz));
        /* relative to the scale the sum would have without cancellation, sum |grad| */
        if (!isnan(nd) && fabs(gd - nd) > 1e-2 * gl1 + 3e-4)
            print_error("%s: %s directional: analytic %.7g numeric %.7g (sum |grad| %.4g)\n", vname,
                        t->name, gd, nd, gl1),
                n_bad++;

        /* single entries: the four largest, then three more at random (zero or not) */
        memset(dir, 0, t->count * sizeof(double));
        for (int pick = 0, tries = 0; pick < 7 && tries < 32; pick++, tries++) {
            size_t best = 0;
            double bv = -1;
            if (pick < 4) {
                for (size_t k = 0; k < t->count; k++)
                    if (!taken[k] && fabs(gr[k]) > bv) bv = fabs(gr[k]), best = k;
            } else {
                for (int k = 0; k < 64 && bv < 0; k++) {
                    best = core_rng_below(&r, t->count);
                    if (!taken[best]) bv = fabs(gr[best]);
                }
            }
            if (bv < 0 || (pick < 4 && bv == 0)) break;
            taken[best] = 1;
            dir[best] = 1;
            nd = numeric(&f, p, keep, dir, t->count, H);
            dir[best] = 0;
            if (isnan(nd)) { /* on a kink: check another entry instead */
                pick--;
                continue;
            }
            if (!grad_ok(gr[best], nd, 1e-3))
                print_error("%s: %s[%zu]: analytic %.7g numeric %.7g\n", vname, t->name, best,
                            gr[best], nd),
                    n_bad++;
        }
        free(taken);
        free(dir);
        free(keep);
    }
    free(garena);
    teardown_fixture(&f);
    return n_bad;
}

static void test_grad_every_variant(void **state) {
    (void)state;
    int n_bad = 0;
    for (fixture_q_short = 0; fixture_q_short <= 1; fixture_q_short++)
        for (uint32_t lk = 0; lk <= MDL_LONG_ATTN; lk++)
            for (uint32_t sk = 0; sk <= MDL_SHORT_DIN; sk++)
                for (uint32_t tk = 0; tk <= MDL_TEMPORAL_TIN; tk++)
                    if (fixture_q_short || sk != MDL_SHORT_NONE) /* no short: no difference */
                        n_bad += check_variant(lk, sk, tk, 9);
    fixture_q_short = 1;
    /* long attention with one user projected on the key side, one on the query side */
    n_bad += check_variant(MDL_LONG_ATTN, MDL_SHORT_NONE, MDL_TEMPORAL_NONE, 2);
    n_bad += check_variant(MDL_LONG_ATTN, MDL_SHORT_DIN, MDL_TEMPORAL_TIN, 2);
    assert_int_equal(n_bad, 0);
    /* a handful of entries may sit on a ReLU kink; nearly all must be checked */
    /* entries on a ReLU kink are replaced by others; nearly all attempts must be usable */
    if (n_skipped * 8 > n_checks)
        fail_msg("%d of %d finite-difference checks skipped at ReLU kinks", n_skipped, n_checks);
}

/* Branch dropout: a fixed mask, some blocks dropped and the others scaled, in the forward and the
 * backward alike; with and without the cross statistics (which need no gradient, but are masked).
 */
static void test_grad_branch_dropout(void **state) {
    (void)state;
    int n_bad = 0;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < RANK_BRANCHES; k++)
            fixture_keep[b * RANK_BRANCHES + k] = (b + k) % 3 == 0 ? 0.f : 1.25f;
    fixture_dropout = 1;
    for (fixture_cross = 0; fixture_cross <= 1; fixture_cross++) {
        n_bad += check_variant(MDL_LONG_SDIM, MDL_SHORT_SELFATTN, MDL_TEMPORAL_TIN, 9);
        n_bad += check_variant(MDL_LONG_ATTN, MDL_SHORT_DIN, MDL_TEMPORAL_TIN, 2);
    }
    /* a dropped block changes the scores; a mask of ones is no mask */
    fixture_cross = 1;
    fixture f;
    float lg0[B], lg1[B], lg2[B];
    fixture_dropout = 0;
    setup_fixture(&f, MDL_LONG_SDIM, MDL_SHORT_SELFATTN, MDL_TEMPORAL_TIN, 9);
    loss(&f);
    assert_int_equal(rank_net_forward(f.net, f.m, &f.bt, lg0, NULL), 0);
    f.bt.branch_keep = fixture_keep;
    assert_int_equal(rank_net_forward(f.net, f.m, &f.bt, lg1, NULL), 0);
    for (int k = 0; k < B * RANK_BRANCHES; k++)
        fixture_keep[k] = 1.f;
    assert_int_equal(rank_net_forward(f.net, f.m, &f.bt, lg2, NULL), 0);
    int moved = 0;
    for (int b = 0; b < B; b++) {
        moved += lg1[b] != lg0[b];
        assert_true(lg2[b] == lg0[b]);
    }
    assert_true(moved == B);
    teardown_fixture(&f);
    fixture_cross = 0;
    assert_int_equal(n_bad, 0);
}

/* Regrouping candidates by user must not change any score: the same batch scored one candidate
 * at a time gives the same logits. The second case is long attention with user 2 projected on the
 * key side in the batch (2 window rows, 3 candidates) and on the query side when scored alone. */
static void test_batch_equals_single(void **state) {
    (void)state;
    static const uint32_t cases[2][4] = {
        {MDL_LONG_SDIM, MDL_SHORT_SELFATTN, MDL_TEMPORAL_TIN, 9},
        {MDL_LONG_ATTN, MDL_SHORT_DIN, MDL_TEMPORAL_NONE, 2},
    };
    for (int c = 0; c < 2; c++) {
        fixture f;
        setup_fixture(&f, cases[c][0], cases[c][1], cases[c][2], cases[c][3]);
        float all[B], one;
        assert_int_equal(rank_net_forward(f.net, f.m, &f.bt, all, NULL), 0);
        for (int b = 0; b < B; b++) {
            rank_batch s = {.users = &f.users[f.user[b]],
                            .U = 1,
                            .item_id = &f.item[b],
                            .category_id = &f.cat[b],
                            .B = 1,
                            .sigcache = f.sc};
            assert_int_equal(rank_net_forward(f.net, f.m, &s, &one, NULL), 0);
            assert_true(fabs(one - all[b]) < 1e-5);
        }
        teardown_fixture(&f);
    }
}

/* Gradients add over candidates: a batch of 130 (exact attention runs in blocks of 64) gives the
 * sum of the gradients of its first 100 and last 30 candidates scored separately. The window has
 * 40 rows, so the batch of 130 and the part of 100 fold the projections into the keys and the part
 * of 30 into the queries: both sides give the same scores and gradients. */
static void test_grad_additive_over_blocks(void **state) {
    (void)state;
    enum { NB = 130 };
    char err[256];
    mdl_config cfg;
    mdl_model *m;
    mdl_config_default(&cfg);
    cfg.C = 8;
    cfg.S = 4;
    cfg.tau = 2;
    cfg.item_rows = 97;
    cfg.cat_rows = 13;
    cfg.long_kind = MDL_LONG_ATTN;
    cfg.n_recent = 5;
    cfg.h1 = 10;
    cfg.h2 = 6;
    assert_int_equal(mdl_model_init(&m, &cfg, err, sizeof err), 0);
    randomize(m, 3);
    rank_net *net;
    rank_net_shape sh = {.max_B = NB, .max_U = 1, .max_T = 40, .train = 1};
    assert_int_equal(rank_net_new(&net, &cfg, &sh, err, sizeof err), 0);
    sch_behavior win[40];
    for (int j = 0; j < 40; j++)
        win[j] =
            (sch_behavior){1 + (uint64_t)j * 5 % 60, 1 + (uint64_t)j % 7, 1700000000 + j * 100, 1};
    rank_history h = {.window = win, .T = 40, .recent = win + 35, .N = 5, .now_ts = 1700010000};
    uint64_t it[NB], ca[NB];
    float w[NB], lg[NB];
    for (int b = 0; b < NB; b++)
        it[b] = 1 + (uint64_t)b * 13 % 90, ca[b] = 1 + (uint64_t)b % 11,
        w[b] = (float)((b % 7) - 3) / 3.f;
    float *g1 = calloc(m->n_floats, sizeof(float)), *g2 = calloc(m->n_floats, sizeof(float));
    assert_true(g1 && g2);
    mdl_params p1, p2;
    mdl_params_bind(&p1, &cfg, g1);
    mdl_params_bind(&p2, &cfg, g2);
    rank_batch all = {.users = &h, .U = 1, .item_id = it, .category_id = ca, .B = NB};
    assert_int_equal(rank_net_forward(net, m, &all, lg, NULL), 0);
    rank_net_backward(net, m, &all, w, &p1);
    uint32_t cut[3] = {0, 100, NB};
    for (int k = 0; k < 2; k++) {
        rank_batch part = {.users = &h,
                           .U = 1,
                           .item_id = it + cut[k],
                           .category_id = ca + cut[k],
                           .B = cut[k + 1] - cut[k]};
        float plg[NB];
        assert_int_equal(rank_net_forward(net, m, &part, plg, NULL), 0);
        for (uint32_t b = 0; b < part.B; b++)
            assert_true(fabsf(plg[b] - lg[cut[k] + b]) < 1e-5f);
        rank_net_backward(net, m, &part, w + cut[k], &p2);
    }
    double gmax = 0;
    for (size_t i = 0; i < m->n_floats; i++)
        gmax = fmax(gmax, fabs(g1[i]));
    assert_true(gmax > 0);
    for (size_t i = 0; i < m->n_floats; i++)
        if (fabs(g1[i] - g2[i]) > 1e-5 * gmax) fail_msg("entry %zu: %g vs %g", i, g1[i], g2[i]);
    free(g1);
    free(g2);
    rank_net_destroy(net);
    mdl_model_destroy(m);
}

static void test_shape_limits(void **state) {
    (void)state;
    fixture f;
    setup_fixture(&f, MDL_LONG_ATTN, MDL_SHORT_NONE, MDL_TEMPORAL_NONE, 9);
    float lg[B];
    f.bt.B = B + 1;
    assert_int_equal(rank_net_forward(f.net, f.m, &f.bt, lg, NULL), CORE_ETOOBIG);
    f.bt.B = B;
    f.users[0].T = 15;
    assert_int_equal(rank_net_forward(f.net, f.m, &f.bt, lg, NULL), CORE_ETOOBIG);
    f.users[0].T = 14;
    f.user[0] = U;
    assert_int_equal(rank_net_forward(f.net, f.m, &f.bt, lg, NULL), CORE_EINVAL);
    /* shapes out of range are refused with a message, never allocated */
    rank_net *big = NULL;
    char err[256] = "";
    rank_net_shape huge = {.max_B = 1u << 20, .max_U = 1u << 20, .max_T = 1u << 22};
    assert_int_equal(rank_net_new(&big, &f.m->cfg, &huge, err, sizeof err), CORE_EINVAL);
    assert_non_null(strstr(err, "2^28"));
    rank_net_shape bad = {.max_B = 4, .max_U = 5, .max_T = 1};
    assert_int_equal(rank_net_new(&big, &f.m->cfg, &bad, err, sizeof err), CORE_EINVAL);
    assert_null(big);
    teardown_fixture(&f);
}

int main(void) {
    rank_blas_single_thread();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_every_variant),
        cmocka_unit_test(test_grad_branch_dropout),
        cmocka_unit_test(test_batch_equals_single),
        cmocka_unit_test(test_shape_limits),
        cmocka_unit_test(test_grad_additive_over_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
