/* rank_metrics.h: the server's counters and histograms, rendered in the Prometheus text format.
 *
 * Updates are lock-free (C11 atomics) so request threads never wait on each other for a counter;
 * only the model-info labels (changed on reload) sit behind a mutex. trail_http_requests_total
 * keeps one counter per (endpoint, status) pair of fixed lists, so a request costs two atomic adds
 * there and three in the duration histogram. Error kinds are a fixed list
 * (RANK_ERROR_KINDS in rank_metrics.c) so the label set stays bounded whatever clients send.
 * This file knows nothing of HTTP or models beyond the version strings it is handed.
 */
#ifndef TRAIL_RANK_METRICS_H
#define TRAIL_RANK_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct rank_metrics rank_metrics;

typedef enum {
    RANK_EP_SCORE = 0, /* POST /v1/score */
    RANK_EP_HEALTHZ,   /* GET /healthz */
    RANK_EP_METRICS,   /* GET /metrics */
    RANK_EP_RELOAD,    /* POST /admin/reload */
    RANK_EP_READYZ,    /* GET /readyz */
    RANK_EP_MODEL,     /* GET /v1/models/current */
    RANK_EP_OTHER,     /* anything else (answered 404/405) */
    RANK_EP_COUNT
} rank_endpoint;

int rank_metrics_new(rank_metrics **out);
void rank_metrics_destroy(rank_metrics *mt);

void rank_metrics_request(rank_metrics *mt, rank_endpoint ep);
/** @brief One answered HTTP request (trail_http_requests_total{code,path} and
 *  trail_http_request_duration_seconds): its endpoint, the status answered (codes outside the
 *  server's list count as "other"), and its time from the request line to completion. */
void rank_metrics_http(rank_metrics *mt, rank_endpoint ep, unsigned status, int64_t latency_ns);
/** @brief Count one error of a kind (a rank_req_error kind or a server kind such as
 *  body_too_large, not_found); a kind outside the fixed list is counted as "other". */
void rank_metrics_error(rank_metrics *mt, const char *kind);
/** @brief One scored request: its latency, the candidates scored, and the age of the user state
 *  read (age_s < 0: unknown user, counted apart). */
void rank_metrics_scored(rank_metrics *mt, int64_t latency_ns, uint32_t candidates, int64_t age_s);
/** @brief Signature-cache lookups of one request: answered from the cache, and hashed. */
void rank_metrics_sigcache(rank_metrics *mt, uint64_t hits, uint64_t misses);
/** @brief Count lookups of the candidates' first-layer q terms (rank_qcache.h). */
void rank_metrics_qcache(rank_metrics *mt, uint64_t hits, uint64_t misses);
/** @brief The store's count of damaged user reads (enc_store_damage), rendered as
 *  trail_store_damaged_users_total. */
void rank_metrics_store_damage(rank_metrics *mt, uint64_t damaged);
/** @brief A reload attempt and, on success, the model now served. */
void rank_metrics_reload(rank_metrics *mt, int ok);
void rank_metrics_set_model(rank_metrics *mt, const char *model_version,
                            const char *encoding_version, const char *variant);

/** @brief The compute path scoring runs on (rank_isa.h), for trail_ranker_isa_info. */
void rank_metrics_set_isa(rank_metrics *mt, const char *isa, const char *precision,
                          const char *cpu_features, const char *openblas_core);

/** @brief Render every metric into buf, with trail_build_info and the process_* metrics (read
 *  from /proc/self at each call). @return bytes written (without the NUL), or CORE_ETOOBIG if cap
 *  is too small (RANK_METRICS_MAX suffices). */
#define RANK_METRICS_MAX (32u << 10)
int rank_metrics_render(rank_metrics *mt, char *buf, size_t cap);

#endif
