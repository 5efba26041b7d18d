/* core_http.c: the HTTP/1.1 server layer (see core_http.h for the design and what is refused). */
#define _GNU_SOURCE /* accept4 */
#include "core_http.h"

#include "core_alloc.h"
#include "core_args.h"
#include "core_err.h"
#include "core_json.h"
#include "core_log.h"
#include "core_util.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define METHOD_MAX 32     /* bytes of a method name */
#define HEADER_LINES 100  /* header lines in one request */
#define CHUNK_LINE 1024   /* bytes of a chunk-size line, extensions included */
#define TICK_MS 100       /* how often a worker checks its connections' deadlines */
#define LINGER_MS 1000    /* how long a closing connection's input is read and dropped */
#define IP_BUCKETS 1024   /* per-address counts: hash buckets */
#define READ_CHUNK 16384u /* the input buffer's first size, and its growth step */

typedef enum {
    ST_HEAD,    /* reading a request line and headers (or waiting for the next request) */
    ST_BODY,    /* reading a body by Content-Length */
    ST_CHUNKED, /* reading a chunked body */
    ST_WRITE,   /* an answer is waiting for the socket to take it */
    ST_LINGER,  /* answered and shut down for writing: the client's input is read and dropped */
} conn_state;

typedef enum { CH_SIZE, CH_DATA, CH_CRLF, CH_TRAILER } chunk_state;

/* A header line, as offsets into the connection's head buffer (which may move as it grows). */
typedef struct hdr_off {
    uint32_t name, value;
} hdr_off;

/* What the acceptor hands a worker. Written to the worker's pipe in one write (below PIPE_BUF, so
 * atomic), read in whole messages. fd -1: wake up (stop). */
typedef struct handoff {
    int fd;
    int refused;    /* over a connection limit: answered 503 and closed */
    int ip_counted; /* counted in the per-address table */
    socklen_t peer_len;
    struct sockaddr_storage peer;
} handoff;

typedef struct worker worker;

typedef struct core_http_conn {
    struct core_http_conn *prev, *next; /* the worker's connections */
    worker *w;
    int fd;
    conn_state st;
    uint32_t events; /* the epoll interest set now */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    int ip_counted;
    int refused;      /* answered 503 at accept: counted in refused, not in open */
    int64_t since;    /* ns: accepted, or the previous answer written (the read deadline's start) */
    int64_t progress; /* ns: the last write that made progress (ST_WRITE), or the linger's end */
    /* input: in[off..n) not consumed yet */
    char *in;
    size_t in_n, in_off, in_cap;
    /* the current request */
    core_http_req rq;
    void *data;  /* rq.data's bytes (req_data) */
    int started; /* its first byte is read, or it is a refusal: done is owed */
    int line_done;
    size_t hpos; /* where the next header line starts, relative to in_off */
    char *hb;    /* the head buffer: method, path, query, header names and values, NUL-ended */
    size_t hb_n, hb_cap;
    uint32_t m_off, p_off, q_off; /* offsets in hb (q_off 0: no query) */
    hdr_off h[HEADER_LINES];
    int nh;
    int keep_alive, force_close, body_unread, expect100;
    uint64_t body_left; /* ST_BODY: bytes to come; ST_CHUNKED: of the current chunk */
    chunk_state ch;
    size_t trailer;
    char *body;
    size_t body_n, body_cap;
    /* output */
    char *out;
    size_t out_n, out_off, out_cap;
} conn;

struct worker {
    core_http_server *s;
    pthread_t th;
    int started;
    int ep;
    int pipe[2];
    conn *conns;
    _Atomic int busy; /* inside a hook */
    int64_t date_sec;
    char date[40];
};

typedef struct ip_node {
    struct ip_node *next;
    uint8_t key[16];
    uint32_t n;
} ip_node;

struct core_http_server {
    core_http_conf conf;
    int lfd;
    uint16_t port;
    int64_t timeout_ns;
    size_t max_line; /* a request line's bytes, CRLF included */
    size_t in_max;   /* the input buffer's largest size */
    int acc_pipe[2]; /* wakes the acceptor to stop */
    pthread_t acc;
    int acc_running;
    worker *w;
    uint32_t rr;
    _Atomic uint32_t open;    /* connections within the limits, accepted and not closed */
    _Atomic uint32_t refused; /* connections over a limit, being answered 503 and closed */
    _Atomic int draining, stopping;
    pthread_mutex_t ip_mu;
    ip_node *ip[IP_BUCKETS];
};

// ---------------------------------------------------------------------------------------------
// Per-address counts

/* The address as 16 bytes (IPv4 as IPv4-mapped IPv6, so both spellings count as one); 0 for
 * a peer that has no IP address (a Unix socket). */
static int ip_key(const struct sockaddr *sa, uint8_t key[16]) {
    if (sa->sa_family == AF_INET) {
        memset(key, 0, 10);
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        return 1;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        return 1;
    }
    return 0;
}

static ip_node **ip_slot(core_http_server *s, const uint8_t key[16]) {
    ip_node **p = &s->ip[XXH3_64bits(key, 16) % IP_BUCKETS];
    while (*p && memcmp((*p)->key, key, 16) != 0)
        p = &(*p)->next;
    return p;
}

/* @return 1 counted, 0 over the limit, -1 not counted (no IP address, or out of memory). */
static int ip_acquire(core_http_server *s, const struct sockaddr *sa) {
    uint8_t key[16];
    if (!s->conf.max_connections_per_ip || !ip_key(sa, key)) return -1;
    int rc = 1;
    pthread_mutex_lock(&s->ip_mu);
    ip_node **p = ip_slot(s, key);
    if (!*p && (*p = core_calloc(1, sizeof **p)) != NULL) memcpy((*p)->key, key, 16);
    if (!*p)
        rc = -1;
    else if ((*p)->n >= s->conf.max_connections_per_ip)
        rc = 0;
    else
        (*p)->n++;
    pthread_mutex_unlock(&s->ip_mu);
    return rc;
}

static void ip_release(core_http_server *s, const struct sockaddr *sa) {
    uint8_t key[16];
    if (!ip_key(sa, key)) return;
    pthread_mutex_lock(&s->ip_mu);
    ip_node **p = ip_slot(s, key), *n = *p;
    if (n && --n->n == 0) {
        *p = n->next;
        core_free(n);
    }
    pthread_mutex_unlock(&s->ip_mu);
}

// ---------------------------------------------------------------------------------------------
// Answers

static const char *reason(unsigned status) {
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Status";
    }
}

static const char *http_date(worker *w) {
    int64_t now = core_wall_s();
    if (now != w->date_sec) {
        time_t t = (time_t)now;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(w->date, sizeof w->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        w->date_sec = now;
    }
    return w->date;
}

int core_http_respond(core_http_req *rq, unsigned status, const char *content_type,
                      const char *body, size_t len, const char *headers) {
    conn *c = rq->conn;
    core_http_server *s = c->w->s;
    if (rq->status) return -1;
    int close_after = !c->keep_alive || c->force_close || c->body_unread ||
                      atomic_load_explicit(&s->draining, memory_order_relaxed);
    size_t hl = headers ? strlen(headers) : 0, tl = content_type ? strlen(content_type) : 0;
    size_t need = 256 + hl + tl + (rq->is_head ? 0 : len);
    if (need > c->out_cap) {
        char *p = core_realloc(c->out, need);
        if (!p) {
            c->force_close = 1;
            return -1;
        }
        c->out = p;
        c->out_cap = need;
    }
    int n =
        snprintf(c->out, c->out_cap, "HTTP/1.1 %u %s\r\nDate: %s\r\n%s%s%sContent-Length: %zu\r\n",
                 status, reason(status), http_date(c->w), tl ? "Content-Type: " : "",
                 tl ? content_type : "", tl ? "\r\n" : "", len);
    size_t k = (size_t)n;
    if (hl) memcpy(c->out + k, headers, hl), k += hl;
    if (close_after) {
        memcpy(c->out + k, "Connection: close\r\n", 19);
        k += 19;
        c->keep_alive = 0;
    }
    memcpy(c->out + k, "\r\n", 2);
    k += 2;
    if (!rq->is_head && len) memcpy(c->out + k, body, len), k += len;
    c->out_n = k;
    c->out_off = 0;
    rq->status = status;
    return 0;
}

size_t core_http_error_json(char *out, size_t cap, const char *kind, const char *message) {
    char msg[512];
    core_json_escape(msg, sizeof msg, message);
    int n = snprintf(out, cap, "{\"error\":\"%s\",\"message\":\"%s\"}\n", kind, msg);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

const char *core_http_header(const core_http_req *rq, const char *name) {
    const conn *c = rq->conn;
    for (int i = 0; i < c->nh; i++)
        if (!strcasecmp(c->hb + c->h[i].name, name)) return c->hb + c->h[i].value;
    return NULL;
}

// ---------------------------------------------------------------------------------------------
// Connections

static void set_events(conn *c, uint32_t ev) {
    if (c->events == ev) return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &e);
    c->events = ev;
}

/* rq's pointers into the head buffer, which may have moved. */
static void req_fix(conn *c) {
    core_http_req *rq = &c->rq;
    rq->method = c->m_off ? c->hb + c->m_off : "";
    rq->path = c->p_off ? c->hb + c->p_off : "";
    rq->query = c->q_off ? c->hb + c->q_off : NULL;
    rq->peer = (const struct sockaddr *)&c->peer;
    rq->conn = c;
    rq->data = c->data;
}

/* A new request begins on c (its first byte is read, or it is a refusal). */
static void req_begin(conn *c) {
    c->started = 1;
    c->rq.t0 = core_now_ns();
}

static void req_done(conn *c) {
    core_http_server *s = c->w->s;
    if (!c->started) return;
    c->started = 0;
    req_fix(c);
    if (s->conf.hooks.done) s->conf.hooks.done(s->conf.hooks.ctx, &c->rq, core_now_ns() - c->rq.t0);
}

/* Forget the request that ended; what follows it in the input stays. */
static void req_reset(conn *c) {
    memset(&c->rq, 0, sizeof c->rq);
    if (c->w->s->conf.req_data) memset(c->data, 0, c->w->s->conf.req_data);
    c->started = c->line_done = 0;
    c->hpos = 0;
    c->hb_n = 1; /* offset 0 means "absent" */
    c->m_off = c->p_off = c->q_off = 0;
    c->nh = 0;
    c->keep_alive = c->force_close = c->body_unread = c->expect100 = 0;
    c->body_left = 0;
    c->body_n = 0;
    c->ch = CH_SIZE;
    c->trailer = 0;
    c->out_n = c->out_off = 0;
}

static void conn_close(conn *c) {
    worker *w = c->w;
    core_http_server *s = w->s;
    req_done(c); /* a request cut before its answer was written */
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->ip_counted) ip_release(s, (const struct sockaddr *)&c->peer);
    atomic_fetch_sub(c->refused ? &s->refused : &s->open, 1);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    core_free(c->in);
    core_free(c->hb);
    core_free(c->body);
    core_free(c->out);
    core_free(c->data);
    core_free(c);
}

/* Append n bytes and a NUL to the head buffer. @return the offset, 0 out of memory. */
static uint32_t hb_add(conn *c, const char *p, size_t n) {
    if (core_grow(&c->hb, &c->hb_cap, c->hb_n + n + 1, 1, 512)) return 0;
    uint32_t off = (uint32_t)c->hb_n;
    memcpy(c->hb + off, p, n);
    c->hb[off + n] = '\0';
    c->hb_n += n + 1;
    return off;
}

/* Answer a refusal of the layer's through the error hook; the connection closes after it. */
static void refuse(conn *c, unsigned status, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void refuse(conn *c, unsigned status, const char *kind, const char *fmt, ...) {
    core_http_server *s = c->w->s;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *q = msg; *q; q++) /* what it quotes of the request: printable ASCII only */
        if ((unsigned char)*q < ' ' || (unsigned char)*q > '~') *q = '?';
    if (!c->started) req_begin(c);
    c->force_close = 1;
    req_fix(c);
    atomic_store(&c->w->busy, 1);
    s->conf.hooks.error(s->conf.hooks.ctx, &c->rq, status, kind, msg);
    atomic_store(&c->w->busy, 0);
    c->st = ST_WRITE;
}

static int is_tchar(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* The request line in[0..len) (CRLF excluded). @return 0, or -1 refused. */
static int parse_line(conn *c, const char *p, size_t len) {
    core_http_server *s = c->w->s;
    size_t i = 0;
    while (i < len && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i > METHOD_MAX || i == len || p[i] != ' ') {
        refuse(c, 400, "bad_request",
               "malformed request line: expected METHOD SP TARGET SP HTTP/1.x (a method of at "
               "most %d token characters)",
               METHOD_MAX);
        return -1;
    }
    size_t m_len = i, t0 = ++i;
    while (i < len && p[i] != ' ') {
        unsigned char ch = (unsigned char)p[i];
        if (ch <= ' ' || ch > '~') {
            refuse(c, 400, "bad_request",
                   "malformed request line: byte 0x%02x in the request target", ch);
            return -1;
        }
        i++;
    }
    size_t t_len = i - t0;
    if (t_len > s->conf.max_uri) {
        refuse(c, 414, "uri_too_long", "request target longer than %zu bytes", s->conf.max_uri);
        return -1;
    }
    if (!(c->m_off = hb_add(c, p, m_len))) goto oom;
    const char *v = p + i + 1;
    size_t v_len = i < len ? len - i - 1 : 0;
    if (i == len || t_len == 0 || p[t0] != '/') {
        refuse(c, 400, "bad_request",
               "malformed request line: expected METHOD SP /PATH SP HTTP/1.x (origin-form target)");
        return -1;
    }
    const char *q = memchr(p + t0, '?', t_len);
    size_t path_len = q ? (size_t)(q - (p + t0)) : t_len;
    if (!(c->p_off = hb_add(c, p + t0, path_len))) goto oom;
    if (q && !(c->q_off = hb_add(c, q + 1, t_len - path_len - 1))) goto oom;
    if (v_len != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9') {
        refuse(c, 400, "bad_request",
               "malformed request line: the version must be HTTP/DIGIT.DIGIT, got \"%.*s\"",
               (int)(v_len < 16 ? v_len : 16), v);
        return -1;
    }
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1')) {
        refuse(c, 505, "http_version_not_supported",
               "HTTP/%c.%c is not supported: this server speaks HTTP/1.0 and HTTP/1.1", v[5], v[7]);
        return -1;
    }
    c->rq.minor = (unsigned)(v[7] - '0');
    c->rq.is_head = m_len == 4 && !memcmp(p, "HEAD", 4);
    return 0;
oom:
    refuse(c, 503, "overloaded", "out of memory reading the request");
    return -1;
}

/* One header line p[0..len) (CRLF excluded). @return 0, or -1 refused. */
static int parse_header(conn *c, const char *p, size_t len) {
    size_t i = 0;
    if (len && (p[0] == ' ' || p[0] == '\t')) {
        refuse(c, 400, "bad_request", "header line %d: folded header lines are not accepted",
               c->nh + 1);
        return -1;
    }
    while (i < len && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i == len || p[i] != ':') {
        refuse(c, 400, "bad_request",
               "header line %d: expected NAME: VALUE (a token, then a colon with no space before "
               "it)",
               c->nh + 1);
        return -1;
    }
    size_t n_len = i++;
    while (i < len && (p[i] == ' ' || p[i] == '\t'))
        i++;
    size_t v0 = i, v_end = i;
    for (; i < len; i++) {
        unsigned char ch = (unsigned char)p[i];
        if ((ch < ' ' && ch != '\t') || ch == 0x7f) {
            refuse(c, 400, "bad_request", "header %.*s: control byte 0x%02x in its value",
                   (int)(n_len < 64 ? n_len : 64), p, ch);
            return -1;
        }
        if (ch != ' ' && ch != '\t') v_end = i + 1;
    }
    if (c->nh == HEADER_LINES) {
        refuse(c, 431, "headers_too_large", "more than %d header lines", HEADER_LINES);
        return -1;
    }
    uint32_t name = hb_add(c, p, n_len), value = name ? hb_add(c, p + v0, v_end - v0) : 0;
    if (!value) {
        refuse(c, 503, "overloaded", "out of memory reading the request");
        return -1;
    }
    c->h[c->nh].name = name;
    c->h[c->nh].value = value;
    c->nh++;
    return 0;
}

/* Whether a comma-separated header value holds token (any letter case). */
static int has_token(const char *v, const char *token) {
    size_t n = strlen(token);
    while (v && *v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *e = v;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > v && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - v) == n && !strncasecmp(v, token, n)) return 1;
        v = e;
    }
    return 0;
}

/* The head is in: check the framing and set up the body. @return 0, or -1 refused. */
static int head_framing(conn *c) {
    core_http_server *s = c->w->s;
    const char *cl = NULL, *te = NULL, *conn_h = NULL, *expect = NULL;
    int hosts = 0, tes = 0;
    for (int i = 0; i < c->nh; i++) {
        const char *name = c->hb + c->h[i].name, *v = c->hb + c->h[i].value;
        if (!strcasecmp(name, "Host")) {
            hosts++;
        } else if (!strcasecmp(name, "Content-Length")) {
            size_t k = 0;
            while (v[k] >= '0' && v[k] <= '9')
                k++;
            if (k == 0 || v[k]) {
                refuse(c, 400, "bad_content_length",
                       "Content-Length \"%.40s\" is not a decimal number", v);
                return -1;
            }
            if (cl && strcmp(cl, v) != 0) {
                refuse(c, 400, "bad_content_length", "two Content-Length headers that differ");
                return -1;
            }
            cl = v;
        } else if (!strcasecmp(name, "Transfer-Encoding")) {
            te = v;
            tes++;
        } else if (!strcasecmp(name, "Connection")) {
            conn_h = v;
        } else if (!strcasecmp(name, "Expect")) {
            expect = v;
        }
    }
    if (hosts != 1 && (c->rq.minor == 1 || hosts > 1)) {
        refuse(c, 400, "bad_request",
               hosts ? "more than one Host header" : "an HTTP/1.1 request needs a Host header");
        return -1;
    }
    if (te && cl) {
        refuse(c, 400, "bad_request",
               "Content-Length and Transfer-Encoding together (the body's length is ambiguous)");
        return -1;
    }
    if (te && (tes > 1 || strcasecmp(te, "chunked") != 0)) {
        refuse(c, 501, "unsupported_transfer_encoding",
               "Transfer-Encoding \"%.80s\": only chunked (or a Content-Length) is supported", te);
        return -1;
    }
    c->keep_alive = c->rq.minor == 1 && !has_token(conn_h, "close");
    if (cl) {
        uint64_t len = 0;
        int over = 0;
        for (const char *d = cl; *d; d++) {
            if (len > (UINT64_MAX - 9) / 10) over = 1;
            len = len * 10 + (uint64_t)(*d - '0');
        }
        if (over || len > s->conf.max_body) {
            refuse(c, 413, "body_too_large", "body of %.24s bytes is above the limit of %zu", cl,
                   s->conf.max_body);
            return -1;
        }
        c->body_left = len;
        c->body_unread = len > 0;
    } else if (te) {
        c->body_unread = 1;
    }
    c->expect100 =
        c->body_unread && c->rq.minor == 1 && expect && has_token(expect, "100-continue");
    return 0;
}

/* Room for n more body bytes. @return 0, or -1 out of memory. */
static int body_reserve(conn *c, size_t n) {
    return core_grow(&c->body, &c->body_cap, c->body_n + n, 1, 4096);
}

/* The line at p (avail bytes): its length without its CRLF into *len. kind names the part being
 * read, for the refusal of a line end without its CR. @return 1 a line, 0 no line end yet, -1
 * refused. */
static int crlf_line(conn *c, const char *p, size_t avail, size_t *len, const char *kind) {
    const char *nl = memchr(p, '\n', avail);
    if (!nl) return 0;
    *len = (size_t)(nl - p);
    if (*len == 0 || p[*len - 1] != '\r') {
        refuse(c, 400, kind, "a line that does not end in CRLF");
        return -1;
    }
    (*len)--;
    return 1;
}

/* Read the head from the input. @return 1 complete, 0 more input needed, -1 refused. */
static int read_head(conn *c) {
    core_http_server *s = c->w->s;
    for (;;) {
        const char *p = c->in + c->in_off + c->hpos;
        size_t avail = c->in_n - c->in_off - c->hpos;
        if (!c->line_done && c->hpos == 0) { /* empty lines before a request line are skipped */
            while (avail >= 2 && p[0] == '\r' && p[1] == '\n')
                c->in_off += 2, p += 2, avail -= 2;
            if (avail == 0 || (avail == 1 && p[0] == '\r')) return 0;
        }
        if (!c->started) req_begin(c);
        size_t len;
        int r = crlf_line(c, p, avail, &len, "bad_request");
        if (r < 0) return -1;
        if (r == 0) {
            if (!c->line_done && avail > s->max_line) {
                const char *sp = memchr(p, ' ', avail < METHOD_MAX + 1 ? avail : METHOD_MAX + 1);
                if (sp)
                    refuse(c, 414, "uri_too_long", "request target longer than %zu bytes",
                           s->conf.max_uri);
                else
                    refuse(c, 400, "bad_request", "malformed request line");
                return -1;
            }
            if (c->line_done && c->hpos + avail > s->conf.max_headers + 2) {
                refuse(c, 431, "headers_too_large", "header lines above the limit of %zu bytes",
                       s->conf.max_headers);
                return -1;
            }
            return 0;
        }
        size_t next = c->hpos + len + 2;
        if (!c->line_done) {
            if (parse_line(c, p, len)) return -1;
            c->line_done = 1;
            c->in_off += next; /* the headers are counted from here */
            c->hpos = 0;
            continue;
        }
        if (len == 0) { /* the blank line: the head is complete */
            c->in_off += next;
            c->hpos = 0;
            return 1;
        }
        if (next > s->conf.max_headers) {
            refuse(c, 431, "headers_too_large", "header lines above the limit of %zu bytes",
                   s->conf.max_headers);
            return -1;
        }
        if (parse_header(c, p, len)) return -1;
        c->hpos = next;
    }
}

/* Decode chunks from the input into the body. @return 1 complete, 0 more needed, -1 refused. */
static int read_chunked(conn *c) {
    core_http_server *s = c->w->s;
    for (;;) {
        const char *p = c->in + c->in_off;
        size_t avail = c->in_n - c->in_off;
        if (c->ch == CH_DATA) {
            size_t k = avail < c->body_left ? avail : (size_t)c->body_left;
            memcpy(c->body + c->body_n, p, k);
            c->body_n += k;
            c->body_left -= k;
            c->in_off += k;
            if (c->body_left) return 0;
            c->ch = CH_CRLF;
            continue;
        }
        if (c->ch == CH_CRLF) {
            if (avail < 2) return 0;
            if (p[0] != '\r' || p[1] != '\n') {
                refuse(c, 400, "bad_chunked_body", "a chunk's data is not followed by CRLF");
                return -1;
            }
            c->in_off += 2;
            c->ch = CH_SIZE;
            continue;
        }
        size_t len;
        int r = crlf_line(c, p, avail, &len, "bad_chunked_body");
        if (r < 0) return -1;
        if (r == 0) {
            if (c->ch == CH_SIZE && avail > CHUNK_LINE) {
                refuse(c, 400, "bad_chunked_body", "a chunk-size line longer than %d bytes",
                       CHUNK_LINE);
                return -1;
            }
            if (c->ch == CH_TRAILER && c->trailer + avail > s->conf.max_headers) {
                refuse(c, 400, "bad_chunked_body", "trailer lines above %zu bytes",
                       s->conf.max_headers);
                return -1;
            }
            return 0;
        }
        c->in_off += len + 2;
        if (c->ch == CH_TRAILER) {
            c->trailer += len + 2;
            if (c->trailer > s->conf.max_headers) {
                refuse(c, 400, "bad_chunked_body", "trailer lines above %zu bytes",
                       s->conf.max_headers);
                return -1;
            }
            if (len == 0) return 1;
            if (!memchr(p, ':', len)) {
                refuse(c, 400, "bad_chunked_body", "a trailer line without a colon");
                return -1;
            }
            continue;
        }
        uint64_t size = 0;
        size_t i = 0;
        for (; i < len; i++) {
            char ch = p[i];
            int d = ch >= '0' && ch <= '9'   ? ch - '0'
                    : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                    : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                             : -1;
            if (d < 0) break;
            if (size > (UINT64_MAX >> 4)) size = UINT64_MAX >> 4; /* stays above any limit */
            size = size * 16 + (uint64_t)d;
        }
        size_t j = i;
        while (j < len && (p[j] == ' ' || p[j] == '\t'))
            j++;
        if (i == 0 || (j < len && p[j] != ';')) {
            refuse(c, 400, "bad_chunked_body", "chunk size \"%.*s\" is not a hexadecimal number",
                   (int)(len < 20 ? len : 20), p);
            return -1;
        }
        if (size == 0) {
            c->ch = CH_TRAILER;
            continue;
        }
        if (size > s->conf.max_body - c->body_n) {
            refuse(c, 413, "body_too_large", "body above the limit of %zu bytes", s->conf.max_body);
            return -1;
        }
        if (body_reserve(c, (size_t)size)) {
            refuse(c, 503, "overloaded", "out of memory reading the body");
            return -1;
        }
        c->body_left = size;
        c->ch = CH_DATA;
    }
}

/* The body is in (or there is none): the handler answers. */
static void dispatch(conn *c) {
    core_http_server *s = c->w->s;
    c->body_unread = 0;
    req_fix(c);
    c->rq.body = c->body_n ? c->body : NULL;
    c->rq.body_len = c->body_n;
    atomic_store(&c->w->busy, 1);
    s->conf.hooks.handle(s->conf.hooks.ctx, &c->rq);
    atomic_store(&c->w->busy, 0);
    if (!c->rq.status) refuse(c, 500, "other", "the handler gave no answer");
    c->st = ST_WRITE;
}

/* Parse what the input holds; stops at an answer (ST_WRITE) or when more input is needed. */
static void parse_input(conn *c) {
    core_http_server *s = c->w->s;
    if (c->st == ST_HEAD) {
        int r = read_head(c);
        if (r <= 0) return;
        if (head_framing(c)) return;
        if (s->conf.hooks.head) {
            req_fix(c);
            atomic_store(&c->w->busy, 1);
            s->conf.hooks.head(s->conf.hooks.ctx, &c->rq);
            atomic_store(&c->w->busy, 0);
            if (c->rq.status) {
                c->st = ST_WRITE;
                return;
            }
        }
        if (!c->body_unread) {
            dispatch(c);
            return;
        }
        if (c->expect100 && c->in_off == c->in_n) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            ssize_t k = send(c->fd, cont, sizeof cont - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)k; /* a fresh exchange: the socket takes 25 bytes; if not, the client waits */
        }
        if (c->body_left) {
            if (body_reserve(c, (size_t)c->body_left)) {
                refuse(c, 503, "overloaded", "out of memory reading the body");
                return;
            }
            c->st = ST_BODY;
        } else {
            c->st = ST_CHUNKED;
        }
    }
    if (c->st == ST_BODY) {
        size_t avail = c->in_n - c->in_off, k = avail < c->body_left ? avail : c->body_left;
        memcpy(c->body + c->body_n, c->in + c->in_off, k);
        c->body_n += k;
        c->body_left -= k;
        c->in_off += k;
        if (!c->body_left) dispatch(c);
        return;
    }
    if (c->st == ST_CHUNKED && read_chunked(c) == 1) dispatch(c);
}

/* Room to read into the input buffer. @return 0, or -1 (full at its largest, or out of memory). */
static int in_room(conn *c) {
    if (c->in_off == c->in_n) { /* all consumed: the next read gets the whole buffer */
        c->in_off = c->in_n = 0;
    } else if (c->in_off && (c->st != ST_HEAD || c->in_n == c->in_cap)) {
        /* a part of a line is pending; a head being read moves only when the buffer is full, as
         * a slow client's head would otherwise be moved at every read */
        memmove(c->in, c->in + c->in_off, c->in_n - c->in_off);
        c->in_n -= c->in_off;
        c->in_off = 0;
    }
    if (c->in_n < c->in_cap) return 0;
    size_t max = c->w->s->in_max;
    if (c->in_cap >= max) return -1;
    size_t cap = c->in_cap + READ_CHUNK > max ? max : c->in_cap + READ_CHUNK;
    char *p = core_realloc(c->in, cap);
    if (!p) return -1;
    c->in = p;
    c->in_cap = cap;
    return 0;
}

/* Shut the connection down for writing and read what the client still sends for a moment, so
 * that it reads the answer rather than a reset. */
static void linger(conn *c) {
    req_done(c);
    shutdown(c->fd, SHUT_WR);
    c->st = ST_LINGER;
    c->progress = core_now_ns() + (int64_t)LINGER_MS * 1000000;
    set_events(c, EPOLLIN);
}

/* The answer is written: the request is over. @return 0 the connection goes on, -1 closed. */
static int answered(conn *c) {
    core_http_server *s = c->w->s;
    if (!c->keep_alive || atomic_load(&s->draining)) {
        if (c->body_unread || c->force_close || c->in_off != c->in_n) {
            linger(c);
            return 0;
        }
        conn_close(c);
        return -1;
    }
    req_done(c);
    req_reset(c);
    c->since = core_now_ns();
    c->st = ST_HEAD;
    set_events(c, EPOLLIN);
    return 0;
}

/* Write what is queued. @return 1 all written, 0 the socket is full, -1 the client is gone. */
static int flush_out(conn *c) {
    while (c->out_off < c->out_n) {
        ssize_t k = send(c->fd, c->out + c->out_off, c->out_n - c->out_off, MSG_NOSIGNAL);
        if (k > 0) {
            c->out_off += (size_t)k;
            c->progress = core_now_ns();
            continue;
        }
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_events(c, EPOLLOUT);
            return 0;
        }
        return -1;
    }
    return 1;
}

/* Drive c as far as its input and socket allow. @return -1 if it was closed. */
static int advance(conn *c) {
    for (;;) {
        if (c->st == ST_WRITE) {
            if (c->out_off == 0) c->progress = core_now_ns();
            int r = flush_out(c);
            if (r < 0) {
                conn_close(c);
                return -1;
            }
            if (r == 0) return 0;
            if (answered(c)) return -1;
            if (c->st == ST_LINGER) return 0;
            if (c->in_off == c->in_n) return 0; /* nothing pipelined */
        }
        parse_input(c);
        if (c->st != ST_WRITE) return 0;
    }
}

/* Input on c. @return -1 if it was closed. */
static int on_input(conn *c) {
    for (;;) {
        char *dst;
        size_t room;
        int direct = c->st == ST_BODY && c->in_off == c->in_n;
        if (c->st == ST_LINGER) {
            char sink[4096];
            ssize_t k = recv(c->fd, sink, sizeof sink, 0);
            if (k > 0) continue;
            if (k < 0 && errno == EINTR) continue;
            if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
            conn_close(c);
            return -1;
        }
        if (direct) { /* straight into the body */
            dst = c->body + c->body_n;
            room = (size_t)c->body_left;
        } else {
            if (in_room(c)) { /* only a head can fill the buffer, and its limits come first */
                refuse(c, 431, "headers_too_large", "request head too large");
                return advance(c);
            }
            dst = c->in + c->in_n;
            room = c->in_cap - c->in_n;
        }
        ssize_t k = recv(c->fd, dst, room, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        if (k <= 0) { /* the client is gone (or shut its side mid-request) */
            conn_close(c);
            return -1;
        }
        if (direct) {
            c->body_n += (size_t)k;
            c->body_left -= (uint64_t)k;
            if (!c->body_left) dispatch(c);
        } else {
            c->in_n += (size_t)k;
            parse_input(c);
        }
        if (c->st == ST_WRITE) return advance(c);
    }
}

static void conn_new(worker *w, const handoff *m) {
    core_http_server *s = w->s;
    conn *c = core_calloc(1, sizeof *c);
    void *data = c && s->conf.req_data ? core_calloc(1, s->conf.req_data) : NULL;
    if (!c || (s->conf.req_data && !data)) {
        core_free(c);
        core_free(data);
        close(m->fd);
        if (m->ip_counted) ip_release(s, (const struct sockaddr *)&m->peer);
        atomic_fetch_sub(m->refused ? &s->refused : &s->open, 1);
        return;
    }
    c->w = w;
    c->fd = m->fd;
    c->data = data;
    c->peer = m->peer;
    c->peer_len = m->peer_len;
    c->ip_counted = m->ip_counted;
    c->refused = m->refused;
    c->since = core_now_ns();
    c->events = EPOLLIN;
    req_reset(c);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &e) != 0) {
        close(c->fd);
        if (c->ip_counted) ip_release(s, (const struct sockaddr *)&c->peer);
        atomic_fetch_sub(c->refused ? &s->refused : &s->open, 1);
        core_free(data);
        core_free(c);
        return;
    }
    c->next = w->conns;
    if (c->next) c->next->prev = c;
    w->conns = c;
    if (c->peer.ss_family == AF_INET || c->peer.ss_family == AF_INET6) {
        int one = 1; /* an answer is one write: send it now, not after the client's ack */
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (m->refused) {
        refuse(c, 503, "overloaded", "too many open connections; try again later");
        advance(c);
    }
}

/* Deadlines: the read deadline, a client that reads nothing of its answer, the linger's end;
 * when draining, idle kept-alive connections. */
static void sweep(worker *w, int64_t now) {
    core_http_server *s = w->s;
    unsigned cut = 0;
    int draining = atomic_load(&s->draining);
    for (conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        int late = 0;
        if (c->st == ST_WRITE)
            late = now - c->progress > s->timeout_ns;
        else if (c->st == ST_LINGER)
            late = now > c->progress;
        else if (now - c->since > s->timeout_ns)
            late = 1, cut++;
        else if (draining && c->st == ST_HEAD && !c->started && c->in_off == c->in_n)
            late = 1;
        if (late) conn_close(c);
    }
    if (cut)
        CORE_LOG(CORE_LOG_INFO, "%s: closed %u connections past the %u s read deadline",
                 s->conf.name, cut, s->conf.read_timeout_s);
}

static void take_handoffs(worker *w) {
    handoff m[16];
    for (;;) {
        ssize_t k = read(w->pipe[0], m, sizeof m);
        if (k <= 0) return;
        for (size_t i = 0; i < (size_t)k / sizeof *m; i++)
            if (m[i].fd >= 0) conn_new(w, &m[i]);
    }
}

static void *worker_main(void *arg) {
    worker *w = arg;
    core_http_server *s = w->s;
    struct epoll_event ev[64];
    int64_t next_sweep = core_now_ns() + (int64_t)TICK_MS * 1000000;
    while (!atomic_load(&s->stopping)) {
        int n = epoll_wait(w->ep, ev, 64, TICK_MS);
        for (int i = 0; i < n; i++) {
            conn *c = ev[i].data.ptr;
            if (!c) {
                take_handoffs(w);
                continue;
            }
            if (c->st == ST_WRITE) {
                if (ev[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) advance(c);
            } else if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                on_input(c);
            }
        }
        int64_t now = core_now_ns();
        if (now >= next_sweep) {
            sweep(w, now);
            next_sweep = now + (int64_t)TICK_MS * 1000000;
        }
    }
    while (w->conns)
        conn_close(w->conns);
    return NULL;
}

// ---------------------------------------------------------------------------------------------
// The acceptor

static void hand_over(core_http_server *s, handoff *m) {
    uint32_t k = s->conf.threads, start = s->rr++ % k, pick = start;
    for (uint32_t i = 0; i < k; i++) { /* a worker that is not inside a handler, if any */
        uint32_t j = (start + i) % k;
        if (!atomic_load_explicit(&s->w[j].busy, memory_order_relaxed)) {
            pick = j;
            break;
        }
    }
    ssize_t r;
    do
        r = write(s->w[pick].pipe[1], m, sizeof *m);
    while (r < 0 && errno == EINTR);
    if (r != (ssize_t)sizeof *m) {
        close(m->fd);
        if (m->ip_counted) ip_release(s, (const struct sockaddr *)&m->peer);
        atomic_fetch_sub(m->refused ? &s->refused : &s->open, 1);
    }
}

static void *acceptor_main(void *arg) {
    core_http_server *s = arg;
    int64_t last_warn = 0;
    /* refused connections linger for a moment each (core_http.h); past this many of them a new
     * one is closed without an answer, so that a flood cannot run the process out of files */
    uint32_t backstop = s->conf.max_connections + 64;
    for (;;) {
        struct pollfd p[2] = {{s->lfd, POLLIN, 0}, {s->acc_pipe[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0 && errno != EINTR) break;
        if (p[1].revents) break;
        if (!(p[0].revents & POLLIN)) continue;
        for (int i = 0; i < 64; i++) {
            handoff m;
            memset(&m, 0, sizeof m);
            m.peer_len = sizeof m.peer;
            int fd = accept4(s->lfd, (struct sockaddr *)&m.peer, &m.peer_len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                    int64_t now = core_now_ns();
                    if (now - last_warn > 10 * 1000000000ll) {
                        CORE_LOG(CORE_LOG_WARNING,
                                 "%s: cannot accept a connection: %s (raise ulimit -n)",
                                 s->conf.name, strerror(errno));
                        last_warn = now;
                    }
                    struct timespec ts = {0, 10 * 1000 * 1000};
                    nanosleep(&ts, NULL);
                }
                break;
            }
            m.fd = fd;
            if (atomic_load(&s->open) >= s->conf.max_connections) {
                m.refused = 1;
            } else {
                int ip = ip_acquire(s, (const struct sockaddr *)&m.peer);
                m.refused = ip == 0;
                m.ip_counted = ip == 1;
            }
            if (m.refused && atomic_fetch_add(&s->refused, 1) >= backstop) {
                atomic_fetch_sub(&s->refused, 1);
                close(fd);
                continue;
            }
            if (!m.refused) atomic_fetch_add(&s->open, 1);
            hand_over(s, &m);
        }
    }
    return NULL;
}

// ---------------------------------------------------------------------------------------------
// Start and stop

int core_http_split_addr(const char *addr, char *host, size_t cap, uint16_t *port, char *why,
                         size_t why_size) {
    const char *colon = strrchr(addr, ':');
    size_t hl = colon ? (size_t)(colon - addr) : 0;
    uint64_t v;
    char pwhy[128];
    if (!colon || hl >= cap) goto bad;
    memcpy(host, addr, hl);
    host[hl] = '\0';
    if (host[0] == '[') { /* [IPv6]:PORT */
        if (hl < 3 || host[hl - 1] != ']') goto bad;
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    } else if (strchr(host, ':')) {
        goto bad; /* a bare IPv6 address: its last group would read as the port */
    }
    if (core_scan_u64(colon + 1, 0, 65535, &v, pwhy, sizeof pwhy)) {
        snprintf(why, why_size, "'%s': port %s", addr, pwhy);
        return -1;
    }
    *port = (uint16_t)v;
    return 0;
bad:
    snprintf(why, why_size, "'%s' is not HOST:PORT, [IPv6]:PORT or :PORT", addr);
    return -1;
}

int core_http_listen_tcp(const struct sockaddr *sa, socklen_t len) {
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0) return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, sa, len) != 0 || listen(fd, SOMAXCONN) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

uint16_t core_http_port(const core_http_server *s) {
    return s->port;
}

/* Create a thread with every signal blocked in it (the process handles signals in one place:
 * a signal must never land on one of these), but for the ones a fault raises in the thread
 * itself: blocked, those kill the process without running a handler (a sanitizer's report). */
static int spawn(pthread_t *th, void *(*fn)(void *), void *arg) {
    static const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT};
    sigset_t all, old;
    sigfillset(&all);
    for (size_t i = 0; i < sizeof faults / sizeof *faults; i++)
        sigdelset(&all, faults[i]);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(th, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int core_http_start(core_http_server **out, int listen_fd, const core_http_conf *conf, char *err,
                    size_t cap) {
    core_http_server *s = NULL;
    *out = NULL;
    if (!conf->threads || !conf->max_connections || !conf->read_timeout_s || !conf->max_uri ||
        !conf->max_headers || !conf->hooks.handle || !conf->hooks.error) {
        snprintf(err, cap,
                 "http: need threads, max_connections, a read timeout, head limits and "
                 "the handle and error hooks");
        close(listen_fd);
        return CORE_EINVAL;
    }
    if (!(s = core_calloc(1, sizeof *s))) goto oom;
    s->conf = *conf;
    if (!s->conf.name) s->conf.name = "http";
    s->lfd = listen_fd;
    s->acc_pipe[0] = s->acc_pipe[1] = -1;
    s->timeout_ns = (int64_t)conf->read_timeout_s * 1000000000;
    s->max_line = METHOD_MAX + 1 + conf->max_uri + 1 + 8 + 2;
    s->in_max = s->max_line + conf->max_headers + 1024;
    if (s->in_max < 2 * READ_CHUNK) s->in_max = 2 * READ_CHUNK;
    pthread_mutex_init(&s->ip_mu, NULL);
    atomic_init(&s->open, 0);
    atomic_init(&s->refused, 0);
    atomic_init(&s->draining, 0);
    atomic_init(&s->stopping, 0);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(listen_fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            s->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    int fl = fcntl(listen_fd, F_GETFL);
    if (fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) != 0) goto io;
    if (pipe2(s->acc_pipe, O_CLOEXEC | O_NONBLOCK) != 0) goto io;
    if (!(s->w = core_calloc(conf->threads, sizeof *s->w))) goto oom;
    for (uint32_t i = 0; i < conf->threads; i++) {
        worker *w = &s->w[i];
        w->s = s;
        w->ep = w->pipe[0] = w->pipe[1] = -1;
        atomic_init(&w->busy, 0);
    }
    for (uint32_t i = 0; i < conf->threads; i++) {
        worker *w = &s->w[i];
        if ((w->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) goto io;
        if (pipe2(w->pipe, O_CLOEXEC) != 0) goto io;
        fl = fcntl(w->pipe[0], F_GETFL);
        if (fl < 0 || fcntl(w->pipe[0], F_SETFL, fl | O_NONBLOCK) != 0) goto io;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
        if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->pipe[0], &e) != 0) goto io;
    }
    for (uint32_t i = 0; i < conf->threads; i++) {
        if (spawn(&s->w[i].th, worker_main, &s->w[i]) != 0) goto io;
        s->w[i].started = 1;
    }
    if (spawn(&s->acc, acceptor_main, s) != 0) goto io;
    s->acc_running = 1;
    *out = s;
    return CORE_OK;
io:
    snprintf(err, cap, "%s: cannot start the HTTP threads: %s", s->conf.name, strerror(errno));
    core_http_stop(s);
    return CORE_EIO;
oom:
    snprintf(err, cap, "http: out of memory");
    if (s)
        core_http_stop(s);
    else
        close(listen_fd);
    return CORE_ENOMEM;
}

void core_http_quiesce(core_http_server *s) {
    if (!s) return;
    atomic_store(&s->draining, 1);
    if (s->acc_running) {
        char b = 1;
        ssize_t k = write(s->acc_pipe[1], &b, 1);
        (void)k;
        pthread_join(s->acc, NULL);
        s->acc_running = 0;
    }
    if (s->lfd >= 0) close(s->lfd);
    s->lfd = -1;
}

void core_http_stop(core_http_server *s) {
    if (!s) return;
    core_http_quiesce(s);
    atomic_store(&s->stopping, 1);
    for (uint32_t i = 0; s->w && i < s->conf.threads; i++) {
        worker *w = &s->w[i];
        if (w->started) {
            handoff wake = {.fd = -1};
            ssize_t k = write(w->pipe[1], &wake, sizeof wake);
            (void)k; /* the worker also sees the flag at its next tick */
            pthread_join(w->th, NULL);
        }
        if (w->ep >= 0) close(w->ep);
        for (int j = 0; j < 2; j++)
            if (w->pipe[j] >= 0) close(w->pipe[j]);
    }
    for (int j = 0; j < 2; j++)
        if (s->acc_pipe[j] >= 0) close(s->acc_pipe[j]);
    for (int b = 0; b < IP_BUCKETS; b++)
        for (ip_node *n = s->ip[b], *next; n; n = next) {
            next = n->next;
            core_free(n);
        }
    pthread_mutex_destroy(&s->ip_mu);
    core_free(s->w);
    core_free(s);
}
