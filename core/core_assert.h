/* core_assert.h: an always-on assertion for programmer errors (never for bad input). */
#ifndef TRAIL_CORE_ASSERT_H
#define TRAIL_CORE_ASSERT_H

#include <stdio.h>
#include <stdlib.h>

#define CORE_ASSERT(x)                                                                             \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #x);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
