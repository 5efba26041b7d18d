/* rank_request.c: the score-request parser (see rank_request.h for what it does and does not). */
#include "rank_request.h"

#include "core_alloc.h"
#include "core_err.h"
#include "core_json.h"
#include "sch_event.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rank_request_new(rank_request **out, uint32_t max_B, uint32_t max_dense) {
    rank_request *rq = NULL;
    if (max_dense > RANK_REQ_MAX_DENSE) return CORE_EINVAL;
    if (!(rq = core_calloc(1, sizeof *rq))) return CORE_ENOMEM;
    rq->max_B = max_B;
    rq->max_dense = max_dense;
    // +1: a zero-sized request still gets valid pointers
    if (!(rq->item_id = core_malloc(((size_t)max_B + 1) * sizeof(uint64_t)))) goto fail;
    if (!(rq->category_id = core_malloc(((size_t)max_B + 1) * sizeof(uint64_t)))) goto fail;
    if (!(rq->dense = core_malloc(((size_t)max_dense + 1) * sizeof(float)))) goto fail;
    *out = rq;
    return CORE_OK;
fail:
    rank_request_destroy(rq);
    return CORE_ENOMEM;
}

void rank_request_destroy(rank_request *rq) {
    if (!rq) return;
    core_free(rq->item_id);
    core_free(rq->category_id);
    core_free(rq->dense);
    core_free(rq);
}

// ---------------------------------------------------------------------------------------------
// Lexer

typedef struct parser {
    const char *buf, *p, *end;
    rank_req_error *err;
    uint32_t idx; /* the array index that IDX in a field name stands for */
} parser;

/* Field names are constant strings with IDX where an array index goes ("candidates[" IDX "]"), so
 * the happy path formats nothing; fail_at writes the index in. The byte cannot come from input
 * into a message: keys are shown with control bytes replaced. */
#define IDX "\x01"

static void expand_idx(char *s, size_t cap, uint32_t idx) {
    char *q = strchr(s, IDX[0]);
    if (!q) return;
    char num[12], rest[256];
    int k = snprintf(num, sizeof num, "%u", idx);
    snprintf(rest, sizeof rest, "%s", q + 1);
    snprintf(q, cap - (size_t)(q - s), "%.*s%s", k, num, rest);
    expand_idx(q + k, cap - (size_t)(q + k - s), idx);
}

enum { RC_FORMAT = CORE_EFORMAT, RC_RANGE = CORE_ERANGE, RC_BIG = CORE_ETOOBIG };

__attribute__((format(printf, 6, 7))) static int fail_at(parser *ps, const char *at, int rc,
                                                         const char *kind, const char *field,
                                                         const char *fmt, ...) {
    rank_req_error *e = ps->err;
    va_list ap;
    e->kind = kind;
    snprintf(e->field, sizeof e->field, "%s", field);
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    expand_idx(e->field, sizeof e->field, ps->idx);
    expand_idx(e->message, sizeof e->message, ps->idx);
    e->offset = (size_t)(at - ps->buf);
    e->line = 1;
    e->col = 1;
    for (const char *q = ps->buf; q < at; q++) {
        if (*q == '\n') {
            e->line++;
            e->col = 1;
        } else {
            e->col++;
        }
    }
    return rc;
}

static void skip_ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int literal(const parser *ps, const char *word) {
    size_t n = strlen(word);
    return (size_t)(ps->end - ps->p) >= n && memcmp(ps->p, word, n) == 0;
}

/* What the next value is, in words, for "expected X, got Y" messages. */
static const char *value_kind(const parser *ps) {
    if (ps->p >= ps->end) return "the end of the body";
    switch (*ps->p) {
    case '"':
        return "a string";
    case '{':
        return "an object";
    case '[':
        return "an array";
    case 't':
        return literal(ps, "true") ? "a boolean" : "an invalid token";
    case 'f':
        return literal(ps, "false") ? "a boolean" : "an invalid token";
    case 'n':
        return literal(ps, "null") ? "null" : "an invalid token";
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        return "a number";
    default:
        return "an invalid token";
    }
}

/* A value of the wrong type is bad_type; no value at all (end, stray token) is bad_json. */
static const char *type_kind(const parser *ps) {
    return strcmp(value_kind(ps), "an invalid token") && ps->p < ps->end ? "bad_type" : "bad_json";
}

static int expect_char(parser *ps, char c, const char *field, const char *what) {
    skip_ws(ps);
    if (ps->p >= ps->end)
        return fail_at(ps, ps->p, RC_FORMAT, "bad_json", field,
                       "%s%sunexpected end of body, expected %s", field, *field ? ": " : "", what);
    if (*ps->p != c)
        return fail_at(ps, ps->p, RC_FORMAT, "bad_json", field, "%s%sexpected %s, found '%c'",
                       field, *field ? ": " : "", what,
                       (*ps->p >= 0x20 && *ps->p < 0x7f) ? *ps->p : '?');
    ps->p++;
    return CORE_OK;
}

static int hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static void put_utf8(char *out, size_t cap, size_t *n, unsigned cp) {
    unsigned char b[4];
    size_t k;
    if (cp < 0x80)
        b[0] = (unsigned char)cp, k = 1;
    else if (cp < 0x800)
        b[0] = (unsigned char)(0xc0 | (cp >> 6)), b[1] = (unsigned char)(0x80 | (cp & 0x3f)), k = 2;
    else if (cp < 0x10000)
        b[0] = (unsigned char)(0xe0 | (cp >> 12)),
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)),
        b[2] = (unsigned char)(0x80 | (cp & 0x3f)), k = 3;
    else
        b[0] = (unsigned char)(0xf0 | (cp >> 18)),
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f)),
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)),
        b[3] = (unsigned char)(0x80 | (cp & 0x3f)), k = 4;
    for (size_t i = 0; i < k; i++, (*n)++)
        if (*n < cap) out[*n] = (char)b[i];
}

/* A JSON string at ps->p (which is '"'), decoded into out[0..cap) with a NUL; a longer string is
 * still validated to its end and *len says its full decoded length. */
static int parse_string(parser *ps, char *out, size_t cap, size_t *len, const char *field) {
    size_t n = 0;
    const char *start = ps->p;
    ps->p++;
    for (;;) {
        if (ps->p >= ps->end)
            return fail_at(ps, start, RC_FORMAT, "bad_json", field, "%s%sunterminated string",
                           field, *field ? ": " : "");
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"') {
            ps->p++;
            break;
        }
        if (c < 0x20)
            return fail_at(ps, ps->p, RC_FORMAT, "bad_json", field,
                           "%s%scontrol character 0x%02x inside a string", field,
                           *field ? ": " : "", c);
        if (c == '\\') {
            if (ps->end - ps->p < 2)
                return fail_at(ps, ps->p, RC_FORMAT, "bad_json", field, "%s%sunterminated escape",
                               field, *field ? ": " : "");
            char e = ps->p[1];
            const char *esc = ps->p;
            ps->p += 2;
            unsigned cp;
            switch (e) {
            case '"':
                cp = '"';
                break;
            case '\\':
                cp = '\\';
                break;
            case '/':
                cp = '/';
                break;
            case 'b':
                cp = '\b';
                break;
            case 'f':
                cp = '\f';
                break;
            case 'n':
                cp = '\n';
                break;
            case 'r':
                cp = '\r';
                break;
            case 't':
                cp = '\t';
                break;
            case 'u':
                if (ps->end - ps->p < 4 || hex4(ps->p, &cp))
                    return fail_at(ps, esc, RC_FORMAT, "bad_json", field, "%s%sbad \\u escape",
                                   field, *field ? ": " : "");
                ps->p += 4;
                if (cp >= 0xdc00 && cp <= 0xdfff)
                    return fail_at(ps, esc, RC_FORMAT, "bad_json", field, "%s%slone low surrogate",
                                   field, *field ? ": " : "");
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    unsigned lo;
                    if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' ||
                        hex4(ps->p + 2, &lo) || lo < 0xdc00 || lo > 0xdfff)
                        return fail_at(ps, esc, RC_FORMAT, "bad_json", field,
                                       "%s%shigh surrogate without its low half", field,
                                       *field ? ": " : "");
                    ps->p += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                break;
            default:
                return fail_at(ps, esc, RC_FORMAT, "bad_json", field, "%s%sunknown escape", field,
                               *field ? ": " : "");
            }
            put_utf8(out, cap, &n, cp);
            continue;
        }
        const unsigned char *u = (const unsigned char *)ps->p;
        size_t k = *u < 0x80 ? 1 : core_utf8_char(u, (size_t)(ps->end - ps->p));
        if (!k)
            return fail_at(ps, ps->p, RC_FORMAT, "bad_json", field, "%s%sinvalid UTF-8 in a string",
                           field, *field ? ": " : "");
        for (size_t i = 0; i < k; i++, n++)
            if (n < cap) out[n] = ps->p[i];
        ps->p += k;
    }
    if (cap) out[n < cap ? n : cap - 1] = '\0';
    *len = n;
    return CORE_OK;
}

/* A JSON number token at ps->p: sets [*tok, ps->p) and whether it had a fraction or exponent. */
static int scan_number(parser *ps, const char **tok, int *is_int, const char *field) {
    const char *s = ps->p, *q = s;
    *is_int = 1;
    if (q < ps->end && *q == '-') q++;
    if (q >= ps->end || *q < '0' || *q > '9') goto bad;
    if (*q == '0')
        q++;
    else
        while (q < ps->end && *q >= '0' && *q <= '9')
            q++;
    if (q < ps->end && *q == '.') {
        *is_int = 0;
        q++;
        if (q >= ps->end || *q < '0' || *q > '9') goto bad;
        while (q < ps->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < ps->end && (*q == 'e' || *q == 'E')) {
        *is_int = 0;
        q++;
        if (q < ps->end && (*q == '+' || *q == '-')) q++;
        if (q >= ps->end || *q < '0' || *q > '9') goto bad;
        while (q < ps->end && *q >= '0' && *q <= '9')
            q++;
    }
    *tok = s;
    ps->p = q;
    return CORE_OK;
bad:
    return fail_at(ps, s, RC_FORMAT, "bad_json", field, "%s%smalformed number", field,
                   *field ? ": " : "");
}

/* The number token of a field's value, or a type error saying what was wanted. */
static int number_token(parser *ps, const char *field, const char *want, const char **tok,
                        int *is_int) {
    skip_ws(ps);
    if (ps->p >= ps->end || (*ps->p != '-' && (*ps->p < '0' || *ps->p > '9')))
        return fail_at(ps, ps->p, RC_FORMAT, type_kind(ps), field, "%s: expected %s, got %s", field,
                       want, value_kind(ps));
    return scan_number(ps, tok, is_int, field);
}

/* An integer in [0, max]; anything else (another type, a fraction, out of range) names field. */
static int parse_uint(parser *ps, const char *field, uint64_t max, uint64_t *out) {
    const char *tok;
    int is_int;
    int rc = number_token(ps, field, "a non-negative integer", &tok, &is_int);
    if (rc) return rc;
    if (!is_int)
        return fail_at(ps, tok, RC_FORMAT, "bad_type", field,
                       "%s: expected a non-negative integer, got a fraction", field);
    int neg = *tok == '-';
    uint64_t mag = 0;
    for (const char *q = tok + neg; q < ps->p; q++) {
        unsigned d = (unsigned)(*q - '0');
        if (mag > (UINT64_MAX - d) / 10) {
            mag = UINT64_MAX;
            break;
        }
        mag = mag * 10 + d;
    }
    if ((neg && mag != 0) || mag > max) // "-0" is zero
        return fail_at(ps, tok, RC_RANGE, "bad_value", field, "%s: %.*s is out of range [0, %llu]",
                       field, (int)(ps->p - tok > 24 ? 24 : ps->p - tok), tok,
                       (unsigned long long)max);
    *out = mag;
    return CORE_OK;
}

/* A finite number that fits a float. */
static int parse_float(parser *ps, const char *field, float *out) {
    const char *tok;
    int is_int;
    int rc = number_token(ps, field, "a number", &tok, &is_int);
    if (rc) return rc;
    char tmp[64];
    size_t len = (size_t)(ps->p - tok);
    if (len >= sizeof tmp)
        return fail_at(ps, tok, RC_RANGE, "bad_value", field,
                       "%s: number longer than %zu characters", field, sizeof tmp - 1);
    memcpy(tmp, tok, len);
    tmp[len] = '\0';
    errno = 0;
    double d = strtod(tmp, NULL);
    if (!isfinite(d) || fabs(d) > 3.4e38)
        return fail_at(ps, tok, RC_RANGE, "bad_value", field, "%s: %s does not fit a float", field,
                       tmp);
    *out = (float)d;
    return CORE_OK;
}

/* After a member value: ',' (more, returns 1) or the closing bracket (returns 0). */
static int next_member(parser *ps, char close, const char *field, int *more) {
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ',') {
        ps->p++;
        *more = 1;
        return CORE_OK;
    }
    *more = 0;
    return expect_char(ps, close, field, close == '}' ? "',' or '}'" : "',' or ']'");
}

/* An opening bracket (else a type error naming field and what was wanted); *more is 0 when the
 * container closes at once ("[]", "{}"). */
static int open_container(parser *ps, char open, const char *field, const char *want, int *more) {
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != open)
        return fail_at(ps, ps->p, RC_FORMAT, type_kind(ps), field, "%s%sexpected %s, got %s", field,
                       *field ? ": " : "", want, value_kind(ps));
    ps->p++;
    skip_ws(ps);
    *more = !(ps->p < ps->end && *ps->p == (open == '[' ? ']' : '}'));
    if (!*more) ps->p++;
    return CORE_OK;
}

/* A key and its colon. The key is decoded into key[0..cap); an overlong key stays unknown. */
static int parse_key(parser *ps, char *key, size_t cap, const char *where, const char **key_at) {
    size_t len = 0;
    skip_ws(ps);
    *key_at = ps->p;
    if (ps->p >= ps->end || *ps->p != '"')
        return fail_at(ps, ps->p, RC_FORMAT, "bad_json", where, "%s%sexpected a quoted field name",
                       where, *where ? ": " : "");
    int rc = parse_string(ps, key, cap, &len, where);
    if (rc) return rc;
    if (len >= cap || memchr(key, '\0', len)) key[0] = '\x01'; // matches no field name
    return expect_char(ps, ':', where, "':'");
}

/* Printable form of a key for messages (at most 40 bytes, controls replaced). */
static void key_for_msg(const char *key, char *out, size_t cap) {
    size_t i = 0;
    for (; key[i] && i + 1 < cap && i < 40; i++)
        out[i] = ((unsigned char)key[i] < 0x20) ? '?' : key[i];
    out[i] = '\0';
}

// ---------------------------------------------------------------------------------------------
// The schema

/* One candidate object into rq's slot b: candidates[b] of a request, or (single) the one
 * candidate of a candidate-file line. */
static int parse_candidate(parser *ps, rank_request *rq, uint32_t b, int single) {
    const char *where = single ? "candidate" : "candidates[" IDX "]";
    const char *item_f = single ? "candidate.item_id" : "candidates[" IDX "].item_id";
    const char *cat_f = single ? "candidate.category_id" : "candidates[" IDX "].category_id";
    char key[32], shown[48];
    const char *key_at;
    int rc, more, have_item = 0, have_cat = 0;
    ps->idx = b;
    skip_ws(ps);
    const char *obj = ps->p;
    if ((rc = open_container(ps, '{', where, "an object", &more))) return rc;
    while (more) {
        if ((rc = parse_key(ps, key, sizeof key, where, &key_at))) return rc;
        if (!strcmp(key, "item_id") || !strcmp(key, "category_id")) {
            int is_item = key[0] == 'i';
            int *have = is_item ? &have_item : &have_cat;
            const char *field = is_item ? item_f : cat_f;
            if (*have)
                return fail_at(ps, key_at, RC_FORMAT, "duplicate_field", field, "%s appears twice",
                               field);
            *have = 1;
            if ((rc = parse_uint(ps, field, SCH_ID_MAX,
                                 is_item ? &rq->item_id[b] : &rq->category_id[b])))
                return rc;
        } else {
            key_for_msg(key, shown, sizeof shown);
            return fail_at(ps, key_at, RC_FORMAT, "unknown_field", where,
                           "%s: unknown field \"%s\" (a candidate has item_id and category_id)",
                           where, key[0] == '\x01' ? "(overlong or with NUL)" : shown);
        }
        if ((rc = next_member(ps, '}', where, &more))) return rc;
    }
    if (!have_item || !have_cat) {
        const char *field = have_item ? cat_f : item_f;
        return fail_at(ps, obj, RC_FORMAT, "missing_field", field, "%s is missing", field);
    }
    return CORE_OK;
}

static int parse_candidates(parser *ps, rank_request *rq) {
    int rc, more;
    if ((rc = open_container(ps, '[', "candidates", "an array", &more))) return rc;
    while (more) {
        if (rq->B >= rq->max_B) {
            skip_ws(ps);
            return fail_at(ps, ps->p, RC_BIG, "too_many_candidates", "candidates",
                           "candidates: more than the limit of %u", rq->max_B);
        }
        if ((rc = parse_candidate(ps, rq, rq->B, 0))) return rc;
        rq->B++;
        if ((rc = next_member(ps, ']', "candidates", &more))) return rc;
    }
    return CORE_OK;
}

static int parse_dense(parser *ps, rank_request *rq) {
    int rc, more;
    if ((rc = open_container(ps, '[', "dense", "an array of numbers", &more))) return rc;
    while (more) {
        if (rq->n_dense >= rq->max_dense) {
            skip_ws(ps);
            return fail_at(ps, ps->p, RC_BIG, "too_many_dense", "dense",
                           "dense: more than the limit of %u values", rq->max_dense);
        }
        ps->idx = rq->n_dense;
        if ((rc = parse_float(ps, "dense[" IDX "]", &rq->dense[rq->n_dense]))) return rc;
        rq->n_dense++;
        if ((rc = next_member(ps, ']', "dense", &more))) return rc;
    }
    return CORE_OK;
}

int rank_request_parse(rank_request *rq, const char *buf, size_t n, rank_req_error *err) {
    parser ps = {buf, buf, buf + n, err, 0};
    char key[32], shown[48];
    const char *key_at, *obj;
    int rc, more;
    enum { F_V = 1, F_USER = 2, F_TS = 4, F_CAND = 8, F_DENSE = 16 };
    unsigned seen = 0;
    uint64_t v = RANK_API_VERSION;

    rq->v = RANK_API_VERSION;
    rq->user_id = 0;
    rq->ts = 0;
    rq->has_ts = 0;
    rq->B = 0;
    rq->has_dense = 0;
    rq->n_dense = 0;
    memset(err, 0, sizeof *err);

    skip_ws(&ps);
    obj = ps.p;
    if (ps.p >= ps.end)
        return fail_at(&ps, ps.p, RC_FORMAT, "bad_json", "", "empty body: expected a JSON object");
    if ((rc = open_container(&ps, '{', "", "a JSON object", &more))) return rc;
    while (more) {
        if ((rc = parse_key(&ps, key, sizeof key, "", &key_at))) return rc;
        unsigned f = !strcmp(key, "v")            ? F_V
                     : !strcmp(key, "user_id")    ? F_USER
                     : !strcmp(key, "ts")         ? F_TS
                     : !strcmp(key, "candidates") ? F_CAND
                     : !strcmp(key, "dense")      ? F_DENSE
                                                  : 0;
        if (!f) {
            key_for_msg(key, shown, sizeof shown);
            return fail_at(&ps, key_at, RC_FORMAT, "unknown_field", key[0] == '\x01' ? "" : shown,
                           "unknown field \"%s\" (fields: v, user_id, ts, candidates, dense)",
                           key[0] == '\x01' ? "(overlong or with NUL)" : shown);
        }
        if (seen & f)
            return fail_at(&ps, key_at, RC_FORMAT, "duplicate_field", key, "%s appears twice", key);
        seen |= f;
        switch (f) {
        case F_V: {
            const char *at;
            skip_ws(&ps);
            at = ps.p;
            if ((rc = parse_uint(&ps, "v", UINT32_MAX, &v))) return rc;
            if (v != RANK_API_VERSION)
                return fail_at(&ps, at, RC_RANGE, "bad_version", "v",
                               "v: version %llu is not supported (this server speaks %d)",
                               (unsigned long long)v, RANK_API_VERSION);
            rq->v = (uint32_t)v;
            break;
        }
        case F_USER:
            rc = parse_uint(&ps, "user_id", SCH_ID_MAX, &rq->user_id);
            break;
        case F_TS: {
            uint64_t ts = 0;
            rc = parse_uint(&ps, "ts", (uint64_t)SCH_TS_MAX, &ts); // SCH_TS_MIN is 0
            rq->ts = (int64_t)ts;
            rq->has_ts = 1;
            break;
        }
        case F_CAND:
            rc = parse_candidates(&ps, rq);
            break;
        case F_DENSE:
            rc = parse_dense(&ps, rq);
            rq->has_dense = 1;
            break;
        }
        if (rc) return rc;
        if ((rc = next_member(&ps, '}', "", &more))) return rc;
    }
    skip_ws(&ps);
    if (ps.p != ps.end)
        return fail_at(&ps, ps.p, RC_FORMAT, "bad_json", "",
                       "unexpected data after the JSON object");
    if (!(seen & F_USER))
        return fail_at(&ps, obj, RC_FORMAT, "missing_field", "user_id", "user_id is missing");
    if (!(seen & F_CAND))
        return fail_at(&ps, obj, RC_FORMAT, "missing_field", "candidates", "candidates is missing");
    return CORE_OK;
}

int rank_candidate_line_parse(const char *line, size_t n, uint64_t *item_id, uint64_t *category_id,
                              rank_req_error *err) {
    parser ps = {line, line, line + n, err, 0};
    int rc;
    memset(err, 0, sizeof *err);
    while (ps.end > ps.p && (ps.end[-1] == '\n' || ps.end[-1] == '\r'))
        ps.end--;
    skip_ws(&ps);
    if (ps.p < ps.end && *ps.p == '{') {
        rank_request one = {.max_B = 1, .item_id = item_id, .category_id = category_id};
        if ((rc = parse_candidate(&ps, &one, 0, 1))) return rc;
    } else {
        if ((rc = parse_uint(&ps, "item_id", SCH_ID_MAX, item_id))) return rc;
        if ((rc = expect_char(&ps, ',', "", "',' between item_id and category_id"))) return rc;
        if ((rc = parse_uint(&ps, "category_id", SCH_ID_MAX, category_id))) return rc;
    }
    skip_ws(&ps);
    if (ps.p != ps.end)
        return fail_at(&ps, ps.p, RC_FORMAT, "bad_json", "", "unexpected data after the candidate");
    return CORE_OK;
}
