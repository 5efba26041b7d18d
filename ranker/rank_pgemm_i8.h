/* rank_pgemm_i8.h: what the int8 paths' kernels share (AVX-512 VNNI and AVX2): the activation
 * quantizer's parameters and the per-block loop; each kernel brings its own vectorized row
 * quantizer. */
#ifndef TRAIL_RANK_PGEMM_I8_H
#define TRAIL_RANK_PGEMM_I8_H

#include "rank_pgemm.h"

#include <stddef.h>
#include <stdint.h>

/* A row's codes: nonnegative rows map [0, max] to 0..top, others [-max, max] to
 * zp - half..zp + half (top = 255, zp = 128, half = 127 for VNNI; 127, 64, 63 for AVX2), each
 * code the nearest (ties to even). Padding up to Kp gets the zero point (its weights are 0). */
typedef struct rank_i8q {
    float scale; /* a ~ scale * (code - zp) */
    int32_t zp;
} rank_i8q;

/* The scale and zero point of a row with extremes amin <= 0 <= amax. */
static inline rank_i8q rank_i8_params(float amin, float amax, int top, int zp, int half) {
    rank_i8q q;
    float levels;
    if (amin >= 0.f) {
        q.zp = 0;
        levels = (float)top;
    } else {
        q.zp = zp;
        levels = (float)half;
        amax = -amin > amax ? -amin : amax;
    }
    q.scale = amax > 0.f ? amax / levels : 1.f;
    return q;
}

/* RANK_I8_BLOCK(name, row, T): a function name(ab, qs, kt, seg, nseg, m0, mb) quantizing rows
 * [m0, m0 + mb) of every segment side by side with row(dst, src, K, Kp) (the path's own
 * vectorized quantizer) into codes of type T: row r's at ab + r * kt, its quantizers at
 * qs + r * nseg. */
#define RANK_I8_BLOCK(name, row, T)                                                                \
    static void name(T *ab, rank_i8q *qs, int kt, const rank_pseg *seg, int nseg, int m0,          \
                     int mb) {                                                                     \
        for (int r = 0; r < mb; r++) {                                                             \
            T *dst = ab + (size_t)r * kt;                                                          \
            for (int g = 0; g < nseg; g++) {                                                       \
                qs[r * nseg + g] =                                                                 \
                    row(dst, seg[g].a + (size_t)(m0 + r) * seg[g].lda, seg[g].w->K, seg[g].w->Kp); \
                dst += seg[g].w->Kp;                                                               \
            }                                                                                      \
        }                                                                                          \
    }

/* The scratch's parts: codes (RANK_PG_MB * kt bytes, kt counting bytes), then the quantizers. */
static inline rank_i8q *rank_i8_qs(void *scratch, int kt) {
    size_t off = ((size_t)RANK_PG_MB * (size_t)kt + 63) & ~(size_t)63;
    return (rank_i8q *)((char *)scratch + off);
}

#endif
