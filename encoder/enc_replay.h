/* enc_replay.h: the file replay behind `trail encode --input` (enc_replay.c). */
#ifndef TRAIL_ENC_REPLAY_H
#define TRAIL_ENC_REPLAY_H

#include "enc_store.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

/* The file replay: records of an event file applied to a store exactly once. The input position
 * (byte offset and record number), the reject file's length and the identity of the bytes read
 * (their hash) commit in the same transaction as the state they produced, so a rerun resumes
 * after the last commit: neither the state nor the reject file ever holds a record twice; a file
 * that no longer begins with the bytes applied is refused. Impressions (labeled records) are
 * counted, not applied. */
typedef struct enc_replay_conf {
    const char *input;  /* the event file (JSON lines or binary), "-" = stdin (no resume) */
    const char *reject; /* the reject file: one JSON line per malformed record */
    const char *store;  /* the store's directory (for messages) */
    uint64_t batch;     /* records per transaction */
    int durable;        /* fsync the reject file before a commit that added to it */
    volatile sig_atomic_t *stop; /* when set: commit what was read, and return */
} enc_replay_conf;

typedef struct enc_replay_counts {
    uint64_t skipped, applied, impressions, rejected, read; /* committed records only */
} enc_replay_counts;

/** @brief Replay c->input into st (opened as the writer, bound to its model). n: what committed.
 *  @return CORE_OK when the input was read to its end (or stopped), else an error with the reason
 *  in err; what committed before it stays. */
int enc_replay(enc_store *st, const enc_replay_conf *c, enc_replay_counts *n, char *err,
               size_t err_size);

#endif
