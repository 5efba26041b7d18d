/* rank_engine.c: packing a model's head for a serving path. */
#include "rank_engine.h"

#include "core_alloc.h"
#include "core_err.h"
#include "rank_net.h"

#include <string.h>

/* B = ptr as a routed rank_gemm would take it: W[n][k] = alpha op(B)[k][n] */
static int add_known(rank_engine *e, const float *ptr, int trans, int ld, int N, int K,
                     float alpha) {
    if (e->n_known >= RANK_ENGINE_KNOWN) return CORE_OK; /* packed per call instead */
    rank_route_known *kn = &e->known[e->n_known];
    int rc = rank_pw_alloc(&kn->pw, e->isa, N, K);
    if (rc) return rc;
    if (trans)
        rank_pw_pack(&kn->pw, ptr, (size_t)ld, 1, K, alpha);
    else
        rank_pw_pack(&kn->pw, ptr, 1, (size_t)ld, K, alpha);
    kn->ptr = ptr, kn->N = N, kn->K = K, kn->trans = trans, kn->ld = ld, kn->alpha = alpha;
    e->n_known++;
    return CORE_OK;
}

/* the weights rank_net's serving forward passes as B to rank_gemm / rank_matmul_forward */
static int add_user_side(rank_engine *e, const mdl_model *m) {
    const mdl_config *c = &m->cfg;
    const mdl_params *p = &m->p;
    int C = (int)c->C, F = (int)c->ffn_dim, rc = CORE_OK;
    if (c->short_kind == MDL_SHORT_SELFATTN)
        for (uint32_t l = 0; l < c->n_blocks && !rc; l++) {
            const mdl_block *w = &p->blk[l];
            if (!rc) rc = add_known(e, w->w_qkv, 1, C, 3 * C, C, 1.f);
            if (!rc) rc = add_known(e, w->w_o, 1, C, C, C, 1.f);
            if (!rc) rc = add_known(e, w->w_ff1, 1, C, F, C, 1.f);
            if (!rc) rc = add_known(e, w->w_ff2, 1, F, C, F, 1.f);
        }
    if (c->short_kind != MDL_SHORT_NONE) {
        if (!rc) rc = add_known(e, p->w_tk, 1, C, C, C, 1.f);
        if (!rc) rc = add_known(e, p->w_tq, 0, C, C, C, 1.f);
    }
    if (c->long_kind == MDL_LONG_SDIM) {
        mdl_mlp_cols col;
        mdl_mlp_layout(c, &col);
        if (!rc)
            rc = add_known(e, p->w1 + col.ul, 1, e->D, (int)c->h1, C, 1.f / (float)c->S);
    }
    return rc;
}

int rank_engine_new(rank_engine **out, const mdl_model *m, rank_isa isa) {
    if (!rank_isa_available(isa)) return CORE_ERANGE;
    const mdl_config *c = &m->cfg;
    rank_engine *e = core_calloc(1, sizeof *e);
    if (!e) return CORE_ENOMEM;
    e->isa = isa;
    int H1 = (int)c->h1, H2 = (int)c->h2, D = (int)mdl_mlp_in_dim(c);
    int Ds = rank_net_head_cols(c, NULL);
    e->D = D;
    e->Ds = Ds;
    int *cols = core_malloc((size_t)(Ds > 0 ? Ds : 1) * sizeof *cols);
    float *tmp = core_malloc((size_t)H1 * (size_t)(Ds > 0 ? Ds : 1) * sizeof *tmp);
    int rc = CORE_ENOMEM;
    if (!tmp || !cols) goto fail;
    rank_net_head_cols(c, cols);
    if ((rc = rank_pw_alloc(&e->w1, isa, H1, D))) goto fail;
    if ((rc = rank_pw_alloc(&e->w1c, isa, H1, Ds > 0 ? Ds : 1))) goto fail;
    if ((rc = rank_pw_alloc(&e->w2, isa, H2, H1))) goto fail;
    rank_pw_pack(&e->w1, m->p.w1, (size_t)D, 1, D, 1.f);
    for (int j = 0; j < H1; j++)
        for (int k = 0; k < Ds; k++)
            tmp[(size_t)j * Ds + k] = m->p.w1[(size_t)j * D + cols[k]];
    rank_pw_pack(&e->w1c, tmp, (size_t)Ds, 1, Ds, 1.f);
    rank_pw_pack(&e->w2, m->p.w2, (size_t)H1, 1, H1, 1.f);
    core_free(tmp);
    core_free(cols);
    if ((rc = add_user_side(e, m))) {
        rank_engine_destroy(e);
        return rc;
    }
    *out = e;
    return CORE_OK;
fail:
    core_free(tmp);
    core_free(cols);
    rank_engine_destroy(e);
    return rc;
}

void rank_engine_destroy(rank_engine *e) {
    if (!e) return;
    rank_pw_free(&e->w1);
    rank_pw_free(&e->w1c);
    rank_pw_free(&e->w2);
    for (int i = 0; i < e->n_known; i++)
        rank_pw_free(&e->known[i].pw);
    core_free(e);
}

size_t rank_engine_bytes(const rank_engine *e) {
    size_t b = sizeof *e + rank_pw_bytes(&e->w1) + rank_pw_bytes(&e->w1c) + rank_pw_bytes(&e->w2);
    for (int i = 0; i < e->n_known; i++)
        b += rank_pw_bytes(&e->known[i].pw);
    return b;
}
