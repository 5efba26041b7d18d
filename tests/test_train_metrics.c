/* test_train_metrics.c: AUC, GAUC, log loss and calibration against hand-computed cases. */
#include "test_common.h"

#include "core_err.h"
#include "trn_metrics.h"

#include <math.h>

static void test_auc_counts_pairs(void **state) {
    (void)state;
    /* positives 0.35 and 0.8 against negatives 0.1 and 0.4: 3 of 4 pairs ordered */
    const float s[] = {0.1f, 0.4f, 0.35f, 0.8f};
    const uint8_t y[] = {0, 0, 1, 1};
    double auc;
    assert_int_equal(trn_auc(&auc, s, y, 4), CORE_OK);
    assert_true(fabs(auc - 0.75) < 1e-12);
}

/* one group of positives against every negative; other groups' positives are left out */
static void test_auc_of_a_group(void **state) {
    (void)state;
    const float s[] = {0.1f, 0.4f, 0.35f, 0.8f, 0.05f, 0.4f};
    const uint8_t y[] = {0, 0, 1, 1, 1, 1};
    const uint8_t g[] = {9, 9, 0, 0, 1, 2}; /* negatives' groups are ignored */
    double auc;
    uint64_t np;
    assert_int_equal(trn_auc_group(&auc, &np, s, y, g, 0, 6), CORE_OK);
    assert_int_equal(np, 2);
    assert_true(fabs(auc - 0.75) < 1e-12); /* 0.35 beats 0.1; 0.8 beats both */
    assert_int_equal(trn_auc_group(&auc, &np, s, y, g, 1, 6), CORE_OK);
    assert_int_equal(np, 1);
    assert_true(fabs(auc - 0.0) < 1e-12);
    assert_int_equal(trn_auc_group(&auc, &np, s, y, g, 2, 6), CORE_OK);
    assert_true(fabs(auc - 0.75) < 1e-12); /* 0.4 beats 0.1, ties 0.4 */
    assert_int_equal(trn_auc_group(&auc, &np, s, y, g, 3, 6), CORE_OK);
    assert_int_equal(np, 0);
    assert_true(isnan(auc));
}

static void test_auc_ties_count_half(void **state) {
    (void)state;
    /* pos 0.5 ties two negatives (0.5 + 0.5), pos 0.9 beats both (2): 3/4 */
    const float s[] = {0.5f, 0.5f, 0.5f, 0.9f};
    const uint8_t y[] = {1, 0, 0, 1};
    const float flat[] = {0.3f, 0.3f, 0.3f, 0.3f};
    double auc;
    assert_int_equal(trn_auc(&auc, s, y, 4), CORE_OK);
    assert_true(fabs(auc - 0.75) < 1e-12);
    assert_int_equal(trn_auc(&auc, flat, y, 4), CORE_OK);
    assert_true(fabs(auc - 0.5) < 1e-12);
    const uint8_t one[] = {1, 1, 1, 1};
    assert_int_equal(trn_auc(&auc, s, one, 4), CORE_OK);
    assert_true(isnan(auc));
}

static void test_gauc_logloss_calibration(void **state) {
    (void)state;
    /* user 1: AUC 1 over 3 samples; user 2: AUC 1/4 over 4; user 3: one class, skipped */
    const uint64_t u[] = {1, 2, 1, 2, 3, 2, 1, 2, 3};
    const float p[] = {0.1f, 0.2f, 0.9f, 0.3f, 0.5f, 0.6f, 0.5f, 0.7f, 0.4f};
    const uint8_t y[] = {0, 1, 1, 0, 1, 1, 0, 0, 1};
    const float oracle[] = {0.1f, 0.9f, 0.9f, 0.1f, 0.9f, 0.9f, 0.1f, 0.1f, 0.9f};
    trn_metrics m;
    assert_int_equal(trn_metrics_compute(&m, p, y, u, oracle, 9), CORE_OK);
    assert_int_equal(m.samples, 9);
    assert_int_equal(m.gauc_users, 2);
    assert_true(fabs(m.gauc - 4.0 / 7.0) < 1e-12);
    double ll = 0, sp = 0;
    for (int i = 0; i < 9; i++) {
        ll -= y[i] ? log((double)p[i]) : log(1.0 - (double)p[i]);
        sp += p[i];
    }
    assert_true(fabs(m.logloss - ll / 9) < 1e-9);
    assert_true(fabs(m.calibration - (sp / 9) / (5.0 / 9)) < 1e-9);
    assert_true(fabs(m.oracle_auc - 1.0) < 1e-12);
    /* overall AUC by brute force over pairs */
    double wins = 0, pairs = 0;
    for (int i = 0; i < 9; i++)
        for (int j = 0; j < 9; j++)
            if (y[i] && !y[j]) {
                pairs++;
                wins += p[i] > p[j] ? 1 : p[i] == p[j] ? 0.5 : 0;
            }
    assert_true(fabs(m.auc - wins / pairs) < 1e-12);
}

/* Platt scaling recovers the slope and offset that generated the labels, and refuses data that
 * cannot identify them. */
static void test_platt_fit(void **state) {
    (void)state;
    enum { N = 200000 };
    float *p = malloc(sizeof(float) * N);
    uint8_t *y = malloc(N);
    assert_true(p && y);
    uint64_t s = 12345;
    for (int i = 0; i < N; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double z = ((double)(s >> 11) / 9007199254740992.0) * 8 - 4; /* logit in [-4, 4] */
        p[i] = (float)(1 / (1 + exp(-z)));
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(s >> 11) / 9007199254740992.0;
        y[i] = u < 1 / (1 + exp(-(0.7 * z - 0.4)));
    }
    double a, c;
    assert_int_equal(trn_platt_fit(&a, &c, p, y, N), CORE_OK);
    assert_true(fabs(a - 0.7) < 0.03 && fabs(c + 0.4) < 0.03);
    memset(y, 1, N); /* one class */
    assert_int_equal(trn_platt_fit(&a, &c, p, y, N), CORE_EINVAL);
    assert_true(a == 1 && c == 0);
    for (int i = 0; i < N; i++)
        p[i] = 0.3f, y[i] = i % 3 == 0; /* nothing to scale */
    assert_int_equal(trn_platt_fit(&a, &c, p, y, N), CORE_EINVAL);
    free(p);
    free(y);
}

/* labels 1 at exactly round(rate * n) of n positions, spread evenly (no sampling noise) */
static void fill_rate(uint8_t *y, size_t n, double rate) {
    size_t ones = (size_t)(rate * (double)n + 0.5), acc = 0;
    for (size_t i = 0; i < n; i++) {
        size_t want = (size_t)((double)(i + 1) * (double)ones / (double)n + 0.5);
        y[i] = want > acc;
        acc += y[i];
    }
}

/* The level a calibration gives the valid split (issue 16: Platt on 15,000 valid impressions
 * copied their click rate, 1.9% above the true rate by chance, to every later prediction). A
 * train split whose periods click at one rate pools them with valid's; one whose periods move
 * by more than their noise keeps the valid rate; too little train keeps it too. */
static void test_level_prior_pools_a_stable_rate(void **state) {
    (void)state;
    enum { NV = 10000, K = 8, NT = NV * K };
    uint8_t *yt = malloc(NT), *yv = malloc(NV);
    assert_true(yt && yv);
    fill_rate(yv, NV, 0.315);   /* valid: 3.3 binomial standard errors above 0.30 */
    for (int j = 0; j < K; j++) /* train: every period at 0.30 */
        fill_rate(yt + (size_t)j * NV, NV, 0.30);
    double rate, w;
    assert_int_equal(trn_level_prior(&rate, &w, yt, NT, yv, NV), CORE_OK);
    /* tau^2 = 0: w = (1 / s_v) / (1 / s_v + 1 / s_t), s_t / s_v about 1 / 8 */
    assert_true(w > 0.08 && w < 0.14);
    assert_true(fabs(rate - (w * 0.315 + (1 - w) * 0.30)) < 1e-12);
    assert_true(rate < 0.3025);
    for (int j = 0; j < K; j++) /* train periods at 0.22 and 0.38 by turns: the rate moves */
        fill_rate(yt + (size_t)j * NV, NV, j % 2 ? 0.38 : 0.22);
    assert_int_equal(trn_level_prior(&rate, &w, yt, NT, yv, NV), CORE_OK);
    assert_true(w > 0.95);
    assert_true(fabs(rate - 0.315) < 0.001);
    assert_int_equal(trn_level_prior(&rate, &w, yt, NV + NV / 2, yv, NV), CORE_OK); /* 1 block */
    assert_true(w == 1 && fabs(rate - 0.315) < 1e-12);
    memset(yt, 0, NT); /* one class in train: nothing to pool with */
    assert_int_equal(trn_level_prior(&rate, &w, yt, NT, yv, NV), CORE_OK);
    assert_true(w == 1 && fabs(rate - 0.315) < 1e-12);
    assert_int_equal(trn_level_prior(&rate, &w, yt, NT, yv, 0), CORE_EINVAL);
    free(yt);
    free(yv);
}

/* trn_platt_level moves the offset until the mean prediction is the rate asked for, from any
 * start, and keeps the slope */
static void test_platt_level_sets_the_mean(void **state) {
    (void)state;
    enum { N = 5000 };
    float p[N];
    for (int i = 0; i < N; i++)
        p[i] = (float)(1 / (1 + exp(-(((double)i / N) * 10 - 6)))); /* mean about 0.2 */
    const double starts[] = {0, -30, 30, 1e-3};
    for (int k = 0; k < 4; k++) {
        double c = starts[k], s = 0;
        assert_int_equal(trn_platt_level(&c, 0.8, p, N, 0.37), CORE_OK);
        for (int i = 0; i < N; i++) {
            double z = log((double)p[i] / (1 - (double)p[i]));
            s += 1 / (1 + exp(-(0.8 * z + c)));
        }
        assert_true(fabs(s / N - 0.37) < 1e-9);
    }
    double c = 0.5;
    assert_int_equal(trn_platt_level(&c, 1, p, N, 1.0), CORE_EINVAL);
    assert_int_equal(trn_platt_level(&c, 1, p, 0, 0.3), CORE_EINVAL);
    assert_true(c == 0.5);
}

static void test_logloss_clips_extremes(void **state) {
    (void)state;
    const uint64_t u[] = {1, 1};
    const float p[] = {0.0f, 1.0f};
    const uint8_t y[] = {1, 0};
    trn_metrics m;
    assert_int_equal(trn_metrics_compute(&m, p, y, u, NULL, 2), CORE_OK);
    assert_true(isfinite(m.logloss));
    assert_true(fabs(m.logloss - (-log(1e-7))) < 1e-3);
    assert_true(isnan(m.oracle_auc));
    assert_true(fabs(m.auc - 0.0) < 1e-12);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auc_counts_pairs),
        cmocka_unit_test(test_auc_of_a_group),
        cmocka_unit_test(test_auc_ties_count_half),
        cmocka_unit_test(test_gauc_logloss_calibration),
        cmocka_unit_test(test_logloss_clips_extremes),
        cmocka_unit_test(test_platt_fit),
        cmocka_unit_test(test_level_prior_pools_a_stable_rate),
        cmocka_unit_test(test_platt_level_sets_the_mean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
