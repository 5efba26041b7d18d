/* rank_score.h: score a batch of candidates for one user (the serving path).
 *
 * Candidate-independent work (self-attention over the recent behaviors, gathering the window for
 * the attention variant) runs once per call; per-candidate work is batched into GEMMs on the
 * scratch's compute path (rank_engine.h). Nothing here allocates: a rank_scratch is sized once
 * per thread for the largest batch and window.
 */
#ifndef TRAIL_RANK_SCORE_H
#define TRAIL_RANK_SCORE_H

#include "mdl.h"
#include "rank_isa.h"
#include "rank_net.h" /* rank_history: what the ranker knows of one user */

#include <stdint.h>

typedef struct rank_scratch rank_scratch;

/** @brief Scratch for up to max_B candidates and max_T window behaviors, with m's head packed for
 *  the process's path (rank_isa_current). @return CORE_OK, CORE_ENOMEM, CORE_EINVAL. */
int rank_scratch_new(rank_scratch **out, const mdl_model *m, uint32_t max_B, uint32_t max_T);
/** @brief The same on a given path; CORE_ERANGE if this machine cannot run it. */
int rank_scratch_new_isa(rank_scratch **out, const mdl_model *m, uint32_t max_B, uint32_t max_T,
                         rank_isa isa);
/** @brief The path the scratch scores on. */
rank_isa rank_scratch_isa(const rank_scratch *s);
/** @brief GEMMs the scratch's net sent to OpenBLAS for lack of a reserved buffer (0 expected). */
unsigned long long rank_scratch_route_fallbacks(const rank_scratch *s);
void rank_scratch_destroy(rank_scratch *s);
/** @brief The scratch's signature cache counters since it was made: candidate lookups answered
 *  from it, and lookups that hashed the item (a cold or evicted entry). Only long = sdim looks up.
 */
void rank_scratch_sigcache_stats(const rank_scratch *s, uint64_t *hits, uint64_t *misses);
/** @brief The same for the candidates' q-term cache (rank_qcache.h); 0 and 0 on paths without
 *  one (fp32, scalar). */
void rank_scratch_qcache_stats(const rank_scratch *s, uint64_t *hits, uint64_t *misses);

/** @brief Click probabilities for B candidates (item_id[b], category_id[b]), in order.
 *  @param[out] out (B) @return CORE_OK, or CORE_ETOOBIG if B or T exceed the scratch. */
int rank_score(float *out, rank_scratch *s, const mdl_model *m, const rank_history *h,
               const uint64_t *item_id, const uint64_t *category_id, uint32_t B);

#endif
