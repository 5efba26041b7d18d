/* pipe_broker.c: `trail broker`, a Kafka-protocol broker for development and tests.
 *
 * It is librdkafka 2.0.2's mock cluster kept alive by this process: real TCP listeners on
 * 127.0.0.1 that any Kafka client (trail, kcat, another process) can reach. DEV ONLY. What it
 * cannot do (seen with librdkafka 2.0.2): keep more than 5 MiB or 100,000 message sets per
 * partition (older ones are dropped), answer ListOffsets by timestamp, return more than one message
 * set per partition per fetch (throughput is not representative: never benchmark Kafka with it),
 * honor transactions, or keep anything after this process exits (data is in memory only).
 *
 * Fault injection for tests: SIGUSR1 takes every broker down (connections closed, new ones refused,
 * data kept), SIGUSR2 brings them back up. SIGTERM/SIGINT stop it.
 *
 * --port: the 2.0.2 mock has no listener-port setting, so while the cluster is created this file
 * interposes bind() and turns the mock's "127.0.0.1, any port" binds into ports N, N+1, ... Every
 * other bind() passes straight through to the C library.
 */
#include "core_alloc.h"
#include "core_err.h"
#include "core_log.h"
#include "pipe_kafka.h"
#include "pipe_cli.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

// ---------------------------------------------------------------------------------------------
// Fixed ports for the mock's listeners

#ifndef RTLD_NEXT /* glibc defines it only under _GNU_SOURCE, which also changes bind()'s type */
#define RTLD_NEXT ((void *)-1l)
#endif

static atomic_int bind_next_port; /* 0: bind() passes through unchanged */

typedef int bind_fn(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn *real;
    if (!real) {
        void *sym = dlsym(RTLD_NEXT, "bind");
        memcpy(&real, &sym, sizeof real);
    }
    int port = atomic_load(&bind_next_port);
    if (port && addr && addr->sa_family == AF_INET &&
        len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in sin;
        memcpy(&sin, addr, sizeof sin);
        if (sin.sin_port == 0 && sin.sin_addr.s_addr == htonl(INADDR_LOOPBACK)) {
            sin.sin_port = htons((uint16_t)atomic_fetch_add(&bind_next_port, 1));
            return real(fd, (const struct sockaddr *)&sin, sizeof sin);
        }
    }
    return real(fd, addr, len);
}

struct pipe_mock {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    int n_brokers;
};

int pipe_mock_new(pipe_mock **out, int n_brokers, int port, const char *topics, int partitions,
                  char *errstr, size_t errstr_size) {
    pipe_mock *mk = core_calloc(1, sizeof(*mk));
    if (!mk) return CORE_ENOMEM;
    mk->n_brokers = n_brokers;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "4", errstr, errstr_size);
    mk->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!mk->rk) {
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    atomic_store(&bind_next_port, port);
    mk->mc = rd_kafka_mock_cluster_new(mk->rk, n_brokers);
    atomic_store(&bind_next_port, 0);
    if (!mk->mc) {
        snprintf(errstr, errstr_size, "could not start the mock cluster%s",
                 port ? " (is the port in use?)" : "");
        goto fail;
    }
    if (topics) {
        char *list = core_strdup(topics), *save = NULL;
        if (!list) goto fail;
        for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            rd_kafka_resp_err_t e =
                rd_kafka_mock_topic_create(mk->mc, t, partitions, n_brokers < 3 ? n_brokers : 3);
            if (e) {
                snprintf(errstr, errstr_size, "create topic %s: %s", t, rd_kafka_err2str(e));
                core_free(list);
                goto fail;
            }
        }
        core_free(list);
    }
    *out = mk;
    return CORE_OK;
fail:
    pipe_mock_destroy(mk);
    return CORE_EKAFKA;
}

const char *pipe_mock_bootstraps(const pipe_mock *mk) {
    return rd_kafka_mock_cluster_bootstraps(mk->mc);
}

void pipe_mock_set_down(pipe_mock *mk, int down) {
    for (int i = 1; i <= mk->n_brokers; i++) { /* the mock numbers brokers from 1 */
        if (down)
            rd_kafka_mock_broker_set_down(mk->mc, i);
        else
            rd_kafka_mock_broker_set_up(mk->mc, i);
    }
}

void pipe_mock_destroy(pipe_mock *mk) {
    if (!mk) return;
    if (mk->mc) rd_kafka_mock_cluster_destroy(mk->mc);
    if (mk->rk) rd_kafka_destroy(mk->rk);
    core_free(mk);
}

// ---------------------------------------------------------------------------------------------
// The command

static volatile sig_atomic_t g_stop, g_down, g_up;

static void on_signal(int sig) {
    if (sig == SIGUSR1)
        g_down = 1;
    else if (sig == SIGUSR2)
        g_up = 1;
    else
        g_stop = 1;
}

const core_cmd pipe_broker_cmd = {
    "broker", "run a local in-memory Kafka broker (dev/tests only)", pipe_cmd_broker,
    "Runs librdkafka's in-memory mock Kafka cluster on 127.0.0.1 for development and tests, and\n"
    "prints its bootstrap address (host:port[,host:port]) as the first line.\n"
    "DEV ONLY: data lives in this process's memory and dies with it; at most 5 MiB or 100,000\n"
    "message sets per partition are kept; no transactions; no ListOffsets by time; not a\n"
    "throughput reference. Runs until SIGTERM/SIGINT. SIGUSR1 takes all brokers down (data\n"
    "kept), SIGUSR2 brings them back.\n",
    NULL};

int pipe_cmd_broker(int argc, char **argv) {
    uint64_t partitions = 4, port = 0, nbrokers = 1;
    const char *topics = NULL;
    const core_opt opts[] = {
        CORE_OPT_U64("partitions", &partitions, "P", 1, 10000, "partitions of each --topics topic"),
        {CORE_OPT_ROW("port", CORE_OPT_U64, &port, "N",
                      "first listener port; broker i listens on N+i"),
         .umin = 1, .umax = 65535, .def = "any free"},
        CORE_OPT_U64("brokers", &nbrokers, "K", 1, 16, "brokers in the cluster"),
        CORE_OPT_STR("topics", &topics, "a,b",
                     "topics to create up front (others are auto-created with the mock's\n"
                     "default of 4 partitions)"),
        CORE_OPT_LOG_LEVEL,
        CORE_OPT_ENDROW};
    int rc = core_opts_parse(&pipe_broker_cmd, opts, argc, argv);
    if (rc != CORE_OPTS_GO) return rc;
    if (port && port + nbrokers - 1 > 65535)
        return core_cmd_usage(&pipe_broker_cmd, "--port %llu + %llu brokers exceeds 65535",
                              (unsigned long long)port, (unsigned long long)nbrokers);

    char errstr[512];
    pipe_mock *mk = NULL;
    if (pipe_mock_new(&mk, (int)nbrokers, (int)port, topics, (int)partitions, errstr,
                      sizeof errstr)) {
        fprintf(stderr, "trail: broker: %s\n", errstr);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);

    printf("%s\n", pipe_mock_bootstraps(mk));
    fflush(stdout);
    CORE_LOG(CORE_LOG_NOTICE,
             "broker: up bootstrap=%s brokers=%d partitions=%d topics=%s (dev-only mock cluster: "
             "in-memory, not a throughput reference)",
             pipe_mock_bootstraps(mk), (int)nbrokers, (int)partitions, topics ? topics : "-");
    while (!g_stop) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (g_down) {
            g_down = 0;
            pipe_mock_set_down(mk, 1);
            CORE_LOG(CORE_LOG_NOTICE, "broker: down (SIGUSR1) brokers=%d", (int)nbrokers);
        }
        if (g_up) {
            g_up = 0;
            pipe_mock_set_down(mk, 0);
            CORE_LOG(CORE_LOG_NOTICE, "broker: up (SIGUSR2) brokers=%d", (int)nbrokers);
        }
    }
    CORE_LOG(CORE_LOG_NOTICE, "broker: stopping");
    pipe_mock_destroy(mk);
    return 0;
}
