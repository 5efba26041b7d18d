/* mdl_cli.h: the model module's commands: `trail model init`, and the body of `trail model info`
 * (the ranker's command adds this CPU's serving path). */
#ifndef TRAIL_MDL_CLI_H
#define TRAIL_MDL_CLI_H

#include "core_opts.h"
#include "core_report.h"

extern const core_cmd *const mdl_cmds[]; /* NULL-terminated */

int mdl_cmd_init(int argc, char **argv);
/** @brief `trail model info` as cmd: extra, when set, adds fields to the report after the
 *  model's own. */
int mdl_cmd_info_ext(const core_cmd *cmd, int argc, char **argv, void (*extra)(core_report *r));

#endif
