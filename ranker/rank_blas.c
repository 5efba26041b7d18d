/* rank_blas.c: GEMM mapping for the ranker (the only cblas caller) and the naive loops it is
 * tested against. */
#include "rank_blas.h"

#include <cblas.h>
#include <stddef.h>

void rank_blas_single_thread(void) {
    openblas_set_num_threads(1);
}

void rank_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *Cm, int ldc) {
    if (M <= 0 || N <= 0) return;
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
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, OC, C, 1.f, inp, C, w, C,
                bias ? 1.f : 0.f, out, OC);
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
