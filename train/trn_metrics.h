/* trn_metrics.h: ranking and probability metrics for evaluation.
 *
 * AUC counts tied scores as half (average ranks); GAUC = sum_u n_u AUC_u / sum_u n_u over users
 * with both labels; log loss clips predictions to [1e-7, 1 - 1e-7]; calibration = mean prediction
 * / mean label. Pure functions over arrays; they allocate scratch and free it before returning.
 */
#ifndef TRAIL_TRN_METRICS_H
#define TRAIL_TRN_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct trn_metrics {
    double auc;  /* NaN when only one class is present */
    double gauc; /* NaN when no user has both classes */
    double logloss;
    double calibration; /* NaN when there are no positives */
    double oracle_auc;  /* AUC of the true probabilities; NaN when none were given */
    double mean_pred, mean_label;
    uint64_t samples;
    uint64_t gauc_users; /* users that entered GAUC */
} trn_metrics;

/** @brief AUC of score against label (ties count half). @param[out] auc NaN if one class only.
 *  @return CORE_OK or CORE_ENOMEM. */
int trn_auc(double *auc, const float *score, const uint8_t *label, size_t n);

/** @brief AUC of one group of positives against every negative: of the scores with label 1 and
 *  group[i] == g, and all scores with label 0, the fraction of (positive, negative) pairs ordered
 *  right (ties half). Breaks a ranking down by the kind of positive (trn_data_match: is the item,
 *  or only its category, in the window); group NULL takes every positive (trn_auc).
 *  @param[out] auc NaN without such positives or negatives.
 *  @param[out] positives the group's size. @return CORE_OK or CORE_ENOMEM. */
int trn_auc_group(double *auc, uint64_t *positives, const float *score, const uint8_t *label,
                  const uint8_t *group, uint8_t g, size_t n);

/** @brief Every metric at once. user: (n) group ids for GAUC; oracle: (n) true probabilities or
 *  NULL. @return CORE_OK or CORE_ENOMEM. */
int trn_metrics_compute(trn_metrics *out, const float *pred, const uint8_t *label,
                        const uint64_t *user, const float *oracle, size_t n);

/** @brief Platt scaling: the slope a and offset c that minimize the mean log loss of
 *  sigmoid(a * logit(pred) + c) against label (predictions clipped as for the log loss). Damped
 *  Newton from a = 1, c = 0: the Newton step where the Hessian allows, else the gradient's, halved
 *  until the loss falls (Armijo); stops when the gradient is below 1e-9. The loss never rises, so
 *  the fit is never worse than the identity.
 *  @return CORE_OK (a fit, or the identity when it is already the optimum), CORE_EINVAL when they
 *  are not identified (one class only, all predictions equal) or the optimum has a <= 0,
 *  CORE_ERANGE when no step improved on the identity before the gradient was small,
 *  CORE_ENOMEM; on any error a and c stay 1 and 0. */
int trn_platt_fit(double *a, double *c, const float *pred, const uint8_t *label, size_t n);

/** @brief trn_platt_fit, and why (a short phrase, "" on a fit) in why[why_size] (why may be NULL):
 *  what a caller that skips calibration reports. */
int trn_platt_fit_why(double *a, double *c, const float *pred, const uint8_t *label, size_t n,
                      char *why, size_t why_size);

/** @brief The click rate a calibration should give the valid split: the valid labels' mean,
 *  shrunk toward the train labels' mean by how much the rate is seen to move between periods.
 *  The last k = n_train / n_valid blocks of n_valid train labels (consecutive, ending where valid
 *  starts) give the between-period variance of the rate beyond binomial noise, tau^2 = max(0,
 *  var(block means) - mean(m (1 - m) / n_valid)); then w = (1 / s_v) / (1 / s_v + 1 / (s_t +
 *  tau^2)) with s_v, s_t the binomial variances of the valid and train means, and
 *  rate = w mean_valid + (1 - w) mean_train (empirical Bayes: a stationary rate pools all the
 *  labels, a rate that moves keeps the valid split's). w = 1 (the valid mean) when there are
 *  fewer than 2 blocks or the train labels are one class.
 *  @param[out] rate the target mean prediction on valid. @param[out] w_valid the weight w.
 *  @return CORE_OK, or CORE_EINVAL when n_valid is 0. */
int trn_level_prior(double *rate, double *w_valid, const uint8_t *train_label, size_t n_train,
                    const uint8_t *valid_label, size_t n_valid);

/** @brief The offset c for which the mean of sigmoid(a * logit(pred) + c) over the n predictions
 *  (clipped as for the log loss) equals rate, starting from *c: Newton on the monotone mean,
 *  kept inside a bracket that bisection shrinks. @return CORE_OK, CORE_EINVAL (n = 0, rate not
 *  inside (0, 1)), CORE_ENOMEM; on error *c is unchanged. */
int trn_platt_level(double *c, double a, const float *pred, size_t n, double rate);

#endif
