/* test_serve_signals.c: a storm of signals never kills `trail serve`. 100 SIGHUPs 1-5 ms apart
 * arrive while a client scores requests over loopback: the server stays up, every request is
 * answered 200, the reloads are coalesced (at least one, at most one per signal, none failed),
 * /healthz answers, and SIGTERM still drains and exits 0.
 *
 * The server runs with OpenBLAS's thread pool on (OPENBLAS_NUM_THREADS=4 for the child; ctest
 * pins it to 1 otherwise): OpenBLAS starts its threads in its library constructor, before main
 * can block anything, so a process-directed signal can land on one of them. Before the self-pipe
 * handler, a SIGHUP that arrived while the main thread was busy reloading (not in sigwait) was
 * delivered to such a thread, whose default action killed the process (exit by signal 1). The
 * model is large enough (a 2^17-row item table) that each reload takes a few milliseconds, so
 * the storm hits that window many times. */
#include "test_serve_common.h"
#include "test_model.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

static char dir[256], model[512], store_dir[512];
static uint16_t port;
static atomic_int stop_client, n_ok, n_bad;
static pid_t live = -1; /* the server running, killed by teardown should the test fail */

static int teardown(void **state) {
    (void)state;
    if (live > 0) {
        kill(live, SIGKILL);
        waitpid(live, NULL, 0);
    }
    if (dir[0]) test_rmtree(dir);
    return 0;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void *client(void *arg) {
    static char resp[16384];
    const char *body = "{\"user_id\":1,\"ts\":1512000000,\"candidates\":[{\"item_id\":5,"
                       "\"category_id\":7},{\"item_id\":137,\"category_id\":4}]}";
    char v[17], *rb;
    float s[3];
    (void)arg;
    while (!atomic_load(&stop_client)) {
        int status = http_do(port, "POST", "/v1/score", body, resp, sizeof resp, &rb);
        if (status == 200 && parse_scores(rb, v, s, 3) == 2) {
            atomic_fetch_add(&n_ok, 1);
        } else {
            fprintf(stderr, "request failed: status %d: %.200s\n", status, rb);
            atomic_fetch_add(&n_bad, 1);
        }
    }
    return NULL;
}

static long metric(const char *text, const char *name) {
    const char *p = strstr(text, name);
    return p ? strtol(p + strlen(name), NULL, 10) : -1;
}

static void test_sighup_storm(void **state) {
    (void)state;
    char va[17], args[1400], resp[16384], *rb;
    mdl_config cfg;
    mdl_model *m = NULL;
    assert_non_null(test_mkdtemp(dir, sizeof dir));
    snprintf(model, sizeof model, "%s/m.mdl", dir);
    snprintf(store_dir, sizeof store_dir, "%s/store", dir);
    test_model_config(&cfg, 16);
    cfg.item_rows = 1u << 17, cfg.h1 = 16, cfg.h2 = 8, cfg.seed = 1, cfg.tin_buckets = 24;
    m = test_model_new(&cfg, NULL);
    assert_int_equal(mdl_model_save(m, model, 0, args, sizeof args), CORE_OK);
    mdl_version_hex(m->model_version, va);
    enc_store_close(make_store(store_dir, m));

    snprintf(args, sizeof args, "--model '%s' --store '%s' --listen 127.0.0.1:0 --threads 2", model,
             store_dir);
    pid_t pid = -1;
    FILE *out = NULL;
    port = (uint16_t)serve_spawn(args, "4", &pid, &out);
    live = pid;
    assert_true(port != 0);
    assert_int_equal(http_do(port, "GET", "/healthz", NULL, resp, sizeof resp, &rb), 200);
    assert_non_null(strstr(rb, va));

    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, client, NULL), 0);
    sleep_ms(50);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(kill(pid, SIGHUP), 0);
        sleep_ms(1 + i % 5);
    }
    sleep_ms(100);
    atomic_store(&stop_client, 1);
    pthread_join(th, NULL);

    int early = serve_wait_exit(pid, 10);
    if (early != -1) live = -1;
    if (early != -1)
        fail_msg("trail serve died during the storm: %s %d", WIFSIGNALED(early) ? "signal" : "exit",
                 WIFSIGNALED(early) ? WTERMSIG(early) : WEXITSTATUS(early));
    assert_int_equal(http_do(port, "GET", "/healthz", NULL, resp, sizeof resp, &rb), 200);
    assert_non_null(strstr(rb, va));
    fprintf(stderr, "requests answered %d, failed %d\n", atomic_load(&n_ok), atomic_load(&n_bad));
    assert_int_equal(atomic_load(&n_bad), 0);
    assert_true(atomic_load(&n_ok) > 0);
    // the reloads have finished (the last one within the 100 ms above or the next few)
    long ok = -1, failed = -1;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(http_do(port, "GET", "/metrics", NULL, resp, sizeof resp, &rb), 200);
        ok = metric(rb, "trail_model_reloads_total{result=\"ok\"} ");
        failed = metric(rb, "trail_model_reloads_total{result=\"failed\"} ");
        if (ok >= 1) break;
        sleep_ms(10);
    }
    fprintf(stderr, "reloads for 100 SIGHUPs: %ld ok, %ld failed\n", ok, failed);
    assert_true(ok >= 1 && ok <= 100);
    assert_int_equal(failed, 0);

    assert_int_equal(kill(pid, SIGTERM), 0);
    int status = serve_wait_exit(pid, 5000);
    if (status != -1) live = -1;
    assert_true(status != -1 && WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    fclose(out);
    mdl_model_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_sighup_storm)};
    return cmocka_run_group_tests(tests, NULL, teardown);
}
