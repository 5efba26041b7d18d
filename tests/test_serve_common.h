/* test_serve_common.h: helpers for the serving tests: a tiny HTTP/1.1 client on 127.0.0.1 with
 * timeouts, small models, a store with one known user, and score parsing. */
#ifndef TRAIL_TEST_SERVE_COMMON_H
#define TRAIL_TEST_SERVE_COMMON_H

#include "test_common.h"
#include "test_http.h"

#include "core_err.h"
#include "enc_store.h"
#include "mdl.h"
#include "rank_serve.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TS_USER 1    /* the user with a history in the test store */
#define TS_WINDOW 64 /* the test store's window and recent sizes */
#define TS_RECENT 16
#define TS_NOW 1512000000ll

static inline void sock_timeouts(int fd) {
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* http_exchange on 127.0.0.1:port. */
static inline int http_raw(uint16_t port, const char *req, size_t req_len, char *resp, size_t cap,
                           char **body) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    *body = resp;
    resp[0] = '\0';
    if (fd < 0) return -1;
    sock_timeouts(fd);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return http_exchange(fd, req, req_len, resp, cap, body);
}

/* http_exchange on a Unix socket (the admin listener). */
static inline int http_raw_unix(const char *path, const char *req, size_t req_len, char *resp,
                                size_t cap, char **body) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa;
    *body = resp;
    resp[0] = '\0';
    if (fd < 0) return -1;
    sock_timeouts(fd);
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t plen = strlen(path);
    if (plen >= sizeof sa.sun_path) {
        close(fd);
        return -1;
    }
    memcpy(sa.sun_path, path, plen + 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return http_exchange(fd, req, req_len, resp, cap, body);
}

/* A request with Connection: close and a JSON body (NULL: empty), plus extra header lines
 * (NULL, or lines each ending in \r\n). @return its length; free *out. */
static inline size_t http_request(char **out, const char *method, const char *path,
                                  const char *body, const char *headers) {
    size_t blen = body ? strlen(body) : 0;
    size_t qcap = blen + 512 + (headers ? strlen(headers) : 0);
    char *req = malloc(qcap);
    int n = snprintf(req, qcap,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: "
                     "application/json\r\nContent-Length: %zu\r\n%s\r\n",
                     method, path, blen, headers ? headers : "");
    if (blen) memcpy(req + n, body, blen);
    *out = req;
    return (size_t)n + blen;
}

/* POST/GET on the admin Unix socket, with extra header lines (or NULL). */
static inline int http_do_unix(const char *sock, const char *method, const char *path,
                               const char *body, const char *headers, char *resp, size_t cap,
                               char **resp_body) {
    char *req;
    size_t n = http_request(&req, method, path, body, headers);
    int status = http_raw_unix(sock, req, n, resp, cap, resp_body);
    free(req);
    return status;
}

static inline int http_do(uint16_t port, const char *method, const char *path, const char *body,
                          char *resp, size_t cap, char **resp_body) {
    char *req;
    size_t n = http_request(&req, method, path, body, NULL);
    int status = http_raw(port, req, n, resp, cap, resp_body);
    free(req);
    return status;
}

/* The model_version and scores of a 200 response. @return the number of scores, -1 if malformed. */
static inline int parse_scores(const char *body, char version[17], float *scores, int max) {
    const char *v = strstr(body, "\"model_version\":\"");
    const char *s = strstr(body, "\"scores\":[");
    int n = 0;
    if (!v || !s) return -1;
    memcpy(version, v + 17, 16);
    version[16] = '\0';
    s += 10;
    while (*s && *s != ']') {
        char *end;
        if (n == max) return -1;
        scores[n++] = strtof(s, &end);
        if (end == s) return -1;
        s = end;
        if (*s == ',') s++;
    }
    return *s == ']' ? n : -1;
}

/* A small model; shift != 0 moves the item biases and the output bias, which changes model_version
 * and the scores but not encoding_version. seed changes encoding_version. */
static inline mdl_model *make_model(const char *path, uint64_t seed, float shift,
                                    uint32_t n_dense) {
    mdl_config cfg;
    mdl_model *m = NULL;
    char err[256];
    mdl_config_default(&cfg);
    cfg.C = 16;
    cfg.S = 4;
    cfg.tau = 2;
    cfg.item_rows = 1024;
    cfg.cat_rows = 64;
    cfg.n_recent = 8;
    cfg.ffn_dim = 16;
    cfg.h1 = 16;
    cfg.h2 = 8;
    cfg.n_dense = n_dense;
    cfg.seed = seed;
    if (mdl_model_init(&m, &cfg, err, sizeof err) != CORE_OK) fail_msg("model init: %s", err);
    if (shift != 0.f) {
        for (uint32_t i = 0; i < cfg.item_rows; i++)
            m->p.item_bias[i] += shift * (float)((i % 7) + 1) / 7.f;
        m->p.b3[0] += shift;
        mdl_model_refresh_versions(m);
    }
    if (mdl_model_save(m, path, 0, err, sizeof err) != CORE_OK) fail_msg("model save: %s", err);
    return m;
}

/* A store bound to m, with TS_USER's 20 behaviors (the last 30 s before TS_NOW, in the past of
 * the wall clock as well). */
static inline enc_store *make_store(const char *dir, const mdl_model *m) {
    enc_store_conf ec;
    enc_store *st = NULL;
    enc_batch *b = NULL;
    char err[256];
    enc_store_conf_default(&ec);
    ec.path = dir;
    ec.window = TS_WINDOW;
    ec.recent = TS_RECENT;
    ec.durable = 0;
    ec.map_size = 16u << 20;
    if (enc_store_open(&st, &ec, err, sizeof err) != CORE_OK) fail_msg("store open: %s", err);
    if (enc_store_bind_model(st, m, err, sizeof err) != CORE_OK) fail_msg("store bind: %s", err);
    assert_int_equal(enc_batch_begin(st, &b), CORE_OK);
    for (int i = 0; i < 20; i++) {
        sch_event ev;
        memset(&ev, 0, sizeof ev);
        ev.user_id = TS_USER;
        ev.item_id = 100 + (uint64_t)i * 37;
        ev.category_id = 3 + (uint64_t)(i % 5);
        ev.ts = TS_NOW - 30 + i;
        ev.action = SCH_ACTION_CLICK;
        assert_int_equal(enc_batch_apply(b, &ev), CORE_OK);
    }
    assert_int_equal(enc_batch_commit(b), CORE_OK);
    return st;
}

static inline void serve_conf(rank_server_conf *conf, const char *model_path, enc_store *st) {
    rank_server_conf_default(conf);
    conf->model_path = model_path;
    conf->store = st;
    conf->port = 0;
    conf->window = TS_WINDOW;
    conf->recent = TS_RECENT;
}

/* One line of a child's stdout (opened unbuffered by serve_spawn), waiting at most ms for it.
 * @return line, or NULL on timeout or end of file. */
static inline char *serve_read_line(FILE *out, char *line, size_t cap, int ms) {
    struct pollfd pfd = {fileno(out), POLLIN, 0};
    if (poll(&pfd, 1, ms) <= 0) return NULL;
    return fgets(line, (int)cap, out);
}

/* Start `trail serve ARGS` as a child process (exec'd through sh, so pid is the server's) and
 * wait (10 s at most) for its "listening on HOST:PORT" line. *out is its stdout, unbuffered, for
 * later lines (serve_read_line). blas_threads: OPENBLAS_NUM_THREADS for the child (NULL: as
 * inherited). @return the port, 0 if it did not start. */
static inline unsigned serve_spawn(const char *args, const char *blas_threads, pid_t *pid,
                                   FILE **out) {
    char cmd[4096], line[256];
    int fds[2];
    unsigned port = 0;
    snprintf(cmd, sizeof cmd, "exec '%s' serve %s", test_trail_bin(), args);
    if (pipe(fds) != 0) return 0;
    *pid = fork();
    if (*pid < 0) return 0;
    if (*pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        if (blas_threads) setenv("OPENBLAS_NUM_THREADS", blas_threads, 1);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    *out = fdopen(fds[0], "r");
    if (*out) setvbuf(*out, NULL, _IONBF, 0); // so that poll sees what is not read yet
    if (*out && serve_read_line(*out, line, sizeof line, 10000) &&
        sscanf(line, "listening on %*[^:]:%u", &port) == 1)
        return port;
    return 0;
}

/* Wait up to ms for pid to exit. @return its wait status, or -1 if it is still running. */
static inline int serve_wait_exit(pid_t pid, int ms) {
    int status = -1;
    struct timespec ts = {0, 10 * 1000 * 1000};
    for (int i = 0; i < ms / 10; i++) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) return status;
        if (r < 0) return -1;
        nanosleep(&ts, NULL);
    }
    return -1;
}

#endif
