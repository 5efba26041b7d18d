/* trn_metrics.c: AUC (ties as half), GAUC, log loss, calibration. */
#include "trn_metrics.h"

#include "core_alloc.h"
#include "core_err.h"

#include <math.h>
#include <stdlib.h>

typedef struct m_item {
    uint64_t user;
    float score;
    uint8_t label;
} m_item;

static int by_score(const void *a, const void *b) {
    const m_item *x = a, *y = b;
    return x->score < y->score ? -1 : x->score > y->score;
}

static int by_user_score(const void *a, const void *b) {
    const m_item *x = a, *y = b;
    if (x->user != y->user) return x->user < y->user ? -1 : 1;
    return by_score(a, b);
}

/* AUC of items already sorted by score: Mann-Whitney U with average ranks for ties. */
static double sorted_auc(const m_item *it, size_t n) {
    double rank_sum = 0, npos = 0;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && it[j].score == it[i].score) j++;
        double avg_rank = 0.5 * (double)(i + 1 + j); /* ranks i+1 .. j */
        for (size_t k = i; k < j; k++)
            if (it[k].label) {
                rank_sum += avg_rank;
                npos++;
            }
        i = j;
    }
    double nneg = (double)n - npos;
    if (npos == 0 || nneg == 0) return NAN;
    return (rank_sum - npos * (npos + 1) / 2) / (npos * nneg);
}

int trn_auc(double *auc, const float *score, const uint8_t *label, size_t n) {
    uint64_t positives;
    return trn_auc_group(auc, &positives, score, label, NULL, 0, n);
}

int trn_auc_group(double *auc, uint64_t *positives, const float *score, const uint8_t *label,
                  const uint8_t *group, uint8_t g, size_t n) {
    m_item *it = core_malloc(sizeof(m_item) * (n ? n : 1));
    if (!it) return CORE_ENOMEM;
    size_t k = 0;
    uint64_t np = 0;
    for (size_t i = 0; i < n; i++) {
        if (label[i] && group && group[i] != g) continue; /* another group's positive */
        np += label[i] ? 1 : 0;
        it[k++] = (m_item){0, score[i], label[i] ? 1 : 0};
    }
    qsort(it, k, sizeof *it, by_score);
    *auc = sorted_auc(it, k);
    *positives = np;
    core_free(it);
    return CORE_OK;
}

int trn_metrics_compute(trn_metrics *out, const float *pred, const uint8_t *label,
                        const uint64_t *user, const float *oracle, size_t n) {
    m_item *it = core_malloc(sizeof(m_item) * (n ? n : 1));
    int rc;
    if (!it) return CORE_ENOMEM;
    out->samples = n;
    double ll = 0, sp = 0, sy = 0;
    for (size_t i = 0; i < n; i++) {
        double p = pred[i] < 1e-7f ? 1e-7 : pred[i] > 1 - 1e-7 ? 1 - 1e-7 : pred[i];
        ll -= label[i] ? log(p) : log(1 - p);
        sp += pred[i];
        sy += label[i] ? 1 : 0;
        it[i] = (m_item){user[i], pred[i], label[i] ? 1 : 0};
    }
    out->logloss = n ? ll / (double)n : NAN;
    out->mean_pred = n ? sp / (double)n : NAN;
    out->mean_label = n ? sy / (double)n : NAN;
    out->calibration = sy > 0 ? sp / sy : NAN;
    qsort(it, n, sizeof *it, by_score);
    out->auc = sorted_auc(it, n);
    qsort(it, n, sizeof *it, by_user_score);
    double wsum = 0, gsum = 0;
    out->gauc_users = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && it[j].user == it[i].user) j++;
        double a = sorted_auc(it + i, j - i);
        if (!isnan(a)) {
            gsum += (double)(j - i) * a;
            wsum += (double)(j - i);
            out->gauc_users++;
        }
        i = j;
    }
    out->gauc = wsum > 0 ? gsum / wsum : NAN;
    out->oracle_auc = NAN;
    rc = oracle ? trn_auc(&out->oracle_auc, oracle, label, n) : CORE_OK;
    core_free(it);
    return rc;
}

int trn_platt_fit(double *a, double *c, const float *pred, const uint8_t *label, size_t n) {
    double A = 1, C = 0, pos = 0, zmin = INFINITY, zmax = -INFINITY;
    *a = 1, *c = 0;
    for (size_t i = 0; i < n; i++) {
        double p = fmin(fmax(pred[i], 1e-7), 1 - 1e-7), z = log(p / (1 - p));
        pos += label[i] != 0;
        zmin = fmin(zmin, z), zmax = fmax(zmax, z);
    }
    if (pos == 0 || pos == (double)n || !(zmax > zmin)) return CORE_EINVAL;
    for (int it = 0; it < 50; it++) {
        double ga = 0, gc = 0, haa = 0, hac = 0, hcc = 0; /* gradient and Hessian of the loss */
        for (size_t i = 0; i < n; i++) {
            double p = fmin(fmax(pred[i], 1e-7), 1 - 1e-7), z = log(p / (1 - p));
            double q = 1 / (1 + exp(-(A * z + C))), r = q - (label[i] ? 1 : 0), w = q * (1 - q);
            ga += r * z, gc += r;
            haa += w * z * z, hac += w * z, hcc += w;
        }
        double det = haa * hcc - hac * hac;
        if (!(det > 0)) return CORE_EINVAL;
        double da = (hcc * ga - hac * gc) / det, dc = (haa * gc - hac * ga) / det;
        A -= da, C -= dc;
        if (fabs(da) < 1e-10 && fabs(dc) < 1e-10) break;
    }
    if (!(A > 0) || !isfinite(C)) return CORE_EINVAL;
    *a = A, *c = C;
    return CORE_OK;
}
