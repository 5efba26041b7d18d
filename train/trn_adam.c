/* trn_adam.c: Adam with bias correction, global-norm clipping, lazy sparse rows (trn_adam.h). */
#include "trn_adam.h"

#include "core_assert.h"

#include <math.h>
#include <string.h>

void trn_adam_conf_default(trn_adam_conf *ac) {
    ac->lr = 1e-3f;
    ac->beta1 = 0.9f;
    ac->beta2 = 0.999f;
    ac->eps = 1e-8f;
    ac->clip = 5.0f;
    ac->l2_emb = 0.0f;
}

void trn_opt_init(trn_opt *o, const mdl_config *cfg) {
    mdl_tensor t[MDL_MAX_TENSORS];
    int n;
    size_t total = mdl_layout(cfg, t, &n);
    CORE_ASSERT(n > 4 && !strcmp(t[0].name, "item_emb") && !strcmp(t[1].name, "cat_emb") &&
                !strcmp(t[2].name, "item_bias") && !t[3].trainable);
    o->item_off = t[0].offset;
    o->cat_off = t[1].offset;
    o->bias_off = t[2].offset;
    o->half = cfg->C / 2;
    o->dense_off = t[4].offset;
    o->dense_end = total;
    for (int i = 4; i < n; i++)
        CORE_ASSERT(t[i].trainable);
}

/* Visit every (offset, length) span of the dense region and the listed rows. */
#define FOR_SPANS(o, rows, OFF, LEN, BODY)                                                         \
    do {                                                                                           \
        {                                                                                          \
            size_t OFF = (o)->dense_off, LEN = (o)->dense_end - (o)->dense_off;                    \
            BODY;                                                                                  \
        }                                                                                          \
        for (uint32_t r_ = 0; r_ < (rows)->n_item; r_++) {                                         \
            size_t OFF = (o)->item_off + (size_t)(rows)->item[r_] * (o)->half, LEN = (o)->half;    \
            BODY;                                                                                  \
        }                                                                                          \
        for (uint32_t r_ = 0; r_ < (rows)->n_item; r_++) {                                         \
            size_t OFF = (o)->bias_off + (rows)->item[r_], LEN = 1;                                \
            BODY;                                                                                  \
        }                                                                                          \
        for (uint32_t r_ = 0; r_ < (rows)->n_cat; r_++) {                                          \
            size_t OFF = (o)->cat_off + (size_t)(rows)->cat[r_] * (o)->half, LEN = (o)->half;      \
            BODY;                                                                                  \
        }                                                                                          \
    } while (0)

void trn_opt_zero(const trn_opt *o, float *g, const trn_rows *rows) {
    FOR_SPANS(o, rows, off, len, memset(g + off, 0, len * sizeof(float)));
}

void trn_opt_accumulate(const trn_opt *o, float *dst, const float *src, const trn_rows *rows) {
    FOR_SPANS(o, rows, off, len, {
        for (size_t i = 0; i < len; i++)
            dst[off + i] += src[off + i];
    });
}

double trn_opt_grad_norm(const trn_opt *o, const float *g, const trn_rows *rows) {
    double s = 0;
    FOR_SPANS(o, rows, off, len, {
        for (size_t i = 0; i < len; i++)
            s += (double)g[off + i] * g[off + i];
    });
    return sqrt(s);
}

void trn_adam_step(const trn_opt *o, const trn_adam_conf *ac, float *param, float *m, float *v,
                   float *g, uint64_t *step, const trn_rows *rows, double *norm) {
    if (ac->l2_emb > 0) { /* d/dw (l2/2 |w|^2) = l2 w on every touched row */
        for (uint32_t r = 0; r < rows->n_item; r++) {
            size_t off = o->item_off + (size_t)rows->item[r] * o->half;
            for (uint32_t i = 0; i < o->half; i++)
                g[off + i] += ac->l2_emb * param[off + i];
            g[o->bias_off + rows->item[r]] += ac->l2_emb * param[o->bias_off + rows->item[r]];
        }
        for (uint32_t r = 0; r < rows->n_cat; r++) {
            size_t off = o->cat_off + (size_t)rows->cat[r] * o->half;
            for (uint32_t i = 0; i < o->half; i++)
                g[off + i] += ac->l2_emb * param[off + i];
        }
    }
    double gn = trn_opt_grad_norm(o, g, rows);
    if (norm) *norm = gn;
    float scale = ac->clip > 0 && gn > ac->clip ? (float)(ac->clip / gn) : 1.0f;
    uint64_t t = ++*step;
    float b1 = ac->beta1, b2 = ac->beta2;
    float c1 = (float)(1.0 - pow(b1, (double)t)), c2 = (float)(1.0 - pow(b2, (double)t));
    /* p -= lr * (m / c1) / (sqrt(v / c2) + eps) */
    float lr = ac->lr, eps = ac->eps;
    FOR_SPANS(o, rows, off, len, {
        for (size_t i = off; i < off + len; i++) {
            float gi = g[i] * scale;
            m[i] = b1 * m[i] + (1 - b1) * gi;
            v[i] = b2 * v[i] + (1 - b2) * gi * gi;
            param[i] -= lr * (m[i] / c1) / (sqrtf(v[i] / c2) + eps);
        }
    });
}
