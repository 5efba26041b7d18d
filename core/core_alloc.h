/* core_alloc.h: the one allocation wrapper, with fault injection for tests.
 *
 * Every allocation in the project goes through these, so a test can make the Nth one fail
 * (core_alloc_fail_after) and check that each error path cleans up.
 */
#ifndef TRAIL_CORE_ALLOC_H
#define TRAIL_CORE_ALLOC_H

#include <stddef.h>

void *core_malloc(size_t n);
void *core_calloc(size_t count, size_t size);
void *core_realloc(void *p, size_t n);
/** @brief 64-byte aligned allocation (SIMD and cache lines); free with core_free. */
void *core_aligned_alloc(size_t n);
char *core_strdup(const char *s);
/** @brief NULL-safe free. */
void core_free(void *p);

/** @brief Room for at least need elements of elem bytes in the array *pp (a pointer to the array's
 *  pointer) whose capacity is *cap elements: the capacity doubles from first (or from *cap), so n
 *  appends cost O(n) copies. On failure *pp and *cap are unchanged and the array stays valid.
 *  @return 0, or -1 when the allocation fails or need * elem would overflow. */
int core_grow(void *pp, size_t *cap, size_t need, size_t elem, size_t first);

/** @brief Fail the allocation that comes after n more successful ones (n = 0: the next one).
 *  @param persistent 0: only that one fails; 1: it and every later one fail.
 *  @remark Tests only; process-wide, not thread-safe with concurrent allocation. -1 disables. */
void core_alloc_fail_after(long n, int persistent);

#endif
