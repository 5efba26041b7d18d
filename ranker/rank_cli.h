/* rank_cli.h: pieces of the ranker's commands that tests reach directly. */
#ifndef TRAIL_RANK_CLI_H
#define TRAIL_RANK_CLI_H

#include "core_opts.h"

#include <stddef.h>
#include <stdint.h>

extern const core_cmd *const rank_cmds[]; /* the ranker's commands, NULL-terminated */

/** @brief rank_isa_init for cmd: 0, or 2 (the exit code) after printing why (TRAIL_ISA names no
 *  path this CPU runs). Call it before parsing --isa. */
int rank_cli_isa_init(const core_cmd *cmd);

/* --isa NAME: rank_isa_force (call rank_cli_isa_init before parsing) */
int rank_opt_isa(const char *value, void *dst, char *err, size_t err_size);
#define RANK_OPT_ISA                                                                               \
    {                                                                                              \
        CORE_OPT_ROW("isa", CORE_OPT_FUNC, NULL, "PATH",                                           \
                     "the compute path: auto (the best this CPU runs), scalar, fp32, avx2,\n"      \
                     "avx2-int8, avx2-int16, avx512-bf16, avx512-vnni, amx-bf16; TRAIL_ISA does\n" \
                     "the same"),                                                                  \
            .fn = rank_opt_isa, .def = "auto"                                                      \
    }

int rank_cmd_model_info(int argc, char **argv); /* trail model info, with the serving path */
int rank_cmd_bench(int argc, char **argv);      /* trail bench rank */

/* trail_serve's commands (rank_cli_rank.c, serve_cli.c, rank_bench_serve.c) */
extern const core_cmd *const serve_cmds[]; /* NULL-terminated */
extern const core_cmd rank_rank_cmd, rank_bench_serve_cmd;
int rank_cmd_rank(int argc, char **argv);        /* trail rank */
int rank_cmd_serve(int argc, char **argv);       /* trail serve */
int rank_cmd_bench_serve(int argc, char **argv); /* trail bench serve */

#endif
