/* rank_qcache.c: the candidate items' first-layer terms, cached across requests. */
#include "rank_qcache.h"

#include "core_alloc.h"
#include "core_err.h"

#include <string.h>

/* Sets of QWAYS slots, their keys in one cache line. Eight ways, not two: serving cycles
 * through its users' candidates, and under least-recently-used replacement a set that holds more
 * of them than it has ways misses on every one of its keys; at the default 16k slots and 8,000
 * items cycling (bench serve), two ways missed 24% of lookups. */
#define QWAYS 8

struct rank_qcache {
    uint32_t sets; /* a power of two */
    int W;
    uint32_t clock; /* use stamps: the way a put replaces is its set's oldest */
    uint64_t *keys; /* (sets * QWAYS) (ir << 32 | cr) + 1; 0: empty */
    uint32_t *used; /* (sets * QWAYS) the clock at the way's last use */
    uint16_t *rows; /* (sets * QWAYS, W) */
    uint64_t hits, misses;
};

int rank_qcache_new(rank_qcache **out, uint32_t slots, int width) {
    uint32_t n = QWAYS;
    while (n < slots && n < (1u << 28))
        n <<= 1;
    rank_qcache *c = core_calloc(1, sizeof *c);
    if (!c) return CORE_ENOMEM;
    c->sets = n / QWAYS;
    c->W = width;
    c->keys = core_aligned_alloc((size_t)n * sizeof *c->keys);
    c->used = core_calloc(n, sizeof *c->used);
    c->rows = core_malloc((size_t)n * (size_t)width * sizeof *c->rows);
    if (!c->keys || !c->used || !c->rows) {
        rank_qcache_destroy(c);
        return CORE_ENOMEM;
    }
    memset(c->keys, 0, (size_t)n * sizeof *c->keys);
    *out = c;
    return CORE_OK;
}

void rank_qcache_destroy(rank_qcache *c) {
    if (!c) return;
    core_free(c->keys);
    core_free(c->used);
    core_free(c->rows);
    core_free(c);
}

static inline uint64_t qkey(uint32_t ir, uint32_t cr) {
    return (((uint64_t)ir << 32) | cr) + 1;
}

/* the first slot of key's set */
static inline uint32_t qset(const rank_qcache *c, uint64_t key) {
    return ((uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (c->sets - 1)) * QWAYS;
}

void rank_qcache_prefetch(const rank_qcache *c, uint32_t ir, uint32_t cr) {
    __builtin_prefetch(c->keys + qset(c, qkey(ir, cr)));
}

/* the slot holding key in its set, or -1 */
static inline int qfind(const rank_qcache *c, uint32_t s, uint64_t key) {
    for (int w = 0; w < QWAYS; w++)
        if (c->keys[s + (uint32_t)w] == key) return (int)s + w;
    return -1;
}

const uint16_t *rank_qcache_find(rank_qcache *c, uint32_t ir, uint32_t cr) {
    uint64_t key = qkey(ir, cr);
    int i = qfind(c, qset(c, key), key);
    if (i < 0) {
        c->misses++;
        return NULL;
    }
    c->hits++;
    c->used[i] = ++c->clock;
    return c->rows + (size_t)i * c->W;
}

void rank_qcache_put(rank_qcache *c, uint32_t ir, uint32_t cr, const uint16_t *row) {
    uint64_t key = qkey(ir, cr);
    uint32_t s = qset(c, key), v = s;
    if (qfind(c, s, key) >= 0) return; /* a block's duplicate candidate */
    /* an empty way, else the least recently used (stamps compared as ages, so the clock may wrap)
     */
    for (uint32_t w = 0; w < QWAYS; w++) {
        if (!c->keys[s + w]) {
            v = s + w;
            break;
        }
        if (c->clock - c->used[s + w] > c->clock - c->used[v]) v = s + w;
    }
    memcpy(c->rows + (size_t)v * c->W, row, (size_t)c->W * sizeof *row);
    c->keys[v] = key;
    c->used[v] = ++c->clock;
}

void rank_qcache_stats(const rank_qcache *c, uint64_t *hits, uint64_t *misses) {
    *hits = c->hits;
    *misses = c->misses;
}
