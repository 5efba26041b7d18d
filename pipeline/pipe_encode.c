/* pipe_encode.c: `trail encode --brokers ...` (registered as `trail encode-kafka` until the lead
 * routes `trail encode` here when --brokers is given): the encoder worker process.
 *
 * Binds the consume loop (pipe_worker.c) to an enc_store (LMDB) through the pipe_sink table, reads
 * an optional config file (key=value; kafka.* keys go to librdkafka unchanged), serves /metrics,
 * and turns SIGTERM/SIGINT into a drain: finish the batch, commit, leave the group, exit 0.
 */
#include "core_alloc.h"
#include "core_err.h"
#include "core_http.h"
#include "core_log.h"
#include "enc_store.h"
#include "mdl.h"
#include "pipe_kafka.h"
#include "pipe_metrics.h"
#include "pipe_store.h"
#include "pipe_worker.h"
#include "pipe_cli.h"

#include <stdatomic.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------------
// Config: file (key=value lines) < command line. Known keys are checked against a table.

typedef struct enc_opts {
    const char *brokers, *topic, *group, *model, *store, *dlq_topic, *metrics, *log_level;
    const char *partitioner, *on_misrouted;
    uint64_t batch_max, batch_ms, ready_max_lag;
    uint64_t window, recent; /* a new store's sizes; 0: an existing store's, else the defaults */
    int until_end;
    pipe_props props;
    char *file_strings[32]; /* values read from --config, owned */
    int n_file_strings;
} enc_opts;

typedef struct conf_key {
    const char *name;
    size_t off; /* offset of the const char * or uint64_t field */
    int is_num;
    uint64_t min, max; /* bounds of a number */
    const char *help;
} conf_key;

static const conf_key conf_keys[] = {
    {"brokers", offsetof(enc_opts, brokers), 0, 0, 0, "bootstrap servers host:port[,host:port]"},
    {"topic", offsetof(enc_opts, topic), 0, 0, 0, "topic to consume"},
    {"group", offsetof(enc_opts, group), 0, 0, 0, "consumer group id"},
    {"model", offsetof(enc_opts, model), 0, 0, 0, "model file (embeddings and SimHash)"},
    {"store", offsetof(enc_opts, store), 0, 0, 0, "LMDB store directory"},
    {"dlq_topic", offsetof(enc_opts, dlq_topic), 0, 0, 0, "dead-letter topic (<topic>.dlq)"},
    {"metrics", offsetof(enc_opts, metrics), 0, 0, 0, "HOST:PORT for /metrics, /readyz, /healthz"},
    {"log_level", offsetof(enc_opts, log_level), 0, 0, 0, "error warn notice info debug (info)"},
    {"partitioner", offsetof(enc_opts, partitioner), 0, 0, 0, "the producers' partitioner"},
    {"on_misrouted", offsetof(enc_opts, on_misrouted), 0, 0, 0, "dlq, apply or fail (dlq)"},
    {"ready_max_lag", offsetof(enc_opts, ready_max_lag), 1, 0, INT64_MAX, "/readyz lag bound"},
    {"batch.max_events", offsetof(enc_opts, batch_max), 1, 1, 1000000,
     "events per LMDB txn (10000)"},
    {"batch.max_ms", offsetof(enc_opts, batch_ms), 1, 1, 60000, "longest open batch, ms (15)"},
    {"window", offsetof(enc_opts, window), 1, 1, 1u << 24, "behaviors kept per user (the model's)"},
    {"recent", offsetof(enc_opts, recent), 1, 1, 1u << 24, "recent behaviors kept per user (64)"},
};

static int conf_set(enc_opts *o, const char *key, const char *val, char *err, size_t n) {
    if (!strncmp(key, "kafka.", 6)) {
        if (!key[6]) goto unknown;
        return pipe_props_add(&o->props, key + 6, val) ? CORE_ENOMEM : CORE_OK;
    }
    if (!strncmp(key, "consumer.", 9) || !strncmp(key, "producer.", 9)) /* Kafka Connect's way */
        return pipe_props_add(&o->props, key, val) ? CORE_ENOMEM : CORE_OK;
    for (size_t i = 0; i < sizeof conf_keys / sizeof conf_keys[0]; i++) {
        const conf_key *k = &conf_keys[i];
        if (strcmp(k->name, key) != 0) continue;
        if (k->is_num) {
            char *end;
            unsigned long long v = strtoull(val, &end, 10);
            if (!*val || *end || *val == '-' || v < k->min || v > k->max) {
                snprintf(err, n, "%s: '%s' is not an integer in [%" PRIu64 ", %" PRIu64 "]", key,
                         val, k->min, k->max);
                return CORE_EINVAL;
            }
            *(uint64_t *)(void *)((char *)o + k->off) = v;
        } else {
            if (o->n_file_strings == 32) {
                snprintf(err, n, "%s: too many keys", key);
                return CORE_EINVAL;
            }
            char *v = core_strdup(val);
            if (!v) return CORE_ENOMEM;
            o->file_strings[o->n_file_strings++] = v;
            *(const char **)(void *)((char *)o + k->off) = v;
        }
        return CORE_OK;
    }
unknown:
    snprintf(err, n,
             "unknown key '%s' (known: brokers topic group model store dlq_topic metrics "
             "log_level partitioner on_misrouted ready_max_lag batch.max_events "
             "batch.max_ms window recent kafka.* consumer.* producer.*)",
             key);
    return CORE_EINVAL;
}

static int conf_load(enc_opts *o, const char *path) {
    FILE *f = fopen(path, "r");
    char line[1024], err[512];
    int lineno = 0, rc = CORE_OK;
    if (!f) {
        fprintf(stderr, "trail: encode: --config %s: cannot open\n", path);
        return CORE_EIO;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = line, *e;
        while (*s == ' ' || *s == '\t')
            s++;
        for (char *h = s; *h; h++) /* a '#' after whitespace starts a comment */
            if (*h == '#' && h > s && (h[-1] == ' ' || h[-1] == '\t')) {
                *h = 0;
                break;
            }
        e = s + strlen(s);
        while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
            *--e = 0;
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            fprintf(stderr, "trail: encode: %s:%d: expected key=value\n", path, lineno);
            rc = CORE_EINVAL;
            break;
        }
        char *ke = eq;
        while (ke > s && (ke[-1] == ' ' || ke[-1] == '\t'))
            ke--;
        *ke = 0;
        char *v = eq + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        if ((rc = conf_set(o, s, v, err, sizeof err)) != CORE_OK) {
            fprintf(stderr, "trail: encode: %s:%d: %s\n", path, lineno, err);
            break;
        }
    }
    fclose(f);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// The command

static atomic_int g_stop;

const core_cmd pipe_encode_cmd = {
    "encode", "apply events from Kafka to the LMDB user state (a consumer-group worker)",
    pipe_cmd_encode,
    "A consumer-group member that applies events to the LMDB store in batches, with the\n"
    "consumed offsets in the same transaction (effectively-once state). --brokers, --topic,\n"
    "--group, --model and --store are required, on the command line or in --config.\n",
    NULL};

/* the config file's settings, then the command line's over them */
static int merge_cli(enc_opts *o, const char *const cli[10], const enc_opts *c, int has_lag,
                     const pipe_props *cli_props) {
    const char **fields[] = {&o->brokers,      &o->topic,     &o->group,   &o->model,
                             &o->store,        &o->dlq_topic, &o->metrics, &o->partitioner,
                             &o->on_misrouted, &o->log_level};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (cli[i]) *fields[i] = cli[i];
    if (has_lag) o->ready_max_lag = c->ready_max_lag;
    if (c->batch_max) o->batch_max = c->batch_max;
    if (c->batch_ms) o->batch_ms = c->batch_ms;
    if (c->window) o->window = c->window;
    if (c->recent) o->recent = c->recent;
    for (size_t i = 0; i < cli_props->n; i++)
        if (pipe_props_add(&o->props, cli_props->kv[2 * i], cli_props->kv[2 * i + 1])) return 1;
    return 0;
}

/* the settings in effect, at notice level (secrets hidden) */
static void log_config(const enc_opts *o) {
    CORE_LOG(CORE_LOG_NOTICE,
             "encode: config brokers=%s topic=%s group=%s model=%s store=%s dlq_topic=%s "
             "batch.max_events=%" PRIu64 " batch.max_ms=%" PRIu64 " kafka_props=%zu",
             o->brokers, o->topic, o->group, o->model, o->store,
             o->dlq_topic ? o->dlq_topic : "<topic>.dlq", o->batch_max, o->batch_ms, o->props.n);
    for (size_t i = 0; i < o->props.n; i++) {
        const char *k = o->props.kv[2 * i];
        int secret = strstr(k, "password") || strstr(k, "secret") || strstr(k, "sasl.oauthbearer");
        CORE_LOG(CORE_LOG_INFO, "encode: config kafka.%s=%s", k,
                 secret ? "(hidden)" : o->props.kv[2 * i + 1]);
    }
}

/* the worker itself: the model, the store, /metrics, then pipe_worker_run until stopped (or the
 * end, --until-end). @return the exit code. */
static int worker_run(enc_opts *o, pipe_partitioner part, pipe_misrouted on_mis) {
    char errstr[512];
    mdl_model *m = NULL;
    enc_store *st = NULL;
    pipe_metrics *met = NULL;
    int rc = 1;
    if (mdl_model_load(&m, o->model, errstr, sizeof errstr)) {
        fprintf(stderr, "trail: encode: %s\n", errstr);
        goto out;
    }
    enc_store_conf sc;
    enc_store_conf_default(&sc);
    sc.path = o->store;
    sc.window = (uint32_t)o->window;
    sc.new_window = m->cfg.window; /* a new store keeps what the model was trained on */
    sc.recent = (uint32_t)o->recent;
    sc.writer = 1;     /* one writer per store: a second worker on it is refused at open */
    sc.defer_sums = 1; /* the bucket sums catch up between batches (schemas/state.md) */
    if (enc_store_open(&st, &sc, errstr, sizeof errstr) ||
        enc_store_bind_model(st, m, errstr, sizeof errstr)) {
        fprintf(stderr, "trail: encode: %s\n", errstr);
        goto out;
    }
    if (mdl_window_mismatch(&m->cfg, enc_store_window(st), errstr, sizeof errstr))
        CORE_LOG(CORE_LOG_WARNING, "encode: model %s: %s", o->model, errstr);
    if (pipe_metrics_new(&met, o->topic)) goto out;
    pipe_metrics_set_ready_max_lag(met, (int64_t)o->ready_max_lag);
    pipe_metrics_set_store(met, st);
    if (o->metrics) {
        int port;
        if (pipe_metrics_serve(met, o->metrics, &port, errstr, sizeof errstr)) {
            fprintf(stderr, "trail: encode: %s\n", errstr);
            goto out;
        }
        /* the host as given (no host: every interface, shown as 0.0.0.0) */
        char host[256], why[512];
        uint16_t given;
        (void)core_http_split_addr(o->metrics, host, sizeof host, &given, why, sizeof why);
        int v6 = strchr(host, ':') != NULL;
        CORE_LOG(CORE_LOG_NOTICE,
                 "encode: metrics url=http://%s%s%s:%d/metrics readyz=/readyz "
                 "ready_max_lag=%" PRIu64,
                 v6 ? "[" : "", host[0] ? host : "0.0.0.0", v6 ? "]" : "", port, o->ready_max_lag);
    }
    log_config(o);

    pipe_stop_on_signals(&g_stop);

    pipe_store_sink ss;
    pipe_sink sink;
    pipe_store_sink_init(&ss, st, 1, &sink);
    pipe_worker_conf wc;
    pipe_worker_conf_default(&wc);
    wc.brokers = o->brokers;
    wc.topic = o->topic;
    wc.group = o->group;
    wc.dlq_topic = o->dlq_topic;
    wc.props = &o->props;
    wc.partitioner = part;
    wc.on_misrouted = on_mis;
    wc.batch_max = (uint32_t)o->batch_max;
    wc.batch_ms = (uint32_t)o->batch_ms;
    wc.until_end = o->until_end;
    wc.progress = o->until_end ? (isatty(STDERR_FILENO) ? 2 : 1) : 0;
    wc.stop = &g_stop;
    int wrc = pipe_worker_run(&wc, &sink, met, errstr, sizeof errstr);
    if (wrc) {
        fprintf(stderr, "trail: encode: %s\n", errstr[0] ? errstr : core_strerror(wrc));
        goto out;
    }
    printf("encode: consumed %" PRIu64 " applied %" PRIu64 " dead-lettered %" PRIu64
           " batches %" PRIu64 "\n",
           pipe_metrics_get(met, PIPE_M_CONSUMED), pipe_metrics_get(met, PIPE_M_APPLIED),
           pipe_metrics_get(met, PIPE_M_DEAD_LETTERED), pipe_metrics_get(met, PIPE_M_BATCHES));
    rc = 0;
out:
    pipe_metrics_destroy(met);
    enc_store_close(st);
    mdl_model_destroy(m);
    return rc;
}

int pipe_cmd_encode(int argc, char **argv) {
    enc_opts o, c; /* c: the command line's numbers (0: not given) */
    memset(&o, 0, sizeof o);
    memset(&c, 0, sizeof c);
    o.batch_max = 10000;
    o.batch_ms = 15;
    o.ready_max_lag = c.ready_max_lag = PIPE_READY_MAX_LAG_DEFAULT;
    const char *cli[10] = {0}; /* merge_cli's fields, in order */
    int has_lag = 0;
    pipe_props cli_props = {0};
    const char *config = NULL;
    char errstr[512];
    int rc = 2;
    const core_opt opts[] = {
        CORE_OPT_STR("brokers", &cli[0], "B", "bootstrap servers, host:port[,host:port]"),
        CORE_OPT_STR("topic", &cli[1], "T", "the topic"),
        CORE_OPT_STR("group", &cli[2], "G", "the consumer group"),
        CORE_OPT_STR("model", &cli[3], "M", "the model file"),
        CORE_OPT_STR("store", &cli[4], "DIR", "the LMDB store"),
        CORE_OPT_FLG("until-end", &o.until_end,
                     "exit once everything up to the end offsets seen at start is applied\n"
                     "(backfill, rebuild); a progress bar on a terminal. In a group it covers\n"
                     "the partitions assigned to this member"),
        {CORE_OPT_ROW("dlq-topic", CORE_OPT_STRING, &cli[5], "T", "dead-letter topic"),
         .def = "<topic>.dlq"},
        {CORE_OPT_ROW("partitioner", CORE_OPT_STRING, &cli[7], "NAME",
                      "how the topic's producers map keys to partitions, librdkafka's names:\n"
                      "consistent_random (librdkafka clients' default: kcat, confluent-kafka),\n"
                      "murmur2_random (Java's; trail produce's), consistent, murmur2, fnv1a,\n"
                      "fnv1a_random"),
         .def = "murmur2_random"},
        {CORE_OPT_ROW("on-misrouted", CORE_OPT_STRING, &cli[8], "A",
                      "a message whose key is not its user_id, or maps to another partition:\n"
                      "dlq (dead-lettered), apply, or fail (stop)"),
         .def = "dlq"},
        CORE_OPT_STR("metrics", &cli[6], "ADDR",
                     "serve /metrics, /readyz and /healthz on HOST:PORT, [IPv6]:PORT or :PORT\n"
                     "(every interface)"),
        {CORE_OPT_ROW("ready-max-lag", CORE_OPT_U64, &c.ready_max_lag, "N",
                      "/readyz answers 200 when partitions are assigned and each trails its\n"
                      "high watermark by at most N messages"),
         .umax = INT64_MAX, .seen = &has_lag},
        {CORE_OPT_ROW("log-level", CORE_OPT_STRING, &cli[9], "L",
                      "error, warn, notice, info or debug"),
         .def = "info"},
        {CORE_OPT_ROW("batch", CORE_OPT_U64, &c.batch_max, "N", "events per LMDB transaction"),
         .umin = 1, .umax = 1000000, .def = "10000"},
        {CORE_OPT_ROW("batch-ms", CORE_OPT_U64, &c.batch_ms, "MS", "longest a batch stays open"),
         .umin = 1, .umax = 60000, .def = "15"},
        {CORE_OPT_ROW("window", CORE_OPT_U64, &c.window, "L",
                      "behaviors kept per user in a new store (an existing store keeps its own,\n"
                      "and a different L is refused)"),
         .umin = 1, .umax = 1u << 24, .def = "the model's training window, or 10000"},
        {CORE_OPT_ROW("recent", CORE_OPT_U64, &c.recent, "N",
                      "recent behaviors kept per user in a new store"),
         .umin = 1, .umax = 1u << 24, .def = "64"},
        CORE_OPT_FILE("config", &config, "FILE",
                      "key=value lines (brokers, topic, group, model, store, dlq_topic, metrics,\n"
                      "log_level, partitioner, on_misrouted, ready_max_lag, batch.max_events,\n"
                      "batch.max_ms, window, recent, kafka.*, consumer.*, producer.*);\n"
                      "command-line options override the file"),
        PIPE_OPT_PROPS(&cli_props,
                       "kafka.key=value: a librdkafka property for every client that takes it;\n"
                       "consumer.key=v for the consumer only; producer.key=v for the dead-letter\n"
                       "producer only. Refused: enable.auto.offset.store, enable.auto.commit,\n"
                       "group.id, isolation.level other than read_committed, dead-letter acks\n"
                       "other than all, partitioner, and a bootstrap.servers other than --brokers"),
        CORE_OPT_ENDROW};
    if ((rc = core_opts_parse(&pipe_encode_cmd, opts, argc, argv)) != CORE_OPTS_GO) {
        pipe_props_free(&cli_props);
        return rc;
    }
    rc = 2;
    if (config && conf_load(&o, config) != CORE_OK) goto out;
    if (merge_cli(&o, cli, &c, has_lag, &cli_props)) goto out;
    pipe_partitioner part = PIPE_PARTITIONER_DEFAULT;
    pipe_misrouted on_mis = PIPE_MISROUTED_DLQ;
    if ((o.log_level &&
         core_log_level_parse(o.log_level, &core_log_level, errstr, sizeof errstr)) ||
        (o.partitioner && pipe_partitioner_parse(o.partitioner, &part, errstr, sizeof errstr)) ||
        (o.on_misrouted && pipe_misrouted_parse(o.on_misrouted, &on_mis, errstr, sizeof errstr))) {
        rc = core_cmd_usage(&pipe_encode_cmd, "%s", errstr);
        goto out;
    }
    if (!o.brokers || !o.topic || !o.group || !o.model || !o.store) {
        rc =
            core_cmd_usage(&pipe_encode_cmd, "--brokers, --topic, --group, --model and --store are "
                                             "required (on the command line or in --config)");
        goto out;
    }

    if (pipe_props_check(&o.props, PIPE_CLIENT_CONSUMER | PIPE_CLIENT_PRODUCER | PIPE_CLIENT_WORKER,
                         o.brokers, errstr, sizeof errstr)) {
        rc = core_cmd_usage(&pipe_encode_cmd, "%s", errstr);
        goto out;
    }

    rc = worker_run(&o, part, on_mis);
out:
    pipe_props_free(&cli_props);
    pipe_props_free(&o.props);
    for (int i = 0; i < o.n_file_strings; i++)
        core_free(o.file_strings[i]);
    return rc;
}
