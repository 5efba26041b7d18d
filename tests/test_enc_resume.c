/* test_enc_resume.c: a file input's identity on resume (issue 14, item 5). The store keeps, with
 * the position it has applied a file to, the hash of the file's bytes before that position; a
 * resumed run continues after an append, and refuses, leaving the state as it was, a file that was
 * truncated or whose applied bytes were replaced (even with the same length). */
#include "test_common.h"

static char dir[256];

static void sh(const char *fmt, const char *a) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, fmt, a, a, a, a);
    assert_int_equal(system(cmd), 0);
}

static int encode(char *out, size_t cap) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s encode --model %s/m --store %s/s --input %s/in.jsonl 2>&1",
             test_trail_bin(), dir, dir, dir);
    return test_run(cmd, out, cap);
}

static void digest(char *out, size_t cap) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s inspect --store %s/s --digest", test_trail_bin(), dir);
    assert_int_equal(test_run(cmd, out, cap), 0);
}

static void test_resume_identity(void **state) {
    (void)state;
    char out[8192], d0[512], d1[512], cmd[2048];
    assert_non_null(test_mkdtemp(dir, sizeof dir));
    snprintf(cmd, sizeof cmd,
             "%s gen --users 20 --items 200 --events 4000 --seed 1 --out %s/ev.jsonl 2>/dev/null "
             "&& %s model init --out %s/m >/dev/null",
             test_trail_bin(), dir, test_trail_bin(), dir);
    assert_int_equal(system(cmd), 0);
    sh("head -2000 %s/ev.jsonl > %s/in.jsonl", dir);
    assert_int_equal(encode(out, sizeof out), 0);
    /* appended: the first 2000 are skipped, the next 1000 applied */
    sh("sed -n '2001,3000p' %s/ev.jsonl >> %s/in.jsonl", dir);
    assert_int_equal(encode(out, sizeof out), 0);
    assert_non_null(strstr(out, "2000 skipped"));
    digest(d0, sizeof d0);
    /* truncated below the applied position: refused, state unchanged */
    sh("head -100 %s/ev.jsonl > %s/in.jsonl", dir);
    assert_int_equal(encode(out, sizeof out), 1);
    assert_non_null(strstr(out, "replaced or truncated"));
    digest(d1, sizeof d1);
    assert_string_equal(d0, d1);
    /* the applied bytes replaced by others of the same length (one digit of the first record),
     * with more records after them: refused by the hash, state unchanged */
    sh("head -3000 %s/ev.jsonl > %s/in.jsonl && sed -n '3001,4000p' %s/ev.jsonl >> %s/in.jsonl",
       dir);
    char p[600];
    snprintf(p, sizeof p, "%s/in.jsonl", dir);
    FILE *f = fopen(p, "r+b"); /* one digit of the first record's item id, in place */
    assert_non_null(f);
    char head[64];
    assert_int_equal(fread(head, 1, sizeof head, f), sizeof head);
    char *dig = strstr(head, "\"item_id\":");
    assert_non_null(dig);
    dig += 10;
    long at = (long)(dig - head);
    char c = *dig == '1' ? '2' : '1';
    assert_int_equal(fseek(f, at, SEEK_SET), 0);
    assert_int_equal(fwrite(&c, 1, 1, f), 1);
    fclose(f);
    assert_int_equal(encode(out, sizeof out), 1);
    assert_non_null(strstr(out, "hash differs"));
    digest(d1, sizeof d1);
    assert_string_equal(d0, d1);
    /* restored: the same bytes again, and the new records after them are applied */
    sh("head -3000 %s/ev.jsonl > %s/in.jsonl && sed -n '3001,4000p' %s/ev.jsonl >> %s/in.jsonl",
       dir);
    assert_int_equal(encode(out, sizeof out), 0);
    assert_non_null(strstr(out, "3000 skipped"));
    test_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_resume_identity)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
