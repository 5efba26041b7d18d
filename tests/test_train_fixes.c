/* test_train_fixes.c: issue 16, item 1. One evaluation per scheduled point however the shuffle
 * packs the batches (and the progress line's total is the real step count); Platt scaling that
 * converges where undamped Newton diverged, and a skipped calibration is reported; `--protocol
 * auto` refuses to switch task when labeled records were rejected. */
#include "test_common.h"
#include "test_model.h"

#include "core_alloc.h"
#include "core_err.h"
#include "mdl.h"
#include "trn_loop.h"
#include "trn_metrics.h"
#include "trn_samples.h"

#include <math.h>

static mdl_model *small_model(void) {
    mdl_config cfg;
    test_model_config(&cfg, 8);
    cfg.item_rows = 256, cfg.cat_rows = 16, cfg.n_recent = 4, cfg.tin_buckets = 8, cfg.seed = 5;
    return test_model_new(&cfg, "full");
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
        ev[n++] = (sch_event){.user_id = u,
                              .item_id = item,
                              .category_id = 1 + item % 5,
                              .ts = (int64_t)(1000 + 10 * i),
                              .action = SCH_ACTION_CLICK};
        for (size_t j = 0; j < (i % 2 ? 1u : 3u); j++) {
            uint64_t it = 1 + (i * 13 + j * 5) % 50;
            ev[n++] = (sch_event){.user_id = u,
                                  .item_id = it,
                                  .category_id = 1 + it % 5,
                                  .ts = (int64_t)(1005 + 10 * i),
                                  .action = SCH_ACTION_VIEW,
                                  .label = (uint8_t)((i + j) % 3 == 0),
                                  .flags = SCH_F_LABEL};
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
    /* plain progress: one line per evaluation; the final line only when it says something new,
     * and here the last evaluation is the last step */
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
    assert_int_equal(lines, 4);
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

/* mean log loss of sigmoid(a logit(p) + c), predictions clipped as trn_platt_fit clips them */
static double platt_loss(const double *z, const uint8_t *y, size_t n, double a, double c) {
    double l = 0;
    for (size_t i = 0; i < n; i++) {
        double t = a * z[i] + c, m = y[i] ? -t : t; /* loss = softplus(m) */
        l += m > 0 ? m + log1p(exp(-m)) : log1p(exp(m));
    }
    return l / (double)n;
}

/* Overconfident predictions (|logit| 5..9) whose labels follow a far flatter curve (slope 0.29,
 * offset 0.118): at slope 1 the Hessian is tiny against the gradient, and undamped Newton's first
 * step overshoots into a negative slope and diverges (before the fix: CORE_EINVAL, the model left
 * uncalibrated). The fit must reach the log-loss optimum that a slow, plain gradient descent
 * finds, and never be worse than the identity. */
static void test_platt_converges_on_overconfident_predictions(void **state) {
    (void)state;
    enum { N = 4000 };
    float *p = malloc(sizeof(float) * N);
    double *z = malloc(sizeof(double) * N);
    uint8_t *y = malloc(N);
    assert_true(p && y && z);
    uint64_t s = 777;
    for (int i = 0; i < N; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(s >> 11) / 9007199254740992.0;
        double zz = (i % 2 ? 1 : -1) * (5 + 4 * u);
        p[i] = (float)(1 / (1 + exp(-zz)));
        double pc = fmin(fmax(p[i], 1e-7), 1 - 1e-7);
        z[i] = log(pc / (1 - pc));
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        u = (double)(s >> 11) / 9007199254740992.0;
        y[i] = u < 1 / (1 + exp(-(0.29 * z[i] + 0.118)));
    }
    /* the reference optimum: gradient descent, small fixed steps, many of them (convex loss) */
    double ra = 1, rc = 0;
    for (int it = 0; it < 20000; it++) {
        double ga = 0, gc = 0;
        for (int i = 0; i < N; i++) {
            double q = 1 / (1 + exp(-(ra * z[i] + rc))), r = q - y[i];
            ga += r * z[i], gc += r;
        }
        ra -= 0.02 * ga / N, rc -= 0.2 * gc / N;
    }
    double a = 0, c = 0;
    assert_int_equal(trn_platt_fit(&a, &c, p, y, N), CORE_OK);
    double lf = platt_loss(z, y, N, a, c), lr = platt_loss(z, y, N, ra, rc);
    double li = platt_loss(z, y, N, 1, 0);
    fprintf(stderr,
            "platt: fit %.5f %+.5f loss %.6f; reference %.5f %+.5f loss %.6f; identity %.6f\n", a,
            c, lf, ra, rc, lr, li);
    assert_true(fabs(a - ra) < 1e-3 && fabs(c - rc) < 1e-3);
    assert_true(lf <= lr + 1e-9);
    assert_true(lf <= li);
    free(p);
    free(z);
    free(y);
}

/* The packed-groups stream as a JSON-lines file: labels as packed_groups' up to group
 * zero_from, 0 after it; impressions without "action" (rejected by the decoder) when no_action;
 * a garbage line after every `garbage`-th group (0: none). */
static void write_events(const char *path, size_t groups, size_t zero_from, int no_action,
                         size_t garbage) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < groups; i++) {
        unsigned long long u = i % 8, item = 1 + (i * 7) % 50;
        fprintf(f,
                "{\"user_id\":%llu,\"item_id\":%llu,\"category_id\":%llu,\"action\":\"click\","
                "\"ts\":%zu}\n",
                u, item, 1 + item % 5, 1000 + 10 * i);
        for (size_t j = 0; j < (i % 2 ? 1u : 3u); j++) {
            unsigned long long it = 1 + (i * 13 + j * 5) % 50;
            fprintf(f,
                    "{\"user_id\":%llu,\"item_id\":%llu,\"category_id\":%llu,%s\"ts\":%zu,"
                    "\"label\":%d}\n",
                    u, it, 1 + it % 5, no_action ? "" : "\"action\":\"view\",", 1005 + 10 * i,
                    i < zero_from && (i + j) % 3 == 0);
        }
        if (garbage && i % garbage == garbage - 1) fprintf(f, "{\"user_id\": oops\n");
    }
    fclose(f);
}

#define SMALL_ARGS                                                                                 \
    "--epochs 1 --batch 16 --window 8 --recent 4 --dim 8 --item-rows 256 "                         \
    "--cat-rows 16 --hidden 16,8 --signatures 4 --bits 2 --threads 1"

/* A valid split with one class only cannot be calibrated: the run says so on stderr and in the
 * JSON (before the fix: nothing, and the JSON had no trace of it). */
static void test_skipped_calibration_is_reported(void **state) {
    (void)state;
    char dir[256], cmd[2048], out[8192];
    const char *bin = test_trail_bin();
    assert_non_null(test_mkdtemp(dir, sizeof dir));
    snprintf(cmd, sizeof cmd, "%s/e.jsonl", dir);
    write_events(cmd, 300, 210, 0, 0);
    snprintf(cmd, sizeof cmd,
             "%s train --events %s/e.jsonl --model-out %s/m.bin " SMALL_ARGS " --json 2>%s/err",
             bin, dir, dir, dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    fprintf(stderr, "%s", out);
    assert_non_null(strstr(out, "\"calibration\":\"skipped: the valid split has one class only\""));
    assert_null(strstr(out, "\"platt\":"));
    snprintf(cmd, sizeof cmd, "cat %s/err", dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    assert_non_null(
        strstr(out, "warning: calibration skipped: the valid split has one class only"));
    /* both classes: calibrated, as before */
    snprintf(cmd, sizeof cmd, "%s/e.jsonl", dir);
    write_events(cmd, 300, 300, 0, 0);
    snprintf(cmd, sizeof cmd,
             "%s train --events %s/e.jsonl --model-out %s/m.bin " SMALL_ARGS " --json 2>/dev/null",
             bin, dir, dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"calibration\":\"platt\""));
    assert_non_null(strstr(out, "\"platt\":{\"slope\":"));
    test_rmtree(dir);
}

/* --epochs 0 with --init recalibrates a trained model without training it (how the quality
 * table's kept models took the level of trn_level_prior): no steps, a Platt fit, the ranking
 * unchanged; without --init it is a usage error. */
static void test_epochs_0_recalibrates(void **state) {
    (void)state;
    char dir[256], cmd[2048], out[8192], a0[64], a1[64];
    const char *bin = test_trail_bin();
    assert_non_null(test_mkdtemp(dir, sizeof dir));
    snprintf(cmd, sizeof cmd, "%s/e.jsonl", dir);
    write_events(cmd, 300, 300, 0, 0);
    snprintf(cmd, sizeof cmd,
             "%s train --events %s/e.jsonl --model-out %s/m0.bin " SMALL_ARGS
             " --calibrate 0 --json 2>/dev/null",
             bin, dir, dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"calibration\":\"off\""));
    snprintf(cmd, sizeof cmd,
             "%s train --events %s/e.jsonl --init %s/m0.bin --epochs 0 --model-out %s/m1.bin "
             "--window 8 --threads 1 --json 2>/dev/null",
             bin, dir, dir, dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"steps\":0,"));
    assert_non_null(strstr(out, "\"calibration\":\"platt\""));
    assert_non_null(strstr(out, "\"rate_w_valid\":"));
    const char *m[2] = {"m0", "m1"};
    char *auc[2] = {a0, a1};
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd,
                 "%s eval --model %s/%s.bin --events %s/e.jsonl --window 8 --split test --json "
                 "2>/dev/null",
                 bin, dir, m[k], dir);
        assert_int_equal(test_run(cmd, out, sizeof out), 0);
        const char *p = strstr(out, "\"auc\":");
        assert_non_null(p);
        snprintf(auc[k], 64, "%.*s", (int)strcspn(p, ","), p);
    }
    assert_string_equal(a0, a1);
    snprintf(cmd, sizeof cmd,
             "%s train --events %s/e.jsonl --epochs 0 --model-out %s/m2.bin 2>/dev/null", bin, dir,
             dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 2);
    test_rmtree(dir);
}

/* --protocol auto on a file whose impressions all lack "action": before the fix it trained the
 * next-behavior protocol on the behaviors and exited 0. Now it refuses by name, as it does with
 * 2% garbage lines; --strict 0 goes ahead with a warning. */
static void test_auto_refuses_to_switch_task(void **state) {
    (void)state;
    char dir[256], cmd[2048], out[8192];
    const char *bin = test_trail_bin();
    assert_non_null(test_mkdtemp(dir, sizeof dir));
    snprintf(cmd, sizeof cmd, "%s/noaction.jsonl", dir);
    write_events(cmd, 300, 300, 1, 0);
    snprintf(cmd, sizeof cmd, "%s/garbage.jsonl", dir);
    write_events(cmd, 300, 300, 0, 16); /* 18 garbage lines of 918: 2.0% */
    snprintf(cmd, sizeof cmd, "%s/fine.jsonl", dir);
    write_events(cmd, 300, 300, 0, 150); /* 2 of 902: 0.2% */
    /* every labeled record rejected */
    snprintf(cmd, sizeof cmd,
             "%s train --events %s/noaction.jsonl --model-out %s/m.bin --protocol auto " SMALL_ARGS
             " --json 2>&1 >/dev/null",
             bin, dir, dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "all 600 labeled records (impressions) were rejected"));
    assert_non_null(strstr(out, "'action'"));
    assert_null(strstr(out, "protocol=next"));
    /* the default protocol is auto: the same refusal */
    snprintf(cmd, sizeof cmd,
             "%s train --events %s/noaction.jsonl --model-out %s/m.bin " SMALL_ARGS
             " 2>&1 >/dev/null",
             bin, dir, dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "were rejected"));
    /* more than 1% of the records rejected */
    snprintf(cmd, sizeof cmd,
             "%s train --events %s/garbage.jsonl --model-out %s/m.bin --protocol auto " SMALL_ARGS
             " 2>&1 >/dev/null",
             bin, dir, dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "18 of 918 records (2.0%) were rejected, more than 1%"));
    /* a named protocol is what the user asked for: no refusal (the bad records are still
     * reported, as before) */
    snprintf(cmd, sizeof cmd,
             "%s train --events %s/garbage.jsonl --model-out %s/m.bin --protocol "
             "impressions " SMALL_ARGS " --json 2>/dev/null",
             bin, dir, dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    /* under 1%: auto goes ahead */
    snprintf(cmd, sizeof cmd,
             "%s train --events %s/fine.jsonl --model-out %s/m.bin " SMALL_ARGS
             " --json 2>/dev/null",
             bin, dir, dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"protocol\":\"impressions\""));
    /* --strict 0: trains (the next-behavior protocol, as auto picks) and warns */
    snprintf(cmd, sizeof cmd,
             "%s train --events %s/noaction.jsonl --model-out %s/m.bin --strict 0 " SMALL_ARGS
             " --json 2>%s/err",
             bin, dir, dir, dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"protocol\":\"next\""));
    snprintf(cmd, sizeof cmd, "cat %s/err", dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "warning:"));
    assert_non_null(strstr(out, "were rejected"));
    test_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_eval_per_scheduled_point),
        cmocka_unit_test(test_platt_converges_on_overconfident_predictions),
        cmocka_unit_test(test_epochs_0_recalibrates),
        cmocka_unit_test(test_skipped_calibration_is_reported),
        cmocka_unit_test(test_auto_refuses_to_switch_task),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
