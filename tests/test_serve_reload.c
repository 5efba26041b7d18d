/* test_serve_reload.c: concurrent requests during repeated reloads never see a mixed model.
 * Models a and b share an encoding but differ in parameters, so their scores differ. Both score
 * vectors are taken from the quiet server first; then client threads hammer /v1/score while the
 * main thread swaps a and b back and forth (library reload, the SIGHUP path, and /admin/reload on
 * the admin Unix socket).
 * Every response must name a or b and carry exactly that model's scores. Labelled tsan: the
 * ThreadSanitizer tree runs it to check the swap and the reference counts for races. */
#include "test_serve_common.h"

#include <pthread.h>
#include <stdatomic.h>

#define N_CLIENTS 3
#define N_REQ 60 /* per client */
#define B 400

static char dir[256], path_a[512], path_b[512], store_dir[512], admin_sock[512];
static rank_server *srv;
static uint16_t port;
static char ver[2][17];
static float want[2][B];
static char body[32768];
static atomic_int clients_done, bad;
static atomic_int seen[2];

static int setup(void **state) {
    (void)state;
    if (!test_mkdtemp(dir, sizeof dir)) return -1;
    snprintf(path_a, sizeof path_a, "%s/a.mdl", dir);
    snprintf(path_b, sizeof path_b, "%s/b.mdl", dir);
    snprintf(store_dir, sizeof store_dir, "%s/store", dir);
    snprintf(admin_sock, sizeof admin_sock, "%s/admin.sock", dir);
    int k = snprintf(body, sizeof body, "{\"user_id\":%d,\"ts\":%lld,\"candidates\":[", TS_USER,
                     TS_NOW);
    for (int b = 0; b < B; b++)
        k += snprintf(body + k, sizeof body - (size_t)k, "%s{\"item_id\":%d,\"category_id\":%d}",
                      b ? "," : "", 100 + 37 * b, b % 4);
    snprintf(body + k, sizeof body - (size_t)k, "]}");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    test_rmtree(dir);
    return 0;
}

static void *client(void *arg) {
    static _Thread_local char resp[16384];
    char v[17];
    float s[B + 1];
    char *rb;
    (void)arg;
    for (int i = 0; i < N_REQ; i++) {
        int status = http_do(port, "POST", "/v1/score", body, resp, sizeof resp, &rb);
        int n = status == 200 ? parse_scores(rb, v, s, B + 1) : -1;
        int which = n == B ? (!strcmp(v, ver[0]) ? 0 : !strcmp(v, ver[1]) ? 1 : -1) : -1;
        if (which < 0 || memcmp(s, want[which], sizeof want[which]) != 0) {
            fprintf(stderr, "bad response %d: status %d: %s\n", i, status, rb);
            atomic_fetch_add(&bad, 1);
            continue;
        }
        atomic_fetch_add(&seen[which], 1);
    }
    atomic_fetch_add(&clients_done, 1);
    return NULL;
}

static void test_no_mixed_model(void **state) {
    (void)state;
    rank_server_conf conf;
    char err[512], v[17], resp[16384], *rb;
    mdl_model *ma = make_model(path_a, 1, 0.f, 0), *mb = make_model(path_b, 1, 0.5f, 0);
    enc_store *st = make_store(store_dir, ma);
    mdl_version_hex(ma->model_version, ver[0]);
    mdl_version_hex(mb->model_version, ver[1]);
    serve_conf(&conf, path_a, st);
    conf.threads = 4;
    conf.admin_socket = admin_sock;
    assert_int_equal(rank_server_start(&srv, &conf, err, sizeof err), CORE_OK);
    port = rank_server_port(srv);
    // each model's scores, from the quiet server
    for (int w = 0; w < 2; w++) {
        assert_int_equal(rank_server_reload(srv, w ? path_b : path_a, v, err, sizeof err), CORE_OK);
        assert_int_equal(http_do(port, "POST", "/v1/score", body, resp, sizeof resp, &rb), 200);
        assert_int_equal(parse_scores(rb, v, want[w], B), B);
        assert_string_equal(v, ver[w]);
    }
    assert_true(memcmp(want[0], want[1], sizeof want[0]) != 0);

    pthread_t th[N_CLIENTS];
    for (int i = 0; i < N_CLIENTS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, client, NULL), 0);
    int reloads = 0;
    while (atomic_load(&clients_done) < N_CLIENTS || reloads < 6) {
        const char *p = reloads % 2 ? path_b : path_a;
        if (reloads % 3 == 2) { // every third swap through the admin endpoint
            char rbody[600];
            snprintf(rbody, sizeof rbody, "{\"model\":\"%s\"}", p);
            assert_int_equal(http_do_unix(admin_sock, "POST", "/admin/reload", rbody, NULL, resp,
                                          sizeof resp, &rb),
                             200);
        } else {
            assert_int_equal(rank_server_reload(srv, p, v, err, sizeof err), CORE_OK);
        }
        reloads++;
    }
    for (int i = 0; i < N_CLIENTS; i++)
        pthread_join(th[i], NULL);
    fprintf(stderr, "reloads %d, responses from a %d, from b %d, bad %d\n", reloads,
            atomic_load(&seen[0]), atomic_load(&seen[1]), atomic_load(&bad));
    assert_int_equal(atomic_load(&bad), 0);
    assert_int_equal(atomic_load(&seen[0]) + atomic_load(&seen[1]), N_CLIENTS * N_REQ);
    assert_true(atomic_load(&seen[0]) > 0 && atomic_load(&seen[1]) > 0);
    rank_server_stop(srv);
    enc_store_close(st);
    mdl_model_destroy(ma);
    mdl_model_destroy(mb);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_no_mixed_model)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
