/* rank_cli.h: pieces of the ranker's commands that tests reach directly. */
#ifndef TRAIL_RANK_CLI_H
#define TRAIL_RANK_CLI_H

#include "core_opts.h"

#include <stddef.h>
#include <stdint.h>

/** @brief Parse one candidate line (without its newline): `item_id,category_id` or the JSON object
 *  `{"item_id": 1, "category_id": 2}` (both keys required, no others, any order, ids unsigned
 *  integers up to 2^63-1, surrounding spaces allowed).
 *  @return CORE_OK, or CORE_EFORMAT / CORE_ERANGE with the reason in err. */
int rank_candidate_parse(const char *line, size_t n, uint64_t *item_id, uint64_t *category_id,
                         char *err, size_t err_size);

extern const core_cmd *const rank_cmds[]; /* the ranker's commands, NULL-terminated */

int rank_cmd_model_info(int argc, char **argv); /* trail model info, with the serving path */

#endif
