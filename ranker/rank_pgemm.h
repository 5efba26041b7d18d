/* rank_pgemm.h: the serving engine's GEMMs on weights packed once per path.
 *
 *   y[m][n] = init[m][n] + sum over segments s of sum_k A_s[m][k] W_s[n][k]     (m < M, n < N)
 *
 * init is y itself (RANK_PG_ACC), else the bias (or 0); RANK_PG_RELU then applies max(0, .).
 * A segment pairs an fp32 activation block A_s (M rows, lda) with a packed weight W_s (N rows, K_s
 * columns); segments let one pass over the output take several input blocks (the folded head's
 * candidate columns and its per-request short-term columns) without copying them side by side.
 * Accumulation is fp32 on every path; what differs is what the inputs are rounded to (rank_isa.h):
 *   scalar, fp32, avx2:  fp32 (W row-major for scalar and fp32; 16-column panels for avx2)
 *   avx512-bf16, amx-bf16:  bf16 with round-to-nearest-even, W in 16-column panels of k pairs
 *     (the layout vdpbf16ps and AMX's B tiles both read), K padded to 2 (32 for AMX) with zeros.
 *   avx512-vnni, avx2-int8:  int8. W in 16-column panels of k quads, each row symmetric with its
 *     own scale (max |w| / 127). Each activation row of each segment gets its own scale per
 *     call: nonnegative rows map [0, max] to 0..255 (avx2-int8: 0..127), others [-max, max] to
 *     1..255 around a zero point of 128 (avx2-int8: 1..127 around 64, so vpmaddubsw's 16-bit
 *     pair sums cannot saturate). Sums are exact in int32, then
 *     y += scale_a * scale_w[n] * (sum - zero_point * sum_k q_w[n][k]).
 *   avx2-int16:  16-bit fixed point: W in 16-column panels of k pairs, each row symmetric with its
 *     own scale over 2047 levels; each activation row of each segment over its own max / 2047
 *     (no zero point); vpmaddwd's pair sums and the int32 sums are exact (rank_i16_weight_levels
 *     keeps the longest segment's sum from overflowing).
 * Activations are rounded per call, in blocks, inside the scratch; weights when packed.
 */
#ifndef TRAIL_RANK_PGEMM_H
#define TRAIL_RANK_PGEMM_H

#include "rank_isa.h"

#include <stddef.h>
#include <stdint.h>

typedef struct rank_pw {
    rank_isa isa;
    int N, K;   /* logical shape (N outputs, K inputs) */
    int Np, Kp; /* padded shape as stored */
    int max_K;  /* capacity: K can be repacked up to this */
    void *data;
    float *scale;  /* int8 paths: (Np) each row's scale, W ~ scale[n] * q[n][k] */
    int32_t *csum; /* int8 paths: (Np) sum over k of q[n][k] (for the activations' zero point) */
} rank_pw;

/** @brief Room for an N x K weight with K up to max_K, for a path. @return CORE_OK, CORE_ENOMEM,
 *  CORE_EINVAL (sizes out of range). */
int rank_pw_alloc(rank_pw *pw, rank_isa isa, int N, int max_K);
void rank_pw_free(rank_pw *pw);
/** @brief Pack W[n][k] = alpha * w[n * sn + k * sk] for n < N, k < K (K <= max_K): strides let a
 *  caller pack a block of a wider matrix (sk = 1) or a transposed one (sn = 1). */
void rank_pw_pack(rank_pw *pw, const float *w, size_t sn, size_t sk, int K, float alpha);
/** @brief A weight over a caller's buffer (rank_pw_bytes_max(N, max_K) bytes, 64-aligned): for
 *  per-request packs in a net's scratch, on whatever path the request runs. Not freed. */
void rank_pw_wrap(rank_pw *pw, rank_isa isa, int N, int max_K, void *buf);
/** @brief The bytes an (N, K) weight takes on a path. */
size_t rank_pw_bytes_for(rank_isa isa, int N, int K);
/** @brief The most bytes an (N, K) weight takes on any path. */
size_t rank_pw_bytes_max(int N, int K);
/** @brief Bytes held. */
size_t rank_pw_bytes(const rank_pw *pw);

typedef struct rank_pseg {
    const float *a; /* (M, lda) row-major; K = w->K columns are read */
    int lda;
    const rank_pw *w;
} rank_pseg;

#define RANK_PG_ACC 1  /* start from y's values */
#define RANK_PG_RELU 2 /* max(0, .) at the end */

/** @brief Scratch bytes rank_pgemm needs on a path for segments whose padded K add up to at most
 *  max_kp_sum (rank_pgemm_kp_sum). */
size_t rank_pgemm_scratch_bytes(rank_isa isa, int max_kp_sum);
/** @brief The padded K a weight of K inputs takes on a path. */
int rank_pgemm_kp(rank_isa isa, int K);

/** @brief y (M, ldy) as above. Every segment's weight must be packed for the same path and N.
 *  scratch: rank_pgemm_scratch_bytes for the segments, 64-byte aligned. */
void rank_pgemm(float *y, int ldy, int M, const rank_pseg *seg, int nseg, const float *bias,
                int flags, void *scratch);

/** @brief The reference: the same sum in double from unpacked fp32 weights w_s (N, K_s) row-major,
 *  for tests. */
void rank_pgemm_naive(float *y, int ldy, int M, const float *const *a, const int *lda,
                      const float *const *w, const int *K, int nseg, int N, const float *bias,
                      int flags);

/* Per-path entry points (rank_pgemm_*.c, each compiled for its instruction set; called only
 * after rank_isa_available says the CPU runs it). */
void rank_pgemm_avx2(float *y, int ldy, int M, const rank_pseg *seg, int nseg, const float *bias,
                     int flags, void *scratch);
void rank_pgemm_avx512bf16(float *y, int ldy, int M, const rank_pseg *seg, int nseg,
                           const float *bias, int flags, void *scratch);
void rank_pgemm_amx(float *y, int ldy, int M, const rank_pseg *seg, int nseg, const float *bias,
                    int flags, void *scratch);
void rank_pgemm_vnni(float *y, int ldy, int M, const rank_pseg *seg, int nseg, const float *bias,
                     int flags, void *scratch);
void rank_pgemm_avx2i8(float *y, int ldy, int M, const rank_pseg *seg, int nseg, const float *bias,
                       int flags, void *scratch);
void rank_pgemm_avx2i16(float *y, int ldy, int M, const rank_pseg *seg, int nseg, const float *bias,
                        int flags, void *scratch);
/** @brief The int16 path's weight levels for a segment of Kp inputs: 2047 (12 bits) unless the
 *  segment is so long that Kp * 2047 * levels could overflow its int32 sums. */
int rank_i16_weight_levels(int Kp);

/** @brief Run a path's kernels once on small ragged shapes (several segments, bias, ReLU,
 *  accumulation) against rank_pgemm_naive, with the bound of its precision (rank_pgemm.c).
 *  @return 0 if within it; else nonzero, with the worst error in *err and its bound in *bound.
 *  The caller must know the CPU runs the path. */
int rank_pgemm_selftest(rank_isa isa, double *err, double *bound);

/** @brief The core's peak rate of the path's multiply-accumulate instruction, in GMAC/s, timed
 *  on registers alone for about ms milliseconds (vfmadd231ps for the fp32 paths, vdpbf16ps,
 *  vpdpbusd, vpmaddubsw + vpmaddwd, tdpbf16ps): the ceiling a kernel's own rate is read against.
 *  0 for scalar and fp32 (OpenBLAS) paths. */
double rank_pgemm_peak_gmacs(rank_isa isa, int ms);
double rank_pgemm_peak_avx2(int kind, long iters);
double rank_pgemm_peak_avx512(int vnni, long iters);
double rank_pgemm_peak_amx(long iters);
double rank_pgemm_peak_bf16(long iters);

/** @brief out[b] = start + sum_i P[i][sig[b][i]] with P in fp16 (rank_gather_add's fp16 twin, for
 *  the reduced-precision paths; needs AVX2 and F16C). start: one row (W) every out[b] begins from,
 *  or NULL to add to out[b] itself; the sums are the same either way, in the same order (the
 *  folded head starts each candidate from its per-request row without copying it first).
 *  extra: NULL, or per out row one more fp16 row (W) added after the S gathered ones (the
 *  candidate's cached first-layer term, rank_qcache.h). */
void rank_gather_add_f16(float *out, const float *start, const uint16_t *P, const uint16_t *sig,
                         int B, int S, int nb, int W, const uint16_t *const *extra);
/** @brief dst = fp16(src), rounding to nearest even (AVX2 and F16C). */
void rank_f32_to_f16(uint16_t *dst, const float *src, size_t n);

/* Rows of A a path converts per block (the scratch holds one block). */
#define RANK_PG_MB 64
/* Segments one call takes at most (the int8 paths keep a scale per row and segment). */
#define RANK_PG_MAXSEG 12

#endif
