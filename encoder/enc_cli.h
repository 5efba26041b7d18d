/* enc_cli.h: the encoder's commands: import, encode (file replay), reencode, inspect, bench
 * encode. Each returns a process exit code: 0 success, 1 runtime failure, 2 usage error. */
#ifndef TRAIL_ENC_CLI_H
#define TRAIL_ENC_CLI_H

#include "core_opts.h"
#include "core_util.h"
#include "enc_store.h"

#include <signal.h>
#include <stdint.h>

extern const core_cmd *const enc_cmds[]; /* NULL-terminated */
extern const core_cmd enc_import_taobao_cmd, enc_import_movielens_cmd, enc_bench_cmd;
extern const core_cmd enc_encode_cmd; /* the file replay: trail lists `encode` itself */

int enc_cmd_encode(int argc, char **argv);           /* trail encode (file replay) */
int enc_cmd_reencode(int argc, char **argv);         /* trail reencode */
int enc_cmd_inspect(int argc, char **argv);          /* trail inspect */
int enc_cmd_import_taobao(int argc, char **argv);    /* trail import taobao */
int enc_cmd_import_movielens(int argc, char **argv); /* trail import movielens */
int enc_cmd_bench_encode(int argc, char **argv);     /* trail bench encode */

/* The file replay behind `trail encode --input` (enc_import.c): records of an event file applied
 * to a store exactly once. The input position (byte offset and record number), the reject file's
 * length and the identity of the bytes read (their hash) commit in the same transaction as the
 * state they produced, so a rerun resumes after the last commit: neither the state nor the
 * reject file ever holds a record twice; a file that no longer begins with the bytes applied is
 * refused. Impressions (labeled records) are counted, not applied. */
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

/* The benchmarks' workloads (bench encode, bench pipeline): Zipf(1) over n ranks, rank r drawn with
 * probability proportional to 1/(r + 1). */
/** @brief The cumulative distribution (n values; core_free it), or NULL without memory. */
double *enc_zipf_cdf(uint32_t n);
/** @brief A rank in [0, n) drawn from cdf (enc_zipf_cdf(n)). */
uint32_t enc_zipf_draw(const double *cdf, uint32_t n, core_rng *rng);

#endif
