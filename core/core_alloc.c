/* core_alloc.c: malloc wrappers with an injectable failure point (SQLite faultsim style). */
#include "core_alloc.h"

#include <stdlib.h>
#include <string.h>

static long fail_countdown = -1; /* -1: never fail */
static int fail_persistent;

static int should_fail(void) {
    if (fail_countdown < 0) return 0;
    if (fail_countdown == 0) {
        if (!fail_persistent) fail_countdown = -1;
        return 1;
    }
    fail_countdown--;
    return 0;
}

void core_alloc_fail_after(long n, int persistent) {
    fail_countdown = n;
    fail_persistent = persistent;
}

void *core_malloc(size_t n) {
    return should_fail() ? NULL : malloc(n ? n : 1);
}

void *core_calloc(size_t count, size_t size) {
    return should_fail() ? NULL : calloc(count ? count : 1, size ? size : 1);
}

void *core_realloc(void *p, size_t n) {
    return should_fail() ? NULL : realloc(p, n ? n : 1);
}

void *core_aligned_alloc(size_t n) {
    void *p = NULL;
    if (should_fail()) return NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) return NULL;
    return p;
}

char *core_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = core_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void core_free(void *p) {
    free(p);
}
