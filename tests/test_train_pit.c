/* test_train_pit.c: point-in-time features. The trainer rebuilds a sample's features from the slice
 * of the user's behaviors before the sample; that slice must equal what enc_ustate (the serving
 * update rule, with window eviction) holds after applying exactly those behaviors: the same
 * window and recent sequence, and bucket sums that match brute force over the slice. And rank_net
 * must score the same from stored buckets (serving) as from the window (training). */
#include "test_common.h"
#include "test_model.h"

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
    test_model_config(&cfg, 8);
    cfg.item_rows = 1024, cfg.n_recent = NREC, cfg.h1 = 8, cfg.h2 = 4, cfg.tin_buckets = 12;
    cfg.seed = 1;
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

/* Walk each user's samples in time order, applying the user's behaviors to us as time passes, and
 * call fn with the state holding exactly the behaviors before the sample. */
typedef void walk_fn(fx *f, enc_ustate *us, const trn_sample *s, void *ctx);

static size_t walk(fx *f, enc_ustate *us, enc_sigcache *sc, walk_fn *fn, void *ctx) {
    const trn_data *d = f->d;
    size_t visited = 0;
    for (uint32_t u = 0; u < d->n_users; u++) {
        enc_ustate_reset(us);
        uint32_t applied = 0;
        const sch_behavior *all = d->beh + d->beh_start[u];
        for (size_t i = 0; i < d->n_samples; i++) {
            const trn_sample *s = &d->samples[i];
            if (s->user != u) continue;
            while (applied < s->hist)
                enc_ustate_apply(us, sc, &all[applied++]);
            fn(f, us, s, ctx);
            visited++;
        }
    }
    return visited;
}

typedef struct slice_ctx {
    float *ref; /* brute-force bucket sums */
    uint32_t *cnt;
    size_t full; /* samples whose window was full (eviction happened) */
} slice_ctx;

static void check_slice(fx *f, enc_ustate *us, const trn_sample *s, void *arg) {
    slice_ctx *x = arg;
    const mdl_config *cfg = &f->m->cfg;
    uint32_t nb = 1u << cfg->tau, C = cfg->C, n, nr;
    sch_behavior win[W];
    float e[64];
    uint16_t sig[64];
    const sch_behavior *h = trn_data_history(f->d, s, W, &n);
    assert_int_equal(enc_ustate_window(us, win, W), n);
    for (uint32_t k = 0; k < n; k++)
        assert_true(same_behavior(&h[k], &win[k]));
    enc_user_view v;
    enc_ustate_view(us, NREC, &v);
    const sch_behavior *r = trn_data_history(f->d, s, NREC, &nr);
    assert_int_equal(v.recent_len, nr);
    for (uint32_t k = 0; k < nr; k++)
        assert_true(same_behavior(&r[k], &v.recent[k]));
    /* bucket sums: brute force over the slice */
    memset(x->ref, 0, (size_t)cfg->S * nb * C * sizeof(float));
    memset(x->cnt, 0, (size_t)cfg->S * nb * sizeof(uint32_t));
    for (uint32_t k = 0; k < n; k++) {
        mdl_embed(f->m, h[k].item_id, h[k].category_id, e);
        enc_simhash_sign(sig, e, f->m->p.simhash_r, (int)cfg->S, (int)cfg->tau, (int)C);
        for (uint32_t si = 0; si < cfg->S; si++) {
            x->cnt[si * nb + sig[si]]++;
            for (uint32_t c = 0; c < C; c++)
                x->ref[((size_t)si * nb + sig[si]) * C + c] += e[c];
        }
    }
    assert_int_equal(v.window_len, n);
    for (size_t k = 0; k < (size_t)cfg->S * nb; k++)
        assert_int_equal(v.bucket_cnt[k], x->cnt[k]);
    for (size_t k = 0; k < (size_t)cfg->S * nb * C; k++)
        assert_true(fabsf(v.bucket_sum[k] - x->ref[k]) <= 1e-4f * (1.0f + fabsf(x->ref[k])));
    x->full += n == W;
}

static void test_slices_equal_enc_ustate(void **state) {
    fx *f = *state;
    const mdl_config *cfg = &f->m->cfg;
    enc_ustate *us;
    enc_sigcache *sc;
    uint32_t nb = 1u << cfg->tau;
    slice_ctx x = {calloc((size_t)cfg->S * nb * cfg->C, sizeof(float)),
                   calloc((size_t)cfg->S * nb, sizeof(uint32_t)), 0};
    assert_int_equal(enc_ustate_new(&us, f->m, W), CORE_OK);
    assert_int_equal(enc_sigcache_new(&sc, f->m, 1024), CORE_OK);
    assert_true(walk(f, us, sc, check_slice, &x) > 500);
    assert_true(x.full > 100); /* the window did evict */
    enc_sigcache_destroy(sc);
    enc_ustate_destroy(us);
    free(x.ref);
    free(x.cnt);
}

static void check_scores(fx *f, enc_ustate *us, const trn_sample *s, void *arg) {
    rank_net *net = arg;
    uint32_t n, nr;
    rank_history h;
    memset(&h, 0, sizeof h);
    h.window = trn_data_history(f->d, s, W, &n);
    h.T = h.window_len = n;
    h.recent = trn_data_history(f->d, s, NREC, &nr);
    h.N = nr;
    h.now_ts = s->ts;
    rank_batch bt = {
        .users = &h, .U = 1, .item_id = &s->item_id, .category_id = &s->category_id, .B = 1};
    float p_train, p_serve;
    assert_int_equal(rank_net_forward(net, f->m, &bt, NULL, &p_train), CORE_OK);
    enc_user_view v;
    enc_ustate_view(us, NREC, &v);
    rank_history hs = h;
    hs.bucket_sum = v.bucket_sum;
    hs.bucket_cnt = v.bucket_cnt;
    hs.window_len = v.window_len;
    hs.recent = v.recent; /* the window stays: the cross statistics count in it */
    hs.N = v.recent_len;
    bt.users = &hs;
    assert_int_equal(rank_net_forward(net, f->m, &bt, NULL, &p_serve), CORE_OK);
    assert_true(fabsf(p_train - p_serve) <= 1e-4f);
}

/* The serving path (buckets from enc_ustate) and the training path (buckets built from the window
 * slice) give the same probabilities for SDIM and avgpool. */
static void test_stored_buckets_score_like_training(void **state) {
    fx *f = *state;
    const uint32_t kinds[] = {MDL_LONG_SDIM, MDL_LONG_AVGPOOL};
    for (int kk = 0; kk < 2; kk++) {
        f->m->cfg.long_kind = kinds[kk];
        f->m->cfg.short_kind = MDL_SHORT_SELFATTN;
        f->m->cfg.temporal_kind = MDL_TEMPORAL_TIN;
        rank_net *net;
        enc_ustate *us;
        enc_sigcache *sc;
        char err[256];
        rank_net_shape shape = {1, 1, W, 0, 0, 0};
        assert_int_equal(rank_net_new(&net, &f->m->cfg, &shape, err, sizeof err), CORE_OK);
        assert_int_equal(enc_ustate_new(&us, f->m, W), CORE_OK);
        assert_int_equal(enc_sigcache_new(&sc, f->m, 1024), CORE_OK);
        assert_true(walk(f, us, sc, check_scores, net) > 500);
        enc_sigcache_destroy(sc);
        enc_ustate_destroy(us);
        rank_net_destroy(net);
    }
}

/* Pretraining (trail train --pretrain) re-splits the file's next-behavior samples at the
 * impressions' valid and test start times: every pretraining train sample is strictly before the
 * first valid impression, every valid one before the first test impression, checked against a
 * scan; the split times of an empty split are INT64_MAX, and a test time before the valid time
 * leaves the valid split empty. */
static void test_split_at_times(void **state) {
    fx *f = *state;
    trn_gen_conf gc;
    trn_data_conf dc;
    sch_event *ev;
    size_t n;
    trn_data *p;
    char err[256];
    trn_gen_conf_default(&gc);
    gc.users = 12, gc.items = 600, gc.events = 6000, gc.days = 10, gc.seed = 5; /* setup's stream */
    assert_int_equal(trn_gen_events(&gc, &ev, &n, NULL, err, sizeof err), CORE_OK);
    trn_data_conf_default(&dc);
    dc.protocol = TRN_PROTO_NEXT;
    dc.negatives = 1;
    assert_int_equal(trn_data_build(&p, ev, n, &dc, err, sizeof err), CORE_OK);
    core_free(ev);
    assert_int_equal(f->d->protocol, TRN_PROTO_IMPRESSIONS);
    int64_t tv = trn_data_split_ts(f->d, 1), tt = trn_data_split_ts(f->d, 2);
    assert_true(tv == f->d->samples[f->d->split[0]].ts && tt == f->d->samples[f->d->split[1]].ts);
    assert_true(tv < tt);
    trn_data_split_at(p, tv, tt);
    size_t want0 = 0, want1 = 0;
    for (size_t i = 0; i < p->n_samples; i++) {
        want0 += p->samples[i].ts < tv;
        want1 += p->samples[i].ts < tt;
    }
    assert_true(want0 > 0 && want1 > want0 && want1 < p->n_samples);
    assert_int_equal(p->split[0], want0);
    assert_int_equal(p->split[1], want1);
    assert_true(p->samples[p->split[0] - 1].ts < tv && p->samples[p->split[0]].ts >= tv);
    assert_true(trn_data_split_ts(p, 1) >= tv && trn_data_split_ts(p, 2) >= tt);
    /* at a sample's own time: that sample (and any tied with it) is not train */
    int64_t tm = p->samples[p->n_samples / 2].ts;
    trn_data_split_at(p, tm, tm);
    size_t wantm = 0;
    for (size_t i = 0; i < p->n_samples; i++)
        wantm += p->samples[i].ts < tm;
    assert_int_equal(p->split[0], wantm);
    assert_int_equal(p->split[1], wantm);
    assert_true(p->samples[wantm].ts == tm);
    trn_data_split_at(p, tt, tv); /* test before valid: valid is empty */
    assert_int_equal(p->split[0], want1);
    assert_int_equal(p->split[1], want1);
    trn_data_split_at(p, INT64_MAX, INT64_MAX); /* everything trains */
    assert_int_equal(p->split[0], p->n_samples);
    assert_true(trn_data_split_ts(p, 1) == INT64_MAX && trn_data_split_ts(p, 2) == INT64_MAX);
    trn_data_destroy(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slices_equal_enc_ustate),
        cmocka_unit_test(test_stored_buckets_score_like_training),
        cmocka_unit_test(test_split_at_times),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
