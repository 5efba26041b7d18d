/* test_core_alloc: core_grow keeps the contents, doubles, and leaves the array whole when the
 * allocation fails or the size would overflow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core_alloc.h"

static void grow_keeps_and_doubles(void **state) {
    (void)state;
    uint64_t *a = NULL;
    size_t cap = 0, n = 0, changes = 0;
    for (uint64_t i = 0; i < 10000; i++) {
        size_t before = cap;
        assert_int_equal(core_grow(&a, &cap, n + 1, sizeof *a, 16), 0);
        changes += cap != before;
        assert_true(cap >= n + 1);
        a[n++] = i * 7;
    }
    assert_int_equal(changes, 11); /* 16, 32, ..., 16384 */
    assert_int_equal(cap, 16384);
    for (uint64_t i = 0; i < n; i++)
        assert_int_equal(a[i], i * 7);
    size_t before = cap;
    assert_int_equal(core_grow(&a, &cap, 100, sizeof *a, 16), 0); /* room already: no change */
    assert_int_equal(cap, before);
    assert_int_equal(core_grow(&a, &cap, 100000, sizeof *a, 16), 0); /* doubles past need */
    assert_int_equal(cap, 131072);
    core_free(a);
}

static void grow_failure_keeps_the_array(void **state) {
    (void)state;
    int *a = NULL;
    size_t cap = 0;
    assert_int_equal(core_grow(&a, &cap, 3, sizeof *a, 4), 0);
    assert_int_equal(cap, 4);
    a[0] = 11, a[3] = 44;
    int *was = a;
    core_alloc_fail_after(0, 0);
    assert_int_equal(core_grow(&a, &cap, 5, sizeof *a, 4), -1);
    assert_ptr_equal(a, was);
    assert_int_equal(cap, 4);
    assert_int_equal(a[0] + a[3], 55);
    assert_int_equal(core_grow(&a, &cap, SIZE_MAX / 2, sizeof *a, 4), -1); /* bytes overflow */
    assert_ptr_equal(a, was);
    assert_int_equal(cap, 4);
    assert_int_equal(core_grow(&a, &cap, 1, 0, 4), 0); /* room already, whatever elem */
    core_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(grow_keeps_and_doubles),
                                       cmocka_unit_test(grow_failure_keeps_the_array)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
