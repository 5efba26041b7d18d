/* trn_samples.c: point-in-time samples: load events, group behaviors per user, label, split. */
#include "trn_samples.h"

#include "core_alloc.h"
#include "core_err.h"
#include "core_util.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BAD_SHOWN 5

void trn_data_conf_default(trn_data_conf *conf) {
    memset(conf, 0, sizeof *conf);
    conf->protocol = TRN_PROTO_AUTO;
    conf->negatives = 1;
    conf->seed = 1;
    conf->train_frac = 0.8;
    conf->valid_frac = 0.1;
}

const char *trn_proto_name(int p) {
    static const char *names[] = {"auto", "impressions", "next", "taobao"};
    return p >= 0 && p <= TRN_PROTO_TAOBAO ? names[p] : "?";
}

int trn_proto_parse(const char *s) {
    for (int p = 0; p <= TRN_PROTO_TAOBAO; p++)
        if (!strcmp(s, trn_proto_name(p))) return p;
    return -1;
}

void trn_data_destroy(trn_data *d) {
    if (!d) return;
    core_free(d->user_id);
    core_free(d->beh_start);
    core_free(d->beh);
    core_free(d->samples);
    core_free(d);
}

// ---------------------------------------------------------------------------------------------
// Sorting helpers: every key ends with the event's file index, so ties keep file order.

typedef struct ev_key {
    uint64_t user;
    int64_t ts;
    size_t idx;
} ev_key;

static int by_user_ts(const void *a, const void *b) {
    const ev_key *x = a, *y = b;
    if (x->user != y->user) return x->user < y->user ? -1 : 1;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

typedef struct s_key {
    int64_t ts;
    size_t idx;   /* source event's file index */
    uint32_t sub; /* 0 = the positive or impression, 1.. = its negatives */
    uint32_t pad;
    trn_sample s;
} s_key;

static int by_time(const void *a, const void *b) {
    const s_key *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    if (x->idx != y->idx) return x->idx < y->idx ? -1 : 1;
    return x->sub < y->sub ? -1 : x->sub > y->sub;
}

typedef struct id_count {
    uint64_t item, cat;
    uint64_t count;
} id_count;

static int by_item(const void *a, const void *b) {
    const id_count *x = a, *y = b;
    return x->item < y->item ? -1 : x->item > y->item;
}

/* Number of entries of beh[0..n) with ts < t (they are sorted by ts). */
static uint32_t count_before(const sch_behavior *beh, size_t n, int64_t t) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (beh[mid].ts < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (uint32_t)lo;
}

static void user_index(const trn_data *d, uint64_t uid, uint32_t *out) {
    uint32_t lo = 0, hi = d->n_users;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (d->user_id[mid] < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    *out = lo;
}

// ---------------------------------------------------------------------------------------------

/* Users of every event into d->user_id; behaviors grouped by user into d->beh, each user's in (ts,
 * file order). nk: the behaviors among the n events. *keys_out (the caller frees it) then lists
 * the behaviors' keys, aligned with d->beh: the next-behavior labeler reads their file order. */
static int group_behaviors(trn_data *d, const sch_event *ev, size_t n, size_t nk,
                           ev_key **keys_out) {
    ev_key *keys = *keys_out = core_malloc(sizeof(ev_key) * (n ? n : 1));
    if (!keys) return CORE_ENOMEM;
    for (size_t i = 0; i < n; i++)
        keys[i] = (ev_key){ev[i].user_id, ev[i].ts, i};
    qsort(keys, n, sizeof *keys, by_user_ts);
    d->beh = core_malloc(sizeof(sch_behavior) * (nk ? nk : 1));
    if (!d->beh) return CORE_ENOMEM;
    uint32_t nu = 0;
    for (size_t i = 0; i < n; i++)
        nu += i == 0 || keys[i].user != keys[i - 1].user;
    d->user_id = core_malloc(sizeof(uint64_t) * (nu ? nu : 1));
    d->beh_start = core_malloc(sizeof(size_t) * (nu + 1));
    if (!d->user_id || !d->beh_start) return CORE_ENOMEM;
    d->n_users = 0;
    size_t nb = 0, nbk = 0;
    for (size_t i = 0; i < n; i++) {
        const sch_event *e = &ev[keys[i].idx];
        if (i == 0 || keys[i].user != keys[i - 1].user) {
            d->user_id[d->n_users] = keys[i].user;
            d->beh_start[d->n_users++] = nb;
        }
        if (e->flags & SCH_F_LABEL) continue;
        keys[nbk++] = keys[i]; /* keys now lists behaviors only, aligned with beh */
        d->beh[nb++] = (sch_behavior){e->item_id, e->category_id, e->ts, e->action};
    }
    d->beh_start[d->n_users] = nb;
    d->n_beh = nb;
    return CORE_OK;
}

/* impressions: a sample per labeled event (n_imp of the n), its history the user's behaviors
 * before it. *sk_out: the caller frees it. */
static int label_impressions(const trn_data *d, const sch_event *ev, size_t n, size_t n_imp,
                             s_key **sk_out, size_t *ns) {
    s_key *sk = *sk_out = core_malloc(sizeof(s_key) * (n_imp ? n_imp : 1));
    if (!sk) return CORE_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const sch_event *e = &ev[i];
        if (!(e->flags & SCH_F_LABEL)) continue;
        uint32_t u = 0;
        trn_sample s = {0};
        user_index(d, e->user_id, &u); /* every event's user is listed */
        s.user = u;
        s.hist =
            count_before(d->beh + d->beh_start[u], d->beh_start[u + 1] - d->beh_start[u], e->ts);
        s.ts = e->ts;
        s.item_id = e->item_id;
        s.category_id = e->category_id;
        s.label = e->label;
        s.has_prob = (e->flags & SCH_F_PROB) != 0;
        s.prob = s.has_prob ? e->prob : NAN;
        sk[(*ns)++] = (s_key){e->ts, i, 0, 0, s};
    }
    return CORE_OK;
}

/* The negatives' distribution: the global popularity, behavior counts per item, each item with its
 * first-seen category. */
typedef struct popularity {
    id_count *items; /* (n) by item */
    size_t n;
    double *cdf; /* (n) the counts' running sums */
    double acc;  /* all behaviors */
} popularity;

static void popularity_free(popularity *p) {
    core_free(p->items);
    core_free(p->cdf);
}

/* From the nk behaviors among the n events. */
static int popularity_build(popularity *p, const sch_event *ev, size_t n, size_t nk) {
    id_count *items = p->items = core_malloc(sizeof(id_count) * (nk ? nk : 1));
    size_t n_items = 0;
    if (!items) return CORE_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (!(ev[i].flags & SCH_F_LABEL))
            items[n_items++] = (id_count){ev[i].item_id, ev[i].category_id, 1};
    qsort(items, n_items, sizeof *items, by_item);
    size_t m = 0;
    for (size_t i = 0; i < n_items; i++) {
        if (m && items[m - 1].item == items[i].item)
            items[m - 1].count++;
        else
            items[m++] = items[i];
    }
    n_items = p->n = m;
    for (size_t i = n; i-- > 0;) { /* overwrite with the earliest occurrence's category */
        if (ev[i].flags & SCH_F_LABEL) continue;
        id_count key = {ev[i].item_id, 0, 0};
        id_count *it = bsearch(&key, items, n_items, sizeof *items, by_item);
        it->cat = ev[i].category_id;
    }
    p->cdf = core_malloc(sizeof(double) * (n_items ? n_items : 1));
    if (!p->cdf) return CORE_ENOMEM;
    double acc = 0;
    for (size_t i = 0; i < n_items; i++)
        p->cdf[i] = acc += (double)items[i].count;
    p->acc = acc;
    return CORE_OK;
}

/* A negative for a positive of item: an index into p->items drawn by popularity, redrawn (up to
 * 16 draws) while it is the positive's item. */
static size_t draw_negative(const popularity *p, core_rng *rng, uint64_t item) {
    size_t pick = 0;
    for (int tries = 0; tries < 16; tries++) {
        double x = core_rng_uniform(rng) * p->acc;
        size_t lo = 0, hi = p->n - 1;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (p->cdf[mid] > x)
                hi = mid;
            else
                lo = mid + 1;
        }
        pick = lo;
        if (p->items[pick].item != item) break;
    }
    return pick;
}

/* next (and taobao): every behavior after a user's first (nk behaviors in d, keys aligned with
 * them) is a positive, with k negatives drawn from pop, each with its item's category.
 * *sk_out: the caller frees it. */
static int label_next(const trn_data *d, const ev_key *keys, size_t nk, const popularity *pop,
                      uint32_t k, uint64_t seed, s_key **sk_out, size_t *ns) {
    s_key *sk = *sk_out = core_malloc(sizeof(s_key) * (nk * (1 + k) + 1));
    if (!sk) return CORE_ENOMEM;
    core_rng rng;
    core_rng_seed(&rng, seed ^ 0x5A3E1E5ull);
    for (uint32_t u = 0; u < d->n_users; u++) {
        const sch_behavior *b = d->beh + d->beh_start[u];
        size_t len = d->beh_start[u + 1] - d->beh_start[u];
        for (size_t j = 1; j < len; j++) {
            trn_sample s = {0};
            s.user = u;
            s.hist = count_before(b, len, b[j].ts);
            s.ts = b[j].ts;
            s.item_id = b[j].item_id;
            s.category_id = b[j].category_id;
            s.label = 1;
            s.prob = NAN;
            size_t src = keys[d->beh_start[u] + j].idx;
            sk[(*ns)++] = (s_key){s.ts, src, 0, 0, s};
            for (uint32_t q = 0; q < k; q++) {
                size_t pick = draw_negative(pop, &rng, s.item_id);
                trn_sample neg = s;
                neg.item_id = pop->items[pick].item;
                neg.category_id = pop->items[pick].cat;
                neg.label = 0;
                sk[(*ns)++] = (s_key){s.ts, src, q + 1, 0, neg};
            }
        }
    }
    return CORE_OK;
}

/* The ns samples into d->samples sorted by (ts, file order), and the splits. */
static int samples_sort_split(trn_data *d, s_key *sk, size_t ns, const trn_data_conf *conf) {
    qsort(sk, ns, sizeof *sk, by_time);
    d->samples = core_malloc(sizeof(trn_sample) * ns);
    if (!d->samples) return CORE_ENOMEM;
    for (size_t i = 0; i < ns; i++)
        d->samples[i] = sk[i].s;
    d->n_samples = ns;
    d->split[0] = (size_t)((double)ns * conf->train_frac);
    d->split[1] = (size_t)((double)ns * (conf->train_frac + conf->valid_frac));
    if (d->split[1] > ns) d->split[1] = ns;
    return CORE_OK;
}

int trn_data_build(trn_data **out, const sch_event *ev, size_t n, const trn_data_conf *conf,
                   char *err, size_t err_size) {
    trn_data *d = core_calloc(1, sizeof *d);
    ev_key *keys = NULL;
    s_key *sk = NULL;
    popularity pop = {0};
    size_t n_imp = 0, ns = 0;
    int rc = CORE_ENOMEM;
    if (!d) return CORE_ENOMEM;
    for (size_t i = 0; i < n; i++)
        n_imp += (ev[i].flags & SCH_F_LABEL) != 0;
    d->protocol = conf->protocol != TRN_PROTO_AUTO ? conf->protocol
                  : n_imp                          ? TRN_PROTO_IMPRESSIONS
                                                   : TRN_PROTO_NEXT;
    uint32_t k = d->protocol == TRN_PROTO_TAOBAO ? 1 : conf->negatives;
    size_t nk = n - n_imp;
    if (group_behaviors(d, ev, n, nk, &keys)) goto fail;
    if (d->protocol == TRN_PROTO_IMPRESSIONS) {
        if (label_impressions(d, ev, n, n_imp, &sk, &ns)) goto fail;
    } else if (popularity_build(&pop, ev, n, nk) ||
               label_next(d, keys, nk, &pop, k, conf->seed, &sk, &ns)) {
        goto fail;
    }
    if (ns == 0) {
        snprintf(err, err_size, "protocol %s: no samples (%zu behaviors, %zu impressions)",
                 trn_proto_name(d->protocol), nk, n_imp);
        rc = CORE_EINVAL;
        goto fail;
    }
    if (samples_sort_split(d, sk, ns, conf)) goto fail;
    *out = d;
    d = NULL;
    rc = CORE_OK;
fail:
    if (rc == CORE_ENOMEM) snprintf(err, err_size, "samples: out of memory");
    core_free(keys);
    core_free(sk);
    popularity_free(&pop);
    trn_data_destroy(d);
    return rc;
}

int trn_data_load(trn_data **out, const char *path, const trn_data_conf *conf, char *err,
                  size_t err_size) {
    sch_event *ev;
    size_t n;
    uint64_t bad;
    int rc = trn_events_read(path, &ev, &n, &bad, err, err_size);
    if (rc) return rc;
    rc = trn_data_build(out, ev, n, conf, err, err_size);
    if (rc == CORE_OK) (*out)->bad_records = bad;
    core_free(ev);
    return rc;
}

int trn_events_read(const char *path, sch_event **out, size_t *n_out, uint64_t *bad_out, char *err,
                    size_t err_size) {
    trn_read_stats st;
    int rc = trn_events_read_stats(path, out, n_out, &st, err, err_size);
    if (rc == CORE_OK) *bad_out = st.bad;
    return rc;
}

/* Did a rejected record carry a label? JSON: an object with a "label" key, whatever else is
 * wrong with it; binary: the label-present flag. */
static int rejected_is_labeled(const char *rec, size_t len, int binary) {
    if (binary) return len >= 4 && (rec[3] & 1);
    json_error_t je;
    json_t *o = json_loadb(rec, len, JSON_DISABLE_EOF_CHECK, &je);
    int labeled = o && json_is_object(o) && json_object_get(o, "label") != NULL;
    json_decref(o);
    return labeled;
}

int trn_auto_check(const trn_read_stats *st, const sch_event *ev, size_t n, char *msg,
                   size_t msg_size) {
    size_t n_labeled = 0;
    for (size_t i = 0; i < n && !n_labeled; i++)
        n_labeled += (ev[i].flags & SCH_F_LABEL) != 0;
    if (st->bad_labeled > 0 && n_labeled == 0) {
        snprintf(msg, msg_size,
                 "--protocol auto: all %llu labeled records (impressions) were rejected (first: "
                 "%s), so auto would train the next-behavior protocol instead; fix the records, "
                 "or pass --protocol next to train on the behaviors",
                 (unsigned long long)st->bad_labeled, st->bad_labeled_why);
        return 1;
    }
    if (st->records > 0 && (double)st->bad > 0.01 * (double)st->records) {
        snprintf(msg, msg_size,
                 "--protocol auto: %llu of %llu records (%.1f%%) were rejected, more than 1%%%s%s; "
                 "fix the file, or name the protocol",
                 (unsigned long long)st->bad, (unsigned long long)st->records,
                 100.0 * (double)st->bad / (double)st->records,
                 st->bad_labeled ? "; labeled among them, first: " : "",
                 st->bad_labeled ? st->bad_labeled_why : "");
        return 1;
    }
    return 0;
}

int trn_events_read_stats(const char *path, sch_event **out, size_t *n_out, trn_read_stats *st,
                          char *err, size_t err_size) {
    sch_reader *r = NULL;
    sch_event *ev = NULL;
    size_t n = 0, cap = 0;
    uint64_t bad = 0, recno;
    const char *rec;
    size_t len;
    char why[256];
    int rc;
    memset(st, 0, sizeof *st);
    if ((rc = sch_reader_open(&r, path, SCH_MAX_JSON_BYTES, err, err_size))) return rc;
    for (;;) {
        rc = sch_reader_next(r, &rec, &len, &recno);
        if (rc == 0) break;
        if (rc == CORE_EIO) {
            snprintf(err, err_size, "%s: read error after record %llu", path,
                     (unsigned long long)recno);
            goto fail;
        }
        if (core_grow(&ev, &cap, n + 1, sizeof *ev, 65536)) {
            rc = CORE_ENOMEM;
            snprintf(err, err_size, "%s: out of memory at record %llu", path,
                     (unsigned long long)recno);
            goto fail;
        }
        if (rc == 1 && sch_event_decode(&ev[n], rec, len, why, sizeof why) == CORE_OK) {
            n++;
            continue;
        }
        if (rc != 1) snprintf(why, sizeof why, "%s", core_strerror(rc));
        if (rc == 1 && rejected_is_labeled(rec, len, sch_reader_is_binary(r)) &&
            st->bad_labeled++ == 0)
            snprintf(st->bad_labeled_why, sizeof st->bad_labeled_why, "record %llu: %.120s",
                     (unsigned long long)recno, why);
        if (bad++ < MAX_BAD_SHOWN)
            fprintf(stderr, "trail: %s: record %llu skipped: %s\n", path, (unsigned long long)recno,
                    why);
        if (rc == CORE_EFORMAT) break; /* a truncated binary tail ends the file */
    }
    sch_reader_close(r);
    r = NULL;
    st->bad = bad;
    st->records = n + bad;
    if (bad > MAX_BAD_SHOWN)
        fprintf(stderr, "trail: %s: %llu bad records skipped in all\n", path,
                (unsigned long long)bad);
    if (n == 0) {
        snprintf(err, err_size, "%s: no valid event records", path);
        rc = CORE_EFORMAT;
        goto fail;
    }
    *out = ev;
    *n_out = n;
    return CORE_OK;
fail:
    sch_reader_close(r);
    core_free(ev);
    return rc;
}

const sch_behavior *trn_data_history(const trn_data *d, const trn_sample *s, uint32_t max,
                                     uint32_t *n) {
    uint32_t take = s->hist < max ? s->hist : max;
    *n = take;
    return d->beh + d->beh_start[s->user] + (s->hist - take);
}

trn_match trn_data_match(const trn_data *d, const trn_sample *s, uint32_t window) {
    uint32_t n;
    const sch_behavior *h = trn_data_history(d, s, window, &n);
    trn_match m = TRN_MATCH_NONE;
    for (uint32_t k = 0; k < n; k++) {
        if (h[k].item_id == s->item_id) return TRN_MATCH_ITEM;
        if (h[k].category_id == s->category_id) m = TRN_MATCH_CATEGORY;
    }
    return m;
}

void trn_data_split(const trn_data *d, int split, size_t *lo, size_t *hi) {
    *lo = split == 0 ? 0 : split == 1 ? d->split[0] : d->split[1];
    *hi = split == 0 ? d->split[0] : split == 1 ? d->split[1] : d->n_samples;
}

/* samples are sorted by ts: the first index whose ts is at least t */
static size_t first_at(const trn_data *d, int64_t t) {
    size_t lo = 0, hi = d->n_samples;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->samples[mid].ts < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void trn_data_split_at(trn_data *d, int64_t t_valid, int64_t t_test) {
    d->split[0] = first_at(d, t_valid);
    d->split[1] = first_at(d, t_test < t_valid ? t_valid : t_test);
}

int64_t trn_data_split_ts(const trn_data *d, int split) {
    size_t i = d->split[split == 1 ? 0 : 1];
    return i < d->n_samples ? d->samples[i].ts : INT64_MAX;
}
