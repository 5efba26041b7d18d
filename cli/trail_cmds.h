/* trail_cmds.h: every subcommand's entry point. Each returns a process exit code:
 * 0 success, 1 runtime failure, 2 usage error. Each module owns the file that defines its commands. */
#ifndef TRAIL_CMDS_H
#define TRAIL_CMDS_H

#include <stdio.h>

int rank_cmd_bench_serve(int argc, char **argv); /* trail bench serve */


int trn_cmd_train(int argc, char **argv);   /* trail train */
int trn_cmd_eval(int argc, char **argv);    /* trail eval */
int trn_cmd_bench_train(int argc, char **argv); /* trail bench train */

#endif
