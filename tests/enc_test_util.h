/* enc_test_util.h: helpers shared by the encoder tests: small models, random behavior streams, and
 * the brute-force bucket sums the store's sums are checked against. */
#ifndef TRAIL_ENC_TEST_UTIL_H
#define TRAIL_ENC_TEST_UTIL_H

#include "test_common.h"

#include "core_err.h"
#include "core_util.h"
#include "enc_simhash.h"
#include "enc_state.h"
#include "enc_store.h"
#include "mdl.h"
#include "sch_event.h"

#include <math.h>

/* A small model: C, S, tau and SDIM's hash (mdl_sdim_hash) as given; few rows so that ids collide
 * and buckets fill. */
static inline mdl_model *enc_test_model_hash(uint32_t C, uint32_t S, uint32_t tau, uint64_t seed,
                                             uint32_t sdim_hash) {
    mdl_config cfg;
    mdl_model *m = NULL;
    char err[256];
    mdl_config_default(&cfg);
    cfg.C = C;
    cfg.S = S;
    cfg.tau = tau;
    cfg.item_rows = 4096;
    cfg.cat_rows = 64;
    cfg.ffn_dim = 16;
    cfg.h1 = 8;
    cfg.h2 = 4;
    cfg.seed = seed;
    cfg.sdim_hash = sdim_hash;
    if (mdl_model_init(&m, &cfg, err, sizeof err)) fail_msg("model init: %s", err);
    return m;
}

/* The same with the default hash (field-wise). */
static inline mdl_model *enc_test_model(uint32_t C, uint32_t S, uint32_t tau, uint64_t seed) {
    return enc_test_model_hash(C, S, tau, seed, MDL_HASH_FIELDS);
}

/* Behavior i of a reproducible random stream over a few thousand items. */
static inline sch_behavior enc_test_behavior(core_rng *r, int64_t ts) {
    sch_behavior b;
    memset(&b, 0, sizeof b);
    b.item_id = core_rng_below(r, 20000);
    b.category_id = b.item_id % 97;
    b.ts = ts;
    b.action = (uint8_t)(1 + core_rng_below(r, 4));
    return b;
}

/* V*[i][b] in double from the window (oldest first), signatures from enc_simhash_sign directly.
 * sum: (S, NB, C) doubles; cnt: (S, NB). */
static inline void enc_test_brute(const mdl_model *m, const sch_behavior *win, uint32_t n,
                                  double *sum, uint32_t *cnt) {
    uint32_t S = m->cfg.S, NB = 1u << m->cfg.tau, C = m->cfg.C;
    float *x = malloc(C * sizeof *x);
    uint16_t *sig = malloc(S * sizeof *sig);
    memset(sum, 0, (size_t)S * NB * C * sizeof *sum);
    memset(cnt, 0, (size_t)S * NB * sizeof *cnt);
    for (uint32_t j = 0; j < n; j++) {
        mdl_embed(m, win[j].item_id, win[j].category_id, x);
        enc_simhash_sign(sig, x, m->p.simhash_r, (int)S, (int)m->cfg.tau, (int)C);
        for (uint32_t i = 0; i < S; i++) {
            size_t b = (size_t)i * NB + sig[i];
            for (uint32_t c = 0; c < C; c++)
                sum[b * C + c] += x[c];
            cnt[b]++;
        }
    }
    free(x);
    free(sig);
}

/* max over non-empty buckets of |V - V*| / |V*| (2-norms); counts must match exactly. */
static inline double enc_test_relerr(const mdl_model *m, const float *sum, const uint32_t *cnt,
                                     const double *bsum, const uint32_t *bcnt) {
    uint32_t S = m->cfg.S, NB = 1u << m->cfg.tau, C = m->cfg.C;
    double worst = 0;
    for (size_t b = 0; b < (size_t)S * NB; b++) {
        assert_int_equal(cnt[b], bcnt[b]);
        double d2 = 0, n2 = 0;
        for (uint32_t c = 0; c < C; c++) {
            double d = sum[b * C + c] - bsum[b * C + c];
            d2 += d * d;
            n2 += bsum[b * C + c] * bsum[b * C + c];
        }
        if (bcnt[b] == 0) {
            assert_true(d2 == 0); /* an empty bucket is exactly zero */
            continue;
        }
        double e = sqrt(d2) / fmax(sqrt(n2), 1e-12);
        if (e > worst) worst = e;
    }
    return worst;
}

/* A fresh temporary directory per test (cmocka setup/teardown). */
typedef struct enc_test_dir {
    char dir[256];
    char model[300], model2[300]; /* paths inside dir, for tests that write models */
} enc_test_dir;

static inline int enc_test_dir_setup(void **state) {
    enc_test_dir *f = calloc(1, sizeof *f);
    if (!f || !test_mkdtemp(f->dir, sizeof f->dir)) return -1;
    snprintf(f->model, sizeof f->model, "%s/m1.model", f->dir);
    snprintf(f->model2, sizeof f->model2, "%s/m2.model", f->dir);
    *state = f;
    return 0;
}

static inline int enc_test_dir_teardown(void **state) {
    enc_test_dir *f = *state;
    test_rmtree(f->dir);
    free(f);
    return 0;
}

/* Write n good JSON events over `users` users; every `bad_every`-th line (if nonzero) is malformed.
 * (The state digest of a store directory follows.) */
static inline void enc_test_write_events(const char *path, size_t n, uint64_t users,
                                         size_t bad_every) {
    FILE *fp = fopen(path, "w");
    core_rng r;
    core_rng_seed(&r, n + users);
    char line[256];
    for (size_t i = 0; i < n; i++) {
        if (bad_every && i % bad_every == bad_every - 1) {
            fprintf(fp, "{\"user_id\":1,\"item_id\":\"x\"}\n");
            continue;
        }
        sch_behavior b = enc_test_behavior(&r, 1500000000 + (int64_t)i);
        sch_event e = {.user_id = 1 + core_rng_below(&r, users),
                       .item_id = b.item_id,
                       .category_id = b.category_id,
                       .ts = b.ts,
                       .action = b.action};
        sch_event_to_json(&e, line, sizeof line);
        fprintf(fp, "%s\n", line);
    }
    fclose(fp);
}

static inline uint64_t enc_test_store_digest(const char *dir, int what) {
    char err[512];
    enc_store_conf conf;
    enc_store *st;
    uint64_t d = 0;
    enc_store_conf_default(&conf);
    conf.path = dir;
    conf.window = conf.recent = 0;
    if (enc_store_open(&st, &conf, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(enc_store_digest(st, what, &d), CORE_OK);
    enc_store_close(st);
    return d;
}

#endif
