/* test_pipe_cli.c: `trail broker`, `trail produce` and `trail record` as processes on loopback.
 * The broker prints its bootstrap address first and honors --port; produce refuses malformed
 * records (counted, named by line) and keys by user id; record writes every event of the topic up
 * to the end offsets seen at start, and each user's events keep their order.
 */
#include "test_common.h"
#include "test_proc.h"

#include "core_err.h"
#include "sch_event.h"

#include <inttypes.h>
#include <unistd.h>

static char g_dir[4096], g_bin[4096];

static int first_line(const char *path, char *buf, size_t cap, int timeout_ms) {
    for (int t = 0; t < timeout_ms; t += 50) {
        FILE *f = fopen(path, "r");
        if (f) {
            int ok = fgets(buf, (int)cap, f) && strchr(buf, '\n');
            fclose(f);
            if (ok) {
                buf[strcspn(buf, "\n")] = 0;
                return 1;
            }
        }
        test_msleep(50);
    }
    return 0;
}

static void path(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", g_dir, name); }

static int setup(void **state) {
    (void)state;
    snprintf(g_bin, sizeof g_bin, "%s", test_trail_bin());
    return test_mkdtemp(g_dir, sizeof g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    test_rmtree(g_dir);
    return 0;
}

static void test_broker_produce_record(void **state) {
    (void)state;
    char out[4200], err[4200], events[4200], rec[4200], brokers[256], line[512];
    path(out, sizeof out, "broker.out");
    path(err, sizeof err, "broker.err");
    path(events, sizeof events, "in.jsonl");
    path(rec, sizeof rec, "rec.jsonl");
    /* A free port from the ephemeral range, tried a few times in case it is taken meanwhile. */
    pid_t br = -1;
    int port = 0;
    for (int attempt = 0; attempt < 5 && br < 0; attempt++) {
        port = 20000 + (int)((getpid() * 7 + attempt * 101) % 20000);
        char ps[16];
        snprintf(ps, sizeof ps, "%d", port);
        char *argv[] = {g_bin, "broker", "--port", ps, "--partitions", "3", "--topics", "t", NULL};
        br = test_spawn(argv, out, err, 0);
        if (!first_line(out, brokers, sizeof brokers, 5000)) {
            test_wait_exit(br, 2000);
            br = -1;
        }
    }
    assert_true(br > 0);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    assert_string_equal(brokers, want); /* first line: the bootstrap address, on --port */

    FILE *f = fopen(events, "w");
    assert_non_null(f);
    for (int i = 0; i < 300; i++) {
        fprintf(f, "{\"user_id\":%d,\"item_id\":%d,\"category_id\":%d,\"action\":\"click\",\"ts\":%d}\n",
                i % 17, 1000 + i, i % 5, 1511544070 + i);
        if (i == 100) fprintf(f, "{\"user_id\":1,\"item_id\":2}\n");
        if (i == 200) fprintf(f, "not json\n");
    }
    fclose(f);
    char pout[4200], perr[4200];
    path(pout, sizeof pout, "produce.out");
    path(perr, sizeof perr, "produce.err");
    char *prod[] = {g_bin, "produce", "--brokers", brokers, "--topic", "t", "--input", events, NULL};
    assert_int_equal(test_wait_exit(test_spawn(prod, pout, perr, 0), 30000), 0);
    assert_true(first_line(pout, line, sizeof line, 100));
    assert_non_null(strstr(line, "produced 300 events"));
    assert_non_null(strstr(line, "rejected 2"));
    assert_true(first_line(perr, line, sizeof line, 100));
    assert_non_null(strstr(line, ":102: rejected:")); /* file:line of the first malformed record */

    char *recv[] = {g_bin, "record", "--brokers", brokers, "--topic", "t", "--out", rec, NULL};
    assert_int_equal(test_wait_exit(test_spawn(recv, pout, perr, 0), 30000), 0);
    f = fopen(rec, "r");
    assert_non_null(f);
    int n = 0, last_item[17];
    for (int u = 0; u < 17; u++) last_item[u] = -1;
    while (fgets(line, sizeof line, f)) {
        sch_event ev;
        char e[256];
        assert_int_equal(sch_event_from_json(&ev, line, strcspn(line, "\n"), e, sizeof e), CORE_OK);
        assert_true(ev.user_id < 17);
        assert_true((int)ev.item_id > last_item[ev.user_id]); /* per-user order kept */
        last_item[ev.user_id] = (int)ev.item_id;
        n++;
    }
    fclose(f);
    assert_int_equal(n, 300);

    kill(br, SIGTERM);
    assert_int_equal(test_wait_exit(br, 10000), 0);
}

static void test_usage_errors_exit_2(void **state) {
    (void)state;
    char o[4200], e[4200];
    path(o, sizeof o, "u.out");
    path(e, sizeof e, "u.err");
    char *a1[] = {g_bin, "broker", "--port", "70000", NULL};
    assert_int_equal(test_wait_exit(test_spawn(a1, o, e, 0), 5000), 2);
    char *a2[] = {g_bin, "produce", "--topic", "t", NULL};
    assert_int_equal(test_wait_exit(test_spawn(a2, o, e, 0), 5000), 2);
    char *a3[] = {g_bin, "record", "--brokers", "127.0.0.1:1", "--topic", "t", "--out", o, "--to",
                  "5", NULL};
    assert_int_equal(test_wait_exit(test_spawn(a3, o, e, 0), 5000), 2);
    char *a4[] = {g_bin, "produce", "--brokers", "127.0.0.1:1", "--topic", "t", "--input", o,
                  "-X", "no-equals-sign", NULL};
    assert_int_equal(test_wait_exit(test_spawn(a4, o, e, 0), 5000), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broker_produce_record),
        cmocka_unit_test(test_usage_errors_exit_2),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
