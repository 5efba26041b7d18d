/* test_serve_malformed.c: every request the HTTP layer refuses while reading it (request line,
 * version, headers, Host, Content-Length, chunked framing, body limit) is answered in JSON with its
 * status and error kind, an X-Request-Id, counted in /metrics and access-logged, and the server
 * answers the next client. The same for the Kafka worker's metrics endpoint. Raw bytes over
 * loopback, each case on a fresh connection. Also keep-alive, pipelining, HEAD and
 * Expect: 100-continue. (Heads over the limits, 414 and 431: test_serve_abuse.) */
#include "test_serve_common.h"

#include "pipe_metrics.h"

#include <jansson.h>

static char dir[256], model_path[512], store_dir[512], log_path[512];
static mdl_model *m;
static enc_store *st;
static rank_server *srv;
static uint16_t port;
static char resp[1 << 17], req[1 << 17];

static int setup(void **state) {
    rank_server_conf conf;
    char err[512];
    (void)state;
    if (!test_mkdtemp(dir, sizeof dir)) return -1;
    snprintf(model_path, sizeof model_path, "%s/m.mdl", dir);
    snprintf(store_dir, sizeof store_dir, "%s/store", dir);
    snprintf(log_path, sizeof log_path, "%s/access.log", dir);
    m = make_model(model_path, 1, 0.f, 0);
    st = make_store(store_dir, m);
    serve_conf(&conf, model_path, st);
    conf.threads = 2;
    conf.max_body = 8192;
    conf.access_log = log_path;
    if (rank_server_start(&srv, &conf, err, sizeof err) != CORE_OK) {
        fprintf(stderr, "start: %s\n", err);
        return -1;
    }
    port = rank_server_port(srv);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    rank_server_stop(srv);
    enc_store_close(st);
    mdl_model_destroy(m);
    test_rmtree(dir);
    return 0;
}

/* resp (a whole answer) is status `status`, JSON of error kind `kind` sent as application/json,
 * with a request id. */
static void check_json_error(const char *what, int status, int want, const char *body,
                             const char *kind) {
    json_error_t je;
    if (status != want) fail_msg("%s: status %d, expected %d:\n%.400s", what, status, want, resp);
    if (!strstr(resp, "\r\nContent-Type: application/json\r\n"))
        fail_msg("%s: no JSON Content-Type:\n%.400s", what, resp);
    if (!strstr(resp, "\r\nX-Request-Id: ")) fail_msg("%s: no X-Request-Id:\n%.400s", what, resp);
    json_t *j = json_loads(body, 0, &je);
    if (!j) fail_msg("%s: body is not JSON (%s):\n%.400s", what, je.text, body);
    json_t *e = json_object_get(j, "error"), *msg = json_object_get(j, "message");
    if (!json_is_string(e) || strcmp(json_string_value(e), kind) != 0 || !json_is_string(msg) ||
        !json_string_length(msg))
        fail_msg("%s: expected error kind %s with a message, got:\n%.400s", what, kind, body);
    json_decref(j);
}

static void assert_healthy(uint16_t p) {
    static const char hz[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char *b;
    assert_int_equal(http_raw(p, hz, sizeof hz - 1, resp, sizeof resp, &b), 200);
}

typedef struct bad_case {
    const char *what, *req;
    int status;
    const char *kind;
} bad_case;

#define SCORE_HEAD "POST /v1/score HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
#define SCORE_BODY "{\"user_id\":1,\"candidates\":[{\"item_id\":5,\"category_id\":3}]}"

static const bad_case cases[] = {
    {"HTTP/2.0", "GET /healthz HTTP/2.0\r\nHost: x\r\nConnection: close\r\n\r\n", 505,
     "http_version_not_supported"},
    {"HTTP/1.7", "GET /healthz HTTP/1.7\r\nHost: x\r\nConnection: close\r\n\r\n", 505,
     "http_version_not_supported"},
    {"HTTP/0.9 style", "GET / HTTP/0.9\r\n\r\n", 505, "http_version_not_supported"},
    {"no version", "GET /healthz\r\nHost: x\r\n\r\n", 400, "bad_request"},
    {"version not HTTP", "GET /healthz HTTX/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"},
    {"version junk", "GET /healthz HTTP/1.1x\r\nHost: x\r\n\r\n", 400, "bad_request"},
    {"two spaces", "GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"},
    {"bad method", "G(T /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"},
    {"target not /", "GET healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"},
    {"not HTTP", "\x01\x02 nonsense\r\n\r\n", 400, "bad_request"},
    {"bare LF", "GET /healthz HTTP/1.1\nHost: x\n\n", 400, "bad_request"},
    {"header without colon", "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400,
     "bad_request"},
    {"space before colon", "GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n", 400, "bad_request"},
    {"folded header", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  2\r\n\r\n", 400,
     "bad_request"},
    {"control byte", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400, "bad_request"},
    {"HTTP/1.1 without Host", "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n", 400,
     "bad_request"},
    {"two Hosts", "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "bad_request"},
    {"Content-Length -1",
     SCORE_HEAD "Content-Type: application/json\r\nContent-Length: -1\r\n\r\n{}", 400,
     "bad_content_length"},
    {"Content-Length 2x",
     SCORE_HEAD "Content-Type: application/json\r\nContent-Length: 2x\r\n\r\n{}", 400,
     "bad_content_length"},
    {"Content-Length empty", SCORE_HEAD "Content-Length:\r\n\r\n{}", 400, "bad_content_length"},
    {"Content-Length list", SCORE_HEAD "Content-Length: 2, 2\r\n\r\n{}", 400, "bad_content_length"},
    {"Content-Lengths that differ", SCORE_HEAD "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{} ",
     400, "bad_content_length"},
    {"Content-Length and Transfer-Encoding",
     SCORE_HEAD "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 400,
     "bad_request"},
    {"Content-Length past 2^64", SCORE_HEAD "Content-Length: 99999999999999999999999\r\n\r\n{}",
     413, "body_too_large"},
    {"chunk size not hex", SCORE_HEAD "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
     400, "bad_chunked_body"},
    {"negative chunk size", SCORE_HEAD "Transfer-Encoding: chunked\r\n\r\n-2\r\n{}\r\n0\r\n\r\n",
     400, "bad_chunked_body"},
    {"chunk without CRLF", SCORE_HEAD "Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n", 400,
     "bad_chunked_body"},
    {"chunk longer than its size",
     SCORE_HEAD "Transfer-Encoding: chunked\r\n\r\n1\r\n{}\r\n0\r\n\r\n", 400, "bad_chunked_body"},
    {"chunked past max-body", SCORE_HEAD "Transfer-Encoding: chunked\r\n\r\n3000\r\n", 413,
     "body_too_large"},
    {"Transfer-Encoding gzip", SCORE_HEAD "Transfer-Encoding: gzip\r\n\r\n{}", 501,
     "unsupported_transfer_encoding"},
    {"wrong Content-Type", SCORE_HEAD "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}",
     415, "unsupported_media_type"},
};

/* Each malformed request on its own connection: its JSON error, then the server answers. */
static void test_malformed_requests_are_json(void **state) {
    char *b;
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int status = http_raw(port, cases[i].req, strlen(cases[i].req), resp, sizeof resp, &b);
        check_json_error(cases[i].what, status, cases[i].status, b, cases[i].kind);
        assert_healthy(port);
    }
}

/* What the refusals leave for the operator: the client's request id echoed, the kinds counted,
 * the codes counted, and one access-log line each with the kind. */
static void test_refusals_are_counted_and_logged(void **state) {
    char *b;
    (void)state;
    static const char bad[] = SCORE_HEAD "X-Request-Id: chunk-case-1\r\n"
                                         "Transfer-Encoding: chunked\r\n\r\nzz\r\n\r\n";
    int status = http_raw(port, bad, sizeof bad - 1, resp, sizeof resp, &b);
    check_json_error("request id", status, 400, b, "bad_chunked_body");
    assert_non_null(strstr(resp, "\r\nX-Request-Id: chunk-case-1\r\n"));
    assert_int_equal(http_do(port, "GET", "/metrics", NULL, resp, sizeof resp, &b), 200);
    static const char *const want[] = {
        "trail_request_errors_total{kind=\"bad_request\"} ",
        "trail_request_errors_total{kind=\"bad_content_length\"} ",
        "trail_request_errors_total{kind=\"bad_chunked_body\"} ",
        "trail_request_errors_total{kind=\"http_version_not_supported\"} ",
        "trail_http_requests_total{code=\"505\",path=\"/healthz\"} ",
        "trail_http_requests_total{code=\"400\",path=\"/v1/score\"} "};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const char *p = strstr(b, want[i]);
        if (!p || strtol(p + strlen(want[i]), NULL, 10) < 1) fail_msg("no count for %s", want[i]);
    }
    size_t n;
    char *log = test_slurp(log_path, &n);
    assert_non_null(log);
    if (!strstr(log, "method=GET path=/healthz status=505 ") ||
        !strstr(log, " error=http_version_not_supported\n") ||
        !strstr(log, "request_id=chunk-case-1 client=127.0.0.1 error=bad_chunked_body\n"))
        fail_msg("access log lacks the refusals:\n%.2000s", log);
    free(log);
}

/* Answers read from one kept-alive connection: what was read past the last answer stays. */
typedef struct reader {
    int fd;
    char buf[1 << 16];
    size_t n;
} reader;

/* The next answer (by its Content-Length; a HEAD's has no body) into out. @return its status, -1
 * if the connection ended first, -2 if what came is not an answer's start (a HEAD that sent a
 * body would leave it here). */
static int read_answer(reader *r, char *out, size_t cap, int head) {
    for (;;) {
        r->buf[r->n] = '\0';
        char *end = strstr(r->buf, "\r\n\r\n");
        if (r->n >= 9 && strncmp(r->buf, "HTTP/1.1 ", 9) != 0) return -2;
        if (end) {
            const char *cl = strstr(r->buf, "\r\nContent-Length: ");
            size_t want =
                (size_t)(end + 4 - r->buf) + (head || !cl ? 0 : strtoul(cl + 18, NULL, 10));
            if (r->n >= want && want < cap) {
                int status = -1;
                memcpy(out, r->buf, want);
                out[want] = '\0';
                memmove(r->buf, r->buf + want, r->n - want);
                r->n -= want;
                sscanf(out, "HTTP/1.1 %d", &status);
                return status;
            }
        }
        ssize_t k = recv(r->fd, r->buf + r->n, sizeof r->buf - 1 - r->n, 0);
        if (k <= 0) return -1;
        r->n += (size_t)k;
    }
}

static int dial_port(uint16_t p) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    sock_timeouts(fd);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(p);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) fail_msg("connect");
    return fd;
}

/* HTTP/1.1 keeps the connection: requests one after another, pipelined ones, HEAD (headers and
 * the length of the body it would have), Expect: 100-continue, a 404 on the way (a refusal with
 * no body to skip keeps the connection too); HTTP/1.0 closes after one answer. */
static void test_keep_alive_pipelining_head(void **state) {
    static reader rd;
    (void)state;
    int fd = dial_port(port);
    rd.fd = fd;
    rd.n = 0;
    static const char hz[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < 3; i++) {
        assert_int_equal(send(fd, hz, sizeof hz - 1, MSG_NOSIGNAL), (ssize_t)(sizeof hz - 1));
        assert_int_equal(read_answer(&rd, resp, sizeof resp, 0), 200);
        assert_null(strstr(resp, "Connection: close"));
    }
    static const char two[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\n"
                              "Host: x\r\n\r\nHEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(send(fd, two, sizeof two - 1, MSG_NOSIGNAL), (ssize_t)(sizeof two - 1));
    assert_int_equal(read_answer(&rd, resp, sizeof resp, 0), 200);
    assert_int_equal(read_answer(&rd, resp, sizeof resp, 0), 404);
    assert_int_equal(read_answer(&rd, resp, sizeof resp, 1), 200);
    assert_null(strstr(resp, "Content-Length: 0\r\n")); /* the GET's length */
    // Expect: 100-continue: the interim answer, then the body, then the scores
    int n = snprintf(req, sizeof req,
                     "POST /v1/score HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     strlen(SCORE_BODY));
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    char cont[64] = "";
    assert_int_equal(rd.n, 0);
    ssize_t k = recv(fd, cont, 25, MSG_WAITALL);
    assert_int_equal(k, 25);
    assert_memory_equal(cont, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    assert_int_equal(send(fd, SCORE_BODY, strlen(SCORE_BODY), MSG_NOSIGNAL),
                     (ssize_t)strlen(SCORE_BODY));
    assert_int_equal(read_answer(&rd, resp, sizeof resp, 0), 200);
    assert_non_null(strstr(resp, "\"scores\":["));
    // a chunked body is decoded
    n = snprintf(req, sizeof req,
                 "POST /v1/score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5;ext=1\r\n%.5s\r\n%zx\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n",
                 SCORE_BODY, strlen(SCORE_BODY) - 5, SCORE_BODY + 5);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    assert_int_equal(read_answer(&rd, resp, sizeof resp, 0), 200);
    assert_non_null(strstr(resp, "\"scores\":["));
    close(fd);
    // HTTP/1.0 (no Host needed): one answer, then the server closes
    fd = dial_port(port);
    rd.fd = fd;
    rd.n = 0;
    static const char h10[] = "GET /healthz HTTP/1.0\r\n\r\n";
    assert_int_equal(send(fd, h10, sizeof h10 - 1, MSG_NOSIGNAL), (ssize_t)(sizeof h10 - 1));
    assert_int_equal(read_answer(&rd, resp, sizeof resp, 0), 200);
    assert_non_null(strstr(resp, "\r\nConnection: close\r\n"));
    char c;
    assert_int_equal(recv(fd, &c, 1, 0), 0);
    close(fd);
}

/* The Kafka worker's metrics endpoint answers the same refusals in JSON. */
static void test_worker_metrics_endpoint(void **state) {
    pipe_metrics *pm;
    char err[256], *b;
    int p;
    (void)state;
    assert_int_equal(pipe_metrics_new(&pm, "t"), CORE_OK);
    assert_int_equal(pipe_metrics_serve(pm, "127.0.0.1:0", &p, err, sizeof err), CORE_OK);
    static const bad_case wcases[] = {
        {"HTTP/2.0", "GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"},
        {"no version", "GET /metrics\r\n\r\n", 400, "bad_request"},
        {"HTTP/1.1 without Host", "GET /metrics HTTP/1.1\r\n\r\n", 400, "bad_request"},
        {"Content-Length -1", "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400,
         "bad_content_length"},
        {"bad chunk",
         "GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n", 400,
         "bad_chunked_body"},
        {"unknown path", "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404,
         "not_found"},
        {"POST", "POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405,
         "method_not_allowed"},
    };
    for (size_t i = 0; i < sizeof wcases / sizeof *wcases; i++) {
        int status =
            http_raw((uint16_t)p, wcases[i].req, strlen(wcases[i].req), resp, sizeof resp, &b);
        if (status != wcases[i].status)
            fail_msg("worker %s: status %d:\n%.300s", wcases[i].what, status, resp);
        if (!strstr(resp, "\r\nContent-Type: application/json\r\n"))
            fail_msg("worker %s: not JSON:\n%.300s", wcases[i].what, resp);
        json_error_t je;
        json_t *j = json_loads(b, 0, &je);
        json_t *e = j ? json_object_get(j, "error") : NULL;
        if (!json_is_string(e) || strcmp(json_string_value(e), wcases[i].kind) != 0)
            fail_msg("worker %s: expected %s:\n%.300s", wcases[i].what, wcases[i].kind, b);
        json_decref(j);
    }
    static const char get[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(http_raw((uint16_t)p, get, sizeof get - 1, resp, sizeof resp, &b), 200);
    pipe_metrics_destroy(pm);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_requests_are_json),
        cmocka_unit_test(test_refusals_are_counted_and_logged),
        cmocka_unit_test(test_keep_alive_pipelining_head),
        cmocka_unit_test(test_worker_metrics_endpoint),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
