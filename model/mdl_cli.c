/* mdl_cli.c: `trail model init` and `trail model info`. */
#include "mdl_cli.h"

#include "core_err.h"
#include "mdl.h"
#include "mdl_opts.h"
#include "core_report.h"

#include <stdio.h>

static const core_cmd init_cmd = {"model init", "write a randomly initialized model file",
                                  mdl_cmd_init, NULL, NULL};
const core_cmd *const mdl_cmds[] = {&init_cmd, NULL};

int mdl_cmd_init(int argc, char **argv) {
    mdl_config cfg;
    const char *out = NULL;
    char err[512];
    mdl_config_default(&cfg);
    const core_opt opts[] = {CORE_OPT_NEED("out", &out, "M", "the model file to write"),
                             CORE_OPT_INCLUDE(mdl_opts_shape, &cfg),
                             CORE_OPT_INCLUDE(mdl_opts_arch, &cfg),
                             CORE_OPT_U64("seed", &cfg.seed, "X", 0, UINT64_MAX,
                                          "initialization and SimHash projection seed"),
                             CORE_OPT_ENDROW};
    int rc = core_opts_parse(&init_cmd, opts, argc, argv);
    if (rc != CORE_OPTS_GO) return rc;
    mdl_model *m = NULL;
    if (mdl_model_init(&m, &cfg, err, sizeof err)) return core_cmd_usage(&init_cmd, "%s", err);
    rc = mdl_model_save(m, out, 0, err, sizeof err);
    if (rc) {
        fprintf(stderr, "trail: model init: %s\n", err);
    } else {
        char mv[17], ev[17];
        mdl_version_hex(m->model_version, mv);
        mdl_version_hex(m->encoding_version, ev);
        printf("wrote %s: model_version %s encoding_version %s (%zu parameters)\n", out, mv, ev,
               m->n_floats);
    }
    mdl_model_destroy(m);
    return rc ? 1 : 0;
}

int mdl_cmd_info_ext(const core_cmd *cmd, int argc, char **argv, void (*extra)(core_report *r)) {
    const char *path = NULL;
    int json = 0;
    const core_opt opts[] = {CORE_OPT_NEED("model", &path, "M", "the model file"),
                             CORE_OPT_JSON(&json), CORE_OPT_ENDROW};
    int rc = core_opts_parse(cmd, opts, argc, argv);
    if (rc != CORE_OPTS_GO) return rc;
    mdl_model *m;
    char err[512], mv[17], ev[17], var[96], title[4200];
    if (mdl_model_load(&m, path, err, sizeof err)) {
        fprintf(stderr, "trail: %s\n", err);
        return 1;
    }
    const mdl_config *c = &m->cfg;
    mdl_version_hex(m->model_version, mv);
    mdl_version_hex(m->encoding_version, ev);
    mdl_variant_str(c, var, sizeof var);
    snprintf(title, sizeof title, "model %s", path);
    core_report r;
    core_report_begin(&r, stdout, json ? CORE_REPORT_JSON_TIGHT : CORE_REPORT_TEXT, title);
    core_report_str(&r, "model_version", mv);
    core_report_str(&r, "encoding_version", ev);
    core_report_str(&r, "variant", var);
    core_report_u64(&r, "dim", c->C);
    core_report_u64(&r, "signatures", c->S);
    core_report_u64(&r, "bits", c->tau);
    core_report_u64(&r, "item_rows", c->item_rows);
    core_report_u64(&r, "cat_rows", c->cat_rows);
    core_report_u64(&r, "recent", c->n_recent);
    core_report_u64(&r, "blocks", c->n_blocks);
    core_report_u64(&r, "heads", c->n_heads);
    core_report_u64(&r, "ffn", c->ffn_dim);
    core_report_u64(&r, "tin_buckets", c->tin_buckets);
    core_report_arr(&r, "hidden");
    core_report_u64(&r, NULL, c->h1);
    core_report_u64(&r, NULL, c->h2);
    core_report_close(&r);
    core_report_u64(&r, "dense", c->n_dense);
    core_report_u64(&r, "seed", c->seed);
    core_report_u64(&r, "parameters", m->n_floats);
    core_report_u64(&r, "adam_step", m->adam_step);
    core_report_str(&r, "sdim_hash", mdl_hash_name(c->sdim_hash));
    core_report_u64(&r, "cross", c->cross);
    core_report_u64(&r, "window", c->window); /* the training window; 0: not recorded */
    if (!json) core_report_bool(&r, "optimizer_state", m->adam_m != NULL);
    if (extra) extra(&r);
    core_report_end(&r);
    mdl_model_destroy(m);
    return 0;
}
