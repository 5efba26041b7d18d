/* test_sch_event.c: the event codecs accept the documented forms and reject bad input with a
 * reason that names the problem. */
#include "test_common.h"

#include "core_err.h"
#include "sch_event.h"

static int decode(const char *s, sch_event *ev, char *err) {
    return sch_event_from_json(ev, s, strlen(s), err, 256);
}

static void test_json_roundtrip(void **state) {
    (void)state;
    sch_event ev, back;
    char err[256], buf[400];
    assert_int_equal(decode("{\"user_id\":7,\"item_id\":2268318,\"category_id\":2520377,"
                            "\"action\":\"pv\",\"ts\":1511544070}",
                            &ev, err),
                     CORE_OK);
    assert_int_equal(ev.user_id, 7);
    assert_int_equal(ev.item_id, 2268318);
    assert_int_equal(ev.category_id, 2520377);
    assert_int_equal(ev.action, SCH_ACTION_CLICK);
    assert_int_equal(ev.ts, 1511544070);
    assert_int_equal(ev.flags, 0);
    ev.flags |= SCH_F_LABEL | SCH_F_PROB | SCH_F_REQUEST;
    ev.label = 1;
    ev.prob = 0.25f;
    ev.request_id = 99;
    int n = sch_event_to_json(&ev, buf, sizeof buf);
    assert_true(n > 0);
    assert_int_equal(decode(buf, &back, err), CORE_OK);
    assert_memory_equal(&ev, &back, sizeof ev);
}

static void test_binary_roundtrip_and_corruption(void **state) {
    (void)state;
    sch_event ev = {.user_id = 1,
                    .item_id = 2,
                    .category_id = 3,
                    .ts = 1500000000,
                    .action = SCH_ACTION_BUY,
                    .flags = SCH_F_LABEL,
                    .label = 1};
    sch_event back;
    uint8_t rec[SCH_BIN_RECORD_SIZE];
    char err[256];
    sch_event_to_bin(&ev, rec);
    assert_int_equal(sch_event_decode(&back, rec, sizeof rec, err, sizeof err), CORE_OK);
    assert_memory_equal(&ev, &back, sizeof ev);
    rec[20] ^= 1;
    assert_int_equal(sch_event_decode(&back, rec, sizeof rec, err, sizeof err), CORE_ECHECKSUM);
    rec[20] ^= 1;
    assert_int_equal(sch_event_decode(&back, rec, sizeof rec - 1, err, sizeof err), CORE_EFORMAT);
    rec[1] = 9;
    assert_int_equal(sch_event_decode(&back, rec, sizeof rec, err, sizeof err), CORE_EVERSION);
}

static void test_json_rejects(void **state) {
    (void)state;
    static const struct {
        const char *in;
        int rc;
        const char *needle;
    } cases[] = {
        {"{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":\"click\"", CORE_EFORMAT,
         "invalid JSON"},
        {"{\"user_id\":\"1\",\"item_id\":2,\"category_id\":3,\"action\":\"click\",\"ts\":5}",
         CORE_EFORMAT, "user_id"},
        {"{\"user_id\":1,\"item_id\":2.5,\"category_id\":3,\"action\":\"click\",\"ts\":5}",
         CORE_EFORMAT, "item_id"},
        {"{\"user_id\":-1,\"item_id\":2,\"category_id\":3,\"action\":\"click\",\"ts\":5}",
         CORE_ERANGE, "user_id"},
        {"{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":\"click\",\"ts\":99999999999}",
         CORE_ERANGE, "ts"},
        {"{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":\"poke\",\"ts\":5}",
         CORE_ERANGE, "action"},
        {"{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"ts\":5}", CORE_EFORMAT,
         "missing field 'action'"},
        {"{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":\"click\",\"ts\":5,\"color\":"
         "1}",
         CORE_EFORMAT, "unknown field 'color'"},
        {"{\"user_id\":1,\"user_id\":2,\"item_id\":2,\"category_id\":3,\"action\":\"click\",\"ts\":"
         "5}",
         CORE_EFORMAT, "duplicate"},
        {"{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":\"cl\xff\",\"ts\":5}",
         CORE_EFORMAT, "UTF-8"},
        {"[1,2]", CORE_EFORMAT, "object"},
        {"{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":\"click\",\"ts\":5,\"label\":"
         "2}",
         CORE_ERANGE, "label"},
        {"{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":\"click\",\"ts\":5,\"prob\":1."
         "5}",
         CORE_ERANGE, "prob"},
        {"{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":\"click\",\"ts\":5,\"v\":2}",
         CORE_EVERSION, "version"},
        {"{\"user_id\":99999999999999999999,\"item_id\":2,\"category_id\":3,\"action\":\"click\","
         "\"ts\":5}",
         CORE_EFORMAT, "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sch_event ev;
        char err[256] = "";
        int rc = decode(cases[i].in, &ev, err);
        if (rc != cases[i].rc || !strstr(err, cases[i].needle))
            fail_msg("case %zu: rc %d err '%s', expected rc %d mentioning '%s'", i, rc, err,
                     cases[i].rc, cases[i].needle);
    }
    /* an over-long event is refused before parsing */
    size_t n = SCH_MAX_JSON_BYTES + 10;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    big[n] = 0;
    sch_event ev;
    char err[256];
    assert_int_equal(sch_event_from_json(&ev, big, n, err, sizeof err), CORE_ETOOBIG);
    free(big);
}

static void test_reader_lines_and_long_lines(void **state) {
    (void)state;
    char dir[256], path[300], err[256];
    assert_non_null(test_mkdtemp(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/ev.jsonl", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"a\":1}\r\n\n", f);
    for (int i = 0; i < 5000; i++)
        fputc('x', f);
    fputs("\nlast", f);
    fclose(f);
    sch_reader *r;
    const char *rec;
    size_t n;
    uint64_t recno;
    assert_int_equal(sch_reader_open(&r, path, 1024, err, sizeof err), CORE_OK);
    assert_false(sch_reader_is_binary(r));
    assert_int_equal(sch_reader_next(r, &rec, &n, &recno), 1);
    assert_int_equal(n, 7);
    assert_int_equal(recno, 1);
    assert_int_equal(sch_reader_next(r, &rec, &n, &recno), CORE_ETOOBIG);
    assert_int_equal(recno, 3);
    uint64_t off = sch_reader_offset(r);
    assert_int_equal(sch_reader_next(r, &rec, &n, &recno), 1);
    assert_int_equal(n, 4);
    assert_memory_equal(rec, "last", 4);
    assert_int_equal(sch_reader_next(r, &rec, &n, &recno), 0);
    assert_int_equal(sch_reader_seek(r, off, 3), CORE_OK);
    assert_int_equal(sch_reader_next(r, &rec, &n, &recno), 1);
    assert_int_equal(recno, 4);
    sch_reader_close(r);

    /* binary file with a truncated tail */
    sch_writer *w;
    sch_event ev = {.user_id = 1, .item_id = 2, .category_id = 3, .ts = 10, .action = 1};
    assert_int_equal(sch_writer_open(&w, path, 1, err, sizeof err), CORE_OK);
    assert_int_equal(sch_writer_put(w, &ev), CORE_OK);
    assert_int_equal(sch_writer_close(w), CORE_OK);
    f = fopen(path, "ab");
    fputc(SCH_BIN_MAGIC, f);
    fclose(f);
    assert_int_equal(sch_reader_open(&r, path, 1024, err, sizeof err), CORE_OK);
    assert_true(sch_reader_is_binary(r));
    assert_int_equal(sch_reader_next(r, &rec, &n, &recno), 1);
    sch_event back;
    assert_int_equal(sch_event_decode(&back, rec, n, err, sizeof err), CORE_OK);
    assert_int_equal(back.item_id, 2);
    assert_int_equal(sch_reader_next(r, &rec, &n, &recno), CORE_EFORMAT);
    sch_reader_close(r);
    test_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_roundtrip),
        cmocka_unit_test(test_binary_roundtrip_and_corruption),
        cmocka_unit_test(test_json_rejects),
        cmocka_unit_test(test_reader_lines_and_long_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
