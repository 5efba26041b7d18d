/* test_serve_http.c: the server over HTTP on 127.0.0.1 (ephemeral port): good requests (scores
 * in candidate order, equal to a direct rank_score call), every malformed class with its status
 * and error kind, an unknown user, reload of a good, a corrupt and a mismatched model through the
 * admin Unix socket (the old one keeps serving; the public listener answers /admin/reload 404),
 * and the /metrics text. */
#include "test_serve_common.h"

#include "core_alloc.h"
#include "core_log.h"
#include "core_version.h"
#include "rank_isa.h"
#include "rank_score.h"

#include <jansson.h>
#include <math.h>

static char dir[256], path_a[512], path_b[512], path_bad[512], path_other[512], store_dir[512];
static char admin_sock[512];
static mdl_model *ma, *mb;
static enc_store *st;
static rank_server *srv;
static uint16_t port;
static char ver_a[17], ver_b[17];
static char resp[1 << 17];

static int setup(void **state) {
    rank_server_conf conf;
    char err[512];
    (void)state;
    if (!test_mkdtemp(dir, sizeof dir)) return -1;
    snprintf(path_a, sizeof path_a, "%s/a.mdl", dir);
    snprintf(path_b, sizeof path_b, "%s/b.mdl", dir);
    snprintf(path_bad, sizeof path_bad, "%s/bad.mdl", dir);
    snprintf(path_other, sizeof path_other, "%s/other.mdl", dir);
    snprintf(store_dir, sizeof store_dir, "%s/store", dir);
    snprintf(admin_sock, sizeof admin_sock, "%s/admin.sock", dir);
    ma = make_model(path_a, 1, 0.f, 2);
    mb = make_model(path_b, 1, 0.75f, 2);
    mdl_model_destroy(make_model(path_other, 99, 0.f, 2)); // another encoding_version
    mdl_version_hex(ma->model_version, ver_a);
    mdl_version_hex(mb->model_version, ver_b);
    if (ma->encoding_version != mb->encoding_version || !strcmp(ver_a, ver_b)) return -1;
    // a corrupt model: a's bytes with one flipped in the middle
    FILE *f = fopen(path_a, "rb"), *g = fopen(path_bad, "wb");
    int c;
    long i = 0;
    while ((c = fgetc(f)) != EOF)
        fputc(i++ == 4000 ? c ^ 0x40 : c, g);
    fclose(f);
    fclose(g);
    st = make_store(store_dir, ma);
    serve_conf(&conf, path_a, st);
    conf.threads = 2;
    conf.max_candidates = 50;
    conf.max_body = 8192;
    conf.admin_socket = admin_sock;
    if (rank_server_start(&srv, &conf, err, sizeof err) != CORE_OK) {
        fprintf(stderr, "start: %s\n", err);
        return -1;
    }
    port = rank_server_port(srv);
    return port ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    rank_server_stop(srv);
    enc_store_close(st);
    mdl_model_destroy(ma);
    mdl_model_destroy(mb);
    test_rmtree(dir);
    return 0;
}

static int score(const char *body, char version[17], float *scores, int max) {
    char *rb = NULL;
    int status = http_do(port, "POST", "/v1/score", body, resp, sizeof resp, &rb);
    if (status != 200) fail_msg("status %d for %s: %s", status, body, rb);
    int n = parse_scores(rb, version, scores, max);
    if (n < 0) fail_msg("malformed response: %s", rb);
    return n;
}

/* Readiness (a model served, the store answering a read) and the served model's metadata:
 * versions, variant, compute path, load time, config, the store's shape. */
static void test_readyz_and_model(void **state) {
    (void)state;
    char *rb = NULL, want[96];
    assert_int_equal(http_do(port, "GET", "/readyz", NULL, resp, sizeof resp, &rb), 200);
    assert_non_null(strstr(rb, "\"status\":\"ready\""));
    assert_non_null(strstr(rb, "\"store\":\"readable\""));
    assert_int_equal(http_do(port, "GET", "/v1/models/current", NULL, resp, sizeof resp, &rb), 200);
    snprintf(want, sizeof want, "\"model_version\":\"%s\"", ver_a);
    if (!strstr(rb, want)) { /* the reload test may have left b served */
        snprintf(want, sizeof want, "\"model_version\":\"%s\"", ver_b);
        assert_non_null(strstr(rb, want));
    }
    snprintf(want, sizeof want, "\"isa\":\"%s\"", rank_isa_name(rank_isa_current()));
    assert_non_null(strstr(rb, want));
    assert_non_null(strstr(rb, "\"encoding_version\":\""));
    assert_non_null(strstr(rb, "\"loaded_at\":"));
    assert_non_null(strstr(rb, "\"config\":{\"dim\":"));
    assert_int_equal(http_do(port, "POST", "/readyz", "{}", resp, sizeof resp, &rb), 405);
}

/* GET /v1/models/current, parsed: a JSON object with the server's version, the config as
 * `trail model info --json` names it, and the load time in both forms. */
static json_t *model_metadata(void) {
    char *rb = NULL;
    json_error_t jerr;
    assert_int_equal(http_do(port, "GET", "/v1/models/current", NULL, resp, sizeof resp, &rb), 200);
    json_t *o = json_loads(rb, 0, &jerr);
    if (!o) fail_msg("not JSON (%s): %.300s", jerr.text, rb);
    return o;
}

/* The metadata names the served model's own file, as valid JSON whatever bytes and length the
 * path has (a quote, a backslash, 3,000 bytes: it was printed raw into a 1 KiB buffer), plus the
 * server's version, the config (the names of `trail model info --json`), the encoding version,
 * the compute path and the load time. */
static void test_model_metadata(void **state) {
    (void)state;
    char odd[600], err[512], version[17], loaded[32];
    static char long_path[4096];
    snprintf(odd, sizeof odd, "%s/q\"uo\\te.mdl", dir);
    assert_int_equal(link(path_a, odd), 0);
    int k = snprintf(long_path, sizeof long_path, "%s", dir);
    while (k < 3000)
        k += snprintf(long_path + k, sizeof long_path - (size_t)k, "/.");
    snprintf(long_path + k, sizeof long_path - (size_t)k, "/a.mdl");
    const char *paths[] = {odd, long_path, path_a};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(rank_server_reload(srv, paths[i], version, err, sizeof err), CORE_OK);
        json_t *o = model_metadata();
        assert_string_equal(json_string_value(json_object_get(o, "path")), paths[i]);
        assert_string_equal(json_string_value(json_object_get(o, "model_version")), ver_a);
        assert_int_equal(strlen(json_string_value(json_object_get(o, "encoding_version"))), 16);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(o, "server"), "version")),
            TRAIL_VERSION);
        assert_string_equal(json_string_value(json_object_get(o, "isa")),
                            rank_isa_name(rank_isa_current()));
        json_t *cfg = json_object_get(o, "config");
        assert_int_equal(json_integer_value(json_object_get(cfg, "item_rows")), 1024);
        assert_int_equal(json_integer_value(json_object_get(cfg, "dim")), 16);
        assert_int_equal(json_integer_value(json_object_get(cfg, "dense")), 2);
        assert_int_equal(json_integer_value(json_array_get(json_object_get(cfg, "hidden"), 1)), 8);
        time_t t = (time_t)json_integer_value(json_object_get(o, "loaded_at"));
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(loaded, sizeof loaded, "%Y-%m-%dT%H:%M:%SZ", &tm);
        assert_true(t > 1500000000 && t <= time(NULL));
        assert_string_equal(json_string_value(json_object_get(o, "loaded_at_utc")), loaded);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "store"), "window")),
                         TS_WINDOW);
        json_decref(o);
    }
    unlink(odd);
}

static void test_score_good(void **state) {
    (void)state;
    char v[17];
    float s1[8], s2[8], s3[8], direct[8];
    int n = score("{\"user_id\": 77, \"ts\": 1512000000, \"candidates\": [{\"item_id\": 5, "
                  "\"category_id\": 7},"
                  " {\"item_id\": 6, \"category_id\": 7}, {\"item_id\": 900, \"category_id\": 2}]}",
                  v, s1, 8);
    assert_int_equal(n, 3);
    assert_string_equal(v, ver_a);
    // an unknown user is scored with an empty history: the same as calling the scorer directly
    rank_scratch *sc = NULL;
    rank_history h;
    uint64_t items[3] = {5, 6, 900}, cats[3] = {7, 7, 2};
    memset(&h, 0, sizeof h);
    h.now_ts = TS_NOW;
    assert_int_equal(rank_scratch_new(&sc, ma, 3, 0), CORE_OK);
    assert_int_equal(rank_score(direct, sc, ma, &h, items, cats, 3), CORE_OK);
    rank_scratch_destroy(sc);
    for (int b = 0; b < 3; b++) {
        assert_true(s1[b] > 0.f && s1[b] < 1.f);
        assert_true(s1[b] == direct[b]);
    }
    // candidate order is kept
    n = score("{\"user_id\": 77, \"ts\": 1512000000, \"candidates\": [{\"item_id\": 900, "
              "\"category_id\": 2},"
              " {\"item_id\": 6, \"category_id\": 7}, {\"item_id\": 5, \"category_id\": 7}]}",
              v, s2, 8);
    assert_int_equal(n, 3);
    for (int b = 0; b < 3; b++)
        assert_true(s2[b] == s1[2 - b]);
    // the known user's history changes the scores
    n = score("{\"user_id\": 1, \"ts\": 1512000000, \"candidates\": [{\"item_id\": 5, "
              "\"category_id\": 7},"
              " {\"item_id\": 6, \"category_id\": 7}, {\"item_id\": 900, \"category_id\": 2}]}",
              v, s3, 8);
    assert_int_equal(n, 3);
    assert_true(s3[0] != s1[0] || s3[1] != s1[1] || s3[2] != s1[2]);
    // ts defaults to now, dense of the model's width is accepted, zero candidates give []
    n = score("{\"user_id\": 1, \"candidates\": [{\"item_id\": 5, \"category_id\": 7}], \"dense\": "
              "[0.5, 1]}",
              v, s3, 8);
    assert_int_equal(n, 1);
    assert_int_equal(score("{\"user_id\": 1, \"candidates\": []}", v, s3, 8), 0);
    // the most candidates allowed
    char body[4096];
    int k = snprintf(body, sizeof body, "{\"user_id\":1,\"candidates\":[");
    for (int b = 0; b < 50; b++)
        k += snprintf(body + k, sizeof body - (size_t)k, "%s{\"item_id\":%d,\"category_id\":1}",
                      b ? "," : "", b);
    snprintf(body + k, sizeof body - (size_t)k, "]}");
    float s50[64];
    assert_int_equal(score(body, v, s50, 64), 50);
}

typedef struct bad_req {
    const char *method, *path, *body;
    int status;
    const char *kind;
    const char *in_body; /* a piece the error JSON must contain (field, message) */
} bad_req;

static void check_error(int status, char *const *rbp, const bad_req *c) {
    const char *rb = *rbp ? *rbp : "";
    char want_kind[64];
    snprintf(want_kind, sizeof want_kind, "\"error\":\"%s\"", c->kind);
    if (status != c->status || !strstr(rb, want_kind) || !strstr(rb, "\"message\":\"") ||
        (c->in_body && !strstr(rb, c->in_body)))
        fail_msg("%s %s %.80s: got %d %s", c->method, c->path, c->body ? c->body : "", status, rb);
}

static void test_malformed(void **state) {
    (void)state;
    static const bad_req cases[] = {
        {"POST", "/v1/score", "{\"user_id\": 1, \"candidates\": [", 400, "bad_json", "\"offset\":"},
        {"POST", "/v1/score", "", 400, "bad_json", "empty body"},
        {"POST", "/v1/score", "not json", 400, "bad_json", NULL},
        {"POST", "/v1/score", "{\"user_id\": \"1\", \"candidates\": []}", 400, "bad_type",
         "\"field\":\"user_id\""},
        {"POST", "/v1/score",
         "{\"user_id\": 1, \"candidates\": [{\"item_id\": 1.5, \"category_id\": 1}]}", 400,
         "bad_type", "\"field\":\"candidates[0].item_id\""},
        {"POST", "/v1/score", "{\"candidates\": []}", 400, "missing_field", "user_id is missing"},
        {"POST", "/v1/score", "{\"user_id\": 1, \"candidates\": [{\"item_id\": 1}]}", 400,
         "missing_field", "candidates[0].category_id"},
        {"POST", "/v1/score", "{\"user_id\": 1, \"candidates\": [], \"extra\": 1}", 400,
         "unknown_field", "\\\"extra\\\""},
        {"POST", "/v1/score", "{\"user_id\": -3, \"candidates\": []}", 400, "bad_value",
         "out of range"},
        {"POST", "/v1/score", "{\"user_id\": 1, \"candidates\": [], \"dense\": [1, 2, 3]}", 400,
         "bad_dense", "exactly 2"},
        {"GET", "/v1/score", NULL, 405, "method_not_allowed", "use POST"},
        {"POST", "/healthz", "{}", 405, "method_not_allowed", "use GET"},
        {"DELETE", "/metrics", NULL, 405, "method_not_allowed", NULL},
        {"GET", "/v2/score", NULL, 404, "not_found", "/v2/score"},
        {"GET", "/", NULL, 404, "not_found", NULL},
    };
    char *rb = NULL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_req *c = &cases[i];
        int status = http_do(port, c->method, c->path, c->body, resp, sizeof resp, &rb);
        check_error(status, &rb, c);
    }
    // too many candidates (51 > 50)
    char body[4096];
    int k = snprintf(body, sizeof body, "{\"user_id\":1,\"candidates\":[");
    for (int b = 0; b < 51; b++)
        k += snprintf(body + k, sizeof body - (size_t)k, "%s{\"item_id\":%d,\"category_id\":1}",
                      b ? "," : "", b);
    snprintf(body + k, sizeof body - (size_t)k, "]}");
    bad_req many = {"POST", "/v1/score",           "(51 candidates)",
                    400,    "too_many_candidates", "limit of 50"};
    check_error(http_do(port, "POST", "/v1/score", body, resp, sizeof resp, &rb), &rb, &many);
}

/* A POST /v1/score with a chunked body of n chunks of size spaces (no Content-Length). */
static int chunked_request(char *req, size_t cap, int n, int size) {
    int k = snprintf(req, cap,
                     "POST /v1/score HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n");
    for (int c = 0; c < n && (size_t)k + (size_t)size + 32 < cap; c++) {
        k += snprintf(req + k, cap - (size_t)k, "%x\r\n", (unsigned)size);
        memset(req + k, ' ', (size_t)size);
        k += size;
        k += snprintf(req + k, cap - (size_t)k, "\r\n");
    }
    return k + snprintf(req + k, cap - (size_t)k, "0\r\n\r\n");
}

static void test_oversized(void **state) {
    (void)state;
    char *rb = NULL;
    // declared too large: refused from the headers, before any body byte is read
    const char *hdr = "POST /v1/score HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: "
                      "10000000\r\n\r\n";
    bad_req declared = {"POST", "/v1/score",      "(Content-Length 10000000)",
                        413,    "body_too_large", "10000000"};
    check_error(http_raw(port, hdr, strlen(hdr), resp, sizeof resp, &rb), &rb, &declared);
    // chunked, no length: refused when a chunk takes the body past the limit (8192)
    static char req[65536];
    int k = chunked_request(req, sizeof req, 3, 3000);
    bad_req chunked = {"POST", "/v1/score",      "(9000 chunked bytes)",
                       413,    "body_too_large", "limit of 8192"};
    check_error(http_raw(port, req, (size_t)k, resp, sizeof resp, &rb), &rb, &chunked);
    // a stream far past the limit is answered as soon as a chunk takes it past, mid-body
    k = chunked_request(req, sizeof req, 12, 4000);
    check_error(http_raw(port, req, (size_t)k, resp, sizeof resp, &rb), &rb, &chunked);
    // garbage instead of HTTP: the server answers 400 or closes, and keeps serving
    const char *junk = "\x01\x02 nonsense\r\n\r\n";
    http_raw(port, junk, strlen(junk), resp, sizeof resp, &rb);
    assert_int_equal(http_do(port, "GET", "/healthz", NULL, resp, sizeof resp, &rb), 200);
}

static void test_reload(void **state) {
    (void)state;
    char *rb = NULL, body[1024], v[17], err[512], version[17];
    float s[4];
    const char *one = "{\"user_id\": 1, \"ts\": 1512000000, \"candidates\": [{\"item_id\": 5, "
                      "\"category_id\": 7}]}";
    // the public listener has no admin endpoint, whoever the peer is (a proxy on this host is
    // loopback too)
    snprintf(body, sizeof body, "{\"model\": \"%s\"}", path_b);
    bad_req public = {"POST", "/admin/reload", body, 404, "not_found", "admin listener"};
    check_error(http_do(port, "POST", "/admin/reload", body, resp, sizeof resp, &rb), &rb, &public);
    score(one, v, s, 4);
    assert_string_equal(v, ver_a);
    // a good model, through the admin socket
    assert_int_equal(
        http_do_unix(admin_sock, "POST", "/admin/reload", body, NULL, resp, sizeof resp, &rb), 200);
    assert_non_null(strstr(rb, ver_b));
    assert_non_null(strstr(rb, ver_a)); // previous_model_version
    score(one, v, s, 4);
    assert_string_equal(v, ver_b);
    // a corrupt model is refused; b keeps serving
    snprintf(body, sizeof body, "{\"model\": \"%s\"}", path_bad);
    int status =
        http_do_unix(admin_sock, "POST", "/admin/reload", body, NULL, resp, sizeof resp, &rb);
    bad_req corrupt = {"POST", "/admin/reload", body, 422, "reload_failed", "bad.mdl"};
    check_error(status, &rb, &corrupt);
    score(one, v, s, 4);
    assert_string_equal(v, ver_b);
    // a model whose encoding differs from the store's buckets is refused; b keeps serving
    snprintf(body, sizeof body, "{\"model\": \"%s\"}", path_other);
    status = http_do_unix(admin_sock, "POST", "/admin/reload", body, NULL, resp, sizeof resp, &rb);
    bad_req other = {"POST", "/admin/reload",     body,
                     409,    "encoding_mismatch", "does not match the store"};
    check_error(status, &rb, &other);
    score(one, v, s, 4);
    assert_string_equal(v, ver_b);
    // a missing file, bad bodies
    bad_req missing = {"POST", "/admin/reload", "{\"model\": \"/nonexistent/x.mdl\"}",
                       422,    "reload_failed", "/nonexistent/x.mdl"};
    check_error(http_do_unix(admin_sock, "POST", "/admin/reload", missing.body, NULL, resp,
                             sizeof resp, &rb),
                &rb, &missing);
    bad_req unknown = {"POST", "/admin/reload", "{\"path\": \"x\"}", 400, "unknown_field", "path"};
    check_error(http_do_unix(admin_sock, "POST", "/admin/reload", unknown.body, NULL, resp,
                             sizeof resp, &rb),
                &rb, &unknown);
    bad_req notjson = {"POST", "/admin/reload", "{\"model\": ", 400, "bad_json", NULL};
    check_error(http_do_unix(admin_sock, "POST", "/admin/reload", notjson.body, NULL, resp,
                             sizeof resp, &rb),
                &rb, &notjson);
    bad_req get = {"GET", "/admin/reload", NULL, 405, "method_not_allowed", NULL};
    check_error(
        http_do_unix(admin_sock, "GET", "/admin/reload", NULL, NULL, resp, sizeof resp, &rb), &rb,
        &get);
    // no body: reread the current path (b's, since the reload that named it succeeded)
    assert_int_equal(
        http_do_unix(admin_sock, "POST", "/admin/reload", NULL, NULL, resp, sizeof resp, &rb), 200);
    assert_non_null(strstr(rb, ver_b));
    // the SIGHUP path: the library call, back to a
    assert_int_equal(rank_server_reload(srv, path_a, version, err, sizeof err), CORE_OK);
    assert_string_equal(version, ver_a);
    assert_int_equal(rank_server_reload(srv, path_other, version, err, sizeof err), CORE_EMISMATCH);
    assert_string_equal(version, ver_a);
    assert_non_null(strstr(err, "encoding_version"));
    score(one, v, s, 4);
    assert_string_equal(v, ver_a);
    assert_int_equal(http_do(port, "GET", "/healthz", NULL, resp, sizeof resp, &rb), 200);
    assert_non_null(strstr(rb, ver_a));
}

static char logged[4096];

static void keep_warnings(int level, const char *line, void *opaque) {
    (void)opaque;
    if (level <= CORE_LOG_WARNING && strlen(logged) + strlen(line) + 2 < sizeof logged) {
        strcat(logged, line);
        strcat(logged, "\n");
    }
}

/* A model that records the window it was trained on loads on a store that keeps another, with a
 * warning naming both; on a store of its own window, without one. */
static void test_reload_warns_of_another_window(void **state) {
    (void)state;
    char path_w[600], err[512], version[17];
    snprintf(path_w, sizeof path_w, "%s/w.mdl", dir);
    core_log_set(keep_warnings, NULL);
    const uint32_t windows[2] = {32, TS_WINDOW};
    for (int i = 0; i < 2; i++) {
        logged[0] = 0;
        ma->cfg.window = windows[i];
        mdl_model_refresh_versions(ma);
        assert_int_equal(mdl_model_save(ma, path_w, 0, err, sizeof err), CORE_OK);
        assert_int_equal(rank_server_reload(srv, path_w, version, err, sizeof err), CORE_OK);
        if (i == 0)
            assert_non_null(strstr(logged, "windows of 32 behaviors per user, the store keeps 64"));
        else
            assert_null(strstr(logged, "windows of"));
    }
    core_log_set(NULL, NULL);
    ma->cfg.window = 0;
    mdl_model_refresh_versions(ma);
    assert_int_equal(rank_server_reload(srv, path_a, version, err, sizeof err), CORE_OK);
    assert_string_equal(version, ver_a);
}

/* Every allocation of start can fail (transient and persistent): a clean error, nothing leaked
 * (the ASan tree checks), and the next attempt works. */
static void test_start_alloc_failures(void **state) {
    (void)state;
    rank_server_conf conf;
    char err[512];
    char sock2[600];
    snprintf(sock2, sizeof sock2, "%s/admin2.sock", dir); // beside the running server's
    serve_conf(&conf, path_a, st);
    conf.threads = 2;
    conf.admin_socket = sock2;
    for (int persistent = 0; persistent < 2; persistent++) {
        int failures = 0;
        for (long n = 0;; n++) {
            rank_server *s2 = NULL;
            err[0] = '\0';
            core_alloc_fail_after(n, persistent);
            int rc = rank_server_start(&s2, &conf, err, sizeof err);
            core_alloc_fail_after(-1, 0);
            if (rc == CORE_OK) {
                rank_server_stop(s2);
                break;
            }
            failures++;
            if (!err[0]) fail_msg("allocation %ld failed without a message (rc %d)", n, rc);
            assert_true(n < 10000);
        }
        assert_true(failures >= 10);
    }
    // a reload that runs out of memory at any point leaves the old model serving
    char version[17], *rb = NULL;
    for (long n = 0;; n++) {
        core_alloc_fail_after(n, 1);
        int rc = rank_server_reload(srv, path_b, version, err, sizeof err);
        core_alloc_fail_after(-1, 0);
        if (rc == CORE_OK) break;
        assert_string_equal(version, ver_a);
        assert_int_equal(http_do(port, "GET", "/healthz", NULL, resp, sizeof resp, &rb), 200);
        assert_non_null(strstr(rb, ver_a));
    }
    assert_string_equal(version, ver_b);
    assert_int_equal(rank_server_reload(srv, path_a, version, err, sizeof err), CORE_OK);
}

static long metric(const char *text, const char *line_start) {
    char pat[256];
    snprintf(pat, sizeof pat, "\n%s", line_start); // a sample line, not the # HELP text
    const char *p = strstr(text, pat);
    if (!p) fail_msg("metric %s missing from:\n%s", line_start, text);
    return strtol(p + strlen(pat), NULL, 10);
}

static void test_metrics(void **state) {
    (void)state;
    char *rb = NULL, want[128];
    assert_int_equal(http_do(port, "GET", "/metrics", NULL, resp, sizeof resp, &rb), 200);
    assert_non_null(strstr(resp, "Content-Type: text/plain; version=0.0.4"));
    assert_true(metric(rb, "trail_requests_total{endpoint=\"/v1/score\"} ") >= 20);
    assert_true(metric(rb, "trail_requests_total{endpoint=\"/admin/reload\"} ") >= 8);
    assert_true(metric(rb, "trail_request_errors_total{kind=\"bad_json\"} ") >= 3);
    assert_true(metric(rb, "trail_request_errors_total{kind=\"body_too_large\"} ") >= 2);
    assert_true(metric(rb, "trail_request_errors_total{kind=\"too_many_candidates\"} ") == 1);
    assert_true(metric(rb, "trail_request_errors_total{kind=\"encoding_mismatch\"} ") >= 1);
    assert_true(metric(rb, "trail_request_errors_total{kind=\"not_found\"} ") >= 2);
    assert_true(metric(rb, "trail_score_latency_seconds_count ") >= 8);
    assert_true(metric(rb, "trail_score_latency_seconds_bucket{le=\"+Inf\"} ") ==
                metric(rb, "trail_score_latency_seconds_count "));
    assert_true(metric(rb, "trail_candidates_scored_total ") >= 60);
    assert_true(metric(rb, "trail_user_state_age_seconds_count ") >= 4);
    assert_true(metric(rb, "trail_unknown_users_total ") >= 2);
    /* sdim model: every scored candidate is one signature lookup, and the repeated candidates of
     * the requests above hit */
    long hits = metric(rb, "trail_signature_cache_lookups_total{result=\"hit\"} ");
    long misses = metric(rb, "trail_signature_cache_lookups_total{result=\"miss\"} ");
    assert_true(misses >= 1 && hits >= 1);
    assert_int_equal(hits + misses, metric(rb, "trail_candidates_scored_total "));
    assert_true(metric(rb, "trail_model_reloads_total{result=\"ok\"} ") >= 3);
    assert_true(metric(rb, "trail_model_reloads_total{result=\"failed\"} ") >= 4);
    snprintf(want, sizeof want, "trail_model_info{model_version=\"%s\"", ver_a);
    assert_non_null(strstr(rb, want));
    /* the compute path the server scores on, as this process chose it */
    snprintf(want, sizeof want, "trail_ranker_isa_info{isa=\"%s\",precision=\"%s\"",
             rank_isa_name(rank_isa_current()), rank_isa_precision(rank_isa_current()));
    assert_non_null(strstr(rb, want));
}

/* The sum of trail_http_requests_total's series. */
static long http_total(const char *text) {
    long sum = 0;
    for (const char *p = text; (p = strstr(p, "\ntrail_http_requests_total{"));) {
        p = strchr(p, '}');
        sum += strtol(p + 2, NULL, 10);
    }
    return sum;
}

/* Every answered request is counted by status code and path, and timed from its request line:
 * failures (a parse error, an unknown path, a wrong method, a body too large) too; the server's
 * build and process metrics are there. */
static void test_http_metrics(void **state) {
    (void)state;
    char *rb = NULL, before[32768], want[160];
    const char *score_line = "trail_http_requests_total{code=\"200\",path=\"/v1/score\"} ";
    assert_int_equal(http_do(port, "GET", "/metrics", NULL, resp, sizeof resp, &rb), 200);
    snprintf(before, sizeof before, "%s", rb);
    long count0 = metric(before, "trail_http_request_duration_seconds_count ");
    assert_int_equal(count0, http_total(before)); // nothing else in flight
    const char *hdr = "POST /v1/score HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: "
                      "10000000\r\n\r\n";
    assert_int_equal(http_raw(port, hdr, strlen(hdr), resp, sizeof resp, &rb), 413);
    assert_int_equal(http_do(port, "POST", "/v1/score", "{\"user_id\": 1, \"candidates\": [", resp,
                             sizeof resp, &rb),
                     400);
    assert_int_equal(http_do(port, "GET", "/nope", NULL, resp, sizeof resp, &rb), 404);
    assert_int_equal(http_do(port, "POST", "/healthz", "{}", resp, sizeof resp, &rb), 405);
    assert_int_equal(http_do(port, "POST", "/v1/score",
                             "{\"user_id\": 1, \"candidates\": [{\"item_id\": 5, "
                             "\"category_id\": 7}]}",
                             resp, sizeof resp, &rb),
                     200);
    assert_int_equal(http_do(port, "GET", "/metrics", NULL, resp, sizeof resp, &rb), 200);
    // the five above and the first /metrics (it completed after it was rendered)
    assert_int_equal(metric(rb, "trail_http_request_duration_seconds_count "), count0 + 6);
    assert_int_equal(metric(rb, "trail_http_request_duration_seconds_bucket{le=\"+Inf\"} "),
                     count0 + 6);
    assert_int_equal(http_total(rb), count0 + 6);
    assert_int_equal(metric(rb, "trail_http_requests_total{code=\"413\",path=\"/v1/score\"} "),
                     metric(before, "trail_http_requests_total{code=\"413\",path=\"/v1/score\"} ") +
                         1);
    assert_true(metric(rb, "trail_http_requests_total{code=\"400\",path=\"/v1/score\"} ") >= 12);
    assert_true(metric(rb, "trail_http_requests_total{code=\"404\",path=\"other\"} ") >= 3);
    assert_true(metric(rb, "trail_http_requests_total{code=\"405\",path=\"/healthz\"} ") >= 2);
    assert_int_equal(metric(rb, score_line), metric(before, score_line) + 1);
    assert_true(metric(rb, "trail_http_requests_total{code=\"200\",path=\"/metrics\"} ") >= 2);
    snprintf(want, sizeof want, "\ntrail_build_info{version=\"%s\",compiler=\"", TRAIL_VERSION);
    assert_non_null(strstr(rb, want));
    assert_true(metric(rb, "process_resident_memory_bytes ") > 1000000);
    assert_true(metric(rb, "process_open_fds ") > 3);
    assert_true(metric(rb, "process_start_time_seconds ") > 1500000000);
    assert_non_null(strstr(rb, "\nprocess_cpu_seconds_total "));
    assert_non_null(strstr(rb, "\nprocess_max_fds "));
    assert_non_null(strstr(rb, "\nprocess_virtual_memory_bytes "));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_score_good),
        cmocka_unit_test(test_readyz_and_model),
        cmocka_unit_test(test_model_metadata),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_reload_warns_of_another_window),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_http_metrics),
        cmocka_unit_test(test_start_alloc_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
