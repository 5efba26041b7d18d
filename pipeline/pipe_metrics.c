/* pipe_metrics.c: Prometheus text, readiness and liveness for the encoder worker, served by
 * core_http on the address the operator gives. */
#include "pipe_metrics.h"

#include "core_alloc.h"
#include "core_err.h"
#include "core_http.h"
#include "core_proc.h"
#include "enc_store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMMIT_NB 12
#define FRESH_NB 15
static const double commit_le[COMMIT_NB] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                            0.05,   0.1,   0.25,   0.5,   1,    2.5};
static const double fresh_le[FRESH_NB] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                          2.5,   5,    10,    30,   60,  300,  3600};

typedef struct hist {
    atomic_uint_fast64_t bucket[16]; /* cumulative counts are built at render time */
    atomic_uint_fast64_t count;
    _Atomic double sum;
} hist;

typedef struct part_gauge {
    int assigned;
    int64_t lag;
} part_gauge;

struct pipe_metrics {
    char topic[256];
    atomic_uint_fast64_t c[PIPE_M_N];
    hist commit, fresh;
    hist visible[2]; /* receive to visible to readers: the recent tier, the buckets tier */
    atomic_int caught_up;
    char partitioner[32];   /* set before serving */
    const enc_store *store; /* set before serving; its damage counters are atomics */
    double start_time;      /* process_start_time_seconds (0: unknown) */
    int64_t ready_max_lag;  /* set before serving */
    pthread_mutex_t mu;     /* guards parts */
    part_gauge *parts;      // (n_parts)
    int32_t n_parts;
    double *samples; // (samples_cap) freshness in ms
    size_t samples_n, samples_cap;
    core_http_server *httpd;
};

int pipe_metrics_new(pipe_metrics **out, const char *topic) {
    pipe_metrics *m = core_calloc(1, sizeof(*m));
    if (!m) return CORE_ENOMEM;
    snprintf(m->topic, sizeof m->topic, "%s", topic);
    m->ready_max_lag = PIPE_READY_MAX_LAG_DEFAULT;
    m->start_time = core_proc_start_time();
    pthread_mutex_init(&m->mu, NULL);
    *out = m;
    return CORE_OK;
}

void pipe_metrics_destroy(pipe_metrics *m) {
    if (!m) return;
    core_http_stop(m->httpd);
    pthread_mutex_destroy(&m->mu);
    core_free(m->parts);
    core_free(m->samples);
    core_free(m);
}

void pipe_metrics_add(pipe_metrics *m, int counter, uint64_t n) {
    atomic_fetch_add(&m->c[counter], n);
}
uint64_t pipe_metrics_get(const pipe_metrics *m, int counter) {
    return atomic_load(&((pipe_metrics *)(uintptr_t)m)->c[counter]);
}

static void hist_observe(hist *h, const double *le, int nb, double v) {
    int i = 0;
    while (i < nb && v > le[i])
        i++;
    atomic_fetch_add(&h->bucket[i], 1);
    atomic_fetch_add(&h->count, 1);
    /* single writer (the worker thread), so load+store is not racing another writer */
    atomic_store(&h->sum, atomic_load(&h->sum) + v);
}

void pipe_metrics_observe_commit(pipe_metrics *m, double s) {
    hist_observe(&m->commit, commit_le, COMMIT_NB, s);
}

void pipe_metrics_observe_freshness(pipe_metrics *m, double s) {
    hist_observe(&m->fresh, fresh_le, FRESH_NB, s);
    if (m->samples_n < m->samples_cap) m->samples[m->samples_n++] = s * 1e3;
}

void pipe_metrics_observe_visible(pipe_metrics *m, int tier, double s) {
    hist_observe(&m->visible[tier ? 1 : 0], fresh_le, FRESH_NB, s);
}

int pipe_metrics_keep_samples(pipe_metrics *m, size_t cap) {
    double *s = core_calloc(cap ? cap : 1, sizeof(*s));
    if (!s) return CORE_ENOMEM;
    core_free(m->samples);
    m->samples = s;
    m->samples_cap = cap;
    m->samples_n = 0;
    return CORE_OK;
}

const double *pipe_metrics_samples(const pipe_metrics *m, size_t *n) {
    *n = m->samples_n;
    return m->samples;
}

void pipe_metrics_set_partition(pipe_metrics *m, int32_t p, int assigned, int64_t lag) {
    if (p < 0) return;
    pthread_mutex_lock(&m->mu);
    if (p >= m->n_parts) {
        int32_t n = p + 1 > 2 * m->n_parts ? p + 1 : 2 * m->n_parts;
        part_gauge *g = core_realloc(m->parts, (size_t)n * sizeof(*g));
        if (!g) goto out; /* a gauge is dropped; counting goes on */
        for (int32_t i = m->n_parts; i < n; i++)
            g[i] = (part_gauge){0, -1};
        m->parts = g;
        m->n_parts = n;
    }
    m->parts[p].assigned = assigned;
    m->parts[p].lag = lag;
out:
    pthread_mutex_unlock(&m->mu);
}

void pipe_metrics_set_caught_up(pipe_metrics *m, int v) {
    atomic_store(&m->caught_up, v);
}

void pipe_metrics_set_partitioner(pipe_metrics *m, const char *name) {
    snprintf(m->partitioner, sizeof m->partitioner, "%s", name);
}

void pipe_metrics_set_ready_max_lag(pipe_metrics *m, int64_t max_lag) {
    m->ready_max_lag = max_lag;
}

void pipe_metrics_set_store(pipe_metrics *m, struct enc_store *st) {
    m->store = st;
}

int pipe_metrics_ready(pipe_metrics *m, char *why, size_t cap) {
    int na = 0, ready = 1;
    pthread_mutex_lock(&m->mu);
    for (int32_t p = 0; p < m->n_parts && ready; p++) {
        if (!m->parts[p].assigned) continue;
        na++;
        if (m->parts[p].lag < 0) {
            snprintf(why, cap, "partition %d: lag not known yet (statistics pending)", (int)p);
            ready = 0;
        } else if (m->parts[p].lag > m->ready_max_lag) {
            snprintf(why, cap, "partition %d: lag %" PRId64 " above %" PRId64, (int)p,
                     m->parts[p].lag, m->ready_max_lag);
            ready = 0;
        }
    }
    pthread_mutex_unlock(&m->mu);
    if (ready && !na) {
        snprintf(why, cap, "no partitions assigned");
        ready = 0;
    }
    return ready;
}

// ---------------------------------------------------------------------------------------------
// Rendering

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0 || b->oom) return;
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        if (core_grow(&b->p, &b->cap, b->n + (size_t)k + 1, 1, 4096)) {
            b->oom = 1;
            return;
        }
    }
}

static void render_hist(sbuf *b, const char *name, const char *help, hist *h, const double *le,
                        int nb) {
    sb_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < nb; i++) {
        cum += atomic_load(&h->bucket[i]);
        sb_printf(b, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, le[i], cum);
    }
    cum += atomic_load(&h->bucket[nb]);
    sb_printf(b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum %.6f\n%s_count %" PRIu64 "\n", name,
              cum, name, atomic_load(&h->sum), name, cum);
}

char *pipe_metrics_render(pipe_metrics *m, size_t *len) {
    static const char *names[PIPE_M_N][3] = {
        /* family, labels, help */
        {"trail_pipeline_consumed_total", "", "messages polled from assigned partitions"},
        {"trail_pipeline_applied_total", "", "events in committed LMDB batches"},
        {"trail_pipeline_dead_lettered_total", "",
         "messages sent to the dead-letter topic (invalid, rejected, misrouted)"},
        {"trail_pipeline_kafka_errors_total", "",
         "consumer errors reported by librdkafka (retried)"},
        {"trail_pipeline_batches_total", "", "committed LMDB write transactions"},
        {"trail_pipeline_rebalances_total", "", "partition assignments received"},
        {"trail_pipeline_rebuilds_total", "",
         "partitions assigned with no stored state (replayed)"},
        {"trail_pipeline_misrouted_total", "{reason=\"key_mismatch\"}",
         "messages whose key is not their event's user_id, or maps to another partition under "
         "the configured partitioner"},
        {"trail_pipeline_misrouted_total", "{reason=\"wrong_partition\"}", NULL},
        {"trail_pipeline_tombstones_total", "", "null-value messages, skipped"}};
    sbuf b = {0};
    for (int i = 0; i < PIPE_M_N; i++) {
        if (names[i][2]) /* a family's first series carries its help */
            sb_printf(&b, "# HELP %s %s\n# TYPE %s counter\n", names[i][0], names[i][2],
                      names[i][0]);
        sb_printf(&b, "%s%s %" PRIu64 "\n", names[i][0], names[i][1],
                  (uint64_t)atomic_load(&m->c[i]));
    }
    if (m->partitioner[0])
        sb_printf(&b,
                  "# HELP trail_pipeline_partitioner_info the partitioner this worker checks "
                  "message keys against (--partitioner)\n"
                  "# TYPE trail_pipeline_partitioner_info gauge\n"
                  "trail_pipeline_partitioner_info{partitioner=\"%s\"} 1\n",
                  m->partitioner);
    char proc[2048]; /* trail_build_info and process_*, as trail serve has them */
    core_textbuf pt = {proc, sizeof proc, 0, 0};
    core_proc_metrics(&pt, m->start_time);
    if (!pt.overflow) sb_printf(&b, "%s", proc);
    if (m->store) {
        uint64_t damaged, quarantined;
        enc_store_damage(m->store, &damaged, &quarantined);
        sb_printf(&b,
                  "# HELP trail_store_damaged_users_total users whose stored state failed its "
                  "checksum or format check when a batch touched them (schemas/state.md, "
                  "Integrity)\n# TYPE trail_store_damaged_users_total counter\n"
                  "trail_store_damaged_users_total %" PRIu64 "\n"
                  "# HELP trail_store_quarantined_events_total events held in the store's "
                  "quarantine instead of being applied to a damaged user\n"
                  "# TYPE trail_store_quarantined_events_total counter\n"
                  "trail_store_quarantined_events_total %" PRIu64 "\n",
                  damaged, quarantined);
    }
    render_hist(&b, "trail_pipeline_batch_commit_seconds", "LMDB batch commit latency", &m->commit,
                commit_le, COMMIT_NB);
    render_hist(&b, "trail_pipeline_freshness_seconds",
                "batch commit time minus the message timestamp", &m->fresh, fresh_le, FRESH_NB);
    render_hist(&b, "trail_pipeline_freshness_recent_seconds",
                "worker receive to visible to readers: the behavior in its user's recent "
                "sequence, window and counters",
                &m->visible[0], fresh_le, FRESH_NB);
    render_hist(&b, "trail_pipeline_freshness_buckets_seconds",
                "worker receive to visible to readers: the behavior in its user's bucket sums",
                &m->visible[1], fresh_le, FRESH_NB);
    sb_printf(&b,
              "# HELP trail_pipeline_caught_up 1 when every assigned partition's committed "
              "offset reached its high watermark\n# TYPE trail_pipeline_caught_up gauge\n"
              "trail_pipeline_caught_up %d\n",
              atomic_load(&m->caught_up));
    sb_printf(&b, "# HELP trail_pipeline_consumer_lag messages between the partition's high "
                  "watermark (librdkafka statistics) and the offset committed in LMDB\n"
                  "# TYPE trail_pipeline_consumer_lag gauge\n");
    pthread_mutex_lock(&m->mu);
    for (int32_t p = 0; p < m->n_parts; p++)
        if (m->parts[p].assigned && m->parts[p].lag >= 0)
            sb_printf(&b,
                      "trail_pipeline_consumer_lag{topic=\"%s\",partition=\"%d\"} %" PRId64 "\n",
                      m->topic, (int)p, m->parts[p].lag);
    sb_printf(&b, "# HELP trail_pipeline_assigned_partitions partitions this member owns\n"
                  "# TYPE trail_pipeline_assigned_partitions gauge\n");
    int na = 0;
    for (int32_t p = 0; p < m->n_parts; p++)
        na += m->parts[p].assigned != 0;
    pthread_mutex_unlock(&m->mu);
    sb_printf(&b, "trail_pipeline_assigned_partitions %d\n", na);
    if (b.oom) {
        core_free(b.p);
        return NULL;
    }
    *len = b.n;
    return b.p;
}

// ---------------------------------------------------------------------------------------------
// HTTP

/* The endpoint's error answers: {"error": kind, "message": ...}, as trail serve's. */
static void on_error(void *ctx, core_http_req *rq, unsigned status, const char *kind,
                     const char *message) {
    char body[640];
    (void)ctx;
    size_t n = core_http_error_json(body, sizeof body, kind, message);
    core_http_respond(rq, status, "application/json", body, n,
                      status == 405   ? "Allow: GET, HEAD\r\n"
                      : status == 503 ? "Retry-After: 1\r\n"
                                      : NULL);
}

static void on_request(void *ctx, core_http_req *rq) {
    pipe_metrics *m = ctx;
    unsigned status = 200;
    char *body = NULL, small[512];
    const char *type = "application/json", *url = rq->path;
    size_t len = 0;
    if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "HEAD") != 0) {
        on_error(ctx, rq, 405, "method_not_allowed", "only GET (and HEAD) is served");
        return;
    }
    if (!strcmp(url, "/metrics")) {
        if ((body = pipe_metrics_render(m, &len)) == NULL) {
            on_error(ctx, rq, 500, "other", "out of memory");
            return;
        }
        type = "text/plain; version=0.0.4";
    } else if (!strcmp(url, "/readyz")) {
        char why[256];
        if (pipe_metrics_ready(m, why, sizeof why)) {
            len = (size_t)snprintf(small, sizeof small, "{\"ready\": true}\n");
        } else {
            status = 503;
            len = (size_t)snprintf(small, sizeof small, "{\"ready\": false, \"reason\": \"%s\"}\n",
                                   why);
        }
    } else if (!strcmp(url, "/healthz")) {
        len = (size_t)snprintf(small, sizeof small, "{\"status\": \"ok\"}\n");
    } else {
        on_error(ctx, rq, 404, "not_found", "no such path: GET /metrics, /readyz or /healthz");
        return;
    }
    core_http_respond(rq, status, type, body ? body : small, len, NULL);
    core_free(body);
}

int pipe_metrics_serve(pipe_metrics *m, const char *addr, int *port_out, char *errstr,
                       size_t errstr_size) {
    char host[256], why[512], port[8];
    uint16_t p;
    if (core_http_split_addr(addr, host, sizeof host, &p, why, sizeof why)) {
        snprintf(errstr, errstr_size, "metrics address %s", why);
        return CORE_EINVAL;
    }
    snprintf(port, sizeof port, "%u", (unsigned)p);
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
    if (gai) {
        snprintf(errstr, errstr_size, "metrics address %s: %s", addr, gai_strerror(gai));
        return CORE_EINVAL;
    }
    /* ":PORT" resolves to the IPv4 wildcard first on glibc: every IPv4 interface */
    int fd = core_http_listen_tcp(ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (fd < 0) {
        snprintf(errstr, errstr_size,
                 "metrics: cannot listen on %s: %s (port in use? address not on this host?)", addr,
                 strerror(errno));
        return CORE_EIO;
    }
    /* one thread: a scrape renders in microseconds; a few scrapers and probes at a time */
    core_http_conf hc;
    memset(&hc, 0, sizeof hc);
    hc.threads = 1;
    hc.max_connections = 64;
    hc.read_timeout_s = 10;
    hc.max_uri = 1024;
    hc.max_headers = 8192;
    hc.max_body = 4096;
    hc.name = "metrics";
    hc.hooks.ctx = m;
    hc.hooks.handle = on_request;
    hc.hooks.error = on_error;
    int rc = core_http_start(&m->httpd, fd, &hc, errstr, errstr_size);
    if (rc) return rc;
    *port_out = core_http_port(m->httpd);
    return CORE_OK;
}
