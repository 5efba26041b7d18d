/* test_train_gen_posterior.c: the interest posterior behind `trail gen`'s interests_from_history
 * bound equals a sum over every possible set of interests on a small catalogue.
 *
 * gen_interest_posterior is static, so this file compiles trn_gen.c into itself; the test links
 * trail_train only for what trn_gen.c calls (metrics, schemas, core). */
#include "test_common.h"

#include "../train/trn_gen.c"

static int in_interests(uint32_t L0, const uint32_t *T, uint32_t s) {
    return s == L0 || T[0] == s || T[1] == s || T[2] == s;
}

/* P(interest, session, habit terms) for candidate k by enumerating (interests[0], the other
 * three) under the uniform prior, weighting each by the likelihood of the past sessions' topics,
 * of the known habit topic, and of the current session's topic and behaviors so far. */
static void enumerate(const gen_cat *c, const gen_user *u, int habit, uint32_t k, int near,
                      double P[6]) {
    uint32_t K = c->K;
    double W = c->catpop_cdf[K - 1], tot = 0;
    memset(P, 0, 6 * sizeof(double));
    for (uint32_t L0 = 0; L0 < K; L0++) {
        if ((habit || u->habit_seen) && L0 != u->interests[0]) continue;
        uint32_t T[3];
        for (T[0] = 0; T[0] < K; T[0]++)
            for (T[1] = T[0] + 1; T[1] < K; T[1]++)
                for (T[2] = T[1] + 1; T[2] < K; T[2]++) {
                    if (T[0] == L0 || T[1] == L0 || T[2] == L0) continue;
                    double past = 1;
                    for (uint32_t s = 0; s < K; s++)
                        past *= pow(0.15 * in_interests(L0, T, s) + 0.4 * cat_weight(c, s) / W,
                                    u->topic_n[s]);
                    for (uint32_t S = 0; S < K; S++) {
                        double p = cat_weight(c, S) / W, cur;
                        if (habit) cur = S == L0;
                        else
                            cur = (0.15 * in_interests(L0, T, S) + 0.4 * p) *
                                  pow(1 + 0.85 / (0.15 * p), u->sess_cnt[S]);
                        P[GEN_W(in_interests(L0, T, k), S == k, k == L0 && near)] += past * cur;
                        tot += past * cur;
                    }
                }
    }
    for (int j = 0; j < 6; j++) P[j] /= tot;
}

static void test_posterior_matches_enumeration(void **state) {
    (void)state;
    gen_cat c;
    assert_int_equal(cat_build(&c, 320, 7), CORE_OK); /* K = 8 categories */
    uint32_t K = c.K;
    assert_int_equal(K, 8);
    gen_user u;
    memset(&u, 0, sizeof u);
    u.sess_cnt = core_calloc(K, sizeof(uint32_t));
    u.sess_cats = core_calloc(K, sizeof(uint32_t));
    u.topic_n = core_calloc(K, sizeof(uint32_t));
    u.topic_cats = core_calloc(K, sizeof(uint32_t));
    assert_true(u.sess_cnt && u.sess_cats && u.topic_n && u.topic_cats);
    core_rng r;
    core_rng_seed(&r, 42);
    double worst = 0;
    for (int trial = 0; trial < 120; trial++) {
        memset(u.sess_cnt, 0, K * sizeof(uint32_t));
        memset(u.topic_n, 0, K * sizeof(uint32_t));
        u.n_sess_cats = u.n_topic_cats = 0;
        for (int i = 0; i < GEN_INTERESTS; i++) {
            uint32_t k;
            do k = (uint32_t)core_rng_below(&r, K);
            while (i > 0 && is_interest(&u, k));
            u.interests[i] = k;
            for (int j = i + 1; j < GEN_INTERESTS; j++) u.interests[j] = k;
        }
        /* past sessions' topics, mostly interests; behaviors of the current session so far */
        for (int j = (int)core_rng_below(&r, 7); j > 0; j--) {
            uint32_t t = core_rng_below(&r, 3) ? u.interests[core_rng_below(&r, 4)]
                                               : (uint32_t)core_rng_below(&r, K);
            if (!u.topic_n[t]++) u.topic_cats[u.n_topic_cats++] = t;
        }
        for (int j = (int)core_rng_below(&r, 4); j > 0; j--) {
            uint32_t t = (uint32_t)core_rng_below(&r, K);
            if (!u.sess_cnt[t]++) u.sess_cats[u.n_sess_cats++] = t;
        }
        u.habit_seen = core_rng_below(&r, 3) == 0;
        int habit = core_rng_below(&r, 4) == 0, near = (int)core_rng_below(&r, 2);
        for (uint32_t k = 0; k < K; k++) {
            float w[6];
            double P[6];
            gen_interest_posterior(&c, &u, habit, k, near, w);
            enumerate(&c, &u, habit, k, near, P);
            for (int j = 0; j < 6; j++) worst = fmax(worst, fabs(P[j] - w[j]));
        }
    }
    assert_true(worst < 1e-5);
    core_free(u.sess_cnt);
    core_free(u.sess_cats);
    core_free(u.topic_n);
    core_free(u.topic_cats);
    cat_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_posterior_matches_enumeration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
