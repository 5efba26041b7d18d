/* test_serve_metrics.c: the Prometheus rendering: counters, cumulative histogram buckets, error
 * kinds (an unknown kind lands in "other"), the model-info gauge, the build and process_*
 * metrics, requests by status code, and the size check; the text is valid exposition format
 * (every sample under its family's TYPE, no family twice); and the loopback rule of
 * /admin/reload. */
#include "test_common.h"

#include "core_err.h"
#include "core_version.h"
#include "rank_metrics.h"
#include "rank_serve.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The sample's family: its name without a histogram's _bucket/_sum/_count when that family is a
 * histogram. */
static int same_family(const char *sample, size_t n, const char *family, const char *type) {
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    size_t f = strlen(family);
    if (n == f && !strncmp(sample, family, f)) return 1;
    if (strcmp(type, "histogram") != 0 || n <= f || strncmp(sample, family, f) != 0) return 0;
    for (size_t i = 0; i < 3; i++)
        if (n - f == strlen(suffixes[i]) && !strncmp(sample + f, suffixes[i], n - f)) return 1;
    return 0;
}

/* Prometheus text format 0.0.4 as promtool checks it: each family's HELP and TYPE once, before
 * its samples, which stay together; names and values well formed. Fails the test otherwise. */
static void check_exposition(const char *text) {
    char family[128] = "", type[32] = "", seen[8192] = " ";
    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        if (!nl) fail_msg("unterminated last line: %s", line);
        char name[128], kind[32];
        if (!strncmp(line, "# HELP ", 7)) {
            // HELP names the family whose TYPE follows
        } else if (sscanf(line, "# TYPE %127s %31s", name, kind) == 2) {
            char key[140];
            snprintf(key, sizeof key, " %s ", name);
            if (strstr(seen, key)) fail_msg("family %s declared twice", name);
            if (strlen(seen) + strlen(key) >= sizeof seen) fail_msg("too many families");
            strcat(seen, key + 1);
            snprintf(family, sizeof family, "%s", name);
            snprintf(type, sizeof type, "%s", kind);
            assert_true(!strcmp(kind, "counter") || !strcmp(kind, "gauge") ||
                        !strcmp(kind, "histogram"));
        } else {
            size_t n =
                strspn(line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:0123456789");
            if (!n || !same_family(line, n, family, type))
                fail_msg("sample outside its family (%s): %.*s", family, (int)(nl - line), line);
            const char *v = line + n;
            if (*v == '{') v = strchr(v, '}') + 1; /* label values hold no '}' here */
            char *end;
            if (*v != ' ' || (strtod(v + 1, &end), end != nl))
                fail_msg("bad value: %.*s", (int)(nl - line), line);
        }
        line = nl + 1;
    }
}

/* The value of the sample that starts a line with prefix; fails if there is none. */
static double sample(const char *text, const char *prefix) {
    char pat[256];
    snprintf(pat, sizeof pat, "\n%s", prefix);
    const char *p = strstr(text, pat);
    if (!p) fail_msg("no sample %s in:\n%s", prefix, text);
    return strtod(p + strlen(pat), NULL);
}

static void test_render(void **state) {
    (void)state;
    rank_metrics *mt = NULL;
    static char buf[RANK_METRICS_MAX];
    assert_int_equal(rank_metrics_new(&mt), CORE_OK);
    rank_metrics_request(mt, RANK_EP_SCORE);
    rank_metrics_request(mt, RANK_EP_SCORE);
    rank_metrics_request(mt, RANK_EP_METRICS);
    rank_metrics_error(mt, "bad_json");
    rank_metrics_error(mt, "bad_json");
    rank_metrics_error(mt, "no_such_kind");
    rank_metrics_scored(mt, 700000, 10, 30); // 0.7 ms, age 30 s
    rank_metrics_scored(mt, 3000000, 5, -1); // 3 ms, unknown user
    rank_metrics_sigcache(mt, 7, 3);
    rank_metrics_sigcache(mt, 5, 0);
    rank_metrics_qcache(mt, 900, 100);
    rank_metrics_reload(mt, 1);
    rank_metrics_reload(mt, 0);
    rank_metrics_reload(mt, 0);
    rank_metrics_set_model(mt, "00112233aabbccdd", "0123456789abcdef", "sdim+selfattn+tin");
    rank_metrics_set_isa(mt, "avx512-vnni", "int8", "avx2 fma avx512f", "Cooperlake");
    rank_metrics_http(mt, RANK_EP_SCORE, 200, 300000);       // 0.3 ms
    rank_metrics_http(mt, RANK_EP_SCORE, 200, 800000);       // 0.8 ms
    rank_metrics_http(mt, RANK_EP_SCORE, 400, 50000);        // 50 us: a parse error
    rank_metrics_http(mt, RANK_EP_OTHER, 404, 20000);        // 20 us
    rank_metrics_http(mt, RANK_EP_HEALTHZ, 299, 3000000000); // 3 s, a code outside the list
    int n = rank_metrics_render(mt, buf, sizeof buf);
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(buf));
    const char *want[] = {
        "# TYPE trail_requests_total counter\n",
        "trail_requests_total{endpoint=\"/v1/score\"} 2\n",
        "trail_requests_total{endpoint=\"/metrics\"} 1\n",
        "trail_requests_total{endpoint=\"/healthz\"} 0\n",
        "trail_request_errors_total{kind=\"bad_json\"} 2\n",
        "trail_request_errors_total{kind=\"other\"} 1\n",
        "trail_request_errors_total{kind=\"body_too_large\"} 0\n",
        "# TYPE trail_score_latency_seconds histogram\n",
        "trail_score_latency_seconds_bucket{le=\"0.0005\"} 0\n",
        "trail_score_latency_seconds_bucket{le=\"0.001\"} 1\n",
        "trail_score_latency_seconds_bucket{le=\"0.002\"} 1\n",
        "trail_score_latency_seconds_bucket{le=\"0.005\"} 2\n",
        "trail_score_latency_seconds_bucket{le=\"+Inf\"} 2\n",
        "trail_score_latency_seconds_sum 0.003700\n",
        "trail_score_latency_seconds_count 2\n",
        "trail_candidates_scored_total 15\n",
        "trail_user_state_age_seconds_bucket{le=\"10\"} 0\n",
        "trail_user_state_age_seconds_bucket{le=\"60\"} 1\n",
        "trail_user_state_age_seconds_count 1\n",
        "trail_user_state_age_seconds_sum 30.000000\n",
        "trail_unknown_users_total 1\n",
        "# TYPE trail_signature_cache_lookups_total counter\n",
        "trail_signature_cache_lookups_total{result=\"hit\"} 12\n",
        "trail_signature_cache_lookups_total{result=\"miss\"} 3\n",
        "# TYPE trail_item_term_cache_lookups_total counter\n",
        "trail_item_term_cache_lookups_total{result=\"hit\"} 900\n",
        "trail_item_term_cache_lookups_total{result=\"miss\"} 100\n",
        "trail_model_reloads_total{result=\"ok\"} 1\n",
        "trail_model_reloads_total{result=\"failed\"} 2\n",
        "trail_model_info{model_version=\"00112233aabbccdd\",encoding_version=\"0123456789abcdef\","
        "variant=\"sdim+selfattn+tin\"} 1\n",
        "# TYPE trail_ranker_isa_info gauge\n",
        "trail_ranker_isa_info{isa=\"avx512-vnni\",precision=\"int8\",cpu_features=\"avx2 fma "
        "avx512f\",openblas_core=\"Cooperlake\"} 1\n",
        "# TYPE trail_build_info gauge\n",
        "trail_build_info{version=\"" TRAIL_VERSION "\",compiler=\"",
        "# TYPE process_cpu_seconds_total counter\n",
        "# TYPE process_resident_memory_bytes gauge\n",
        "# TYPE process_start_time_seconds gauge\n",
        "# TYPE trail_http_requests_total counter\n",
        "trail_http_requests_total{code=\"200\",path=\"/v1/score\"} 2\n",
        "trail_http_requests_total{code=\"400\",path=\"/v1/score\"} 1\n",
        "trail_http_requests_total{code=\"404\",path=\"other\"} 1\n",
        "trail_http_requests_total{code=\"other\",path=\"/healthz\"} 1\n",
        "# TYPE trail_http_request_duration_seconds histogram\n",
        "trail_http_request_duration_seconds_bucket{le=\"0.0001\"} 2\n",
        "trail_http_request_duration_seconds_bucket{le=\"0.0005\"} 3\n",
        "trail_http_request_duration_seconds_bucket{le=\"0.001\"} 4\n",
        "trail_http_request_duration_seconds_bucket{le=\"2.5\"} 4\n",
        "trail_http_request_duration_seconds_bucket{le=\"5\"} 5\n",
        "trail_http_request_duration_seconds_bucket{le=\"+Inf\"} 5\n",
        "trail_http_request_duration_seconds_sum 3.001170\n",
        "trail_http_request_duration_seconds_count 5\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(buf, want[i])) fail_msg("missing: %s\n--- output ---\n%s", want[i], buf);
    // no series for a code/path pair that has seen no request
    assert_null(strstr(buf, "trail_http_requests_total{code=\"500\""));
    check_exposition(buf);
    // process_* as Prometheus' client libraries have them, read from /proc/self
    double now = (double)time(NULL), rss = sample(buf, "process_resident_memory_bytes ");
    double start = sample(buf, "process_start_time_seconds ");
    if (!(start > now - 3600 && start <= now + 1)) fail_msg("start time %f, now %f", start, now);
    assert_true(rss > 1e6 && sample(buf, "process_virtual_memory_bytes ") >= rss);
    double fds = sample(buf, "process_open_fds ");
    assert_true(fds >= 3 && fds <= sample(buf, "process_max_fds "));
    assert_true(sample(buf, "process_cpu_seconds_total ") >= 0);
    assert_int_equal(rank_metrics_render(mt, buf, 100), CORE_ETOOBIG);
    rank_metrics_destroy(mt);
}

/* Who may call /admin/reload (over HTTP the tests can only be loopback peers). */
static void test_loopback_rule(void **state) {
    (void)state;
    static const struct {
        const char *addr;
        int ok;
    } cases[] = {
        {"127.0.0.1", 1}, {"127.200.3.4", 1}, {"::1", 1},       {"::ffff:127.0.0.1", 1},
        {"10.0.0.1", 0},  {"192.0.2.2", 0},   {"128.0.0.1", 0}, {"::ffff:10.0.0.1", 0},
        {"fd00::1", 0},   {"::", 0},          {"0.0.0.0", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
        memset(&in, 0, sizeof in);
        memset(&in6, 0, sizeof in6);
        const struct sockaddr *sa;
        if (inet_pton(AF_INET, cases[i].addr, &in.sin_addr) == 1) {
            in.sin_family = AF_INET;
            sa = (const struct sockaddr *)&in;
        } else {
            assert_int_equal(inet_pton(AF_INET6, cases[i].addr, &in6.sin6_addr), 1);
            in6.sin6_family = AF_INET6;
            sa = (const struct sockaddr *)&in6;
        }
        if (rank_addr_is_loopback(sa) != cases[i].ok)
            fail_msg("%s: expected %d", cases[i].addr, cases[i].ok);
    }
    assert_int_equal(rank_addr_is_loopback(NULL), 0);
}

/* Every endpoint with every status code answered at once: the largest text still fits. */
static void test_render_size(void **state) {
    (void)state;
    rank_metrics *mt = NULL;
    static char buf[RANK_METRICS_MAX];
    static const unsigned codes[] = {200, 400, 401, 403, 404, 405, 409, 413,
                                     414, 415, 422, 431, 500, 501, 503, 299};
    assert_int_equal(rank_metrics_new(&mt), CORE_OK);
    char variant[128];
    memset(variant, 'v', sizeof variant - 1);
    variant[sizeof variant - 1] = 0;
    rank_metrics_set_model(mt, "00112233aabbccdd", "0123456789abcdef", variant);
    rank_metrics_set_isa(mt, "avx512-vnni", "int8", variant, "Cooperlake");
    for (int e = 0; e < RANK_EP_COUNT; e++)
        for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
            rank_metrics_http(mt, (rank_endpoint)e, codes[i], 123456789012345);
    int n = rank_metrics_render(mt, buf, sizeof buf);
    assert_true(n > 0);
    check_exposition(buf);
    rank_metrics_destroy(mt);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_render),
                                       cmocka_unit_test(test_render_size),
                                       cmocka_unit_test(test_loopback_rule)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
