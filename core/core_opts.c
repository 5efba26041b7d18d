/* core_opts.c: argv against a command's option table; the help generated from the same table. */
#include "core_opts.h"

#include "core_args.h"
#include "core_err.h"

#include <stdarg.h>
#include <string.h>

#define MAX_OPTS 128  /* options of one command, shared tables included */
#define HELP_COL 24   /* where the help text starts */
#define HELP_WIDTH 96 /* a help line's default and bounds go below it rather than past this */

/* An option and the base its shared table stores at. */
typedef struct flat {
    const core_opt *o;
    char *base;
} flat;

static int flatten(const core_opt *opts, char *base, flat *f, int n) {
    for (const core_opt *o = opts; o && o->type != CORE_OPT_END; o++) {
        int shadowed = 0; /* a row listed before overrides a shared row of the same name */
        for (int k = 0; k < n && base && o->name && !shadowed; k++)
            shadowed = !strcmp(f[k].o->name, o->name);
        if (o->type == CORE_OPT_TABLE)
            n = flatten(o->sub, o->dst, f, n);
        else if (n < MAX_OPTS && !shadowed)
            f[n++] = (flat){o, base};
    }
    return n;
}

static void *dest(const flat *f) {
    char *b = f->o->dst ? (char *)f->o->dst : f->base;
    return b ? b + f->o->off : NULL;
}

static int takes_value(const core_opt *o) {
    return o->type != CORE_OPT_FLAG && o->type != CORE_OPT_ARG;
}

static int vusage(const core_cmd *cmd, const char *fmt, va_list ap) {
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    fprintf(stderr, "trail %s: %s; see 'trail %s --help'\n", cmd->name, msg, cmd->name);
    return 2;
}

int core_cmd_usage(const core_cmd *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vusage(cmd, fmt, ap);
    va_end(ap);
    return rc;
}

/* the option named by arg: "--name", "--name=value" or "-c"/"-cVALUE"; -1 when none */
static int find(const flat *f, int n, const char *arg) {
    if (arg[0] != '-' || !arg[1]) return -1;
    if (arg[1] != '-') {
        for (int k = 0; k < n; k++)
            if (f[k].o->short_name && f[k].o->short_name == arg[1]) return k;
        return -1;
    }
    const char *name = arg + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    for (int k = 0; k < n; k++)
        if (f[k].o->type != CORE_OPT_ARG && strlen(f[k].o->name) == len &&
            !memcmp(f[k].o->name, name, len))
            return k;
    return -1;
}

static int is_option_word(const char *a) {
    return a[0] == '-' && a[1] == '-' && a[2];
}

static int unknown(const core_cmd *cmd, const flat *f, int n, const char *arg) {
    char like[256] = "";
    size_t len = strcspn(arg, "="), used = 0;
    int hits = 0;
    if (arg[1] == '-' && len > 2)
        for (int k = 0; k < n && used < sizeof like - 40; k++)
            if (f[k].o->type != CORE_OPT_ARG && !strncmp(f[k].o->name, arg + 2, len - 2))
                used += (size_t)snprintf(like + used, sizeof like - used, "%s--%s",
                                         hits++ ? " or " : "", f[k].o->name);
    if (hits)
        return core_cmd_usage(cmd,
                              "unknown option '%.*s' (did you mean %s? names are not "
                              "abbreviated)",
                              (int)len, arg, like);
    return core_cmd_usage(cmd, "unknown option '%.*s'", (int)len, arg);
}

static int set_value(const core_opt *o, void *d, const char *v, char *why, size_t n) {
    uint64_t u;
    int64_t s;
    double x;
    switch (o->type) {
    case CORE_OPT_U32:
        if (core_scan_u64(v, o->umin, o->umax, &u, why, n)) return 1;
        *(uint32_t *)d = (uint32_t)u;
        return 0;
    case CORE_OPT_U64:
        return core_scan_u64(v, o->umin, o->umax, d, why, n) != 0;
    case CORE_OPT_SIZE:
        if (core_scan_size(v, &u, why, n)) return 1;
        if (o->umax && (u < o->umin || u > o->umax)) {
            snprintf(why, n, "'%s' is not a size in [%llu, %llu] bytes", v,
                     (unsigned long long)o->umin, (unsigned long long)o->umax);
            return 1;
        }
        *(uint64_t *)d = u;
        return 0;
    case CORE_OPT_INT:
        if (core_scan_i64(v, o->imin, o->imax, &s, why, n)) return 1;
        *(int *)d = (int)s;
        return 0;
    case CORE_OPT_I64:
        return core_scan_i64(v, o->imin, o->imax, d, why, n) != 0;
    case CORE_OPT_DOUBLE:
        return core_scan_double(v, o->dmin, o->dmax, d, why, n) != 0;
    case CORE_OPT_FLOAT:
        if (core_scan_double(v, o->dmin, o->dmax, &x, why, n)) return 1;
        *(float *)d = (float)x;
        return 0;
    case CORE_OPT_PATH:
        if (!*v) {
            snprintf(why, n, "an empty path");
            return 1;
        }
        /* fall through */
    case CORE_OPT_STRING:
        *(const char **)d = v;
        return 0;
    case CORE_OPT_ENUM: {
        size_t used = (size_t)snprintf(why, n, "'%s' is not one of", v);
        for (int i = 0; o->choices[i]; i++) {
            if (!strcmp(v, o->choices[i])) {
                *(int *)d = i;
                return 0;
            }
            if (used < n)
                used +=
                    (size_t)snprintf(why + used, n - used, "%s %s", i ? "," : "", o->choices[i]);
        }
        return 1;
    }
    case CORE_OPT_FUNC:
        return o->fn(v, d, why, n) != 0;
    default:
        snprintf(why, n, "option type %d has no value", (int)o->type);
        return 1;
    }
}

/* --help anywhere an option may stand (not as another option's value) */
static int wants_help(const flat *f, int n, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return 1;
        int k = find(f, n, a);
        int inline_value = a[1] == '-' ? strchr(a, '=') != NULL : a[1] && a[2];
        if (k >= 0 && takes_value(f[k].o) && !inline_value && i + 1 < argc &&
            !is_option_word(argv[i + 1]))
            i++;
    }
    return 0;
}

int core_opts_parse(const core_cmd *cmd, const core_opt *opts, int argc, char **argv) {
    flat f[MAX_OPTS];
    unsigned char given[MAX_OPTS] = {0};
    int n = flatten(opts, NULL, f, 0), npos = 0;
    char why[512], label[80];
    if (wants_help(f, n, argc, argv)) {
        core_opts_help(cmd, opts, stdout);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        int k;
        if (a[0] != '-' || !a[1]) { /* a positional: the next CORE_OPT_ARG */
            int seen = 0;
            for (k = 0; k < n; k++)
                if (f[k].o->type == CORE_OPT_ARG && seen++ == npos) break;
            if (k == n) return core_cmd_usage(cmd, "unexpected argument '%s'", a);
            npos++;
            given[k] = 1;
            *(const char **)dest(&f[k]) = a;
            continue;
        }
        if ((k = find(f, n, a)) < 0) return unknown(cmd, f, n, a);
        const core_opt *o = f[k].o;
        if (a[1] == '-') {
            snprintf(label, sizeof label, "--%s", o->name);
            if (strchr(a, '=')) val = strchr(a, '=') + 1;
        } else {
            snprintf(label, sizeof label, "-%c", o->short_name);
            if (a[2]) val = a + 2;
        }
        if (given[k] && !(o->flags & CORE_OPT_MULTI))
            return core_cmd_usage(cmd, "%s: given twice", label);
        given[k] = 1;
        if (o->seen) *o->seen = 1;
        if (o->type == CORE_OPT_FLAG) {
            if (val) return core_cmd_usage(cmd, "%s: takes no value", label);
            *(int *)dest(&f[k]) = 1;
            continue;
        }
        if (!val) {
            if (i + 1 >= argc || is_option_word(argv[i + 1]))
                return core_cmd_usage(cmd, "%s: missing value", label);
            val = argv[++i];
        }
        if (set_value(o, dest(&f[k]), val, why, sizeof why))
            return core_cmd_usage(cmd, "%s: %s", label, why);
    }
    for (int k = 0; k < n; k++) {
        if (!(f[k].o->flags & CORE_OPT_REQUIRED) || given[k]) continue;
        if (f[k].o->type == CORE_OPT_ARG)
            return core_cmd_usage(cmd, "missing argument %s", f[k].o->name);
        return core_cmd_usage(cmd, "--%s is required", f[k].o->name);
    }
    return CORE_OPTS_GO;
}

// ---------------------------------------------------------------------------------------------

static const char *arg_name(const core_opt *o) {
    return o->arg ? o->arg : "X";
}

/* the default as help shows it; 0 when there is none to show */
static int default_str(const flat *f, char *b, size_t n) {
    const core_opt *o = f->o;
    const void *d = dest(f);
    if (o->flags & (CORE_OPT_NODEF | CORE_OPT_REQUIRED)) return 0;
    if (o->def) return snprintf(b, n, "%s", o->def) > 0;
    if (!d) return 0;
    switch (o->type) {
    case CORE_OPT_U32:
        return snprintf(b, n, "%u", *(const uint32_t *)d);
    case CORE_OPT_U64:
        return snprintf(b, n, "%llu", *(const unsigned long long *)d);
    case CORE_OPT_SIZE: {
        unsigned long long v = *(const unsigned long long *)d;
        int k = 0;
        while (k < 4 && v && !(v & 1023))
            v >>= 10, k++; /* 1073741824 -> 1G */
        return snprintf(b, n, "%llu%s", v, k ? (const char *[]){"", "K", "M", "G", "T"}[k] : "");
    }
    case CORE_OPT_INT:
        return snprintf(b, n, "%d", *(const int *)d);
    case CORE_OPT_I64:
        return snprintf(b, n, "%lld", *(const long long *)d);
    case CORE_OPT_DOUBLE:
        return snprintf(b, n, "%g", *(const double *)d);
    case CORE_OPT_FLOAT:
        return snprintf(b, n, "%g", *(const float *)d);
    case CORE_OPT_STRING:
    case CORE_OPT_PATH: {
        const char *v = *(const char *const *)d;
        return v ? snprintf(b, n, "%s", v) : 0;
    }
    case CORE_OPT_ENUM:
        return snprintf(b, n, "%s", o->choices[*(const int *)d]);
    default:
        return 0;
    }
}

/* the bounds as help shows them, when they say more than the type does */
static int bounds_str(const core_opt *o, char *b, size_t n) {
    if (o->arg && !strcmp(o->arg, "0|1")) return 0;
    switch (o->type) {
    case CORE_OPT_U32:
        if (o->umin == 0 && o->umax >= UINT32_MAX) return 0;
        /* fall through */
    case CORE_OPT_U64:
        if (o->umin == 0 && o->umax == UINT64_MAX) return 0;
        return snprintf(b, n, "%llu..%llu", (unsigned long long)o->umin,
                        (unsigned long long)o->umax);
    case CORE_OPT_INT:
    case CORE_OPT_I64:
        if (o->imin == INT64_MIN && o->imax == INT64_MAX) return 0;
        return snprintf(b, n, "%lld..%lld", (long long)o->imin, (long long)o->imax);
    case CORE_OPT_DOUBLE:
    case CORE_OPT_FLOAT:
        return snprintf(b, n, "%g..%g", o->dmin, o->dmax);
    default:
        return 0;
    }
}

static void help_line(const flat *fl, FILE *f) {
    const core_opt *o = fl->o;
    char left[96], def[128] = "", bounds[64] = "", tail[224] = "";
    int len;
    int flag = o->type == CORE_OPT_FLAG;
    if (o->type == CORE_OPT_ARG) {
        len = snprintf(left, sizeof left, "  %s", o->name);
    } else {
        char sh[8] = "", an[64];
        if (o->short_name) snprintf(sh, sizeof sh, "-%c, ", o->short_name);
        snprintf(an, sizeof an, "%s", arg_name(o));
        for (int i = 0; o->type == CORE_OPT_ENUM && !o->arg && o->choices[i]; i++) /* a|b|c */
            snprintf(an + strlen(an) * (i > 0), sizeof an - strlen(an) * (i > 0), "%s%s",
                     i ? "|" : "", o->choices[i]);
        len = snprintf(left, sizeof left, "  %s--%s%s%s", sh, o->name, flag ? "" : " ",
                       flag ? "" : an);
    }
    int has_def = default_str(fl, def, sizeof def) > 0;
    int has_bounds = bounds_str(o, bounds, sizeof bounds) > 0;
    if (o->flags & CORE_OPT_REQUIRED)
        snprintf(tail, sizeof tail, " (required)");
    else if (has_def || has_bounds)
        snprintf(tail, sizeof tail, " (%s%s%s%s)", has_def ? "default " : "", def,
                 has_def && has_bounds ? "; " : "", bounds);
    if (len >= HELP_COL - 1)
        fprintf(f, "%s\n%*s", left, HELP_COL, "");
    else
        fprintf(f, "%-*s", HELP_COL, left);
    const char *h = o->help ? o->help : "";
    for (const char *nl; (nl = strchr(h, '\n')); h = nl + 1)
        fprintf(f, "%.*s\n%*s", (int)(nl - h), h, HELP_COL, "");
    if (HELP_COL + strlen(h) + strlen(tail) > HELP_WIDTH) /* the tail on a line of its own */
        fprintf(f, "%s\n%*s%s\n", h, HELP_COL, "", tail + 1);
    else
        fprintf(f, "%s%s\n", h, tail);
}

void core_opts_help(const core_cmd *cmd, const core_opt *opts, FILE *f) {
    flat fl[MAX_OPTS];
    int n = flatten(opts, NULL, fl, 0), optional = 0;
    fprintf(f, "usage: trail %s", cmd->name);
    for (int k = 0; k < n; k++) {
        const core_opt *o = fl[k].o;
        if (o->type == CORE_OPT_ARG) continue;
        if (o->flags & CORE_OPT_REQUIRED)
            fprintf(f, " --%s %s", o->name, arg_name(o));
        else
            optional = 1;
    }
    if (optional) fprintf(f, " [options]");
    for (int k = 0; k < n; k++)
        if (fl[k].o->type == CORE_OPT_ARG)
            fprintf(f, (fl[k].o->flags & CORE_OPT_REQUIRED) ? " %s" : " [%s]", fl[k].o->name);
    fprintf(f, "\n%s\n\n", cmd->summary);
    for (int k = 0; k < n; k++)
        help_line(&fl[k], f);
    fprintf(f, "%-*s%s\n", HELP_COL, "  --help", "print this help and exit");
    if (cmd->more && *cmd->more)
        fprintf(f, "\n%s%s", cmd->more, cmd->more[strlen(cmd->more) - 1] == '\n' ? "" : "\n");
    if (cmd->more_fn) {
        if (!cmd->more) fprintf(f, "\n");
        cmd->more_fn(f);
    }
}
