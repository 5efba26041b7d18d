/* test_train_pit.c: point-in-time features. The trainer rebuilds a sample's features from the slice
 * of the user's behaviors before the sample; that slice must equal what enc_ustate (the serving
 * update rule, with window eviction) holds after applying exactly those behaviors: the same
 * window and recent sequence, and bucket sums that match brute force over the slice. And rank_net
 * must score the same from stored buckets (serving) as from the window (training). */
#include "test_common.h"

#include "core_alloc.h"
#include "core_err.h"
#include "enc_simhash.h"
#include "enc_state.h"
#include "mdl.h"
#include "rank_net.h"
#include "trn_gen.h"
#include "trn_samples.h"

#include <math.h>

#define W 24
#define NREC 8

typedef struct fx {
    mdl_model *m;
    trn_data *d;
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    trn_gen_conf gc;
    trn_data_conf dc;
    mdl_config cfg;
    sch_event *ev;
    size_t n;
    char err[256];
    trn_gen_conf_default(&gc);
    gc.users = 12, gc.items = 600, gc.events = 6000, gc.days = 10, gc.seed = 5;
    if (trn_gen_events(&gc, &ev, &n, NULL, err, sizeof err)) return -1;
    trn_data_conf_default(&dc);
    if (trn_data_build(&f->d, ev, n, &dc, err, sizeof err)) return -1;
    core_free(ev);
    mdl_config_default(&cfg);
    cfg.C = 8, cfg.S = 4, cfg.tau = 2, cfg.item_rows = 1024, cfg.cat_rows = 64, cfg.n_recent = NREC;
    cfg.ffn_dim = 8, cfg.h1 = 8, cfg.h2 = 4, cfg.tin_buckets = 12;
    if (mdl_model_init(&f->m, &cfg, err, sizeof err)) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    trn_data_destroy(f->d);
    mdl_model_destroy(f->m);
    free(f);
    return 0;
}

static int same_behavior(const sch_behavior *a, const sch_behavior *b) {
    return a->item_id == b->item_id && a->category_id == b->category_id && a->ts == b->ts &&
           a->action == b->action;
}

/* Walk each user's samples in time order, applying behaviors to an enc_ustate as time passes. */
static void test_slices_equal_enc_ustate(void **state) {
    fx *f = *state;
    const trn_data *d = f->d;
    const mdl_config *cfg = &f->m->cfg;
    enc_ustate *us;
    enc_sigcache *sc;
    sch_behavior win[W];
    uint32_t nb = 1u << cfg->tau, C = cfg->C;
    float *ref = calloc((size_t)cfg->S * nb * C, sizeof(float));
    uint32_t *cnt = calloc((size_t)cfg->S * nb, sizeof(uint32_t));
    float x[64];
    uint16_t sig[64];
    assert_int_equal(enc_ustate_new(&us, f->m, W), CORE_OK);
    assert_int_equal(enc_sigcache_new(&sc, f->m, 1024), CORE_OK);
    size_t checked = 0, full = 0;
    for (uint32_t u = 0; u < d->n_users; u++) {
        enc_ustate_reset(us);
        uint32_t applied = 0;
        const sch_behavior *all = d->beh + d->beh_start[u];
        for (size_t i = 0; i < d->n_samples; i++) {
            const trn_sample *s = &d->samples[i];
            if (s->user != u) continue;
            while (applied < s->hist) enc_ustate_apply(us, sc, &all[applied++]);
            uint32_t n, nw;
            const sch_behavior *h = trn_data_history(d, s, W, &n);
            nw = enc_ustate_window(us, win, W);
            assert_int_equal(n, nw);
            for (uint32_t k = 0; k < n; k++) assert_true(same_behavior(&h[k], &win[k]));
            enc_user_view v;
            enc_ustate_view(us, NREC, &v);
            uint32_t nr;
            const sch_behavior *r = trn_data_history(d, s, NREC, &nr);
            assert_int_equal(v.recent_len, nr);
            for (uint32_t k = 0; k < nr; k++) assert_true(same_behavior(&r[k], &v.recent[k]));
            /* bucket sums: brute force over the slice */
            memset(ref, 0, (size_t)cfg->S * nb * C * sizeof(float));
            memset(cnt, 0, (size_t)cfg->S * nb * sizeof(uint32_t));
            for (uint32_t k = 0; k < n; k++) {
                mdl_embed(f->m, h[k].item_id, h[k].category_id, x);
                enc_simhash_sign(sig, x, f->m->p.simhash_r, (int)cfg->S, (int)cfg->tau, (int)C);
                for (uint32_t si = 0; si < cfg->S; si++) {
                    cnt[si * nb + sig[si]]++;
                    for (uint32_t c = 0; c < C; c++) ref[((size_t)si * nb + sig[si]) * C + c] += x[c];
                }
            }
            assert_int_equal(v.window_len, n);
            for (size_t k = 0; k < (size_t)cfg->S * nb; k++) assert_int_equal(v.bucket_cnt[k], cnt[k]);
            for (size_t k = 0; k < (size_t)cfg->S * nb * C; k++)
                assert_true(fabsf(v.bucket_sum[k] - ref[k]) <= 1e-4f * (1.0f + fabsf(ref[k])));
            checked++;
            full += n == W;
        }
    }
    assert_true(checked > 500);
    assert_true(full > 100); /* the window did evict */
    enc_sigcache_destroy(sc);
    enc_ustate_destroy(us);
    free(ref);
    free(cnt);
}

/* The serving path (buckets from enc_ustate) and the training path (buckets built from the window
 * slice) give the same probabilities for SDIM and avgpool. */
static void test_stored_buckets_score_like_training(void **state) {
    fx *f = *state;
    const trn_data *d = f->d;
    const uint32_t kinds[] = {MDL_LONG_SDIM, MDL_LONG_AVGPOOL};
    for (int kk = 0; kk < 2; kk++) {
        f->m->cfg.long_kind = kinds[kk];
        f->m->cfg.short_kind = MDL_SHORT_SELFATTN;
        f->m->cfg.temporal_kind = MDL_TEMPORAL_TIN;
        rank_net *net;
        enc_ustate *us;
        enc_sigcache *sc;
        char err[256];
        rank_net_shape shape = {1, 1, W, 0, 0};
        assert_int_equal(rank_net_new(&net, &f->m->cfg, &shape, err, sizeof err), CORE_OK);
        assert_int_equal(enc_ustate_new(&us, f->m, W), CORE_OK);
        assert_int_equal(enc_sigcache_new(&sc, f->m, 1024), CORE_OK);
        size_t compared = 0;
        for (uint32_t u = 0; u < d->n_users; u++) {
            enc_ustate_reset(us);
            uint32_t applied = 0;
            const sch_behavior *all = d->beh + d->beh_start[u];
            for (size_t i = 0; i < d->n_samples; i++) {
                const trn_sample *s = &d->samples[i];
                if (s->user != u) continue;
                while (applied < s->hist) enc_ustate_apply(us, sc, &all[applied++]);
                uint32_t n, nr;
                rank_history h;
                memset(&h, 0, sizeof h);
                h.window = trn_data_history(d, s, W, &n);
                h.T = h.window_len = n;
                h.recent = trn_data_history(d, s, NREC, &nr);
                h.N = nr;
                h.now_ts = s->ts;
                rank_batch bt = {&h, 1, &s->item_id, &s->category_id, NULL, 1, NULL};
                float p_train, p_serve;
                assert_int_equal(rank_net_forward(net, f->m, &bt, NULL, &p_train), CORE_OK);
                enc_user_view v;
                enc_ustate_view(us, NREC, &v);
                rank_history hs = h;
                hs.bucket_sum = v.bucket_sum;
                hs.bucket_cnt = v.bucket_cnt;
                hs.window_len = v.window_len;
                hs.window = NULL;
                hs.T = 0;
                hs.recent = v.recent;
                hs.N = v.recent_len;
                bt.users = &hs;
                assert_int_equal(rank_net_forward(net, f->m, &bt, NULL, &p_serve), CORE_OK);
                assert_true(fabsf(p_train - p_serve) <= 1e-4f);
                compared++;
            }
        }
        assert_true(compared > 500);
        enc_sigcache_destroy(sc);
        enc_ustate_destroy(us);
        rank_net_destroy(net);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slices_equal_enc_ustate),
        cmocka_unit_test(test_stored_buckets_score_like_training),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
