/* test_core_addr: listen addresses as every command reads them: HOST:PORT, [IPv6]:PORT, :PORT;
 * a bare IPv6 address, a missing or out-of-range port and a host too long are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core_http.h"

static void addresses(void **state) {
    (void)state;
    char host[16], why[256];
    uint16_t port = 0;
    assert_int_equal(core_http_split_addr("127.0.0.1:8080", host, sizeof host, &port, why, 256), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_int_equal(core_http_split_addr("[::1]:9", host, sizeof host, &port, why, 256), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 9);
    assert_int_equal(core_http_split_addr(":0", host, sizeof host, &port, why, 256), 0);
    assert_string_equal(host, "");
    assert_int_equal(port, 0);
    assert_int_equal(core_http_split_addr("localhost:65535", host, sizeof host, &port, why, 256),
                     0);
    assert_int_equal(port, 65535);
    const char *bad[] = {"8080",    "::1:80",  "[::1:80",
                         "[]:80",   "host:",   "host:65536",
                         "host:-1", "host:8x", "a.very.long.host.name:1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        port = 7;
        why[0] = '\0';
        assert_int_equal(core_http_split_addr(bad[i], host, sizeof host, &port, why, 256), -1);
        assert_non_null(strstr(why, bad[i])); /* the message quotes what was given */
        assert_int_equal(port, 7);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(addresses)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
