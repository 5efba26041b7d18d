/* core_report.c: the report writer (JSON or text from the same calls) and the benches' helpers. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "core_report.h"

#include "core_json.h"
#include "core_util.h"

#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int is_json(const core_report *r) {
    return r->style != CORE_REPORT_TEXT;
}

static void indent(const core_report *r, int levels) {
    fprintf(r->f, "%*s", 2 * levels, "");
}

/* Start a field or element at the innermost level: separator, indentation and key. Returns 0 when
 * nothing is to be written (inside a container past the depth limit). */
static int field(core_report *r, const char *key) {
    if (r->skip) return 0;
    int L = r->depth - 1, first = r->n[L]++ == 0, in_obj = r->kind[L] == '{';
    if (is_json(r)) {
        if (!first) fputs(r->style == CORE_REPORT_JSON ? ", " : ",", r->f);
        if (r->style == CORE_REPORT_JSON_PRETTY) {
            fputc('\n', r->f);
            indent(r, r->depth);
        }
        if (in_obj) {
            core_json_str(r->f, key ? key : "");
            fputs(r->style == CORE_REPORT_JSON_TIGHT ? ":" : ": ", r->f);
        }
    } else if (r->line[L]) {
        if (!first) fputs("  ", r->f);
        if (in_obj && key) fprintf(r->f, "%s ", key);
    } else {
        indent(r, r->base + L);
        fputs(in_obj ? (key ? key : "") : "-", r->f); /* raw() adds the value's space */
    }
    return 1;
}

/* End a scalar field: a text line ends unless its level is inline. */
static void field_end(core_report *r) {
    if (!is_json(r) && !r->line[r->depth - 1]) fputc('\n', r->f);
}

void core_report_begin(core_report *r, FILE *f, core_report_style style, const char *title) {
    memset(r, 0, sizeof *r);
    r->f = f;
    r->style = style;
    r->depth = 1;
    r->kind[0] = '{';
    if (is_json(r)) {
        fputc('{', f);
    } else if (title) {
        fprintf(f, "%s\n", title);
        r->base = 1;
    }
}

void core_report_end(core_report *r) {
    while (r->depth > 1 || r->skip)
        core_report_close(r);
    if (is_json(r)) {
        if (r->style == CORE_REPORT_JSON_PRETTY && r->n[0]) fputc('\n', r->f);
        fputs("}\n", r->f);
    }
    fflush(r->f);
}

/* A scalar's text after field(): on a line of its own, a space separates it from its key. */
static void raw(core_report *r, const char *key, const char *text) {
    if (!field(r, key)) return;
    if (!is_json(r) && !r->line[r->depth - 1]) fputc(' ', r->f);
    fputs(text, r->f);
    field_end(r);
}

void core_report_u64(core_report *r, const char *key, uint64_t v) {
    char b[32];
    snprintf(b, sizeof b, "%llu", (unsigned long long)v);
    raw(r, key, b);
}

void core_report_i64(core_report *r, const char *key, int64_t v) {
    char b[32];
    snprintf(b, sizeof b, "%lld", (long long)v);
    raw(r, key, b);
}

void core_report_num(core_report *r, const char *key, const char *fmt, double v) {
    char b[64];
    if (!isfinite(v)) {
        core_report_null(r, key);
        return;
    }
    snprintf(b, sizeof b, fmt, v);
    raw(r, key, b);
}

void core_report_null(core_report *r, const char *key) {
    raw(r, key, is_json(r) ? "null" : "-");
}

void core_report_bool(core_report *r, const char *key, int v) {
    raw(r, key, v ? "true" : "false");
}

void core_report_str(core_report *r, const char *key, const char *s) {
    if (!s) {
        core_report_null(r, key);
    } else if (!is_json(r)) {
        raw(r, key, s);
    } else if (field(r, key)) {
        core_json_str(r->f, s);
    }
}

void core_report_strf(core_report *r, const char *key, const char *fmt, ...) {
    char b[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    core_report_str(r, key, b);
}

static void open_container(core_report *r, const char *key, char kind) {
    if (r->skip) {
        r->skip++;
        return;
    }
    if (r->depth == CORE_REPORT_DEPTH) {
        core_report_null(r, key);
        r->skip = 1;
        return;
    }
    int L = r->depth - 1;
    field(r, key);
    char line = 0;
    if (is_json(r)) {
        fputc(kind, r->f);
    } else if (r->line[L]) {
        fputc(kind, r->f); /* "key {" inside a line */
        line = 1;
    } else if (r->kind[L] == '[') {
        fputs(kind == '[' ? " [" : " ", r->f); /* "- " starts the element's line */
        line = 2;
    } else {
        fputc('\n', r->f); /* the key alone; the fields below it */
    }
    r->depth++;
    r->kind[L + 1] = kind;
    r->line[L + 1] = line;
    r->n[L + 1] = 0;
}

void core_report_obj(core_report *r, const char *key) {
    open_container(r, key, '{');
}

void core_report_arr(core_report *r, const char *key) {
    open_container(r, key, '[');
}

void core_report_close(core_report *r) {
    if (r->skip) {
        r->skip--;
        return;
    }
    if (r->depth <= 1) return;
    int L = r->depth - 1;
    char close = r->kind[L] == '{' ? '}' : ']';
    if (is_json(r)) {
        if (r->style == CORE_REPORT_JSON_PRETTY && r->n[L]) {
            fputc('\n', r->f);
            indent(r, L);
        }
        fputc(close, r->f);
    } else if (r->line[L] == 1) {
        fputc(close, r->f);
    } else if (r->line[L] == 2) {
        if (close == ']') fputc(']', r->f);
        fputc('\n', r->f);
    }
    r->depth--;
}

int core_tmpdir_make(char *dir, size_t cap, const char *name) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, cap, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
    return mkdtemp(dir) ? 0 : -1;
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    return (type == FTW_DP ? rmdir(path) : unlink(path)) ? -1 : 0;
}

int core_rmtree(const char *path) {
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) ? -1 : 0;
}

core_pcts core_pcts_us(int64_t *ns, size_t n) {
    qsort(ns, n, sizeof *ns, core_cmp_i64);
    return (core_pcts){core_pct_us(ns, n, 50), core_pct_us(ns, n, 99)};
}

void core_report_pcts(core_report *r, const char *name, core_pcts p) {
    char k[2][128];
    const char *sep = name && *name ? "_" : "";
    snprintf(k[0], sizeof k[0], "%s%sp50_us", name ? name : "", sep);
    snprintf(k[1], sizeof k[1], "%s%sp99_us", name ? name : "", sep);
    core_report_num(r, k[0], "%.1f", p.p50);
    core_report_num(r, k[1], "%.1f", p.p99);
}
