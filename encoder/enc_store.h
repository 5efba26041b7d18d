/* enc_store.h: per-user Behavior Sequence Encoding state in LMDB (the only file that includes
 * lmdb.h is enc_store.c).
 *
 * Per user the store keeps: the raw behavior window (last `window` behaviors, in arrival order),
 * the recent sequence (last `recent` behaviors with timestamps and actions), the SDIM bucket sums
 * V[i][b] = sum of embeddings x_j with s_i(x_j) == b over the retained window, with counts, and
 * counters. Bucket sums are tied to the encoding_version of the model that built them.
 * Also kept, in the same environment: input positions (file offsets, Kafka partition offsets),
 * written in the same write transaction as the state they produced.
 * The byte layout is specified in schemas/state.md.
 *
 * Threads: one enc_batch (writer) at a time per store; any number of enc_readers, one per thread.
 *
 * One writer per store: a handle opened with conf.writer holds an exclusive flock on
 * DIR/writer.lock (ENC_LOCK_FILE) from open to close (or the process's death); a second such open,
 * in this process or another, is refused. Readers (serve, rank, inspect) do not take it. Whatever
 * the lock, each commit re-reads the input positions it writes inside its write transaction and
 * never applies a batch whose events the store already holds (enc_batch_commit).
 */
#ifndef TRAIL_ENC_STORE_H
#define TRAIL_ENC_STORE_H

#include "mdl.h"
#include "sch_event.h"

#include <stddef.h>
#include <stdint.h>

typedef struct enc_store enc_store;
typedef struct enc_batch enc_batch;
typedef struct enc_reader enc_reader;

typedef struct enc_store_conf {
    const char *path;    /* directory (created if missing) */
    size_t map_size;     /* initial LMDB map size in bytes (default 1 GiB) */
    size_t map_max;      /* the map doubles on MDB_MAP_FULL up to this (default 1 TiB) */
    uint32_t window;     /* L_max: raw behaviors kept per user (default 10,000; 0: an existing
                            store's, or new_window for a new one) */
    uint32_t new_window; /* a new store's window when window is 0 (0: 10,000); the encoders
                            pass the window the model was trained on */
    uint32_t recent;     /* recent behaviors kept per user (default 64; >= the model's N; 0: an
                            existing store's, or min(64, window) for a new one) */
    int durable;         /* 1: fsync every commit (default); 0: MDB_NOSYNC-class speed for
                            rebuilds that can be redone */
    int writer;          /* 1: this handle is the store's writer: take the writer lock at open
                            and hold it until close (a store another writer holds is refused
                            with CORE_ESTORE and an errstr naming the store
                            and the holder's pid, nothing touched). 0 (default): no lock, for
                            readers and in-process fixtures */
    int defer_sums;      /* 1: enc_batch_commit commits tier 1 only and the caller runs
                            enc_store_catch_up (the Kafka worker, between batches); 0 (default):
                            each commit also brings every lagging user's sums up to date in the
                            same transaction (file replay, fixtures): all or nothing, as one */
    int must_exist;      /* 1: refuse (CORE_ENOTFOUND, errstr naming the path) a directory that
                            holds no store instead of creating one: readers (serve, rank,
                            inspect) given a mistyped path */
} enc_store_conf;

/** @brief 1 if a read transaction on the store begins and ends (readiness probes). */
int enc_store_readable(enc_store *st);

/** The writer lock's file name inside the store directory; it holds the holder's pid. */
#define ENC_LOCK_FILE "writer.lock"

void enc_store_conf_default(enc_store_conf *conf);

/** @brief Open or create a store. A store remembers its window and recent sizes; opening with
 *  different ones fails with CORE_EMISMATCH. With conf->writer, a store whose writer lock another
 *  handle holds fails with CORE_ESTORE ("another writer holds it") before anything is opened. */
int enc_store_open(enc_store **out, const enc_store_conf *conf, char *errstr, size_t errstr_size);
void enc_store_close(enc_store *st);

/** @brief Use m's embeddings and SimHash for writes and signature lookups. A store that holds
 *  buckets of another encoding_version refuses with CORE_EMISMATCH (run reencode); an empty store
 *  takes m's. @remark m must outlive the store or the next bind. */
int enc_store_bind_model(enc_store *st, const mdl_model *m, char *errstr, size_t errstr_size);
/** @brief encoding_version of the buckets held (0 for an empty store). */
uint64_t enc_store_encoding_version(enc_store *st);
/** @brief The window and recent sizes the store was created with. */
uint32_t enc_store_window(const enc_store *st);
uint32_t enc_store_recent(const enc_store *st);

/** @brief Rebuild every user's buckets from the raw window with m's embeddings and SimHash, in one
 *  write transaction that also switches the store's encoding_version: readers see either the old
 *  buckets or the new ones, never a mix. Binds m on success. A full map is grown and the rebuild
 *  redone; on any error nothing changes. @param[out] users users rebuilt.
 *  @remark holds the writer lock for the whole rebuild; m must outlive the store or the next bind.
 */
int enc_store_reencode(enc_store *st, const mdl_model *m, uint64_t *users, char *errstr,
                       size_t errstr_size);
enum { ENC_DIGEST_STATE = 1, ENC_DIGEST_POS = 2 };
/** @brief XXH3-64 over every key and value, in key order, of the user state and store parameters
 *  (ENC_DIGEST_STATE) and/or the input positions (ENC_DIGEST_POS); the wall-clock updated_at is
 *  never included. Equal digests = equal state bytes. */
int enc_store_digest(enc_store *st, int what, uint64_t *out);
/** @brief Number of users and of stored window chunks. */
int enc_store_users(enc_store *st, uint64_t *users, uint64_t *chunks);

/* Integrity (schemas/state.md, "Integrity"): every user record and window chunk carries a checksum
 * that every read checks. A damaged user fails its reads (CORE_ECHECKSUM, or CORE_EFORMAT for a
 * value of the wrong shape) while every other user is read and written as before; a batch's events
 * for a damaged user are quarantined (kept in the store, not applied). */
typedef struct enc_verify_report {
    uint64_t users, chunks; /* checked */
    uint64_t damaged_users; /* users whose record or a window chunk failed */
    uint64_t quarantined;   /* events held in quarantine */
    int checksums;          /* 0: a store written before checksums (format checks only) */
    int positions_ok;       /* 0: the input positions failed their checksum (meta
                               pos_checksum): a resumed input would skip or repeat events */
} enc_verify_report;
/** @brief Called once per damaged user found by enc_store_verify: what failed ("record" or
 *  "chunk"), the chunk number for a chunk, and the error (CORE_ECHECKSUM or CORE_EFORMAT). */
typedef void enc_verify_cb(uint64_t user_id, const char *what, uint64_t chunk, int err,
                           void *opaque);
/** @brief Check every user record and every chunk of every window, in one read transaction. */
int enc_store_verify(enc_store *st, enc_verify_cb *cb, void *opaque, enc_verify_report *out);
/** @brief Damaged user states met through this handle (reads, and users whose events a commit
 *  quarantined), and events its commits quarantined. Safe from any thread. */
void enc_store_damage(const enc_store *st, uint64_t *damaged, uint64_t *quarantined);

// ---------------------------------------------------------------------------------------------
// Writing

/** @brief Begin a batch (one at a time per store; needs a bound model). Events are buffered in
 *  memory and applied in the single LMDB write transaction that enc_batch_commit opens, so a batch
 *  is all or nothing and its memory grows with its size (about 40 bytes per behavior, plus 32
 *  for sorting at commit; the store keeps these buffers for the next batch). */
int enc_batch_begin(enc_store *st, enc_batch **out);
/** @brief Apply one behavior event: append to the window (evicting the oldest, whose contribution
 *  leaves the bucket sums), update recent, buckets, counts and counters. Events that carry a label
 *  (impressions) are not behaviors and return CORE_OK without changing state. */
int enc_batch_apply(enc_batch *b, const sch_event *ev);
/** @brief Input position for a source ("file:<name>", "kafka:<topic>:<partition>"), written in this
 *  transaction. */
int enc_batch_set_offset(enc_batch *b, const char *source, int64_t next_offset);
/** @brief Behaviors buffered in this batch (labeled impressions are not buffered). */
size_t enc_batch_size(const enc_batch *b);
/** @brief Commit (tier 1: the window, counters and positions; the bucket sums follow in
 *  enc_store_catch_up); the batch is freed whatever the result. A full map is grown and the batch
 *  replayed internally, or CORE_EFULL is returned with nothing written.
 *
 *  Positions are checked inside the write transaction, whether or not the writer lock is held.
 *  The handle remembers, per source, where its caller stands: the value enc_store_get_offset last
 *  returned for it (or that it had none), then each value a batch of this handle set for it. A
 *  source this handle never read is written unchecked. For every other source the batch sets
 *  ("X#..." keys set in the same batch, such as a file's "#rec" and "#rej", follow "X"), the
 *  stored position is re-read:
 *  - all equal to where the caller stands: the batch is applied and the positions written;
 *  - all at or past the batch's new positions (another writer applied these events): nothing is
 *    applied or written, CORE_OK (logged);
 *  - anything else (another writer applied part of the batch, or positions moved back):
 *    CORE_ESTORE with nothing written (logged with the positions); re-read the positions with
 *    enc_store_get_offset to go on.
 *  So no interleaving of writers on one store applies an event twice. */
int enc_batch_commit(enc_batch *b);
void enc_batch_abort(enc_batch *b);

/** @brief Called by enc_store_catch_up, after its commit, for each user whose sums now include
 *  every behavior its head holds. */
typedef void enc_caught_cb(void *opaque, uint64_t user_id);
/** @brief Tier 2 (schemas/state.md, "Two tiers"): enc_batch_commit appends behaviors to the window
 *  and the user's head (visible to readers at once) and marks the user lagging; this brings the
 *  bucket sums of lagging users, oldest mark first, up to their heads, applying each behavior with
 *  the same rule and order as an uninterrupted replay (the bytes are equal), in one write
 *  transaction that stops taking users once budget_ns has passed (at least one is done). Damaged
 *  users are logged, counted and left as they are. May run while a batch is open (the batch only
 *  buffers until its commit), on the thread that commits it.
 *  @param[out] left marks still there after the commit (0: every tier caught up); may be NULL. */
int enc_store_catch_up(enc_store *st, int64_t budget_ns, enc_caught_cb *cb, void *opaque,
                       uint64_t *left);
/** @brief Users whose sums trail their window (lag marks); 0 when the store is caught up. */
int enc_store_lagging(enc_store *st, uint64_t *n);

/** @brief Read a stored input position (CORE_ENOTFOUND if none), and remember it as where this
 *  handle's caller stands in that source (see enc_batch_commit). Not concurrently with a commit
 *  on the same handle. */
int enc_store_get_offset(enc_store *st, const char *source, int64_t *next_offset);

// ---------------------------------------------------------------------------------------------
// Reading (zero-copy views valid until enc_reader_end)

typedef struct enc_user_view {
    uint64_t user_id;
    uint64_t encoding_version;
    uint32_t S, n_buckets, C;   /* n_buckets = 2^tau */
    const float *bucket_sum;    // (S, n_buckets, C)
    const uint32_t *bucket_cnt; // (S, n_buckets)
    uint32_t window_len;        /* behaviors in the raw window */
    uint32_t summed_len;        /* behaviors behind the bucket sums: min(n_summed, window), which
                                   is window_len once the sums caught up (what avgpool divides by) */
    uint32_t recent_len;
    const sch_behavior *recent; // (recent_len) oldest first; a copy inside the reader
    int64_t last_ts;            /* ts of the newest behavior */
    int64_t updated_at;         /* wall-clock seconds of the last write to this user */
    uint64_t n_events;          /* behaviors ever applied */
    uint64_t n_summed;          /* behaviors the bucket sums include (n_events once caught up) */
    const uint64_t *action_cnt; // (8) behaviors ever applied per sch_action (index 0 unused)
} enc_user_view;

/** @brief A per-thread reader, allocated once (serving allocates nothing per request). */
int enc_reader_new(enc_store *st, enc_reader **out);
void enc_reader_destroy(enc_reader *r);
/** @brief Start one short read transaction. */
int enc_reader_begin(enc_reader *r);
/** @brief A user's state. @return CORE_OK, or CORE_ENOTFOUND for a user with no state. */
int enc_reader_user(enc_reader *r, uint64_t user_id, enc_user_view *out);
/** @brief Copy the last min(max, window_len) behaviors of the window, oldest first. */
int enc_reader_window(enc_reader *r, uint64_t user_id, sch_behavior *out, uint32_t max,
                      uint32_t *n);
void enc_reader_end(enc_reader *r);

#endif
