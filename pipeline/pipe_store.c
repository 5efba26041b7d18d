/* pipe_store.c: the worker's sink bound to enc_store's batch API: one LMDB write transaction per
 * batch (tier 1; offsets are written with enc_batch_set_offset inside it), and the bucket sums'
 * catch-up (tier 2, enc_store_catch_up) when the store defers it (enc_store_conf.defer_sums). */
#include "pipe_store.h"

#include "core_err.h"

// ---------------------------------------------------------------------------------------------
// The sink: enc_store's batch API

static int ss_begin(void *ctx) {
    pipe_store_sink *s = ctx;
    return enc_batch_begin(s->st, &s->b);
}
static int ss_apply(void *ctx, const sch_event *ev) {
    return enc_batch_apply(((pipe_store_sink *)ctx)->b, ev);
}
static int ss_set_offset(void *ctx, const char *src, int64_t next) {
    return enc_batch_set_offset(((pipe_store_sink *)ctx)->b, src, next);
}
static int ss_commit(void *ctx) {
    pipe_store_sink *s = ctx;
    int rc = enc_batch_commit(s->b);
    s->b = NULL;
    return rc;
}
static void ss_abort(void *ctx) {
    pipe_store_sink *s = ctx;
    enc_batch_abort(s->b);
    s->b = NULL;
}
static int ss_get_offset(void *ctx, const char *src, int64_t *next) {
    return enc_store_get_offset(((pipe_store_sink *)ctx)->st, src, next);
}

static int ss_catch_up(void *ctx, int64_t budget_ns, void (*done)(void *arg, uint64_t user_id),
                       void *arg, uint64_t *left) {
    return enc_store_catch_up(((pipe_store_sink *)ctx)->st, budget_ns, done, arg, left);
}

void pipe_store_sink_init(pipe_store_sink *ss, enc_store *st, int deferred, pipe_sink *out) {
    ss->st = st;
    ss->b = NULL;
    *out = (pipe_sink){ss,        ss_begin, ss_apply,      ss_set_offset,
                       ss_commit, ss_abort, ss_get_offset, deferred ? ss_catch_up : NULL};
}
