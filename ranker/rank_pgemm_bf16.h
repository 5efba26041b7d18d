/* rank_pgemm_bf16.h: rounding activations to bf16, shared by the AVX-512 BF16 and AMX paths.
 * Include only from files compiled with -mavx512f -mavx512bw -mavx512bf16. */
#ifndef TRAIL_RANK_PGEMM_BF16_H
#define TRAIL_RANK_PGEMM_BF16_H

#include "rank_pgemm.h"

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

/* Round n floats of src to bf16 at dst, zero-padding to kp (even). */
static inline void rank_bf16_row(uint16_t *dst, const float *src, int n, int kp) {
    int k = 0;
    for (; k + 32 <= n; k += 32) {
        __m512 lo = _mm512_loadu_ps(src + k), hi = _mm512_loadu_ps(src + k + 16);
        _mm512_storeu_si512(dst + k, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
    if (k < n) {
        int r = n - k;
        __mmask16 mlo = (__mmask16)(r >= 16 ? 0xffff : (1u << r) - 1);
        __mmask16 mhi = (__mmask16)(r <= 16 ? 0 : (1u << (r - 16)) - 1);
        __m512 lo = _mm512_maskz_loadu_ps(mlo, src + k),
               hi = _mm512_maskz_loadu_ps(mhi, src + k + 16);
        __m512i v = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
        int w = kp - k < 32 ? kp - k : 32; /* the padding to kp is zeros */
        _mm512_mask_storeu_epi16(dst + k, (__mmask32)(w == 32 ? 0xffffffffu : (1u << w) - 1), v);
        k += w;
    }
    for (; k < kp; k++)
        dst[k] = 0;
}

/* Rows [m0, m0 + mb) of every segment's activations, rounded side by side: row r at ab + r * kt
 * (kt = the segments' Kp summed). */
static inline void rank_bf16_block(uint16_t *ab, int kt, const rank_pseg *seg, int nseg, int m0,
                                   int mb) {
    for (int r = 0; r < mb; r++) {
        uint16_t *dst = ab + (size_t)r * kt;
        for (int g = 0; g < nseg; g++) {
            rank_bf16_row(dst, seg[g].a + (size_t)(m0 + r) * seg[g].lda, seg[g].w->K, seg[g].w->Kp);
            dst += seg[g].w->Kp;
        }
    }
}

#endif
