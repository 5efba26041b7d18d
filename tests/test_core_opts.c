/* test_core_opts: the declarative option parser: each type and its bounds, missing values, unknown
 * and abbreviated names, repeats, required options, positionals, shared tables, and the help. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "core_opts.h"

static int run_noop(int argc, char **argv) {
    (void)argc, (void)argv;
    return 0;
}

static const core_cmd demo = {"demo sub", "a command to test the parser", run_noop,
                              "Trailing text.\n", NULL};

typedef struct shared {
    uint32_t width;
    int mode;
} shared;

static const char *const modes[] = {"fast", "exact", NULL};

static const core_opt shared_opts[] = {
    {CORE_OPT_ROW("width", CORE_OPT_U32, NULL, "W", "a shared width"), .umin = 2, .umax = 1024,
     .off = offsetof(shared, width)},
    {CORE_OPT_ROW("mode", CORE_OPT_ENUM, NULL, NULL, "how"), .choices = modes,
     .off = offsetof(shared, mode)},
    CORE_OPT_ENDROW};

static int parse_pair(const char *v, void *dst, char *err, size_t n) {
    unsigned a, b;
    char extra;
    if (sscanf(v, "%u,%u%c", &a, &b, &extra) != 2) {
        snprintf(err, n, "'%s' is not A,B", v);
        return 1;
    }
    ((unsigned *)dst)[0] = a, ((unsigned *)dst)[1] = b;
    return 0;
}

static int add_one(const char *v, void *dst, char *err, size_t n) {
    (void)v, (void)err, (void)n;
    ++*(int *)dst;
    return 0;
}

/* the values one parse fills; reset to the defaults before each */
typedef struct vals {
    int json, count, strict, nx, seen_model;
    uint32_t n32;
    uint64_t n64, bytes;
    int64_t off;
    double lr;
    float clip;
    const char *model, *name, *input;
    unsigned pair[2];
    shared sh;
} vals;

static vals v;

static void defaults(void) {
    memset(&v, 0, sizeof v);
    v.n32 = 50, v.n64 = 7, v.lr = 1e-3, v.clip = 5, v.strict = 1, v.name = "anon";
    v.pair[0] = 200, v.pair[1] = 80, v.sh.width = 64, v.sh.mode = 1;
}

static const core_opt opts[] = {
    CORE_OPT_NEED("model", &v.model, "M", "the model"),
    CORE_OPT_FLG("json", &v.json, "print JSON"),
    CORE_OPT_U32("recent", &v.n32, "N", 1, 1024, "recent behaviors"),
    CORE_OPT_U64("events", &v.n64, "E", 0, UINT64_MAX, "events"),
    {CORE_OPT_ROW("cache", CORE_OPT_SIZE, &v.bytes, "BYTES", "cache size"), .umin = 1024,
     .umax = 1ull << 40},
    CORE_OPT_I64("offset", &v.off, "S", -100, 100, "an offset"),
    CORE_OPT_DBL("lr", &v.lr, "X", 0, 10, "learning rate"),
    CORE_OPT_FLT("clip", &v.clip, "X", 0, 1e6, "clip\nsecond line"),
    CORE_OPT_BOOL("strict", &v.strict, "refuse doubtful input"),
    CORE_OPT_STR("name", &v.name, "S", "a name"),
    {CORE_OPT_ROW("hidden", CORE_OPT_FUNC, v.pair, "H1,H2", "widths"), .fn = parse_pair,
     .def = "200,80"},
    {CORE_OPT_ROW("x", CORE_OPT_FUNC, &v.nx, "K=V", "repeatable"), .fn = add_one,
     .flags = CORE_OPT_MULTI, .short_name = 'X'},
    {CORE_OPT_ROW("input", CORE_OPT_ARG, &v.input, NULL, "the input file")},
    {.type = CORE_OPT_TABLE, .dst = &v.sh, .sub = shared_opts},
    CORE_OPT_ENDROW};

/* parse argv (NULL-terminated, after the command name) with stdout and stderr captured */
static char out_buf[8192], err_buf[8192];

static void slurp(int fd, char *buf, size_t n) {
    lseek(fd, 0, SEEK_SET);
    ssize_t got = read(fd, buf, n - 1);
    buf[got > 0 ? got : 0] = 0;
    close(fd);
}

static int parse(const char *first, ...) {
    char *argv[32] = {"sub"};
    int argc = 1;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *))
        argv[argc++] = (char *)(uintptr_t)a;
    va_end(ap);
    char po[] = "/tmp/trail-opts-XXXXXX", pe[] = "/tmp/trail-opts-XXXXXX";
    int fo = mkstemp(po), fe = mkstemp(pe), so = dup(1), se = dup(2);
    assert_true(fo >= 0 && fe >= 0);
    unlink(po), unlink(pe);
    fflush(stdout), fflush(stderr);
    dup2(fo, 1), dup2(fe, 2);
    int rc = core_opts_parse(&demo, opts, argc, argv);
    fflush(stdout), fflush(stderr);
    dup2(so, 1), dup2(se, 2);
    close(so), close(se);
    slurp(fo, out_buf, sizeof out_buf);
    slurp(fe, err_buf, sizeof err_buf);
    return rc;
}

/* a usage error: exit 2, one line on stderr naming what is said, a hint, nothing on stdout */
static void assert_usage(int rc, const char *says) {
    assert_int_equal(rc, 2);
    if (!strstr(err_buf, says)) fail_msg("'%s' not in: %s", says, err_buf);
    assert_non_null(strstr(err_buf, "trail demo sub: "));
    assert_non_null(strstr(err_buf, "see 'trail demo sub --help'"));
    assert_int_equal(strchr(err_buf, '\n') - err_buf + 1, (int)strlen(err_buf));
    assert_string_equal(out_buf, "");
}

static void types_and_values(void **state) {
    (void)state;
    defaults();
    assert_int_equal(parse("--model", "m.bin", "--json", "--recent=16", "--events",
                           "18446744073709551615", "--cache", "2M", "--offset", "-5", "--lr", "0.5",
                           "--clip=2.5", "--strict", "0", "--name", "", "--hidden", "3,4", "-X",
                           "a=1", "-Xb=2", "--x", "c=3", "in.txt", "--width", "8", "--mode", "fast",
                           NULL),
                     CORE_OPTS_GO);
    assert_string_equal(v.model, "m.bin");
    assert_int_equal(v.json, 1);
    assert_int_equal(v.n32, 16);
    assert_true(v.n64 == UINT64_MAX);
    assert_true(v.bytes == 2u << 20);
    assert_int_equal(v.off, -5);
    assert_true(v.lr == 0.5 && v.clip == 2.5f);
    assert_int_equal(v.strict, 0);
    assert_string_equal(v.name, "");
    assert_int_equal(v.pair[0], 3);
    assert_int_equal(v.pair[1], 4);
    assert_int_equal(v.nx, 3); /* MULTI: each one applied */
    assert_string_equal(v.input, "in.txt");
    assert_int_equal(v.sh.width, 8); /* the shared table stores at its base */
    assert_int_equal(v.sh.mode, 0);
    assert_string_equal(err_buf, "");
}

static void defaults_stay(void **state) {
    (void)state;
    defaults();
    assert_int_equal(parse("--model", "m", NULL), CORE_OPTS_GO);
    assert_int_equal(v.n32, 50);
    assert_int_equal(v.strict, 1);
    assert_string_equal(v.name, "anon");
    assert_null(v.input);
    assert_int_equal(v.sh.width, 64);
    assert_int_equal(v.sh.mode, 1);
    assert_int_equal(v.json, 0);
}

static void bounds(void **state) {
    (void)state;
    defaults();
    assert_usage(parse("--model", "m", "--recent", "0", NULL),
                 "--recent: '0' is not an integer in [1, 1024]");
    assert_usage(parse("--model", "m", "--recent", "1025", NULL), "--recent: '1025'");
    assert_usage(parse("--model", "m", "--recent", "-1", NULL), "--recent: '-1'");
    assert_usage(parse("--model", "m", "--recent", "12x", NULL), "--recent: '12x'");
    assert_usage(parse("--model", "m", "--events", "18446744073709551616", NULL), "--events");
    assert_usage(parse("--model", "m", "--offset", "101", NULL),
                 "--offset: '101' is not an integer in [-100, 100]");
    assert_usage(parse("--model", "m", "--lr", "nan", NULL),
                 "--lr: 'nan' is not a number in [0, 10]");
    assert_usage(parse("--model", "m", "--lr", "11", NULL), "--lr");
    assert_usage(parse("--model", "m", "--strict", "2", NULL), "--strict");
    assert_usage(parse("--model", "m", "--cache", "1", NULL),
                 "--cache: '1' is not a size in [1024,");
    assert_usage(parse("--model", "m", "--cache", "3Q", NULL), "--cache: '3Q' is not a size");
    assert_usage(parse("--model", "m", "--cache", "K", NULL), "--cache: 'K' is not a size");
    assert_usage(parse("--model", "m", "--width", "1", NULL),
                 "--width: '1' is not an integer in [2, 1024]");
    assert_usage(parse("--model", "m", "--mode", "slow", NULL),
                 "--mode: 'slow' is not one of fast, exact");
    assert_usage(parse("--model", "m", "--hidden", "3", NULL), "--hidden: '3' is not A,B");
    assert_int_equal(v.n32, 50); /* a refused value leaves the default */
}

static void missing_and_unknown(void **state) {
    (void)state;
    defaults();
    assert_usage(parse("--model", NULL), "--model: missing value");
    assert_usage(parse("--model", "--json", NULL), "--model: missing value");
    assert_usage(parse("--model", "m", "--json=1", NULL), "--json: takes no value");
    assert_usage(parse("--json", NULL), "--model is required");
    assert_usage(parse("--model", "m", "--bogus", "1", NULL), "unknown option '--bogus'");
    assert_usage(parse("--model", "m", "-q", NULL), "unknown option '-q'");
    assert_usage(parse("--model", "m", "a", "b", NULL), "unexpected argument 'b'");
    /* a value that looks like a flag is taken with = */
    assert_int_equal(parse("--model=--odd", NULL), CORE_OPTS_GO);
    assert_string_equal(v.model, "--odd");
}

static void abbreviation_refused(void **state) {
    (void)state;
    defaults();
    assert_usage(parse("--mod", "m", NULL),
                 "unknown option '--mod' (did you mean --model or --mode? ");
    assert_usage(parse("--model", "m", "--js", NULL), "did you mean --json?");
    assert_usage(parse("--model", "m", "--re=3", NULL),
                 "unknown option '--re' (did you mean --recent?");
}

static void repeats(void **state) {
    (void)state;
    defaults();
    assert_usage(parse("--model", "a", "--model", "b", NULL), "--model: given twice");
    assert_usage(parse("--model", "a", "--json", "--json", NULL), "--json: given twice");
    assert_int_equal(parse("--model", "a", "-X", "1", "-X", "2", NULL), CORE_OPTS_GO);
    assert_int_equal(v.nx, 2);
}

static void help_output(void **state) {
    (void)state;
    defaults();
    v.n32 = 33; /* help shows the destination's value before parsing as the default */
    assert_int_equal(parse("--recent", "5", "--help", NULL), 0);
    assert_string_equal(err_buf, "");
    assert_int_equal(v.n32, 33); /* help parses nothing */
    const char *must[] = {
        "usage: trail demo sub --model M [options] [input]\n",
        "a command to test the parser\n",
        "  --model M             the model (required)\n",
        "  --json                print JSON\n",
        "  --recent N            recent behaviors (default 33; 1..1024)\n",
        "  --lr X                learning rate (default 0.001; 0..10)\n",
        "  --clip X              clip\n                        second line (default 5; 0..1e+06)\n",
        "  --strict 0|1          refuse doubtful input (default 1)\n",
        "  --hidden H1,H2        widths (default 200,80)\n",
        "  -X, --x K=V           repeatable\n",
        "  --width W             a shared width (default 64; 2..1024)\n",
        "  --mode fast|exact     how (default exact)\n",
        "  input                 the input file\n",
        "  --help                print this help and exit\n",
        "\nTrailing text.\n"};
    for (size_t i = 0; i < sizeof must / sizeof *must; i++)
        if (!strstr(out_buf, must[i])) fail_msg("help lacks '%s':\n%s", must[i], out_buf);
    /* -h too; help wins over errors elsewhere, but not when it is another option's value */
    assert_int_equal(parse("--bogus", "-h", NULL), 0);
    assert_non_null(strstr(out_buf, "usage: trail demo sub"));
    assert_int_equal(parse("--name", "--help", NULL), 0); /* a value may not start with -- */
    assert_int_equal(parse("--model=x", "--name=--help", NULL), CORE_OPTS_GO);
    assert_string_equal(v.name, "--help");
}

/* a command's row listed before a shared table overrides the shared row of the same name */
static void shared_row_overridden(void **state) {
    (void)state;
    uint32_t own = 3;
    const core_opt with_own[] = {CORE_OPT_U32("width", &own, "W", 1, 8, "this command's width"),
                                 {.type = CORE_OPT_TABLE, .dst = &v.sh, .sub = shared_opts},
                                 CORE_OPT_ENDROW};
    char *argv[] = {"sub", "--width", "5", "--mode", "fast", NULL};
    defaults();
    assert_int_equal(core_opts_parse(&demo, with_own, 5, argv), CORE_OPTS_GO);
    assert_int_equal(own, 5);
    assert_int_equal(v.sh.width, 64);
    assert_int_equal(v.sh.mode, 0);
    char *too_wide[] = {"sub", "--width", "9", NULL};
    fflush(stderr);
    int se = dup(2), nul = open("/dev/null", O_WRONLY);
    dup2(nul, 2);
    int rc = core_opts_parse(&demo, with_own, 3, too_wide);
    dup2(se, 2);
    close(se), close(nul);
    assert_int_equal(rc, 2);
}

static void usage_line(void **state) {
    (void)state;
    char pe[] = "/tmp/trail-opts-XXXXXX";
    int fe = mkstemp(pe), se = dup(2);
    unlink(pe);
    fflush(stderr);
    dup2(fe, 2);
    int rc = core_cmd_usage(&demo, "--to: %d is not a timestamp", 100);
    fflush(stderr);
    dup2(se, 2);
    close(se);
    slurp(fe, err_buf, sizeof err_buf);
    assert_int_equal(rc, 2);
    assert_string_equal(
        err_buf, "trail demo sub: --to: 100 is not a timestamp; see 'trail demo sub --help'\n");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(types_and_values),
        cmocka_unit_test(defaults_stay),
        cmocka_unit_test(bounds),
        cmocka_unit_test(missing_and_unknown),
        cmocka_unit_test(abbreviation_refused),
        cmocka_unit_test(repeats),
        cmocka_unit_test(help_output),
        cmocka_unit_test(shared_row_overridden),
        cmocka_unit_test(usage_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
