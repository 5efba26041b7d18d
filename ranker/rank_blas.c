/* rank_blas.c: GEMM mapping for the ranker (the only cblas caller) and the naive loops it is
 * tested against. */
#include "rank_blas.h"

#include "core_alloc.h"
#include "core_err.h"
#include "rank_pgemm.h"

#include <cblas.h>
#include <stddef.h>
#include <string.h>

/* The route of this thread's GEMMs: NULL means OpenBLAS (training, the fp32 path). */
static _Thread_local rank_route *tl_route;

static int route_fp32(const rank_route *r) {
    return !r || r->isa == RANK_ISA_FP32;
}

/* the path a routed call runs on: fp32 (trail's own kernel) inside rank_blas_route_fp32 */
static rank_isa route_isa(const rank_route *r) {
    return r->fp32_only ? rank_isa_fp32_twin(r->isa) : r->isa;
}

/* B as the packed weight W (N, K): W[n][k] = alpha op(B)[k][n] */
static void route_pack(rank_pw *pw, rank_isa isa, void *buf, int N, int K, int trans_b,
                       const float *B, int ldb, float alpha) {
    rank_pw_wrap(pw, isa, N, K, buf);
    if (trans_b) /* op(B) = B^T: B is (N, K) */
        rank_pw_pack(pw, B, (size_t)ldb, 1, K, alpha);
    else /* B is (K, N) */
        rank_pw_pack(pw, B, 1, (size_t)ldb, K, alpha);
}

/* C = alpha op(A) op(B) + beta C on trail's kernels; returns 0 when the route cannot take it
 * (a capacity the net did not reserve), so the caller falls back to OpenBLAS. */
static int route_gemm(rank_route *r, int trans_a, int trans_b, int M, int N, int K, float alpha,
                      const float *A, int lda, const float *B, int ldb, float beta, float *Cm,
                      int ldc) {
    rank_isa isa = route_isa(r);
    size_t need = rank_route_pack_bytes(isa, N, K);
    int pinned = 0;
    for (int i = 0; i < RANK_ROUTE_PINS; i++)
        pinned |= r->pin[i].ptr == B && r->pin[i].cap >= need;
    if ((!pinned && need > r->pack_cap) || K > r->max_k || (trans_a && (size_t)M * K > r->at_cap)) {
        r->fallbacks++;
        return 0;
    }
    if (trans_a) { /* serving's only transposed A is the C x C fold of the long projections */
        for (int m = 0; m < M; m++)
            for (int k = 0; k < K; k++)
                r->at[(size_t)m * K + k] = A[(size_t)k * lda + m];
        A = r->at;
        lda = K;
    }
    rank_pw local;
    const rank_pw *pw = &local;
    for (int i = 0; i < r->n_known; i++) {
        const rank_route_known *kn = &r->known[i];
        if (kn->ptr == B && kn->N == N && kn->K == K && kn->trans == trans_b && kn->ld == ldb &&
            kn->alpha == alpha && kn->pw.isa == isa) {
            pw = &kn->pw;
            goto run;
        }
    }
    /* a pinned B: the slot that holds this very pack, else a free slot pinned to it */
    int slot = -1;
    for (int i = 0; i < RANK_ROUTE_PINS && slot < 0; i++) {
        const struct rank_route_pin *p = &r->pin[i];
        if (p->ptr == B && p->valid && p->N == N && p->K == K && p->trans == trans_b &&
            p->ld == ldb && p->alpha == alpha)
            slot = i;
    }
    for (int i = 0; i < RANK_ROUTE_PINS && slot < 0; i++)
        if (r->pin[i].ptr == B && r->pin[i].cap >= need && !r->pin[i].valid) slot = i;
    for (int i = 0; i < RANK_ROUTE_PINS && slot < 0; i++)
        if (r->pin[i].ptr == B && r->pin[i].cap >= need) slot = i;
    if (slot >= 0) {
        struct rank_route_pin *p = &r->pin[slot];
        if (!(p->valid && p->N == N && p->K == K && p->trans == trans_b && p->ld == ldb &&
              p->alpha == alpha)) {
            route_pack(&p->pw, isa, p->buf, N, K, trans_b, B, ldb, alpha);
            p->valid = 1, p->N = N, p->K = K, p->trans = trans_b, p->ld = ldb, p->alpha = alpha;
        }
        pw = &p->pw;
    } else {
        route_pack(&local, isa, r->pack, N, K, trans_b, B, ldb, alpha);
    }
run:;
    int flags = 0;
    if (beta != 0.f) {
        flags = RANK_PG_ACC;
        if (beta != 1.f)
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++)
                    Cm[(size_t)m * ldc + n] *= beta;
    }
    rank_pseg sg = {A, lda, pw};
    rank_pgemm(Cm, ldc, M, &sg, 1, NULL, flags, r->scr);
    r->calls++;
    return 1;
}

size_t rank_route_pack_bytes(rank_isa isa, int N, int K) {
    return rank_pw_bytes_for(isa, N, K);
}

int rank_route_init(rank_route *r, int n_pairs, const int *nk, int pin_n, int pin_k) {
    memset(r, 0, sizeof *r);
    size_t cap = 64;
    int max_k = 1, max_m = 1;
    for (int i = 0; i < n_pairs; i++) {
        size_t b = rank_pw_bytes_max(nk[2 * i], nk[2 * i + 1]);
        if (b > cap) cap = b;
        if (nk[2 * i + 1] > max_k) max_k = nk[2 * i + 1];
        if (nk[2 * i] > max_m) max_m = nk[2 * i];
    }
    if (pin_n > 0 && pin_k > 0) { /* a pinned B's K is pin_k or pin_n */
        if (pin_k > max_k) max_k = pin_k;
        if (pin_n > max_k) max_k = pin_n;
    }
    r->pack_cap = cap;
    r->max_k = max_k;
    r->pack = core_aligned_alloc(cap);
    /* the widest conversion scratch of any path, for K up to max_k */
    size_t sb =
        rank_pgemm_scratch_bytes(RANK_ISA_AMX_BF16, rank_pgemm_kp(RANK_ISA_AMX_BF16, max_k));
    r->scr = core_aligned_alloc(sb);
    r->at_cap = (size_t)max_m * max_m;
    r->at = core_aligned_alloc(r->at_cap * sizeof *r->at);
    if (!r->pack || !r->scr || !r->at) goto oom;
    if (pin_n > 0 && pin_k > 0)
        for (int i = 0; i < RANK_ROUTE_PINS; i++) {
            size_t a = rank_pw_bytes_max(pin_n, pin_k), b = rank_pw_bytes_max(pin_k, pin_n);
            r->pin[i].cap = a > b ? a : b;
            r->pin[i].buf = core_aligned_alloc(r->pin[i].cap);
            if (!r->pin[i].buf) goto oom;
        }
    return CORE_OK;
oom:
    rank_route_free(r);
    return CORE_ENOMEM;
}

void rank_route_free(rank_route *r) {
    if (!r) return;
    core_free(r->pack);
    core_free(r->scr);
    core_free(r->at);
    for (int i = 0; i < RANK_ROUTE_PINS; i++)
        core_free(r->pin[i].buf);
    memset(r, 0, sizeof *r);
}

int rank_blas_route_fp32(int on) {
    rank_route *r = tl_route;
    if (!r) return 0;
    int old = r->fp32_only;
    r->fp32_only = on;
    return old;
}

rank_route *rank_blas_route(rank_route *r) {
    rank_route *old = tl_route;
    tl_route = r;
    return old;
}

void rank_blas_pin(const float *B) {
    rank_route *r = tl_route;
    if (!r) return;
    for (int i = 0; i < RANK_ROUTE_PINS; i++)
        if (!r->pin[i].ptr && r->pin[i].buf) {
            r->pin[i].ptr = B;
            r->pin[i].valid = 0;
            return;
        }
}

void rank_blas_unpin(void) {
    rank_route *r = tl_route;
    if (!r) return;
    for (int i = 0; i < RANK_ROUTE_PINS; i++)
        r->pin[i].ptr = NULL, r->pin[i].valid = 0;
}

void rank_blas_single_thread(void) {
    openblas_set_num_threads(1);
}

void rank_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *Cm, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (!route_fp32(tl_route) && K > 0 &&
        route_gemm(tl_route, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, Cm, ldc))
        return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, Cm, ldc);
}

void rank_gemm_naive(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                     int lda, const float *B, int ldb, float beta, float *Cm, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int k = 0; k < K; k++) {
                float a = trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += (double)a * b;
            }
            float *c = &Cm[(size_t)i * ldc + j];
            *c = (float)(alpha * s + (beta == 0.f ? 0.0 : (double)beta * *c));
        }
}

// ---------------------------------------------------------------------------------------------
// Linear layer

void rank_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int R,
                         int C, int OC) {
    if (R <= 0) return;
    if (bias) {
        for (int r = 0; r < R; r++)
            for (int o = 0; o < OC; o++)
                out[(size_t)r * OC + o] = bias[o];
    }
    rank_gemm(0, 1, R, OC, C, 1.f, inp, C, w, C, bias ? 1.f : 0.f, out, OC);
}

void rank_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                          const float *w, int R, int C, int OC) {
    if (R <= 0) return;
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, C, OC, 1.f, dout, OC, w, C, 1.f,
                    dinp, C);
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, R, 1.f, dout, OC, inp, C, 1.f,
                    dw, C);
    if (dbias)
        for (int r = 0; r < R; r++)
            for (int o = 0; o < OC; o++)
                dbias[o] += dout[(size_t)r * OC + o];
}

void rank_matmul_forward_naive(float *out, const float *inp, const float *w, const float *bias,
                               int R, int C, int OC) {
    for (int r = 0; r < R; r++)
        for (int o = 0; o < OC; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int c = 0; c < C; c++)
                s += (double)inp[(size_t)r * C + c] * w[(size_t)o * C + c];
            out[(size_t)r * OC + o] = (float)s;
        }
}

void rank_matmul_backward_naive(float *dinp, float *dw, float *dbias, const float *dout,
                                const float *inp, const float *w, int R, int C, int OC) {
    for (int r = 0; r < R; r++)
        for (int o = 0; o < OC; o++) {
            float d = dout[(size_t)r * OC + o];
            if (dbias) dbias[o] += d;
            for (int c = 0; c < C; c++) {
                if (dinp) dinp[(size_t)r * C + c] += d * w[(size_t)o * C + c];
                if (dw) dw[(size_t)o * C + c] += d * inp[(size_t)r * C + c];
            }
        }
}

const char *rank_blas_corename(void) {
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
}
