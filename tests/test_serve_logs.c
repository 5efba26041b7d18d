/* test_serve_logs.c: what `trail serve` tells an operator, as a process: --log-level (a bad name
 * exits 2; warn hides the start and client-error lines), X-Request-Id (a sane one echoed, any
 * other replaced by a generated one, unique, on every answer), the access log (one whole line
 * per request from several threads at once, naming the same ids), and client errors logged at
 * info at most 10 lines a second with the rest counted: logged + suppressed = sent. */
#include "test_serve_common.h"

#include <pthread.h>
#include <signal.h>

#define THREADS 4
#define PER_THREAD 40

static char dir[256], model[512], store_dir[512], base_args[1400];

static int setup(void **state) {
    (void)state;
    if (!test_mkdtemp(dir, sizeof dir)) return -1;
    snprintf(model, sizeof model, "%s/m.mdl", dir);
    snprintf(store_dir, sizeof store_dir, "%s/store", dir);
    mdl_model *m = make_model(model, 1, 0.f, 0);
    enc_store_close(make_store(store_dir, m));
    mdl_model_destroy(m);
    snprintf(base_args, sizeof base_args, "--model '%s' --store '%s' --listen 127.0.0.1:0", model,
             store_dir);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    test_rmtree(dir);
    return 0;
}

/* A whole file, NUL-terminated (free it). */
static char *slurp(const char *path) {
    char *buf = test_slurp(path, NULL);
    if (!buf) fail_msg("cannot open %s", path);
    return buf;
}

/* Start serve with extra args and stderr into err_path; returns the port. */
static uint16_t start(const char *extra, const char *err_path, pid_t *pid, FILE **out) {
    char args[3000];
    snprintf(args, sizeof args, "%s %s 2>'%s'", base_args, extra, err_path);
    unsigned port = serve_spawn(args, "1", pid, out);
    if (!port) fail_msg("trail serve %s did not start", args);
    return (uint16_t)port;
}

/* SIGTERM, and a clean exit 0 (a sanitizer's report would make it non-zero). */
static void stop(pid_t pid, FILE *out) {
    assert_int_equal(kill(pid, SIGTERM), 0);
    int st = serve_wait_exit(pid, 20000);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("serve exit status %d", st);
    fclose(out);
}

static int count(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_log_level(void **state) {
    (void)state;
    char cmd[2000], out[4096], err_path[600], *rb;
    static char resp[1 << 14];
    snprintf(cmd, sizeof cmd, "'%s' serve %s --log-level loud 2>&1", test_trail_bin(), base_args);
    assert_int_equal(test_run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "unknown log level 'loud'"));
    snprintf(err_path, sizeof err_path, "%s/warn.err", dir);
    pid_t pid;
    FILE *o;
    uint16_t port = start("--log-level warn", err_path, &pid, &o);
    assert_int_equal(http_do(port, "POST", "/v1/score", "{", resp, sizeof resp, &rb), 400);
    stop(pid, o);
    char *text = slurp(err_path);
    if (strstr(text, "serve: listening") || strstr(text, "serve: rejected"))
        fail_msg("--log-level warn logged notices or info lines:\n%s", text);
    free(text);
}

/* The value of the response header name (without ": "), or NULL. */
static const char *header(const char *resp, const char *name, char *out, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\r\n%s: ", name);
    const char *p = strstr(resp, pat), *end = strstr(resp, "\r\n\r\n");
    if (!p || (end && p > end)) return NULL;
    p += strlen(pat);
    size_t n = strcspn(p, "\r\n");
    if (n >= cap) return NULL;
    memcpy(out, p, n);
    out[n] = '\0';
    return out;
}

static int generated_id(const char *id) {
    size_t n = strspn(id, "0123456789abcdef");
    return n == 16 && id[16] == '-' && id[17] && strspn(id + 17, "0123456789") == strlen(id + 17);
}

typedef struct client_arg {
    int t;
    uint16_t port;
    char ids[PER_THREAD][RANK_REQUEST_ID_MAX + 1];
    char err[300]; /* the first failure (cmocka's asserts belong to the main thread) */
} client_arg;

/* PER_THREAD requests: a good score with its own id, a parse error without one, /healthz with an
 * id that is not sane (a space; then one too long), an unknown path. */
static void *client(void *p) {
    client_arg *a = p;
    static _Thread_local char resp[1 << 14];
    char *rb, hdrs[400], id[RANK_REQUEST_ID_MAX + 1], longid[200];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    for (int i = 0; i < PER_THREAD; i++) {
        const char *method = "GET", *path = "/healthz", *body = NULL;
        int want = 200, own = 0;
        hdrs[0] = '\0';
        switch (i % 5) {
        case 0:
            method = "POST", path = "/v1/score";
            body = "{\"user_id\":1,\"candidates\":[{\"item_id\":5,\"category_id\":7}]}";
            snprintf(hdrs, sizeof hdrs, "X-Request-Id: client-%d-%d\r\n", a->t, i);
            own = 1;
            break;
        case 1:
            method = "POST", path = "/v1/score", body = "{", want = 400;
            break;
        case 2:
            snprintf(hdrs, sizeof hdrs, "X-Request-Id: has space\r\n");
            break;
        case 3:
            snprintf(hdrs, sizeof hdrs, "X-Request-Id: %s\r\n", longid);
            break;
        default:
            path = "/nope", want = 404;
        }
        char *req;
        size_t n = http_request(&req, method, path, body, hdrs);
        int st = http_raw(a->port, req, n, resp, sizeof resp, &rb);
        free(req);
        char mine[64];
        snprintf(mine, sizeof mine, "client-%d-%d", a->t, i);
        if (st != want)
            snprintf(a->err, sizeof a->err, "%s %s: status %d, wanted %d", method, path, st, want);
        else if (!header(resp, "X-Request-Id", id, sizeof id))
            snprintf(a->err, sizeof a->err, "no X-Request-Id: %.200s", resp);
        else if (own ? strcmp(id, mine) != 0 : !generated_id(id))
            snprintf(a->err, sizeof a->err, "request %d: X-Request-Id %.100s", i, id);
        if (a->err[0]) return NULL;
        snprintf(a->ids[i], sizeof a->ids[i], "%s", id);
    }
    return NULL;
}

static void test_access_log_and_ids(void **state) {
    (void)state;
    char err_path[600], log_path[600], extra[800], pat[300];
    snprintf(err_path, sizeof err_path, "%s/access.err", dir);
    snprintf(log_path, sizeof log_path, "%s/access.log", dir);
    snprintf(extra, sizeof extra, "--threads %d --access-log '%s'", THREADS, log_path);
    pid_t pid;
    FILE *o;
    uint16_t port = start(extra, err_path, &pid, &o);
    static client_arg args[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t].t = t;
        args[t].port = port;
        assert_int_equal(pthread_create(&th[t], NULL, client, &args[t]), 0);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    stop(pid, o);
    for (int t = 0; t < THREADS; t++)
        if (args[t].err[0]) fail_msg("client %d: %s", t, args[t].err);
    char *text = slurp(log_path);
    // one whole line per request, each with every field
    assert_int_equal(count(text, "\n"), THREADS * PER_THREAD);
    for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
        static const char *const fields[] = {
            " method=",     " path=",       " status=",         " candidates=",
            " latency_ms=", " request_id=", " client=127.0.0.1"};
        int len = (int)(strchr(line, '\n') - line);
        if (strncmp(line, "time=", 5) != 0) fail_msg("line: %.*s", len, line);
        for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
            const char *hit = strstr(line, fields[f]);
            if (!hit || hit > line + len) fail_msg("no%s in: %.*s", fields[f], len, line);
        }
    }
    // every answer's id is in exactly one line, and every id is another request's
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD; i++) {
            snprintf(pat, sizeof pat, " request_id=%s ", args[t].ids[i]);
            if (count(text, pat) != 1)
                fail_msg("id %s: %d lines", args[t].ids[i], count(text, pat));
        }
    snprintf(pat, sizeof pat, "method=POST path=/v1/score status=200 candidates=1 latency_ms=");
    assert_int_equal(count(text, pat), THREADS * PER_THREAD / 5);
    assert_int_equal(count(text, " error=bad_json\n"), THREADS * PER_THREAD / 5);
    assert_int_equal(count(text, "path=/nope status=404 "), THREADS * PER_THREAD / 5);
    free(text);
}

static void test_client_errors_rate_limited(void **state) {
    (void)state;
    char err_path[600], *rb;
    static char resp[1 << 14];
    const int burst = 40;
    snprintf(err_path, sizeof err_path, "%s/rate.err", dir);
    pid_t pid;
    FILE *o;
    uint16_t port = start("", err_path, &pid, &o);
    for (int i = 0; i < burst; i++)
        assert_int_equal(http_do(port, "POST", "/v1/score", "{", resp, sizeof resp, &rb), 400);
    struct timespec ts = {1, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    // the first line of a later second says how many were held back
    assert_int_equal(http_do(port, "GET", "/nope", NULL, resp, sizeof resp, &rb), 404);
    stop(pid, o);
    char *text = slurp(err_path);
    int logged = count(text, "serve: rejected status=");
    long suppressed = 0;
    for (const char *p = text; (p = strstr(p, "suppressed=")); p++)
        suppressed += strtol(p + 11, NULL, 10);
    if (logged + suppressed != burst + 1 || logged >= burst || logged < 10 ||
        !strstr(text, "kind=not_found request_id="))
        fail_msg("%d logged, %ld suppressed, of %d:\n%s", logged, suppressed, burst + 1, text);
    assert_true(strstr(text, "INFO serve: rejected status=400 kind=bad_json request_id=") != NULL);
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_level),
        cmocka_unit_test(test_access_log_and_ids),
        cmocka_unit_test(test_client_errors_rate_limited),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
