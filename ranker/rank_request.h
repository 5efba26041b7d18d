/* rank_request.h: parse the body of `POST /v1/score` (schemas/rank-api.md) into a preallocated
 * request, without allocating.
 *
 * The parser is written for this one schema rather than on a general JSON library: it fills the
 * caller's candidate arrays directly (the serving path allocates nothing per request), it stops at
 * the first problem with the field path and byte position, and it never recurses (unknown fields
 * are errors, so no value of unknown shape is ever descended into). It accepts exactly RFC 8259
 * JSON for the shapes it knows: strings are checked for valid UTF-8 and escapes, numbers follow
 * the JSON grammar. It does not decide HTTP status codes or look at the model (the server checks
 * `dense` against the model's n_dense).
 */
#ifndef TRAIL_RANK_REQUEST_H
#define TRAIL_RANK_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#define RANK_API_VERSION 1
#define RANK_REQ_MAX_DENSE 4096 /* upper bound on dense features a request may carry */

typedef struct rank_request {
    uint32_t v; /* schema version (RANK_API_VERSION when absent) */
    uint64_t user_id;
    int64_t ts; /* seconds since the epoch; valid if has_ts */
    int has_ts;
    uint32_t B;            /* candidates parsed */
    uint32_t max_B;        /* capacity of item_id / category_id */
    uint64_t *item_id;     // (max_B)
    uint64_t *category_id; // (max_B)
    int has_dense;
    uint32_t n_dense;   /* dense values parsed */
    uint32_t max_dense; /* capacity of dense */
    float *dense;       // (max_dense)
} rank_request;

/* Where and why a parse failed. kind is a static string and a metrics label:
 * bad_json, bad_type, bad_value, missing_field, unknown_field, duplicate_field, bad_version,
 * too_many_candidates, too_many_dense. */
typedef struct rank_req_error {
    const char *kind;
    char field[64];     /* "candidates[3].item_id", "" for the document itself */
    char message[192];  /* one line naming the field and the problem */
    size_t offset;      /* byte offset of the problem in the body */
    uint32_t line, col; /* 1-based, from offset */
} rank_req_error;

/** @brief A request with room for max_B candidates and max_dense dense values.
 *  @return CORE_OK, CORE_EINVAL (max_dense above RANK_REQ_MAX_DENSE) or CORE_ENOMEM. */
int rank_request_new(rank_request **out, uint32_t max_B, uint32_t max_dense);
void rank_request_destroy(rank_request *rq);

/** @brief Parse buf[0..n) (no NUL needed) into rq, overwriting what it held.
 *  @param[out] err filled on failure (kind, field, message, offset, line, col).
 *  @return CORE_OK; CORE_EFORMAT (bad JSON, wrong type, missing, unknown or duplicate field),
 *  CORE_ERANGE (a number out of its range, a version this build does not know) or CORE_ETOOBIG
 *  (more candidates or dense values than the capacity).
 *  @remark Allocates nothing; safe on any bytes. One request per thread. */
int rank_request_parse(rank_request *rq, const char *buf, size_t n, rank_req_error *err);

/** @brief Parse one line of a `trail rank` candidate file (schemas/rank-api.md): either
 *  `item_id,category_id` or a JSON object with exactly item_id and category_id, with the same
 *  rules as a candidate of a request. A trailing "\n" or "\r\n" is ignored; the caller skips
 *  blank lines. @return CORE_OK, CORE_EFORMAT or CORE_ERANGE, with err filled. */
int rank_candidate_line_parse(const char *line, size_t n, uint64_t *item_id, uint64_t *category_id,
                              rank_req_error *err);

#endif
