/* test_rank_kernels.c: each kernel against its naive loop, each backward against central
 * differences, and small hand-worked cases for the SDIM gather, TIN and self-attention.
 *
 * Finite differences run on float kernels: loss = sum(w (.) out) accumulated in double, step 1e-3
 * on inputs of order 1. The float rounding of the forward (about 1e-7 relative) then limits the
 * difference quotient to about 1e-4 absolute, so a check passes when
 * |analytic - numeric| <= 1e-3 * max(|analytic|, |numeric|) + 2e-4 (documented float tolerance).
 */
#include "test_common.h"

#include "rank_blas.h"
#include "rank_kernels.h"

#include <math.h>

static uint64_t rng_state = 12345;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
static void fill(float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        x[i] = frand();
}
static float *falloc(size_t n) {
    float *x = calloc(n ? n : 1, sizeof *x);
    assert_non_null(x);
    return x;
}

static void assert_close(const float *a, const float *b, size_t n, double tol, const char *what) {
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]), s = fmax(fabs(a[i]), fabs(b[i]));
        if (d > tol * fmax(1.0, s)) {
            fail_msg("%s[%zu]: %.7g vs %.7g", what, i, a[i], b[i]);
        }
    }
}

static int fd_ok(double an, double nu) {
    return fabs(an - nu) <= 1e-3 * fmax(fabs(an), fabs(nu)) + 2e-4;
}

/* Central differences of loss = sum(w (.) out) for every entry of one input: fwd(ctx) recomputes
 * out from the inputs (in is one of them, perturbed in place and restored). */
typedef struct fd_case {
    void (*fwd)(void *ctx);
    void *ctx;
    const float *out, *w; // (n_out), (n_out)
    int n_out;
} fd_case;

static void fd_check(const fd_case *fc, float *in, const float *grad, int n, const char *what) {
    for (int i = 0; i < n; i++) {
        float keep = in[i];
        double l[2];
        for (int s = 0; s < 2; s++) {
            in[i] = keep + (s ? -1e-3f : 1e-3f);
            fc->fwd(fc->ctx);
            l[s] = 0;
            for (int j = 0; j < fc->n_out; j++)
                l[s] += (double)fc->w[j] * fc->out[j];
        }
        in[i] = keep;
        double nu = (l[0] - l[1]) / 2e-3;
        if (!fd_ok(grad[i], nu)) fail_msg("%s[%d]: analytic %g, numeric %g", what, i, grad[i], nu);
    }
    fc->fwd(fc->ctx); /* leave out as the unperturbed forward */
}

// ---------------------------------------------------------------------------------------------
// BLAS against naive

static void test_gemm_matches_naive(void **state) {
    (void)state;
    int M = 7, N = 5, K = 9;
    float *A = falloc(M * K), *B = falloc(K * N), *C1 = falloc(M * N), *C2 = falloc(M * N);
    fill(A, M * K);
    fill(B, K * N);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            fill(C1, M * N);
            memcpy(C2, C1, M * N * sizeof *C1);
            int lda = ta ? M : K, ldb = tb ? K : N;
            rank_gemm(ta, tb, M, N, K, 0.7f, A, lda, B, ldb, 0.5f, C1, N);
            rank_gemm_naive(ta, tb, M, N, K, 0.7f, A, lda, B, ldb, 0.5f, C2, N);
            assert_close(C1, C2, M * N, 1e-5, "gemm");
        }
    free(A), free(B), free(C1), free(C2);
}

static void test_matmul_matches_naive(void **state) {
    (void)state;
    int R = 11, C = 13, OC = 6;
    float *x = falloc(R * C), *w = falloc(OC * C), *b = falloc(OC), *o1 = falloc(R * OC),
          *o2 = falloc(R * OC), *d = falloc(R * OC);
    float *dx1 = falloc(R * C), *dx2 = falloc(R * C), *dw1 = falloc(OC * C), *dw2 = falloc(OC * C),
          *db1 = falloc(OC), *db2 = falloc(OC);
    fill(x, R * C), fill(w, OC * C), fill(b, OC), fill(d, R * OC);
    rank_matmul_forward(o1, x, w, b, R, C, OC);
    rank_matmul_forward_naive(o2, x, w, b, R, C, OC);
    assert_close(o1, o2, R * OC, 1e-5, "matmul out");
    rank_matmul_forward(o1, x, w, NULL, R, C, OC);
    rank_matmul_forward_naive(o2, x, w, NULL, R, C, OC);
    assert_close(o1, o2, R * OC, 1e-5, "matmul out (no bias)");
    /* accumulate on top of nonzero gradients: += semantics */
    fill(dx1, R * C), memcpy(dx2, dx1, R * C * sizeof(float));
    fill(dw1, OC * C), memcpy(dw2, dw1, OC * C * sizeof(float));
    fill(db1, OC), memcpy(db2, db1, OC * sizeof(float));
    rank_matmul_backward(dx1, dw1, db1, d, x, w, R, C, OC);
    rank_matmul_backward_naive(dx2, dw2, db2, d, x, w, R, C, OC);
    assert_close(dx1, dx2, R * C, 1e-5, "dinp");
    assert_close(dw1, dw2, OC * C, 1e-5, "dw");
    assert_close(db1, db2, OC, 1e-5, "db");
    free(x), free(w), free(b), free(o1), free(o2), free(d);
    free(dx1), free(dx2), free(dw1), free(dw2), free(db1), free(db2);
}

static void test_softmax_matches_naive(void **state) {
    (void)state;
    int R = 3, T = 1037;
    float *x = falloc(R * T), *y = falloc(R * T);
    for (int i = 0; i < R * T; i++)
        x[i] = 30.f * frand();
    x[5] = -200.f; /* far below the max: underflows to 0 */
    memcpy(y, x, R * T * sizeof *x);
    rank_softmax_rows(y, R, T);
    for (int r = 0; r < R; r++) {
        double mx = -INFINITY, s = 0;
        for (int t = 0; t < T; t++)
            mx = fmax(mx, x[r * T + t]);
        for (int t = 0; t < T; t++)
            s += exp(x[r * T + t] - mx);
        for (int t = 0; t < T; t++) {
            double want = exp(x[r * T + t] - mx) / s;
            assert_true(fabs(y[r * T + t] - want) <= 1e-6 * want + 1e-12);
        }
    }
    free(x), free(y);
}

static void tattn_case(int B, int T, int C) {
    float scale = 1.f / sqrtf((float)C);
    float *q = falloc(B * C), *k = falloc(T * C), *v = falloc(T * C), *o1 = falloc(B * C),
          *o2 = falloc(B * C), *a1 = falloc(B * T), *a2 = falloc(B * T), *d = falloc(B * C),
          *scr = falloc(B * T);
    float *dq1 = falloc(B * C), *dq2 = falloc(B * C), *dk1 = falloc(T * C), *dk2 = falloc(T * C),
          *dv1 = falloc(T * C), *dv2 = falloc(T * C);
    fill(q, B * C), fill(k, T * C), fill(v, T * C), fill(d, B * C);
    for (int i = 0; i < B * C; i++)
        q[i] *= 3.f; /* peaked attention too */
    rank_tattn_forward(o1, a1, q, k, v, B, T, C, scale);
    rank_tattn_forward_naive(o2, a2, q, k, v, B, T, C, scale);
    assert_close(o1, o2, B * C, 1e-5, "tattn out");
    assert_close(a1, a2, B * T, 1e-5, "tattn att");
    float *a3 = falloc(B * T);
    rank_tattn_forward(NULL, a3, q, k, NULL, B, T, C, scale); /* the weights alone */
    assert_close(a3, a2, B * T, 1e-5, "tattn att without out");
    free(a3);
    rank_tattn_backward(dq1, dk1, dv1, scr, d, a1, q, k, v, B, T, C, scale);
    rank_tattn_backward_naive(dq2, dk2, dv2, d, a1, q, k, v, B, T, C, scale);
    assert_close(dq1, dq2, B * C, 1e-5, "dq");
    assert_close(dk1, dk2, T * C, 1e-5, "dk");
    assert_close(dv1, dv2, T * C, 1e-5, "dv");
    free(q), free(k), free(v), free(o1), free(o2), free(a1), free(a2), free(d), free(scr);
    free(dq1), free(dq2), free(dk1), free(dk2), free(dv1), free(dv2);
}

static void test_tattn_matches_naive(void **state) {
    (void)state;
    tattn_case(5, 9, 8);
    tattn_case(17, 300, 16);
    tattn_case(1, 1, 4);
}

static void test_tattn_empty_window_gives_zero(void **state) {
    (void)state;
    float q[4] = {1, 2, 3, 4}, out[4] = {9, 9, 9, 9}, att[1];
    rank_tattn_forward(out, att, q, NULL, NULL, 1, 0, 4, 0.5f);
    for (int i = 0; i < 4; i++)
        assert_true(out[i] == 0.f);
}

/* central differences for the tattn backward itself (not only against its naive twin) */
enum { TB = 3, TT = 4, TC = 4 };
typedef struct tattn_ctx {
    float q[TB * TC], k[TT * TC], v[TT * TC], out[TB * TC], att[TB * TT];
} tattn_ctx;
static void tattn_fwd(void *p) {
    tattn_ctx *c = p;
    rank_tattn_forward(c->out, c->att, c->q, c->k, c->v, TB, TT, TC, 0.5f);
}

static void test_tattn_backward_fd(void **state) {
    (void)state;
    tattn_ctx c;
    float w[TB * TC], scr[TB * TT], dq[TB * TC] = {0}, dk[TT * TC] = {0}, dv[TT * TC] = {0};
    fill(c.q, TB * TC), fill(c.k, TT * TC), fill(c.v, TT * TC), fill(w, TB * TC);
    tattn_fwd(&c);
    rank_tattn_backward(dq, dk, dv, scr, w, c.att, c.q, c.k, c.v, TB, TT, TC, 0.5f);
    fd_case fc = {tattn_fwd, &c, c.out, w, TB * TC};
    fd_check(&fc, c.q, dq, TB * TC, "tattn dq");
    fd_check(&fc, c.k, dk, TT * TC, "tattn dk");
    fd_check(&fc, c.v, dv, TT * TC, "tattn dv");
}

// ---------------------------------------------------------------------------------------------
// LayerNorm, self-attention, SDIM: backward against central differences

enum { LN_R = 3, LN_C = 6 };
typedef struct ln_ctx {
    float *x, *w, *b, *out, *mean, *rstd;
} ln_ctx;
static void ln_fwd(void *p) {
    ln_ctx *c = p;
    rank_layernorm_forward(c->out, c->mean, c->rstd, c->x, c->w, c->b, LN_R, LN_C);
}

static void test_layernorm_backward_fd(void **state) {
    (void)state;
    enum { R = LN_R, C = LN_C };
    float x[R * C], w[C], b[C], out[R * C], mean[R], rstd[R], g[R * C];
    float dx[R * C] = {0}, dw[C] = {0}, db[C] = {0};
    fill(x, R * C), fill(w, C), fill(b, C), fill(g, R * C);
    rank_layernorm_forward(out, mean, rstd, x, w, b, R, C);
    for (int r = 0; r < R; r++) { /* normalized rows: mean b, and the hand formula */
        double m = 0, v = 0;
        for (int c = 0; c < C; c++)
            m += x[r * C + c];
        m /= C;
        for (int c = 0; c < C; c++)
            v += (x[r * C + c] - m) * (x[r * C + c] - m);
        v /= C;
        for (int c = 0; c < C; c++) {
            double want = (x[r * C + c] - m) / sqrt(v + 1e-5) * w[c] + b[c];
            assert_true(fabs(out[r * C + c] - want) < 1e-5);
        }
    }
    rank_layernorm_backward(dx, dw, db, g, x, w, mean, rstd, R, C);
    ln_ctx c = {x, w, b, out, mean, rstd};
    fd_case fc = {ln_fwd, &c, out, g, R * C};
    fd_check(&fc, x, dx, R * C, "layernorm dx");
    fd_check(&fc, w, dw, C, "layernorm dw");
    fd_check(&fc, b, db, C, "layernorm db");
}

enum { MN = 4, MC = 6, MNH = 2 };
typedef struct mha_ctx {
    float *qkv, *out, *att;
} mha_ctx;
static void mha_fwd(void *p) {
    mha_ctx *c = p;
    rank_mha_forward(c->out, c->att, c->qkv, MN, MC, MNH);
}

static void test_mha_backward_fd(void **state) {
    (void)state;
    enum { N = MN, C = MC, NH = MNH };
    float qkv[N * 3 * C], out[N * C], att[NH * N * N], g[N * C], dqkv[N * 3 * C] = {0};
    float out2[N * C], att2[NH * N * N], dqkv2[N * 3 * C] = {0}, scr[N * N];
    fill(qkv, N * 3 * C), fill(g, N * C);
    rank_mha_forward(out, att, qkv, N, C, NH);
    rank_mha_forward_naive(out2, att2, qkv, N, C, NH);
    assert_close(out, out2, N * C, 1e-5, "mha out vs naive");
    assert_close(att, att2, NH * N * N, 1e-5, "mha att vs naive");
    rank_mha_backward(dqkv, scr, g, att, qkv, N, C, NH);
    rank_mha_backward_naive(dqkv2, g, att, qkv, N, C, NH);
    assert_close(dqkv, dqkv2, N * 3 * C, 1e-5, "mha dqkv vs naive");
    mha_ctx c = {qkv, out, att};
    fd_case fc = {mha_fwd, &c, out, g, N * C};
    fd_check(&fc, qkv, dqkv, N * 3 * C, "mha dqkv");
}

/* Hand-worked self-attention: one head, C = 2, two rows.
 * q0 = (1,0), q1 = (0,0); k0 = (1,0), k1 = (-1,0); v0 = (2,0), v1 = (0,4).
 * Row 0 scores (q0.k)/sqrt(2) = (+1/sqrt2, -1/sqrt2): a = (e^s, e^-s)/(e^s+e^-s), s = 1/sqrt2,
 * so a0 = 1/(1+e^-sqrt2) = 0.80444; out0 = (2 a0, 4 (1-a0)) = (1.60888, 0.78224).
 * Row 1 scores are equal: out1 = mean of v = (1, 2). */
static void test_mha_hand_worked(void **state) {
    (void)state;
    float qkv[2 * 6] = {1, 0, 1, 0, 2, 0, /**/ 0, 0, -1, 0, 0, 4};
    float out[4], att[4];
    rank_mha_forward(out, att, qkv, 2, 2, 1);
    double a0 = 1.0 / (1.0 + exp(-sqrt(2.0)));
    assert_true(fabs(out[0] - 2 * a0) < 1e-6);
    assert_true(fabs(out[1] - 4 * (1 - a0)) < 1e-6);
    assert_true(fabs(out[2] - 1.0) < 1e-6);
    assert_true(fabs(out[3] - 2.0) < 1e-6);
}

/* Hand-worked SDIM gather: S = 2 signatures of nb = 2 buckets, C = 2, three behaviors.
 * x0 = (3,4) sig (0,1); x1 = (1,0) sig (0,0); x2 = (0,2) sig (1,1).
 * V[0][0] = x0 + x1 = (4,4), V[0][1] = x2 = (0,2), V[1][0] = x1 = (1,0), V[1][1] = x0 + x2 = (3,6).
 * Candidate with sig (0,1): u = (l2(4,4) + l2(3,6)) / 2 = ((.70711,.70711) + (.44721,.89443)) / 2.
 * Candidate with sig (1,0): u = (l2(0,2) + l2(1,0)) / 2 = (0.5, 0.5). */
static void test_sdim_hand_worked(void **state) {
    (void)state;
    float x[6] = {3, 4, 1, 0, 0, 2}, V[8], out[4];
    uint16_t sig[6] = {0, 1, 0, 0, 1, 1}, csig[4] = {0, 1, 1, 0};
    uint32_t cnt[4];
    rank_buckets_forward(V, cnt, x, sig, 3, 2, 2, 2);
    float wantV[8] = {4, 4, 0, 2, 1, 0, 3, 6};
    uint32_t wantc[4] = {2, 1, 1, 2};
    for (int i = 0; i < 8; i++)
        assert_true(V[i] == wantV[i]);
    for (int i = 0; i < 4; i++)
        assert_int_equal(cnt[i], wantc[i]);
    float Un[8], nrm[4];
    rank_l2rows_forward(Un, nrm, V, 4, 2, RANK_SDIM_EPS);
    rank_sdim_forward(out, Un, csig, 2, 2, 2, 2);
    double s2 = sqrt(0.5), n36 = sqrt(45.0);
    assert_true(fabs(out[0] - (s2 + 3 / n36) / 2) < 1e-6);
    assert_true(fabs(out[1] - (s2 + 6 / n36) / 2) < 1e-6);
    assert_true(fabs(out[2] - 0.5) < 1e-6);
    assert_true(fabs(out[3] - 0.5) < 1e-6);
    /* an empty bucket contributes 0 */
    memset(V, 0, sizeof V);
    V[0] = 5;
    rank_l2rows_forward(Un, nrm, V, 4, 2, RANK_SDIM_EPS);
    rank_sdim_forward(out, Un, csig, 1, 2, 2, 2);
    assert_true(fabs(out[0] - 0.5) < 1e-6 && out[1] == 0.f);
    /* avgpool from the buckets of signature 0: mean of the three behaviors */
    rank_buckets_forward(V, cnt, x, sig, 3, 2, 2, 2);
    rank_avgpool_forward(out, V, 3, 2, 2);
    assert_true(fabs(out[0] - 4.0 / 3) < 1e-6 && fabs(out[1] - 2.0) < 1e-6);
}

enum { ST = 7, SS = 3, SNB = 4, SC = 5, SB = 4 };
typedef struct sdim_ctx {
    float *x, *V, *Un, *norm, *out;
    const uint16_t *sig, *csig;
    uint32_t *cnt;
} sdim_ctx;
/* window embeddings -> buckets -> unit buckets -> per-candidate gather */
static void sdim_fwd(void *p) {
    sdim_ctx *c = p;
    rank_buckets_forward(c->V, c->cnt, c->x, c->sig, ST, SS, SNB, SC);
    rank_l2rows_forward(c->Un, c->norm, c->V, SS * SNB, SC, RANK_SDIM_EPS);
    rank_sdim_forward(c->out, c->Un, c->csig, SB, SS, SNB, SC);
}

static void test_sdim_backward_fd(void **state) {
    (void)state;
    enum { T = ST, S = SS, nb = SNB, C = SC, B = SB };
    float x[T * C], V[S * nb * C], out[B * C], Un[S * nb * C], norm[S * nb], g[B * C];
    float dV[S * nb * C] = {0}, dU[S * nb * C] = {0}, dx[T * C] = {0};
    uint16_t sig[T * S], csig[B * S];
    uint32_t cnt[S * nb];
    fill(x, T * C), fill(g, B * C);
    for (int i = 0; i < T * S; i++)
        sig[i] = (uint16_t)((i * 7 + i / 3) % nb);
    for (int i = 0; i < B * S; i++)
        csig[i] = (uint16_t)((i * 5 + 1) % nb);
    csig[0] = 3, sig[0] = 0, sig[3] = 0, sig[6] = 0; /* make sure bucket (0,3) may be empty */
    for (int j = 0; j < T; j++)
        sig[j * S] = (uint16_t)(j % 3);
    rank_buckets_forward(V, cnt, x, sig, T, S, nb, C);
    rank_l2rows_forward(Un, norm, V, S * nb, C, RANK_SDIM_EPS);
    rank_sdim_forward(out, Un, csig, B, S, nb, C);
    rank_sdim_backward(dU, g, csig, B, S, nb, C);
    rank_l2rows_backward(dV, dU, Un, norm, S * nb, C, RANK_SDIM_EPS);
    rank_buckets_backward(dx, dV, sig, T, S, nb, C);
    sdim_ctx c = {x, V, Un, norm, out, sig, csig, cnt};
    fd_case fc = {sdim_fwd, &c, out, g, B * C};
    fd_check(&fc, x, dx, T * C, "sdim dx");
}

static void test_avgpool_backward_fd(void **state) {
    (void)state;
    enum { T = 5, S = 2, nb = 2, C = 3 };
    float x[T * C], V[S * nb * C], out[C], g[C], dV[S * nb * C] = {0}, dx[T * C] = {0};
    uint16_t sig[T * S];
    uint32_t cnt[S * nb];
    fill(x, T * C), fill(g, C);
    for (int i = 0; i < T * S; i++)
        sig[i] = (uint16_t)(i % nb);
    rank_buckets_forward(V, cnt, x, sig, T, S, nb, C);
    rank_avgpool_backward(dV, g, T, nb, C);
    rank_buckets_backward(dx, dV, sig, T, S, nb, C);
    for (int j = 0; j < T; j++)
        for (int c = 0; c < C; c++)
            assert_true(fabs(dx[j * C + c] - g[c] / T) < 1e-7);
    rank_avgpool_forward(out, V, T, nb, C);
    for (int c = 0; c < C; c++) {
        double m = 0;
        for (int j = 0; j < T; j++)
            m += x[j * C + c];
        assert_true(fabs(out[c] - m / T) < 1e-6);
    }
}

/* Hand-worked TIN (the net composes it from tattn and mul): C = 2, two behaviors.
 * e~_0 = (1,0), e~_1 = (0,1), v~ = (2,0): scores (2, 0)/sqrt2, a0 = 1/(1+e^-sqrt2).
 * u_tin = sum_k a_k (e~_k (.) v~) = a0 (2,0) + a1 (0,0) = (2 a0, 0). */
static void test_tin_hand_worked(void **state) {
    (void)state;
    float e[4] = {1, 0, 0, 1}, vt[2] = {2, 0}, pool[2], att[2], u[2];
    rank_tattn_forward(pool, att, vt, e, e, 1, 2, 2, 1.f / sqrtf(2.f));
    rank_mul_forward(u, vt, pool, 2);
    double a0 = 1.0 / (1.0 + exp(-sqrt(2.0)));
    assert_true(fabs(u[0] - 2 * a0) < 1e-6);
    assert_true(fabs(u[1]) < 1e-7);
}

static void test_embed_relu_mul(void **state) {
    (void)state;
    float ie[3 * 2] = {1, 2, 3, 4, 5, 6}, ce[2 * 2] = {7, 8, 9, 10}, out[2 * 4];
    uint32_t ir[2] = {2, 0}, cr[2] = {1, 1};
    rank_embed_forward(out, ir, cr, ie, ce, 2, 4);
    float want[8] = {5, 6, 9, 10, 1, 2, 9, 10};
    for (int i = 0; i < 8; i++)
        assert_true(out[i] == want[i]);
    float die[6] = {0}, dce[4] = {0}, d[8] = {1, 1, 1, 1, 2, 2, 2, 2};
    rank_embed_backward(die, dce, d, ir, cr, 2, 4);
    assert_true(die[4] == 1 && die[0] == 2 && die[2] == 0 && dce[2] == 3 && dce[0] == 0);
    float x[3] = {-1, 0, 2}, y[3], dx[3] = {0}, dy[3] = {5, 5, 5};
    rank_relu_forward(y, x, 3);
    assert_true(y[0] == 0 && y[1] == 0 && y[2] == 2);
    rank_relu_backward(dx, dy, y, 3);
    assert_true(dx[0] == 0 && dx[1] == 0 && dx[2] == 5);
    float a[2] = {2, 3}, b[2] = {4, 5}, p[2], da[2] = {0}, db[2] = {0}, dp[2] = {1, 10};
    rank_mul_forward(p, a, b, 2);
    assert_true(p[0] == 8 && p[1] == 15);
    rank_mul_backward(da, db, dp, a, b, 2);
    assert_true(da[0] == 4 && da[1] == 50 && db[0] == 2 && db[1] == 30);
    rank_add_forward(p, a, b, 2);
    assert_true(p[0] == 6 && p[1] == 8);
    rank_add_forward(a, a, b, 2); /* in place */
    assert_true(a[0] == 6 && a[1] == 8);
}

/* the gather-add (SDIM, and the folded first layer) and the dot product against naive loops, at
 * widths that exercise the 32-wide, 8-wide and scalar parts */
static void test_gather_add_and_dot(void **state) {
    (void)state;
    enum { B = 7, S = 5, nb = 4 };
    static const int widths[] = {1, 7, 8, 31, 32, 45, 64, 200};
    for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++) {
        int W = widths[wi];
        float P[S * nb * 200], got[B * 200], want[B * 200];
        uint16_t sig[B * S];
        fill(P, (size_t)S * nb * W);
        fill(got, (size_t)B * W);
        memcpy(want, got, (size_t)B * W * sizeof *got);
        for (int i = 0; i < B * S; i++)
            sig[i] = (uint16_t)((i * 3 + i / 5) % nb);
        rank_gather_add(got, P, sig, B, S, nb, W);
        rank_gather_add_naive(want, P, sig, B, S, nb, W);
        for (int i = 0; i < B * W; i++)
            assert_true(fabsf(got[i] - want[i]) < 1e-5f);
        double d = 0;
        for (int i = 0; i < W; i++)
            d += (double)P[i] * got[i];
        assert_true(fabs(rank_dot(P, got, W) - d) < 1e-4);
    }
}

int main(void) {
    rank_blas_single_thread();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_matches_naive),
        cmocka_unit_test(test_matmul_matches_naive),
        cmocka_unit_test(test_softmax_matches_naive),
        cmocka_unit_test(test_tattn_matches_naive),
        cmocka_unit_test(test_tattn_empty_window_gives_zero),
        cmocka_unit_test(test_tattn_backward_fd),
        cmocka_unit_test(test_layernorm_backward_fd),
        cmocka_unit_test(test_mha_backward_fd),
        cmocka_unit_test(test_mha_hand_worked),
        cmocka_unit_test(test_sdim_hand_worked),
        cmocka_unit_test(test_sdim_backward_fd),
        cmocka_unit_test(test_avgpool_backward_fd),
        cmocka_unit_test(test_tin_hand_worked),
        cmocka_unit_test(test_embed_relu_mul),
        cmocka_unit_test(test_gather_add_and_dot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
