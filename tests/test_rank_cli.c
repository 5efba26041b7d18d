/* test_rank_cli.c: `trail rank` end to end against a real encoder store in a temporary directory.
 *
 * Scores printed by the CLI equal rank_score on the state read back from the store, and equal the
 * scores computed from the raw window (buckets built by the network from the same embeddings) to
 * 1e-5; bad candidate lines name their line; an unknown user scores; a model of another encoding
 * is refused.
 */
#include "test_common.h"

#include "core_err.h"
#include "enc_store.h"
#include "rank_blas.h"
#include "rank_isa.h"
#include "rank_net.h"
#include "rank_score.h"

#include <math.h>

enum { NU = 2, NE = 400, NC = 6 };

static char dir[512], model_path[600], other_path[600], store_path[600], cand_path[600];
static mdl_model *m;
static sch_behavior hist[NU + 1][NE];
static uint64_t citem[NC] = {5, 9, 17, 123, 77, 5}, ccat[NC] = {1, 2, 3, 4, 5, 6};

static int setup(void **state) {
    (void)state;
    char err[512];
    mdl_config cfg;
    assert_non_null(test_mkdtemp(dir, sizeof dir));
    snprintf(model_path, sizeof model_path, "%s/m.mdl", dir);
    snprintf(other_path, sizeof other_path, "%s/other.mdl", dir);
    snprintf(store_path, sizeof store_path, "%s/store", dir);
    snprintf(cand_path, sizeof cand_path, "%s/c.txt", dir);
    mdl_config_default(&cfg);
    cfg.item_rows = 4096;
    cfg.cat_rows = 256;
    assert_int_equal(mdl_model_init(&m, &cfg, err, sizeof err), 0);
    assert_int_equal(mdl_model_save(m, model_path, 0, err, sizeof err), 0);
    mdl_model *o;
    cfg.seed = 2;
    assert_int_equal(mdl_model_init(&o, &cfg, err, sizeof err), 0);
    assert_int_equal(mdl_model_save(o, other_path, 0, err, sizeof err), 0);
    mdl_model_destroy(o);

    enc_store *st;
    enc_store_conf conf;
    enc_store_conf_default(&conf);
    conf.path = store_path;
    conf.window = 300; /* users 1, 2 have 400 behaviors: the window keeps the last 300 */
    conf.recent = 64;
    conf.durable = 0;
    conf.map_size = 64u << 20;
    assert_int_equal(enc_store_open(&st, &conf, err, sizeof err), 0);
    assert_int_equal(enc_store_bind_model(st, m, err, sizeof err), 0);
    enc_batch *b;
    assert_int_equal(enc_batch_begin(st, &b), 0);
    for (int j = 0; j < NE; j++)
        for (uint64_t u = 1; u <= NU; u++) {
            sch_event ev = {.user_id = u,
                            .item_id = (uint64_t)(j * 7 + u * 3) % 600 + 1,
                            .category_id = (uint64_t)(j % 17) + 1,
                            .ts = 1700000000 + j * 90,
                            .action = SCH_ACTION_CLICK};
            hist[u][j] = (sch_behavior){ev.item_id, ev.category_id, ev.ts, ev.action};
            assert_int_equal(enc_batch_apply(b, &ev), 0);
        }
    assert_int_equal(enc_batch_commit(b), 0);
    enc_store_close(st);
    FILE *f = fopen(cand_path, "w");
    assert_non_null(f);
    fprintf(f, "5,1\n{\"item_id\": 9, \"category_id\": 2}\n\n17, 3\n{\"category_id\": 4, "
               "\"item_id\": 123}\n77,5\n 5 , 6 \n");
    fclose(f);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    mdl_model_destroy(m);
    test_rmtree(dir);
    return 0;
}

static void test_rank_matches_store_and_window(void **state) {
    (void)state;
    char cmd[4096], out[8192];
    snprintf(cmd, sizeof cmd,
             "%s rank --model %s --store %s --user 2 --ts 1700040000 --candidates %s",
             test_trail_bin(), model_path, store_path, cand_path);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    float cli[NC];
    char *p = out;
    for (int i = 0; i < NC; i++) {
        char *e;
        cli[i] = strtof(p, &e);
        assert_true(e != p);
        p = e;
    }
    while (*p == '\n')
        p++;
    assert_int_equal(*p, 0); /* exactly one line per candidate */

    /* the same user read back from the store, scored in process */
    char err[512];
    enc_store *st;
    enc_store_conf conf;
    enc_store_conf_default(&conf);
    conf.path = store_path;
    conf.window = 0;
    conf.recent = 0;
    assert_int_equal(enc_store_open(&st, &conf, err, sizeof err), 0);
    enc_reader *rd;
    assert_int_equal(enc_reader_new(st, &rd), 0);
    assert_int_equal(enc_reader_begin(rd), 0);
    enc_user_view v;
    assert_int_equal(enc_reader_user(rd, 2, &v), 0);
    assert_int_equal(v.window_len, 300);
    /* the model has the cross statistics: they count in the user's raw window, the last 300 */
    assert_int_equal(m->cfg.cross, 1);
    rank_history h = {.bucket_sum = v.bucket_sum,
                      .bucket_cnt = v.bucket_cnt,
                      .window_len = v.window_len,
                      .window = &hist[2][NE - 300],
                      .T = 300,
                      .recent = v.recent,
                      .N = v.recent_len,
                      .now_ts = 1700040000};
    rank_scratch *sc;
    float inproc[NC], direct[NC];
    assert_int_equal(rank_scratch_new(&sc, m, NC, 300), 0);
    assert_int_equal(rank_score(inproc, sc, m, &h, citem, ccat, NC), 0);
    for (int i = 0; i < NC; i++)
        assert_true(fabsf(inproc[i] - cli[i]) < 1e-6f);

    /* the raw window (last 300 behaviors) with buckets built by the network itself */
    rank_net *net;
    rank_net_shape sh = {.max_B = NC, .max_U = 1, .max_T = 300};
    assert_int_equal(rank_net_new(&net, &m->cfg, &sh, err, sizeof err), 0);
    rank_history hw = h;
    hw.bucket_sum = NULL;
    hw.bucket_cnt = NULL;
    rank_batch bt = {.users = &hw, .U = 1, .item_id = citem, .category_id = ccat, .B = NC};
    assert_int_equal(rank_net_forward(net, m, &bt, NULL, direct), 0);
    for (int i = 0; i < NC; i++)
        if (fabsf(direct[i] - cli[i]) > 1e-5f)
            fail_msg("candidate %d: %g vs %g", i, direct[i], cli[i]);
    enc_reader_end(rd);
    enc_reader_destroy(rd);
    enc_store_close(st);
    rank_net_destroy(net);
    rank_scratch_destroy(sc);
}

static void test_rank_unknown_user_and_json(void **state) {
    (void)state;
    char cmd[4096], out[8192];
    snprintf(cmd, sizeof cmd, "%s rank --model %s --store %s --user 777 --candidates %s --json",
             test_trail_bin(), model_path, store_path, cand_path);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"known_user\": false"));
    assert_non_null(strstr(out, "\"model_version\": \""));
    int n = 0;
    for (char *s = strstr(out, "\"scores\": ["); s && *s; s++)
        n += *s == ',';
    assert_int_equal(n, NC - 1 + 0 /* commas between NC scores */);
}

static void test_rank_bad_input(void **state) {
    (void)state;
    char cmd[4096], out[8192], bad[600];
    snprintf(bad, sizeof bad, "%s/bad.txt", dir);
    FILE *f = fopen(bad, "w");
    assert_non_null(f);
    fprintf(f, "1,2\n3,4\n{\"item_id\": 5, \"cat\": 6}\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s rank --model %s --store %s --user 1 --candidates %s 2>&1",
             test_trail_bin(), model_path, store_path, bad);
    assert_int_equal(test_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "bad.txt:3:"));
    assert_non_null(strstr(out, "unknown field \"cat\""));
    /* a model of another encoding is refused, naming the fix */
    snprintf(cmd, sizeof cmd, "%s rank --model %s --store %s --user 1 --candidates %s 2>&1",
             test_trail_bin(), other_path, store_path, cand_path);
    assert_int_equal(test_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "encoding_version"));
    assert_non_null(strstr(out, "reencode"));
    /* ... unless it reads no buckets: din-short scores from the recent sequence alone, whatever
     * model encoded the store (as serve does) */
    char dpath[600], err[512];
    snprintf(dpath, sizeof dpath, "%s/din.mdl", dir);
    mdl_config dc;
    mdl_config_default(&dc);
    dc.item_rows = 4096, dc.cat_rows = 256, dc.seed = 3;
    assert_int_equal(mdl_variant_parse(&dc, "din-short", err, sizeof err), 0);
    mdl_model *dm;
    assert_int_equal(mdl_model_init(&dm, &dc, err, sizeof err), 0);
    assert_int_equal(mdl_model_save(dm, dpath, 0, err, sizeof err), 0);
    mdl_model_destroy(dm);
    snprintf(cmd, sizeof cmd, "%s rank --model %s --store %s --user 1 --candidates %s 2>&1",
             test_trail_bin(), dpath, store_path, cand_path);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    /* usage errors exit 2 */
    snprintf(cmd, sizeof cmd, "%s rank --model %s --user 1 2>&1", test_trail_bin(), model_path);
    assert_int_equal(test_run(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "%s rank --model %s --store %s --user x --candidates %s 2>&1",
             test_trail_bin(), model_path, store_path, cand_path);
    assert_int_equal(test_run(cmd, out, sizeof out), 2);
}

/* --isa: every path this CPU runs scores the same candidates within the serving bound of the fp32
 * path (5e-3; fp32-precision paths 2e-5); a path it lacks, an unknown name or a bad TRAIL_ISA
 * stop the command with exit 2 and a message naming it. `trail model info` names the path. */
static void test_rank_isa_paths(void **state) {
    (void)state;
    char cmd[4096], out[8192], ref[8192];
    snprintf(cmd, sizeof cmd, "%s rank --model %s --store %s --user 3 --candidates %s --isa fp32",
             test_trail_bin(), model_path, store_path, cand_path);
    assert_int_equal(test_run(cmd, ref, sizeof ref), 0);
    for (int i = 0; i < RANK_ISA_COUNT; i++) {
        const char *name = rank_isa_name((rank_isa)i);
        snprintf(cmd, sizeof cmd,
                 "%s rank --model %s --store %s --user 3 --candidates %s --isa %s 2>&1",
                 test_trail_bin(), model_path, store_path, cand_path, name);
        int rc = test_run(cmd, out, sizeof out);
        if (!rank_isa_available((rank_isa)i)) {
            assert_int_equal(rc, 2);
            assert_non_null(strstr(out, name));
            assert_non_null(strstr(out, "lacks"));
            printf("path %s: refused on this CPU, as it should be\n", name);
            continue;
        }
        assert_int_equal(rc, 0);
        double bound = rank_isa_max_dp((rank_isa)i), worst = 0;
        char *a = ref, *b = out;
        for (int k = 0; k < NC; k++) {
            char *ea, *eb;
            double x = strtod(a, &ea), y = strtod(b, &eb);
            assert_true(ea != a && eb != b);
            worst = fmax(worst, fabs(x - y));
            a = ea, b = eb;
        }
        printf("path %s: max |p - p_fp32| = %.2e\n", name, worst);
        assert_true(worst <= bound);
    }
    snprintf(cmd, sizeof cmd,
             "%s rank --model %s --store %s --user 3 --candidates %s --isa avx9 2>&1",
             test_trail_bin(), model_path, store_path, cand_path);
    assert_int_equal(test_run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "unknown ISA path 'avx9'"));
    snprintf(cmd, sizeof cmd,
             "TRAIL_ISA=avx9 %s rank --model %s --store %s --user 3 --candidates %s 2>&1",
             test_trail_bin(), model_path, store_path, cand_path);
    assert_int_equal(test_run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "TRAIL_ISA"));
    snprintf(cmd, sizeof cmd, "TRAIL_ISA=scalar %s model info --model %s --json", test_trail_bin(),
             model_path);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"serving_isa\":\"scalar\""));
    assert_non_null(strstr(out, "\"openblas_core\":\""));
}

/* A model that records the window it was trained on, scored against a store that keeps another:
 * the scores are those of the same weights, with a warning on stderr that names both windows.
 * Against a store of its own window, no warning. */
static void test_rank_warns_of_another_window(void **state) {
    (void)state;
    char cmd[4096], out[8192], ref[8192], wpath[600], err[512];
    snprintf(wpath, sizeof wpath, "%s/w.mdl", dir);
    const uint32_t windows[2] = {256, 300};
    for (int i = 0; i < 2; i++) {
        m->cfg.window = windows[i];
        mdl_model_refresh_versions(m);
        assert_int_equal(mdl_model_save(m, wpath, 0, err, sizeof err), 0);
        snprintf(
            cmd, sizeof cmd,
            "%s rank --model %s --store %s --user 2 --ts 1700040000 --candidates %s 2>%s/w.err",
            test_trail_bin(), wpath, store_path, cand_path, dir);
        assert_int_equal(test_run(cmd, out, sizeof out), 0);
        snprintf(cmd, sizeof cmd,
                 "%s rank --model %s --store %s --user 2 --ts 1700040000 --candidates %s",
                 test_trail_bin(), model_path, store_path, cand_path);
        assert_int_equal(test_run(cmd, ref, sizeof ref), 0);
        assert_string_equal(out, ref);
        snprintf(cmd, sizeof cmd, "cat %s/w.err", dir);
        assert_int_equal(test_run(cmd, out, sizeof out), 0);
        if (i == 0) {
            assert_non_null(strstr(out, "warning"));
            assert_non_null(strstr(out, "windows of 256 behaviors per user, the store keeps 300"));
        } else {
            assert_null(strstr(out, "warning"));
        }
    }
    m->cfg.window = 0;
    mdl_model_refresh_versions(m);
}

int main(void) {
    /* exact comparisons with fp32 references: score on the fp32 path (the reduced-precision
     * paths are bounded against it in test_rank_paths) */
    setenv("TRAIL_ISA", "fp32", 1);
    rank_blas_single_thread();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rank_matches_store_and_window),
        cmocka_unit_test(test_rank_unknown_user_and_json),
        cmocka_unit_test(test_rank_bad_input),
        cmocka_unit_test(test_rank_isa_paths),
        cmocka_unit_test(test_rank_warns_of_another_window),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
