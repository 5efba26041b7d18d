/* rank_qcache.c: the candidate items' first-layer terms, cached across requests. */
#include "rank_qcache.h"

#include "core_alloc.h"
#include "core_err.h"

#include <string.h>

struct rank_qcache {
    uint32_t mask; /* slots - 1; a set is a pair of slots */
    int W;
    uint64_t *keys; /* (slots) (ir << 32 | cr) + 1; 0: empty */
    uint8_t *older; /* (slots / 2) per set, the way a put replaces: the one used least recently */
    uint16_t *rows; /* (slots, W) */
    uint64_t hits, misses;
};

int rank_qcache_new(rank_qcache **out, uint32_t slots, int width) {
    uint32_t n = 2;
    while (n < slots && n < (1u << 28))
        n <<= 1;
    rank_qcache *c = core_calloc(1, sizeof *c);
    if (!c) return CORE_ENOMEM;
    c->mask = n - 1;
    c->W = width;
    c->keys = core_calloc(n, sizeof *c->keys);
    c->older = core_calloc(n / 2, sizeof *c->older);
    c->rows = core_malloc((size_t)n * (size_t)width * sizeof *c->rows);
    if (!c->keys || !c->older || !c->rows) {
        rank_qcache_destroy(c);
        return CORE_ENOMEM;
    }
    *out = c;
    return CORE_OK;
}

void rank_qcache_destroy(rank_qcache *c) {
    if (!c) return;
    core_free(c->keys);
    core_free(c->older);
    core_free(c->rows);
    core_free(c);
}

static inline uint64_t qkey(uint32_t ir, uint32_t cr) {
    return (((uint64_t)ir << 32) | cr) + 1;
}

static inline uint32_t qslot(const rank_qcache *c, uint64_t key) {
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & c->mask & ~1u;
}

void rank_qcache_prefetch(const rank_qcache *c, uint32_t ir, uint32_t cr) {
    __builtin_prefetch(c->keys + qslot(c, qkey(ir, cr)));
}

const uint16_t *rank_qcache_find(rank_qcache *c, uint32_t ir, uint32_t cr) {
    uint64_t key = qkey(ir, cr);
    uint32_t s = qslot(c, key);
    for (uint32_t w = 0; w < 2; w++)
        if (c->keys[s + w] == key) {
            c->hits++;
            c->older[s / 2] = (uint8_t)(1 - w);
            return c->rows + (size_t)(s + w) * c->W;
        }
    c->misses++;
    return NULL;
}

void rank_qcache_put(rank_qcache *c, uint32_t ir, uint32_t cr, const uint16_t *row) {
    uint64_t key = qkey(ir, cr);
    uint32_t s = qslot(c, key);
    if (c->keys[s] == key || c->keys[s + 1] == key) return; /* a block's duplicate candidate */
    uint32_t w = c->older[s / 2];
    memcpy(c->rows + (size_t)(s + w) * c->W, row, (size_t)c->W * sizeof *row);
    c->keys[s + w] = key;
    c->older[s / 2] = (uint8_t)(1 - w);
}

void rank_qcache_stats(const rank_qcache *c, uint64_t *hits, uint64_t *misses) {
    *hits = c->hits;
    *misses = c->misses;
}
