/* test_sch_roundtrip.c: every event codec reads back what it writes. decode(encode(e)) == e for
 * randomly generated valid events and the extremes (ids 0 and SCH_ID_MAX, ts at its bounds, every
 * action and label, prob at 0, 1 and in between, integer and string request ids) through JSON, the
 * 52-byte binary record and the event-file writer and reader that `trail record` and the importers
 * use. Then, as processes: `trail record` of impressions with string request ids (whose 64-bit
 * hashes used to print above 2^63-1 and be rejected) is read back whole by `trail encode --input`,
 * and `trail encode`'s reject file keeps valid UTF-8 as UTF-8.
 */
#include "test_common.h"
#include "test_proc.h"

#include "core_err.h"
#include "core_util.h"
#include "sch_event.h"

#include <jansson.h>
#include <math.h>

#define N_RANDOM 200000

static char g_dir[4096], g_bin[4096];

static int setup(void **state) {
    (void)state;
    snprintf(g_bin, sizeof g_bin, "%s", test_trail_bin());
    return test_mkdtemp(g_dir, sizeof g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    test_rmtree(g_dir);
    return 0;
}

static void path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", g_dir, name);
}

/* A 63-bit id: an extreme one time in four, else random with a random bit length. */
static uint64_t rand_id(core_rng *r) {
    static const uint64_t ext[] = {
        0, 1, 2, SCH_ID_MAX, SCH_ID_MAX - 1, 1ull << 32, (1ull << 53) + 1, 1ull << 62};
    if (core_rng_below(r, 4) == 0) return ext[core_rng_below(r, sizeof ext / sizeof ext[0])];
    unsigned bits = 1 + (unsigned)core_rng_below(r, 63);
    return core_rng_next(r) >> (64 - bits);
}

static int64_t rand_ts(core_rng *r) {
    static const int64_t ext[] = {SCH_TS_MIN, SCH_TS_MIN + 1, SCH_TS_MAX, SCH_TS_MAX - 1,
                                  1511544070};
    if (core_rng_below(r, 4) == 0) return ext[core_rng_below(r, sizeof ext / sizeof ext[0])];
    return (int64_t)core_rng_below(r, (uint64_t)SCH_TS_MAX + 1);
}

static float rand_prob(core_rng *r) {
    static const float ext[] = {0.f,  1.f,         -0.f, 1e-45f, 1.17549435e-38f,
                                0.5f, 0.99999994f, 0.1f, 0.31f};
    if (core_rng_below(r, 4) == 0) return ext[core_rng_below(r, sizeof ext / sizeof ext[0])];
    uint32_t u = (uint32_t)(core_rng_next(r) >> 40); /* 24 bits */
    float p = (float)u / (float)(1u << 24);
    if (core_rng_below(r, 3) == 0) p = ldexpf(p, -(int)core_rng_below(r, 120)); /* small ones */
    return p;
}

/* A valid event as the decoders produce it: a field whose flag is clear is 0. */
static sch_event rand_event(core_rng *r) {
    sch_event e;
    memset(&e, 0, sizeof e);
    e.user_id = rand_id(r);
    e.item_id = rand_id(r);
    e.category_id = rand_id(r);
    e.ts = rand_ts(r);
    e.action = (uint8_t)(1 + core_rng_below(r, SCH_ACTION_MAX));
    e.flags = (uint8_t)core_rng_below(r, 8);
    if (e.flags & SCH_F_LABEL) e.label = (uint8_t)core_rng_below(r, 2);
    if (e.flags & SCH_F_PROB) e.prob = rand_prob(r);
    if (e.flags & SCH_F_REQUEST) e.request_id = rand_id(r);
    return e;
}

static int same_event(const sch_event *a, const sch_event *b) {
    return a->user_id == b->user_id && a->item_id == b->item_id &&
           a->category_id == b->category_id && a->ts == b->ts && a->action == b->action &&
           a->flags == b->flags && a->label == b->label && a->request_id == b->request_id &&
           a->prob == b->prob; /* -0 == 0: JSON has one zero */
}

static void describe(const sch_event *e, char *buf, size_t cap) {
    snprintf(buf, cap,
             "user %llu item %llu cat %llu ts %lld action %u flags %u label %u req %llu prob %.9g",
             (unsigned long long)e->user_id, (unsigned long long)e->item_id,
             (unsigned long long)e->category_id, (long long)e->ts, e->action, e->flags, e->label,
             (unsigned long long)e->request_id, (double)e->prob);
}

static void check_roundtrips(const sch_event *e) {
    sch_event back;
    char err[256], js[400], d1[300], d2[300];
    assert_int_equal(sch_event_validate(e, err, sizeof err), CORE_OK);
    int n = sch_event_to_json(e, js, sizeof js);
    assert_true(n > 0 && n < 256); /* 256 always suffices, as the header says */
    int rc = sch_event_from_json(&back, js, (size_t)n, err, sizeof err);
    if (rc != CORE_OK || !same_event(e, &back)) {
        describe(e, d1, sizeof d1);
        describe(&back, d2, sizeof d2);
        fail_msg("JSON: %s\n -> %s\n -> rc %d (%s) %s", d1, js, rc, rc ? err : "", d2);
    }
    uint8_t rec[SCH_BIN_RECORD_SIZE];
    sch_event_to_bin(e, rec);
    rc = sch_event_decode(&back, rec, sizeof rec, err, sizeof err);
    if (rc != CORE_OK || !same_event(e, &back)) {
        describe(e, d1, sizeof d1);
        describe(&back, d2, sizeof d2);
        fail_msg("binary: %s -> rc %d (%s) %s", d1, rc, rc ? err : "", d2);
    }
}

static void test_extremes(void **state) {
    (void)state;
    static const uint64_t ids[] = {0, SCH_ID_MAX};
    static const int64_t tss[] = {SCH_TS_MIN, SCH_TS_MAX};
    static const float probs[] = {0.f, 1.f, 1e-45f, 0.99999994f};
    size_t count = 0;
    for (int a = 1; a <= SCH_ACTION_MAX; a++)
        for (int flags = 0; flags < 8; flags++)
            for (int label = 0; label < 2; label++)
                for (size_t i = 0; i < 2; i++)
                    for (size_t t = 0; t < 2; t++)
                        for (size_t p = 0; p < 4; p++) {
                            if ((!(flags & SCH_F_LABEL) && label) || (!(flags & SCH_F_PROB) && p))
                                continue;
                            sch_event e;
                            memset(&e, 0, sizeof e);
                            e.user_id = ids[i];
                            e.item_id = ids[1 - i];
                            e.category_id = ids[i];
                            e.ts = tss[t];
                            e.action = (uint8_t)a;
                            e.flags = (uint8_t)flags;
                            e.label = (uint8_t)label;
                            if (flags & SCH_F_PROB) e.prob = probs[p];
                            if (flags & SCH_F_REQUEST) e.request_id = ids[1 - t];
                            check_roundtrips(&e);
                            count++;
                        }
    assert_true(count > 500);
}

static void test_random_events(void **state) {
    (void)state;
    core_rng r;
    core_rng_seed(&r, 20261204);
    for (int i = 0; i < N_RANDOM; i++) {
        sch_event e = rand_event(&r);
        check_roundtrips(&e);
    }
}

/* Append code point cp to a JSON string body as raw UTF-8 or as \u escapes (surrogate pairs above
 * U+FFFF), and to the UTF-8 bytes the decoder will hash. */
static void put_cp(uint32_t cp, int escape, char *js, size_t *jn, char *raw, size_t *rn) {
    char u[4];
    size_t k;
    if (cp < 0x80)
        u[0] = (char)cp, k = 1;
    else if (cp < 0x800)
        u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 63)), k = 2;
    else if (cp < 0x10000)
        u[0] = (char)(0xE0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 63)),
        u[2] = (char)(0x80 | (cp & 63)), k = 3;
    else
        u[0] = (char)(0xF0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 63)),
        u[2] = (char)(0x80 | ((cp >> 6) & 63)), u[3] = (char)(0x80 | (cp & 63)), k = 4;
    memcpy(raw + *rn, u, k);
    *rn += k;
    if (cp == '"' || cp == '\\') {
        js[(*jn)++] = '\\';
        js[(*jn)++] = (char)cp;
    } else if (cp < 0x20 || escape) {
        if (cp >= 0x10000) {
            uint32_t v = cp - 0x10000;
            *jn += (size_t)sprintf(js + *jn, "\\u%04x\\u%04x", 0xD800 + (v >> 10),
                                   0xDC00 + (v & 0x3FF));
        } else {
            *jn += (size_t)sprintf(js + *jn, "\\u%04x", cp);
        }
    } else {
        memcpy(js + *jn, u, k);
        *jn += k;
    }
}

/* String request ids: kept as sch_request_id_hash of their UTF-8 bytes, within 0..SCH_ID_MAX, and
 * the event (now with an integer id) reads back from either encoding. */
static void test_string_request_ids(void **state) {
    (void)state;
    core_rng r;
    core_rng_seed(&r, 77);
    int top_bit = 0;
    for (int i = 0; i < 20000; i++) {
        char js[1200], raw[800], body[700];
        size_t jn = 0, rn = 0;
        int len = (int)core_rng_below(&r, i < 100 ? 12 : 60);
        if (i < 100) { /* ids like a server's: "r-<n>" */
            rn = (size_t)snprintf(raw, sizeof raw, "r-%d", i);
            memcpy(body, raw, rn);
            jn = rn;
        } else {
            for (int k = 0; k < len; k++) {
                uint32_t cp;
                switch (core_rng_below(&r, 4)) {
                case 0:
                    cp = 1 + (uint32_t)core_rng_below(&r, 0x7f);
                    break;
                case 1:
                    cp = 0x80 + (uint32_t)core_rng_below(&r, 0x800 - 0x80);
                    break;
                case 2:
                    cp = 0x800 + (uint32_t)core_rng_below(&r, 0x10000 - 0x800);
                    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0x4E2D; /* no lone surrogates */
                    break;
                default:
                    cp = 0x10000 + (uint32_t)core_rng_below(&r, 0x110000 - 0x10000);
                    break;
                }
                put_cp(cp, (int)core_rng_below(&r, 2), body, &jn, raw, &rn);
            }
        }
        body[jn] = 0;
        int n = snprintf(js, sizeof js,
                         "{\"user_id\":%d,\"item_id\":5,\"category_id\":7,\"action\":\"view\","
                         "\"ts\":1511544100,\"label\":%d,\"request_id\":\"%s\"}",
                         i, i & 1, body);
        sch_event e;
        char err[256];
        int rc = sch_event_from_json(&e, js, (size_t)n, err, sizeof err);
        if (rc != CORE_OK) fail_msg("%s: rc %d %s", js, rc, err);
        assert_true(e.flags & SCH_F_REQUEST);
        assert_true(e.request_id <= SCH_ID_MAX);
        assert_true(e.request_id == sch_request_id_hash(raw, rn));
        assert_true(e.request_id == (XXH3_64bits(raw, rn) & SCH_ID_MAX));
        top_bit += XXH3_64bits(raw, rn) >> 63 != 0;
        check_roundtrips(&e);
    }
    assert_true(top_bit > 5000); /* the ids that used to print above 2^63-1 are covered */
}

/* A binary record written before request ids were held to 63 bits (a string id's full XXH3-64)
 * reads as the id the JSON decoder now gives that string. */
static void test_old_binary_request_id(void **state) {
    (void)state;
    const char *s = "r-8812";
    uint64_t full = XXH3_64bits(s, strlen(s));
    int i = 0;
    char id[32];
    while (!(full >> 63)) { /* an id whose hash has bit 63 set */
        snprintf(id, sizeof id, "r-%d", i++);
        s = id;
        full = XXH3_64bits(s, strlen(s));
    }
    sch_event e = {.user_id = 1,
                   .item_id = 5,
                   .category_id = 7,
                   .ts = 1511544100,
                   .action = SCH_ACTION_VIEW,
                   .flags = SCH_F_LABEL | SCH_F_REQUEST,
                   .label = 1};
    e.request_id = full; /* what the old writer held: invalid now */
    char err[256], js[300];
    assert_int_equal(sch_event_validate(&e, err, sizeof err), CORE_ERANGE);
    assert_non_null(strstr(err, "request_id"));
    assert_int_equal(sch_event_to_json(&e, js, sizeof js), CORE_ERANGE); /* never written */
    uint8_t rec[SCH_BIN_RECORD_SIZE];
    sch_event_to_bin(&e, rec); /* the old file's bytes */
    sch_event back;
    assert_int_equal(sch_event_from_bin(&back, rec, sizeof rec, err, sizeof err), CORE_OK);
    assert_true(back.request_id == sch_request_id_hash(s, strlen(s)));
    char line[200];
    snprintf(line, sizeof line,
             "{\"user_id\":1,\"item_id\":5,\"category_id\":7,\"action\":\"view\",\"ts\":1511544100,"
             "\"label\":1,\"request_id\":\"%s\"}",
             s);
    sch_event fromjs;
    assert_int_equal(sch_event_from_json(&fromjs, line, strlen(line), err, sizeof err), CORE_OK);
    assert_true(same_event(&back, &fromjs));
}

/* The event-file writer and reader (what `trail record`, `trail import` and `trail gen` write and
 * `trail encode --input` reads), both encodings; an invalid event is refused, not written. */
static void test_files(void **state) {
    (void)state;
    enum { N = 20000 };
    sch_event *ev = malloc(N * sizeof *ev);
    assert_non_null(ev);
    core_rng r;
    core_rng_seed(&r, 5);
    for (int i = 0; i < N; i++)
        ev[i] = rand_event(&r);
    for (int binary = 0; binary < 2; binary++) {
        char file[4200], err[256];
        path(file, sizeof file, binary ? "ev.bin" : "ev.jsonl");
        sch_writer *w;
        assert_int_equal(sch_writer_open(&w, file, binary, err, sizeof err), CORE_OK);
        for (int i = 0; i < N; i++) {
            assert_int_equal(sch_writer_put(w, &ev[i]), CORE_OK);
            if (i == N / 2) {
                sch_event bad = ev[i];
                bad.flags |= SCH_F_REQUEST;
                bad.request_id = SCH_ID_MAX + 1;
                assert_int_equal(sch_writer_put(w, &bad), CORE_ERANGE);
                bad = ev[i];
                bad.flags |= SCH_F_PROB;
                bad.prob = NAN;
                assert_int_equal(sch_writer_put(w, &bad), CORE_ERANGE);
            }
        }
        assert_int_equal(sch_writer_close(w), CORE_OK);
        sch_reader *rd;
        assert_int_equal(sch_reader_open(&rd, file, 4096, err, sizeof err), CORE_OK);
        assert_int_equal(sch_reader_is_binary(rd), binary);
        const char *rec;
        size_t n;
        uint64_t recno;
        int i = 0, rc;
        while ((rc = sch_reader_next(rd, &rec, &n, &recno)) == 1) {
            sch_event back;
            assert_true(i < N);
            rc = sch_event_decode(&back, rec, n, err, sizeof err);
            if (rc != CORE_OK) fail_msg("%s record %d: %s", binary ? "binary" : "JSON", i, err);
            assert_true(same_event(&ev[i], &back));
            i++;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(i, N);
        sch_reader_close(rd);
    }
    free(ev);
}

// ---------------------------------------------------------------------------------------------
// The CLI

static int run(const char *out, char *const argv[], int timeout_ms) {
    return test_wait_exit(test_spawn(argv, out, out, 0), timeout_ms);
}

static void make_model(char *model, size_t cap) {
    path(model, cap, "m.trail");
    char out[4200];
    path(out, sizeof out, "model.out");
    char *argv[] = {g_bin,  "model",        "init", "--out",  model, "--dim",
                    "16",   "--signatures", "4",    "--bits", "3",   "--item-rows",
                    "4096", "--cat-rows",   "64",   NULL};
    assert_int_equal(run(out, argv, 60000), 0);
}

/* `trail encode --input FILE --json`: its summary must show `want` (e.g. "impressions":8,...) and
 * it must exit with rc (1 when every record is rejected). */
static void encode_expect(char *model, char *input, char *store, const char *want, int rc) {
    char out[4200];
    path(out, sizeof out, "encode.out");
    char *argv[] = {g_bin, "encode",  "--model", model,    "--store",
                    store, "--input", input,     "--json", NULL};
    assert_int_equal(run(out, argv, 60000), rc);
    char *o = test_slurp(out, NULL);
    assert_non_null(o);
    if (!strstr(o, want)) fail_msg("encode %s: %s lacks %s", input, o, want);
    free(o);
}

/* Reject lines keep a record's valid UTF-8 as it was (also when the 200-byte cut falls inside a
 * character), escape invalid bytes, and are JSON whatever the record held. */
static void test_rejects_keep_utf8(void **state) {
    (void)state;
    char model[4200], in[4200], store[4200], rej[4300];
    make_model(model, sizeof model);
    path(in, sizeof in, "bad.jsonl");
    path(store, sizeof store, "st-rej");
    snprintf(rej, sizeof rej, "%s/rejects.jsonl", store);
    char longrec[400];
    int ln = snprintf(
        longrec, sizeof longrec,
        "{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":\"click\",\"ts\":5,\"note\":\"");
    while (ln < 330)
        ln += snprintf(longrec + ln, sizeof longrec - (size_t)ln, "\xe5\x95\x86"); /* 商 */
    snprintf(longrec + ln, sizeof longrec - (size_t)ln, "\"}");
    /* clang-format off: it does not settle on these concatenations with trailing comments */
    // clang-format off
    const char *lines[] = {
        "{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":"
        "\"\xe7\x82\xb9\xe5\x87\xbb\",\"ts\":5}",                          /* 点击 */
        "{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":\"click\",\"ts\":5,"
        "\"\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87\":1}",                               /* ключ */
        "{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":"
        "\"caf\xc3\xa9 \xf0\x9f\x9b\x92\",\"ts\":5}",                     /* café 🛒 */
        "{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":"
        "\"cl\xff\xfe\",\"ts\":5}",                                        /* not UTF-8 */
        "{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":"
        "\"\xed\xa0\x80\xc0\xaf\",\"ts\":5}",                   /* surrogate, overlong */
        longrec,
    };
    // clang-format on
    const size_t nl = sizeof lines / sizeof lines[0];
    FILE *f = fopen(in, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < nl; i++)
        fprintf(f, "%s\n", lines[i]);
    fclose(f);
    char want[100];
    snprintf(want, sizeof want, "\"rejected\":%zu", nl);
    encode_expect(model, in, store, want, 1);

    char *rj = test_slurp(rej, NULL);
    assert_non_null(rj);
    char *line = rj;
    for (size_t i = 0; i < nl; i++) {
        char *nlp = strchr(line, '\n');
        assert_non_null(nlp);
        *nlp = 0; /* the checks below look at this line only */
        json_error_t jerr;
        json_t *o = json_loadb(line, (size_t)(nlp - line), 0, &jerr);
        if (!o)
            fail_msg("reject line %zu is not JSON (%s): %.*s", i + 1, jerr.text, (int)(nlp - line),
                     line);
        const char *recs = json_string_value(json_object_get(o, "record"));
        const char *reason = json_string_value(json_object_get(o, "reason"));
        assert_non_null(recs);
        assert_non_null(reason);
        size_t len = strlen(lines[i]);
        if (i == 3 || i == 4) { /* invalid bytes: each as \u00XX, read back as Latin-1 */
            assert_null(strstr(line, "\xff"));
            assert_non_null(
                strstr(line, i == 3 ? "cl\\u00ff\\u00fe" : "\\u00ed\\u00a0\\u0080\\u00c0\\u00af"));
        } else if (len <= 200) { /* the record, byte for byte, and raw in the file */
            assert_string_equal(recs, lines[i]);
            assert_non_null(strstr(line, i == 0   ? "\xe7\x82\xb9\xe5\x87\xbb"
                                         : i == 1 ? "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87"
                                                  : "caf\xc3\xa9 \xf0\x9f\x9b\x92"));
            assert_null(strstr(line, "\\u00")); /* nothing escaped as Latin-1 */
        } else { /* cut at 200 bytes or just before, on a character boundary, then "..." */
            size_t rl = strlen(recs);
            assert_int_equal(rl, 3 + 199); /* byte 200 is the 1st of a 3-byte character */
            assert_memory_equal(recs, lines[i], rl - 3);
            assert_string_equal(recs + rl - 3, "...");
            assert_null(strstr(line, "\\u00"));
        }
        if (i == 0)
            assert_non_null(strstr(reason, "\xe7\x82\xb9\xe5\x87\xbb")); /* the reason quotes it */
        if (i == 1) assert_non_null(strstr(reason, "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87"));
        json_decref(o);
        line = nlp + 1;
    }
    assert_int_equal(*line, 0);
    free(rj);
}

/* `trail broker` on a free port; its bootstrap address into brokers. */
static pid_t start_broker(char *brokers, size_t cap) {
    char out[4200];
    path(out, sizeof out, "broker.out");
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = 20000 + (int)((getpid() * 11 + attempt * 211 + 7) % 20000);
        char ps[16];
        snprintf(ps, sizeof ps, "%d", port);
        char *argv[] = {g_bin, "broker", "--port", ps, "--partitions", "2", "--topics", "t", NULL};
        pid_t br = test_spawn(argv, out, out, 0);
        for (int t = 0; t < 5000; t += 50) {
            FILE *f = fopen(out, "r");
            if (f) {
                int ok = fgets(brokers, (int)cap, f) && strchr(brokers, '\n');
                fclose(f);
                if (ok) {
                    brokers[strcspn(brokers, "\n")] = 0;
                    return br;
                }
            }
            test_msleep(50);
        }
        kill(br, SIGTERM);
        test_wait_exit(br, 2000);
    }
    fail_msg("no broker");
    return -1;
}

/* The real run's loss: impressions with string request ids through `trail record` (JSON and
 * --binary) are all read back by `trail encode --input`. */
static void test_record_reads_back(void **state) {
    (void)state;
    char model[4200], in[4200], brokers[256], out[4200];
    make_model(model, sizeof model);
    path(in, sizeof in, "imp.jsonl");
    path(out, sizeof out, "pipe.out");
    enum { N = 64 };
    FILE *f = fopen(in, "w");
    assert_non_null(f);
    int top = 0;
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "req-%d", i);
        top += XXH3_64bits(id, strlen(id)) >> 63 != 0;
        fprintf(f,
                "{\"user_id\":%d,\"item_id\":%d,\"category_id\":7,\"action\":\"view\",\"ts\":%d,"
                "\"label\":%d,\"request_id\":\"%s\"}\n",
                i % 5, 100 + i, 1511544100 + i, i % 2, id);
        fprintf(
            f, "{\"user_id\":%d,\"item_id\":%d,\"category_id\":7,\"action\":\"click\",\"ts\":%d}\n",
            i % 5, 100 + i, 1511544101 + i);
    }
    fclose(f);
    assert_true(top > N / 4);
    pid_t br = start_broker(brokers, sizeof brokers);
    char *bin = g_bin;
    char *prod[] = {bin, "produce", "--brokers", brokers, "--topic", "t", "--input", in, NULL};
    assert_int_equal(run(out, prod, 30000), 0);
    for (int binary = 0; binary < 2; binary++) {
        char rec[4200], store[4200], want[160];
        path(rec, sizeof rec, binary ? "rec.bin" : "rec.jsonl");
        path(store, sizeof store, binary ? "st-bin" : "st-json");
        char *recv[] = {bin,     "record",  "--brokers",
                        brokers, "--topic", "t",
                        "--out", rec,       binary ? "--binary" : NULL,
                        NULL};
        assert_int_equal(run(out, recv, 30000), 0);
        snprintf(want, sizeof want,
                 "\"records\":%d,\"read\":%d,\"applied\":%d,\"impressions\":%d,\"rejected\":0",
                 2 * N, 2 * N, N, N);
        encode_expect(model, rec, store, want, 0);
    }
    kill(br, SIGTERM);
    assert_true(test_wait_exit(br, 10000) >= 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extremes),
        cmocka_unit_test(test_random_events),
        cmocka_unit_test(test_string_request_ids),
        cmocka_unit_test(test_old_binary_request_id),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_rejects_keep_utf8),
        cmocka_unit_test(test_record_reads_back),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
