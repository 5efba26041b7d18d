/* core_opts.h: a command's options as a table, and the one parser that reads argv against it.
 *
 * A command is a core_cmd (its name, one-line summary, entry point); its options are a core_opt
 * array ended by {0}, each naming the long option, its type and bounds, where the value goes and a
 * help line. core_opts_parse() then gives every command the same behavior:
 *   - names are matched exactly: `--mod` is not `--model` (the error says which it may mean);
 *   - `--name value` and `--name=value` are the same; a flag takes no value;
 *   - a value that starts with "--" is taken as a missing value (write `--name=--x` if meant);
 *   - an option given twice is a usage error, unless it is CORE_OPT_MULTI (each one is applied);
 *   - `--help` (or `-h`) anywhere prints the help to stdout, and the command exits 0; the defaults
 *     shown are the destinations' values before parsing;
 *   - a usage error prints one line to stderr, "trail CMD: --flag: reason; see 'trail CMD --help'",
 *     and the command exits 2.
 * The destination's current value is the default: set defaults before parsing. */
#ifndef TRAIL_CORE_OPTS_H
#define TRAIL_CORE_OPTS_H

#include "core_log.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum core_opt_type {
    CORE_OPT_END = 0, /* ends a table */
    CORE_OPT_FLAG,    /* no value: the int is set to 1 */
    CORE_OPT_U32,     /* uint32_t in [umin, umax] */
    CORE_OPT_U64,     /* uint64_t in [umin, umax] */
    CORE_OPT_SIZE,    /* uint64_t bytes, with an optional K/M/G/T suffix */
    CORE_OPT_INT,     /* int in [imin, imax] */
    CORE_OPT_I64,     /* int64_t in [imin, imax] */
    CORE_OPT_DOUBLE,  /* double in [dmin, dmax], finite */
    CORE_OPT_FLOAT,   /* float in [dmin, dmax], finite */
    CORE_OPT_STRING,  /* const char *: the argument as given */
    CORE_OPT_PATH,    /* const char *: a non-empty path */
    CORE_OPT_ENUM,    /* int: the value's index in choices (NULL-terminated) */
    CORE_OPT_FUNC,    /* fn(value, dst, err, err_size) parses; nonzero and a reason refuse it */
    CORE_OPT_ARG,     /* a positional argument (const char *), matched in table order */
    CORE_OPT_TABLE,   /* the options of sub, whose entries store at dst + their off; a row of
                         the command's listed before it overrides the shared row of its name */
} core_opt_type;

enum {
    CORE_OPT_REQUIRED = 1u, /* a usage error when absent */
    CORE_OPT_MULTI = 2u,    /* may be given more than once; each value is applied in order */
    CORE_OPT_NODEF = 4u,    /* help shows no default */
};

typedef int (*core_opt_fn)(const char *value, void *dst, char *err, size_t err_size);

typedef struct core_opt {
    const char *name; /* long name without the dashes ("model"); a positional's name in help */
    core_opt_type type;
    void *dst;        /* where the value goes; NULL in a shared table (see off) */
    const char *arg;  /* the value's name in help ("M", "FILE"); NULL: "X" */
    const char *help; /* one line; '\n' continues it on the next line */
    unsigned flags;   /* CORE_OPT_* */
    uint64_t umin, umax;
    int64_t imin, imax;
    double dmin, dmax;
    const char *const *choices; /* CORE_OPT_ENUM */
    core_opt_fn fn;             /* CORE_OPT_FUNC */
    const char *def;            /* the default as help shows it, when the value cannot say */
    int *seen;                  /* set to 1 when the option is given */
    size_t off;                 /* in a shared table: the offset into the including entry's dst */
    const struct core_opt *sub; /* CORE_OPT_TABLE */
    char short_name;            /* also accepted as -c VALUE or -cVALUE */
} core_opt;

/* Table rows: CORE_OPT_ROW names the first fields (for a row with more, in braces); the others are
 * whole rows of the common types. */
#define CORE_OPT_ROW(n, t, d, a, h) .name = (n), .type = (t), .dst = (d), .arg = (a), .help = (h)
#define CORE_OPT_U32(n, d, a, lo, hi, h)                                                           \
    { CORE_OPT_ROW(n, CORE_OPT_U32, d, a, h), .umin = (lo), .umax = (hi) }
#define CORE_OPT_U64(n, d, a, lo, hi, h)                                                           \
    { CORE_OPT_ROW(n, CORE_OPT_U64, d, a, h), .umin = (lo), .umax = (hi) }
#define CORE_OPT_I64(n, d, a, lo, hi, h)                                                           \
    { CORE_OPT_ROW(n, CORE_OPT_I64, d, a, h), .imin = (lo), .imax = (hi) }
#define CORE_OPT_DBL(n, d, a, lo, hi, h)                                                           \
    { CORE_OPT_ROW(n, CORE_OPT_DOUBLE, d, a, h), .dmin = (lo), .dmax = (hi) }
#define CORE_OPT_FLT(n, d, a, lo, hi, h)                                                           \
    { CORE_OPT_ROW(n, CORE_OPT_FLOAT, d, a, h), .dmin = (lo), .dmax = (hi) }
#define CORE_OPT_BOOL(n, d, h)                                                                     \
    { CORE_OPT_ROW(n, CORE_OPT_INT, d, "0|1", h), .imin = 0, .imax = 1 }
#define CORE_OPT_FLG(n, d, h)                                                                      \
    { CORE_OPT_ROW(n, CORE_OPT_FLAG, d, NULL, h) }
#define CORE_OPT_JSON(d) CORE_OPT_FLG("json", d, "print one JSON object")
#define CORE_OPT_STR(n, d, a, h)                                                                   \
    { CORE_OPT_ROW(n, CORE_OPT_STRING, d, a, h) }
#define CORE_OPT_FILE(n, d, a, h)                                                                  \
    { CORE_OPT_ROW(n, CORE_OPT_PATH, d, a, h) }
#define CORE_OPT_NEED(n, d, a, h)                                                                  \
    { CORE_OPT_ROW(n, CORE_OPT_PATH, d, a, h), .flags = CORE_OPT_REQUIRED }
/* --log-level L into core_log_level */
#define CORE_OPT_LOG_LEVEL                                                                         \
    {                                                                                              \
        CORE_OPT_ROW("log-level", CORE_OPT_FUNC, NULL, "L", "error, warn, notice, info or debug"), \
            .fn = core_log_level_opt, .def = "info"                                                \
    }
#define CORE_OPT_INCLUDE(table, d)                                                                 \
    { .type = CORE_OPT_TABLE, .dst = (d), .sub = (table) }
#define CORE_OPT_ENDROW                                                                            \
    { .name = NULL }

typedef struct core_cmd {
    const char *name;    /* "model init" */
    const char *summary; /* one line, for `trail --help` */
    int (*run)(int argc, char **argv);
    const char *more;         /* help text after the options, or NULL */
    void (*more_fn)(FILE *f); /* help text that is computed, after more; or NULL */
} core_cmd;

#define CORE_OPTS_GO (-1)

/** @brief Parse argv[1..argc-1] against opts for cmd.
 *  @return CORE_OPTS_GO to go on; else the exit code: 0 after printing the help, 2 after a usage
 *  error (one line on stderr). */
int core_opts_parse(const core_cmd *cmd, const core_opt *opts, int argc, char **argv);

/** @brief Print cmd's help, generated from opts, to f. */
void core_opts_help(const core_cmd *cmd, const core_opt *opts, FILE *f);

/** @brief A usage error the table cannot see (options that conflict, ...): prints
 *  "trail CMD: <message>; see 'trail CMD --help'" to stderr. @return 2, the exit code. */
int core_cmd_usage(const core_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
