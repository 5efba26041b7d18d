/* rank_kernels.c: forward/backward kernel pairs of the ranking network (docs/MODEL.md section 5).
 *
 * Each backward sits right after its forward and accumulates (+=). BLAS goes through rank_blas.h.
 * Nothing here allocates, logs or knows about models: shapes in, numbers out.
 */
#include "core_util.h"
#include "rank_kernels.h"

#include "rank_blas.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* The hot element-wise kernels of the serving path get AVX-512 / AVX2 clones picked at load time
 * (the build targets baseline x86-64); the loops are written so the compiler vectorizes them
 * without -ffast-math: fixed-width partial sums instead of one running reduction. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_ADDRESS__) &&                  \
    !defined(__SANITIZE_THREAD__)
#define RANK_CLONES CORE_CLONES_AVX512
#else
#define RANK_CLONES
#endif

static inline float sumsq(const float *v, int C) {
    return rank_dot(v, v, C);
}

// ---------------------------------------------------------------------------------------------
// Embedding lookup

void rank_embed_forward(float *out, const uint32_t *irow, const uint32_t *crow,
                        const float *item_emb, const float *cat_emb, int R, int C) {
    size_t h = (size_t)C / 2;
    for (int r = 0; r < R; r++) {
        if (r + 8 < R) { /* rows of large tables are cache misses: start the next ones early */
            for (size_t o = 0; o < h; o += 16) { /* every 64-byte line of both rows */
                __builtin_prefetch(item_emb + irow[r + 8] * h + o);
                __builtin_prefetch(cat_emb + crow[r + 8] * h + o);
            }
        }
        memcpy(out + (size_t)r * C, item_emb + irow[r] * h, h * sizeof(float));
        memcpy(out + (size_t)r * C + h, cat_emb + crow[r] * h, h * sizeof(float));
    }
}

RANK_CLONES void rank_embed_backward(float *ditem_emb, float *dcat_emb, const float *dout,
                                     const uint32_t *irow, const uint32_t *crow, int R, int C) {
    size_t h = (size_t)C / 2;
    for (int r = 0; r < R; r++) {
        float *di = ditem_emb + irow[r] * h, *dc = dcat_emb + crow[r] * h;
        const float *d = dout + (size_t)r * C;
        for (size_t c = 0; c < h; c++) {
            di[c] += d[c];
            dc[c] += d[h + c];
        }
    }
}

// ---------------------------------------------------------------------------------------------
// LayerNorm

RANK_CLONES void rank_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                        const float *w, const float *b, int R, int C) {
    for (int r = 0; r < R; r++) {
        const float *x = inp + (size_t)r * C;
        float *y = out + (size_t)r * C;
        float m = 0.f, v = 0.f;
        for (int c = 0; c < C; c++)
            m += x[c];
        m /= (float)C;
        for (int c = 0; c < C; c++)
            v += (x[c] - m) * (x[c] - m);
        v /= (float)C;
        float s = 1.f / sqrtf(v + RANK_LN_EPS);
        for (int c = 0; c < C; c++)
            y[c] = (x[c] - m) * s * w[c] + b[c];
        mean[r] = m;
        rstd[r] = s;
    }
}

/* With n = (x - mean) * rstd and y = n * w + b, per row:
 *   dn = dy * w
 *   dx = rstd * (dn - mean(dn) - n * mean(dn * n))
 * (the two means are the gradients through mean and through rstd, folded together). */
RANK_CLONES void rank_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                                         const float *inp, const float *w, const float *mean,
                                         const float *rstd, int R, int C) {
    for (int r = 0; r < R; r++) {
        const float *x = inp + (size_t)r * C, *dy = dout + (size_t)r * C;
        float *dx = dinp + (size_t)r * C;
        float m = mean[r], s = rstd[r];
        float dn_mean = 0.f, dnn_mean = 0.f;
        for (int c = 0; c < C; c++) {
            float n = (x[c] - m) * s, dn = dy[c] * w[c];
            dn_mean += dn;
            dnn_mean += dn * n;
        }
        dn_mean /= (float)C;
        dnn_mean /= (float)C;
        for (int c = 0; c < C; c++) {
            float n = (x[c] - m) * s, dn = dy[c] * w[c];
            db[c] += dy[c];
            dw[c] += n * dy[c];
            dx[c] += s * (dn - dn_mean - n * dnn_mean);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ReLU and element-wise product

RANK_CLONES float rank_dot(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += a[i + l] * b[i + l];
    float s = 0.f;
    for (; i < n; i++)
        s += a[i] * b[i];
    for (int l = 0; l < 8; l++)
        s += acc[l];
    return s;
}

RANK_CLONES void rank_relu_forward(float *out, const float *inp, int n) {
    for (int i = 0; i < n; i++)
        out[i] = inp[i] > 0.f ? inp[i] : 0.f;
}

RANK_CLONES void rank_relu_backward(float *dinp, const float *dout, const float *out, int n) {
    for (int i = 0; i < n; i++)
        if (out[i] > 0.f) dinp[i] += dout[i];
}

RANK_CLONES void rank_add_forward(float *out, const float *a, const float *b, int n) {
    for (int i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

RANK_CLONES void rank_mul_forward(float *out, const float *a, const float *b, int n) {
    for (int i = 0; i < n; i++)
        out[i] = a[i] * b[i];
}

RANK_CLONES void rank_mul_backward(float *da, float *db, const float *dout, const float *a,
                                   const float *b, int n) {
    for (int i = 0; i < n; i++) {
        da[i] += dout[i] * b[i];
        db[i] += dout[i] * a[i];
    }
}

// ---------------------------------------------------------------------------------------------
// Softmax

/* exp(x) for x <= 0 (softmax after subtracting the row max), written so the loop vectorizes:
 * exp(x) = 2^k * exp(r), k = round(x / ln 2), |r| <= ln2/2, exp(r) by a degree-6 polynomial
 * (relative error under 2e-7, the float rounding level). Below -87 it returns 0. */
static inline float exp_nonpos(float x) {
    x = x < -87.f ? -87.f : x;
    /* round to nearest by the 1.5 * 2^23 trick (rintf would be a libm call without SSE4.1) */
    float kf = (x * 1.44269504f + 12582912.f) - 12582912.f;
    float r = x - kf * 0.693145752f - kf * 1.42860677e-6f;
    float p = 1.f + r * (1.f + r * (0.5f + r * (0.166666672f +
                                                r * (0.0416666642f +
                                                     r * (0.00833338592f + r * 0.00138888892f)))));
    int32_t bits = ((int32_t)kf + 127) << 23;
    float two_k;
    memcpy(&two_k, &bits, sizeof two_k);
    return p * two_k;
}

static void softmax_rows_scalar(float *x, int R, int T) {
    for (int r = 0; r < R; r++) {
        float *row = x + (size_t)r * T;
        float m = -INFINITY, s = 0.f;
        for (int t = 0; t < T; t++)
            m = row[t] > m ? row[t] : m;
        for (int t = 0; t < T; t++)
            s += (row[t] = exp_nonpos(row[t] - m));
        float inv = 1.f / s;
        for (int t = 0; t < T; t++)
            row[t] *= inv;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* exp_nonpos on eight lanes, the same reduction and polynomial */
__attribute__((target("avx2,fma"))) static inline __m256 exp8_nonpos(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.f));
    __m256 kf = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(kf, _mm256_set1_ps(0.693145752f), x);
    r = _mm256_fnmadd_ps(kf, _mm256_set1_ps(1.42860677e-6f), r);
    __m256 p = _mm256_set1_ps(0.00138888892f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.00833338592f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.0416666642f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.166666672f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
    __m256i k =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(kf), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(k));
}

__attribute__((target("avx2,fma"))) static float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) static void softmax_rows_avx2(float *x, int R, int T) {
    for (int r = 0; r < R; r++) {
        float *row = x + (size_t)r * T;
        int t = 0;
        __m256 vm = _mm256_set1_ps(-INFINITY);
        for (; t + 8 <= T; t += 8)
            vm = _mm256_max_ps(vm, _mm256_loadu_ps(row + t));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vm), _mm256_extractf128_ps(vm, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float m = _mm_cvtss_f32(m4);
        for (; t < T; t++)
            m = row[t] > m ? row[t] : m;
        __m256 mv = _mm256_set1_ps(m), sv = _mm256_setzero_ps();
        for (t = 0; t + 8 <= T; t += 8) {
            __m256 e = exp8_nonpos(_mm256_sub_ps(_mm256_loadu_ps(row + t), mv));
            _mm256_storeu_ps(row + t, e);
            sv = _mm256_add_ps(sv, e);
        }
        float s = hsum8(sv);
        for (; t < T; t++)
            s += (row[t] = exp_nonpos(row[t] - m));
        __m256 iv = _mm256_set1_ps(1.f / s);
        for (t = 0; t + 8 <= T; t += 8)
            _mm256_storeu_ps(row + t, _mm256_mul_ps(_mm256_loadu_ps(row + t), iv));
        for (; t < T; t++)
            row[t] *= 1.f / s;
    }
}
#endif

void rank_softmax_rows(float *x, int R, int T) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        softmax_rows_avx2(x, R, T);
        return;
    }
#endif
    softmax_rows_scalar(x, R, T);
}

/* With a = softmax(z) per row, the Jacobian is diag(a) - a a^T, so
 * dz = a (.) (da - sum_t a_t da_t). In place: d holds da on entry and dz on return. */
void rank_softmax_rows_backward(float *d, const float *att, int R, int T) {
    for (int r = 0; r < R; r++) {
        const float *a = att + (size_t)r * T;
        float *dr = d + (size_t)r * T, s = 0.f;
        for (int t = 0; t < T; t++)
            s += a[t] * dr[t];
        for (int t = 0; t < T; t++)
            dr[t] = a[t] * (dr[t] - s);
    }
}

// ---------------------------------------------------------------------------------------------
// Target attention

void rank_tattn_forward(float *out, float *att, const float *q, const float *k, const float *v,
                        int B, int T, int C, float scale) {
    if (B <= 0) return;
    if (T <= 0) {
        if (out) memset(out, 0, (size_t)B * C * sizeof(float));
        return;
    }
    rank_gemm(0, 1, B, T, C, scale, q, C, k, C, 0.f, att, T); /* scale q k^T */
    rank_softmax_rows(att, B, T);
    if (out) rank_gemm(0, 0, B, C, T, 1.f, att, T, v, C, 0.f, out, C); /* att v */
}

/* With a = softmax(z), z = scale q k^T, out = a v:
 *   da = dout v^T;  dv += a^T dout
 *   dz = a (.) (da - rowsum(a (.) da))      (softmax Jacobian: diag(a) - a a^T, per row)
 *   dq += scale dz k;  dk += scale dz^T q */
void rank_tattn_backward(float *dq, float *dk, float *dv, float *datt, const float *dout,
                         const float *att, const float *q, const float *k, const float *v, int B,
                         int T, int C, float scale) {
    if (B <= 0 || T <= 0) return;
    rank_gemm(0, 1, B, T, C, 1.f, dout, C, v, C, 0.f, datt, T);
    if (dv) rank_gemm(1, 0, T, C, B, 1.f, att, T, dout, C, 1.f, dv, C);
    rank_softmax_rows_backward(datt, att, B, T);
    if (dq) rank_gemm(0, 0, B, C, T, scale, datt, T, k, C, 1.f, dq, C);
    if (dk) rank_gemm(1, 0, T, C, B, scale, datt, T, q, C, 1.f, dk, C);
}

void rank_tattn_forward_naive(float *out, float *att, const float *q, const float *k,
                              const float *v, int B, int T, int C, float scale) {
    for (int b = 0; b < B; b++) {
        float *a = att + (size_t)b * T;
        double mx = -INFINITY, sum = 0.0;
        for (int t = 0; t < T; t++) {
            double z = 0.0;
            for (int c = 0; c < C; c++)
                z += (double)q[(size_t)b * C + c] * k[(size_t)t * C + c];
            a[t] = (float)(z * scale);
            if (a[t] > mx) mx = a[t];
        }
        for (int t = 0; t < T; t++)
            sum += exp(a[t] - mx);
        for (int t = 0; t < T; t++)
            a[t] = (float)(exp(a[t] - mx) / sum);
        for (int c = 0; c < C; c++) {
            double s = 0.0;
            for (int t = 0; t < T; t++)
                s += (double)a[t] * v[(size_t)t * C + c];
            out[(size_t)b * C + c] = (float)s;
        }
    }
}

void rank_tattn_backward_naive(float *dq, float *dk, float *dv, const float *dout, const float *att,
                               const float *q, const float *k, const float *v, int B, int T, int C,
                               float scale) {
    for (int b = 0; b < B; b++) {
        const float *a = att + (size_t)b * T, *g = dout + (size_t)b * C;
        double s = 0.0;
        for (int t = 0; t < T; t++) {
            double da = 0.0;
            for (int c = 0; c < C; c++)
                da += (double)g[c] * v[(size_t)t * C + c];
            s += a[t] * da;
        }
        for (int t = 0; t < T; t++) {
            double da = 0.0;
            for (int c = 0; c < C; c++)
                da += (double)g[c] * v[(size_t)t * C + c];
            double dz = a[t] * (da - s);
            for (int c = 0; c < C; c++) {
                if (dv) dv[(size_t)t * C + c] += a[t] * g[c];
                if (dq) dq[(size_t)b * C + c] += (float)(scale * dz * k[(size_t)t * C + c]);
                if (dk) dk[(size_t)t * C + c] += (float)(scale * dz * q[(size_t)b * C + c]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Multi-head self-attention over one sequence

void rank_mha_forward(float *out, float *att, const float *qkv, int N, int C, int NH) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.f / sqrtf((float)hs);
    if (N <= 0) return;
    for (int h = 0; h < NH; h++) {
        float *a = att + (size_t)h * N * N;
        const float *Q = qkv + h * hs, *K = Q + C, *V = Q + 2 * C;
        rank_gemm(0, 1, N, N, hs, scale, Q, C3, K, C3, 0.f, a, N);
        rank_softmax_rows(a, N, N);
        rank_gemm(0, 0, N, hs, N, 1.f, a, N, V, C3, 0.f, out + h * hs, C);
    }
}

/* Per head, with a = att (N, N), z = scale Q K^T, out = a V:
 *   da = dout V^T;  dV += a^T dout;  dz = a (.) (da - rowsum(a (.) da))
 *   dQ += scale dz K;  dK += scale dz^T Q */
void rank_mha_backward(float *dqkv, float *datt, const float *dout, const float *att,
                       const float *qkv, int N, int C, int NH) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.f / sqrtf((float)hs);
    if (N <= 0) return;
    for (int h = 0; h < NH; h++) {
        const float *a = att + (size_t)h * N * N;
        const float *Q = qkv + h * hs, *K = Q + C, *V = Q + 2 * C, *g = dout + h * hs;
        float *dQ = dqkv + h * hs, *dK = dQ + C, *dV = dQ + 2 * C;
        rank_gemm(0, 1, N, N, hs, 1.f, g, C, V, C3, 0.f, datt, N);
        rank_gemm(1, 0, N, hs, N, 1.f, a, N, g, C, 1.f, dV, C3);
        rank_softmax_rows_backward(datt, a, N, N);
        rank_gemm(0, 0, N, hs, N, scale, datt, N, K, C3, 1.f, dQ, C3);
        rank_gemm(1, 0, N, hs, N, scale, datt, N, Q, C3, 1.f, dK, C3);
    }
}

void rank_mha_forward_naive(float *out, float *att, const float *qkv, int N, int C, int NH) {
    int hs = C / NH;
    float scale = 1.f / sqrtf((float)hs);
    size_t C3 = (size_t)3 * C;
    for (int h = 0; h < NH; h++)
        for (int i = 0; i < N; i++) {
            const float *qi = qkv + i * C3 + h * hs;
            float *a = att + ((size_t)h * N + i) * N;
            float mx = -INFINITY, sum = 0.f;
            for (int j = 0; j < N; j++) {
                const float *kj = qkv + j * C3 + C + h * hs;
                float z = 0.f;
                for (int c = 0; c < hs; c++)
                    z += qi[c] * kj[c];
                a[j] = z * scale;
                if (a[j] > mx) mx = a[j];
            }
            for (int j = 0; j < N; j++)
                sum += (a[j] = expf(a[j] - mx));
            for (int j = 0; j < N; j++)
                a[j] /= sum;
            float *o = out + (size_t)i * C + h * hs;
            for (int c = 0; c < hs; c++)
                o[c] = 0.f;
            for (int j = 0; j < N; j++) {
                const float *vj = qkv + j * C3 + 2 * C + h * hs;
                for (int c = 0; c < hs; c++)
                    o[c] += a[j] * vj[c];
            }
        }
}

void rank_mha_backward_naive(float *dqkv, const float *dout, const float *att, const float *qkv,
                             int N, int C, int NH) {
    int hs = C / NH;
    float scale = 1.f / sqrtf((float)hs);
    size_t C3 = (size_t)3 * C;
    for (int h = 0; h < NH; h++)
        for (int i = 0; i < N; i++) {
            const float *a = att + ((size_t)h * N + i) * N;
            const float *g = dout + (size_t)i * C + h * hs;
            const float *qi = qkv + i * C3 + h * hs;
            float *dqi = dqkv + i * C3 + h * hs;
            float s = 0.f;
            for (int j = 0; j < N; j++) {
                const float *vj = qkv + j * C3 + 2 * C + h * hs;
                float da = 0.f;
                for (int c = 0; c < hs; c++)
                    da += g[c] * vj[c];
                s += a[j] * da;
            }
            for (int j = 0; j < N; j++) {
                const float *kj = qkv + j * C3 + C + h * hs, *vj = kj + C;
                float *dkj = dqkv + j * C3 + C + h * hs, *dvj = dkj + C;
                float da = 0.f;
                for (int c = 0; c < hs; c++)
                    da += g[c] * vj[c];
                float dz = a[j] * (da - s) * scale;
                for (int c = 0; c < hs; c++) {
                    dvj[c] += a[j] * g[c];
                    dqi[c] += dz * kj[c];
                    dkj[c] += dz * qi[c];
                }
            }
        }
}

// ---------------------------------------------------------------------------------------------
// SDIM

RANK_CLONES void rank_buckets_forward(float *V, uint32_t *cnt, const float *x, const uint16_t *sig,
                                      int T, int S, int nb, int C) {
    memset(V, 0, (size_t)S * nb * C * sizeof(float));
    memset(cnt, 0, (size_t)S * nb * sizeof(uint32_t));
    for (int j = 0; j < T; j++) {
        const float *xj = x + (size_t)j * C;
        for (int i = 0; i < S; i++) {
            size_t cell = (size_t)i * nb + sig[(size_t)j * S + i];
            float *v = V + cell * C;
            for (int c = 0; c < C; c++)
                v[c] += xj[c];
            cnt[cell]++;
        }
    }
}

RANK_CLONES void rank_buckets_backward(float *dx, const float *dV, const uint16_t *sig, int T,
                                       int S, int nb, int C) {
    for (int j = 0; j < T; j++) {
        float *d = dx + (size_t)j * C;
        for (int i = 0; i < S; i++) {
            const float *g = dV + ((size_t)i * nb + sig[(size_t)j * S + i]) * C;
            for (int c = 0; c < C; c++)
                d[c] += g[c];
        }
    }
}

RANK_CLONES void rank_l2rows_forward(float *U, float *norm, const float *V, int R, int C,
                                     float eps) {
    for (int r = 0; r < R; r++) {
        const float *v = V + (size_t)r * C;
        float *u = U + (size_t)r * C;
        float n = sqrtf(sumsq(v, C)), inv = 1.f / (n > eps ? n : eps);
        for (int c = 0; c < C; c++)
            u[c] = v[c] * inv;
        norm[r] = n;
    }
}

RANK_CLONES void rank_l2rows_backward(float *dV, const float *dU, const float *U, const float *norm,
                                      int R, int C, float eps) {
    for (int r = 0; r < R; r++) {
        const float *u = U + (size_t)r * C, *g = dU + (size_t)r * C;
        float *dv = dV + (size_t)r * C, n = norm[r];
        if (n > eps) {
            float ug = 0.f;
            for (int c = 0; c < C; c++)
                ug += u[c] * g[c];
            for (int c = 0; c < C; c++)
                dv[c] += (g[c] - u[c] * ug) / n;
        } else {
            for (int c = 0; c < C; c++)
                dv[c] += g[c] / eps;
        }
    }
}

/* out[b] += sum_i P[i][sig[b][i]] over W-wide rows, 32 columns at a time in four 8-lane vector
 * accumulators (registers), so each candidate reads S rows once and writes its output once; every
 * column sums in the order i = 0..S-1, the same order as the plain loop. */
typedef float rank_v8 __attribute__((vector_size(32)));
/* a macro, not a function: a vector return value would change the ABI of baseline builds */
#define V8_ADD(acc, p)                                                                             \
    do {                                                                                           \
        rank_v8 v_;                                                                                \
        memcpy(&v_, (p), sizeof v_);                                                               \
        (acc) += v_;                                                                               \
    } while (0)

RANK_CLONES void rank_gather_add(float *restrict out, const float *restrict P, const uint16_t *sig,
                                 int B, int S, int nb, int W) {
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * W;
        const uint16_t *sb = sig + (size_t)b * S;
        int w0 = 0;
        for (; w0 + 32 <= W; w0 += 32) {
            rank_v8 a0, a1, a2, a3;
            memcpy(&a0, o + w0, sizeof a0);
            memcpy(&a1, o + w0 + 8, sizeof a1);
            memcpy(&a2, o + w0 + 16, sizeof a2);
            memcpy(&a3, o + w0 + 24, sizeof a3);
            for (int i = 0; i < S; i++) {
                const float *p = P + ((size_t)i * nb + sb[i]) * W + w0;
                V8_ADD(a0, p);
                V8_ADD(a1, p + 8);
                V8_ADD(a2, p + 16);
                V8_ADD(a3, p + 24);
            }
            memcpy(o + w0, &a0, sizeof a0);
            memcpy(o + w0 + 8, &a1, sizeof a1);
            memcpy(o + w0 + 16, &a2, sizeof a2);
            memcpy(o + w0 + 24, &a3, sizeof a3);
        }
        for (; w0 + 8 <= W; w0 += 8) {
            rank_v8 a;
            memcpy(&a, o + w0, sizeof a);
            for (int i = 0; i < S; i++)
                V8_ADD(a, P + ((size_t)i * nb + sb[i]) * W + w0);
            memcpy(o + w0, &a, sizeof a);
        }
        for (; w0 < W; w0++) {
            float a = o[w0];
            for (int i = 0; i < S; i++)
                a += P[((size_t)i * nb + sb[i]) * W + w0];
            o[w0] = a;
        }
    }
}

void rank_gather_add_naive(float *out, const float *P, const uint16_t *sig, int B, int S, int nb,
                           int W) {
    for (int b = 0; b < B; b++)
        for (int w = 0; w < W; w++) {
            double a = out[(size_t)b * W + w];
            for (int i = 0; i < S; i++)
                a += P[((size_t)i * nb + sig[(size_t)b * S + i]) * W + w];
            out[(size_t)b * W + w] = (float)a;
        }
}

RANK_CLONES void rank_sdim_forward(float *out, const float *U, const uint16_t *sig, int B, int S,
                                   int nb, int C) {
    float invS = 1.f / (float)S;
    memset(out, 0, (size_t)B * C * sizeof *out);
    rank_gather_add(out, U, sig, B, S, nb, C);
    for (size_t i = 0; i < (size_t)B * C; i++)
        out[i] *= invS;
}

RANK_CLONES void rank_sdim_backward(float *dU, const float *dout, const uint16_t *sig, int B, int S,
                                    int nb, int C) {
    float invS = 1.f / (float)S;
    for (int b = 0; b < B; b++) {
        const float *g = dout + (size_t)b * C;
        for (int i = 0; i < S; i++) {
            float *du = dU + ((size_t)i * nb + sig[(size_t)b * S + i]) * C;
            for (int c = 0; c < C; c++)
                du[c] += g[c] * invS;
        }
    }
}

void rank_avgpool_forward(float *out, const float *V, uint32_t len, int nb, int C) {
    for (int c = 0; c < C; c++)
        out[c] = 0.f;
    if (!len) return;
    for (int b = 0; b < nb; b++)
        for (int c = 0; c < C; c++)
            out[c] += V[(size_t)b * C + c];
    float inv = 1.f / (float)len;
    for (int c = 0; c < C; c++)
        out[c] *= inv;
}

void rank_avgpool_backward(float *dV, const float *dout, uint32_t len, int nb, int C) {
    if (!len) return;
    float inv = 1.f / (float)len;
    for (int b = 0; b < nb; b++)
        for (int c = 0; c < C; c++)
            dV[(size_t)b * C + c] += dout[c] * inv;
}
