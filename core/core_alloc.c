/* core_alloc.c: malloc wrappers with an injectable failure point (SQLite faultsim style). */
#include "core_alloc.h"

#include <stdint.h>
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

int core_grow(void *pp, size_t *cap, size_t need, size_t elem, size_t first) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : (first ? first : 1);
    while (c < need)
        c = c > SIZE_MAX / 2 ? need : c * 2;
    if (!elem || c > SIZE_MAX / elem) return -1;
    void *old, *p;
    memcpy(&old, pp, sizeof old); /* pp points at a T*, not necessarily a void* */
    if (!(p = core_realloc(old, c * elem))) return -1;
    memcpy(pp, &p, sizeof p);
    *cap = c;
    return 0;
}
