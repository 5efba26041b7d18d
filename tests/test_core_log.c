/* test_core_log: level names for --log-level, and the journal's priority prefixes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core_log.h"

static void level_names(void **state) {
    (void)state;
    char err[128];
    int lv = -1;
    assert_int_equal(core_log_level_parse("debug", &lv, err, sizeof err), 0);
    assert_int_equal(lv, CORE_LOG_DEBUG);
    assert_int_equal(core_log_level_parse("WARN", &lv, err, sizeof err), 0);
    assert_int_equal(lv, CORE_LOG_WARNING);
    assert_int_equal(core_log_level_parse("error", &lv, err, sizeof err), 0);
    assert_int_equal(lv, CORE_LOG_ERR);
    assert_int_equal(core_log_level_parse("5", &lv, err, sizeof err), 0);
    assert_int_equal(lv, CORE_LOG_NOTICE);
    lv = -1;
    assert_int_equal(core_log_level_parse("verbose", &lv, err, sizeof err), -1);
    assert_int_equal(lv, -1);
    assert_non_null(strstr(err, "'verbose'"));
    assert_int_equal(core_log_level_parse("8", &lv, err, sizeof err), -1);
    assert_int_equal(core_log_level_parse("", &lv, err, sizeof err), -1);
}

/* stderr redirected to a file: with journal prefixes the line is "<4>msg", otherwise it carries a
 * timestamp and the level's name */
static void read_stderr_line(void (*emit)(void), char *buf, size_t n) {
    char path[] = "/tmp/trail-log-XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    assert_true(fd >= 0 && saved >= 0);
    fflush(stderr);
    dup2(fd, 2);
    emit();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, (int)n, f));
    fclose(f);
    close(fd);
    unlink(path);
}

static void emit_warning(void) {
    CORE_LOG(CORE_LOG_WARNING, "test: hello n=%d", 7);
}

static void journal_prefix(void **state) {
    (void)state;
    char line[256];
    core_log_set_journal(1);
    read_stderr_line(emit_warning, line, sizeof line);
    assert_string_equal(line, "<4>test: hello n=7\n");
    core_log_set_journal(0);
    read_stderr_line(emit_warning, line, sizeof line);
    assert_non_null(strstr(line, "Z WARN test: hello n=7"));
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(level_names),
                                       cmocka_unit_test(journal_prefix)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
