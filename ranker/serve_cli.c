/* serve_cli.c: `trail serve`: parse options, start the server, and turn signals into actions
 * (SIGHUP: reload the model; SIGTERM/SIGINT: drain and exit 0). Signals are blocked in every
 * thread and taken synchronously with sigwait here, so no work happens in a signal handler. */
#include "core_args.h"
#include "core_err.h"
#include "core_log.h"
#include "rank_isa.h"
#include "rank_serve.h"
#include "trail_cmds.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

static void serve_usage(FILE *f) {
    fprintf(f, "usage: trail serve --model M --store DIR --listen HOST:PORT [options]\n"
               "  --model M            model file (reloaded on SIGHUP and POST /admin/reload)\n"
               "  --store DIR          the encoder's store\n"
               "  --listen HOST:PORT   IPv4 address and port (port 0: any free port)\n"
               "  --threads K          HTTP threads and worker slots (4)\n"
               "  --max-candidates N   candidates per request (2000)\n"
               "  --max-body BYTES     request body limit, K/M suffixes allowed (1M)\n"
               "  --window L           the store's raw window size (default: as stored)\n"
               "  --recent N           the store's recent size (default: as stored)\n"
               "  --max-connections N  open connections in all; past it a client gets 503 at\n"
               "                       once (1000)\n"
               "  --max-connections-per-ip N\n"
               "                       open connections per client address (64; 0: no limit;\n"
               "                       behind a proxy, above its connection pool)\n"
               "  --read-timeout S     a request (head and body) must arrive within S seconds\n"
               "                       of the connection or the previous answer, else the\n"
               "                       connection is closed (5)\n"
               "  --isa PATH           compute path: auto (default: the best this CPU runs),\n"
               "                       scalar, fp32, avx2, avx2-int8, avx2-int16, avx512-bf16,\n"
               "                       avx512-vnni, amx-bf16; or set TRAIL_ISA\n"
               "API: schemas/rank-api.md\n");
}

/* Each connection is a descriptor: raise the soft open-file limit toward the hard one so that
 * the connection limit, not EMFILE, is what refuses connections (rank_server_start warns if the
 * limit stays too low). */
static void raise_nofile(uint32_t max_connections, uint32_t threads) {
    struct rlimit rl;
    // libmicrohttpd's backstop limit is max_connections + 64 + threads; then the store, the model,
    // logs, the listen socket
    rlim_t want = (rlim_t)max_connections + threads + 256;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

int rank_cmd_serve(int argc, char **argv) {
    static const struct option opts[] = {{"model", 1, 0, 'm'},
                                         {"store", 1, 0, 's'},
                                         {"listen", 1, 0, 'l'},
                                         {"threads", 1, 0, 't'},
                                         {"max-candidates", 1, 0, 'c'},
                                         {"max-body", 1, 0, 'b'},
                                         {"window", 1, 0, 'w'},
                                         {"recent", 1, 0, 'r'},
                                         {"isa", 1, 0, 'i'},
                                         {"help", 0, 0, 'h'},
                                         {"max-connections", 1, 0, 'C'},
                                         {"max-connections-per-ip", 1, 0, 'P'},
                                         {"read-timeout", 1, 0, 'T'},
                                         {0, 0, 0, 0}};
    rank_server_conf conf;
    char host[64], err[1024];
    const char *listen = NULL;
    uint64_t v;
    int c;
    rank_server_conf_default(&conf);
    if (rank_isa_init(err, sizeof err)) {
        fprintf(stderr, "trail: serve: %s\n", err);
        return 2;
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            conf.model_path = optarg;
            break;
        case 's':
            conf.store_path = optarg;
            break;
        case 'l':
            listen = optarg;
            break;
        case 't':
            if (core_parse_u64(optarg, 1, 1024, "--threads", &v)) return 2;
            conf.threads = (uint32_t)v;
            break;
        case 'c':
            if (core_parse_u64(optarg, 1, 1000000, "--max-candidates", &v)) return 2;
            conf.max_candidates = (uint32_t)v;
            break;
        case 'b':
            if (core_parse_size(optarg, "--max-body", &v)) return 2;
            if (v < 64 || v > (1ull << 30)) {
                fprintf(stderr, "trail: --max-body: must be between 64 bytes and 1G\n");
                return 2;
            }
            conf.max_body = (size_t)v;
            break;
        case 'i':
            if (rank_isa_force(optarg, err, sizeof err)) {
                fprintf(stderr, "trail: serve: --isa: %s\n", err);
                return 2;
            }
            break;
        case 'w':
            if (core_parse_u64(optarg, 1, UINT32_MAX, "--window", &v)) return 2;
            conf.window = (uint32_t)v;
            break;
        case 'r':
            if (core_parse_u64(optarg, 1, UINT32_MAX, "--recent", &v)) return 2;
            conf.recent = (uint32_t)v;
            break;
        case 'C':
            if (core_parse_u64(optarg, 1, 1000000, "--max-connections", &v)) return 2;
            conf.max_connections = (uint32_t)v;
            break;
        case 'P':
            if (core_parse_u64(optarg, 0, 1000000, "--max-connections-per-ip", &v)) return 2;
            conf.max_connections_per_ip = (uint32_t)v;
            break;
        case 'T':
            if (core_parse_u64(optarg, 1, 3600, "--read-timeout", &v)) return 2;
            conf.read_timeout_s = (uint32_t)v;
            break;
        case 'h':
            serve_usage(stdout);
            return 0;
        default:
            serve_usage(stderr);
            return 2;
        }
    }
    if (!conf.model_path || !conf.store_path || !listen || optind != argc) {
        serve_usage(stderr);
        return 2;
    }
    if (conf.max_connections < conf.threads) {
        fprintf(stderr, "trail: --max-connections: must be at least --threads (%u)\n",
                conf.threads);
        return 2;
    }
    raise_nofile(conf.max_connections, conf.threads);
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof host) {
        fprintf(stderr, "trail: --listen: '%s' is not HOST:PORT\n", listen);
        return 2;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    if (core_parse_u64(colon + 1, 0, 65535, "--listen port", &v)) return 2;
    conf.listen_host = host;
    conf.port = (uint16_t)v;

    // block the signals in this thread before any other starts, so every thread inherits the mask
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    rank_server *srv = NULL;
    int rc = rank_server_start(&srv, &conf, err, sizeof err);
    if (rc) {
        fprintf(stderr, "trail: serve: %s\n", err);
        return 1;
    }
    // one line a supervisor or test can wait for
    printf("listening on %s:%u\n", host, rank_server_port(srv));
    fflush(stdout);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) continue;
        if (sig == SIGHUP) {
            CORE_LOG(CORE_LOG_NOTICE, "serve: SIGHUP: reloading");
            rank_server_reload(srv, NULL, NULL, err, sizeof err); // logs either way
            continue;
        }
        CORE_LOG(CORE_LOG_NOTICE, "serve: %s: draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    rank_server_stop(srv);
    return 0;
}
