/* trn_samples.h: point-in-time training samples from a recorded event stream.
 *
 * The store keeps every user's behaviors once, sorted by (ts, file order), and per sample only
 * (user, hist, ts, candidate, label): hist is how many of that user's behaviors have ts strictly
 * before the sample's ts. A sample's features are rebuilt per batch from the slice of behaviors
 * [hist - window, hist): the same window and recent sequence enc_ustate holds after applying
 * exactly those behaviors (a test checks it), with no per-sample snapshot.
 *
 * Labelers:
 * - impressions: each event with a label is a sample (prob kept when present).
 * - next: every behavior of a user after the user's first (file order) is a positive (label 1),
 *   with k negatives drawn from the global item popularity (behavior counts over the whole file),
 *   each with that item's own category, at the same time and history. A draw equal to the
 *   positive's item is redrawn (up to 16 times).
 * - taobao: next with k = 1 (the pinned protocol; window 256, short 16 are the trainer's).
 * Samples are sorted by (ts, file order of their source event); the first 80% are train, the next
 * 10% valid, the rest test.
 */
#ifndef TRAIL_TRN_SAMPLES_H
#define TRAIL_TRN_SAMPLES_H

#include "sch_event.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    TRN_PROTO_AUTO = 0,
    TRN_PROTO_IMPRESSIONS,
    TRN_PROTO_NEXT,
    TRN_PROTO_TAOBAO
} trn_proto;

typedef struct trn_data_conf {
    int protocol;       /* trn_proto; auto = impressions if the file has any, else next */
    uint32_t negatives; /* k for next (taobao forces 1) */
    uint64_t seed;      /* negative sampling */
    double train_frac, valid_frac; /* 0.8, 0.1 */
} trn_data_conf;

typedef struct trn_sample {
    uint32_t user; /* index into trn_data.user_id */
    uint32_t hist; /* the user's behaviors with ts < this ts */
    int64_t ts;
    uint64_t item_id, category_id;
    float prob; /* true click probability, if has_prob */
    uint8_t label;
    uint8_t has_prob;
} trn_sample;

typedef struct trn_data {
    uint32_t n_users;
    uint64_t *user_id; // (n_users)
    size_t *beh_start; // (n_users + 1) offsets into beh
    sch_behavior *beh; // behaviors grouped by user, each user's in (ts, file order)
    size_t n_beh;
    trn_sample *samples; // (n_samples) sorted by (ts, file order)
    size_t n_samples;
    size_t split[2];      /* train [0, split[0]), valid [split[0], split[1]), test [split[1], n) */
    int protocol;         /* the labeler used (never auto) */
    uint64_t bad_records; /* records that failed to decode (skipped, reported on stderr) */
} trn_data;

void trn_data_conf_default(trn_data_conf *conf);

/** @brief Read an event file and build the samples.
 *  @return CORE_OK, CORE_EIO / CORE_EFORMAT (file unreadable or no usable record; err says which),
 *  CORE_EINVAL (no samples for the protocol), CORE_ENOMEM. Bad records are counted and skipped;
 *  the first few are named by record number on stderr. */
int trn_data_load(trn_data **out, const char *path, const trn_data_conf *conf, char *err,
                  size_t err_size);
/** @brief The decoding half of trn_data_load: every valid event of the file, in file order, in
 *  *ev (core_malloc'd, the caller frees), *n of them; records that fail to decode are skipped,
 *  counted in *bad and the first few named on stderr. @return as trn_data_load. */
int trn_events_read(const char *path, sch_event **ev, size_t *n, uint64_t *bad, char *err,
                    size_t err_size);
/* What trn_events_read_stats saw: every record, the rejected ones, and of those the labeled
 * impressions (a JSON record with a "label" key, a binary one with its label flag), which would
 * have been samples of the impressions protocol. */
typedef struct trn_read_stats {
    uint64_t records;          /* valid + rejected */
    uint64_t bad;              /* rejected */
    uint64_t bad_labeled;      /* rejected records that carried a label */
    char bad_labeled_why[160]; /* the first one's record number and reason ("" if none) */
} trn_read_stats;

/** @brief trn_events_read, with the counts above in *st. */
int trn_events_read_stats(const char *path, sch_event **ev, size_t *n, trn_read_stats *st,
                          char *err, size_t err_size);

/** @brief May `--protocol auto` go ahead on this file? It may not when the file holds labeled
 *  records and every one was rejected (auto would quietly train the next-behavior task instead of
 *  the impressions), or when more than 1% of all records were rejected. ev, n: the events that
 *  decoded. @return 0 yes; 1 no, with the reason (one line, no newline) in msg. */
int trn_auto_check(const trn_read_stats *st, const sch_event *ev, size_t n, char *msg,
                   size_t msg_size);

/** @brief Build from events in memory; same rules, events in file order. Several labelers'
 *  samples of one file are built from one trn_events_read. */
int trn_data_build(trn_data **out, const sch_event *ev, size_t n, const trn_data_conf *conf,
                   char *err, size_t err_size);
void trn_data_destroy(trn_data *d);

/** @brief The last min(max, hist) behaviors before sample s, oldest first.
 *  @return a pointer into d->beh (valid while d lives); *n gets the count. */
const sch_behavior *trn_data_history(const trn_data *d, const trn_sample *s, uint32_t max,
                                     uint32_t *n);

/* What a sample's window holds of its candidate (trn_data_match). */
typedef enum { TRN_MATCH_ITEM = 0, TRN_MATCH_CATEGORY = 1, TRN_MATCH_NONE = 2 } trn_match;

/** @brief Does the sample's window (its last `window` behaviors before it) hold the candidate's
 *  item (TRN_MATCH_ITEM), else an item of its category (TRN_MATCH_CATEGORY), else neither? */
trn_match trn_data_match(const trn_data *d, const trn_sample *s, uint32_t window);

/** @brief Index range [*lo, *hi) of a split: 0 train, 1 valid, 2 test. */
void trn_data_split(const trn_data *d, int split, size_t *lo, size_t *hi);

/** @brief Re-split d by time instead of by fraction: train = samples with ts < t_valid, valid =
 *  those with t_valid <= ts < t_test, test = the rest (t_valid <= t_test). Pretraining on another
 *  labeler's samples of the same file uses it to stay inside the main samples' train period. */
void trn_data_split_at(trn_data *d, int64_t t_valid, int64_t t_test);
/** @brief The first timestamp of split 1 (valid) or 2 (test), or INT64_MAX if that split is
 *  empty. */
int64_t trn_data_split_ts(const trn_data *d, int split);

const char *trn_proto_name(int protocol);
/** @brief "impressions", "next", "taobao" or "auto". @return the code or -1. */
int trn_proto_parse(const char *s);

#endif
