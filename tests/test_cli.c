/* test_cli: the command layer as the binary shows it. Every command listed by `trail --help`
 * answers --help (and `trail help CMD`) on stdout with exit 0 and nothing on stderr; groups and
 * --version too; a usage error is one line on stderr naming the flag, with exit 2; abbreviated
 * names are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core_version.h"
#include "test_common.h"

static char out[65536], err[8192], errpath[] = "/tmp/trail-cli-err-XXXXXX";

/* trail ARGS: stdout into out, stderr into err; the exit code */
static int trail(const char *args) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s 2>%s", test_trail_bin(), args, errpath);
    int rc = test_run(cmd, out, sizeof out);
    FILE *f = fopen(errpath, "r");
    size_t n = f ? fread(err, 1, sizeof err - 1, f) : 0;
    err[n] = 0;
    if (f) fclose(f);
    return rc;
}

static int lines(const char *s) {
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* the names `trail --help` lists, one per row "  NAME   summary" (names hold one space at most) */
static int listed(char names[][32], int cap) {
    assert_int_equal(trail("--help"), 0);
    int n = 0;
    for (char *l = strtok(out, "\n"); l && n < cap; l = strtok(NULL, "\n")) {
        if (strncmp(l, "  ", 2) || !strncmp(l, "  trail", 7)) continue;
        char *e = strstr(l + 2, "  ");
        if (!e) continue;
        snprintf(names[n++], 32, "%.*s", (int)(e - l - 2), l + 2);
    }
    return n;
}

static void every_command_has_help(void **state) {
    (void)state;
    char names[64][32], args[128], want[64];
    int n = listed(names, 64);
    assert_true(n >= 20);
    for (int i = 0; i < n; i++) {
        snprintf(want, sizeof want, "usage: trail %.31s", names[i]);
        if (!strcmp(names[i], "encode-kafka")) snprintf(want, sizeof want, "usage: trail encode");
        snprintf(args, sizeof args, "%.31s --help", names[i]);
        if (trail(args) != 0 || strncmp(out, want, strlen(want)) || err[0])
            fail_msg("trail %s: exit, stdout '%.60s' or stderr '%s'", args, out, err);
        assert_non_null(strstr(out, "--help"));
        snprintf(args, sizeof args, "help %.31s", names[i]);
        if (trail(args) != 0 || strncmp(out, want, strlen(want)) || err[0])
            fail_msg("trail %s: exit, stdout '%.60s' or stderr '%s'", args, out, err);
    }
}

static void groups_version_and_encode(void **state) {
    (void)state;
    const char *groups[] = {"model", "import", "bench"};
    char args[64];
    for (size_t i = 0; i < 3; i++) {
        snprintf(args, sizeof args, "%s --help", groups[i]);
        assert_int_equal(trail(args), 0);
        assert_non_null(strstr(out, "--help for its options"));
        assert_string_equal(err, "");
        assert_int_equal(trail(groups[i]), 2); /* a group alone: its list on stderr */
        assert_non_null(strstr(err, groups[i]));
    }
    assert_int_equal(trail("--version"), 0);
    assert_string_equal(out, "trail " TRAIL_VERSION "\n");
    /* both encode modes in one help */
    assert_int_equal(trail("encode --help"), 0);
    assert_non_null(strstr(out, "--input FILE"));
    assert_non_null(strstr(out, "--brokers B"));
    assert_non_null(strstr(out, "--group G"));
    assert_int_equal(trail("nosuch"), 2);
    assert_non_null(strstr(err, "unknown command 'nosuch'"));
}

/* one line on stderr that holds each of says, exit 2 */
static void usage_error(const char *args, const char *const *says) {
    int rc = trail(args);
    if (rc != 2 || lines(err) != 1) fail_msg("trail %s: exit %d, stderr:\n%s", args, rc, err);
    for (; *says; says++)
        if (!strstr(err, *says)) fail_msg("trail %s: '%s' not in: %s", args, *says, err);
    assert_string_equal(out, "");
}

static void usage_errors_name_the_flag(void **state) {
    (void)state;
    usage_error("model info --model",
                (const char *[]){"trail model info: --model: missing value", "--help", NULL});
    usage_error("model info --mod m.bin", (const char *[]){"'--mod'", "--model", NULL});
    usage_error("bench rank --js", (const char *[]){"'--js'", "--json", NULL});
    usage_error("record --brokers b --topic t --out o --to 100",
                (const char *[]){"--to: '100'", "end", NULL});
    usage_error("model init --out m.bin --dim 2000",
                (const char *[]){"--dim: '2000' is not an integer in [2, 1024]", NULL});
    usage_error("train --events e --model-out m --item-rows 1073741824",
                (const char *[]){"--item-rows", NULL});
    usage_error("gen --out g --users 5 --users 6", (const char *[]){"--users: given twice", NULL});
    usage_error("rank --model m --store s --candidates c",
                (const char *[]){"--user is required", NULL});
    usage_error("import taobao --out x", (const char *[]){"missing argument FILE", NULL});
    usage_error("inspect --store s --digest --verify", (const char *[]){"exactly one", NULL});
    usage_error("eval --model m --events e --split dev", (const char *[]){"--split: 'dev'", NULL});
}

/* bench rank builds the model it is told: --hidden reaches the MLP it times (and reports), and
 * every path it times stays within the serving bound of fp32 on that model */
static void bench_rank_takes_the_widths(void **state) {
    (void)state;
    assert_int_equal(trail("bench rank --json --candidates 300 --window 500 --iters 3 "
                           "--attention-iters 1 --hidden 32,16"),
                     0);
    assert_non_null(strstr(out, "\"mlp\": \"32-16\""));
    const char *d = strstr(out, "\"max_abs_diff_vs_fp32\": ");
    assert_non_null(d);
    assert_true(strtod(d + strlen("\"max_abs_diff_vs_fp32\": "), NULL) <= 5e-3);
    usage_error("bench rank --hidden 64", (const char *[]){"--hidden: '64' is not H1,H2", NULL});
}

/* every long-running command takes --log-level, and names a bad level */
static void log_level_everywhere(void **state) {
    (void)state;
    const char *cmds[] = {"encode --model m --store s --input e",
                          "encode --brokers b --topic t --group g --model m --store s",
                          "reencode --model m --store s",
                          "serve --model m --store s --listen 127.0.0.1:0",
                          "train --events e --model-out m",
                          "eval --model m --events e",
                          "import taobao x.csv --out o",
                          "produce --brokers b --topic t --input e",
                          "record --brokers b --topic t --out o",
                          "broker",
                          "bench pipeline"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char args[512];
        snprintf(args, sizeof args, "%s --log-level chatty", cmds[i]);
        usage_error(args, (const char *[]){"log", "level", "'chatty'", NULL});
    }
}

int main(void) {
    int fd = mkstemp(errpath);
    if (fd < 0) return 1;
    close(fd);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(log_level_everywhere),        cmocka_unit_test(every_command_has_help),
        cmocka_unit_test(groups_version_and_encode),   cmocka_unit_test(usage_errors_name_the_flag),
        cmocka_unit_test(bench_rank_takes_the_widths),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(errpath);
    return rc;
}
