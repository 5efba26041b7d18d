/* test_enc_state.c: the update rule: bucket sums against brute force over long streams with
 * eviction, window order, apply_many == apply, views, allocation failures. */
#include "enc_test_util.h"

#include "core_alloc.h"
#include "enc_state_int.h"

/* Stream n behaviors through a state with window L; at checkpoints compare the window with the
 * last L behaviors streamed and the sums with a brute-force recomputation. */
static void run_stream(uint32_t C, uint32_t S, uint32_t tau, uint32_t L, uint32_t n,
                       uint32_t every) {
    mdl_model *m = enc_test_model(C, S, tau, 5);
    enc_ustate *s;
    enc_sigcache *c;
    assert_int_equal(enc_ustate_new(&s, m, L), CORE_OK);
    assert_int_equal(enc_sigcache_new(&c, m, 1024), CORE_OK);
    uint32_t NB = 1u << tau;
    sch_behavior *all = malloc((size_t)n * sizeof *all), *win = malloc((size_t)L * sizeof *win);
    double *bsum = malloc((size_t)S * NB * C * sizeof *bsum);
    uint32_t *bcnt = malloc((size_t)S * NB * sizeof *bcnt);
    core_rng r;
    core_rng_seed(&r, L * 31 + n);
    double worst = 0;
    for (uint32_t j = 0; j < n; j++) {
        all[j] = enc_test_behavior(&r, 1000 + j);
        enc_ustate_apply(s, c, &all[j]);
        if ((j + 1) % every && j + 1 != n) continue;
        uint32_t wl = j + 1 < L ? j + 1 : L;
        assert_int_equal(enc_ustate_window(s, win, L), wl);
        for (uint32_t k = 0; k < wl; k++) { /* arrival order, oldest first */
            const sch_behavior *want = &all[j + 1 - wl + k];
            assert_int_equal(win[k].item_id, want->item_id);
            assert_int_equal(win[k].ts, want->ts);
            assert_int_equal(win[k].action, want->action);
        }
        enc_user_view v;
        enc_ustate_view(s, 16, &v);
        assert_int_equal(v.window_len, wl);
        assert_int_equal(v.n_events, j + 1);
        assert_int_equal(v.recent_len, wl < 16 ? wl : 16);
        assert_int_equal(v.recent[v.recent_len - 1].item_id, all[j].item_id);
        enc_test_brute(m, win, wl, bsum, bcnt);
        double e = enc_test_relerr(m, v.bucket_sum, v.bucket_cnt, bsum, bcnt);
        if (e > worst) worst = e;
    }
    if (worst > 1e-4) fail_msg("L=%u: bucket sums drift %.3g relative from brute force", L, worst);
    print_message("L=%u n=%u: worst relative error %.3g\n", L, n, worst);
    free(all), free(win), free(bsum), free(bcnt);
    enc_sigcache_destroy(c);
    enc_ustate_destroy(s);
    mdl_model_destroy(m);
}

static void test_sums_equal_brute_force_with_eviction(void **state) {
    (void)state;
    run_stream(16, 4, 3, 500, 30000, 997);  /* 60 window turnovers, window not chunk-aligned */
    run_stream(32, 8, 2, 256, 12000, 1009); /* chunk-aligned window */
    run_stream(8, 2, 1, 1, 2000, 7);        /* a window of one */
}

/* Long streams at the real shape (C=64, S=16, tau=3) and window 10,000. */
static void test_sums_brute_force_full_window(void **state) {
    (void)state;
    run_stream(64, 16, 3, 10000, 60000, 14999);
}

/* apply_many (prefetching) gives the same bytes as applying one by one. */
static void test_apply_many_equals_apply(void **state) {
    (void)state;
    mdl_model *m = enc_test_model(16, 4, 3, 6);
    enc_ustate *a, *b;
    enc_sigcache *c;
    assert_int_equal(enc_ustate_new(&a, m, 300), CORE_OK);
    assert_int_equal(enc_ustate_new(&b, m, 300), CORE_OK);
    assert_int_equal(enc_sigcache_new(&c, m, 256), CORE_OK);
    core_rng r;
    core_rng_seed(&r, 3);
    sch_behavior bs[1000];
    for (int round = 0; round < 5; round++) {
        size_t n = 1 + core_rng_below(&r, 999);
        for (size_t i = 0; i < n; i++)
            bs[i] = enc_test_behavior(&r, round * 1000 + (int64_t)i);
        for (size_t i = 0; i < n; i++)
            enc_ustate_apply(a, c, &bs[i]);
        assert_int_equal(enc_ustate_apply_many(b, c, bs, n), CORE_OK);
        enc_user_view va, vb;
        enc_ustate_view(a, 8, &va);
        enc_ustate_view(b, 8, &vb);
        assert_memory_equal(va.bucket_sum, vb.bucket_sum, 4 * 8 * 16 * sizeof(float));
        assert_memory_equal(va.bucket_cnt, vb.bucket_cnt, 4 * 8 * sizeof(uint32_t));
        assert_int_equal(va.n_events, vb.n_events);
    }
    enc_ustate_reset(a);
    enc_user_view v;
    enc_ustate_view(a, 8, &v);
    assert_int_equal(v.n_events, 0);
    assert_int_equal(v.window_len, 0);
    assert_int_equal(v.recent_len, 0);
    enc_sigcache_destroy(c);
    enc_ustate_destroy(a);
    enc_ustate_destroy(b);
    mdl_model_destroy(m);
}

static void test_ustate_alloc_failures(void **state) {
    (void)state;
    mdl_model *m = enc_test_model(16, 4, 3, 3);
    enc_ustate *s = NULL;
    TEST_ALLOC_SWEEP(0, enc_ustate_new(&s, m, 1000), assert_null(s), enc_ustate_destroy(s));
    mdl_model_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sums_equal_brute_force_with_eviction),
        cmocka_unit_test(test_sums_brute_force_full_window),
        cmocka_unit_test(test_apply_many_equals_apply),
        cmocka_unit_test(test_ustate_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
