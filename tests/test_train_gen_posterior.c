/* test_train_gen_posterior.c: the interest posterior behind `trail gen`'s interests_from_history
 * bound equals a sum over every possible set of interests on a small catalogue, and the
 * known-form learner behind known_form_fitted recovers the truth from labels drawn from it.
 *
 * Both are static, so this file compiles trn_gen.c into itself; the test links
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
                        if (habit)
                            cur = S == L0;
                        else
                            cur = (0.15 * in_interests(L0, T, S) + 0.4 * p) *
                                  pow(1 + 0.85 / (0.15 * p), u->sess_cnt[S]);
                        P[GEN_W(in_interests(L0, T, k), S == k, k == L0 && near)] += past * cur;
                        tot += past * cur;
                    }
                }
    }
    for (int j = 0; j < 6; j++)
        P[j] /= tot;
}

static void test_posterior_matches_enumeration(void **state) {
    (void)state;
    gen_cat c;
    assert_int_equal(cat_build(&c, 320, 7, TRN_GEN_WORLD_SESSIONS), CORE_OK); /* K = 8 categories */
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
            do
                k = (uint32_t)core_rng_below(&r, K);
            while (i > 0 && is_interest(&u, k));
            u.interests[i] = k;
            for (int j = i + 1; j < GEN_INTERESTS; j++)
                u.interests[j] = k;
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
            for (int j = 0; j < 6; j++)
                worst = fmax(worst, fabs(P[j] - w[j]));
        }
    }
    assert_true(worst < 1e-5);
    core_free(u.sess_cnt);
    core_free(u.sess_cats);
    core_free(u.topic_n);
    core_free(u.topic_cats);
    cat_free(&c);
}

/* fit_known_form recovers the coefficients and biases of the mixture it assumes from labels drawn
 * from it: 60,000 impressions of 100 items, random case probabilities and recency terms. */
static void test_known_form_fit_recovers_the_truth(void **state) {
    (void)state;
    enum { N = 60000, I = 100 };
    const double truth[FORM_K] = {-1.5, 1.4, 0.8, 1.1, 0.9};
    sch_event *res = core_calloc(N, sizeof *res);
    gen_obs *obs = core_calloc(N, sizeof *obs);
    double bias[I], fit_th[FORM_K], *fit_b = core_malloc(sizeof(double) * I);
    assert_true(res && obs && fit_b);
    core_rng r;
    core_rng_seed(&r, 5);
    for (int i = 0; i < I; i++)
        bias[i] = B_QUALITY * core_rng_gauss(&r);
    for (int j = 0; j < N; j++) {
        double tot = 0; /* mostly one case, as the posteriors of a long history are */
        int main_case = (int)core_rng_below(&r, 6);
        for (int c = 0; c < 6; c++)
            tot += obs[j].w[c] = (float)core_rng_uniform(&r);
        for (int c = 0; c < 6; c++)
            obs[j].w[c] = (float)(0.2 * obs[j].w[c] / tot + 0.8 * (c == main_case));
        obs[j].recency = (float)core_rng_uniform(&r);
        res[j].item_id = 1 + core_rng_below(&r, I);
        res[j].flags = SCH_F_LABEL;
        double p = form_prob(&obs[j], bias[res[j].item_id - 1], truth, NULL, NULL);
        res[j].label = core_rng_uniform(&r) < p;
    }
    /* form_prob's gradients against central differences */
    for (int j = 0; j < 20; j++) {
        double dp[FORM_K], db, th[FORM_K], e = 1e-6, b0 = bias[res[j].item_id - 1];
        memcpy(th, truth, sizeof th);
        form_prob(&obs[j], b0, th, dp, &db);
        for (int k = 0; k < FORM_K; k++) {
            th[k] = truth[k] + e;
            double hi = form_prob(&obs[j], b0, th, NULL, NULL);
            th[k] = truth[k] - e;
            double lo = form_prob(&obs[j], b0, th, NULL, NULL);
            th[k] = truth[k];
            assert_true(fabs((hi - lo) / (2 * e) - dp[k]) < 1e-6);
        }
        double hi = form_prob(&obs[j], b0 + e, th, NULL, NULL);
        double lo = form_prob(&obs[j], b0 - e, th, NULL, NULL);
        assert_true(fabs((hi - lo) / (2 * e) - db) < 1e-6);
    }
    assert_int_equal(fit_known_form(fit_th, fit_b, res, obs, N, N, I), CORE_OK);
    for (int k = 0; k < FORM_K; k++)
        if (fabs(fit_th[k] - truth[k]) > 0.1)
            fail_msg("theta[%d] %.3f, truth %.3f", k, fit_th[k], truth[k]);
    double err = 0;
    for (int i = 0; i < I; i++)
        err += (fit_b[i] - bias[i]) * (fit_b[i] - bias[i]);
    assert_true(sqrt(err / I) < 0.2); /* the biases' spread is 0.4 */
    core_free(res);
    core_free(obs);
    core_free(fit_b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_posterior_matches_enumeration),
        cmocka_unit_test(test_known_form_fit_recovers_the_truth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
