/* rank_pgemm_simd.h: the kernels' common tile ends, for files compiled with AVX-512 (bf16, VNNI,
 * AMX paths) or AVX2 (avx2 and avx2-int8 paths): the columns of a ragged last panel, the
 * starting values (bias or y), and the store with the optional ReLU. */
#ifndef TRAIL_RANK_PGEMM_SIMD_H
#define TRAIL_RANK_PGEMM_SIMD_H

#include "rank_pgemm.h"

#include <immintrin.h>

#ifdef __AVX512F__
/* the valid columns of the panel starting at n0 */
static inline __mmask16 rank_x512_mask(int N, int n0) {
    int cols = N - n0 < 16 ? N - n0 : 16;
    return (__mmask16)(cols >= 16 ? 0xffff : (1u << cols) - 1);
}

/* what a tile row starts from when not accumulating into y: the bias, or 0 */
static inline __m512 rank_x512_bias(const float *bias, int n0, __mmask16 mk, int flags) {
    return !(flags & RANK_PG_ACC) && bias ? _mm512_maskz_loadu_ps(mk, bias + n0)
                                          : _mm512_setzero_ps();
}

/* y[0..16) = v + (y or b), then max(0, .) under RANK_PG_RELU, masked */
static inline void rank_x512_store(float *yr, __m512 v, __m512 b, __mmask16 mk, int flags) {
    v = _mm512_add_ps(v, (flags & RANK_PG_ACC) ? _mm512_maskz_loadu_ps(mk, yr) : b);
    if (flags & RANK_PG_RELU) v = _mm512_max_ps(v, _mm512_setzero_ps());
    _mm512_mask_storeu_ps(yr, mk, v);
}
#endif

#ifdef __AVX2__
/* the two 8-column halves' masks of the panel starting at n0 */
static inline void rank_x256_masks(int N, int n0, __m256i *lo, __m256i *hi) {
    int cols = N - n0 < 16 ? N - n0 : 16;
    __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    *lo = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);
    *hi = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lane);
}

/* y[0..16) = (v0, v1) + (y or the bias), then max(0, .) under RANK_PG_RELU, masked */
static inline void rank_x256_store(float *yr, __m256 v0, __m256 v1, const float *bias, int n0,
                                   __m256i lo, __m256i hi, int flags) {
    if (flags & RANK_PG_ACC) {
        v0 = _mm256_add_ps(v0, _mm256_maskload_ps(yr, lo));
        v1 = _mm256_add_ps(v1, _mm256_maskload_ps(yr + 8, hi));
    } else if (bias) {
        v0 = _mm256_add_ps(v0, _mm256_maskload_ps(bias + n0, lo));
        v1 = _mm256_add_ps(v1, _mm256_maskload_ps(bias + n0 + 8, hi));
    }
    if (flags & RANK_PG_RELU) {
        v0 = _mm256_max_ps(v0, _mm256_setzero_ps());
        v1 = _mm256_max_ps(v1, _mm256_setzero_ps());
    }
    _mm256_maskstore_ps(yr, lo, v0);
    _mm256_maskstore_ps(yr + 8, hi, v1);
}
#endif

#endif
