/* test_model.h: the small model the tests that build one start from. Its shape lives here once;
 * a test sets after the call only the fields its check depends on, so what differs from the
 * common shape is what the test is about. Include after test_common.h. */
#ifndef TRAIL_TEST_MODEL_H
#define TRAIL_TEST_MODEL_H

#include "core_err.h"
#include "mdl.h"

/* mdl_config_default, then: C-wide embeddings, 4 signatures of 2 bits, 2048 item and 64
 * category rows, 8 recent behaviors, FFN C wide, MLP 2C-C, 16 TIN buckets, seed 9 (at C = 16,
 * about 40k parameters: a training run takes seconds) */
static inline void test_model_config(mdl_config *cfg, uint32_t C) {
    mdl_config_default(cfg);
    cfg->C = C, cfg->S = 4, cfg->tau = 2, cfg->item_rows = 2048, cfg->cat_rows = 64;
    cfg->n_recent = 8, cfg->ffn_dim = C, cfg->h1 = 2 * C, cfg->h2 = C, cfg->tin_buckets = 16;
    cfg->seed = 9;
}

/* A model of cfg with a variant ("full", "sdim", ...; NULL keeps cfg's branches), initialized;
 * the test fails on an error */
static inline mdl_model *test_model_new(mdl_config *cfg, const char *variant) {
    char err[256];
    mdl_model *m = NULL;
    if (variant && mdl_variant_parse(cfg, variant, err, sizeof err) != CORE_OK)
        fail_msg("variant %s: %s", variant, err);
    if (mdl_model_init(&m, cfg, err, sizeof err) != CORE_OK) fail_msg("model: %s", err);
    return m;
}

#endif
