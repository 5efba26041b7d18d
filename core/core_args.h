/* core_args.h: strict parsing of command-line numbers (the whole string must be a number in range).
 * core_opts parses every option with these; a caller with a value of its own (a HOST:PORT's
 * port) uses them too. */
#ifndef TRAIL_CORE_ARGS_H
#define TRAIL_CORE_ARGS_H

#include <stddef.h>
#include <stdint.h>

/** @brief Parse s as a number in [min, max]; on failure the reason ("'x' is not an integer in
 *  [1, 9]") goes to why and nothing is printed. @return CORE_OK or CORE_EINVAL. */
int core_scan_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *why, size_t n);
int core_scan_i64(const char *s, int64_t min, int64_t max, int64_t *out, char *why, size_t n);
int core_scan_double(const char *s, double min, double max, double *out, char *why, size_t n);
/** @brief A size with an optional K/M/G/T suffix (powers of 1024). */
int core_scan_size(const char *s, uint64_t *out, char *why, size_t n);

#endif
