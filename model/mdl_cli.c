/* mdl_cli.c: `trail model init` and `trail model info`. */
#include "core_args.h"
#include "core_err.h"
#include "mdl.h"
#include "trail_cmds.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void init_usage(FILE *f) {
    fprintf(f,
            "usage: trail model init --out M [options]\n"
            "  --dim C            item-side embedding width, item C/2 + category C/2 (64)\n"
            "  --signatures S     SimHash signatures (16)\n"
            "  --bits TAU         bits per signature (4)\n"
            "  --item-rows R      hashed item embedding rows (262144)\n"
            "  --cat-rows R       hashed category embedding rows (16384)\n"
            "  --variant V        full | sdim | din-long | avgpool | din-short, or\n"
            "                     long=none|avgpool|sdim|attention,short=none|selfattn|din,temporal=none|tin;\n"
            "                     q_short=0|1 after either: q (.) u_short in the head (1)\n"
            "                     hash=fields|concat after either: SDIM's signatures hash the item and\n"
            "                     category halves apart (half the signatures each), or both together\n"
            "                     (fields)\n"
            "                     cross=0|1 after either: candidate x history statistics in the head\n"
            "                     (1 in full, 0 in the other presets)\n"
            "  --recent N         short-term behaviors used (50)\n"
            "  --blocks K         self-attention blocks (1); --heads H (1); --ffn F (64)\n"
            "  --hidden H1,H2     MLP widths (200,80)\n"
            "  --tin-buckets K    log-scale time-gap buckets (24)\n"
            "  --dense K          request-supplied dense features (0)\n"
            "  --seed X           initialization and SimHash projection seed (1)\n");
}

int mdl_cmd_init(int argc, char **argv) {
    static const struct option opts[] = {
        {"out", 1, 0, 'o'},         {"dim", 1, 0, 'C'},      {"signatures", 1, 0, 'S'},
        {"bits", 1, 0, 't'},        {"item-rows", 1, 0, 'I'}, {"cat-rows", 1, 0, 'K'},
        {"variant", 1, 0, 'v'},     {"recent", 1, 0, 'N'},   {"blocks", 1, 0, 'b'},
        {"heads", 1, 0, 'H'},       {"ffn", 1, 0, 'F'},      {"hidden", 1, 0, 'h'},
        {"tin-buckets", 1, 0, 'T'}, {"dense", 1, 0, 'd'},    {"seed", 1, 0, 's'},
        {"help", 0, 0, '?'},        {0, 0, 0, 0}};
    mdl_config cfg;
    const char *out = NULL;
    char err[512];
    uint64_t v;
    int c;
    mdl_config_default(&cfg);
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
#define U32(field, what)                                                                           \
    if (core_parse_u64(optarg, 0, UINT32_MAX, what, &v)) return 2;                                  \
    cfg.field = (uint32_t)v;                                                                       \
    break
        case 'C': U32(C, "--dim");
        case 'S': U32(S, "--signatures");
        case 't': U32(tau, "--bits");
        case 'I': U32(item_rows, "--item-rows");
        case 'K': U32(cat_rows, "--cat-rows");
        case 'N': U32(n_recent, "--recent");
        case 'b': U32(n_blocks, "--blocks");
        case 'H': U32(n_heads, "--heads");
        case 'F': U32(ffn_dim, "--ffn");
        case 'T': U32(tin_buckets, "--tin-buckets");
        case 'd': U32(n_dense, "--dense");
#undef U32
        case 'v':
            if (mdl_variant_parse(&cfg, optarg, err, sizeof err)) {
                fprintf(stderr, "trail: --variant: %s\n", err);
                return 2;
            }
            break;
        case 'h': {
            unsigned a, b;
            char extra;
            if (sscanf(optarg, "%u,%u%c", &a, &b, &extra) != 2) {
                fprintf(stderr, "trail: --hidden: '%s' is not H1,H2\n", optarg);
                return 2;
            }
            cfg.h1 = a;
            cfg.h2 = b;
            break;
        }
        case 's':
            if (core_parse_u64(optarg, 0, UINT64_MAX, "--seed", &cfg.seed)) return 2;
            break;
        case '?':
        default: init_usage(c == '?' && optopt == 0 ? stdout : stderr); return c == '?' && optopt == 0 ? 0 : 2;
        }
    }
    if (!out || optind != argc) {
        init_usage(stderr);
        return 2;
    }
    mdl_model *m = NULL;
    if (mdl_model_init(&m, &cfg, err, sizeof err)) {
        fprintf(stderr, "trail: model init: %s\n", err);
        return 2;
    }
    int rc = mdl_model_save(m, out, 0, err, sizeof err);
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

int mdl_cmd_info(int argc, char **argv) {
    return mdl_cmd_info_ext(argc, argv, NULL);
}

int mdl_cmd_info_ext(int argc, char **argv, void (*extra)(FILE *out, int json)) {
    const char *path = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) path = argv[++i];
        else if (!strcmp(argv[i], "--json")) json = 1;
        else {
            fprintf(stderr, "usage: trail model info --model M [--json]\n");
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: trail model info --model M [--json]\n");
        return 2;
    }
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
        printf("{\"model_version\":\"%s\",\"encoding_version\":\"%s\",\"variant\":\"%s\",\"dim\":%u,"
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
        printf("model %s\n  model_version %s\n  encoding_version %s\n  variant %s\n  C=%u S=%u tau=%u "
               "item_rows=%u cat_rows=%u N=%u blocks=%u heads=%u ffn=%u tin_buckets=%u mlp=%u-%u "
               "dense=%u seed=%llu\n  training window %s\n  %zu parameters%s\n",
               path, mv, ev, var, c->C, c->S, c->tau, c->item_rows, c->cat_rows, c->n_recent,
               c->n_blocks, c->n_heads, c->ffn_dim, c->tin_buckets, c->h1, c->h2, c->n_dense,
               (unsigned long long)c->seed, wbuf, m->n_floats, m->adam_m ? " (with optimizer state)" : "");
        if (extra) extra(stdout, 0);
    }
    mdl_model_destroy(m);
    return 0;
}
