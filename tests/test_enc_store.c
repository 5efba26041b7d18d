/* test_enc_store.c: the LMDB store: same bytes whatever the batching, equal to the in-memory rule,
 * readers, reencode == fresh encode and the atomic switch, a full map, offsets, reopen checks. */
#include "enc_test_util.h"

#include "core_alloc.h"
#include "enc_state_int.h"
#include "enc_store.h"

#include <xxhash.h>

typedef enc_test_dir fixture;
#define setup enc_test_dir_setup
#define teardown enc_test_dir_teardown

static enc_store *open_store(const char *dir, const char *name, uint32_t window, uint32_t recent,
                             size_t map_size, size_t map_max) {
    char path[512], err[512];
    enc_store_conf conf;
    enc_store *st = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    enc_store_conf_default(&conf);
    conf.path = path;
    conf.window = window;
    conf.recent = recent;
    conf.durable = 0;
    if (map_size) conf.map_size = map_size;
    if (map_max) conf.map_max = map_max;
    int rc = enc_store_open(&st, &conf, err, sizeof err);
    if (rc) fail_msg("open %s: %s", path, err);
    return st;
}

/* n events over `users` users; every 13th is a labeled impression (not a behavior). */
static sch_event *make_events(size_t n, uint64_t users, uint64_t seed) {
    sch_event *ev = calloc(n, sizeof *ev);
    core_rng r;
    core_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        sch_behavior b = enc_test_behavior(&r, 5000 + (int64_t)i);
        ev[i].user_id = 100 + core_rng_below(&r, users) * 7919;
        ev[i].item_id = b.item_id;
        ev[i].category_id = b.category_id;
        ev[i].ts = b.ts;
        ev[i].action = b.action;
        if (i % 13 == 12) {
            ev[i].flags = SCH_F_LABEL;
            ev[i].label = 1;
            ev[i].action = SCH_ACTION_VIEW;
        }
    }
    return ev;
}

/* Apply ev[0..n) in batches whose sizes come from `split` (0: one batch). */
static void encode(enc_store *st, const sch_event *ev, size_t n, uint64_t split) {
    core_rng r;
    core_rng_seed(&r, split);
    for (size_t i = 0; i < n;) {
        size_t k = split ? 1 + core_rng_below(&r, split) : n;
        enc_batch *b;
        assert_int_equal(enc_batch_begin(st, &b), CORE_OK);
        for (size_t j = i; j < n && j < i + k; j++)
            assert_int_equal(enc_batch_apply(b, &ev[j]), CORE_OK);
        assert_int_equal(enc_batch_set_offset(b, "file:test", (int64_t)(i + k)), CORE_OK);
        assert_int_equal(enc_batch_commit(b), CORE_OK);
        i += k;
    }
}

static uint64_t digest(enc_store *st, int what) {
    uint64_t d;
    assert_int_equal(enc_store_digest(st, what, &d), CORE_OK);
    return d;
}

/* Same input, any batching: identical state bytes; and each user equals the in-memory rule. */
static void test_determinism_and_one_rule(void **state) {
    fixture *f = *state;
    mdl_model *m = enc_test_model(16, 4, 3, 11);
    char err[512];
    const size_t n = 12000;
    sch_event *ev = make_events(n, 6, 1);
    enc_store *st[3];
    const uint64_t splits[3] = {0, 997, 40};
    const char *names[3] = {"one", "k997", "k40"};
    for (int s = 0; s < 3; s++) {
        st[s] = open_store(f->dir, names[s], 300, 20, 0, 0);
        assert_int_equal(enc_store_bind_model(st[s], m, err, sizeof err), CORE_OK);
        encode(st[s], ev, n, splits[s]);
    }
    uint64_t d0 = digest(st[0], ENC_DIGEST_STATE);
    assert_true(d0 == digest(st[1], ENC_DIGEST_STATE));
    assert_true(d0 == digest(st[2], ENC_DIGEST_STATE));
    int64_t off;
    assert_int_equal(enc_store_get_offset(st[1], "file:test", &off), CORE_OK);
    assert_true(off >= (int64_t)n);
    assert_int_equal(enc_store_get_offset(st[1], "file:other", &off), CORE_ENOTFOUND);

    /* the store's users equal in-memory states fed the same behaviors */
    enc_reader *r;
    enc_ustate *us;
    enc_sigcache *c;
    assert_int_equal(enc_reader_new(st[2], &r), CORE_OK);
    assert_int_equal(enc_ustate_new(&us, m, 300), CORE_OK);
    assert_int_equal(enc_sigcache_new(&c, m, 512), CORE_OK);
    sch_behavior win[300], mwin[300];
    for (uint64_t u = 0; u < 6; u++) {
        uint64_t uid = 100 + u * 7919;
        enc_ustate_reset(us);
        for (size_t i = 0; i < n; i++) {
            if (ev[i].user_id != uid || (ev[i].flags & SCH_F_LABEL)) continue;
            sch_behavior b = {ev[i].item_id, ev[i].category_id, ev[i].ts, ev[i].action};
            enc_ustate_apply(us, c, &b);
        }
        enc_user_view mv, sv;
        enc_ustate_view(us, 20, &mv);
        assert_int_equal(enc_reader_begin(r), CORE_OK);
        assert_int_equal(enc_reader_user(r, uid, &sv), CORE_OK);
        assert_int_equal(sv.n_events, mv.n_events);
        assert_int_equal(sv.window_len, mv.window_len);
        assert_int_equal(sv.last_ts, mv.last_ts);
        assert_true(sv.encoding_version == m->encoding_version);
        assert_memory_equal(sv.bucket_sum, mv.bucket_sum, 4 * 8 * 16 * sizeof(float));
        assert_memory_equal(sv.bucket_cnt, mv.bucket_cnt, 4 * 8 * sizeof(uint32_t));
        assert_int_equal(sv.recent_len, mv.recent_len);
        for (uint32_t k = 0; k < sv.recent_len; k++) {
            assert_int_equal(sv.recent[k].item_id, mv.recent[k].item_id);
            assert_int_equal(sv.recent[k].ts, mv.recent[k].ts);
        }
        assert_true(sv.updated_at > 0);
        uint64_t acts = 0;
        for (int a = 0; a < 8; a++)
            acts += sv.action_cnt[a];
        assert_int_equal(acts, sv.n_events);
        uint32_t got;
        assert_int_equal(enc_reader_window(r, uid, win, 300, &got), CORE_OK);
        assert_int_equal(got, mv.window_len);
        assert_int_equal(enc_ustate_window(us, mwin, 300), got);
        for (uint32_t k = 0; k < got; k++)
            assert_int_equal(win[k].item_id, mwin[k].item_id);
        enc_reader_end(r);
    }
    enc_user_view v;
    assert_int_equal(enc_reader_begin(r), CORE_OK);
    assert_int_equal(enc_reader_user(r, 1, &v), CORE_ENOTFOUND);
    enc_reader_end(r);
    enc_reader_destroy(r);
    enc_ustate_destroy(us);
    enc_sigcache_destroy(c);
    for (int s = 0; s < 3; s++)
        enc_store_close(st[s]);
    free(ev);
    mdl_model_destroy(m);
}

/* Reencode == a fresh encode with the new model; readers switch atomically; the old model is
 * refused afterwards. */
static void test_reencode_equals_fresh(void **state) {
    fixture *f = *state;
    mdl_model *ma = enc_test_model(16, 4, 3, 21), *mb = enc_test_model(16, 4, 3, 22);
    char err[512];
    /* 3 users below the window (exact equality), 2 above it (eviction: within float rounding) */
    const size_t n = 3000;
    sch_event *ev = make_events(n, 5, 2);
    for (size_t i = 0; i < n; i++) {
        uint64_t u = i % 10;
        ev[i].user_id = u < 6 ? 1 + u % 3 : 50 + u % 2; /* users 1..3: 900 each, 50/51: 300 each */
    }
    enc_store *x = open_store(f->dir, "x", 1000, 16, 0, 0),
              *y = open_store(f->dir, "y", 1000, 16, 0, 0);
    /* window 1000: users 1..3 (about 830 behaviors) never evict; shrink for 50/51 below */
    assert_int_equal(enc_store_bind_model(x, ma, err, sizeof err), CORE_OK);
    assert_int_equal(enc_store_bind_model(y, mb, err, sizeof err), CORE_OK);
    encode(x, ev, n, 500);
    encode(y, ev, n, 0);
    enc_reader *r;
    enc_user_view v;
    assert_int_equal(enc_reader_new(x, &r), CORE_OK);
    assert_int_equal(enc_reader_begin(r), CORE_OK); /* a reader that started before the switch */
    uint64_t users;
    assert_int_equal(enc_store_reencode(x, mb, &users, err, sizeof err), CORE_OK);
    assert_int_equal(users, 5);
    for (uint64_t u = 1; u <= 3; u++) {
        assert_int_equal(enc_reader_user(r, u, &v), CORE_OK);
        assert_true(v.encoding_version == ma->encoding_version); /* still the old snapshot */
    }
    enc_reader_end(r);
    assert_int_equal(enc_reader_begin(r), CORE_OK);
    for (uint64_t u = 1; u <= 3; u++) {
        assert_int_equal(enc_reader_user(r, u, &v), CORE_OK);
        assert_true(v.encoding_version == mb->encoding_version);
    }
    enc_reader_end(r);
    enc_reader_destroy(r);
    assert_true(enc_store_encoding_version(x) == mb->encoding_version);
    /* without eviction the state (meta, users, windows) is byte-identical */
    assert_true(digest(x, ENC_DIGEST_STATE) == digest(y, ENC_DIGEST_STATE));
    enc_store_close(x);
    enc_store_close(y);
    /* the old model is refused, with the fix in the message */
    x = open_store(f->dir, "x", 1000, 16, 0, 0);
    assert_int_equal(enc_store_bind_model(x, ma, err, sizeof err), CORE_EMISMATCH);
    assert_non_null(strstr(err, "reencode"));
    assert_int_equal(enc_store_bind_model(x, mb, err, sizeof err), CORE_OK);
    enc_store_close(x);

    /* with eviction (window 100): counts exact, sums within float rounding of the fresh encode */
    enc_store *x2 = open_store(f->dir, "x2", 100, 16, 0, 0),
              *y2 = open_store(f->dir, "y2", 100, 16, 0, 0);
    assert_int_equal(enc_store_bind_model(x2, ma, err, sizeof err), CORE_OK);
    assert_int_equal(enc_store_bind_model(y2, mb, err, sizeof err), CORE_OK);
    encode(x2, ev, n, 300);
    encode(y2, ev, n, 0);
    assert_int_equal(enc_store_reencode(x2, mb, &users, err, sizeof err), CORE_OK);
    enc_reader *rx, *ry;
    assert_int_equal(enc_reader_new(x2, &rx), CORE_OK);
    assert_int_equal(enc_reader_new(y2, &ry), CORE_OK);
    assert_int_equal(enc_reader_begin(rx), CORE_OK);
    assert_int_equal(enc_reader_begin(ry), CORE_OK);
    const uint64_t uids[5] = {1, 2, 3, 50, 51};
    for (int k = 0; k < 5; k++) {
        enc_user_view a, b;
        assert_int_equal(enc_reader_user(rx, uids[k], &a), CORE_OK);
        assert_int_equal(enc_reader_user(ry, uids[k], &b), CORE_OK);
        assert_memory_equal(a.bucket_cnt, b.bucket_cnt, 32 * sizeof(uint32_t));
        assert_int_equal(a.n_events, b.n_events);
        for (int i = 0; i < 32 * 16; i++)
            assert_true(fabsf(a.bucket_sum[i] - b.bucket_sum[i]) <= 1e-5f);
    }
    enc_reader_end(rx);
    enc_reader_end(ry);
    enc_reader_destroy(rx);
    enc_reader_destroy(ry);
    enc_store_close(x2);
    enc_store_close(y2);
    free(ev);
    mdl_model_destroy(ma);
    mdl_model_destroy(mb);
}

/* A map too small for a batch: grows up to map_max; past it, CORE_EFULL with nothing written. */
static void test_full_map(void **state) {
    fixture *f = *state;
    mdl_model *m = enc_test_model(64, 16, 3, 31); /* 33 KB per user value */
    char err[512];
    const size_t n = 4000;
    sch_event *ev = make_events(n, 40, 3);
    /* reference: a roomy map */
    enc_store *ref = open_store(f->dir, "ref", 200, 8, 0, 0);
    assert_int_equal(enc_store_bind_model(ref, m, err, sizeof err), CORE_OK);
    encode(ref, ev, 100, 0);
    encode(ref, ev + 100, n - 100, 0);
    uint64_t want = digest(ref, ENC_DIGEST_STATE);
    enc_store_close(ref);

    /* grows: 256 KiB initial map, 64 MiB allowed */
    enc_store *g = open_store(f->dir, "grow", 200, 8, 256 << 10, 64 << 20);
    assert_int_equal(enc_store_bind_model(g, m, err, sizeof err), CORE_OK);
    encode(g, ev, 100, 0);
    encode(g, ev + 100, n - 100, 0);
    assert_true(digest(g, ENC_DIGEST_STATE) == want);
    enc_store_close(g);

    /* cannot grow: the big batch fails clearly and the store keeps the first batch intact */
    enc_store *s = open_store(f->dir, "full", 200, 8, 512 << 10, 512 << 10);
    assert_int_equal(enc_store_bind_model(s, m, err, sizeof err), CORE_OK);
    encode(s, ev, 4, 0);
    uint64_t before = digest(s, ENC_DIGEST_STATE | ENC_DIGEST_POS);
    enc_batch *b;
    assert_int_equal(enc_batch_begin(s, &b), CORE_OK);
    for (size_t i = 4; i < n; i++)
        assert_int_equal(enc_batch_apply(b, &ev[i]), CORE_OK);
    assert_int_equal(enc_batch_set_offset(b, "file:test", 99999), CORE_OK);
    assert_int_equal(enc_batch_commit(b), CORE_EFULL);
    assert_true(digest(s, ENC_DIGEST_STATE | ENC_DIGEST_POS) == before);
    enc_store_close(s);
    s = open_store(f->dir, "full", 200, 8, 512 << 10, 512 << 10); /* reopens fine */
    assert_true(digest(s, ENC_DIGEST_STATE | ENC_DIGEST_POS) == before);
    int64_t off;
    assert_int_equal(enc_store_get_offset(s, "file:test", &off), CORE_OK);
    assert_true(off < 99999);
    assert_int_equal(enc_store_bind_model(s, m, err, sizeof err), CORE_OK);
    encode(s, ev + 4, 4, 0); /* small batches still fit */
    enc_store_close(s);
    free(ev);
    mdl_model_destroy(m);
}

/* Reopening with another window or recent size is refused; 0 adopts the store's. */
static void test_reopen_checks(void **state) {
    fixture *f = *state;
    char path[512], err[512];
    enc_store_conf conf;
    enc_store *st = open_store(f->dir, "shape", 300, 20, 0, 0);
    enc_store_close(st);
    snprintf(path, sizeof path, "%s/shape", f->dir);
    enc_store_conf_default(&conf);
    conf.path = path;
    conf.window = 301;
    conf.recent = 20;
    assert_int_equal(enc_store_open(&st, &conf, err, sizeof err), CORE_EMISMATCH);
    assert_non_null(strstr(err, "window=300"));
    conf.window = conf.recent = 0;
    conf.new_window = 256; /* a model trained on 256: an existing store keeps its own */
    assert_int_equal(enc_store_open(&st, &conf, err, sizeof err), CORE_OK);
    assert_int_equal(enc_store_window(st), 300);
    assert_int_equal(enc_store_recent(st), 20);
    enc_batch *b;
    assert_int_equal(enc_batch_begin(st, &b), CORE_EINVAL); /* no model bound */
    enc_store_close(st);
    /* a new store takes new_window when no window is asked for, and 10,000 without either */
    snprintf(path, sizeof path, "%s/fresh", f->dir);
    assert_int_equal(enc_store_open(&st, &conf, err, sizeof err), CORE_OK);
    assert_int_equal(enc_store_window(st), 256);
    enc_store_close(st);
    snprintf(path, sizeof path, "%s/fresh2", f->dir);
    conf.new_window = 0;
    assert_int_equal(enc_store_open(&st, &conf, err, sizeof err), CORE_OK);
    assert_int_equal(enc_store_window(st), 10000);
    enc_store_close(st);
}

/* At the real shape values live on overflow pages: the view points into the map (no copy). */
static void test_zero_copy_view(void **state) {
    fixture *f = *state;
    mdl_model *m = enc_test_model(64, 16, 3, 41);
    char err[512];
    sch_event *ev = make_events(500, 3, 4);
    enc_store *st = open_store(f->dir, "zc", 1000, 64, 0, 0);
    assert_int_equal(enc_store_bind_model(st, m, err, sizeof err), CORE_OK);
    encode(st, ev, 500, 0);
    enc_reader *r;
    enc_user_view v;
    assert_int_equal(enc_reader_new(st, &r), CORE_OK);
    for (int rep = 0; rep < 3; rep++) { /* one reader, many short transactions */
        assert_int_equal(enc_reader_begin(r), CORE_OK);
        assert_int_equal(enc_reader_user(r, 100, &v), CORE_OK);
        assert_int_equal((uintptr_t)v.bucket_sum % 4, 0);
        assert_int_equal(v.S * v.n_buckets * v.C, 16 * 8 * 64);
        enc_reader_end(r);
    }
    enc_reader_destroy(r);
    enc_store_close(st);
    free(ev);
    mdl_model_destroy(m);
}

/* Every allocation on the open/bind/apply/commit/read path failing in turn gives a clean error
 * and no leak (ASan), and never a partial commit. */
static void test_alloc_failures(void **state) {
    fixture *f = *state;
    mdl_model *m = enc_test_model(16, 4, 3, 51);
    sch_event *ev = make_events(300, 4, 5);
    char path[512], err[512];
    int done = 0;
    for (long n = 0; !done && n < 10000; n++) {
        snprintf(path, sizeof path, "%s/af%ld", f->dir, n);
        enc_store_conf conf;
        enc_store_conf_default(&conf);
        conf.path = path;
        conf.window = 100;
        conf.recent = 10;
        conf.durable = 0;
        enc_store *st = NULL;
        enc_batch *b = NULL;
        enc_reader *r = NULL;
        enc_user_view v;
        int rc;
        core_alloc_fail_after(n, 0);
        if ((rc = enc_store_open(&st, &conf, err, sizeof err))) goto check;
        if ((rc = enc_store_bind_model(st, m, err, sizeof err))) goto check;
        if ((rc = enc_batch_begin(st, &b))) goto check;
        for (int i = 0; i < 300 && !rc; i++)
            rc = enc_batch_apply(b, &ev[i]);
        if (!rc) rc = enc_batch_set_offset(b, "file:x", 300);
        if (rc) {
            enc_batch_abort(b);
            goto check;
        }
        if ((rc = enc_batch_commit(b))) goto check;
        if ((rc = enc_reader_new(st, &r))) goto check;
        if ((rc = enc_reader_begin(r))) goto check;
        rc = enc_reader_user(r, 100, &v);
        enc_reader_end(r);
        if (!rc) done = 1;
    check:
        core_alloc_fail_after(-1, 0);
        if (!done) {
            assert_int_equal(rc, CORE_ENOMEM);
            if (st) { /* a failed commit leaves no offset behind */
                int64_t off;
                int g = enc_store_get_offset(st, "file:x", &off);
                assert_true(g == CORE_ENOTFOUND || (g == CORE_OK && off == 300));
            }
        }
        enc_reader_destroy(r);
        enc_store_close(st);
    }
    assert_true(done);
    free(ev);
    mdl_model_destroy(m);
}

// ---------------------------------------------------------------------------------------------
// schemas/state.md, checked with an independent reader: LMDB's own mdb_dump

typedef struct dump_kv {
    uint8_t *k, *v;
    size_t nk, nv;
} dump_kv;

static size_t unhex(const char *s, uint8_t *out) {
    size_t n = 0;
    while (s[0] && s[1] && s[0] != '\n') {
        unsigned x;
        if (sscanf(s, "%2x", &x) != 1) break;
        out[n++] = (uint8_t)x;
        s += 2;
    }
    return n;
}

/* Every key/value of one named database, via `mdb_dump -s name dir` (hex lines). */
static dump_kv *mdb_dump_db(const char *dir, const char *name, size_t *n) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mdb_dump -s %s '%s'", name, dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 20;
    char *line = malloc(cap);
    dump_kv *kv = NULL;
    size_t cnt = 0;
    int data = 0, want_value = 0;
    while (fgets(line, (int)cap, p)) {
        if (!strncmp(line, "HEADER=END", 10)) {
            data = 1;
            continue;
        }
        if (!strncmp(line, "DATA=END", 8)) break;
        if (!data || line[0] != ' ') continue;
        uint8_t *b = malloc(strlen(line) / 2 + 1);
        size_t nb = unhex(line + 1, b);
        if (!want_value) {
            kv = realloc(kv, (cnt + 1) * sizeof *kv);
            kv[cnt].k = b;
            kv[cnt].nk = nb;
        } else {
            kv[cnt].v = b;
            kv[cnt++].nv = nb;
        }
        want_value = !want_value;
    }
    assert_int_equal(pclose(p), 0);
    free(line);
    *n = cnt;
    return kv;
}

static uint64_t rd64le(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
static uint64_t rd64be(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}
static uint32_t rd32le(const uint8_t *p) {
    return (uint32_t)rd64le((const uint8_t[8]){p[0], p[1], p[2], p[3]});
}

static void free_dump(dump_kv *kv, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(kv[i].k), free(kv[i].v);
    free(kv);
}

static void test_layout_matches_state_md(void **state) {
    fixture *f = *state;
    mdl_model *m = enc_test_model(16, 4, 3, 61);
    char err[512], path[512];
    sch_event *ev = make_events(1200, 2, 6); /* users 100 and 8019, about 550 behaviors each */
    enc_store *st = open_store(f->dir, "layout", 200, 10, 0, 0);
    assert_int_equal(enc_store_bind_model(st, m, err, sizeof err), CORE_OK);
    encode(st, ev, 1200, 250);
    snprintf(path, sizeof path, "%s/layout", f->dir);

    size_t nmeta, nuser, nwin, nsums, nlag;
    dump_kv *meta = mdb_dump_db(path, "meta", &nmeta), *user = mdb_dump_db(path, "user", &nuser);
    dump_kv *win = mdb_dump_db(path, "win", &nwin), *sums = mdb_dump_db(path, "sums", &nsums);
    dump_kv *lag = mdb_dump_db(path, "lag", &nlag);
    assert_int_equal(nlag, 0); /* caught up: every lag mark cleared */
    assert_int_equal(nsums, 2);
    int seen = 0;
    for (size_t i = 0; i < nmeta; i++) {
        assert_int_equal(meta[i].nv, 8);
        uint64_t v = rd64le(meta[i].v);
        if (meta[i].nk == 6 && !memcmp(meta[i].k, "window", 6)) assert_int_equal(v, 200), seen++;
        if (meta[i].nk == 5 && !memcmp(meta[i].k, "chunk", 5)) assert_int_equal(v, 128), seen++;
        if (meta[i].nk == 16 && !memcmp(meta[i].k, "encoding_version", 16))
            assert_true(v == m->encoding_version), seen++;
        if (meta[i].nk == 9 && !memcmp(meta[i].k, "checksums", 9)) assert_int_equal(v, 1), seen++;
        if (meta[i].nk == 6 && !memcmp(meta[i].k, "format", 6)) assert_int_equal(v, 2), seen++;
    }
    assert_int_equal(seen, 5);
    assert_int_equal(nuser, 2);
    enc_reader *r;
    assert_int_equal(enc_reader_new(st, &r), CORE_OK);
    assert_int_equal(enc_reader_begin(r), CORE_OK);
    for (size_t i = 0; i < nuser; i++) {
        const uint8_t *v = user[i].v;
        uint64_t uid = rd64be(user[i].k);
        assert_int_equal(user[i].nk, 8);
        assert_memory_equal(v, "TRH2", 4); /* the head */
        assert_int_equal(rd32le(v + 4), 2);
        uint32_t S = rd32le(v + 8), NB = rd32le(v + 12), C = rd32le(v + 16), wl = rd32le(v + 20);
        assert_int_equal(S, 4), assert_int_equal(NB, 8), assert_int_equal(C, 16);
        assert_int_equal(user[i].nv, 128);
        uint8_t hb[128]; /* the checksum, as state.md's "Integrity" computes it */
        memcpy(hb, v, 128);
        memset(hb + 112, 0, 8);
        assert_true(rd64le(v + 112) == XXH3_64bits_withSeed(hb, 128, uid ^ 0x7573657200000000ull));
        uint64_t n = rd64le(v + 24);
        assert_true(rd64le(v + 120) == n); /* n_summed: caught up */
        /* the sums: same key, a 64-byte header, then sums and counts */
        assert_true(sums[i].nk == 8 && !memcmp(sums[i].k, user[i].k, 8));
        const uint8_t *sv = sums[i].v;
        assert_int_equal(sums[i].nv, 64 + 4 * S * NB * C + 4 * S * NB);
        assert_memory_equal(sv, "TRS2", 4);
        assert_int_equal(rd32le(sv + 4), 2);
        assert_true(rd32le(sv + 8) == S && rd32le(sv + 12) == NB && rd32le(sv + 16) == C);
        assert_true(rd64le(sv + 24) == n && rd64le(sv + 32) == m->encoding_version);
        uint8_t sh[64];
        memcpy(sh, sv, 64);
        memset(sh + 40, 0, 8);
        uint64_t h1 = XXH3_64bits_withSeed(sh, 64, uid ^ 0x73756d7300000000ull);
        assert_true(rd64le(sv + 40) == XXH3_64bits_withSeed(sv + 64, sums[i].nv - 64, h1));
        enc_user_view uv;
        assert_int_equal(enc_reader_user(r, uid, &uv), CORE_OK);
        assert_int_equal(n, uv.n_events);
        assert_int_equal(wl, uv.window_len);
        assert_int_equal((int64_t)rd64le(v + 32), uv.last_ts);
        assert_true(rd64le(v + 40) == m->encoding_version);
        uint64_t acts = 0;
        for (int a = 0; a < 8; a++)
            acts += rd64le(v + 48 + 8 * a);
        assert_int_equal(acts, n);
        assert_memory_equal(sv + 64, uv.bucket_sum, 4 * S * NB * C);
        assert_memory_equal(sv + 64 + 4 * S * NB * C, uv.bucket_cnt, 4 * S * NB);
        /* the window from the chunks, as state.md says to read it */
        sch_behavior want[200];
        uint32_t got;
        assert_int_equal(enc_reader_window(r, uid, want, 200, &got), CORE_OK);
        assert_int_equal(got, wl);
        uint64_t head = n - wl, k0 = head / 128, k1 = (n - 1) / 128, chunks = 0;
        assert_true(k0 >= 1); /* whole chunks have left the window: they must be gone */
        for (size_t c = 0; c < nwin; c++) {
            if (rd64be(win[c].k) != uid) continue;
            uint64_t k = rd64be(win[c].k + 8);
            assert_true(k >= k0 && k <= k1); /* only window chunks are kept */
            chunks++;
            assert_int_equal(win[c].nv % 32, 0);
            uint8_t first[32];
            memcpy(first, win[c].v, 32);
            memset(first + 28, 0, 4);
            uint64_t c1 = XXH3_64bits_withSeed(first, 32, uid ^ (k * 0x9E3779B97F4A7C15ull));
            assert_int_equal(rd32le(win[c].v + 28),
                             (uint32_t)XXH3_64bits_withSeed(win[c].v + 32, win[c].nv - 32, c1));
            for (size_t q = 0; q < win[c].nv / 32; q++) {
                uint64_t j = k * 128 + q;
                if (j < head) continue;
                const uint8_t *rec = win[c].v + 32 * q;
                assert_int_equal(rd64le(rec), want[j - head].item_id);
                assert_int_equal(rd64le(rec + 8), want[j - head].category_id);
                assert_int_equal((int64_t)rd64le(rec + 16), want[j - head].ts);
                assert_int_equal(rec[24], want[j - head].action);
            }
        }
        assert_int_equal(chunks, k1 - k0 + 1);
    }
    enc_reader_end(r);
    enc_reader_destroy(r);
    free_dump(meta, nmeta);
    free_dump(user, nuser);
    free_dump(win, nwin);
    free_dump(sums, nsums);
    free_dump(lag, nlag);
    enc_store_close(st);
    free(ev);
    mdl_model_destroy(m);
}

static void reopen_deferred(enc_store **st, const char *dir, const char *name, const mdl_model *m) {
    char path[512], err[512];
    enc_store_conf conf;
    enc_store_close(*st);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    enc_store_conf_default(&conf);
    conf.path = path;
    conf.window = 200;
    conf.recent = 16;
    conf.durable = 0;
    conf.defer_sums = 1;
    *st = NULL;
    if (enc_store_open(st, &conf, err, sizeof err)) fail_msg("open %s: %s", path, err);
    assert_int_equal(enc_store_bind_model(*st, m, err, sizeof err), CORE_OK);
}

typedef struct caught_log {
    uint64_t n, last;
} caught_log;

static void on_caught(void *opaque, uint64_t user_id) {
    caught_log *c = opaque;
    c->n++;
    c->last = user_id;
}

/* Two tiers (schemas/state.md): tier-1 commits (window, head) and tier-2 catch-ups (sums) in any
 * interleaving, with the store closed and reopened between them as a kill -9 between the tiers'
 * commits leaves it, end byte-identical to one uninterrupted replay once caught up; meanwhile a
 * reader sees every committed behavior in the recent sequence and counters, and sums that hold
 * n_summed of them. Window 200: evictions and the recompute every 200 evictions both happen. */
static void test_tiers_interleaved_equal_replay(void **state) {
    fixture *f = *state;
    mdl_model *m = enc_test_model(16, 4, 3, 81);
    char err[512];
    const size_t n = 9000;
    sch_event *ev = make_events(n, 12, 17); /* ~700 behaviors a user: 3 windows and more */
    enc_store *ref = open_store(f->dir, "tref", 200, 16, 0, 0);
    assert_int_equal(enc_store_bind_model(ref, m, err, sizeof err), CORE_OK);
    encode(ref, ev, n, 0);
    uint64_t want = digest(ref, ENC_DIGEST_STATE), lag;
    assert_int_equal(enc_store_lagging(ref, &lag), CORE_OK);
    assert_int_equal(lag, 0); /* a store that does not defer its sums is always caught up */
    enc_store_close(ref);

    for (int trial = 0; trial < 4; trial++) {
        char name[32];
        snprintf(name, sizeof name, "tiers%d", trial);
        enc_store *st = NULL;
        reopen_deferred(&st, f->dir, name, m);
        core_rng r;
        core_rng_seed(&r, 100 + (uint64_t)trial);
        uint64_t applied[12] = {0}, max_lag = 0, reopened = 0;
        for (size_t i = 0; i < n;) {
            size_t k = 1 + core_rng_below(&r, 300);
            enc_batch *b;
            assert_int_equal(enc_batch_begin(st, &b), CORE_OK);
            for (size_t j = i; j < n && j < i + k; j++) {
                assert_int_equal(enc_batch_apply(b, &ev[j]), CORE_OK);
                if (!(ev[j].flags & SCH_F_LABEL)) applied[(ev[j].user_id - 100) / 7919]++;
            }
            assert_int_equal(enc_batch_set_offset(b, "file:test", (int64_t)(i + k)), CORE_OK);
            assert_int_equal(enc_batch_commit(b), CORE_OK);
            i += k;
            assert_int_equal(enc_store_lagging(st, &lag), CORE_OK);
            if (lag > max_lag) max_lag = lag;
            /* the heads are current at once; the sums hold what tier 2 reached */
            enc_reader *rd;
            enc_user_view v;
            assert_int_equal(enc_reader_new(st, &rd), CORE_OK);
            assert_int_equal(enc_reader_begin(rd), CORE_OK);
            for (uint64_t u = 0; u < 12; u++) {
                if (!applied[u]) continue;
                assert_int_equal(enc_reader_user(rd, 100 + u * 7919, &v), CORE_OK);
                assert_int_equal(v.n_events, applied[u]);
                assert_true(v.n_summed <= v.n_events);
                uint64_t cnt = 0, wl = v.n_summed < 200 ? v.n_summed : 200;
                for (uint32_t q = 0; q < v.n_buckets; q++)
                    cnt += v.bucket_cnt[q]; /* signature 0's counts: the summed window */
                assert_int_equal(cnt, wl);
                assert_int_equal(v.summed_len, wl); /* what avgpool divides the sums by */
            }
            enc_reader_end(rd);
            enc_reader_destroy(rd);
            switch (core_rng_below(&r, 5)) {
            case 0: /* tier 2 not run: the lag grows */
                break;
            case 1: { /* one user, the oldest mark */
                caught_log c = {0};
                uint64_t before = lag, left;
                assert_int_equal(enc_store_catch_up(st, 0, on_caught, &c, &left), CORE_OK);
                if (before) assert_int_equal(c.n, 1), assert_int_equal(left, before - 1);
                break;
            }
            case 2: { /* everyone */
                uint64_t left;
                assert_int_equal(enc_store_catch_up(st, INT64_MAX, NULL, NULL, &left), CORE_OK);
                assert_int_equal(left, 0);
                break;
            }
            default: /* killed between the tiers: what LMDB committed is what a restart sees */
                reopen_deferred(&st, f->dir, name, m);
                reopened++;
            }
        }
        assert_true(max_lag > 1 && reopened > 0);
        uint64_t left;
        assert_int_equal(enc_store_catch_up(st, INT64_MAX, NULL, NULL, &left), CORE_OK);
        assert_int_equal(left, 0);
        assert_true(digest(st, ENC_DIGEST_STATE) == want);
        enc_store_close(st);
    }
    free(ev);
    mdl_model_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_determinism_and_one_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reencode_equals_fresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_map, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_copy_view, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layout_matches_state_md, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tiers_interleaved_equal_replay, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
