/* test_train_faults.c: every allocation failure in generation, sample building, metrics and
 * training returns CORE_ENOMEM cleanly (ASan checks for leaks), transient and persistent. */
#include "test_common.h"
#include "test_model.h"

#include "core_alloc.h"
#include "core_err.h"
#include "mdl.h"
#include "trn_gen.h"
#include "trn_loop.h"
#include "trn_metrics.h"
#include "trn_samples.h"

static sch_event *ev;
static size_t n_ev;

static int setup(void **state) {
    (void)state;
    trn_gen_conf gc;
    char err[256];
    trn_gen_conf_default(&gc);
    gc.users = 8, gc.items = 200, gc.events = 1500, gc.days = 5, gc.seed = 2;
    return trn_gen_events(&gc, &ev, &n_ev, NULL, err, sizeof err);
}

static int teardown(void **state) {
    (void)state;
    core_free(ev);
    return 0;
}

static void test_gen_and_samples(void **state) {
    (void)state;
    for (int persistent = 0; persistent < 2; persistent++) {
        trn_gen_conf gc;
        sch_event *out = NULL;
        size_t n;
        char err[256];
        trn_gen_conf_default(&gc);
        gc.users = 4, gc.items = 100, gc.events = 300, gc.days = 3;
        TEST_ALLOC_SWEEP(persistent, trn_gen_events(&gc, &out, &n, NULL, err, sizeof err),
                         assert_true(sweep_n < 100000), core_free(out));
        trn_data_conf dc;
        trn_data *d = NULL;
        trn_data_conf_default(&dc);
        TEST_ALLOC_SWEEP(persistent, trn_data_build(&d, ev, n_ev, &dc, err, sizeof err),
                         assert_true(sweep_n < 100000), trn_data_destroy(d));
        dc.protocol = TRN_PROTO_NEXT;
        dc.negatives = 2;
        TEST_ALLOC_SWEEP(persistent, trn_data_build(&d, ev, n_ev, &dc, err, sizeof err),
                         assert_true(sweep_n < 100000), trn_data_destroy(d));
    }
}

static void test_metrics(void **state) {
    (void)state;
    const float p[] = {0.1f, 0.7f, 0.4f, 0.9f};
    const uint8_t y[] = {0, 1, 0, 1};
    const uint64_t u[] = {1, 1, 2, 2};
    trn_metrics m;
    for (int persistent = 0; persistent < 2; persistent++)
        TEST_ALLOC_SWEEP(persistent, trn_metrics_compute(&m, p, y, u, p, 4),
                         assert_true(sweep_n < 100000), assert_true(m.auc == 1.0));
}

static void test_train(void **state) {
    (void)state;
    trn_data_conf dc;
    trn_data *d;
    mdl_config cfg;
    char err[256];
    trn_data_conf_default(&dc);
    assert_int_equal(trn_data_build(&d, ev, n_ev, &dc, err, sizeof err), CORE_OK);
    test_model_config(&cfg, 8); /* smaller still: the sweep trains once per allocation */
    cfg.S = 2, cfg.item_rows = 256, cfg.cat_rows = 16, cfg.n_recent = 4;
    cfg.h1 = 8, cfg.h2 = 4, cfg.tin_buckets = 8, cfg.seed = 1;
    trn_conf c;
    trn_conf_default(&c);
    c.epochs = 1, c.batch = 128, c.window = 8, c.evals_per_epoch = 1;
    for (int persistent = 0; persistent < 2; persistent++) {
        mdl_model *m;
        trn_report r;
        assert_int_equal(mdl_model_init(&m, &cfg, err, sizeof err), CORE_OK);
        TEST_ALLOC_SWEEP(persistent, trn_train(m, d, &c, &r, err, sizeof err),
                         assert_true(sweep_n < 100000), assert_true(r.steps > 0));
        mdl_model_destroy(m);
    }
    trn_data_destroy(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gen_and_samples),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_train),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
