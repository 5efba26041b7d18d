/* rank_kernels.h: the ranker's kernels, each a forward/backward pair.
 *
 * Arguments: outputs, then what the forward saves for the backward, then inputs, then weights,
 * then dimensions. Backward functions accumulate (+=) into every gradient they take. No kernel
 * allocates; scratch is passed in. Kernels that call BLAS have a _naive twin the tests compare
 * with.
 */
#ifndef TRAIL_RANK_KERNELS_H
#define TRAIL_RANK_KERNELS_H

#include <stdint.h>

#define RANK_LN_EPS 1e-5f
#define RANK_SDIM_EPS 1e-6f /* l2(v) = v / max(|v|, eps) */

// ---------------------------------------------------------------------------------------------
// Embedding lookup: x[r] = [item_emb[irow[r]], cat_emb[crow[r]]]

void rank_embed_forward(float *out,                                  // (R, C)
                        const uint32_t *irow, const uint32_t *crow,  // (R), (R)
                        const float *item_emb, const float *cat_emb, // (*, C/2), (*, C/2)
                        int R, int C);
void rank_embed_backward(float *ditem_emb, float *dcat_emb, // += (*, C/2), (*, C/2)
                         const float *dout,                 // (R, C)
                         const uint32_t *irow, const uint32_t *crow, int R, int C);

// ---------------------------------------------------------------------------------------------
// LayerNorm over the last dimension

void rank_layernorm_forward(float *out, float *mean, float *rstd, // (R, C), (R), (R)
                            const float *inp,                     // (R, C)
                            const float *w, const float *b,       // (C), (C)
                            int R, int C);
void rank_layernorm_backward(float *dinp, float *dw, float *db, // += (R, C), (C), (C)
                             const float *dout, const float *inp, const float *w, const float *mean,
                             const float *rstd, int R, int C);

// ---------------------------------------------------------------------------------------------
// ReLU and the element-wise product

void rank_relu_forward(float *out, const float *inp, int n); // (n), (n); may alias
/** @brief dinp += dout where out > 0. */
void rank_relu_backward(float *dinp, const float *dout, const float *out, int n);

/** @brief out = a + b (out may alias a); its backward is the identity to both. */
void rank_add_forward(float *out, const float *a, const float *b, int n);
void rank_mul_forward(float *out, const float *a, const float *b, int n);
void rank_mul_backward(float *da, float *db, const float *dout, const float *a, const float *b,
                       int n);

// ---------------------------------------------------------------------------------------------
// Softmax in place over each row

void rank_softmax_rows(float *x, int R, int T); // (R, T)
/** @brief a . b over n floats (eight partial sums). */
float rank_dot(const float *a, const float *b, int n);
/** @brief In place: d holds dL/d(softmax output) on entry, dL/d(logits) on return. */
void rank_softmax_rows_backward(float *d,         // (R, T)
                                const float *att, // (R, T) the softmax output
                                int R, int T);

// ---------------------------------------------------------------------------------------------
// Target attention: each of B queries attends over T (key, value) rows.
// out[b] = sum_t att[b,t] v[t], att[b,:] = softmax(scale * q[b] . k[t]). T = 0 gives out = 0.
// Two sgemms and a softmax; k and v may be the same array (and dk, dv too). With out = NULL only
// the weights att are computed (v unused): serving folds the pooling into the next layer.

void rank_tattn_forward(float *out, float *att,         // (B, C), (B, T) saved
                        const float *q,                 // (B, C)
                        const float *k, const float *v, // (T, C), (T, C)
                        int B, int T, int C, float scale);
/* datt is scratch (B, T). */
void rank_tattn_backward(float *dq, float *dk, float *dv, float *datt, // += (B,C), (T,C), (T,C)
                         const float *dout, const float *att,          // (B, C), (B, T)
                         const float *q, const float *k, const float *v, int B, int T, int C,
                         float scale);
void rank_tattn_forward_naive(float *out, float *att, const float *q, const float *k,
                              const float *v, int B, int T, int C, float scale);
void rank_tattn_backward_naive(float *dq, float *dk, float *dv, const float *dout, const float *att,
                               const float *q, const float *k, const float *v, int B, int T, int C,
                               float scale);

// ---------------------------------------------------------------------------------------------
// Multi-head self-attention over one sequence of N rows (no causal mask: every recent behavior is
// in the past of the request). qkv rows are [q | k | v], each C = NH * hs wide.

void rank_mha_forward(float *out, float *att, // (N, C), (NH, N, N) saved
                      const float *qkv,       // (N, 3C)
                      int N, int C, int NH);
/* datt is scratch (N, N). */
void rank_mha_backward(float *dqkv, float *datt, // += (N, 3C), scratch (N, N)
                       const float *dout,        // (N, C)
                       const float *att, const float *qkv, int N, int C, int NH);
void rank_mha_forward_naive(float *out, float *att, const float *qkv, int N, int C, int NH);
void rank_mha_backward_naive(float *dqkv, const float *dout, const float *att, const float *qkv,
                             int N, int C, int NH);

// ---------------------------------------------------------------------------------------------
// SDIM (docs/MODEL.md sections 3 and 5.2). nb = 2^tau buckets per signature.

/** @brief Bucket sums V[i][sig[j][i]] += x_j over T behaviors (V and cnt are overwritten). */
void rank_buckets_forward(float *V, uint32_t *cnt,             // (S, nb, C), (S, nb)
                          const float *x, const uint16_t *sig, // (T, C), (T, S)
                          int T, int S, int nb, int C);
/** @brief dx_j += sum_i dV[i][sig[j][i]] (no gradient through the hash). */
void rank_buckets_backward(float *dx,                            // += (T, C)
                           const float *dV, const uint16_t *sig, // (S, nb, C), (T, S)
                           int T, int S, int nb, int C);

/** @brief Row-wise l2(v) = v / max(|v|, eps) of R rows (the S * nb bucket sums of one user: done
 *  once per user, so each candidate then only adds S unit vectors). */
void rank_l2rows_forward(float *U, float *norm, // (R, C), (R) saved
                         const float *V,        // (R, C)
                         int R, int C, float eps);
/** @brief l2 has Jacobian (I - u u^T) / |v| for |v| > eps, so dv = (du - u (u . du)) / |v|; below
 *  eps the forward is v / eps and dv = du / eps. */
void rank_l2rows_backward(float *dV,       // += (R, C)
                          const float *dU, // (R, C)
                          const float *U, const float *norm, int R, int C, float eps);

/** @brief out[b] += sum_i P[i][sig[b][i]] for W-wide rows P (S, nb, W): the SDIM gather, also used
 *  on the first layer's per-bucket projections when serving folds u_long into it. */
void rank_gather_add(float *restrict out, const float *restrict P, const uint16_t *sig, // (B, W)
                     int B, int S, int nb, int W);
void rank_gather_add_naive(float *out, const float *P, const uint16_t *sig, int B, int S, int nb,
                           int W);

/** @brief u[b] = (1/S) sum_i U[i][sig[b][i]] with U the l2-normalized bucket sums. */
void rank_sdim_forward(float *out,                          // (B, C)
                       const float *U, const uint16_t *sig, // (S, nb, C), (B, S)
                       int B, int S, int nb, int C);
/** @brief dU[i][sig[b][i]] += dout[b] / S (no gradient through the hash). */
void rank_sdim_backward(float *dU,                              // += (S, nb, C)
                        const float *dout, const uint16_t *sig, // (B, C), (B, S)
                        int B, int S, int nb, int C);

/** @brief Mean of the window from its bucket sums: the buckets of signature 0 partition it.
 *  out = (1/len) sum_b V[0][b]; len = 0 gives 0. */
void rank_avgpool_forward(float *out, const float *V, uint32_t len, int nb, int C); // (C), (S,nb,C)
void rank_avgpool_backward(float *dV, const float *dout, uint32_t len, int nb, int C);

#endif
