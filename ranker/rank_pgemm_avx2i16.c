/* rank_pgemm_avx2i16.c: the 16-bit fixed-point path on AVX2 (compiled with -mavx2 -mfma; called
 * only when the CPU has both). Weights in 16-column panels of k pairs ([k/2][16][2] int16, a scale
 * per row); per block of RANK_PG_MB rows each segment's activations are quantized to int16 codes
 * within +-2047 with a scale per row (no zero point: vpmaddwd multiplies signed by signed). A
 * register tile is up to 4 rows by one panel (two 8-column halves): per k pair one broadcast of
 * the row's two codes, vpmaddwd against the panel's 16 pairs and vpaddd into int32 sums, exact
 * (rank_i16_weight_levels bounds them); after each segment they are rescaled into fp32 sums. */
#include "rank_pgemm.h"
#include "rank_pgemm_i8.h"
#include "rank_pgemm_simd.h"

#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#define MR 4
#define LEVELS 2047

static float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* codes = nearest(a / scale) with scale = max |a| / 2047; zeros up to Kp (even) */
static rank_i8q quant_row(int16_t *dst, const float *src, int K, int Kp) {
    const __m256 sign = _mm256_set1_ps(-0.f);
    __m256 vmax = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= K; k += 8)
        vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign, _mm256_loadu_ps(src + k)));
    float amax = hmax8(vmax);
    for (; k < K; k++)
        amax = fabsf(src[k]) > amax ? fabsf(src[k]) : amax;
    rank_i8q q = {amax > 0.f ? amax / (float)LEVELS : 1.f, 0};
    float inv = 1.f / q.scale;
    __m256 vinv = _mm256_set1_ps(inv);
    for (k = 0; k + 16 <= K; k += 16) { /* within +-2047: packs_epi32 cannot saturate */
        __m256i c0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(src + k), vinv));
        __m256i c1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(src + k + 8), vinv));
        __m256i pk = _mm256_permute4x64_epi64(_mm256_packs_epi32(c0, c1), 0xd8);
        _mm256_storeu_si256((__m256i *)(dst + k), pk);
    }
    for (; k < K; k++) {
        float t = nearbyintf(src[k] * inv);
        dst[k] = (int16_t)(t > LEVELS ? LEVELS : t < -LEVELS ? -LEVELS : t);
    }
    for (k = K; k < Kp; k++)
        dst[k] = 0;
    return q;
}

static void quant_block(int16_t *ab, rank_i8q *qs, int kt, const rank_pseg *seg, int nseg, int m0,
                        int mb) {
    for (int r = 0; r < mb; r++) {
        int16_t *dst = ab + (size_t)r * kt;
        for (int g = 0; g < nseg; g++) {
            qs[r * nseg + g] = quant_row(dst, seg[g].a + (size_t)(m0 + r) * seg[g].lda,
                                         seg[g].w->K, seg[g].w->Kp);
            dst += seg[g].w->Kp;
        }
    }
}

static inline __attribute__((always_inline)) void
tile(const int mr, float *y, int ldy, int m0, const int16_t *ab, const rank_i8q *qs, int kt, int p,
     const rank_pseg *seg, int nseg, int N, const float *bias, int flags) {
    __m256 fs[MR][2];
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++)
        fs[r][0] = fs[r][1] = _mm256_setzero_ps();
    const int16_t *aseg = ab;
    for (int g = 0; g < nseg; g++) {
        const rank_pw *w = seg[g].w;
        int kp2 = w->Kp / 2;
        const int16_t *wp = (const int16_t *)w->data + (size_t)p * kp2 * 32;
        __m256i acc[MR][2];
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++)
            acc[r][0] = acc[r][1] = _mm256_setzero_si256();
        for (int kk = 0; kk < kp2; kk++) {
            __m256i w0 = _mm256_load_si256((const __m256i *)(wp + (size_t)kk * 32));
            __m256i w1 = _mm256_load_si256((const __m256i *)(wp + (size_t)kk * 32 + 16));
#pragma GCC unroll 4
            for (int r = 0; r < mr; r++) {
                int32_t pair;
                __builtin_memcpy(&pair, aseg + (size_t)r * kt + (size_t)kk * 2, 4);
                __m256i av = _mm256_set1_epi32(pair);
                acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(av, w0));
                acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(av, w1));
            }
        }
        int n0 = p * 16;
        for (int h = 0; h < 2; h++) {
            __m256 sw = _mm256_loadu_ps(w->scale + n0 + 8 * h);
#pragma GCC unroll 4
            for (int r = 0; r < mr; r++)
                fs[r][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r][h]),
                                           _mm256_mul_ps(sw, _mm256_set1_ps(qs[r * nseg + g].scale)),
                                           fs[r][h]);
        }
        aseg += w->Kp;
    }
    int n0 = p * 16;
    __m256i m_lo, m_hi;
    rank_x256_masks(N, n0, &m_lo, &m_hi);
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++)
        rank_x256_store(y + (size_t)(m0 + r) * ldy + n0, fs[r][0], fs[r][1], bias, n0, m_lo, m_hi,
                        flags);
}

void rank_pgemm_avx2i16(float *y, int ldy, int M, const rank_pseg *seg, int nseg,
                        const float *bias, int flags, void *scratch) {
    int N = seg[0].w->N, np = seg[0].w->Np / 16, kt = 0;
    for (int g = 0; g < nseg; g++)
        kt += seg[g].w->Kp;
    int16_t *ab = scratch;
    rank_i8q *qs = rank_i8_qs(scratch, 2 * kt); /* after RANK_PG_MB rows of 2-byte codes */
    for (int m0 = 0; m0 < M; m0 += RANK_PG_MB) {
        int mb = M - m0 < RANK_PG_MB ? M - m0 : RANK_PG_MB;
        quant_block(ab, qs, kt, seg, nseg, m0, mb);
        for (int p = 0; p < np; p++) {
            int r = 0;
            for (; r + MR <= mb; r += MR)
                tile(MR, y, ldy, m0 + r, ab + (size_t)r * kt, qs + r * nseg, kt, p, seg, nseg, N,
                     bias, flags);
            const int16_t *ar = ab + (size_t)r * kt;
            const rank_i8q *qr = qs + r * nseg;
            switch (mb - r) {
            case 3: tile(3, y, ldy, m0 + r, ar, qr, kt, p, seg, nseg, N, bias, flags); break;
            case 2: tile(2, y, ldy, m0 + r, ar, qr, kt, p, seg, nseg, N, bias, flags); break;
            case 1: tile(1, y, ldy, m0 + r, ar, qr, kt, p, seg, nseg, N, bias, flags); break;
            default: break;
            }
        }
    }
}
