/* core_http.h: a small, strict HTTP/1.1 server for trail's endpoints (`trail serve`'s public and
 * admin listeners, the Kafka worker's /metrics).
 *
 * Why not a library: libmicrohttpd answers the requests its parser refuses (bad request line,
 * unsupported version, malformed chunked body, bad Content-Length, oversized heads) with its own
 * HTML pages and offers no hook to replace them, while the API promises JSON for every error
 * (schemas/rank-api.md). Here every protocol error goes through the caller's error hook, which
 * writes the JSON answer; it is counted, logged, and the connection is closed after it.
 *
 * Threads: one acceptor and K workers. The acceptor accepts, applies the connection limits (in
 * all and per client address) and hands each connection to a worker, round robin, skipping
 * workers that are inside a handler when one is free. A worker owns its connections for their
 * life: one epoll set, non-blocking sockets, a state machine per connection (head, body, answer,
 * lingering close), and the hooks run on it, one request at a time. Every thread is created with
 * all signals blocked (the process handles them in one place). Nothing else is shared but the
 * limits' counters.
 *
 * What is accepted (RFC 9112, strictly): a request line `METHOD SP origin-form SP HTTP/1.0|1.1`
 * with CRLF line ends (empty lines before it are skipped); header lines `name: value` (a token,
 * no space before the colon, no obs-fold, no control bytes); a body by Content-Length (digits
 * only; equal duplicates allowed) or `Transfer-Encoding: chunked` (extensions and trailers read
 * and ignored), never both; HTTP/1.1 needs exactly one Host. Keep-alive is HTTP/1.1's default
 * (`Connection: close` ends it); HTTP/1.0 connections close after one answer. `Expect:
 * 100-continue` gets its 100 before the body is read. HEAD answers carry the headers only.
 *
 * Each refusal, its status and error kind (the caller's error hook writes the body):
 *   400 bad_request         malformed request line, header line, Host missing or repeated,
 *                           Content-Length with Transfer-Encoding
 *   400 bad_content_length  Content-Length not a decimal number, or two that differ
 *   400 bad_chunked_body    a chunk size that is not hex, a chunk without its CRLF, bad trailers
 *   413 body_too_large      Content-Length above max_body (before the body is read), or a chunked
 *                           body past it (as soon as a chunk size takes it there)
 *   414 uri_too_long        request target above max_uri bytes
 *   431 headers_too_large   header lines above max_headers bytes in all (or above 100 lines)
 *   501 unsupported_transfer_encoding  a Transfer-Encoding other than chunked
 *   503 overloaded          over max_connections or max_connections_per_ip: answered at once,
 *                           before any request byte is read
 *   505 http_version_not_supported  a well-formed HTTP version other than 1.0 and 1.1
 * A connection whose request does not arrive within read_timeout_s (of its accept, or of the
 * previous answer) is closed without an answer, however its bytes trickle in; one whose client
 * reads nothing of an answer for that long too. After an error the answer is written, the
 * sending side shut down, and what the client still sends is read and dropped for a short while
 * (so that the client reads the answer instead of a reset), then the connection is closed.
 */
#ifndef TRAIL_CORE_HTTP_H
#define TRAIL_CORE_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct core_http_server core_http_server;

/* One request, as the hooks see it. Valid only during the hook call it is given to. */
typedef struct core_http_req {
    const char *method; /* "" when the request line was not read (an early refusal) */
    const char *path;   /* the target up to '?' ("" when not read) */
    const char *query;  /* after '?' (NULL: no '?') */
    unsigned minor;     /* HTTP/1.minor */
    int is_head;        /* method HEAD: the answer goes without its body */
    const char *body;   /* the body (decoded from chunks), body_len bytes; NULL when empty */
    size_t body_len;
    const struct sockaddr *peer; /* the client's address (AF_INET, AF_INET6 or AF_UNIX) */
    int64_t t0;                  /* core_now_ns() when the request's first byte was read (or the
                                  * connection accepted, for a refusal before any byte) */
    unsigned status;             /* the status answered, 0 while none is */
    void *data;                  /* req_data bytes of the caller's, zeroed for each request */
    struct core_http_conn *conn; /* private */
} core_http_req;

typedef struct core_http_hooks {
    void *ctx;
    /* The head is read and valid (framing checked); the body is not read yet. May answer (a
     * refusal that needs no body: 404, 405, 401...): then the body is not read and the
     * connection closes after the answer. NULL: every request goes on to handle. */
    void (*head)(void *ctx, core_http_req *rq);
    /* The body is in: answer with core_http_respond (a handler that does not is answered by the
     * error hook, 500 "other"). */
    void (*handle)(void *ctx, core_http_req *rq);
    /* A refusal of the layer's (the table above): answer it with core_http_respond, a JSON body
     * naming kind and message. The request's method, path and headers are there as far as they
     * were read (rq->method "" if none). Required. */
    void (*error)(void *ctx, core_http_req *rq, unsigned status, const char *kind,
                  const char *message);
    /* The request is over: its answer written (rq->status), or the connection cut first (status
     * 0). Called once for every request that reached head or error. For logs and counters. */
    void (*done)(void *ctx, core_http_req *rq, int64_t latency_ns);
} core_http_hooks;

typedef struct core_http_conf {
    uint32_t threads;                /* K workers (>= 1) */
    uint32_t max_connections;        /* open connections in all (>= 1) */
    uint32_t max_connections_per_ip; /* per client IP address (0: no limit; Unix peers: none) */
    uint32_t read_timeout_s;         /* the read deadline (>= 1) */
    size_t max_uri;                  /* bytes of the request target */
    size_t max_headers;              /* bytes of the header lines in all, CRLFs included */
    size_t max_body;                 /* bytes of a body */
    size_t req_data;                 /* bytes of the caller's per-request state (rq->data) */
    const char *name;                /* for log lines ("serve", "metrics") */
    core_http_hooks hooks;
} core_http_conf;

/** @brief Split a listen address, "HOST:PORT", "[IPv6]:PORT" or ":PORT", into host (brackets
 *  removed; "" for ":PORT") and port. A bare IPv6 address needs its brackets.
 *  @return 0, or -1 with the reason in why. */
int core_http_split_addr(const char *addr, char *host, size_t cap, uint16_t *port, char *why,
                         size_t why_size);
/** @brief A listening TCP socket on sa (SO_REUSEADDR, non-blocking, close-on-exec).
 *  @return the descriptor, or -1 with errno. */
int core_http_listen_tcp(const struct sockaddr *sa, socklen_t len);

/** @brief Serve on listen_fd (a listening TCP or Unix stream socket; owned from here on, also on
 *  failure). @return CORE_OK, CORE_EINVAL (bad conf) or CORE_ENOMEM/CORE_EIO, reason in err. */
int core_http_start(core_http_server **out, int listen_fd, const core_http_conf *conf, char *err,
                    size_t cap);

/** @brief The bound TCP port (0 for a Unix socket). */
uint16_t core_http_port(const core_http_server *s);

/** @brief A header's value (the first of that name, any letter case; leading and trailing blanks
 *  removed), or NULL. */
const char *core_http_header(const core_http_req *rq, const char *name);

/** @brief Answer rq: status, Content-Type, the body (copied), and extra header lines (each
 *  "Name: value\r\n", or NULL). Date, Content-Length and, when the connection closes after it,
 *  Connection: close are added. Once per request. @return 0, or -1 (answered already, or out of
 *  memory: the connection is then closed without an answer). */
int core_http_respond(core_http_req *rq, unsigned status, const char *content_type,
                      const char *body, size_t len, const char *headers);

/** @brief The JSON error body every endpoint answers with, {"error":"KIND","message":"..."} and a
 *  newline, the message escaped (and cut to fit out; kind is a fixed identifier).
 *  @return its length (< cap). */
size_t core_http_error_json(char *out, size_t cap, const char *kind, const char *message);

/** @brief Stop accepting (the listening socket is closed); requests in progress go on, each
 *  connection closes after its next answer, and idle kept-alive ones are closed. */
void core_http_quiesce(core_http_server *s);

/** @brief Close every connection (done is called for requests cut), join the threads, free.
 *  NULL-safe. */
void core_http_stop(core_http_server *s);

#endif
