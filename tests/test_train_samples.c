/* test_train_samples.c: point-in-time sample construction: history counts strictly before the
 * sample's time (ties by file order), both labelers, negatives, ordering and the split. */
#include "test_common.h"

#include "core_err.h"
#include "trn_samples.h"

#include <math.h>

static sch_event beh(uint64_t u, uint64_t item, uint64_t cat, int64_t ts) {
    sch_event e = {0};
    e.user_id = u, e.item_id = item, e.category_id = cat, e.ts = ts, e.action = SCH_ACTION_CLICK;
    return e;
}

static sch_event imp(uint64_t u, uint64_t item, uint64_t cat, int64_t ts, int label) {
    sch_event e = beh(u, item, cat, ts);
    e.action = SCH_ACTION_VIEW;
    e.label = (uint8_t)label;
    e.prob = 0.25f;
    e.flags = SCH_F_LABEL | SCH_F_PROB;
    return e;
}

static void test_impressions_see_only_the_past(void **state) {
    (void)state;
    /* file order: user 2 interleaved with user 1; user 1 has two behaviors tied at ts 20 */
    const sch_event ev[] = {
        beh(1, 100, 7, 10),    beh(2, 200, 8, 5),    imp(1, 101, 7, 20, 1), beh(1, 102, 7, 20),
        beh(1, 103, 9, 20),    imp(2, 201, 8, 5, 0), beh(1, 104, 9, 30),    imp(1, 105, 9, 31, 0),
        imp(3, 300, 1, 40, 1), /* a user with no behaviors at all */
    };
    trn_data_conf conf;
    trn_data *d;
    char err[256];
    trn_data_conf_default(&conf);
    assert_int_equal(trn_data_build(&d, ev, sizeof ev / sizeof ev[0], &conf, err, sizeof err),
                     CORE_OK);
    assert_int_equal(d->protocol, TRN_PROTO_IMPRESSIONS);
    assert_int_equal(d->n_samples, 4);
    assert_int_equal(d->n_users, 3);
    /* sorted by time: (2, ts 5), (1, ts 20), (1, ts 31), (3, ts 40) */
    const trn_sample *s = d->samples;
    assert_int_equal(d->user_id[s[0].user], 2);
    assert_int_equal(s[0].hist, 0); /* its own-time behavior (ts 5) is not before it */
    assert_int_equal(d->user_id[s[1].user], 1);
    assert_int_equal(s[1].hist, 1); /* ts 10 only; both ts-20 behaviors are excluded */
    assert_int_equal(s[1].label, 1);
    assert_true(s[1].has_prob && s[1].prob == 0.25f);
    assert_int_equal(s[2].hist, 4);
    assert_int_equal(s[3].hist, 0);
    uint32_t n;
    const sch_behavior *h = trn_data_history(d, &s[2], 2, &n);
    assert_int_equal(n, 2);
    assert_int_equal(h[0].item_id, 103); /* ties keep file order: 102 then 103 */
    assert_int_equal(h[1].item_id, 104);
    h = trn_data_history(d, &s[2], 16, &n);
    assert_int_equal(n, 4);
    assert_int_equal(h[0].item_id, 100);
    assert_int_equal(h[1].item_id, 102);
    trn_data_destroy(d);
}

/* trn_data_match: the item before the category, and only within the window */
static void test_window_match(void **state) {
    (void)state;
    const sch_event ev[] = {beh(1, 100, 7, 10),    beh(1, 101, 8, 20),    imp(1, 100, 7, 30, 1),
                            imp(1, 102, 8, 31, 0), imp(1, 103, 9, 32, 1), imp(1, 104, 7, 33, 1)};
    trn_data_conf conf;
    trn_data *d;
    char err[256];
    trn_data_conf_default(&conf);
    assert_int_equal(trn_data_build(&d, ev, sizeof ev / sizeof ev[0], &conf, err, sizeof err),
                     CORE_OK);
    assert_int_equal(d->n_samples, 4);
    const trn_sample *s = d->samples;
    assert_int_equal(trn_data_match(d, &s[0], 256), TRN_MATCH_ITEM);
    assert_int_equal(trn_data_match(d, &s[0], 1), TRN_MATCH_NONE); /* only 101 (cat 8) is seen */
    assert_int_equal(trn_data_match(d, &s[1], 1), TRN_MATCH_CATEGORY);
    assert_int_equal(trn_data_match(d, &s[2], 256), TRN_MATCH_NONE);
    assert_int_equal(trn_data_match(d, &s[3], 256), TRN_MATCH_CATEGORY);
    assert_int_equal(trn_data_match(d, &s[3], 1), TRN_MATCH_NONE);
    trn_data_destroy(d);
}

static void test_next_behavior_with_negatives(void **state) {
    (void)state;
    sch_event ev[400];
    size_t n = 0;
    /* 20 users x 20 behaviors; item i has category 1000 + i % 7; item 5 is very popular */
    for (int t = 0; t < 20; t++)
        for (int u = 0; u < 20; u++) {
            uint64_t item = (t + u) % 3 == 0 ? 5 : (uint64_t)(10 + (t * 7 + u) % 50);
            ev[n++] = beh((uint64_t)u + 1, item, 1000 + item % 7, 1000 + t * 10 + (u % 2));
        }
    trn_data_conf conf;
    trn_data *d, *d2;
    char err[256];
    trn_data_conf_default(&conf);
    conf.negatives = 3;
    conf.seed = 11;
    assert_int_equal(trn_data_build(&d, ev, n, &conf, err, sizeof err), CORE_OK);
    assert_int_equal(d->protocol, TRN_PROTO_NEXT);
    assert_int_equal(d->n_samples, 20 * 19 * 4); /* every behavior after the first, 1 + 3 each */
    size_t pos = 0, pop5 = 0;
    for (size_t i = 0; i < d->n_samples; i++) {
        const trn_sample *s = &d->samples[i];
        if (i) assert_true(s->ts >= d->samples[i - 1].ts);
        assert_int_equal(s->category_id, 1000 + s->item_id % 7); /* the item's own category */
        assert_true(s->hist >= 1);
        if (s->label) {
            pos++;
            /* the negatives follow their positive, same user, time and history */
            for (int q = 1; q <= 3; q++) {
                const trn_sample *ng = &d->samples[i + q];
                assert_int_equal(ng->label, 0);
                assert_int_equal(ng->user, s->user);
                assert_int_equal(ng->hist, s->hist);
                assert_int_equal(ng->ts, s->ts);
                assert_true(ng->item_id != s->item_id);
                pop5 += ng->item_id == 5;
            }
        }
    }
    assert_int_equal(pos, 20 * 19);
    /* item 5 holds a third of all behaviors: popularity sampling draws it often (when allowed) */
    assert_true(pop5 > 200);
    assert_int_equal(d->split[0], (size_t)(d->n_samples * 0.8));
    assert_int_equal(d->split[1], (size_t)(d->n_samples * 0.9));
    /* same seed, same samples; taobao forces one negative */
    assert_int_equal(trn_data_build(&d2, ev, n, &conf, err, sizeof err), CORE_OK);
    assert_memory_equal(d->samples, d2->samples, d->n_samples * sizeof(trn_sample));
    trn_data_destroy(d2);
    conf.protocol = TRN_PROTO_TAOBAO;
    assert_int_equal(trn_data_build(&d2, ev, n, &conf, err, sizeof err), CORE_OK);
    assert_int_equal(d2->n_samples, 20 * 19 * 2);
    trn_data_destroy(d2);
    trn_data_destroy(d);
}

static void test_no_samples_is_an_error(void **state) {
    (void)state;
    const sch_event ev[] = {beh(1, 1, 1, 1), beh(2, 1, 1, 2)};
    trn_data_conf conf;
    trn_data *d = NULL;
    char err[256] = "";
    trn_data_conf_default(&conf);
    assert_int_equal(trn_data_build(&d, ev, 2, &conf, err, sizeof err), CORE_EINVAL);
    assert_non_null(strstr(err, "no samples"));
    conf.protocol = TRN_PROTO_IMPRESSIONS;
    assert_int_equal(trn_data_build(&d, ev, 2, &conf, err, sizeof err), CORE_EINVAL);
}

static void test_load_skips_and_counts_bad_records(void **state) {
    (void)state;
    char dir[256], path[512];
    assert_non_null(test_mkdtemp(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/e.jsonl", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"user_id\":1,\"item_id\":1,\"category_id\":1,\"action\":\"click\",\"ts\":10}\n"
               "{\"user_id\":1,\"item_id\":2,\"category_id\":1,\"action\":\"click\",\"ts\":\"x\"}\n"
               "not json\n"
               "{\"user_id\":1,\"item_id\":3,\"category_id\":1,\"action\":\"click\",\"ts\":20}\n");
    fclose(f);
    trn_data_conf conf;
    trn_data *d;
    char err[256];
    trn_data_conf_default(&conf);
    assert_int_equal(trn_data_load(&d, path, &conf, err, sizeof err), CORE_OK);
    assert_int_equal(d->bad_records, 2);
    assert_int_equal(d->n_beh, 2);
    assert_int_equal(d->n_samples, 2);
    trn_data_destroy(d);
    snprintf(path, sizeof path, "%s/missing.jsonl", dir);
    assert_int_not_equal(trn_data_load(&d, path, &conf, err, sizeof err), CORE_OK);
    assert_non_null(strstr(err, "missing.jsonl"));
    test_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_impressions_see_only_the_past),
        cmocka_unit_test(test_window_match),
        cmocka_unit_test(test_next_behavior_with_negatives),
        cmocka_unit_test(test_no_samples_is_an_error),
        cmocka_unit_test(test_load_skips_and_counts_bad_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
