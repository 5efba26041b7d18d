/* gemm_libs.c: trail's serving-head GEMMs against oneDNN and libxsmm, one thread, one run.
 *
 * Standalone (bench/gemm-libs.sh builds it against trail's static libraries; trail itself links
 * neither library). The serving head per request, 1,000 candidates in blocks of 512 rows:
 *   layer 1: y1 = relu(b1 + A1 W1a^T + A2 W1b^T)  A1 (M x 264), A2 (M x 50): two segments, N = 200
 *   layer 2: y2 = relu(b2 + y1 W2^T)              K = 200, N = 80
 * Each contender is timed on one block of 512 rows ("m512") and on the whole 1,000 as the blocks
 * 512 + 488 ("m1000"); weights are packed once before timing; a low-precision contender converts
 * (or quantizes) its fp32 activations inside the timed region, as trail's own bf16 paths do. Every
 * output is compared against a double-precision loop (max_abs_diff), so a wrong setup shows.
 * Prints one JSON object on stdout.
 *
 * Usage: gemm_libs [--reps N] [--warmup N] [--max-seconds S] [--seed X] [--only NAME,NAME...]
 *   a measurement stops after N repetitions (300) or S seconds (4), whichever comes first, but
 *   never before 20 (the scalar path); its "reps" says how many it took.
 */
#define _POSIX_C_SOURCE 200809L

#include "core_cpu.h"
#include "core_report.h"
#include "core_util.h"
#include "rank_blas.h"
#include "rank_isa.h"
#include "rank_pgemm.h"

#include <cblas.h>
#include <emmintrin.h>
#include <libxsmm.h>
#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void omp_set_num_threads(int n); /* libgomp, oneDNN's threading runtime in Debian's build */

#define MTOT 1000 /* candidates per request */
#define BLK 512   /* rows per block */
#define NBS 2     /* block sizes: 512 and 488 */
#define NL 2      /* layers */

static const int g_bs[NBS] = {BLK, MTOT - BLK};
static int bs_index(int mb) {
    return mb == BLK ? 0 : 1;
}

/* ------------------------------------------------------------------------------------------ */
/* The problem */

typedef struct layer {
    const char *name;
    int N, nseg, K[2], koff[2], Ktot;
    const float *a[2]; /* activations per segment, (MTOT, K[s]) row-major */
    const float *w;    /* (N, Ktot) row-major: out = a W^T + b */
    const float *bias;
    double *ref; /* (MTOT, N) */
    int nonneg;  /* activations are >= 0 (ReLU outputs) */
} layer;

static layer g_L[NL];
static float *g_A1, *g_A2, *g_H, *g_W1, *g_W2, *g_b1, *g_b2;

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static float urand(float lo, float hi) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return lo + (hi - lo) * (float)((g_rng >> 40) * (1.0 / 16777216.0));
}

static void *xalloc(size_t n) {
    size_t r = (n + 63) / 64 * 64;
    void *p = aligned_alloc(64, r ? r : 64);
    if (!p) {
        fprintf(stderr, "gemm_libs: out of memory\n");
        exit(1);
    }
    memset(p, 0, r ? r : 64);
    return p;
}

static void reference(layer *L) {
    for (int m = 0; m < MTOT; m++)
        for (int n = 0; n < L->N; n++) {
            double s = L->bias[n];
            for (int g = 0; g < L->nseg; g++)
                for (int k = 0; k < L->K[g]; k++)
                    s += (double)L->a[g][(size_t)m * L->K[g] + k] *
                         (double)L->w[(size_t)n * L->Ktot + L->koff[g] + k];
            L->ref[(size_t)m * L->N + n] = s > 0.0 ? s : 0.0;
        }
}

static void setup_problem(void) {
    g_A1 = xalloc(sizeof(float) * MTOT * 264);
    g_A2 = xalloc(sizeof(float) * MTOT * 50);
    g_W1 = xalloc(sizeof(float) * 200 * 314);
    g_b1 = xalloc(sizeof(float) * 200);
    g_H = xalloc(sizeof(float) * MTOT * 200);
    g_W2 = xalloc(sizeof(float) * 80 * 200);
    g_b2 = xalloc(sizeof(float) * 80);
    for (int i = 0; i < MTOT * 264; i++)
        g_A1[i] = urand(-1.f, 1.f);
    for (int i = 0; i < MTOT * 50; i++)
        g_A2[i] = urand(-1.f, 1.f);
    float a1 = sqrtf(3.f / 314.f), a2 = sqrtf(6.f / 200.f);
    for (int i = 0; i < 200 * 314; i++)
        g_W1[i] = urand(-a1, a1);
    for (int i = 0; i < 200; i++)
        g_b1[i] = urand(-0.1f, 0.1f);
    for (int i = 0; i < 80 * 200; i++)
        g_W2[i] = urand(-a2, a2);
    for (int i = 0; i < 80; i++)
        g_b2[i] = urand(-0.1f, 0.1f);
    layer *L = &g_L[0];
    *L = (layer){"layer1", 200, 2, {264, 50}, {0, 264}, 314, {g_A1, g_A2}, g_W1, g_b1, NULL, 0};
    L->ref = xalloc(sizeof(double) * MTOT * 200);
    reference(L);
    for (int i = 0; i < MTOT * 200; i++)
        g_H[i] = (float)L->ref[i]; /* layer 2 reads layer 1 */
    L = &g_L[1];
    *L = (layer){"layer2", 80, 1, {200, 0}, {0, 0}, 200, {g_H, NULL}, g_W2, g_b2, NULL, 1};
    L->ref = xalloc(sizeof(double) * MTOT * 80);
    reference(L);
}

/* ------------------------------------------------------------------------------------------ */
/* Contenders */

typedef struct contender contender;
struct contender {
    char name[48];
    const char *library, *precision;
    char setup[600];
    char skip[400];        /* why it does not run here ("" if it does) */
    char impl[16][2][160]; /* primitive -> implementation name */
    int nimpl;
    /* y (MTOT, N): rows m0 .. m0 + mb of layer l */
    void (*run)(contender *c, int l, int m0, int mb, float *y);
    void *st;
};

static void impl_add(contender *c, const char *key, const char *val);

static void bias_relu(float *y, int mb, int N, const float *b) {
    for (int m = 0; m < mb; m++) {
        float *r = y + (size_t)m * N;
        for (int n = 0; n < N; n++) {
            float v = r[n] + b[n];
            r[n] = v > 0.f ? v : 0.f;
        }
    }
}

/* ---- trail: rank_pgemm on each path this CPU runs ---- */

typedef struct trail_st {
    rank_pw pw[NL][2];
    void *scratch;
} trail_st;

static void trail_run(contender *c, int l, int m0, int mb, float *y) {
    trail_st *s = c->st;
    const layer *L = &g_L[l];
    rank_pseg seg[2];
    for (int g = 0; g < L->nseg; g++)
        seg[g] = (rank_pseg){L->a[g] + (size_t)m0 * L->K[g], L->K[g], &s->pw[l][g]};
    rank_pgemm(y + (size_t)m0 * L->N, L->N, mb, seg, L->nseg, L->bias, RANK_PG_RELU, s->scratch);
}

static void trail_prepare(contender *c, rank_isa isa) {
    snprintf(c->name, sizeof c->name, "trail-%s", rank_isa_name(isa));
    c->library = "trail";
    c->precision = rank_isa_precision(isa);
    c->run = trail_run;
    if (!rank_isa_available(isa)) {
        snprintf(c->skip, sizeof c->skip, "this CPU/OS does not run path %s (usable features: %s)",
                 rank_isa_name(isa), core_cpu_features()[0] ? core_cpu_features() : "none");
        return;
    }
    snprintf(c->setup, sizeof c->setup,
             "rank_pgemm on path %s; weights packed once with rank_pw_pack (one packed weight "
             "per segment); layer 1 as two segments in one call; bias and ReLU fused "
             "(RANK_PG_RELU)%s",
             rank_isa_name(isa),
             !strcmp(rank_isa_precision(isa), "bf16")   ? "; fp32 activations rounded to bf16 "
                                                          "inside the call (timed)"
             : !strcmp(rank_isa_precision(isa), "int8") ? "; weights quantized per output channel "
                                                          "when packed, fp32 activations "
                                                          "quantized per row inside the call "
                                                          "(timed)"
                                                        : "");
    trail_st *s = xalloc(sizeof *s);
    size_t sb = 0;
    for (int l = 0; l < NL; l++) {
        const layer *L = &g_L[l];
        int kp = 0;
        for (int g = 0; g < L->nseg; g++) {
            if (rank_pw_alloc(&s->pw[l][g], isa, L->N, L->K[g]) != 0) {
                snprintf(c->skip, sizeof c->skip, "rank_pw_alloc failed");
                return;
            }
            rank_pw_pack(&s->pw[l][g], L->w + L->koff[g], (size_t)L->Ktot, 1, L->K[g], 1.f);
            kp += rank_pgemm_kp(isa, L->K[g]);
        }
        size_t b = rank_pgemm_scratch_bytes(isa, kp);
        if (b > sb) sb = b;
    }
    s->scratch = xalloc(sb);
    c->st = s;
}

/* ---- OpenBLAS cblas_sgemm ---- */

static void blas_run(contender *c, int l, int m0, int mb, float *y) {
    (void)c;
    const layer *L = &g_L[l];
    float *yo = y + (size_t)m0 * L->N;
    for (int g = 0; g < L->nseg; g++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mb, L->N, L->K[g], 1.f,
                    L->a[g] + (size_t)m0 * L->K[g], L->K[g], L->w + L->koff[g], L->Ktot,
                    g ? 1.f : 0.f, yo, L->N);
    bias_relu(yo, mb, L->N, L->bias);
}

static void blas_prepare(contender *c) {
    snprintf(c->name, sizeof c->name, "openblas-sgemm");
    c->library = "openblas";
    c->precision = "fp32";
    c->run = blas_run;
    c->st = c; /* no state */
    snprintf(c->setup, sizeof c->setup,
             "cblas_sgemm (row-major, B = W transposed, OpenBLAS core %s), one call per segment "
             "(beta 0 then 1), then one bias+ReLU pass; OpenBLAS packs W inside each call",
             rank_blas_corename());
}

/* ---- oneDNN ---- */

static dnnl_engine_t g_eng;
static dnnl_stream_t g_strm;

enum { DNN_F32, DNN_BF16, DNN_INT8 };

typedef struct dnn_mm {
    dnnl_primitive_t p;
    dnnl_memory_t src, wei, bias, dst, scales, zp;
} dnn_mm;

typedef struct dnn_cv { /* fp32 -> bf16 reorder of one segment into the concatenated buffer */
    dnnl_primitive_t p;
    dnnl_memory_t from, to;
} dnn_cv;

typedef struct dnn_lb { /* one layer, one block size */
    int nmm, ncv;
    dnn_mm mm[2];
    dnn_cv cv[2];
} dnn_lb;

typedef struct dnn_st {
    int kind;
    dnn_lb lb[NL][NBS];
    void *low[NL];  /* bf16 or u8 activations, (BLK, Ktot) */
    int8_t *wq[NL]; /* int8: (N, Ktot) quantized weights */
    float *wsc[NL]; /* int8: per output channel weight scales */
    float *osc;     /* int8: output scales, src scale * wsc[n] */
    float *bq[NL];  /* int8: bias / output scale (oneDNN 2.x adds the bias before scaling) */
    int32_t zp[NL]; /* int8: source zero point per layer */
} dnn_st;

#define DNN(call)                                                                                  \
    do {                                                                                           \
        dnnl_status_t st_ = (call);                                                                \
        if (st_ != dnnl_success) {                                                                 \
            snprintf(c->skip, sizeof c->skip, "oneDNN %s: %s", #call, dnnl_status2str(st_));       \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

/* oneDNN takes data handles as void * even for inputs it only reads */
static void *unconst(const void *p) {
    return (void *)(uintptr_t)p;
}

static const char *pd_impl(const_dnnl_primitive_desc_t pd) {
    const char *s = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s) != dnnl_success || !s)
        return "?";
    return s;
}

static void md_strided(dnnl_memory_desc_t *md, int rows, int cols, int ld, dnnl_data_type_t dt) {
    dnnl_dims_t d = {rows, cols}, s = {ld, 1};
    dnnl_memory_desc_init_by_strides(md, 2, d, dt, s);
}

/* One matmul: src (mb, K) with leading dimension lda, weights (K, N) packed by oneDNN ("any")
 * from W's columns koff.. (or the int8 copy), optional bias, optional sum post-op, ReLU. */
static int dnn_mm_make(contender *c, dnn_st *s, dnn_mm *mm, const layer *L, int mb, int K, int koff,
                       int lda, int with_bias, int with_sum, int relu, const char *key) {
    dnnl_data_type_t sdt = s->kind == DNN_F32    ? dnnl_f32
                           : s->kind == DNN_BF16 ? dnnl_bf16
                                                 : dnnl_u8;
    dnnl_data_type_t wdt = s->kind == DNN_F32    ? dnnl_f32
                           : s->kind == DNN_BF16 ? dnnl_bf16
                                                 : dnnl_s8;
    dnnl_memory_desc_t smd, wmd, bmd, dmd, uwmd;
    md_strided(&smd, mb, K, lda, sdt);
    dnnl_dims_t wd = {K, L->N}, bd = {1, L->N};
    DNN(dnnl_memory_desc_init_by_tag(&wmd, 2, wd, wdt, dnnl_format_tag_any));
    DNN(dnnl_memory_desc_init_by_tag(&bmd, 2, bd, dnnl_f32, dnnl_ab));
    md_strided(&dmd, mb, L->N, L->N, dnnl_f32);
    dnnl_matmul_desc_t d;
    DNN(dnnl_matmul_desc_init(&d, &smd, &wmd, with_bias ? &bmd : NULL, &dmd));
    dnnl_primitive_attr_t attr;
    DNN(dnnl_primitive_attr_create(&attr));
    dnnl_post_ops_t po;
    DNN(dnnl_post_ops_create(&po));
    if (with_sum) DNN(dnnl_post_ops_append_sum(po, 1.f));
    if (relu) DNN(dnnl_post_ops_append_eltwise(po, 1.f, dnnl_eltwise_relu, 0.f, 0.f));
    DNN(dnnl_primitive_attr_set_post_ops(attr, po));
    dnnl_post_ops_destroy(po);
    int l = L == &g_L[0] ? 0 : 1;
    if (s->kind == DNN_INT8) {
        const float rt = DNNL_RUNTIME_F32_VAL;
        const int32_t rz = DNNL_RUNTIME_S32_VAL;
        DNN(dnnl_primitive_attr_set_output_scales(attr, 1, 1 << 1, &rt));
        if (s->zp[l]) DNN(dnnl_primitive_attr_set_zero_points(attr, DNNL_ARG_SRC, 1, 0, &rz));
    }
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &d, attr, g_eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) {
        snprintf(c->skip, sizeof c->skip, "oneDNN matmul %s (M %d, K %d, N %d): %s", key, mb, K,
                 L->N, dnnl_status2str(st));
        return -1;
    }
    impl_add(c, key, pd_impl(pd));
    DNN(dnnl_primitive_create(&mm->p, pd));
    const dnnl_memory_desc_t *pwmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    DNN(dnnl_memory_create(&mm->src, &smd, g_eng, DNNL_MEMORY_NONE));
    DNN(dnnl_memory_create(&mm->dst, &dmd, g_eng, DNNL_MEMORY_NONE));
    DNN(dnnl_memory_create(&mm->wei, pwmd, g_eng, DNNL_MEMORY_ALLOCATE));
    if (with_bias)
        DNN(dnnl_memory_create(&mm->bias, &bmd, g_eng,
                               s->kind == DNN_INT8 ? (void *)s->bq[l] : unconst(L->bias)));
    /* pack the weights once: user layout (K, N) with strides (1, Ktot), reordered to pd's */
    dnnl_dims_t us = {1, L->Ktot};
    DNN(dnnl_memory_desc_init_by_strides(&uwmd, 2, wd, s->kind == DNN_INT8 ? dnnl_s8 : dnnl_f32,
                                         us));
    void *uw = s->kind == DNN_INT8 ? (void *)(s->wq[l] + koff) : unconst(L->w + koff);
    dnnl_memory_t um;
    DNN(dnnl_memory_create(&um, &uwmd, g_eng, uw));
    dnnl_primitive_desc_t rpd;
    DNN(dnnl_reorder_primitive_desc_create(&rpd, &uwmd, g_eng, pwmd, g_eng, NULL));
    dnnl_primitive_t rp;
    DNN(dnnl_primitive_create(&rp, rpd));
    dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, um}, {DNNL_ARG_TO, mm->wei}};
    DNN(dnnl_primitive_execute(rp, g_strm, 2, ra));
    DNN(dnnl_stream_wait(g_strm));
    dnnl_primitive_destroy(rp);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_memory_destroy(um);
    if (s->kind == DNN_INT8) {
        dnnl_memory_desc_t scmd, zmd;
        dnnl_dims_t sd = {L->N}, zd = {1};
        DNN(dnnl_memory_desc_init_by_tag(&scmd, 1, sd, dnnl_f32, dnnl_a));
        DNN(dnnl_memory_create(&mm->scales, &scmd, g_eng, s->osc));
        if (s->zp[l]) {
            DNN(dnnl_memory_desc_init_by_tag(&zmd, 1, zd, dnnl_s32, dnnl_a));
            DNN(dnnl_memory_create(&mm->zp, &zmd, g_eng, &s->zp[l]));
        }
    }
    dnnl_primitive_desc_destroy(pd);
    return 0;
}

/* fp32 segment (mb, K) -> bf16 columns koff.. of the (mb, Ktot) buffer */
static int dnn_cv_make(contender *c, dnn_cv *cv, int mb, int K, int Ktot, const char *key) {
    dnnl_memory_desc_t f, t;
    md_strided(&f, mb, K, K, dnnl_f32);
    md_strided(&t, mb, K, Ktot, dnnl_bf16);
    dnnl_primitive_desc_t rpd;
    DNN(dnnl_reorder_primitive_desc_create(&rpd, &f, g_eng, &t, g_eng, NULL));
    impl_add(c, key, pd_impl(rpd));
    DNN(dnnl_primitive_create(&cv->p, rpd));
    dnnl_primitive_desc_destroy(rpd);
    DNN(dnnl_memory_create(&cv->from, &f, g_eng, DNNL_MEMORY_NONE));
    DNN(dnnl_memory_create(&cv->to, &t, g_eng, DNNL_MEMORY_NONE));
    return 0;
}

static void mm_exec(dnn_mm *mm, const void *src, float *dst) {
    dnnl_memory_set_data_handle(mm->src, unconst(src));
    dnnl_memory_set_data_handle(mm->dst, dst);
    dnnl_exec_arg_t a[6];
    int n = 0;
    a[n++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, mm->src};
    a[n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, mm->wei};
    a[n++] = (dnnl_exec_arg_t){DNNL_ARG_DST, mm->dst};
    if (mm->bias) a[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mm->bias};
    if (mm->scales) a[n++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_OUTPUT_SCALES, mm->scales};
    if (mm->zp) a[n++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC, mm->zp};
    dnnl_primitive_execute(mm->p, g_strm, n, a);
}

/* max |x| over rows of a segment (SSE2) */
static float maxabs(const float *a, int rows, int cols) {
    const __m128 mask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
    __m128 m0 = _mm_setzero_ps(), m1 = _mm_setzero_ps();
    size_t n = (size_t)rows * cols, i = 0;
    for (; i + 8 <= n; i += 8) {
        m0 = _mm_max_ps(m0, _mm_and_ps(mask, _mm_loadu_ps(a + i)));
        m1 = _mm_max_ps(m1, _mm_and_ps(mask, _mm_loadu_ps(a + i + 4)));
    }
    float t[4], r = 0.f;
    _mm_storeu_ps(t, _mm_max_ps(m0, m1));
    for (int j = 0; j < 4; j++)
        r = t[j] > r ? t[j] : r;
    for (; i < n; i++)
        r = fabsf(a[i]) > r ? fabsf(a[i]) : r;
    return r;
}

/* q[m][k] = clamp(round(a[m][k] * inv) + zp, 0, 255), rows of cols into a buffer of ld ldq */
static void quant_u8(const float *a, int rows, int cols, uint8_t *q, int ldq, float inv, int zp) {
    const __m128 vi = _mm_set1_ps(inv);
    const __m128i vz = _mm_set1_epi32(zp);
    for (int m = 0; m < rows; m++) {
        const float *ar = a + (size_t)m * cols;
        uint8_t *qr = q + (size_t)m * ldq;
        int k = 0;
        for (; k + 8 <= cols; k += 8) {
            __m128i x0 = _mm_add_epi32(_mm_cvtps_epi32(_mm_mul_ps(_mm_loadu_ps(ar + k), vi)), vz);
            __m128i x1 =
                _mm_add_epi32(_mm_cvtps_epi32(_mm_mul_ps(_mm_loadu_ps(ar + k + 4), vi)), vz);
            _mm_storel_epi64((__m128i *)(qr + k), _mm_packus_epi16(_mm_packs_epi32(x0, x1), x0));
        }
        for (; k < cols; k++) {
            long v = lrintf(ar[k] * inv) + zp;
            qr[k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

static void dnn_run(contender *c, int l, int m0, int mb, float *y) {
    dnn_st *s = c->st;
    const layer *L = &g_L[l];
    dnn_lb *lb = &s->lb[l][bs_index(mb)];
    float *yo = y + (size_t)m0 * L->N;
    if (s->kind == DNN_F32) {
        for (int g = 0; g < L->nseg; g++)
            mm_exec(&lb->mm[g], L->a[g] + (size_t)m0 * L->K[g], yo);
    } else if (s->kind == DNN_BF16) {
        uint16_t *low = s->low[l];
        for (int g = 0; g < L->nseg; g++) {
            dnnl_memory_set_data_handle(lb->cv[g].from, unconst(L->a[g] + (size_t)m0 * L->K[g]));
            dnnl_memory_set_data_handle(lb->cv[g].to, low + L->koff[g]);
            dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, lb->cv[g].from}, {DNNL_ARG_TO, lb->cv[g].to}};
            dnnl_primitive_execute(lb->cv[g].p, g_strm, 2, a);
        }
        mm_exec(&lb->mm[0], low, yo);
    } else { /* int8: a per-tensor scale for this block, computed and applied here */
        float mx = 0.f;
        for (int g = 0; g < L->nseg; g++) {
            float v = maxabs(L->a[g] + (size_t)m0 * L->K[g], mb, L->K[g]);
            mx = v > mx ? v : mx;
        }
        float range = s->zp[l] ? 127.f : 255.f;
        float sc = mx > 0.f ? mx / range : 1.f, inv = 1.f / sc;
        uint8_t *low = s->low[l];
        for (int g = 0; g < L->nseg; g++)
            quant_u8(L->a[g] + (size_t)m0 * L->K[g], mb, L->K[g], low + L->koff[g], L->Ktot, inv,
                     s->zp[l]);
        for (int n = 0; n < L->N; n++) {
            s->osc[n] = sc * s->wsc[l][n];
            s->bq[l][n] = L->bias[n] / s->osc[n];
        }
        mm_exec(&lb->mm[0], low, yo);
    }
    dnnl_stream_wait(g_strm);
}

static int dnn_prepare_inner(contender *c, dnn_st *s) {
    for (int l = 0; l < NL; l++) {
        const layer *L = &g_L[l];
        if (s->kind == DNN_INT8) { /* per output channel symmetric s8 weights */
            s->wq[l] = xalloc((size_t)L->N * L->Ktot);
            s->wsc[l] = xalloc(sizeof(float) * L->N);
            s->bq[l] = xalloc(sizeof(float) * L->N);
            for (int n = 0; n < L->N; n++) {
                const float *wr = L->w + (size_t)n * L->Ktot;
                float mx = 0.f;
                for (int k = 0; k < L->Ktot; k++)
                    mx = fabsf(wr[k]) > mx ? fabsf(wr[k]) : mx;
                float sc = mx > 0.f ? mx / 127.f : 1.f;
                s->wsc[l][n] = sc;
                for (int k = 0; k < L->Ktot; k++)
                    s->wq[l][(size_t)n * L->Ktot + k] = (int8_t)lrintf(wr[k] / sc);
            }
            s->zp[l] = L->nonneg ? 0 : 128;
        }
        if (s->kind != DNN_F32) s->low[l] = xalloc((size_t)BLK * L->Ktot * 2);
        for (int b = 0; b < NBS; b++) {
            dnn_lb *lb = &s->lb[l][b];
            int mb = g_bs[b];
            char key[96];
            if (s->kind == DNN_F32) { /* one matmul per segment, the second summing into y */
                lb->nmm = L->nseg;
                for (int g = 0; g < L->nseg; g++) {
                    snprintf(key, sizeof key, "%s.m%d.matmul_seg%d", L->name, mb, g);
                    if (dnn_mm_make(c, s, &lb->mm[g], L, mb, L->K[g], L->koff[g], L->K[g], g == 0,
                                    g > 0, g == L->nseg - 1, key))
                        return -1;
                }
            } else {
                if (s->kind == DNN_BF16)
                    for (int g = 0; g < L->nseg; g++) {
                        snprintf(key, sizeof key, "%s.m%d.to_bf16_seg%d", L->name, mb, g);
                        if (dnn_cv_make(c, &lb->cv[g], mb, L->K[g], L->Ktot, key)) return -1;
                    }
                lb->nmm = 1;
                snprintf(key, sizeof key, "%s.m%d.matmul", L->name, mb);
                if (dnn_mm_make(c, s, &lb->mm[0], L, mb, L->Ktot, 0, L->Ktot, 1, 0, 1, key))
                    return -1;
            }
        }
    }
    return 0;
}

static void dnn_prepare(contender *c, int kind) {
    static const char *names[] = {"onednn-f32", "onednn-bf16", "onednn-int8"};
    static const char *prec[] = {"fp32", "bf16", "int8"};
    static const char *setups[] = {
        "dnnl matmul f32, weights format_tag_any reordered once; layer 1 as two matmuls "
        "(segment 1 with bias, segment 2 with a sum post-op and ReLU), layer 2 one matmul with "
        "bias and ReLU post-op; src/dst handles set per call",
        "dnnl matmul bf16 x bf16 -> f32 with f32 bias and ReLU post-op, weights format_tag_any "
        "reordered once from f32; per block and segment an f32 -> bf16 reorder primitive writes "
        "the segment into one (M, K) bf16 buffer (timed), then one matmul over K = 264 + 50",
        "dnnl matmul u8 x s8 -> f32 (s32 accumulation): weights quantized once per output "
        "channel (symmetric s8) and reordered to format_tag_any; per block (timed) max |x| over "
        "the block's activations gives a per-tensor scale, activations quantized to u8 (SSE2; "
        "layer 1 signed inputs: symmetric with a runtime src zero point 128; layer 2 ReLU "
        "inputs: [0, 255], no zero point), runtime output scales = src scale * weight scale[n] "
        "(mask 1<<1), ReLU post-op; the f32 bias passed as bias / output scale, recomputed per "
        "block (oneDNN 2.x adds the bias before the output scales); layer 1's two segments "
        "quantized into one buffer with one scale. Runtime scales are what make 2.6 choose "
        "gemm:jit here: scales fixed at creation (static quantization) get brg:avx512_core_vnni"};
    snprintf(c->name, sizeof c->name, "%s", names[kind]);
    c->library = "onednn";
    c->precision = prec[kind];
    snprintf(c->setup, sizeof c->setup, "%s", setups[kind]);
    c->run = dnn_run;
    dnn_st *s = xalloc(sizeof *s);
    s->kind = kind;
    s->osc = xalloc(sizeof(float) * 256);
    c->st = s;
    if (dnn_prepare_inner(c, s)) c->st = NULL;
}

/* ---- libxsmm 1.17 ---- */

typedef struct xs_st {
    int bf16;
    float *wt[NL][2]; /* fp32: W^T per segment, (K_s, N) */
    libxsmm_smmfunction k[NL][2][NBS];
    uint16_t *wv[NL];  /* bf16: W^T over all K in VNNI pairs, [Ktot/2][N][2] */
    uint16_t *low[NL]; /* bf16 activations (BLK, Ktot) */
    libxsmm_bsmmfunction kb[NL][NBS];
} xs_st;

/* fp32 -> bf16, round to nearest even (auto-vectorized) */
static void cvt_bf16(const float *in, uint16_t *out, int n) {
    for (int i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, in + i, 4);
        u += 0x7fffu + ((u >> 16) & 1u);
        out[i] = (uint16_t)(u >> 16);
    }
}

static void xs_run(contender *c, int l, int m0, int mb, float *y) {
    xs_st *s = c->st;
    const layer *L = &g_L[l];
    float *yo = y + (size_t)m0 * L->N;
    int b = bs_index(mb);
    if (!s->bf16) {
        /* column-major view: y^T (N, mb) = W^T... as A (N x K, ld N) times a^T (K x mb, ld K) */
        for (int g = 0; g < L->nseg; g++)
            s->k[l][g][b](s->wt[l][g], L->a[g] + (size_t)m0 * L->K[g], yo);
    } else {
        for (int m = 0; m < mb; m++)
            for (int g = 0; g < L->nseg; g++)
                cvt_bf16(L->a[g] + (size_t)(m0 + m) * L->K[g],
                         s->low[l] + (size_t)m * L->Ktot + L->koff[g], L->K[g]);
        s->kb[l][b](s->wv[l], s->low[l], yo);
    }
    bias_relu(yo, mb, L->N, L->bias);
}

static void xs_no_kernel(contender *c, const char *kind, int m, int n, int k) {
    snprintf(c->skip, sizeof c->skip,
             "libxsmm_%sdispatch returned no kernel for m %d n %d k %d (target %s)", kind, m, n, k,
             libxsmm_get_target_arch());
}

static void xs_prepare(contender *c, int bf16) {
    snprintf(c->name, sizeof c->name, bf16 ? "libxsmm-bf16" : "libxsmm-f32");
    c->library = "libxsmm";
    c->precision = bf16 ? "bf16" : "fp32";
    c->run = xs_run;
    snprintf(c->setup, sizeof c->setup, "%s",
             bf16 ? "libxsmm_bsmmdispatch (bf16 x bf16 -> f32, LIBXSMM_GEMM_FLAG_VNNI_A), one "
                    "JIT kernel per layer and block size over the whole block (m = N, n = rows, "
                    "k = 264 + 50 or 200); W^T packed once in VNNI pairs; per block the fp32 "
                    "activations are rounded to bf16 into one (M, K) buffer (timed, plain C RNE "
                    "loop), then one bias+ReLU pass"
                  : "libxsmm_smmdispatch, one JIT kernel per layer, segment and block size over "
                    "the whole block (column-major: m = N, n = rows, k = K_s), beta 0 then 1 "
                    "across layer 1's segments; W^T stored once; then one bias+ReLU pass");
    xs_st *s = xalloc(sizeof *s);
    s->bf16 = bf16;
    const int pf = LIBXSMM_GEMM_PREFETCH_NONE;
    for (int l = 0; l < NL; l++) {
        const layer *L = &g_L[l];
        libxsmm_blasint N = L->N;
        if (!bf16) {
            for (int g = 0; g < L->nseg; g++) {
                libxsmm_blasint K = L->K[g];
                s->wt[l][g] = xalloc(sizeof(float) * (size_t)K * N);
                for (int n = 0; n < N; n++)
                    for (int k = 0; k < K; k++)
                        s->wt[l][g][(size_t)k * N + n] = L->w[(size_t)n * L->Ktot + L->koff[g] + k];
                for (int b = 0; b < NBS; b++) {
                    float alpha = 1.f, beta = g ? 1.f : 0.f;
                    int flags = g ? 0 : LIBXSMM_GEMM_FLAG_BETA_0;
                    s->k[l][g][b] =
                        libxsmm_smmdispatch(N, g_bs[b], K, &N, &K, &N, &alpha, &beta, &flags, &pf);
                    if (!s->k[l][g][b]) {
                        xs_no_kernel(c, "smm", (int)N, g_bs[b], (int)K);
                        return;
                    }
                }
            }
        } else {
            libxsmm_blasint K = L->Ktot;
            if (K % 2) {
                snprintf(c->skip, sizeof c->skip, "odd K %d for VNNI pairs", (int)K);
                return;
            }
            s->wv[l] = xalloc(sizeof(uint16_t) * (size_t)K * N);
            s->low[l] = xalloc(sizeof(uint16_t) * (size_t)BLK * K);
            float *col = xalloc(sizeof(float) * (size_t)K);
            uint16_t *colb = xalloc(sizeof(uint16_t) * (size_t)K);
            for (int n = 0; n < N; n++) {
                for (int k = 0; k < K; k++)
                    col[k] = L->w[(size_t)n * K + k];
                cvt_bf16(col, colb, (int)K);
                for (int k = 0; k < K; k++)
                    s->wv[l][((size_t)(k / 2) * N + n) * 2 + (k & 1)] = colb[k];
            }
            free(col);
            free(colb);
            for (int b = 0; b < NBS; b++) {
                float alpha = 1.f, beta = 0.f;
                int flags = LIBXSMM_GEMM_FLAG_VNNI_A | LIBXSMM_GEMM_FLAG_BETA_0;
                s->kb[l][b] =
                    libxsmm_bsmmdispatch(N, g_bs[b], K, &N, &K, &N, &alpha, &beta, &flags, &pf);
                if (!s->kb[l][b]) {
                    xs_no_kernel(c, "bsmm", (int)N, g_bs[b], (int)K);
                    return;
                }
            }
        }
    }
    c->st = s;
}

/* ------------------------------------------------------------------------------------------ */
/* Timing */

typedef struct meas {
    int reps;
    double median_us, p99_us, gflops, max_abs_diff, max_abs_ref;
    int finite;
} meas;

static int g_reps = 300, g_warmup = 30;
static const char *g_only; /* comma-separated contender names, or NULL for all */

static int selected(const char *name) {
    if (!g_only) return 1;
    size_t n = strlen(name);
    for (const char *p = g_only; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && !strncmp(p, name, n)) return 1;
        p += len + (p[len] == ',');
    }
    return 0;
}
static double g_max_s = 4.0;

static double now_s(void) {
    return 1e-9 * (double)core_now_ns();
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void once(contender *c, int l, int rows, float *y) {
    for (int m0 = 0; m0 < rows; m0 += BLK)
        c->run(c, l, m0, rows - m0 < BLK ? rows - m0 : BLK, y);
}

static meas measure(contender *c, int l, int rows, float *y) {
    const layer *L = &g_L[l];
    meas r;
    memset(&r, 0, sizeof r);
    for (size_t i = 0; i < (size_t)MTOT * L->N; i++)
        y[i] = NAN;
    double t0 = now_s();
    for (int w = 0; w < g_warmup && (w == 0 || now_s() - t0 < g_max_s / 4); w++)
        once(c, l, rows, y);
    double *t = xalloc(sizeof(double) * (size_t)g_reps);
    double start = now_s();
    int n = 0;
    while (n < g_reps && (n < 20 || now_s() - start < g_max_s)) {
        double a = now_s();
        once(c, l, rows, y);
        t[n++] = (now_s() - a) * 1e6;
    }
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    r.reps = n;
    r.median_us = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    int i99 = (int)ceil(0.99 * n) - 1;
    r.p99_us = t[i99 < 0 ? 0 : i99];
    double flops = 2.0 * rows * L->N * L->Ktot;
    r.gflops = flops / (r.median_us * 1e3);
    r.finite = 1;
    for (size_t i = 0; i < (size_t)rows * L->N; i++) {
        double d = fabs((double)y[i] - L->ref[i]);
        if (!(d == d) || isinf(y[i])) r.finite = 0;
        if (d > r.max_abs_diff) r.max_abs_diff = d;
        if (fabs(L->ref[i]) > r.max_abs_ref) r.max_abs_ref = fabs(L->ref[i]);
    }
    free(t);
    return r;
}

/* ------------------------------------------------------------------------------------------ */
/* The report */

static void impl_add(contender *c, const char *key, const char *val) {
    if (c->nimpl == (int)(sizeof c->impl / sizeof c->impl[0])) return;
    snprintf(c->impl[c->nimpl][0], sizeof c->impl[0][0], "%s", key);
    snprintf(c->impl[c->nimpl++][1], sizeof c->impl[0][1], "%s", val);
}

static void cpu_string(char *out, size_t size) {
    char model[256] = "unknown", flags[1024] = "";
    FILE *f = fopen("/proc/cpuinfo", "r");
    char *line = NULL;
    size_t cap = 0;
    int have_model = 0, have_flags = 0;
    while (f && getline(&line, &cap, f) > 0 && !(have_model && have_flags)) {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        char *v = colon + 1;
        while (*v == ' ')
            v++;
        v[strcspn(v, "\n")] = 0;
        if (!have_model && !strncmp(line, "model name", 10)) {
            snprintf(model, sizeof model, "%s", v);
            have_model = 1;
        } else if (!have_flags && !strncmp(line, "flags", 5)) {
            have_flags = 1;
            for (char *tok = strtok(v, " "); tok; tok = strtok(NULL, " "))
                if (!strncmp(tok, "avx512", 6) || !strncmp(tok, "amx", 3)) {
                    size_t n = strlen(flags);
                    snprintf(flags + n, sizeof flags - n, "%s%s", n ? " " : "", tok);
                }
        }
    }
    free(line);
    if (f) fclose(f);
    snprintf(out, size, "%s; %s%s", model, flags[0] ? flags : "no avx512",
             strstr(flags, "amx") ? "" : "; no amx");
}

/* the first three fields of /proc/loadavg: other work on the machine shows in the p99 */
static void loadavg(char *out, size_t size) {
    FILE *f = fopen("/proc/loadavg", "r");
    double a = -1, b = -1, c = -1;
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &a, &b, &c) != 3) a = b = c = -1;
        fclose(f);
    }
    snprintf(out, size, "%.2f %.2f %.2f", a, b, c);
}

static void report_meas(core_report *r, const char *key, const meas *m) {
    core_report_obj(r, key);
    core_report_num(r, "median_us", "%.2f", m->median_us);
    core_report_num(r, "p99_us", "%.2f", m->p99_us);
    core_report_num(r, "gflops", "%.2f", m->gflops);
    core_report_i64(r, "reps", m->reps);
    core_report_num(r, "max_abs_diff", "%.3g", m->finite ? m->max_abs_diff : NAN);
    if (!m->finite) core_report_str(r, "error", "non-finite output");
    core_report_num(r, "max_abs_ref", "%.3g", m->max_abs_ref);
    core_report_close(r);
}

static void report_libraries(core_report *r) {
    const dnnl_version_t *dv = dnnl_version();
    char owarn[512] = "";
    rank_isa_openblas_check(owarn, sizeof owarn);
    const char *isa = dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa()); /* "cpu_isa_avx2" */
    core_report_obj(r, "libraries");
    core_report_str(r, "openblas_core", rank_blas_corename());
    core_report_str(r, "openblas_config", openblas_get_config());
    core_report_str(r, "openblas_warning", owarn);
    core_report_strf(r, "onednn_version", "%d.%d.%d", dv->major, dv->minor, dv->patch);
    core_report_str(r, "onednn_hash", dv->hash ? dv->hash : "");
    core_report_str(r, "onednn_cpu_runtime",
                    dv->cpu_runtime == DNNL_RUNTIME_OMP   ? "OMP"
                    : dv->cpu_runtime == DNNL_RUNTIME_SEQ ? "SEQ"
                                                          : "other");
    core_report_str(r, "onednn_effective_isa", strncmp(isa, "cpu_isa_", 8) ? isa : isa + 8);
    core_report_str(r, "libxsmm_version", LIBXSMM_CONFIG_VERSION);
    core_report_str(r, "libxsmm_target", libxsmm_get_target_arch());
    core_report_str(r, "trail_best_isa", rank_isa_name(rank_isa_best()));
    core_report_close(r);
}

/* ------------------------------------------------------------------------------------------ */

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            g_reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc)
            g_warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-seconds") && i + 1 < argc)
            g_max_s = atof(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            g_rng = strtoull(argv[++i], NULL, 0) | 1u;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            g_only = argv[++i];
        else {
            fprintf(stderr,
                    "usage: gemm_libs [--reps N (300)] [--warmup N (30)] [--max-seconds S per "
                    "measurement (4)] [--seed X] [--only NAME,NAME...]\n");
            return 2;
        }
    }
    if (g_reps < 1 || g_warmup < 0 || !(g_max_s > 0)) {
        fprintf(stderr, "gemm_libs: bad --reps/--warmup/--max-seconds\n");
        return 2;
    }
    rank_blas_single_thread();
    omp_set_num_threads(1);
    libxsmm_init();
    if (dnnl_engine_create(&g_eng, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&g_strm, g_eng, dnnl_stream_default_flags) != dnnl_success) {
        fprintf(stderr, "gemm_libs: no oneDNN CPU engine\n");
        return 1;
    }
    char load0[64], load1[64];
    loadavg(load0, sizeof load0);
    setup_problem();

    enum { MAXC = RANK_ISA_COUNT + 8 };
    contender cs[MAXC];
    memset(cs, 0, sizeof cs);
    int nc = 0;
    for (int i = 0; i < RANK_ISA_COUNT; i++)
        trail_prepare(&cs[nc++], (rank_isa)i);
    blas_prepare(&cs[nc++]);
    for (int k = DNN_F32; k <= DNN_INT8; k++)
        dnn_prepare(&cs[nc++], k);
    xs_prepare(&cs[nc++], 0);
    xs_prepare(&cs[nc++], 1);

    float *y = xalloc(sizeof(float) * MTOT * 200);
    meas res[MAXC][NL][2];
    int shown[MAXC];
    for (int i = 0; i < nc; i++)
        shown[i] = selected(cs[i].name);
    for (int i = 0; i < nc; i++) {
        if (!shown[i]) continue;
        if (cs[i].skip[0] || !cs[i].st) {
            if (!cs[i].skip[0]) snprintf(cs[i].skip, sizeof cs[i].skip, "setup failed");
            continue;
        }
        for (int l = 0; l < NL; l++) {
            fprintf(stderr, "gemm_libs: %s %s\n", cs[i].name, g_L[l].name);
            res[i][l][0] = measure(&cs[i], l, BLK, y);
            res[i][l][1] = measure(&cs[i], l, MTOT, y);
        }
    }

    loadavg(load1, sizeof load1);
    char cpu[1400];
    cpu_string(cpu, sizeof cpu);
    core_report r;
    core_report_begin(&r, stdout, CORE_REPORT_JSON_PRETTY, NULL);
    core_report_str(&r, "cpu", cpu);
    core_report_str(&r, "cpu_features_trail", core_cpu_features());
    core_report_arr(&r, "loadavg_start_end");
    core_report_str(&r, NULL, load0);
    core_report_str(&r, NULL, load1);
    core_report_close(&r);
    core_report_i64(&r, "online_cpus", sysconf(_SC_NPROCESSORS_ONLN));
    core_report_u64(&r, "threads", 1);
    core_report_obj(&r, "shapes");
    core_report_u64(&r, "block_rows", BLK);
    core_report_u64(&r, "rows_per_request", MTOT);
    for (int l = 0; l < NL; l++) {
        core_report_obj(&r, g_L[l].name);
        core_report_u64(&r, "N", (uint64_t)g_L[l].N);
        core_report_arr(&r, "K");
        for (int g = 0; g < g_L[l].nseg; g++)
            core_report_u64(&r, NULL, (uint64_t)g_L[l].K[g]);
        core_report_close(&r);
        core_report_close(&r);
    }
    core_report_str(&r, "m512", "one block of 512 rows");
    core_report_str(&r, "m1000", "blocks of 512 + 488 rows");
    core_report_close(&r);
    core_report_obj(&r, "timing");
    core_report_i64(&r, "reps", g_reps);
    core_report_i64(&r, "warmup", g_warmup);
    core_report_num(&r, "max_seconds_per_measurement", "%g", g_max_s);
    core_report_str(&r, "clock",
                    "CLOCK_MONOTONIC around one layer (all its blocks), including "
                    "bias, ReLU and any activation conversion");
    core_report_str(&r, "max_abs_diff",
                    "against a double-precision loop over the same fp32 inputs");
    core_report_close(&r);
    report_libraries(&r);
    static const char *const env[] = {"OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS",
                                      "OMP_NUM_THREADS",   "DNNL_MAX_CPU_ISA",
                                      "LIBXSMM_TARGET",    "TRAIL_ISA"};
    core_report_obj(&r, "env");
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++)
        core_report_str(&r, env[i], getenv(env[i]));
    core_report_close(&r);
    core_report_arr(&r, "contenders");
    for (int i = 0; i < nc; i++) {
        contender *c = &cs[i];
        if (!shown[i]) continue;
        core_report_obj(&r, NULL);
        core_report_str(&r, "name", c->name);
        core_report_str(&r, "library", c->library);
        core_report_str(&r, "precision", c->precision);
        if (c->setup[0]) core_report_str(&r, "setup", c->setup);
        if (c->nimpl) core_report_obj(&r, "impl");
        for (int k = 0; k < c->nimpl; k++)
            core_report_str(&r, c->impl[k][0], c->impl[k][1]);
        if (c->nimpl) core_report_close(&r);
        if (c->skip[0]) core_report_str(&r, "skipped", c->skip);
        for (int l = 0; !c->skip[0] && l < NL; l++) {
            core_report_obj(&r, g_L[l].name);
            report_meas(&r, "m512", &res[i][l][0]);
            report_meas(&r, "m1000", &res[i][l][1]);
            core_report_close(&r);
        }
        core_report_close(&r);
    }
    core_report_end(&r);
    libxsmm_finalize();
    return 0;
}
