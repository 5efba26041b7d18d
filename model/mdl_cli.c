/* mdl_cli.c: `trail model init` and `trail model info`. */
#include "mdl_cli.h"

#include "core_err.h"
#include "mdl.h"
#include "mdl_opts.h"

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

int mdl_cmd_info_ext(const core_cmd *cmd, int argc, char **argv,
                     void (*extra)(FILE *out, int json)) {
    const char *path = NULL;
    int json = 0;
    const core_opt opts[] = {CORE_OPT_NEED("model", &path, "M", "the model file"),
                             CORE_OPT_JSON(&json), CORE_OPT_ENDROW};
    int rc = core_opts_parse(cmd, opts, argc, argv);
    if (rc != CORE_OPTS_GO) return rc;
    mdl_model *m;
    char err[512], mv[17], ev[17], var[96];
    if (mdl_model_load(&m, path, err, sizeof err)) {
        fprintf(stderr, "trail: %s\n", err);
        return 1;
    }
    const mdl_config *c = &m->cfg;
    mdl_version_hex(m->model_version, mv);
    mdl_version_hex(m->encoding_version, ev);
    mdl_variant_str(c, var, sizeof var);
    char wbuf[48] = "not recorded";
    if (c->window) snprintf(wbuf, sizeof wbuf, "%u behaviors per user", c->window);
    if (json) {
        printf(
            "{\"model_version\":\"%s\",\"encoding_version\":\"%s\",\"variant\":\"%s\",\"dim\":%u,"
            "\"signatures\":%u,\"bits\":%u,\"item_rows\":%u,\"cat_rows\":%u,\"recent\":%u,"
            "\"blocks\":%u,\"heads\":%u,\"ffn\":%u,\"tin_buckets\":%u,\"hidden\":[%u,%u],"
            "\"dense\":%u,\"seed\":%llu,\"parameters\":%zu,\"adam_step\":%llu,\"sdim_hash\":\"%s\","
            "\"cross\":%u,\"window\":%u",
            mv, ev, var, c->C, c->S, c->tau, c->item_rows, c->cat_rows, c->n_recent, c->n_blocks,
            c->n_heads, c->ffn_dim, c->tin_buckets, c->h1, c->h2, c->n_dense,
            (unsigned long long)c->seed, m->n_floats, (unsigned long long)m->adam_step,
            mdl_hash_name(c->sdim_hash), c->cross, c->window);
        if (extra) extra(stdout, 1);
        printf("}\n");
    } else {
        printf(
            "model %s\n  model_version %s\n  encoding_version %s\n  variant %s\n  C=%u S=%u tau=%u "
            "item_rows=%u cat_rows=%u N=%u blocks=%u heads=%u ffn=%u tin_buckets=%u mlp=%u-%u "
            "dense=%u seed=%llu\n  training window %s\n  %zu parameters%s\n",
            path, mv, ev, var, c->C, c->S, c->tau, c->item_rows, c->cat_rows, c->n_recent,
            c->n_blocks, c->n_heads, c->ffn_dim, c->tin_buckets, c->h1, c->h2, c->n_dense,
            (unsigned long long)c->seed, wbuf, m->n_floats,
            m->adam_m ? " (with optimizer state)" : "");
        if (extra) extra(stdout, 0);
    }
    mdl_model_destroy(m);
    return 0;
}
