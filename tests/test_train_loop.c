/* test_train_loop.c: training learns the planted structure, is deterministic with two threads,
 * keeps the best model, and resumes with its Adam state. */
#include "test_common.h"
#include "test_model.h"
#include "trn_test_util.h"

#include "core_alloc.h"
#include "core_err.h"
#include "mdl.h"
#include "trn_gen.h"
#include "trn_loop.h"
#include "trn_samples.h"

#include <math.h>

static trn_data *data;

static int setup(void **state) {
    (void)state;
    return trn_test_data(&data, 60, 800, 36000, 20, 3);
}

static int teardown(void **state) {
    (void)state;
    trn_data_destroy(data);
    return 0;
}

static mdl_model *small_model(const char *variant) {
    mdl_config cfg;
    test_model_config(&cfg, 16);
    return test_model_new(&cfg, variant);
}

static void small_conf(trn_conf *c) {
    trn_conf_default(c);
    c->epochs = 3;
    c->batch = 64;
    c->threads = 2;
    c->window = 32;
    c->adam.lr = 3e-3f;
    c->patience = 10;
}

static void test_learns(void **state) {
    (void)state;
    trn_conf c;
    trn_report r1;
    char err[256];
    small_conf(&c);
    mdl_model *a = small_model("full");
    assert_int_equal(trn_train(a, data, &c, &r1, err, sizeof err), CORE_OK);
    assert_true(a->adam_step > 0 && a->adam_step <= r1.steps);
    /* it learned: test AUC well above chance, below the oracle */
    size_t lo, hi;
    trn_metrics t;
    trn_data_split(data, 2, &lo, &hi);
    assert_int_equal(trn_eval(a, data, lo, hi, c.window, 2, NULL, &t, err, sizeof err), CORE_OK);
    fprintf(stderr, "test auc %.4f gauc %.4f oracle %.4f valid gauc %.4f logloss %.4f\n", t.auc,
            t.gauc, t.oracle_auc, r1.best_valid_gauc, t.logloss);
    assert_true(t.auc > 0.65);
    assert_true(t.auc <= t.oracle_auc + 0.02);
    assert_true(fabs(t.calibration - 1.0) < 0.3);
    /* the kept model is the one whose valid GAUC was reported */
    trn_metrics v;
    trn_data_split(data, 1, &lo, &hi);
    assert_int_equal(trn_eval(a, data, lo, hi, c.window, 1, NULL, &v, err, sizeof err), CORE_OK);
    assert_true(fabs(v.gauc - r1.best_valid_gauc) < 1e-6);
    mdl_model_destroy(a);
}

static void test_deterministic_with_two_threads(void **state) {
    (void)state;
    trn_conf c;
    trn_report r1, r2;
    char err[256];
    small_conf(&c);
    c.epochs = 1;
    mdl_model *a = small_model("full"), *b = small_model("full");
    assert_int_equal(trn_train(a, data, &c, &r1, err, sizeof err), CORE_OK);
    assert_int_equal(trn_train(b, data, &c, &r2, err, sizeof err), CORE_OK);
    /* same seed, same thread count: the same bytes, Adam state included */
    assert_memory_equal(a->arena, b->arena, a->n_floats * sizeof(float));
    assert_memory_equal(a->adam_m, b->adam_m, a->n_floats * sizeof(float));
    assert_memory_equal(a->adam_v, b->adam_v, a->n_floats * sizeof(float));
    assert_int_equal(a->adam_step, b->adam_step);
    assert_int_equal(a->model_version, b->model_version);
    mdl_model_destroy(a);
    mdl_model_destroy(b);
}

static void test_resume_continues_adam(void **state) {
    (void)state;
    trn_conf c;
    trn_report r;
    char err[256], dir[256], path[512];
    small_conf(&c);
    c.epochs = 1;
    mdl_model *a = small_model("sdim"), *b = NULL;
    assert_int_equal(trn_train(a, data, &c, &r, err, sizeof err), CORE_OK);
    uint64_t step = a->adam_step;
    assert_non_null(test_mkdtemp(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/m.bin", dir);
    assert_int_equal(mdl_model_save(a, path, 1, err, sizeof err), CORE_OK);
    assert_int_equal(mdl_model_load(&b, path, err, sizeof err), CORE_OK);
    assert_non_null(b->adam_m);
    assert_int_equal(b->adam_step, step);
    assert_memory_equal(a->adam_v, b->adam_v, a->n_floats * sizeof(float));
    c.patience = 0; /* keep training to the end */
    assert_int_equal(trn_train(b, data, &c, &r, err, sizeof err), CORE_OK);
    assert_true(b->adam_step > step);
    mdl_model_destroy(a);
    mdl_model_destroy(b);
    test_rmtree(dir);
}

/* Platt scaling on the valid split: the same training with and without it; with it, every
 * prediction is sigmoid(slope * logit + offset) of the one without (folded into the weights),
 * so rankings and AUC stay, and the valid split's mean prediction is trn_level_prior's rate of
 * the data's train and valid labels. */
static void test_calibration_folds_into_the_weights(void **state) {
    (void)state;
    trn_conf c;
    trn_report r0, r1;
    char err[256];
    small_conf(&c);
    c.epochs = 1;
    mdl_model *a = small_model("full"), *b = small_model("full");
    c.calibrate = 0;
    assert_int_equal(trn_train(a, data, &c, &r0, err, sizeof err), CORE_OK);
    assert_int_equal(r0.calibrated, 0);
    c.calibrate = 1;
    assert_int_equal(trn_train(b, data, &c, &r1, err, sizeof err), CORE_OK);
    assert_int_equal(r1.calibrated, 1);
    assert_true(r1.cal_slope > 0);
    assert_true(fabs(r1.raw_logloss - r0.best_valid.logloss) < 1e-9);
    assert_true(r1.best_valid.logloss <= r0.best_valid.logloss);
    assert_true(fabs(r0.best_valid.calibration - 1.0) > 1e-3); /* there was something to fix */
    size_t lo, hi, tlo, thi;
    trn_data_split(data, 0, &tlo, &thi);
    trn_data_split(data, 1, &lo, &hi);
    uint8_t *yl = malloc(hi - lo + thi - tlo);
    assert_non_null(yl);
    for (size_t i = tlo; i < hi; i++) /* train, then valid: the splits are adjacent */
        yl[i - tlo] = data->samples[i].label;
    double rate, w;
    assert_int_equal(trn_level_prior(&rate, &w, yl, thi - tlo, yl + (thi - tlo), hi - lo), CORE_OK);
    free(yl);
    assert_true(fabs(r1.cal_rate - rate) < 1e-12 && fabs(r1.cal_rate_w_valid - w) < 1e-12);
    assert_true(fabs(r1.best_valid.mean_pred - rate) < 1e-5);
    print_message("calibration: valid click rate %.5f, train %.5f weight %.3f -> mean prediction "
                  "%.5f\n",
                  r1.best_valid.mean_label, rate, w, r1.best_valid.mean_pred);
    trn_data_split(data, 2, &lo, &hi);
    float *pa = malloc(sizeof(float) * (hi - lo)), *pb = malloc(sizeof(float) * (hi - lo));
    assert_true(pa && pb);
    trn_metrics ta, tb;
    assert_int_equal(trn_eval(a, data, lo, hi, c.window, 2, pa, &ta, err, sizeof err), CORE_OK);
    assert_int_equal(trn_eval(b, data, lo, hi, c.window, 2, pb, &tb, err, sizeof err), CORE_OK);
    for (size_t i = 0; i < hi - lo; i++) {
        double za = log(pa[i] / (1.0 - pa[i])), zb = log(pb[i] / (1.0 - pb[i]));
        if (fabs(zb - (r1.cal_slope * za + r1.cal_offset)) > 1e-3)
            fail_msg("sample %zu: logit %.6f, expected %.6f", i, zb,
                     r1.cal_slope * za + r1.cal_offset);
    }
    assert_true(fabs(ta.auc - tb.auc) < 1e-4);
    free(pa);
    free(pb);
    mdl_model_destroy(a);
    mdl_model_destroy(b);
}

static void test_bad_conf(void **state) {
    (void)state;
    trn_conf c;
    trn_report r;
    char err[256] = "";
    small_conf(&c);
    c.batch = 0;
    mdl_model *a = small_model("din-short");
    assert_int_equal(trn_train(a, data, &c, &r, err, sizeof err), CORE_EINVAL);
    assert_non_null(strstr(err, "batch"));
    mdl_model_destroy(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learns),
        cmocka_unit_test(test_deterministic_with_two_threads),
        cmocka_unit_test(test_resume_continues_adam),
        cmocka_unit_test(test_calibration_folds_into_the_weights),
        cmocka_unit_test(test_bad_conf),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
