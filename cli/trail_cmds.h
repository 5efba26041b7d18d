/* trail_cmds.h: every subcommand's entry point. Each returns a process exit code:
 * 0 success, 1 runtime failure, 2 usage error. Each module owns the file that defines its commands. */
#ifndef TRAIL_CMDS_H
#define TRAIL_CMDS_H

int mdl_cmd_init(int argc, char **argv);    /* trail model init */
int mdl_cmd_info(int argc, char **argv);    /* trail model info */
int trn_cmd_gen(int argc, char **argv);     /* trail gen */
int trn_cmd_train(int argc, char **argv);   /* trail train (built with the ranker) */
int trn_cmd_eval(int argc, char **argv);    /* trail eval (built with the ranker) */
int trn_cmd_bench_train(int argc, char **argv); /* trail bench train (built with the ranker) */

#endif
