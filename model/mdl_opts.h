/* mdl_opts.h: the model's options, defined once with the bounds mdl_config_check enforces.
 * A command includes a table as CORE_OPT_INCLUDE(mdl_opts_shape, &cfg):
 * the rows store into that mdl_config. A row of the command's own listed before the include
 * overrides the shared row of its name (train's --recent, whose default depends on --protocol). */
#ifndef TRAIL_MDL_OPTS_H
#define TRAIL_MDL_OPTS_H

#include "core_opts.h"

/* --variant, --dim, --signatures, --bits, --item-rows, --cat-rows, --recent, --hidden: what
 * `trail model init` and `trail train` both set */
extern const core_opt mdl_opts_shape[];
/* --blocks, --heads, --ffn, --tin-buckets, --dense: what only `trail model init` sets */
extern const core_opt mdl_opts_arch[];
/* --hidden's parser (H1,H2 into an mdl_config's h1 and h2), for a command that takes the MLP's
 * widths alone (`trail bench rank`) */
int mdl_opt_hidden(const char *v, void *cfg, char *err, size_t n);

#endif
