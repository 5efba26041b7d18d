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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
