/* enc_state_int.h: the parts of enc_ustate that the LMDB store needs and nobody else should use:
 * the on-disk behavior record, window chunks, and a loader through which a state whose window lives
 * in LMDB pulls in only the chunks an update touches (the head chunk to evict from, the tail chunk
 * to append to, and all of them when the sums are recomputed).
 *
 * Window indexing: behavior number j (0-based, in arrival order over the user's whole history)
 * lives in chunk j / ENC_CHUNK at position j % ENC_CHUNK. The window holds j in [n_events -
 * window_len, n_events), window_len = min(n_events, window). See schemas/state.md.
 */
#ifndef TRAIL_ENC_STATE_INT_H
#define TRAIL_ENC_STATE_INT_H

#include "enc_state.h"

#include <stdint.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the state records are little-endian and copied as is; port enc_rec encoding first"
#endif

#define ENC_CHUNK 128u /* behaviors per window chunk (4 KiB values) */
#define ENC_NACTIONS 8 /* per-action counters, indexed by sch_action (0 unused) */

/* One behavior as stored (32 bytes, little-endian, pad zero). */
typedef struct enc_rec {
    uint64_t item_id;
    uint64_t category_id;
    int64_t ts;
    uint8_t action;
    uint8_t pad[7];
} enc_rec;
_Static_assert(sizeof(enc_rec) == 32, "enc_rec is 32 bytes on disk");

/* Fill out[0..n) with chunk chunk_no (n = records stored, at least those the state has applied
 * from it; more are allowed: behaviors stored but not applied yet); CORE_OK or an error code. */
typedef int enc_chunk_load_fn(void *opaque, uint64_t chunk_no, enc_rec *out, uint32_t *n);

/** @brief From now on the window is not all in memory: chunks come through fn on demand. */
void enc_ustate_set_loader(enc_ustate *s, enc_chunk_load_fn *fn, void *opaque);
/** @brief Start a user whose state was stored: counters, sums (S, NB, C) floats and counts
 *  (S, NB) u32 are copied in (any alignment; NULL gives zeros); no chunk is loaded. */
void enc_ustate_restore(enc_ustate *s, uint64_t n_events, int64_t last_ts,
                        const uint64_t *action_cnt, const void *sum, const void *cnt);
/** @brief Apply one behavior; the error of a failed chunk load (state then unusable). */
int enc_ustate_apply_rc(enc_ustate *s, enc_sigcache *c, const sch_behavior *b);
/** @brief enc_ustate_apply_rc on b[0..n) in order, prefetching the memory of later behaviors. */
int enc_ustate_apply_many(enc_ustate *s, enc_sigcache *c, const sch_behavior *b, size_t n);
/** @brief Recompute sums and counts from the window, oldest first (loads every chunk). */
int enc_ustate_recompute(enc_ustate *s, enc_sigcache *c);
/** @brief Records of chunk k held in memory (loading it if needed); *n = records in it. */
int enc_ustate_chunk(enc_ustate *s, uint64_t k, const enc_rec **out, uint32_t *n);

/* Read access for the store. */
uint64_t enc_ustate_n_events(const enc_ustate *s);
int64_t enc_ustate_last_ts(const enc_ustate *s);
const uint64_t *enc_ustate_action_cnt(const enc_ustate *s); // (ENC_NACTIONS)
const float *enc_ustate_sum(const enc_ustate *s);           // (S, NB, C)
const uint32_t *enc_ustate_cnt(const enc_ustate *s);        // (S, NB)
uint32_t enc_ustate_window_cap(const enc_ustate *s);

#endif
