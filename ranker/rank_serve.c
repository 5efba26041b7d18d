/* rank_serve.c: the HTTP scoring server (see rank_serve.h for the threading and reload design). */
#include "rank_serve.h"

#include "core_alloc.h"
#include "core_cpu.h"
#include "core_err.h"
#include "core_http.h"
#include "core_json.h"
#include "core_log.h"
#include "core_util.h"
#include "core_version.h"
#include "mdl.h"
#include "rank_isa.h"
#include "rank_metrics.h"
#include "rank_request.h"
#include "rank_score.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* A model being served, with one scratch per worker slot. Freed by its last reference. */
typedef struct served_model {
    mdl_model *m;
    rank_scratch **scratch; // (K)
    uint32_t K;
    _Atomic int refs;
    char version[17], enc_version[17];
    int64_t loaded_at; /* wall-clock seconds when it was loaded */
    char *path;        /* owned: the file it was loaded from (GET /v1/models/current) */
} served_model;

/* What one request in flight borrows; K of them, allocated at start. */
typedef struct worker_slot {
    enc_reader *rd;
    rank_request *rq;
    sch_behavior *window; // (conf.window) for long=attention models
    float *scores;        // (max_candidates)
    char *out;            // (out_cap) the response body
    size_t out_cap;
} worker_slot;

/* What a listener's hooks get as ctx: the server, and which listener it is. */
typedef struct listener {
    struct rank_server *srv;
    int admin;
} listener;

struct rank_server {
    rank_server_conf conf;
    listener pub, adm;
    core_http_server *admin_http; /* the admin listener, or NULL */
    uint16_t admin_port;
    char *admin_path; /* owned: the Unix socket to remove at stop */
    int admin_made;   /* admin_path was bound by this server */
    dev_t admin_dev;  /* the socket file it made (removed only if it is still that file) */
    ino_t admin_ino;
    char *admin_token; /* owned copy */
    char *model_path;  /* owned copy; changes with a reload that names a path */
    enc_store *st;
    int own_store;
    core_http_server *http; /* the public listener */
    uint16_t port;
    rank_metrics *mt;

    pthread_mutex_t mu; /* guards cur */
    served_model *cur;
    worker_slot *slots;         // (K) one per HTTP thread
    _Atomic uint32_t next_slot; /* slots handed to threads so far */

    pthread_mutex_t reload_mu; /* one reload at a time */
    _Atomic int in_flight;     /* requests between their routing and completion */

    /* logs (rank_serve.h, "Logs") */
    int access_fd;       /* -1: no access log */
    int own_access_fd;   /* access_fd was opened here (closed at stop) */
    char rid_prefix[17]; /* generated request ids: this random prefix, '-', a counter */
    _Atomic uint64_t rid_next;
    _Atomic int64_t rej_sec;         /* the rate limit of client-error lines: the current second */
    _Atomic uint32_t rej_n;          /* lines logged in it */
    _Atomic uint64_t rej_suppressed; /* lines not logged since the last summary */
};

// ---------------------------------------------------------------------------------------------
// Served models and slots

static void served_free(served_model *sm) {
    if (!sm) return;
    for (uint32_t i = 0; sm->scratch && i < sm->K; i++)
        rank_scratch_destroy(sm->scratch[i]);
    core_free(sm->scratch);
    mdl_model_destroy(sm->m);
    core_free(sm->path);
    core_free(sm);
}

static void served_release(served_model *sm) {
    if (sm && atomic_fetch_sub_explicit(&sm->refs, 1, memory_order_acq_rel) == 1) served_free(sm);
}

static served_model *served_acquire(rank_server *srv) {
    pthread_mutex_lock(&srv->mu);
    served_model *sm = srv->cur;
    atomic_fetch_add_explicit(&sm->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&srv->mu);
    return sm;
}

/* The checks a model must pass before it may serve this store. */
static int check_model(rank_server *srv, const mdl_model *m, const char *path, char *err,
                       size_t cap) {
    uint64_t sv = enc_store_encoding_version(srv->st);
    if (mdl_reads_buckets(&m->cfg) && sv != 0 && sv != m->encoding_version) {
        char a[17], b[17];
        mdl_version_hex(m->encoding_version, a);
        mdl_version_hex(sv, b);
        snprintf(
            err, cap,
            "%s: encoding_version %s does not match the store's buckets (%s); reencode the store "
            "with this model first",
            path, a, b);
        return CORE_EMISMATCH;
    }
    char wmsg[256];
    if (mdl_window_mismatch(&m->cfg, srv->conf.window, wmsg, sizeof wmsg))
        CORE_LOG(CORE_LOG_WARNING, "serve: %s: %s", path, wmsg);
    if (m->cfg.short_kind != MDL_SHORT_NONE && m->cfg.n_recent > srv->conf.recent)
        CORE_LOG(CORE_LOG_WARNING,
                 "serve: model uses %u recent behaviors, the store keeps %u: %s "
                 "scores with fewer than it was trained on",
                 m->cfg.n_recent, srv->conf.recent, path);
    return CORE_OK;
}

/* The model at path, if it passes check_model (else nothing is left loaded). */
static int model_load_checked(rank_server *srv, const char *path, mdl_model **out, char *err,
                              size_t cap) {
    int rc = mdl_model_load(out, path, err, cap);
    if (rc == CORE_OK && (rc = check_model(srv, *out, path, err, cap)) != CORE_OK) {
        mdl_model_destroy(*out);
        *out = NULL;
    }
    return rc;
}

/* Takes ownership of m (freed on failure too); path is the file it came from. */
static int served_new(served_model **out, rank_server *srv, mdl_model *m, const char *path,
                      char *err, size_t cap) {
    served_model *sm = core_calloc(1, sizeof *sm);
    int rc = CORE_ENOMEM;
    if (!sm) {
        mdl_model_destroy(m);
        snprintf(err, cap, "out of memory");
        return CORE_ENOMEM;
    }
    sm->m = m;
    sm->K = srv->conf.threads;
    atomic_init(&sm->refs, 1);
    mdl_version_hex(m->model_version, sm->version);
    mdl_version_hex(m->encoding_version, sm->enc_version);
    sm->loaded_at = core_wall_s();
    if (!(sm->path = core_strdup(path)) || !(sm->scratch = core_calloc(sm->K, sizeof *sm->scratch)))
        goto fail;
    uint32_t max_T = mdl_reads_window(&m->cfg) ? srv->conf.window : 0;
    for (uint32_t i = 0; i < sm->K; i++)
        if ((rc = rank_scratch_new(&sm->scratch[i], m, srv->conf.max_candidates, max_T))) goto fail;
    *out = sm;
    return CORE_OK;
fail:
    snprintf(err, cap, "allocating scratch for %u candidates: %s", srv->conf.max_candidates,
             core_strerror(rc));
    served_free(sm);
    return rc;
}

/* The calling thread's slot. Each of the K HTTP threads takes one on its first request and keeps
 * it, so a slot's reader is only ever used by one thread (enc_store.h: one reader per thread) and
 * no lock is needed: a thread runs one handler at a time. -1 if more threads than slots call. */
static _Thread_local const rank_server *tl_srv;
static _Thread_local int tl_slot;

static int slot_of_thread(rank_server *srv) {
    if (tl_srv != srv) {
        uint32_t i = atomic_fetch_add(&srv->next_slot, 1);
        tl_srv = srv;
        tl_slot = i < srv->conf.threads ? (int)i : -1;
    }
    return tl_slot;
}

// ---------------------------------------------------------------------------------------------
// Reload

/* wait 0: CORE_EBUSY at once if another reload is loading (the admin endpoint answers 409 while
 * a slow or stuck load, such as a model path that is a FIFO, holds the first) */
static int reload(rank_server *srv, const char *path, char version[17], char *errstr,
                  size_t errstr_size, int wait) {
    mdl_model *m = NULL;
    served_model *sm = NULL, *old = NULL;
    char *new_path = NULL;
    int rc;
    if (wait) {
        pthread_mutex_lock(&srv->reload_mu);
    } else if (pthread_mutex_trylock(&srv->reload_mu) != 0) {
        snprintf(errstr, errstr_size, "a reload is in progress; try again when it has finished");
        if (version) {
            served_model *cur = served_acquire(srv);
            memcpy(version, cur->version, 17);
            served_release(cur);
        }
        return CORE_EBUSY;
    }
    const char *p = path ? path : srv->model_path;
    int64_t t0 = core_now_ns();
    if ((rc = model_load_checked(srv, p, &m, errstr, errstr_size))) goto fail;
    if (path && !(new_path = core_strdup(path))) {
        mdl_model_destroy(m);
        rc = CORE_ENOMEM;
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    if ((rc = served_new(&sm, srv, m, p, errstr, errstr_size))) goto fail; // frees m
    char variant[96];
    mdl_variant_str(&sm->m->cfg, variant, sizeof variant);
    pthread_mutex_lock(&srv->mu);
    old = srv->cur;
    srv->cur = sm;
    pthread_mutex_unlock(&srv->mu);
    if (new_path) {
        core_free(srv->model_path);
        srv->model_path = new_path;
        new_path = NULL;
    }
    rank_metrics_set_model(srv->mt, sm->version, sm->enc_version, variant);
    rank_metrics_reload(srv->mt, 1);
    CORE_LOG(CORE_LOG_NOTICE,
             "serve: reloaded path=%s model_version=%s previous=%s variant=%s ms=%.1f", p,
             sm->version, old->version, variant, (double)(core_now_ns() - t0) / 1e6);
    if (version) memcpy(version, sm->version, 17);
    pthread_mutex_unlock(&srv->reload_mu);
    served_release(old);
    return CORE_OK;
fail:
    core_free(new_path);
    rank_metrics_reload(srv->mt, 0);
    CORE_LOG(CORE_LOG_ERR, "serve: reload refused path=%s error=%s reason=\"%s\" serving=%s", p,
             core_strerror(rc), errstr, srv->cur->version);
    if (version) memcpy(version, srv->cur->version, 17);
    pthread_mutex_unlock(&srv->reload_mu);
    return rc;
}

int rank_server_reload(rank_server *srv, const char *path, char version[17], char *errstr,
                       size_t errstr_size) {
    return reload(srv, path, version, errstr, errstr_size, 1);
}

// ---------------------------------------------------------------------------------------------
// HTTP plumbing

/* One request's own state: core_http's per-request data (rq->data), zeroed for each request. */
typedef struct req_state {
    rank_endpoint ep;
    int routed;          /* passed the head's checks; counted in srv->in_flight */
    int counted;         /* counted in trail_requests_total */
    const char *kind;    /* the error kind answered (a static string), or NULL */
    uint32_t candidates; /* scored */
    char method[12];     /* for the access log */
    char target[160];    /* the request target as received, cut and escaped (access log only) */
    char rid[RANK_REQUEST_ID_MAX + 1]; /* X-Request-Id */
} req_state;

// ---------------------------------------------------------------------------------------------
// Request ids and operators' logs

/* Whether a client's X-Request-Id may be echoed: 1..RANK_REQUEST_ID_MAX bytes of printable ASCII
 * without spaces, quotes or backslashes, so that it is one token in a log line and needs no
 * escaping anywhere it goes. */
static int request_id_sane(const char *id) {
    size_t n = 0;
    for (; id[n]; n++)
        if (n == RANK_REQUEST_ID_MAX || id[n] <= ' ' || id[n] > '~' || id[n] == '"' ||
            id[n] == '\\')
            return 0;
    return n > 0;
}

/* A new id: this process's random prefix and the next number (unique within the process, and
 * across processes but for a 2^-64 chance). */
static void request_id_new(rank_server *srv, char rid[RANK_REQUEST_ID_MAX + 1]) {
    snprintf(
        rid, RANK_REQUEST_ID_MAX + 1, "%s-%llu", srv->rid_prefix,
        (unsigned long long)atomic_fetch_add_explicit(&srv->rid_next, 1, memory_order_relaxed));
}

/* The request's id: the client's, if sane, else a new one. */
static void request_id(rank_server *srv, const core_http_req *rq, req_state *cs) {
    const char *id = core_http_header(rq, "X-Request-Id");
    if (id && request_id_sane(id))
        snprintf(cs->rid, sizeof cs->rid, "%s", id);
    else
        request_id_new(srv, cs->rid);
}

/* The rate limit of client-error lines: whether one more may be logged now (at most
 * log_4xx_per_s in each second). Each line not logged is counted, and the count is logged,
 * lock-free, by the first line of a later second (or at stop): logged + suppressed is exact. */
static void rejected_summary(rank_server *srv) {
    uint64_t k = atomic_exchange(&srv->rej_suppressed, 0);
    if (k)
        CORE_LOG(CORE_LOG_INFO,
                 "serve: rejected-request lines suppressed=%llu (more than %u a second)",
                 (unsigned long long)k, srv->conf.log_4xx_per_s);
}

static int rejected_log_ok(rank_server *srv) {
    if (core_log_level < CORE_LOG_INFO) return 0;
    int64_t now = core_now_ns() / 1000000000, w = atomic_load(&srv->rej_sec);
    if (w != now && atomic_compare_exchange_strong(&srv->rej_sec, &w, now)) {
        atomic_store(&srv->rej_n, 0);
        rejected_summary(srv);
    }
    if (atomic_fetch_add(&srv->rej_n, 1) < srv->conf.log_4xx_per_s) return 1;
    atomic_fetch_add(&srv->rej_suppressed, 1);
    return 0;
}

/* s into out (cap >= 4) as one log token: bytes outside printable ASCII, spaces, quotes and
 * backslashes as %XX (a target's own %XX escapes are kept as sent); cut to fit. */
static void log_token(char *out, size_t cap, const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s && n + 4 <= cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch <= ' ' || ch > '~' || ch == '"' || ch == '\\') {
            out[n++] = '%';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        } else {
            out[n++] = (char)ch;
        }
    }
    out[n] = '\0';
}

/* The peer's address for the access log: IPv4 or IPv6, "unix" on the admin socket. */
static void client_addr(const struct sockaddr *sa, char *out, size_t cap) {
    snprintf(out, cap, "-");
    if (!sa) return;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)cap);
    else if (sa->sa_family == AF_UNIX)
        snprintf(out, cap, "unix");
}

/* One access-log line: time (UTC), method, path, status (0: no answer: the connection was cut),
 * candidates, latency, request id, client address, and the error kind if any. One write(2), so
 * lines of different threads never interleave (a regular file opened O_APPEND, or a pipe: lines are
 * below PIPE_BUF). */
static void access_log(rank_server *srv, const core_http_req *rq, const req_state *cs,
                       int64_t latency_ns) {
    char line[1024], addr[INET6_ADDRSTRLEN + 8];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    client_addr(rq->peer, addr, sizeof addr);
    int n = snprintf(line, sizeof line,
                     "time=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ method=%s path=%s status=%u "
                     "candidates=%u latency_ms=%.3f request_id=%s client=%s%s%s\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, cs->method[0] ? cs->method : "-",
                     cs->target[0] ? cs->target : "-", rq->status, cs->candidates,
                     (double)latency_ns / 1e6, cs->rid[0] ? cs->rid : "-", addr,
                     cs->kind ? " error=" : "", cs->kind ? cs->kind : "");
    if (n < 0) return;
    if ((size_t)n >= sizeof line) { /* cannot happen with the fields' bounds; keep the line end */
        n = (int)sizeof line - 1;
        line[n - 1] = '\n';
    }
    ssize_t k = write(srv->access_fd, line, (size_t)n);
    (void)k; /* a full disk or a closed pipe loses lines, never requests */
}

/* extra: one more header line ("Name: value\r\n": a 405's Allow, a 401's WWW-Authenticate, an
 * overloaded answer's Retry-After), or NULL. */
static int respond_extra(core_http_req *rq, const req_state *cs, unsigned status, const char *type,
                         const char *body, size_t n, const char *extra) {
    char hdrs[RANK_REQUEST_ID_MAX + 128];
    size_t k = 0;
    if (cs->rid[0]) k = (size_t)snprintf(hdrs, sizeof hdrs, "X-Request-Id: %s\r\n", cs->rid);
    if (extra) snprintf(hdrs + k, sizeof hdrs - k, "%s", extra);
    return core_http_respond(rq, status, type, body, n, cs->rid[0] || extra ? hdrs : NULL);
}

static int respond(core_http_req *rq, const req_state *cs, unsigned status, const char *type,
                   const char *body, size_t n) {
    return respond_extra(rq, cs, status, type, body, n, NULL);
}

/* {"error": kind, "message": ..., "field": ..., "offset": ..., "line": ..., "column": ...} */
static int respond_error_extra(rank_server *srv, core_http_req *rq, req_state *cs, unsigned status,
                               const char *kind, const char *message, const rank_req_error *pe,
                               const char *extra) {
    char msg[512], field[160], body[1024];
    size_t n;
    core_json_escape(msg, sizeof msg, message);
    rank_metrics_error(srv->mt, kind);
    cs->kind = kind;
    if (pe) {
        core_json_escape(field, sizeof field, pe->field);
        int k = snprintf(
            body, sizeof body,
            "{\"error\":\"%s\",\"message\":\"%s\",\"field\":\"%s\",\"offset\":%zu,\"line\":%u,"
            "\"column\":%u}\n",
            kind, msg, field, pe->offset, pe->line, pe->col);
        n = (size_t)k < sizeof body ? (size_t)k : sizeof body - 1;
    } else {
        n = core_http_error_json(body, sizeof body, kind, message);
    }
    // a server-side failure is an event of note; a client's mistake is a counter and an info
    // line, rate-limited so that a misbehaving client cannot flood the log (so are the 5xx a
    // client causes: a transfer coding or HTTP version not spoken, a connection over a limit)
    int clients = status < 500 || status == 501 || status == 505 || !strcmp(kind, "overloaded");
    if (!clients)
        CORE_LOG(CORE_LOG_WARNING, "serve: failed status=%u kind=%s request_id=%s message=\"%s\"",
                 status, kind, cs->rid, msg);
    else if (rejected_log_ok(srv))
        CORE_LOG(CORE_LOG_INFO, "serve: rejected status=%u kind=%s request_id=%s message=\"%s\"",
                 status, kind, cs->rid, msg);
    return respond_extra(rq, cs, status, "application/json", body, n, extra);
}

/* A user whose stored record or window chunk failed its checksum or format check: the server's
 * fault for that user alone (500, kind damaged_user_state), not the store's (503, store). */
static int damaged_state(int rc) {
    return rc == CORE_ECHECKSUM || rc == CORE_EFORMAT;
}

static int respond_error(rank_server *srv, core_http_req *rq, req_state *cs, unsigned status,
                         const char *kind, const char *message, const rank_req_error *pe) {
    return respond_error_extra(srv, rq, cs, status, kind, message, pe, NULL);
}

/* Whether a Content-Type names application/json (parameters such as charset allowed). */
static int content_type_is_json(const char *ct) {
    static const char want[] = "application/json";
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, want, sizeof want - 1) != 0) return 0;
    ct += sizeof want - 1;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

int rank_addr_is_loopback(const struct sockaddr *sa) {
    if (!sa) return 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        const uint8_t *b = in6->sin6_addr.s6_addr;
        // ::1, or an IPv4-mapped 127.x.y.z (::ffff:127.0.0.1)
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && b[12] == 127);
    }
    return 0;
}

/* An admin request's bearer token, compared in time independent of where it differs.
 * @return 0 ok, 401 no "Authorization: Bearer", 403 another token. */
static unsigned admin_auth(const rank_server *srv, const core_http_req *rq) {
    const char *want = srv->admin_token;
    if (!want) return 0;
    const char *h = core_http_header(rq, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return 401;
    h += 7;
    while (*h == ' ')
        h++;
    if (!*h) return 401; // "Bearer" and nothing: no credentials
    size_t n = strlen(h), m = strlen(want);
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < m; i++)
        diff |= (unsigned char)(want[i] ^ (i < n ? h[i] : 0));
    return diff ? 403 : 0;
}

// ---------------------------------------------------------------------------------------------
// Endpoints

/* A score as "%.9g" writes it (9 significant digits: the float reads back exactly), without
 * printf for the common range [1e-4, 1): 1,000 scores per response made printf a visible share
 * of a request. Other values go through snprintf. */
static size_t format_score(char *out, size_t cap, float score) {
    double v = score;
    if (!(v >= 1e-4 && v < 1.0) || cap < 32) return (size_t)snprintf(out, cap, "%.9g", v);
    int lead = 0; /* zeros after the point before the first significant digit */
    while (v * 10.0 < 1.0) {
        v *= 10.0;
        lead++;
    }
    double t = v * 1e9, fl = floor(t); /* nine digits, 100000000..1000000000 */
    uint64_t d = (uint64_t)fl;
    if (t - fl > 0.5 || (t - fl == 0.5 && (d & 1))) d++; /* ties to even, as printf */
    if (d >= 1000000000u) {                              /* rounded up to the next power of ten */
        d /= 10;
        if (lead == 0) return (size_t)snprintf(out, cap, "%.9g", (double)score);
        lead--;
    }
    char dig[9];
    for (int i = 8; i >= 0; i--, d /= 10)
        dig[i] = (char)('0' + d % 10);
    int nd = 9;
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;
    size_t n = 0;
    out[n++] = '0';
    out[n++] = '.';
    for (int i = 0; i < lead; i++)
        out[n++] = '0';
    memcpy(out + n, dig, (size_t)nd);
    return n + (size_t)nd;
}

static int handle_score(rank_server *srv, core_http_req *rq, req_state *cs) {
    int64_t t0 = core_now_ns();
    rank_req_error pe;
    char msg[256];
    enc_user_view view;
    int ret;
    int si = slot_of_thread(srv);
    if (si < 0)
        return respond_error(srv, rq, cs, 503, "overloaded", "more HTTP threads than worker slots",
                             NULL);
    worker_slot *ws = &srv->slots[si];
    served_model *sm = served_acquire(srv);
    const mdl_model *m = sm->m;
    rank_request *req = ws->rq;
    int rc = rank_request_parse(req, rq->body ? rq->body : "", rq->body_len, &pe);
    if (rc) {
        ret = respond_error(srv, rq, cs, 400, pe.kind, pe.message, &pe);
        goto done;
    }
    cs->candidates = req->B;
    if (req->has_dense && req->n_dense != m->cfg.n_dense) {
        snprintf(msg, sizeof msg, "dense: %u values given, the model takes exactly %u",
                 req->n_dense, m->cfg.n_dense);
        ret = respond_error(srv, rq, cs, 400, "bad_dense", msg, NULL);
        goto done;
    }
    rank_history h;
    memset(&h, 0, sizeof h);
    h.now_ts = req->has_ts ? req->ts : core_wall_s();
    h.dense = req->has_dense && req->n_dense ? req->dense : NULL;
    int64_t age = -1;
    if ((rc = enc_reader_begin(ws->rd))) {
        snprintf(msg, sizeof msg, "reading the store: %s", core_strerror(rc));
        ret = respond_error(srv, rq, cs, 503, "store", msg, NULL);
        goto done;
    }
    rc = enc_reader_user(ws->rd, req->user_id, &view);
    if (rc == CORE_OK) {
        if ((rc = rank_history_from_view(&h, &view, m, req->user_id, msg, sizeof msg))) {
            enc_reader_end(ws->rd);
            ret = respond_error(srv, rq, cs, 503, "bad_user_state", msg, NULL);
            goto done;
        }
        age = core_wall_s() - view.last_ts;
        if (age < 0) age = 0;
        if (mdl_reads_window(&m->cfg) &&
            (rc = enc_reader_window(ws->rd, req->user_id, ws->window, srv->conf.window, &h.T))) {
            snprintf(msg, sizeof msg, "user %llu: reading the window: %s",
                     (unsigned long long)req->user_id, core_strerror(rc));
            enc_reader_end(ws->rd);
            ret = damaged_state(rc)
                      ? respond_error(srv, rq, cs, 500, "damaged_user_state", msg, NULL)
                      : respond_error(srv, rq, cs, 503, "store", msg, NULL);
            goto done;
        }
        h.window = ws->window;
    } else if (rc != CORE_ENOTFOUND) {
        snprintf(msg, sizeof msg, "user %llu: %s", (unsigned long long)req->user_id,
                 damaged_state(rc) ? "stored state failed its checksum or format check (damaged; "
                                     "trail inspect --verify)"
                                   : core_strerror(rc));
        enc_reader_end(ws->rd);
        ret = damaged_state(rc) ? respond_error(srv, rq, cs, 500, "damaged_user_state", msg, NULL)
                                : respond_error(srv, rq, cs, 503, "store", msg, NULL);
        goto done;
    } // CORE_ENOTFOUND: an unknown user is scored with an empty history
    // the views are zero-copy: the read transaction stays open until scoring is done
    uint64_t hit0, miss0, hit1, miss1; /* this slot's scratch is this thread's for the request */
    uint64_t qh0, qm0, qh1, qm1;
    rank_scratch_sigcache_stats(sm->scratch[si], &hit0, &miss0);
    rank_scratch_qcache_stats(sm->scratch[si], &qh0, &qm0);
    rc = rank_score(ws->scores, sm->scratch[si], m, &h, req->item_id, req->category_id, req->B);
    enc_reader_end(ws->rd);
    rank_scratch_sigcache_stats(sm->scratch[si], &hit1, &miss1);
    rank_metrics_sigcache(srv->mt, hit1 - hit0, miss1 - miss0);
    rank_scratch_qcache_stats(sm->scratch[si], &qh1, &qm1);
    rank_metrics_qcache(srv->mt, qh1 - qh0, qm1 - qm0);
    if (rc) {
        snprintf(msg, sizeof msg, "scoring failed: %s", core_strerror(rc));
        ret = respond_error(srv, rq, cs, 500, "scoring", msg, NULL);
        goto done;
    }
    size_t n = (size_t)snprintf(ws->out, ws->out_cap, "{\"model_version\":\"%s\",\"scores\":[",
                                sm->version);
    for (uint32_t b = 0; b < req->B; b++) {
        if (!isfinite(ws->scores[b])) {
            snprintf(msg, sizeof msg, "candidate %u scored a non-finite value", b);
            ret = respond_error(srv, rq, cs, 500, "scoring", msg, NULL);
            goto done;
        }
        if (b) ws->out[n++] = ',';
        n += format_score(ws->out + n, ws->out_cap - n, ws->scores[b]);
    }
    n += (size_t)snprintf(ws->out + n, ws->out_cap - n, "]}\n");
    ret = respond(rq, cs, 200, "application/json", ws->out, n);
    rank_metrics_scored(srv->mt, core_now_ns() - t0, req->B, age);
done:
    served_release(sm);
    return ret;
}

static int handle_reload(rank_server *srv, core_http_req *rq, req_state *cs) {
    char err[768], version[17], prev[17], body[256];
    const char *path = NULL;
    json_t *root = NULL;
    json_error_t jerr;
    int ret;
    if (rq->body_len) { // optional {"model": "/path/to/model"}
        root = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &jerr);
        const char *key;
        json_t *v;
        if (!root || !json_is_object(root)) {
            snprintf(err, sizeof err, "reload body: %s",
                     root ? "expected a JSON object" : jerr.text);
            ret = respond_error(srv, rq, cs, 400, root ? "bad_type" : "bad_json", err, NULL);
            goto done;
        }
        json_object_foreach(root, key, v) {
            if (strcmp(key, "model") != 0) {
                snprintf(err, sizeof err, "reload body: unknown field \"%.40s\" (fields: model)",
                         key);
                ret = respond_error(srv, rq, cs, 400, "unknown_field", err, NULL);
                goto done;
            }
            if (!json_is_string(v)) {
                ret = respond_error(srv, rq, cs, 400, "bad_type",
                                    "reload body: model: expected a string (a model file path)",
                                    NULL);
                goto done;
            }
            path = json_string_value(v);
        }
    }
    served_model *sm = served_acquire(srv);
    memcpy(prev, sm->version, sizeof prev);
    served_release(sm);
    int rc = reload(srv, path, version, err, sizeof err, 0);
    if (rc == CORE_EBUSY) {
        ret = respond_error(srv, rq, cs, 409, "reload_in_progress", err, NULL);
        goto done;
    }
    if (rc) {
        unsigned status = rc == CORE_EMISMATCH ? 409 : rc == CORE_ENOMEM ? 500 : 422;
        ret =
            respond_error(srv, rq, cs, status,
                          rc == CORE_EMISMATCH ? "encoding_mismatch" : "reload_failed", err, NULL);
        goto done;
    }
    int n =
        snprintf(body, sizeof body,
                 "{\"model_version\":\"%s\",\"previous_model_version\":\"%s\"}\n", version, prev);
    ret = respond(rq, cs, 200, "application/json", body, (size_t)n);
done:
    json_decref(root);
    return ret;
}

/* GET /v1/models/current: what is served, as the model-metadata endpoints of model servers have
 * it (schemas/rank-api.md, "Conventions"). Built with jansson: the model's path is the client's
 * text (any bytes, any length) and must come out as valid JSON. */
static int handle_model(rank_server *srv, core_http_req *rq, req_state *cs) {
    char variant[96], loaded[32], ascii[1024];
    served_model *sm = served_acquire(srv);
    const mdl_config *mc = &sm->m->cfg;
    rank_isa isa = rank_isa_current();
    time_t t = (time_t)sm->loaded_at;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(loaded, sizeof loaded, "%Y-%m-%dT%H:%M:%SZ", &tm);
    mdl_variant_str(mc, variant, sizeof variant);
    json_t *path = json_string(sm->path);
    if (!path) { // not UTF-8: its bytes escaped as the access log escapes them (and cut)
        log_token(ascii, sizeof ascii, sm->path);
        path = json_string(ascii);
    }
    // "o": the reference to path is the object's (or dropped if packing fails)
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:o*,s:I,s:s,s:s,s:s,"
        "s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:[I,I],s:I,s:s,s:I,s:I},"
        "s:{s:I,s:I},s:{s:s,s:s}}",
        "model_version", sm->version, "encoding_version", sm->enc_version, "variant", variant,
        "path", path, "loaded_at", (json_int_t)sm->loaded_at, "loaded_at_utc", loaded, "isa",
        rank_isa_name(isa), "precision", rank_isa_precision(isa), "config", "dim",
        (json_int_t)mc->C, "signatures", (json_int_t)mc->S, "bits", (json_int_t)mc->tau,
        "item_rows", (json_int_t)mc->item_rows, "cat_rows", (json_int_t)mc->cat_rows, "recent",
        (json_int_t)mc->n_recent, "blocks", (json_int_t)mc->n_blocks, "heads",
        (json_int_t)mc->n_heads, "ffn", (json_int_t)mc->ffn_dim, "tin_buckets",
        (json_int_t)mc->tin_buckets, "hidden", (json_int_t)mc->h1, (json_int_t)mc->h2, "dense",
        (json_int_t)mc->n_dense, "sdim_hash", mdl_hash_name(mc->sdim_hash), "cross",
        (json_int_t)mc->cross, "window", (json_int_t)mc->window, "store", "window",
        (json_int_t)srv->conf.window, "recent", (json_int_t)srv->conf.recent, "server", "name",
        "trail", "version", TRAIL_VERSION);
    served_release(sm);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!body)
        return respond_error(srv, rq, cs, 500, "other", "out of memory describing the model", NULL);
    size_t n = strlen(body);
    body[n] = '\n'; // json_dumps' NUL becomes the line end; respond copies n + 1 bytes
    int ret = respond(rq, cs, 200, "application/json", body, n + 1);
    free(body);
    return ret;
}

/* What a request's head says: its id, its method and target for the access log, and the endpoint
 * (admin endpoints only on the admin listener, scoring only on the public one). Also for a
 * request refused while its head was read, as far as it was. */
static void request_route(const listener *l, const core_http_req *rq, req_state *cs) {
    rank_server *srv = l->srv;
    const char *url = rq->path;
    request_id(srv, rq, cs);
    log_token(cs->method, sizeof cs->method, rq->method);
    if (srv->access_fd >= 0) {
        char target[sizeof cs->target];
        snprintf(target, sizeof target, "%s%s%s", url, rq->query ? "?" : "",
                 rq->query ? rq->query : "");
        log_token(cs->target, sizeof cs->target, target);
    }
    rank_endpoint ep = !strcmp(url, "/v1/score")            ? RANK_EP_SCORE
                       : !strcmp(url, "/healthz")           ? RANK_EP_HEALTHZ
                       : !strcmp(url, "/readyz")            ? RANK_EP_READYZ
                       : !strcmp(url, "/metrics")           ? RANK_EP_METRICS
                       : !strcmp(url, "/v1/models/current") ? RANK_EP_MODEL
                       : !strcmp(url, "/admin/reload")      ? RANK_EP_RELOAD
                                                            : RANK_EP_OTHER;
    if (l->admin ? ep == RANK_EP_SCORE : ep == RANK_EP_RELOAD) ep = RANK_EP_OTHER;
    cs->ep = ep;
}

/* The head is in and well-formed (core_http checked its framing and limits): refuse what is
 * refused before the body is read. */
static void on_head(void *ctx, core_http_req *rq) {
    const listener *l = ctx;
    rank_server *srv = l->srv;
    req_state *cs = rq->data;
    const char *url = rq->path, *method = rq->method;
    request_route(l, rq, cs);
    rank_endpoint ep = cs->ep;
    cs->counted = 1;
    if (l->admin) { // every admin request, whatever its path, shows the token first
        unsigned denied = admin_auth(srv, rq);
        if (denied == 401) {
            rank_metrics_request(srv->mt, RANK_EP_OTHER);
            respond_error_extra(
                srv, rq, cs, denied, "unauthorized",
                "the admin listener needs an \"Authorization: Bearer <token>\" header", NULL,
                "WWW-Authenticate: Bearer realm=\"trail admin\"\r\n");
            return;
        }
        if (denied) {
            rank_metrics_request(srv->mt, RANK_EP_OTHER);
            respond_error(srv, rq, cs, denied, "forbidden", "wrong admin token", NULL);
            return;
        }
    }
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    char msg[256];
    rank_metrics_request(srv->mt, ep);
    if (ep == RANK_EP_OTHER) {
        snprintf(msg, sizeof msg, "no such path: %.100s (paths: %s)", url,
                 l->admin ? "/admin/reload, /healthz, /readyz, /metrics, /v1/models/current"
                          : "/v1/score, /healthz, /readyz, /metrics, /v1/models/current; "
                            "/admin/reload is on the admin listener");
        respond_error(srv, rq, cs, 404, "not_found", msg, NULL);
        return;
    }
    int want_post = ep == RANK_EP_SCORE || ep == RANK_EP_RELOAD;
    if (want_post ? !post : !get) {
        snprintf(msg, sizeof msg, "%.16s %s: use %s", method, url, want_post ? "POST" : "GET");
        respond_error_extra(srv, rq, cs, 405, "method_not_allowed", msg, NULL,
                            want_post ? "Allow: POST\r\n" : "Allow: GET, HEAD\r\n");
        return;
    }
    const char *ct = core_http_header(rq, "Content-Type");
    if (ep == RANK_EP_SCORE && ct && !content_type_is_json(ct)) {
        char quoted[96]; /* the client's bytes, as the access log writes them */
        log_token(quoted, sizeof quoted, ct);
        snprintf(msg, sizeof msg, "Content-Type \"%s\": the body must be application/json", quoted);
        respond_error(srv, rq, cs, 415, "unsupported_media_type", msg, NULL);
        return;
    }
    cs->routed = 1;
    atomic_fetch_add(&srv->in_flight, 1);
}

/* The body is in: answer. */
static void on_handle(void *ctx, core_http_req *rq) {
    const listener *l = ctx;
    rank_server *srv = l->srv;
    req_state *cs = rq->data;
    switch (cs->ep) {
    case RANK_EP_SCORE:
        handle_score(srv, rq, cs);
        return;
    case RANK_EP_RELOAD:
        handle_reload(srv, rq, cs);
        return;
    case RANK_EP_HEALTHZ: {
        char body[96];
        served_model *sm = served_acquire(srv);
        int n = snprintf(body, sizeof body, "{\"status\":\"ok\",\"model_version\":\"%s\"}\n",
                         sm->version);
        served_release(sm);
        respond(rq, cs, 200, "application/json", body, (size_t)n);
        return;
    }
    case RANK_EP_READYZ: { /* ready: a model is served and the store answers a read */
        char body[256];
        served_model *sm = served_acquire(srv);
        int ok = enc_store_readable(srv->st);
        int n = snprintf(body, sizeof body,
                         "{\"status\":\"%s\",\"model_version\":\"%s\",\"store\":\"%s\"}\n",
                         ok ? "ready" : "not_ready", sm->version, ok ? "readable" : "unreadable");
        served_release(sm);
        respond(rq, cs, ok ? 200 : 503, "application/json", body, (size_t)n);
        return;
    }
    case RANK_EP_MODEL:
        handle_model(srv, rq, cs);
        return;
    case RANK_EP_METRICS: {
        char body[RANK_METRICS_MAX];
        uint64_t damaged, quarantined;
        enc_store_damage(srv->st, &damaged, &quarantined);
        rank_metrics_store_damage(srv->mt, damaged);
        int n = rank_metrics_render(srv->mt, body, sizeof body);
        if (n < 0)
            respond_error(srv, rq, cs, 500, "other", "metrics too large", NULL);
        else
            respond(rq, cs, 200, "text/plain; version=0.0.4", body, (size_t)n);
        return;
    }
    default: /* on_head answered every other endpoint */
        return;
    }
}

/* A request core_http refused (malformed, over a limit: core_http.h's table), or a connection
 * over a connection limit (no request read: an "overloaded" answer with Retry-After). */
static void on_error(void *ctx, core_http_req *rq, unsigned status, const char *kind,
                     const char *message) {
    const listener *l = ctx;
    req_state *cs = rq->data;
    if (!cs->rid[0]) request_route(l, rq, cs);
    if (!cs->counted) {
        cs->counted = 1;
        rank_metrics_request(l->srv->mt, cs->ep);
    }
    respond_error_extra(l->srv, rq, cs, status, kind, message, NULL,
                        status == 503 ? "Retry-After: 1\r\n" : NULL);
}

/* The request is over (answered, or its connection cut): counters and the access log. */
static void on_done(void *ctx, core_http_req *rq, int64_t latency) {
    rank_server *srv = ((const listener *)ctx)->srv;
    req_state *cs = rq->data;
    // only answered requests: one cut mid-body has no status
    if (rq->status) rank_metrics_http(srv->mt, cs->ep, rq->status, latency);
    if (srv->access_fd >= 0) access_log(srv, rq, cs, latency);
    if (cs->routed) atomic_fetch_sub(&srv->in_flight, 1);
}

/* A listener's core_http settings: the public one's limits, the hooks. */
static void http_conf(rank_server *srv, listener *l, core_http_conf *hc) {
    memset(hc, 0, sizeof *hc);
    hc->threads = srv->conf.threads;
    hc->max_connections = srv->conf.max_connections;
    hc->max_connections_per_ip = srv->conf.max_connections_per_ip;
    hc->read_timeout_s = srv->conf.read_timeout_s;
    hc->max_uri = RANK_MAX_URI;
    hc->max_headers = RANK_MAX_HEADERS;
    hc->max_body = srv->conf.max_body;
    hc->req_data = sizeof(req_state);
    hc->name = l->admin ? "serve admin" : "serve";
    hc->hooks = (core_http_hooks){l, on_head, on_handle, on_error, on_done};
}

// ---------------------------------------------------------------------------------------------
// Start and stop

/* The admin Unix socket, mode 0600: a stale one (nothing answers on it) is replaced, one a live
 * server answers on is refused. */
static int admin_unix_listen(rank_server *srv, int *out, char *err, size_t cap) {
    const char *path = srv->admin_path;
    struct sockaddr_un sa;
    struct stat st;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof sa.sun_path) {
        snprintf(err, cap, "serve: admin socket path '%s': empty or longer than %zu bytes", path,
                 sizeof sa.sun_path - 1);
        return CORE_EINVAL;
    }
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, n + 1);
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, cap, "serve: admin socket %s: exists and is not a socket", path);
            return CORE_EINVAL;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (probe >= 0) close(probe);
        if (live) {
            snprintf(err, cap,
                     "serve: admin socket %s: another server answers on it (give this one "
                     "another path)",
                     path);
            return CORE_EIO;
        }
        unlink(path); // stale: its server is gone
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, cap, "serve: admin socket: %s", strerror(errno));
        return CORE_EIO;
    }
    mode_t old = umask(0177); // born 0600: only the server's user may connect
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc == 0 && stat(path, &st) == 0) { // this file is ours to remove at stop
        srv->admin_made = 1;
        srv->admin_dev = st.st_dev;
        srv->admin_ino = st.st_ino;
    }
    if (rc != 0 || listen(fd, 16) != 0) {
        snprintf(err, cap, "serve: cannot listen on admin socket %s: %s", path, strerror(errno));
        close(fd);
        return CORE_EIO;
    }
    *out = fd;
    return CORE_OK;
}

/* The admin listener: a few threads, a few connections, no scoring. A reload stuck loading (a
 * model path that is a FIFO, slow storage) holds the thread it runs on; a new connection goes to
 * a thread that is not inside a handler, so the next admin request is answered (409). */
#define ADMIN_THREADS 4
#define ADMIN_CONNECTIONS 16

static int admin_start(rank_server *srv, char *err, size_t cap) {
    const rank_server_conf *conf = &srv->conf;
    int fd = -1, rc;
    if (conf->admin_socket) {
        if ((rc = admin_unix_listen(srv, &fd, err, cap))) return rc;
    } else {
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        sa.sin_port = htons(conf->admin_port);
        inet_pton(AF_INET, conf->admin_host, &sa.sin_addr); // checked by rank_server_start
        if ((fd = core_http_listen_tcp((struct sockaddr *)&sa, sizeof sa)) < 0) {
            snprintf(err, cap, "serve: cannot listen for admin on %s:%u: %s", conf->admin_host,
                     conf->admin_port, strerror(errno));
            return CORE_EIO;
        }
    }
    core_http_conf hc;
    http_conf(srv, &srv->adm, &hc);
    hc.threads = ADMIN_THREADS;
    hc.max_connections = ADMIN_CONNECTIONS;
    hc.max_connections_per_ip = 0;
    if ((rc = core_http_start(&srv->admin_http, fd, &hc, err, cap))) return rc;
    srv->admin_port = core_http_port(srv->admin_http);
    if (conf->admin_socket)
        CORE_LOG(CORE_LOG_NOTICE, "serve: admin listener unix:%s token=%s", srv->admin_path,
                 srv->admin_token ? "yes" : "no");
    else
        CORE_LOG(CORE_LOG_NOTICE, "serve: admin listener addr=%s:%u token=%s", conf->admin_host,
                 srv->admin_port, srv->admin_token ? "yes" : "no");
    return CORE_OK;
}

void rank_server_conf_default(rank_server_conf *conf) {
    enc_store_conf ec;
    enc_store_conf_default(&ec);
    memset(conf, 0, sizeof *conf);
    conf->listen_host = "127.0.0.1";
    conf->threads = 4;
    conf->max_candidates = 2000;
    conf->max_body = 1u << 20;
    conf->window = 0; /* the store's own sizes */
    conf->recent = 0;
    conf->drain_ms = 10000;
    conf->max_connections = 1000;
    conf->max_connections_per_ip = 64;
    conf->read_timeout_s = 5;
    conf->log_4xx_per_s = 10;
}

/* The access log's descriptor ("-": stdout) and the prefix of generated request ids. */
static int logs_open(rank_server *srv, char *err, size_t cap) {
    const char *path = srv->conf.access_log;
    uint64_t r;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) { // entropy not ready yet
        uint64_t x = (uint64_t)core_now_ns() ^ ((uint64_t)getpid() << 32);
        r = core_splitmix64(&x);
    }
    snprintf(srv->rid_prefix, sizeof srv->rid_prefix, "%016llx", (unsigned long long)r);
    if (!path) return CORE_OK;
    if (!strcmp(path, "-")) {
        srv->access_fd = STDOUT_FILENO;
        return CORE_OK;
    }
    srv->access_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (srv->access_fd < 0) {
        snprintf(err, cap, "serve: access log %s: %s", path, strerror(errno));
        return CORE_EIO;
    }
    srv->own_access_fd = 1;
    return CORE_OK;
}

/* The checks of conf that need nothing opened; sa: the public listener's address. */
static int conf_check(const rank_server_conf *conf, struct sockaddr_in *sa, char *errstr,
                      size_t errstr_size) {
    if (!conf->model_path || (!conf->store && !conf->store_path) || !conf->threads ||
        conf->threads > 1024 || !conf->max_candidates || conf->max_body < 64 ||
        conf->max_connections < conf->threads || !conf->read_timeout_s) {
        snprintf(errstr, errstr_size,
                 "serve: need a model, a store, 1..1024 threads, max_candidates > 0, "
                 "max_body >= 64, max_connections >= threads and read_timeout_s > 0");
        return CORE_EINVAL;
    }
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(conf->port);
    if (inet_pton(AF_INET, conf->listen_host ? conf->listen_host : "127.0.0.1", &sa->sin_addr) !=
        1) {
        snprintf(errstr, errstr_size, "serve: listen address '%s' is not an IPv4 address",
                 conf->listen_host);
        return CORE_EINVAL;
    }
    if (conf->admin_socket && conf->admin_host) {
        snprintf(errstr, errstr_size, "serve: an admin socket or an admin address, not both");
        return CORE_EINVAL;
    }
    if (conf->admin_token && !conf->admin_token[0]) {
        snprintf(errstr, errstr_size, "serve: the admin token is empty");
        return CORE_EINVAL;
    }
    if (conf->admin_host) {
        struct sockaddr_in as;
        memset(&as, 0, sizeof as);
        as.sin_family = AF_INET;
        if (inet_pton(AF_INET, conf->admin_host, &as.sin_addr) != 1) {
            snprintf(errstr, errstr_size, "serve: admin address '%s' is not an IPv4 address",
                     conf->admin_host);
            return CORE_EINVAL;
        }
        if (!conf->admin_token && (ntohl(as.sin_addr.s_addr) >> 24) != 127) {
            snprintf(errstr, errstr_size,
                     "serve: admin address %s is not loopback: it needs a token (anyone who "
                     "reaches it could reload the model)",
                     conf->admin_host);
            return CORE_EINVAL;
        }
    }
    return CORE_OK;
}

static int out_of_memory(char *errstr, size_t errstr_size) {
    snprintf(errstr, errstr_size, "serve: out of memory");
    return CORE_ENOMEM;
}

/* The store: the caller's, or opened here; the window and recent sizes conf leaves 0 are the
 * store's. */
static int store_open(rank_server *srv, char *errstr, size_t errstr_size) {
    const rank_server_conf *conf = &srv->conf;
    int rc;
    if (conf->store) {
        srv->st = conf->store;
    } else {
        enc_store_conf ec;
        enc_store_conf_default(&ec);
        ec.path = conf->store_path;
        ec.window = conf->window;
        ec.recent = conf->recent;
        ec.must_exist = !conf->create_store; /* a mistyped --store is refused */
        if ((rc = enc_store_open(&srv->st, &ec, errstr, errstr_size))) return rc;
        srv->own_store = 1;
    }
    /* 0 means "as the store was created"; a size that differs was refused by enc_store_open */
    if (!srv->conf.window) srv->conf.window = enc_store_window(srv->st);
    if (!srv->conf.recent) srv->conf.recent = enc_store_recent(srv->st);
    return CORE_OK;
}

/* The compute path (ISA, precision, OpenBLAS core), in the metrics and the log. */
static void compute_path_report(rank_server *srv) {
    rank_isa isa = rank_isa_current();
    char warning[512];
    rank_metrics_set_isa(srv->mt, rank_isa_name(isa), rank_isa_precision(isa), core_cpu_features(),
                         rank_isa_openblas_core());
    CORE_LOG(CORE_LOG_NOTICE,
             "serve: compute path isa=%s precision=%s cpu_features=\"%s\" openblas_core=%s",
             rank_isa_name(isa), rank_isa_precision(isa), core_cpu_features(),
             rank_isa_openblas_core());
    if (rank_isa_openblas_check(warning, sizeof warning))
        CORE_LOG(CORE_LOG_WARNING, "serve: %s", warning);
}

/* One worker slot per HTTP thread: a store reader, a request, the window, scores and body. What
 * was allocated before a failure is freed by rank_server_stop. */
static int slots_new(rank_server *srv, char *errstr, size_t errstr_size) {
    const rank_server_conf *conf = &srv->conf;
    int rc;
    if (!(srv->slots = core_calloc(conf->threads, sizeof *srv->slots)))
        return out_of_memory(errstr, errstr_size);
    for (uint32_t i = 0; i < conf->threads; i++) {
        worker_slot *ws = &srv->slots[i];
        if ((rc = enc_reader_new(srv->st, &ws->rd))) {
            snprintf(errstr, errstr_size, "serve: store reader: %s", core_strerror(rc));
            return rc;
        }
        if (rank_request_new(&ws->rq, conf->max_candidates, RANK_REQ_MAX_DENSE) ||
            !(ws->window = core_malloc(((size_t)conf->window + 1) * sizeof(sch_behavior))) ||
            !(ws->scores = core_malloc(((size_t)conf->max_candidates + 1) * sizeof(float))))
            return out_of_memory(errstr, errstr_size);
        ws->out_cap = (size_t)conf->max_candidates * 20 + 128; // "%.9g," is at most 16 bytes
        if (!(ws->out = core_malloc(ws->out_cap))) return out_of_memory(errstr, errstr_size);
    }
    return CORE_OK;
}

/* A warning when the open-file limit would stop accepting before max_connections. */
static void nofile_check(const rank_server_conf *conf) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)conf->max_connections + conf->threads + 32)
        CORE_LOG(CORE_LOG_WARNING,
                 "serve: max_connections=%u but the open-file limit is %llu: accepting will "
                 "fail before the connection limit is reached (raise ulimit -n)",
                 conf->max_connections, (unsigned long long)rl.rlim_cur);
}

/* The public listener on sa. */
static int public_start(rank_server *srv, const struct sockaddr_in *sa, char *errstr,
                        size_t errstr_size) {
    const rank_server_conf *conf = &srv->conf;
    int rc, lfd = core_http_listen_tcp((const struct sockaddr *)sa, sizeof *sa);
    if (lfd < 0) {
        snprintf(errstr, errstr_size, "serve: cannot listen on %s:%u: %s",
                 conf->listen_host ? conf->listen_host : "127.0.0.1", conf->port, strerror(errno));
        return CORE_EIO;
    }
    core_http_conf hc;
    http_conf(srv, &srv->pub, &hc);
    if ((rc = core_http_start(&srv->http, lfd, &hc, errstr, errstr_size))) return rc;
    srv->port = core_http_port(srv->http);
    return CORE_OK;
}

int rank_server_start(rank_server **out, const rank_server_conf *conf, char *errstr,
                      size_t errstr_size) {
    rank_server *srv = NULL;
    mdl_model *m = NULL;
    struct sockaddr_in sa;
    int rc = conf_check(conf, &sa, errstr, errstr_size);
    if (rc) return rc;
    if (!(srv = core_calloc(1, sizeof *srv))) goto oom;
    srv->conf = *conf;
    srv->access_fd = -1;
    srv->pub.srv = srv;
    srv->adm.srv = srv;
    srv->adm.admin = 1;
    pthread_mutex_init(&srv->mu, NULL);
    pthread_mutex_init(&srv->reload_mu, NULL);
    atomic_init(&srv->in_flight, 0);
    atomic_init(&srv->next_slot, 0);
    if (!(srv->model_path = core_strdup(conf->model_path))) goto oom;
    if (conf->admin_socket && !(srv->admin_path = core_strdup(conf->admin_socket))) goto oom;
    if (conf->admin_token && !(srv->admin_token = core_strdup(conf->admin_token))) goto oom;
    if (rank_metrics_new(&srv->mt)) goto oom;
    if ((rc = logs_open(srv, errstr, errstr_size))) goto fail;
    if ((rc = store_open(srv, errstr, errstr_size))) goto fail;
    // the model, checked against the store, with its scratch
    if ((rc = model_load_checked(srv, srv->model_path, &m, errstr, errstr_size))) goto fail;
    if ((rc = served_new(&srv->cur, srv, m, srv->model_path, errstr, errstr_size))) goto fail;
    char variant[96];
    mdl_variant_str(&m->cfg, variant, sizeof variant);
    rank_metrics_set_model(srv->mt, srv->cur->version, srv->cur->enc_version, variant);
    compute_path_report(srv);
    if ((rc = slots_new(srv, errstr, errstr_size))) goto fail;
    nofile_check(conf);
    if ((rc = public_start(srv, &sa, errstr, errstr_size))) goto fail;
    CORE_LOG(CORE_LOG_NOTICE,
             "serve: listening addr=%s:%u threads=%u model=%s model_version=%s encoding_version=%s "
             "variant=%s max_candidates=%u max_body=%zu max_connections=%u "
             "max_connections_per_ip=%u read_timeout_s=%u",
             conf->listen_host ? conf->listen_host : "127.0.0.1", srv->port, conf->threads,
             srv->model_path, srv->cur->version, srv->cur->enc_version, variant,
             conf->max_candidates, conf->max_body, conf->max_connections,
             conf->max_connections_per_ip, conf->read_timeout_s);
    // last: from here a reload may swap cur and model_path, which the line above reads
    if ((conf->admin_socket || conf->admin_host) && (rc = admin_start(srv, errstr, errstr_size)))
        goto fail;
    *out = srv;
    return CORE_OK;
oom:
    rc = out_of_memory(errstr, errstr_size);
fail:
    rank_server_stop(srv);
    return rc;
}

uint16_t rank_server_port(const rank_server *srv) {
    return srv->port;
}

uint16_t rank_server_admin_port(const rank_server *srv) {
    return srv->admin_port;
}

void rank_server_stop(rank_server *srv) {
    if (!srv) return;
    // the admin listener first: a reload in progress finishes (its thread is joined)
    core_http_stop(srv->admin_http);
    if (srv->admin_made) { // remove the socket, unless another server has since put its own there
        struct stat st;
        if (lstat(srv->admin_path, &st) == 0 && st.st_dev == srv->admin_dev &&
            st.st_ino == srv->admin_ino)
            unlink(srv->admin_path);
    }
    if (srv->http) {
        core_http_quiesce(srv->http); // no new connections; the ones open finish their requests
        int64_t deadline = core_now_ns() + (int64_t)srv->conf.drain_ms * 1000000;
        struct timespec ts = {0, 5 * 1000 * 1000};
        while (atomic_load(&srv->in_flight) > 0 && core_now_ns() < deadline)
            nanosleep(&ts, NULL);
        int left = atomic_load(&srv->in_flight);
        core_http_stop(srv->http); // closes what is left
        CORE_LOG(CORE_LOG_NOTICE, "serve: stopped in_flight_at_stop=%d", left);
    }
    rejected_summary(srv); // what the rate limit held back since its last line
    if (srv->own_access_fd) close(srv->access_fd);
    for (uint32_t i = 0; srv->slots && i < srv->conf.threads; i++) {
        worker_slot *ws = &srv->slots[i];
        enc_reader_destroy(ws->rd);
        rank_request_destroy(ws->rq);
        core_free(ws->window);
        core_free(ws->scores);
        core_free(ws->out);
    }
    core_free(srv->slots);
    served_release(srv->cur);
    if (srv->own_store) enc_store_close(srv->st);
    rank_metrics_destroy(srv->mt);
    core_free(srv->model_path);
    core_free(srv->admin_path);
    core_free(srv->admin_token);
    pthread_mutex_destroy(&srv->mu);
    pthread_mutex_destroy(&srv->reload_mu);
    core_free(srv);
}

int rank_history_from_view(rank_history *h, const enc_user_view *v, const mdl_model *m,
                           uint64_t user, char *err, size_t err_size) {
    if (mdl_reads_buckets(&m->cfg) &&
        (v->encoding_version != m->encoding_version || v->S != m->cfg.S ||
         v->n_buckets != (1u << m->cfg.tau) || v->C != m->cfg.C)) {
        char a[17], b[17];
        mdl_version_hex(v->encoding_version, a);
        mdl_version_hex(m->encoding_version, b);
        snprintf(err, err_size,
                 "user %llu: stored buckets (encoding_version %s, S=%u, %u buckets, C=%u) do not "
                 "fit the model's (encoding_version %s, S=%u, %u buckets, C=%u): reencode the "
                 "store with this model",
                 (unsigned long long)user, a, v->S, v->n_buckets, v->C, b, m->cfg.S,
                 1u << m->cfg.tau, m->cfg.C);
        return CORE_EMISMATCH;
    }
    h->bucket_sum = v->bucket_sum;
    h->bucket_cnt = v->bucket_cnt;
    h->window_len = v->summed_len; /* behind the buckets: the sums may trail the window */
    h->recent = v->recent;
    h->N = v->recent_len;
    return CORE_OK;
}
