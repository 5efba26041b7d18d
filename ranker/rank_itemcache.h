/* rank_itemcache.h: per-item first-layer terms kept across serving requests.
 *
 * The first layer's q block, W1[:, 0:C] q with q = [item_emb row | cat_emb row], depends on the
 * candidate's two embedding rows and the model alone, so a serving thread computes it once per
 * item and reuses it while the item keeps appearing in requests: 2 C h1 flops per candidate saved
 * (a quarter of the first layer at the defaults). The ranker stores [W1_q q | q] per item, so
 * one lookup also replaces the two embedding-table reads. Keyed by (item row, category row), two-way set
 * associative, fixed size: a miss evicts the older entry of its set. Entries are valid for the one
 * model the cache was made for; the owner (rank_scratch) lives and dies with that model.
 *
 * One thread at a time. Nothing allocates after rank_itemcache_new.
 */
#ifndef TRAIL_RANK_ITEMCACHE_H
#define TRAIL_RANK_ITEMCACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct rank_itemcache rank_itemcache;

/** @brief A cache of `slots` (rounded up to a power of two, at least 2) rows of `width` floats.
 *  @return CORE_OK or CORE_ENOMEM. */
int rank_itemcache_new(rank_itemcache **out, uint32_t slots, uint32_t width);
void rank_itemcache_destroy(rank_itemcache *c);

/** @brief The cached row of (ir, cr), or NULL. */
const float *rank_itemcache_find(rank_itemcache *c, uint32_t ir, uint32_t cr);
/** @brief Start loading the set of (ir, cr) (a likely cache miss). */
void rank_itemcache_prefetch(const rank_itemcache *c, uint32_t ir, uint32_t cr);
/** @brief Store a row for (ir, cr) (width floats, copied), evicting the older entry of its set. */
void rank_itemcache_put(rank_itemcache *c, uint32_t ir, uint32_t cr, const float *row);
/** @brief Lookups that found / missed an entry since creation. */
void rank_itemcache_stats(const rank_itemcache *c, uint64_t *hits, uint64_t *misses);
size_t rank_itemcache_bytes(const rank_itemcache *c);

#endif
