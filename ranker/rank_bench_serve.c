/* rank_bench_serve.c: `trail bench serve`: `trail serve` measured end to end on loopback.
 *
 * One run builds its own fixture in a temporary directory (removed at the end): a model file
 * (the default config: full variant with q (.) u_short and the cross statistics, its window set to
 * the store's) and an encoder store with NU users, each with a full window of T behaviors and 50
 * recent. Then, for each K in {1, online CPUs} and each path in {the default one, fp32}, the path
 * is forced for the process (rank_isa_force, which the server's scratches read at start), the
 * server starts in this process on 127.0.0.1 (ephemeral port, K threads), and K client threads,
 * each with one keep-alive HTTP/1.1 connection, send POST /v1/score back to back (closed loop):
 * a warm-up, then S measured seconds. Every response must be a 200 with one score per candidate.
 * A request's latency is the client's wall clock from just before the send to the end of the
 * response; it counts if it completes inside the measured window. The clients share the machine's
 * cores with the server's threads.
 */
#define _GNU_SOURCE /* memmem, strcasestr */
#include "core_alloc.h"
#include "core_err.h"
#include "core_log.h"
#include "core_report.h"
#include "core_util.h"
#include "enc_store.h"
#include "mdl.h"
#include "rank_isa.h"
#include "rank_serve.h"
#include "rank_cli.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum { NU = 8, RECENT = 50, MAX_RUNS = 4 };
#define WARMUP_NS 500000000ll /* untimed requests before the measured window */
#define IO_TIMEOUT_S 30       /* a response slower than this is an error, not a hang */
#define NOW_TS 1700000000ll   /* the request time; behaviors lie before it */

// ---------------------------------------------------------------------------------------------
// Fixture

/* The model file and a store of NU users with T behaviors each (one every 10 minutes before
 * NOW_TS, over 200k items in 5k categories). m must outlive st (the store is bound to it). */
static int build_fixture(const char *model_path, const char *store_path, uint32_t T,
                         mdl_model **m_out, enc_store **st_out, char *err, size_t cap) {
    mdl_config cfg;
    mdl_model *m = NULL;
    enc_store *st = NULL;
    enc_batch *b = NULL;
    int rc;
    mdl_config_default(&cfg);
    cfg.q_short = 1;
    cfg.cross = 1;
    cfg.n_recent = RECENT;
    cfg.window = T; /* the store keeps T: no mdl_window_mismatch */
    if ((rc = mdl_model_init(&m, &cfg, err, cap))) return rc;
    if ((rc = mdl_model_save(m, model_path, 0, err, cap))) goto fail;
    enc_store_conf ec;
    enc_store_conf_default(&ec);
    ec.path = store_path;
    ec.window = T;
    ec.recent = RECENT;
    ec.durable = 0;
    ec.map_size = ((size_t)64 << 20) + (size_t)NU * T * 64;
    if ((rc = enc_store_open(&st, &ec, err, cap))) goto fail;
    if ((rc = enc_store_bind_model(st, m, err, cap))) goto fail;
    core_rng r;
    core_rng_seed(&r, 0x7365727665ull); /* "serve" */
    for (uint64_t u = 1; u <= NU; u++) {
        if ((rc = enc_batch_begin(st, &b))) goto fail_store;
        for (uint32_t j = 0; j < T; j++) {
            sch_event ev;
            memset(&ev, 0, sizeof ev);
            ev.user_id = u;
            ev.item_id = 1 + core_rng_below(&r, 200000);
            ev.category_id = 1 + ev.item_id % 5000;
            ev.ts = NOW_TS - (int64_t)(T - j) * 600;
            ev.action = SCH_ACTION_CLICK;
            if ((rc = enc_batch_apply(b, &ev))) goto fail_store;
        }
        rc = enc_batch_commit(b);
        b = NULL;
        if (rc) goto fail_store;
    }
    *m_out = m;
    *st_out = st;
    return CORE_OK;
fail_store:
    snprintf(err, cap, "building the store: %s", core_strerror(rc));
fail:
    if (b) enc_batch_abort(b);
    enc_store_close(st);
    mdl_model_destroy(m);
    return rc;
}

/* NU requests (one per user), headers and body, with B candidates each from a fixed seed. */
static int build_requests(char **req, size_t *len, uint32_t B, size_t max_body, char *err,
                          size_t cap) {
    core_rng r;
    core_rng_seed(&r, 0x63616e64ull); /* "cand" */
    size_t bcap = (size_t)B * 64 + 256;
    for (int u = 0; u < NU; u++) {
        char *body = core_malloc(bcap);
        if (!body) return CORE_ENOMEM;
        size_t n = (size_t)snprintf(body, bcap, "{\"user_id\": %d, \"ts\": %lld, \"candidates\": [",
                                    u + 1, NOW_TS);
        for (uint32_t i = 0; i < B; i++) {
            uint64_t item = 1 + core_rng_below(&r, 200000);
            n += (size_t)snprintf(body + n, bcap - n,
                                  "%s{\"item_id\": %llu, \"category_id\": %llu}", i ? ", " : "",
                                  (unsigned long long)item, (unsigned long long)(1 + item % 5000));
        }
        n += (size_t)snprintf(body + n, bcap - n, "]}");
        if (n > max_body) {
            snprintf(err, cap,
                     "a request of %u candidates is %zu bytes, above the server's "
                     "max_body of %zu",
                     B, n, max_body);
            core_free(body);
            return CORE_EINVAL;
        }
        size_t qcap = n + 256;
        if (!(req[u] = core_malloc(qcap))) {
            core_free(body);
            return CORE_ENOMEM;
        }
        int h = snprintf(req[u], qcap,
                         "POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                         "application/json\r\nContent-Length: %zu\r\n\r\n",
                         n);
        memcpy(req[u] + h, body, n);
        len[u] = (size_t)h + n;
        core_free(body);
    }
    return CORE_OK;
}

// ---------------------------------------------------------------------------------------------
// The load generator

typedef struct run_ctx {
    uint16_t port;
    uint32_t B;
    char *const *req;
    const size_t *req_len;
    _Atomic int64_t warm_end, end; /* INT64_MAX until every client has its first answer */
    _Atomic int answered;          /* clients with at least one response */
    _Atomic int stop;              /* a client failed: the others stop too */
} run_ctx;

typedef struct client {
    pthread_t th;
    int id;
    run_ctx *rc;
    int64_t *lat; /* ns of the requests that completed in the measured window */
    size_t n, cap;
    char *buf; /* response bytes, NUL-terminated */
    size_t buf_cap;
    int failed;
    char err[512];
} client;

static int push_lat(client *c, int64_t ns) {
    if (core_grow(&c->lat, &c->cap, c->n + 1, sizeof *c->lat, 4096)) return CORE_ENOMEM;
    c->lat[c->n++] = ns;
    return CORE_OK;
}

static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Read one response; check it is a 200 holding B scores. 0 or -1 with c->err set. */
static int read_response(client *c, int fd, uint32_t B) {
    size_t n = 0, hdr = 0, total = 0;
    for (;;) {
        if (core_grow(&c->buf, &c->buf_cap, n + 2, 1, 4096)) {
            snprintf(c->err, sizeof c->err, "out of memory");
            return -1;
        }
        ssize_t k = recv(fd, c->buf + n, c->buf_cap - 1 - n, 0);
        if (k <= 0) {
            snprintf(c->err, sizeof c->err, "reading a response: %s",
                     k == 0 ? "the server closed the connection" : "timeout or socket error");
            return -1;
        }
        n += (size_t)k;
        c->buf[n] = '\0';
        const char *he = hdr ? NULL : memmem(c->buf, n, "\r\n\r\n", 4);
        if (he) {
            hdr = (size_t)(he - c->buf) + 4;
            const char *cl = strcasestr(c->buf, "\r\nContent-Length:");
            if (!cl || cl > he) {
                snprintf(c->err, sizeof c->err, "response without Content-Length");
                return -1;
            }
            total = hdr + strtoull(cl + 17, NULL, 10);
        }
        if (hdr && n >= total) break;
    }
    int status = -1;
    if (sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1 || status != 200) {
        snprintf(c->err, sizeof c->err, "HTTP status %d (want 200): %.300s", status, c->buf + hdr);
        return -1;
    }
    if (n != total) {
        snprintf(c->err, sizeof c->err, "%zu bytes after the response's Content-Length", n - total);
        return -1;
    }
    const char *s = strstr(c->buf + hdr, "\"scores\":[");
    uint32_t got = 0;
    if (s) {
        s += 10;
        if (*s != ']') got = 1;
        for (; *s && *s != ']'; s++)
            got += *s == ',';
    }
    if (!s || *s != ']' || got != B) {
        snprintf(c->err, sizeof c->err, "response holds %u scores for %u candidates: %.200s", got,
                 B, c->buf + hdr);
        return -1;
    }
    return 0;
}

static void *client_main(void *arg) {
    client *c = arg;
    run_ctx *rc = c->rc;
    struct sockaddr_in sa;
    struct timeval tv = {IO_TIMEOUT_S, 0};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        sa.sin_port = htons(rc->port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        snprintf(c->err, sizeof c->err, "cannot connect to 127.0.0.1:%u", rc->port);
        c->failed = 1;
        atomic_store(&rc->stop, 1);
        return NULL;
    }
    for (uint64_t i = 0; !atomic_load_explicit(&rc->stop, memory_order_relaxed); i++) {
        int u = (int)((c->id + i) % NU);
        int64_t t0 = core_now_ns();
        if (t0 >= atomic_load_explicit(&rc->end, memory_order_relaxed)) break;
        if (send_all(fd, rc->req[u], rc->req_len[u])) {
            snprintf(c->err, sizeof c->err, "sending a request: the connection failed");
            goto fail;
        }
        if (read_response(c, fd, rc->B)) goto fail;
        int64_t t1 = core_now_ns();
        if (!i) atomic_fetch_add(&rc->answered, 1);
        if (t1 >= atomic_load_explicit(&rc->warm_end, memory_order_relaxed) &&
            t1 <= atomic_load_explicit(&rc->end, memory_order_relaxed) && push_lat(c, t1 - t0)) {
            snprintf(c->err, sizeof c->err, "out of memory");
            goto fail;
        }
    }
    close(fd);
    return NULL;
fail:
    c->failed = 1;
    atomic_store(&rc->stop, 1);
    close(fd);
    return NULL;
}

typedef struct run_result {
    const char *isa;
    uint32_t K;
    uint64_t requests;
    double rps, cps;
    core_pcts lat;
} run_result;

typedef struct bench {
    const char *model_path;
    enc_store *st;
    uint32_t B, T;
    double seconds;
    char *req[NU];
    size_t req_len[NU];
} bench;

/* One run: the path forced, the server started with K threads, K clients, the server stopped. */
static int run_one(const bench *bn, uint32_t K, const char *isa, run_result *out, char *err,
                   size_t cap) {
    rank_server_conf conf;
    rank_server *srv = NULL;
    client *cl = NULL;
    int64_t *all = NULL;
    uint32_t started = 0;
    int rc;
    if ((rc = rank_isa_force(isa, err, cap))) return rc;
    rank_server_conf_default(&conf);
    conf.model_path = bn->model_path;
    conf.store = bn->st;
    conf.listen_host = "127.0.0.1";
    conf.port = 0;
    conf.threads = K;
    conf.window = bn->T;
    conf.recent = RECENT;
    /* every client connects from 127.0.0.1: no per-address cap, and room for all of them */
    conf.max_connections_per_ip = 0;
    if (conf.max_connections < 2 * K + 8) conf.max_connections = 2 * K + 8;
    if ((rc = rank_server_start(&srv, &conf, err, cap))) return rc;
    run_ctx ctx = {
        .port = rank_server_port(srv), .B = bn->B, .req = bn->req, .req_len = bn->req_len};
    atomic_init(&ctx.warm_end, INT64_MAX);
    atomic_init(&ctx.end, INT64_MAX);
    atomic_init(&ctx.answered, 0);
    atomic_init(&ctx.stop, 0);
    rc = CORE_ENOMEM;
    snprintf(err, cap, "out of memory");
    if (!(cl = core_calloc(K, sizeof *cl))) goto done;
    for (uint32_t i = 0; i < K; i++) {
        cl[i].id = (int)i;
        cl[i].rc = &ctx;
        cl[i].buf_cap = (size_t)bn->B * 20 + 4096;
        if (!(cl[i].buf = core_malloc(cl[i].buf_cap))) goto done;
    }
    /* The clients connect one after another, each once the one before has its first answer:
     * the server hands a new connection to a thread that is not inside a handler when one is
     * free, and opened this way each new one meets the busy threads busy and goes to an idle
     * one (opened together, they would be dealt round robin, which is as even). */
    struct timespec nap = {0, 200000};
    for (; started < K; started++) {
        if (pthread_create(&cl[started].th, NULL, client_main, &cl[started])) {
            snprintf(err, cap, "cannot start client thread %u", started);
            rc = CORE_EIO;
            atomic_store(&ctx.stop, 1);
            goto done;
        }
        while (atomic_load(&ctx.answered) <= (int)started && !atomic_load(&ctx.stop))
            nanosleep(&nap, NULL); /* bounded: a client gives up after IO_TIMEOUT_S */
    }
    int64_t warm_end = core_now_ns() + WARMUP_NS;
    atomic_store(&ctx.warm_end, warm_end);
    atomic_store(&ctx.end, warm_end + (int64_t)(bn->seconds * 1e9));
done:
    for (uint32_t i = 0; i < started; i++)
        pthread_join(cl[i].th, NULL);
    rank_server_stop(srv);
    if (started < K) goto out; /* rc and err say why */
    size_t n = 0;
    for (uint32_t i = 0; i < K; i++) {
        if (cl[i].failed) {
            snprintf(err, cap, "%s, %u threads: client %u: %s", isa, K, i, cl[i].err);
            rc = CORE_EFORMAT;
            goto out;
        }
        n += cl[i].n;
    }
    if (!n) {
        snprintf(err, cap,
                 "%s, %u threads: no request completed in the measured %.3g s (raise "
                 "--seconds)",
                 isa, K, bn->seconds);
        rc = CORE_ERANGE;
        goto out;
    }
    if (!(all = core_malloc(n * sizeof *all))) {
        rc = CORE_ENOMEM;
        snprintf(err, cap, "out of memory");
        goto out;
    }
    n = 0;
    for (uint32_t i = 0; i < K; i++) {
        memcpy(all + n, cl[i].lat, cl[i].n * sizeof *all);
        n += cl[i].n;
    }
    out->isa = isa;
    out->K = K;
    out->requests = n;
    out->rps = (double)n / bn->seconds;
    out->cps = out->rps * bn->B;
    out->lat = core_pcts_us(all, n);
    rc = CORE_OK;
out:
    for (uint32_t i = 0; cl && i < K; i++) {
        core_free(cl[i].lat);
        core_free(cl[i].buf);
    }
    core_free(cl);
    core_free(all);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// trail bench serve

static void bench_serve_more(FILE *f) {
    fprintf(f,
            "`trail serve` end to end on 127.0.0.1: a model (default config, q (.) u_short and\n"
            "cross) and a store of %d users with T behaviors and %d recent each, built in a\n"
            "temporary directory; for K in {1, online CPUs} and each path in {default, fp32},\n"
            "the server runs K threads and K clients send POST /v1/score back to back on one\n"
            "keep-alive connection each, 0.5 s warm-up then S measured seconds.\n"
            "speedup_kmax_vs_fp32 is taken at the largest K run.\n",
            NU, RECENT);
}

const core_cmd rank_bench_serve_cmd = {"bench serve",
                                       "HTTP serving end to end on loopback: req/s, p50/p99",
                                       rank_cmd_bench_serve, NULL, bench_serve_more};

int rank_cmd_bench_serve(int argc, char **argv) {
    uint64_t B = 1000, T = 10000, K = 0;
    double seconds = 3;
    const char *isa_arg = NULL;
    int json = 0, ret = 1, rc;
    char err[1024];
    const core_opt opts[] = {
        CORE_OPT_JSON(&json),
        CORE_OPT_U64("candidates", &B, "B", 1, 2000, "candidates per request"),
        CORE_OPT_U64("window", &T, "T", RECENT, 1000000, "behaviors per user"),
        CORE_OPT_DBL("seconds", &seconds, "S", 0.1, 600, "measured seconds per run"),
        {CORE_OPT_ROW("threads", CORE_OPT_U64, &K, "K",
                      "run only this K (server threads and clients)"),
         .umin = 1, .umax = 1024, .def = "1 and the online CPUs"},
        {CORE_OPT_ROW("isa", CORE_OPT_STRING, &isa_arg, "NAME", "the path compared with fp32"),
         .def = "TRAIL_ISA, else the best"},
        CORE_OPT_ENDROW};
    if ((rc = core_opts_parse(&rank_bench_serve_cmd, opts, argc, argv)) != CORE_OPTS_GO) return rc;
    rank_isa def;
    if (isa_arg ? rank_isa_parse(isa_arg, &def, err, sizeof err) : rank_isa_init(err, sizeof err))
        return core_cmd_usage(&rank_bench_serve_cmd, "%s%s", isa_arg ? "--isa: " : "", err);
    if (!isa_arg) def = rank_isa_current();
    rank_server_conf dconf;
    rank_server_conf_default(&dconf);
    if (B > dconf.max_candidates)
        return core_cmd_usage(&rank_bench_serve_cmd,
                              "--candidates %llu is above the server's limit of %u",
                              (unsigned long long)B, dconf.max_candidates);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    uint32_t nproc = ncpu > 0 ? (uint32_t)ncpu : 1;
    uint32_t ks[2];
    int nk = 0;
    if (K) {
        ks[nk++] = (uint32_t)K;
    } else {
        ks[nk++] = 1;
        if (nproc > 1) ks[nk++] = nproc;
    }
    const char *paths[2] = {rank_isa_name(def), "fp32"};
    int npaths = def == RANK_ISA_FP32 ? 1 : 2;

    core_log_level = CORE_LOG_ERR; /* the server's notices are noise here */
    bench bn = {.B = (uint32_t)B, .T = (uint32_t)T, .seconds = seconds};
    mdl_model *m = NULL;
    char dir[4096], model_path[4200], store_path[4200];
    if (core_tmpdir_make(dir, sizeof dir, "trail-bench-serve")) {
        fprintf(stderr, "trail: bench serve: cannot create a directory like %s\n", dir);
        return 1;
    }
    snprintf(model_path, sizeof model_path, "%s/bench.mdl", dir);
    snprintf(store_path, sizeof store_path, "%s/store", dir);
    bn.model_path = model_path;
    if ((rc = build_fixture(model_path, store_path, (uint32_t)T, &m, &bn.st, err, sizeof err)))
        goto fail;
    if ((rc = build_requests(bn.req, bn.req_len, (uint32_t)B, dconf.max_body, err, sizeof err))) {
        if (rc == CORE_ENOMEM) snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    run_result runs[MAX_RUNS];
    int nr = 0;
    for (int ki = 0; ki < nk; ki++)
        for (int pi = 0; pi < npaths; pi++) {
            if ((rc = run_one(&bn, ks[ki], paths[pi], &runs[nr], err, sizeof err))) goto fail;
            nr++;
        }
    uint32_t kmax = ks[nk - 1];
    /* runs[ki * npaths + pi]: the default path, then fp32 (the same run when the default is) */
    const run_result *r1 = runs, *rk = runs + (nk - 1) * npaths;
    double sp1 = r1[0].cps / r1[npaths - 1].cps, spk = rk[0].cps / rk[npaths - 1].cps;
    char title[256];
    snprintf(title, sizeof title,
             "bench serve: %d users, %g s per run after 0.5 s warm-up, speedup over fp32 in "
             "candidates/s at K=%u and K=%u",
             NU, seconds, ks[0], kmax);
    core_report r;
    core_report_begin(&r, stdout, json ? CORE_REPORT_JSON : CORE_REPORT_TEXT, title);
    core_report_u64(&r, "candidates", bn.B);
    core_report_u64(&r, "window", bn.T);
    core_report_u64(&r, "recent", RECENT);
    core_report_num(&r, "seconds", "%g", seconds);
    core_report_u64(&r, "cores", nproc);
    core_report_str(&r, "isa", paths[0]);
    core_report_str(&r, "openblas_core", rank_isa_openblas_core());
    core_report_arr(&r, "runs");
    for (int i = 0; i < nr; i++) {
        core_report_obj(&r, NULL);
        core_report_str(&r, "isa", runs[i].isa);
        core_report_u64(&r, "threads", runs[i].K);
        core_report_u64(&r, "requests", runs[i].requests);
        core_report_num(&r, "requests_per_s", "%.1f", runs[i].rps);
        core_report_num(&r, "candidates_per_s", "%.0f", runs[i].cps);
        core_report_pcts(&r, NULL, runs[i].lat);
        core_report_close(&r);
    }
    core_report_close(&r);
    core_report_num(&r, "speedup_k1_vs_fp32", "%.2f", sp1);
    core_report_num(&r, "speedup_kmax_vs_fp32", "%.2f", spk);
    core_report_end(&r);
    ret = 0;
fail:
    if (ret) fprintf(stderr, "trail: bench serve: %s\n", err);
    for (int u = 0; u < NU; u++)
        core_free(bn.req[u]);
    enc_store_close(bn.st);
    mdl_model_destroy(m);
    core_rmtree(dir);
    return ret;
}
