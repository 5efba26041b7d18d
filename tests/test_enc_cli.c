/* test_enc_cli.c: `trail encode` and friends run as child processes (TRAIL_BIN): a corpus of bad
 * input is rejected with reasons and leaves the state alone, replays are idempotent, kill -9 in the
 * middle of a replay and a resume give the state of an uninterrupted run, importers, reencode. */
#include "enc_test_util.h"
#include "test_proc.h"

#include "enc_store.h"
#include "sch_event.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef enc_test_dir fixture;

static int setup(void **state) {
    if (enc_test_dir_setup(state)) return -1;
    fixture *f = *state;
    const char *a1[] = {"model",        "init", "--out",  f->model, "--dim",       "16",
                        "--signatures", "4",    "--bits", "3",      "--item-rows", "4096",
                        "--cat-rows",   "64",   "--seed", "1",      NULL};
    const char *a2[] = {"model",        "init", "--out",  f->model2, "--dim",       "16",
                        "--signatures", "4",    "--bits", "3",       "--item-rows", "4096",
                        "--cat-rows",   "64",   "--seed", "2",       NULL};
    if (test_run_trail(NULL, a1) != 0 || test_run_trail(NULL, a2) != 0) return -1;
    return 0;
}

#define teardown enc_test_dir_teardown

static void test_bad_input_rejected(void **state) {
    fixture *f = *state;
    char store[300], good[300], bad[300], out[300], rej[300];
    snprintf(store, sizeof store, "%s/st", f->dir);
    snprintf(good, sizeof good, "%s/good.jsonl", f->dir);
    snprintf(bad, sizeof bad, "%s/bad.jsonl", f->dir);
    snprintf(out, sizeof out, "%s/out.txt", f->dir);
    snprintf(rej, sizeof rej, "%s/st/rejects.jsonl", f->dir);
    enc_test_write_events(good, 300, 5, 0);
    const char *a[] = {"encode",  "--model", f->model,   "--store", store,
                       "--input", good,      "--window", "100",     NULL};
    assert_int_equal(test_run_trail(out, a), 0);
    uint64_t d0 = enc_test_store_digest(store, ENC_DIGEST_STATE);

    FILE *fp = fopen(bad, "w");
    const char *lines[] = {
        "{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":\"click\",\"ts\":15", /* truncated
                                                                                          */
        "{\"user_id\":\"1\",\"item_id\":2,\"category_id\":3,\"action\":\"click\",\"ts\":"
        "1500000000}",
        "{\"user_id\":-5,\"item_id\":2,\"category_id\":3,\"action\":\"click\",\"ts\":1500000000}",
        "{\"user_id\":1,\"item_id\":99999999999999999999,\"category_id\":3,\"action\":\"click\","
        "\"ts\":1500000000}",
        "{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":\"click\",\"ts\":9999999999}",
        "{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":\"click\",\"ts\":-1}",
        "{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":\"cl\xff\xfe"
        "ck\",\"ts\":1500000000}",
        "{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":\"click\"}", /* no ts */
        "{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":\"click\",\"ts\":1500000000,"
        "\"x\":1}",
        "{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":\"teleport\",\"ts\":1500000000}",
        "hello",
        "[1,2,3]",
        "{\"user_id\":1,\"item_id\":2.5,\"category_id\":3,\"action\":\"click\",\"ts\":1500000000}",
        "{\"user_id\":1,\"item_id\":2,\"category_id\":null,\"action\":\"click\",\"ts\":1500000000}",
    };
    size_t nl = sizeof lines / sizeof lines[0];
    for (size_t i = 0; i < nl; i++)
        fprintf(fp, "%s\n", lines[i]);
    fputs("{\"user_id\":1,\"pad\":\"", fp); /* a 10 MB line */
    for (int i = 0; i < 10 * 1024; i++) {
        char k[1024];
        memset(k, 'x', sizeof k);
        fwrite(k, 1, sizeof k, fp);
    }
    fputs("\"}\n", fp);
    fputs("{\"user_id\":1,\"item_id\":2,\"categ", fp); /* cut last line, no newline */
    fclose(fp);
    const size_t total = nl + 2;

    const char *b[] = {"encode",  "--model", f->model, "--store", store,
                       "--input", bad,       "--json", NULL};
    assert_int_equal(test_run_trail(out, b), 1); /* every record was rejected */
    char *o = test_slurp(out, NULL);
    char want[128];
    snprintf(want, sizeof want,
             "\"records\":%zu,\"read\":%zu,\"applied\":0,\"impressions\":0,\"rejected\":%zu", total,
             total, total);
    if (!strstr(o, want)) fail_msg("summary %s lacks %s", o, want);
    free(o);
    /* one reject line per bad record, with its line number and a reason */
    char *rj = test_slurp(rej, NULL);
    assert_non_null(rj);
    size_t count = 0;
    for (char *p = rj; (p = strstr(p, "{\"line\":")); p++) {
        count++;
        assert_int_equal(strtoull(p + 8, NULL, 10), count);
        char *reason = strstr(p, "\"reason\":\"");
        assert_non_null(reason);
        assert_true(reason[10] != '"'); /* not empty */
    }
    assert_int_equal(count, total);
    assert_non_null(strstr(rj, "longer than"));
    free(rj);
    assert_true(enc_test_store_digest(store, ENC_DIGEST_STATE) == d0); /* no state change */

    /* binary: a good record, one with a flipped byte, a truncated tail */
    char bin[300];
    snprintf(bin, sizeof bin, "%s/ev.bin", f->dir);
    fp = fopen(bin, "wb");
    sch_event e = {
        .user_id = 77, .item_id = 5, .category_id = 6, .ts = 1500000000, .action = SCH_ACTION_BUY};
    uint8_t rec[SCH_BIN_RECORD_SIZE];
    fwrite(SCH_BIN_FILE_MAGIC, 1, 8, fp);
    sch_event_to_bin(&e, rec);
    fwrite(rec, 1, sizeof rec, fp);
    rec[20] ^= 1;
    fwrite(rec, 1, sizeof rec, fp);
    fwrite(rec, 1, 20, fp);
    fclose(fp);
    const char *c[] = {"encode",  "--model", f->model, "--store", store,
                       "--input", bin,       "--json", NULL};
    assert_int_equal(test_run_trail(out, c), 0);
    o = test_slurp(out, NULL);
    if (!strstr(o, "\"records\":3,\"read\":3,\"applied\":1,\"impressions\":0,\"rejected\":2"))
        fail_msg("binary summary: %s", o);
    free(o);
}

/* Re-running a finished replay applies nothing; a model of another encoding is refused until
 * reencode, after which encoding goes on. */
static void test_idempotent_and_reencode(void **state) {
    fixture *f = *state;
    char store[300], in[300], out[300];
    snprintf(store, sizeof store, "%s/st2", f->dir);
    snprintf(in, sizeof in, "%s/in.jsonl", f->dir);
    snprintf(out, sizeof out, "%s/out2.txt", f->dir);
    enc_test_write_events(in, 2000, 10, 97);
    const char *a[] = {"encode", "--model", f->model, "--store", store, "--input",
                       in,       "--batch", "300",    "--json",  NULL};
    assert_int_equal(test_run_trail(out, a), 0);
    uint64_t d = enc_test_store_digest(store, ENC_DIGEST_STATE | ENC_DIGEST_POS);
    assert_int_equal(test_run_trail(out, a), 0);
    char *o = test_slurp(out, NULL);
    if (!strstr(o, "\"records\":2000,\"read\":0,\"applied\":0,\"impressions\":0,\"rejected\":0,"
                   "\"skipped\":2000"))
        fail_msg("second run: %s", o);
    free(o);
    assert_true(enc_test_store_digest(store, ENC_DIGEST_STATE | ENC_DIGEST_POS) == d);

    const char *b[] = {"encode", "--model", f->model2, "--store", store, "--input", in, NULL};
    assert_int_equal(test_run_trail(out, b), 1);
    o = test_slurp(out, NULL);
    assert_non_null(strstr(o, "reencode"));
    assert_non_null(strstr(o, "st2/rejects.jsonl")); /* the summary of a refused run names it */
    free(o);
    const char *r[] = {"reencode", "--model", f->model2, "--store", store, NULL};
    assert_int_equal(test_run_trail(out, r), 0);
    assert_int_equal(test_run_trail(out, b), 0);
    const char *k[] = {"encode",  "--model", f->model2,   "--store", store,
                       "--input", in,        "--brokers", "x",       NULL};
    assert_int_equal(test_run_trail(out, k), 2);
    const char *i[] = {"inspect", "--store", store, "--user", "3", "--json", NULL};
    assert_int_equal(test_run_trail(out, i), 0);
    o = test_slurp(out, NULL);
    assert_non_null(strstr(o, "\"bucket_counts\":[["));
    assert_non_null(strstr(o, "\"window_len\":"));
    free(o);
}

/* A model that records its training window: a new store takes it, a store asked to keep another
 * is made but the encoder and reencode warn, naming both windows. */
static void test_store_takes_the_model_window(void **state) {
    fixture *f = *state;
    char wmodel[300], st_a[300], st_b[300], in[300], out[300], err[512];
    snprintf(wmodel, sizeof wmodel, "%s/w.mdl", f->dir);
    snprintf(st_a, sizeof st_a, "%s/sta", f->dir);
    snprintf(st_b, sizeof st_b, "%s/stb", f->dir);
    snprintf(in, sizeof in, "%s/inw.jsonl", f->dir);
    snprintf(out, sizeof out, "%s/outw.txt", f->dir);
    mdl_model *m;
    assert_int_equal(mdl_model_load(&m, f->model, err, sizeof err), CORE_OK);
    m->cfg.window = 150;
    mdl_model_refresh_versions(m);
    assert_int_equal(mdl_model_save(m, wmodel, 0, err, sizeof err), CORE_OK);
    mdl_model_destroy(m);
    enc_test_write_events(in, 500, 5, 31);
    const char *a[] = {"encode", "--model", wmodel, "--store", st_a, "--input", in, NULL};
    assert_int_equal(test_run_trail(out, a), 0);
    char *o = test_slurp(out, NULL);
    assert_null(strstr(o, "warning"));
    free(o);
    const char *b[] = {"encode",  "--model", wmodel,     "--store", st_b,
                       "--input", in,        "--window", "200",     NULL};
    assert_int_equal(test_run_trail(out, b), 0);
    o = test_slurp(out, NULL);
    assert_non_null(strstr(o, "warning: model"));
    assert_non_null(strstr(o, "windows of 150 behaviors per user, the store keeps 200"));
    free(o);
    const char *r[] = {"reencode", "--model", wmodel, "--store", st_b, NULL};
    assert_int_equal(test_run_trail(out, r), 0);
    o = test_slurp(out, NULL);
    assert_non_null(strstr(o, "the store keeps 200"));
    free(o);
    const char *paths[2] = {st_a, st_b};
    const uint32_t want[2] = {150, 200};
    for (int i = 0; i < 2; i++) {
        enc_store_conf conf;
        enc_store *st;
        enc_store_conf_default(&conf);
        conf.path = paths[i];
        conf.window = conf.recent = 0;
        assert_int_equal(enc_store_open(&st, &conf, err, sizeof err), CORE_OK);
        assert_int_equal(enc_store_window(st), want[i]);
        enc_store_close(st);
    }
}

/* kill -9 in the middle of a replay, resume: the same state, positions and reject file as one
 * uninterrupted run. */
static void test_kill9_resume(void **state) {
    fixture *f = *state;
    char in[300], sa[300], sb[300], out[300], ra[300], rb[300];
    snprintf(in, sizeof in, "%s/crash.jsonl", f->dir);
    snprintf(sa, sizeof sa, "%s/a", f->dir);
    snprintf(sb, sizeof sb, "%s/b", f->dir);
    snprintf(out, sizeof out, "%s/out3.txt", f->dir);
    snprintf(ra, sizeof ra, "%s/a/rejects.jsonl", f->dir);
    snprintf(rb, sizeof rb, "%s/b/rejects.jsonl", f->dir);
    enc_test_write_events(in, 40000, 25, 501);
    const char *a[] = {"encode", "--model", f->model, "--store",  sa,    "--input",
                       in,       "--batch", "150",    "--window", "300", NULL};
    assert_int_equal(test_run_trail(out, a), 0);
    const char *b[] = {"encode", "--model", f->model, "--store",  sb,    "--input",
                       in,       "--batch", "150",    "--window", "300", NULL};
    int killed = 0, mid = 0;
    struct timespec ts = {0, 0};
    struct stat sbuf;
    assert_int_equal(stat(in, &sbuf), 0);
    char source[600], real[512];
    assert_non_null(realpath(in, real));
    snprintf(source, sizeof source, "file:%s", real);
    /* the kill time adapts to this machine's speed (a loaded machine starts the replay late):
     * later after a kill before the first commit, earlier after one past the end */
    long delay_ms = 40;
    for (int attempt = 0; attempt < 12 && mid < 2; attempt++) {
        pid_t pid = fork();
        if (pid == 0) {
            int fd = open("/dev/null", O_WRONLY);
            dup2(fd, 1);
            dup2(fd, 2);
            const char *argv[16] = {test_trail_bin()};
            for (int k = 0; b[k]; k++)
                argv[k + 1] = b[k];
            execv(argv[0], (char *const *)(uintptr_t)argv);
            _exit(127);
        }
        ts.tv_sec = delay_ms / 1000;
        ts.tv_nsec = delay_ms % 1000 * 1000000L;
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        if (WIFSIGNALED(status)) killed++;
        /* did it die between commits of the replay? (some state committed, not all) */
        char data[600];
        snprintf(data, sizeof data, "%s/data.mdb", sb);
        struct stat ds;
        int64_t off = 0;
        if (stat(data, &ds) == 0) {
            enc_store_conf conf;
            enc_store *st;
            char err[256];
            enc_store_conf_default(&conf);
            conf.path = sb;
            /* a kill before the encoder's first commit leaves no store meta, and this open then
             * creates the store: with b's sizes, or the resumed runs would be refused */
            conf.window = 300;
            conf.recent = 0;
            if (enc_store_open(&st, &conf, err, sizeof err) == CORE_OK) {
                if (enc_store_get_offset(st, source, &off) != CORE_OK) off = 0;
                enc_store_close(st);
            }
        }
        if (off > 0 && off < sbuf.st_size)
            mid++;
        else if (off <= 0)
            delay_ms = delay_ms * 2 > 4000 ? 4000 : delay_ms * 2;
        else
            delay_ms = delay_ms * 2 / 3 > 5 ? delay_ms * 2 / 3 : 5;
    }
    assert_true(killed > 0);
    assert_true(mid > 0); /* at least one kill landed in the middle of the replay */
    assert_int_equal(test_run_trail(out, b), 0); /* resume to the end */
    assert_true(enc_test_store_digest(sa, ENC_DIGEST_STATE) ==
                enc_test_store_digest(sb, ENC_DIGEST_STATE));
    /* the positions are keyed by the same input path, so they match too */
    assert_true(enc_test_store_digest(sa, ENC_DIGEST_POS) ==
                enc_test_store_digest(sb, ENC_DIGEST_POS));
    size_t na, nb;
    char *xa = test_slurp(ra, &na), *xb = test_slurp(rb, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(xa, xb, na);
    assert_true(na > 0);
    free(xa);
    free(xb);
}

static void test_import(void **state) {
    fixture *f = *state;
    char csv[300], ev[300], out[300], ml[300], mv[300];
    snprintf(csv, sizeof csv, "%s/tb.csv", f->dir);
    snprintf(ev, sizeof ev, "%s/tb.jsonl", f->dir);
    snprintf(out, sizeof out, "%s/out4.txt", f->dir);
    FILE *fp = fopen(csv, "w");
    fputs("1,10,100,pv,1511544070\n1,11,100,buy,1511544080\n2,12,101,cart,1511544090\n"
          "2,13,101,fav,1511544091\n3,14,102,pv,1511544092\n3,15,10",
          fp); /* user 3 is cut */
    fclose(fp);
    const char *a[] = {"import", "taobao", csv, "--out", ev, NULL};
    assert_int_equal(test_run_trail(out, a), 0);
    char *o = test_slurp(ev, NULL);
    assert_non_null(strstr(o, "{\"user_id\":1,\"item_id\":10,\"category_id\":100,\"action\":"
                              "\"click\",\"ts\":1511544070}"));
    assert_non_null(strstr(o, "\"action\":\"buy\""));
    assert_non_null(strstr(o, "\"action\":\"fav\""));
    assert_null(strstr(o, "\"user_id\":3")); /* the truncated last user is dropped */
    free(o);

    snprintf(ml, sizeof ml, "%s/ratings.csv", f->dir);
    snprintf(mv, sizeof mv, "%s/movies.csv", f->dir);
    fp = fopen(mv, "w");
    fputs("movieId,title,genres\r\n1,Toy Story (1995),Adventure|Animation\r\n"
          "2,\"American President, The (1995)\",Comedy|Drama|Romance\r\n3,Unknown,(no genres "
          "listed)\r\n",
          fp);
    fclose(fp);
    fp = fopen(ml, "w");
    fputs("userId,movieId,rating,timestamp\r\n1,1,4.0,964982703\r\n1,2,4.0,964981247\r\n1,3,3.5,"
          "964982224\r\n",
          fp);
    fclose(fp);
    const char *b[] = {"import", "movielens", ml, "--out", ev, NULL};
    assert_int_equal(test_run_trail(out, b), 0);
    o = test_slurp(ev, NULL);
    /* time order within the user; category = first genre (Adventure 2, Comedy 5, none 0) */
    const char *want =
        "{\"user_id\":1,\"item_id\":2,\"category_id\":5,\"action\":\"rate\",\"ts\":964981247}\n"
        "{\"user_id\":1,\"item_id\":3,\"category_id\":0,\"action\":\"rate\",\"ts\":964982224}\n"
        "{\"user_id\":1,\"item_id\":1,\"category_id\":2,\"action\":\"rate\",\"ts\":964982703}\n";
    if (strcmp(o, want)) fail_msg("movielens import:\n%s", o);
    free(o);
}

/* bench encode runs end to end and reports what the store costs a user: at least the user record
 * (128 + 4 S NB C + 4 S NB bytes, with the bench's C, S and tau) */
static void test_bench_encode(void **state) {
    fixture *f = *state;
    char out[300];
    snprintf(out, sizeof out, "%s/bench.json", f->dir);
    const char *a[] = {"bench",   "encode", "--json",   "--events", "20000",
                       "--users", "200",    "--window", "100",      NULL};
    assert_int_equal(test_run_trail(out, a), 0);
    char *o = test_slurp(out, NULL);
    assert_non_null(o);
    const char *p = strstr(o, "\"store_bytes_per_user\":");
    assert_non_null(p);
    double per_user = strtod(p + 23, NULL);
    const char *bits = strstr(o, "\"bits\":"), *dim = strstr(o, "\"dim\":");
    const char *sigs = strstr(o, "\"signatures\":");
    assert_true(bits && dim && sigs);
    double nb = (double)(1 << atoi(bits + 7)), S = atof(sigs + 13), C = atof(dim + 6);
    assert_true(per_user >= 128 + 4 * S * nb * C + 4 * S * nb); /* at least the user record */
    assert_non_null(strstr(o, "\"events_per_s\":"));
    free(o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_input_rejected),
        cmocka_unit_test(test_idempotent_and_reencode),
        cmocka_unit_test(test_store_takes_the_model_window),
        cmocka_unit_test(test_kill9_resume),
        cmocka_unit_test(test_import),
        cmocka_unit_test(test_bench_encode),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
