/* fuzz_http.c: libFuzzer target for the HTTP layer (core_http): each input is sent as the bytes
 * of one connection to a server on a Unix socket, then the client's side is shut down and the
 * whole reply read. Contract: the reply is a run of complete HTTP/1.1 answers (a status line,
 * headers, exactly Content-Length body bytes), nothing else; every answer of 400 or more is
 * application/json with an object holding "error" and "message" (the error hook's); a HEAD's
 * answer (marked X-Head here) has no body; a 100 Continue has neither length nor body; a
 * connection that ends mid-request may get no answer at all. And every 4096 inputs a plain GET
 * still gets its 200 (within 2 s): connections are closed, not leaked into the limit. */
#include "core_http.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static struct sockaddr_un addr;

static void on_handle(void *ctx, core_http_req *rq) {
    char body[64];
    (void)ctx;
    int n = snprintf(body, sizeof body, "{\"bytes\":%zu}", rq->body_len);
    core_http_respond(rq, 200, "application/json", body, (size_t)n,
                      rq->is_head ? "X-Head: 1\r\n" : NULL);
}

static void on_error(void *ctx, core_http_req *rq, unsigned status, const char *kind,
                     const char *message) {
    char body[640];
    (void)ctx;
    size_t n = core_http_error_json(body, sizeof body, kind, message);
    core_http_respond(rq, status, "application/json", body, n,
                      rq->is_head ? "X-Head: 1\r\n" : NULL);
}

static void start(void) {
    static core_http_server *srv;
    char err[256], dir[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/trail-fuzz-http-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) abort();
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s/s", dir);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) || listen(fd, 64)) abort();
    core_http_conf conf;
    memset(&conf, 0, sizeof conf);
    conf.threads = 2;
    conf.max_connections = 64;
    conf.read_timeout_s = 2;
    conf.max_uri = 256;
    conf.max_headers = 1024;
    conf.max_body = 2048;
    conf.name = "fuzz";
    conf.hooks.handle = on_handle;
    conf.hooks.error = on_error;
    if (core_http_start(&srv, fd, &conf, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
}

static void contract(int cond, const char *what, const char *reply) {
    if (cond) return;
    fprintf(stderr, "contract: %s\n--- reply:\n%.2000s\n", what, reply);
    abort();
}

/* One connection: send data, shut down the sending side, read the whole reply into reply.
 * @return its length. */
static size_t exchange(const uint8_t *data, size_t size, char *reply, size_t cap) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) abort();
    for (size_t off = 0; off < size;) { /* the server may answer and close before the end */
        ssize_t k = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (k <= 0) break;
        off += (size_t)k;
    }
    shutdown(fd, SHUT_WR);
    size_t n = 0;
    for (;;) {
        ssize_t k = recv(fd, reply + n, cap - 1 - n, 0);
        if (k <= 0) break;
        n += (size_t)k;
        if (n == cap - 1) break;
    }
    close(fd);
    reply[n] = '\0';
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static unsigned long runs;
    static char reply[1 << 16];
    if (runs++ == 0) start();
    if (runs % 4096 == 0) {
        static const char get[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        int ok = 0;
        for (int i = 0; i < 200 && !ok; i++) {
            exchange((const uint8_t *)get, sizeof get - 1, reply, sizeof reply);
            ok = !strncmp(reply, "HTTP/1.1 200 ", 13);
            if (!ok) usleep(10000);
        }
        contract(ok, "a plain GET is not answered 200 (connections leaked?)", reply);
    }
    size_t n = exchange(data, size, reply, sizeof reply);
    /* the answers, one after another */
    for (size_t at = 0; at < n;) {
        char *a = reply + at, *end = strstr(a, "\r\n\r\n");
        unsigned status = 0;
        contract(end && sscanf(a, "HTTP/1.1 %3u ", &status) == 1 && status >= 100,
                 "not an HTTP/1.1 answer", a);
        *end = '\0';
        if (status == 100) { /* the interim answer to Expect: 100-continue */
            at = (size_t)(end + 4 - reply);
            continue;
        }
        const char *cl = strstr(a, "\r\nContent-Length: ");
        contract(cl != NULL, "no Content-Length", a);
        size_t len = strtoul(cl + 18, NULL, 10), body = (size_t)(end + 4 - reply);
        if (strstr(a, "\r\nX-Head: 1")) {
            at = body;
            continue;
        }
        contract(body + len <= n, "answer shorter than its Content-Length", a);
        if (status >= 400) {
            contract(strstr(a, "\r\nContent-Type: application/json") != NULL,
                     "an error that is not JSON", a);
            json_error_t je;
            json_t *j = json_loadb(reply + body, len, 0, &je);
            contract(j && json_is_string(json_object_get(j, "error")) &&
                         json_is_string(json_object_get(j, "message")),
                     "an error body that is not the error object", reply + body);
            json_decref(j);
        }
        at = body + len;
    }
    return 0;
}
