/* test_rank_pgemm.c: every serving path's packed GEMM against the naive double-precision loop, on
 * ragged shapes, several segments, bias / accumulate / ReLU, and strided (transposed) packing.
 *
 * Bounds, with s = sum_k |a_k w_k| for an output and K its inputs over all segments:
 *   fp32 paths (scalar, fp32, avx2):  |y - ref| <= 4 K 2^-24 s + 1e-6   (fp32 accumulation)
 *   bf16 paths:  against the loop over the same inputs rounded to bf16 (what the path is given):
 *                |y - ref_bf16| <= 4 K 2^-24 s + 1e-6; and against fp32 inputs
 *                |y - ref| <= (2^-8 + 4 K 2^-24) s + 1e-6 (each input rounds by at most 2^-9).
 *   int8 paths:  each activation row of each segment g rounds by at most s_a/2 (s_a = its max |a|
 *                over its levels: 255 or 127 for a nonnegative row, 127 or 63 otherwise, VNNI or
 *                AVX2; 2047 on the int16 path), each weight by s_w/2 (s_w = the row's max |w| /
 *                127; int16: / rank_i16_weight_levels), so
 *                |y - ref| <= sum_g [s_a/2 sum|w| + s_w/2 sum|a| + K_g s_a s_w / 4] + the fp32
 * bound; and on inputs that are their own codes (integers with max 127 per row) the int32 sums are
 * exact: y == ref. Paths this CPU cannot run are skipped, and their names printed.
 */
#include "test_common.h"

#include "core_alloc.h"
#include "core_err.h"
#include "rank_isa.h"
#include "rank_kernels.h"
#include "rank_pgemm.h"

#include <math.h>

static uint64_t rng = 99;
static float frand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float round_bf16(float f) { /* nearest even, as the paths round */
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1);
    u &= 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

typedef struct shape {
    int M, N, nseg, K[3], ldpad, flags, bias;
} shape;

static void run_case(rank_isa isa, const shape *s) {
    int M = s->M, N = s->N, ldy = N + s->ldpad, kp_sum = 0;
    float *a[3], *w[3], *ab[3], *wb[3];
    int lda[3];
    rank_pw pw[3];
    rank_pseg seg[3];
    for (int g = 0; g < s->nseg; g++) {
        int K = s->K[g];
        lda[g] = K + s->ldpad;
        a[g] = calloc((size_t)M * lda[g], 4);
        w[g] = calloc((size_t)N * K, 4);
        ab[g] = calloc((size_t)M * lda[g], 4);
        wb[g] = calloc((size_t)N * K, 4);
        for (size_t i = 0; i < (size_t)M * lda[g]; i++)
            ab[g][i] = round_bf16(a[g][i] = frand() * (g + 1));
        for (size_t i = 0; i < (size_t)N * K; i++)
            w[g][i] = frand() * 0.5f;
        /* pack from a transposed copy for the second segment: strides sn = 1, sk = N */
        float *src = w[g];
        size_t sn = (size_t)K, sk = 1;
        float *wt = NULL;
        if (g == 1) {
            wt = malloc((size_t)N * K * 4);
            for (int n = 0; n < N; n++)
                for (int k = 0; k < K; k++)
                    wt[(size_t)k * N + n] = w[g][(size_t)n * K + k];
            src = wt, sn = 1, sk = (size_t)N;
        }
        assert_int_equal(rank_pw_alloc(&pw[g], isa, N, K + 3), CORE_OK);
        rank_pw_pack(&pw[g], src, sn, sk, K, 2.f);
        free(wt);
        for (size_t i = 0; i < (size_t)N * K; i++) {
            w[g][i] *= 2.f; /* the alpha the pack applied */
            wb[g][i] = round_bf16(w[g][i]);
        }
        seg[g] = (rank_pseg){a[g], lda[g], &pw[g]};
        kp_sum += rank_pgemm_kp(isa, K);
    }
    float *bias = malloc((size_t)N * 4), *y = malloc((size_t)M * ldy * 4);
    float *ref = malloc((size_t)M * ldy * 4), *refb = malloc((size_t)M * ldy * 4);
    float *mag = malloc((size_t)M * ldy * 4);
    for (int n = 0; n < N; n++)
        bias[n] = frand();
    for (size_t i = 0; i < (size_t)M * ldy; i++)
        y[i] = ref[i] = refb[i] = frand();
    void *scr = core_aligned_alloc(rank_pgemm_scratch_bytes(isa, kp_sum));
    assert_non_null(scr);
    rank_pgemm(y, ldy, M, seg, s->nseg, s->bias ? bias : NULL, s->flags, scr);
    const float *ca[3] = {a[0], a[1], a[2]}, *cw[3] = {w[0], w[1], w[2]};
    const float *cab[3] = {ab[0], ab[1], ab[2]}, *cwb[3] = {wb[0], wb[1], wb[2]};
    const float *cw_abs[3];
    float *wabs[3], *aabs[3];
    for (int g = 0; g < s->nseg; g++) {
        wabs[g] = malloc((size_t)N * s->K[g] * 4);
        aabs[g] = malloc((size_t)M * lda[g] * 4);
        for (size_t i = 0; i < (size_t)N * s->K[g]; i++)
            wabs[g][i] = fabsf(w[g][i]);
        for (size_t i = 0; i < (size_t)M * lda[g]; i++)
            aabs[g][i] = fabsf(a[g][i]);
        cw_abs[g] = wabs[g];
    }
    const float *ca_abs[3] = {aabs[0], aabs[1], aabs[2]};
    rank_pgemm_naive(ref, ldy, M, ca, lda, cw, s->K, s->nseg, N, s->bias ? bias : NULL, s->flags);
    rank_pgemm_naive(refb, ldy, M, cab, lda, cwb, s->K, s->nseg, N, s->bias ? bias : NULL,
                     s->flags);
    rank_pgemm_naive(mag, ldy, M, ca_abs, lda, cw_abs, s->K, s->nseg, N, NULL, 0);
    int Ksum = 0;
    for (int g = 0; g < s->nseg; g++)
        Ksum += s->K[g];
    int bf = !strcmp(rank_isa_precision(isa), "bf16"), i8 = rank_isa_integer(isa);
    double acc_eps = 4.0 * Ksum * ldexp(1.0, -24);
    double *qb = calloc((size_t)M * N, sizeof *qb); /* the int8 rounding bound per output */
    for (int g = 0; g < s->nseg && i8; g++) {
        int K = s->K[g];
        double top = isa == RANK_ISA_AVX2_INT8 ? 127 : 255,
               half = isa == RANK_ISA_AVX2_INT8 ? 63 : 127;
        double wlev = 127;
        if (isa == RANK_ISA_AVX2_INT16) /* symmetric 12-bit codes, no zero point */
            top = half = 2047, wlev = rank_i16_weight_levels(rank_pgemm_kp(isa, K));
        for (int m = 0; m < M; m++) {
            double amax = 0, amin = 0, asum = 0;
            for (int k = 0; k < K; k++) {
                double v = a[g][(size_t)m * lda[g] + k];
                amax = fmax(amax, v), amin = fmin(amin, v), asum += fabs(v);
            }
            double sa = amin >= 0 ? amax / top : fmax(amax, -amin) / half;
            for (int n = 0; n < N; n++) {
                double wmax = 0, wsum = 0;
                for (int k = 0; k < K; k++) {
                    double v = fabs(w[g][(size_t)n * K + k]);
                    wmax = fmax(wmax, v), wsum += v;
                }
                double sw = wmax / wlev;
                qb[(size_t)m * N + n] += sa / 2 * wsum + sw / 2 * asum + K * sa * sw / 4;
            }
        }
    }
    for (int m = 0; m < M; m++)
        for (int n = 0; n < ldy; n++) {
            size_t i = (size_t)m * ldy + n;
            if (n >= N) { /* padding columns of y stay untouched */
                assert_true(y[i] == ref[i]);
                continue;
            }
            double sm = mag[i] + ((s->flags & RANK_PG_ACC) ? fabs(ref[i]) : 0.0) + 1.0;
            double t_same = acc_eps * sm + 1e-6, t_fp32 = (bf ? ldexp(1.0, -8) : 0.0) * sm + t_same;
            if (i8) t_fp32 += qb[(size_t)m * N + n];
            double d = fabs((double)y[i] - ref[i]), db = fabs((double)y[i] - refb[i]);
            if (d > t_fp32 || (bf && db > t_same))
                fail_msg("%s M=%d N=%d m=%d n=%d: %.8g vs fp32 %.8g (bound %.3g), bf16 inputs %.8g",
                         rank_isa_name(isa), M, N, m, n, y[i], ref[i], t_fp32, refb[i]);
        }
    for (int g = 0; g < s->nseg; g++) {
        free(a[g]), free(w[g]), free(ab[g]), free(wb[g]), free(wabs[g]), free(aabs[g]);
        rank_pw_free(&pw[g]);
    }
    free(bias), free(y), free(ref), free(refb), free(mag), free(qb);
    core_free(scr);
}

static void test_paths_against_naive(void **state) {
    (void)state;
    static const shape cases[] = {
        {1, 1, 1, {1}, 0, 0, 0},
        {7, 17, 2, {3, 5}, 1, RANK_PG_RELU, 1},
        {64, 200, 2, {264, 50}, 0, RANK_PG_RELU, 1},
        {130, 80, 1, {200}, 3, RANK_PG_RELU | RANK_PG_ACC, 0},
        {33, 31, 3, {33, 1, 64}, 2, RANK_PG_ACC, 1},
        {100, 50, 1, {64}, 0, 0, 0},
        {5, 64, 2, {31, 32}, 0, 0, 1},
        {70, 40, 1, {1100}, 1, RANK_PG_RELU, 1},             /* long K: chunked on avx2 */
        {9, 20, 1, {777}, 0, RANK_PG_ACC | RANK_PG_RELU, 0}, /* chunked, accumulating */
    };
    int ran = 0;
    for (int i = 0; i < RANK_ISA_COUNT; i++) {
        if (!rank_isa_available((rank_isa)i)) {
            printf("skip path %s: this CPU cannot run it\n", rank_isa_name((rank_isa)i));
            continue;
        }
        for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
            run_case((rank_isa)i, &cases[c]);
        printf("path %s: %zu shapes within bounds\n", rank_isa_name((rank_isa)i),
               sizeof cases / sizeof *cases);
        ran++;
    }
    assert_true(ran >= 2); /* scalar and fp32 run everywhere */
}

/* Integer inputs whose row maxima are 127 quantize to themselves (scale 1): the int8 paths'
 * int32 sums, zero points and rescale must then give the exact result. */
static void test_int8_exact_on_codes(void **state) {
    (void)state;
    enum { M = 37, N = 40, K0 = 70, K1 = 9 };
    static float a0[M * K0], a1[M * K1], w0[N * K0], w1[N * K1], y[M * N];
    /* a0: signed rows (zero point); a1: nonnegative rows; both filled per path below */
    for (int n = 0; n < N; n++) {
        for (int k = 0; k < K0; k++)
            w0[n * K0 + k] = (float)((n * 11 + k * 5) % 255 - 127);
        for (int k = 0; k < K1; k++)
            w1[n * K1 + k] = (float)((n * 3 + k * 7) % 255 - 127);
        w0[n * K0] = w1[n * K1] = -127.f;
    }
    for (int i = RANK_ISA_AVX2_INT8; i < RANK_ISA_COUNT; i++) {
        rank_isa isa = (rank_isa)i;
        if (!rank_isa_int8(isa)) continue;
        if (!rank_isa_available(isa)) {
            printf("skip path %s: this CPU cannot run it\n", rank_isa_name(isa));
            continue;
        }
        int lev = isa == RANK_ISA_AVX2_INT8 ? 63 : 127;  /* AVX2: 7-bit codes, signed within +-63 */
        int top = isa == RANK_ISA_AVX2_INT8 ? 127 : 255; /* nonnegative rows: 0..top */
        for (int m = 0; m < M; m++) {
            for (int k = 0; k < K0; k++)
                a0[m * K0 + k] = (float)((m * 7 + k * 13) % (2 * lev + 1) - lev);
            a0[m * K0] = (float)lev;
            for (int k = 0; k < K1; k++)
                a1[m * K1 + k] = (float)((m * 5 + k * 3) % (top + 1));
            a1[m * K1] = (float)top;
        }
        rank_pw p0, p1;
        assert_int_equal(rank_pw_alloc(&p0, isa, N, K0), CORE_OK);
        assert_int_equal(rank_pw_alloc(&p1, isa, N, K1), CORE_OK);
        rank_pw_pack(&p0, w0, K0, 1, K0, 1.f);
        rank_pw_pack(&p1, w1, K1, 1, K1, 1.f);
        rank_pseg sg[2] = {{a0, K0, &p0}, {a1, K1, &p1}};
        void *scr = core_aligned_alloc(rank_pgemm_scratch_bytes(isa, K0 + K1 + 8));
        rank_pgemm(y, N, M, sg, 2, NULL, 0, scr);
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double ref = 0;
                for (int k = 0; k < K0; k++)
                    ref += (double)a0[m * K0 + k] * w0[n * K0 + k];
                for (int k = 0; k < K1; k++)
                    ref += (double)a1[m * K1 + k] * w1[n * K1 + k];
                if (y[m * N + n] != (float)ref)
                    fail_msg("%s m=%d n=%d: %.9g vs %.9g", rank_isa_name(isa), m, n, y[m * N + n],
                             ref);
            }
        printf("path %s: exact on integer codes\n", rank_isa_name(isa));
        core_free(scr);
        rank_pw_free(&p0);
        rank_pw_free(&p1);
    }
}

/* The fp16 gather against the naive fp32 gather: each of the S terms rounds by at most 2^-11 of
 * itself in fp16. */
static void test_gather_f16(void **state) {
    (void)state;
    if (!rank_isa_available(RANK_ISA_AVX2)) {
        printf("skip the fp16 gather: this CPU lacks AVX2/F16C\n");
        return;
    }
    enum { S = 6, NB = 8, W = 45, B = 13 };
    static float P[S * NB * W], out[B * W], ref[B * W], mag[B * W];
    static uint16_t P16[S * NB * W], sig[B * S];
    for (int i = 0; i < S * NB * W; i++)
        P[i] = frand() * 3.f;
    for (int i = 0; i < B * S; i++)
        sig[i] = (uint16_t)((unsigned)(frand() + 1.f) * 4u % NB);
    for (int i = 0; i < B * W; i++)
        out[i] = ref[i] = frand(), mag[i] = 0.f;
    rank_f32_to_f16(P16, P, S * NB * W);
    static float row[W], fused[B * W];
    for (int i = 0; i < W; i++)
        row[i] = frand();
    for (int b = 0; b < B; b++) /* out[b] = row + gather, as copy-then-add and as one pass */
        memcpy(out + b * W, row, sizeof row), memcpy(ref + b * W, row, sizeof row);
    rank_gather_add_f16(fused, row, P16, sig, B, S, NB, W, NULL);
    rank_gather_add_f16(out, NULL, P16, sig, B, S, NB, W, NULL);
    assert_memory_equal(fused, out, sizeof fused); /* the same sums in the same order */
    rank_gather_add_naive(ref, P, sig, B, S, NB, W);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < S; i++)
            for (int w = 0; w < W; w++)
                mag[b * W + w] += fabsf(P[(i * NB + sig[b * S + i]) * W + w]);
    for (int i = 0; i < B * W; i++)
        if (fabs((double)out[i] - ref[i]) > ldexp(1.0, -11) * mag[i] + 1e-5)
            fail_msg("gather %d: %.8g vs %.8g", i, out[i], ref[i]);
}

/* IEEE half to float, by its bits (no F16C needed here) */
static float half_to_float(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : ldexpf((float)(m | 1024), e - 25);
    return (h & 0x8000) ? -v : v;
}

/* The per-candidate extra row: gathered after the S rows, as one more fp16 term. */
static void test_gather_extra_row(void **state) {
    (void)state;
    if (!rank_isa_available(RANK_ISA_AVX2)) {
        printf("skip the fp16 extra row: this CPU lacks AVX2/F16C\n");
        return;
    }
    enum { S = 3, NB = 4, W = 45, B = 5 };
    static float P[S * NB * W], X[B * W], row[W], out[B * W], ref[B * W];
    static uint16_t P16[S * NB * W], X16[B * W], sig[B * S];
    for (int i = 0; i < S * NB * W; i++)
        P[i] = frand();
    for (int i = 0; i < B * W; i++)
        X[i] = frand() * 2.f;
    for (int i = 0; i < W; i++)
        row[i] = frand();
    for (int i = 0; i < B * S; i++)
        sig[i] = (uint16_t)(i * 7 % NB);
    rank_f32_to_f16(P16, P, S * NB * W);
    rank_f32_to_f16(X16, X, B * W);
    const uint16_t *extra[B];
    for (int b = 0; b < B; b++)
        extra[b] = X16 + (size_t)(B - 1 - b) * W; /* any row, not the b-th */
    rank_gather_add_f16(out, row, P16, sig, B, S, NB, W, extra);
    for (int b = 0; b < B; b++) /* the same sums one candidate at a time, and without the row */
        for (int w = 0; w < W; w++) {
            float a = row[w];
            for (int i = 0; i < S; i++) {
                a += half_to_float(P16[(i * NB + sig[b * S + i]) * W + w]);
            }
            ref[b * W + w] = a + half_to_float(extra[b][w]);
        }
    assert_memory_equal(out, ref, sizeof out);
}

static void test_isa_parse(void **state) {
    (void)state;
    char err[512];
    rank_isa isa;
    assert_int_equal(rank_isa_parse("auto", &isa, err, sizeof err), CORE_OK);
    assert_int_equal(isa, rank_isa_best());
    assert_int_equal(rank_isa_parse("scalar", &isa, err, sizeof err), CORE_OK);
    assert_int_equal(isa, RANK_ISA_SCALAR);
    assert_int_equal(rank_isa_parse("avx9000", &isa, err, sizeof err), CORE_EINVAL);
    assert_non_null(strstr(err, "avx9000"));
    for (int i = 0; i < RANK_ISA_COUNT; i++) {
        int rc = rank_isa_parse(rank_isa_name((rank_isa)i), &isa, err, sizeof err);
        if (rank_isa_available((rank_isa)i)) {
            assert_int_equal(rc, CORE_OK);
            assert_int_equal(isa, i);
        } else { /* a path the CPU lacks is an error naming it, never a silent fallback */
            assert_int_equal(rc, CORE_ERANGE);
            assert_non_null(strstr(err, rank_isa_name((rank_isa)i)));
            assert_non_null(strstr(err, "lacks"));
        }
    }
    assert_true(rank_isa_available(rank_isa_best()));
    assert_int_equal(rank_isa_force("scalar", err, sizeof err), CORE_OK);
    assert_int_equal(rank_isa_current(), RANK_ISA_SCALAR);
    assert_int_equal(rank_isa_force("auto", err, sizeof err), CORE_OK);
    assert_int_equal(rank_isa_current(), rank_isa_best());
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths_against_naive), cmocka_unit_test(test_int8_exact_on_codes),
        cmocka_unit_test(test_gather_f16),          cmocka_unit_test(test_gather_extra_row),
        cmocka_unit_test(test_isa_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
