/* test_core_report: the same calls as one JSON object (three spacings, jansson reads it back with
 * the nesting asked for) and as text; a temporary tree made and removed; percentiles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <math.h>

#include "core_report.h"

/* One report of every kind of field, nested objects and arrays included, into buf. */
static void write_sample(core_report_style style, char *buf, size_t cap) {
    FILE *f = fmemopen(buf, cap, "w");
    assert_non_null(f);
    core_report r;
    core_report_begin(&r, f, style, "bench x: 3 fields");
    core_report_u64(&r, "candidates", 1000);
    core_report_i64(&r, "delta", -5);
    core_report_num(&r, "p50_us", "%.1f", 12.345);
    core_report_num(&r, "folded", "%.1f", NAN);
    core_report_str(&r, "isa", "avx2 \"q\"\\\n");
    core_report_strf(&r, "mlp", "%u-%u", 200u, 80u);
    core_report_bool(&r, "ok", 1);
    core_report_obj(&r, "paths");
    core_report_obj(&r, "fp32");
    core_report_num(&r, "p50_us", "%.3g", 0.5);
    core_report_close(&r);
    core_report_obj(&r, "empty");
    core_report_close(&r);
    core_report_close(&r);
    core_report_arr(&r, "runs");
    for (int i = 0; i < 2; i++) {
        core_report_obj(&r, NULL);
        core_report_u64(&r, "threads", (uint64_t)i + 1);
        core_report_arr(&r, "load");
        core_report_str(&r, NULL, "1.0");
        core_report_str(&r, NULL, "2.0");
        core_report_close(&r);
        core_report_close(&r);
    }
    core_report_u64(&r, NULL, 7);
    core_report_end(&r); /* closes "runs" too */
    fclose(f);
}

static void json_forms(void **state) {
    (void)state;
    static char buf[4096];
    write_sample(CORE_REPORT_JSON, buf, sizeof buf);
    assert_string_equal(buf,
                        "{\"candidates\": 1000, \"delta\": -5, \"p50_us\": 12.3, \"folded\": null, "
                        "\"isa\": \"avx2 \\\"q\\\"\\\\\\n\", \"mlp\": \"200-80\", \"ok\": true, "
                        "\"paths\": {\"fp32\": {\"p50_us\": 0.5}, \"empty\": {}}, "
                        "\"runs\": [{\"threads\": 1, \"load\": [\"1.0\", \"2.0\"]}, "
                        "{\"threads\": 2, \"load\": [\"1.0\", \"2.0\"]}, 7]}\n");
    write_sample(CORE_REPORT_JSON_TIGHT, buf, sizeof buf);
    assert_non_null(strstr(buf, "{\"candidates\":1000,\"delta\":-5,"));
    assert_null(strstr(buf, ", \""));
    assert_null(strstr(buf, "\": "));
    const core_report_style styles[] = {CORE_REPORT_JSON, CORE_REPORT_JSON_TIGHT,
                                        CORE_REPORT_JSON_PRETTY};
    for (int s = 0; s < 3; s++) {
        write_sample(styles[s], buf, sizeof buf);
        json_error_t je;
        json_t *root = json_loads(buf, 0, &je);
        if (!root) fail_msg("style %d: %s in %s", s, je.text, buf);
        assert_int_equal(json_integer_value(json_object_get(root, "candidates")), 1000);
        assert_true(json_is_null(json_object_get(root, "folded")));
        assert_string_equal(json_string_value(json_object_get(root, "isa")), "avx2 \"q\"\\\n");
        json_t *fp32 = json_object_get(json_object_get(root, "paths"), "fp32");
        assert_true(json_real_value(json_object_get(fp32, "p50_us")) == 0.5);
        json_t *runs = json_object_get(root, "runs");
        assert_int_equal(json_array_size(runs), 3);
        json_t *load = json_object_get(json_array_get(runs, 1), "load");
        assert_string_equal(json_string_value(json_array_get(load, 1)), "2.0");
        json_decref(root);
    }
    write_sample(CORE_REPORT_JSON_PRETTY, buf, sizeof buf);
    assert_non_null(strstr(buf, "{\n  \"candidates\": 1000,\n  \"delta\": -5,\n"));
    assert_non_null(strstr(buf, "  \"paths\": {\n    \"fp32\": {\n      \"p50_us\": 0.5\n    },\n"
                                "    \"empty\": {}\n  },\n"));
    assert_non_null(strstr(buf, "\n  ]\n}\n"));
}

static void text_form(void **state) {
    (void)state;
    static char buf[4096];
    write_sample(CORE_REPORT_TEXT, buf, sizeof buf);
    assert_string_equal(buf, "bench x: 3 fields\n"
                             "  candidates 1000\n"
                             "  delta -5\n"
                             "  p50_us 12.3\n"
                             "  folded -\n"
                             "  isa avx2 \"q\"\\\n\n"
                             "  mlp 200-80\n"
                             "  ok true\n"
                             "  paths\n"
                             "    fp32\n"
                             "      p50_us 0.5\n"
                             "    empty\n"
                             "  runs\n"
                             "    - threads 1  load [1.0  2.0]\n"
                             "    - threads 2  load [1.0  2.0]\n"
                             "    - 7\n");
    /* without a title the fields start at the margin */
    FILE *f = fmemopen(buf, sizeof buf, "w");
    core_report r;
    core_report_begin(&r, f, CORE_REPORT_TEXT, NULL);
    core_report_u64(&r, "a", 1);
    core_report_end(&r);
    fclose(f);
    assert_string_equal(buf, "a 1\n");
}

/* Containers deeper than CORE_REPORT_DEPTH are written as null, and what they hold is dropped. */
static void depth_limit(void **state) {
    (void)state;
    static char buf[4096];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    core_report r;
    core_report_begin(&r, f, CORE_REPORT_JSON_TIGHT, NULL);
    for (int i = 0; i < CORE_REPORT_DEPTH + 2; i++)
        core_report_obj(&r, "o");
    core_report_u64(&r, "x", 1);
    for (int i = 0; i < CORE_REPORT_DEPTH + 2; i++)
        core_report_close(&r);
    core_report_u64(&r, "after", 2);
    core_report_end(&r);
    fclose(f);
    json_error_t je;
    json_t *root = json_loads(buf, 0, &je);
    if (!root) fail_msg("%s in %s", je.text, buf);
    assert_int_equal(json_integer_value(json_object_get(root, "after")), 2);
    assert_null(strstr(buf, "\"x\""));
    assert_non_null(strstr(buf, "\"o\":null"));
    json_decref(root);
}

static void tmpdir_and_rmtree(void **state) {
    (void)state;
    char dir[512], p[600];
    assert_int_equal(core_tmpdir_make(dir, sizeof dir, "trail-report-test"), 0);
    assert_non_null(strstr(dir, "/trail-report-test-"));
    snprintf(p, sizeof p, "%s/a", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/a/f", dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(p, sizeof p, "%s/link", dir);
    assert_int_equal(symlink("/", p), 0); /* removed, not followed */
    assert_int_equal(core_rmtree(dir), 0);
    assert_int_equal(access(dir, F_OK), -1);
    assert_int_equal(core_rmtree(dir), -1); /* nothing there */
    setenv("TMPDIR", "/nonexistent-trail-dir", 1);
    assert_int_equal(core_tmpdir_make(dir, sizeof dir, "x"), -1);
    assert_non_null(strstr(dir, "/nonexistent-trail-dir/x-"));
    unsetenv("TMPDIR");
}

static void percentiles(void **state) {
    (void)state;
    int64_t ns[100];
    for (int i = 0; i < 100; i++)
        ns[i] = (int64_t)(100 - i) * 1000; /* 100..1 us, unsorted */
    core_pcts p = core_pcts_us(ns, 100);
    assert_true(p.p50 == 50.0);
    assert_true(p.p99 == 99.0);
    assert_true(ns[0] == 1000 && ns[99] == 100000);
    int64_t one = 2500;
    p = core_pcts_us(&one, 1);
    assert_true(p.p50 == 2.5 && p.p99 == 2.5);
    static char buf[256];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    core_report r;
    core_report_begin(&r, f, CORE_REPORT_JSON, NULL);
    core_report_pcts(&r, "sdim", (core_pcts){1.25, 99.0});
    core_report_pcts(&r, NULL, (core_pcts){2.0, NAN});
    core_report_end(&r);
    fclose(f);
    assert_string_equal(buf, "{\"sdim_p50_us\": 1.2, \"sdim_p99_us\": 99.0, \"p50_us\": 2.0, "
                             "\"p99_us\": null}\n");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_forms),  cmocka_unit_test(text_form),
        cmocka_unit_test(depth_limit), cmocka_unit_test(tmpdir_and_rmtree),
        cmocka_unit_test(percentiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
