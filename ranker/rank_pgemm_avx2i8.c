/* rank_pgemm_avx2i8.c: the int8 path on AVX2 (compiled with -mavx2 -mfma; called only when the
 * CPU has both). Same packed weights as the VNNI path; activations are 7-bit codes (rank_i8_row
 * with top 127) so vpmaddubsw's 16-bit sums of two u8 x s8 products (at most 2 * 127 * 127)
 * never saturate; vpmaddwd against ones widens them to int32. A register tile is up to 4 rows by
 * one panel (two 8-column halves): 8 int32 accumulators; per segment the sums are rescaled into
 * fp32 sums as on the VNNI path. */
#include "rank_pgemm.h"
#include "rank_pgemm_i8.h"
#include "rank_pgemm_simd.h"

#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#define MR 4

static float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static rank_i8q quant_row(uint8_t *dst, const float *src, int K, int Kp) {
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

RANK_I8_BLOCK(quant_block, quant_row)

static inline __attribute__((always_inline)) void
tile(const int mr, float *y, int ldy, int m0, const uint8_t *ab, const rank_i8q *qs, int kt, int p,
     const rank_pseg *seg, int nseg, int N, const float *bias, int flags) {
    __m256 fs[MR][2];
    const __m256i ones = _mm256_set1_epi16(1);
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++)
        fs[r][0] = fs[r][1] = _mm256_setzero_ps();
    const uint8_t *aseg = ab;
    for (int g = 0; g < nseg; g++) {
        const rank_pw *w = seg[g].w;
        int kq = w->Kp / 4;
        const int8_t *wp = (const int8_t *)w->data + (size_t)p * kq * 64;
        __m256i acc[MR][2];
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++)
            acc[r][0] = acc[r][1] = _mm256_setzero_si256();
        for (int kk = 0; kk < kq; kk++) {
            __m256i w0 = _mm256_load_si256((const __m256i *)(wp + (size_t)kk * 64));
            __m256i w1 = _mm256_load_si256((const __m256i *)(wp + (size_t)kk * 64 + 32));
#pragma GCC unroll 4
            for (int r = 0; r < mr; r++) {
                int32_t quad;
                __builtin_memcpy(&quad, aseg + (size_t)r * kt + (size_t)kk * 4, 4);
                __m256i av = _mm256_set1_epi32(quad);
                __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(av, w0), ones);
                __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(av, w1), ones);
                acc[r][0] = _mm256_add_epi32(acc[r][0], p0);
                acc[r][1] = _mm256_add_epi32(acc[r][1], p1);
            }
        }
        int n0 = p * 16;
        for (int h = 0; h < 2; h++) {
            __m256 sw = _mm256_loadu_ps(w->scale + n0 + 8 * h);
            /* the zero point is 0 or 64: 64 * csum is a shift */
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

void rank_pgemm_avx2i8(float *y, int ldy, int M, const rank_pseg *seg, int nseg,
                       const float *bias, int flags, void *scratch) {
    int N = seg[0].w->N, np = seg[0].w->Np / 16, kt = 0;
    for (int g = 0; g < nseg; g++)
        kt += seg[g].w->Kp;
    uint8_t *ab = scratch;
    rank_i8q *qs = rank_i8_qs(scratch, kt);
    for (int m0 = 0; m0 < M; m0 += RANK_PG_MB) {
        int mb = M - m0 < RANK_PG_MB ? M - m0 : RANK_PG_MB;
        quant_block(ab, qs, kt, seg, nseg, m0, mb);
        for (int p = 0; p < np; p++) {
            int r = 0;
            for (; r + MR <= mb; r += MR)
                tile(MR, y, ldy, m0 + r, ab + (size_t)r * kt, qs + r * nseg, kt, p, seg, nseg, N,
                     bias, flags);
            const uint8_t *ar = ab + (size_t)r * kt;
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
