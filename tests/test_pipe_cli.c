/* test_pipe_cli.c: `trail broker`, `trail produce` and `trail record` as processes on loopback.
 * The broker prints its bootstrap address first and honors --port; produce refuses malformed
 * records (counted, named by line) and keys by user id; record writes every event of the topic up
 * to the end offsets seen at start, and each user's events keep their order. A recorded topic
 * trains on the same point-in-time samples as the file that was produced into it.
 */
#include "test_common.h"
#include "test_proc.h"

#include "core_err.h"
#include "sch_event.h"
#include "trn_samples.h"

#include <inttypes.h>
#include <unistd.h>

static char g_dir[4096], g_bin[4096];

static int first_line(const char *path, char *buf, size_t cap, int timeout_ms) {
    for (int t = 0; t < timeout_ms; t += 50) {
        FILE *f = fopen(path, "r");
        if (f) {
            int ok = fgets(buf, (int)cap, f) && strchr(buf, '\n');
            fclose(f);
            if (ok) {
                buf[strcspn(buf, "\n")] = 0;
                return 1;
            }
        }
        test_msleep(50);
    }
    return 0;
}

static void path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", g_dir, name);
}

static int setup(void **state) {
    (void)state;
    snprintf(g_bin, sizeof g_bin, "%s", test_trail_bin());
    return test_mkdtemp(g_dir, sizeof g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    test_rmtree(g_dir);
    return 0;
}

/* `trail broker` on a free port from the ephemeral range (tried a few times in case it is taken
 * meanwhile), topic t with 3 partitions; its bootstrap address into brokers. */
static pid_t start_broker(char *brokers, size_t cap, const char *tag) {
    char out[4200], err[4200], name[64];
    snprintf(name, sizeof name, "%s.out", tag);
    path(out, sizeof out, name);
    snprintf(name, sizeof name, "%s.err", tag);
    path(err, sizeof err, name);
    pid_t br = -1;
    int port = 0;
    for (int attempt = 0; attempt < 5 && br < 0; attempt++) {
        port = 20000 + (int)((getpid() * 7 + attempt * 101 + tag[0] * 13) % 20000);
        char ps[16];
        snprintf(ps, sizeof ps, "%d", port);
        char *argv[] = {g_bin, "broker", "--port", ps, "--partitions", "3", "--topics", "t", NULL};
        br = test_spawn(argv, out, err, 0);
        if (!first_line(out, brokers, cap, 5000)) {
            test_wait_exit(br, 2000);
            br = -1;
        }
    }
    assert_true(br > 0);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    assert_string_equal(brokers, want); /* first line: the bootstrap address, on --port */
    return br;
}

static void test_broker_produce_record(void **state) {
    (void)state;
    char events[4200], rec[4200], brokers[256], line[512];
    path(events, sizeof events, "in.jsonl");
    path(rec, sizeof rec, "rec.jsonl");
    pid_t br = start_broker(brokers, sizeof brokers, "broker");

    FILE *f = fopen(events, "w");
    assert_non_null(f);
    for (int i = 0; i < 300; i++) {
        fprintf(
            f,
            "{\"user_id\":%d,\"item_id\":%d,\"category_id\":%d,\"action\":\"click\",\"ts\":%d}\n",
            i % 17, 1000 + i, i % 5, 1511544070 + i);
        if (i == 100) fprintf(f, "{\"user_id\":1,\"item_id\":2}\n");
        if (i == 200) fprintf(f, "not json\n");
    }
    fclose(f);
    char pout[4200], perr[4200];
    path(pout, sizeof pout, "produce.out");
    path(perr, sizeof perr, "produce.err");
    char *prod[] = {g_bin, "produce", "--brokers", brokers, "--topic",
                    "t",   "--input", events,      NULL};
    assert_int_equal(test_wait_exit(test_spawn(prod, pout, perr, 0), 30000), 0);
    assert_true(first_line(pout, line, sizeof line, 100));
    assert_non_null(strstr(line, "produced 300 events"));
    assert_non_null(strstr(line, "rejected 2"));
    assert_true(first_line(perr, line, sizeof line, 100));
    assert_non_null(strstr(line, ":102: rejected:")); /* file:line of the first malformed record */

    char *recv[] = {g_bin, "record", "--brokers", brokers, "--topic", "t", "--out", rec, NULL};
    assert_int_equal(test_wait_exit(test_spawn(recv, pout, perr, 0), 30000), 0);
    f = fopen(rec, "r");
    assert_non_null(f);
    int n = 0, last_item[17];
    for (int u = 0; u < 17; u++)
        last_item[u] = -1;
    while (fgets(line, sizeof line, f)) {
        sch_event ev;
        char e[256];
        assert_int_equal(sch_event_from_json(&ev, line, strcspn(line, "\n"), e, sizeof e), CORE_OK);
        assert_true(ev.user_id < 17);
        assert_true((int)ev.item_id > last_item[ev.user_id]); /* per-user order kept */
        last_item[ev.user_id] = (int)ev.item_id;
        n++;
    }
    fclose(f);
    assert_int_equal(n, 300);

    kill(br, SIGTERM);
    assert_int_equal(test_wait_exit(br, 10000), 0);
}

typedef struct sample_key {
    uint64_t user, item, cat;
    int64_t ts;
    uint32_t hist;
    uint8_t label;
    uint64_t hist_digest; /* the window's behaviors, in order */
} sample_key;

#define CMP(f)                                                                                     \
    if (x->f != y->f) return x->f < y->f ? -1 : 1
static int cmp_key(const void *a, const void *b) {
    const sample_key *x = a, *y = b;
    CMP(ts);
    CMP(user);
    CMP(item);
    CMP(cat);
    CMP(hist);
    CMP(label);
    CMP(hist_digest);
    return 0;
}
#undef CMP

/* Each sample of d as a key, sorted: the comparison ignores only the order of samples that share
 * a timestamp, which a topic's partitions interleave differently from the file. */
static sample_key *sample_keys(const trn_data *d) {
    sample_key *k = calloc(d->n_samples, sizeof *k);
    assert_non_null(k);
    for (size_t i = 0; i < d->n_samples; i++) {
        const trn_sample *s = &d->samples[i];
        uint32_t n;
        const sch_behavior *h = trn_data_history(d, s, 64, &n);
        uint64_t dg = 1469598103934665603ull;
        for (uint32_t j = 0; j < n; j++)
            dg = (dg ^ (h[j].item_id * 31 + h[j].category_id + (uint64_t)h[j].ts * 7)) *
                 1099511628211ull;
        k[i] = (sample_key){
            d->user_id[s->user], s->item_id, s->category_id, s->ts, s->hist, s->label, dg};
    }
    qsort(k, d->n_samples, sizeof *k, cmp_key);
    return k;
}

/* gen -> produce -> record -> the recorded file gives the samples the generated one gives */
static void test_recorded_topic_gives_the_same_samples(void **state) {
    (void)state;
    char gen[4200], rec[4200], o[4200], e[4200], brokers[256], err[256];
    path(gen, sizeof gen, "g.jsonl");
    path(rec, sizeof rec, "g-rec.jsonl");
    path(o, sizeof o, "g.out");
    path(e, sizeof e, "g.err");
    char *ag[] = {g_bin,    "gen", "--users", "20", "--items", "300", "--events", "3000",
                  "--days", "4",   "--seed",  "3",  "--out",   gen,   NULL};
    assert_int_equal(test_wait_exit(test_spawn(ag, o, e, 0), 30000), 0);
    pid_t br = start_broker(brokers, sizeof brokers, "gbroker");
    char *ap[] = {g_bin, "produce", "--brokers", brokers, "--topic", "t", "--input", gen, NULL};
    assert_int_equal(test_wait_exit(test_spawn(ap, o, e, 0), 30000), 0);
    char *ar[] = {g_bin, "record", "--brokers", brokers, "--topic", "t", "--out", rec, NULL};
    assert_int_equal(test_wait_exit(test_spawn(ar, o, e, 0), 30000), 0);
    kill(br, SIGTERM);
    assert_int_equal(test_wait_exit(br, 10000), 0);

    trn_data_conf dc;
    trn_data *a, *b;
    trn_data_conf_default(&dc);
    dc.protocol = TRN_PROTO_IMPRESSIONS;
    assert_int_equal(trn_data_load(&a, gen, &dc, err, sizeof err), CORE_OK);
    assert_int_equal(trn_data_load(&b, rec, &dc, err, sizeof err), CORE_OK);
    assert_true(a->n_samples > 500);
    assert_int_equal(a->n_samples, b->n_samples);
    assert_int_equal(a->n_beh, b->n_beh);
    assert_int_equal(a->split[0], b->split[0]);
    assert_int_equal(a->split[1], b->split[1]);
    sample_key *ka = sample_keys(a), *kb = sample_keys(b);
    for (size_t i = 0; i < a->n_samples; i++)
        if (cmp_key(&ka[i], &kb[i]))
            fail_msg("sample %zu differs: user %" PRIu64 " ts %" PRId64 " vs user %" PRIu64
                     " ts %" PRId64,
                     i, ka[i].user, ka[i].ts, kb[i].user, kb[i].ts);
    free(ka);
    free(kb);
    trn_data_destroy(a);
    trn_data_destroy(b);
}

static void test_usage_errors_exit_2(void **state) {
    (void)state;
    char o[4200], e[4200];
    path(o, sizeof o, "u.out");
    path(e, sizeof e, "u.err");
    char *a1[] = {g_bin, "broker", "--port", "70000", NULL};
    assert_int_equal(test_wait_exit(test_spawn(a1, o, e, 0), 5000), 2);
    char *a2[] = {g_bin, "produce", "--topic", "t", NULL};
    assert_int_equal(test_wait_exit(test_spawn(a2, o, e, 0), 5000), 2);
    char *a3[] = {g_bin,   "record", "--brokers", "127.0.0.1:1", "--topic", "t",
                  "--out", o,        "--to",      "5",           NULL};
    assert_int_equal(test_wait_exit(test_spawn(a3, o, e, 0), 5000), 2);
    char *a4[] = {g_bin,     "produce", "--brokers", "127.0.0.1:1",    "--topic", "t",
                  "--input", o,         "-X",        "no-equals-sign", NULL};
    assert_int_equal(test_wait_exit(test_spawn(a4, o, e, 0), 5000), 2);
}

/* stderr of the last run holds needle */
static int err_says(const char *e, const char *needle) {
    char buf[8192];
    FILE *f = fopen(e, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    if (!strstr(buf, needle)) fprintf(stderr, "wanted '%s' in: %s\n", needle, buf);
    return strstr(buf, needle) != NULL;
}

/* The operations flags refuse bad values before anything starts (exit 2), and the message names
 * the value or the property and why: --partitioner, --on-misrouted, --log-level on every
 * long-running pipeline command, -X properties the worker's guarantees rest on, client prefixes
 * for a client the command does not run, and a bootstrap.servers that differs from --brokers. */
static void test_ops_flags_refused_by_name(void **state) {
    (void)state;
    char o[4200], e[4200];
    path(o, sizeof o, "f.out");
    path(e, sizeof e, "f.err");
#define ENC                                                                                        \
    g_bin, "encode", "--brokers", "127.0.0.1:1", "--topic", "t", "--group", "g", "--model",        \
        "/nonexistent/m.bin", "--store", "/nonexistent/s"
#define PRODUCE g_bin, "produce", "--brokers", "127.0.0.1:1", "--topic", "t", "--input", "-"
#define RECORD g_bin, "record", "--brokers", "127.0.0.1:1", "--topic", "t", "--out", "/dev/null"
    static struct {
        char *argv[24];
        const char *says;
    } cases[] = {
        {{ENC, "--partitioner", "crc32", NULL}, "partitioner 'crc32' is not one of librdkafka's"},
        {{ENC, "--on-misrouted", "drop", NULL}, "on-misrouted 'drop' is not dlq, apply or fail"},
        {{ENC, "--log-level", "loud", NULL}, "loud"},
        {{ENC, "-X", "kafka.enable.auto.commit=false", NULL},
         "kafka.enable.auto.commit: refused: set by the worker"},
        {{ENC, "-X", "enable.auto.offset.store=true", NULL}, "kafka.enable.auto.offset.store"},
        {{ENC, "-X", "consumer.isolation.level=read_uncommitted", NULL},
         "kafka.consumer.isolation.level: refused: must be read_committed"},
        {{ENC, "-X", "bootstrap.servers=10.0.0.1:9092", NULL},
         "differs from --brokers 127.0.0.1:1"},
        {{ENC, "-X", "consumer.acks=all", NULL}, "producers only"},
        {{PRODUCE, "--partitioner", "java", NULL}, "partitioner 'java'"},
        {{PRODUCE, "-X", "consumer.fetch.wait.max.ms=5", NULL},
         "kafka.consumer.fetch.wait.max.ms: refused: this command runs no consumer"},
        {{PRODUCE, "-X", "partitioner=consistent_random", NULL}, "set by --partitioner"},
        {{PRODUCE, "--log-level", "chatty", NULL}, "chatty"},
        {{RECORD, "--log-level", "x9", NULL}, "x9"},
        {{RECORD, "-X", "producer.linger.ms=1", NULL}, "runs no producer"},
        {{g_bin, "broker", "--log-level", "verbose", NULL}, "verbose"},
    };
#undef ENC
#undef PRODUCE
#undef RECORD
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(test_wait_exit(test_spawn(cases[i].argv, o, e, 0), 10000), 2);
        assert_true(err_says(e, cases[i].says));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broker_produce_record),
        cmocka_unit_test(test_recorded_topic_gives_the_same_samples),
        cmocka_unit_test(test_usage_errors_exit_2),
        cmocka_unit_test(test_ops_flags_refused_by_name),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
