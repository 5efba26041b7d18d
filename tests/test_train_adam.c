/* test_train_adam.c: one and two Adam steps against hand-computed values; clipping by global
 * norm, L2 on touched rows, lazy rows left alone, and the sparse zero / accumulate helpers. */
#include "test_common.h"

#include "core_alloc.h"
#include "core_err.h"
#include "mdl.h"
#include "trn_adam.h"

#include <math.h>

typedef struct fx {
    mdl_model *m;
    trn_opt o;
    float *p, *g, *mm, *vv;
    size_t n;
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    mdl_config cfg;
    char err[256];
    mdl_config_default(&cfg);
    cfg.C = 4, cfg.S = 2, cfg.tau = 1, cfg.item_rows = 8, cfg.cat_rows = 4, cfg.n_recent = 2;
    cfg.ffn_dim = 4, cfg.tin_buckets = 3, cfg.h1 = 3, cfg.h2 = 2;
    if (mdl_model_init(&f->m, &cfg, err, sizeof err)) return -1;
    trn_opt_init(&f->o, &cfg);
    f->n = f->m->n_floats;
    f->p = f->m->arena;
    f->g = calloc(f->n, sizeof(float));
    f->mm = calloc(f->n, sizeof(float));
    f->vv = calloc(f->n, sizeof(float));
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    mdl_model_destroy(f->m);
    free(f->g);
    free(f->mm);
    free(f->vv);
    free(f);
    return 0;
}

static const uint32_t item_rows[] = {3};
static const uint32_t cat_rows[] = {1};

static void test_two_steps_by_hand(void **state) {
    fx *f = *state;
    trn_adam_conf ac;
    trn_adam_conf_default(&ac);
    ac.clip = 0;
    ac.lr = 0.01f;
    trn_rows rows = {item_rows, 1, cat_rows, 1};
    size_t d = f->o.dense_off, it = f->o.item_off + 3 * f->o.half,
           un = f->o.item_off + 5 * f->o.half;
    float *p0 = malloc(f->n * sizeof(float));
    memcpy(p0, f->p, f->n * sizeof(float));
    f->g[d] = 0.5f;
    f->g[it] = -2.0f;
    f->g[un] = 7.0f; /* an untouched row's gradient is never read */
    uint64_t step = 0;
    trn_adam_step(&f->o, &ac, f->p, f->mm, f->vv, f->g, &step, &rows, NULL);
    assert_int_equal(step, 1);
    /* step 1: m = 0.1 g, v = 0.001 g^2, mhat = g, vhat = g^2: p -= lr * g / (|g| + eps) */
    assert_true(fabsf(f->mm[d] - 0.05f) < 1e-7f);
    assert_true(fabsf(f->vv[d] - 0.00025f) < 1e-8f); /* 1 - 0.999f is 0.00099999 in float */
    assert_true(fabs((double)f->p[d] - ((double)p0[d] - 0.01 * 0.5 / (0.5 + 1e-8))) < 1e-6);
    assert_true(fabs((double)f->p[it] - ((double)p0[it] + 0.01)) < 1e-6);
    assert_true(f->p[un] == p0[un] && f->mm[un] == 0 && f->vv[un] == 0);
    /* a zero gradient leaves a touched parameter in place on the first step */
    assert_true(f->p[d + 1] == p0[d + 1]);
    /* step 2 with g = -1 at d: m = 0.9*0.05 - 0.1 = -0.055, v = 0.999*0.00025 + 0.001 = 0.00124975
     * mhat = -0.055/0.19, vhat = 0.00124975/(1-0.999^2) */
    float before = f->p[d];
    f->g[d] = -1.0f;
    trn_adam_step(&f->o, &ac, f->p, f->mm, f->vv, f->g, &step, &rows, NULL);
    double mh = -0.055 / (1 - 0.81), vh = 0.00124975 / (1 - 0.998001);
    assert_true(fabs((double)f->p[d] - ((double)before - 0.01 * mh / (sqrt(vh) + 1e-8))) < 1e-6);
    free(p0);
}

static void test_clip_and_l2(void **state) {
    fx *f = *state;
    trn_adam_conf ac;
    trn_adam_conf_default(&ac);
    ac.clip = 5.0f;
    trn_rows rows = {item_rows, 1, cat_rows, 1};
    size_t d = f->o.dense_off, c = f->o.cat_off + 1 * f->o.half;
    memset(f->g, 0, f->n * sizeof(float));
    f->g[d] = 6.0f;
    f->g[c] = 8.0f; /* global norm 10 -> scale 0.5 */
    double norm;
    uint64_t step = 0;
    trn_adam_step(&f->o, &ac, f->p, f->mm, f->vv, f->g, &step, &rows, &norm);
    assert_true(fabs(norm - 10.0) < 1e-6);
    assert_true(fabsf(f->mm[d] - 0.1f * 3.0f) < 1e-6f);
    assert_true(fabsf(f->mm[c] - 0.1f * 4.0f) < 1e-6f);
    /* L2: the touched item row's gradient gains l2 * w before the norm */
    memset(f->g, 0, f->n * sizeof(float));
    memset(f->mm, 0, f->n * sizeof(float));
    memset(f->vv, 0, f->n * sizeof(float));
    ac.clip = 0;
    ac.l2_emb = 0.5f;
    size_t it = f->o.item_off + 3 * f->o.half, b = f->o.bias_off + 3;
    f->p[b] = 0.25f;
    float w = f->p[it];
    trn_adam_step(&f->o, &ac, f->p, f->mm, f->vv, f->g, &step, &rows, &norm);
    assert_true(fabsf(f->mm[it] - 0.1f * 0.5f * w) < 1e-7f);
    assert_true(fabsf(f->mm[b] - 0.1f * 0.5f * 0.25f) < 1e-7f);
    assert_true(f->mm[d] == 0.0f); /* dense weights get no L2 */
}

static void test_zero_accumulate_norm(void **state) {
    fx *f = *state;
    trn_rows rows = {item_rows, 1, cat_rows, 1};
    float *a = calloc(f->n, sizeof(float)), *b2 = calloc(f->n, sizeof(float));
    for (size_t i = 0; i < f->n; i++)
        b2[i] = 1.0f;
    trn_opt_accumulate(&f->o, a, b2, &rows);
    size_t half = f->o.half;
    size_t expect = (f->o.dense_end - f->o.dense_off) + 2 * half + 1;
    double s = 0;
    for (size_t i = 0; i < f->n; i++)
        s += a[i];
    assert_true(fabs(s - (double)expect) < 0.5);
    assert_true(fabs(trn_opt_grad_norm(&f->o, a, &rows) - sqrt((double)expect)) < 1e-6);
    assert_true(a[f->o.item_off + 2 * half] == 0 && a[f->o.item_off + 3 * half] == 1);
    assert_true(a[f->o.bias_off + 3] == 1 && a[f->o.bias_off + 4] == 0);
    for (size_t i = 0; i < f->n; i++)
        b2[i] = 1.0f;
    trn_opt_zero(&f->o, b2, &rows);
    s = 0;
    for (size_t i = 0; i < f->n; i++)
        s += b2[i];
    assert_true(fabs(s - (double)(f->n - expect)) < 0.5);
    free(a);
    free(b2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_steps_by_hand, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clip_and_l2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_accumulate_norm, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
