/* test_train_paths.c: evaluation on the serving compute paths (trn_eval_isa, `trail eval --isa`,
 * `trail eval --paths`). A small model trained for one epoch scores the test split on every path
 * this CPU runs; each path's predictions must lie within its bound of fp32's (rank_isa_max_dp:
 * 5e-3 in probability for bf16, 2e-5 for fp32 precision, 5e-2 for the opt-in int8 paths), AUC
 * and log loss within 5e-4 and 1e-3, and
 * fp32 through trn_eval_isa must be trn_eval's bytes. Paths this CPU lacks are skipped, by name.
 */
#include "test_common.h"
#include "test_model.h"
#include "trn_test_util.h"

#include "core_alloc.h"
#include "core_err.h"
#include "mdl.h"
#include "rank_isa.h"
#include "trn_gen.h"
#include "trn_loop.h"
#include "trn_samples.h"

#include <math.h>
#include <sys/wait.h>

#define WIN 32

static trn_data *data;

static int setup(void **state) {
    (void)state;
    return trn_test_data(&data, 40, 600, 16000, 12, 5);
}

static int teardown(void **state) {
    (void)state;
    trn_data_destroy(data);
    return 0;
}

static mdl_model *trained(const char *variant) {
    mdl_config cfg;
    mdl_model *m;
    trn_conf c;
    trn_report r;
    char err[256];
    test_model_config(&cfg, 16);
    m = test_model_new(&cfg, variant);
    trn_conf_default(&c);
    c.epochs = 1, c.batch = 64, c.threads = 2, c.window = WIN, c.adam.lr = 3e-3f;
    assert_int_equal(trn_train(m, data, &c, &r, err, sizeof err), CORE_OK);
    return m;
}

static void check_variant(const char *variant) {
    char err[256];
    size_t lo, hi;
    trn_data_split(data, 2, &lo, &hi);
    size_t n = hi - lo;
    assert_true(n > 100);
    mdl_model *m = trained(variant);
    float *ref = malloc(n * sizeof *ref), *fp = malloc(n * sizeof *fp), *p = malloc(n * sizeof *p);
    assert_non_null(ref);
    assert_non_null(fp);
    assert_non_null(p);
    trn_metrics mref, mfp, mp;
    /* the reference: fp32 on three threads, as every path below; through the new entry point it is
     * the old evaluation, to the byte */
    assert_int_equal(trn_eval(m, data, lo, hi, WIN, 3, ref, &mref, err, sizeof err), CORE_OK);
    assert_int_equal(
        trn_eval_isa(m, data, lo, hi, WIN, 3, RANK_ISA_FP32, fp, &mfp, err, sizeof err), CORE_OK);
    assert_memory_equal(ref, fp, n * sizeof *ref);
    assert_true(mref.auc == mfp.auc && mref.gauc == mfp.gauc && mref.logloss == mfp.logloss);
    int ran = 0, bad = 0;
    for (int i = 0; i < RANK_ISA_COUNT; i++) {
        rank_isa isa = (rank_isa)i;
        if (!rank_isa_available(isa)) {
            fprintf(stderr, "%s: path %s: not on this CPU, skipped\n", variant, rank_isa_name(isa));
            assert_int_equal(trn_eval_isa(m, data, lo, hi, WIN, 2, isa, p, &mp, err, sizeof err),
                             CORE_ERANGE);
            assert_non_null(strstr(err, rank_isa_name(isa)));
            continue;
        }
        /* one engine shared by three threads: the same bytes on every run; one thread (other
         * batches: the GEMMs' blocking, so the rounding, may differ) within the same bound */
        int full = !strcmp(rank_isa_precision(isa), "fp32");
        double bound = rank_isa_max_dp(isa);
        assert_int_equal(trn_eval_isa(m, data, lo, hi, WIN, 3, isa, p, &mp, err, sizeof err),
                         CORE_OK);
        float *p1 = malloc(n * sizeof *p1);
        assert_non_null(p1);
        assert_int_equal(trn_eval_isa(m, data, lo, hi, WIN, 3, isa, p1, NULL, err, sizeof err),
                         CORE_OK);
        assert_memory_equal(p, p1, n * sizeof *p);
        assert_int_equal(trn_eval_isa(m, data, lo, hi, WIN, 1, isa, p1, NULL, err, sizeof err),
                         CORE_OK);
        double mx = 0, mx1 = 0;
        for (size_t k = 0; k < n; k++) {
            double e = fabs((double)p[k] - (double)ref[k]),
                   e1 = fabs((double)p1[k] - (double)ref[k]);
            if (!(e <= mx)) mx = e;
            if (!(e1 <= mx1)) mx1 = e1;
        }
        free(p1);
        fprintf(stderr,
                "%s: path %-12s (%s) max|p - p_fp32| = %.3g (one thread %.3g)  auc %+.2g  "
                "logloss %+.2g\n",
                variant, rank_isa_name(isa), rank_isa_precision(isa), mx, mx1, mp.auc - mref.auc,
                mp.logloss - mref.logloss);
        /* every path is checked before the test fails, so the output names each one out of bounds
         */
        if (!(mx <= bound && mx1 <= bound && fabs(mp.auc - mref.auc) <= 5e-4 &&
              fabs(mp.logloss - mref.logloss) <= 1e-3)) {
            fprintf(stderr,
                    "%s: path %s (%s) is OUT OF BOUNDS: max|p - p_fp32| %.3g (bound %.0e), "
                    "|AUC diff| %.2g (5e-4), |log-loss diff| %.2g (1e-3)\n",
                    variant, rank_isa_name(isa), rank_isa_precision(isa), mx > mx1 ? mx : mx1,
                    bound, fabs(mp.auc - mref.auc), fabs(mp.logloss - mref.logloss));
            bad++;
        }
        if (!full) assert_true(mx > 0); /* the path really ran */
        ran++;
    }
    assert_true(ran >= 2); /* scalar and fp32 run everywhere */
    assert_int_equal(
        trn_eval_isa(m, data, lo, hi, WIN, 2, RANK_ISA_COUNT, p, NULL, err, sizeof err),
        CORE_ERANGE);
    free(ref);
    free(fp);
    free(p);
    mdl_model_destroy(m);
    assert_int_equal(bad, 0);
}

static void test_paths_full(void **state) {
    (void)state;
    check_variant("full"); /* sdim + selfattn + tin + cross */
}

static void test_paths_din_long(void **state) {
    (void)state;
    check_variant("din-long"); /* exact attention over the window: its GEMMs on the path */
}

/* `trail eval --isa` and `--paths`: the old fields unchanged, one "paths" entry per available
 * path but fp32, every one within bounds; unknown paths and conflicting flags exit 2. */
static void test_cli(void **state) {
    (void)state;
    char dir[256], cmd[2048], base[8192], out[8192];
    const char *bin = test_trail_bin();
    assert_non_null(test_mkdtemp(dir, sizeof dir));
    snprintf(cmd, sizeof cmd,
             "%s gen --users 30 --items 500 --events 12000 --days 10 --seed 2 --out %s/g.jsonl "
             "2>/dev/null && %s train --events %s/g.jsonl --model-out %s/m.bin --variant full "
             "--epochs 1 --batch 64 --window 32 --recent 8 --dim 16 --item-rows 2048 --cat-rows 64 "
             "--hidden 16,8 --signatures 6 --bits 2 >/dev/null 2>&1",
             bin, dir, bin, dir, dir);
    assert_int_equal(test_run(cmd, NULL, 0), 0);
    const char *ev = "eval --window 32 --by-history --json";
    snprintf(cmd, sizeof cmd, "%s %s --model %s/m.bin --events %s/g.jsonl 2>/dev/null", bin, ev,
             dir, dir);
    assert_int_equal(test_run(cmd, base, sizeof base), 0);
    assert_null(strstr(base, "\"paths\""));
    assert_null(strstr(base, "\"isa\""));
    /* --isa fp32 is the default evaluation plus the path's name */
    snprintf(cmd, sizeof cmd, "%s %s --isa fp32 --model %s/m.bin --events %s/g.jsonl 2>/dev/null",
             bin, ev, dir, dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    size_t bl = strlen(base);
    assert_true(bl > 2);
    assert_memory_equal(out, base, bl - 2); /* all but the closing brace and newline */
    assert_non_null(strstr(out, "\"isa\":\"fp32\",\"precision\":\"fp32\"}"));
    /* --paths: the same report, then the paths */
    snprintf(cmd, sizeof cmd, "%s %s --paths --model %s/m.bin --events %s/g.jsonl 2>/dev/null", bin,
             ev, dir, dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    assert_memory_equal(out, base, bl - 2);
    assert_non_null(strstr(out, ",\"paths\":["));
    for (int i = 0; i < RANK_ISA_COUNT; i++) {
        char key[64];
        snprintf(key, sizeof key, "{\"isa\":\"%s\",\"precision\":\"%s\",",
                 rank_isa_name((rank_isa)i), rank_isa_precision((rank_isa)i));
        int want = i != RANK_ISA_FP32 && rank_isa_available((rank_isa)i);
        if (want)
            assert_non_null(strstr(out, key));
        else
            assert_null(strstr(out, key));
    }
    /* the fp32-precision paths hold (the others' accuracy is test_paths_*'s) */
    const char *sc = strstr(out, "{\"isa\":\"scalar\"");
    assert_non_null(sc);
    const char *wb = strstr(sc, "\"within_bounds\":");
    assert_non_null(wb);
    assert_memory_equal(wb, "\"within_bounds\":true}", 21);
    assert_non_null(strstr(out, "\"max_abs_diff_vs_fp32\":"));
    assert_non_null(strstr(out, "\"auc_diff\":"));
    assert_non_null(strstr(out, "\"logloss_diff\":"));
    /* errors: unknown path, a path this machine lacks, --paths with --isa */
    snprintf(cmd, sizeof cmd, "%s eval --isa avx9000 --model %s/m.bin --events %s/g.jsonl 2>&1",
             bin, dir, dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "unknown ISA path 'avx9000'"));
    for (int i = 0; i < RANK_ISA_COUNT; i++) {
        if (rank_isa_available((rank_isa)i)) continue;
        snprintf(cmd, sizeof cmd, "%s eval --isa %s --model %s/m.bin --events %s/g.jsonl 2>&1", bin,
                 rank_isa_name((rank_isa)i), dir, dir);
        assert_int_equal(test_run(cmd, out, sizeof out), 2);
        assert_non_null(strstr(out, "needs CPU features this machine lacks"));
    }
    snprintf(cmd, sizeof cmd,
             "%s eval --isa scalar --paths --model %s/m.bin --events %s/g.jsonl 2>&1", bin, dir,
             dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 2);
    test_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths_full),
        cmocka_unit_test(test_paths_din_long),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
