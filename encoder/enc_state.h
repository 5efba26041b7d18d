/* enc_state.h: one user's encoder state in memory, and the update rule both the LMDB store and
 * the trainer's point-in-time samples use (so training features come from the code that serves).
 *
 * State: a ring of the last `window` behaviors, SDIM bucket sums V[i][b] (S, 2^tau, C) and counts
 * (S, 2^tau), counters. Appending a behavior when the ring is full evicts the oldest, and its
 * embedding leaves the sums it was added to. No I/O, no locking: one owner at a time.
 */
#ifndef TRAIL_ENC_STATE_H
#define TRAIL_ENC_STATE_H

#include "enc_simhash.h"
#include "enc_store.h"
#include "mdl.h"
#include "sch_event.h"

#include <stdint.h>

typedef struct enc_ustate enc_ustate;

/** @brief An empty state for model m (C, S, tau from its config) with a window of `window`
 *  behaviors. @remark m must outlive the state. */
int enc_ustate_new(enc_ustate **out, const mdl_model *m, uint32_t window);
void enc_ustate_destroy(enc_ustate *s);
/** @brief Forget everything (keeps the allocation), e.g. to start the next user. */
void enc_ustate_reset(enc_ustate *s);
/** @brief Append one behavior (signatures through the cache, which must be for the same model). */
void enc_ustate_apply(enc_ustate *s, enc_sigcache *c, const sch_behavior *b);
/** @brief A view of the state (pointers valid until the next apply/reset): bucket_sum, bucket_cnt,
 *  window_len, last_ts, n_events; recent points at the last min(recent_max, window_len) behaviors,
 *  oldest first, copied into an internal buffer. */
void enc_ustate_view(enc_ustate *s, uint32_t recent_max, enc_user_view *out);
/** @brief Copy the last min(max, window_len) behaviors, oldest first. */
uint32_t enc_ustate_window(const enc_ustate *s, sch_behavior *out, uint32_t max);

#endif
