/* pipe_encode.c: `trail encode --brokers ...` (registered as `trail encode-kafka` until the lead
 * routes `trail encode` here when --brokers is given): the encoder worker process.
 *
 * Binds the consume loop (pipe_worker.c) to an enc_store (LMDB) through the pipe_sink table, reads
 * an optional config file (key=value; kafka.* keys go to librdkafka unchanged), serves /metrics,
 * and turns SIGTERM/SIGINT into a drain: finish the batch, commit, leave the group, exit 0.
 */
#include "core_alloc.h"
#include "core_args.h"
#include "core_err.h"
#include "core_log.h"
#include "enc_store.h"
#include "mdl.h"
#include "pipe_kafka.h"
#include "pipe_metrics.h"
#include "pipe_store.h"
#include "pipe_worker.h"
#include "pipe_cli.h"

#include <stdatomic.h>
#include <getopt.h>
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
    size_t off;        /* offset of the const char * or uint64_t field */
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
    {"batch.max_events", offsetof(enc_opts, batch_max), 1, 1, 1000000, "events per LMDB txn (10000)"},
    {"batch.max_ms", offsetof(enc_opts, batch_ms), 1, 1, 60000, "longest open batch, ms (50)"},
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
    snprintf(err, n, "unknown key '%s' (known: brokers topic group model store dlq_topic metrics "
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
        while (*s == ' ' || *s == '\t') s++;
        for (char *h = s; *h; h++) /* a '#' after whitespace starts a comment */
            if (*h == '#' && h > s && (h[-1] == ' ' || h[-1] == '\t')) {
                *h = 0;
                break;
            }
        e = s + strlen(s);
        while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) *--e = 0;
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            fprintf(stderr, "trail: encode: %s:%d: expected key=value\n", path, lineno);
            rc = CORE_EINVAL;
            break;
        }
        char *ke = eq;
        while (ke > s && (ke[-1] == ' ' || ke[-1] == '\t')) ke--;
        *ke = 0;
        char *v = eq + 1;
        while (*v == ' ' || *v == '\t') v++;
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

static void usage(FILE *f) {
    fprintf(f,
            "usage: trail encode --brokers B --topic T --group G --model M --store DIR [options]\n"
            "  A consumer-group member that applies events to the LMDB store in batches, with the\n"
            "  consumed offsets in the same transaction (effectively-once state).\n"
            "  --until-end          exit once everything up to the end offsets seen at start is\n"
            "                       applied (backfill, rebuild); a progress bar on a terminal.\n"
            "                       In a group it covers the partitions assigned to this member\n"
            "  --dlq-topic T        dead-letter topic (default <topic>.dlq)\n"
            "  --partitioner NAME   how the topic's producers map keys to partitions, librdkafka's\n"
            "                       names: consistent_random (librdkafka clients' default: kcat,\n"
            "                       confluent-kafka), murmur2_random (Java's; trail produce's;\n"
            "                       the default), consistent, murmur2, fnv1a, fnv1a_random\n"
            "  --on-misrouted A     a message whose key is not its user_id, or maps to another\n"
            "                       partition: dlq (default: dead-lettered), apply, or fail (stop)\n"
            "  --metrics ADDR       serve /metrics, /readyz and /healthz on HOST:PORT,\n"
            "                       [IPv6]:PORT or :PORT (every interface)\n"
            "  --ready-max-lag N    /readyz answers 200 when partitions are assigned and each\n"
            "                       trails its high watermark by at most N messages (%d)\n"
            "  --log-level L        error, warn, notice, info (default) or debug\n"
            "  --batch N            events per LMDB transaction (10000)\n"
            "  --batch-ms MS        longest a batch stays open (50)\n"
            "  --window L           behaviors kept per user in a new store (default: the window\n"
            "                       the model was trained with, or 10000 if it records none; an\n"
            "                       existing store keeps its own, and a different L is refused)\n"
            "  --recent N           recent behaviors kept per user in a new store (64)\n"
            "  --config FILE        key=value lines (brokers, topic, group, model, store, dlq_topic,\n"
            "                       metrics, log_level, partitioner, on_misrouted, ready_max_lag,\n"
            "                       batch.max_events, batch.max_ms, window, recent, kafka.*,\n"
            "                       consumer.*, producer.*); command-line options override the file\n"
            "  -X kafka.key=value   a librdkafka property for every client that takes it;\n"
            "  -X consumer.key=v    for the consumer only; -X producer.key=v for the dead-letter\n"
            "                       producer only. Refused: enable.auto.offset.store,\n"
            "                       enable.auto.commit, group.id, isolation.level other than\n"
            "                       read_committed, dead-letter acks other than all, partitioner,\n"
            "                       and a bootstrap.servers other than --brokers\n",
            PIPE_READY_MAX_LAG_DEFAULT);
}

int pipe_cmd_encode(int argc, char **argv) {
    static const struct option opts[] = {
        {"brokers", 1, 0, 'b'}, {"topic", 1, 0, 't'},     {"group", 1, 0, 'g'},
        {"model", 1, 0, 'm'},   {"store", 1, 0, 's'},     {"until-end", 0, 0, 'u'},
        {"dlq-topic", 1, 0, 'd'}, {"metrics", 1, 0, 'M'}, {"config", 1, 0, 'c'},
        {"batch", 1, 0, 'n'},   {"batch-ms", 1, 0, 'w'},  {"help", 0, 0, 'h'},
        {"window", 1, 0, 'L'},  {"recent", 1, 0, 'R'},    {"partitioner", 1, 0, 'P'},
        {"on-misrouted", 1, 0, 'O'}, {"ready-max-lag", 1, 0, 'Y'}, {"log-level", 1, 0, 'l'},
        {0, 0, 0, 0}};
    enc_opts o;
    memset(&o, 0, sizeof o);
    o.batch_max = 10000;
    o.batch_ms = 50;
    o.ready_max_lag = PIPE_READY_MAX_LAG_DEFAULT;
    const char *cli[11] = {0}; /* the fields[] below, in order */
    uint64_t cli_batch = 0, cli_batch_ms = 0, cli_window = 0, cli_recent = 0, cli_lag = 0;
    int has_lag = 0;
    pipe_props cli_props = {0};
    const char *config = NULL;
    char errstr[512];
    int c, rc = 2;
    mdl_model *m = NULL;
    enc_store *st = NULL;
    pipe_metrics *met = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "X:", opts, NULL)) != -1) {
        switch (c) {
        case 'b': cli[0] = optarg; break;
        case 't': cli[1] = optarg; break;
        case 'g': cli[2] = optarg; break;
        case 'm': cli[3] = optarg; break;
        case 's': cli[4] = optarg; break;
        case 'd': cli[5] = optarg; break;
        case 'M': cli[6] = optarg; break;
        case 'P': cli[7] = optarg; break;
        case 'O': cli[8] = optarg; break;
        case 'l': cli[9] = optarg; break;
        case 'Y':
            if (core_parse_u64(optarg, 0, INT64_MAX, "--ready-max-lag", &cli_lag)) goto usage_err;
            has_lag = 1;
            break;
        case 'u': o.until_end = 1; break;
        case 'c': config = optarg; break;
        case 'n':
            if (core_parse_u64(optarg, 1, 1000000, "--batch", &cli_batch)) goto usage_err;
            break;
        case 'w':
            if (core_parse_u64(optarg, 1, 60000, "--batch-ms", &cli_batch_ms)) goto usage_err;
            break;
        case 'L':
            if (core_parse_u64(optarg, 1, 1u << 24, "--window", &cli_window)) goto usage_err;
            break;
        case 'R':
            if (core_parse_u64(optarg, 1, 1u << 24, "--recent", &cli_recent)) goto usage_err;
            break;
        case 'X':
            if (pipe_props_add_kv(&cli_props, optarg, errstr, sizeof errstr)) {
                fprintf(stderr, "trail: encode: -X %s\n", errstr);
                goto usage_err;
            }
            break;
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        default: goto usage_err;
        }
    }
    if (optind != argc) goto usage_err;
    if (config && conf_load(&o, config) != CORE_OK) goto out;
    const char **fields[] = {&o.brokers,   &o.topic,       &o.group,     &o.model,
                             &o.store,     &o.dlq_topic,   &o.metrics,   &o.partitioner,
                             &o.on_misrouted, &o.log_level};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (cli[i]) *fields[i] = cli[i];
    if (has_lag) o.ready_max_lag = cli_lag;
    if (cli_batch) o.batch_max = cli_batch;
    if (cli_batch_ms) o.batch_ms = cli_batch_ms;
    if (cli_window) o.window = cli_window;
    if (cli_recent) o.recent = cli_recent;
    for (size_t i = 0; i < cli_props.n; i++)
        if (pipe_props_add(&o.props, cli_props.kv[2 * i], cli_props.kv[2 * i + 1])) goto out;
    pipe_partitioner part = PIPE_PARTITIONER_DEFAULT;
    pipe_misrouted on_mis = PIPE_MISROUTED_DLQ;
    if ((o.log_level && core_log_level_parse(o.log_level, &core_log_level, errstr, sizeof errstr)) ||
        (o.partitioner && pipe_partitioner_parse(o.partitioner, &part, errstr, sizeof errstr)) ||
        (o.on_misrouted && pipe_misrouted_parse(o.on_misrouted, &on_mis, errstr, sizeof errstr))) {
        fprintf(stderr, "trail: encode: %s\n", errstr);
        goto usage_err;
    }
    if (!o.brokers || !o.topic || !o.group || !o.model || !o.store) {
        fprintf(stderr, "trail: encode: --brokers, --topic, --group, --model and --store are "
                        "required (on the command line or in --config)\n");
        goto usage_err;
    }

    if (pipe_props_check(&o.props, PIPE_CLIENT_CONSUMER | PIPE_CLIENT_PRODUCER | PIPE_CLIENT_WORKER,
                         o.brokers, errstr, sizeof errstr)) {
        fprintf(stderr, "trail: encode: %s\n", errstr);
        goto usage_err;
    }

    rc = 1;
    if (mdl_model_load(&m, o.model, errstr, sizeof errstr)) {
        fprintf(stderr, "trail: encode: %s\n", errstr);
        goto out;
    }
    enc_store_conf sc;
    enc_store_conf_default(&sc);
    sc.path = o.store;
    sc.window = (uint32_t)o.window;
    sc.new_window = m->cfg.window; /* a new store keeps what the model was trained on */
    sc.recent = (uint32_t)o.recent;
    sc.writer = 1; /* one writer per store: a second worker on it is refused at open */
    if (enc_store_open(&st, &sc, errstr, sizeof errstr) ||
        enc_store_bind_model(st, m, errstr, sizeof errstr)) {
        fprintf(stderr, "trail: encode: %s\n", errstr);
        goto out;
    }
    if (mdl_window_mismatch(&m->cfg, enc_store_window(st), errstr, sizeof errstr))
        CORE_LOG(CORE_LOG_WARNING, "encode: model %s: %s", o.model, errstr);
    if (pipe_metrics_new(&met, o.topic)) goto out;
    pipe_metrics_set_ready_max_lag(met, (int64_t)o.ready_max_lag);
    pipe_metrics_set_store(met, st);
    if (o.metrics) {
        int port;
        if (pipe_metrics_serve(met, o.metrics, &port, errstr, sizeof errstr)) {
            fprintf(stderr, "trail: encode: %s\n", errstr);
            goto out;
        }
        /* the host as given (no host: every interface, shown as 0.0.0.0) */
        const char *host = o.metrics, *colon = strrchr(o.metrics, ':');
        int hl = (int)(colon - host);
        if (!hl) host = "0.0.0.0", hl = 7;
        CORE_LOG(CORE_LOG_NOTICE, "encode: metrics url=http://%.*s:%d/metrics readyz=/readyz "
                 "ready_max_lag=%" PRIu64, hl, host, port, o.ready_max_lag);
    }
    CORE_LOG(CORE_LOG_NOTICE,
             "encode: config brokers=%s topic=%s group=%s model=%s store=%s dlq_topic=%s "
             "batch.max_events=%" PRIu64 " batch.max_ms=%" PRIu64 " kafka_props=%zu",
             o.brokers, o.topic, o.group, o.model, o.store, o.dlq_topic ? o.dlq_topic : "<topic>.dlq",
             o.batch_max, o.batch_ms, o.props.n);
    for (size_t i = 0; i < o.props.n; i++) {
        const char *k = o.props.kv[2 * i];
        int secret = strstr(k, "password") || strstr(k, "secret") || strstr(k, "sasl.oauthbearer");
        CORE_LOG(CORE_LOG_INFO, "encode: config kafka.%s=%s", k,
                 secret ? "(hidden)" : o.props.kv[2 * i + 1]);
    }

    pipe_stop_on_signals(&g_stop);

    pipe_store_sink ss;
    pipe_sink sink;
    pipe_store_sink_init(&ss, st, &sink);
    pipe_worker_conf wc;
    pipe_worker_conf_default(&wc);
    wc.brokers = o.brokers;
    wc.topic = o.topic;
    wc.group = o.group;
    wc.dlq_topic = o.dlq_topic;
    wc.props = &o.props;
    wc.partitioner = part;
    wc.on_misrouted = on_mis;
    wc.batch_max = (uint32_t)o.batch_max;
    wc.batch_ms = (uint32_t)o.batch_ms;
    wc.until_end = o.until_end;
    wc.progress = o.until_end ? (isatty(STDERR_FILENO) ? 2 : 1) : 0;
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
    pipe_props_free(&cli_props);
    pipe_props_free(&o.props);
    for (int i = 0; i < o.n_file_strings; i++) core_free(o.file_strings[i]);
    return rc;
usage_err:
    usage(stderr);
    rc = 2;
    goto out;
}
