/* rank_pgemm_avx2int.c: the integer paths on AVX2 (compiled with -mavx2 -mfma -mf16c; called only
 * when the CPU has them). Both take weights in 16-column panels of 32-bit groups of k (a scale per
 * row) and activations quantized per block of RANK_PG_MB rows, a scale per row and segment:
 *   avx2-int8:  groups of 4 int8 weights against 7-bit codes (rank_i8_row's top 127), so
 *               vpmaddubsw's 16-bit sums of two u8 x s8 products (at most 2 * 127 * 127) never
 *               saturate; vpmaddwd against ones widens them to int32; signed rows have a zero
 *               point of 64.
 *   avx2-int16: pairs of int16 weights against int16 codes within +-2047 (no zero point:
 *               vpmaddwd multiplies signed by signed), int32 sums exact (rank_i16_weight_levels
 *               bounds them).
 * A register tile is up to 4 rows by one panel (two 8-column halves): per group one broadcast of
 * the row's 4 bytes of codes, the multiply against the panel's 16 groups, vpaddd into int32 sums;
 * after each segment they are rescaled into fp32 sums (scale_a * scale_w * (sum - zp * csum)). */
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

/* int8: 7-bit codes (top 127, zero point 64 for signed rows), nearest */
static rank_i8q quant_row8(uint8_t *dst, const float *src, int K, int Kp) {
    __m256 vmax = _mm256_setzero_ps(), vmin = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 v = _mm256_loadu_ps(src + k);
        vmax = _mm256_max_ps(vmax, v);
        vmin = _mm256_min_ps(vmin, v);
    }
    float amax = hmax8(vmax), amin = -hmax8(_mm256_sub_ps(_mm256_setzero_ps(), vmin));
    for (; k < K; k++) {
        amax = src[k] > amax ? src[k] : amax;
        amin = src[k] < amin ? src[k] : amin;
    }
    rank_i8q q = rank_i8_params(amin, amax, 127, 64, 63);
    __m256 inv = _mm256_set1_ps(1.f / q.scale), off = _mm256_set1_ps((float)q.zp);
    const __m256i fix = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (k = 0; k + 32 <= K; k += 32) { /* nearest; packs saturate to 0..255, codes stay <= 127 */
        __m256i c0 = _mm256_cvtps_epi32(_mm256_fmadd_ps(_mm256_loadu_ps(src + k), inv, off));
        __m256i c1 = _mm256_cvtps_epi32(_mm256_fmadd_ps(_mm256_loadu_ps(src + k + 8), inv, off));
        __m256i c2 = _mm256_cvtps_epi32(_mm256_fmadd_ps(_mm256_loadu_ps(src + k + 16), inv, off));
        __m256i c3 = _mm256_cvtps_epi32(_mm256_fmadd_ps(_mm256_loadu_ps(src + k + 24), inv, off));
        __m256i b = _mm256_packus_epi16(_mm256_packs_epi32(c0, c1), _mm256_packs_epi32(c2, c3));
        _mm256_storeu_si256((__m256i *)(dst + k), _mm256_permutevar8x32_epi32(b, fix));
    }
    float fo = (float)q.zp, fi = 1.f / q.scale;
    for (; k < K; k++) {
        float t = nearbyintf(src[k] * fi + fo);
        dst[k] = (uint8_t)(t < 0.f ? 0.f : t > 127.f ? 127.f : t);
    }
    for (k = K; k < Kp; k++)
        dst[k] = (uint8_t)q.zp;
    return q;
}

/* codes = nearest(a / scale) with scale = max |a| / 2047; zeros up to Kp (even) */
static rank_i8q quant_row16(int16_t *dst, const float *src, int K, int Kp) {
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

RANK_I8_BLOCK(quant_block8, quant_row8, uint8_t)
RANK_I8_BLOCK(quant_block16, quant_row16, int16_t)

/* cb: bytes per code (1 int8, 2 int16); the codes of row r start at ab + r * kt * cb */
static inline __attribute__((always_inline)) void
tile(const int mr, const int cb, float *y, int ldy, int m0, const uint8_t *ab, const rank_i8q *qs,
     int kt, int p, const rank_pseg *seg, int nseg, int N, const float *bias, int flags) {
    __m256 fs[MR][2];
    const __m256i ones = _mm256_set1_epi16(1);
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++)
        fs[r][0] = fs[r][1] = _mm256_setzero_ps();
    const uint8_t *aseg = ab;
    size_t astride = (size_t)kt * cb;
    for (int g = 0; g < nseg; g++) {
        const rank_pw *w = seg[g].w;
        int groups = w->Kp * cb / 4; /* 32-bit groups of k per row */
        const uint8_t *wp = (const uint8_t *)w->data + (size_t)p * groups * 64;
        __m256i acc[MR][2];
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++)
            acc[r][0] = acc[r][1] = _mm256_setzero_si256();
        for (int kk = 0; kk < groups; kk++) {
            __m256i w0 = _mm256_load_si256((const __m256i *)(wp + (size_t)kk * 64));
            __m256i w1 = _mm256_load_si256((const __m256i *)(wp + (size_t)kk * 64 + 32));
#pragma GCC unroll 4
            for (int r = 0; r < mr; r++) {
                int32_t group;
                __builtin_memcpy(&group, aseg + r * astride + (size_t)kk * 4, 4);
                __m256i av = _mm256_set1_epi32(group);
                __m256i p0 = cb == 1 ? _mm256_madd_epi16(_mm256_maddubs_epi16(av, w0), ones)
                                     : _mm256_madd_epi16(av, w0);
                __m256i p1 = cb == 1 ? _mm256_madd_epi16(_mm256_maddubs_epi16(av, w1), ones)
                                     : _mm256_madd_epi16(av, w1);
                acc[r][0] = _mm256_add_epi32(acc[r][0], p0);
                acc[r][1] = _mm256_add_epi32(acc[r][1], p1);
            }
        }
        int n0 = p * 16;
        for (int h = 0; h < 2; h++) {
            __m256 sw = _mm256_loadu_ps(w->scale + n0 + 8 * h);
            /* the zero point is 0 or 64 (int8 only): 64 * csum is a shift */
            __m256i csz =
                _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(w->csum + n0 + 8 * h)), 6);
#pragma GCC unroll 4
            for (int r = 0; r < mr; r++) {
                rank_i8q q = qs[r * nseg + g];
                __m256i v = acc[r][h];
                if (q.zp) v = _mm256_sub_epi32(v, csz);
                fs[r][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v),
                                           _mm256_mul_ps(sw, _mm256_set1_ps(q.scale)), fs[r][h]);
            }
        }
        aseg += (size_t)w->Kp * cb;
    }
    int n0 = p * 16;
    __m256i m_lo, m_hi;
    rank_x256_masks(N, n0, &m_lo, &m_hi);
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++)
        rank_x256_store(y + (size_t)(m0 + r) * ldy + n0, fs[r][0], fs[r][1], bias, n0, m_lo, m_hi,
                        flags);
}

static inline __attribute__((always_inline)) void run(const int cb, float *y, int ldy, int M,
                                                      const rank_pseg *seg, int nseg,
                                                      const float *bias, int flags, void *scratch) {
    int N = seg[0].w->N, np = seg[0].w->Np / 16, kt = 0;
    for (int g = 0; g < nseg; g++)
        kt += seg[g].w->Kp;
    uint8_t *ab = scratch;
    rank_i8q *qs = rank_i8_qs(scratch, cb * kt); /* after RANK_PG_MB rows of codes */
    size_t astride = (size_t)kt * cb;
    for (int m0 = 0; m0 < M; m0 += RANK_PG_MB) {
        int mb = M - m0 < RANK_PG_MB ? M - m0 : RANK_PG_MB;
        if (cb == 1)
            quant_block8(ab, qs, kt, seg, nseg, m0, mb);
        else
            quant_block16((int16_t *)scratch, qs, kt, seg, nseg, m0, mb);
        for (int p = 0; p < np; p++) {
            int r = 0;
            for (; r + MR <= mb; r += MR)
                tile(MR, cb, y, ldy, m0 + r, ab + r * astride, qs + r * nseg, kt, p, seg, nseg, N,
                     bias, flags);
            const uint8_t *ar = ab + r * astride;
            const rank_i8q *qr = qs + r * nseg;
            switch (mb - r) {
            case 3:
                tile(3, cb, y, ldy, m0 + r, ar, qr, kt, p, seg, nseg, N, bias, flags);
                break;
            case 2:
                tile(2, cb, y, ldy, m0 + r, ar, qr, kt, p, seg, nseg, N, bias, flags);
                break;
            case 1:
                tile(1, cb, y, ldy, m0 + r, ar, qr, kt, p, seg, nseg, N, bias, flags);
                break;
            default:
                break;
            }
        }
    }
}

void rank_pgemm_avx2i8(float *y, int ldy, int M, const rank_pseg *seg, int nseg, const float *bias,
                       int flags, void *scratch) {
    run(1, y, ldy, M, seg, nseg, bias, flags, scratch);
}

void rank_pgemm_avx2i16(float *y, int ldy, int M, const rank_pseg *seg, int nseg, const float *bias,
                        int flags, void *scratch) {
    run(2, y, ldy, M, seg, nseg, bias, flags, scratch);
}
