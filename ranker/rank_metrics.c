/* rank_metrics.c: counters, histograms and their Prometheus text rendering. */
#include "rank_metrics.h"

#include "core_alloc.h"
#include "core_err.h"
#include "core_proc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *const error_kinds[] = {
    // request parsing (rank_request.h)
    "bad_json", "bad_type", "bad_value", "missing_field", "unknown_field", "duplicate_field",
    "bad_version", "too_many_candidates", "too_many_dense",
    // the server
    "bad_dense", "body_too_large", "not_found", "method_not_allowed", "forbidden", "bad_user_state",
    "store", "overloaded", "scoring", "encoding_mismatch", "reload_failed", "uri_too_long",
    "headers_too_large", "unsupported_media_type", "unsupported_transfer_encoding", "unauthorized",
    "reload_in_progress", "damaged_user_state",
    // the HTTP layer (core_http.h)
    "bad_request", "bad_content_length", "bad_chunked_body", "http_version_not_supported", "other"};
#define N_KINDS (sizeof error_kinds / sizeof error_kinds[0])

static const char *const endpoint_names[RANK_EP_COUNT] = {
    "/v1/score", "/healthz", "/metrics", "/admin/reload", "/readyz", "/v1/models/current", "other"};

/* The status codes trail_http_requests_total counts by name: every code the server answers
 * with (rank-api.md); any other lands in "other", so the label set stays bounded. */
static const unsigned status_codes[] = {200, 400, 401, 403, 404, 405, 409, 413,
                                        414, 415, 422, 431, 500, 501, 503, 505};
#define N_CODES (sizeof status_codes / sizeof status_codes[0] + 1) /* + "other" */

// latency buckets, seconds
static const double lat_le[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                0.05,   0.1,   0.25,  0.5,   1,    2.5};
#define N_LAT (sizeof lat_le / sizeof lat_le[0])
// whole-request buckets, seconds: a /healthz answer (tens of us) to a request that waited on a
// slow client or a stuck store (seconds)
static const double http_le[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
#define N_HTTP_LE (sizeof http_le / sizeof http_le[0])
// user-state age buckets, seconds: a minute, hours, a day, a week, a month
static const double age_le[] = {1, 10, 60, 300, 900, 3600, 21600, 86400, 604800, 2592000};
#define N_AGE (sizeof age_le / sizeof age_le[0])

#define MAX_LE 16
_Static_assert(N_LAT <= MAX_LE && N_HTTP_LE <= MAX_LE && N_AGE <= MAX_LE, "histogram slots");

typedef struct histogram {
    _Atomic uint64_t bucket[MAX_LE + 1]; /* non-cumulative; the slot after the last bound: +Inf */
    _Atomic uint64_t count;
    _Atomic uint64_t sum; /* in the histogram's unit: ns, us or s (rendered times a scale) */
} histogram;

struct rank_metrics {
    _Atomic uint64_t requests[RANK_EP_COUNT];
    _Atomic uint64_t errors[N_KINDS];
    _Atomic uint64_t candidates;
    _Atomic uint64_t unknown_users;
    _Atomic uint64_t store_damaged; /* the store's count (enc_store_damage), set before a render */
    _Atomic uint64_t sig_hits, sig_misses;
    _Atomic uint64_t q_hits, q_misses;
    _Atomic uint64_t reloads_ok, reloads_failed;
    histogram latency;
    histogram age;
    _Atomic uint64_t http[RANK_EP_COUNT][N_CODES]; /* answered requests by endpoint and status */
    histogram http_latency;                        /* ns, every answered request */
    double start_time;  /* process_start_time_seconds (0: /proc could not tell) */
    pthread_mutex_t mu; /* guards the model strings */
    char model_version[17], encoding_version[17], variant[128]; /* variants are up to ~90 bytes */
    char isa[32], precision[16], cpu[160], blas[48];            /* trail_ranker_isa_info */
};

int rank_metrics_new(rank_metrics **out) {
    rank_metrics *mt = core_calloc(1, sizeof *mt);
    if (!mt) return CORE_ENOMEM;
    pthread_mutex_init(&mt->mu, NULL);
    mt->start_time = core_proc_start_time();
    *out = mt;
    return CORE_OK;
}

void rank_metrics_destroy(rank_metrics *mt) {
    if (!mt) return;
    pthread_mutex_destroy(&mt->mu);
    core_free(mt);
}

void rank_metrics_sigcache(rank_metrics *mt, uint64_t hits, uint64_t misses) {
    atomic_fetch_add_explicit(&mt->sig_hits, hits, memory_order_relaxed);
    atomic_fetch_add_explicit(&mt->sig_misses, misses, memory_order_relaxed);
}

void rank_metrics_qcache(rank_metrics *mt, uint64_t hits, uint64_t misses) {
    atomic_fetch_add_explicit(&mt->q_hits, hits, memory_order_relaxed);
    atomic_fetch_add_explicit(&mt->q_misses, misses, memory_order_relaxed);
}

void rank_metrics_store_damage(rank_metrics *mt, uint64_t damaged) {
    atomic_store_explicit(&mt->store_damaged, damaged, memory_order_relaxed);
}

void rank_metrics_request(rank_metrics *mt, rank_endpoint ep) {
    atomic_fetch_add_explicit(&mt->requests[ep], 1, memory_order_relaxed);
}

void rank_metrics_error(rank_metrics *mt, const char *kind) {
    size_t i = 0;
    while (i < N_KINDS - 1 && strcmp(error_kinds[i], kind) != 0)
        i++;
    atomic_fetch_add_explicit(&mt->errors[i], 1, memory_order_relaxed);
}

static void observe(histogram *h, const double *le, size_t n, double x, uint64_t sum_units) {
    size_t i = 0;
    while (i < n && x > le[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, sum_units, memory_order_relaxed);
}

void rank_metrics_http(rank_metrics *mt, rank_endpoint ep, unsigned status, int64_t latency_ns) {
    size_t i = 0;
    while (i < N_CODES - 1 && status_codes[i] != status)
        i++;
    if ((unsigned)ep >= RANK_EP_COUNT) ep = RANK_EP_OTHER;
    if (latency_ns < 0) latency_ns = 0;
    atomic_fetch_add_explicit(&mt->http[ep][i], 1, memory_order_relaxed);
    observe(&mt->http_latency, http_le, N_HTTP_LE, (double)latency_ns * 1e-9, (uint64_t)latency_ns);
}

void rank_metrics_scored(rank_metrics *mt, int64_t latency_ns, uint32_t candidates, int64_t age_s) {
    if (latency_ns < 0) latency_ns = 0;
    observe(&mt->latency, lat_le, N_LAT, (double)latency_ns * 1e-9, (uint64_t)(latency_ns / 1000));
    atomic_fetch_add_explicit(&mt->candidates, candidates, memory_order_relaxed);
    if (age_s < 0)
        atomic_fetch_add_explicit(&mt->unknown_users, 1, memory_order_relaxed);
    else
        observe(&mt->age, age_le, N_AGE, (double)age_s, (uint64_t)age_s);
}

void rank_metrics_reload(rank_metrics *mt, int ok) {
    atomic_fetch_add_explicit(ok ? &mt->reloads_ok : &mt->reloads_failed, 1, memory_order_relaxed);
}

void rank_metrics_set_model(rank_metrics *mt, const char *model_version,
                            const char *encoding_version, const char *variant) {
    pthread_mutex_lock(&mt->mu);
    snprintf(mt->model_version, sizeof mt->model_version, "%s", model_version);
    snprintf(mt->encoding_version, sizeof mt->encoding_version, "%s", encoding_version);
    snprintf(mt->variant, sizeof mt->variant, "%s", variant);
    pthread_mutex_unlock(&mt->mu);
}

// ---------------------------------------------------------------------------------------------
// Rendering

static void put_histogram(core_textbuf *o, const char *name, const char *help, histogram *h,
                          const double *le, size_t n, double sum_scale) {
    uint64_t cum = 0;
    core_textbuf_printf(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t i = 0; i <= n; i++) {
        cum += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        if (i < n)
            core_textbuf_printf(o, "%s_bucket{le=\"%g\"} %llu\n", name, le[i],
                                (unsigned long long)cum);
        else
            core_textbuf_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    }
    core_textbuf_printf(o, "%s_sum %.6f\n%s_count %llu\n", name,
                        (double)atomic_load_explicit(&h->sum, memory_order_relaxed) * sum_scale,
                        name, (unsigned long long)cum);
}

/* A counter with two values of a `result` label. */
static void put_by_result(core_textbuf *o, const char *name, const char *help, const char *a,
                          _Atomic uint64_t *va, const char *b, _Atomic uint64_t *vb) {
    core_textbuf_printf(
        o, "# HELP %s %s\n# TYPE %s counter\n%s{result=\"%s\"} %llu\n%s{result=\"%s\"} %llu\n",
        name, help, name, name, a,
        (unsigned long long)atomic_load_explicit(va, memory_order_relaxed), name, b,
        (unsigned long long)atomic_load_explicit(vb, memory_order_relaxed));
}

void rank_metrics_set_isa(rank_metrics *mt, const char *isa, const char *precision,
                          const char *cpu_features, const char *openblas_core) {
    pthread_mutex_lock(&mt->mu);
    snprintf(mt->isa, sizeof mt->isa, "%s", isa);
    snprintf(mt->precision, sizeof mt->precision, "%s", precision);
    snprintf(mt->cpu, sizeof mt->cpu, "%s", cpu_features);
    snprintf(mt->blas, sizeof mt->blas, "%s", openblas_core);
    pthread_mutex_unlock(&mt->mu);
}

// ---------------------------------------------------------------------------------------------
// What the binary is, and the process_* metrics of Prometheus' client libraries

int rank_metrics_render(rank_metrics *mt, char *buf, size_t cap) {
    core_textbuf o = {buf, cap, 0, cap == 0};
    core_textbuf_printf(&o, "# HELP trail_requests_total HTTP requests received, by endpoint.\n"
                            "# TYPE trail_requests_total counter\n");
    for (int i = 0; i < RANK_EP_COUNT; i++)
        core_textbuf_printf(
            &o, "trail_requests_total{endpoint=\"%s\"} %llu\n", endpoint_names[i],
            (unsigned long long)atomic_load_explicit(&mt->requests[i], memory_order_relaxed));
    core_textbuf_printf(
        &o, "# HELP trail_request_errors_total Requests answered with an error, by kind.\n"
            "# TYPE trail_request_errors_total counter\n");
    for (size_t i = 0; i < N_KINDS; i++)
        core_textbuf_printf(
            &o, "trail_request_errors_total{kind=\"%s\"} %llu\n", error_kinds[i],
            (unsigned long long)atomic_load_explicit(&mt->errors[i], memory_order_relaxed));
    core_textbuf_printf(
        &o,
        "# HELP trail_store_damaged_users_total Reads of a user whose stored state failed its "
        "checksum or format check (schemas/state.md, Integrity).\n"
        "# TYPE trail_store_damaged_users_total counter\ntrail_store_damaged_users_total %llu\n",
        (unsigned long long)atomic_load_explicit(&mt->store_damaged, memory_order_relaxed));
    put_histogram(&o, "trail_score_latency_seconds", "Time to answer a scored /v1/score request.",
                  &mt->latency, lat_le, N_LAT, 1e-6);
    core_textbuf_printf(
        &o,
        "# HELP trail_candidates_scored_total Candidates scored.\n"
        "# TYPE trail_candidates_scored_total counter\ntrail_candidates_scored_total %llu\n",
        (unsigned long long)atomic_load_explicit(&mt->candidates, memory_order_relaxed));
    put_histogram(&o, "trail_user_state_age_seconds",
                  "Request time minus the newest behavior in the user state read.", &mt->age,
                  age_le, N_AGE, 1.0);
    core_textbuf_printf(
        &o,
        "# HELP trail_unknown_users_total Scored requests for users with no stored state.\n"
        "# TYPE trail_unknown_users_total counter\ntrail_unknown_users_total %llu\n",
        (unsigned long long)atomic_load_explicit(&mt->unknown_users, memory_order_relaxed));
    put_by_result(&o, "trail_signature_cache_lookups_total",
                  "Candidate SimHash signatures looked up, by result (a miss hashes the item).",
                  "hit", &mt->sig_hits, "miss", &mt->sig_misses);
    put_by_result(&o, "trail_item_term_cache_lookups_total",
                  "Candidate items' first-layer q terms looked up (reduced-precision paths, many "
                  "candidates), by result (a miss computes it).",
                  "hit", &mt->q_hits, "miss", &mt->q_misses);
    put_by_result(&o, "trail_model_reloads_total", "Model reload attempts, by result.", "ok",
                  &mt->reloads_ok, "failed", &mt->reloads_failed);
    pthread_mutex_lock(&mt->mu);
    core_textbuf_printf(
        &o,
        "# HELP trail_model_info The model being served (value 1).\n"
        "# TYPE trail_model_info gauge\n"
        "trail_model_info{model_version=\"%s\",encoding_version=\"%s\",variant=\"%s\"} 1\n",
        mt->model_version, mt->encoding_version, mt->variant);
    if (mt->isa[0])
        core_textbuf_printf(
            &o,
            "# HELP trail_ranker_isa_info The compute path scoring runs on (value 1): its name, "
            "the precision of the head's inputs, the CPU features found, OpenBLAS's core.\n"
            "# TYPE trail_ranker_isa_info gauge\n"
            "trail_ranker_isa_info{isa=\"%s\",precision=\"%s\",cpu_features=\"%s\","
            "openblas_core=\"%s\"} 1\n",
            mt->isa, mt->precision, mt->cpu, mt->blas);
    pthread_mutex_unlock(&mt->mu);
    core_proc_metrics(&o, mt->start_time);
    core_textbuf_printf(
        &o, "# HELP trail_http_requests_total HTTP requests answered, by status code and path "
            "(known paths; any other is \"other\").\n"
            "# TYPE trail_http_requests_total counter\n");
    for (int e = 0; e < RANK_EP_COUNT; e++)
        for (size_t i = 0; i < N_CODES; i++) {
            uint64_t v = atomic_load_explicit(&mt->http[e][i], memory_order_relaxed);
            char code[16];
            if (!v) continue; /* a series appears with its first request */
            if (i < N_CODES - 1)
                snprintf(code, sizeof code, "%u", status_codes[i]);
            else
                snprintf(code, sizeof code, "other");
            core_textbuf_printf(&o, "trail_http_requests_total{code=\"%s\",path=\"%s\"} %llu\n",
                                code, endpoint_names[e], (unsigned long long)v);
        }
    put_histogram(&o, "trail_http_request_duration_seconds",
                  "Time from a request's first line to its answer's completion, for every answered "
                  "request (reading, parsing, failures included).",
                  &mt->http_latency, http_le, N_HTTP_LE, 1e-9);
    return o.overflow ? CORE_ETOOBIG : (int)o.n;
}
