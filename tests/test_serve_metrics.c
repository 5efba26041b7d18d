/* test_serve_metrics.c: the Prometheus rendering: counters, cumulative histogram buckets, error
 * kinds (an unknown kind lands in "other"), the model-info gauge, and the size check; and the
 * loopback rule of /admin/reload. */
#include "test_common.h"

#include "core_err.h"
#include "rank_metrics.h"
#include "rank_serve.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static void test_render(void **state) {
    (void)state;
    rank_metrics *mt = NULL;
    static char buf[16384];
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
    rank_metrics_reload(mt, 1);
    rank_metrics_reload(mt, 0);
    rank_metrics_reload(mt, 0);
    rank_metrics_set_model(mt, "00112233aabbccdd", "0123456789abcdef", "sdim+selfattn+tin");
    rank_metrics_set_isa(mt, "avx512-vnni", "int8", "avx2 fma avx512f", "Cooperlake");
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
        "trail_model_reloads_total{result=\"ok\"} 1\n",
        "trail_model_reloads_total{result=\"failed\"} 2\n",
        "trail_model_info{model_version=\"00112233aabbccdd\",encoding_version=\"0123456789abcdef\","
        "variant=\"sdim+selfattn+tin\"} 1\n",
        "# TYPE trail_ranker_isa_info gauge\n",
        "trail_ranker_isa_info{isa=\"avx512-vnni\",precision=\"int8\",cpu_features=\"avx2 fma "
        "avx512f\",openblas_core=\"Cooperlake\"} 1\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(buf, want[i])) fail_msg("missing: %s\n--- output ---\n%s", want[i], buf);
    // every line is a comment or "name{labels} value"
    for (char *line = buf; *line;) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        assert_true(line[0] == '#' || strncmp(line, "trail_", 6) == 0);
        line = nl + 1;
    }
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

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_render),
                                       cmocka_unit_test(test_loopback_rule)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
