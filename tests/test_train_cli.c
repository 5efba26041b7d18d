/* test_train_cli.c: `trail gen`, `trail train --json`, `trail eval --json` end to end on a small
 * stream; usage errors exit 2; a corrupt model is refused by name. */
#include "test_common.h"

#include <sys/wait.h>

static void test_gen_train_eval(void **state) {
    (void)state;
    char dir[256], cmd[2048], out[4096];
    const char *bin = test_trail_bin();
    assert_non_null(test_mkdtemp(dir, sizeof dir));
    snprintf(cmd, sizeof cmd,
             "%s gen --users 30 --items 500 --events 12000 --days 10 --seed 2 --out %s/g.jsonl "
             "2>/dev/null",
             bin, dir);
    assert_int_equal(test_run(cmd, NULL, 0), 0);
    snprintf(
        cmd, sizeof cmd,
        "%s train --events %s/g.jsonl --model-out %s/m.bin --variant full --epochs 1 --batch 64 "
        "--window 32 --recent 8 --dim 16 --item-rows 2048 --cat-rows 64 --hidden 16,8 "
        "--signatures 6 --bits 2 --json 2>%s/t.err",
        bin, dir, dir, dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"protocol\":\"impressions\""));
    /* the progress log: no value before the first evaluation, and the last line once */
    char log[4096];
    snprintf(cmd, sizeof cmd, "grep '^train: epoch=' %s/t.err", dir);
    assert_int_equal(test_run(cmd, log, sizeof log), 0);
    assert_null(strstr(log, "nan"));
    assert_null(strstr(log, "best=-1"));
    const char *last = log, *nl;
    while ((nl = strchr(last, '\n')) && nl[1])
        last = nl + 1;
    char step[64]; /* "step=A/B " of the last line: no earlier line is at that step */
    const char *sp = strstr(last, "step=");
    assert_non_null(sp);
    snprintf(step, sizeof step, "%.*s", (int)strcspn(sp, " ") + 1, sp);
    assert_true(strstr(log, step) == sp);
    assert_non_null(strstr(out, "\"valid\":{\"auc\":"));
    assert_non_null(strstr(out, "hash=fields"));
    snprintf(cmd, sizeof cmd, "%s model info --model %s/m.bin --json 2>/dev/null", bin, dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"signatures\":6,\"bits\":2,"));
    assert_non_null(strstr(out, "\"sdim_hash\":\"fields\""));
    assert_non_null(strstr(out, "\"window\":32,"));     /* what it was trained on */
    assert_non_null(strstr(out, "\"serving_isa\":\"")); /* and the path this CPU serves it on */
    snprintf(cmd, sizeof cmd,
             "%s eval --model %s/m.bin --events %s/g.jsonl --window 32 --json 2>/dev/null", bin,
             dir, dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    const char *keys[] = {
        "\"auc\":",     "\"gauc\":",       "\"logloss\":",      "\"calibration\":",
        "\"samples\":", "\"oracle_auc\":", "\"split\":\"test\""};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        assert_non_null(strstr(out, keys[i]));
    assert_null(strstr(out, "by_history"));
    snprintf(
        cmd, sizeof cmd,
        "%s eval --model %s/m.bin --events %s/g.jsonl --window 32 --by-history --json 2>/dev/null",
        bin, dir, dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    const char *hk[] = {"\"by_history\":{\"item_in_window\":{\"positives\":",
                        "\"category_in_window\":{\"positives\":", "\"neither\":{\"positives\":"};
    for (size_t i = 0; i < sizeof hk / sizeof hk[0]; i++)
        assert_non_null(strstr(out, hk[i]));
    /* pretraining on the file's own behaviors, then the impressions: the JSON reports both, and
     * the next protocol refuses it (its samples are next-behavior samples already) */
    snprintf(cmd, sizeof cmd,
             "%s train --events %s/g.jsonl --model-out %s/p.bin --pretrain 1 --epochs 1 --batch 64 "
             "--window 32 --recent 8 --dim 16 --item-rows 2048 --cat-rows 64 --hidden 16,8 --json "
             "2>%s/p.err",
             bin, dir, dir, dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    unsigned long long psteps = 0;
    const char *pj = strstr(out, "\"pretrain\":{\"steps\":");
    assert_non_null(pj);
    assert_int_equal(sscanf(pj, "\"pretrain\":{\"steps\":%llu", &psteps), 1);
    assert_true(psteps > 0);
    snprintf(cmd, sizeof cmd, "cat %s/p.err", dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    size_t ptrain = 0, pvalid = 0;
    const char *pl = strstr(out, "pretrain: next-behavior samples train=");
    assert_non_null(pl);
    assert_int_equal(
        sscanf(pl, "pretrain: next-behavior samples train=%zu valid=%zu", &ptrain, &pvalid), 2);
    assert_true(ptrain > 0 && pvalid > 0);
    assert_true(psteps <= (ptrain + 63) / 64); /* at most the one epoch asked for */
    snprintf(cmd, sizeof cmd,
             "%s train --events %s/g.jsonl --model-out %s/p2.bin --protocol next --pretrain 1 "
             "--epochs 1 "
             "--window 32 2>&1",
             bin, dir, dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "applies to --protocol impressions"));
    /* resume from the saved model (and its Adam state) */
    snprintf(
        cmd, sizeof cmd,
        "%s train --events %s/g.jsonl --model-out %s/m2.bin --init %s/m.bin --epochs 1 --batch 64 "
        "--window 32 2>&1",
        bin, dir, dir, dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "resume="));
    /* usage errors and a corrupt model */
    snprintf(cmd, sizeof cmd, "%s train --events %s/g.jsonl 2>/dev/null", bin, dir);
    assert_int_equal(test_run(cmd, NULL, 0), 2);
    snprintf(cmd, sizeof cmd,
             "%s eval --model %s/m.bin --events %s/g.jsonl --split nope 2>/dev/null", bin, dir,
             dir);
    assert_int_equal(test_run(cmd, NULL, 0), 2);
    snprintf(
        cmd, sizeof cmd,
        "head -c 100 %s/m.bin > %s/bad.bin && %s eval --model %s/bad.bin --events %s/g.jsonl 2>&1",
        dir, dir, bin, dir, dir);
    assert_int_equal(test_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "bad.bin"));
    test_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gen_train_eval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
