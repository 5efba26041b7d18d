/* test_bench_serve.c: `trail bench serve` through the CLI, briefly (0.5 s per run, 50 candidates,
 * a 500-behavior window, one thread): one JSON object on stdout with every field, both paths run,
 * requests > 0 and p50 <= p99 in each run; an unknown --isa exits 2 naming it; bad numbers exit 2.
 */
#include "test_common.h"

#include <jansson.h>
#include <sys/wait.h>

static char dir[256];

/* Run `trail bench serve ARGS` with stdout and stderr to files in dir; the exit status. */
static int run(const char *args, char *out, size_t out_cap, char *errt, size_t err_cap) {
    char cmd[2048], po[512], pe[512];
    snprintf(po, sizeof po, "%s/out.txt", dir);
    snprintf(pe, sizeof pe, "%s/err.txt", dir);
    snprintf(cmd, sizeof cmd, "'%s' bench serve %s >'%s' 2>'%s'", test_trail_bin(), args, po, pe);
    int st = system(cmd);
    const char *paths[2] = {po, pe};
    char *bufs[2] = {out, errt};
    size_t caps[2] = {out_cap, err_cap};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(paths[i], "r");
        size_t n = f ? fread(bufs[i], 1, caps[i] - 1, f) : 0;
        bufs[i][n] = '\0';
        if (f) fclose(f);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int setup(void **state) {
    (void)state;
    return test_mkdtemp(dir, sizeof dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    test_rmtree(dir);
    return 0;
}

static double num(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v)) fail_msg("field %s missing or not a number", key);
    return json_number_value(v);
}

static void test_json(void **state) {
    (void)state;
    static char out[1 << 16], errt[1 << 16];
    int st = run("--json --seconds 0.5 --candidates 50 --window 500 --threads 1", out, sizeof out,
                 errt, sizeof errt);
    if (st != 0) fail_msg("exit %d; stderr: %s", st, errt);
    json_error_t je;
    json_t *root = json_loads(out, 0, &je);
    if (!root || !json_is_object(root)) fail_msg("not one JSON object (%s): %s", je.text, out);
    assert_true(num(root, "candidates") == 50);
    assert_true(num(root, "window") == 500);
    assert_true(num(root, "recent") == 50);
    assert_true(num(root, "seconds") == 0.5);
    assert_true(num(root, "cores") >= 1);
    assert_true(num(root, "speedup_k1_vs_fp32") > 0);
    assert_true(num(root, "speedup_kmax_vs_fp32") > 0);
    const char *isa = json_string_value(json_object_get(root, "isa"));
    assert_non_null(isa);
    assert_non_null(json_string_value(json_object_get(root, "openblas_core")));
    json_t *runs = json_object_get(root, "runs");
    assert_true(json_is_array(runs));
    /* the default path and fp32 at K = 1 (one run if the default is fp32) */
    assert_int_equal(json_array_size(runs), strcmp(isa, "fp32") ? 2 : 1);
    int seen_default = 0, seen_fp32 = 0;
    size_t i;
    json_t *r;
    json_array_foreach(runs, i, r) {
        const char *ri = json_string_value(json_object_get(r, "isa"));
        assert_non_null(ri);
        seen_default |= !strcmp(ri, isa);
        seen_fp32 |= !strcmp(ri, "fp32");
        assert_true(num(r, "threads") == 1);
        double n = num(r, "requests"), rps = num(r, "requests_per_s"),
               cps = num(r, "candidates_per_s"), p50 = num(r, "p50_us"), p99 = num(r, "p99_us");
        assert_true(n > 0);
        assert_true(rps > 0);
        assert_true(cps >= rps * 50 * 0.99 && cps <= rps * 50 * 1.01);
        assert_true(p50 > 0);
        assert_true(p50 <= p99);
    }
    assert_true(seen_default && seen_fp32);
    json_decref(root);
}

static void test_errors(void **state) {
    (void)state;
    static char out[1 << 14], errt[1 << 14];
    assert_int_equal(run("--json --isa bogus", out, sizeof out, errt, sizeof errt), 2);
    if (!strstr(errt, "bogus")) fail_msg("the message does not name the path: %s", errt);
    assert_string_equal(out, "");
    assert_int_equal(run("--candidates 0", out, sizeof out, errt, sizeof errt), 2);
    assert_int_equal(run("--candidates 2001", out, sizeof out, errt, sizeof errt), 2);
    assert_int_equal(run("--seconds 0", out, sizeof out, errt, sizeof errt), 2);
    assert_int_equal(run("--threads 0", out, sizeof out, errt, sizeof errt), 2);
    assert_int_equal(run("extra", out, sizeof out, errt, sizeof errt), 2);
    assert_int_equal(run("--help", out, sizeof out, errt, sizeof errt), 0);
    assert_non_null(strstr(out, "usage: trail bench serve"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
