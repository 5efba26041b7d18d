/* test_pipe_fault.c: the worker processes under faults, end to end through the CLI, against
 * `trail broker` (librdkafka's mock cluster in its own process, loopback).
 *
 * 1. Two `trail encode-kafka` workers in one group consume a topic fed at a fixed rate; one is
 *    killed with SIGKILL mid-stream, between the two tiers' commits (behaviors committed to its
 *    users' windows whose bucket sums had not caught up: lag marks in the store), and restarted
 *    on its store; once both are caught up (every tier), SIGTERM
 *    drains them (exit 0, "stop reason=signal"). For every user, the state held by a store whose
 *    committed offset for the user's partition is the partition's end equals, byte for byte (all
 *    but the wall-clock updated_at), the state a single uninterrupted `trail encode --input` file
 *    replay of the same events builds. Malformed messages are in the dead-letter topic with their
 *    reason, source topic, partition and offset.
 * 2. One worker with --until-end while every broker is taken down (SIGUSR1 to `trail broker`) for
 *    3 s mid-stream and brought back (SIGUSR2): it exits 0 with the same state as the file replay.
 *    What this proves: connections refused and dropped for a while, then restored with the data
 *    intact (the mock keeps it in memory); it does not prove survival of a broker that loses data.
 */
#include "test_common.h"
#include "test_proc.h"
#include "pipe_test_util.h"

#include "core_err.h"
#include "core_log.h"
#include "core_util.h"
#include "enc_store.h"
#include "mdl.h"
#include "pipe_kafka.h"
#include "sch_event.h"

#include <arpa/inet.h>
#include <lmdb.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define NUSERS 300
#define NEVENTS 12000
#define NBAD 12
#define NPART 4

static char g_dir[4096], g_events[4200], g_model[4200], g_ref[4200];
static char g_brokers[256], g_bin[4096];
static pid_t g_broker = -1;

/* Run argv with stdout+stderr appended to logpath; returns the pid. */
static pid_t spawn(char *const argv[], const char *logpath) {
    return test_spawn(argv, logpath, logpath, 1);
}

static int run(char *const argv[], const char *logpath, int timeout_ms) {
    return test_wait_exit(spawn(argv, logpath), timeout_ms);
}

/* Wait for `needle` in a file; copy the rest of its line into out. */
static int wait_in_file(const char *path, const char *needle, char *out, size_t cap,
                        int timeout_ms) {
    for (int t = 0; t < timeout_ms; t += 50) {
        FILE *f = fopen(path, "r");
        char line[2048];
        while (f && fgets(line, sizeof line, f)) {
            char *p = strstr(line, needle);
            if (!p) continue;
            p += strlen(needle);
            p[strcspn(p, "\r\n")] = 0;
            if (out) snprintf(out, cap, "%s", p);
            fclose(f);
            return 1;
        }
        if (f) fclose(f);
        test_msleep(50);
    }
    return 0;
}

/* GET /metrics into buf (NUL-terminated); 0 if the worker does not answer. */
static int http_metrics(int port, char *buf, size_t cap) {
    char *body;
    return pipe_test_http_get("127.0.0.1", port, "/metrics", buf, cap, &body) == 200;
}

static int http_caught_up(int port) {
    static char buf[65536];
    return http_metrics(port, buf, sizeof buf) && strstr(buf, "trail_pipeline_caught_up 1\n");
}

static void write_events(void) {
    FILE *f = fopen(g_events, "w");
    assert_non_null(f);
    core_rng r;
    core_rng_seed(&r, 7);
    char buf[300];
    for (int i = 0; i < NEVENTS; i++) {
        sch_event ev = {.user_id = 1 + (uint64_t)((i * 7919) % NUSERS),
                        .item_id = 1 + core_rng_below(&r, 5000),
                        .ts = 1511544070 + i,
                        .action = (uint8_t)(i % 17 == 0 ? SCH_ACTION_BUY : SCH_ACTION_CLICK)};
        ev.category_id = 1 + ev.item_id % 200;
        assert_true(sch_event_to_json(&ev, buf, sizeof buf) > 0);
        fprintf(f, "%s\n", buf);
        if (i % (NEVENTS / NBAD) == 500)
            fprintf(f, (i / 1000) % 2 ? "{\"user_id\": %d, \"item_id\": -1}\n" : "garbage %d\n",
                    i % NUSERS);
    }
    fclose(f);
}

static int setup(void **state) {
    (void)state;
    char log[4200];
    if (!test_mkdtemp(g_dir, sizeof g_dir)) return -1;
    snprintf(g_events, sizeof g_events, "%s/events.jsonl", g_dir);
    snprintf(g_model, sizeof g_model, "%s/m.bin", g_dir);
    snprintf(g_ref, sizeof g_ref, "%s/ref", g_dir);
    write_events();
    snprintf(g_bin, sizeof g_bin, "%s", test_trail_bin());
    char *bin = g_bin;
    snprintf(log, sizeof log, "%s/setup.log", g_dir);
    char *init[] = {bin,           "model", "init",       "--out", g_model,
                    "--item-rows", "4096",  "--cat-rows", "512",   NULL};
    if (run(init, log, 60000) != 0) return -1;
    /* The reference: one uninterrupted file replay (malformed lines go to its reject file). */
    char *enc[] = {bin, "encode", "--model", g_model, "--store", g_ref, "--input", g_events, NULL};
    if (run(enc, log, 120000) != 0) return -1;
    char out[4200];
    snprintf(out, sizeof out, "%s/broker.out", g_dir);
    snprintf(log, sizeof log, "%s/broker.log", g_dir);
    char *br[] = {bin, "broker", "--partitions", "4", "--topics", "ev,ev2", NULL};
    g_broker = test_spawn(br, out, log, 0);
    for (int t = 0; t < 10000 && !g_brokers[0]; t += 50) {
        FILE *f = fopen(out, "r");
        if (f) {
            if (fgets(g_brokers, sizeof g_brokers, f) && strchr(g_brokers, '\n'))
                g_brokers[strcspn(g_brokers, "\n")] = 0;
            else
                g_brokers[0] = 0;
            fclose(f);
        }
        test_msleep(50);
    }
    return g_brokers[0] ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    if (g_broker > 0) {
        kill(g_broker, SIGTERM);
        test_wait_exit(g_broker, 10000);
    }
    if (getenv("TRAIL_TEST_KEEP"))
        fprintf(stderr, "kept %s\n", g_dir);
    else
        test_rmtree(g_dir);
    return 0;
}

static pid_t start_worker(const char *topic, const char *store, const char *log, int until_end,
                          const char *batch) {
    static char *argv[32];
    static char s_store[4200], s_topic[64], s_batch[16];
    snprintf(s_batch, sizeof s_batch, "%s", batch);
    snprintf(s_store, sizeof s_store, "%s", store);
    snprintf(s_topic, sizeof s_topic, "%s", topic);
    int k = 0;
    argv[k++] = g_bin;
    argv[k++] = "encode-kafka";
    argv[k++] = "--brokers", argv[k++] = g_brokers;
    argv[k++] = "--topic", argv[k++] = s_topic;
    argv[k++] = "--group", argv[k++] = s_topic;
    argv[k++] = "--model", argv[k++] = g_model;
    argv[k++] = "--store", argv[k++] = s_store;
    argv[k++] = "--batch", argv[k++] = s_batch;
    argv[k++] = "--metrics", argv[k++] = "127.0.0.1:0";
    argv[k++] = "-X", argv[k++] = "kafka.session.timeout.ms=6000";
    argv[k++] = "-X", argv[k++] = "kafka.heartbeat.interval.ms=500";
    argv[k++] = "-X", argv[k++] = "kafka.max.poll.interval.ms=7000";
    if (until_end) argv[k++] = "--until-end";
    argv[k] = NULL;
    return spawn(argv, log);
}

static int metrics_port(const char *log) {
    char rest[256];
    if (!wait_in_file(log, "metrics url=http://127.0.0.1:", rest, sizeof rest, 20000)) return -1;
    return atoi(rest);
}

// ---------------------------------------------------------------------------------------------
// State comparison through enc_reader: everything but updated_at

typedef struct opened {
    mdl_model *m;
    enc_store *st;
    enc_reader *r;
} opened;

static void open_store(opened *o, const char *path) {
    char err[512];
    enc_store_conf sc;
    enc_store_conf_default(&sc);
    sc.path = path;
    sc.window = 0;
    sc.recent = 0;
    assert_int_equal(enc_store_open(&o->st, &sc, err, sizeof err), CORE_OK);
    assert_int_equal(enc_reader_new(o->st, &o->r), CORE_OK);
}

/* Users of the store at path whose bucket sums trail their window (lag marks, schemas/state.md),
 * in a read-only transaction: it needs no lock a frozen writer may hold (enc_store_open's setup
 * transaction would wait for the writer). Opened without the lock file (MDB_NOLOCK), so the read
 * takes the newest commit in the data file, as a restart does: through the lock file a reader
 * takes the commit the writer last published there, and a writer frozen between writing a commit
 * and publishing it would show the commit before (a run saw 18 lag marks frozen and 0 after the
 * kill). Read only while the writer is frozen or dead. */
static uint64_t store_lagging(const char *path) {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_stat ms;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 10), 0);
    assert_int_equal(mdb_env_open(env, path, MDB_RDONLY | MDB_NOLOCK, 0664), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "lag", 0, &dbi), 0);
    assert_int_equal(mdb_stat(txn, dbi, &ms), 0);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return ms.ms_entries;
}

static void close_store(opened *o) {
    enc_reader_destroy(o->r);
    enc_store_close(o->st);
}

static void assert_same_user(opened *a, opened *b, uint64_t uid) {
    static sch_behavior wa[20000], wb[20000];
    enc_user_view va, vb;
    uint32_t na, nb;
    assert_int_equal(enc_reader_begin(a->r), CORE_OK);
    assert_int_equal(enc_reader_begin(b->r), CORE_OK);
    assert_int_equal(enc_reader_user(a->r, uid, &va), CORE_OK);
    assert_int_equal(enc_reader_user(b->r, uid, &vb), CORE_OK);
    assert_int_equal(va.encoding_version, vb.encoding_version);
    assert_int_equal(va.S, vb.S);
    assert_int_equal(va.n_buckets, vb.n_buckets);
    assert_int_equal(va.C, vb.C);
    assert_memory_equal(va.bucket_sum, vb.bucket_sum, sizeof(float) * va.S * va.n_buckets * va.C);
    assert_memory_equal(va.bucket_cnt, vb.bucket_cnt, sizeof(uint32_t) * va.S * va.n_buckets);
    assert_int_equal(va.window_len, vb.window_len);
    assert_int_equal(va.recent_len, vb.recent_len);
    assert_memory_equal(va.recent, vb.recent, sizeof(sch_behavior) * va.recent_len);
    assert_int_equal(va.last_ts, vb.last_ts);
    assert_int_equal(va.n_events, vb.n_events);
    assert_memory_equal(va.action_cnt, vb.action_cnt, 8 * sizeof(uint64_t));
    assert_int_equal(va.n_summed, vb.n_summed); /* every tier caught up */
    assert_int_equal(enc_reader_window(a->r, uid, wa, 20000, &na), CORE_OK);
    assert_int_equal(enc_reader_window(b->r, uid, wb, 20000, &nb), CORE_OK);
    assert_int_equal(na, nb);
    for (uint32_t i = 0; i < na; i++) {
        assert_int_equal(wa[i].item_id, wb[i].item_id);
        assert_int_equal(wa[i].category_id, wb[i].category_id);
        assert_int_equal(wa[i].ts, wb[i].ts);
        assert_int_equal(wa[i].action, wb[i].action);
    }
    enc_reader_end(a->r);
    enc_reader_end(b->r);
}

/* For each user: a store at the end of the user's partition holds exactly the reference state. */
static void assert_matches_reference(const char *topic, const char *const *stores, int n_stores) {
    opened ref, w[4];
    int64_t end[NPART], off[4][NPART];
    char err[512], src[64];
    pipe_consumer *c;
    assert_int_equal(pipe_consumer_new(&c, g_brokers, NULL, topic, NULL, NULL, err, sizeof err),
                     CORE_OK);
    for (int p = 0; p < NPART; p++) {
        int64_t lo;
        assert_int_equal(pipe_consumer_watermarks(c, topic, p, 10000, &lo, &end[p]), CORE_OK);
    }
    pipe_consumer_close(c);
    open_store(&ref, g_ref);
    for (int i = 0; i < n_stores; i++) {
        open_store(&w[i], stores[i]);
        uint64_t lag = 1;
        assert_int_equal(enc_store_lagging(w[i].st, &lag), CORE_OK);
        assert_int_equal(lag, 0); /* caught up: every behavior is in its user's sums */
        for (int p = 0; p < NPART; p++) {
            snprintf(src, sizeof src, "kafka:%s:%d", topic, p);
            if (enc_store_get_offset(w[i].st, src, &off[i][p]) != CORE_OK) off[i][p] = -1;
        }
    }
    int owner[NPART];
    for (int p = 0; p < NPART; p++) {
        owner[p] = -1;
        for (int i = 0; i < n_stores; i++)
            if (off[i][p] == end[p]) owner[p] = i;
        assert_true(owner[p] >= 0); /* nothing lost: some store reached every partition's end */
    }
    for (uint64_t u = 1; u <= NUSERS; u++) {
        char key[24];
        int kl = snprintf(key, sizeof key, "%" PRIu64, u);
        int p = pipe_partition_of(PIPE_PARTITIONER_DEFAULT, key, (size_t)kl, NPART);
        assert_same_user(&w[owner[p]], &ref, u);
    }
    for (int i = 0; i < n_stores; i++)
        close_store(&w[i]);
    close_store(&ref);
}

// ---------------------------------------------------------------------------------------------

static void test_group_kill9_restart_equals_file_replay(void **state) {
    (void)state;
    char sa[4200], sb[4200], la[4200], lb[4200], lp[4200];
    snprintf(sa, sizeof sa, "%s/sa", g_dir);
    snprintf(sb, sizeof sb, "%s/sb", g_dir);
    snprintf(la, sizeof la, "%s/worker-a.log", g_dir);
    snprintf(lb, sizeof lb, "%s/worker-b.log", g_dir);
    snprintf(lp, sizeof lp, "%s/produce.log", g_dir);
    pid_t a = start_worker("ev", sa, la, 0, "200");
    pid_t b = start_worker("ev", sb, lb, 0, "200");
    assert_true(wait_in_file(la, "pipe: assigned", NULL, 0, 30000));
    assert_true(wait_in_file(lb, "pipe: assigned", NULL, 0, 30000));
    /* Feed at a fixed rate so the kill lands mid-stream. */
    char *prod[] = {g_bin,     "produce", "--brokers",     g_brokers, "--topic", "ev",
                    "--input", g_events,  "--no-validate", "--rate",  "3000",    NULL};
    pid_t pp = spawn(prod, lp);
    test_msleep(1000);
    /* kill -9 while a's store holds behaviors whose sums have not caught up: between the tiers'
     * commits. a is frozen (SIGSTOP) while its committed state is read, killed if it lags, else
     * let go on a little */
    uint64_t lag_at_kill = 0;
    for (int t = 0; t < 500 && !lag_at_kill; t++) {
        int status;
        assert_int_equal(kill(a, SIGSTOP), 0);
        assert_int_equal(waitpid(a, &status, WUNTRACED), a);
        assert_true(WIFSTOPPED(status));
        if ((lag_at_kill = store_lagging(sa)) == 0) {
            kill(a, SIGCONT);
            test_msleep(1 + t % 7);
        }
    }
    assert_true(lag_at_kill > 0);
    kill(a, SIGKILL);
    assert_int_equal(test_wait_exit(a, 5000), 128 + SIGKILL);
    assert_int_equal(store_lagging(sa), lag_at_kill); /* what the restart finds */
    test_msleep(1000);
    a = start_worker("ev", sa, la, 0, "200");
    assert_int_equal(test_wait_exit(pp, 60000), 0);
    int pa = metrics_port(la), pb = -1;
    /* a's log holds two metrics lines (before and after the kill): take b's, then a's last. */
    pb = metrics_port(lb);
    {
        FILE *f = fopen(la, "r");
        char line[2048];
        while (f && fgets(line, sizeof line, f)) {
            char *p = strstr(line, "metrics url=http://127.0.0.1:");
            if (p) pa = atoi(p + strlen("metrics url=http://127.0.0.1:"));
        }
        if (f) fclose(f);
    }
    assert_true(pa > 0 && pb > 0);
    test_msleep(1500); /* let statistics report the final high watermarks */
    int ok = 0;
    for (int t = 0; t < 60000 && !ok; t += 250) {
        ok = http_caught_up(pa) && http_caught_up(pb);
        if (!ok) test_msleep(250);
    }
    assert_true(ok);
    /* Per-partition lag from librdkafka's statistics: two owned partitions each, both at 0. */
    static char body[65536];
    for (int i = 0; i < 2; i++) {
        assert_true(http_metrics(i ? pb : pa, body, sizeof body));
        assert_non_null(strstr(body, "trail_pipeline_assigned_partitions 2\n"));
        int zeros = 0;
        for (char *q = body;
             (q = strstr(q, "trail_pipeline_consumer_lag{topic=\"ev\",partition=\"")); q++) {
            const char *brace = strchr(q, '}');
            zeros += brace && !strncmp(brace, "} 0\n", 4);
        }
        assert_int_equal(zeros, 2);
        assert_non_null(strstr(body, "trail_pipeline_batch_commit_seconds_count "));
    }
    kill(a, SIGTERM);
    kill(b, SIGTERM);
    assert_int_equal(test_wait_exit(a, 30000),
                     0); /* SIGTERM drains: commit, leave the group, exit 0 */
    assert_int_equal(test_wait_exit(b, 30000), 0);
    assert_true(wait_in_file(la, "stop reason=signal", NULL, 0, 1000));
    assert_true(wait_in_file(lb, "stop reason=signal", NULL, 0, 1000));
    const char *stores[] = {sa, sb};
    assert_matches_reference("ev", stores, 2);

    /* The malformed messages are in ev.dlq with reason and source headers. */
    pipe_consumer *c = pipe_test_consume_from_start(g_brokers, "ev.dlq", 10000);
    int seen = 0;
    int64_t t0 = core_now_ns();
    while (core_now_ns() - t0 < 5000000000ll) {
        pipe_msg m;
        if (!pipe_consumer_poll(c, 200, &m) || m.err) continue;
        const void *v;
        size_t vl;
        assert_int_equal(pipe_consumer_header(c, "trail.reason", &v, &vl), CORE_OK);
        assert_true(vl > 5);
        assert_int_equal(pipe_consumer_header(c, "trail.source.topic", &v, &vl), CORE_OK);
        assert_memory_equal(v, "ev", 2);
        assert_int_equal(pipe_consumer_header(c, "trail.source.offset", &v, &vl), CORE_OK);
        seen++;
    }
    pipe_consumer_close(c);
    /* at least once: a dead letter sent by the killed worker may be sent again after restart */
    assert_true(seen >= NBAD);
}

static void test_brokers_down_mid_stream_until_end(void **state) {
    (void)state;
    char s[4200], l[4200], lp[4200];
    snprintf(s, sizeof s, "%s/s2", g_dir);
    snprintf(l, sizeof l, "%s/worker-2.log", g_dir);
    snprintf(lp, sizeof lp, "%s/produce2.log", g_dir);
    char *prod[] = {g_bin, "produce", "--brokers", g_brokers,       "--topic",
                    "ev2", "--input", g_events,    "--no-validate", NULL};
    assert_int_equal(run(prod, lp, 60000), 0);
    pid_t w = start_worker("ev2", s, l, 1, "20"); /* small fsynced batches: slow enough */
    assert_true(wait_in_file(l, "pipe: assigned", NULL, 0, 30000));
    test_msleep(300);
    kill(g_broker, SIGUSR1); /* every broker down: connections dropped, new ones refused */
    test_msleep(3000);
    kill(g_broker, SIGUSR2);
    assert_int_equal(test_wait_exit(w, 90000), 0);
    assert_true(wait_in_file(l, "stop reason=until-end", NULL, 0, 1000));
    const char *stores[] = {s};
    assert_matches_reference("ev2", stores, 1);
}

static int file_has(const char *path, const char *needle) {
    return wait_in_file(path, needle, NULL, 0, 100);
}

static void test_config_file_and_kafka_properties(void **state) {
    (void)state;
    char conf[4200], log[4200], st[4200];
    snprintf(conf, sizeof conf, "%s/w.conf", g_dir);
    snprintf(log, sizeof log, "%s/conf.log", g_dir);
    snprintf(st, sizeof st, "%s/s-conf", g_dir);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f, "# comment\nbrokers = %s\ntopic = ev\nbatch.max_events = 0\n", g_brokers);
    fclose(f);
    char *a1[] = {g_bin,     "encode-kafka", "--config", conf, "--group", "g",
                  "--model", g_model,        "--store",  st,   NULL};
    assert_int_equal(run(a1, log, 10000), 2); /* out of bounds, named with file:line */
    assert_true(file_has(log, "w.conf:4: batch.max_events: '0' is not an integer in [1, 1000000]"));
    f = fopen(conf, "w");
    fprintf(f, "brokers = %s\ntopic = ev\ngroupp = typo\n", g_brokers);
    fclose(f);
    assert_int_equal(run(a1, log, 10000), 2);
    assert_true(file_has(log, "w.conf:3: unknown key 'groupp'"));
    /* kafka.* reaches librdkafka unchanged: an unknown property is refused by librdkafka itself. */
    f = fopen(conf, "w");
    fprintf(f, "brokers = %s\ntopic = ev   # trailing comment\n", g_brokers);
    fclose(f);
    char *a2[] = {
        g_bin,     "encode-kafka", "--config", conf, "--group", "g",
        "--model", g_model,        "--store",  st,   "-X",      "kafka.no.such.property=1",
        NULL};
    assert_int_equal(run(a2, log, 10000), 1);
    assert_true(file_has(log, "kafka.no.such.property"));
    /* a new store takes its window from the file and its recent size from the command line, so
     * it can match the window the model was trained with; a different window later is refused */
    char stw[4200];
    snprintf(stw, sizeof stw, "%s/s-window", g_dir);
    f = fopen(conf, "w");
    fprintf(f, "brokers = %s\ntopic = ev\nwindow = 300\nrecent = 50\n", g_brokers);
    fclose(f);
    char *a3[] = {g_bin,      "encode-kafka", "--config",    conf,      "--group",
                  "gw",       "--model",      g_model,       "--store", stw,
                  "--recent", "20",           "--until-end", NULL};
    assert_int_equal(run(a3, log, 60000), 0);
    opened o;
    open_store(&o, stw);
    assert_int_equal(enc_store_window(o.st), 300);
    assert_int_equal(enc_store_recent(o.st), 20);
    close_store(&o);
    char *a4[] = {g_bin,      "encode-kafka", "--config",    conf, "--group",  "gw",
                  "--model",  g_model,        "--store",     stw,  "--window", "400",
                  "--recent", "20",           "--until-end", NULL};
    assert_int_not_equal(run(a4, log, 60000), 0);
    assert_true(file_has(log, "holds window=300 recent=20 chunk=128; opened with window=400"));
    /* a model that records its training window: a new store without a window asked for takes
     * it; the store of 300 above serves it with a warning naming both */
    char wmodel[4200], stm[4200], err[512];
    snprintf(wmodel, sizeof wmodel, "%s/w.bin", g_dir);
    snprintf(stm, sizeof stm, "%s/s-model-window", g_dir);
    mdl_model *m;
    assert_int_equal(mdl_model_load(&m, g_model, err, sizeof err), CORE_OK);
    m->cfg.window = 250;
    mdl_model_refresh_versions(m);
    assert_int_equal(mdl_model_save(m, wmodel, 0, err, sizeof err), CORE_OK);
    mdl_model_destroy(m);
    f = fopen(conf, "w");
    fprintf(f, "brokers = %s\ntopic = ev\n", g_brokers);
    fclose(f);
    char *a5[] = {g_bin,     "encode-kafka", "--config", conf, "--group",     "gm",
                  "--model", wmodel,         "--store",  stm,  "--until-end", NULL};
    assert_int_equal(run(a5, log, 60000), 0);
    assert_false(file_has(log, "windows of"));
    open_store(&o, stm);
    assert_int_equal(enc_store_window(o.st), 250);
    close_store(&o);
    char *a6[] = {g_bin,     "encode-kafka", "--config", conf, "--group",     "gw6",
                  "--model", wmodel,         "--store",  stw,  "--until-end", NULL};
    assert_int_equal(run(a6, log, 60000), 0);
    assert_true(file_has(log, "windows of 250 behaviors per user, the store keeps 300"));
}

int main(void) {
    core_log_level = CORE_LOG_WARNING;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_kill9_restart_equals_file_replay),
        cmocka_unit_test(test_brokers_down_mid_stream_until_end),
        cmocka_unit_test(test_config_file_and_kafka_properties),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
