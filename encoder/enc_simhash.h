/* enc_simhash.h: multi-round SimHash signatures (docs/MODEL.md section 3) and a per-thread cache of
 * item signatures.
 *
 * bit_k(x) = 1 if (R x)_k > 0 else 0 (a tie at exactly 0 gives 0), R = (S*tau, C) from the model;
 * signature i = sum_{k<tau} bit_{i*tau+k} * 2^k. Pure functions plus a cache; no I/O.
 */
#ifndef TRAIL_ENC_SIMHASH_H
#define TRAIL_ENC_SIMHASH_H

#include "mdl.h"

#include <stdint.h>

/** @brief Signatures of x. sig: (S) out; x: (C); R: (S*tau, C). */
void enc_simhash_sign(uint16_t *sig, const float *x, const float *R, int S, int tau, int C);

/* A two-way set-associative cache from an item's (item row, category row) to its embedding's
 * signatures. Not thread-safe: one per thread. Entries are valid for the model given at creation.
 */
typedef struct enc_sigcache enc_sigcache;

/** @param slots rounded up to a power of two. */
int enc_sigcache_new(enc_sigcache **out, const mdl_model *m, uint32_t slots);
void enc_sigcache_destroy(enc_sigcache *c);
/** @brief The S signatures of item (item_id, category_id); computed on a miss.
 *  @return a pointer valid until the next call on this cache. */
const uint16_t *enc_sigcache_get(enc_sigcache *c, uint64_t item_id, uint64_t category_id);
/** @brief The same by embedding rows (item row ir = mdl_item_row, category row cr = mdl_cat_row),
 *  for callers that already hold the rows. @return a pointer valid until the next call. */
const uint16_t *enc_sigcache_get_rows(enc_sigcache *c, uint32_t ir, uint32_t cr);
/** @brief Lookups answered from the cache and lookups that signed the item. */
void enc_sigcache_stats(const enc_sigcache *c, uint64_t *hits, uint64_t *misses);
/** @brief Hint: the entry of (ir, cr) will be looked up soon (prefetches its slot). */
void enc_sigcache_prefetch(const enc_sigcache *c, uint32_t ir, uint32_t cr);

#endif
