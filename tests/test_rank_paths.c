/* test_rank_paths.c: the serving forward on every compute path this CPU runs, against the fp32
 * path on the same requests: the folded head (many candidates), the unfolded head (few), and
 * exact attention over the window (its GEMMs routed through the same path, window packed once).
 *
 * Bounds (rank_isa_max_dp): fp32-precision paths (scalar, avx2) agree with fp32 (OpenBLAS) to 2e-5
 * in probability; bf16 paths to 5e-3, the serving bound (docs/QUALITY.md measures it on trained
 * models); the opt-in int8 paths to 5e-2. Every request on a path must run entirely on it: no GEMM
 * falls back to OpenBLAS for lack of a buffer. Paths this CPU lacks are skipped, by name.
 */
#include "test_common.h"

#include "core_err.h"
#include "core_util.h"
#include "enc_simhash.h"
#include "mdl.h"
#include "rank_isa.h"
#include "rank_qcache.h"
#include "rank_score.h"

#include <math.h>

#define T_WIN 3000
#define NB_MAX 600

typedef struct fixture {
    mdl_model *m;
    sch_behavior *win;
    float *V;
    uint32_t *cnt;
    uint64_t item[NB_MAX], cat[NB_MAX];
    rank_history h;
} fixture;

static void make_fixture(fixture *f, uint32_t long_kind) {
    mdl_config cfg;
    char err[256];
    mdl_config_default(&cfg);
    cfg.item_rows = 1u << 14;
    cfg.cat_rows = 1u << 10;
    cfg.q_short = 1;
    cfg.cross = 1;
    cfg.long_kind = long_kind;
    cfg.seed = 7;
    assert_int_equal(mdl_model_init(&f->m, &cfg, err, sizeof err), CORE_OK);
    /* a larger output layer than the init's and item biases over (-2, 2), so the probabilities
     * cover most of (0, 1) and the head's rounding shows in them */
    for (uint32_t i = 0; i < cfg.h2; i++)
        f->m->p.w3[i] *= 4.f;
    core_rng rb;
    core_rng_seed(&rb, 9);
    for (uint32_t i = 0; i < cfg.item_rows; i++)
        f->m->p.item_bias[i] = (float)core_rng_below(&rb, 4001) / 1000.f - 2.f;
    int S = (int)cfg.S, nb = 1 << cfg.tau, C = (int)cfg.C;
    f->win = calloc(T_WIN, sizeof *f->win);
    f->V = calloc((size_t)S * nb * C, sizeof *f->V);
    f->cnt = calloc((size_t)S * nb, sizeof *f->cnt);
    core_rng r;
    core_rng_seed(&r, 3);
    int64_t now = 1700000000;
    float x[1024];
    uint16_t sig[64];
    for (int j = 0; j < T_WIN; j++) {
        uint64_t it = 1 + core_rng_below(&r, 3000);
        f->win[j] = (sch_behavior){it, 1 + it % 97, now - (int64_t)(T_WIN - j) * 900, 1};
        mdl_embed(f->m, f->win[j].item_id, f->win[j].category_id, x);
        enc_simhash_sign(sig, x, f->m->p.simhash_r, S, (int)cfg.tau, C);
        for (int i = 0; i < S; i++) {
            for (int k = 0; k < C; k++)
                f->V[((size_t)i * nb + sig[i]) * C + k] += x[k];
            f->cnt[i * nb + sig[i]]++;
        }
    }
    for (int b = 0; b < NB_MAX; b++) {
        f->item[b] = 1 + core_rng_below(&r, 3000);
        f->cat[b] = 1 + f->item[b] % 97;
    }
    f->h = (rank_history){.bucket_sum = f->V,
                          .bucket_cnt = f->cnt,
                          .window_len = T_WIN,
                          .window = f->win,
                          .T = T_WIN,
                          .recent = f->win + T_WIN - 50,
                          .N = 50,
                          .now_ts = now};
    /* center the logits: b3 minus their mean on the fp32 path */
    rank_scratch *s;
    float p[NB_MAX];
    double mean = 0;
    assert_int_equal(rank_scratch_new_isa(&s, f->m, NB_MAX, T_WIN, RANK_ISA_FP32), CORE_OK);
    assert_int_equal(rank_score(p, s, f->m, &f->h, f->item, f->cat, NB_MAX), CORE_OK);
    rank_scratch_destroy(s);
    for (int b = 0; b < NB_MAX; b++)
        mean += log(p[b] / (1.0 - p[b])) / NB_MAX;
    f->m->p.b3[0] -= (float)mean;
}

static void free_fixture(fixture *f) {
    mdl_model_destroy(f->m);
    free(f->win), free(f->V), free(f->cnt);
}

static void check_paths(uint32_t long_kind, const uint32_t *sizes, int n_sizes) {
    fixture f;
    make_fixture(&f, long_kind);
    float ref[NB_MAX], got[NB_MAX];
    for (int z = 0; z < n_sizes; z++) {
        uint32_t B = sizes[z];
        rank_scratch *s;
        assert_int_equal(rank_scratch_new_isa(&s, f.m, B, T_WIN, RANK_ISA_FP32), CORE_OK);
        assert_int_equal(rank_score(ref, s, f.m, &f.h, f.item, f.cat, B), CORE_OK);
        rank_scratch_destroy(s);
        double lo = 1, hi = 0;
        for (uint32_t b = 0; b < B; b++)
            lo = fmin(lo, ref[b]), hi = fmax(hi, ref[b]);
        if (B >= 100 && !(lo < 0.2 && hi > 0.8))
            fail_msg("probabilities only span [%g, %g]", lo, hi);
        for (int i = 0; i < RANK_ISA_COUNT; i++) {
            rank_isa isa = (rank_isa)i;
            if (!rank_isa_available(isa)) {
                if (z == 0) printf("skip path %s: this CPU cannot run it\n", rank_isa_name(isa));
                continue;
            }
            assert_int_equal(rank_scratch_new_isa(&s, f.m, B, T_WIN, isa), CORE_OK);
            assert_int_equal(rank_scratch_isa(s), isa);
            double worst = 0;
            float first[NB_MAX];
            for (int rep = 0; rep < 2; rep++) { /* the second request reuses every buffer */
                assert_int_equal(rank_score(got, s, f.m, &f.h, f.item, f.cat, B), CORE_OK);
                for (uint32_t b = 0; b < B; b++)
                    worst = fmax(worst, fabs((double)got[b] - ref[b]));
                if (rep == 0) memcpy(first, got, B * sizeof *got);
            }
            /* the second request found every candidate's q term in the cache the first filled */
            assert_memory_equal(first, got, B * sizeof *got);
            assert_int_equal(rank_scratch_route_fallbacks(s), 0);
            rank_scratch_destroy(s);
            double bound = rank_isa_max_dp(isa);
            printf("long=%u B=%u path %-12s max |p - p_fp32| = %.2e (bound %.0e)\n", long_kind, B,
                   rank_isa_name(isa), worst, bound);
            assert_true(worst <= bound);
        }
    }
    free_fixture(&f);
}

static void test_sdim_every_path(void **state) {
    (void)state;
    static const uint32_t sizes[] = {600, 257, 20, 1};
    check_paths(MDL_LONG_SDIM, sizes, 4);
}

static void test_attention_every_path(void **state) {
    (void)state;
    static const uint32_t sizes[] = {300, 7};
    check_paths(MDL_LONG_ATTN, sizes, 2);
}

/* The q-term cache is a store: a put row comes back from find, bit for bit, until the other
 * seven ways of its set were all used after it (least recently used way replaced); a key put twice
 * keeps its first row. */
static void test_qcache_hits_and_evictions(void **state) {
    (void)state;
    enum { W = 37, K = 9 };
    rank_qcache *c;
    assert_int_equal(rank_qcache_new(&c, 8, W), CORE_OK); /* one set of eight ways */
    uint16_t row[K][W], other[W];
    uint32_t ir[K], cr[K];
    for (int i = 0; i < K; i++) {
        ir[i] = 5 + (uint32_t)i / 2, cr[i] = (uint32_t)i % 2; /* keys differ in either row */
        for (int j = 0; j < W; j++)
            row[i][j] = (uint16_t)(1000 * i + 7 * j + 1);
    }
    memset(other, 0xab, sizeof other);
#define FIND(i) rank_qcache_find(c, ir[i], cr[i])
#define PUT(i, r) rank_qcache_put(c, ir[i], cr[i], r)
    for (int i = 0; i < 8; i++) {
        assert_null(FIND(i));
        PUT(i, row[i]);
    }
    assert_memory_equal(FIND(0), row[0], sizeof row[0]); /* 0: used after 1..7 */
    PUT(0, other);                                       /* already there: unchanged */
    assert_null(FIND(8));
    PUT(8, row[8]); /* evicts 1, the least recently used */
    assert_null(FIND(1));
    assert_memory_equal(FIND(8), row[8], sizeof row[8]);
    for (int i = 0; i < 8; i++)
        if (i != 1) assert_memory_equal(FIND(i), row[i], sizeof row[i]);
#undef FIND
#undef PUT
    uint64_t hits, misses;
    rank_qcache_stats(c, &hits, &misses);
    assert_int_equal(hits, 9);
    assert_int_equal(misses, 10);
    rank_qcache_destroy(c);
}

/* Serving cycles through its users' candidates: 400 items cycled through 1,024 slots miss on
 * their first pass only (with two ways, 19% of each pass missed again, by the occupancy of its
 * sets; eight ways keep that under 2%). */
static void test_qcache_keeps_a_cycle(void **state) {
    (void)state;
    enum { W = 4, N = 400 };
    rank_qcache *c;
    assert_int_equal(rank_qcache_new(&c, 1024, W), CORE_OK);
    uint16_t row[W] = {1, 2, 3, 4};
    uint64_t hits, misses;
    for (int pass = 0; pass < 3; pass++) {
        for (uint32_t i = 0; i < N; i++)
            if (!rank_qcache_find(c, 17 * i + 3, i % 97))
                rank_qcache_put(c, 17 * i + 3, i % 97, row);
        rank_qcache_stats(c, &hits, &misses);
        if (pass == 0) assert_int_equal(misses, N);
    }
    assert_true(misses - N <= 2 * N * 2 / 100); /* passes 2 and 3 */
    rank_qcache_destroy(c);
}

static void test_unavailable_path_refused(void **state) {
    (void)state;
    fixture f;
    make_fixture(&f, MDL_LONG_SDIM);
    for (int i = 0; i < RANK_ISA_COUNT; i++) {
        if (rank_isa_available((rank_isa)i)) continue;
        rank_scratch *s = NULL;
        assert_int_equal(rank_scratch_new_isa(&s, f.m, 10, 0, (rank_isa)i), CORE_ERANGE);
        assert_null(s);
    }
    free_fixture(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sdim_every_path),
        cmocka_unit_test(test_attention_every_path),
        cmocka_unit_test(test_qcache_hits_and_evictions),
        cmocka_unit_test(test_qcache_keeps_a_cycle),
        cmocka_unit_test(test_unavailable_path_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
