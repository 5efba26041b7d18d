/* enc_cli.h: the encoder's commands: import, encode (file replay), reencode, inspect, bench
 * encode. Each returns a process exit code: 0 success, 1 runtime failure, 2 usage error. */
#ifndef TRAIL_ENC_CLI_H
#define TRAIL_ENC_CLI_H

#include "core_opts.h"
#include "core_util.h"

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

/* The benchmarks' workloads (bench encode, bench pipeline): Zipf(1) over n ranks, rank r drawn with
 * probability proportional to 1/(r + 1). */
/** @brief The cumulative distribution (n values; core_free it), or NULL without memory. */
double *enc_zipf_cdf(uint32_t n);
/** @brief A rank in [0, n) drawn from cdf (enc_zipf_cdf(n)). */
uint32_t enc_zipf_draw(const double *cdf, uint32_t n, core_rng *rng);

#endif
