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

/** @brief The core OpenBLAS picked for its kernels at load (openblas_get_corename), e.g.
 *  "Haswell", "SkylakeX", "Cooperlake", or "Prescott" when it misreads the CPU. */
const char *rank_blas_corename(void);

// ---------------------------------------------------------------------------------------------
// Routing: a serving net sends its forward's GEMMs through trail's own kernels on its path

#include "rank_isa.h"
#include "rank_pgemm.h"

#include <stddef.h>

#define RANK_ROUTE_PINS 4

/* A model weight packed ahead (rank_engine.h): a routed call whose B is ptr with this shape,
 * transposition, leading dimension and alpha uses pw instead of packing B again. */
typedef struct rank_route_known {
    const float *ptr;
    int N, K, trans, ld;
    float alpha;
    rank_pw pw;
} rank_route_known;

/* One thread's buffers for routed GEMMs: each B is packed per call (or kept while pinned), the
 * activations converted in the scratch. Sized once (rank_route_init) for the shapes a net uses. */
typedef struct rank_route {
    rank_isa isa;
    void *pack;
    size_t pack_cap;
    void *scr;
    int max_k;
    float *at;
    size_t at_cap;
    struct rank_route_pin {
        const float *ptr;
        void *buf;
        size_t cap;
        int valid, N, K, trans, ld;
        float alpha;
        rank_pw pw;
    } pin[RANK_ROUTE_PINS];
    const rank_route_known *known; /* weights packed ahead, for the route's isa */
    int fp32_only;                 /* rank_blas_route_fp32: routed calls run in fp32 */
    int n_known;
    unsigned long long calls, fallbacks; /* routed calls; calls that went to OpenBLAS instead */
} rank_route;

/** @brief Buffers for B shapes (N, K) listed as pairs nk[2i], nk[2i+1] (the largest sets the
 *  capacity; K also bounds the conversion scratch), and two pinned packs of a (pin_n, pin_k) or
 *  (pin_k, pin_n) B each (0: none). */
int rank_route_init(rank_route *r, int n_pairs, const int *nk, int pin_n, int pin_k);
void rank_route_free(rank_route *r);
size_t rank_route_pack_bytes(rank_isa isa, int N, int K);
/** @brief Route this thread's rank_gemm / rank_matmul_forward calls through r (NULL: OpenBLAS;
 *  a route whose isa is RANK_ISA_FP32 also means OpenBLAS). @return the previous route. */
rank_route *rank_blas_route(rank_route *r);
/** @brief Inside a routed forward, run the next routed calls in fp32 on trail's own kernel (on)
 *  or on the route's path again (off): for the few GEMMs whose rounding the rest amplifies.
 *  @return the previous setting (0 when the thread has no route). */
int rank_blas_route_fp32(int on);
/** @brief While pinned, a B pointer's pack is kept across calls (the caller promises its contents
 *  do not change until rank_blas_unpin): exact attention reuses the window for every block. */
void rank_blas_pin(const float *B);
void rank_blas_unpin(void);

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
