/* test_mdl_file.c: model files round-trip bit for bit, and every kind of damage is refused with a
 * message that names it. */
#include "test_common.h"

#include "core_alloc.h"
#include "core_err.h"
#include "mdl.h"

#include <xxhash.h>

static mdl_model *small_model(uint64_t seed) {
    mdl_config cfg;
    mdl_model *m;
    char err[256];
    mdl_config_default(&cfg);
    cfg.item_rows = 1000;
    cfg.cat_rows = 100;
    cfg.C = 16;
    cfg.seed = seed;
    assert_int_equal(mdl_model_init(&m, &cfg, err, sizeof err), CORE_OK);
    return m;
}

static void write_bytes(const char *path, const uint8_t *b, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static uint8_t *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    uint8_t *b = malloc(*n);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void test_roundtrip_and_determinism(void **state) {
    (void)state;
    char dir[256], path[300], err[256];
    assert_non_null(test_mkdtemp(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/m.bin", dir);
    mdl_model *a = small_model(7), *b = small_model(7), *c = small_model(8), *l;
    assert_memory_equal(a->arena, b->arena, a->n_floats * sizeof(float));
    assert_int_equal(a->model_version, b->model_version);
    assert_true(a->encoding_version != c->encoding_version);
    assert_int_equal(mdl_model_save(a, path, 0, err, sizeof err), CORE_OK);
    assert_int_equal(mdl_model_load(&l, path, err, sizeof err), CORE_OK);
    assert_memory_equal(a->arena, l->arena, a->n_floats * sizeof(float));
    assert_int_equal(a->model_version, l->model_version);
    assert_int_equal(a->encoding_version, l->encoding_version);
    assert_null(l->adam_m);
    /* changing a non-embedding weight changes model_version only */
    l->p.w1[0] += 1.f;
    mdl_model_refresh_versions(l);
    assert_true(l->model_version != a->model_version);
    assert_int_equal(l->encoding_version, a->encoding_version);
    l->p.item_emb[3] += 1.f;
    mdl_model_refresh_versions(l);
    assert_true(l->encoding_version != a->encoding_version);
    mdl_model_destroy(a);
    mdl_model_destroy(b);
    mdl_model_destroy(c);
    mdl_model_destroy(l);
    test_rmtree(dir);
}

static void test_adam_state_roundtrip(void **state) {
    (void)state;
    char dir[256], path[300], err[256];
    assert_non_null(test_mkdtemp(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/m.bin", dir);
    mdl_model *a = small_model(3), *l;
    a->adam_m = core_aligned_alloc(a->n_floats * sizeof(float));
    a->adam_v = core_aligned_alloc(a->n_floats * sizeof(float));
    for (size_t i = 0; i < a->n_floats; i++)
        a->adam_m[i] = (float)i, a->adam_v[i] = 1.f / (float)(i + 1);
    a->adam_step = 42;
    assert_int_equal(mdl_model_save(a, path, 1, err, sizeof err), CORE_OK);
    assert_int_equal(mdl_model_load(&l, path, err, sizeof err), CORE_OK);
    assert_non_null(l->adam_m);
    assert_memory_equal(l->adam_m, a->adam_m, a->n_floats * sizeof(float));
    assert_memory_equal(l->adam_v, a->adam_v, a->n_floats * sizeof(float));
    assert_int_equal(l->adam_step, 42);
    mdl_model_destroy(a);
    mdl_model_destroy(l);
    test_rmtree(dir);
}

static void test_damage_is_refused(void **state) {
    (void)state;
    char dir[256], path[300], bad[300], err[256];
    assert_non_null(test_mkdtemp(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/m.bin", dir);
    snprintf(bad, sizeof bad, "%s/bad.bin", dir);
    mdl_model *a = small_model(5), *l = NULL;
    assert_int_equal(mdl_model_save(a, path, 0, err, sizeof err), CORE_OK);
    size_t n;
    uint8_t *b = read_bytes(path, &n);

    write_bytes(bad, b, n / 2); /* truncated: the header's config implies more bytes */
    assert_int_equal(mdl_model_load(&l, bad, err, sizeof err), CORE_EFORMAT);
    assert_non_null(strstr(err, "truncated"));
    /* a header whose config asks for 2^26 item rows, in a small file: refused from the header
     * alone, before anything is allocated (every allocation would fail here) */
    {
        uint8_t *c = malloc(n);
        assert_non_null(c);
        memcpy(c, b, n);
        uint32_t rows = 1u << 26;
        memcpy(c + 40 + 12, &rows, 4); /* config word 3: item_rows */
        write_bytes(bad, c, n);
        core_alloc_fail_after(0, 1);
        int rc = mdl_model_load(&l, bad, err, sizeof err);
        core_alloc_fail_after(-1, 0);
        assert_int_equal(rc, CORE_EFORMAT);
        assert_null(l);
        assert_non_null(strstr(err, "implies"));
        free(c);
    }
    write_bytes(bad, b, 20); /* truncated into the header */
    assert_int_equal(mdl_model_load(&l, bad, err, sizeof err), CORE_EFORMAT);
    assert_non_null(strstr(err, "too short"));
    b[n / 2] ^= 0x10; /* a flipped bit in the weights */
    write_bytes(bad, b, n);
    assert_int_equal(mdl_model_load(&l, bad, err, sizeof err), CORE_ECHECKSUM);
    b[n / 2] ^= 0x10;
    b[0] = 'X'; /* not a model */
    write_bytes(bad, b, n);
    assert_int_equal(mdl_model_load(&l, bad, err, sizeof err), CORE_EFORMAT);
    assert_non_null(strstr(err, "magic"));
    b[0] = 'T';
    b[8] = 9; /* a future format version */
    write_bytes(bad, b, n);
    assert_int_equal(mdl_model_load(&l, bad, err, sizeof err), CORE_EVERSION);
    assert_null(l);
    b[8] = 1; /* version 1, before long attention had projections: refused, saying both versions */
    write_bytes(bad, b, n);
    assert_int_equal(mdl_model_load(&l, bad, err, sizeof err), CORE_EVERSION);
    assert_null(l);
    assert_non_null(strstr(err, "format version 1, this build reads versions 2 to 3"));
    assert_int_equal(mdl_model_load(&l, "/nonexistent/model", err, sizeof err), CORE_EIO);
    free(b);
    mdl_model_destroy(a);
    test_rmtree(dir);
}

/* Rewrite a saved file's format version and head flags, with a valid checksum. */
static void rewrite_header(const char *path, const uint8_t *b, size_t n, uint32_t ver,
                           uint32_t head_flags) {
    uint8_t *c = malloc(n);
    assert_non_null(c);
    memcpy(c, b, n);
    memcpy(c + 8, &ver, 4);
    memcpy(c + 124, &head_flags, 4);
    uint64_t sum = XXH3_64bits(c, n - 8);
    memcpy(c + n - 8, &sum, 8);
    write_bytes(path, c, n);
    free(c);
}

/* Format 3 added the flags word (bit 0 q (.) u_short, bit 1 field-wise SDIM hash) in the word
 * version 2 kept reserved as 0. A version-2 file reads as a model with neither, with the same
 * version ids; a version-2 file with the word set, or unknown flag bits, is refused. Both flags
 * round-trip. */
static void test_head_flags_and_version_2(void **state) {
    (void)state;
    char dir[256], path[300], bad[300], err[256];
    assert_non_null(test_mkdtemp(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/m.bin", dir);
    snprintf(bad, sizeof bad, "%s/v2.bin", dir);
    mdl_config cfg;
    mdl_model *a, *l = NULL;
    mdl_config_default(&cfg);
    cfg.item_rows = 100, cfg.cat_rows = 10, cfg.C = 8;
    for (uint32_t f = 0; f <= 7; f++) {
        uint32_t qs = f & 1, fields = (f >> 1) & 1, cross = f >> 2;
        cfg.q_short = qs;
        cfg.sdim_hash = fields ? MDL_HASH_FIELDS : MDL_HASH_CONCAT;
        cfg.cross = cross;
        assert_int_equal(mdl_model_init(&a, &cfg, err, sizeof err), CORE_OK);
        assert_int_equal(a->tensors[0].dims[1], 4);
        assert_int_equal(mdl_mlp_in_dim(&a->cfg), (qs ? 6 : 5) * 8 + (cross ? MDL_CROSS_DIM : 0));
        assert_int_equal(mdl_model_save(a, path, 0, err, sizeof err), CORE_OK);
        size_t n;
        uint8_t *b = read_bytes(path, &n);
        uint32_t hf;
        memcpy(&hf, b + 124, 4);
        assert_int_equal(hf, f);
        assert_int_equal(mdl_model_load(&l, path, err, sizeof err), CORE_OK);
        assert_int_equal(l->cfg.q_short, qs);
        assert_int_equal(l->cfg.sdim_hash, cfg.sdim_hash);
        assert_int_equal(l->cfg.cross, cross);
        assert_true(l->model_version == a->model_version);
        assert_true(l->encoding_version == a->encoding_version);
        mdl_model_destroy(l);
        l = NULL;
        rewrite_header(bad, b, n, 2, f); /* version 2 */
        if (!f) {
            assert_int_equal(mdl_model_load(&l, bad, err, sizeof err), CORE_OK);
            assert_int_equal(l->cfg.q_short, 0);
            assert_int_equal(l->cfg.sdim_hash, MDL_HASH_CONCAT);
            assert_true(l->model_version == a->model_version);
            mdl_model_destroy(l);
            l = NULL;
        } else {
            assert_int_equal(mdl_model_load(&l, bad, err, sizeof err), CORE_EFORMAT);
            assert_null(l);
            assert_non_null(strstr(err, "reserved in format version 2"));
        }
        rewrite_header(bad, b, n, 3, f | 8); /* a flag this build does not know */
        assert_int_equal(mdl_model_load(&l, bad, err, sizeof err), CORE_EFORMAT);
        assert_null(l);
        assert_non_null(strstr(err, "unknown bits"));
        free(b);
        mdl_model_destroy(a);
    }
    /* the flag is part of the model: the same weights with and without it differ in version */
    cfg.q_short = 0;
    assert_int_equal(mdl_model_init(&a, &cfg, err, sizeof err), CORE_OK);
    cfg.short_kind = MDL_SHORT_NONE; /* no short branch: the flag changes no shape */
    mdl_model *x, *y;
    assert_int_equal(mdl_model_init(&x, &cfg, err, sizeof err), CORE_OK);
    cfg.q_short = 1;
    assert_int_equal(mdl_model_init(&y, &cfg, err, sizeof err), CORE_OK);
    assert_int_equal(x->n_floats, y->n_floats);
    assert_true(x->model_version != y->model_version);
    /* the hash draws another projection from the same seed: another encoding */
    mdl_model *z;
    cfg.sdim_hash = MDL_HASH_CONCAT;
    assert_int_equal(mdl_model_init(&z, &cfg, err, sizeof err), CORE_OK);
    assert_true(z->encoding_version != y->encoding_version);
    cfg.S = 1; /* one signature cannot be split between two fields */
    assert_int_equal(mdl_config_check(&cfg, err, sizeof err), CORE_OK);
    cfg.sdim_hash = MDL_HASH_FIELDS;
    assert_int_equal(mdl_config_check(&cfg, err, sizeof err), CORE_EINVAL);
    assert_non_null(strstr(err, "S >= 2"));
    mdl_model_destroy(z);
    mdl_model_destroy(a);
    mdl_model_destroy(x);
    mdl_model_destroy(y);
    test_rmtree(dir);
}

/* The training window rides in bits 8..31 of the flags word: it round-trips, 0 means not
 * recorded, it is part of model_version (not of encoding_version, no weight depends on it), and
 * mdl_window_mismatch speaks only when the model reads the long history of a store that keeps
 * another window. */
static void test_training_window(void **state) {
    (void)state;
    char dir[256], path[300], err[256], msg[256];
    assert_non_null(test_mkdtemp(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/w.bin", dir);
    mdl_config cfg;
    mdl_model *a, *l = NULL;
    mdl_config_default(&cfg);
    cfg.item_rows = 100, cfg.cat_rows = 10, cfg.C = 8;
    assert_int_equal(mdl_model_init(&a, &cfg, err, sizeof err), CORE_OK);
    uint64_t unrecorded = a->model_version;
    a->cfg.window = 256;
    mdl_model_refresh_versions(a);
    assert_true(a->model_version != unrecorded);
    assert_int_equal(mdl_model_save(a, path, 0, err, sizeof err), CORE_OK);
    size_t n;
    uint8_t *b = read_bytes(path, &n);
    uint32_t hf;
    memcpy(&hf, b + 124, 4);
    assert_int_equal(hf, (256u << 8) | 7u); /* q_short, field-wise hash, cross */
    assert_int_equal(mdl_model_load(&l, path, err, sizeof err), CORE_OK);
    assert_int_equal(l->cfg.window, 256);
    assert_true(l->model_version == a->model_version);
    assert_true(l->encoding_version == a->encoding_version);
    mdl_model_destroy(l);
    free(b);
    /* the largest window the word holds; one more is refused by the config check */
    cfg.window = MDL_MAX_WINDOW;
    assert_int_equal(mdl_config_check(&cfg, err, sizeof err), CORE_OK);
    cfg.window = MDL_MAX_WINDOW + 1;
    assert_int_equal(mdl_config_check(&cfg, err, sizeof err), CORE_EINVAL);
    assert_non_null(strstr(err, "window"));
    /* the mismatch rule */
    cfg.window = 256;
    assert_int_equal(mdl_window_mismatch(&cfg, 256, msg, sizeof msg), 0);
    assert_int_equal(mdl_window_mismatch(&cfg, 10000, msg, sizeof msg), 1);
    assert_non_null(strstr(msg, "windows of 256 behaviors per user, the store keeps 10000"));
    assert_non_null(strstr(msg, "--window 256"));
    cfg.cross = 0; /* SDIM's sums still cover the store's window */
    assert_int_equal(mdl_window_mismatch(&cfg, 10000, msg, sizeof msg), 1);
    cfg.long_kind = MDL_LONG_NONE; /* nothing reads past the recent behaviors */
    assert_int_equal(mdl_window_mismatch(&cfg, 10000, msg, sizeof msg), 0);
    cfg.cross = 1;
    assert_int_equal(mdl_window_mismatch(&cfg, 10000, msg, sizeof msg), 1);
    cfg.window = 0; /* not recorded: nothing to compare */
    assert_int_equal(mdl_window_mismatch(&cfg, 10000, msg, sizeof msg), 0);
    mdl_model_destroy(a);
    test_rmtree(dir);
}

/* long = attention's projections exist in every variant's layout and start as the identity / 0.05
 * (the embeddings' init std), so its first scores are those unit-variance embeddings would give */
static void test_long_attention_projections_start_at_identity(void **state) {
    (void)state;
    mdl_model *m = small_model(9);
    uint32_t C = m->cfg.C;
    for (uint32_t i = 0; i < C; i++)
        for (uint32_t j = 0; j < C; j++) {
            assert_true(m->p.w_lq[i * C + j] == (i == j ? 20.f : 0.f));
            assert_true(m->p.w_lk[i * C + j] == (i == j ? 20.f : 0.f));
        }
    int found = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, "w_lq") || !strcmp(m->tensors[i].name, "w_lk")) {
            assert_int_equal(m->tensors[i].dims[0], C);
            assert_int_equal(m->tensors[i].dims[1], C);
            assert_true(m->tensors[i].trainable);
            found++;
        }
    assert_int_equal(found, 2);
    mdl_model_destroy(m);
}

static void test_alloc_failures_are_clean(void **state) {
    (void)state;
    mdl_config cfg;
    char err[256];
    mdl_config_default(&cfg);
    cfg.item_rows = 100;
    cfg.cat_rows = 10;
    mdl_model *m = NULL;
    TEST_ALLOC_SWEEP(1, mdl_model_init(&m, &cfg, err, sizeof err), assert_null(m), {
        mdl_model_destroy(m);
        assert_true(sweep_n > 0);
    });
}

static void test_config_and_variants(void **state) {
    (void)state;
    mdl_config cfg;
    char err[256];
    mdl_config_default(&cfg);
    assert_int_equal(mdl_config_check(&cfg, err, sizeof err), CORE_OK);
    /* q, u_long, q*u_long, u_short, q*u_short, u_tin, cross */
    assert_int_equal(mdl_mlp_in_dim(&cfg), 6 * 64 + MDL_CROSS_DIM);
    assert_int_equal(cfg.cross, 1);
    mdl_mlp_cols col;
    mdl_mlp_layout(&cfg, &col);
    assert_int_equal(col.cross, 6 * 64);
    assert_int_equal(col.dense, 6 * 64 + MDL_CROSS_DIM);
    cfg.C = 63;
    assert_int_equal(mdl_config_check(&cfg, err, sizeof err), CORE_EINVAL);
    assert_non_null(strstr(err, "even"));
    mdl_config_default(&cfg);
    assert_int_equal(mdl_variant_parse(&cfg, "din-short", err, sizeof err), CORE_OK);
    assert_int_equal(cfg.long_kind, MDL_LONG_NONE);
    assert_int_equal(cfg.cross, 0); /* only the full preset has the cross statistics */
    assert_int_equal(mdl_mlp_in_dim(&cfg), 3 * 64);
    assert_int_equal(mdl_variant_parse(&cfg, "din-short,q_short=0", err, sizeof err), CORE_OK);
    assert_int_equal(cfg.q_short, 0);
    assert_int_equal(mdl_mlp_in_dim(&cfg), 2 * 64);
    char vs[96];
    mdl_variant_str(&cfg, vs, sizeof vs);
    assert_string_equal(vs, "long=none,short=din,temporal=none,q_short=0");
    assert_int_equal(mdl_variant_parse(&cfg, "full,q_short=1", err, sizeof err), CORE_OK);
    mdl_variant_str(&cfg, vs, sizeof vs);
    assert_string_equal(vs, "long=sdim,short=selfattn,temporal=tin,q_short=1,hash=fields,cross=1");
    assert_int_equal(mdl_variant_parse(&cfg, "full,cross=0", err, sizeof err), CORE_OK);
    mdl_variant_str(&cfg, vs, sizeof vs);
    assert_string_equal(vs, "long=sdim,short=selfattn,temporal=tin,q_short=1,hash=fields");
    assert_int_equal(mdl_variant_parse(&cfg, "din-long,cross=1", err, sizeof err), CORE_OK);
    mdl_variant_str(&cfg, vs, sizeof vs);
    assert_string_equal(vs, "long=attention,short=din,temporal=none,q_short=1,cross=1");
    assert_int_equal(mdl_variant_parse(&cfg, "full,cross=2", err, sizeof err), CORE_EINVAL);
    assert_int_equal(mdl_variant_parse(&cfg, "sdim,hash=concat", err, sizeof err), CORE_OK);
    assert_int_equal(cfg.sdim_hash, MDL_HASH_CONCAT);
    mdl_variant_str(&cfg, vs, sizeof vs);
    assert_string_equal(vs, "long=sdim,short=din,temporal=none,q_short=1,hash=concat");
    assert_int_equal(mdl_variant_parse(&cfg, "sdim,hash=rows", err, sizeof err), CORE_EINVAL);
    assert_int_equal(mdl_variant_parse(&cfg, "full,", err, sizeof err), CORE_EINVAL);
    assert_int_equal(mdl_variant_parse(&cfg, "q_short=2", err, sizeof err), CORE_EINVAL);
    assert_int_equal(mdl_variant_parse(&cfg, "fullish", err, sizeof err), CORE_EINVAL);
    assert_int_equal(mdl_variant_parse(&cfg, "long=attention,temporal=tin", err, sizeof err),
                     CORE_OK);
    assert_int_equal(cfg.long_kind, MDL_LONG_ATTN);
    assert_int_equal(cfg.temporal_kind, MDL_TEMPORAL_TIN);
    assert_int_equal(mdl_variant_parse(&cfg, "long=huge", err, sizeof err), CORE_EINVAL);
    /* TIN buckets: under a minute, then doubling, capped */
    assert_int_equal(mdl_tin_bucket(&cfg, -5), 1);
    assert_int_equal(mdl_tin_bucket(&cfg, 59), 1);
    assert_int_equal(mdl_tin_bucket(&cfg, 60), 2);
    assert_int_equal(mdl_tin_bucket(&cfg, 119), 2);
    assert_int_equal(mdl_tin_bucket(&cfg, 120), 3);
    assert_int_equal(mdl_tin_bucket(&cfg, (int64_t)1 << 40), cfg.tin_buckets);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_determinism),
        cmocka_unit_test(test_adam_state_roundtrip),
        cmocka_unit_test(test_damage_is_refused),
        cmocka_unit_test(test_head_flags_and_version_2),
        cmocka_unit_test(test_training_window),
        cmocka_unit_test(test_long_attention_projections_start_at_identity),
        cmocka_unit_test(test_alloc_failures_are_clean),
        cmocka_unit_test(test_config_and_variants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
