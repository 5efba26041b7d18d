/* enc_store.c: the per-user encoder state in LMDB (the only file that includes lmdb.h).
 *
 * Layout (byte-precise in schemas/state.md): DBI "meta" (store parameters, encoding version),
 * "user" (per user a 128-byte head: counters, window length, how many behaviors the sums hold),
 * "sums" (per user the bucket sums and counts), "win" (the raw window in chunks of ENC_CHUNK
 * behaviors keyed (user, chunk#)), "lag" (users whose sums trail their window), "pos" (input
 * positions), "wall" (wall-clock updated_at per user, kept apart so state comparisons can skip it).
 *
 * Writing, in two tiers (schemas/state.md, "Two tiers"):
 * - tier 1, enc_batch_commit: enc_batch_apply only buffers events; the commit groups them by user
 *   (arrival order kept within a user), appends each user's behaviors to its window chunks,
 *   rewrites its head, marks it in "lag" if its sums were current, and writes the input positions:
 *   one LMDB write transaction, a few KB per user, no embedding touched;
 * - tier 2, enc_store_catch_up: for the oldest lag marks, applies behaviors n_summed..n_events-1
 *   to the user's sums through enc_state's rule (one at a time, arrival order: the bytes equal an
 *   uninterrupted replay's), writes the sums, deletes the chunks that left the window behind
 *   them, clears the mark; small transactions with a time budget.
 * A full map is grown (abort, resize with no transaction active, redo) up to map_max.
 *
 * One writer: a writer handle (conf.writer) holds flock(LOCK_EX) on DIR/writer.lock for its whole
 * life. Independently of it, each commit re-reads the positions it writes inside its transaction
 * and compares them with where the handle's caller stands (position_check), so two writers that
 * bypass the lock still never apply an event twice.
 */
#include "enc_store.h"

#include "core_alloc.h"
#include "core_err.h"
#include "core_log.h"
#include "core_util.h"
#include "enc_state_int.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define ENC_USER_MAGIC 0x31555254u /* "TRU1": a format-1 user record (converted at open) */
#define ENC_HEAD_MAGIC 0x32485254u /* "TRH2": a user's head */
#define ENC_SUMS_MAGIC 0x32535254u /* "TRS2": a user's bucket sums */
#define ENC_FORMAT 2u
#define ENC_SIGCACHE_SLOTS (1u << 18)

/* A "user" value: the user's head (format 2). In format 1 the same 128 bytes began the record,
 * with the sums and counts after them and zero where n_summed is. */
typedef struct enc_uhdr {
    uint32_t magic;
    uint32_t format;
    uint32_t S, NB, C;
    uint32_t window_len;
    uint64_t n_events;
    int64_t last_ts;
    uint64_t encoding_version;
    uint64_t action_cnt[ENC_NACTIONS];
    uint64_t checksum; /* head_sum() (format 1: record_sum(), 0 before checksums) */
    uint64_t n_summed; /* behaviors the bucket sums include (<= n_events) */
} enc_uhdr;
_Static_assert(sizeof(enc_uhdr) == 128, "user head is 128 bytes");

/* The head of a "sums" value; sums (S, NB, C) floats and counts (S, NB) u32 follow. */
typedef struct enc_shdr {
    uint32_t magic;
    uint32_t format;
    uint32_t S, NB, C;
    uint32_t zero;
    uint64_t n_summed;         /* behaviors these sums include: the head's n_summed */
    uint64_t encoding_version; /* the head's */
    uint64_t checksum;         /* sums_sum() */
    uint8_t reserved[16];
} enc_shdr;
_Static_assert(sizeof(enc_shdr) == 64, "sums header is 64 bytes");

typedef struct enc_bev { /* a buffered behavior */
    uint64_t user_id, item_id, category_id;
    int64_t ts;
    uint8_t action;
} enc_bev;

typedef struct enc_bkey { /* sort key: user, then arrival */
    uint64_t user_id;
    uint64_t seq;
} enc_bkey;

typedef struct enc_expect { /* where the caller stands in one source */
    char *source;
    int64_t value;
    int present; /* 0: the caller found no position (a fresh start) */
} enc_expect;

struct enc_store {
    MDB_env *env;
    int lock_fd;        /* the writer lock (DIR/writer.lock), -1 when not held */
    enc_expect *expect; /* per source read or written through this handle */
    size_t nexpect, capexpect;
    MDB_dbi meta, user, win, pos, wall, quar, sums, lag;
    uint64_t lag_seq; /* the next lag mark's sequence (one per tier-1 commit) */
    uint64_t *caught; /* users a catch-up transaction brought up to date */
    size_t ncaught, capcaught;
    int checksums;             /* meta "checksums" = 1: every record and chunk carries its sum */
    atomic_ullong corrupt;     /* damaged user states met (reads, and writes' batches) */
    atomic_ullong quarantined; /* events this handle's commits quarantined */
    char *path;
    size_t map_size, map_max;
    uint32_t window, recent;
    int durable;
    int defer_sums;       /* conf.defer_sums */
    uint64_t enc_version; /* of the buckets held (0: empty) */
    const mdl_model *m;   /* bound model */
    enc_sigcache *cache;  /* for m */
    enc_ustate *us;       /* for m, reused user after user */
    int batch_open;
    sch_behavior *scratch; /* one user's behaviors of a batch */
    size_t scap;
    /* buffers kept from batch to batch (first touches of fresh memory cost page faults) */
    enc_bev *ev_spare;
    size_t ev_spare_cap;
    enc_bkey *keys, *keys_tmp;
    size_t keys_cap;
};

typedef struct enc_bpos {
    char *source;
    int64_t next_offset;
} enc_bpos;

struct enc_batch {
    enc_store *st;
    enc_bev *ev;
    size_t n, cap;
    enc_bpos *pos;
    size_t npos, cappos;
};

struct enc_reader {
    enc_store *st;
    MDB_txn *txn;
    int active;
    float *sum; /* copies when a value is not 4-byte aligned (tiny configs) */
    uint32_t *cnt;
    size_t sum_cap, cnt_cap;
    sch_behavior *recent; // (st->recent)
    uint64_t action_cnt[ENC_NACTIONS];
};

// ---------------------------------------------------------------------------------------------
// Keys and small values

static void be64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t le64_get(const void *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* LMDB's codes stop at the call that returns them: every mdb_* result used goes through lmdb_err,
 * so the functions of this file return and compare CORE_E* codes only. MDB_NOTFOUND becomes
 * CORE_ENOTFOUND (absent), MDB_MAP_FULL CORE_EFULL (the map is grown and the transaction redone,
 * up to map_max), any other failure (an MDB_ code, an errno) CORE_ESTORE; MDB_MAP_RESIZED is
 * answered at the call (txn_begin, enc_reader_begin). The call that failed and LMDB's code are
 * kept, per thread, for the messages that name them (store_strerror, store_failure). */
static _Thread_local struct {
    const char *what; /* the call, "mdb_put win" */
    int rc;           /* LMDB's code; 0 since lmdb_forget */
} lmdb_last;

static int lmdb_code(int rc) {
    return !rc                  ? CORE_OK
           : rc == MDB_NOTFOUND ? CORE_ENOTFOUND
           : rc == MDB_MAP_FULL ? CORE_EFULL
                                : CORE_ESTORE;
}

static int lmdb_err(int rc, const char *what) {
    if (rc) {
        lmdb_last.what = what;
        lmdb_last.rc = rc;
    }
    return lmdb_code(rc);
}

/* An operation that reports its failure in words starts with nothing recorded. */
static void lmdb_forget(void) {
    lmdb_last.rc = 0;
}

/* 1 if rc came from the last mdb_* call that failed on this thread since lmdb_forget. */
static int lmdb_gave(int rc) {
    return lmdb_last.rc && lmdb_code(lmdb_last.rc) == rc;
}

/* Words for rc in messages: LMDB's when it gave rc ("MDB_MAP_FULL: Environment mapsize limit
 * reached"), else core_strerror's. */
static const char *store_strerror(int rc) {
    return lmdb_gave(rc) ? mdb_strerror(lmdb_last.rc) : core_strerror(rc);
}

/* store_strerror for the log, after the call that failed when LMDB gave rc ("mdb_put win:
 * MDB_MAP_FULL: Environment mapsize limit reached"). Valid until the next call on this thread. */
static const char *store_failure(int rc) {
    static _Thread_local char buf[160];
    if (!lmdb_gave(rc)) return core_strerror(rc);
    snprintf(buf, sizeof buf, "%s: %s", lmdb_last.what, mdb_strerror(lmdb_last.rc));
    return buf;
}

static int meta_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t *out) {
    MDB_val k = {strlen(name), (void *)(uintptr_t)name}, v;
    int rc = lmdb_err(mdb_get(txn, dbi, &k, &v), "mdb_get meta");
    if (rc) return rc;
    if (v.mv_size != 8) return CORE_EFORMAT;
    *out = le64_get(v.mv_data);
    return CORE_OK;
}

static int meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t x) {
    MDB_val k = {strlen(name), (void *)(uintptr_t)name}, v = {8, &x};
    return lmdb_err(mdb_put(txn, dbi, &k, &v, 0), "mdb_put meta");
}

/* Begin a transaction, adopting a map grown by another process (MDB_MAP_RESIZED). */
static int txn_begin(enc_store *st, unsigned flags, MDB_txn **txn) {
    int rc = mdb_txn_begin(st->env, NULL, flags, txn);
    if (rc != MDB_MAP_RESIZED) return lmdb_err(rc, "mdb_txn_begin");
    if ((rc = lmdb_err(mdb_env_set_mapsize(st->env, 0), "mdb_env_set_mapsize"))) return rc;
    return lmdb_err(mdb_txn_begin(st->env, NULL, flags, txn), "mdb_txn_begin");
}

static int map_grow(enc_store *st) {
    MDB_envinfo info;
    int rc = lmdb_err(mdb_env_info(st->env, &info), "mdb_env_info");
    if (rc) return rc;
    size_t cur = info.me_mapsize > st->map_size ? info.me_mapsize : st->map_size;
    if (cur >= st->map_max) return CORE_EFULL;
    size_t next = cur * 2 > st->map_max ? st->map_max : cur * 2;
    if ((rc = lmdb_err(mdb_env_set_mapsize(st->env, next), "mdb_env_set_mapsize"))) return rc;
    st->map_size = next;
    CORE_LOG(CORE_LOG_NOTICE, "enc_store: map grown path=%s map_size=%zu", st->path, next);
    return CORE_OK;
}

// ---------------------------------------------------------------------------------------------
// Checksums (schemas/state.md, "Integrity"): XXH3-64 over a value with its checksum field zeroed,
// seeded by the key, so a value copied under another key fails too. LMDB itself checks nothing.

#define ENC_SUM_OFF 112      /* enc_uhdr.checksum */
#define ENC_CHUNK_SUM_OFF 28 /* in the chunk's first record: pad bytes 3..6 */

static uint64_t record_sum(uint64_t user_id, const uint8_t *v, size_t len) {
    uint8_t head[sizeof(enc_uhdr)];
    memcpy(head, v, sizeof head);
    memset(head + ENC_SUM_OFF, 0, 8);
    uint64_t h = XXH3_64bits_withSeed(head, sizeof head, user_id ^ 0x7573657200000000ull);
    return XXH3_64bits_withSeed(v + sizeof head, len - sizeof head, h);
}

static uint32_t chunk_sum(uint64_t user_id, uint64_t chunk, const uint8_t *v, size_t len) {
    uint8_t first[sizeof(enc_rec)];
    memcpy(first, v, sizeof first);
    memset(first + ENC_CHUNK_SUM_OFF, 0, 4);
    uint64_t h =
        XXH3_64bits_withSeed(first, sizeof first, user_id ^ (chunk * 0x9E3779B97F4A7C15ull));
    return (uint32_t)XXH3_64bits_withSeed(v + sizeof first, len - sizeof first, h);
}

/* A format-2 head: one XXH3 over its 128 bytes, checksum zeroed. */
static uint64_t head_sum(uint64_t user_id, const uint8_t *v) {
    uint8_t head[sizeof(enc_uhdr)];
    memcpy(head, v, sizeof head);
    memset(head + ENC_SUM_OFF, 0, 8);
    return XXH3_64bits_withSeed(head, sizeof head, user_id ^ 0x7573657200000000ull);
}

#define ENC_SUMS_SUM_OFF 40 /* enc_shdr.checksum */

static uint64_t sums_sum(uint64_t user_id, const uint8_t *v, size_t len) {
    uint8_t head[sizeof(enc_shdr)];
    memcpy(head, v, sizeof head);
    memset(head + ENC_SUMS_SUM_OFF, 0, 8);
    uint64_t h = XXH3_64bits_withSeed(head, sizeof head, user_id ^ 0x73756d7300000000ull);
    return XXH3_64bits_withSeed(v + sizeof head, len - sizeof head, h);
}

static void head_seal(uint64_t user_id, enc_uhdr *h) {
    h->checksum = head_sum(user_id, (const uint8_t *)h);
}

static void sums_seal(uint64_t user_id, uint8_t *v, size_t len) {
    uint64_t h = sums_sum(user_id, v, len);
    memcpy(v + ENC_SUMS_SUM_OFF, &h, 8);
}

static void record_seal(uint64_t user_id, uint8_t *v, size_t len) {
    uint64_t h = record_sum(user_id, v, len);
    memcpy(v + ENC_SUM_OFF, &h, 8);
}

static void chunk_seal(uint64_t user_id, uint64_t chunk, uint8_t *v, size_t len) {
    uint32_t h = chunk_sum(user_id, chunk, v, len);
    memcpy(v + ENC_CHUNK_SUM_OFF, &h, 4);
}

static int record_ok(const enc_store *st, uint64_t user_id, const MDB_val *v) {
    uint64_t h;
    if (!st->checksums) return 1;
    memcpy(&h, (const uint8_t *)v->mv_data + ENC_SUM_OFF, 8);
    return h == record_sum(user_id, v->mv_data, v->mv_size);
}

static int head_ok(const enc_store *st, uint64_t user_id, const MDB_val *v) {
    uint64_t h;
    if (!st->checksums) return 1;
    memcpy(&h, (const uint8_t *)v->mv_data + ENC_SUM_OFF, 8);
    return h == head_sum(user_id, v->mv_data);
}

static int sums_ok(const enc_store *st, uint64_t user_id, const MDB_val *v) {
    uint64_t h;
    if (!st->checksums) return 1;
    memcpy(&h, (const uint8_t *)v->mv_data + ENC_SUMS_SUM_OFF, 8);
    return h == sums_sum(user_id, v->mv_data, v->mv_size);
}

static int chunk_ok(const enc_store *st, uint64_t user_id, uint64_t chunk, const MDB_val *v) {
    uint32_t h;
    if (!st->checksums || v->mv_size < sizeof(enc_rec)) return 1;
    memcpy(&h, (const uint8_t *)v->mv_data + ENC_CHUNK_SUM_OFF, 4);
    return h == chunk_sum(user_id, chunk, v->mv_data, v->mv_size);
}

/* The input positions, all of them (`pos`, in key order): exactly-once rests on them as much as on
 * the state, so meta "pos_checksum" holds this sum, rewritten by every commit that moves one. */
static int pos_sum(const enc_store *st, MDB_txn *txn, uint64_t *out) {
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = lmdb_err(mdb_cursor_open(txn, st->pos, &cur), "mdb_cursor_open pos");
    if (rc) return rc;
    uint64_t h = 0x706f730000000000ull;
    for (int op = MDB_FIRST;
         !(rc = lmdb_err(mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op), "mdb_cursor_get pos"));
         op = MDB_NEXT) {
        uint64_t lens[2] = {k.mv_size, v.mv_size};
        h = XXH3_64bits_withSeed(lens, sizeof lens, h);
        h = XXH3_64bits_withSeed(k.mv_data, k.mv_size, h);
        h = XXH3_64bits_withSeed(v.mv_data, v.mv_size, h);
    }
    mdb_cursor_close(cur);
    *out = h;
    return rc == CORE_ENOTFOUND ? CORE_OK : rc;
}

/* CORE_OK when the positions match meta "pos_checksum" (or the store has none yet), else
 * CORE_ECHECKSUM, logged: a resumed input would skip or repeat events. */
static int pos_ok(const enc_store *st, MDB_txn *txn) {
    uint64_t want, have;
    int rc = st->checksums ? meta_get_u64(txn, st->meta, "pos_checksum", &want) : CORE_ENOTFOUND;
    if (rc == CORE_ENOTFOUND) return CORE_OK;
    if (rc || (rc = pos_sum(st, txn, &have))) return rc;
    if (have == want) return CORE_OK;
    CORE_LOG(CORE_LOG_ERR,
             "enc_store: the input positions failed their checksum path=%s: a "
             "resumed input would skip or repeat events; rebuild the store from its "
             "source",
             st->path);
    return CORE_ECHECKSUM;
}

static uint64_t key_u64(const MDB_val *k) {
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | ((const uint8_t *)k->mv_data)[i];
    return x;
}

/* One positioning of a fresh cursor of dbi (op: MDB_FIRST, MDB_LAST, or MDB_SET_RANGE from k):
 * the entry into k and v, valid while txn is and writes nothing; CORE_ENOTFOUND when there is
 * none. what names the get for the log ("mdb_cursor_get lag"). */
static int cursor_once(MDB_txn *txn, MDB_dbi dbi, MDB_cursor_op op, MDB_val *k, MDB_val *v,
                       const char *what) {
    MDB_cursor *cur;
    int rc = lmdb_err(mdb_cursor_open(txn, dbi, &cur), "mdb_cursor_open");
    if (rc) return rc;
    rc = lmdb_err(mdb_cursor_get(cur, k, v, op), what);
    mdb_cursor_close(cur);
    return rc;
}

/* A store written before checksums gets them from its first writer, every record and chunk in
 * the open transaction (so all or none). Values that fail the format check are left alone: they
 * were damaged before and stay reported as such. Each value is found with a fresh cursor and
 * rewritten with mdb_put (a put through the iterating cursor can cross-link overflow pages). */
static int add_checksums(enc_store *st, MDB_txn *txn, uint64_t *users, uint64_t *chunks) {
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = 0;
    uint8_t *buf = NULL, key[16];
    size_t cap = 0;
    *users = *chunks = 0;
    for (int d = 0; d < 2 && !rc; d++) {
        MDB_dbi dbi = d ? st->win : st->user;
        size_t klen = d ? 16 : 8;
        memset(key, 0, sizeof key);
        for (int first = 1;; first = 0) {
            if ((rc = lmdb_err(mdb_cursor_open(txn, dbi, &cur), "mdb_cursor_open (checksums)")))
                break;
            k = (MDB_val){klen, key};
            rc = lmdb_err(mdb_cursor_get(cur, &k, &v, first ? MDB_FIRST : MDB_SET_RANGE),
                          "mdb_cursor_get (checksums)");
            if (!rc && !first && k.mv_size == klen && !memcmp(k.mv_data, key, klen))
                rc = lmdb_err(mdb_cursor_get(cur, &k, &v, MDB_NEXT), /* past the one just sealed */
                              "mdb_cursor_get (checksums)");
            mdb_cursor_close(cur);
            if (rc) break;
            if (k.mv_size != klen) {
                rc = CORE_EFORMAT; /* no key of another size is ever written */
                break;
            }
            memcpy(key, k.mv_data, klen);
            if (v.mv_size < (d ? sizeof(enc_rec) : sizeof(enc_uhdr))) continue;
            if (v.mv_size > cap) {
                uint8_t *nb = core_realloc(buf, v.mv_size);
                if (!nb) {
                    rc = CORE_ENOMEM;
                    break;
                }
                buf = nb;
                cap = v.mv_size;
            }
            memcpy(buf, v.mv_data, v.mv_size);
            uint64_t uid = key_u64(&k);
            if (d) {
                chunk_seal(uid, key_u64(&(MDB_val){8, key + 8}), buf, v.mv_size);
            } else {
                enc_uhdr h;
                memcpy(&h, buf, sizeof h);
                if (h.magic != ENC_USER_MAGIC) continue;
                record_seal(uid, buf, v.mv_size);
            }
            MDB_val kv = {klen, key}, nv = {v.mv_size, buf};
            if ((rc = lmdb_err(mdb_put(txn, dbi, &kv, &nv, 0), d ? "mdb_put win" : "mdb_put user")))
                break;
            ++*(d ? chunks : users);
        }
        if (rc == CORE_ENOTFOUND) rc = CORE_OK;
    }
    core_free(buf);
    return rc;
}

/* Format 1 kept each user's counters and sums in one "user" record; format 2 splits it into the
 * head ("user") and the sums ("sums"), caught up (n_summed = n_events). The store's first writer
 * converts every record in the open transaction (all or none). A record that fails its checksum or
 * format check is left as it is: it stays reported as damaged. Same cursor discipline as
 * add_checksums. */
static int migrate_v1(enc_store *st, MDB_txn *txn, uint64_t *users) {
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = 0;
    uint8_t *buf = NULL, key[8] = {0};
    size_t cap = 0;
    *users = 0;
    for (int first = 1;; first = 0) {
        if ((rc = lmdb_err(mdb_cursor_open(txn, st->user, &cur), "mdb_cursor_open user"))) break;
        k = (MDB_val){8, key};
        rc = lmdb_err(mdb_cursor_get(cur, &k, &v, first ? MDB_FIRST : MDB_SET_RANGE),
                      "mdb_cursor_get user");
        if (!rc && !first && k.mv_size == 8 && !memcmp(k.mv_data, key, 8))
            rc = lmdb_err(mdb_cursor_get(cur, &k, &v, MDB_NEXT), "mdb_cursor_get user");
        mdb_cursor_close(cur);
        if (rc) break;
        if (k.mv_size != 8) {
            rc = CORE_EFORMAT;
            break;
        }
        memcpy(key, k.mv_data, 8);
        uint64_t uid = key_u64(&k);
        enc_uhdr h;
        if (v.mv_size < sizeof h) continue;
        memcpy(&h, v.mv_data, sizeof h);
        size_t body = v.mv_size - sizeof h;
        if (h.magic != ENC_USER_MAGIC || h.format != 1 || !record_ok(st, uid, &v) || !h.S ||
            !h.NB || !h.C || h.S > 4096 || h.NB > 65536 || h.C > 65536 ||
            body != (size_t)h.S * h.NB * h.C * 4 + (size_t)h.S * h.NB * 4)
            continue; /* damaged: left for readers and --verify to report */
        if (sizeof(enc_shdr) + body > cap) {
            uint8_t *nb = core_realloc(buf, sizeof(enc_shdr) + body);
            if (!nb) {
                rc = CORE_ENOMEM;
                break;
            }
            buf = nb;
            cap = sizeof(enc_shdr) + body;
        }
        enc_shdr sh;
        memset(&sh, 0, sizeof sh);
        sh.magic = ENC_SUMS_MAGIC;
        sh.format = ENC_FORMAT;
        sh.S = h.S;
        sh.NB = h.NB;
        sh.C = h.C;
        sh.n_summed = h.n_events;
        sh.encoding_version = h.encoding_version;
        memcpy(buf, &sh, sizeof sh);
        memcpy(buf + sizeof sh, (const uint8_t *)v.mv_data + sizeof h, body);
        sums_seal(uid, buf, sizeof sh + body);
        h.magic = ENC_HEAD_MAGIC;
        h.format = ENC_FORMAT;
        h.n_summed = h.n_events;
        head_seal(uid, &h);
        MDB_val kv = {8, key}, sv = {sizeof sh + body, buf}, hv = {sizeof h, &h};
        if ((rc = lmdb_err(mdb_put(txn, st->sums, &kv, &sv, 0), "mdb_put sums")) ||
            (rc = lmdb_err(mdb_put(txn, st->user, &kv, &hv, 0), "mdb_put user")))
            break;
        ++*users;
    }
    if (rc == CORE_ENOTFOUND) rc = CORE_OK;
    core_free(buf);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// Open, close, bind

void enc_store_conf_default(enc_store_conf *conf) {
    memset(conf, 0, sizeof *conf);
    conf->map_size = (size_t)1 << 30;
    conf->map_max = (size_t)1 << 40;
    conf->window = 10000;
    conf->recent = 64;
    conf->durable = 1;
    conf->writer = 0;
}

/* Take the writer lock: flock(LOCK_EX | LOCK_NB) on DIR/writer.lock, kept until close (the kernel
 * drops it when the process dies). Held: the file says who holds it. */
static int writer_lock(enc_store *st, char *errstr, size_t errstr_size) {
    char p[4096], buf[32];
    snprintf(p, sizeof p, "%s/%s", st->path, ENC_LOCK_FILE);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0664);
    if (fd < 0) {
        snprintf(errstr, errstr_size, "store %s: writer lock %s: %s", st->path, p, strerror(errno));
        return CORE_EIO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EWOULDBLOCK) {
            ssize_t k = pread(fd, buf, sizeof buf - 1, 0);
            long pid = 0;
            if (k > 0) {
                buf[k] = 0;
                pid = strtol(buf, NULL, 10);
            }
            char who[48] = "pid unknown";
            if (pid > 0) snprintf(who, sizeof who, "pid %ld", pid);
            snprintf(errstr, errstr_size,
                     "store %s: another writer holds it (%s, lock %s); a store has one writer at "
                     "a time: stop that one or write to another store",
                     st->path, who, p);
            close(fd);
            return CORE_ESTORE;
        }
        if (e != ENOLCK && e != EOPNOTSUPP && e != ENOSYS) {
            snprintf(errstr, errstr_size, "store %s: writer lock %s: %s", st->path, p, strerror(e));
            close(fd);
            return CORE_EIO;
        }
        /* a filesystem without locks: the positions checked in each commit still keep a second
         * writer from applying anything twice */
        CORE_LOG(CORE_LOG_WARNING, "enc_store: no writer lock on this filesystem path=%s err=%s",
                 st->path, strerror(e));
    }
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid()); /* never empty while it changes */
    if (pwrite(fd, buf, (size_t)n, 0) != n || ftruncate(fd, n) != 0)
        CORE_LOG(CORE_LOG_WARNING, "enc_store: cannot write the pid into %s: %s", p,
                 strerror(errno));
    st->lock_fd = fd;
    return CORE_OK;
}

/* A data.mdb shorter than the pages its meta page says are in use (a copy cut short, a full disk
 * during a copy) makes LMDB's first read past the end a SIGBUS: refuse it at open instead. */
static int check_not_truncated(enc_store *st, const char *path, char *errstr, size_t errstr_size) {
    MDB_envinfo info;
    MDB_stat ms;
    struct stat sb;
    char dpath[4096];
    if (lmdb_err(mdb_env_info(st->env, &info), "mdb_env_info") ||
        lmdb_err(mdb_env_stat(st->env, &ms), "mdb_env_stat"))
        return CORE_OK; /* nothing to compare with: LMDB's own checks remain */
    snprintf(dpath, sizeof dpath, "%s/data.mdb", path);
    if (stat(dpath, &sb) != 0) return CORE_OK;
    uint64_t need = ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize;
    if ((uint64_t)sb.st_size >= need) return CORE_OK;
    snprintf(errstr, errstr_size,
             "store %s: data.mdb is %lld bytes but its pages reach byte %llu: the file was "
             "truncated (a copy cut short? a full disk?); restore it, or rebuild the store "
             "(replay the input into a new store)",
             path, (long long)sb.st_size, (unsigned long long)need);
    return CORE_ESTORE;
}

/* "store PATH: lmdb WHAT: why" for an LMDB step of the open that failed with rc; returns rc. */
static int open_failed(char *errstr, size_t errstr_size, const char *path, const char *what,
                       int rc) {
    snprintf(errstr, errstr_size, "store %s: lmdb %s: %s", path, what,
             rc == CORE_EFORMAT ? "meta value of the wrong size" : store_strerror(rc));
    return rc;
}

/* A handle with conf's settings, nothing opened yet; NULL without memory. */
static enc_store *store_new(const enc_store_conf *conf) {
    enc_store *st = core_calloc(1, sizeof *st);
    if (!st) return NULL;
    st->lock_fd = -1;
    st->path = core_strdup(conf->path);
    if (!st->path) {
        core_free(st);
        return NULL;
    }
    st->map_size = conf->map_size;
    st->map_max = conf->map_max;
    st->window = conf->window;
    st->recent = conf->recent;
    st->durable = conf->durable;
    st->defer_sums = conf->defer_sums;
    return st;
}

/* The store's directory: one that must hold a store already (conf->must_exist) is checked, a
 * missing one made; a writer takes its lock there. */
static int store_dir(enc_store *st, const enc_store_conf *conf, char *errstr, size_t errstr_size) {
    if (conf->must_exist) {
        char dpath[4096];
        struct stat dsb;
        snprintf(dpath, sizeof dpath, "%s/data.mdb", conf->path);
        if (stat(dpath, &dsb) != 0) {
            snprintf(errstr, errstr_size,
                     "store %s: no store there (%s: %s); name an existing store (one that "
                     "trail encode wrote)",
                     conf->path, dpath, strerror(errno));
            return CORE_ENOTFOUND;
        }
    }
    if (mkdir(conf->path, 0775) != 0 && errno != EEXIST) {
        snprintf(errstr, errstr_size, "store %s: mkdir: %s", conf->path, strerror(errno));
        return CORE_EIO;
    }
    if (conf->writer) return writer_lock(st, errstr, errstr_size); /* before LMDB touches it */
    return CORE_OK;
}

/* The LMDB environment: created with the map size, opened (refused if data.mdb was cut short),
 * its stale readers cleared. */
static int env_open(enc_store *st, const enc_store_conf *conf, char *errstr, size_t errstr_size) {
    int rc, dead = 0;
    if ((rc = lmdb_err(mdb_env_create(&st->env), "mdb_env_create")) ||
        (rc = lmdb_err(mdb_env_set_maxdbs(st->env, 10), "mdb_env_set_maxdbs")) ||
        (rc = lmdb_err(mdb_env_set_mapsize(st->env, st->map_size), "mdb_env_set_mapsize")))
        return open_failed(errstr, errstr_size, conf->path, "env", rc);
    unsigned flags = MDB_NOTLS | (conf->durable ? 0 : MDB_NOSYNC);
    if ((rc = lmdb_err(mdb_env_open(st->env, conf->path, flags, 0664), "mdb_env_open")))
        return open_failed(errstr, errstr_size, conf->path, "open", rc);
    if ((rc = check_not_truncated(st, conf->path, errstr, errstr_size))) return rc;
    (void)mdb_reader_check(st->env, &dead); /* best effort, as in each commit */
    if (dead)
        CORE_LOG(CORE_LOG_NOTICE, "enc_store: cleared stale readers path=%s n=%d", conf->path,
                 dead);
    return CORE_OK;
}

/* The open's write transaction into *txn, and the store's named databases in it. */
static int dbis_open(enc_store *st, const char *path, MDB_txn **txn, char *errstr,
                     size_t errstr_size) {
    static const char *const names[] = {"meta", "user",       "win",  "pos",
                                        "wall", "quarantine", "sums", "lag"};
    MDB_dbi *dbis[] = {&st->meta, &st->user, &st->win,  &st->pos,
                       &st->wall, &st->quar, &st->sums, &st->lag};
    int rc;
    if ((rc = txn_begin(st, 0, txn))) return open_failed(errstr, errstr_size, path, "dbi", rc);
    for (size_t i = 0; i < sizeof dbis / sizeof *dbis; i++)
        if ((rc = lmdb_err(mdb_dbi_open(*txn, names[i], MDB_CREATE, dbis[i]), "mdb_dbi_open")))
            return open_failed(errstr, errstr_size, path, "dbi", rc);
    return CORE_OK;
}

/* A new store remembers its shape: conf's window and recent, or the defaults. */
static int meta_create(enc_store *st, const enc_store_conf *conf, MDB_txn *txn, char *errstr,
                       size_t errstr_size) {
    int rc;
    if (!st->window) st->window = conf->new_window ? conf->new_window : 10000;
    if (!st->recent) st->recent = st->window < 64 ? st->window : 64;
    if (st->recent > st->window) {
        snprintf(errstr, errstr_size, "store %s: recent %u > window %u", conf->path, st->recent,
                 st->window);
        return CORE_EINVAL;
    }
    if ((rc = meta_put_u64(txn, st->meta, "format", ENC_FORMAT)) ||
        (rc = meta_put_u64(txn, st->meta, "window", st->window)) ||
        (rc = meta_put_u64(txn, st->meta, "recent", st->recent)) ||
        (rc = meta_put_u64(txn, st->meta, "chunk", ENC_CHUNK)) ||
        (rc = meta_put_u64(txn, st->meta, "encoding_version", 0)) ||
        (rc = meta_put_u64(txn, st->meta, "checksums", 1)))
        return open_failed(errstr, errstr_size, conf->path, "meta", rc);
    st->checksums = 1;
    return CORE_OK;
}

/* An existing store of format fmt: a format this build reads (1 only by a writer, which converts
 * it), the shape conf asks for (conf's zeros take the store's), its encoding version; *sums gets
 * meta "checksums" (0 when absent). */
static int meta_check(enc_store *st, const enc_store_conf *conf, MDB_txn *txn, uint64_t fmt,
                      uint64_t *sums, char *errstr, size_t errstr_size) {
    uint64_t w, r, ch, ev;
    int rc;
    if (fmt == 1 && !conf->writer) {
        snprintf(errstr, errstr_size,
                 "store %s: state format 1, this build reads %u: its first writer converts "
                 "it in place, in one transaction (run `trail encode` on it once, or `trail "
                 "reencode`), or rebuild it (replay the input into a new store)",
                 conf->path, ENC_FORMAT);
        return CORE_EVERSION;
    }
    if (fmt != ENC_FORMAT && fmt != 1) {
        snprintf(errstr, errstr_size,
                 "store %s: state format %llu, this build reads %u (and converts 1); "
                 "rebuild it with the build that wrote it, or replay the input into a new "
                 "store",
                 conf->path, (unsigned long long)fmt, ENC_FORMAT);
        return CORE_EVERSION;
    }
    if ((rc = meta_get_u64(txn, st->meta, "window", &w)) ||
        (rc = meta_get_u64(txn, st->meta, "recent", &r)) ||
        (rc = meta_get_u64(txn, st->meta, "chunk", &ch)) ||
        (rc = meta_get_u64(txn, st->meta, "encoding_version", &ev)))
        return open_failed(errstr, errstr_size, conf->path, "meta", rc);
    if (w < 1 || w > UINT32_MAX || r > w || ch < 1) { /* a damaged or hand-edited meta */
        snprintf(errstr, errstr_size,
                 "store %s: meta holds window=%llu recent=%llu chunk=%llu: not a valid shape "
                 "(window >= 1, recent <= window); the store's meta is damaged",
                 conf->path, (unsigned long long)w, (unsigned long long)r, (unsigned long long)ch);
        return CORE_EFORMAT;
    }
    if (!st->window) st->window = (uint32_t)w;
    if (!st->recent) st->recent = (uint32_t)r;
    if (w != st->window || r != st->recent || ch != ENC_CHUNK) {
        snprintf(errstr, errstr_size,
                 "store %s holds window=%llu recent=%llu chunk=%llu; opened with window=%u "
                 "recent=%u chunk=%u",
                 conf->path, (unsigned long long)w, (unsigned long long)r, (unsigned long long)ch,
                 st->window, st->recent, ENC_CHUNK);
        return CORE_EMISMATCH;
    }
    rc = meta_get_u64(txn, st->meta, "checksums", sums);
    if (rc == CORE_ENOTFOUND) {
        *sums = 0;
        rc = 0;
    }
    if (rc) return open_failed(errstr, errstr_size, conf->path, "meta", rc);
    st->enc_version = ev;
    return CORE_OK;
}

/* A writer brings an older store (format fmt, meta "checksums" *sums) up to this build's, in the
 * open transaction: the checksums added, format 1 converted. */
static int meta_upgrade(enc_store *st, const enc_store_conf *conf, MDB_txn *txn, uint64_t fmt,
                        uint64_t *sums, char *errstr, size_t errstr_size) {
    int rc;
    if (!*sums && conf->writer) { /* written before checksums: its first writer adds them */
        uint64_t nu, nc, ps;
        if ((rc = add_checksums(st, txn, &nu, &nc)) || (rc = pos_sum(st, txn, &ps)) ||
            (rc = meta_put_u64(txn, st->meta, "pos_checksum", ps)) ||
            (rc = meta_put_u64(txn, st->meta, "checksums", 1)))
            return open_failed(errstr, errstr_size, conf->path, "adding checksums", rc);
        *sums = 1;
        CORE_LOG(CORE_LOG_NOTICE,
                 "enc_store: added checksums to a store written before them path=%s users=%llu "
                 "chunks=%llu",
                 conf->path, (unsigned long long)nu, (unsigned long long)nc);
    }
    if (fmt == 1) { /* a writer (meta_check refuses a reader): convert to format 2 */
        uint64_t nu;
        st->checksums = *sums == 1;
        if ((rc = migrate_v1(st, txn, &nu)) ||
            (rc = meta_put_u64(txn, st->meta, "format", ENC_FORMAT)))
            return open_failed(errstr, errstr_size, conf->path, "converting format 1", rc);
        CORE_LOG(CORE_LOG_NOTICE,
                 "enc_store: converted a format-1 store to format %u (heads and sums "
                 "apart) path=%s users=%llu",
                 ENC_FORMAT, conf->path, (unsigned long long)nu);
    }
    return CORE_OK;
}

/* The store's meta in the open transaction: a new store's written, an existing one's checked
 * against conf and upgraded by a writer. */
static int meta_load(enc_store *st, const enc_store_conf *conf, MDB_txn *txn, char *errstr,
                     size_t errstr_size) {
    uint64_t fmt, sums = 0;
    int rc = meta_get_u64(txn, st->meta, "format", &fmt);
    if (rc == CORE_ENOTFOUND) return meta_create(st, conf, txn, errstr, errstr_size);
    if (rc) return open_failed(errstr, errstr_size, conf->path, "meta", rc);
    if ((rc = meta_check(st, conf, txn, fmt, &sums, errstr, errstr_size)) ||
        (rc = meta_upgrade(st, conf, txn, fmt, &sums, errstr, errstr_size)))
        return rc;
    st->checksums = sums == 1;
    return CORE_OK;
}

/* The next lag mark sorts after every stored one. */
static int lag_seq_load(enc_store *st, MDB_txn *txn, const char *path, char *errstr,
                        size_t errstr_size) {
    MDB_val k, v;
    int rc = cursor_once(txn, st->lag, MDB_LAST, &k, &v, "mdb_cursor_get lag");
    if (rc == CORE_OK && k.mv_size == 16) st->lag_seq = key_u64(&k) + 1;
    if (rc == CORE_ENOTFOUND) rc = CORE_OK;
    return rc ? open_failed(errstr, errstr_size, path, "lag", rc) : CORE_OK;
}

int enc_store_open(enc_store **out, const enc_store_conf *conf, char *errstr, size_t errstr_size) {
    MDB_txn *txn = NULL;
    int rc;
    if (!conf->path || (conf->window && conf->recent > conf->window) || conf->map_size < 65536 ||
        conf->map_max < conf->map_size) {
        snprintf(errstr, errstr_size,
                 "store conf: need a path, recent <= window, "
                 "map_size >= 64 KiB and map_max >= map_size");
        return CORE_EINVAL;
    }
    enc_store *st = store_new(conf);
    if (!st) return CORE_ENOMEM;
    if ((rc = store_dir(st, conf, errstr, errstr_size))) goto fail;
    lmdb_forget();
    if ((rc = env_open(st, conf, errstr, errstr_size)) ||
        (rc = dbis_open(st, conf->path, &txn, errstr, errstr_size)) ||
        (rc = meta_load(st, conf, txn, errstr, errstr_size)) ||
        (rc = lag_seq_load(st, txn, conf->path, errstr, errstr_size)))
        goto fail;
    rc = lmdb_err(mdb_txn_commit(txn), "mdb_txn_commit");
    txn = NULL;
    if (rc) {
        open_failed(errstr, errstr_size, conf->path, "lag", rc); /* the last step's name */
        goto fail;
    }
    *out = st;
    return CORE_OK;
fail:
    if (txn) mdb_txn_abort(txn);
    enc_store_close(st);
    return rc;
}

void enc_store_close(enc_store *st) {
    if (!st) return;
    if (st->env) mdb_env_close(st->env);
    if (st->lock_fd >= 0) close(st->lock_fd); /* after LMDB: released once nothing is written */
    for (size_t i = 0; i < st->nexpect; i++)
        core_free(st->expect[i].source);
    core_free(st->expect);
    enc_sigcache_destroy(st->cache);
    enc_ustate_destroy(st->us);
    core_free(st->scratch);
    core_free(st->ev_spare);
    core_free(st->keys);
    core_free(st->keys_tmp);
    core_free(st->caught);
    core_free(st->path);
    core_free(st);
}

uint64_t enc_store_encoding_version(enc_store *st) {
    return st->enc_version;
}

uint32_t enc_store_window(const enc_store *st) {
    return st->window;
}
uint32_t enc_store_recent(const enc_store *st) {
    return st->recent;
}

/* Cache and reusable user state for model m. */
static int bind_scratch(const mdl_model *m, uint32_t window, enc_sigcache **cache,
                        enc_ustate **us) {
    int rc;
    *cache = NULL;
    *us = NULL;
    if ((rc = enc_sigcache_new(cache, m, ENC_SIGCACHE_SLOTS))) return rc;
    if ((rc = enc_ustate_new(us, m, window))) {
        enc_sigcache_destroy(*cache);
        *cache = NULL;
    }
    return rc;
}

int enc_store_bind_model(enc_store *st, const mdl_model *m, char *errstr, size_t errstr_size) {
    char have[17], want[17];
    MDB_txn *txn = NULL;
    int rc;
    if (st->enc_version && st->enc_version != m->encoding_version) {
        mdl_version_hex(st->enc_version, have);
        mdl_version_hex(m->encoding_version, want);
        snprintf(errstr, errstr_size,
                 "store %s holds buckets of encoding version %s but the model's is %s; run "
                 "`trail reencode --model <model> --store %s` to rebuild them for this model",
                 st->path, have, want, st->path);
        return CORE_EMISMATCH;
    }
    enc_sigcache *cache;
    enc_ustate *us;
    if ((rc = bind_scratch(m, st->window, &cache, &us))) {
        snprintf(errstr, errstr_size, "store %s: out of memory binding the model", st->path);
        return rc;
    }
    if (!st->enc_version) { /* an empty store takes the model's version */
        lmdb_forget();
        for (;;) {
            if ((rc = txn_begin(st, 0, &txn))) break;
            if ((rc = meta_put_u64(txn, st->meta, "encoding_version", m->encoding_version))) {
                mdb_txn_abort(txn);
                if (rc == CORE_EFULL && map_grow(st) == CORE_OK) continue;
                break;
            }
            rc = lmdb_err(mdb_txn_commit(txn), "mdb_txn_commit");
            if (rc == CORE_EFULL && map_grow(st) == CORE_OK) continue;
            break;
        }
        if (rc) {
            snprintf(errstr, errstr_size, "store %s: lmdb: %s", st->path, store_strerror(rc));
            enc_sigcache_destroy(cache);
            enc_ustate_destroy(us);
            return rc;
        }
        st->enc_version = m->encoding_version;
    }
    enc_sigcache_destroy(st->cache);
    enc_ustate_destroy(st->us);
    st->cache = cache;
    st->us = us;
    st->m = m;
    return CORE_OK;
}

// ---------------------------------------------------------------------------------------------
// Reading a user inside a transaction

typedef struct uctx { /* what the chunk loader needs */
    MDB_txn *txn;
    const enc_store *st;
    uint64_t user_id;
} uctx;

static void win_key(uint8_t key[16], uint64_t user_id, uint64_t chunk) {
    be64(key, user_id);
    be64(key + 8, chunk);
}

static int load_chunk(void *opaque, uint64_t chunk_no, enc_rec *out, uint32_t *n) {
    const uctx *u = opaque;
    uint8_t kb[16];
    win_key(kb, u->user_id, chunk_no);
    MDB_val k = {16, kb}, v;
    int rc = lmdb_err(mdb_get(u->txn, u->st->win, &k, &v), "mdb_get win");
    if (rc == CORE_ENOTFOUND) return CORE_EFORMAT; /* the header says the chunk exists */
    if (rc) return rc;
    if (v.mv_size % sizeof(enc_rec) || v.mv_size > ENC_CHUNK * sizeof(enc_rec)) return CORE_EFORMAT;
    if (!chunk_ok(u->st, u->user_id, chunk_no, &v)) return CORE_ECHECKSUM;
    memcpy(out, v.mv_data, v.mv_size);
    *n = (uint32_t)(v.mv_size / sizeof(enc_rec));
    return CORE_OK;
}

/* Validate a user's head (format, then checksum); on success *h is a copy of it. */
static int user_check(const enc_store *st, uint64_t user_id, const MDB_val *v, enc_uhdr *h) {
    if (v->mv_size != sizeof *h) return CORE_EFORMAT;
    memcpy(h, v->mv_data, sizeof *h);
    if (!head_ok(st, user_id, v)) return CORE_ECHECKSUM; /* before the fields it covers */
    if (h->magic != ENC_HEAD_MAGIC || h->format != ENC_FORMAT) return CORE_EFORMAT;
    if (!h->S || !h->NB || !h->C || h->S > 4096 || h->NB > 65536 || h->C > 65536 ||
        h->n_summed > h->n_events)
        return CORE_EFORMAT;
    return CORE_OK;
}

static size_t sums_size(uint32_t S, uint32_t NB, uint32_t C) {
    return sizeof(enc_shdr) + (size_t)S * NB * C * 4 + (size_t)S * NB * 4;
}

/* Validate a user's sums against its checked head h (shape, n_summed, encoding_version). */
static int sums_check(const enc_store *st, uint64_t user_id, const MDB_val *v, const enc_uhdr *h) {
    enc_shdr sh;
    if (v->mv_size < sizeof sh) return CORE_EFORMAT;
    memcpy(&sh, v->mv_data, sizeof sh);
    if (!sums_ok(st, user_id, v)) return CORE_ECHECKSUM;
    if (sh.magic != ENC_SUMS_MAGIC || sh.format != ENC_FORMAT || sh.S != h->S || sh.NB != h->NB ||
        sh.C != h->C || sh.n_summed != h->n_summed || sh.encoding_version != h->encoding_version ||
        v->mv_size != sums_size(sh.S, sh.NB, sh.C))
        return CORE_EFORMAT;
    return CORE_OK;
}

/* A user's value in dbi ("user" or "sums", named in what for the messages). */
static int user_get(MDB_txn *txn, MDB_dbi dbi, const char *what, uint64_t user_id, MDB_val *v) {
    uint8_t kb[8];
    be64(kb, user_id);
    MDB_val k = {8, kb};
    return lmdb_err(mdb_get(txn, dbi, &k, v), what);
}

static int head_put(enc_store *st, MDB_txn *txn, uint64_t user_id, enc_uhdr *h) {
    uint8_t kb[8];
    be64(kb, user_id);
    head_seal(user_id, h);
    MDB_val k = {8, kb}, v = {sizeof *h, h};
    return lmdb_err(mdb_put(txn, st->user, &k, &v, 0), "mdb_put user");
}

/* Write a user's sums (us's, which include n_summed behaviors) with model m's shape (the bound
 * model, or reencode's new one). */
static int sums_put(enc_store *st, MDB_txn *txn, const mdl_model *m, uint64_t user_id,
                    uint64_t n_summed, const enc_ustate *us) {
    const mdl_config *c = &m->cfg;
    uint32_t NB = 1u << c->tau;
    size_t nsum = (size_t)c->S * NB * c->C * 4, ncnt = (size_t)c->S * NB * 4;
    uint8_t kb[8];
    be64(kb, user_id);
    MDB_val k = {8, kb}, v = {sums_size(c->S, NB, c->C), NULL};
    int rc = lmdb_err(mdb_put(txn, st->sums, &k, &v, MDB_RESERVE), "mdb_put sums");
    if (rc) return rc;
    enc_shdr h;
    memset(&h, 0, sizeof h);
    h.magic = ENC_SUMS_MAGIC;
    h.format = ENC_FORMAT;
    h.S = c->S;
    h.NB = NB;
    h.C = c->C;
    h.n_summed = n_summed;
    h.encoding_version = m->encoding_version;
    uint8_t *p = v.mv_data;
    memcpy(p, &h, sizeof h);
    memcpy(p + sizeof h, enc_ustate_sum(us), nsum);
    memcpy(p + sizeof h + nsum, enc_ustate_cnt(us), ncnt);
    sums_seal(user_id, p, v.mv_size);
    return CORE_OK;
}

/* Chunks present for a user whose sums hold n_summed behaviors: from the first chunk of the window
 * as it stood at n_summed (the evictions tier 2 has still to subtract) to the tail. */
static uint64_t chunk_first(uint64_t n_summed, uint64_t window) {
    return (n_summed - (n_summed < window ? n_summed : window)) / ENC_CHUNK;
}

// ---------------------------------------------------------------------------------------------
// Writing

int enc_batch_begin(enc_store *st, enc_batch **out) {
    if (!st->m || st->batch_open) return CORE_EINVAL;
    enc_batch *b = core_calloc(1, sizeof *b);
    if (!b) return CORE_ENOMEM;
    b->st = st;
    b->ev = st->ev_spare; /* reuse the last batch's buffer */
    b->cap = st->ev_spare_cap;
    st->ev_spare = NULL;
    st->ev_spare_cap = 0;
    st->batch_open = 1;
    *out = b;
    return CORE_OK;
}

int enc_batch_apply(enc_batch *b, const sch_event *ev) {
    if (ev->flags & SCH_F_LABEL) return CORE_OK; /* an impression, not a behavior */
    if (core_grow(&b->ev, &b->cap, b->n + 1, sizeof *b->ev, 4096)) return CORE_ENOMEM;
    enc_bev *e = &b->ev[b->n++];
    e->user_id = ev->user_id;
    e->item_id = ev->item_id;
    e->category_id = ev->category_id;
    e->ts = ev->ts;
    e->action = ev->action;
    return CORE_OK;
}

size_t enc_batch_size(const enc_batch *b) {
    return b->n;
}

int enc_batch_set_offset(enc_batch *b, const char *source, int64_t next_offset) {
    for (size_t i = 0; i < b->npos; i++) {
        if (!strcmp(b->pos[i].source, source)) {
            b->pos[i].next_offset = next_offset;
            return CORE_OK;
        }
    }
    if (strlen(source) > 500) return CORE_EINVAL; /* LMDB keys stop at 511 bytes */
    if (core_grow(&b->pos, &b->cappos, b->npos + 1, sizeof *b->pos, 4)) return CORE_ENOMEM;
    char *s = core_strdup(source);
    if (!s) return CORE_ENOMEM;
    b->pos[b->npos].source = s;
    b->pos[b->npos++].next_offset = next_offset;
    return CORE_OK;
}

static void batch_free(enc_batch *b) {
    if (!b) return;
    for (size_t i = 0; i < b->npos; i++)
        core_free(b->pos[i].source);
    core_free(b->pos);
    core_free(b->st->ev_spare);
    b->st->ev_spare = b->ev;
    b->st->ev_spare_cap = b->cap;
    b->st->batch_open = 0;
    core_free(b);
}

void enc_batch_abort(enc_batch *b) {
    batch_free(b);
}

/* Sort keys by user_id, keeping arrival order within a user: an LSD radix sort (stable), one pass
 * per byte of the id, skipping bytes that are the same in every key. tmp: (n) scratch. */
static void bkey_sort(enc_bkey *keys, enc_bkey *tmp, size_t n) {
    size_t hist[256];
    for (int byte = 0; byte < 8; byte++) {
        int shift = 8 * byte;
        memset(hist, 0, sizeof hist);
        for (size_t i = 0; i < n; i++)
            hist[(keys[i].user_id >> shift) & 255]++;
        if (hist[(keys[0].user_id >> shift) & 255] == n) continue; /* one value: nothing moves */
        size_t sum = 0;
        for (int d = 0; d < 256; d++) {
            size_t c = hist[d];
            hist[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            tmp[hist[(keys[i].user_id >> shift) & 255]++] = keys[i];
        memcpy(keys, tmp, n * sizeof *keys);
    }
}

static int damaged(int rc) {
    return rc == CORE_ECHECKSUM || rc == CORE_EFORMAT;
}

/* What a damaged value failed, for the log lines: "failed its checksum / format check". */
static const char *damage_kind(int rc) {
    return rc == CORE_ECHECKSUM ? "checksum" : "format check";
}

typedef struct enc_damage { /* what a batch met of damaged users */
    uint64_t users, events;
} enc_damage;

/* A user whose stored record or window chunk is damaged (format or checksum) keeps it untouched;
 * the batch's events for that user go to the "quarantine" database, in the same transaction as
 * the positions, so they are neither applied nor lost (trail inspect --verify lists them). */
static int quarantine(enc_store *st, MDB_txn *txn, const enc_batch *b, const enc_bkey *keys,
                      size_t lo, size_t hi, int why, enc_damage *dmg) {
    uint64_t uid = keys[lo].user_id, seq = 0;
    int rc = meta_get_u64(txn, st->meta, "quarantined", &seq);
    if (rc && rc != CORE_ENOTFOUND) return rc;
    CORE_LOG(CORE_LOG_ERR,
             "enc_store: user %llu: stored state failed its %s; the user's state is kept as is "
             "and its %zu events of this batch are quarantined (trail inspect --store %s "
             "--verify) path=%s",
             (unsigned long long)uid, damage_kind(why), hi - lo, st->path, st->path);
    for (size_t i = lo; i < hi; i++, seq++) {
        const enc_bev *e = &b->ev[keys[i].seq];
        enc_rec r = {e->item_id, e->category_id, e->ts, e->action, {0}};
        uint8_t kb[16];
        win_key(kb, uid, seq);
        MDB_val kv = {16, kb}, dv = {sizeof r, &r};
        if ((rc = lmdb_err(mdb_put(txn, st->quar, &kv, &dv, 0), "mdb_put quarantine"))) return rc;
    }
    dmg->users++;
    dmg->events += hi - lo;
    return meta_put_u64(txn, st->meta, "quarantined", seq);
}

static void lag_key(uint8_t key[16], uint64_t seq, uint64_t user_id) {
    be64(key, seq);
    be64(key + 8, user_id);
}

/* Tier 1 for one user: append events ev[keys[lo..hi)] (arrival order) to its window chunks,
 * rewrite its head, and mark it lagging if its sums were current. The sums are not touched. */
static int flush_user(enc_store *st, MDB_txn *txn, const enc_batch *b, const enc_bkey *keys,
                      size_t lo, size_t hi, int64_t now, enc_damage *dmg) {
    uint64_t uid = keys[lo].user_id;
    MDB_val v;
    enc_uhdr h;
    const mdl_config *c = &st->m->cfg;
    int rc = user_get(txn, st->user, "mdb_get user", uid, &v);
    if (rc == CORE_ENOTFOUND) {
        memset(&h, 0, sizeof h);
        h.magic = ENC_HEAD_MAGIC;
        h.format = ENC_FORMAT;
        h.S = c->S;
        h.NB = 1u << c->tau;
        h.C = c->C;
        h.encoding_version = st->enc_version;
    } else if (rc) {
        return rc;
    } else {
        if ((rc = user_check(st, uid, &v, &h)))
            return damaged(rc) ? quarantine(st, txn, b, keys, lo, hi, rc, dmg) : rc;
        if (h.S != c->S || h.NB != (1u << c->tau) || h.C != c->C ||
            h.encoding_version != st->enc_version)
            return CORE_EMISMATCH;
    }
    uint64_t n0 = h.n_events;
    enc_rec buf[ENC_CHUNK];
    uint32_t at = (uint32_t)(n0 % ENC_CHUNK);
    if (at) { /* the partial tail chunk, checked before anything of this user is written */
        uint32_t n = 0;
        uctx u = {txn, st, uid};
        if ((rc = load_chunk(&u, n0 / ENC_CHUNK, buf, &n)) == CORE_OK && n != at) rc = CORE_EFORMAT;
        if (rc) return damaged(rc) ? quarantine(st, txn, b, keys, lo, hi, rc, dmg) : rc;
    }
    for (size_t i = lo; i < hi;) {
        uint64_t k = h.n_events / ENC_CHUNK;
        for (; i < hi && at < ENC_CHUNK; i++, at++) {
            const enc_bev *e = &b->ev[keys[i].seq];
            enc_rec *r = &buf[at];
            memset(r, 0, sizeof *r);
            r->item_id = e->item_id;
            r->category_id = e->category_id;
            r->ts = e->ts;
            r->action = e->action;
            h.n_events++;
            if (e->ts > h.last_ts || h.n_events == 1) h.last_ts = e->ts;
            h.action_cnt[e->action < ENC_NACTIONS ? e->action : 0]++;
        }
        uint8_t kb[16];
        win_key(kb, uid, k);
        MDB_val kv = {16, kb}, dv = {at * sizeof(enc_rec), NULL};
        if ((rc = lmdb_err(mdb_put(txn, st->win, &kv, &dv, MDB_RESERVE), "mdb_put win"))) return rc;
        memcpy(dv.mv_data, buf, dv.mv_size);
        chunk_seal(uid, k, dv.mv_data, dv.mv_size);
        at = 0;
    }
    h.window_len = (uint32_t)(h.n_events < st->window ? h.n_events : st->window);
    if (h.n_summed == n0) { /* its sums were current: tier 2 has it to do from now on */
        uint8_t lk[16];
        lag_key(lk, st->lag_seq, uid);
        MDB_val kv = {16, lk}, dv = {0, NULL};
        if ((rc = lmdb_err(mdb_put(txn, st->lag, &kv, &dv, 0), "mdb_put lag"))) return rc;
    }
    if ((rc = head_put(st, txn, uid, &h))) return rc;
    uint8_t kb[8];
    be64(kb, uid);
    MDB_val kv = {8, kb}, dv = {8, &now};
    return lmdb_err(mdb_put(txn, st->wall, &kv, &dv, 0), "mdb_put wall");
}

static int catch_up_in(enc_store *st, MDB_txn *txn, int64_t t0, int64_t budget_ns, uint64_t *left);

// ---------------------------------------------------------------------------------------------
// Positions: where the caller stands, checked against the store inside the write transaction

static enc_expect *expect_find(enc_store *st, const char *source) {
    for (size_t i = 0; i < st->nexpect; i++)
        if (!strcmp(st->expect[i].source, source)) return &st->expect[i];
    return NULL;
}

static void expect_drop(enc_store *st, enc_expect *e) {
    core_free(e->source);
    *e = st->expect[--st->nexpect];
}

/* Remember where the caller stands in source. Never fails: without memory the source is dropped,
 * and goes unchecked (a stale entry would refuse good batches). */
static void expect_note(enc_store *st, const char *source, int present, int64_t value) {
    enc_expect *e = expect_find(st, source);
    if (!e) {
        if (core_grow(&st->expect, &st->capexpect, st->nexpect + 1, sizeof *st->expect, 8)) return;
        char *dup = core_strdup(source);
        if (!dup) return;
        e = &st->expect[st->nexpect++];
        e->source = dup;
    }
    e->present = present;
    e->value = value;
}

/* "X#..." when the batch also sets "X": it follows X (a file's #rec and #rej). */
static int pos_follows(const enc_batch *b, size_t i) {
    const char *s = b->pos[i].source;
    if (!strchr(s, '#')) return 0;
    for (size_t j = 0; j < b->npos; j++) {
        size_t n = strlen(b->pos[j].source);
        if (j != i && s[n] == '#' && !strncmp(s, b->pos[j].source, n)) return 1;
    }
    return 0;
}

enum { POS_APPLY = 0, POS_SKIP = 1 };

/* Compare, inside txn, the stored position of every checked source the batch sets with where the
 * caller stands. Returns POS_APPLY (all where the caller stands), POS_SKIP (all already at or past
 * the batch's new positions: another writer applied these events), a CORE error, or CORE_ESTORE
 * (another writer applied part of them, or a position moved back). */
static int position_check(enc_store *st, MDB_txn *txn, const enc_batch *b) {
    size_t equal = 0, covered = 0;
    for (size_t i = 0; i < b->npos; i++) {
        const enc_expect *e;
        if (pos_follows(b, i) || !(e = expect_find(st, b->pos[i].source))) continue;
        MDB_val k = {strlen(b->pos[i].source), b->pos[i].source}, v;
        int rc = lmdb_err(mdb_get(txn, st->pos, &k, &v), "mdb_get pos"), present = rc == CORE_OK;
        int64_t stored = 0;
        if (rc && rc != CORE_ENOTFOUND) return rc;
        if (present) {
            if (v.mv_size != 8) return CORE_EFORMAT;
            stored = (int64_t)le64_get(v.mv_data);
        }
        int64_t next = b->pos[i].next_offset;
        if (present == e->present && (!present || stored == e->value)) {
            equal++;
        } else if (present && stored >= next) {
            covered++;
        } else {
            CORE_LOG(CORE_LOG_ERR,
                     "enc_store: position moved by another writer path=%s source=%s "
                     "expected=%lld stored=%lld batch_next=%lld: batch refused, nothing written",
                     st->path, b->pos[i].source, e->present ? (long long)e->value : -1LL,
                     present ? (long long)stored : -1LL, (long long)next);
            return CORE_ESTORE;
        }
    }
    if (covered && equal) { /* the events cannot be told apart by source */
        CORE_LOG(CORE_LOG_ERR,
                 "enc_store: positions moved by another writer path=%s: %zu of %zu "
                 "sources already past this batch; batch refused, nothing written",
                 st->path, covered, covered + equal);
        return CORE_ESTORE;
    }
    return covered ? POS_SKIP : POS_APPLY;
}

int enc_batch_commit(enc_batch *b) {
    enc_store *st = b->st;
    enc_bkey *keys = NULL;
    MDB_txn *txn = NULL;
    int rc = CORE_OK;
    if (b->n) {
        if (st->keys_cap < b->n) {
            core_free(st->keys);
            core_free(st->keys_tmp);
            st->keys = core_malloc(b->n * sizeof *st->keys);
            st->keys_tmp = core_malloc(b->n * sizeof *st->keys_tmp);
            st->keys_cap = st->keys && st->keys_tmp ? b->n : 0;
            if (!st->keys_cap) {
                batch_free(b);
                return CORE_ENOMEM;
            }
        }
        keys = st->keys;
        for (size_t i = 0; i < b->n; i++)
            keys[i] = (enc_bkey){b->ev[i].user_id, i};
        bkey_sort(keys, st->keys_tmp, b->n);
    }
    int64_t now = core_wall_s();
    int dead = 0;
    lmdb_forget();
    (void)mdb_reader_check(st->env, &dead); /* best effort: killed readers' slots pin old pages */
    if (dead)
        CORE_LOG(CORE_LOG_NOTICE, "enc_store: cleared stale readers path=%s n=%d", st->path, dead);
    int skip = 0;
    enc_damage dmg;
    for (;;) {
        memset(&dmg, 0, sizeof dmg); /* a redone batch counts again from zero */
        if ((rc = txn_begin(st, 0, &txn))) break;
        rc = position_check(st, txn, b);
        skip = rc == POS_SKIP;
        if (skip) rc = CORE_OK;
        for (size_t lo = 0; lo < b->n && !rc && !skip;) {
            size_t hi = lo + 1;
            while (hi < b->n && keys[hi].user_id == keys[lo].user_id)
                hi++;
            rc = flush_user(st, txn, b, keys, lo, hi, now, &dmg);
            lo = hi;
        }
        for (size_t i = 0; i < b->npos && !rc && !skip; i++) {
            MDB_val k = {strlen(b->pos[i].source), b->pos[i].source};
            MDB_val v = {8, &b->pos[i].next_offset};
            rc = lmdb_err(mdb_put(txn, st->pos, &k, &v, 0), "mdb_put pos");
        }
        if (!rc && !skip && b->npos) {
            uint64_t ps;
            if (!(rc = pos_sum(st, txn, &ps))) rc = meta_put_u64(txn, st->meta, "pos_checksum", ps);
        }
        if (!rc && !skip && !st->defer_sums) { /* tier 2 in the same transaction */
            uint64_t left;
            rc = catch_up_in(st, txn, core_now_ns(), INT64_MAX, &left);
        }
        if (rc || skip) {
            mdb_txn_abort(txn);
        } else {
            rc = lmdb_err(mdb_txn_commit(txn), "mdb_txn_commit");
        }
        txn = NULL;
        if (rc == CORE_EFULL && map_grow(st) == CORE_OK) continue; /* redo the whole batch */
        break;
    }
    if (rc) {
        CORE_LOG(CORE_LOG_ERR, "enc_store: commit failed path=%s events=%zu err=%s", st->path, b->n,
                 store_failure(rc));
    } else {
        if (!skip) st->lag_seq++;
        if (skip)
            CORE_LOG(CORE_LOG_NOTICE,
                     "enc_store: batch already applied by another writer "
                     "path=%s events=%zu: skipped",
                     st->path, b->n);
        atomic_fetch_add(&st->corrupt, dmg.users);
        atomic_fetch_add(&st->quarantined, dmg.events);

        for (size_t i = 0; i < b->npos; i++) /* the caller now stands at the batch's end */
            if (expect_find(st, b->pos[i].source))
                expect_note(st, b->pos[i].source, 1, b->pos[i].next_offset);
    }
    batch_free(b);
    return rc;
}

int enc_store_get_offset(enc_store *st, const char *source, int64_t *next_offset) {
    MDB_txn *txn;
    int rc = txn_begin(st, MDB_RDONLY, &txn);
    if (rc) return rc;
    MDB_val k = {strlen(source), (void *)(uintptr_t)source}, v;
    rc = pos_ok(st, txn);
    if (!rc) rc = lmdb_err(mdb_get(txn, st->pos, &k, &v), "mdb_get pos");
    if (rc == CORE_OK) {
        if (v.mv_size == 8)
            *next_offset = (int64_t)le64_get(v.mv_data);
        else
            rc = CORE_EFORMAT;
    }
    mdb_txn_abort(txn);
    if (rc == CORE_OK || rc == CORE_ENOTFOUND) {
        expect_note(st, source, rc == CORE_OK, rc == CORE_OK ? *next_offset : 0);
    } else {
        enc_expect *e = expect_find(st, source);
        if (e) expect_drop(st, e);
    }
    return rc;
}

// ---------------------------------------------------------------------------------------------
// Tier 2: the sums catch up with the window

/* Delete user uid's chunks [k0, k1): they left the window before the sums' position. */
static int chunks_drop(enc_store *st, MDB_txn *txn, uint64_t uid, uint64_t k0, uint64_t k1) {
    for (uint64_t k = k0; k < k1; k++) {
        uint8_t kb[16];
        win_key(kb, uid, k);
        MDB_val kv = {16, kb};
        int rc = lmdb_err(mdb_del(txn, st->win, &kv, NULL), "mdb_del win");
        if (rc && rc != CORE_ENOTFOUND) return rc;
    }
    return CORE_OK;
}

/* Bring user uid's sums up to its head: behaviors n_summed..n_events-1 through enc_state's rule,
 * one at a time in arrival order, from the window chunks. CORE_OK, an error, or a damage code
 * (CORE_ECHECKSUM, CORE_EFORMAT) with nothing of the user written. */
static int sum_user(enc_store *st, MDB_txn *txn, uint64_t uid) {
    MDB_val v, sv;
    enc_uhdr h;
    int rc = user_get(txn, st->user, "mdb_get user", uid, &v);
    if (rc) return rc == CORE_ENOTFOUND ? CORE_EFORMAT : rc; /* a mark names a user with a head */
    if ((rc = user_check(st, uid, &v, &h))) return rc;
    const mdl_config *c = &st->m->cfg;
    if (h.S != c->S || h.NB != (1u << c->tau) || h.C != c->C ||
        h.encoding_version != st->enc_version)
        return CORE_EMISMATCH;
    if (h.n_summed == h.n_events) return CORE_OK;
    const uint8_t *sp = NULL;
    if ((rc = user_get(txn, st->sums, "mdb_get sums", uid, &sv)) == CORE_OK) {
        if ((rc = sums_check(st, uid, &sv, &h))) return rc;
        sp = (const uint8_t *)sv.mv_data + sizeof(enc_shdr);
    } else if (rc != CORE_ENOTFOUND) {
        return rc;
    } else if (h.n_summed) {
        return CORE_EFORMAT; /* sums of n_summed behaviors are missing */
    }
    enc_ustate *us = st->us;
    uctx u = {txn, st, uid};
    uint64_t zero[ENC_NACTIONS] = {0};
    enc_ustate_set_loader(us, load_chunk, &u);
    /* restore copies the bytes: the value may sit unaligned in a leaf page */
    enc_ustate_restore(us, h.n_summed, 0, zero, sp, sp ? sp + (size_t)h.S * h.NB * h.C * 4 : NULL);
    enc_rec recs[ENC_CHUNK];
    for (uint64_t j = h.n_summed; j < h.n_events;) {
        uint64_t k = j / ENC_CHUNK;
        uint32_t n = 0, p = (uint32_t)(j % ENC_CHUNK);
        if ((rc = load_chunk(&u, k, recs, &n))) return rc;
        uint64_t end =
            h.n_events - k * ENC_CHUNK < ENC_CHUNK ? h.n_events - k * ENC_CHUNK : ENC_CHUNK;
        if (n < end) return CORE_EFORMAT;
        if (st->scap < ENC_CHUNK) {
            sch_behavior *q = core_realloc(st->scratch, ENC_CHUNK * sizeof *q);
            if (!q) return CORE_ENOMEM;
            st->scratch = q;
            st->scap = ENC_CHUNK;
        }
        for (uint32_t i = p; i < end; i++)
            st->scratch[i - p] =
                (sch_behavior){recs[i].item_id, recs[i].category_id, recs[i].ts, recs[i].action};
        if ((rc = enc_ustate_apply_many(us, st->cache, st->scratch, end - p))) return rc;
        j = k * ENC_CHUNK + end;
    }
    uint64_t k0 = chunk_first(h.n_summed, st->window), k1 = chunk_first(h.n_events, st->window);
    h.n_summed = h.n_events;
    if ((rc = sums_put(st, txn, st->m, uid, h.n_summed, us)) || (rc = head_put(st, txn, uid, &h)))
        return rc;
    return chunks_drop(st, txn, uid, k0, k1);
}

static int caught_note(enc_store *st, uint64_t uid) {
    if (core_grow(&st->caught, &st->capcaught, st->ncaught + 1, sizeof *st->caught, 256))
        return CORE_ENOMEM;
    st->caught[st->ncaught++] = uid;
    return CORE_OK;
}

/* Tier 2 inside txn: the oldest marks first, until none is left or budget_ns has passed since t0
 * (at least one user). *left: marks still there. */
static int catch_up_in(enc_store *st, MDB_txn *txn, int64_t t0, int64_t budget_ns, uint64_t *left) {
    MDB_stat ls;
    int rc;
    st->ncaught = 0;
    for (;;) {
        MDB_val k, v;
        rc = cursor_once(txn, st->lag, MDB_FIRST, &k, &v, "mdb_cursor_get lag");
        if (rc == CORE_ENOTFOUND) {
            rc = CORE_OK;
            break;
        }
        if (rc) break;
        if (k.mv_size != 16) {
            rc = CORE_EFORMAT; /* no key of another size is ever written */
            break;
        }
        uint8_t key[16];
        memcpy(key, k.mv_data, 16);
        uint64_t uid = key_u64(&(MDB_val){8, key + 8});
        rc = sum_user(st, txn, uid);
        if (damaged(rc)) { /* left as it is: readers and --verify report it */
            CORE_LOG(CORE_LOG_ERR,
                     "enc_store: user %llu: stored state failed its %s; its bucket sums stay "
                     "where they are (trail inspect --store %s --verify) path=%s",
                     (unsigned long long)uid, damage_kind(rc), st->path, st->path);
            atomic_fetch_add(&st->corrupt, 1);
            rc = 0;
        } else if (!rc) {
            rc = caught_note(st, uid);
        }
        MDB_val kv = {16, key};
        if (rc || (rc = lmdb_err(mdb_del(txn, st->lag, &kv, NULL), "mdb_del lag"))) break;
        if (core_now_ns() - t0 >= budget_ns) break;
    }
    if (!rc) rc = lmdb_err(mdb_stat(txn, st->lag, &ls), "mdb_stat lag");
    if (!rc) *left = ls.ms_entries;
    return rc;
}

/* One tier-2 transaction (catch_up_in). */
static int catch_up_txn(enc_store *st, int64_t t0, int64_t budget_ns, uint64_t *left) {
    MDB_txn *txn;
    int rc = txn_begin(st, 0, &txn);
    if (rc) return rc;
    if ((rc = catch_up_in(st, txn, t0, budget_ns, left))) {
        mdb_txn_abort(txn);
        return rc;
    }
    return lmdb_err(mdb_txn_commit(txn), "mdb_txn_commit");
}

/* Catch-up transactions until budget_ns has passed (a full map grown and the transaction redone);
 * a CORE code, logged. */
static int catch_up_all(enc_store *st, int64_t budget_ns, uint64_t *left) {
    int64_t t0 = core_now_ns();
    uint64_t nleft = 0;
    int rc;
    lmdb_forget();
    for (;;) {
        rc = catch_up_txn(st, t0, budget_ns, &nleft);
        if (rc == CORE_EFULL && map_grow(st) == CORE_OK) continue; /* redo it whole */
        if (rc || !nleft || core_now_ns() - t0 >= budget_ns) break;
    }
    if (rc)
        CORE_LOG(CORE_LOG_ERR, "enc_store: catch-up failed path=%s err=%s", st->path,
                 store_failure(rc));
    if (left) *left = nleft;
    return rc;
}

int enc_store_catch_up(enc_store *st, int64_t budget_ns, enc_caught_cb *cb, void *opaque,
                       uint64_t *left) {
    uint64_t nleft = 0;
    if (!st->m) return CORE_EINVAL; /* an open batch is fine: it only buffers until its commit */
    int rc = catch_up_all(st, budget_ns, &nleft);
    if (rc) return rc;
    if (cb)
        for (size_t i = 0; i < st->ncaught; i++)
            cb(opaque, st->caught[i]);
    if (left) *left = nleft;
    return CORE_OK;
}

int enc_store_lagging(enc_store *st, uint64_t *n) {
    MDB_txn *txn;
    MDB_stat s;
    int rc = txn_begin(st, MDB_RDONLY, &txn);
    if (rc) return rc;
    if (!(rc = lmdb_err(mdb_stat(txn, st->lag, &s), "mdb_stat lag"))) *n = s.ms_entries;
    mdb_txn_abort(txn);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// Reencode: every user's buckets rebuilt from the raw window for a new model, in one transaction

static int reencode_txn(enc_store *st, const mdl_model *m, enc_sigcache *cache, enc_ustate *us,
                        uint64_t *users) {
    MDB_txn *txn;
    int rc = txn_begin(st, 0, &txn);
    if (rc) return rc;
    uint64_t next = 0, n = 0;
    int more = 1;
    while (more) {
        uint8_t kb[8];
        be64(kb, next);
        MDB_val k = {8, kb}, v;
        rc = cursor_once(txn, st->user, MDB_SET_RANGE, &k, &v, "mdb_cursor_get user");
        if (rc == CORE_ENOTFOUND) {
            rc = CORE_OK;
            break;
        }
        if (rc) break;
        if (k.mv_size != 8) {
            rc = CORE_EFORMAT;
            break;
        }
        uint64_t uid = key_u64(&k);
        enc_uhdr h;
        uctx u = {txn, st, uid};
        more = uid != UINT64_MAX;
        next = uid + 1;
        if (!(rc = user_check(st, uid, &v, &h))) {
            enc_ustate_set_loader(us, load_chunk, &u);
            enc_ustate_restore(us, h.n_events, h.last_ts, h.action_cnt, NULL, NULL);
            rc = enc_ustate_recompute(us, cache); /* the whole window: lagging sums too */
        }
        if (damaged(rc)) { /* left as it is, and still reported by readers and --verify */
            CORE_LOG(CORE_LOG_ERR,
                     "enc_store: reencode: user %llu: stored state failed its %s; "
                     "left as it is path=%s",
                     (unsigned long long)uid, damage_kind(rc), st->path);
            atomic_fetch_add(&st->corrupt, 1);
            rc = 0;
            continue;
        }
        if (rc) break;
        uint64_t k0 = chunk_first(h.n_summed, st->window), k1 = chunk_first(h.n_events, st->window);
        h.n_summed = h.n_events;
        h.encoding_version = m->encoding_version;
        h.S = m->cfg.S;
        h.NB = 1u << m->cfg.tau;
        h.C = m->cfg.C;
        if ((rc = sums_put(st, txn, m, uid, h.n_summed, us)) || (rc = head_put(st, txn, uid, &h)) ||
            (rc = chunks_drop(st, txn, uid, k0, k1)))
            break;
        n++;
    }
    /* every user is caught up now (damaged ones are left as they are, unmarked) */
    if (!rc) rc = lmdb_err(mdb_drop(txn, st->lag, 0), "mdb_drop lag");
    if (!rc) rc = meta_put_u64(txn, st->meta, "encoding_version", m->encoding_version);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    if ((rc = lmdb_err(mdb_txn_commit(txn), "mdb_txn_commit"))) return rc;
    *users = n;
    return CORE_OK;
}

int enc_store_reencode(enc_store *st, const mdl_model *m, uint64_t *users, char *errstr,
                       size_t errstr_size) {
    enc_sigcache *cache;
    enc_ustate *us;
    int rc;
    if (st->batch_open) return CORE_EINVAL;
    if ((rc = bind_scratch(m, st->window, &cache, &us))) {
        snprintf(errstr, errstr_size, "reencode %s: out of memory", st->path);
        return rc;
    }
    lmdb_forget();
    for (;;) {
        rc = reencode_txn(st, m, cache, us, users);
        if (rc == CORE_EFULL && map_grow(st) == CORE_OK) continue;
        break;
    }
    if (rc) {
        snprintf(errstr, errstr_size, "reencode %s: %s (nothing changed)", st->path,
                 rc == CORE_EFORMAT ? "corrupt user state" : store_strerror(rc));
        enc_sigcache_destroy(cache);
        enc_ustate_destroy(us);
        return rc;
    }
    enc_sigcache_destroy(st->cache);
    enc_ustate_destroy(st->us);
    st->cache = cache;
    st->us = us;
    st->m = m;
    st->enc_version = m->encoding_version;
    return CORE_OK;
}

// ---------------------------------------------------------------------------------------------
// Digest of everything the state comparisons cover (all DBIs but "wall")

int enc_store_digest(enc_store *st, int what, uint64_t *out) {
    MDB_txn *txn;
    int rc = txn_begin(st, MDB_RDONLY, &txn);
    if (rc) return rc;
    XXH3_state_t *xs = XXH3_createState();
    if (!xs) {
        mdb_txn_abort(txn);
        return CORE_ENOMEM;
    }
    XXH3_64bits_reset(xs);
    MDB_dbi dbis[6] = {st->meta, st->user, st->win, st->pos, st->sums, st->lag};
    for (int d = 0; d < 6 && !rc; d++) {
        if (!(what & (d == 3 ? ENC_DIGEST_POS : ENC_DIGEST_STATE))) continue;
        MDB_cursor *cur;
        if ((rc = lmdb_err(mdb_cursor_open(txn, dbis[d], &cur), "mdb_cursor_open (digest)"))) break;
        MDB_val k, v;
        uint64_t tag = (uint64_t)d;
        XXH3_64bits_update(xs, &tag, 8);
        for (int op = MDB_FIRST; !(rc = lmdb_err(mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op),
                                                 "mdb_cursor_get (digest)"));
             op = MDB_NEXT) {
            if (d == 0 && k.mv_size == 12 && !memcmp(k.mv_data, "pos_checksum", 12))
                continue; /* derived from the positions, which ENC_DIGEST_POS covers */
            uint64_t lens[2] = {k.mv_size, v.mv_size};
            XXH3_64bits_update(xs, lens, sizeof lens);
            XXH3_64bits_update(xs, k.mv_data, k.mv_size);
            XXH3_64bits_update(xs, v.mv_data, v.mv_size);
        }
        if (rc == CORE_ENOTFOUND) rc = CORE_OK;
        mdb_cursor_close(cur);
    }
    *out = XXH3_64bits_digest(xs);
    XXH3_freeState(xs);
    mdb_txn_abort(txn);
    return rc;
}

int enc_store_users(enc_store *st, uint64_t *users, uint64_t *chunks) {
    MDB_txn *txn;
    MDB_stat s;
    int rc = txn_begin(st, MDB_RDONLY, &txn);
    if (rc) return rc;
    if (!(rc = lmdb_err(mdb_stat(txn, st->user, &s), "mdb_stat user"))) *users = s.ms_entries;
    if (!rc && !(rc = lmdb_err(mdb_stat(txn, st->win, &s), "mdb_stat win"))) *chunks = s.ms_entries;
    mdb_txn_abort(txn);
    return rc;
}

void enc_store_damage(const enc_store *st, uint64_t *damaged, uint64_t *quarantined) {
    *damaged = atomic_load(&st->corrupt);
    *quarantined = atomic_load(&st->quarantined);
}

/* The window chunks a checked head says exist (those tier 2 still needs included): each present,
 * of a valid size, and sealed. */
static int verify_window(const enc_store *st, MDB_txn *txn, uint64_t uid, const enc_uhdr *h,
                         uint64_t *chunk, uint64_t *checked) {
    if (!h->n_events) return CORE_OK;
    for (uint64_t k = chunk_first(h->n_summed, st->window); k <= (h->n_events - 1) / ENC_CHUNK;
         k++) {
        uint8_t kb[16];
        win_key(kb, uid, k);
        MDB_val kv = {16, kb}, v;
        int rc = lmdb_err(mdb_get(txn, st->win, &kv, &v), "mdb_get win");
        *chunk = k;
        if (rc == CORE_ENOTFOUND) return CORE_EFORMAT;
        if (rc) return rc;
        ++*checked;
        if (!v.mv_size || v.mv_size % sizeof(enc_rec) || v.mv_size > ENC_CHUNK * sizeof(enc_rec))
            return CORE_EFORMAT;
        if (!chunk_ok(st, uid, k, &v)) return CORE_ECHECKSUM;
    }
    return CORE_OK;
}

int enc_store_verify(enc_store *st, enc_verify_cb *cb, void *opaque, enc_verify_report *out) {
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    MDB_stat qs;
    MDB_val k, v;
    memset(out, 0, sizeof *out);
    out->checksums = st->checksums;
    int rc = txn_begin(st, MDB_RDONLY, &txn);
    if (rc) return rc;
    if ((rc = lmdb_err(mdb_stat(txn, st->quar, &qs), "mdb_stat quarantine"))) goto done;
    out->quarantined = qs.ms_entries;
    rc = pos_ok(st, txn);
    out->positions_ok = rc != CORE_ECHECKSUM;
    if (rc && rc != CORE_ECHECKSUM) goto done;
    rc = 0;
    if ((rc = lmdb_err(mdb_cursor_open(txn, st->user, &cur), "mdb_cursor_open user"))) goto done;
    for (int op = MDB_FIRST;
         !(rc = lmdb_err(mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op), "mdb_cursor_get user"));
         op = MDB_NEXT) {
        if (k.mv_size != 8) {
            rc = CORE_EFORMAT;
            break;
        }
        uint64_t uid = key_u64(&k), chunk = 0;
        enc_uhdr h;
        out->users++;
        const char *what = "record";
        int e = user_check(st, uid, &v, &h);
        if (!e) { /* the sums: present unless the user has none yet */
            MDB_val sv;
            what = "sums";
            e = user_get(txn, st->sums, "mdb_get sums", uid, &sv);
            if (e == CORE_OK)
                e = sums_check(st, uid, &sv, &h);
            else if (e == CORE_ENOTFOUND)
                e = h.n_summed ? CORE_EFORMAT : 0;
            else {
                rc = e;
                break;
            }
        }
        if (!e) {
            what = "chunk";
            if ((e = verify_window(st, txn, uid, &h, &chunk, &out->chunks)) && !damaged(e)) {
                rc = e;
                break;
            }
        }
        if (e) {
            out->damaged_users++;
            if (cb) cb(uid, what, chunk, e, opaque);
        }
    }
    if (rc == CORE_ENOTFOUND) rc = CORE_OK;
done:
    if (cur) mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// Readers

int enc_reader_new(enc_store *st, enc_reader **out) {
    enc_reader *r = core_calloc(1, sizeof *r);
    if (!r) return CORE_ENOMEM;
    r->st = st;
    r->recent = core_malloc((st->recent ? st->recent : 1) * sizeof *r->recent);
    if (!r->recent) {
        core_free(r);
        return CORE_ENOMEM;
    }
    *out = r;
    return CORE_OK;
}

void enc_reader_destroy(enc_reader *r) {
    if (!r) return;
    if (r->txn) mdb_txn_abort(r->txn);
    core_free(r->sum);
    core_free(r->cnt);
    core_free(r->recent);
    core_free(r);
}

int enc_reader_begin(enc_reader *r) {
    int rc;
    if (r->active) return CORE_EINVAL;
    if (r->txn) {
        rc = mdb_txn_renew(r->txn);
        if (rc == MDB_MAP_RESIZED) { /* a fresh transaction adopts the grown map */
            mdb_txn_abort(r->txn);
            r->txn = NULL;
        } else if ((rc = lmdb_err(rc, "mdb_txn_renew"))) {
            return rc;
        }
    }
    if (!r->txn && (rc = txn_begin(r->st, MDB_RDONLY, &r->txn))) {
        r->txn = NULL;
        return rc;
    }
    r->active = 1;
    return CORE_OK;
}

void enc_reader_end(enc_reader *r) {
    if (r->active) mdb_txn_reset(r->txn);
    r->active = 0;
}

/* Copy behaviors [from, to) of a user's window (stored chunks) into out. */
static int reader_copy(enc_reader *r, uint64_t uid, uint64_t from, uint64_t to, sch_behavior *out) {
    uint32_t n = 0;
    for (uint64_t j = from; j < to;) {
        uint64_t k = j / ENC_CHUNK;
        uint8_t kb[16];
        win_key(kb, uid, k);
        MDB_val kv = {16, kb}, v;
        int rc = lmdb_err(mdb_get(r->txn, r->st->win, &kv, &v), "mdb_get win");
        if (rc) return rc == CORE_ENOTFOUND ? CORE_EFORMAT : rc;
        uint64_t have = v.mv_size / sizeof(enc_rec);
        rc = v.mv_size % sizeof(enc_rec) ||
                     k * ENC_CHUNK + have < (to < (k + 1) * ENC_CHUNK ? to : (k + 1) * ENC_CHUNK)
                 ? CORE_EFORMAT
             : chunk_ok(r->st, uid, k, &v) ? CORE_OK
                                           : CORE_ECHECKSUM;
        if (rc) {
            atomic_fetch_add(&r->st->corrupt, 1);
            CORE_LOG(CORE_LOG_ERR, "enc_store: user %llu: window chunk %llu failed its %s path=%s",
                     (unsigned long long)uid, (unsigned long long)k, damage_kind(rc), r->st->path);
            return rc;
        }
        const uint8_t *p = v.mv_data;
        for (; j < to && j < (k + 1) * ENC_CHUNK; j++) {
            enc_rec rec;
            memcpy(&rec, p + (j % ENC_CHUNK) * sizeof rec, sizeof rec);
            sch_behavior *o = &out[n++];
            memset(o, 0, sizeof *o);
            o->item_id = rec.item_id;
            o->category_id = rec.category_id;
            o->ts = rec.ts;
            o->action = rec.action;
        }
    }
    return CORE_OK;
}

/* A user's record in the reader's transaction, checked; *h is a copy of its header. */
static int reader_record(enc_reader *r, uint64_t user_id, MDB_val *v, enc_uhdr *h) {
    if (!r->active) return CORE_EINVAL;
    int rc = user_get(r->txn, r->st->user, "mdb_get user", user_id, v);
    if (rc) return rc;
    if ((rc = user_check(r->st, user_id, v, h)) && damaged(rc)) {
        atomic_fetch_add(&r->st->corrupt, 1);
        CORE_LOG(CORE_LOG_ERR, "enc_store: user %llu: stored state failed its %s path=%s",
                 (unsigned long long)user_id, damage_kind(rc), r->st->path);
    }
    return rc;
}

/* Room for a copy of the sums and counts (nsum floats, ncnt counts). */
static int reader_room(enc_reader *r, size_t nsum, size_t ncnt) {
    if (r->sum_cap >= nsum && r->cnt_cap >= ncnt) return CORE_OK;
    core_free(r->sum);
    core_free(r->cnt);
    r->sum = core_malloc(nsum * 4);
    r->cnt = core_malloc(ncnt * 4);
    r->sum_cap = r->cnt_cap = 0;
    if (!r->sum || !r->cnt) return CORE_ENOMEM;
    r->sum_cap = nsum;
    r->cnt_cap = ncnt;
    return CORE_OK;
}

int enc_reader_user(enc_reader *r, uint64_t user_id, enc_user_view *out) {
    MDB_val v, sv;
    enc_uhdr h;
    int rc = reader_record(r, user_id, &v, &h);
    if (rc) return rc;
    size_t nsum = (size_t)h.S * h.NB * h.C, ncnt = (size_t)h.S * h.NB;
    memset(out, 0, sizeof *out);
    out->user_id = user_id;
    out->encoding_version = h.encoding_version;
    out->S = h.S;
    out->n_buckets = h.NB;
    out->C = h.C;
    /* the sums, checked against the head (same encoding_version: reencode writes both in one
     * transaction); a user whose first behaviors tier 2 has not reached yet has none: zeros */
    rc = user_get(r->txn, r->st->sums, "mdb_get sums", user_id, &sv);
    if (rc == CORE_OK && (rc = sums_check(r->st, user_id, &sv, &h))) {
        atomic_fetch_add(&r->st->corrupt, 1);
        CORE_LOG(CORE_LOG_ERR, "enc_store: user %llu: bucket sums failed their %s path=%s",
                 (unsigned long long)user_id, damage_kind(rc), r->st->path);
        return rc;
    }
    if (rc == CORE_ENOTFOUND) {
        if (h.n_summed) return CORE_EFORMAT;
        if ((rc = reader_room(r, nsum, ncnt))) return rc;
        memset(r->sum, 0, nsum * 4);
        memset(r->cnt, 0, ncnt * 4);
        out->bucket_sum = r->sum;
        out->bucket_cnt = r->cnt;
    } else if (rc) {
        return rc;
    } else {
        const uint8_t *p = (const uint8_t *)sv.mv_data + sizeof(enc_shdr);
        if (((uintptr_t)p & 3) == 0) { /* values on overflow pages are page-aligned: zero copy */
            out->bucket_sum = (const float *)(const void *)p;
            out->bucket_cnt = (const uint32_t *)(const void *)(p + nsum * 4);
        } else { /* small values sit in a leaf page, only 2-byte aligned: copy */
            if ((rc = reader_room(r, nsum, ncnt))) return rc;
            memcpy(r->sum, p, nsum * 4);
            memcpy(r->cnt, p + nsum * 4, ncnt * 4);
            out->bucket_sum = r->sum;
            out->bucket_cnt = r->cnt;
        }
    }
    out->n_summed = h.n_summed;
    out->window_len = h.window_len;
    out->summed_len = (uint32_t)(h.n_summed < r->st->window ? h.n_summed : r->st->window);
    uint32_t nr = r->st->recent < h.window_len ? r->st->recent : h.window_len;
    if ((rc = reader_copy(r, user_id, h.n_events - nr, h.n_events, r->recent))) return rc;
    out->recent_len = nr;
    out->recent = r->recent;
    out->last_ts = h.last_ts;
    out->n_events = h.n_events;
    memcpy(r->action_cnt, h.action_cnt, sizeof r->action_cnt);
    out->action_cnt = r->action_cnt;
    MDB_val wv;
    uint8_t kb[8];
    be64(kb, user_id);
    MDB_val kv = {8, kb};
    if (lmdb_err(mdb_get(r->txn, r->st->wall, &kv, &wv), "mdb_get wall") == CORE_OK &&
        wv.mv_size == 8) /* none (or unreadable): updated_at stays 0 */
        out->updated_at = (int64_t)le64_get(wv.mv_data);
    return CORE_OK;
}

int enc_reader_window(enc_reader *r, uint64_t user_id, sch_behavior *out, uint32_t max,
                      uint32_t *n) {
    MDB_val v;
    enc_uhdr h;
    int rc = reader_record(r, user_id, &v, &h);
    if (rc) return rc;
    uint32_t k = max < h.window_len ? max : h.window_len;
    if ((rc = reader_copy(r, user_id, h.n_events - k, h.n_events, out))) return rc;
    *n = k;
    return CORE_OK;
}

int enc_store_readable(enc_store *st) {
    MDB_txn *txn;
    if (!st || txn_begin(st, MDB_RDONLY, &txn) != CORE_OK) return 0;
    mdb_txn_abort(txn);
    return 1;
}
