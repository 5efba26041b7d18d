/* test_enc_integrity.c: every stored user record and window chunk carries a checksum. Damage to a
 * value (bytes changed through LMDB itself, so LMDB's own pages stay intact) is found on every
 * read and by enc_store_verify, names the user, and costs only that user: the others are read and
 * written as before, and a batch's events for a damaged user are quarantined, not applied and not
 * lost. A store written before checksums gains them from its first writer.
 * Before checksums, each of these changed bytes was served and extended without an error. */
#include "enc_test_util.h"

#include "core_alloc.h"
#include "enc_state_int.h"
#include "pipe_metrics.h"
#include "test_serve_common.h"

#include <lmdb.h>

typedef enc_test_dir fixture;
#define setup enc_test_dir_setup
#define teardown enc_test_dir_teardown

#define USERS 24

static enc_store *open_at(const char *path, int writer) {
    char err[512];
    enc_store_conf conf;
    enc_store *st = NULL;
    enc_store_conf_default(&conf);
    conf.path = path;
    conf.window = 300;
    conf.recent = 20;
    conf.writer = writer;
    if (enc_store_open(&st, &conf, err, sizeof err)) fail_msg("open %s: %s", path, err);
    return st;
}

static uint64_t uid_of(uint64_t u) {
    return 1000 + u * 31;
}

/* n behaviors spread over the USERS users, batches of 200, positions in source "file:t" */
static void encode(enc_store *st, const mdl_model *m, size_t n, uint64_t seed, int64_t *pos) {
    char err[512];
    core_rng r;
    core_rng_seed(&r, seed);
    assert_int_equal(enc_store_bind_model(st, m, err, sizeof err), CORE_OK);
    for (size_t i = 0; i < n; i += 200) {
        enc_batch *b;
        assert_int_equal(enc_batch_begin(st, &b), CORE_OK);
        for (size_t j = i; j < n && j < i + 200; j++) {
            sch_behavior bh = enc_test_behavior(&r, 7000 + (int64_t)j);
            sch_event e = {.user_id = uid_of(j % USERS),
                           .item_id = bh.item_id,
                           .category_id = bh.category_id,
                           .ts = bh.ts,
                           .action = bh.action};
            assert_int_equal(enc_batch_apply(b, &e), CORE_OK);
        }
        *pos += 200;
        assert_int_equal(enc_batch_set_offset(b, "file:t", *pos), CORE_OK);
        assert_int_equal(enc_batch_commit(b), CORE_OK);
    }
}

static void be64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* Change one byte of a stored value (XOR x, nonzero) through LMDB, as a bad disk or a stray write
 * inside a value would: db "user" (key = user) or "win" (key = user, chunk). Returns the value's
 * size, or 0 when there is no such value. */
static size_t damage_key(const char *path, const char *db, const void *key, size_t klen, size_t off,
                         uint8_t x) {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint8_t buf[70000];
    MDB_val k = {klen, (void *)(uintptr_t)key}, v;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 10), 0);
    assert_int_equal(mdb_env_set_mapsize(env, (size_t)1 << 30), 0);
    assert_int_equal(mdb_env_open(env, path, 0, 0664), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
    size_t n = 0;
    if (mdb_get(txn, dbi, &k, &v) == 0) {
        n = v.mv_size;
        assert_true(n <= sizeof buf);
        memcpy(buf, v.mv_data, n);
        buf[off % n] ^= x;
        MDB_val nv = {n, buf};
        assert_int_equal(mdb_put(txn, dbi, &k, &nv, 0), 0);
    }
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    return n;
}

static size_t damage(const char *path, const char *db, uint64_t uid, uint64_t chunk, size_t off,
                     uint8_t x) {
    uint8_t kb[16];
    be64(kb, uid);
    be64(kb + 8, chunk);
    return damage_key(path, db, kb, strcmp(db, "win") ? 8 : 16, off, x);
}

/* a store written in format 1 before checksums: one "user" record per user (the head's 128 bytes,
 * magic "TRU1", format 1, zero where n_summed and the checksum go, then the sums' body), no
 * "sums", meta format 1 and no meta "checksums", zeros where the chunks' sums go (keys collected
 * first, values rewritten with mdb_put) */
static void make_old(const char *path) {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi, sdbi;
    MDB_cursor *cur;
    MDB_val k, v;
    static uint8_t keys[4096][16], buf[70000];
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 10), 0);
    assert_int_equal(mdb_env_set_mapsize(env, (size_t)1 << 30), 0);
    assert_int_equal(mdb_env_open(env, path, 0, 0664), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    MDB_val mk = {9, "checksums"}, fk = {6, "format"};
    uint64_t one = 1;
    MDB_val fv = {8, &one};
    assert_int_equal(mdb_del(txn, dbi, &mk, NULL), 0);
    assert_int_equal(mdb_put(txn, dbi, &fk, &fv, 0), 0);
    assert_int_equal(mdb_dbi_open(txn, "sums", 0, &sdbi), 0);
    for (int d = 0; d < 2; d++) {
        size_t n = 0, klen = d ? 16 : 8;
        assert_int_equal(mdb_dbi_open(txn, d ? "win" : "user", 0, &dbi), 0);
        assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
        for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op) == 0;
             op = MDB_NEXT) {
            assert_true(n < 4096 && k.mv_size == klen);
            memcpy(keys[n++], k.mv_data, klen);
        }
        mdb_cursor_close(cur);
        for (size_t i = 0; i < n; i++) {
            k = (MDB_val){klen, keys[i]};
            assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
            size_t len = v.mv_size;
            memcpy(buf, v.mv_data, len);
            if (d) {
                memset(buf + 28, 0, 4);
            } else {
                assert_int_equal(len, 128);
                memcpy(buf, "TRU1", 4);
                buf[4] = 1;
                memset(buf + 112, 0, 16);
                assert_int_equal(mdb_get(txn, sdbi, &k, &v), 0);
                assert_true(v.mv_size > 64 && 128 + v.mv_size - 64 <= sizeof buf);
                memcpy(buf + 128, (const uint8_t *)v.mv_data + 64, v.mv_size - 64);
                len = 128 + v.mv_size - 64;
                assert_int_equal(mdb_del(txn, sdbi, &k, NULL), 0);
            }
            MDB_val nv = {len, buf};
            assert_int_equal(mdb_put(txn, dbi, &k, &nv, 0), 0);
        }
    }
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

typedef struct seen {
    uint64_t uid[64];
    char what[64][8];
    int n;
} seen;

static void note(uint64_t user_id, const char *what, uint64_t chunk, int err, void *opaque) {
    seen *s = opaque;
    (void)chunk;
    assert_true(err == CORE_ECHECKSUM || err == CORE_EFORMAT);
    if (s->n < 64) {
        s->uid[s->n] = user_id;
        snprintf(s->what[s->n], sizeof s->what[0], "%s", what);
        s->n++;
    }
}

/* read every user; bit u of the result set when user u fails (the failure is a checksum one) */
static uint64_t failing_users(enc_store *st, uint64_t *n_events) {
    enc_reader *r;
    enc_user_view v;
    sch_behavior win[300];
    uint32_t got;
    uint64_t bad = 0;
    assert_int_equal(enc_reader_new(st, &r), CORE_OK);
    assert_int_equal(enc_reader_begin(r), CORE_OK);
    for (uint64_t u = 0; u < USERS; u++) {
        int rc = enc_reader_user(r, uid_of(u), &v);
        if (!rc) rc = enc_reader_window(r, uid_of(u), win, 300, &got);
        if (rc) {
            assert_int_equal(rc, CORE_ECHECKSUM);
            bad |= 1ull << u;
        } else if (n_events) {
            n_events[u] = v.n_events;
        }
    }
    enc_reader_end(r);
    enc_reader_destroy(r);
    return bad;
}

static void test_damage_costs_one_user(void **state) {
    fixture *f = *state;
    mdl_model *m = enc_test_model(16, 4, 3, 71);
    char path[512];
    int64_t pos = 0;
    snprintf(path, sizeof path, "%s/s", f->dir);
    enc_store *st = open_at(path, 1);
    encode(st, m, 12000, 5, &pos); /* 500 behaviors a user: window 300, chunks 1..3 */
    assert_int_equal(failing_users(st, NULL), 0);
    enc_store_close(st);

    /* user 3: a bucket sum's byte; user 7: an item id in its newest chunk (read with the recent
     * sequence); user 11: its oldest chunk, in a record already older than the window (read with
     * the window, and by the next eviction); user 13: its head's counters */
    assert_true(damage(path, "sums", uid_of(3), 0, 64 + 37, 0x5a) > 0);
    assert_true(damage(path, "user", uid_of(13), 0, 50, 0x04) > 0);
    assert_true(damage(path, "win", uid_of(7), 3, 32 * 100 + 2, 0x01) > 0);
    assert_true(damage(path, "win", uid_of(11), 1, 32 * 5 + 9, 0x80) > 0);

    st = open_at(path, 1);
    uint64_t before[USERS] = {0}, after[USERS] = {0},
             three = (1ull << 3) | (1ull << 7) | (1ull << 11) | (1ull << 13);
    assert_int_equal(failing_users(st, before), three);
    enc_verify_report vr;
    seen s = {0};
    assert_int_equal(enc_store_verify(st, note, &s, &vr), CORE_OK);
    assert_int_equal(vr.users, USERS);
    assert_true(vr.checksums);
    assert_int_equal(vr.damaged_users, 4);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.uid[0], uid_of(3)), assert_string_equal(s.what[0], "sums");
    assert_int_equal(s.uid[1], uid_of(7)), assert_string_equal(s.what[1], "chunk");
    assert_int_equal(s.uid[2], uid_of(11)), assert_string_equal(s.what[2], "chunk");
    assert_int_equal(s.uid[3], uid_of(13)), assert_string_equal(s.what[3], "record");

    /* one more pass over every user: the batch commits and everyone else moves on. Tier 1 reads
     * a user's head and tail chunk: users 13 and 7 are left as they are and their events
     * quarantined. Tier 2 reads the sums and the chunks it evicts from: users 3 and 11 get
     * their behaviors in the window (nothing lost) but their sums stay where they were, and
     * they stay reported */
    encode(st, m, 2400, 6, &pos);
    /* user 11's window has moved past its damaged chunk, which stays in the store (its sums
     * have still to evict from it): its window reads again, and verify still names it */
    assert_int_equal(failing_users(st, after), three & ~(1ull << 11));
    assert_int_equal(after[11], 600);
    for (uint64_t u = 0; u < USERS; u++)
        if (u != 3 && u != 7 && u != 11 && u != 13) assert_int_equal(after[u], before[u] + 100);
    uint64_t damaged, quarantined;
    enc_store_damage(st, &damaged, &quarantined);
    assert_int_equal(quarantined, 200); /* users 7 and 13: 100 events each */
    assert_true(damaged >= 4);
    assert_int_equal(enc_store_verify(st, NULL, NULL, &vr), CORE_OK);
    assert_int_equal(vr.damaged_users, 4);
    assert_int_equal(vr.quarantined, 200);
    uint64_t lagging;
    assert_int_equal(enc_store_lagging(st, &lagging), CORE_OK);
    assert_int_equal(lagging, 0); /* damaged users are not retried batch after batch */
    pipe_metrics *met;            /* what a Kafka worker on this store reports */
    size_t len;
    assert_int_equal(pipe_metrics_new(&met, "t"), CORE_OK);
    pipe_metrics_set_store(met, st);
    char *text = pipe_metrics_render(met, &len), want[96];
    assert_non_null(text);
    assert_non_null(strstr(text, "trail_store_quarantined_events_total 200\n"));
    snprintf(want, sizeof want, "trail_store_damaged_users_total %llu\n",
             (unsigned long long)damaged);
    assert_non_null(strstr(text, want));
    core_free(text);
    pipe_metrics_destroy(met);
    int64_t next;
    assert_int_equal(enc_store_get_offset(st, "file:t", &next), CORE_OK);
    assert_int_equal(next, pos); /* the positions moved with the batch */
    assert_true(vr.positions_ok);
    enc_store_close(st);

    /* a damaged position would skip or repeat events on resume: refused, and verify says so */
    assert_int_equal(damage_key(path, "pos", "file:t", 6, 2, 0x01), 8);
    st = open_at(path, 1);
    assert_int_equal(enc_store_get_offset(st, "file:t", &next), CORE_ECHECKSUM);
    assert_int_equal(enc_store_verify(st, NULL, NULL, &vr), CORE_OK);
    assert_false(vr.positions_ok);
    enc_store_close(st);
    mdl_model_destroy(m);
}

/* Twenty random byte changes over random users' values: exactly the changed users fail, on every
 * read and in verify, and encoding goes on for everyone else. */
static void test_random_flips(void **state) {
    fixture *f = *state;
    mdl_model *m = enc_test_model(16, 4, 3, 72);
    char path[512];
    int64_t pos = 0;
    snprintf(path, sizeof path, "%s/r", f->dir);
    enc_store *st = open_at(path, 1);
    encode(st, m, 9600, 9, &pos); /* 400 a user: chunks 0..3 (chunk 0 partly before the window) */
    enc_store_close(st);
    core_rng r;
    core_rng_seed(&r, 20261204);
    uint64_t hit = 0, hit_rec = 0;
    for (int i = 0; i < 20; i++) {
        uint64_t u = core_rng_below(&r, USERS);
        int in = (int)core_rng_below(&r, 3);        /* 0 head, 1 window chunk, 2 sums */
        uint64_t chunk = 1 + core_rng_below(&r, 3); /* chunks 1..3 hold window behaviors */
        size_t off = (size_t)core_rng_below(&r, 70000);
        uint8_t x = (uint8_t)(1 + core_rng_below(&r, 255));
        assert_true(damage(path,
                           in == 1 ? "win"
                           : in    ? "sums"
                                   : "user",
                           uid_of(u), chunk, off, x) > 0);
        hit |= 1ull << u;
        if (!in) hit_rec |= 1ull << u;
    }
    st = open_at(path, 1);
    enc_verify_report vr;
    seen s = {0};
    assert_int_equal(enc_store_verify(st, note, &s, &vr), CORE_OK);
    uint64_t named = 0;
    for (int i = 0; i < s.n; i++)
        named |= 1ull << ((s.uid[i] - 1000) / 31);
    assert_int_equal(named, hit);
    assert_int_equal(vr.damaged_users, (uint64_t)__builtin_popcountll(hit));
    uint64_t bad = failing_users(st, NULL);
    assert_int_equal(bad, hit); /* damaged users fail their reads, the others read fine */
    uint64_t before[USERS] = {0}, after[USERS] = {0};
    failing_users(st, before);
    encode(st, m, 2400, 10, &pos);
    assert_int_equal(failing_users(st, after), hit);
    for (uint64_t u = 0; u < USERS; u++)
        if (!(hit >> u & 1)) assert_int_equal(after[u], before[u] + 100);
    /* a writer checks what it reads: the user's record, the tail chunk, and the chunks it evicts
     * from; a damaged chunk in the middle of a window stops its user's writes once evictions
     * reach it (readers of the whole window see it at once) */
    uint64_t damaged, quarantined;
    enc_store_damage(st, &damaged, &quarantined);
    assert_true(quarantined >= 100 * (uint64_t)__builtin_popcountll(hit_rec));
    assert_true(quarantined <= 100 * (uint64_t)__builtin_popcountll(hit));
    enc_store_close(st);
    mdl_model_destroy(m);
}

/* A format-1 store written before checksums is refused by readers with what to do, and its first
 * writer adds the checksums and splits every record into head and sums (format 2): the result
 * equals a store written in format 2 from the start. */
static void test_old_store_gains_checksums(void **state) {
    fixture *f = *state;
    mdl_model *m = enc_test_model(16, 4, 3, 73);
    char a[512], b[512];
    int64_t pa = 0, pb = 0;
    snprintf(a, sizeof a, "%s/old", f->dir);
    snprintf(b, sizeof b, "%s/new", f->dir);
    enc_store *st = open_at(a, 1);
    encode(st, m, 4800, 11, &pa);
    enc_store_close(st);
    st = open_at(b, 1);
    encode(st, m, 4800, 11, &pb);
    enc_store_close(st);
    uint64_t want = enc_test_store_digest(b, ENC_DIGEST_STATE);
    make_old(a);

    { /* a reader changes nothing, and says what converts the store */
        char err[512];
        enc_store_conf conf;
        enc_store_conf_default(&conf);
        conf.path = a;
        conf.window = 300;
        conf.recent = 20;
        st = NULL;
        assert_int_equal(enc_store_open(&st, &conf, err, sizeof err), CORE_EVERSION);
        assert_non_null(strstr(err, "state format 1"));
        assert_non_null(strstr(err, "trail encode"));
    }
    enc_verify_report vr;

    st = open_at(a, 1); /* the first writer seals every record and chunk */
    assert_int_equal(enc_store_verify(st, NULL, NULL, &vr), CORE_OK);
    assert_true(vr.checksums);
    assert_int_equal(vr.damaged_users, 0);
    enc_store_close(st);
    assert_true(enc_test_store_digest(a, ENC_DIGEST_STATE) == want);
    assert_true(damage(a, "user", uid_of(5), 0, 3000, 0x10) > 0);
    st = open_at(a, 0);
    assert_int_equal(failing_users(st, NULL), 1ull << 5);
    enc_store_close(st);
    mdl_model_destroy(m);
}

/* The same through the CLI: inspect --verify names the user and exits 1, rank refuses that user
 * with the reason and scores another, and encode goes on, reporting what it quarantined. */
static void test_cli(void **state) {
    fixture *f = *state;
    char cmd[2048], out[4096], st[300], ev1[300], ev2[300], cand[300];
    snprintf(st, sizeof st, "%s/cli", f->dir);
    snprintf(ev1, sizeof ev1, "%s/ev1.jsonl", f->dir);
    snprintf(ev2, sizeof ev2, "%s/ev2.jsonl", f->dir);
    snprintf(cand, sizeof cand, "%s/cand.txt", f->dir);
    const char *bin = test_trail_bin();
    snprintf(cmd, sizeof cmd,
             "%s model init --out %s --dim 16 --signatures 4 --bits 3 --item-rows 4096 "
             "--cat-rows 64 --seed 1 >/dev/null 2>&1",
             bin, f->model);
    assert_int_equal(test_run(cmd, NULL, 0), 0);
    enc_test_write_events(ev1, 600, 5, 0);
    enc_test_write_events(ev2, 400, 5, 0);
    FILE *fp = fopen(cand, "w");
    assert_non_null(fp);
    fputs("5,1\n6,2\n", fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd,
             "%s encode --model %s --store %s --input %s --window 100 >/dev/null 2>&1", bin,
             f->model, st, ev1);
    assert_int_equal(test_run(cmd, NULL, 0), 0);
    snprintf(cmd, sizeof cmd, "%s inspect --store %s --verify 2>&1", bin, st);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"damaged_users\":0"));

    assert_true(damage(st, "user", 2, 0, 500, 0x04) > 0);
    assert_int_equal(test_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "user 2: record failed its checksum"));
    assert_non_null(strstr(out, "\"damaged_users\":1"));
    snprintf(cmd, sizeof cmd, "%s rank --model %s --store %s --user 2 --candidates %s 2>&1", bin,
             f->model, st, cand);
    assert_int_not_equal(test_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "checksum"));
    snprintf(cmd, sizeof cmd, "%s rank --model %s --store %s --user 3 --candidates %s 2>&1", bin,
             f->model, st, cand);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);

    /* serve: that user gets a 500 naming it, the others are scored, /metrics counts it */
    char args[1024], resp[8192], *body;
    pid_t pid = -1;
    FILE *sout = NULL;
    snprintf(args, sizeof args, "--model %s --store %s --listen 127.0.0.1:0 2>/dev/null", f->model,
             st);
    uint16_t port = (uint16_t)serve_spawn(args, "1", &pid, &sout);
    assert_true(port > 0);
    const char *req2 = "{\"user_id\": 2, \"candidates\": [{\"item_id\": 5, \"category_id\": 1}]}";
    const char *req3 = "{\"user_id\": 3, \"candidates\": [{\"item_id\": 5, \"category_id\": 1}]}";
    assert_int_equal(http_do(port, "POST", "/v1/score", req2, resp, sizeof resp, &body), 500);
    assert_non_null(strstr(body, "damaged_user_state"));
    assert_non_null(strstr(body, "user 2"));
    assert_int_equal(http_do(port, "POST", "/v1/score", req3, resp, sizeof resp, &body), 200);
    assert_int_equal(http_do(port, "GET", "/metrics", NULL, resp, sizeof resp, &body), 200);
    assert_non_null(strstr(body, "trail_store_damaged_users_total 1\n"));
    assert_non_null(strstr(body, "trail_request_errors_total{kind=\"damaged_user_state\"} 1\n"));
    kill(pid, SIGTERM);
    assert_true(serve_wait_exit(pid, 10000) >= 0);
    if (sout) fclose(sout);
    snprintf(cmd, sizeof cmd, "%s encode --model %s --store %s --input %s --json 2>/dev/null", bin,
             f->model, st, ev2);
    assert_int_equal(test_run(cmd, out, sizeof out), 0);
    const char *q = strstr(out, "\"quarantined\":");
    assert_non_null(q);
    assert_true(atoi(q + 14) > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_damage_costs_one_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_flips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_store_gains_checksums, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
