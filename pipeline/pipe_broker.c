/* pipe_broker.c: `trail broker`, a Kafka-protocol broker for development and tests.
 *
 * It is librdkafka 2.0.2's mock cluster kept alive by this process: real TCP listeners on
 * 127.0.0.1 that any Kafka client (trail, kcat, another process) can reach. DEV ONLY. What it
 * cannot do (from ../shared/NOTES.md): keep more than 5 MiB or 100,000 message sets per partition
 * (older ones are dropped), answer ListOffsets by timestamp, return more than one message set per
 * partition per fetch (throughput is not representative: never benchmark Kafka with it), honor
 * transactions, or keep anything after this process exits (data is in memory only).
 *
 * Fault injection for tests: SIGUSR1 takes every broker down (connections closed, new ones refused,
 * data kept), SIGUSR2 brings them back up. SIGTERM/SIGINT stop it.
 *
 * --port: the 2.0.2 mock has no listener-port setting, so while the cluster is created this file
 * interposes bind() and turns the mock's "127.0.0.1, any port" binds into ports N, N+1, ... Every
 * other bind() passes straight through to the C library.
 */
#include "core_args.h"
#include "core_err.h"
#include "core_log.h"
#include "trail_cmds.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <getopt.h>
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
    if (port && addr && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in sin;
        memcpy(&sin, addr, sizeof sin);
        if (sin.sin_port == 0 && sin.sin_addr.s_addr == htonl(INADDR_LOOPBACK)) {
            sin.sin_port = htons((uint16_t)atomic_fetch_add(&bind_next_port, 1));
            return real(fd, (const struct sockaddr *)&sin, sizeof sin);
        }
    }
    return real(fd, addr, len);
}

// ---------------------------------------------------------------------------------------------
// The command

static volatile sig_atomic_t g_stop, g_down, g_up;

static void on_signal(int sig) {
    if (sig == SIGUSR1) g_down = 1;
    else if (sig == SIGUSR2) g_up = 1;
    else g_stop = 1;
}

static void usage(FILE *f) {
    fprintf(f, "usage: trail broker [--partitions P] [--port N] [--brokers K] [--topics a,b]\n"
               "  Runs librdkafka's in-memory mock Kafka cluster on 127.0.0.1 for development and\n"
               "  tests, and prints its bootstrap address (host:port[,host:port]) as the first line.\n"
               "  DEV ONLY: data lives in this process's memory and dies with it; at most 5 MiB or\n"
               "  100,000 message sets per partition are kept; no transactions; no ListOffsets by\n"
               "  time; not a throughput reference. Runs until SIGTERM/SIGINT.\n"
               "  --partitions P   partitions of each --topics topic (4)\n"
               "  --port N         first listener port; broker i listens on N+i (default: any free)\n"
               "  --brokers K      brokers in the cluster (1)\n"
               "  --topics a,b     topics to create up front (others are auto-created with the\n"
               "                   mock's default of 4 partitions)\n"
               "  SIGUSR1 takes all brokers down (data kept), SIGUSR2 brings them back.\n");
}

int pipe_cmd_broker(int argc, char **argv) {
    static const struct option opts[] = {{"partitions", 1, 0, 'p'}, {"port", 1, 0, 'P'},
                                         {"brokers", 1, 0, 'b'},    {"topics", 1, 0, 't'},
                                         {"help", 0, 0, 'h'},       {0, 0, 0, 0}};
    uint64_t partitions = 4, port = 0, nbrokers = 1;
    const char *topics = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (core_parse_u64(optarg, 1, 10000, "--partitions", &partitions)) return 2;
            break;
        case 'P':
            if (core_parse_u64(optarg, 1, 65535, "--port", &port)) return 2;
            break;
        case 'b':
            if (core_parse_u64(optarg, 1, 16, "--brokers", &nbrokers)) return 2;
            break;
        case 't': topics = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (port && port + nbrokers - 1 > 65535) {
        fprintf(stderr, "trail: broker: --port %llu + %llu brokers exceeds 65535\n",
                (unsigned long long)port, (unsigned long long)nbrokers);
        return 2;
    }

    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        fprintf(stderr, "trail: broker: %s\n", errstr);
        return 1;
    }
    atomic_store(&bind_next_port, (int)port);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, (int)nbrokers);
    atomic_store(&bind_next_port, 0);
    if (!mc) {
        fprintf(stderr, "trail: broker: could not start the mock cluster%s\n",
                port ? " (is the port in use?)" : "");
        rd_kafka_destroy(rk);
        return 1;
    }
    int rc = 0;
    if (topics) {
        char *list = strdup(topics), *save = NULL;
        for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            rd_kafka_resp_err_t e =
                rd_kafka_mock_topic_create(mc, t, (int)partitions, nbrokers < 3 ? (int)nbrokers : 3);
            if (e) {
                fprintf(stderr, "trail: broker: create topic %s: %s\n", t, rd_kafka_err2str(e));
                rc = 1;
            }
        }
        free(list);
    }
    if (rc) goto out;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);

    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    CORE_LOG(CORE_LOG_NOTICE,
             "broker: up bootstrap=%s brokers=%d partitions=%d topics=%s (dev-only mock cluster: "
             "in-memory, not a throughput reference)",
             rd_kafka_mock_cluster_bootstraps(mc), (int)nbrokers, (int)partitions,
             topics ? topics : "-");
    while (!g_stop) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (g_down) {
            g_down = 0;
            for (int i = 1; i <= (int)nbrokers; i++) rd_kafka_mock_broker_set_down(mc, i);
            CORE_LOG(CORE_LOG_NOTICE, "broker: down (SIGUSR1) brokers=%d", (int)nbrokers);
        }
        if (g_up) {
            g_up = 0;
            for (int i = 1; i <= (int)nbrokers; i++) rd_kafka_mock_broker_set_up(mc, i);
            CORE_LOG(CORE_LOG_NOTICE, "broker: up (SIGUSR2) brokers=%d", (int)nbrokers);
        }
    }
    CORE_LOG(CORE_LOG_NOTICE, "broker: stopping");
out:
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return rc;
}
