/* rank_pgemm.c: packing, the dispatch by path, and the scalar and OpenBLAS (fp32) paths. */
#include "rank_pgemm.h"

#include "core_alloc.h"
#include "core_err.h"
#include "rank_blas.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define PANEL 16

int rank_i16_weight_levels(int Kp) {
    /* |a| <= 2047 codes; a segment's int32 sum must not overflow: Kp * 2047 * lw < 2^31 */
    long lw = (2147483647L / 2047L) / (Kp > 0 ? Kp : 1);
    return lw > 2047 ? 2047 : lw < 1 ? 1 : (int)lw;
}

int rank_pgemm_kp(rank_isa isa, int K) {
    switch (isa) {
    case RANK_ISA_AVX2_INT16:
        return (K + 1) & ~1;
    case RANK_ISA_AVX512_VNNI:
    case RANK_ISA_AVX2_INT8:
        return (K + 3) & ~3;
    case RANK_ISA_AVX512_BF16:
        return (K + 1) & ~1;
    case RANK_ISA_AMX_BF16:
        return (K + 31) & ~31;
    default:
        return K;
    }
}

static size_t elem_bytes(rank_isa isa) {
    if (rank_isa_int8(isa)) return 1;
    return isa == RANK_ISA_AVX512_BF16 || isa == RANK_ISA_AMX_BF16 || isa == RANK_ISA_AVX2_INT16
               ? 2
               : 4;
}

/* integer weights carry a scale and a code sum per padded row after the codes */
static size_t tail_bytes(rank_isa isa, size_t np) {
    return rank_isa_integer(isa) ? np * (sizeof(float) + sizeof(int32_t)) : 0;
}

static size_t data_bytes(rank_isa isa, size_t np, int max_K) {
    size_t b = np * (size_t)rank_pgemm_kp(isa, max_K) * elem_bytes(isa);
    return (b + 63) & ~(size_t)63;
}

static void set_tail(rank_pw *pw) {
    if (!rank_isa_integer(pw->isa)) return;
    char *t = (char *)pw->data + data_bytes(pw->isa, (size_t)pw->Np, pw->max_K);
    pw->scale = (float *)t;
    pw->csum = (int32_t *)(t + (size_t)pw->Np * sizeof(float));
}

static int panelled(rank_isa isa) {
    return isa != RANK_ISA_SCALAR && isa != RANK_ISA_FP32;
}

int rank_pw_alloc(rank_pw *pw, rank_isa isa, int N, int max_K) {
    memset(pw, 0, sizeof *pw);
    if (N < 1 || max_K < 1 || N > (1 << 20) || max_K > (1 << 24) || (unsigned)isa >= RANK_ISA_COUNT)
        return CORE_EINVAL;
    pw->isa = isa;
    pw->N = N;
    pw->Np = panelled(isa) ? (N + PANEL - 1) / PANEL * PANEL : N;
    pw->max_K = max_K;
    size_t bytes = data_bytes(isa, (size_t)pw->Np, max_K) + tail_bytes(isa, (size_t)pw->Np);
    pw->data = core_aligned_alloc(bytes ? bytes : 64);
    if (!pw->data) return CORE_ENOMEM;
    memset(pw->data, 0, bytes);
    set_tail(pw);
    return CORE_OK;
}

void rank_pw_wrap(rank_pw *pw, rank_isa isa, int N, int max_K, void *buf) {
    memset(pw, 0, sizeof *pw);
    pw->isa = isa;
    pw->N = N;
    pw->Np = panelled(isa) ? (N + PANEL - 1) / PANEL * PANEL : N;
    pw->max_K = max_K;
    pw->data = buf;
    set_tail(pw);
}

size_t rank_pw_bytes_for(rank_isa isa, int N, int K) {
    size_t np = panelled(isa) ? (size_t)(N + PANEL - 1) / PANEL * PANEL : (size_t)N;
    return data_bytes(isa, np, K) + tail_bytes(isa, np);
}

size_t rank_pw_bytes_max(int N, int K) {
    size_t m = 0;
    for (int i = 0; i < RANK_ISA_COUNT; i++) {
        size_t np = panelled((rank_isa)i) ? (size_t)(N + PANEL - 1) / PANEL * PANEL : (size_t)N;
        size_t b = data_bytes((rank_isa)i, np, K) + tail_bytes((rank_isa)i, np);
        if (b > m) m = b;
    }
    return m;
}

void rank_pw_free(rank_pw *pw) {
    if (!pw) return;
    core_free(pw->data);
    memset(pw, 0, sizeof *pw);
}

size_t rank_pw_bytes(const rank_pw *pw) {
    return data_bytes(pw->isa, (size_t)pw->Np, pw->max_K) + tail_bytes(pw->isa, (size_t)pw->Np);
}

/* fp32 to bf16, rounding to nearest even; NaN stays NaN */
static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

void rank_pw_pack(rank_pw *pw, const float *w, size_t sn, size_t sk, int K, float alpha) {
    int N = pw->N, Np = pw->Np, Kp = rank_pgemm_kp(pw->isa, K);
    pw->K = K;
    pw->Kp = Kp;
    if (pw->isa == RANK_ISA_SCALAR || pw->isa == RANK_ISA_FP32) { /* row-major (N, K) */
        float *d = pw->data;
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++)
                d[(size_t)n * K + k] = alpha * w[n * sn + k * sk];
        return;
    }
    if (pw->isa == RANK_ISA_AVX2) { /* [panel][k][16] */
        float *d = pw->data;
        for (int p = 0; p < Np / PANEL; p++)
            for (int k = 0; k < K; k++)
                for (int j = 0; j < PANEL; j++) {
                    int n = p * PANEL + j;
                    d[((size_t)p * K + k) * PANEL + j] = n < N ? alpha * w[n * sn + k * sk] : 0.f;
                }
        return;
    }
    if (pw->isa == RANK_ISA_AVX2_INT16) { /* [panel][k / 2][16][2], a scale per row */
        int16_t *d = pw->data;
        int lw = rank_i16_weight_levels(Kp);
        for (int n = 0; n < Np; n++) {
            float amax = 0.f;
            for (int k = 0; k < K && n < N; k++) {
                float v = fabsf(alpha * w[n * sn + k * sk]);
                if (v > amax) amax = v;
            }
            float sc = amax > 0.f ? amax / (float)lw : 1.f;
            int32_t cs = 0;
            int p = n / PANEL, j = n % PANEL;
            for (int k = 0; k < Kp; k++) {
                float v = n < N && k < K ? alpha * w[n * sn + k * sk] / sc : 0.f;
                int q = (int)(v + (v >= 0.f ? 0.5f : -0.5f));
                q = q > lw ? lw : q < -lw ? -lw : q;
                d[(((size_t)p * (Kp / 2) + k / 2) * PANEL + j) * 2 + (k & 1)] = (int16_t)q;
                cs += q;
            }
            pw->scale[n] = sc;
            pw->csum[n] = cs;
        }
        return;
    }
    if (rank_isa_int8(pw->isa)) { /* [panel][k / 4][16][4], a scale per row */
        int8_t *d = pw->data;
        for (int n = 0; n < Np; n++) {
            float amax = 0.f;
            for (int k = 0; k < K && n < N; k++) {
                float v = fabsf(alpha * w[n * sn + k * sk]);
                if (v > amax) amax = v;
            }
            float sc = amax > 0.f ? amax / 127.f : 1.f;
            int32_t cs = 0;
            int p = n / PANEL, j = n % PANEL;
            for (int k = 0; k < Kp; k++) {
                float v = n < N && k < K ? alpha * w[n * sn + k * sk] / sc : 0.f;
                int q = (int)(v + (v >= 0.f ? 0.5f : -0.5f)); /* nearest, ties away from 0 */
                q = q > 127 ? 127 : q < -127 ? -127 : q;
                d[(((size_t)p * (Kp / 4) + k / 4) * PANEL + j) * 4 + (k & 3)] = (int8_t)q;
                cs += (int32_t)q;
            }
            pw->scale[n] = sc;
            pw->csum[n] = cs;
        }
        return;
    }
    /* bf16: [panel][k / 2][16][2]; read along whichever stride of w is 1 */
    uint16_t *d = pw->data;
    if (Np > N || Kp > K) memset(d, 0, (size_t)Np * Kp * sizeof *d);
    if (sk == 1) {
        for (int n = 0; n < N; n++) {
            uint16_t *dn = d + (size_t)(n / PANEL) * (Kp / 2) * PANEL * 2 + (size_t)(n % PANEL) * 2;
            for (int k = 0; k < K; k++)
                dn[(size_t)(k / 2) * PANEL * 2 + (k & 1)] = to_bf16(alpha * w[n * sn + k]);
        }
    } else {
        for (int k = 0; k < K; k++)
            for (int n = 0; n < N; n++)
                d[(((size_t)(n / PANEL) * (Kp / 2) + k / 2) * PANEL + n % PANEL) * 2 + (k & 1)] =
                    to_bf16(alpha * w[n * sn + k * sk]);
    }
}

size_t rank_pgemm_scratch_bytes(rank_isa isa, int max_kp_sum) {
    switch (isa) {
    case RANK_ISA_AVX512_VNNI:
    case RANK_ISA_AVX2_INT8: /* the codes, then a scale and a zero point per row and segment */
        return (size_t)RANK_PG_MB * (size_t)max_kp_sum + 64 +
               (size_t)RANK_PG_MB * RANK_PG_MAXSEG * 8 + 64;
    case RANK_ISA_AVX2_INT16:
        return (size_t)RANK_PG_MB * (size_t)max_kp_sum * 2 + 64 +
               (size_t)RANK_PG_MB * RANK_PG_MAXSEG * 8 + 64;
    case RANK_ISA_AVX512_BF16:
        return (size_t)RANK_PG_MB * (size_t)max_kp_sum * 2 + 64;
    case RANK_ISA_AMX_BF16: /* the converted block, and 4 C tiles of 16 x 16 fp32 */
        return (size_t)RANK_PG_MB * (size_t)max_kp_sum * 2 + 4 * 1024 + 64 + 64;
    default:
        return 64;
    }
}

static void init_rows(float *y, int ldy, int M, int N, const float *bias, int flags) {
    if (flags & RANK_PG_ACC) return;
    for (int m = 0; m < M; m++) {
        if (bias)
            memcpy(y + (size_t)m * ldy, bias, (size_t)N * sizeof *y);
        else
            memset(y + (size_t)m * ldy, 0, (size_t)N * sizeof *y);
    }
}

static void relu_rows(float *y, int ldy, int M, int N, int flags) {
    if (!(flags & RANK_PG_RELU)) return;
    for (int m = 0; m < M;
         m++) { /* branch-free: a data-dependent branch mispredicts half the time */
        float *r = y + (size_t)m * ldy;
        for (int n = 0; n < N; n++)
            r[n] = r[n] > 0.f ? r[n] : 0.f;
    }
}

static void pgemm_scalar(float *y, int ldy, int M, const rank_pseg *seg, int nseg,
                         const float *bias, int flags) {
    int N = seg[0].w->N;
    init_rows(y, ldy, M, N, bias, flags);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            float s = y[(size_t)m * ldy + n];
            for (int g = 0; g < nseg; g++) {
                const float *a = seg[g].a + (size_t)m * seg[g].lda;
                const float *w = (const float *)seg[g].w->data + (size_t)n * seg[g].w->K;
                for (int k = 0; k < seg[g].w->K; k++)
                    s += a[k] * w[k];
            }
            y[(size_t)m * ldy + n] = s;
        }
    relu_rows(y, ldy, M, N, flags);
}

static void pgemm_blas(float *y, int ldy, int M, const rank_pseg *seg, int nseg, const float *bias,
                       int flags) {
    int N = seg[0].w->N;
    init_rows(y, ldy, M, N, bias, flags);
    for (int g = 0; g < nseg; g++)
        rank_gemm(0, 1, M, N, seg[g].w->K, 1.f, seg[g].a, seg[g].lda, seg[g].w->data, seg[g].w->K,
                  1.f, y, ldy);
    relu_rows(y, ldy, M, N, flags);
}

void rank_pgemm(float *y, int ldy, int M, const rank_pseg *seg, int nseg, const float *bias,
                int flags, void *scratch) {
    if (M <= 0 || nseg <= 0) return;
    switch (seg[0].w->isa) {
    case RANK_ISA_AVX2:
        rank_pgemm_avx2(y, ldy, M, seg, nseg, bias, flags, scratch);
        return;
    case RANK_ISA_AVX512_BF16:
        rank_pgemm_avx512bf16(y, ldy, M, seg, nseg, bias, flags, scratch);
        return;
    case RANK_ISA_AMX_BF16:
        rank_pgemm_amx(y, ldy, M, seg, nseg, bias, flags, scratch);
        return;
    case RANK_ISA_AVX512_VNNI:
        rank_pgemm_vnni(y, ldy, M, seg, nseg, bias, flags, scratch);
        return;
    case RANK_ISA_AVX2_INT8:
        rank_pgemm_avx2i8(y, ldy, M, seg, nseg, bias, flags, scratch);
        return;
    case RANK_ISA_AVX2_INT16:
        rank_pgemm_avx2i16(y, ldy, M, seg, nseg, bias, flags, scratch);
        return;
    case RANK_ISA_FP32:
        pgemm_blas(y, ldy, M, seg, nseg, bias, flags);
        return;
    default:
        pgemm_scalar(y, ldy, M, seg, nseg, bias, flags);
        return;
    }
}

void rank_pgemm_naive(float *y, int ldy, int M, const float *const *a, const int *lda,
                      const float *const *w, const int *K, int nseg, int N, const float *bias,
                      int flags) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = (flags & RANK_PG_ACC) ? y[(size_t)m * ldy + n] : bias ? bias[n] : 0.0;
            for (int g = 0; g < nseg; g++)
                for (int k = 0; k < K[g]; k++)
                    s += (double)a[g][(size_t)m * lda[g] + k] * w[g][(size_t)n * K[g] + k];
            if ((flags & RANK_PG_RELU) && !(s > 0.0)) s = 0.0;
            y[(size_t)m * ldy + n] = (float)s;
        }
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

double rank_pgemm_peak_gmacs(rank_isa isa, int ms) {
    long iters = 1000;
    for (int pass = 0; pass < 2; pass++) { /* a short run to size the real one */
        double t0 = now_s(), macs;
        switch (isa) {
        case RANK_ISA_AVX2:
        case RANK_ISA_AVX2_INT8:
        case RANK_ISA_AVX2_INT16:
            macs = rank_pgemm_peak_avx2(isa == RANK_ISA_AVX2_INT8    ? 1
                                        : isa == RANK_ISA_AVX2_INT16 ? 2
                                                                     : 0,
                                        iters);
            break;
        case RANK_ISA_AVX512_BF16:
        case RANK_ISA_AVX512_VNNI:
            macs = rank_pgemm_peak_avx512(isa == RANK_ISA_AVX512_VNNI, iters);
            break;
        case RANK_ISA_AMX_BF16:
            macs = rank_pgemm_peak_amx(iters);
            break;
        default:
            return 0;
        }
        double dt = now_s() - t0;
        if (pass == 1) return macs / dt / 1e9;
        double want = ms * 1e-3;
        iters = dt > 0 ? (long)((double)iters * want / dt) + 1 : iters * 100;
    }
    return 0;
}

/* Self-test: y (M x N) over three segments whose K and N are not multiples of any block, with
 * inputs in [-1, 1) from a fixed generator. Bound per output, s = sum_k |a_k w_k| + |init|:
 * fp32 paths 1e-5 (1 + s); bf16 2^-7 s + 1e-5; int8 (the scales are at most max/63 and
 * max/127) 2 * (1/63 + 1/127) s_max + 1e-5 with s_max the largest s of the row: a loose bound
 * that any layout or indexing error exceeds by far. */
int rank_pgemm_selftest(rank_isa isa, double *err, double *bound) {
    enum { M = 37, N = 45, NSEG = 3, LDMAX = 73, KMAX = 70 };
    static const int K[NSEG] = {70, 9, 33};
    /* no allocation (a process short of memory, or a test injecting allocation failures, must
     * not lose a path): the caller serializes calls, so static buffers serve */
    static float a[NSEG][M * LDMAX], w[NSEG][N * KMAX], y[M * N], ref[M * N], bias[N];
    static _Alignas(64) unsigned char wbuf[NSEG][48 * 1024], scr[64 * 1024];
    rank_pw pw[NSEG];
    rank_pseg sg[NSEG];
    int lda[NSEG], kp_sum = 0, rc = 0;
    uint64_t st = 0x9e3779b97f4a7c15ull;
    *err = 0;
    *bound = 0;
    for (int g = 0; g < NSEG; g++) {
        lda[g] = K[g] + 3;
        for (int i = 0; i < M * lda[g]; i++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            /* the second segment is nonnegative, like ReLU outputs */
            float v = (float)((double)(st >> 11) / 9007199254740992.0 * 2.0 - 1.0);
            a[g][i] = g == 1 ? fabsf(v) : v;
        }
        for (int i = 0; i < N * K[g]; i++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            w[g][i] = (float)((double)(st >> 11) / 9007199254740992.0 - 0.5);
        }
        if (rank_pw_bytes_for(isa, N, K[g]) > sizeof wbuf[g]) return CORE_ETOOBIG;
        rank_pw_wrap(&pw[g], isa, N, K[g], wbuf[g]);
        rank_pw_pack(&pw[g], w[g], (size_t)K[g], 1, K[g], 1.f);
        sg[g] = (rank_pseg){a[g], lda[g], &pw[g]};
        kp_sum += rank_pgemm_kp(isa, K[g]);
    }
    if (rank_pgemm_scratch_bytes(isa, kp_sum) > sizeof scr) return CORE_ETOOBIG;
    for (int n = 0; n < N; n++)
        bias[n] = (float)(n % 7) * 0.1f - 0.3f;
    for (int pass = 0; pass < 2; pass++) { /* bias + ReLU, then accumulate */
        int flags = pass ? RANK_PG_ACC : RANK_PG_RELU;
        for (int i = 0; i < M * N; i++)
            y[i] = ref[i] = pass ? (float)(i % 5) - 2.f : 0.f;
        rank_pgemm(y, N, M, sg, NSEG, pass ? NULL : bias, flags, scr);
        const float *ca[NSEG] = {a[0], a[1], a[2]}, *cw[NSEG] = {w[0], w[1], w[2]};
        rank_pgemm_naive(ref, N, M, ca, lda, cw, K, NSEG, N, pass ? NULL : bias, flags);
        for (int m = 0; m < M; m++) {
            double mag[N], smax = 0;
            for (int n = 0; n < N; n++) {
                double s = fabs(pass ? (double)((m * N + n) % 5) - 2.0 : bias[n]);
                for (int g = 0; g < NSEG; g++)
                    for (int k = 0; k < K[g]; k++)
                        s += fabs((double)a[g][m * lda[g] + k] * w[g][n * K[g] + k]);
                mag[n] = s;
                if (s > smax) smax = s;
            }
            for (int n = 0; n < N; n++) {
                double b;
                if (rank_isa_int8(isa))
                    b = 2.0 * (1.0 / 63 + 1.0 / 127) * smax + 1e-5;
                else if (isa == RANK_ISA_AVX2_INT16)
                    b = 2.0 * (2.0 / 2047) * smax + 1e-5;
                else if (!strcmp(rank_isa_precision(isa), "bf16"))
                    b = ldexp(1.0, -7) * mag[n] + 1e-5;
                else
                    b = 1e-5 * (1.0 + mag[n]);
                double d = fabs((double)y[m * N + n] - ref[m * N + n]);
                if (!(d <= b)) rc = 1; /* NaN fails too */
                if (!(d <= *err)) *err = d, *bound = b;
            }
        }
    }
    return rc;
}
