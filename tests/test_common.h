/* test_common.h: cmocka needs these headers first, in this order; plus small test helpers. */
#ifndef TRAIL_TEST_COMMON_H
#define TRAIL_TEST_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* The allocation-failure sweep (core_alloc.h's fault injection): run `call` with allocation n
 * failing (and every later one too when `persistent`), for n = 0, 1, ... until it succeeds. Every
 * run before that must fail with CORE_ENOMEM, after which `on_fail` runs (check that nothing was
 * left behind); then `on_ok` runs once (free what the call made). `sweep_n`, the failing
 * allocation's index, is in scope in both. */
#define TEST_ALLOC_SWEEP(persistent, call, on_fail, on_ok)                                         \
    for (long sweep_n = 0;; sweep_n++) {                                                           \
        core_alloc_fail_after(sweep_n, (persistent));                                              \
        int sweep_rc_ = (call);                                                                    \
        core_alloc_fail_after(-1, 0);                                                              \
        if (sweep_rc_ == CORE_OK) {                                                                \
            on_ok;                                                                                 \
            break;                                                                                 \
        }                                                                                          \
        assert_int_equal(sweep_rc_, CORE_ENOMEM);                                                  \
        on_fail;                                                                                   \
    }

/* A fresh directory under $TMPDIR (or /tmp); the caller removes it with test_rmtree. */
static inline char *test_mkdtemp(char *buf, size_t cap) {
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, cap, "%s/trail-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(buf);
}

static inline void test_rmtree(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* Run a shell command: its stdout into out (NUL-terminated; NULL discards it), its exit code
 * returned (-1 if it did not exit normally). */
static inline int test_run(const char *cmd, char *out, size_t cap) {
    FILE *p = popen(cmd, "r");
    size_t n = 0;
    if (!p) return -1;
    if (out) {
        n = fread(out, 1, cap - 1, p);
        out[n] = 0;
    } else {
        char buf[4096];
        while (fread(buf, 1, sizeof buf, p) > 0) {
        }
    }
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A whole file, NUL-terminated, in a malloc'd buffer (the caller frees it); its length into *n
 * when n is not NULL. NULL if it cannot be opened. */
static inline char *test_slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    size_t got = buf ? fread(buf, 1, (size_t)len, f) : 0;
    if (buf) buf[got] = 0;
    fclose(f);
    if (n) *n = got;
    return buf;
}

/* Path of the trail binary (set by ctest), for tests that run the CLI. */
static inline const char *test_trail_bin(void) {
    const char *b = getenv("TRAIL_BIN");
    return b ? b : "./trail";
}

#endif
