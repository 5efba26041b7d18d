/* rank_itemcache.c: the two-way set-associative cache of per-item first-layer rows. */
#include "rank_itemcache.h"

#include "core_alloc.h"
#include "core_err.h"

#include <string.h>

struct rank_itemcache {
    uint64_t *keys; // (mask + 1) (ir << 32 | cr) + 1, 0 = empty; slot 2j is the newer of set j
    float *rows;    // (mask + 1, width)
    uint32_t mask, width;
    uint64_t hits, misses;
};

int rank_itemcache_new(rank_itemcache **out, uint32_t slots, uint32_t width) {
    uint32_t n = 2;
    while (n < slots && n < (1u << 28))
        n <<= 1;
    rank_itemcache *c = core_calloc(1, sizeof *c);
    if (!c) return CORE_ENOMEM;
    c->mask = n - 1;
    c->width = width;
    c->keys = core_calloc(n, sizeof *c->keys);
    c->rows = core_aligned_alloc((size_t)n * width * sizeof *c->rows);
    if (!c->keys || !c->rows) {
        rank_itemcache_destroy(c);
        return CORE_ENOMEM;
    }
    *out = c;
    return CORE_OK;
}

void rank_itemcache_destroy(rank_itemcache *c) {
    if (!c) return;
    core_free(c->keys);
    core_free(c->rows);
    core_free(c);
}

static inline uint64_t key_of(uint32_t ir, uint32_t cr) {
    return (((uint64_t)ir << 32) | cr) + 1;
}

static inline uint32_t set_of(const rank_itemcache *c, uint64_t key) {
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & c->mask & ~1u;
}

const float *rank_itemcache_find(rank_itemcache *c, uint32_t ir, uint32_t cr) {
    uint64_t key = key_of(ir, cr);
    uint32_t s = set_of(c, key);
    for (uint32_t w = 0; w < 2; w++)
        if (c->keys[s + w] == key) {
            c->hits++;
            return c->rows + (size_t)(s + w) * c->width;
        }
    c->misses++;
    return NULL;
}

void rank_itemcache_prefetch(const rank_itemcache *c, uint32_t ir, uint32_t cr) {
    uint32_t s = set_of(c, key_of(ir, cr));
    __builtin_prefetch(c->keys + s);
    /* the newer way's row, every 64-byte line (the likely hit) */
    const float *row = c->rows + (size_t)s * c->width;
    for (uint32_t o = 0; o < c->width; o += 16)
        __builtin_prefetch(row + o);
}

void rank_itemcache_put(rank_itemcache *c, uint32_t ir, uint32_t cr, const float *row) {
    uint64_t key = key_of(ir, cr);
    uint32_t s = set_of(c, key);
    size_t w = c->width;
    if (c->keys[s] != key) { /* the newer entry ages to the older way (whatever was there goes) */
        c->keys[s + 1] = c->keys[s];
        memcpy(c->rows + (size_t)(s + 1) * w, c->rows + (size_t)s * w, w * sizeof *row);
    }
    c->keys[s] = key;
    memcpy(c->rows + (size_t)s * w, row, w * sizeof *row);
}

void rank_itemcache_stats(const rank_itemcache *c, uint64_t *hits, uint64_t *misses) {
    *hits = c->hits;
    *misses = c->misses;
}

size_t rank_itemcache_bytes(const rank_itemcache *c) {
    return sizeof *c + ((size_t)c->mask + 1) * (sizeof *c->keys + c->width * sizeof *c->rows);
}
