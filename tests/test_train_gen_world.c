/* test_train_gen_world.c: `trail gen --world resurfacing` is deterministic, causal and calibrated,
 * its interests resurface after long gaps and its items rarely repeat (docs/SYNTHETIC.md). */
#include "test_common.h"

#include "core_alloc.h"
#include "core_err.h"
#include "trn_gen.h"
#include "trn_metrics.h"

#include <math.h>

#define DORMANT_S                                                                                  \
    (7 * 86400ll) /* "long ago": the category's latest behavior is older than this                 \
                   */

static void res_conf(trn_gen_conf *c) {
    trn_gen_conf_default(c);
    c->world = TRN_GEN_WORLD_RESURFACING;
    c->users = 300;
    c->items = 80000;
    c->events = 300 * 300;
    c->days = 120;
    c->seed = 5;
}

static void gen(const trn_gen_conf *c, sch_event **ev, size_t *n, trn_gen_stats *st) {
    char err[256];
    assert_int_equal(trn_gen_events(c, ev, n, st, err, sizeof err), CORE_OK);
}

/* What the world is about, measured on the events alone:
 * dormant: the share of positives whose category the user has behaved in, but last more than
 * DORMANT_S before the impression (it was in the long history, not in the recent one);
 * repeat: the share of behaviors whose item the same user had behaved on before. */
typedef struct world_props {
    double dormant, repeat;
    size_t positives, behaviors;
} world_props;

/* Per (user, category) and (user, item) the latest behavior's time, in open-addressing tables. */
typedef struct last_tab {
    uint64_t *key;
    int64_t *ts;
    size_t cap;
} last_tab;

static int64_t *last_slot(last_tab *t, uint64_t user, uint64_t id, int insert) {
    uint64_t k = (user << 40) ^ id ^ 0x9E3779B97F4A7C15ull, h = k * 0xff51afd7ed558ccdull;
    for (size_t i = (size_t)(h >> 20) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        if (t->key[i] == k) return &t->ts[i];
        if (!t->key[i]) {
            if (!insert) return NULL;
            t->key[i] = k;
            t->ts[i] = INT64_MIN;
            return &t->ts[i];
        }
    }
}

static world_props measure(const sch_event *ev, size_t n) {
    last_tab cat = {0}, item = {0};
    cat.cap = item.cap = 1;
    while (cat.cap < 4 * n)
        cat.cap *= 2;
    item.cap = cat.cap;
    cat.key = calloc(cat.cap, sizeof *cat.key);
    cat.ts = calloc(cat.cap, sizeof *cat.ts);
    item.key = calloc(item.cap, sizeof *item.key);
    item.ts = calloc(item.cap, sizeof *item.ts);
    assert_true(cat.key && cat.ts && item.key && item.ts);
    world_props p = {0};
    size_t dormant = 0, repeat = 0;
    for (size_t i = 0; i < n; i++) {
        const sch_event *e = &ev[i];
        if (e->flags & SCH_F_LABEL) {
            if (!e->label) continue;
            p.positives++;
            int64_t *last = last_slot(&cat, e->user_id, e->category_id, 0);
            dormant += last && e->ts - *last > DORMANT_S;
            continue;
        }
        p.behaviors++;
        int64_t *li = last_slot(&item, e->user_id, e->item_id, 1);
        repeat += *li != INT64_MIN;
        *li = e->ts;
        *last_slot(&cat, e->user_id, e->category_id, 1) = e->ts;
    }
    p.dormant = (double)dormant / (double)p.positives;
    p.repeat = (double)repeat / (double)p.behaviors;
    free(cat.key);
    free(cat.ts);
    free(item.key);
    free(item.ts);
    return p;
}

static void test_same_seed_same_stream_and_causal(void **state) {
    (void)state;
    trn_gen_conf c, cut;
    sch_event *a, *b, *d, *e;
    size_t na, nb, nd, ne;
    res_conf(&c);
    c.users = 80;
    c.events = 80 * 300;
    gen(&c, &a, &na, NULL);
    gen(&c, &b, &nb, NULL);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    c.seed = 6;
    gen(&c, &d, &nd, NULL);
    size_t same = 0;
    for (size_t i = 0; i < na && i < nd; i++)
        same += a[i].item_id == d[i].item_id;
    assert_true(same < na / 20);
    core_free(d);
    /* cut at day 40: every event before the cut is the same, bit for bit */
    c.seed = 5;
    c.events = 10000000;
    cut = c;
    cut.until_day = 40;
    gen(&c, &d, &nd, NULL);
    gen(&cut, &e, &ne, NULL);
    int64_t cutoff = 1700000000ll + 40 * 86400ll;
    size_t before = 0;
    while (before < nd && d[before].ts < cutoff)
        before++;
    assert_int_equal(ne, before);
    assert_true(ne > 3000 && ne < nd);
    assert_memory_equal(d, e, ne * sizeof *e);
    core_free(a);
    core_free(b);
    core_free(d);
    core_free(e);
}

static void test_resurfacing_property(void **state) {
    (void)state;
    trn_gen_conf c, s;
    trn_gen_stats st, ss;
    sch_event *a, *b;
    size_t na, nb;
    char err[256];
    res_conf(&c);
    gen(&c, &a, &na, &st);
    /* the default world at the same events per user, over its own 60 days */
    trn_gen_conf_default(&s);
    s.users = c.users;
    s.items = 6000;
    s.events = c.events;
    s.days = 60;
    s.seed = c.seed;
    gen(&s, &b, &nb, &ss);
    world_props r = measure(a, na), q = measure(b, nb);
    print_message("resurfacing: dormant positives %.3f, repeated items %.3f (%zu positives, %zu "
                  "behaviors); sessions world: %.3f, %.3f\n",
                  r.dormant, r.repeat, r.positives, r.behaviors, q.dormant, q.repeat);
    assert_true(r.positives > 5000);
    /* a positive's category was in the history long ago and not lately: often here, rarely in the
     * default world, whose interests come back every few days */
    assert_true(r.dormant > 0.25);
    assert_true(r.dormant > 2.5 * q.dormant);
    /* a user rarely meets the same item twice */
    assert_true(r.repeat < 0.1);
    assert_true(r.repeat < q.repeat / 4);
    /* valid events in time order; labels drawn from prob; a stable click rate over the split */
    double psum = 0, lsum = 0;
    for (size_t i = 0; i < na; i++) {
        assert_int_equal(sch_event_validate(&a[i], err, sizeof err), CORE_OK);
        if (i) assert_true(a[i].ts >= a[i - 1].ts);
        if (a[i].flags & SCH_F_LABEL) {
            psum += a[i].prob;
            lsum += a[i].label;
        }
    }
    double imp = (double)st.impressions;
    assert_true(fabs(lsum / imp - psum / imp) < 4 * sqrt(0.25 / imp));
    for (int p = 1; p < 3; p++)
        assert_true(fabs(st.split_ctr[p] / st.split_ctr[0] - 1) < 0.10);
    /* the oracle and the bounds that need no observer; the observers' three are NaN here */
    assert_true(st.oracle_auc_test > 0.7 && st.oracle_auc_test < 0.95);
    assert_true(st.auc_without_propensity < st.oracle_auc_test);
    assert_true(st.auc_without_propensity_quality < st.auc_without_propensity);
    assert_true(st.auc_with_estimated_quality > st.auc_without_propensity_quality);
    assert_true(isnan(st.auc_session_from_history) && isnan(st.auc_interests_from_history) &&
                isnan(st.auc_known_form_fitted));
    assert_false(isnan(ss.auc_known_form_fitted));
    core_free(a);
    core_free(b);
}

static void test_cli_world(void **state) {
    (void)state;
    char dir[256], cmd[1024], out[64];
    assert_non_null(test_mkdtemp(dir, sizeof dir));
    /* --world sessions is the default, byte for byte */
    snprintf(
        cmd, sizeof cmd,
        "cd %s && %s gen --users 20 --items 500 --events 3000 --out a.jsonl 2>/dev/null && "
        "%s gen --users 20 --items 500 --events 3000 --world sessions --out b.jsonl 2>/dev/null && "
        "cmp -s a.jsonl b.jsonl && echo same",
        dir, test_trail_bin(), test_trail_bin());
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    assert_string_equal(out, "same\n");
    /* the other world writes another stream, without the observers' bounds */
    snprintf(
        cmd, sizeof cmd,
        "cd %s && %s gen --world resurfacing --users 20 --items 5000 --events 3000 --out c.jsonl "
        "2>err && wc -l <c.jsonl && ! grep -q known_form_fitted err && grep -c oracle_auc= err",
        dir, test_trail_bin());
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    assert_string_equal(out, "3000\n1\n");
    snprintf(cmd, sizeof cmd, "%s gen --world elsewhere --out %s/d.jsonl 2>/dev/null",
             test_trail_bin(), dir);
    assert_int_equal(WEXITSTATUS(system(cmd)), 2);
    test_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_same_stream_and_causal),
        cmocka_unit_test(test_resurfacing_property),
        cmocka_unit_test(test_cli_world),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
