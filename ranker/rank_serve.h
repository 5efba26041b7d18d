/* rank_serve.h: the HTTP scoring server (schemas/rank-api.md): POST /v1/score, GET /healthz,
 * GET /metrics, POST /admin/reload, with hot model reload.
 *
 * Threads: the HTTP layer (core_http.h) runs K worker threads and an acceptor. Each worker owns
 * one of K worker slots (an enc_reader, a parsed-request buffer, a window buffer, a response
 * buffer, all allocated at start; a slot's reader is used by its thread only), and each request
 * takes a reference to the served model; the served model carries one rank_scratch per slot,
 * sized for it when it was loaded. So parsing, the store read and scoring allocate nothing; what
 * a connection allocates (its buffers, kept across its requests: the body at most max_body) is
 * core_http's. Each request reads one model from start to end.
 *
 * Reload (rank_server_reload; SIGHUP in `trail serve`; POST /admin/reload on the admin listener):
 * the new model is loaded and verified completely, checked against the store's encoding, and its
 * scratch allocated, all off the request path; then one pointer swap under a mutex makes it the
 * served model. Requests that hold the old one finish on it; the last reference frees it.
 *
 * Abuse (rank_server_conf's limits, enforced by core_http): a connection past max_connections or
 * max_connections_per_ip is answered 503 in JSON and closed as soon as it is accepted; one whose
 * request is not read within read_timeout_s is closed; every malformed request is answered in
 * JSON with its own error kind (schemas/rank-api.md, "Errors").
 *
 * Admin: /admin/reload is served only by a second core_http server (a few threads) on its own
 * listener, a Unix socket (file permissions decide who reloads) or a TCP address (optionally with
 * a bearer token), never by the public listener: a peer-address rule cannot tell a client from
 * a reverse proxy on the same host.
 *
 * Logs: every request carries an id (X-Request-Id); an optional access log gets one line per
 * request, written with a single write(2) from the thread that completed it (no lock, and lines
 * of different threads do not interleave); client errors are logged at info, rate-limited.
 *
 * Not here: signal handling and argument parsing (serve_cli.c), request parsing (rank_request.h),
 * the counters (rank_metrics.h), scoring itself (rank_score.h), the store (enc_store.h).
 */
#ifndef TRAIL_RANK_SERVE_H
#define TRAIL_RANK_SERVE_H

#include "enc_store.h"
#include "mdl.h"
#include "rank_net.h"

#include <stddef.h>
#include <stdint.h>

typedef struct rank_server rank_server;

typedef struct rank_server_conf {
    const char *model_path;  /* the model file; a reload without a path rereads it */
    const char *store_path;  /* the encoder's store directory (opened read-mostly) */
    enc_store *store;        /* or an open store to borrow (then store_path is ignored) */
    const char *listen_host; /* IPv4 address to bind (default "127.0.0.1") */
    uint16_t port;           /* 0: an ephemeral port (rank_server_port tells which) */
    uint32_t threads;        /* K: HTTP threads and worker slots (default 4) */
    uint32_t max_candidates; /* per request (default 2000) */
    size_t max_body;         /* bytes (default 1 MiB) */
    uint32_t window;         /* the store's raw window size; 0 = as the store was created */
    uint32_t recent;         /* the store's recent size; 0 = as the store was created */
    uint32_t drain_ms;       /* how long stop waits for in-flight requests (default 10,000) */
    int create_store;        /* 1: create store_path if it holds no store (default 0: refused) */
    /* Connection abuse (schemas/rank-api.md, "Limits"): a connection over a limit is answered 503
     * overloaded and closed as soon as it is accepted, before any byte is read. */
    uint32_t max_connections;        /* open connections in all (default 1000; >= threads) */
    uint32_t max_connections_per_ip; /* open connections per client address (default 64; 0: none) */
    uint32_t read_timeout_s; /* read deadline: a request's head and body must arrive within this
                              * of the connection opening or the previous answer, else the
                              * connection is closed; also how long a client may read nothing
                              * of its answer (default 5) */
    /* The admin listener (POST /admin/reload, and GET /healthz and /metrics), apart from the
     * public one, which answers /admin/reload 404: at most one of admin_socket and admin_host.
     * Neither: no admin endpoint (reload through rank_server_reload, SIGHUP in `trail serve`). */
    const char *admin_socket; /* a Unix socket path, created mode 0600 (a stale socket there is
                               * replaced; one a live server answers on is an error), removed at
                               * stop */
    const char *admin_host;   /* or an IPv4 address to listen on for admin, with admin_port (0: an
                               * ephemeral port, rank_server_admin_port); other than loopback only
                               * with admin_token */
    uint16_t admin_port;
    const char *admin_token; /* if set, every admin request needs "Authorization: Bearer <it>":
                              * 401 without, 403 with another token */
    /* Operators' logs (schemas/rank-api.md, "Logs and request ids"). */
    const char *access_log; /* one line per request, both listeners: a file (created mode 0640,
                             * appended), "-" for stdout, NULL for none */
    uint32_t log_4xx_per_s; /* client errors (4xx) logged at info, at most this many lines a
                             * second; the rest are counted and the count logged (default 10) */
} rank_server_conf;

/* X-Request-Id: a client's own id is echoed when it is 1..RANK_REQUEST_ID_MAX bytes of printable
 * ASCII without spaces, quotes or backslashes; otherwise (or without one) the server makes one,
 * a random per-process prefix and a counter. Every answer of the application carries it, and the
 * access log and the request's error log lines name it. */
#define RANK_REQUEST_ID_MAX 128

/* Request-head limits answered in JSON (414 uri_too_long, 431 headers_too_large), however far a
 * request goes past them: core_http stops reading a head at its limit. */
#define RANK_MAX_URI 8192      /* bytes of the request target, query included */
#define RANK_MAX_HEADERS 16384 /* bytes of all header lines as sent (name, ":", value, CRLF) */

void rank_server_conf_default(rank_server_conf *conf);

/** @brief Open the store, load and check the model, allocate every slot, and start listening.
 *  @return CORE_OK; CORE_EINVAL (bad conf), a load error of mdl_model_load, CORE_EMISMATCH (the
 *  model's encoding_version differs from the store's buckets), CORE_ESTORE, CORE_EIO (cannot
 *  bind) or CORE_ENOMEM, with the reason in errstr. */
int rank_server_start(rank_server **out, const rank_server_conf *conf, char *errstr,
                      size_t errstr_size);

/** @brief The port the server listens on. */
uint16_t rank_server_port(const rank_server *srv);

/** @brief The admin listener's TCP port (admin_host), 0 if it has none. */
uint16_t rank_server_admin_port(const rank_server *srv);

/** @brief Load path (NULL: the current model path), verify it, check its encoding against the
 *  store, allocate its scratch, and swap it in. On any failure the old model keeps serving.
 *  On success a given path becomes the current one.
 *  @param[out] version the served model_version in hex after the call (17 bytes), or NULL.
 *  @return CORE_OK, CORE_EMISMATCH, or the error of mdl_model_load / rank_scratch_new, with the
 *  reason in errstr (also logged). @remark Thread-safe; reloads are serialized. */
int rank_server_reload(rank_server *srv, const char *path, char version[17], char *errstr,
                       size_t errstr_size);

/** @brief Whether an address is loopback: 127.0.0.0/8, ::1, or ::ffff:127.x.y.z (an admin TCP
 *  listener elsewhere needs a token). */
struct sockaddr;
int rank_addr_is_loopback(const struct sockaddr *sa);

/** @brief Stop accepting, wait up to drain_ms for in-flight requests, stop, free everything.
 *  NULL-safe. */
void rank_server_stop(rank_server *srv);

/** @brief h's stored part from a user's view (zero-copy: valid while the view's read transaction
 *  is open; the window, when the model reads it, is the caller's): buckets, the sums' length and
 *  the recent sequence. @return CORE_OK, or CORE_EMISMATCH with the reason in err when the model
 *  reads buckets encoded for another (encoding_version, S, tau, C). */
int rank_history_from_view(rank_history *h, const enc_user_view *v, const mdl_model *m,
                           uint64_t user, char *err, size_t err_size);

#endif
