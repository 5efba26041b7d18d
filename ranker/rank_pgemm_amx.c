/* rank_pgemm_amx.c: the bf16 path on AMX tiles (compiled with -mamx-tile -mamx-bf16 and the
 * AVX-512 BF16 flags; called only when the CPU has AMX-BF16 and Linux granted the tile state).
 *
 * Per block of RANK_PG_MB rows the activations are rounded to bf16 into the scratch (each
 * segment's K padded to its Kp, a multiple of 32; rows past M zeroed up to a multiple of 32).
 * Then per 32 rows by 2 panels (32 columns): four 16 x 16 fp32 C tiles, two A tiles (16 rows by 32
 * k) and two B tiles (16 k pairs by 16 columns, which is the packed panel's own layout),
 * tdpbf16ps over every 32-wide k step of every segment; the C tiles go through a small buffer for
 * the bias, ReLU and ragged edges. Tiles: 0-3 C, 4-5 A, 6-7 B.
 */
#include "rank_pgemm.h"
#include "rank_pgemm_bf16.h"
#include "rank_pgemm_simd.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

typedef struct tilecfg {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

/* Palette 1, all eight tiles 16 rows of 64 bytes: 0-3 C (fp32), 4-5 A and 6-7 B (bf16 pairs). */
static void tiles_config(void) {
    tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
}

static void epilogue(float *y, int ldy, int m0, int rows, int n0, int N, const float *tmp,
                     const float *bias, int flags) {
    if (N - n0 <= 0) return;
    __mmask16 mk = rank_x512_mask(N, n0);
    __m512 b = rank_x512_bias(bias, n0, mk, flags);
    for (int r = 0; r < rows; r++)
        rank_x512_store(y + (size_t)(m0 + r) * ldy + n0, _mm512_load_ps(tmp + r * 16), b, mk,
                        flags);
}

void rank_pgemm_amx(float *y, int ldy, int M, const rank_pseg *seg, int nseg, const float *bias,
                    int flags, void *scratch) {
    int N = seg[0].w->N, np = seg[0].w->Np / 16, kt = 0;
    for (int g = 0; g < nseg; g++)
        kt += seg[g].w->Kp;
    uint16_t *ab = scratch;
    float *tmp = (float *)((char *)scratch + (size_t)RANK_PG_MB * kt * 2 + 64 -
                           ((size_t)RANK_PG_MB * kt * 2) % 64);
    tiles_config();
    size_t astride = (size_t)kt * 2; /* bytes */
    for (int m0 = 0; m0 < M; m0 += RANK_PG_MB) {
        int mb = M - m0 < RANK_PG_MB ? M - m0 : RANK_PG_MB, mpad = (mb + 31) & ~31;
        rank_bf16_block(ab, kt, seg, nseg, m0, mb);
        if (mpad > mb) memset(ab + (size_t)mb * kt, 0, (size_t)(mpad - mb) * astride);
        for (int p0 = 0; p0 < np; p0 += 2) {
            int two = p0 + 1 < np;
            for (int r0 = 0; r0 < mb; r0 += 32) {
                _tile_zero(0);
                _tile_zero(1);
                _tile_zero(2);
                _tile_zero(3);
                const uint16_t *a0 = ab + (size_t)r0 * kt;
                for (int g = 0; g < nseg; g++) {
                    const rank_pw *w = seg[g].w;
                    size_t pstride = (size_t)(w->Kp / 2) * 16; /* uint32 per panel */
                    const uint32_t *wp = (const uint32_t *)w->data + (size_t)p0 * pstride;
                    for (int c = 0; c < w->Kp / 32; c++) {
                        _tile_loadd(4, a0 + 32 * c, astride);
                        _tile_loadd(5, a0 + 16 * kt + 32 * c, astride);
                        _tile_loadd(6, wp + (size_t)c * 256, 64);
                        _tile_dpbf16ps(0, 4, 6);
                        _tile_dpbf16ps(2, 5, 6);
                        if (two) {
                            _tile_loadd(7, wp + pstride + (size_t)c * 256, 64);
                            _tile_dpbf16ps(1, 4, 7);
                            _tile_dpbf16ps(3, 5, 7);
                        }
                    }
                    a0 += w->Kp;
                }
                _tile_stored(0, tmp, 64);
                _tile_stored(1, tmp + 256, 64);
                _tile_stored(2, tmp + 512, 64);
                _tile_stored(3, tmp + 768, 64);
                int rows0 = mb - r0 < 16 ? mb - r0 : 16, rows1 = mb - r0 - 16;
                epilogue(y, ldy, m0 + r0, rows0, p0 * 16, N, tmp, bias, flags);
                if (two) epilogue(y, ldy, m0 + r0, rows0, p0 * 16 + 16, N, tmp + 256, bias, flags);
                if (rows1 > 0) {
                    epilogue(y, ldy, m0 + r0 + 16, rows1, p0 * 16, N, tmp + 512, bias, flags);
                    if (two)
                        epilogue(y, ldy, m0 + r0 + 16, rows1, p0 * 16 + 16, N, tmp + 768, bias,
                                 flags);
                }
            }
        }
    }
    _tile_release();
}

/* four C tiles, each step 4 tdpbf16ps of 16 x 16 x 32 */
double rank_pgemm_peak_amx(long iters) {
    static _Alignas(64) uint16_t buf[2][512];
    tiles_config();
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, buf[0], 64);
    _tile_loadd(5, buf[1], 64);
    _tile_loadd(6, buf[0], 64);
    _tile_loadd(7, buf[1], 64);
    for (long i = 0; i < iters; i++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    static _Alignas(64) float out[256];
    _tile_stored(0, out, 64);
    _tile_release();
    return (double)iters * 4 * 16 * 16 * 32;
}
