/* trail_cmds.h: every subcommand's entry point. Each returns a process exit code:
 * 0 success, 1 runtime failure, 2 usage error. Each module owns the file that defines its commands. */
#ifndef TRAIL_CMDS_H
#define TRAIL_CMDS_H

#include <stdio.h>

int enc_cmd_encode(int argc, char **argv);   /* trail encode (file replay) */
int enc_cmd_reencode(int argc, char **argv); /* trail reencode */
int enc_cmd_inspect(int argc, char **argv);  /* trail inspect */
int enc_cmd_import_taobao(int argc, char **argv);    /* trail import taobao */
int enc_cmd_import_movielens(int argc, char **argv); /* trail import movielens */
int enc_cmd_bench_encode(int argc, char **argv);     /* trail bench encode */

int rank_cmd_bench(int argc, char **argv);  /* trail bench rank */
int rank_cmd_rank(int argc, char **argv);   /* trail rank */
int rank_cmd_serve(int argc, char **argv);  /* trail serve */
int rank_cmd_bench_serve(int argc, char **argv); /* trail bench serve */


int trn_cmd_gen(int argc, char **argv);     /* trail gen */
int trn_cmd_train(int argc, char **argv);   /* trail train */
int trn_cmd_eval(int argc, char **argv);    /* trail eval */
int trn_cmd_bench_train(int argc, char **argv); /* trail bench train */

#endif
