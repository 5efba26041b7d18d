/* test_train_parity.c: train/serve parity. Encode a stream into an LMDB store with the initial
 * model, train, reencode the store with the trained model, then score every user's candidates
 * through the serving path (enc_reader + rank_score) and through the training-time forward
 * (trn_eval on the same point-in-time samples): at most 1e-4 apart, for every variant. */
#include "test_common.h"
#include "test_model.h"

#include "core_alloc.h"
#include "core_err.h"
#include "enc_store.h"
#include "mdl.h"
#include "rank_score.h"
#include "trn_gen.h"
#include "trn_loop.h"
#include "trn_samples.h"

#include <math.h>

#define W 32
#define NREC 8
#define CAND 6

static void parity_for(const char *variant, const sch_event *ev, size_t n, trn_data *d) {
    mdl_config cfg;
    mdl_model *m;
    enc_store *st;
    enc_store_conf sc;
    enc_batch *b;
    char err[512], dir[256];
    test_model_config(&cfg, 16);
    cfg.n_recent = NREC, cfg.h1 = 16, cfg.h2 = 8, cfg.seed = 4;
    m = test_model_new(&cfg, variant);

    /* the store, encoded with the initial model */
    assert_non_null(test_mkdtemp(dir, sizeof dir));
    enc_store_conf_default(&sc);
    sc.path = dir;
    sc.window = W;
    sc.recent = 16;
    sc.durable = 0;
    sc.map_size = 64u << 20;
    assert_int_equal(enc_store_open(&st, &sc, err, sizeof err), CORE_OK);
    assert_int_equal(enc_store_bind_model(st, m, err, sizeof err), CORE_OK);
    assert_int_equal(enc_batch_begin(st, &b), CORE_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(enc_batch_apply(b, &ev[i]), CORE_OK);
    assert_int_equal(enc_batch_commit(b), CORE_OK);
    uint64_t v0 = enc_store_encoding_version(st);

    /* train, then reencode with the trained model */
    trn_conf tc;
    trn_report rep;
    trn_conf_default(&tc);
    tc.epochs = 1, tc.batch = 64, tc.window = W, tc.adam.lr = 3e-3f;
    assert_int_equal(trn_train(m, d, &tc, &rep, err, sizeof err), CORE_OK);
    uint64_t users;
    assert_int_equal(enc_store_reencode(st, m, &users, err, sizeof err), CORE_OK);
    assert_int_equal(users, d->n_users);
    assert_int_not_equal(enc_store_encoding_version(st), v0);
    assert_int_equal(enc_store_encoding_version(st), m->encoding_version);

    /* probes: each user at a time after all of their behaviors, CAND candidates each */
    size_t np = (size_t)d->n_users * CAND;
    trn_sample *probe = calloc(np, sizeof *probe);
    for (uint32_t u = 0; u < d->n_users; u++) {
        size_t len = d->beh_start[u + 1] - d->beh_start[u];
        int64_t last = len ? d->beh[d->beh_start[u + 1] - 1].ts : 1700000000;
        for (int c = 0; c < CAND; c++) {
            trn_sample *s = &probe[(size_t)u * CAND + c];
            const trn_sample *src = &d->samples[(u * 7919u + (uint32_t)c * 104729u) % d->n_samples];
            s->user = u;
            s->hist = (uint32_t)len;
            s->ts = last + 600; /* one request per user, after the user's last behavior */
            s->item_id = src->item_id;
            s->category_id = src->category_id;
        }
    }
    trn_sample *saved = d->samples;
    size_t saved_n = d->n_samples;
    d->samples = probe;
    d->n_samples = np;
    float *p_train = malloc(np * sizeof(float));
    assert_int_equal(trn_eval(m, d, 0, np, W, 2, p_train, NULL, err, sizeof err), CORE_OK);

    /* serving path */
    rank_scratch *scr;
    enc_reader *rd;
    sch_behavior win[W];
    assert_int_equal(rank_scratch_new(&scr, m, CAND, W), CORE_OK);
    assert_int_equal(enc_reader_new(st, &rd), CORE_OK);
    double worst = 0;
    for (uint32_t u = 0; u < d->n_users; u++) {
        uint64_t items[CAND], cats[CAND];
        float p_serve[CAND];
        for (int c = 0; c < CAND; c++) {
            items[c] = probe[(size_t)u * CAND + c].item_id;
            cats[c] = probe[(size_t)u * CAND + c].category_id;
        }
        assert_int_equal(enc_reader_begin(rd), CORE_OK);
        enc_user_view v;
        rank_history h;
        memset(&h, 0, sizeof h);
        int rc = enc_reader_user(rd, d->user_id[u], &v);
        if (rc == CORE_OK) {
            uint32_t nw = 0;
            assert_int_equal(enc_reader_window(rd, d->user_id[u], win, W, &nw), CORE_OK);
            assert_int_equal(v.encoding_version, m->encoding_version);
            h.bucket_sum = v.bucket_sum;
            h.bucket_cnt = v.bucket_cnt;
            h.window_len = v.window_len;
            h.window = win;
            h.T = nw;
            h.recent = v.recent;
            h.N = v.recent_len;
        } else {
            assert_int_equal(rc, CORE_ENOTFOUND); /* a user with impressions only */
        }
        h.now_ts = probe[(size_t)u * CAND].ts;
        assert_int_equal(rank_score(p_serve, scr, m, &h, items, cats, CAND), CORE_OK);
        enc_reader_end(rd);
        for (int c = 0; c < CAND; c++) {
            double diff = fabs((double)p_serve[c] - (double)p_train[(size_t)u * CAND + c]);
            if (diff > worst) worst = diff;
        }
    }
    fprintf(stderr, "%s: %zu probes, largest |serve - train| = %.3g\n", variant, np, worst);
    assert_true(worst <= 1e-4);

    d->samples = saved;
    d->n_samples = saved_n;
    free(probe);
    free(p_train);
    enc_reader_destroy(rd);
    rank_scratch_destroy(scr);
    enc_store_close(st);
    mdl_model_destroy(m);
    test_rmtree(dir);
}

static void test_parity_every_variant(void **state) {
    (void)state;
    trn_gen_conf gc;
    trn_data_conf dc;
    sch_event *ev;
    size_t n;
    trn_data *d;
    char err[256];
    trn_gen_conf_default(&gc);
    gc.users = 24, gc.items = 600, gc.events = 12000, gc.days = 10, gc.seed = 12;
    assert_int_equal(trn_gen_events(&gc, &ev, &n, NULL, err, sizeof err), CORE_OK);
    trn_data_conf_default(&dc);
    assert_int_equal(trn_data_build(&d, ev, n, &dc, err, sizeof err), CORE_OK);
    const char *variants[] = {"full",    "sdim",      "din-long",
                              "avgpool", "din-short", "long=attention,short=selfattn,temporal=tin"};
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++)
        parity_for(variants[i], ev, n, d);
    trn_data_destroy(d);
    core_free(ev);
}

int main(void) {
    /* exact comparisons with fp32 references: score on the fp32 path (the reduced-precision
     * paths are bounded against it in test_rank_paths) */
    setenv("TRAIL_ISA", "fp32", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity_every_variant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
