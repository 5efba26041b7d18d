/* rank_score.c: the serving path, a thin wrapper over rank_net for one user and up to max_B
 * candidates. Everything is sized in rank_scratch_new; rank_score itself allocates nothing. */
#include "rank_score.h"

#include "core_alloc.h"
#include "core_err.h"
#include "enc_simhash.h"
#include "rank_blas.h"
#include "rank_engine.h"
#include "rank_net.h"
#include "rank_qcache.h"

#include <stdio.h>

#define RANK_SIGCACHE_SLOTS (1u << 16)
/* candidates' first-layer q terms: 16k items of h1 fp16 each (6.5 MB at h1 = 200) per thread */
#define RANK_QCACHE_SLOTS (1u << 14)

struct rank_scratch {
    const mdl_model *m; /* the model the net and the signature cache were built for */
    rank_net *net;
    enc_sigcache *sc; /* candidate signatures, valid for m's weights */
    rank_engine *eng; /* m's head packed for the path this scratch runs */
    rank_qcache *qc;  /* the candidates' q terms, for paths that gather in fp16; else NULL */
    uint32_t max_B;
};

int rank_scratch_new(rank_scratch **out, const mdl_model *m, uint32_t max_B, uint32_t max_T) {
    return rank_scratch_new_isa(out, m, max_B, max_T, rank_isa_current());
}

int rank_scratch_new_isa(rank_scratch **out, const mdl_model *m, uint32_t max_B, uint32_t max_T,
                         rank_isa isa) {
    char err[256];
    rank_scratch *s = core_calloc(1, sizeof *s);
    int rc;
    if (!s) return CORE_ENOMEM;
    rank_blas_single_thread(); /* serving threads each run their own BLAS calls */
    s->m = m;
    s->max_B = max_B;
    rank_net_shape sh = {.max_B = max_B ? max_B : 1, .max_U = 1, .max_T = max_T, .train = 0};
    if ((rc = rank_net_new(&s->net, &m->cfg, &sh, err, sizeof err))) goto fail;
    if ((rc = enc_sigcache_new(&s->sc, m, RANK_SIGCACHE_SLOTS))) goto fail;
    if ((rc = rank_engine_new(&s->eng, m, isa))) goto fail;
    if (s->eng->gather_f16 && (rc = rank_qcache_new(&s->qc, RANK_QCACHE_SLOTS, (int)m->cfg.h1)))
        goto fail;
    *out = s;
    return CORE_OK;
fail:
    rank_scratch_destroy(s);
    return rc;
}

void rank_scratch_destroy(rank_scratch *s) {
    if (!s) return;
    rank_net_destroy(s->net);
    enc_sigcache_destroy(s->sc);
    rank_engine_destroy(s->eng);
    rank_qcache_destroy(s->qc);
    core_free(s);
}

rank_isa rank_scratch_isa(const rank_scratch *s) {
    return s->eng->isa;
}

unsigned long long rank_scratch_route_fallbacks(const rank_scratch *s) {
    return rank_net_route_fallbacks(s->net);
}

void rank_scratch_sigcache_stats(const rank_scratch *s, uint64_t *hits, uint64_t *misses) {
    enc_sigcache_stats(s->sc, hits, misses);
}

void rank_scratch_qcache_stats(const rank_scratch *s, uint64_t *hits, uint64_t *misses) {
    *hits = *misses = 0;
    if (s->qc) rank_qcache_stats(s->qc, hits, misses);
}

int rank_score(float *out, rank_scratch *s, const mdl_model *m, const rank_history *h,
               const uint64_t *item_id, const uint64_t *category_id, uint32_t B) {
    if (m != s->m) return CORE_EINVAL; /* the signature cache holds another model's hashes */
    if (B > s->max_B) return CORE_ETOOBIG;
    if (!B) return CORE_OK;
    rank_batch bt = {.users = h,
                     .U = 1,
                     .item_id = item_id,
                     .category_id = category_id,
                     .user = NULL,
                     .B = B,
                     .sigcache = s->sc,
                     .engine = s->eng,
                     .qcache = s->qc};
    return rank_net_forward(s->net, m, &bt, NULL, out);
}
