/* core_args.c: strict number parsing for the command line. */
#include "core_args.h"

#include "core_err.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int core_scan_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *why, size_t n) {
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-') goto bad;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max) goto bad;
    *out = v;
    return CORE_OK;
bad:
    snprintf(why, n, "'%s' is not an integer in [%llu, %llu]", s ? s : "", (unsigned long long)min,
             (unsigned long long)max);
    return CORE_EINVAL;
}

int core_scan_i64(const char *s, int64_t min, int64_t max, int64_t *out, char *why, size_t n) {
    char *end;
    errno = 0;
    if (!s || !*s) goto bad;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max) goto bad;
    *out = v;
    return CORE_OK;
bad:
    snprintf(why, n, "'%s' is not an integer in [%lld, %lld]", s ? s : "", (long long)min,
             (long long)max);
    return CORE_EINVAL;
}

int core_scan_double(const char *s, double min, double max, double *out, char *why, size_t n) {
    char *end;
    errno = 0;
    if (!s || !*s) goto bad;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < min || v > max) goto bad;
    *out = v;
    return CORE_OK;
bad:
    snprintf(why, n, "'%s' is not a number in [%g, %g]", s ? s : "", min, max);
    return CORE_EINVAL;
}

int core_scan_size(const char *s, uint64_t *out, char *why, size_t n) {
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-') goto bad;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) goto bad; /* digits first: "K" alone is not a size */
    const char *units = "KMGT", *u = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
    int shift = u ? 10 * (int)(u - units + 1) : 0; /* K: 2^10 ... T: 2^40 */
    if (*end && !u) goto bad;
    end += u != NULL;
    if (*end || (shift && v > (~0ull >> shift))) goto bad;
    *out = v << shift;
    return CORE_OK;
bad:
    snprintf(why, n, "'%s' is not a size (bytes, or a number with K, M, G or T)", s ? s : "");
    return CORE_EINVAL;
}
