/* pipe_kafka.c: librdkafka behind the pipe_kafka.h seam. See the header for what it does and does
 * not do. Every polled rd_kafka_message_t is destroyed exactly once: at the next poll or at close.
 */
#include "pipe_kafka.h"

#include "core_alloc.h"
#include "core_assert.h"
#include "core_err.h"
#include "core_log.h"
#include "core_util.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// Properties

int pipe_props_add(pipe_props *p, const char *key, const char *val) {
    if (core_grow(&p->kv, &p->cap, p->n + 1, 2 * sizeof *p->kv, 16)) /* key, value pairs */
        return CORE_ENOMEM;
    char *k = core_strdup(key), *v = core_strdup(val);
    if (!k || !v) {
        core_free(k);
        core_free(v);
        return CORE_ENOMEM;
    }
    p->kv[2 * p->n] = k;
    p->kv[2 * p->n + 1] = v;
    p->n++;
    return CORE_OK;
}

int pipe_props_add_kv(pipe_props *p, const char *kv, char *errstr, size_t errstr_size) {
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        snprintf(errstr, errstr_size, "'%s' is not key=value", kv);
        return CORE_EINVAL;
    }
    if (!strncmp(kv, "kafka.", 6)) kv += 6;
    char key[256];
    size_t kn = (size_t)(eq - kv);
    if (kn == 0 || kn >= sizeof key) {
        snprintf(errstr, errstr_size, "bad property name in '%s'", kv);
        return CORE_EINVAL;
    }
    memcpy(key, kv, kn);
    key[kn] = 0;
    return pipe_props_add(p, key, eq + 1);
}

const char *pipe_props_get(const pipe_props *p, const char *key) {
    const char *v = NULL;
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->kv[2 * i], key)) v = p->kv[2 * i + 1];
    return v;
}

void pipe_props_free(pipe_props *p) {
    for (size_t i = 0; i < 2 * p->n; i++)
        core_free(p->kv[i]);
    core_free(p->kv);
    memset(p, 0, sizeof(*p));
}

/* Which clients librdkafka accepts a property for, from its own table
 * (rd_kafka_conf_properties_show: "name | C/P | ..."), read once. */
typedef struct prop_scope {
    char name[64];
    unsigned clients; /* PIPE_CLIENT_PRODUCER | PIPE_CLIENT_CONSUMER */
} prop_scope;

static prop_scope *g_scopes;
static size_t g_n_scopes;
static pthread_once_t g_scopes_once = PTHREAD_ONCE_INIT;

static void scopes_load(void) {
    char *text = NULL;
    size_t len = 0, cap = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return;
    rd_kafka_conf_properties_show(f);
    fclose(f);
    for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        char name[64], cp[8];
        if (sscanf(line, "%63[a-z0-9._-] | %7[CP*] |", name, cp) != 2) continue;
        if (core_grow(&g_scopes, &cap, g_n_scopes + 1, sizeof *g_scopes, 256)) break;
        prop_scope *sc = &g_scopes[g_n_scopes++];
        snprintf(sc->name, sizeof sc->name, "%s", name);
        sc->clients = cp[0] == 'C'   ? PIPE_CLIENT_CONSUMER
                      : cp[0] == 'P' ? PIPE_CLIENT_PRODUCER
                                     : PIPE_CLIENT_PRODUCER | PIPE_CLIENT_CONSUMER;
    }
    free(text); /* open_memstream's buffer comes from malloc */
}

/* The clients librdkafka takes name for; both for a name it does not list (a plugin's: let
 * rd_kafka_conf_set judge it). */
static unsigned prop_clients(const char *name) {
    pthread_once(&g_scopes_once, scopes_load);
    unsigned c = 0;
    for (size_t i = 0; i < g_n_scopes; i++) /* a name can be listed twice (global and topic) */
        if (!strcmp(g_scopes[i].name, name)) c |= g_scopes[i].clients;
    return c ? c : PIPE_CLIENT_PRODUCER | PIPE_CLIENT_CONSUMER;
}

/* Split key into its client prefix (0 for none) and the librdkafka name. */
static unsigned prop_prefix(const char *key, const char **name) {
    if (!strncmp(key, "consumer.", 9)) {
        *name = key + 9;
        return PIPE_CLIENT_CONSUMER;
    }
    if (!strncmp(key, "producer.", 9)) {
        *name = key + 9;
        return PIPE_CLIENT_PRODUCER;
    }
    *name = key;
    return 0;
}

/* Whether a property reaches client, and under which name. */
static int prop_reaches(const char *key, unsigned client, const char **name) {
    unsigned prefix = prop_prefix(key, name);
    return prefix ? prefix == client : (prop_clients(*name) & client) != 0;
}

int pipe_props_select(const pipe_props *p, unsigned client, pipe_props *out) {
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; p && i < p->n; i++) {
        const char *name;
        if (prop_reaches(p->kv[2 * i], client, &name) &&
            pipe_props_add(out, name, p->kv[2 * i + 1])) {
            pipe_props_free(out);
            return CORE_ENOMEM;
        }
    }
    return CORE_OK;
}

int pipe_props_check(const pipe_props *p, unsigned clients, const char *brokers, char *errstr,
                     size_t errstr_size) {
    for (size_t i = 0; p && i < p->n; i++) {
        const char *key = p->kv[2 * i], *val = p->kv[2 * i + 1], *name;
        unsigned prefix = prop_prefix(key, &name);
        unsigned reach = prefix ? prefix : prop_clients(name) & clients;
        const char *why = NULL;
        if (!*name) {
            why = "no property name after the prefix";
        } else if (prefix && !(clients & prefix)) {
            why = prefix == PIPE_CLIENT_CONSUMER ? "this command runs no consumer"
                                                 : "this command runs no producer";
        } else if (prefix && !(prop_clients(name) & prefix)) {
            why = prefix == PIPE_CLIENT_CONSUMER ? "librdkafka takes it for producers only"
                                                 : "librdkafka takes it for consumers only";
        } else if (!reach) {
            why = clients == PIPE_CLIENT_PRODUCER ? "a consumer property; this command produces"
                                                  : "a producer property; this command consumes";
        } else if (!strcmp(name, "bootstrap.servers") || !strcmp(name, "metadata.broker.list")) {
            if (!brokers || strcmp(val, brokers) != 0) {
                snprintf(errstr, errstr_size,
                         "kafka.%s=%s: differs from --brokers %s, which names the cluster (set "
                         "the brokers once, with --brokers or brokers=)",
                         key, val, brokers ? brokers : "(none)");
                return CORE_EINVAL;
            }
        } else if (!strcmp(name, "partitioner")) {
            why = "set by --partitioner, which the workers check messages against too";
        } else if (clients & PIPE_CLIENT_WORKER) {
            if (!strcmp(name, "enable.auto.offset.store"))
                why = "set by the worker (false): offsets are stored only after the LMDB commit "
                      "that holds them";
            else if (!strcmp(name, "enable.auto.commit"))
                why = "set by the worker (true): the stored offsets are committed as a monitoring "
                      "hint, the store's own offsets are where it resumes";
            else if (!strcmp(name, "group.id"))
                why = "set by --group (group=)";
            else if (!strcmp(name, "isolation.level") && strcmp(val, "read_committed") != 0)
                why = "must be read_committed: the state must not hold events of aborted "
                      "transactions";
            else if (!strcmp(name, "acks") && (reach & PIPE_CLIENT_PRODUCER) &&
                     strcmp(val, "all") != 0 && strcmp(val, "-1") != 0)
                why = "must be all for the dead-letter producer: a batch commits past a dead "
                      "letter only once every in-sync replica has it";
        }
        if (why) {
            snprintf(errstr, errstr_size, "kafka.%s: refused: %s", key, why);
            return CORE_EINVAL;
        }
    }
    return CORE_OK;
}

// ---------------------------------------------------------------------------------------------
// Shared setup

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    CORE_LOG(level, "kafka: %s %s", fac, buf);
}

/* Builds a conf for one client from defaults[] then the props that reach it (props win). On
 * failure errstr names the key. */
static rd_kafka_conf_t *conf_build(unsigned client, const char *brokers,
                                   const char *const *defaults, const pipe_props *props,
                                   char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, errstr_size) !=
        RD_KAFKA_CONF_OK)
        goto fail;
    for (size_t i = 0; defaults && defaults[i]; i += 2)
        if (rd_kafka_conf_set(conf, defaults[i], defaults[i + 1], errstr, errstr_size) !=
            RD_KAFKA_CONF_OK)
            goto fail;
    for (size_t i = 0; props && i < props->n; i++) {
        char e[256];
        const char *name;
        if (!prop_reaches(props->kv[2 * i], client, &name)) continue;
        if (rd_kafka_conf_set(conf, name, props->kv[2 * i + 1], e, sizeof e) != RD_KAFKA_CONF_OK) {
            snprintf(errstr, errstr_size, "kafka.%s: %s", props->kv[2 * i], e);
            goto fail;
        }
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

const char *pipe_kafka_version(void) {
    return rd_kafka_version_str();
}

const char *pipe_kafka_err2str(int err) {
    return rd_kafka_err2str((rd_kafka_resp_err_t)err);
}

// ---------------------------------------------------------------------------------------------
// Producer

struct pipe_producer {
    rd_kafka_t *rk;
    atomic_uint_fast64_t delivered, failed;
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque) {
    (void)rk;
    pipe_producer *p = opaque;
    if (rkm->err) {
        atomic_fetch_add(&p->failed, 1);
        CORE_LOG(CORE_LOG_ERR, "pipe: delivery-failed topic=%s partition=%d err=\"%s\"",
                 rd_kafka_topic_name(rkm->rkt), (int)rkm->partition, rd_kafka_err2str(rkm->err));
    } else {
        atomic_fetch_add(&p->delivered, 1);
    }
}

int pipe_producer_new(pipe_producer **out, const char *brokers, const pipe_props *props,
                      char *errstr, size_t errstr_size) {
    static const char *const defaults[] = {"acks",
                                           "all",
                                           "enable.idempotence",
                                           "true",
                                           "linger.ms",
                                           "5",
                                           "partitioner",
                                           "murmur2_random",
                                           "message.timeout.ms",
                                           "0",
                                           NULL};
    pipe_producer *p = core_calloc(1, sizeof(*p));
    if (!p) return CORE_ENOMEM;
    rd_kafka_conf_t *conf =
        conf_build(PIPE_CLIENT_PRODUCER, brokers, defaults, props, errstr, errstr_size);
    if (!conf) goto fail;
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, p);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!p->rk) {
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    *out = p;
    return CORE_OK;
fail:
    core_free(p);
    return CORE_EKAFKA;
}

int pipe_producer_send(pipe_producer *p, const char *topic, int32_t partition, const void *key,
                       size_t key_len, const void *val, size_t val_len, const pipe_header *hdrs,
                       size_t n_hdrs, int64_t ts_ms, atomic_int *stop) {
    for (;;) {
        rd_kafka_headers_t *h = NULL;
        if (n_hdrs) {
            h = rd_kafka_headers_new(n_hdrs);
            for (size_t i = 0; i < n_hdrs; i++)
                rd_kafka_header_add(h, hdrs[i].name, -1, hdrs[i].value, (ssize_t)hdrs[i].len);
        }
        rd_kafka_resp_err_t err =
            rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                              RD_KAFKA_V_KEY((void *)(uintptr_t)key, key_len),
                              RD_KAFKA_V_VALUE((void *)(uintptr_t)val, val_len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(ts_ms),
                              RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
        if (!err) return CORE_OK; /* the message now owns h */
        if (h) rd_kafka_headers_destroy(h);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            CORE_LOG(CORE_LOG_ERR, "pipe: produce-failed topic=%s err=\"%s\"", topic,
                     rd_kafka_err2str(err));
            return CORE_EKAFKA;
        }
        if (stop && *stop) return CORE_ESTOPPED;
        rd_kafka_poll(p->rk, 50); /* the local queue is full: serve delivery reports, retry */
    }
}

void pipe_producer_poll(pipe_producer *p, int timeout_ms) {
    rd_kafka_poll(p->rk, timeout_ms);
}

int pipe_producer_flush(pipe_producer *p, int timeout_ms, atomic_int *stop) {
    int waited = 0;
    while (rd_kafka_outq_len(p->rk) > 0) {
        if (stop && *stop) return CORE_ESTOPPED;
        if (timeout_ms >= 0 && waited >= timeout_ms) return CORE_EKAFKA;
        rd_kafka_flush(p->rk, 100);
        waited += 100;
    }
    return CORE_OK;
}

void pipe_producer_counts(const pipe_producer *p, uint64_t *delivered, uint64_t *failed) {
    *delivered = atomic_load(&p->delivered);
    *failed = atomic_load(&p->failed);
}

void pipe_producer_destroy(pipe_producer *p) {
    if (!p) return;
    if (p->rk) {
        rd_kafka_flush(p->rk, 10000);
        rd_kafka_destroy(p->rk);
    }
    core_free(p);
}

// ---------------------------------------------------------------------------------------------
// Consumer

struct pipe_consumer {
    rd_kafka_t *rk;
    rd_kafka_message_t *cur; /* the message handed out by the last poll */
    pipe_consumer_cbs cbs;
    int fatal;
    char errbuf[512];
    /* The caller's callbacks run under cb_mu and only while !detached: a close that outlives its
     * deadline (pipe_consumer_close) detaches them before the caller frees what they touch. */
    pthread_mutex_t cb_mu;
    int detached;
    /* the close, run on its own thread so that its wait can be bounded */
    pthread_mutex_t close_mu;
    pthread_cond_t close_cv;
    int close_done;
};

/* Whether the caller's callbacks may run now; on 1, cb_mu is held until cbs_end. */
static int cbs_begin(pipe_consumer *c) {
    pthread_mutex_lock(&c->cb_mu);
    if (!c->detached) return 1;
    pthread_mutex_unlock(&c->cb_mu);
    return 0;
}

static void cbs_end(pipe_consumer *c) {
    pthread_mutex_unlock(&c->cb_mu);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    pipe_consumer *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[256];
        rd_kafka_fatal_error(rk, why, sizeof why);
        CORE_LOG(CORE_LOG_ERR, "pipe: kafka-fatal reason=\"%s\"", why);
        c->fatal = 1;
        return;
    }
    /* Transport errors and "all brokers down" are retried by librdkafka with backoff
     * (reconnect.backoff.ms .. reconnect.backoff.max.ms); the loop keeps polling. */
    CORE_LOG(CORE_LOG_WARNING, "pipe: kafka-error err=%s reason=\"%s\"",
             rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
    (void)rk;
    pipe_consumer *c = opaque;
    if (c->cbs.stats && cbs_begin(c)) {
        c->cbs.stats(c->cbs.opaque, json, len);
        cbs_end(c);
    }
    return 0; /* librdkafka frees json */
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    pipe_consumer *c = opaque;
    int n = parts->cnt;
    int32_t *ids = core_calloc((size_t)n + 1, sizeof(*ids));
    int64_t *offs = core_calloc((size_t)n + 1, sizeof(*offs));
    CORE_ASSERT(ids && offs);
    for (int i = 0; i < n; i++)
        ids[i] = parts->elems[i].partition;
    const char *topic = n ? parts->elems[0].topic : "";
    for (int i = 1; i < n; i++)
        CORE_ASSERT(!strcmp(parts->elems[i].topic, topic));
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < n; i++)
            offs[i] = PIPE_OFFSET_BEGINNING;
        if (c->cbs.assign && cbs_begin(c)) {
            c->cbs.assign(c->cbs.opaque, topic, ids, offs, n);
            cbs_end(c);
        }
        for (int i = 0; i < n; i++)
            parts->elems[i].offset = offs[i];
        rd_kafka_resp_err_t e = rd_kafka_assign(rk, parts);
        if (e) CORE_LOG(CORE_LOG_ERR, "pipe: assign-failed err=\"%s\"", rd_kafka_err2str(e));
    } else {
        if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS && c->cbs.revoke) {
            if (cbs_begin(c)) {
                c->cbs.revoke(c->cbs.opaque, topic, ids, n);
                cbs_end(c);
            }
        } else if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
            CORE_LOG(CORE_LOG_ERR, "pipe: rebalance-error err=\"%s\"", rd_kafka_err2str(err));
        rd_kafka_assign(rk, NULL);
    }
    core_free(ids);
    core_free(offs);
}

int pipe_consumer_new(pipe_consumer **out, const char *brokers, const char *group,
                      const char *topic, const pipe_props *props, const pipe_consumer_cbs *cbs,
                      char *errstr, size_t errstr_size) {
    static const char *const group_defaults[] = {"enable.auto.offset.store",
                                                 "false",
                                                 "enable.auto.commit",
                                                 "true",
                                                 "auto.offset.reset",
                                                 "earliest",
                                                 "enable.partition.eof",
                                                 "false",
                                                 "partition.assignment.strategy",
                                                 "range,roundrobin",
                                                 NULL};
    static const char *const reader_defaults[] = {
        "group.id", "trail-record",      "enable.auto.commit", "false", "enable.auto.offset.store",
        "false",    "auto.offset.reset", "earliest",           NULL};
    pipe_consumer *c = core_calloc(1, sizeof(*c));
    rd_kafka_topic_partition_list_t *sub = NULL;
    if (!c) return CORE_ENOMEM;
    pthread_mutex_init(&c->cb_mu, NULL);
    pthread_mutex_init(&c->close_mu, NULL);
    pthread_cond_init(&c->close_cv, NULL);
    if (cbs) c->cbs = *cbs;
    pipe_props mine;
    if (pipe_props_select(props, PIPE_CLIENT_CONSUMER, &mine)) {
        core_free(c);
        return CORE_ENOMEM;
    }
    const char *strat = pipe_props_get(&mine, "partition.assignment.strategy");
    if (strat && strstr(strat, "cooperative")) {
        snprintf(errstr, errstr_size,
                 "kafka.partition.assignment.strategy=%s: cooperative rebalancing is not used with "
                 "librdkafka 2.0.2 (known bugs); use range or roundrobin",
                 strat);
        pipe_props_free(&mine);
        goto fail;
    }
    pipe_props_free(&mine);
    rd_kafka_conf_t *conf =
        conf_build(PIPE_CLIENT_CONSUMER, brokers, group ? group_defaults : reader_defaults, props,
                   errstr, errstr_size);
    if (!conf) goto fail;
    if (group &&
        rd_kafka_conf_set(conf, "group.id", group, errstr, errstr_size) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_stats_cb(conf, stats_cb);
    if (group) rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (!c->rk) {
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    rd_kafka_poll_set_consumer(c->rk);
    if (group) {
        sub = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, sub);
        rd_kafka_topic_partition_list_destroy(sub);
        if (e) {
            snprintf(errstr, errstr_size, "subscribe %s: %s", topic, rd_kafka_err2str(e));
            goto fail;
        }
    }
    *out = c;
    return CORE_OK;
fail:
    if (c->rk) rd_kafka_destroy(c->rk);
    core_free(c);
    return CORE_EKAFKA;
}

int pipe_consumer_partition_count(pipe_consumer *c, const char *topic, int timeout_ms, int *n) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(c->rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int rc = CORE_EKAFKA;
    if (!rkt) return CORE_EKAFKA;
    rd_kafka_resp_err_t e = rd_kafka_metadata(c->rk, 0, rkt, &md, timeout_ms);
    if (e) {
        CORE_LOG(CORE_LOG_ERR, "pipe: metadata-failed topic=%s err=\"%s\"", topic,
                 rd_kafka_err2str(e));
    } else if (md->topic_cnt != 1 || md->topics[0].err) {
        CORE_LOG(CORE_LOG_ERR, "pipe: metadata-failed topic=%s err=\"%s\"", topic,
                 md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "no topic");
    } else {
        *n = md->topics[0].partition_cnt;
        rc = *n > 0 ? CORE_OK : CORE_EKAFKA;
    }
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return rc;
}

int pipe_consumer_watermarks(pipe_consumer *c, const char *topic, int32_t partition, int timeout_ms,
                             int64_t *lo, int64_t *hi) {
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(c->rk, topic, partition, lo, hi, timeout_ms);
    if (e) {
        CORE_LOG(CORE_LOG_ERR, "pipe: watermarks-failed topic=%s partition=%d err=\"%s\"", topic,
                 (int)partition, rd_kafka_err2str(e));
        return CORE_EKAFKA;
    }
    return CORE_OK;
}

int pipe_consumer_assign(pipe_consumer *c, const char *topic, const int32_t *parts,
                         const int64_t *offsets, int n) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, topic, parts[i])->offset = offsets[i];
    rd_kafka_resp_err_t e = rd_kafka_assign(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return e ? CORE_EKAFKA : CORE_OK;
}

int pipe_consumer_poll(pipe_consumer *c, int timeout_ms, pipe_msg *out) {
    if (c->cur) {
        rd_kafka_message_destroy(c->cur);
        c->cur = NULL;
    }
    memset(out, 0, sizeof(*out));
    if (c->fatal) {
        out->err = RD_KAFKA_RESP_ERR__FATAL;
        out->err_fatal = 1;
        out->errstr = "fatal error (see log)";
        return 1;
    }
    rd_kafka_message_t *rkm = rd_kafka_consumer_poll(c->rk, timeout_ms);
    if (!rkm) {
        if (!c->fatal) return 0;
        out->err = RD_KAFKA_RESP_ERR__FATAL;
        out->err_fatal = 1;
        out->errstr = "fatal error (see log)";
        return 1;
    }
    c->cur = rkm;
    out->topic = rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : "";
    out->partition = rkm->partition;
    out->offset = rkm->offset;
    out->key = rkm->key;
    out->key_len = rkm->key_len;
    out->payload = rkm->payload;
    out->len = rkm->len;
    rd_kafka_timestamp_type_t tstype;
    out->ts_ms = rd_kafka_message_timestamp(rkm, &tstype);
    out->err = rkm->err;
    if (rkm->err) {
        snprintf(c->errbuf, sizeof c->errbuf, "%s", rd_kafka_message_errstr(rkm));
        out->errstr = c->errbuf;
        out->err_fatal = c->fatal;
    }
    return 1;
}

int pipe_consumer_header(pipe_consumer *c, const char *name, const void **val, size_t *len) {
    rd_kafka_headers_t *h = NULL;
    if (!c->cur || rd_kafka_message_headers(c->cur, &h) || !h) return CORE_ENOTFOUND;
    return rd_kafka_header_get_last(h, name, val, len) ? CORE_ENOTFOUND : CORE_OK;
}

size_t pipe_consumer_headers(pipe_consumer *c, pipe_header *out, size_t cap) {
    rd_kafka_headers_t *h = NULL;
    if (!c->cur || rd_kafka_message_headers(c->cur, &h) || !h) return 0;
    size_t n = rd_kafka_header_cnt(h);
    for (size_t i = 0; i < n && i < cap; i++)
        if (rd_kafka_header_get_all(h, i, &out[i].name, &out[i].value, &out[i].len)) return i;
    return n;
}

void pipe_consumer_store_offsets(pipe_consumer *c, const char *topic, const int32_t *parts,
                                 const int64_t *next_offsets, int n) {
    if (n <= 0) return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, topic, parts[i])->offset = next_offsets[i];
    /* Fails for partitions no longer assigned; the LMDB offsets are the truth, so that is fine. */
    rd_kafka_offsets_store(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
}

/* How long closing a consumer may wait for its group to acknowledge the leave: with the
 * coordinator gone, librdkafka's own close waits out the session timeout (45 s by default), which
 * kept a stopped worker up for most of a minute. Closing is the last thing a worker process does
 * before it exits. */
#define PIPE_CLOSE_MS 10000

static void *close_thread(void *arg) {
    pipe_consumer *c = arg;
    rd_kafka_consumer_close(c->rk);
    pthread_mutex_lock(&c->close_mu);
    c->close_done = 1;
    pthread_cond_signal(&c->close_cv);
    pthread_mutex_unlock(&c->close_mu);
    return NULL;
}

void pipe_consumer_close(pipe_consumer *c) {
    if (!c) return;
    if (c->cur) rd_kafka_message_destroy(c->cur);
    c->cur = NULL;
    if (c->rk) { /* run the revoke callback and leave the group, for PIPE_CLOSE_MS at most */
        pthread_t th;
        int timed_out = 0;
        if (pthread_create(&th, NULL, close_thread, c) != 0) {
            close_thread(c); /* no thread: wait as long as librdkafka does */
        } else {
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            dl.tv_sec += PIPE_CLOSE_MS / 1000;
            pthread_mutex_lock(&c->close_mu);
            while (!c->close_done && !timed_out)
                timed_out = pthread_cond_timedwait(&c->close_cv, &c->close_mu, &dl) == ETIMEDOUT;
            timed_out = !c->close_done;
            pthread_mutex_unlock(&c->close_mu);
            if (!timed_out) pthread_join(th, NULL);
        }
        if (timed_out) { /* the coordinator is unreachable: librdkafka's close waits out the
                          * group session (45 s by default). The caller's callbacks are detached
                          * and the handle is left to the process's exit, which follows (the
                          * stored positions, not the group's, say where to resume) */
            pthread_mutex_lock(&c->cb_mu);
            c->detached = 1;
            pthread_mutex_unlock(&c->cb_mu);
            pthread_detach(th);
            CORE_LOG(CORE_LOG_WARNING,
                     "kafka: consumer did not leave its group within %d ms "
                     "(coordinator unreachable?); leaving the handle to the "
                     "process exit",
                     PIPE_CLOSE_MS);
            return;
        }
        rd_kafka_destroy(c->rk);
    }
    pthread_mutex_destroy(&c->cb_mu);
    pthread_mutex_destroy(&c->close_mu);
    pthread_cond_destroy(&c->close_cv);
    core_free(c);
}

// ---------------------------------------------------------------------------------------------
// Partitioning: librdkafka's own functions. With a non-empty key none of them reads the topic
// handle (only their keyless path, the random partitioner, asks it which partitions are
// available), so NULL is passed and keyless messages are answered here.

typedef int32_t partitioner_fn(const rd_kafka_topic_t *, const void *, size_t, int32_t, void *,
                               void *);
static const struct {
    const char *name;
    partitioner_fn *fn; /* NULL: no key decides */
    int keyless_random; /* a keyless message goes to a random partition */
} partitioners[PIPE_PART_N] = {
    [PIPE_PART_RANDOM] = {"random", NULL, 1},
    [PIPE_PART_CONSISTENT] = {"consistent", rd_kafka_msg_partitioner_consistent, 0},
    [PIPE_PART_CONSISTENT_RANDOM] = {"consistent_random",
                                     rd_kafka_msg_partitioner_consistent_random, 1},
    [PIPE_PART_MURMUR2] = {"murmur2", rd_kafka_msg_partitioner_murmur2, 0},
    [PIPE_PART_MURMUR2_RANDOM] = {"murmur2_random", rd_kafka_msg_partitioner_murmur2_random, 1},
    [PIPE_PART_FNV1A] = {"fnv1a", rd_kafka_msg_partitioner_fnv1a, 0},
    [PIPE_PART_FNV1A_RANDOM] = {"fnv1a_random", rd_kafka_msg_partitioner_fnv1a_random, 1},
};

const char *pipe_partitioner_name(pipe_partitioner part) {
    return (unsigned)part < PIPE_PART_N ? partitioners[part].name : "?";
}

int pipe_partitioner_parse(const char *name, pipe_partitioner *out, char *errstr,
                           size_t errstr_size) {
    for (int i = 0; i < PIPE_PART_N; i++)
        if (name && !strcmp(name, partitioners[i].name)) {
            *out = (pipe_partitioner)i;
            return CORE_OK;
        }
    snprintf(errstr, errstr_size,
             "partitioner '%s' is not one of librdkafka's: random, consistent, consistent_random, "
             "murmur2, murmur2_random, fnv1a, fnv1a_random",
             name ? name : "");
    return CORE_EINVAL;
}

int32_t pipe_partition_of(pipe_partitioner part, const void *key, size_t key_len, int32_t n) {
    if ((unsigned)part >= PIPE_PART_N || n <= 0 || !partitioners[part].fn) return -1;
    /* librdkafka's keyless test: consistent_random looks at the length, the others at the
     * pointer (rdkafka_msg.c); an empty key is keyless for every *_random one here. */
    if ((!key || !key_len) && partitioners[part].keyless_random) return -1;
    return partitioners[part].fn(NULL, key ? key : "", key_len, n, NULL, NULL);
}
