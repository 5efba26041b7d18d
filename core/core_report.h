/* core_report.h: one output layer for benches and --json commands, and the small helpers benches
 * share (a temporary directory, latency percentiles).
 *
 * A report is written field by field; the same calls give either one JSON object or readable text,
 * so a command writes its fields once:
 *
 *     core_report r;
 *     core_report_begin(&r, stdout, json ? CORE_REPORT_JSON : CORE_REPORT_TEXT, "bench x");
 *     core_report_u64(&r, "candidates", B);
 *     core_report_num(&r, "p50_us", "%.1f", p50);      // NaN or inf: null (text: -)
 *     core_report_str(&r, "isa", name);                // escaped; NULL: null
 *     core_report_obj(&r, "paths");                    // "paths": {
 *     core_report_obj(&r, "avx2");                     //   "avx2": {
 *     core_report_num(&r, "p50_us", "%.1f", x);
 *     core_report_close(&r);                           //   }
 *     core_report_close(&r);                           // }
 *     core_report_arr(&r, "runs");                     // "runs": [
 *     core_report_obj(&r, NULL);                       // an element: key NULL inside an array
 *     ...
 *     core_report_end(&r);                             // closes whatever is open, then '\n'
 *
 * JSON forms: CORE_REPORT_JSON writes one line, {"a": 1, "b": {"c": 2}}; CORE_REPORT_JSON_TIGHT
 * the same without spaces, {"a":1,"b":{"c":2}}; CORE_REPORT_JSON_PRETTY one field per line,
 * indented by two spaces a level. Field order is call order; names are written as given.
 * Text form: the title on its own line, then one "key value" line per field, indented two spaces
 * per level; an object or array opens with its key alone on a line. An object inside an array is
 * one line, "- key value  key value ...", and containers inside it are written inline as
 * "key {...}" / "key [...]".
 * Nesting is limited to CORE_REPORT_DEPTH levels; deeper containers are written as null.
 * Output errors are the stream's (check ferror(f) if it matters). */
#ifndef TRAIL_CORE_REPORT_H
#define TRAIL_CORE_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum core_report_style {
    CORE_REPORT_TEXT = 0,
    CORE_REPORT_JSON,
    CORE_REPORT_JSON_TIGHT,
    CORE_REPORT_JSON_PRETTY,
} core_report_style;

#define CORE_REPORT_DEPTH 16

typedef struct core_report {
    FILE *f;
    core_report_style style;
    int depth;                    /* open containers, the top object included */
    int base;                     /* text: indent of the top level's fields (0 without a title) */
    char kind[CORE_REPORT_DEPTH]; /* '{' or '[' per level */
    char
        line[CORE_REPORT_DEPTH]; /* text: 1 if the level is written inline, 2 if it starts a line */
    unsigned n[CORE_REPORT_DEPTH]; /* fields written so far at each level */
    int skip;                      /* containers opened past CORE_REPORT_DEPTH */
} core_report;

/** @brief Start a report on f: JSON opens the top object; text prints title (if not NULL) on a
 *  line. */
void core_report_begin(core_report *r, FILE *f, core_report_style style, const char *title);
/** @brief Close every open container and end the line. */
void core_report_end(core_report *r);

/* Fields: key names the field inside an object; inside an array key is ignored (pass NULL). */
void core_report_u64(core_report *r, const char *key, uint64_t v);
void core_report_i64(core_report *r, const char *key, int64_t v);
/** @brief A number written with fmt (one double conversion: "%.1f", "%.3g"); null if not finite. */
void core_report_num(core_report *r, const char *key, const char *fmt, double v);
void core_report_str(core_report *r, const char *key, const char *s);
/** @brief A string value formatted with printf's rules (up to 4 KiB). */
void core_report_strf(core_report *r, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void core_report_bool(core_report *r, const char *key, int v);
void core_report_null(core_report *r, const char *key);
/** @brief Open an object or an array as the next field; core_report_close ends it. */
void core_report_obj(core_report *r, const char *key);
void core_report_arr(core_report *r, const char *key);
void core_report_close(core_report *r);

/* ---- helpers the benches share ---- */

/** @brief Create a fresh directory "$TMPDIR/NAME-XXXXXX" ($TMPDIR unset or empty: /tmp) into
 *  dir. @return 0, or -1 with errno set (dir then holds the template tried). */
int core_tmpdir_make(char *dir, size_t cap, const char *name);
/** @brief Remove path and everything under it (links are removed, not followed).
 *  @return 0, or -1 if something could not be removed. */
int core_rmtree(const char *path);

/* The median and 99th percentile of a set of latencies, in microseconds. */
typedef struct core_pcts {
    double p50, p99;
} core_pcts;

/** @brief Sort n >= 1 nanosecond samples in place; their nearest-rank p50 and p99 in us. */
core_pcts core_pcts_us(int64_t *ns, size_t n);
/** @brief Two fields, "<name>_p50_us" and "<name>_p99_us" ("p50_us", "p99_us" when name is NULL
 *  or ""), each "%.1f". */
void core_report_pcts(core_report *r, const char *name, core_pcts p);

#endif
