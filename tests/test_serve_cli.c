/* test_serve_cli.c: `trail serve` as a process: usage errors exit 2; it prints the port it
 * listens on; SIGHUP reloads the model file (a corrupt file is refused and the old model keeps
 * serving); SIGTERM drains and exits 0. */
#include "test_serve_common.h"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>

static char dir[256], model[512], store_dir[512], resp[1 << 16];

static int run_status(const char *args) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' serve %s >/dev/null 2>&1", test_trail_bin(), args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Poll GET path until its body contains want (or 5 s pass). */
static int wait_for(uint16_t port, const char *path, const char *want) {
    char *rb = NULL;
    for (int i = 0; i < 500; i++) {
        if (http_do(port, "GET", path, NULL, resp, sizeof resp, &rb) == 200 && strstr(rb, want))
            return 1;
        sleep_ms(10);
    }
    return 0;
}

static void test_usage(void **state) {
    (void)state;
    assert_int_equal(run_status(""), 2);
    assert_int_equal(run_status("--model x --store y"), 2);
    assert_int_equal(run_status("--model x --store y --listen nowhere"), 2);
    assert_int_equal(run_status("--model x --store y --listen 127.0.0.1:99999"), 2);
    assert_int_equal(run_status("--model x --store y --listen :8080"), 2); /* no host */
    assert_int_equal(run_status("--model x --store y --listen 127.0.0.1:0 --threads 0"), 2);
    assert_int_equal(run_status("--help"), 0);
}

static void test_signals(void **state) {
    (void)state;
    char va[17], vb[17], cmd[2048], line[256], want[128];
    assert_non_null(test_mkdtemp(dir, sizeof dir));
    snprintf(model, sizeof model, "%s/m.mdl", dir);
    snprintf(store_dir, sizeof store_dir, "%s/store", dir);
    mdl_model *ma = make_model(model, 1, 0.f, 0);
    mdl_version_hex(ma->model_version, va);
    enc_store_close(make_store(store_dir, ma));
    // a model file that does not load
    assert_int_equal(run_status("--model /nonexistent.mdl --store /tmp --listen 127.0.0.1:0"), 1);

    // sizes that differ from the store's are refused; without them the store's own are used
    char args[1200];
    snprintf(args, sizeof args, "--model '%s' --store '%s' --listen 127.0.0.1:0 --window %d", model,
             store_dir, TS_WINDOW + 1);
    assert_int_equal(run_status(args), 1);
    snprintf(cmd, sizeof cmd,
             "exec '%s' serve --model '%s' --store '%s' --listen 127.0.0.1:0 --threads 2",
             test_trail_bin(), model, store_dir);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *out = fdopen(fds[0], "r");
    unsigned port = 0;
    assert_non_null(fgets(line, sizeof line, out));
    assert_int_equal(sscanf(line, "listening on 127.0.0.1:%u", &port), 1);
    assert_true(wait_for((uint16_t)port, "/healthz", va));

    // SIGHUP rereads the model file
    mdl_model *mb = make_model(model, 1, 0.5f, 0);
    mdl_version_hex(mb->model_version, vb);
    assert_int_equal(kill(pid, SIGHUP), 0);
    assert_true(wait_for((uint16_t)port, "/healthz", vb));
    // a corrupt file is refused: the reload counts as failed and b keeps serving
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", model);
    FILE *f = fopen(tmp, "wb");
    fputs("TRAILMDL this is not a model", f);
    fclose(f);
    assert_int_equal(rename(tmp, model), 0);
    assert_int_equal(kill(pid, SIGHUP), 0);
    assert_true(
        wait_for((uint16_t)port, "/metrics", "trail_model_reloads_total{result=\"failed\"} 1\n"));
    assert_true(wait_for((uint16_t)port, "/healthz", vb));
    snprintf(want, sizeof want, "trail_model_info{model_version=\"%s\"", vb);
    assert_true(wait_for((uint16_t)port, "/metrics", want));

    // SIGTERM drains: a request whose body is still arriving when the signal comes is answered
    const char *body = "{\"user_id\": 1, \"candidates\": [{\"item_id\": 5, \"category_id\": 7}]}";
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /v1/score HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     strlen(body));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    struct timeval tv = {10, 0};
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    assert_int_equal(send(fd, body, 10, MSG_NOSIGNAL), 10);
    sleep_ms(100); // the server has the headers: the request is in flight
    assert_int_equal(kill(pid, SIGTERM), 0);
    sleep_ms(100);
    assert_int_equal(send(fd, body + 10, strlen(body) - 10, MSG_NOSIGNAL),
                     (ssize_t)(strlen(body) - 10));
    size_t got = 0;
    for (ssize_t k; (k = recv(fd, resp + got, sizeof resp - 1 - got, 0)) > 0;)
        got += (size_t)k;
    resp[got] = '\0';
    close(fd);
    if (!strstr(resp, "HTTP/1.1 200") || !strstr(resp, vb)) fail_msg("in-flight request: %s", resp);
    int status = -1;
    for (int i = 0; i < 1000 && waitpid(pid, &status, WNOHANG) == 0; i++)
        sleep_ms(10);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    fclose(out);
    mdl_model_destroy(ma);
    mdl_model_destroy(mb);
    test_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_usage),
                                       cmocka_unit_test(test_signals)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
