/* serve_cli.c: `trail serve`: parse options, start the server, and turn signals into actions
 * (SIGHUP: reload the model; SIGTERM/SIGINT: drain and exit 0).
 *
 * Signals: handlers (sigaction, SA_RESTART) for SIGHUP, SIGTERM and SIGINT only set a flag and
 * write a byte to a self-pipe (async-signal-safe); the main thread's loop polls the pipe and does
 * the work. The signals are blocked in every thread this process creates (the HTTP workers and
 * acceptors, which core_http also creates with every signal blocked), but not in threads libraries
 * started before main ran: OpenBLAS starts its pool in its library constructor, with nothing
 * blocked. The kernel may deliver a process-directed signal to any thread that does not block it;
 * with handlers installed, one landing on an OpenBLAS thread runs the handler there and is still
 * seen by the loop, where before (sigwait in main, default actions elsewhere) a SIGHUP arriving
 * while main was busy reloading killed the process. Flags coalesce: any number of SIGHUPs during a
 * reload cause one more reload, never a queue of them. */
#include "core_args.h"
#include "core_err.h"
#include "core_http.h"
#include "core_log.h"
#include "rank_isa.h"
#include "rank_serve.h"
#include "rank_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const core_cmd rank_serve_cmd = {
    "serve", "serve /v1/score over HTTP with hot model reload", rank_cmd_serve,
    "The public listener has no admin endpoint: POST /admin/reload there is 404.\n"
    "API: schemas/rank-api.md\n",
    NULL};

/* Each connection is a descriptor: raise the soft open-file limit toward the hard one so that
 * the connection limit, not EMFILE, is what refuses connections (rank_server_start warns if the
 * limit stays too low). */
static void raise_nofile(uint32_t max_connections, uint32_t threads) {
    struct rlimit rl;
    // the connections within the limit, as many again (and 64) refused ones being answered 503
    // and closed (core_http.c's backstop), then the threads' epoll sets and pipes, the store,
    // the model, logs, the listen sockets
    rlim_t want = 2 * (rlim_t)max_connections + 64 + 3 * (rlim_t)threads + 256;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

/* HOST:PORT into host and *port; the host is required. @return 0, or 2 (the exit code) after a
 * usage error's line. */
static int split_host_port(const char *arg, const char *flag, char *host, size_t cap,
                           uint16_t *port) {
    char why[256];
    if (core_http_split_addr(arg, host, cap, port, why, sizeof why))
        return core_cmd_usage(&rank_serve_cmd, "%s: %s", flag, why);
    if (!host[0]) return core_cmd_usage(&rank_serve_cmd, "%s: '%s' names no host", flag, arg);
    return 0;
}

/* The admin token: the file's first line, without its line end or trailing blanks.
 * @return 0, or -1 with the reason on stderr. */
static int read_token(const char *path, char *token, size_t cap) {
    FILE *f = fopen(path, "r");
    const char *why = f ? NULL : strerror(errno);
    if (f && !fgets(token, (int)cap, f)) token[0] = '\0';
    if (f) fclose(f);
    size_t n = f ? strlen(token) : 0;
    while (n && strchr("\n\r \t", token[n - 1]))
        token[--n] = '\0';
    for (size_t i = 0; !why && i < n; i++)
        if ((unsigned char)token[i] < 0x21 || (unsigned char)token[i] > 0x7e)
            why = "the token must be printable ASCII without spaces";
    if (!why && !n) why = "no token on its first line";
    if (why) fprintf(stderr, "trail: --admin-token-file: %s: %s\n", path, why);
    return why ? -1 : 0;
}

/* The self-pipe: what the handlers tell the loop. Lock-free atomics are async-signal-safe. */
static int sig_pipe[2] = {-1, -1};
static _Atomic int sig_hup, sig_stop;

static void on_signal(int sig) {
    int saved = errno;
    if (sig == SIGHUP)
        atomic_store(&sig_hup, 1);
    else
        atomic_store(&sig_stop, sig);
    char b = (char)sig;
    // non-blocking: a full pipe already wakes the loop, and the flags say what came
    ssize_t k = write(sig_pipe[1], &b, 1);
    (void)k;
    errno = saved;
}

/* Install the handlers (process-wide, so whichever thread the kernel picks runs them), then block
 * the signals in this thread so that the threads the server creates inherit the mask.
 * @return 0, or -1 with errno. */
static int signals_install(sigset_t *set) {
    struct sigaction sa;
    if (pipe(sig_pipe) != 0) return -1;
    for (int i = 0; i < 2; i++)
        if (fcntl(sig_pipe[i], F_SETFL, O_NONBLOCK) != 0 ||
            fcntl(sig_pipe[i], F_SETFD, FD_CLOEXEC) != 0)
            return -1;
    sigemptyset(set);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_mask = *set; // one handler at a time per thread
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGHUP, &sa, NULL) || sigaction(SIGTERM, &sa, NULL) ||
        sigaction(SIGINT, &sa, NULL))
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return pthread_sigmask(SIG_BLOCK, set, NULL) == 0 ? 0 : -1;
}

/* The one place signals are acted on: reload on SIGHUP (coalesced), return on SIGTERM/SIGINT. */
static void signals_loop(rank_server *srv, const sigset_t *set) {
    char err[1024], buf[64];
    // the server's threads exist and block the signals; this one may now take them too
    pthread_sigmask(SIG_UNBLOCK, set, NULL);
    for (;;) {
        int stop = atomic_load(&sig_stop);
        if (stop) {
            CORE_LOG(CORE_LOG_NOTICE, "serve: %s: draining",
                     stop == SIGTERM ? "SIGTERM" : "SIGINT");
            return;
        }
        if (atomic_exchange(&sig_hup, 0)) { // SIGHUPs from here on ask for another reload
            CORE_LOG(CORE_LOG_NOTICE, "serve: SIGHUP: reloading");
            rank_server_reload(srv, NULL, NULL, err, sizeof err); // logs either way
            continue;
        }
        struct pollfd pfd = {sig_pipe[0], POLLIN, 0};
        int n = poll(&pfd, 1, 1000); // the timeout only bounds a missed wake-up
        if (n < 0 && errno != EINTR) {
            CORE_LOG(CORE_LOG_ERR, "serve: poll on the signal pipe: %s", strerror(errno));
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        while (read(sig_pipe[0], buf, sizeof buf) > 0) {
        } // drain; the flags say what came
    }
}

int rank_cmd_serve(int argc, char **argv) {
    rank_server_conf conf;
    char host[64], admin_host[64], err[1024], token[4096], admin_sock[4096];
    const char *listen = NULL, *admin_listen = NULL, *token_file = NULL;
    rank_server_conf_default(&conf);
    int rc = rank_cli_isa_init(&rank_serve_cmd);
    if (rc) return rc;
    const core_opt opts[] = {
        CORE_OPT_NEED("model", &conf.model_path, "M",
                      "model file (reloaded on SIGHUP and POST /admin/reload on the admin\n"
                      "listener)"),
        CORE_OPT_NEED("store", &conf.store_path, "DIR", "the encoder's store"),
        CORE_OPT_NEED("listen", &listen, "HOST:PORT",
                      "IPv4 address and port (port 0: any free port)"),
        CORE_OPT_U32("threads", &conf.threads, "K", 1, 1024, "HTTP threads and worker slots"),
        CORE_OPT_U32("max-candidates", &conf.max_candidates, "N", 1, 1000000,
                     "candidates per request"),
        {CORE_OPT_ROW("max-body", CORE_OPT_SIZE, &conf.max_body, "BYTES",
                      "request body limit, K/M suffixes allowed"),
         .umin = 64, .umax = 1ull << 30},
        {CORE_OPT_ROW("window", CORE_OPT_U32, &conf.window, "L", "the store's raw window size"),
         .umin = 1, .umax = UINT32_MAX, .def = "as stored"},
        {CORE_OPT_ROW("recent", CORE_OPT_U32, &conf.recent, "N", "the store's recent size"),
         .umin = 1, .umax = UINT32_MAX, .def = "as stored"},
        CORE_OPT_U32("max-connections", &conf.max_connections, "N", 1, 1000000,
                     "open connections in all; past it a client gets 503 at once"),
        CORE_OPT_U32("max-connections-per-ip", &conf.max_connections_per_ip, "N", 0, 1000000,
                     "open connections per client address (0: no limit; behind a proxy, above\n"
                     "its connection pool)"),
        CORE_OPT_U32("read-timeout", &conf.read_timeout_s, "S", 1, 3600,
                     "a request (head and body) must arrive within S seconds of the connection\n"
                     "or the previous answer, else the connection is closed"),
        CORE_OPT_FLG("create-store", &conf.create_store,
                     "create --store if it holds no store (default: refused, so a mistyped path\n"
                     "is an error, not an empty store)"),
        RANK_OPT_ISA,
        {CORE_OPT_ROW("admin-socket", CORE_OPT_PATH, &conf.admin_socket, "PATH",
                      "the admin listener (POST /admin/reload, GET /healthz, /metrics): a Unix\n"
                      "socket, mode 0600, so only this user (and root) may reload"),
         .def = "STORE/admin.sock"},
        CORE_OPT_STR("admin-listen", &admin_listen, "HOST:PORT",
                     "instead, an IPv4 address for the admin listener; one other than loopback\n"
                     "needs --admin-token-file"),
        CORE_OPT_FILE("admin-token-file", &token_file, "F",
                      "admin requests need \"Authorization: Bearer <token>\", the token being F's\n"
                      "first line"),
        {CORE_OPT_ROW("log-level", CORE_OPT_FUNC, NULL, "L",
                      "error, warn, notice, info or debug: client errors (4xx) are info lines,\n"
                      "at most 10 a second"),
         .fn = core_log_level_opt, .def = "info"},
        CORE_OPT_FILE("access-log", &conf.access_log, "PATH|-",
                      "one line per request (time, method, path, status, candidates, latency,\n"
                      "request id, client), appended to PATH or written to stdout"),
        CORE_OPT_ENDROW};
    if ((rc = core_opts_parse(&rank_serve_cmd, opts, argc, argv)) != CORE_OPTS_GO) return rc;
    if (conf.max_connections < conf.threads)
        return core_cmd_usage(&rank_serve_cmd, "--max-connections: must be at least --threads (%u)",
                              conf.threads);
    raise_nofile(conf.max_connections, conf.threads);
    if (split_host_port(listen, "--listen", host, sizeof host, &conf.port)) return 2;
    conf.listen_host = host;
    if (admin_listen && conf.admin_socket)
        return core_cmd_usage(&rank_serve_cmd, "--admin-socket or --admin-listen, not both");
    if (admin_listen) {
        if (split_host_port(admin_listen, "--admin-listen", admin_host, sizeof admin_host,
                            &conf.admin_port))
            return 2;
        conf.admin_host = admin_host;
    } else if (!conf.admin_socket) {
        snprintf(admin_sock, sizeof admin_sock, "%s/admin.sock", conf.store_path);
        conf.admin_socket = admin_sock;
    }
    if (token_file) {
        if (read_token(token_file, token, sizeof token)) return 2;
        conf.admin_token = token;
    }

    // handlers first, then blocked in this thread before any other starts, so every thread the
    // server creates inherits the mask (a SIGHUP during start is acted on once it has started)
    sigset_t set;
    if (signals_install(&set) != 0) {
        fprintf(stderr, "trail: serve: installing signal handlers: %s\n", strerror(errno));
        return 1;
    }

    rank_server *srv = NULL;
    rc = rank_server_start(&srv, &conf, err, sizeof err);
    if (rc) {
        fprintf(stderr, "trail: serve: %s\n", err);
        return 1;
    }
    // one line a supervisor or test can wait for
    printf("listening on %s:%u\n", host, rank_server_port(srv));
    if (conf.admin_host)
        printf("admin on %s:%u\n", conf.admin_host, rank_server_admin_port(srv));
    else
        printf("admin on unix:%s\n", conf.admin_socket);
    fflush(stdout);
    signals_loop(srv, &set);
    rank_server_stop(srv);
    return 0;
}

const core_cmd *const serve_cmds[] = {&rank_rank_cmd, &rank_serve_cmd, &rank_bench_serve_cmd, NULL};
