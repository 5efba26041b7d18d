/* rank_pgemm_avx2.c: the fp32 path on AVX2 + FMA (compiled with -mavx2 -mfma; called only when
 * the CPU has both). Weights in 16-column panels [panel][k][16]; activations read in place. A
 * register tile is up to 6 rows by one panel (12 accumulators). A single long segment (exact
 * attention's pooling over a 10,000-behavior window) runs in chunks of KC inputs, accumulating
 * into y, so a chunk of the rows and of each panel stays in cache across the tiles. */
#include "rank_pgemm.h"
#include "rank_pgemm_simd.h"

#include <immintrin.h>
#include <stdint.h>

#define MR 6
#define KC 256

/* k in [kb, ke) of a single segment, or every k of each of several */
static inline __attribute__((always_inline)) void tile(const int mr, float *y, int ldy, int m0,
                                                       int p, const rank_pseg *seg, int nseg, int N,
                                                       const float *bias, int flags, int kb,
                                                       int ke) {
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int g = 0; g < nseg; g++) {
        const rank_pw *w = seg[g].w;
        int K = w->K, k0 = nseg == 1 ? kb : 0, k1 = nseg == 1 ? ke : K;
        const float *wp = (const float *)w->data + (size_t)p * K * 16;
        const float *a = seg[g].a + (size_t)m0 * seg[g].lda;
        size_t lda = (size_t)seg[g].lda;
        for (int k = k0; k < k1; k++) {
            __m256 w0 = _mm256_load_ps(wp + (size_t)k * 16),
                   w1 = _mm256_load_ps(wp + (size_t)k * 16 + 8);
#pragma GCC unroll 6
            for (int r = 0; r < mr; r++) {
                __m256 av = _mm256_broadcast_ss(a + r * lda + k);
                acc[r][0] = _mm256_fmadd_ps(av, w0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(av, w1, acc[r][1]);
            }
        }
    }
    int n0 = p * 16;
    __m256i m_lo, m_hi;
    rank_x256_masks(N, n0, &m_lo, &m_hi);
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
        rank_x256_store(y + (size_t)(m0 + r) * ldy + n0, acc[r][0], acc[r][1], bias, n0, m_lo, m_hi,
                        flags);
}

void rank_pgemm_avx2(float *y, int ldy, int M, const rank_pseg *seg, int nseg, const float *bias,
                     int flags, void *scratch) {
    (void)scratch;
    int N = seg[0].w->N, np = seg[0].w->Np / 16, K0 = seg[0].w->K;
    int kc = nseg == 1 && K0 > 2 * KC ? KC : K0 > 0 ? K0 : 1;
    for (int m0 = 0; m0 < M; m0 += RANK_PG_MB) {
        int mb = M - m0 < RANK_PG_MB ? M - m0 : RANK_PG_MB;
        for (int kb = 0; kb < (nseg == 1 ? K0 : 1) || kb == 0; kb += kc) {
            int ke = nseg == 1 ? (K0 - kb < kc ? K0 : kb + kc) : 0;
            /* the first chunk starts from the bias (or y), later ones add to y; ReLU at the end */
            int f = kb == 0 ? flags : RANK_PG_ACC;
            if (nseg == 1 && ke < K0) f &= ~RANK_PG_RELU;
            if (nseg == 1 && ke == K0 && kb > 0) f |= flags & RANK_PG_RELU;
            for (int p = 0; p < np; p++) {
                int r = 0;
                for (; r + MR <= mb; r += MR)
                    tile(MR, y, ldy, m0 + r, p, seg, nseg, N, bias, f, kb, ke);
                switch (mb - r) {
                case 5:
                    tile(5, y, ldy, m0 + r, p, seg, nseg, N, bias, f, kb, ke);
                    break;
                case 4:
                    tile(4, y, ldy, m0 + r, p, seg, nseg, N, bias, f, kb, ke);
                    break;
                case 3:
                    tile(3, y, ldy, m0 + r, p, seg, nseg, N, bias, f, kb, ke);
                    break;
                case 2:
                    tile(2, y, ldy, m0 + r, p, seg, nseg, N, bias, f, kb, ke);
                    break;
                case 1:
                    tile(1, y, ldy, m0 + r, p, seg, nseg, N, bias, f, kb, ke);
                    break;
                default:
                    break;
                }
            }
            if (nseg != 1) break;
        }
    }
}

/* 12 independent accumulators: enough to hide the latency on the cores seen here */
double rank_pgemm_peak_avx2(int kind, long iters) {
    if (kind) { /* 1: vpmaddubsw + vpmaddwd + vpaddd (int8); 2: vpmaddwd + vpaddd (int16) */
        __m256i acc[12], w = _mm256_set1_epi8(-2), ones = _mm256_set1_epi16(1);
        for (int j = 0; j < 12; j++)
            acc[j] = _mm256_set1_epi8((char)(j + 1));
        for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
            for (int j = 0; j < 12; j++)
                acc[j] =
                    _mm256_add_epi32(/* each chain feeds itself: nothing to hoist */
                                     acc[j], kind == 1 ? _mm256_madd_epi16(
                                                             _mm256_maddubs_epi16(acc[j], w), ones)
                                                       : _mm256_madd_epi16(acc[j], w));
            __asm__ volatile("" ::"x"(acc[0]), "x"(acc[5]), "x"(acc[11]));
        }
        int32_t sink[8];
        __m256i t = acc[0];
        for (int j = 1; j < 12; j++)
            t = _mm256_add_epi32(t, acc[j]);
        _mm256_storeu_si256((__m256i *)sink, t);
        __asm__ volatile("" ::"m"(sink));
        return (double)iters * 12 * (kind == 1 ? 32 : 16);
    }
    __m256 acc[12], a = _mm256_set1_ps(1.f), w = _mm256_set1_ps(0.f);
    for (int j = 0; j < 12; j++)
        acc[j] = _mm256_set1_ps((float)j);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < 12; j++)
            acc[j] = _mm256_fmadd_ps(acc[j], a, w);
        __asm__ volatile("" ::"x"(acc[0]), "x"(acc[5]), "x"(acc[11]));
    }
    float sink[8];
    __m256 t = acc[0];
    for (int j = 1; j < 12; j++)
        t = _mm256_add_ps(t, acc[j]);
    _mm256_storeu_ps(sink, t);
    __asm__ volatile("" ::"m"(sink));
    return (double)iters * 12 * 8;
}

void rank_f32_to_f16(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        dst[i] = (uint16_t)_mm_extract_epi16(
            _mm_cvtps_ph(_mm_set_ss(src[i]), _MM_FROUND_TO_NEAREST_INT), 0);
}

/* one more fp16 row into four running sums of 8 */
#define GATHER_ADD4(p)                                                                             \
    do {                                                                                           \
        a0 = _mm256_add_ps(a0, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p))));            \
        a1 = _mm256_add_ps(a1, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((p) + 8))));      \
        a2 = _mm256_add_ps(a2, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((p) + 16))));     \
        a3 = _mm256_add_ps(a3, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((p) + 24))));     \
    } while (0)

static inline float f16_to_f32(uint16_t h) {
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

/* Candidates ahead whose extra row is prefetched: the cached q-term rows lie anywhere in a
 * 6.5 MB cache and, when users alternate, mostly outside L2 (rotating 8 users' candidates in a
 * bench, the gather's time doubled; fetching ahead took back ~30-40 us of a request). */
#define GATHER_PF_AHEAD 4

void rank_gather_add_f16(float *out, const float *start, const uint16_t *P, const uint16_t *sig,
                         int B, int S, int nb, int W, const uint16_t *const *extra) {
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * W;
        const float *s0 = start ? start : o;
        const uint16_t *sb = sig + (size_t)b * S, *x = extra ? extra[b] : NULL;
        if (extra && b + GATHER_PF_AHEAD < B)
            for (int w = 0; w < W; w += 32) /* a 64-byte line per 32 values */
                __builtin_prefetch(extra[b + GATHER_PF_AHEAD] + w);
        int w0 = 0;
        for (; w0 + 32 <= W; w0 += 32) {
            __m256 a0 = _mm256_loadu_ps(s0 + w0), a1 = _mm256_loadu_ps(s0 + w0 + 8);
            __m256 a2 = _mm256_loadu_ps(s0 + w0 + 16), a3 = _mm256_loadu_ps(s0 + w0 + 24);
            for (int i = 0; i < S; i++)
                GATHER_ADD4(P + ((size_t)i * nb + sb[i]) * W + w0);
            if (x) GATHER_ADD4(x + w0);
            _mm256_storeu_ps(o + w0, a0);
            _mm256_storeu_ps(o + w0 + 8, a1);
            _mm256_storeu_ps(o + w0 + 16, a2);
            _mm256_storeu_ps(o + w0 + 24, a3);
        }
        for (; w0 + 8 <= W; w0 += 8) {
            __m256 a = _mm256_loadu_ps(s0 + w0);
            for (int i = 0; i < S; i++)
                a = _mm256_add_ps(a, _mm256_cvtph_ps(_mm_loadu_si128((
                                         const __m128i *)(P + ((size_t)i * nb + sb[i]) * W + w0))));
            if (x)
                a = _mm256_add_ps(a, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + w0))));
            _mm256_storeu_ps(o + w0, a);
        }
        for (; w0 < W; w0++) {
            float a = s0[w0];
            for (int i = 0; i < S; i++)
                a += f16_to_f32(P[((size_t)i * nb + sb[i]) * W + w0]);
            if (x) a += f16_to_f32(x[w0]);
            o[w0] = a;
        }
    }
}
