/* rank_qcache.h: a per-thread cache of each candidate item's first-layer term.
 *
 * The head's first layer is linear in its q block: W1[:, q] q, with q = [item_emb[ir],
 * cat_emb[cr]] (docs/MODEL.md 5.7), depends on the candidate alone, not on the user. Serving
 * scores the same items request after request, so the reduced-precision paths keep that (h1)
 * row here and gather it instead of multiplying q's C columns in the head's GEMM: a fifth of its
 * work at the defaults. The folded head computes the rows of a block's misses together on the
 * path's own kernel and weights (the numbers the GEMM would have produced), gathers them, and
 * only then stores them, so no row a block uses is evicted under it.
 *
 * Rows are fp16, the precision of the folded head's other gathered rows. Eight-way set associative
 * on (item row, category row), least recently used way replaced; not thread-safe (one per
 * scratch); valid for the model and path it was filled for.
 */
#ifndef TRAIL_RANK_QCACHE_H
#define TRAIL_RANK_QCACHE_H

#include <stdint.h>

typedef struct rank_qcache rank_qcache;

/** @param slots rounded up to a power of two (at least 2); @param width values per row (h1).
 *  @return CORE_OK, CORE_ENOMEM. */
int rank_qcache_new(rank_qcache **out, uint32_t slots, int width);
void rank_qcache_destroy(rank_qcache *c);
/** @brief The row of (ir, cr), or NULL (a miss: compute it and rank_qcache_put it).
 *  @return a pointer valid until the next rank_qcache_put. */
const uint16_t *rank_qcache_find(rank_qcache *c, uint32_t ir, uint32_t cr);
/** @brief Store the row of (ir, cr) (width values), replacing its set's least recently used way;
 *  a key already present is left as it is. */
void rank_qcache_put(rank_qcache *c, uint32_t ir, uint32_t cr, const uint16_t *row);
/** @brief Hint: (ir, cr) will be looked up soon. */
void rank_qcache_prefetch(const rank_qcache *c, uint32_t ir, uint32_t cr);
/** @brief Lookups that found their row, and lookups that did not. */
void rank_qcache_stats(const rank_qcache *c, uint64_t *hits, uint64_t *misses);

#endif
