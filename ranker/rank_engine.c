/* rank_engine.c: packing a model's head for a serving path. */
#include "rank_engine.h"

#include "core_alloc.h"
#include "core_err.h"
#include "rank_net.h"

#include <string.h>

/* B = ptr as a routed rank_gemm would take it: W[n][k] = alpha op(B)[k][n] */
static int add_known(rank_engine *e, rank_isa isa, const float *ptr, int trans, int ld, int N,
                     int K, float alpha) {
    if (e->n_known >= RANK_ENGINE_KNOWN) return CORE_OK; /* packed per call instead */
    rank_route_known *kn = &e->known[e->n_known];
    int rc = rank_pw_alloc(&kn->pw, isa, N, K);
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
    /* the recent rows' GEMMs run in fp32 on every path (rank_net.c, recent_users): packed for
     * the path the route runs them on */
    rank_isa rec = rank_isa_fp32_twin(rank_isa_companion(e->isa));
    if (c->short_kind == MDL_SHORT_SELFATTN)
        for (uint32_t l = 0; l < c->n_blocks && !rc; l++) {
            const mdl_block *w = &p->blk[l];
            if (!rc) rc = add_known(e, rec, w->w_qkv, 1, C, 3 * C, C, 1.f);
            if (!rc) rc = add_known(e, rec, w->w_o, 1, C, C, C, 1.f);
            if (!rc) rc = add_known(e, rec, w->w_ff1, 1, C, F, C, 1.f);
            if (!rc) rc = add_known(e, rec, w->w_ff2, 1, F, C, F, 1.f);
        }
    if (c->short_kind != MDL_SHORT_NONE) {
        if (!rc) rc = add_known(e, rec, p->w_tk, 1, C, C, C, 1.f);
        if (!rc) rc = add_known(e, rec, p->w_tq, 0, C, C, C, 1.f);
    }
    if (c->long_kind == MDL_LONG_SDIM) {
        mdl_mlp_cols col;
        mdl_mlp_layout(c, &col);
        if (!rc)
            rc = add_known(e, rank_isa_companion(e->isa), p->w1 + col.ul, 1, e->D, (int)c->h1, C,
                           1.f / (float)c->S);
    }
    return rc;
}

/* Block i of ws: W1's columns cols[off .. off + width) packed as one weight. */
static int add_block(rank_engine *e, rank_engine_w1 *ws, const mdl_model *m, const int *cols,
                     int off, int width, float *tmp) {
    int H1 = (int)m->cfg.h1, D = e->D;
    if (ws->n >= RANK_ENGINE_SEGS || width <= 0) return CORE_EINVAL;
    for (int j = 0; j < H1; j++)
        for (int k = 0; k < width; k++)
            tmp[(size_t)j * width + k] = m->p.w1[(size_t)j * D + cols[off + k]];
    int rc = rank_pw_alloc(&ws->w[ws->n], e->isa, H1, width);
    if (rc) return rc;
    rank_pw_pack(&ws->w[ws->n], tmp, (size_t)width, 1, width, 1.f);
    ws->off[ws->n++] = off;
    return CORE_OK;
}

int rank_engine_new(rank_engine **out, const mdl_model *m, rank_isa isa) {
    if (!rank_isa_available(isa)) return CORE_ERANGE;
    const mdl_config *c = &m->cfg;
    rank_engine *e = core_calloc(1, sizeof *e);
    if (!e) return CORE_ENOMEM;
    e->isa = isa;
    e->gather_f16 = strcmp(rank_isa_precision(isa), "fp32") && rank_isa_available(RANK_ISA_AVX2);
    int H1 = (int)c->h1, H2 = (int)c->h2, D = (int)mdl_mlp_in_dim(c), C = (int)c->C;
    int Ds = rank_net_head_cols(c, NULL), rc = CORE_ENOMEM;
    e->D = D;
    e->Ds = Ds;
    int *cols = core_malloc((size_t)(D > Ds ? D : Ds) * sizeof *cols);
    float *tmp = core_malloc((size_t)H1 * (size_t)D * sizeof *tmp);
    if (!tmp || !cols) goto fail;
    /* the unfolded head: the input blocks of mdl_mlp_layout, each its own segment */
    mdl_mlp_cols col;
    mdl_mlp_layout(c, &col);
    for (int k = 0; k < D; k++)
        cols[k] = k;
    int starts[] = {0, col.ul, col.ulq, col.us, col.usq, col.ut, col.cross, col.dense};
    int widths[] = {C, C, C, C, C, C, MDL_CROSS_DIM, (int)c->n_dense};
    for (int b = 0; b < 8; b++)
        if (starts[b] >= 0 && widths[b] > 0 && (b != 7 || c->n_dense) &&
            (rc = add_block(e, &e->w1, m, cols, starts[b], widths[b], tmp)))
            goto fail;
    /* the folded head: C-wide blocks of its candidate columns, then the cross block */
    rank_net_head_cols(c, cols);
    int nx = c->cross ? MDL_CROSS_DIM : 0;
    for (int off = 0; off < Ds - nx; off += C)
        if ((rc = add_block(e, &e->w1c, m, cols, off, C, tmp))) goto fail;
    if (nx && (rc = add_block(e, &e->w1c, m, cols, Ds - nx, nx, tmp))) goto fail;
    if ((rc = rank_pw_alloc(&e->w2, isa, H2, H1))) goto fail;
    rank_pw_pack(&e->w2, m->p.w2, (size_t)H1, 1, H1, 1.f);
    if ((rc = add_user_side(e, m))) goto fail;
    core_free(tmp);
    core_free(cols);
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
    for (int i = 0; i < e->w1.n; i++)
        rank_pw_free(&e->w1.w[i]);
    for (int i = 0; i < e->w1c.n; i++)
        rank_pw_free(&e->w1c.w[i]);
    rank_pw_free(&e->w2);
    for (int i = 0; i < e->n_known; i++)
        rank_pw_free(&e->known[i].pw);
    core_free(e);
}

size_t rank_engine_bytes(const rank_engine *e) {
    size_t b = sizeof *e + rank_pw_bytes(&e->w2);
    for (int i = 0; i < e->w1.n; i++)
        b += rank_pw_bytes(&e->w1.w[i]);
    for (int i = 0; i < e->w1c.n; i++)
        b += rank_pw_bytes(&e->w1c.w[i]);
    for (int i = 0; i < e->n_known; i++)
        b += rank_pw_bytes(&e->known[i].pw);
    return b;
}
