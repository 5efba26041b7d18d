/* test_enc_simhash.c: SimHash collision statistics and the item-signature cache. */
#include "enc_test_util.h"

#include "core_alloc.h"

/* The signatures of a pair of random vectors at angle theta agree with probability
 * (1 - theta/pi)^tau (Charikar: each hyperplane separates them with probability theta/pi).
 * Here x and y are at angle theta within dimensions [d0, d1) and independent elsewhere; the
 * rate is counted over signatures [s0, s1), which must project those dimensions only. */
static void check_collision_rate(const mdl_model *m, double theta, core_rng *r, int d0, int d1,
                                 int s0, int s1) {
    const int C = (int)m->cfg.C, S = (int)m->cfg.S, tau = (int)m->cfg.tau;
    const int pairs = 3000;
    float *x = malloc(C * sizeof *x), *y = malloc(C * sizeof *y), *z = malloc(C * sizeof *z);
    uint16_t *sx = malloc(S * sizeof *sx), *sy = malloc(S * sizeof *sy);
    long hit = 0, trials = 0;
    for (int p = 0; p < pairs; p++) {
        double nx = 0, dz = 0, nz = 0;
        for (int c = 0; c < C; c++)
            x[c] = (float)core_rng_gauss(r), y[c] = (float)core_rng_gauss(r);
        for (int c = d0; c < d1; c++)
            nx += (double)x[c] * x[c];
        for (int c = d0; c < d1; c++)
            z[c] = (float)core_rng_gauss(r), dz += (double)z[c] * x[c];
        for (int c = d0; c < d1; c++)
            z[c] -= (float)(dz / nx) * x[c], nz += (double)z[c] * z[c];
        nx = sqrt(nx);
        nz = sqrt(nz);
        /* within [d0, d1): y = cos(theta) x/|x| + sin(theta) z/|z|, z orthogonal to x */
        for (int c = d0; c < d1; c++)
            y[c] = (float)(cos(theta) * x[c] / nx + sin(theta) * z[c] / nz);
        enc_simhash_sign(sx, x, m->p.simhash_r, S, tau, C);
        enc_simhash_sign(sy, y, m->p.simhash_r, S, tau, C);
        for (int i = s0; i < s1; i++)
            hit += sx[i] == sy[i];
        trials += s1 - s0;
    }
    double p = pow(1 - theta / M_PI, tau), got = (double)hit / trials;
    /* trials are Bernoulli(p); signatures of one pair share the pair but use disjoint hyperplanes,
     * so they are independent: 5 standard errors plus the float rounding of y */
    double tol = 5 * sqrt(p * (1 - p) / trials) + 1e-3;
    if (fabs(got - p) > tol)
        fail_msg("theta=%.3f tau=%d: collision rate %.4f, expected %.4f +- %.4f", theta, tau, got,
                 p, tol);
    free(x), free(y), free(z), free(sx), free(sy);
}

static void test_collision_rate_matches_theory(void **state) {
    (void)state;
    core_rng r;
    core_rng_seed(&r, 42);
    const double thetas[] = {M_PI / 8, M_PI / 4, M_PI / 2, 2 * M_PI / 3};
    for (uint32_t tau = 1; tau <= 4; tau += 3) {
        /* concat (the paper): every signature sees the whole vector */
        mdl_model *m = enc_test_model_hash(64, 32, tau, 7 + tau, MDL_HASH_CONCAT);
        for (size_t t = 0; t < sizeof thetas / sizeof thetas[0]; t++)
            check_collision_rate(m, thetas[t], &r, 0, 64, 0, 32);
        mdl_model_destroy(m);
        /* fields: signatures 0..15 see the category half [32, 64) alone, 16..31 the item half
         * [0, 32) alone; what happens in the other half does not matter */
        m = enc_test_model_hash(64, 32, tau, 7 + tau, MDL_HASH_FIELDS);
        for (size_t t = 0; t < sizeof thetas / sizeof thetas[0]; t++) {
            check_collision_rate(m, thetas[t], &r, 32, 64, 0, 16);
            check_collision_rate(m, thetas[t], &r, 0, 32, 16, 32);
        }
        mdl_model_destroy(m);
    }
}

/* Field-wise hashing: R is zero off each signature's field, so two behaviors of one category
 * share the bucket of every category signature whatever their items (and two of one item, every
 * item signature whatever their categories), for odd S too (the item field takes the extra one). */
static void test_fields_hash_each_half(void **state) {
    (void)state;
    const uint32_t shapes[2][3] = {{64, 16, 3}, {16, 5, 4}}; /* C, S, tau */
    for (int t = 0; t < 2; t++) {
        uint32_t C = shapes[t][0], S = shapes[t][1], tau = shapes[t][2], half = C / 2;
        uint32_t scat = S / 2; /* category signatures */
        mdl_model *m = enc_test_model_hash(C, S, tau, 11 + t, MDL_HASH_FIELDS);
        for (uint32_t k = 0; k < S * tau; k++) {
            const float *row = m->p.simhash_r + (size_t)k * C;
            int cat = k < scat * tau;
            uint32_t nz_item = 0, nz_cat = 0;
            for (uint32_t d = 0; d < half; d++)
                nz_item += row[d] != 0.f;
            for (uint32_t d = half; d < C; d++)
                nz_cat += row[d] != 0.f;
            assert_int_equal(cat ? nz_item : nz_cat, 0);
            assert_int_equal(cat ? nz_cat : nz_item, half); /* Gaussian on its own field */
        }
        float *x = malloc(C * sizeof *x), *y = malloc(C * sizeof *y);
        uint16_t *sx = malloc(S * sizeof *sx), *sy = malloc(S * sizeof *sy);
        core_rng r;
        core_rng_seed(&r, 5);
        long item_agree = 0, cat_agree = 0;
        for (int p = 0; p < 500; p++) {
            uint64_t cat = core_rng_below(&r, 60), i1 = core_rng_below(&r, 4000), i2 = 4000 + i1;
            mdl_embed(m, i1, cat, x);
            mdl_embed(m, i2, cat, y); /* same category, another item */
            enc_simhash_sign(sx, x, m->p.simhash_r, (int)S, (int)tau, (int)C);
            enc_simhash_sign(sy, y, m->p.simhash_r, (int)S, (int)tau, (int)C);
            for (uint32_t i = 0; i < scat; i++)
                assert_int_equal(sx[i], sy[i]);
            for (uint32_t i = scat; i < S; i++)
                item_agree += sx[i] == sy[i];
            mdl_embed(m, i1, cat + 1, y); /* same item, another category */
            enc_simhash_sign(sy, y, m->p.simhash_r, (int)S, (int)tau, (int)C);
            for (uint32_t i = scat; i < S; i++)
                assert_int_equal(sx[i], sy[i]);
            for (uint32_t i = 0; i < scat; i++)
                cat_agree += sx[i] == sy[i];
        }
        /* the other field still separates: random halves agree about 2^-tau of the time */
        assert_true(item_agree < 500L * (S - scat) / 2);
        assert_true(cat_agree < 500L * scat / 2);
        free(x), free(y), free(sx), free(sy);
        mdl_model_destroy(m);
    }
}

/* A tie at exactly 0 gives bit 0: the zero vector signs as all zeros. */
static void test_tie_gives_zero(void **state) {
    (void)state;
    mdl_model *m = enc_test_model(16, 4, 3, 1);
    float x[16] = {0};
    uint16_t sig[4];
    enc_simhash_sign(sig, x, m->p.simhash_r, 4, 3, 16);
    for (int i = 0; i < 4; i++)
        assert_int_equal(sig[i], 0);
    mdl_model_destroy(m);
}

/* The cache (transposed projection in blocks of 48 sums plus a tail, two ways, prefetch) returns
 * exactly the signatures of enc_simhash_sign on the item's embedding, for m = S*tau below, at and
 * above the block size. */
static void test_cache_equals_direct(void **state) {
    (void)state;
    const uint32_t shapes[4][3] = {
        {64, 16, 3}, {16, 5, 3}, {32, 20, 3}, {8, 64, 2}}; /* C, S, tau */
    for (int t = 0; t < 4; t++) {
        uint32_t C = shapes[t][0], S = shapes[t][1], tau = shapes[t][2];
        mdl_model *m = enc_test_model(C, S, tau, 3 + t);
        enc_sigcache *c;
        assert_int_equal(enc_sigcache_new(&c, m, 64), CORE_OK); /* tiny: many evictions */
        float *x = malloc(C * sizeof *x);
        uint16_t *want = malloc(S * sizeof *want);
        core_rng r;
        core_rng_seed(&r, 9);
        for (int i = 0; i < 5000; i++) {
            uint64_t item = core_rng_below(&r, 3000), cat = core_rng_below(&r, 50);
            mdl_embed(m, item, cat, x);
            enc_simhash_sign(want, x, m->p.simhash_r, (int)S, (int)tau, (int)C);
            const uint16_t *got = enc_sigcache_get(c, item, cat);
            assert_memory_equal(got, want, S * sizeof *want);
            got = enc_sigcache_get_rows(c, mdl_item_row(m, item), mdl_cat_row(m, cat));
            assert_memory_equal(got, want, S * sizeof *want);
        }
        uint64_t hits, misses;
        enc_sigcache_stats(c, &hits, &misses);
        assert_int_equal(hits + misses, 10000);
        assert_true(hits >= 5000); /* the second lookup of each pair hits */
        free(x);
        free(want);
        enc_sigcache_destroy(c);
        mdl_model_destroy(m);
    }
}

static void test_cache_alloc_failures(void **state) {
    (void)state;
    mdl_model *m = enc_test_model(16, 4, 3, 3);
    enc_sigcache *c = NULL;
    TEST_ALLOC_SWEEP(1, enc_sigcache_new(&c, m, 128), assert_null(c), enc_sigcache_destroy(c));
    mdl_model_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collision_rate_matches_theory),
        cmocka_unit_test(test_fields_hash_each_half),
        cmocka_unit_test(test_tie_gives_zero),
        cmocka_unit_test(test_cache_equals_direct),
        cmocka_unit_test(test_cache_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
