/* trn_metrics.c: AUC (ties as half), GAUC, log loss, calibration. */
#include "trn_metrics.h"

#include "core_alloc.h"
#include "core_err.h"

#include <math.h>
#include <stdio.h>
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
        while (j < n && it[j].score == it[i].score)
            j++;
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
        while (j < n && it[j].user == it[i].user)
            j++;
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

/* mean log loss of sigmoid(A z + C) against y: softplus(-t) for a positive, softplus(t) for a
 * negative, evaluated without overflow */
static double platt_loss(const double *z, const uint8_t *y, size_t n, double A, double C) {
    double l = 0;
    for (size_t i = 0; i < n; i++) {
        double t = A * z[i] + C, m = y[i] ? -t : t;
        l += m > 0 ? m + log1p(exp(-m)) : log1p(exp(m));
    }
    return l / (double)n;
}

static void set_why(char *why, size_t cap, const char *msg) {
    if (why && cap) snprintf(why, cap, "%s", msg);
}

int trn_platt_fit(double *a, double *c, const float *pred, const uint8_t *label, size_t n) {
    return trn_platt_fit_why(a, c, pred, label, n, NULL, 0);
}

int trn_platt_fit_why(double *a, double *c, const float *pred, const uint8_t *label, size_t n,
                      char *why, size_t why_size) {
    double pos = 0, zmin = INFINITY, zmax = -INFINITY;
    *a = 1, *c = 0;
    set_why(why, why_size, "");
    if (n == 0) {
        set_why(why, why_size, "no valid samples");
        return CORE_EINVAL;
    }
    double *z = core_malloc(sizeof(double) * n);
    uint8_t *y = core_malloc(n);
    if (!z || !y) {
        core_free(z);
        core_free(y);
        set_why(why, why_size, "out of memory");
        return CORE_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        double p = fmin(fmax(pred[i], 1e-7), 1 - 1e-7);
        z[i] = log(p / (1 - p));
        y[i] = label[i] != 0;
        pos += y[i];
        zmin = fmin(zmin, z[i]), zmax = fmax(zmax, z[i]);
    }
    int rc = CORE_EINVAL;
    if (pos == 0 || pos == (double)n) {
        set_why(why, why_size, "the valid split has one class only");
        goto out;
    }
    if (!(zmax > zmin)) {
        set_why(why, why_size, "every valid prediction is the same");
        goto out;
    }
    /* Damped Newton on the (convex) mean log loss from the identity: the Newton direction where
     * the Hessian is positive definite and the direction descends, else the gradient's; then
     * halve the step until the loss falls enough (Armijo). Overconfident predictions make the
     * Hessian at a = 1 tiny against the gradient, and a full Newton step overshoots to a
     * negative slope and diverges from there; the line search cannot. */
    double A = 1, C = 0, L = platt_loss(z, y, n, A, C), L0 = L;
    int converged = 0;
    for (int it = 0; it < 200 && !converged; it++) {
        double ga = 0, gc = 0, haa = 0, hac = 0, hcc = 0;
        for (size_t i = 0; i < n; i++) {
            double t = A * z[i] + C, q = t >= 0 ? 1 / (1 + exp(-t)) : exp(t) / (1 + exp(t));
            double r = q - y[i], w = q * (1 - q);
            ga += r * z[i], gc += r;
            haa += w * z[i] * z[i], hac += w * z[i], hcc += w;
        }
        ga /= (double)n, gc /= (double)n, haa /= (double)n, hac /= (double)n, hcc /= (double)n;
        if (fabs(ga) < 1e-9 && fabs(gc) < 1e-9) {
            converged = 1;
            break;
        }
        double det = haa * hcc - hac * hac, da = -ga, dc = -gc;
        if (det > 1e-12 * (haa * hcc) && haa > 0 && hcc > 0) {
            double na = -(hcc * ga - hac * gc) / det, nc = -(haa * gc - hac * ga) / det;
            if (na * ga + nc * gc < 0) da = na, dc = nc;
        }
        double slope = da * ga + dc * gc, step = 1, Ln = L;
        int moved = 0;
        for (int k = 0; k < 60; k++, step *= 0.5) {
            Ln = platt_loss(z, y, n, A + step * da, C + step * dc);
            if (isfinite(Ln) && Ln <= L + 1e-4 * step * slope) {
                moved = 1;
                break;
            }
        }
        if (!moved) { /* no step lowers the loss: as good as this precision allows */
            converged = fabs(ga) < 1e-6 && fabs(gc) < 1e-6;
            break;
        }
        A += step * da, C += step * dc, L = Ln;
    }
    if (!(L < L0) || !isfinite(A) || !isfinite(C)) {
        /* the identity is already (near) the optimum, or nothing better was found */
        set_why(why, why_size,
                converged ? "the identity is already the best fit"
                          : "the fit could not improve on the identity");
        rc = converged ? CORE_OK : CORE_ERANGE;
        goto out;
    }
    if (!(A > 0)) {
        char msg[128];
        snprintf(msg, sizeof msg,
                 "the best fit has slope %.4g <= 0 (predictions rank the "
                 "valid labels backwards)",
                 A);
        set_why(why, why_size, msg);
        goto out;
    }
    *a = A, *c = C;
    rc = CORE_OK;
out:
    core_free(z);
    core_free(y);
    return rc;
}

int trn_level_prior(double *rate, double *w_valid, const uint8_t *train_label, size_t n_train,
                    const uint8_t *valid_label, size_t n_valid) {
    if (n_valid == 0) return CORE_EINVAL;
    double sv = 0, st = 0;
    for (size_t i = 0; i < n_valid; i++)
        sv += valid_label[i] != 0;
    for (size_t i = 0; i < n_train; i++)
        st += train_label[i] != 0;
    double mv = sv / (double)n_valid;
    *rate = mv, *w_valid = 1;
    size_t k = n_train / n_valid;
    if (k < 2 || st == 0 || st == (double)n_train) return CORE_OK;
    double mt = st / (double)n_train;
    /* the k blocks of n_valid train labels that end where valid starts */
    const uint8_t *b0 = train_label + (n_train - k * n_valid);
    double bm = 0, bm2 = 0, bvar = 0;
    for (size_t j = 0; j < k; j++) {
        double s = 0;
        for (size_t i = 0; i < n_valid; i++)
            s += b0[j * n_valid + i] != 0;
        double m = s / (double)n_valid;
        bm += m, bm2 += m * m, bvar += m * (1 - m) / (double)n_valid;
    }
    bm /= (double)k, bvar /= (double)k;
    double between = (bm2 - (double)k * bm * bm) / (double)(k - 1);
    double tau2 = fmax(0, between - bvar);
    double var_v = mv * (1 - mv) / (double)n_valid, var_t = mt * (1 - mt) / (double)n_train;
    if (!(var_v > 0)) return CORE_OK; /* one class in valid: nothing to shrink */
    double w = (1 / var_v) / (1 / var_v + 1 / (var_t + tau2));
    *w_valid = w;
    *rate = w * mv + (1 - w) * mt;
    return CORE_OK;
}

/* mean of sigmoid(a z + c) and its derivative in c */
static double level_mean(const double *z, size_t n, double a, double c, double *d) {
    double s = 0, ds = 0;
    for (size_t i = 0; i < n; i++) {
        double t = a * z[i] + c, q = t >= 0 ? 1 / (1 + exp(-t)) : exp(t) / (1 + exp(t));
        s += q, ds += q * (1 - q);
    }
    *d = ds / (double)n;
    return s / (double)n;
}

int trn_platt_level(double *c, double a, const float *pred, size_t n, double rate) {
    if (n == 0 || !(rate > 0 && rate < 1)) return CORE_EINVAL;
    double *z = core_malloc(sizeof(double) * n);
    if (!z) return CORE_ENOMEM;
    double zmin = INFINITY, zmax = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double p = fmin(fmax(pred[i], 1e-7), 1 - 1e-7);
        z[i] = a * log(p / (1 - p));
        zmin = fmin(zmin, z[i]), zmax = fmax(zmax, z[i]);
    }
    /* the mean rises with c from 0 to 1: at lo it is below rate, at hi above */
    double r = log(rate / (1 - rate)), lo = r - zmax - 1, hi = r - zmin + 1, x = *c, d;
    if (!(x > lo && x < hi)) x = 0.5 * (lo + hi);
    for (int it = 0; it < 200; it++) {
        double f = level_mean(z, n, 1, x, &d) - rate;
        if (fabs(f) < 1e-12) break;
        if (f < 0)
            lo = x;
        else
            hi = x;
        double nx = d > 0 ? x - f / d : 0.5 * (lo + hi);
        x = nx > lo && nx < hi ? nx : 0.5 * (lo + hi);
        if (hi - lo < 1e-14) break;
    }
    core_free(z);
    *c = x;
    return CORE_OK;
}
