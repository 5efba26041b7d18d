/* enc_simhash.c: SimHash signatures and the per-thread item-signature cache. */
#include "core_util.h"
#include "enc_simhash.h"

#include "core_alloc.h"
#include "core_err.h"

#include <string.h>

void enc_simhash_sign(uint16_t *sig, const float *x, const float *R, int S, int tau, int C) {
    for (int i = 0; i < S; i++) {
        uint16_t s = 0;
        for (int k = 0; k < tau; k++) {
            const float *r = R + (size_t)(i * tau + k) * C;
            float dot = 0.f;
            for (int c = 0; c < C; c++)
                dot += r[c] * x[c];
            /* a tie at exactly 0 gives bit 0 */
            if (dot > 0.f) s |= (uint16_t)(1u << k);
        }
        sig[i] = s;
    }
}

struct enc_sigcache {
    const mdl_model *m;
    uint32_t mask; /* slots - 1 */
    uint32_t S;
    uint64_t *keys; // (slots) item row << 32 | category row, plus 1 (0 = empty)
    uint16_t *sigs; // (slots, S)
    float *x;       // (C) scratch embedding
    float *rt;      // (C, S*tau) the projection transposed
    float *dot;     // (S*tau) scratch
    uint64_t hits, misses;
};

/* enc_simhash_sign with R transposed: the same products summed in the same order (c ascending,
 * from 0.f, a multiply then an add), so the same bits; but SIGN_BLOCK sums advance together in
 * registers and vectorize across k. rt: (C, m); dot: (m) out. */
#define SIGN_BLOCK 48
CORE_CLONES_AVX2
static void project_t(float *dot, const float *x, const float *rt, int m, int C) {
    int kb = 0;
    for (; kb + SIGN_BLOCK <= m; kb += SIGN_BLOCK) {
        float acc[SIGN_BLOCK] = {0};
        for (int c = 0; c < C; c++) {
            const float xc = x[c], *r = rt + (size_t)c * m + kb;
            for (int j = 0; j < SIGN_BLOCK; j++)
                acc[j] += r[j] * xc;
        }
        memcpy(dot + kb, acc, sizeof acc);
    }
    for (int k = kb; k < m; k++) { /* the rest, one sum at a time */
        float d = 0.f;
        for (int c = 0; c < C; c++)
            d += rt[(size_t)c * m + k] * x[c];
        dot[k] = d;
    }
}

static void sign_t(uint16_t *sig, float *dot, const float *x, const float *rt, int S, int tau,
                   int C) {
    project_t(dot, x, rt, S * tau, C);
    for (int i = 0; i < S; i++) {
        uint16_t s = 0;
        for (int k = 0; k < tau; k++)
            if (dot[i * tau + k] > 0.f) s |= (uint16_t)(1u << k); /* a tie at exactly 0 gives 0 */
        sig[i] = s;
    }
}

int enc_sigcache_new(enc_sigcache **out, const mdl_model *m, uint32_t slots) {
    uint32_t n = 2; /* two ways at least */
    while (n < slots && n < (1u << 30))
        n <<= 1;
    enc_sigcache *c = core_calloc(1, sizeof *c);
    if (!c) return CORE_ENOMEM;
    c->m = m;
    c->mask = n - 1;
    c->S = m->cfg.S;
    c->keys = core_calloc(n, sizeof *c->keys);
    c->sigs = core_malloc((size_t)n * c->S * sizeof *c->sigs);
    c->x = core_malloc(m->cfg.C * sizeof *c->x);
    size_t mk = (size_t)m->cfg.S * m->cfg.tau;
    c->rt = core_malloc(mk * m->cfg.C * sizeof *c->rt);
    c->dot = core_malloc(mk * sizeof *c->dot);
    if (!c->keys || !c->sigs || !c->x || !c->rt || !c->dot) {
        enc_sigcache_destroy(c);
        return CORE_ENOMEM;
    }
    for (size_t k = 0; k < mk; k++)
        for (uint32_t d = 0; d < m->cfg.C; d++)
            c->rt[d * mk + k] = m->p.simhash_r[k * m->cfg.C + d];
    *out = c;
    return CORE_OK;
}

void enc_sigcache_destroy(enc_sigcache *c) {
    if (!c) return;
    core_free(c->keys);
    core_free(c->sigs);
    core_free(c->x);
    core_free(c->rt);
    core_free(c->dot);
    core_free(c);
}

const uint16_t *enc_sigcache_get(enc_sigcache *c, uint64_t item_id, uint64_t category_id) {
    return enc_sigcache_get_rows(c, mdl_item_row(c->m, item_id), mdl_cat_row(c->m, category_id));
}

static inline uint32_t cache_slot(const enc_sigcache *c, uint64_t key) {
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & c->mask;
}

void enc_sigcache_prefetch(const enc_sigcache *c, uint32_t ir, uint32_t cr) {
    uint32_t slot = cache_slot(c, (((uint64_t)ir << 32) | cr) + 1) & ~1u;
    __builtin_prefetch(c->keys + slot);
    __builtin_prefetch(c->sigs + (size_t)slot * c->S);
}

/* Two-way set associative: a key lives in slot pair (2j, 2j+1), the most recently inserted
 * first; a miss moves the first entry to the second and signs into the first. */
const uint16_t *enc_sigcache_get_rows(enc_sigcache *c, uint32_t ir, uint32_t cr) {
    const mdl_model *m = c->m;
    /* the embedding (hence the signature) depends only on the two rows */
    uint64_t key = (((uint64_t)ir << 32) | cr) + 1;
    uint32_t slot = cache_slot(c, key) & ~1u;
    uint16_t *sig = c->sigs + (size_t)slot * c->S;
    if (c->keys[slot] == key) {
        c->hits++;
        return sig;
    }
    if (c->keys[slot + 1] == key) {
        c->hits++;
        return sig + c->S;
    }
    c->misses++;
    c->keys[slot + 1] = c->keys[slot];
    memcpy(sig + c->S, sig, c->S * sizeof *sig);
    uint32_t h = m->cfg.C / 2;
    memcpy(c->x, m->p.item_emb + (size_t)ir * h, h * sizeof(float));
    memcpy(c->x + h, m->p.cat_emb + (size_t)cr * h, h * sizeof(float));
    sign_t(sig, c->dot, c->x, c->rt, (int)m->cfg.S, (int)m->cfg.tau, (int)m->cfg.C);
    c->keys[slot] = key;
    return sig;
}

void enc_sigcache_stats(const enc_sigcache *c, uint64_t *hits, uint64_t *misses) {
    *hits = c->hits;
    *misses = c->misses;
}
