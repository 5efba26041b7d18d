/* test_serve_admin.c: `trail serve`'s admin listener. /admin/reload is not on the public
 * listener (404 in JSON there, whoever asks: a reverse proxy on the same host is a loopback peer
 * too); by default it is on a Unix socket in the store directory, mode 0600, where a reload
 * (curl --unix-socket) works, a second server on the same socket is refused, and stop removes
 * it. On a TCP admin address with a token file, a missing token is 401 and a wrong one 403, both
 * in JSON; the right one reloads. An admin address other than loopback without a token, and
 * both admin flags at once, are refused. */
#include "test_serve_common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

static char dir[256], model[512], store_dir[512], sock[600], resp[1 << 16];
static char va[17], vb[17];
static pid_t live = -1; /* the server running, killed by teardown should a test fail */

static int run_status(const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "timeout 20 '%s' serve %s >/dev/null 2>&1", test_trail_bin(), args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int setup(void **state) {
    (void)state;
    if (!test_mkdtemp(dir, sizeof dir)) return -1;
    snprintf(model, sizeof model, "%s/m.mdl", dir);
    snprintf(store_dir, sizeof store_dir, "%s/store", dir);
    snprintf(sock, sizeof sock, "%s/admin.sock", store_dir);
    mdl_model *ma = make_model(model, 1, 0.f, 0);
    mdl_version_hex(ma->model_version, va);
    enc_store_close(make_store(store_dir, ma));
    mdl_model_destroy(ma);
    return 0;
}

/* After each test: a server a failed test left running is killed. */
static int kill_live(void **state) {
    (void)state;
    if (live > 0) {
        kill(live, SIGKILL);
        waitpid(live, NULL, 0);
        live = -1;
    }
    return 0;
}

static int teardown(void **state) {
    kill_live(state);
    test_rmtree(dir);
    return 0;
}

/* Write model a (shift 0) or b (shift 0.5) to the model path. */
static void put_model(int b) {
    mdl_model_destroy(make_model(model, 1, b ? 0.5f : 0.f, 0));
}

static void stop(pid_t pid, FILE *out) {
    assert_int_equal(kill(pid, SIGTERM), 0);
    int status = serve_wait_exit(pid, 10000);
    if (status != -1) live = -1;
    assert_true(status != -1 && WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    fclose(out);
}

static void check_json_error(int status, const char *body, int want_status, const char *kind) {
    char want[64];
    snprintf(want, sizeof want, "\"error\":\"%s\"", kind);
    if (!body) body = "";
    if (status != want_status || !strstr(body, want) || !strstr(body, "\"message\":\""))
        fail_msg("want %d %s, got %d %s", want_status, kind, status, body);
}

static void test_unix_socket(void **state) {
    (void)state;
    char args[2400], line[700], cmd[2048], out_text[4096], *rb;
    struct stat st;
    pid_t pid = -1;
    FILE *out = NULL;
    mdl_model *mb = make_model(model, 1, 0.5f, 0);
    mdl_version_hex(mb->model_version, vb);
    mdl_model_destroy(mb);
    put_model(0);
    snprintf(args, sizeof args, "--model '%s' --store '%s' --listen 127.0.0.1:0 --threads 2", model,
             store_dir);
    uint16_t port = (uint16_t)serve_spawn(args, NULL, &pid, &out);
    live = pid;
    assert_true(port != 0);
    // the second line names the admin socket: the default, in the store directory, mode 0600
    assert_non_null(serve_read_line(out, line, sizeof line, 10000));
    char want[700];
    snprintf(want, sizeof want, "admin on unix:%s\n", sock);
    assert_string_equal(line, want);
    assert_int_equal(lstat(sock, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);

    // the public listener has no admin endpoint, though this client is a loopback peer
    assert_int_equal(http_do(port, "GET", "/healthz", NULL, resp, sizeof resp, &rb), 200);
    assert_non_null(strstr(rb, va));
    put_model(1);
    int status = http_do(port, "POST", "/admin/reload", NULL, resp, sizeof resp, &rb);
    check_json_error(status, rb, 404, "not_found");
    assert_int_equal(http_do(port, "GET", "/healthz", NULL, resp, sizeof resp, &rb), 200);
    assert_non_null(strstr(rb, va)); // not reloaded

    // the admin socket reloads (curl, as an operator would)
    snprintf(cmd, sizeof cmd,
             "curl -sS --max-time 10 --unix-socket '%s' -X POST http://localhost/admin/reload",
             sock);
    assert_int_equal(test_run(cmd, out_text, sizeof out_text), 0);
    if (!strstr(out_text, vb) || !strstr(out_text, "\"previous_model_version\""))
        fail_msg("reload through the admin socket: %s", out_text);
    assert_int_equal(http_do(port, "GET", "/healthz", NULL, resp, sizeof resp, &rb), 200);
    assert_non_null(strstr(rb, vb));
    // the admin listener answers /healthz, not /v1/score
    assert_int_equal(http_do_unix(sock, "GET", "/healthz", NULL, NULL, resp, sizeof resp, &rb),
                     200);
    status = http_do_unix(sock, "POST", "/v1/score",
                          "{\"user_id\":1,\"candidates\":[{\"item_id\":5,\"category_id\":7}]}",
                          NULL, resp, sizeof resp, &rb);
    check_json_error(status, rb, 404, "not_found");

    // a second server on the same store is refused the live socket (and leaves it in place)
    assert_int_equal(run_status(args), 1);
    assert_int_equal(http_do_unix(sock, "GET", "/healthz", NULL, NULL, resp, sizeof resp, &rb),
                     200);

    stop(pid, out);
    assert_int_equal(lstat(sock, &st), -1); // removed at stop

    // a stale socket (its server killed) is replaced
    port = (uint16_t)serve_spawn(args, NULL, &pid, &out);
    live = pid;
    assert_true(port != 0);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_true(serve_wait_exit(pid, 10000) != -1);
    live = -1;
    fclose(out);
    assert_int_equal(lstat(sock, &st), 0);
    port = (uint16_t)serve_spawn(args, NULL, &pid, &out);
    live = pid;
    assert_true(port != 0);
    assert_int_equal(
        http_do_unix(sock, "POST", "/admin/reload", NULL, NULL, resp, sizeof resp, &rb), 200);
    stop(pid, out);
    put_model(0);
}

static void test_tcp_token(void **state) {
    (void)state;
    char args[2400], line[256], token_file[600], *rb, *req;
    pid_t pid = -1;
    FILE *out = NULL;
    unsigned admin_port = 0;
    snprintf(token_file, sizeof token_file, "%s/token", dir);
    FILE *f = fopen(token_file, "w");
    assert_non_null(f);
    fputs("s3cret-token\n", f);
    fclose(f);
    put_model(0);
    snprintf(args, sizeof args,
             "--model '%s' --store '%s' --listen 127.0.0.1:0 --threads 2 --admin-listen "
             "127.0.0.1:0 --admin-token-file '%s'",
             model, store_dir, token_file);
    uint16_t port = (uint16_t)serve_spawn(args, NULL, &pid, &out);
    live = pid;
    assert_true(port != 0);
    assert_non_null(serve_read_line(out, line, sizeof line, 10000));
    assert_int_equal(sscanf(line, "admin on 127.0.0.1:%u", &admin_port), 1);
    assert_true(admin_port != 0 && admin_port != port);
    put_model(1);

    // no token: 401 with a challenge; another scheme: 401; a wrong token: 403; all in JSON
    size_t n = http_request(&req, "POST", "/admin/reload", NULL, NULL);
    int status = http_raw((uint16_t)admin_port, req, n, resp, sizeof resp, &rb);
    free(req);
    check_json_error(status, rb, 401, "unauthorized");
    assert_non_null(strstr(resp, "Content-Type: application/json"));
    assert_non_null(strstr(resp, "WWW-Authenticate: Bearer"));
    n = http_request(&req, "POST", "/admin/reload", NULL, "Authorization: Basic czNjcmV0\r\n");
    status = http_raw((uint16_t)admin_port, req, n, resp, sizeof resp, &rb);
    free(req);
    check_json_error(status, rb, 401, "unauthorized");
    const char *wrong[] = {"Authorization: Bearer s3cret-tokem\r\n",
                           "Authorization: Bearer s3cret-token-and-more\r\n",
                           "Authorization: Bearer s3cret\r\n", "Authorization: Bearer \r\n"};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        n = http_request(&req, "POST", "/admin/reload", NULL, wrong[i]);
        status = http_raw((uint16_t)admin_port, req, n, resp, sizeof resp, &rb);
        free(req);
        check_json_error(status, rb, i == 3 ? 401 : 403, i == 3 ? "unauthorized" : "forbidden");
    }
    assert_int_equal(http_do(port, "GET", "/healthz", NULL, resp, sizeof resp, &rb), 200);
    assert_non_null(strstr(rb, va)); // none of them reloaded
    // the public listener: 404, token or not
    n = http_request(&req, "POST", "/admin/reload", NULL, "Authorization: Bearer s3cret-token\r\n");
    status = http_raw(port, req, n, resp, sizeof resp, &rb);
    free(req);
    check_json_error(status, rb, 404, "not_found");
    // the right token reloads
    n = http_request(&req, "POST", "/admin/reload", NULL, "Authorization: Bearer s3cret-token\r\n");
    status = http_raw((uint16_t)admin_port, req, n, resp, sizeof resp, &rb);
    free(req);
    if (status != 200 || !strstr(rb, vb)) fail_msg("reload with the token: %d %s", status, rb);
    assert_int_equal(http_do(port, "GET", "/healthz", NULL, resp, sizeof resp, &rb), 200);
    assert_non_null(strstr(rb, vb));
    // SIGHUP still reloads
    put_model(0);
    assert_int_equal(kill(pid, SIGHUP), 0);
    int ok = 0;
    for (int i = 0; i < 500 && !ok; i++) {
        ok = http_do(port, "GET", "/healthz", NULL, resp, sizeof resp, &rb) == 200 &&
             strstr(rb, va) != NULL;
        if (!ok) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    assert_true(ok);
    stop(pid, out);
}

static void test_usage(void **state) {
    (void)state;
    char args[2400];
    snprintf(args, sizeof args,
             "--model '%s' --store '%s' --listen 127.0.0.1:0 --admin-socket %s/x.sock "
             "--admin-listen 127.0.0.1:0",
             model, store_dir, dir);
    assert_int_equal(run_status(args), 2);
    snprintf(args, sizeof args,
             "--model '%s' --store '%s' --listen 127.0.0.1:0 --admin-token-file /nonexistent/t",
             model, store_dir);
    assert_int_equal(run_status(args), 2);
    snprintf(args, sizeof args,
             "--model '%s' --store '%s' --listen 127.0.0.1:0 --admin-listen nowhere", model,
             store_dir);
    assert_int_equal(run_status(args), 2);
    // an admin address anyone on the network reaches needs a token
    snprintf(args, sizeof args,
             "--model '%s' --store '%s' --listen 127.0.0.1:0 --admin-listen 0.0.0.0:0", model,
             store_dir);
    assert_int_equal(run_status(args), 1);
    // a path that is not a socket is left alone
    snprintf(args, sizeof args,
             "--model '%s' --store '%s' --listen 127.0.0.1:0 --admin-socket '%s'", model, store_dir,
             model);
    assert_int_equal(run_status(args), 1);
    struct stat st;
    assert_int_equal(stat(model, &st), 0);
    assert_true(S_ISREG(st.st_mode));
}

/* A reload stuck loading (the model path is a FIFO nobody writes) holds neither the public
 * listener nor the admin one: a second reload is answered 409 reload_in_progress at once, scoring
 * and health answer, and when the load ends (the FIFO gets bytes that are no model) the first
 * reload fails 422 and the old model keeps serving. */
static void test_stuck_reload(void **state) {
    (void)state;
    char args[2400], line[700], fifo[600], cmd[4096], outp[600], *rb;
    pid_t pid = -1;
    FILE *out = NULL;
    put_model(0);
    snprintf(fifo, sizeof fifo, "%s/fifo.mdl", dir);
    snprintf(outp, sizeof outp, "%s/first.out", dir);
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    snprintf(args, sizeof args, "--model '%s' --store '%s' --listen 127.0.0.1:0 --threads 2", model,
             store_dir);
    uint16_t port = (uint16_t)serve_spawn(args, NULL, &pid, &out);
    live = pid;
    assert_true(port != 0);
    assert_non_null(serve_read_line(out, line, sizeof line, 10000));
    /* the first reload, in the background: it blocks opening the FIFO */
    snprintf(cmd, sizeof cmd,
             "curl -sS --max-time 20 --unix-socket '%s' -X POST -d '{\"model\": \"%s\"}' "
             "http://localhost/admin/reload > '%s' 2>&1 &",
             sock, fifo, outp);
    assert_int_equal(system(cmd), 0);
    int status = 0;
    rb = NULL;
    for (int t = 0; t < 200; t++) { /* until the first one holds the reload */
        usleep(50000);
        char got[512] = "";
        FILE *f = fopen(outp, "r");
        if (f) {
            got[fread(got, 1, sizeof got - 1, f)] = 0;
            fclose(f);
        }
        if (strstr(got, "reload_in_progress")) { /* it met one of ours: send it again */
            assert_int_equal(system(cmd), 0);
            continue;
        }
        status = http_do_unix(sock, "POST", "/admin/reload", NULL, NULL, resp, sizeof resp, &rb);
        if (status == 409) break;
    }
    check_json_error(status, rb, 409, "reload_in_progress");
    assert_int_equal(http_do(port, "GET", "/healthz", NULL, resp, sizeof resp, &rb), 200);
    assert_non_null(strstr(rb, va));
    status = http_do(port, "POST", "/v1/score",
                     "{\"user_id\":1,\"candidates\":[{\"item_id\":5,\"category_id\":7}]}", resp,
                     sizeof resp, &rb);
    assert_int_equal(status, 200);
    /* release the load: opening the write end lets the loader's open return; it finds no model
     * (a FIFO has no size) and may close its end before the bytes go in, so the write may fail
     * with EPIPE (SIGPIPE is ignored for it) */
    void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);
    int fd = open(fifo, O_WRONLY);
    assert_true(fd >= 0);
    ssize_t wr = write(fd, "not a model\n", 12);
    assert_true(wr == 12 || (wr < 0 && errno == EPIPE));
    close(fd);
    signal(SIGPIPE, old_pipe);
    char first[4096] = "";
    for (int t = 0; t < 200 && !strstr(first, "}"); t++) {
        usleep(50000);
        FILE *f = fopen(outp, "r");
        if (f) {
            size_t n = fread(first, 1, sizeof first - 1, f);
            first[n] = 0;
            fclose(f);
        }
    }
    assert_non_null(strstr(first, "\"error\":\"reload_failed\""));
    assert_int_equal(http_do(port, "GET", "/healthz", NULL, resp, sizeof resp, &rb), 200);
    assert_non_null(strstr(rb, va));
    /* and the next reload goes through */
    assert_int_equal(
        http_do_unix(sock, "POST", "/admin/reload", NULL, NULL, resp, sizeof resp, &rb), 200);
    stop(pid, out);
    unlink(fifo);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test_teardown(test_unix_socket, kill_live),
                                       cmocka_unit_test_teardown(test_tcp_token, kill_live),
                                       cmocka_unit_test_teardown(test_usage, kill_live),
                                       cmocka_unit_test_teardown(test_stuck_reload, kill_live)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
