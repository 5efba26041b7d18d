/* trn_cli.h: the training module's commands: gen, train, eval, bench train. */
#ifndef TRAIL_TRN_CLI_H
#define TRAIL_TRN_CLI_H

#include "core_opts.h"

extern const core_cmd *const trn_cmds[]; /* NULL-terminated */
extern const core_cmd trn_gen_cmd, trn_train_cmd, trn_eval_cmd, trn_bench_train_cmd;

int trn_cmd_gen(int argc, char **argv);         /* trail gen */
int trn_cmd_train(int argc, char **argv);       /* trail train */
int trn_cmd_eval(int argc, char **argv);        /* trail eval */
int trn_cmd_bench_train(int argc, char **argv); /* trail bench train */

#endif
