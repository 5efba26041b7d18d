/* test_serve_request.c: the /v1/score body parser: good bodies, every malformed class with the
 * kind, field and position it reports, limits, allocation failures, and a replay of the fuzz
 * corpus (so the ASan tree runs every seed through the parser). */
#include "test_common.h"

#include "core_alloc.h"
#include "core_err.h"
#include "rank_request.h"

#include <dirent.h>

static rank_request *rq;
static rank_req_error pe;

static int setup(void **state) {
    (void)state;
    return rank_request_new(&rq, 3, 4);
}

static int teardown(void **state) {
    (void)state;
    rank_request_destroy(rq);
    return 0;
}

static int parse(const char *s) {
    return rank_request_parse(rq, s, strlen(s), &pe);
}

static void test_good(void **state) {
    (void)state;
    assert_int_equal(
        parse("{\"user_id\": 1, \"ts\": 1512000000, \"candidates\": [{\"item_id\": 5, "
              "\"category_id\": 7}, {\"category_id\": 9, \"item_id\": 9223372036854775807}]}"),
        CORE_OK);
    assert_int_equal(rq->user_id, 1);
    assert_true(rq->has_ts);
    assert_int_equal(rq->ts, 1512000000);
    assert_int_equal(rq->B, 2);
    assert_int_equal(rq->item_id[0], 5);
    assert_int_equal(rq->category_id[0], 7);
    assert_int_equal(rq->item_id[1], 9223372036854775807ull);
    assert_int_equal(rq->category_id[1], 9);
    assert_false(rq->has_dense);

    // order of fields is free, whitespace anywhere, escapes in names, v, dense, -0
    assert_int_equal(parse(" \r\n{\"candidates\":[],\t\"dense\" : [0.5, -1e-3, 2, -0],\"v\":1,"
                           "\"user\\u005fid\":-0 }\n"),
                     CORE_OK);
    assert_int_equal(rq->user_id, 0);
    assert_false(rq->has_ts);
    assert_int_equal(rq->B, 0);
    assert_true(rq->has_dense);
    assert_int_equal(rq->n_dense, 4);
    assert_true(rq->dense[0] == 0.5f && rq->dense[1] == -1e-3f && rq->dense[2] == 2.f);
    // a parse resets what the previous one left
    assert_int_equal(parse("{\"user_id\":2,\"candidates\":[{\"item_id\":1,\"category_id\":2}]}"),
                     CORE_OK);
    assert_false(rq->has_dense);
    assert_int_equal(rq->B, 1);
}

typedef struct bad_case {
    const char *body;
    int rc;
    const char *kind;
    const char *field; /* NULL: not checked */
    const char *in_message;
} bad_case;

static const bad_case bad[] = {
    // malformed JSON
    {"", CORE_EFORMAT, "bad_json", "", "empty body"},
    {"   ", CORE_EFORMAT, "bad_json", "", "empty body"},
    {"{", CORE_EFORMAT, "bad_json", "", "quoted field name"},
    {"{\"user_id\":1,", CORE_EFORMAT, "bad_json", "", "quoted field name"},
    {"{\"user_id\" 1}", CORE_EFORMAT, "bad_json", "", "':'"},
    {"{\"user_id\":1 \"candidates\":[]}", CORE_EFORMAT, "bad_json", "", "',' or '}'"},
    {"{\"user_id\":1,\"candidates\":[]} x", CORE_EFORMAT, "bad_json", "", "after the JSON object"},
    {"{\"user_id\":1,\"candidates\":[]}{}", CORE_EFORMAT, "bad_json", "", "after the JSON object"},
    {"{\"user_id\":01,\"candidates\":[]}", CORE_EFORMAT, "bad_json", "", "',' or '}'"},
    {"{\"user_id\":1.,\"candidates\":[]}", CORE_EFORMAT, "bad_json", "user_id", "malformed number"},
    {"{\"user_id\":-,\"candidates\":[]}", CORE_EFORMAT, "bad_json", "user_id", "malformed number"},
    {"{\"user_id\":1,\"candidates\":[{\"item_id\":1,\"category_id\":2},]}", CORE_EFORMAT,
     "bad_json", "candidates[1]", "expected an object"},
    {"{\"user\xff\":1}", CORE_EFORMAT, "bad_json", "", "UTF-8"},
    {"{\"user\xc0\xaf\":1}", CORE_EFORMAT, "bad_json", "", "UTF-8"},
    {"{\"us\ter\":1}", CORE_EFORMAT, "bad_json", "", "control character"},
    {"{\"us\\qer\":1}", CORE_EFORMAT, "bad_json", "", "unknown escape"},
    {"{\"us\\u12\":1}", CORE_EFORMAT, "bad_json", "", "\\u escape"},
    {"{\"us\\ud800x\":1}", CORE_EFORMAT, "bad_json", "", "surrogate"},
    {"{\"us\\udc00\":1}", CORE_EFORMAT, "bad_json", "", "surrogate"},
    {"{\"user_id", CORE_EFORMAT, "bad_json", "", "unterminated string"},
    {"{\"user_id\":1,\"candidates\":[{\"item_id\":1,\"category_id\":2}", CORE_EFORMAT, "bad_json",
     "candidates", "unexpected end"},
    // wrong types
    {"[1,2]", CORE_EFORMAT, "bad_type", "", "expected a JSON object, got an array"},
    {"{\"user_id\":\"1\",\"candidates\":[]}", CORE_EFORMAT, "bad_type", "user_id", "got a string"},
    {"{\"user_id\":1.5,\"candidates\":[]}", CORE_EFORMAT, "bad_type", "user_id", "got a fraction"},
    {"{\"user_id\":1e3,\"candidates\":[]}", CORE_EFORMAT, "bad_type", "user_id", "got a fraction"},
    {"{\"user_id\":true,\"candidates\":[]}", CORE_EFORMAT, "bad_type", "user_id", "got a boolean"},
    {"{\"user_id\":1,\"ts\":null,\"candidates\":[]}", CORE_EFORMAT, "bad_type", "ts", "got null"},
    {"{\"user_id\":1,\"candidates\":{}}", CORE_EFORMAT, "bad_type", "candidates",
     "expected an array"},
    {"{\"user_id\":1,\"candidates\":[5]}", CORE_EFORMAT, "bad_type", "candidates[0]",
     "got a number"},
    {"{\"user_id\":1,\"candidates\":[{\"item_id\":\"5\",\"category_id\":7}]}", CORE_EFORMAT,
     "bad_type", "candidates[0].item_id", "got a string"},
    {"{\"user_id\":1,\"candidates\":[],\"dense\":[\"a\"]}", CORE_EFORMAT, "bad_type", "dense[0]",
     "expected a number"},
    {"{\"user_id\":1,\"candidates\":[],\"dense\":3}", CORE_EFORMAT, "bad_type", "dense", "array"},
    // missing fields
    {"{}", CORE_EFORMAT, "missing_field", "user_id", "user_id is missing"},
    {"{\"user_id\":1}", CORE_EFORMAT, "missing_field", "candidates", "candidates is missing"},
    {"{\"user_id\":1,\"candidates\":[{\"item_id\":1}]}", CORE_EFORMAT, "missing_field",
     "candidates[0].category_id", "missing"},
    {"{\"user_id\":1,\"candidates\":[{}]}", CORE_EFORMAT, "missing_field", "candidates[0].item_id",
     "missing"},
    // unknown and duplicate fields
    {"{\"user_id\":1,\"candidates\":[],\"userid\":2}", CORE_EFORMAT, "unknown_field", "userid",
     "\"userid\""},
    {"{\"user_id\":1,\"candidates\":[{\"item_id\":1,\"category_id\":2,\"score\":1}]}", CORE_EFORMAT,
     "unknown_field", "candidates[0]", "\"score\""},
    {"{\"a_very_long_field_name_that_is_longer_than_the_key_buffer\":1}", CORE_EFORMAT,
     "unknown_field", NULL, "overlong"},
    {"{\"user_id\\u0000\":1}", CORE_EFORMAT, "unknown_field", NULL, "with NUL"},
    {"{\"user_id\":1,\"user_id\":2,\"candidates\":[]}", CORE_EFORMAT, "duplicate_field", "user_id",
     "twice"},
    {"{\"user_id\":1,\"candidates\":[{\"item_id\":1,\"item_id\":1,\"category_id\":2}]}",
     CORE_EFORMAT, "duplicate_field", "candidates[0].item_id", "twice"},
    // out of range
    {"{\"user_id\":-1,\"candidates\":[]}", CORE_ERANGE, "bad_value", "user_id", "out of range"},
    {"{\"user_id\":9223372036854775808,\"candidates\":[]}", CORE_ERANGE, "bad_value", "user_id",
     "out of range"},
    {"{\"user_id\":99999999999999999999999999,\"candidates\":[]}", CORE_ERANGE, "bad_value",
     "user_id", "out of range"},
    {"{\"user_id\":1,\"ts\":4102444801,\"candidates\":[]}", CORE_ERANGE, "bad_value", "ts",
     "out of range"},
    {"{\"user_id\":1,\"candidates\":[],\"dense\":[1e39]}", CORE_ERANGE, "bad_value", "dense[0]",
     "float"},
    {"{\"v\":2,\"user_id\":1,\"candidates\":[]}", CORE_ERANGE, "bad_version", "v", "not supported"},
    // limits (the fixture holds 3 candidates and 4 dense values)
    {"{\"user_id\":1,\"candidates\":[{\"item_id\":1,\"category_id\":1},{\"item_id\":2,\"category_"
     "id\":1},"
     "{\"item_id\":3,\"category_id\":1},{\"item_id\":4,\"category_id\":1}]}",
     CORE_ETOOBIG, "too_many_candidates", "candidates", "limit of 3"},
    {"{\"user_id\":1,\"candidates\":[],\"dense\":[1,2,3,4,5]}", CORE_ETOOBIG, "too_many_dense",
     "dense", "limit of 4"},
};

static void test_bad(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const bad_case *c = &bad[i];
        int rc = parse(c->body);
        if (rc != c->rc || strcmp(pe.kind, c->kind) != 0 ||
            (c->field && strcmp(pe.field, c->field) != 0) || !strstr(pe.message, c->in_message) ||
            pe.offset > strlen(c->body)) {
            fail_msg("case %zu %s: rc %d kind %s field '%s' message '%s' offset %zu", i, c->body,
                     rc, pe.kind, pe.field, pe.message, pe.offset);
        }
    }
}

static void test_position(void **state) {
    (void)state;
    const char *body =
        "{\"user_id\": 1,\n \"candidates\": [\n  {\"item_id\": 5, \"category_id\": 7},\n"
        "  {\"item_id\": \"x\", \"category_id\": 7}]}";
    assert_int_equal(parse(body), CORE_EFORMAT);
    assert_string_equal(pe.field, "candidates[1].item_id");
    assert_int_equal(pe.line, 4);
    assert_int_equal(pe.col, 15);
    assert_int_equal(pe.offset, (size_t)(strstr(body, "\"x\"") - body));
}

static void test_no_nul_needed(void **state) {
    (void)state;
    // the parser reads exactly n bytes: a valid prefix of a longer buffer parses
    const char *s = "{\"user_id\":7,\"candidates\":[]}garbage";
    assert_int_equal(rank_request_parse(rq, s, 29, &pe), CORE_OK);
    assert_int_equal(rq->user_id, 7);
    // and a cut in the middle of a number is caught as the end of the body
    assert_int_equal(rank_request_parse(rq, s, 11, &pe), CORE_EFORMAT);
}

static void test_new_alloc_failures(void **state) {
    (void)state;
    rank_request *r = NULL;
    assert_int_equal(rank_request_new(&r, 1, RANK_REQ_MAX_DENSE + 1), CORE_EINVAL);
    TEST_ALLOC_SWEEP(1, rank_request_new(&r, 10, 10), (void)0, {
        assert_true(sweep_n >= 4);
        rank_request_destroy(r);
    });
}

static void test_candidate_line(void **state) {
    (void)state;
    uint64_t item = 0, cat = 0;
    static const struct {
        const char *line;
        uint64_t item, cat;
    } good[] = {
        {"5,7\n", 5, 7},
        {"  5 , 7 \r", 5, 7},
        {"  {\"category_id\": 9, \"item_id\": 6}\r\n", 6, 9},
        {"9223372036854775807,0", 9223372036854775807ull, 0},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (rank_candidate_line_parse(good[i].line, strlen(good[i].line), &item, &cat, &pe))
            fail_msg("line '%s': %s", good[i].line, pe.message);
        assert_true(item == good[i].item && cat == good[i].cat);
    }
    static const struct {
        const char *line;
        const char *kind, *field;
    } bad_lines[] = {
        {"5", "bad_json", ""},
        {"5,", "bad_json", "category_id"},
        {"5,7,9", "bad_json", ""},
        {"5;7", "bad_json", ""},
        {"-5,7", "bad_value", "item_id"},
        {"5,1.5", "bad_type", "category_id"},
        {"\"5\",7", "bad_type", "item_id"},
        {"{\"item_id\":5}", "missing_field", "candidate.category_id"},
        {"{\"item_id\":5,\"category_id\":7,\"x\":1}", "unknown_field", "candidate"},
        {"{\"item_id\":5,\"category_id\":7} 3", "bad_json", ""},
        {"9223372036854775808,0", "bad_value", "item_id"},
        {"{\"item_id\": 1, \"item_id\": 2}", "duplicate_field", "candidate.item_id"},
        {"{\"item_id\": 1, \"category_id\": 2", "bad_json", "candidate"},
        {"{\"item_id\": 1.5, \"category_id\": 2}", "bad_type", "candidate.item_id"},
    };
    for (size_t i = 0; i < sizeof bad_lines / sizeof bad_lines[0]; i++) {
        int rc = rank_candidate_line_parse(bad_lines[i].line, strlen(bad_lines[i].line), &item,
                                           &cat, &pe);
        if (rc == CORE_OK || strcmp(pe.kind, bad_lines[i].kind) ||
            strcmp(pe.field, bad_lines[i].field))
            fail_msg("line '%s': rc %d kind %s field '%s' (%s)", bad_lines[i].line, rc, pe.kind,
                     pe.field, pe.message);
    }
}

/* Every seed of the fuzz corpus goes through the parser; the invariants the fuzz target checks. */
static void test_corpus(void **state) {
    (void)state;
    const char *src = getenv("TRAIL_SRC");
    char dir[4096], path[4600];
    static char buf[1 << 16];
    snprintf(dir, sizeof dir, "%s/tests/fuzz_corpus", src ? src : "..");
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n_files = 0, n_ok = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        int rc = rank_request_parse(rq, buf, n, &pe);
        if (rc == CORE_OK) {
            n_ok++;
            assert_true(rq->B <= rq->max_B && rq->n_dense <= rq->max_dense);
        } else {
            assert_non_null(pe.kind);
            assert_true(pe.offset <= n);
        }
        n_files++;
    }
    closedir(d);
    assert_true(n_files >= 10);
    assert_true(n_ok >= 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_position),
        cmocka_unit_test(test_no_nul_needed),
        cmocka_unit_test(test_new_alloc_failures),
        cmocka_unit_test(test_candidate_line),
        cmocka_unit_test(test_corpus),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
