/* test_serve_fake_store.c: TEST FAKE of the store (enc_store.h), linked into the serving tests
 * only while the real one is not built (tests/serve.cmake chooses). A fake through the module seam
 * (STYLE.md section 9), not an implementation: users live in memory, there are no buckets (views
 * carry NULL bucket sums), one rwlock stands in for LMDB's transactions. Never linked into trail.
 */
#include "core_alloc.h"
#include "core_err.h"
#include "enc_store.h"

#include <pthread.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// Store

typedef struct fake_user {
    uint64_t user_id;
    sch_behavior *beh; // (window) oldest first
    uint32_t n;
    uint64_t n_events;
} fake_user;

struct enc_store {
    enc_store_conf conf;
    pthread_rwlock_t lock;
    uint64_t encoding_version;
    uint32_t S, n_buckets, C;
    fake_user *users;
    uint32_t n_users, cap_users;
};

struct enc_batch {
    enc_store *st;
};

struct enc_reader {
    enc_store *st;
    sch_behavior *recent; // (conf.recent)
    int open;
};

void enc_store_conf_default(enc_store_conf *conf) {
    memset(conf, 0, sizeof *conf);
    conf->map_size = 1ull << 30;
    conf->map_max = 1ull << 40;
    conf->window = 10000;
    conf->recent = 64;
    conf->durable = 1;
}

int enc_store_open(enc_store **out, const enc_store_conf *conf, char *errstr, size_t errstr_size) {
    enc_store *st = core_calloc(1, sizeof *st);
    (void)errstr;
    (void)errstr_size;
    if (!st) return CORE_ENOMEM;
    st->conf = *conf;
    pthread_rwlock_init(&st->lock, NULL);
    *out = st;
    return CORE_OK;
}

void enc_store_close(enc_store *st) {
    if (!st) return;
    for (uint32_t i = 0; i < st->n_users; i++)
        core_free(st->users[i].beh);
    core_free(st->users);
    pthread_rwlock_destroy(&st->lock);
    core_free(st);
}

int enc_store_bind_model(enc_store *st, const mdl_model *m, char *errstr, size_t errstr_size) {
    (void)errstr;
    (void)errstr_size;
    if (st->encoding_version && st->encoding_version != m->encoding_version) return CORE_EMISMATCH;
    st->encoding_version = m->encoding_version;
    st->S = m->cfg.S;
    st->n_buckets = 1u << m->cfg.tau;
    st->C = m->cfg.C;
    return CORE_OK;
}

uint64_t enc_store_encoding_version(enc_store *st) {
    return st->encoding_version;
}

static fake_user *find_user(enc_store *st, uint64_t user_id) {
    for (uint32_t i = 0; i < st->n_users; i++)
        if (st->users[i].user_id == user_id) return &st->users[i];
    return NULL;
}

int enc_batch_begin(enc_store *st, enc_batch **out) {
    enc_batch *b = core_calloc(1, sizeof *b);
    if (!b) return CORE_ENOMEM;
    b->st = st;
    pthread_rwlock_wrlock(&st->lock);
    *out = b;
    return CORE_OK;
}

int enc_batch_apply(enc_batch *b, const sch_event *ev) {
    enc_store *st = b->st;
    if (ev->flags & SCH_F_LABEL) return CORE_OK;
    fake_user *u = find_user(st, ev->user_id);
    if (!u) {
        if (st->n_users == st->cap_users) {
            uint32_t cap = st->cap_users ? 2 * st->cap_users : 8;
            fake_user *nu = core_realloc(st->users, cap * sizeof *nu);
            if (!nu) return CORE_ENOMEM;
            st->users = nu;
            st->cap_users = cap;
        }
        u = &st->users[st->n_users];
        memset(u, 0, sizeof *u);
        if (!(u->beh = core_calloc(st->conf.window, sizeof *u->beh))) return CORE_ENOMEM;
        u->user_id = ev->user_id;
        st->n_users++;
    }
    if (u->n == st->conf.window) memmove(u->beh, u->beh + 1, (u->n - 1) * sizeof *u->beh), u->n--;
    u->beh[u->n++] = (sch_behavior){ev->item_id, ev->category_id, ev->ts, ev->action};
    u->n_events++;
    return CORE_OK;
}

int enc_batch_commit(enc_batch *b) {
    pthread_rwlock_unlock(&b->st->lock);
    core_free(b);
    return CORE_OK;
}

void enc_batch_abort(enc_batch *b) {
    enc_batch_commit(b);
}

int enc_reader_new(enc_store *st, enc_reader **out) {
    enc_reader *r = core_calloc(1, sizeof *r);
    if (!r) return CORE_ENOMEM;
    r->st = st;
    if (!(r->recent = core_calloc(st->conf.recent, sizeof *r->recent))) {
        core_free(r);
        return CORE_ENOMEM;
    }
    *out = r;
    return CORE_OK;
}

void enc_reader_destroy(enc_reader *r) {
    if (!r) return;
    core_free(r->recent);
    core_free(r);
}

int enc_reader_begin(enc_reader *r) {
    pthread_rwlock_rdlock(&r->st->lock);
    r->open = 1;
    return CORE_OK;
}

int enc_reader_user(enc_reader *r, uint64_t user_id, enc_user_view *out) {
    fake_user *u = find_user(r->st, user_id);
    if (!u) return CORE_ENOTFOUND;
    uint32_t k = u->n < r->st->conf.recent ? u->n : r->st->conf.recent;
    memcpy(r->recent, u->beh + (u->n - k), k * sizeof *r->recent);
    memset(out, 0, sizeof *out);
    out->user_id = user_id;
    out->encoding_version = r->st->encoding_version;
    out->S = r->st->S;
    out->n_buckets = r->st->n_buckets;
    out->C = r->st->C;
    out->window_len = u->n;
    out->recent_len = k;
    out->recent = r->recent;
    out->last_ts = u->n ? u->beh[u->n - 1].ts : 0;
    out->n_events = u->n_events;
    return CORE_OK;
}

int enc_reader_window(enc_reader *r, uint64_t user_id, sch_behavior *out, uint32_t max,
                      uint32_t *n) {
    fake_user *u = find_user(r->st, user_id);
    if (!u) return CORE_ENOTFOUND;
    uint32_t k = u->n < max ? u->n : max;
    memcpy(out, u->beh + (u->n - k), k * sizeof *out);
    *n = k;
    return CORE_OK;
}

void enc_reader_end(enc_reader *r) {
    if (r->open) pthread_rwlock_unlock(&r->st->lock);
    r->open = 0;
}
