/* rank_pgemm_vnni.c: the int8 path on AVX-512 VNNI (compiled with -mavx512f -mavx512bw
 * -mavx512vl -mavx512vnni; called only when the CPU has them).
 *
 * Per block of RANK_PG_MB rows each segment's activations are quantized to u8 codes (rank_i8_row)
 * into the scratch. A register tile is up to 6 rows by 4 panels of 16 columns: 24 int32
 * accumulators, each step one vpdpbusd per (row, panel) taking a quad of k: 4 broadcast codes
 * against 16 rows' 4 weight codes. After each segment the exact int32 sums are rescaled to fp32
 * (scale_a * scale_w * (sum - zp * csum)) and added to the tile's fp32 sums; after the last, the
 * bias or y, the ReLU, and the masked store.
 */
#include "rank_pgemm.h"
#include "rank_pgemm_i8.h"
#include "rank_pgemm_simd.h"

#include <immintrin.h>
#include <stdint.h>

#define MR 6
#define NR 4

static rank_i8q quant_row(uint8_t *dst, const float *src, int K, int Kp) {
    __m512 vmax = _mm512_setzero_ps(), vmin = _mm512_setzero_ps();
    int k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 v = _mm512_loadu_ps(src + k);
        vmax = _mm512_max_ps(vmax, v);
        vmin = _mm512_min_ps(vmin, v);
    }
    if (k < K) {
        __m512 v = _mm512_maskz_loadu_ps((__mmask16)((1u << (K - k)) - 1), src + k);
        vmax = _mm512_max_ps(vmax, v);
        vmin = _mm512_min_ps(vmin, v);
    }
    rank_i8q q =
        rank_i8_params(_mm512_reduce_min_ps(vmin), _mm512_reduce_max_ps(vmax), 255, 128, 127);
    __m512 inv = _mm512_set1_ps(1.f / q.scale), off = _mm512_set1_ps((float)q.zp);
    for (k = 0; k < K; k += 16) { /* nearest, then saturate to 0..255 */
        __mmask16 mk = (__mmask16)(K - k >= 16 ? 0xffff : (1u << (K - k)) - 1);
        __m512 v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, src + k), inv, off);
        __m512i c = _mm512_max_epi32(_mm512_cvtps_epi32(v), _mm512_setzero_si512());
        _mm_mask_storeu_epi8(dst + k, mk, _mm512_cvtusepi32_epi8(c));
    }
    for (k = K; k < Kp; k++)
        dst[k] = (uint8_t)q.zp;
    return q;
}

RANK_I8_BLOCK(quant_block, quant_row, uint8_t)

static inline __attribute__((always_inline)) void
tile(const int mr, const int nr, float *y, int ldy, int m0, const uint8_t *ab, const rank_i8q *qs,
     int kt, int p0, const rank_pseg *seg, int nseg, int N, const float *bias, int flags) {
    __m512 fs[MR][NR];
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++)
            fs[r][j] = _mm512_setzero_ps();
    const uint8_t *aseg = ab;
    for (int g = 0; g < nseg; g++) {
        const rank_pw *w = seg[g].w;
        int kq = w->Kp / 4;
        size_t pstride = (size_t)kq * 16; /* int32 per panel */
        const int32_t *wp = (const int32_t *)w->data + (size_t)p0 * pstride;
        __m512i acc[MR][NR];
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
            for (int j = 0; j < nr; j++)
                acc[r][j] = _mm512_setzero_si512();
        for (int kk = 0; kk < kq; kk++) {
            __m512i wv[NR];
#pragma GCC unroll 4
            for (int j = 0; j < nr; j++)
                wv[j] = _mm512_load_si512(wp + j * pstride + (size_t)kk * 16);
#pragma GCC unroll 6
            for (int r = 0; r < mr; r++) {
                int32_t quad;
                __builtin_memcpy(&quad, aseg + (size_t)r * kt + (size_t)kk * 4, 4);
                __m512i av = _mm512_set1_epi32(quad);
#pragma GCC unroll 4
                for (int j = 0; j < nr; j++)
                    acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], av, wv[j]);
            }
        }
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) {
            int n0 = (p0 + j) * 16;
            __m512 sw = _mm512_loadu_ps(w->scale + n0);
            /* the zero point is 0 or 128: 128 * csum is a shift */
            __m512i csz = _mm512_slli_epi32(_mm512_loadu_si512(w->csum + n0), 7);
#pragma GCC unroll 6
            for (int r = 0; r < mr; r++) {
                rank_i8q q = qs[r * nseg + g];
                __m512i v = acc[r][j];
                if (q.zp) v = _mm512_sub_epi32(v, csz);
                fs[r][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v),
                                           _mm512_mul_ps(sw, _mm512_set1_ps(q.scale)), fs[r][j]);
            }
        }
        aseg += w->Kp;
    }
#pragma GCC unroll 4
    for (int j = 0; j < nr; j++) {
        int n0 = (p0 + j) * 16;
        __mmask16 mk = rank_x512_mask(N, n0);
        __m512 b = rank_x512_bias(bias, n0, mk, flags);
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++)
            rank_x512_store(y + (size_t)(m0 + r) * ldy + n0, fs[r][j], b, mk, flags);
    }
}

#define TILE_ROWS(mr)                                                                              \
    static void tile_##mr(int nr, float *y, int ldy, int m0, const uint8_t *ab,                    \
                          const rank_i8q *qs, int kt, int p0, const rank_pseg *seg, int nseg,      \
                          int N, const float *bias, int flags) {                                   \
        switch (nr) {                                                                              \
        case 4:                                                                                    \
            tile(mr, 4, y, ldy, m0, ab, qs, kt, p0, seg, nseg, N, bias, flags);                    \
            break;                                                                                 \
        case 3:                                                                                    \
            tile(mr, 3, y, ldy, m0, ab, qs, kt, p0, seg, nseg, N, bias, flags);                    \
            break;                                                                                 \
        case 2:                                                                                    \
            tile(mr, 2, y, ldy, m0, ab, qs, kt, p0, seg, nseg, N, bias, flags);                    \
            break;                                                                                 \
        default:                                                                                   \
            tile(mr, 1, y, ldy, m0, ab, qs, kt, p0, seg, nseg, N, bias, flags);                    \
            break;                                                                                 \
        }                                                                                          \
    }
TILE_ROWS(6)
TILE_ROWS(5)
TILE_ROWS(4)
TILE_ROWS(3)
TILE_ROWS(2)
TILE_ROWS(1)

void rank_pgemm_vnni(float *y, int ldy, int M, const rank_pseg *seg, int nseg, const float *bias,
                     int flags, void *scratch) {
    int N = seg[0].w->N, np = seg[0].w->Np / 16, kt = 0;
    for (int g = 0; g < nseg; g++)
        kt += seg[g].w->Kp;
    uint8_t *ab = scratch;
    rank_i8q *qs = rank_i8_qs(scratch, kt);
    for (int m0 = 0; m0 < M; m0 += RANK_PG_MB) {
        int mb = M - m0 < RANK_PG_MB ? M - m0 : RANK_PG_MB;
        quant_block(ab, qs, kt, seg, nseg, m0, mb);
        for (int p0 = 0; p0 < np; p0 += NR) {
            int nr = np - p0 < NR ? np - p0 : NR;
            int r = 0;
            for (; r + MR <= mb; r += MR)
                tile_6(nr, y, ldy, m0 + r, ab + (size_t)r * kt, qs + r * nseg, kt, p0, seg, nseg, N,
                       bias, flags);
            const uint8_t *ar = ab + (size_t)r * kt;
            const rank_i8q *qr = qs + r * nseg;
            switch (mb - r) {
            case 5:
                tile_5(nr, y, ldy, m0 + r, ar, qr, kt, p0, seg, nseg, N, bias, flags);
                break;
            case 4:
                tile_4(nr, y, ldy, m0 + r, ar, qr, kt, p0, seg, nseg, N, bias, flags);
                break;
            case 3:
                tile_3(nr, y, ldy, m0 + r, ar, qr, kt, p0, seg, nseg, N, bias, flags);
                break;
            case 2:
                tile_2(nr, y, ldy, m0 + r, ar, qr, kt, p0, seg, nseg, N, bias, flags);
                break;
            case 1:
                tile_1(nr, y, ldy, m0 + r, ar, qr, kt, p0, seg, nseg, N, bias, flags);
                break;
            default:
                break;
            }
        }
    }
}

/* 16 independent accumulators of vpdpbusd (vnni) or vdpbf16ps (bf16, when the CPU has it) */
double rank_pgemm_peak_avx512(int vnni, long iters) {
    if (vnni) {
        __m512i acc[16], a = _mm512_set1_epi8(3), w = _mm512_set1_epi8(-2);
        for (int j = 0; j < 16; j++)
            acc[j] = _mm512_setzero_si512();
        for (long i = 0; i < iters; i++) {
#pragma GCC unroll 16
            for (int j = 0; j < 16; j++)
                acc[j] = _mm512_dpbusd_epi32(acc[j], a, w);
            __asm__ volatile("" ::"v"(acc[0]), "v"(acc[5]), "v"(acc[10]), "v"(acc[15]));
        }
        __m512i t = acc[0];
        for (int j = 1; j < 16; j++)
            t = _mm512_add_epi32(t, acc[j]);
        volatile int sink = _mm512_reduce_add_epi32(t);
        (void)sink;
        return (double)iters * 16 * 64;
    }
    return rank_pgemm_peak_bf16(iters);
}
