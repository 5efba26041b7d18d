/* rank_blas.h: the ranker's only door to BLAS (the only file that includes cblas.h is
 * rank_blas.c), with a naive loop beside each call so tests can check one against the other.
 *
 * Row-major throughout. A linear layer stores W as (OC, C) and computes out = inp W^T + b.
 */
#ifndef TRAIL_RANK_BLAS_H
#define TRAIL_RANK_BLAS_H

/** @brief Pin BLAS to one thread (serving and per-thread training call BLAS from their own
 *  threads; BLAS threads on top would fight them). Idempotent. */
void rank_blas_single_thread(void);

/** @brief C = alpha op(A) op(B) + beta C, row-major; op(X) = X^T when trans_X is nonzero.
 *  op(A) is (M, K), op(B) is (K, N), C is (M, N) with leading dimension ldc. */
void rank_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *Cm, int ldc);
void rank_gemm_naive(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                     int lda, const float *B, int ldb, float beta, float *Cm, int ldc);

// ---------------------------------------------------------------------------------------------
// Linear layer

/** @brief out = inp W^T + bias. */
void rank_matmul_forward(float *out,                        // (R, OC)
                         const float *inp,                  // (R, C)
                         const float *w, const float *bias, // (OC, C), (OC) or NULL
                         int R, int C, int OC);
/** @brief dinp += dout W; dw += dout^T inp; dbias += column sums of dout. Any output may be NULL.
 */
void rank_matmul_backward(float *dinp, float *dw, float *dbias, // += (R, C), (OC, C), (OC)
                          const float *dout,                    // (R, OC)
                          const float *inp, const float *w,     // (R, C), (OC, C)
                          int R, int C, int OC);
void rank_matmul_forward_naive(float *out, const float *inp, const float *w, const float *bias,
                               int R, int C, int OC);
void rank_matmul_backward_naive(float *dinp, float *dw, float *dbias, const float *dout,
                                const float *inp, const float *w, int R, int C, int OC);

#endif
