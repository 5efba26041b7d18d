/* mdl_opts.c: the model's command-line options, one table for every command that builds one. */
#include "mdl_opts.h"

#include "mdl.h"

#include <stddef.h>
#include <stdio.h>

static int parse_variant(const char *v, void *cfg, char *err, size_t n) {
    return mdl_variant_parse(cfg, v, err, n);
}

/* H1,H2 into mdl_config's h1 and h2 */
int mdl_opt_hidden(const char *v, void *cfg, char *err, size_t n) {
    unsigned a, b;
    char extra;
    if (sscanf(v, "%u,%u%c", &a, &b, &extra) != 2 || a < 1 || a > 8192 || b < 1 || b > 8192) {
        snprintf(err, n, "'%s' is not H1,H2 (each in [1, 8192])", v);
        return 1;
    }
    ((mdl_config *)cfg)->h1 = a, ((mdl_config *)cfg)->h2 = b;
    return 0;
}

#define CFG_U32(name, field, arg, lo, hi, help)                                                    \
    {                                                                                              \
        CORE_OPT_ROW(name, CORE_OPT_U32, NULL, arg, help), .umin = (lo), .umax = (hi),             \
                                                           .off = offsetof(mdl_config, field)      \
    }

const core_opt mdl_opts_shape[] = {
    {CORE_OPT_ROW("variant", CORE_OPT_FUNC, NULL, "V",
                  "full | sdim | din-long | avgpool | din-short, or\n"
                  "long=none|avgpool|sdim|attention,short=none|selfattn|din,temporal=none|tin;\n"
                  "after either: q_short=0|1 (q (.) u_short in the head, 1),\n"
                  "hash=fields|concat (SDIM's signatures hash the item and category halves\n"
                  "apart, half the signatures each, or [item | category] whole as in the\n"
                  "paper; fields), cross=0|1 (candidate x history statistics in the head;\n"
                  "1 in full, 0 in the other presets)"),
     .fn = parse_variant, .def = "full"},
    CFG_U32("dim", C, "C", 2, 1024, "item-side embedding width, item C/2 + category C/2; even"),
    CFG_U32("signatures", S, "S", 1, 64, "SDIM's SimHash signatures"),
    CFG_U32("bits", tau, "TAU", 1, 16, "bits per signature"),
    CFG_U32("item-rows", item_rows, "R", 1, 1u << 26, "hashed item embedding rows"),
    CFG_U32("cat-rows", cat_rows, "R", 1, 1u << 24, "hashed category embedding rows"),
    CFG_U32("recent", n_recent, "N", 1, 1024, "short-term behaviors used"),
    {CORE_OPT_ROW("hidden", CORE_OPT_FUNC, NULL, "H1,H2", "MLP widths"), .fn = mdl_opt_hidden,
     .def = "200,80"},
    CORE_OPT_ENDROW};

const core_opt mdl_opts_arch[] = {
    CFG_U32("blocks", n_blocks, "K", 1, MDL_MAX_BLOCKS, "self-attention blocks"),
    CFG_U32("heads", n_heads, "H", 1, 1024, "attention heads per block; divides --dim"),
    CFG_U32("ffn", ffn_dim, "F", 1, 8192, "feed-forward width inside a block"),
    CFG_U32("tin-buckets", tin_buckets, "K", 1, 64, "log-scale time-gap buckets"),
    CFG_U32("dense", n_dense, "K", 0, 256, "request-supplied dense features"),
    CORE_OPT_ENDROW};
