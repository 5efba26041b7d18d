/* rank_pgemm_avx512.c: the bf16 path on AVX-512 BF16 (compiled with -mavx512f -mavx512bw
 * -mavx512vl -mavx512bf16; called only when the CPU has them).
 *
 * Per block of RANK_PG_MB rows the activations are rounded to bf16 (round to nearest even, as the
 * weights were) into the scratch, each segment's K padded to its even Kp with zeros. A register
 * tile is up to 6 rows by 4 panels of 16 columns: 24 fp32 accumulators, each step one vdpbf16ps
 * per (row, panel) taking a pair of k: a broadcast pair of activations against 16 pairs of weights.
 */
#include "rank_pgemm.h"
#include "rank_pgemm_bf16.h"
#include "rank_pgemm_simd.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define MR 6
#define NR 4

static inline __attribute__((always_inline)) void tile(const int mr, const int nr, float *y,
                                                       int ldy, int m0, const uint16_t *ab, int kt,
                                                       int p0, const rank_pseg *seg, int nseg,
                                                       int N, const float *bias, int flags) {
    __m512 acc[MR][NR];
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++)
            acc[r][j] = _mm512_setzero_ps();
    const uint32_t *arow = (const uint32_t *)ab; /* pairs; row r at arow + r * kt / 2 */
    size_t astride = (size_t)kt / 2;
    for (int g = 0; g < nseg; g++) {
        const rank_pw *w = seg[g].w;
        int kp2 = w->Kp / 2;
        size_t pstride = (size_t)kp2 * 16;
        const uint32_t *wp = (const uint32_t *)w->data + (size_t)p0 * pstride;
        for (int kk = 0; kk < kp2; kk++) {
            __m512bh wv[NR];
#pragma GCC unroll 4
            for (int j = 0; j < nr; j++)
                wv[j] = (__m512bh)_mm512_load_si512(wp + j * pstride + (size_t)kk * 16);
#pragma GCC unroll 6
            for (int r = 0; r < mr; r++) {
                __m512bh av = (__m512bh)_mm512_set1_epi32((int)arow[r * astride + kk]);
#pragma GCC unroll 4
                for (int j = 0; j < nr; j++)
                    acc[r][j] = _mm512_dpbf16_ps(acc[r][j], av, wv[j]);
            }
        }
        arow += kp2;
    }
#pragma GCC unroll 4
    for (int j = 0; j < nr; j++) {
        int n0 = (p0 + j) * 16;
        __mmask16 mk = rank_x512_mask(N, n0);
        __m512 b = rank_x512_bias(bias, n0, mk, flags);
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++)
            rank_x512_store(y + (size_t)(m0 + r) * ldy + n0, acc[r][j], b, mk, flags);
    }
}

#define TILE_ROWS(mr)                                                                              \
    static void tile_##mr(int nr, float *y, int ldy, int m0, const uint16_t *ab, int kt, int p0,   \
                          const rank_pseg *seg, int nseg, int N, const float *bias, int flags) {   \
        switch (nr) {                                                                              \
        case 4:                                                                                    \
            tile(mr, 4, y, ldy, m0, ab, kt, p0, seg, nseg, N, bias, flags);                        \
            break;                                                                                 \
        case 3:                                                                                    \
            tile(mr, 3, y, ldy, m0, ab, kt, p0, seg, nseg, N, bias, flags);                        \
            break;                                                                                 \
        case 2:                                                                                    \
            tile(mr, 2, y, ldy, m0, ab, kt, p0, seg, nseg, N, bias, flags);                        \
            break;                                                                                 \
        default:                                                                                   \
            tile(mr, 1, y, ldy, m0, ab, kt, p0, seg, nseg, N, bias, flags);                        \
            break;                                                                                 \
        }                                                                                          \
    }
TILE_ROWS(6)
TILE_ROWS(5)
TILE_ROWS(4)
TILE_ROWS(3)
TILE_ROWS(2)
TILE_ROWS(1)

void rank_pgemm_avx512bf16(float *y, int ldy, int M, const rank_pseg *seg, int nseg,
                           const float *bias, int flags, void *scratch) {
    int N = seg[0].w->N, np = seg[0].w->Np / 16, kt = 0;
    for (int g = 0; g < nseg; g++)
        kt += seg[g].w->Kp;
    uint16_t *ab = scratch;
    for (int m0 = 0; m0 < M; m0 += RANK_PG_MB) {
        int mb = M - m0 < RANK_PG_MB ? M - m0 : RANK_PG_MB;
        rank_bf16_block(ab, kt, seg, nseg, m0, mb);
        for (int p0 = 0; p0 < np; p0 += NR) {
            int nr = np - p0 < NR ? np - p0 : NR;
            int r = 0;
            for (; r + MR <= mb; r += MR)
                tile_6(nr, y, ldy, m0 + r, ab + (size_t)r * kt, kt, p0, seg, nseg, N, bias, flags);
            const uint16_t *ar = ab + (size_t)r * kt;
            switch (mb - r) {
            case 5:
                tile_5(nr, y, ldy, m0 + r, ar, kt, p0, seg, nseg, N, bias, flags);
                break;
            case 4:
                tile_4(nr, y, ldy, m0 + r, ar, kt, p0, seg, nseg, N, bias, flags);
                break;
            case 3:
                tile_3(nr, y, ldy, m0 + r, ar, kt, p0, seg, nseg, N, bias, flags);
                break;
            case 2:
                tile_2(nr, y, ldy, m0 + r, ar, kt, p0, seg, nseg, N, bias, flags);
                break;
            case 1:
                tile_1(nr, y, ldy, m0 + r, ar, kt, p0, seg, nseg, N, bias, flags);
                break;
            default:
                break;
            }
        }
    }
}

double rank_pgemm_peak_bf16(long iters) {
    __m512 acc[16];
    __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), w = (__m512bh)_mm512_set1_epi16(0);
    for (int j = 0; j < 16; j++)
        acc[j] = _mm512_set1_ps((float)j);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++)
            acc[j] = _mm512_dpbf16_ps(acc[j], a, w);
        __asm__ volatile("" ::"v"(acc[0]), "v"(acc[5]), "v"(acc[10]), "v"(acc[15]));
    }
    __m512 t = acc[0];
    for (int j = 1; j < 16; j++)
        t = _mm512_add_ps(t, acc[j]);
    volatile float sink = _mm512_reduce_add_ps(t);
    (void)sink;
    return (double)iters * 16 * 32;
}
