/* pipe_worker.c: the encoder worker's loop (see pipe_worker.h for the guarantees).
 *
 * One thread does everything: poll, apply, commit, and the rebalance and statistics callbacks,
 * which librdkafka serves from inside pipe_consumer_poll. So a revoke can commit the open batch
 * directly, and no state here needs a lock (the metrics HTTP thread reads only pipe_metrics).
 *
 * Cadence, with a sink that has two tiers (schemas/state.md, "Two tiers"): a batch commits
 * (tier 1: window, counters, positions) when it holds batch_max events or has been open batch_ms;
 * the sink's catch_up (tier 2: bucket sums, oldest lag first) runs in slices of at most
 * TIER2_SLICE_MS: one after each batch commit, and more whenever no message is waiting, ending
 * (their commit included, as measured) before the open batch is due.
 */
#include "pipe_worker.h"

#include "core_alloc.h"
#include "core_err.h"
#include "core_log.h"
#include "core_util.h"

#include <stdatomic.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIER2_SLICE_MS 10   /* longest tier-2 transaction between polls (its fsync comes on top) */
#define PEND_MAX (1u << 22) /* behaviors awaiting their bucket sums that freshness follows */
#define AGE_RING 4096       /* batches whose behaviors' sums are followed (about 80 s of them) */
#define BEHIND_MS 500       /* sums older than this: tier 2 takes TIER2_BEHIND_MS after a batch */
#define TIER2_BEHIND_MS 50

/* Behaviors committed in tier 1 whose bucket sums have not caught up yet, per user: when they
 * were received and produced, for the buckets-tier freshness. An open-addressing table (linear
 * probing, backward-shift deletion) of users, each heading a list in a pool of entries. */
typedef struct pend_ent {
    int64_t recv_ns;
    double prod_ms;
    uint32_t next;  /* index + 1 of the user's next entry; 0: the last */
    uint32_t batch; /* its batch's slot in the age ring */
} pend_ent;
typedef struct pend_slot {
    uint64_t uid;
    uint32_t head, tail; /* index + 1 in the pool; head 0: an empty slot */
} pend_slot;
typedef struct pend_map {
    pend_slot *slot; // (cap), cap a power of 2, at most half full
    size_t cap, used;
    pend_ent *ent; // (ent_cap)
    size_t ent_cap;
    uint32_t ent_n, free; /* free: index + 1 of a freed entry's chain */
    /* per committed batch (sequence mod AGE_RING): when it opened and how many of its behaviors
     * still await their sums; lo..seq-1 are the batches not known to be all summed (a slot
     * reused before its batch was summed keeps counting both: the age is an estimate) */
    struct {
        int64_t t_ns;
        int64_t left;
    } age[AGE_RING];
    uint64_t seq, lo;
} pend_map;
typedef struct part_state {
    int assigned;
    int64_t pending; /* next offset in the open batch, -1 none */
    int64_t stored;  /* next offset committed in the sink, -1 none */
    int64_t start;   /* where this member resumed the partition (progress) */
    int64_t lo;      /* low watermark at start */
    int64_t end;     /* high watermark at start (--until-end target); 0: nothing to wait for */
    int64_t hi;      /* latest high watermark (statistics) */
    int64_t fresh;   /* statistics reports still to see before hi counts (after assignment) */
} part_state;

typedef struct worker {
    const pipe_worker_conf *conf;
    const pipe_sink *sink;
    pipe_metrics *met;
    pipe_consumer *cons;
    pipe_producer *dlq;
    char dlq_topic[256];
    int32_t np;        /* partitions `part` covers */
    part_state *part;  // (np)
    int open;          /* a sink batch is open */
    uint32_t n, n_dlq; /* messages and dead-lettered messages in the open batch */
    int64_t t_open_ns;
    int64_t *ts;        // (batch_max) message timestamps of the open batch, ms
    int64_t *recv_ns;   // (batch_max) when this worker received each message; -1: nothing applied
    uint64_t *uid;      // (batch_max) the user of each applied behavior
    pend_map pend;      /* committed, awaiting their sums (a sink with catch_up) */
    int lagging;        /* the sink reported users whose sums trail (or a batch committed since) */
    int64_t t2_over_ns; /* how long a tier-2 slice runs past its budget (its commit): a moving
                           average, kept off the open batch's due time */
    int64_t t_recv_ns;  /* when the message being handled was received (polled) */
    int failed;         /* a failure inside a callback: the loop stops with it */
    uint64_t n_kafka_err;
    int32_t nparts;    /* the topic's partition count, re-read after every assignment */
    int recount;       /* an assignment arrived: re-read nparts before the next message */
    uint32_t n_skip;   /* tombstones in the open batch: consumed, nothing applied */
    pipe_header *hdrs; // (hdrs_cap) a dead letter's headers: the source's, then trail's
    size_t hdrs_cap;
    char why[512]; /* what stopped the loop from inside handle() */
} worker;

int pipe_misrouted_parse(const char *name, pipe_misrouted *out, char *errstr, size_t errstr_size) {
    static const char *const names[] = {"dlq", "apply", "fail"};
    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, names[i])) {
            *out = (pipe_misrouted)i;
            return CORE_OK;
        }
    snprintf(errstr, errstr_size, "on-misrouted '%s' is not dlq, apply or fail", name ? name : "");
    return CORE_EINVAL;
}

void pipe_worker_conf_default(pipe_worker_conf *conf) {
    memset(conf, 0, sizeof(*conf));
    conf->batch_max = 10000;
    conf->batch_ms = 15;
    conf->partitioner = PIPE_PARTITIONER_DEFAULT;
    conf->on_misrouted = PIPE_MISROUTED_DLQ;
}

/* The handler is process-wide and no thread of a worker blocks these signals, so whichever
 * thread the kernel picks (the main loop, librdkafka's, OpenBLAS's, the metrics server's) sets
 * the flag and the loop sees it; no thread is left with a default action that kills the process.
 * SA_RESTART: a signal taken by a thread in the middle of a system call (a store write, a socket
 * read) restarts the call rather than failing it with EINTR. */
static atomic_int *g_stop_flag;
static void on_stop_signal(int sig) {
    (void)sig;
    if (g_stop_flag) *g_stop_flag = 1;
}

void pipe_stop_on_signals(atomic_int *stop) {
    struct sigaction sa;
    g_stop_flag = stop;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

static void source_name(const worker *w, int32_t p, char *buf, size_t cap) {
    snprintf(buf, cap, "kafka:%s:%d", w->conf->topic, (int)p);
}

static int grow(worker *w, int32_t np) {
    if (np <= w->np) return CORE_OK;
    part_state *a = core_realloc(w->part, (size_t)np * sizeof *a);
    if (!a) return CORE_ENOMEM;
    for (int32_t p = w->np; p < np; p++)
        a[p] = (part_state){
            .pending = -1, .stored = -1, .start = -1, .lo = -1, .end = 0, .hi = -1, .fresh = -1};
    w->part = a;
    w->np = np;
    return CORE_OK;
}

/* Every assigned partition's committed offset has reached its end (a partition whose end is 0
 * or below its low watermark has nothing to wait for). 0 while nothing is assigned. */
static int all_reached(const worker *w) {
    int any = 0;
    for (int32_t p = 0; p < w->np; p++) {
        if (!w->part[p].assigned) continue;
        any = 1;
        int64_t t = w->part[p].end;
        if (t > 0 && t > w->part[p].lo && w->part[p].stored < t) return 0;
    }
    return any;
}

/* Caught up: every assigned partition's committed offset reached the high watermark reported by
 * statistics gathered after the assignment (librdkafka keeps a partition's last hi_offset across
 * rebalances, so the first report after an assignment may be stale; two reports, 1 s apart, span
 * several fetch responses). 0 while nothing is assigned. */
static int caught_up(const worker *w) {
    int any = 0;
    for (int32_t p = 0; p < w->np; p++) {
        if (!w->part[p].assigned) continue;
        any = 1;
        if (w->part[p].fresh != 0 || w->part[p].hi < 0) return 0;
        if (w->part[p].hi > w->part[p].lo && w->part[p].hi > 0 && w->part[p].stored < w->part[p].hi)
            return 0;
    }
    return any;
}

static void update_gauges(worker *w) {
    for (int32_t p = 0; p < w->np; p++) {
        int64_t lag = -1;
        /* unknown (-1) until statistics gathered after the assignment report (see caught_up) */
        if (w->part[p].hi >= 0 && w->part[p].fresh <= 0)
            lag = w->part[p].hi - (w->part[p].stored >= 0 ? w->part[p].stored : w->part[p].lo);
        if (lag < -1) lag = 0;
        pipe_metrics_set_partition(w->met, p, w->part[p].assigned, lag);
    }
    pipe_metrics_set_caught_up(w->met, caught_up(w) && !w->lagging);
}

// ---------------------------------------------------------------------------------------------
// Behaviors awaiting their bucket sums

static size_t pend_home(const pend_map *p, uint64_t uid) {
    return (size_t)((uid * 0x9E3779B97F4A7C15ull) >> 20) & (p->cap - 1);
}

static pend_slot *pend_find(pend_map *p, uint64_t uid) {
    if (!p->cap) return NULL;
    for (size_t i = pend_home(p, uid);; i = (i + 1) & (p->cap - 1)) {
        if (!p->slot[i].head) return NULL;
        if (p->slot[i].uid == uid) return &p->slot[i];
    }
}

static int pend_grow(pend_map *p) {
    size_t cap = p->cap ? p->cap * 2 : 1024;
    pend_slot *s = core_calloc(cap, sizeof *s), *old = p->slot;
    if (!s) return CORE_ENOMEM;
    size_t ocap = p->cap;
    p->slot = s;
    p->cap = cap;
    for (size_t i = 0; i < ocap; i++) {
        if (!old[i].head) continue;
        size_t j = pend_home(p, old[i].uid);
        while (s[j].head)
            j = (j + 1) & (cap - 1);
        s[j] = old[i];
    }
    core_free(old);
    return CORE_OK;
}

/* One behavior of uid committed in tier 1: remembered until its sums catch up. Without room (the
 * sums far behind, or no memory) it is not followed: freshness samples only, state is unaffected.
 */
static void pend_add(pend_map *p, uint64_t uid, int64_t recv_ns, double prod_ms, uint32_t batch) {
    uint32_t e;
    if (p->free) {
        e = p->free - 1;
        p->free = p->ent[e].next;
    } else {
        if (p->ent_n == PEND_MAX) return;
        if (core_grow(&p->ent, &p->ent_cap, (size_t)p->ent_n + 1, sizeof *p->ent, 4096)) return;
        e = p->ent_n++;
    }
    p->ent[e] = (pend_ent){recv_ns, prod_ms, 0, batch};
    p->age[batch].left++;
    pend_slot *s = pend_find(p, uid);
    if (s) {
        p->ent[s->tail - 1].next = e + 1;
        s->tail = e + 1;
        return;
    }
    if ((p->used + 1) * 2 > p->cap && pend_grow(p)) {
        p->ent[e].next = p->free; /* back to the free chain */
        p->free = e + 1;
        p->age[batch].left--;
        return;
    }
    size_t i = pend_home(p, uid);
    while (p->slot[i].head)
        i = (i + 1) & (p->cap - 1);
    p->slot[i] = (pend_slot){uid, e + 1, e + 1};
    p->used++;
}

/* Remove slot s (backward-shift deletion keeps every probe chain unbroken). */
static void pend_del(pend_map *p, pend_slot *s) {
    size_t i = (size_t)(s - p->slot);
    for (size_t j = (i + 1) & (p->cap - 1); p->slot[j].head; j = (j + 1) & (p->cap - 1)) {
        size_t h = pend_home(p, p->slot[j].uid);
        /* move j into the hole at i unless its home lies cyclically in (i, j] */
        if ((j > i && (h <= i || h > j)) || (j < i && h <= i && h > j)) {
            p->slot[i] = p->slot[j];
            i = j;
        }
    }
    p->slot[i].head = 0;
    p->used--;
}

static void visible(worker *w, int tier, int64_t now_ns, double now_ms, int64_t recv_ns,
                    double prod_ms) {
    double from_recv = (double)(now_ns - recv_ns) / 1e6;
    double from_prod = prod_ms > 0 ? now_ms - prod_ms : -1;
    pipe_metrics_observe_visible(w->met, tier, from_recv / 1e3);
    if (w->conf->on_visible) w->conf->on_visible(w->conf->visible_arg, tier, from_recv, from_prod);
}

/* catch_up's callback: every committed behavior of uid is in its sums now. */
static void on_caught(void *arg, uint64_t uid) {
    worker *w = arg;
    pend_slot *s = pend_find(&w->pend, uid);
    if (!s) return;
    int64_t now_ns = core_now_ns();
    double now_ms = core_wall_ms();
    uint32_t e = s->head;
    while (e) {
        pend_ent *x = &w->pend.ent[e - 1];
        uint32_t next = x->next;
        visible(w, PIPE_TIER_BUCKETS, now_ns, now_ms, x->recv_ns, x->prod_ms);
        w->pend.age[x->batch].left--;
        x->next = w->pend.free;
        w->pend.free = e;
        e = next;
    }
    pend_del(&w->pend, s);
}

/* How long ago the oldest batch with behaviors still missing from their sums opened (0: none). */
static int64_t sums_age_ns(pend_map *p, int64_t now_ns) {
    if (p->seq - p->lo > AGE_RING) p->lo = p->seq - AGE_RING;
    while (p->lo < p->seq && p->age[p->lo % AGE_RING].left <= 0)
        p->lo++;
    return p->lo < p->seq ? now_ns - p->age[p->lo % AGE_RING].t_ns : 0;
}

/* Tier 2 for at most budget_ns (a sink with catch_up, users lagging). */
static int catch_up(worker *w, int64_t budget_ns) {
    uint64_t left = 0;
    int64_t t0 = core_now_ns();
    int rc = w->sink->catch_up(w->sink->ctx, budget_ns, on_caught, w, &left);
    int64_t over = core_now_ns() - t0 - budget_ns;
    if (budget_ns < INT64_MAX / 2) w->t2_over_ns += ((over > 0 ? over : 0) - w->t2_over_ns) / 8;
    if (rc != CORE_OK) {
        CORE_LOG(CORE_LOG_ERR, "pipe: catch-up-failed err=\"%s\"", core_strerror(rc));
        return rc;
    }
    w->lagging = left > 0;
    if (!w->lagging) pipe_metrics_set_caught_up(w->met, caught_up(w));
    return CORE_OK;
}

// ---------------------------------------------------------------------------------------------
// Batches

/* Wait until the dead-letter producer has every message acknowledged. On stop, give it 10 s more.
 */
static int flush_dlq(worker *w) {
    uint64_t d0, f0, d1, f1;
    pipe_producer_counts(w->dlq, &d0, &f0);
    int rc = pipe_producer_flush(w->dlq, -1, w->conf->stop);
    if (rc == CORE_ESTOPPED) rc = pipe_producer_flush(w->dlq, 10000, NULL);
    pipe_producer_counts(w->dlq, &d1, &f1);
    if (rc == CORE_OK && f1 != f0) rc = CORE_EKAFKA; /* a permanent delivery failure */
    return rc;
}

static void batch_reset(worker *w) {
    for (int32_t p = 0; p < w->np; p++)
        w->part[p].pending = -1;
    w->open = 0;
    w->n = w->n_dlq = w->n_skip = 0;
}

/* Commit the open batch: offsets into the same transaction, dead letters acknowledged first. */
static int commit_batch(worker *w) {
    if (!w->open) return CORE_OK;
    const pipe_sink *s = w->sink;
    char src[300];
    int rc = CORE_OK;
    for (int32_t p = 0; p < w->np; p++) {
        if (w->part[p].pending < 0) continue;
        source_name(w, p, src, sizeof src);
        if ((rc = s->set_offset(s->ctx, src, w->part[p].pending)) != CORE_OK) goto fail;
    }
    if (w->n_dlq && (rc = flush_dlq(w)) != CORE_OK) {
        CORE_LOG(CORE_LOG_ERR,
                 "pipe: batch-aborted reason=\"dead letters not acknowledged\" "
                 "events=%u (they will be consumed again)",
                 w->n);
        goto fail;
    }
    int64_t t0 = core_now_ns();
    rc = s->commit(s->ctx); /* frees the batch whatever the result */
    w->open = 0;
    if (rc != CORE_OK) {
        CORE_LOG(CORE_LOG_ERR, "pipe: batch-commit-failed events=%u err=\"%s\"", w->n,
                 core_strerror(rc));
        batch_reset(w);
        return rc;
    }
    double now_ms = core_wall_ms();
    int64_t now_ns = core_now_ns();
    pipe_metrics_observe_commit(w->met, (double)(now_ns - t0) / 1e9);
    uint32_t slot = (uint32_t)(w->pend.seq % AGE_RING);
    if (s->catch_up) {
        w->pend.age[slot].t_ns = w->t_open_ns;
        if (w->pend.age[slot].left < 0) w->pend.age[slot].left = 0;
        w->pend.seq++;
    }
    for (uint32_t i = 0; i < w->n; i++) {
        if (w->recv_ns[i] < 0) continue; /* freshness is measured for applied events only */
        double prod_ms = w->ts[i] > 0 ? (double)w->ts[i] : -1;
        if (prod_ms > 0) pipe_metrics_observe_freshness(w->met, (now_ms - prod_ms) / 1e3);
        visible(w, PIPE_TIER_RECENT, now_ns, now_ms, w->recv_ns[i], prod_ms);
        if (s->catch_up) /* the sums follow in tier 2 */
            pend_add(&w->pend, w->uid[i], w->recv_ns[i], prod_ms, slot);
        else /* one transaction made the whole behavior visible */
            visible(w, PIPE_TIER_BUCKETS, now_ns, now_ms, w->recv_ns[i], prod_ms);
    }
    if (s->catch_up && w->n > w->n_dlq + w->n_skip) w->lagging = 1;
    int32_t parts[64];
    int64_t offs[64];
    int k = 0;
    for (int32_t p = 0; p < w->np; p++) {
        if (w->part[p].pending < 0) continue;
        w->part[p].stored = w->part[p].pending;
        parts[k] = p;
        offs[k++] = w->part[p].pending;
        if (k == 64) {
            pipe_consumer_store_offsets(w->cons, w->conf->topic, parts, offs, k);
            k = 0;
        }
    }
    pipe_consumer_store_offsets(w->cons, w->conf->topic, parts, offs, k);
    pipe_metrics_add(w->met, PIPE_M_APPLIED, w->n - w->n_dlq - w->n_skip);
    pipe_metrics_add(w->met, PIPE_M_BATCHES, 1);
    batch_reset(w);
    update_gauges(w);
    return CORE_OK;
fail:
    s->abort(s->ctx);
    batch_reset(w);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// Callbacks (served inside pipe_consumer_poll, on this thread)

static void on_assign(void *opaque, const char *topic, const int32_t *parts, int64_t *offsets,
                      int n) {
    worker *w = opaque;
    (void)topic;
    char src[300];
    pipe_metrics_add(w->met, PIPE_M_REBALANCES, 1);
    for (int i = 0; i < n; i++) {
        int32_t p = parts[i];
        int rc = grow(w, p + 1);
        if (rc) {
            w->failed = rc;
            return;
        }
        int64_t next;
        source_name(w, p, src, sizeof src);
        rc = w->sink->get_offset(w->sink->ctx, src, &next);
        if (rc == CORE_OK) {
            offsets[i] = next;
            w->part[p].stored = next;
            w->part[p].start = next;
            CORE_LOG(CORE_LOG_NOTICE, "pipe: assigned topic=%s partition=%d resume=%" PRId64,
                     w->conf->topic, (int)p, next);
        } else if (rc == CORE_ENOTFOUND) {
            offsets[i] = PIPE_OFFSET_BEGINNING;
            w->part[p].stored = -1;
            w->part[p].start = w->part[p].lo > 0 ? w->part[p].lo : 0;
            pipe_metrics_add(w->met, PIPE_M_REBUILDS, 1);
            CORE_LOG(CORE_LOG_NOTICE,
                     "pipe: assigned topic=%s partition=%d resume=beginning (no state here: "
                     "rebuilding)",
                     w->conf->topic, (int)p);
        } else {
            CORE_LOG(CORE_LOG_ERR, "pipe: offset-read-failed source=%s err=\"%s\"", src,
                     core_strerror(rc));
            w->failed = rc;
            offsets[i] = PIPE_OFFSET_END; /* nothing is applied: the loop stops first */
        }
        w->part[p].assigned = 1;
        w->part[p].fresh = 2;
    }
    w->recount = 1; /* partitions may have been added: the check needs the count */
    update_gauges(w);
}

static void on_revoke(void *opaque, const char *topic, const int32_t *parts, int n) {
    worker *w = opaque;
    (void)topic;
    int rc = commit_batch(w);
    if (rc && !w->failed) w->failed = rc;
    for (int i = 0; i < n; i++) {
        if (parts[i] < w->np) w->part[parts[i]].assigned = 0;
        CORE_LOG(CORE_LOG_NOTICE, "pipe: revoked topic=%s partition=%d committed=%" PRId64,
                 w->conf->topic, (int)parts[i], parts[i] < w->np ? w->part[parts[i]].stored : -1);
    }
    update_gauges(w);
}

/* librdkafka statistics: topics.<topic>.partitions.<p>.hi_offset gives each partition's high
 * watermark; lag is measured against the offset committed in the sink (the truth), not Kafka's. */
static void on_stats(void *opaque, const char *json, size_t len) {
    worker *w = opaque;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root) return;
    json_t *parts = json_object_get(
        json_object_get(json_object_get(root, "topics"), w->conf->topic), "partitions");
    const char *key;
    json_t *v;
    json_object_foreach(parts, key, v) {
        long p = strtol(key, NULL, 10);
        json_t *hi = json_object_get(v, "hi_offset");
        if (p >= 0 && p < w->np && json_is_integer(hi) && json_integer_value(hi) >= 0)
            w->part[p].hi = json_integer_value(hi);
    }
    for (int32_t p = 0; p < w->np; p++)
        if (w->part[p].assigned && w->part[p].fresh > 0) w->part[p].fresh--;
    json_decref(root);
    update_gauges(w);
}

// ---------------------------------------------------------------------------------------------
// Messages

/* Send the message being handled to the dead-letter topic: its key, value and headers, then
 * trail's: trail.reason (what is wrong, for people), trail.reason.code (invalid, rejected,
 * key_mismatch, wrong_partition), and where it came from. */
static int dead_letter(worker *w, const pipe_msg *m, const char *code, const char *reason) {
    char part[16], off[24];
    snprintf(part, sizeof part, "%d", (int)m->partition);
    snprintf(off, sizeof off, "%" PRId64, m->offset);
    const pipe_header trail_h[5] = {{"trail.reason", reason, strlen(reason)},
                                    {"trail.reason.code", code, strlen(code)},
                                    {"trail.source.topic", m->topic, strlen(m->topic)},
                                    {"trail.source.partition", part, strlen(part)},
                                    {"trail.source.offset", off, strlen(off)}};
    size_t ns = pipe_consumer_headers(w->cons, NULL, 0);
    if (ns + 5 > w->hdrs_cap) {
        pipe_header *h = core_realloc(w->hdrs, (ns + 5) * sizeof(*h));
        if (!h) return CORE_ENOMEM;
        w->hdrs = h;
        w->hdrs_cap = ns + 5;
    }
    ns = pipe_consumer_headers(w->cons, w->hdrs, ns);
    memcpy(w->hdrs + ns, trail_h, sizeof trail_h);
    int rc = pipe_producer_send(w->dlq, w->dlq_topic, -1, m->key, m->key_len, m->payload, m->len,
                                w->hdrs, ns + 5, m->ts_ms > 0 ? m->ts_ms : 0, NULL);
    if (rc) return rc;
    w->n_dlq++;
    uint64_t k = pipe_metrics_get(w->met, PIPE_M_DEAD_LETTERED);
    pipe_metrics_add(w->met, PIPE_M_DEAD_LETTERED, 1);
    if (k < 100 || k % 1000 == 0)
        CORE_LOG(CORE_LOG_NOTICE,
                 "pipe: dead-letter topic=%s partition=%d offset=%" PRId64 " to=%s code=%s "
                 "reason=\"%s\"",
                 m->topic, (int)m->partition, m->offset, w->dlq_topic, code, reason);
    return CORE_OK;
}

/* The key for a log line: quoted when short and printable, else its length. */
static void key_show(const pipe_msg *m, char *buf, size_t cap) {
    int printable = m->key && m->key_len <= 40;
    for (size_t i = 0; printable && i < m->key_len; i++)
        printable =
            ((const unsigned char *)m->key)[i] >= 0x20 && ((const unsigned char *)m->key)[i] < 0x7f;
    if (!m->key)
        snprintf(buf, cap, "(none)");
    else if (printable)
        snprintf(buf, cap, "'%.*s'", (int)m->key_len, (const char *)m->key);
    else
        snprintf(buf, cap, "(%zu bytes)", m->key_len);
}

/* NULL if m is where `trail produce` would have put ev; else the reason code, with why filled.
 * The key must be ev's decimal user_id, byte for byte, and map to m's partition. */
static const char *misrouted(const worker *w, const pipe_msg *m, const sch_event *ev, char *why,
                             size_t cap) {
    char want[24], shown[64];
    int k = snprintf(want, sizeof want, "%" PRIu64, ev->user_id);
    if (!m->key || m->key_len != (size_t)k || memcmp(m->key, want, (size_t)k) != 0) {
        key_show(m, shown, sizeof shown);
        snprintf(why, cap, "key_mismatch: key %s is not the event's user_id %s", shown, want);
        return "key_mismatch";
    }
    int32_t p = pipe_partition_of(w->conf->partitioner, m->key, m->key_len, w->nparts);
    if (p != m->partition) {
        snprintf(why, cap,
                 "wrong_partition: key '%s' maps to partition %d of %d under %s, not %d (do the "
                 "producers use another partitioner? see --partitioner)",
                 want, (int)p, (int)w->nparts, pipe_partitioner_name(w->conf->partitioner),
                 (int)m->partition);
        return "wrong_partition";
    }
    return NULL;
}

/* Count a misrouted message and act as on_misrouted says: 1 it was dead-lettered, 0 apply it, or
 * an error (CORE_EINVAL with w->why under PIPE_MISROUTED_FAIL). */
static int misrouted_act(worker *w, const pipe_msg *m, const char *code, const char *why) {
    uint64_t k = pipe_metrics_get(w->met, PIPE_M_MISROUTED_KEY) +
                 pipe_metrics_get(w->met, PIPE_M_MISROUTED_PARTITION);
    pipe_metrics_add(
        w->met, strcmp(code, "key_mismatch") ? PIPE_M_MISROUTED_PARTITION : PIPE_M_MISROUTED_KEY,
        1);
    if (w->conf->on_misrouted == PIPE_MISROUTED_FAIL) {
        snprintf(w->why, sizeof w->why,
                 "misrouted message %s/%d@%" PRId64 ": %s (--on-misrouted "
                 "fail)",
                 w->conf->topic, (int)m->partition, m->offset, why);
        return CORE_EINVAL;
    }
    int apply = w->conf->on_misrouted == PIPE_MISROUTED_APPLY;
    if (k < 10 || k % 10000 == 0)
        CORE_LOG(CORE_LOG_WARNING, "pipe: misrouted partition=%d offset=%" PRId64 " %s (%s)",
                 (int)m->partition, m->offset, why,
                 apply ? "applied: --on-misrouted apply" : "dead-lettered");
    if (apply) return 0;
    int rc = dead_letter(w, m, code, why);
    return rc ? rc : 1;
}

static int handle(worker *w, const pipe_msg *m) {
    const pipe_sink *s = w->sink;
    int32_t p = m->partition;
    if (p < 0 || p >= w->np || !w->part[p].assigned) return CORE_OK; /* stale after a revoke */
    if ((w->part[p].stored >= 0 && m->offset < w->part[p].stored) ||
        (w->part[p].pending >= 0 && m->offset < w->part[p].pending))
        return CORE_OK; /* already applied: never twice */
    pipe_metrics_add(w->met, PIPE_M_CONSUMED, 1);
    int rc = CORE_OK;
    if (!w->open) {
        if ((rc = s->begin(s->ctx)) != CORE_OK) return rc;
        w->open = 1;
        w->t_open_ns = core_now_ns();
    }
    int64_t ts = -1, recv = -1; /* freshness is measured for applied events only */
    uint64_t uid = 0;
    sch_event ev;
    char err[256];
    const char *code;
    if (!m->payload) { /* a null value (tombstone): nothing to apply, nothing wrong */
        pipe_metrics_add(w->met, PIPE_M_TOMBSTONES, 1);
        w->n_skip++;
    } else if (sch_event_decode(&ev, m->payload, m->len, err, sizeof err) != CORE_OK) {
        rc = dead_letter(w, m, "invalid", err);
    } else if ((code = misrouted(w, m, &ev, err, sizeof err)) != NULL &&
               (rc = misrouted_act(w, m, code, err)) != 0) {
        if (rc > 0) rc = CORE_OK; /* dead-lettered */
    } else {
        rc = s->apply(s->ctx, &ev);
        if (rc == CORE_EINVAL || rc == CORE_ERANGE || rc == CORE_EFORMAT) {
            snprintf(err, sizeof err, "rejected by the encoder: %s", core_strerror(rc));
            rc = dead_letter(w, m, "rejected", err);
        } else {
            ts = m->ts_ms;
            recv = w->t_recv_ns;
            uid = ev.user_id;
        }
    }
    if (rc) return rc;
    w->part[p].pending = m->offset + 1;
    w->ts[w->n] = ts;
    w->uid[w->n] = uid;
    w->recv_ns[w->n++] = recv;
    return CORE_OK;
}

static void progress(worker *w, int64_t t0, int final) {
    int64_t total = 0, done = 0;
    for (int32_t p = 0; p < w->np; p++) {
        if (!w->part[p].assigned || w->part[p].end <= w->part[p].start) continue;
        total += w->part[p].end - w->part[p].start;
        int64_t at = w->part[p].stored > w->part[p].start ? w->part[p].stored : w->part[p].start;
        done += (at < w->part[p].end ? at : w->part[p].end) - w->part[p].start;
    }
    if (!total && !final) return; /* nothing assigned yet */
    double secs = (double)(core_now_ns() - t0) / 1e9;
    double rate = secs > 0 ? (double)pipe_metrics_get(w->met, PIPE_M_APPLIED) / secs : 0;
    double frac = total ? (double)done / (double)total : 1.0;
    if (w->conf->progress == 2) {
        char bar[41];
        int k = (int)(frac * 40);
        for (int i = 0; i < 40; i++)
            bar[i] = i < k ? '#' : '.';
        bar[40] = 0;
        fprintf(stderr, "\r[%s] %5.1f%% %" PRId64 "/%" PRId64 " %.0f ev/s dlq %" PRIu64 "%s", bar,
                100 * frac, done, total, rate, pipe_metrics_get(w->met, PIPE_M_DEAD_LETTERED),
                final ? "\n" : "");
    } else {
        fprintf(stderr,
                "encode: progress done=%" PRId64 " of=%" PRId64 " rate=%.0f dlq=%" PRIu64 "\n",
                done, total, rate, pipe_metrics_get(w->met, PIPE_M_DEAD_LETTERED));
    }
}

// ---------------------------------------------------------------------------------------------
// The loop

/* The checks of conf that need no broker; the partitioner is shown in the metrics. */
static int conf_check(const pipe_worker_conf *conf, pipe_metrics *met, char *errstr,
                      size_t errstr_size) {
    if (!conf->stop) { /* the only way to drain and exit: required */
        snprintf(errstr, errstr_size, "worker conf: stop flag missing");
        return CORE_EINVAL;
    }
    if (conf->partitioner == PIPE_PART_RANDOM) {
        snprintf(errstr, errstr_size,
                 "partitioner random: no key decides a message's partition, "
                 "so a user's events would spread over every worker; name the producers' keyed "
                 "partitioner");
        return CORE_EINVAL;
    }
    int rc = pipe_props_check(conf->props,
                              PIPE_CLIENT_CONSUMER | PIPE_CLIENT_PRODUCER | PIPE_CLIENT_WORKER,
                              conf->brokers, errstr, errstr_size);
    if (rc) return rc;
    pipe_metrics_set_partitioner(met, pipe_partitioner_name(conf->partitioner));
    return CORE_OK;
}

/* The open batch's arrays, the dead-letter producer, the consumer (props: its properties, freed
 * by the caller) and the topic's partitions, each with its watermarks at start. */
static int worker_open(worker *w, pipe_props *props, char *errstr, size_t errstr_size) {
    const pipe_worker_conf *conf = w->conf;
    size_t n = conf->batch_max ? conf->batch_max : 1;
    int np = 0, rc;
    snprintf(w->dlq_topic, sizeof w->dlq_topic, "%s", conf->dlq_topic ? conf->dlq_topic : "");
    if (!conf->dlq_topic) snprintf(w->dlq_topic, sizeof w->dlq_topic, "%s.dlq", conf->topic);
    if (!(w->ts = core_calloc(n, sizeof(*w->ts))) ||
        !(w->recv_ns = core_calloc(n, sizeof(*w->recv_ns))) ||
        !(w->uid = core_calloc(n, sizeof(*w->uid))))
        return CORE_ENOMEM;
    if (pipe_props_add(props, "consumer.statistics.interval.ms", "1000")) return CORE_ENOMEM;
    for (size_t i = 0; conf->props && i < conf->props->n; i++)
        if (pipe_props_add(props, conf->props->kv[2 * i], conf->props->kv[2 * i + 1]))
            return CORE_ENOMEM;

    if (pipe_producer_new(&w->dlq, conf->brokers, conf->props, errstr, errstr_size))
        return CORE_EKAFKA;
    pipe_consumer_cbs cbs = {on_assign, on_revoke, on_stats, w};
    if (pipe_consumer_new(&w->cons, conf->brokers, conf->group, conf->topic, props, &cbs, errstr,
                          errstr_size))
        return CORE_EKAFKA;
    if (pipe_consumer_partition_count(w->cons, conf->topic, 10000, &np)) {
        snprintf(errstr, errstr_size, "topic %s: no metadata (does it exist? is %s reachable?)",
                 conf->topic, conf->brokers);
        return CORE_EKAFKA;
    }
    if ((rc = grow(w, np)) != CORE_OK) return rc;
    w->nparts = np;
    for (int32_t p = 0; p < np; p++) {
        if (pipe_consumer_watermarks(w->cons, conf->topic, p, 10000, &w->part[p].lo,
                                     &w->part[p].end)) {
            snprintf(errstr, errstr_size, "topic %s partition %d: watermarks unavailable",
                     conf->topic, (int)p);
            return CORE_EKAFKA;
        }
    }
    return CORE_OK;
}

/* How long a poll may wait: until the open batch is due, and not at all while tier 2 has work. */
static int poll_timeout(const worker *w) {
    int timeout = 200;
    if (w->open) {
        int64_t left = (int64_t)w->conf->batch_ms - (core_now_ns() - w->t_open_ns) / 1000000;
        timeout = left < 0 ? 0 : (int)left;
    }
    if (w->lagging) timeout = 0; /* tier 2 has work: only take what is waiting */
    return timeout;
}

/* A tier-2 slice of at most budget_ns while users lag (none when the budget is gone). */
static int tier2_slice(worker *w, int64_t budget_ns, char *errstr, size_t errstr_size) {
    if (!w->lagging || budget_ns <= 0) return CORE_OK;
    int rc = catch_up(w, budget_ns);
    if (rc != CORE_OK) snprintf(errstr, errstr_size, "bucket sums catch-up: %s", core_strerror(rc));
    return rc;
}

/* Nothing waiting: a tier-2 slice, ending before the batch is due. */
static int idle_slice(worker *w, char *errstr, size_t errstr_size) {
    int64_t budget = TIER2_SLICE_MS * 1000000ll;
    if (w->open) { /* the slice's commit too must end before the batch is due */
        int64_t due =
            w->t_open_ns + (int64_t)w->conf->batch_ms * 1000000 - core_now_ns() - w->t2_over_ns;
        if (due < budget) budget = due;
    }
    return tier2_slice(w, budget, errstr, errstr_size);
}

/* After an assignment, before its first message: the topic's partition count again. */
static void recount(worker *w) {
    int n = 0;
    w->recount = 0;
    if (pipe_consumer_partition_count(w->cons, w->conf->topic, 10000, &n) == CORE_OK &&
        n != w->nparts) {
        CORE_LOG(CORE_LOG_NOTICE, "pipe: partitions topic=%s was=%d now=%d", w->conf->topic,
                 (int)w->nparts, n);
        w->nparts = n;
    }
}

/* A consume error: counted and retried, unless it is fatal. */
static int kafka_error(worker *w, const pipe_msg *m, char *errstr, size_t errstr_size) {
    if (m->err_fatal) {
        snprintf(errstr, errstr_size, "fatal Kafka error: %s", m->errstr);
        return CORE_EKAFKA;
    }
    pipe_metrics_add(w->met, PIPE_M_KAFKA_ERRORS, 1);
    if (w->n_kafka_err++ % 100 == 0)
        CORE_LOG(CORE_LOG_WARNING, "pipe: consume-error partition=%d err=\"%s\" (retrying)",
                 (int)m->partition, m->errstr);
    return CORE_OK;
}

/* The open batch commits once it is full or has been open batch_ms. */
static int commit_if_due(worker *w, char *errstr, size_t errstr_size) {
    if (!w->open || (w->n < w->conf->batch_max &&
                     (core_now_ns() - w->t_open_ns) / 1000000 < (int64_t)w->conf->batch_ms))
        return CORE_OK;
    int rc = commit_batch(w);
    if (rc != CORE_OK) {
        snprintf(errstr, errstr_size, "batch commit: %s", core_strerror(rc));
        return rc;
    }
    /* and a tier-2 slice, messages waiting or not (no batch is open yet): a worker that is never
     * idle still brings the sums along, and a longer one when they fall behind (the next batch
     * opens later: consuming yields to the sums, not the reverse) */
    int64_t slice = sums_age_ns(&w->pend, core_now_ns()) > BEHIND_MS * 1000000ll ? TIER2_BEHIND_MS
                                                                                 : TIER2_SLICE_MS;
    return tier2_slice(w, slice * 1000000ll, errstr, errstr_size);
}

/* Poll, apply and commit until the stop flag (or, with until_end, until every partition reached
 * its end): CORE_OK, or what stopped it, with errstr filled. */
static int run_loop(worker *w, int64_t t0, char *errstr, size_t errstr_size) {
    const pipe_worker_conf *conf = w->conf;
    int64_t t_progress = t0;
    int rc = CORE_OK;
    while (!*conf->stop) {
        if (conf->until_end && !w->open && !w->lagging && all_reached(w)) break;
        pipe_msg m;
        int k = pipe_consumer_poll(w->cons, poll_timeout(w), &m);
        w->t_recv_ns = core_now_ns();
        if (!k && w->lagging && (rc = idle_slice(w, errstr, errstr_size)) != CORE_OK) break;
        if (w->failed) {
            rc = w->failed;
            break;
        }
        if (w->recount) recount(w);
        if (k && m.err) {
            if ((rc = kafka_error(w, &m, errstr, errstr_size)) != CORE_OK) break;
        } else if (k && (rc = handle(w, &m)) != CORE_OK) {
            if (w->why[0])
                snprintf(errstr, errstr_size, "%s", w->why);
            else
                snprintf(errstr, errstr_size, "applying %s/%d@%" PRId64 ": %s", conf->topic,
                         (int)m.partition, m.offset, core_strerror(rc));
            break;
        }
        if ((rc = commit_if_due(w, errstr, errstr_size)) != CORE_OK) break;
        if (conf->progress &&
            core_now_ns() - t_progress > (conf->progress == 2 ? 200 : 2000) * 1000000ll) {
            progress(w, t0, 0);
            t_progress = core_now_ns();
        }
    }
    return rc;
}

/* Drain: the open batch commits (or aborts on a store failure: rc is the loop's), then the
 * bucket sums: a stopped worker leaves every tier caught up (a killed one leaves lag marks,
 * which the next run's tier 2 takes up). */
static int drain(worker *w, int rc, char *errstr, size_t errstr_size) {
    if (w->open) {
        if (rc == CORE_OK) {
            if ((rc = commit_batch(w)) != CORE_OK)
                snprintf(errstr, errstr_size, "final batch commit: %s", core_strerror(rc));
        } else {
            w->sink->abort(w->sink->ctx);
            batch_reset(w);
        }
    }
    while (rc == CORE_OK && w->lagging && w->cons)
        if ((rc = catch_up(w, INT64_MAX)) != CORE_OK)
            snprintf(errstr, errstr_size, "final bucket sums catch-up: %s", core_strerror(rc));
    return rc;
}

static void log_start(const worker *w) {
    const pipe_worker_conf *conf = w->conf;
    CORE_LOG(CORE_LOG_NOTICE,
             "pipe: start topic=%s group=%s partitions=%d dlq=%s batch_max=%u batch_ms=%u "
             "until_end=%d partitioner=%s on_misrouted=%s",
             conf->topic, conf->group, (int)w->nparts, w->dlq_topic, conf->batch_max,
             conf->batch_ms, conf->until_end, pipe_partitioner_name(conf->partitioner),
             conf->on_misrouted == PIPE_MISROUTED_APPLY  ? "apply"
             : conf->on_misrouted == PIPE_MISROUTED_FAIL ? "fail"
                                                         : "dlq");
}

static void log_stop(const worker *w, int rc) {
    const pipe_metrics *met = w->met;
    CORE_LOG(CORE_LOG_NOTICE,
             "pipe: stop reason=%s consumed=%" PRIu64 " applied=%" PRIu64 " dead_lettered=%" PRIu64
             " misrouted=%" PRIu64 " tombstones=%" PRIu64,
             rc               ? core_strerror(rc)
             : *w->conf->stop ? "signal"
                              : "until-end",
             pipe_metrics_get(met, PIPE_M_CONSUMED), pipe_metrics_get(met, PIPE_M_APPLIED),
             pipe_metrics_get(met, PIPE_M_DEAD_LETTERED),
             pipe_metrics_get(met, PIPE_M_MISROUTED_KEY) +
                 pipe_metrics_get(met, PIPE_M_MISROUTED_PARTITION),
             pipe_metrics_get(met, PIPE_M_TOMBSTONES));
}

/* Leave the group, wait for the dead letters, free w: rc, or what failed in the closing. */
static int worker_close(worker *w, pipe_props *props, int rc) {
    pipe_consumer_close(w->cons); /* revoke callback: nothing open by now */
    if (w->failed && rc == CORE_OK) rc = w->failed;
    if (w->dlq && pipe_producer_flush(w->dlq, 10000, NULL) != CORE_OK && rc == CORE_OK)
        rc = CORE_EKAFKA;
    pipe_producer_destroy(w->dlq);
    pipe_props_free(props);
    core_free(w->part);
    core_free(w->ts);
    core_free(w->recv_ns);
    core_free(w->uid);
    core_free(w->pend.slot);
    core_free(w->pend.ent);
    core_free(w->hdrs);
    return rc;
}

int pipe_worker_run(const pipe_worker_conf *conf, const pipe_sink *sink, pipe_metrics *met,
                    char *errstr, size_t errstr_size) {
    worker w;
    memset(&w, 0, sizeof w);
    w.conf = conf;
    w.sink = sink;
    w.met = met;
    pipe_props props = {0};
    int rc = conf_check(conf, met, errstr, errstr_size);
    if (rc == CORE_OK) rc = worker_open(&w, &props, errstr, errstr_size);
    if (rc == CORE_OK) {
        log_start(&w);
        batch_reset(&w);
        w.lagging = sink->catch_up != NULL; /* a killed run may have left lag marks: tier 2 looks */
        int64_t t0 = core_now_ns();
        rc = run_loop(&w, t0, errstr, errstr_size);
        rc = drain(&w, rc, errstr, errstr_size);
        if (conf->progress) progress(&w, t0, 1);
        log_stop(&w, rc);
    }
    return worker_close(&w, &props, rc);
}
