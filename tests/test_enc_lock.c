/* test_enc_lock.c: one writer per store (issue 14, item 1).
 * - CLI: while one `trail encode` holds a store, a second `trail encode` (and `trail reencode`) is
 *   refused at open, exit 1, with a message naming the store, "another writer" and the holder's
 *   pid, and touches nothing; readers (`trail inspect --digest`) still work; the final state equals
 *   one uninterrupted replay; the lock goes with its process, kill -9 included.
 * - CLI race: two replays of one file started together on one store: never a double count.
 * - In process: the writer lock between handles; and, with the lock bypassed (two handles without
 *   it), the positions checked inside each write transaction: overlapping batches from two
 *   writers never count an event twice (file-style and Kafka-style sources). */
#include "enc_test_util.h"

#include "enc_store.h"
#include "sch_event.h"
#include "test_proc.h"

#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enc_test_dir fixture;

/* Spawn TRAIL_BIN with args, stdin from a new pipe (*wfd: its write end), output to out. */
static pid_t spawn_stdin(const char *out, const char *const *args, int *wfd) {
    const char *argv[32];
    int n = 0, p[2];
    argv[n++] = test_trail_bin();
    for (; *args && n < 31; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    if (pipe(p) != 0) fail_msg("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[0], 0);
        close(p[0]);
        close(p[1]);
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fo, 1);
        dup2(fo, 2);
        execv(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    close(p[0]);
    *wfd = p[1];
    return pid;
}

/* Wait (up to 20 s) until the store's lock file names pid: the writer then holds the lock. */
static void wait_lock_holder(const char *store, pid_t pid) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", store, ENC_LOCK_FILE);
    for (int t = 0; t < 1000; t++) {
        char *s = test_slurp(p, NULL);
        long got = s ? strtol(s, NULL, 10) : 0;
        free(s);
        if (got == (long)pid) return;
        test_msleep(20);
    }
    fail_msg("pid %ld never took the writer lock of %s", (long)pid, store);
}

static int setup(void **state) {
    if (enc_test_dir_setup(state)) return -1;
    fixture *f = *state;
    const char *a[] = {"model",        "init", "--out",  f->model, "--dim",       "16",
                       "--signatures", "4",    "--bits", "3",      "--item-rows", "4096",
                       "--cat-rows",   "64",   "--seed", "1",      NULL};
    return test_run_trail(NULL, a) == 0 ? 0 : -1;
}

#define teardown enc_test_dir_teardown

/* The refusal names the store, says another writer holds it, and gives the holder's pid (holder
 * 0: any). */
static void assert_refused(const char *out, const char *store, pid_t holder) {
    char *o = test_slurp(out, NULL), pid[32] = "pid ";
    assert_non_null(o);
    if (holder) snprintf(pid, sizeof pid, "pid %ld", (long)holder);
    if (!strstr(o, "another writer holds it") || !strstr(o, store) || !strstr(o, pid))
        fail_msg("refusal without the store, 'another writer holds it' or '%s': %s", pid, o);
    free(o);
}

static void test_cli_second_writer_refused(void **state) {
    fixture *f = *state;
    char ev[300], ref[300], st[300], out[300], outa[300], outi[300], empty[300];
    snprintf(ev, sizeof ev, "%s/ev.jsonl", f->dir);
    snprintf(ref, sizeof ref, "%s/ref", f->dir);
    snprintf(st, sizeof st, "%s/st", f->dir);
    snprintf(out, sizeof out, "%s/out.txt", f->dir);
    snprintf(outa, sizeof outa, "%s/outa.txt", f->dir);
    snprintf(outi, sizeof outi, "%s/outi.txt", f->dir);
    snprintf(empty, sizeof empty, "%s/empty.jsonl", f->dir);
    enc_test_write_events(ev, 5000, 40, 97);
    fclose(fopen(empty, "w"));
    const char *r[] = {"encode",  "--model", f->model,  "--store", ref,
                       "--input", ev,        "--batch", "1000",    NULL};
    assert_int_equal(test_run_trail(out, r), 0);

    /* writer A holds the store: it reads stdin, which stays open until the test writes it */
    int wfd;
    const char *a[] = {"encode",  "--model", f->model,  "--store", st,
                       "--input", "-",       "--batch", "1000",    NULL};
    pid_t pa = spawn_stdin(outa, a, &wfd);
    wait_lock_holder(st, pa);

    const char *b[] = {"encode",  "--model", f->model,  "--store", st,
                       "--input", ev,        "--batch", "1000",    NULL};
    assert_int_equal(test_run_trail(out, b), 1);
    assert_refused(out, st, pa);
    const char *re[] = {"reencode", "--model", f->model, "--store", st, NULL};
    assert_int_equal(test_run_trail(out, re), 1);
    assert_refused(out, st, pa);
    /* readers need no lock */
    const char *i[] = {"inspect", "--store", st, "--digest", NULL};
    assert_int_equal(test_run_trail(outi, i), 0);
    char *o = test_slurp(outi, NULL);
    assert_non_null(strstr(o, "\"state_digest\":"));
    free(o);

    /* A replays the file through stdin and ends: the state of one uninterrupted replay */
    char *data = test_slurp(ev, NULL);
    size_t len = strlen(data), done = 0;
    while (done < len) {
        ssize_t k = write(wfd, data + done, len - done);
        if (k <= 0) fail_msg("write to the writer: %s", strerror(errno));
        done += (size_t)k;
    }
    free(data);
    close(wfd);
    assert_int_equal(test_wait_exit(pa, 120000), 0);
    assert_true(enc_test_store_digest(st, ENC_DIGEST_STATE) ==
                enc_test_store_digest(ref, ENC_DIGEST_STATE));
    char rj[2][400]; /* the refused writers did not touch the reject file either */
    snprintf(rj[0], sizeof rj[0], "%s/rejects.jsonl", ref);
    snprintf(rj[1], sizeof rj[1], "%s/rejects.jsonl", st);
    char *x = test_slurp(rj[0], NULL), *y = test_slurp(rj[1], NULL);
    assert_non_null(x);
    assert_non_null(y);
    assert_true(strlen(x) > 0);
    assert_string_equal(x, y);
    free(x);
    free(y);

    /* the lock went with A; and with a writer killed by SIGKILL */
    const char *e[] = {"encode", "--model", f->model, "--store", st, "--input", empty, NULL};
    assert_int_equal(test_run_trail(out, e), 0);
    pid_t pk = spawn_stdin(outa, a, &wfd);
    wait_lock_holder(st, pk);
    assert_int_equal(test_run_trail(out, e), 1);
    assert_refused(out, st, pk);
    kill(pk, SIGKILL);
    assert_int_equal(test_wait_exit(pk, 20000), 128 + SIGKILL);
    close(wfd);
    assert_int_equal(test_run_trail(out, e), 0);
    assert_true(enc_test_store_digest(st, ENC_DIGEST_STATE) ==
                enc_test_store_digest(ref, ENC_DIGEST_STATE));
}

/* The reproduction: `for i in 1 2; do trail encode ... --batch 1000 & done`. Whichever
 * starts second is refused (exit 1, with the message) or, if the first has already finished,
 * resumes at its end and applies nothing; the state is always that of one replay. */
static void test_cli_race(void **state) {
    fixture *f = *state;
    char ev[300], ref[300], out[2][300];
    snprintf(ev, sizeof ev, "%s/race.jsonl", f->dir);
    snprintf(ref, sizeof ref, "%s/race-ref", f->dir);
    enc_test_write_events(ev, 20000, 200, 97);
    const char *r[] = {"encode",  "--model", f->model,  "--store", ref,
                       "--input", ev,        "--batch", "1000",    NULL};
    assert_int_equal(test_run_trail(NULL, r), 0);
    uint64_t want = enc_test_store_digest(ref, ENC_DIGEST_STATE | ENC_DIGEST_POS);
    for (int round = 0; round < 3; round++) {
        char st[300];
        snprintf(st, sizeof st, "%s/race%d", f->dir, round);
        const char *argv[] = {test_trail_bin(), "encode", "--model", f->model, "--store", st,
                              "--input",        ev,       "--batch", "1000",   NULL};
        pid_t pid[2];
        for (int k = 0; k < 2; k++) {
            snprintf(out[k], sizeof out[k], "%s/race%d-%d.txt", f->dir, round, k);
            pid[k] = test_spawn((char *const *)(uintptr_t)argv, out[k], out[k], 0);
        }
        int rc[2] = {test_wait_exit(pid[0], 120000), test_wait_exit(pid[1], 120000)};
        assert_true(rc[0] == 0 || rc[1] == 0);
        for (int k = 0; k < 2; k++) {
            if (rc[k] == 0) continue;
            assert_int_equal(rc[k], 1);
            assert_refused(out[k], st, 0);
        }
        assert_true(enc_test_store_digest(st, ENC_DIGEST_STATE | ENC_DIGEST_POS) == want);
    }
}

// ---------------------------------------------------------------------------------------------
// In process

static enc_store *open_handle(const char *path, int writer, const mdl_model *m) {
    char err[512];
    enc_store_conf conf;
    enc_store *st = NULL;
    enc_store_conf_default(&conf);
    conf.path = path;
    conf.window = 50;
    conf.recent = 8;
    conf.durable = 0;
    conf.writer = writer;
    if (enc_store_open(&st, &conf, err, sizeof err)) fail_msg("open %s: %s", path, err);
    if (m && enc_store_bind_model(st, m, err, sizeof err)) fail_msg("bind: %s", err);
    return st;
}

static void test_lock_between_handles(void **state) {
    fixture *f = *state;
    char path[400], err[512], pid[32];
    snprintf(path, sizeof path, "%s/locked", f->dir);
    enc_store *w = open_handle(path, 1, NULL);
    enc_store_conf conf;
    enc_store *x = NULL;
    enc_store_conf_default(&conf);
    conf.path = path;
    conf.window = conf.recent = 0;
    conf.writer = 1;
    err[0] = 0;
    assert_int_equal(enc_store_open(&x, &conf, err, sizeof err), CORE_ESTORE);
    assert_null(x);
    snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
    if (!strstr(err, "another writer holds it") || !strstr(err, path) || !strstr(err, pid))
        fail_msg("refusal: %s", err);
    conf.writer = 0; /* a reader opens fine */
    assert_int_equal(enc_store_open(&x, &conf, err, sizeof err), CORE_OK);
    enc_store_close(x);
    enc_store_close(w); /* released on close */
    conf.writer = 1;
    assert_int_equal(enc_store_open(&x, &conf, err, sizeof err), CORE_OK);
    enc_store_close(x);
}

/* n behaviors over `users` users. */
static sch_event *make_events(size_t n, uint64_t users, uint64_t seed) {
    sch_event *ev = calloc(n, sizeof *ev);
    core_rng r;
    core_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        sch_behavior b = enc_test_behavior(&r, 5000 + (int64_t)i);
        ev[i].user_id = 100 + core_rng_below(&r, users);
        ev[i].item_id = b.item_id;
        ev[i].category_id = b.category_id;
        ev[i].ts = b.ts;
        ev[i].action = b.action;
    }
    return ev;
}

/* Events [lo, hi) as one batch of a file replay: position "file:x" = hi, "file:x#rec" = hi. */
static int file_batch(enc_store *st, const sch_event *ev, size_t lo, size_t hi) {
    enc_batch *b;
    assert_int_equal(enc_batch_begin(st, &b), CORE_OK);
    for (size_t i = lo; i < hi; i++)
        assert_int_equal(enc_batch_apply(b, &ev[i]), CORE_OK);
    assert_int_equal(enc_batch_set_offset(b, "file:x", (int64_t)hi), CORE_OK);
    assert_int_equal(enc_batch_set_offset(b, "file:x#rec", (int64_t)hi), CORE_OK);
    return enc_batch_commit(b);
}

static int64_t resume_at(enc_store *st, const char *source) {
    int64_t off = -1;
    int rc = enc_store_get_offset(st, source, &off);
    assert_true(rc == CORE_OK || rc == CORE_ENOTFOUND);
    return rc == CORE_OK ? off : 0;
}

/* Two writers without the lock, one file: every interleaving of their overlapping batches ends in
 * the state of one replay; a batch already applied is skipped, one partly applied is refused with
 * nothing written, and its writer resumes from the stored position. */
static void test_positions_checked_in_txn(void **state) {
    fixture *f = *state;
    const size_t N = 1000;
    mdl_model *m = enc_test_model(16, 4, 3, 7);
    sch_event *ev = make_events(N, 30, 9);
    char rp[400], sp[400];
    snprintf(rp, sizeof rp, "%s/pos-ref", f->dir);
    snprintf(sp, sizeof sp, "%s/pos", f->dir);
    enc_store *ref = open_handle(rp, 0, m);
    for (size_t i = 0; i < N; i += 100)
        assert_int_equal(file_batch(ref, ev, i, i + 100), CORE_OK);
    uint64_t want;
    assert_int_equal(enc_store_digest(ref, ENC_DIGEST_STATE | ENC_DIGEST_POS, &want), CORE_OK);
    enc_store_close(ref);

    enc_store *a = open_handle(sp, 0, m), *b = open_handle(sp, 0, m);
    uint64_t d0, d1;
    assert_int_equal(resume_at(a, "file:x"), 0);
    assert_int_equal(resume_at(b, "file:x"), 0);
    assert_int_equal(file_batch(a, ev, 0, 300), CORE_OK);   /* applied */
    assert_int_equal(file_batch(b, ev, 0, 300), CORE_OK);   /* already applied: skipped */
    assert_int_equal(file_batch(b, ev, 300, 500), CORE_OK); /* applied */
    assert_int_equal(file_batch(a, ev, 300, 400), CORE_OK); /* inside b's: skipped */
    assert_int_equal(enc_store_digest(a, ENC_DIGEST_STATE | ENC_DIGEST_POS, &d0), CORE_OK);
    assert_int_equal(file_batch(a, ev, 400, 600), CORE_ESTORE); /* 400..500 applied by b */
    assert_int_equal(enc_store_digest(a, ENC_DIGEST_STATE | ENC_DIGEST_POS, &d1), CORE_OK);
    assert_true(d0 == d1); /* nothing written */
    assert_int_equal(resume_at(a, "file:x"), 500);
    assert_int_equal(file_batch(a, ev, 500, 700), CORE_OK);
    assert_int_equal(file_batch(b, ev, 500, 1000), CORE_ESTORE);
    assert_int_equal(resume_at(b, "file:x"), 700);
    assert_int_equal(file_batch(b, ev, 700, 1000), CORE_OK);
    assert_int_equal(file_batch(a, ev, 700, 1000), CORE_OK); /* skipped */
    assert_int_equal(enc_store_digest(a, ENC_DIGEST_STATE | ENC_DIGEST_POS, &d1), CORE_OK);
    assert_true(d1 == want);
    int64_t rec;
    assert_int_equal(enc_store_get_offset(a, "file:x#rec", &rec), CORE_OK);
    assert_int_equal(rec, 1000);

    enc_store_close(a);
    enc_store_close(b);
    free(ev);
    mdl_model_destroy(m);
}

/* Kafka-style: two partitions in one batch, two writers (as two consumer groups on one store). */
static int kafka_batch(enc_store *st, const sch_event *ev, const size_t lo[2], const size_t hi[2]) {
    enc_batch *b;
    char src[32];
    assert_int_equal(enc_batch_begin(st, &b), CORE_OK);
    for (int p = 0; p < 2; p++) { /* partition p holds the events of users with parity p */
        for (size_t i = lo[p]; i < hi[p]; i++) {
            if (ev[i].user_id % 2 == (uint64_t)p)
                assert_int_equal(enc_batch_apply(b, &ev[i]), CORE_OK);
        }
        snprintf(src, sizeof src, "kafka:t:%d", p);
        assert_int_equal(enc_batch_set_offset(b, src, (int64_t)hi[p]), CORE_OK);
    }
    return enc_batch_commit(b);
}

static void test_positions_kafka_style(void **state) {
    fixture *f = *state;
    mdl_model *m = enc_test_model(16, 4, 3, 7);
    sch_event *ev = make_events(600, 30, 11);
    char rp[400], sp[400];
    snprintf(rp, sizeof rp, "%s/k-ref", f->dir);
    snprintf(sp, sizeof sp, "%s/k", f->dir);
    enc_store *ref = open_handle(rp, 0, m);
    const size_t z[2] = {0, 0}, h1[2] = {200, 200}, h2[2] = {400, 400}, h3[2] = {600, 600};
    assert_int_equal(kafka_batch(ref, ev, z, h3), CORE_OK);
    uint64_t want, d0, d1;
    assert_int_equal(enc_store_digest(ref, ENC_DIGEST_STATE | ENC_DIGEST_POS, &want), CORE_OK);
    enc_store_close(ref);

    enc_store *a = open_handle(sp, 0, m), *b = open_handle(sp, 0, m);
    for (int p = 0; p < 2; p++) { /* both assigned both partitions, nothing stored: rebuild */
        char src[32];
        snprintf(src, sizeof src, "kafka:t:%d", p);
        assert_int_equal(resume_at(a, src), 0);
        assert_int_equal(resume_at(b, src), 0);
    }
    assert_int_equal(kafka_batch(a, ev, z, h1), CORE_OK);
    assert_int_equal(kafka_batch(b, ev, z, h1), CORE_OK);  /* skipped */
    assert_int_equal(kafka_batch(b, ev, h1, h2), CORE_OK); /* applied */
    assert_int_equal(enc_store_digest(a, ENC_DIGEST_STATE | ENC_DIGEST_POS, &d0), CORE_OK);
    const size_t mixed[2] = {200, 400}, mixed_hi[2] = {400, 600};
    /* p0's events all applied by b, p1's in part: refused (they cannot be told apart) */
    assert_int_equal(kafka_batch(a, ev, mixed, mixed_hi), CORE_ESTORE);
    assert_int_equal(enc_store_digest(a, ENC_DIGEST_STATE | ENC_DIGEST_POS, &d1), CORE_OK);
    assert_true(d0 == d1);
    assert_int_equal(resume_at(a, "kafka:t:0"), 400);
    assert_int_equal(resume_at(a, "kafka:t:1"), 400);
    assert_int_equal(kafka_batch(a, ev, h2, h3), CORE_OK);
    assert_int_equal(enc_store_digest(a, ENC_DIGEST_STATE | ENC_DIGEST_POS, &d1), CORE_OK);
    assert_true(d1 == want);
    enc_store_close(a);
    enc_store_close(b);
    free(ev);
    mdl_model_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_between_handles),
        cmocka_unit_test(test_positions_checked_in_txn),
        cmocka_unit_test(test_positions_kafka_style),
        cmocka_unit_test(test_cli_second_writer_refused),
        cmocka_unit_test(test_cli_race),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
