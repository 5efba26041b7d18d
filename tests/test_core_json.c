/* test_core_json: JSON string bodies from any bytes: escapes, UTF-8 kept or escaped byte by byte,
 * a buffer's cut never inside an escape or a character, and jansson reads back every random byte
 * string as the text it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core_json.h"

static void escape_is(const char *in, const char *want) {
    char out[256];
    assert_int_equal(core_json_escape(out, sizeof out, in), strlen(want));
    assert_string_equal(out, want);
    char *mem = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&mem, &len);
    core_json_str(f, in);
    fclose(f);
    assert_int_equal(len, strlen(want) + 2);
    assert_memory_equal(mem + 1, want, strlen(want));
    free(mem);
}

static void escapes(void **state) {
    (void)state;
    escape_is("plain", "plain");
    escape_is("q\"b\\", "q\\\"b\\\\");
    escape_is("a\nb\x01\x7f\t", "a\\nb\\u0001\\u007f\\t");
    escape_is("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
              "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    escape_is("\xff", "\\u00ff");                                  /* never UTF-8 */
    escape_is("\xc3", "\\u00c3");                                  /* a lead byte alone */
    escape_is("\xc0\xaf", "\\u00c0\\u00af");                       /* overlong '/' */
    escape_is("\xed\xa0\x80", "\\u00ed\\u00a0\\u0080");            /* a surrogate */
    escape_is("\xf4\x90\x80\x80", "\\u00f4\\u0090\\u0080\\u0080"); /* above U+10FFFF */
}

static void escape_cuts_whole(void **state) {
    (void)state;
    char out[16];
    /* "ab" then a 3-byte character: with 4 bytes of room (3 + NUL) it does not fit */
    assert_int_equal(core_json_escape(out, 5, "ab\xe2\x82\xac"), 2);
    assert_string_equal(out, "ab");
    assert_int_equal(core_json_escape(out, 6, "ab\xe2\x82\xac"), 5);
    assert_int_equal(core_json_escape(out, 7, "a\x01"), 1); /* \u0001 needs 6 + NUL */
    assert_string_equal(out, "a");
    assert_int_equal(core_json_escape(out, 8, "a\x01"), 7);
    assert_int_equal(core_json_escape(out, 1, "abc"), 0);
    assert_string_equal(out, "");
    assert_int_equal(core_utf8_cut("ab\xe2\x82\xac", 5, 3), 2); /* not inside the euro sign */
    assert_int_equal(core_utf8_cut("ab\xe2\x82\xac", 5, 5), 5);
    assert_int_equal(core_utf8_cut("abc\x80\x80", 5, 4), 4); /* no character there: cut stays */
}

static void random_bytes_read_back(void **state) {
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    static const char pick[] = "a\"\\\x01\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xff";
    char in[41], out[41 * 6 + 3], quoted[sizeof out + 2];
    for (int t = 0; t < 5000; t++) {
        size_t n = t % 40 + 1;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            in[i] = t & 1 ? (char)(x & 0xff) : pick[x % 14];
            if (!in[i]) in[i] = 'z';
        }
        in[n] = '\0';
        size_t cap = t % 3 ? sizeof out - 2 : (size_t)(t % 29) + 1; /* whole, or cut */
        size_t w = core_json_escape(out, cap, in);
        assert_true(w < cap);
        snprintf(quoted, sizeof quoted, "\"%s\"", out);
        json_error_t err;
        json_t *j = json_loads(quoted, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        assert_non_null(j);
        const char *back = json_string_value(j);
        if (cap == sizeof out - 2) { /* whole: every byte reads back, as itself or as Latin-1 */
            size_t k = 0;
            for (size_t i = 0; i < n;) {
                size_t len = (unsigned char)in[i] >= 0x80
                                 ? core_utf8_char((const unsigned char *)in + i, n - i)
                                 : 1;
                if (len) {
                    assert_memory_equal(back + k, in + i, len);
                    k += len, i += len;
                } else { /* U+0080..U+00FF in UTF-8 */
                    unsigned char c = (unsigned char)in[i++];
                    assert_int_equal((unsigned char)back[k], 0xc0 | (c >> 6));
                    assert_int_equal((unsigned char)back[k + 1], 0x80 | (c & 0x3f));
                    k += 2;
                }
            }
            assert_int_equal(json_string_length(j), k);
        }
        json_decref(j);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(escapes),
                                       cmocka_unit_test(escape_cuts_whole),
                                       cmocka_unit_test(random_bytes_read_back)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
