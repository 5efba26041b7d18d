/* enc_state.c: one user's encoder state and the update rule (append, evict, bucket sums).
 *
 * The rule, applied one behavior at a time in arrival order:
 *   1. if the window is full, the oldest behavior x_old leaves: V[i][s_i(x_old)] -= x_old and its
 *      count drops (a bucket whose count reaches 0 is set to exactly 0);
 *   2. the new behavior x is appended: V[i][s_i(x)] += x, count + 1;
 *   3. every `window` evictions the sums and counts are recomputed from the window, oldest first,
 *      which bounds float drift from the add/subtract history.
 * Everything depends on the sequence of behaviors alone, never on how they were batched, so the
 * state bytes are the same however a replay was split into transactions.
 * This file does no I/O; the store supplies window chunks through a loader (enc_state_int.h).
 */
#include "core_util.h"
#include "enc_state_int.h"

#include "core_alloc.h"
#include "core_assert.h"
#include "core_err.h"

#include <string.h>

#define ROWS_UNSET UINT32_MAX /* never a row: tables have at most 2^26 rows */
#define AHEAD 8               /* apply_many looks this many behaviors ahead to prefetch */

struct enc_ustate {
    const mdl_model *m;
    uint32_t S, NB, C, L; /* signatures, buckets per signature, width, window */
    uint32_t nslots;      /* chunk slots: ceil(L / ENC_CHUNK) + 1 */
    float *sum;           // (S, NB, C)
    uint32_t *cnt;        // (S, NB)
    uint64_t n_events;    /* behaviors ever applied */
    int64_t last_ts;
    uint64_t action_cnt[ENC_NACTIONS];
    enc_rec *chunks;      // (nslots, ENC_CHUNK): chunk k lives in slot k % nslots
    uint64_t *slot_chunk; // (nslots) chunk number held + 1; 0 = nothing loaded
    uint32_t *rows;       // (nslots, ENC_CHUNK, 2) embedding rows (item, category) of each record;
                          // ROWS_UNSET until computed (records loaded from the store)
    uint16_t *sigs;       // (nslots, ENC_CHUNK, S) signatures of each record, valid with its rows
    enc_chunk_load_fn *load;
    void *load_opaque;
    sch_behavior *recent; // (L) view buffer
};

int enc_ustate_new(enc_ustate **out, const mdl_model *m, uint32_t window) {
    CORE_ASSERT(window >= 1);
    enc_ustate *s = core_calloc(1, sizeof *s);
    if (!s) return CORE_ENOMEM;
    s->m = m;
    s->S = m->cfg.S;
    s->NB = 1u << m->cfg.tau;
    s->C = m->cfg.C;
    s->L = window;
    s->nslots = (window + ENC_CHUNK - 1) / ENC_CHUNK + 1;
    s->sum = core_aligned_alloc((size_t)s->S * s->NB * s->C * sizeof(float));
    s->cnt = core_malloc((size_t)s->S * s->NB * sizeof(uint32_t));
    s->chunks = core_malloc((size_t)s->nslots * ENC_CHUNK * sizeof(enc_rec));
    s->slot_chunk = core_malloc(s->nslots * sizeof(uint64_t));
    s->rows = core_malloc((size_t)s->nslots * ENC_CHUNK * 2 * sizeof(uint32_t));
    s->sigs = core_malloc((size_t)s->nslots * ENC_CHUNK * s->S * sizeof(uint16_t));
    s->recent = core_malloc((size_t)window * sizeof(sch_behavior));
    if (!s->sum || !s->cnt || !s->chunks || !s->slot_chunk || !s->recent || !s->rows || !s->sigs) {
        enc_ustate_destroy(s);
        return CORE_ENOMEM;
    }
    enc_ustate_reset(s);
    *out = s;
    return CORE_OK;
}

void enc_ustate_destroy(enc_ustate *s) {
    if (!s) return;
    core_free(s->sum);
    core_free(s->cnt);
    core_free(s->chunks);
    core_free(s->slot_chunk);
    core_free(s->rows);
    core_free(s->sigs);
    core_free(s->recent);
    core_free(s);
}

void enc_ustate_reset(enc_ustate *s) {
    memset(s->sum, 0, (size_t)s->S * s->NB * s->C * sizeof(float));
    memset(s->cnt, 0, (size_t)s->S * s->NB * sizeof(uint32_t));
    memset(s->slot_chunk, 0, s->nslots * sizeof(uint64_t));
    memset(s->action_cnt, 0, sizeof s->action_cnt);
    s->n_events = 0;
    s->last_ts = 0;
}

void enc_ustate_set_loader(enc_ustate *s, enc_chunk_load_fn *fn, void *opaque) {
    s->load = fn;
    s->load_opaque = opaque;
}

void enc_ustate_restore(enc_ustate *s, uint64_t n_events, int64_t last_ts,
                        const uint64_t *action_cnt, const void *sum, const void *cnt) {
    size_t nsum = (size_t)s->S * s->NB * s->C * sizeof(float), ncnt = (size_t)s->S * s->NB * 4;
    if (sum)
        memcpy(s->sum, sum, nsum);
    else
        memset(s->sum, 0, nsum);
    if (cnt)
        memcpy(s->cnt, cnt, ncnt);
    else
        memset(s->cnt, 0, ncnt);
    memcpy(s->action_cnt, action_cnt, sizeof s->action_cnt);
    memset(s->slot_chunk, 0, s->nslots * sizeof(uint64_t));
    s->n_events = n_events;
    s->last_ts = last_ts;
}

// ---------------------------------------------------------------------------------------------
// Window chunks

static inline uint32_t win_len(const enc_ustate *s) {
    return s->n_events < s->L ? (uint32_t)s->n_events : s->L;
}

/* Records stored in chunk k right now: it is full unless it is the tail. */
static inline uint32_t chunk_count(const enc_ustate *s, uint64_t k) {
    uint64_t left = s->n_events - k * ENC_CHUNK;
    return left < ENC_CHUNK ? (uint32_t)left : ENC_CHUNK;
}

/* Chunk k in memory, loading it through the loader when it is not. */
static int chunk_get(enc_ustate *s, uint64_t k, enc_rec **out) {
    uint32_t slot = (uint32_t)(k % s->nslots);
    enc_rec *c = s->chunks + (size_t)slot * ENC_CHUNK;
    if (s->slot_chunk[slot] != k + 1) {
        CORE_ASSERT(s->load); /* a state without a loader holds its whole window */
        uint32_t n = 0;
        int rc = s->load(s->load_opaque, k, c, &n);
        if (rc) return rc;
        /* a stored chunk may already hold behaviors this state has not applied yet (the store's
         * bucket sums trail its window, schemas/state.md): they are rewritten, identically, as
         * the state applies them */
        if (n < chunk_count(s, k)) return CORE_EFORMAT;
        s->slot_chunk[slot] = k + 1;
        memset(s->rows + (size_t)slot * ENC_CHUNK * 2, 0xff, ENC_CHUNK * 2 * sizeof(uint32_t));
    }
    *out = c;
    return CORE_OK;
}

int enc_ustate_chunk(enc_ustate *s, uint64_t k, const enc_rec **out, uint32_t *n) {
    enc_rec *c;
    int rc = chunk_get(s, k, &c);
    if (rc) return rc;
    *out = c;
    *n = chunk_count(s, k);
    return CORE_OK;
}

// ---------------------------------------------------------------------------------------------
// The update rule

/* V[i][sig[i]] += x (sign 1) or -= x (sign -1) for i < S, x = [xi, xc] (C/2 each).
 * sum: (S, NB, C); cnt: (S, NB). Written once with the width as a parameter; the C = 64 instance
 * below has a constant width, so its loops unroll into a few vector adds. */
static inline __attribute__((always_inline)) void
update_rule(float *restrict sum, uint32_t *restrict cnt, const uint16_t *restrict sig,
            const float *restrict xi, const float *restrict xc, uint32_t S, uint32_t NB, uint32_t C,
            int sign) {
    const uint32_t h = C / 2;
    for (uint32_t i = 0; i < S; i++) {
        size_t b = (size_t)i * NB + sig[i];
        float *restrict v = sum + b * C; // (C)
        if (sign > 0) {
            for (uint32_t c = 0; c < h; c++)
                v[c] += xi[c];
            for (uint32_t c = 0; c < h; c++)
                v[h + c] += xc[c];
            cnt[b]++;
        } else if (--cnt[b] == 0) {
            memset(v, 0, C * sizeof(float)); /* an empty bucket is exactly zero: no drift left */
        } else {
            for (uint32_t c = 0; c < h; c++)
                v[c] -= xi[c];
            for (uint32_t c = 0; c < h; c++)
                v[h + c] -= xc[c];
        }
    }
}

/* Cloned for AVX2 (picked at run time): element-wise adds round the same either way, so the state
 * bytes do not depend on the machine. */
CORE_CLONES_AVX2
static void buckets_update(enc_ustate *s, const uint16_t *sig, uint32_t ir, uint32_t cr, int sign) {
    const uint32_t h = s->C / 2;
    const float *xi = s->m->p.item_emb + (size_t)ir * h; // (C/2)
    const float *xc = s->m->p.cat_emb + (size_t)cr * h;  // (C/2)
    if (s->C == 64)
        update_rule(s->sum, s->cnt, sig, xi, xc, s->S, s->NB, 64, sign);
    else
        update_rule(s->sum, s->cnt, sig, xi, xc, s->S, s->NB, s->C, sign);
}

/* Rows and signatures of behavior j (whose chunk is in memory): kept from its append, or looked
 * up now for a record loaded from the store (and kept). *rw: (2) item row, category row. */
static inline const uint16_t *entry_sig(enc_ustate *s, enc_sigcache *c, uint64_t j,
                                        const enc_rec *r, const uint32_t **rw) {
    size_t e = (size_t)(j / ENC_CHUNK % s->nslots) * ENC_CHUNK + j % ENC_CHUNK;
    uint32_t *row = s->rows + e * 2;
    uint16_t *sig = s->sigs + e * s->S;
    if (row[0] == ROWS_UNSET) {
        row[0] = mdl_item_row(s->m, r->item_id);
        row[1] = mdl_cat_row(s->m, r->category_id);
        memcpy(sig, enc_sigcache_get_rows(c, row[0], row[1]), s->S * sizeof *sig);
    }
    *rw = row;
    return sig;
}

int enc_ustate_recompute(enc_ustate *s, enc_sigcache *c) {
    memset(s->sum, 0, (size_t)s->S * s->NB * s->C * sizeof(float));
    memset(s->cnt, 0, (size_t)s->S * s->NB * sizeof(uint32_t));
    uint64_t head = s->n_events - win_len(s);
    for (uint64_t j = head; j < s->n_events;) {
        enc_rec *ch;
        uint64_t k = j / ENC_CHUNK;
        int rc = chunk_get(s, k, &ch);
        if (rc) return rc;
        uint32_t end = chunk_count(s, k);
        for (uint32_t p = (uint32_t)(j % ENC_CHUNK); p < end; p++, j++) {
            const uint32_t *rw;
            const uint16_t *sig = entry_sig(s, c, j, &ch[p], &rw);
            buckets_update(s, sig, rw[0], rw[1], 1);
        }
    }
    return CORE_OK;
}

/* The rule for one behavior whose embedding rows are (ir, cr). */
static int apply_one(enc_ustate *s, enc_sigcache *c, const sch_behavior *b, uint32_t ir,
                     uint32_t cr) {
    enc_rec *ch;
    int rc, evicted = 0;
    if (s->n_events >= s->L) { /* full: the oldest leaves first */
        uint64_t j = s->n_events - s->L;
        if ((rc = chunk_get(s, j / ENC_CHUNK, &ch))) return rc;
        const uint32_t *rw;
        const uint16_t *sig = entry_sig(s, c, j, &ch[j % ENC_CHUNK], &rw);
        buckets_update(s, sig, rw[0], rw[1], -1);
        evicted = 1;
    }
    uint64_t j = s->n_events, k = j / ENC_CHUNK;
    uint32_t slot = (uint32_t)(k % s->nslots);
    if (j % ENC_CHUNK == 0) { /* a new chunk: its slot's previous chunk has left the window */
        s->slot_chunk[slot] = k + 1;
        ch = s->chunks + (size_t)slot * ENC_CHUNK;
    } else if ((rc = chunk_get(s, k, &ch))) {
        return rc;
    }
    enc_rec *r = &ch[j % ENC_CHUNK];
    memset(r, 0, sizeof *r);
    r->item_id = b->item_id;
    r->category_id = b->category_id;
    r->ts = b->ts;
    r->action = b->action;
    size_t e = (size_t)slot * ENC_CHUNK + j % ENC_CHUNK;
    uint32_t *rw = s->rows + e * 2;
    rw[0] = ir;
    rw[1] = cr;
    const uint16_t *sig = enc_sigcache_get_rows(c, ir, cr);
    memcpy(s->sigs + e * s->S, sig, s->S * sizeof *sig); /* kept for its eviction */
    buckets_update(s, sig, ir, cr, 1);
    s->n_events++;
    if (b->ts > s->last_ts || s->n_events == 1) s->last_ts = b->ts;
    s->action_cnt[b->action < ENC_NACTIONS ? b->action : 0]++;
    /* bound the drift of the add/subtract history: every L evictions, start over from the window */
    if (evicted && (s->n_events - s->L) % s->L == 0) return enc_ustate_recompute(s, c);
    return CORE_OK;
}

int enc_ustate_apply_rc(enc_ustate *s, enc_sigcache *c, const sch_behavior *b) {
    return apply_one(s, c, b, mdl_item_row(s->m, b->item_id), mdl_cat_row(s->m, b->category_id));
}

static inline void prefetch_rows(const enc_ustate *s, enc_sigcache *c, uint32_t ir, uint32_t cr) {
    const uint32_t h = s->C / 2;
    const float *xi = s->m->p.item_emb + (size_t)ir * h, *xc = s->m->p.cat_emb + (size_t)cr * h;
    for (uint32_t o = 0; o < h; o += 16) {
        __builtin_prefetch(xi + o);
        __builtin_prefetch(xc + o);
    }
    enc_sigcache_prefetch(c, ir, cr);
}

int enc_ustate_apply_many(enc_ustate *s, enc_sigcache *c, const sch_behavior *b, size_t n) {
    uint32_t ring[AHEAD][2];
    for (size_t i = 0; i < n && i < AHEAD; i++) {
        ring[i][0] = mdl_item_row(s->m, b[i].item_id);
        ring[i][1] = mdl_cat_row(s->m, b[i].category_id);
        prefetch_rows(s, c, ring[i][0], ring[i][1]);
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t ir = ring[i % AHEAD][0], cr = ring[i % AHEAD][1];
        if (i + AHEAD < n) { /* the memory the behavior AHEAD from now will touch */
            uint32_t *q = ring[i % AHEAD];
            q[0] = mdl_item_row(s->m, b[i + AHEAD].item_id);
            q[1] = mdl_cat_row(s->m, b[i + AHEAD].category_id);
            prefetch_rows(s, c, q[0], q[1]);
        }
        if (s->n_events + AHEAD >= s->L) { /* and the behavior that will leave then */
            uint64_t j = s->n_events + AHEAD - s->L, k = j / ENC_CHUNK;
            uint32_t slot = (uint32_t)(k % s->nslots);
            size_t e = (size_t)slot * ENC_CHUNK + j % ENC_CHUNK;
            const uint32_t *rw = s->rows + e * 2;
            if (s->slot_chunk[slot] == k + 1 && rw[0] != ROWS_UNSET) {
                const uint32_t h = s->C / 2;
                const float *xi = s->m->p.item_emb + (size_t)rw[0] * h;
                const float *xc = s->m->p.cat_emb + (size_t)rw[1] * h;
                for (uint32_t o = 0; o < h; o += 16) {
                    __builtin_prefetch(xi + o);
                    __builtin_prefetch(xc + o);
                }
                __builtin_prefetch(s->sigs + e * s->S);
            }
        }
        int rc = apply_one(s, c, &b[i], ir, cr);
        if (rc) return rc;
    }
    return CORE_OK;
}

void enc_ustate_apply(enc_ustate *s, enc_sigcache *c, const sch_behavior *b) {
    int rc = enc_ustate_apply_rc(s, c, b);
    CORE_ASSERT(rc == CORE_OK); /* only a loader can fail, and in-memory states have none */
}

// ---------------------------------------------------------------------------------------------
// Views

/* Copy behaviors [from, n_events) of the window into out, oldest first. */
static uint32_t copy_tail(enc_ustate *s, uint64_t from, sch_behavior *out) {
    uint32_t n = 0;
    for (uint64_t j = from; j < s->n_events; j++) {
        enc_rec *ch;
        if (chunk_get(s, j / ENC_CHUNK, &ch)) break;
        const enc_rec *r = &ch[j % ENC_CHUNK];
        sch_behavior *o = &out[n++];
        memset(o, 0, sizeof *o);
        o->item_id = r->item_id;
        o->category_id = r->category_id;
        o->ts = r->ts;
        o->action = r->action;
    }
    return n;
}

void enc_ustate_view(enc_ustate *s, uint32_t recent_max, enc_user_view *out) {
    uint32_t wl = win_len(s), nr = recent_max < wl ? recent_max : wl;
    memset(out, 0, sizeof *out);
    out->S = s->S;
    out->n_buckets = s->NB;
    out->C = s->C;
    out->encoding_version = s->m->encoding_version;
    out->bucket_sum = s->sum;
    out->bucket_cnt = s->cnt;
    out->window_len = wl;
    out->recent = s->recent;
    out->recent_len = copy_tail(s, s->n_events - nr, s->recent);
    out->last_ts = s->last_ts;
    out->n_events = s->n_events;
    out->n_summed = s->n_events;
    out->summed_len = wl;
}

uint32_t enc_ustate_window(const enc_ustate *s, sch_behavior *out, uint32_t max) {
    uint32_t wl = win_len(s), n = max < wl ? max : wl;
    /* an in-memory state holds its whole window, so copy_tail never loads (the cast is safe) */
    CORE_ASSERT(!s->load);
    return copy_tail((enc_ustate *)(uintptr_t)s, s->n_events - n, out);
}

uint64_t enc_ustate_n_events(const enc_ustate *s) {
    return s->n_events;
}
int64_t enc_ustate_last_ts(const enc_ustate *s) {
    return s->last_ts;
}
const uint64_t *enc_ustate_action_cnt(const enc_ustate *s) {
    return s->action_cnt;
}
const float *enc_ustate_sum(const enc_ustate *s) {
    return s->sum;
}
const uint32_t *enc_ustate_cnt(const enc_ustate *s) {
    return s->cnt;
}
uint32_t enc_ustate_window_cap(const enc_ustate *s) {
    return s->L;
}
