/* test_serve_abuse.c: malformed requests are answered in JSON, and connection abuse (idle
 * sockets, slow headers, many sockets from one address) cannot take /healthz or /v1/score down.
 * Raw sockets on 127.0.0.1; the attackers connect from other loopback addresses (127.0.0.2..)
 * so that the per-address limit applies to them and not to the checking client. */
#include "test_common.h"
#include "test_http.h"
#include "test_model.h"

#include "core_err.h"
#include "enc_store.h"
#include "mdl.h"
#include "rank_serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define AB_WINDOW 64
#define AB_RECENT 16
#define AB_NOW 1512000000ll

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A connected socket to 127.0.0.1:port from the loopback address src (NULL: any), -1 on failure. */
static int dial(uint16_t port, const char *src, int timeout_ms) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    if (fd < 0) return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (src) {
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        inet_pton(AF_INET, src, &sa.sin_addr);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) goto fail;
    }
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) goto fail;
    return fd;
fail:
    close(fd);
    return -1;
}

/* Send req on a fresh connection from src and read the whole answer (it says Connection: close)
 * within timeout_ms. @return the status, -1 if no status line came; *body into resp. */
static int exchange(uint16_t port, const char *src, const char *req, size_t len, char *resp,
                    size_t cap, char **body, int timeout_ms) {
    resp[0] = '\0';
    *body = resp;
    int fd = dial(port, src, timeout_ms);
    if (fd < 0) return -1;
    return http_exchange(fd, req, len, resp, cap, body);
}

/* The answer is a JSON error of this kind, sent as application/json. */
static void assert_json_error(const char *resp, const char *body, const char *kind) {
    json_error_t je;
    if (!strstr(resp, "Content-Type: application/json"))
        fail_msg("no JSON Content-Type in:\n%.300s", resp);
    json_t *j = json_loads(body, 0, &je);
    if (!j) fail_msg("body is not JSON (%s):\n%.300s", je.text, body);
    json_t *e = json_object_get(j, "error"), *m = json_object_get(j, "message");
    if (!json_is_string(e) || strcmp(json_string_value(e), kind) != 0 || !json_is_string(m))
        fail_msg("expected error kind %s, got:\n%.300s", kind, body);
    json_decref(j);
}

// ---------------------------------------------------------------------------------------------
// A server on a small model and a store with one user

typedef struct fixture {
    char dir[64], model[128], store_dir[128];
    mdl_model *m;
    enc_store *st;
    rank_server *srv;
    uint16_t port;
} fixture;

static void make_model(fixture *fx) {
    mdl_config cfg;
    char err[256];
    test_model_config(&cfg, 16);
    cfg.item_rows = 1024, cfg.h1 = 16, cfg.h2 = 8, cfg.tin_buckets = 24, cfg.seed = 7;
    fx->m = test_model_new(&cfg, NULL);
    if (mdl_model_save(fx->m, fx->model, 0, err, sizeof err) != CORE_OK) fail_msg("save: %s", err);
}

static void make_store(fixture *fx) {
    enc_store_conf ec;
    enc_batch *b = NULL;
    char err[256];
    enc_store_conf_default(&ec);
    ec.path = fx->store_dir;
    ec.window = AB_WINDOW;
    ec.recent = AB_RECENT;
    ec.durable = 0;
    ec.map_size = 16u << 20;
    if (enc_store_open(&fx->st, &ec, err, sizeof err) != CORE_OK) fail_msg("store: %s", err);
    if (enc_store_bind_model(fx->st, fx->m, err, sizeof err) != CORE_OK) fail_msg("bind: %s", err);
    assert_int_equal(enc_batch_begin(fx->st, &b), CORE_OK);
    for (int i = 0; i < 10; i++) {
        sch_event ev;
        memset(&ev, 0, sizeof ev);
        ev.user_id = 1;
        ev.item_id = 100 + (uint64_t)i;
        ev.category_id = 3;
        ev.ts = AB_NOW - 30 + i;
        ev.action = SCH_ACTION_CLICK;
        assert_int_equal(enc_batch_apply(b, &ev), CORE_OK);
    }
    assert_int_equal(enc_batch_commit(b), CORE_OK);
}

/* limits: 0 keeps the defaults. */
static void fx_start(fixture *fx, uint32_t max_conn, uint32_t per_ip, uint32_t timeout_s) {
    rank_server_conf conf;
    char err[512];
    memset(fx, 0, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/trail_abuse_XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->model, sizeof fx->model, "%s/m.mdl", fx->dir);
    snprintf(fx->store_dir, sizeof fx->store_dir, "%s/store", fx->dir);
    make_model(fx);
    make_store(fx);
    rank_server_conf_default(&conf);
    conf.model_path = fx->model;
    conf.store = fx->st;
    conf.window = AB_WINDOW;
    conf.recent = AB_RECENT;
    conf.threads = 2;
    conf.drain_ms = 1000;
    if (max_conn) conf.max_connections = max_conn;
    if (per_ip) conf.max_connections_per_ip = per_ip;
    if (timeout_s) conf.read_timeout_s = timeout_s;
    if (rank_server_start(&fx->srv, &conf, err, sizeof err) != CORE_OK) fail_msg("start: %s", err);
    fx->port = rank_server_port(fx->srv);
}

static void fx_stop(fixture *fx) {
    char cmd[160];
    rank_server_stop(fx->srv);
    enc_store_close(fx->st);
    mdl_model_destroy(fx->m);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0) print_message("could not remove %s\n", fx->dir);
}

static char resp[1 << 17], req[1 << 17];

// ---------------------------------------------------------------------------------------------
// Item 9: malformed requests that reach the application are answered in JSON

/* A request target over RANK_MAX_URI: 414 in JSON, just past the limit and far past it
 * (test_serve_malformed has the other refusals of the HTTP layer). */
static void test_uri_too_long_is_json(void **state) {
    fixture fx;
    char *b;
    (void)state;
    fx_start(&fx, 0, 0, 0);
    const int sizes[] = {RANK_MAX_URI + 100, 70 << 10};
    for (int i = 0; i < 2; i++) {
        int n = snprintf(req, sizeof req, "GET /healthz?pad=");
        memset(req + n, 'a', (size_t)sizes[i]);
        n += sizes[i];
        n += snprintf(req + n, sizeof req - (size_t)n,
                      " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        int st = exchange(fx.port, NULL, req, (size_t)n, resp, sizeof resp, &b, 5000);
        if (st != 414) fail_msg("uri of %d bytes: status %d:\n%.300s", sizes[i], st, resp);
        assert_json_error(resp, b, "uri_too_long");
    }
    // a long target within the limit still reaches routing
    int n = snprintf(req, sizeof req, "GET /healthz?pad=");
    memset(req + n, 'a', 4000);
    n += 4000;
    n += snprintf(req + n, sizeof req - (size_t)n,
                  " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_int_equal(exchange(fx.port, NULL, req, (size_t)n, resp, sizeof resp, &b, 5000), 200);
    fx_stop(&fx);
}

/* Header lines over RANK_MAX_HEADERS (or over 100 of them): 431 in JSON, just past the limit
 * and far past it. */
static void test_headers_too_large_is_json(void **state) {
    fixture fx;
    char *b;
    (void)state;
    fx_start(&fx, 0, 0, 0);
    const int sizes[] = {RANK_MAX_HEADERS + 100, 70 << 10};
    for (int i = 0; i < 2; i++) {
        int n = snprintf(req, sizeof req,
                         "POST /v1/score HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         "Content-Type: application/json\r\nContent-Length: 2\r\n");
        for (int left = sizes[i], h = 0; left > 0; h++) { // 1 KiB header lines
            int k = left > 1000 ? 1000 : left;
            n += snprintf(req + n, sizeof req - (size_t)n, "X-Pad-%d: ", h);
            memset(req + n, 'b', (size_t)k);
            n += k;
            n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
            left -= k;
        }
        n += snprintf(req + n, sizeof req - (size_t)n, "\r\n{}");
        int st = exchange(fx.port, NULL, req, (size_t)n, resp, sizeof resp, &b, 5000);
        if (st != 431) fail_msg("headers of %d bytes: status %d:\n%.300s", sizes[i], st, resp);
        assert_json_error(resp, b, "headers_too_large");
    }
    // more than 100 header lines, however short
    int n = snprintf(req, sizeof req, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (int h = 0; h < 100; h++)
        n += snprintf(req + n, sizeof req - (size_t)n, "X-%d: 1\r\n", h);
    n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
    assert_int_equal(exchange(fx.port, NULL, req, (size_t)n, resp, sizeof resp, &b, 5000), 431);
    assert_json_error(resp, b, "headers_too_large");
    fx_stop(&fx);
}

/* POST /v1/score with a Content-Type other than application/json: 415 in JSON; a charset
 * parameter, another letter case, or no Content-Type at all are accepted. */
static void test_wrong_content_type_is_415(void **state) {
    fixture fx;
    char *b;
    static const char body[] = "{\"user_id\":1,\"candidates\":[{\"item_id\":5,\"category_id\":3}]}";
    static const char *const bad[] = {"text/plain", "application/x-www-form-urlencoded",
                                      "application/jsonx", "multipart/form-data; boundary=x"};
    static const char *const good[] = {"application/json; charset=utf-8", "Application/JSON", NULL};
    (void)state;
    fx_start(&fx, 0, 0, 0);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int n = snprintf(req, sizeof req,
                         "POST /v1/score HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n%s",
                         bad[i], strlen(body), body);
        int st = exchange(fx.port, NULL, req, (size_t)n, resp, sizeof resp, &b, 5000);
        if (st != 415) fail_msg("Content-Type %s: status %d:\n%.300s", bad[i], st, resp);
        assert_json_error(resp, b, "unsupported_media_type");
    }
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        char ct[96] = "";
        if (good[i]) snprintf(ct, sizeof ct, "Content-Type: %s\r\n", good[i]);
        int n = snprintf(req, sizeof req,
                         "POST /v1/score HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s"
                         "Content-Length: %zu\r\n\r\n%s",
                         ct, strlen(body), body);
        int st = exchange(fx.port, NULL, req, (size_t)n, resp, sizeof resp, &b, 5000);
        if (st != 200) fail_msg("Content-Type %s: status %d:\n%.300s", ct, st, resp);
    }
    fx_stop(&fx);
}

/* A transfer coding other than chunked: 501 in JSON at once, not a body read until the client
 * closes. */
static void test_unknown_transfer_encoding_is_501(void **state) {
    fixture fx;
    char *b;
    static const char *const te[] = {"gzip", "chunked, gzip", "identity"};
    (void)state;
    fx_start(&fx, 0, 0, 0);
    for (size_t i = 0; i < sizeof te / sizeof *te; i++) {
        int n = snprintf(req, sizeof req,
                         "POST /v1/score HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         "Content-Type: application/json\r\nTransfer-Encoding: %s\r\n\r\n{}",
                         te[i]);
        double t0 = now_s();
        int st = exchange(fx.port, NULL, req, (size_t)n, resp, sizeof resp, &b, 3000);
        if (st != 501 || now_s() - t0 > 1.0)
            fail_msg("Transfer-Encoding %s: status %d after %.2f s:\n%.300s", te[i], st,
                     now_s() - t0, resp);
        assert_json_error(resp, b, "unsupported_transfer_encoding");
    }
    fx_stop(&fx);
}

// ---------------------------------------------------------------------------------------------
// Item 3: connection abuse

static const char healthz_req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/* /healthz and POST /v1/score from a fresh connection on 127.0.0.1 answer 200 within 2 s (they
 * take milliseconds; the margin is for sanitizer builds on busy machines). */
static void assert_serving(uint16_t port, const char *when) {
    static const char body[] = "{\"user_id\":1,\"candidates\":[{\"item_id\":5,\"category_id\":3}]}";
    char *b;
    double t0 = now_s();
    int st = exchange(port, "127.0.0.1", healthz_req, sizeof healthz_req - 1, resp, sizeof resp, &b,
                      2000);
    if (st != 200 || now_s() - t0 > 2.0)
        fail_msg("%s: /healthz status %d after %.2f s", when, st, now_s() - t0);
    int n = snprintf(req, sizeof req,
                     "POST /v1/score HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    t0 = now_s();
    st = exchange(port, "127.0.0.1", req, (size_t)n, resp, sizeof resp, &b, 2000);
    if (st != 200 || now_s() - t0 > 2.0 || !strstr(b, "\"scores\":["))
        fail_msg("%s: /v1/score status %d after %.2f s: %.200s", when, st, now_s() - t0, b);
}

/* Whether the server has closed fd (EOF or reset, after whatever it sent), waiting up to ms. */
static int closed_within(int fd, int ms) {
    double end = now_s() + ms / 1000.0;
    char buf[512];
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)((end - now_s()) * 1000);
        if (poll(&p, 1, left > 0 ? left : 0) <= 0) return 0;
        ssize_t k = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) return 1;
    }
}

#define PER_IP 16
#define TOTAL 64
#define TIMEOUT_S 2

/* One address opens PER_IP + 48 idle connections and another PER_IP slow-header clients that
 * send a header byte every 300 ms: the per-address limit closes the extra ones at once, /healthz
 * and /v1/score from another address keep answering within 1 s throughout, and both the silent
 * and the trickling clients are closed once the read deadline passes (a trickle does not extend
 * it, as it would an inactivity timeout). */
static void test_idle_and_slow_clients_cannot_block(void **state) {
    fixture fx;
    int idle[PER_IP + 48], slow[PER_IP];
    const int n_idle = PER_IP + 48;
    (void)state;
    fx_start(&fx, TOTAL, PER_IP, TIMEOUT_S);
    assert_serving(fx.port, "before");
    for (int i = 0; i < n_idle; i++)
        idle[i] = dial(fx.port, "127.0.0.2", 1000);
    for (int i = 0; i < PER_IP; i++) {
        slow[i] = dial(fx.port, "127.0.0.3", 1000);
        if (slow[i] >= 0) send(slow[i], "GET /healthz HTTP/1.1\r\n", 23, MSG_NOSIGNAL);
    }
    // the connections over the per-address limit are closed at once
    int refused = 0;
    for (int i = 0; i < n_idle; i++)
        if (idle[i] < 0 || closed_within(idle[i], 50)) refused++;
    if (refused < n_idle - PER_IP)
        fail_msg("only %d of the %d connections over the per-address limit were closed", refused,
                 n_idle - PER_IP);
    // while the slow clients trickle header bytes (past the read deadline), the server answers
    double t_end = now_s() + TIMEOUT_S + 1.2;
    while (now_s() < t_end) {
        for (int i = 0; i < PER_IP; i++)
            if (slow[i] >= 0) send(slow[i], "X", 1, MSG_NOSIGNAL);
        assert_serving(fx.port, "during the attack");
        struct timespec ts = {0, 300 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    // the silent ones are gone after the read timeout
    int open_idle = 0;
    for (int i = 0; i < n_idle; i++)
        if (idle[i] >= 0 && !closed_within(idle[i], 10)) open_idle++;
    if (open_idle)
        fail_msg("%d idle connections outlived the %d s read timeout", open_idle, TIMEOUT_S);
    int open_slow = 0;
    for (int i = 0; i < PER_IP; i++)
        if (slow[i] >= 0 && !closed_within(slow[i], 10)) open_slow++;
    if (open_slow)
        fail_msg("%d trickling clients outlived the %d s read deadline", open_slow, TIMEOUT_S);
    for (int i = 0; i < n_idle; i++)
        if (idle[i] >= 0) close(idle[i]);
    for (int i = 0; i < PER_IP; i++)
        if (slow[i] >= 0) close(slow[i]);
    assert_serving(fx.port, "after");
    fx_stop(&fx);
}

/* Idle connections from many addresses fill the total limit: a client past it gets 503
 * overloaded in JSON at once (not a wait in the listen backlog), and the server answers again
 * one read timeout after the flood. */
static void test_total_limit_answers_503(void **state) {
    fixture fx;
    int fds[TOTAL], n = 0;
    char src[32], *b;
    (void)state;
    fx_start(&fx, TOTAL, PER_IP, TIMEOUT_S);
    double t0 = now_s();
    for (int a = 0; a < TOTAL / PER_IP; a++)
        for (int i = 0; i < PER_IP; i++) {
            snprintf(src, sizeof src, "127.0.1.%d", a + 1);
            fds[n++] = dial(fx.port, src, 1000);
        }
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL); // let the server accept them all
    for (int i = 0; i < 8; i++) {
        double t1 = now_s();
        int st = exchange(fx.port, "127.0.2.1", healthz_req, sizeof healthz_req - 1, resp,
                          sizeof resp, &b, 1000);
        if (st != 503 || now_s() - t1 > 0.5)
            fail_msg("past the total limit: status %d after %.2f s:\n%.300s", st, now_s() - t1,
                     resp);
        assert_json_error(resp, b, "overloaded");
        assert_non_null(strstr(resp, "\r\nX-Request-Id: ")); // even this answer has an id
        // and a client past the limit that sends nothing is closed at once
        int fd = dial(fx.port, "127.0.2.2", 1000);
        if (fd >= 0 && !closed_within(fd, 500))
            fail_msg("an idle client past the limit stays open");
        if (fd >= 0) close(fd);
    }
    // one read timeout after the flood, the server answers again
    while (now_s() < t0 + TIMEOUT_S + 1.5) {
        ts.tv_nsec = 100 * 1000 * 1000;
        nanosleep(&ts, NULL);
    }
    assert_serving(fx.port, "after the read timeout");
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0) close(fds[i]);
    fx_stop(&fx);
}

/* The limits' flags of `trail serve`: out-of-range values are refused with usage status 2
 * before anything is opened. */
static void test_cli_limit_flags(void **state) {
    const char *bin = getenv("TRAIL_BIN");
    static const char *const bad[] = {
        "--max-connections 0",         "--max-connections 2 --threads 4",
        "--max-connections-per-ip -1", "--read-timeout 0",
        "--read-timeout 3601",         "--max-connections x"};
    char cmd[512];
    (void)state;
    if (!bin) skip();
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(cmd, sizeof cmd,
                 "'%s' serve --model /nonexistent/m --store /nonexistent/s --listen 127.0.0.1:0 %s "
                 ">/dev/null 2>&1",
                 bin, bad[i]);
        int rc = system(cmd);
        if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 2)
            fail_msg("%s: exit status %d, not 2", bad[i], rc);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uri_too_long_is_json),
        cmocka_unit_test(test_headers_too_large_is_json),
        cmocka_unit_test(test_wrong_content_type_is_415),
        cmocka_unit_test(test_unknown_transfer_encoding_is_501),
        cmocka_unit_test(test_idle_and_slow_clients_cannot_block),
        cmocka_unit_test(test_total_limit_answers_503),
        cmocka_unit_test(test_cli_limit_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
