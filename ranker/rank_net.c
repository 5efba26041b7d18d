/* rank_net.c: the ranking network's forward and backward over a batch of (candidate, user) pairs.
 *
 * Layout of a batch inside the net: candidates are regrouped by user (a stable counting sort, so
 * serving with U = 1 keeps the input order), and every per-candidate array is in that grouped
 * order; users' windows and recent sequences are concatenated (woff, roff give each user's rows).
 * Candidate-independent work runs once per user; per-candidate work runs per user group through
 * sgemm. What does not live here: kernels (rank_kernels.c), BLAS (rank_blas.c), losses, optimizer.
 */
#include "rank_net.h"

#include "core_alloc.h"
#include "core_assert.h"
#include "core_err.h"
#include "rank_blas.h"
#include "rank_engine.h"
#include "rank_kernels.h"
#include "rank_qcache.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

struct rank_net {
    mdl_config cfg;
    rank_net_shape sh;
    uint32_t TT, NN; /* window rows and recent rows over all users */
    int C, S, nb, D, H1, H2, N, NH, F, L;
    size_t bytes;
    char *mem;

    // batch bookkeeping (valid after a forward)
    uint32_t B, U;
    uint32_t *perm;      // (B) grouped position -> input index
    uint32_t *iperm;     // (B) input index -> grouped position
    uint32_t *goff;      // (U+1) candidate group offsets
    uint32_t *cir, *ccr; // (B) candidate item / category rows
    uint16_t *csig;      // (B, S)
    float *q;            // (B, C)

    // long branch
    float *ulong;        // (B, C)
    float *Un;           // (U, S, nb, C) l2-normalized buckets per user
    float *Unorm;        // (U, S, nb) their norms before normalizing
    float *dUn;          // (U, S, nb, C) train
    float *V;            // (U, S, nb, C) buckets built here
    uint32_t *cnt;       // (U, S, nb)
    const float **Vp;    // (U) buckets used per user (built or stored)
    uint32_t *wlen;      // (U) behaviors behind the buckets
    uint8_t *built;      // (U) 1 if the buckets were built from the window here
    uint32_t *woff;      // (U+1) window rows per user
    uint32_t *wir, *wcr; // (TT)
    float *xw;           // (TT, C)
    uint16_t *wsig;      // (TT, S)
    /* without a signature cache (training: the weights change every step), signatures are
     * computed once per distinct (item row, category row) per forward: a stamped hash table */
    uint64_t *memo_key;   // (memo_mask + 1) item row << 32 | category row, plus 1
    uint32_t *memo_stamp; // (memo_mask + 1) forward counter that wrote the slot
    uint16_t *memo_sig;   // (memo_mask + 1, S)
    uint32_t memo_mask, stamp;
    float *att_long;   // (max_B * max_T) train; (RANK_ATTN_BLOCK * max_T) serving
    size_t *aoff_long; // (U+1)
    float *Ml;         // (C, C) w_lq^T w_lk: the long attention's folded projections
    float *q2l;        // (B, C) q M for users projected on the candidate side
    float *k2l;        // (B, C) x_k M^T for users projected on the window side (T < B_u rows each)
    uint32_t *lkoff;   // (U+1) each user's first row in k2l

    // recent: short and temporal branches
    uint32_t *roff;                   // (U+1)
    uint32_t *rir, *rcr, *rpos, *rtb; // (NN) rows, position (0 = most recent), TIN bucket
    float *xr;                        // (NN, C)
    float *bx[MDL_MAX_BLOCKS + 1];    // (NN, C) block inputs; bx[L] the last block's output
    float *ln1[MDL_MAX_BLOCKS], *ln1m[MDL_MAX_BLOCKS], *ln1r[MDL_MAX_BLOCKS]; // (NN,C),(NN),(NN)
    float *qkv[MDL_MAX_BLOCKS];                                               // (NN, 3C)
    float *matt[MDL_MAX_BLOCKS];                                              // (U * NH * N * N)
    float *y[MDL_MAX_BLOCKS]; // (NN, C) attention output before w_o
    float *h[MDL_MAX_BLOCKS]; // (NN, C) after the attention residual
    float *ln2[MDL_MAX_BLOCKS], *ln2m[MDL_MAX_BLOCKS], *ln2r[MDL_MAX_BLOCKS];
    float *f1[MDL_MAX_BLOCKS]; // (NN, F) after ReLU
    float *lnf, *lnfm, *lnfr;  // (NN, C), (NN), (NN)
    const float *hs;           // (NN, C) values of the short pooling (lnf or xr)
    float *tmp;                // (NN, C) scratch
    float *kp;                 // (NN, C) Wk h_k
    float *k2;                 // (NN, C) Wq^T Wk h_k: scores are then q . k2_k
    float *att_s;              // (B * N)
    float *ushort;             // (B, C)
    float *et;                 // (NN, C)
    float *vt, *pool_t, *utin; // (B, C)
    float *att_t;              // (B * N)
    size_t *aoff_rec;          // (U+1) offsets of B_u * n_u attention rows

    // cross: candidate x window statistics (grouped order), from two stamped hash tables keyed
    // by the group's candidate categories and items
    float *xf;                  // (B, MDL_CROSS_DIM)
    struct xstat *xcat, *xitem; // (xmask + 1) each
    uint32_t xmask, xstamp;
    uint64_t *xbits; // (2 * XBITS_WORDS) a bit per hashed candidate category, item:
                     // most window behaviors match no candidate and skip the tables

    // head
    mdl_mlp_cols col; /* the MLP input's column blocks (mdl_mlp_layout) */
    int fold;         /* the last forward folded the user-side terms into the first layer */
    float *z;         // (B, D)
    float *hrow;      // (H1) serving: b1 plus the user-constant first-layer terms
    float *w1sel;     // (H1, <= 5C + X + N) serving: W1's candidate-dependent column blocks (the
                      //   cross block's X columns last), then W1's u_short block applied to each
                      //   recent value row
    float *zsel;      // (B, <= 5C + X + N) serving: the matching input columns, then the short
                      //   weights
    float *Pl;        // (S * nb, H1) serving: W1's u_long block applied to each unit bucket / S
    uint16_t *Pl16;   // (S * nb, H1) the same in fp16, gathered by the reduced-precision paths
    float *a1, *a2;   // (B, H1), (B, H2) after ReLU
    float *logit;     // (B)

    // backward scratch (train)
    float *dl;                                          // (B)
    float *da1, *dp1, *da2, *dp2, *dz;                  // (B,H1) (B,H1) (B,H2) (B,H2) (B,D)
    float *dq, *dulong, *dushort, *dutin, *dvt, *dpool; // (B, C)
    float *dV;                                          // (U, S, nb, C)
    float *dsum;                                        // (C)
    float *dxw;                                         // (TT, C)
    float *dxr, *dhs, *dkp, *dk2, *det, *dx, *dh, *dt2; // (NN, C)
    float *dqkv;                                        // (NN, 3C)
    float *dr, *df;                                     // (NN, F)
    float *datt;                                        // (max(max_B * max_T, max_B * N, N * N))
    float *dMl, *dq2l, *dk2l;                           // (C, C), (B, C), (B, C) long attention

    // serving on an engine's path (rank_engine.h)
    rank_route route; /* this thread's buffers for routed GEMMs */
    int routed;       /* route allocated (serving nets) */
    void *short_buf;  /* (H1, N) packed W1_us hs^T, per request */
    void *pg_scr;     /* the head's conversion scratch */
    /* serving with a q-term cache (rank_qcache.h), per block of candidates: each one's row, the
     * misses (their candidate index, q rows, products, fp16 rows) */
    const uint16_t **qptr;
    uint32_t *qmiss;
    float *qm_a, *qm_y;
    uint16_t *qm16;

    // touched rows (train)
    uint8_t *mark_i, *mark_c; // (item_rows), (cat_rows)
    uint32_t *t_ir, *t_cr;    // distinct rows
    uint32_t n_ti, n_tc;
};

/* One key of a cross table: a candidate's category (or item) id, and what the user's window
 * holds of it. A slot is live in the current user group iff stamp == xstamp. */
typedef struct xstat {
    uint64_t key;
    uint32_t stamp;
    uint32_t cnt; /* window behaviors with this id */
    uint32_t tod; /* of those, within RANK_CROSS_TOD_S of the request's time of day */
    int64_t last; /* the latest ts among them */
    float eh, ed; /* sum of exp(-gap / 1 h), exp(-gap / 1 day) over them */
} xstat;

/* Empty both cross tables (no slot carries a live stamp). */
static void xclear(rank_net *n) {
    memset(n->xcat, 0, ((size_t)n->xmask + 1) * sizeof *n->xcat);
    memset(n->xitem, 0, ((size_t)n->xmask + 1) * sizeof *n->xitem);
}

#define A64(x) (((x) + 63) & ~(size_t)63)
#define RANK_CROSS_TOD_S 3600 /* "same time of day": within an hour either way, any day */
#define X_DIM MDL_CROSS_DIM
#define XBITS_LOG 16 /* the cross prefilter: 2^16 bits per table, 8 KiB, stays in L1 */
#define XBITS_WORDS ((1u << XBITS_LOG) / 64)
/* Exact attention runs over blocks of this many candidates, so the block's (block, T) scores stay
 * in cache between the two sgemms and the softmax instead of streaming B * T floats through DRAM.
 */
#define RANK_ATTN_BLOCK 64
/* The folded serving head runs every per-candidate step over blocks of this many candidates.
 * Measured here with 128, 256, 512 and 1024: no difference above this machine's noise; smaller
 * blocks repack W1's columns more often (once per sgemm call), larger ones stream more through L3.
 */
#define RANK_HEAD_BLOCK 512

/* Carve every buffer out of one block: called once with base NULL to size it, then to assign. */
/* The arena's layout: each buffer takes the next 64-byte-aligned slice; with base NULL the
 * pointers stay NULL and only the size is counted (the first of carve's two passes). */
typedef struct arena {
    char *base;
    size_t off;
} arena;

static void *arena_take(arena *a, size_t bytes) {
    void *p = a->base ? a->base + a->off : NULL;
    a->off += A64(bytes);
    return p;
}

#define TAKE(ptr, count) ((ptr) = arena_take(a, (size_t)(count) * sizeof *(ptr)))

/* The sizes the buffers are counted in, and which branches the model has. */
typedef struct dims {
    size_t B, U, C, S, nb, TT, NN, N, F;
    int tr, is_long, buckets, rec, sa, sh, tin;
} dims;

/* What a forward reads and writes per batch: the candidates' order and rows, their signatures,
 * the long-term branch's buckets and window, exact attention's scores. */
static void carve_batch(rank_net *n, const dims *d, arena *a) {
    const mdl_config *c = &n->cfg;
    TAKE(n->perm, d->B);
    TAKE(n->iperm, d->B);
    TAKE(n->goff, d->U + 1);
    TAKE(n->cir, d->B);
    TAKE(n->ccr, d->B);
    TAKE(n->csig, d->B * d->S);
    TAKE(n->q, d->B * d->C);
    if (d->is_long) TAKE(n->ulong, d->B * d->C);
    if (c->long_kind == MDL_LONG_SDIM) {
        TAKE(n->Un, d->U * d->S * d->nb * d->C);
        TAKE(n->Unorm, d->U * d->S * d->nb);
        if (d->tr) TAKE(n->dUn, d->U * d->S * d->nb * d->C);
    }
    if (d->buckets) {
        TAKE(n->V, d->U * d->S * d->nb * d->C);
        TAKE(n->cnt, d->U * d->S * d->nb);
        TAKE(n->Vp, d->U);
        TAKE(n->wlen, d->U);
        TAKE(n->built, d->U);
        TAKE(n->wsig, d->TT * d->S);
    }
    if (d->buckets) { /* signatures of window behaviors (avgpool too) and of SDIM candidates */
        TAKE(n->memo_key, (size_t)n->memo_mask + 1);
        TAKE(n->memo_stamp, (size_t)n->memo_mask + 1);
        TAKE(n->memo_sig, ((size_t)n->memo_mask + 1) * d->S);
    }
    TAKE(n->woff, d->U + 1);
    TAKE(n->wir, d->TT);
    TAKE(n->wcr, d->TT);
    TAKE(n->xw, d->TT * d->C);
    if (c->long_kind == MDL_LONG_ATTN) {
        TAKE(n->att_long,
             (d->tr ? d->B : (d->B < RANK_ATTN_BLOCK ? d->B : RANK_ATTN_BLOCK)) * n->sh.max_T);
        TAKE(n->aoff_long, d->U + 1);
        TAKE(n->Ml, d->C * d->C);
        TAKE(n->q2l, d->B * d->C);
        TAKE(n->k2l, d->B * d->C);
        TAKE(n->lkoff, d->U + 1);
        if (d->tr) {
            TAKE(n->dMl, d->C * d->C);
            TAKE(n->dq2l, d->B * d->C);
            TAKE(n->dk2l, d->B * d->C);
        }
    }
}

/* The recent behaviors: their rows, the self-attention blocks, the short-term and TIN branches. */
static void carve_recent(rank_net *n, const dims *d, arena *a) {
    TAKE(n->roff, d->U + 1);
    TAKE(n->aoff_rec, d->U + 1);
    if (d->rec) {
        TAKE(n->rir, d->NN);
        TAKE(n->rcr, d->NN);
        TAKE(n->rpos, d->NN);
        TAKE(n->rtb, d->NN);
        TAKE(n->xr, d->NN * d->C);
        TAKE(n->tmp, d->NN * d->C);
    }
    if (d->sa) {
        for (int l = 0; l <= n->L; l++)
            TAKE(n->bx[l], d->NN * d->C);
        for (int l = 0; l < n->L; l++) {
            TAKE(n->ln1[l], d->NN * d->C);
            TAKE(n->ln1m[l], d->NN);
            TAKE(n->ln1r[l], d->NN);
            TAKE(n->qkv[l], d->NN * 3 * d->C);
            TAKE(n->matt[l], d->U * (size_t)n->NH * d->N * d->N);
            TAKE(n->y[l], d->NN * d->C);
            TAKE(n->h[l], d->NN * d->C);
            TAKE(n->ln2[l], d->NN * d->C);
            TAKE(n->ln2m[l], d->NN);
            TAKE(n->ln2r[l], d->NN);
            TAKE(n->f1[l], d->NN * d->F);
        }
        TAKE(n->lnf, d->NN * d->C);
        TAKE(n->lnfm, d->NN);
        TAKE(n->lnfr, d->NN);
    }
    if (d->sh) {
        TAKE(n->kp, d->NN * d->C);
        TAKE(n->k2, d->NN * d->C);
        TAKE(n->att_s, d->B * d->N);
        TAKE(n->ushort, d->B * d->C);
    }
    if (d->tin) {
        TAKE(n->et, d->NN * d->C);
        TAKE(n->vt, d->B * d->C);
        TAKE(n->pool_t, d->B * d->C);
        TAKE(n->utin, d->B * d->C);
        TAKE(n->att_t, d->B * d->N);
    }
}

/* The cross statistics and the MLP head: its input, the serving head's folded projections and
 * q-term cache block, the layers' activations. */
static void carve_head(rank_net *n, const dims *d, arena *a) {
    const mdl_config *c = &n->cfg;
    if (c->cross) {
        TAKE(n->xf, d->B * X_DIM);
        TAKE(n->xcat, (size_t)n->xmask + 1);
        TAKE(n->xitem, (size_t)n->xmask + 1);
        TAKE(n->xbits, 2 * XBITS_WORDS);
    }
    TAKE(n->z, d->B * (size_t)n->D);
    if (!n->sh.train) {
        TAKE(n->hrow, n->H1);
        TAKE(n->w1sel, (size_t)n->H1 * (5 * d->C + X_DIM + d->N));
        TAKE(n->zsel, d->B * (5 * d->C + X_DIM + d->N));
        size_t hb = d->B < RANK_HEAD_BLOCK ? d->B : RANK_HEAD_BLOCK; /* a q-term cache's block */
        TAKE(n->qptr, hb);
        TAKE(n->qmiss, hb);
        TAKE(n->qm_a, hb * d->C);
        TAKE(n->qm_y, hb * n->H1);
        TAKE(n->qm16, hb * n->H1);
        if (c->long_kind == MDL_LONG_SDIM) {
            TAKE(n->Pl, d->S * d->nb * (size_t)n->H1);
            TAKE(n->Pl16, d->S * d->nb * (size_t)n->H1);
        }
    }
    TAKE(n->a1, d->B * (size_t)n->H1);
    TAKE(n->a2, d->B * (size_t)n->H2);
    TAKE(n->logit, d->B);
}

/* Training's gradients of everything above. */
static void carve_grads(rank_net *n, const dims *d, arena *a) {
    const mdl_config *c = &n->cfg;
    TAKE(n->dl, d->B);
    TAKE(n->da1, d->B * (size_t)n->H1);
    TAKE(n->dp1, d->B * (size_t)n->H1);
    TAKE(n->da2, d->B * (size_t)n->H2);
    TAKE(n->dp2, d->B * (size_t)n->H2);
    TAKE(n->dz, d->B * (size_t)n->D);
    TAKE(n->dq, d->B * d->C);
    if (d->is_long) TAKE(n->dulong, d->B * d->C);
    if (d->buckets) TAKE(n->dV, d->U * d->S * d->nb * d->C);
    TAKE(n->dsum, d->C);
    TAKE(n->dxw, d->TT * d->C);
    if (d->sh) {
        TAKE(n->dushort, d->B * d->C);
        TAKE(n->dk2, d->NN * d->C);
        TAKE(n->dkp, d->NN * d->C);
        TAKE(n->dhs, d->NN * d->C);
    }
    if (d->tin) {
        TAKE(n->dutin, d->B * d->C);
        TAKE(n->dvt, d->B * d->C);
        TAKE(n->dpool, d->B * d->C);
        TAKE(n->det, d->NN * d->C);
    }
    if (d->rec) TAKE(n->dxr, d->NN * d->C);
    if (d->sa) {
        TAKE(n->dx, d->NN * d->C);
        TAKE(n->dh, d->NN * d->C);
        TAKE(n->dt2, d->NN * d->C);
        TAKE(n->dqkv, d->NN * 3 * d->C);
        TAKE(n->dr, d->NN * d->F);
        TAKE(n->df, d->NN * d->F);
    }
    size_t datt = d->B * d->N > d->N * d->N ? d->B * d->N : d->N * d->N;
    if (c->long_kind == MDL_LONG_ATTN && d->B * n->sh.max_T > datt) datt = d->B * n->sh.max_T;
    TAKE(n->datt, datt);
    TAKE(n->mark_i, c->item_rows);
    TAKE(n->mark_c, c->cat_rows);
    TAKE(n->t_ir, d->B + d->TT + d->NN);
    TAKE(n->t_cr, d->B + d->TT + d->NN);
}
#undef TAKE

/* Lay out every buffer of the net in one arena at base; @return its size in bytes. */
static size_t carve(rank_net *n, char *base) {
    const mdl_config *c = &n->cfg;
    dims d = {.B = n->sh.max_B,
              .U = n->sh.max_U,
              .C = (size_t)n->C,
              .S = (size_t)n->S,
              .nb = (size_t)n->nb,
              .TT = n->TT,
              .NN = n->NN,
              .N = (size_t)n->N,
              .F = (size_t)n->F,
              .tr = n->sh.train,
              .is_long = c->long_kind != MDL_LONG_NONE,
              .buckets = c->long_kind == MDL_LONG_SDIM || c->long_kind == MDL_LONG_AVGPOOL,
              .rec = c->short_kind != MDL_SHORT_NONE || c->temporal_kind != MDL_TEMPORAL_NONE,
              .sa = c->short_kind == MDL_SHORT_SELFATTN,
              .sh = c->short_kind != MDL_SHORT_NONE,
              .tin = c->temporal_kind != MDL_TEMPORAL_NONE};
    arena a = {base, 0};
    carve_batch(n, &d, &a);
    carve_recent(n, &d, &a);
    carve_head(n, &d, &a);
    if (d.tr) carve_grads(n, &d, &a);
    return a.off;
}

/* The B shapes (N, K) of every GEMM a serving forward runs, for the route's buffers: linear
 * layers (N = out features), attention scores (N = keys) and pooling (N = C, K = keys), the folded
 * head's per-request projections. Exact attention's window is packed into a pinned buffer. */
static int net_route_init(rank_net *n) {
    int C = n->C, H1 = n->H1, H2 = n->H2, D = n->D, F = n->F, N = n->N, Snb = n->S * n->nb;
    int hs = C / (n->NH > 0 ? n->NH : 1), T = (int)n->sh.max_T;
    int attn = n->cfg.long_kind == MDL_LONG_ATTN;
    int nk[] = {3 * C,
                C,
                C,
                C,
                F > 0 ? F : 1,
                C,
                C,
                F > 0 ? F : 1, /* self-attention block */
                N,
                hs,
                hs,
                N,
                N,
                C,
                C,
                N, /* mha, short, TIN */
                H1,
                D,
                H2,
                H1,
                1,
                H2, /* the unfolded head */
                N,
                C,
                H1,
                C,
                Snb,
                C,
                C,
                Snb, /* folded projections */
                attn && T < 4096 ? T : 1,
                C,
                C,
                attn && T < 4096 ? T : 1};
    /* pinned: exact attention's window (T rows), or the recent rows (N) the short and TIN
     * attention of every candidate block read */
    int pin_rows = attn && T > N ? T : N;
    int rc = rank_route_init(&n->route, (int)(sizeof nk / sizeof *nk / 2), nk, pin_rows, C);
    if (rc) return rc;
    n->routed = 1;
    /* every segment of the head (W1 blocks and the short columns) pads K to at most 32 more */
    int kmax = n->D + (N > 0 ? N : 1) + 32 * (RANK_ENGINE_SEGS + 1);
    n->short_buf = core_aligned_alloc(rank_pw_bytes_max(H1, N > 0 ? N : 1));
    n->pg_scr = core_aligned_alloc(rank_pgemm_scratch_bytes(RANK_ISA_AMX_BF16, kmax + 64));
    return n->short_buf && n->pg_scr ? CORE_OK : CORE_ENOMEM;
}

int rank_net_new(rank_net **out, const mdl_config *cfg, const rank_net_shape *shape, char *err,
                 size_t err_size) {
    int rc = mdl_config_check(cfg, err, err_size);
    if (rc) return rc;
    if (shape->max_B < 1 || shape->max_U < 1 || shape->max_B > (1u << 20) ||
        shape->max_U > shape->max_B || shape->max_T > (1u << 22)) {
        snprintf(err, err_size, "net shape B=%u U=%u T=%u: need 1 <= U <= B <= 2^20 and T <= 2^22",
                 shape->max_B, shape->max_U, shape->max_T);
        return CORE_EINVAL;
    }
    uint64_t tt =
        shape->max_window_total ? shape->max_window_total : (uint64_t)shape->max_U * shape->max_T;
    if (tt > (1u << 28)) {
        snprintf(err, err_size, "net shape: %llu window behaviors per batch exceed 2^28",
                 (unsigned long long)tt);
        return CORE_EINVAL;
    }
    rank_net *n = core_calloc(1, sizeof *n);
    if (!n) return CORE_ENOMEM;
    n->cfg = *cfg;
    n->sh = *shape;
    n->C = (int)cfg->C;
    n->S = (int)cfg->S;
    n->nb = 1 << cfg->tau;
    n->D = (int)mdl_mlp_in_dim(cfg); /* = col.D */
    n->H1 = (int)cfg->h1;
    n->H2 = (int)cfg->h2;
    n->N = (int)cfg->n_recent;
    n->NH = (int)cfg->n_heads;
    n->F = (int)cfg->ffn_dim;
    n->L = (int)cfg->n_blocks;
    n->TT = (uint32_t)tt;
    if (cfg->long_kind == MDL_LONG_NONE) n->TT = 0;
    n->NN = shape->max_U * cfg->n_recent;
    mdl_mlp_layout(cfg, &n->col);
    n->memo_mask = 1;
    while (n->memo_mask + 1 < 2 * ((uint64_t)n->TT + shape->max_B))
        n->memo_mask = n->memo_mask * 2 + 1;
    n->xmask = 1; /* a user group's distinct candidate ids fill at most half of a table */
    while (n->xmask + 1 < 2 * (uint64_t)shape->max_B)
        n->xmask = n->xmask * 2 + 1;
    n->bytes = carve(n, NULL);
    n->mem = core_aligned_alloc(n->bytes);
    if (!n->mem) {
        snprintf(err, err_size, "out of memory for the ranker's activations (%zu bytes)", n->bytes);
        core_free(n);
        return CORE_ENOMEM;
    }
    carve(n, n->mem);
    if (!shape->train && (rc = net_route_init(n))) {
        snprintf(err, err_size, "out of memory for the ranker's serving buffers");
        rank_net_destroy(n);
        return rc;
    }
    if (n->memo_stamp) memset(n->memo_stamp, 0, ((size_t)n->memo_mask + 1) * sizeof *n->memo_stamp);
    if (n->xcat) {
        xclear(n);
        memset(n->xbits, 0, 2 * XBITS_WORDS * sizeof *n->xbits);
    }
    if (n->mark_i) {
        memset(n->mark_i, 0, cfg->item_rows);
        memset(n->mark_c, 0, cfg->cat_rows);
    }
    *out = n;
    return CORE_OK;
}

void rank_net_destroy(rank_net *n) {
    if (!n) return;
    rank_route_free(&n->route);
    core_free(n->short_buf);
    core_free(n->pg_scr);
    core_free(n->mem);
    core_free(n);
}

size_t rank_net_bytes(const rank_net *n) {
    return n->bytes + sizeof *n;
}

// ---------------------------------------------------------------------------------------------
// Forward

static int cfg_same(const mdl_config *a, const mdl_config *b) {
    return a->C == b->C && a->S == b->S && a->tau == b->tau && a->item_rows == b->item_rows &&
           a->cat_rows == b->cat_rows && a->long_kind == b->long_kind &&
           a->short_kind == b->short_kind && a->temporal_kind == b->temporal_kind &&
           a->n_recent == b->n_recent && a->n_blocks == b->n_blocks && a->n_heads == b->n_heads &&
           a->ffn_dim == b->ffn_dim && a->tin_buckets == b->tin_buckets && a->h1 == b->h1 &&
           a->h2 == b->h2 && a->n_dense == b->n_dense && a->q_short == b->q_short &&
           a->cross == b->cross;
}

static void touch(rank_net *n, uint32_t ir, uint32_t cr) {
    if (!n->mark_i[ir]) {
        n->mark_i[ir] = 1;
        n->t_ir[n->n_ti++] = ir;
    }
    if (!n->mark_c[cr]) {
        n->mark_c[cr] = 1;
        n->t_cr[n->n_tc++] = cr;
    }
}

static uint32_t recent_used(const rank_net *n, const rank_history *h) {
    return h->N < (uint32_t)n->N ? h->N : (uint32_t)n->N;
}

/* does user u's long branch read its raw window? */
static int needs_window(const rank_net *n, const rank_history *h) {
    uint32_t k = n->cfg.long_kind;
    return k == MDL_LONG_ATTN || ((k == MDL_LONG_SDIM || k == MDL_LONG_AVGPOOL) && !h->bucket_sum);
}

static int check_batch(const rank_net *n, const mdl_model *m, const rank_batch *bt) {
    if (!cfg_same(&m->cfg, &n->cfg)) return CORE_EINVAL;
    if (bt->B > n->sh.max_B || bt->U > n->sh.max_U || bt->U < 1) return CORE_ETOOBIG;
    uint64_t tot = 0;
    for (uint32_t u = 0; u < bt->U; u++) {
        const rank_history *h = &bt->users[u];
        if (needs_window(n, h) || n->cfg.cross) {
            if (h->T > n->sh.max_T) return CORE_ETOOBIG;
            if (h->T && !h->window) return CORE_EINVAL;
        }
        if (needs_window(n, h)) tot += h->T;
        if (h->N && !h->recent) return CORE_EINVAL;
    }
    if (tot > n->TT) return CORE_ETOOBIG;
    if (bt->user)
        for (uint32_t b = 0; b < bt->B; b++)
            if (bt->user[b] >= bt->U) return CORE_EINVAL;
    return CORE_OK;
}

/* The S signatures of one item-side embedding x (rows ir, cr): from the cache when the batch has
 * one (it must be for the current weights), else computed from x with enc_simhash_sign (the
 * encoder's bits exactly), once per distinct rows in this forward. */
static void sign_one(uint16_t *sig, rank_net *n, const mdl_model *m, enc_sigcache *sc, uint32_t ir,
                     uint32_t cr, const float *x) {
    size_t S = (size_t)n->S;
    if (sc) { /* the signature depends only on the two rows */
        memcpy(sig, enc_sigcache_get_rows(sc, ir, cr), S * sizeof *sig);
        return;
    }
    uint64_t key = (((uint64_t)ir << 32) | cr) + 1;
    uint32_t slot = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & n->memo_mask;
    while (n->memo_stamp[slot] == n->stamp && n->memo_key[slot] != key)
        slot = (slot + 1) & n->memo_mask; /* at most half full: terminates */
    uint16_t *ms = n->memo_sig + slot * S;
    if (n->memo_stamp[slot] != n->stamp) {
        enc_simhash_sign(ms, x, m->p.simhash_r, n->S, (int)n->cfg.tau, n->C);
        n->memo_key[slot] = key;
        n->memo_stamp[slot] = n->stamp;
    }
    memcpy(sig, ms, S * sizeof *sig);
}

/* Where long = attention puts its folded projection M for a user with Bu candidates and T window
 * rows: on the candidates (Bu C^2 flops) unless the window is shorter (T C^2). Serving (T = 10,000,
 * B = 1,000) and training (T up to 256, about one candidate per user) project the candidates; a
 * short history scored against many candidates projects its keys. Forward and backward agree. */
enum { LONG_ATTN_NONE = 0, LONG_ATTN_QUERY = 1, LONG_ATTN_KEY = 2 };

static int long_attn_side(uint32_t Bu, uint32_t T) {
    if (!Bu || !T) return LONG_ATTN_NONE;
    return T < Bu ? LONG_ATTN_KEY : LONG_ATTN_QUERY;
}

static void forward_long(rank_net *n, const mdl_model *m, const rank_batch *bt) {
    const mdl_params *p = &m->p;
    int C = n->C, S = n->S, nb = n->nb;
    uint32_t k = n->cfg.long_kind;
    float *ulong = n->ulong;
    /* window rows of the users that need them */
    n->woff[0] = 0;
    for (uint32_t u = 0; u < bt->U; u++) {
        const rank_history *h = &bt->users[u];
        uint32_t w0 = n->woff[u], T = needs_window(n, h) ? h->T : 0;
        for (uint32_t j = 0; j < T; j++) {
            n->wir[w0 + j] = mdl_item_row(m, h->window[j].item_id);
            n->wcr[w0 + j] = mdl_cat_row(m, h->window[j].category_id);
            if (n->mark_i) touch(n, n->wir[w0 + j], n->wcr[w0 + j]);
        }
        rank_embed_forward(n->xw + (size_t)w0 * C, n->wir + w0, n->wcr + w0, p->item_emb,
                           p->cat_emb, (int)T, C);
        n->woff[u + 1] = w0 + T;
    }
    if (k == MDL_LONG_ATTN) {
        /* score_k = <Wq q, Wk x_k> / sqrt(C) = q^T M x_k with M = Wq^T Wk, folded once per forward
         * (C^3). Per user the projection goes on the smaller side: the Bu candidates (q2 = q M,
         * rows) or the T window rows (k2 = x M^T); values stay the raw window embeddings. */
        float scale = 1.f / sqrtf((float)C);
        /* on the reduced-precision paths this branch runs in fp32 (trail's own kernels): a
         * softmax over thousands of bf16-rounded scores moves probabilities by up to ~1e-2
         * (test_rank_score), past the serving bound; fp32 holds it */
        int prev32 = rank_blas_route_fp32(1);
        rank_gemm(1, 0, C, C, C, 1.f, p->w_lq, C, p->w_lk, C, 0.f, n->Ml, C);
        n->aoff_long[0] = 0;
        n->lkoff[0] = 0;
        for (uint32_t u = 0; u < bt->U; u++) {
            uint32_t g0 = n->goff[u], Bu = n->goff[u + 1] - g0, w0 = n->woff[u];
            uint32_t T = n->woff[u + 1] - w0;
            int side = long_attn_side(Bu, T);
            const float *xu = n->xw + (size_t)w0 * C, *qu = n->q + (size_t)g0 * C, *ku = xu;
            if (side == LONG_ATTN_QUERY) {
                float *q2 = n->q2l + (size_t)g0 * C;
                rank_gemm(0, 0, (int)Bu, C, C, 1.f, qu, C, n->Ml, C, 0.f, q2, C);
                qu = q2;
            } else if (side == LONG_ATTN_KEY) {
                float *k2 = n->k2l + (size_t)n->lkoff[u] * C;
                rank_gemm(0, 1, (int)T, C, C, 1.f, xu, C, n->Ml, C, 0.f, k2, C);
                ku = k2;
            }
            n->lkoff[u + 1] = n->lkoff[u] + (side == LONG_ATTN_KEY ? T : 0);
            rank_blas_pin(ku); /* a routed forward packs the window once for every block */
            rank_blas_pin(xu);
            for (uint32_t b0 = 0; b0 < Bu; b0 += RANK_ATTN_BLOCK) {
                uint32_t n_blk = Bu - b0 < RANK_ATTN_BLOCK ? Bu - b0 : RANK_ATTN_BLOCK;
                /* serving reuses one block of scores; training keeps all for the backward */
                float *att = n->att_long + (n->sh.train ? n->aoff_long[u] + (size_t)b0 * T : 0);
                rank_tattn_forward(ulong + (size_t)(g0 + b0) * C, att, qu + (size_t)b0 * C, ku, xu,
                                   (int)n_blk, (int)T, C, scale);
            }
            rank_blas_unpin();
            n->aoff_long[u + 1] = n->aoff_long[u] + (size_t)Bu * T;
        }
        rank_blas_route_fp32(prev32);
        return;
    }
    /* sdim, avgpool: bucket sums per user, stored or built from the window */
    for (uint32_t u = 0; u < bt->U; u++) {
        const rank_history *h = &bt->users[u];
        if (h->bucket_sum) {
            n->Vp[u] = h->bucket_sum;
            n->wlen[u] = h->window_len;
            n->built[u] = 0;
            continue;
        }
        uint32_t w0 = n->woff[u], T = n->woff[u + 1] - w0;
        float *V = n->V + (size_t)u * S * nb * C;
        for (uint32_t j = 0; j < T; j++)
            sign_one(n->wsig + (size_t)(w0 + j) * S, n, m, bt->sigcache, n->wir[w0 + j],
                     n->wcr[w0 + j], n->xw + (size_t)(w0 + j) * C);
        rank_buckets_forward(V, n->cnt + (size_t)u * S * nb, n->xw + (size_t)w0 * C,
                             n->wsig + (size_t)w0 * S, (int)T, S, nb, C);
        n->Vp[u] = V;
        n->wlen[u] = T;
        n->built[u] = 1;
    }
    for (uint32_t u = 0; u < bt->U; u++) {
        uint32_t g0 = n->goff[u], Bu = n->goff[u + 1] - g0;
        if (!Bu) continue;
        if (k == MDL_LONG_AVGPOOL) {
            float *o = ulong + (size_t)g0 * C;
            rank_avgpool_forward(o, n->Vp[u], n->wlen[u], nb, C);
            for (uint32_t b = 1; b < Bu; b++)
                memcpy(o + (size_t)b * C, o, (size_t)C * sizeof *o);
        } else {
            /* normalize the user's S * nb buckets once; each candidate then adds S of them */
            float *Un = n->Un + (size_t)u * S * nb * C;
            rank_l2rows_forward(Un, n->Unorm + (size_t)u * S * nb, n->Vp[u], S * nb, C,
                                RANK_SDIM_EPS);
            rank_sdim_forward(ulong + (size_t)g0 * C, Un, n->csig + (size_t)g0 * S, (int)Bu, S, nb,
                              C);
        }
    }
}

static void forward_block(rank_net *n, const mdl_model *m, int l, int NNu) {
    const mdl_block *w = &m->p.blk[l];
    int C = n->C, F = n->F, NH = n->NH;
    size_t matt_off = 0;
    rank_layernorm_forward(n->ln1[l], n->ln1m[l], n->ln1r[l], n->bx[l], w->ln1_w, w->ln1_b, NNu, C);
    rank_matmul_forward(n->qkv[l], n->ln1[l], w->w_qkv, w->b_qkv, NNu, C, 3 * C);
    for (uint32_t u = 0; u < n->U; u++) {
        uint32_t r0 = n->roff[u], nu = n->roff[u + 1] - r0;
        rank_mha_forward(n->y[l] + (size_t)r0 * C, n->matt[l] + matt_off,
                         n->qkv[l] + (size_t)r0 * 3 * C, (int)nu, C, NH);
        matt_off += (size_t)NH * nu * nu;
    }
    rank_matmul_forward(n->tmp, n->y[l], w->w_o, w->b_o, NNu, C, C);
    for (size_t i = 0; i < (size_t)NNu * C; i++)
        n->h[l][i] = n->bx[l][i] + n->tmp[i];
    rank_layernorm_forward(n->ln2[l], n->ln2m[l], n->ln2r[l], n->h[l], w->ln2_w, w->ln2_b, NNu, C);
    rank_matmul_forward(n->f1[l], n->ln2[l], w->w_ff1, w->b_ff1, NNu, C, F);
    rank_relu_forward(n->f1[l], n->f1[l], NNu * F);
    rank_matmul_forward(n->tmp, n->f1[l], w->w_ff2, w->b_ff2, NNu, F, C);
    for (size_t i = 0; i < (size_t)NNu * C; i++)
        n->bx[l + 1][i] = n->h[l][i] + n->tmp[i];
}

/* The recent branches' per-user half: each user's recent rows (last min(N, n_recent)), their
 * embeddings, the self-attention blocks (hs), the folded keys k2 for short target attention, and
 * TIN's e~ rows. recent_candidates does the per-candidate half. */
static void recent_users(rank_net *n, const mdl_model *m, const rank_batch *bt) {
    const mdl_params *p = &m->p;
    const mdl_config *cfg = &n->cfg;
    int C = n->C;
    n->roff[0] = 0;
    for (uint32_t u = 0; u < bt->U; u++) {
        const rank_history *h = &bt->users[u];
        uint32_t r0 = n->roff[u], nu = recent_used(n, h);
        const sch_behavior *rb = h->recent + (h->N - nu); /* the last nu, oldest first */
        for (uint32_t k = 0; k < nu; k++) {
            n->rir[r0 + k] = mdl_item_row(m, rb[k].item_id);
            n->rcr[r0 + k] = mdl_cat_row(m, rb[k].category_id);
            n->rpos[r0 + k] = nu - 1 - k;
            n->rtb[r0 + k] = mdl_tin_bucket(cfg, h->now_ts - rb[k].ts);
            if (n->mark_i) touch(n, n->rir[r0 + k], n->rcr[r0 + k]);
        }
        n->roff[u + 1] = r0 + nu;
    }
    int NNu = (int)n->roff[bt->U];
    rank_embed_forward(n->xr, n->rir, n->rcr, p->item_emb, p->cat_emb, NNu, C);

    n->aoff_rec[0] = 0;
    for (uint32_t u = 0; u < bt->U; u++)
        n->aoff_rec[u + 1] =
            n->aoff_rec[u] + (size_t)(n->goff[u + 1] - n->goff[u]) * (n->roff[u + 1] - n->roff[u]);

    if (cfg->short_kind != MDL_SHORT_NONE) {
        /* the recent rows' user-side GEMMs (the self-attention blocks, the key projections) run
         * in fp32 on every path: they are a few per request, and in bf16 their rounding, passed
         * through layer norms, softmaxes and residuals, moved trained models' probabilities by
         * up to 5.04e-3 (past the serving bound; 3.3e-3 with these in fp32) */
        int prev32 = rank_blas_route_fp32(1);
        if (cfg->short_kind == MDL_SHORT_SELFATTN) {
            for (int r = 0; r < NNu; r++) {
                const float *pe = p->pos_emb + (size_t)n->rpos[r] * C;
                for (int c = 0; c < C; c++)
                    n->bx[0][(size_t)r * C + c] = n->xr[(size_t)r * C + c] + pe[c];
            }
            for (int l = 0; l < n->L; l++)
                forward_block(n, m, l, NNu);
            rank_layernorm_forward(n->lnf, n->lnfm, n->lnfr, n->bx[n->L], p->lnf_w, p->lnf_b, NNu,
                                   C);
            n->hs = n->lnf;
        } else {
            n->hs = n->xr;
        }
        /* <Wq q, Wk h_k> = q . (Wq^T Wk h_k): the projections fold into the keys, once per
         * user, instead of projecting every candidate */
        rank_matmul_forward(n->kp, n->hs, p->w_tk, NULL, NNu, C, C);
        rank_gemm(0, 0, NNu, C, C, 1.f, n->kp, C, p->w_tq, C, 0.f, n->k2, C);
        rank_blas_route_fp32(prev32);
    }
    if (cfg->temporal_kind != MDL_TEMPORAL_NONE) {
        /* e~_k = x_k + tin_emb[bucket_k] (v~ and the pooling: recent_candidates) */
        for (int r = 0; r < NNu; r++) {
            const float *te = p->tin_emb + (size_t)n->rtb[r] * C;
            for (int c = 0; c < C; c++)
                n->et[(size_t)r * C + c] = n->xr[(size_t)r * C + c] + te[c];
        }
    }
}

/* The recent branches' per-candidate half, for candidates [i0, i0 + nb) of user u (a whole
 * group, or one block of the folded head's):
 *   short: att_s = softmax(q . k2 / sqrt(C)) over the user's recent rows, and u_short = att_s hs
 *          when `ushort` (the folded head takes W1_us u_short as att_s (hs W1_us^T) instead);
 *   TIN:   v~ = q + tin_emb[0], u_tin = sum_k softmax_k(<e~_k, v~>/sqrt(C)) (e~_k (.) v~)
 *          = v~ (.) (att_t e~).
 * No recent rows gives u_short = 0 and u_tin = 0. */
static void recent_candidates(rank_net *n, const mdl_model *m, uint32_t u, uint32_t i0, uint32_t nb,
                              int ushort) {
    const mdl_config *cfg = &n->cfg;
    int C = n->C;
    float scale = 1.f / sqrtf((float)C);
    uint32_t r0 = n->roff[u], nu = n->roff[u + 1] - r0;
    size_t arow = n->aoff_rec[u] + (size_t)(i0 - n->goff[u]) * nu; /* (nb, nu) weights */
    const float *q = n->q + (size_t)i0 * C;
    if (cfg->short_kind != MDL_SHORT_NONE) {
        float *us = ushort ? n->ushort + (size_t)i0 * C : NULL;
        rank_tattn_forward(us, n->att_s + arow, q, n->k2 + (size_t)r0 * C,
                           us ? n->hs + (size_t)r0 * C : NULL, (int)nb, (int)nu, C, scale);
    }
    if (cfg->temporal_kind != MDL_TEMPORAL_NONE) {
        float *vt = n->vt + (size_t)i0 * C, *pool = n->pool_t + (size_t)i0 * C;
        const float *eu = n->et + (size_t)r0 * C;
        for (uint32_t i = 0; i < nb; i++)
            rank_add_forward(vt + (size_t)i * C, q + (size_t)i * C, m->p.tin_emb, C);
        rank_tattn_forward(pool, n->att_t + arow, vt, eu, eu, (int)nb, (int)nu, C, scale);
        rank_mul_forward(n->utin + (size_t)i0 * C, vt, pool, (int)nb * C);
    }
}

static void forward_recent(rank_net *n, const mdl_model *m, const rank_batch *bt) {
    recent_users(n, m, bt);
    if (n->fold) return; /* the per-candidate half runs per block in head_folded */
    for (uint32_t u = 0; u < bt->U; u++)
        recent_candidates(n, m, u, n->goff[u], n->goff[u + 1] - n->goff[u], 1);
}

/* The slot of key in a cross table: its live slot, else (insert) a fresh one, else NULL. */
static xstat *xfind(xstat *t, uint32_t mask, uint32_t stamp, uint64_t key, int insert) {
    uint32_t slot = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
    while (t[slot].stamp == stamp) { /* at most half full: terminates */
        if (t[slot].key == key) return &t[slot];
        slot = (slot + 1) & mask;
    }
    if (!insert) return NULL;
    t[slot] = (xstat){.key = key, .stamp = stamp, .last = INT64_MIN};
    return &t[slot];
}

static uint32_t xbit_slot(uint64_t key) {
    return (uint32_t)((key * 0xD6E8FEB86659FD93ull) >> (64 - XBITS_LOG));
}

static void xbit_set(uint64_t *bits, uint64_t key) {
    uint32_t s = xbit_slot(key);
    bits[s / 64] |= 1ull << (s % 64);
}

static int xbit_get(const uint64_t *bits, uint64_t key) {
    uint32_t s = xbit_slot(key);
    return (int)((bits[s / 64] >> (s % 64)) & 1);
}

static int64_t time_of_day(int64_t ts) {
    int64_t d = ts % 86400;
    return d < 0 ? d + 86400 : d;
}

/* log1p(minutes since t), for a gap of at least 0 s; RANK_CROSS_NEVER when there is no such
 * behavior. On this scale a minute is 0.07, a day 0.73, a year 1.31. */
#define RANK_CROSS_NEVER 1.5f
static float log_gap(int64_t now, int64_t last) {
    if (last == INT64_MIN) return RANK_CROSS_NEVER;
    int64_t gap = now > last ? now - last : 0;
    return log1pf((float)gap / 60.f) / 10.f;
}

/* The cross block: what each candidate's user window holds of the candidate's category and item.
 * Per user group, the group's candidates key two tables, and one pass over the window adds each
 * behavior to its category's and item's entries: O(T + Bu), so serving's 10,000-behavior window
 * against 1,000 candidates is one pass. The inputs (request time, ids, timestamps) are data, not
 * parameters: no gradient flows back into them. Per candidate (MDL_CROSS_DIM = 8):
 *   0 log1p(behaviors of its category)      4 log1p(sum over them of exp(-gap / 1 day))
 *   1 1 if the category occurs, else 0       5 log1p(those within 1 h of now's time of day)
 *   2 log_gap(the category's latest)         6 log1p(behaviors of its item)
 *   3 log1p(sum of exp(-gap / 1 h))          7 log_gap(the item's latest)
 * gap = now_ts - ts, taken as 0 when negative (a clock ahead of the request). */
static void forward_cross(rank_net *n, const rank_batch *bt) {
    for (uint32_t u = 0; u < bt->U; u++) {
        uint32_t g0 = n->goff[u], Bu = n->goff[u + 1] - g0;
        if (!Bu) continue;
        if (++n->xstamp == 0) { /* wrapped: forget every slot */
            xclear(n);
            n->xstamp = 1;
        }
        uint64_t *bc = n->xbits, *bi = n->xbits + XBITS_WORDS;
        for (uint32_t i = g0; i < g0 + Bu; i++) {
            uint32_t b = n->perm[i];
            xfind(n->xcat, n->xmask, n->xstamp, bt->category_id[b], 1);
            xfind(n->xitem, n->xmask, n->xstamp, bt->item_id[b], 1);
            xbit_set(bc, bt->category_id[b]);
            xbit_set(bi, bt->item_id[b]);
        }
        const rank_history *h = &bt->users[u];
        int64_t now = h->now_ts, tod_now = time_of_day(now);
        for (uint32_t j = 0; j < h->T; j++) {
            const sch_behavior *w = &h->window[j];
            int in_c = xbit_get(bc, w->category_id), in_i = xbit_get(bi, w->item_id);
            if (!in_c && !in_i) continue;
            xstat *c = in_c ? xfind(n->xcat, n->xmask, n->xstamp, w->category_id, 0) : NULL;
            if (c) {
                float gap = now > w->ts ? (float)(now - w->ts) : 0.f;
                int64_t dt = time_of_day(w->ts) - tod_now;
                if (dt < 0) dt = -dt;
                if (dt > 43200) dt = 86400 - dt;
                c->cnt++;
                c->tod += dt < RANK_CROSS_TOD_S;
                if (w->ts > c->last) c->last = w->ts;
                c->eh += expf(-gap / 3600.f);
                c->ed += expf(-gap / 86400.f);
            }
            xstat *it = in_i ? xfind(n->xitem, n->xmask, n->xstamp, w->item_id, 0) : NULL;
            if (it) {
                it->cnt++;
                if (w->ts > it->last) it->last = w->ts;
            }
        }
        for (uint32_t i = g0; i < g0 + Bu; i++) {
            uint32_t b = n->perm[i];
            const xstat *c = xfind(n->xcat, n->xmask, n->xstamp, bt->category_id[b], 0);
            const xstat *it = xfind(n->xitem, n->xmask, n->xstamp, bt->item_id[b], 0);
            float *x = n->xf + (size_t)i * X_DIM;
            x[0] = log1pf((float)c->cnt);
            x[1] = c->cnt ? 1.f : 0.f;
            x[2] = log_gap(now, c->last);
            x[3] = log1pf(c->eh);
            x[4] = log1pf(c->ed);
            x[5] = log1pf((float)c->tod);
            x[6] = log1pf((float)it->cnt);
            x[7] = log_gap(now, it->last);
        }
        for (uint32_t i = g0; i < g0 + Bu; i++) { /* leave the filters empty for the next group */
            uint32_t b = n->perm[i];
            bc[xbit_slot(bt->category_id[b]) / 64] = 0;
            bi[xbit_slot(bt->item_id[b]) / 64] = 0;
        }
    }
}

/* Scale a head-input row's branch blocks by keep (RANK_BRANCHES multipliers): the forward of
 * branch dropout, and, on dz, its backward. */
static void scale_branches(const rank_net *n, float *row, const float *keep) {
    const int blk[][2] = {{n->col.ul, RANK_BR_LONG},  {n->col.ulq, RANK_BR_LONG},
                          {n->col.us, RANK_BR_SHORT}, {n->col.usq, RANK_BR_SHORT},
                          {n->col.ut, RANK_BR_TIN},   {n->col.cross, RANK_BR_CROSS}};
    for (size_t k = 0; k < sizeof blk / sizeof blk[0]; k++) {
        if (blk[k][0] < 0) continue;
        int w = blk[k][1] == RANK_BR_CROSS ? X_DIM : n->C;
        float f = keep[blk[k][1]];
        for (int c = 0; c < w; c++)
            row[blk[k][0] + c] *= f;
    }
}

/* The first layer over the assembled input z = [q | u_long | q (.) u_long | u_short |
 * q (.) u_short | u_tin | cross | dense] (training, evaluation over many users, small serving
 * batches): a1 = W1 z + b1. */
static void head_first(rank_net *n, const mdl_model *m, const rank_batch *bt) {
    const mdl_config *cfg = &n->cfg;
    const mdl_params *p = &m->p;
    int C = n->C, D = n->D;
    size_t cb = (size_t)C * sizeof(float);
    uint32_t B = n->B;
    for (uint32_t i = 0; i < B; i++) {
        float *z = n->z + (size_t)i * D;
        const float *q = n->q + (size_t)i * C;
        size_t row = (size_t)i * C;
        memcpy(z, q, cb);
        if (n->col.ul >= 0) {
            memcpy(z + n->col.ul, n->ulong + row, cb);
            rank_mul_forward(z + n->col.ulq, q, n->ulong + row, C);
        }
        if (n->col.us >= 0) memcpy(z + n->col.us, n->ushort + row, cb);
        if (n->col.usq >= 0) rank_mul_forward(z + n->col.usq, q, n->ushort + row, C);
        if (n->col.ut >= 0) memcpy(z + n->col.ut, n->utin + row, cb);
        if (n->col.cross >= 0)
            memcpy(z + n->col.cross, n->xf + (size_t)i * X_DIM, X_DIM * sizeof *z);
        if (cfg->n_dense) {
            const rank_history *h = &bt->users[bt->user ? bt->user[n->perm[i]] : 0];
            if (h->dense)
                memcpy(z + n->col.dense, h->dense, cfg->n_dense * sizeof *z);
            else
                memset(z + n->col.dense, 0, cfg->n_dense * sizeof *z);
        }
        if (bt->branch_keep)
            scale_branches(n, z, bt->branch_keep + (size_t)n->perm[i] * RANK_BRANCHES);
    }
    const rank_engine *e = bt->engine;
    if (e && e->isa != RANK_ISA_FP32) {
        rank_pseg sg[RANK_ENGINE_SEGS];
        for (int k = 0; k < e->w1.n; k++)
            sg[k] = (rank_pseg){n->z + e->w1.off[k], D, &e->w1.w[k]};
        rank_pgemm(n->a1, n->H1, (int)B, sg, e->w1.n, p->b1, 0, n->pg_scr);
    } else {
        rank_matmul_forward(n->a1, n->z, p->w1, p->b1, (int)B, D, n->H1);
    }
}

/* Serving (one user, many candidates): the first layer is linear in each input block, so the
 * blocks that depend on the user alone fold in before the candidates multiply:
 *   dense and avgpool's u_long:  W1_blk u, once, into the starting row (with b1);
 *   sdim's u_long = (1/S) sum_i Un[i][sig_i]:  W1_ul u_long = sum_i P[i][sig_i] with
 *     P = (1/S) Un W1_ul^T, (S nb) rows computed once, then a gather per candidate;
 *   u_short = att hs:  W1_us u_short = att (hs W1_us^T): N columns of W1 once, and the (B, N)
 *     attention weights join the candidate sgemm's input.
 * Only q, q (.) u_long, q (.) u_short, u_tin, cross (and attention's u_long) go through the
 * (B, D') x (D', H1) sgemm; q (.) u_short needs u_short itself, att hs, per block.
 * Same sums in another order: the scores match head_first to float rounding (tested). Then the
 * ReLU, the second layer and the output, all over blocks of RANK_HEAD_BLOCK candidates. */
/* The folded head's candidate-dependent column blocks (C wide each), in the order head_folded
 * writes them; the cross block, if any, follows them. */
static int head_blocks_cfg(const mdl_config *cfg, const mdl_mlp_cols *col, int *blk) {
    int nblk = 0;
    blk[nblk++] = 0;
    if (cfg->long_kind == MDL_LONG_ATTN) blk[nblk++] = col->ul;
    if (col->ul >= 0) blk[nblk++] = col->ulq;
    if (col->usq >= 0) blk[nblk++] = col->usq;
    if (col->ut >= 0) blk[nblk++] = col->ut;
    return nblk;
}

static int head_blocks(const rank_net *n, int *blk) {
    return head_blocks_cfg(&n->cfg, &n->col, blk);
}

int rank_net_head_cols(const mdl_config *cfg, int *cols) {
    mdl_mlp_cols col;
    int blk[5], C = (int)cfg->C, k = 0;
    mdl_mlp_layout(cfg, &col);
    int nblk = head_blocks_cfg(cfg, &col, blk);
    for (int b = 0; b < nblk; b++)
        for (int c = 0; c < C; c++, k++)
            if (cols) cols[k] = blk[b] + c;
    if (col.cross >= 0)
        for (int c = 0; c < X_DIM; c++, k++)
            if (cols) cols[k] = col.cross + c;
    return k;
}

unsigned long long rank_net_route_fallbacks(const rank_net *n) {
    return n->route.fallbacks;
}

/* The q terms of candidates b0 .. b0+nbk-1 into n->qptr: found in the cache, or computed for
 * all the misses at once by the path's GEMM on W1's q block (segment 0 of the engine's folded
 * head: the same kernel and weights that would have multiplied q in the head), into n->qm16,
 * whose rows the caller stores once the block is done. Returns the number of misses (listed in
 * n->qmiss). */
static uint32_t q_rows(rank_net *n, rank_qcache *qc, const rank_engine *e, uint32_t b0,
                       uint32_t nbk) {
    int C = n->C, H1 = n->H1;
    uint32_t nm = 0;
    for (uint32_t i = b0; i < b0 + nbk; i++) {
        if (i + 8 < b0 + nbk) rank_qcache_prefetch(qc, n->cir[i + 8], n->ccr[i + 8]);
        n->qptr[i - b0] = rank_qcache_find(qc, n->cir[i], n->ccr[i]);
        if (!n->qptr[i - b0]) {
            memcpy(n->qm_a + (size_t)nm * C, n->q + (size_t)i * C, (size_t)C * sizeof *n->qm_a);
            n->qmiss[nm++] = i;
        }
    }
    if (!nm) return 0;
    rank_pseg sg = {n->qm_a, C, &e->w1c.w[0]};
    rank_pgemm(n->qm_y, H1, (int)nm, &sg, 1, NULL, 0, n->pg_scr);
    rank_f32_to_f16(n->qm16, n->qm_y, (size_t)nm * H1);
    for (uint32_t k = 0; k < nm; k++)
        n->qptr[n->qmiss[k] - b0] = n->qm16 + (size_t)k * H1;
    return nm;
}

static void head_folded(rank_net *n, const mdl_model *m, const rank_batch *bt) {
    const mdl_config *cfg = &n->cfg;
    const mdl_params *p = &m->p;
    const rank_history *h = &bt->users[0];
    int C = n->C, D = n->D, H1 = n->H1, H2 = n->H2;
    uint32_t B = n->B;
    int o_ul = n->col.ul, o_us = n->col.us, o_usq = n->col.usq, o_ut = n->col.ut;
    /* per request: the starting row, W1's candidate-dependent blocks side by side, and the
     * per-bucket and per-recent-row projections */
    float *r = n->hrow;
    memcpy(r, p->b1, (size_t)H1 * sizeof *r);
    for (int j = 0; j < H1; j++) {
        const float *w = p->w1 + (size_t)j * D;
        if (cfg->n_dense && h->dense)
            r[j] += rank_dot(w + n->col.dense, h->dense, (int)cfg->n_dense);
        if (cfg->long_kind == MDL_LONG_AVGPOOL) r[j] += rank_dot(w + o_ul, n->ulong, C);
    }
    int blk[5], nblk = head_blocks(n, blk); /* in the order the loop below writes them */
    const rank_engine *e = bt->engine && bt->engine->isa != RANK_ISA_FP32 ? bt->engine : NULL;
    /* recent rows (both branches use the same ones); none: u_short = 0 and TIN pools nothing */
    int nr = o_us >= 0 || o_ut >= 0 ? (int)(n->roff[1] - n->roff[0]) : 0;
    int nu = o_us >= 0 ? nr : 0;
    /* one sgemm per block: z' = [blocks | cross | short weights (nu)],
     * W' = [W1 blocks | W1 cross | W1_us hs^T] */
    int nx = n->col.cross >= 0 ? X_DIM : 0, Ds = nblk * C + nx, Dw = Ds + nu;
    for (int j = 0; j < H1 && !e; j++) { /* an engine has them packed */
        for (int k = 0; k < nblk; k++)
            memcpy(n->w1sel + (size_t)j * Dw + k * C, p->w1 + (size_t)j * D + blk[k],
                   (size_t)C * sizeof(float));
        if (nx)
            memcpy(n->w1sel + (size_t)j * Dw + nblk * C, p->w1 + (size_t)j * D + n->col.cross,
                   (size_t)nx * sizeof(float));
    }
    rank_pw pw_short;
    if (nu > 0 && e) { /* W1_us hs^T, (H1, nu), packed for the engine's path */
        rank_gemm(0, 1, H1, nu, C, 1.f, p->w1 + o_us, D, n->hs, C, 0.f, n->w1sel, nu);
        rank_pw_wrap(&pw_short, e->isa, H1, nu, n->short_buf);
        rank_pw_pack(&pw_short, n->w1sel, (size_t)nu, 1, nu, 1.f);
    } else if (nu > 0) {
        rank_gemm(0, 1, H1, nu, C, 1.f, p->w1 + o_us, D, n->hs, C, 0.f, n->w1sel + Ds, Dw);
    }
    if (cfg->long_kind == MDL_LONG_SDIM)
        rank_gemm(0, 1, n->S * n->nb, H1, C, 1.f / (float)n->S, n->Un, C, p->w1 + o_ul, D, 0.f,
                  n->Pl, H1);
    int pl16 = e && e->gather_f16 && cfg->long_kind == MDL_LONG_SDIM;
    /* q's first-layer term from the per-item cache (rank_qcache.h), not the GEMM */
    int qc = e && e->gather_f16 && bt->qcache;
    if (pl16) rank_f32_to_f16(n->Pl16, n->Pl, (size_t)n->S * n->nb * H1);

    /* per block of candidates, every step from the short and TIN attention to the output; a
     * routed forward packs the recent rows' keys and values once for all blocks */
    if (nu > 0) {
        rank_blas_pin(n->k2);
        rank_blas_pin(n->hs);
    }
    if (o_ut >= 0 && nr > 0) {
        rank_blas_pin(n->et); /* keys and values: two packs */
        rank_blas_pin(n->et);
    }
    for (uint32_t b0 = 0; b0 < B; b0 += RANK_HEAD_BLOCK) {
        uint32_t nbk = B - b0 < RANK_HEAD_BLOCK ? B - b0 : RANK_HEAD_BLOCK;
        float *a1 = n->a1 + (size_t)b0 * H1, *a2 = n->a2 + (size_t)b0 * H2;
        float *zsel = n->zsel + (size_t)b0 * Dw;
        if (o_us >= 0 || o_ut >= 0) /* short and TIN for the block (u_short for q (.) u_short) */
            recent_candidates(n, m, 0, b0, nbk, o_usq >= 0);
        for (uint32_t i = 0; nu > 0 && i < nbk; i++) /* the short weights join the sgemm */
            memcpy(zsel + (size_t)i * Dw + Ds, n->att_s + (size_t)(b0 + i) * nu,
                   (size_t)nu * sizeof *n->att_s);
        for (uint32_t i = b0; i < b0 + nbk; i++) {
            float *zs = n->zsel + (size_t)i * Dw;
            size_t row = (size_t)i * C;
            if (!qc) memcpy(zs, n->q + row, (size_t)C * sizeof *zs);
            zs += C;
            if (cfg->long_kind == MDL_LONG_ATTN) {
                memcpy(zs, n->ulong + row, (size_t)C * sizeof *zs);
                zs += C;
            }
            if (o_ul >= 0) {
                rank_mul_forward(zs, n->q + row, n->ulong + row, C);
                zs += C;
            }
            if (o_usq >= 0) {
                rank_mul_forward(zs, n->q + row, n->ushort + row, C);
                zs += C;
            }
            if (o_ut >= 0) {
                memcpy(zs, n->utin + row, (size_t)C * sizeof *zs);
                zs += C;
            }
            if (nx) memcpy(zs, n->xf + (size_t)i * X_DIM, (size_t)nx * sizeof *zs);
        }
        /* the gather starts from r */
        int fused = qc || (e && cfg->long_kind == MDL_LONG_SDIM && pl16);
        for (uint32_t i = 0; i < nbk && !fused; i++)
            memcpy(a1 + (size_t)i * H1, r, (size_t)H1 * sizeof *r);
        if (e) { /* the gather first, then both column groups in one pass with the ReLU */
            /* SDIM's rows (pl16) and the cached q terms (qc) start from r; a block's q misses
             * are computed together and stored after its gather */
            if (fused) {
                uint32_t nm = qc ? q_rows(n, bt->qcache, e, b0, nbk) : 0;
                rank_gather_add_f16(a1, r, pl16 ? n->Pl16 : NULL,
                                    pl16 ? n->csig + (size_t)b0 * n->S : NULL, (int)nbk,
                                    pl16 ? n->S : 0, n->nb, H1, qc ? n->qptr : NULL);
                for (uint32_t k = 0; k < nm; k++)
                    rank_qcache_put(bt->qcache, n->cir[n->qmiss[k]], n->ccr[n->qmiss[k]],
                                    n->qm16 + (size_t)k * H1);
            } else if (cfg->long_kind == MDL_LONG_SDIM)
                rank_gather_add(a1, n->Pl, n->csig + (size_t)b0 * n->S, (int)nbk, n->S, n->nb, H1);
            rank_pseg sg[RANK_ENGINE_SEGS + 1];
            int ns = 0;
            for (int k = qc ? 1 : 0; k < e->w1c.n; k++) /* segment 0 is q's: cached instead */
                sg[ns++] = (rank_pseg){zsel + e->w1c.off[k], Dw, &e->w1c.w[k]};
            if (nu > 0) sg[ns++] = (rank_pseg){zsel + Ds, Dw, &pw_short};
            rank_pgemm(a1, H1, (int)nbk, sg, ns, NULL, RANK_PG_ACC | RANK_PG_RELU, n->pg_scr);
            rank_pseg s2 = {a1, H1, &e->w2};
            rank_pgemm(a2, H2, (int)nbk, &s2, 1, p->b2, RANK_PG_RELU, n->pg_scr);
        } else {
            if (Dw > 0) rank_gemm(0, 1, (int)nbk, H1, Dw, 1.f, zsel, Dw, n->w1sel, Dw, 1.f, a1, H1);
            if (cfg->long_kind == MDL_LONG_SDIM)
                rank_gather_add(a1, n->Pl, n->csig + (size_t)b0 * n->S, (int)nbk, n->S, n->nb, H1);
            rank_relu_forward(a1, a1, (int)nbk * H1);
            rank_matmul_forward(a2, a1, p->w2, p->b2, (int)nbk, H1, H2);
            rank_relu_forward(a2, a2, (int)nbk * H2);
        }
        for (uint32_t i = 0; i < nbk; i++)
            n->logit[b0 + i] = p->b3[0] + rank_dot(a2 + (size_t)i * H2, p->w3, H2);
    }
    rank_blas_unpin();
}

static void forward_body(rank_net *n, const mdl_model *m, const rank_batch *bt, float *logits,
                         float *probs);

int rank_net_forward(rank_net *n, const mdl_model *m, const rank_batch *bt, float *logits,
                     float *probs) {
    int rc = check_batch(n, m, bt);
    if (rc) return rc;
    if (bt->engine && !n->routed) return CORE_EINVAL; /* training nets take no engine */
    if (bt->engine) {
        n->route.isa = rank_isa_companion(bt->engine->isa);
        n->route.known = bt->engine->known;
        n->route.n_known = bt->engine->n_known;
    }
    rank_route *prev = rank_blas_route(bt->engine ? &n->route : NULL);
    forward_body(n, m, bt, logits, probs);
    rank_blas_route(prev);
    return CORE_OK;
}

static void forward_body(rank_net *n, const mdl_model *m, const rank_batch *bt, float *logits,
                         float *probs) {
    const mdl_config *cfg = &n->cfg;
    const mdl_params *p = &m->p;
    int C = n->C;
    uint32_t B = bt->B, U = bt->U;
    n->B = B;
    n->U = U;

    if (n->mark_i) { /* forget the previous batch's touched rows */
        for (uint32_t i = 0; i < n->n_ti; i++)
            n->mark_i[n->t_ir[i]] = 0;
        for (uint32_t i = 0; i < n->n_tc; i++)
            n->mark_c[n->t_cr[i]] = 0;
        n->n_ti = n->n_tc = 0;
    }

    /* group candidates by user: stable counting sort */
    memset(n->goff, 0, (U + 1) * sizeof *n->goff);
    for (uint32_t b = 0; b < B; b++)
        n->goff[(bt->user ? bt->user[b] : 0) + 1]++;
    for (uint32_t u = 0; u < U; u++)
        n->goff[u + 1] += n->goff[u];
    for (uint32_t b = 0; b < B; b++) {
        uint32_t i = n->goff[bt->user ? bt->user[b] : 0]++;
        n->perm[i] = b;
        n->iperm[b] = i;
    }
    for (uint32_t u = U; u > 0; u--)
        n->goff[u] = n->goff[u - 1];
    n->goff[0] = 0;

    for (uint32_t i = 0; i < B; i++) {
        uint32_t b = n->perm[i];
        n->cir[i] = mdl_item_row(m, bt->item_id[b]);
        n->ccr[i] = mdl_cat_row(m, bt->category_id[b]);
        if (n->mark_i) touch(n, n->cir[i], n->ccr[i]);
    }
    /* serving folds the user-side first-layer terms when the batch is one user with enough
     * candidates to repay the per-user projections (S nb bucket rows, N short rows) */
    n->fold = !n->sh.train && !n->sh.no_fold && U == 1 && B >= (uint32_t)(n->S * n->nb) &&
              B >= (uint32_t)n->N;
    CORE_ASSERT(!bt->branch_keep ||
                n->sh.train); /* dropout is training's: serving never folds it */
    rank_embed_forward(n->q, n->cir, n->ccr, p->item_emb, p->cat_emb, (int)B, C);
    if (n->memo_stamp && ++n->stamp == 0) { /* wrapped: forget every slot */
        memset(n->memo_stamp, 0, ((size_t)n->memo_mask + 1) * sizeof *n->memo_stamp);
        n->stamp = 1;
    }
    if (cfg->long_kind == MDL_LONG_SDIM) {
        for (uint32_t i = 0; i < B; i++) {
            if (bt->sigcache && i + 8 < B) /* cache slots are misses too: start them early */
                enc_sigcache_prefetch(bt->sigcache, n->cir[i + 8], n->ccr[i + 8]);
            sign_one(n->csig + (size_t)i * n->S, n, m, bt->sigcache, n->cir[i], n->ccr[i],
                     n->q + (size_t)i * C);
        }
    }
    if (cfg->long_kind != MDL_LONG_NONE) forward_long(n, m, bt);
    if (cfg->short_kind != MDL_SHORT_NONE || cfg->temporal_kind != MDL_TEMPORAL_NONE)
        forward_recent(n, m, bt);
    if (cfg->cross) forward_cross(n, bt);

    if (n->fold) {
        head_folded(n, m, bt);
    } else {
        head_first(n, m, bt);
        rank_relu_forward(n->a1, n->a1, (int)B * n->H1);
        if (bt->engine && bt->engine->isa != RANK_ISA_FP32) {
            rank_pseg s2 = {n->a1, n->H1, &bt->engine->w2};
            rank_pgemm(n->a2, n->H2, (int)B, &s2, 1, p->b2, RANK_PG_RELU, n->pg_scr);
        } else {
            rank_matmul_forward(n->a2, n->a1, p->w2, p->b2, (int)B, n->H1, n->H2);
            rank_relu_forward(n->a2, n->a2, (int)B * n->H2);
        }
        for (uint32_t i = 0; i < B; i++) /* one output: a dot product, not a one-column sgemm */
            n->logit[i] = p->b3[0] + rank_dot(n->a2 + (size_t)i * n->H2, p->w3, n->H2);
    }
    for (uint32_t i = 0; i < B; i++) {
        uint32_t b = n->perm[i];
        float lg = n->logit[i] += p->item_bias[n->cir[i]];
        if (logits) logits[b] = lg;
        if (probs) probs[b] = 1.f / (1.f + expf(-lg));
    }
}

// ---------------------------------------------------------------------------------------------
// Backward

static void backward_block(rank_net *n, const mdl_model *m, const mdl_params *g, int l, int NNu) {
    const mdl_block *w = &m->p.blk[l];
    const mdl_block *gw = &g->blk[l];
    int C = n->C, F = n->F, NH = n->NH;
    size_t NC = (size_t)NNu * C;
    /* n->dx holds dL/d(block output) = d(h + f2): both the residual and the FFN get it */
    memcpy(n->dh, n->dx, NC * sizeof(float));
    memset(n->dr, 0, (size_t)NNu * F * sizeof(float));
    rank_matmul_backward(n->dr, gw->w_ff2, gw->b_ff2, n->dx, n->f1[l], w->w_ff2, NNu, F, C);
    memset(n->df, 0, (size_t)NNu * F * sizeof(float));
    rank_relu_backward(n->df, n->dr, n->f1[l], NNu * F);
    memset(n->dt2, 0, NC * sizeof(float));
    rank_matmul_backward(n->dt2, gw->w_ff1, gw->b_ff1, n->df, n->ln2[l], w->w_ff1, NNu, C, F);
    rank_layernorm_backward(n->dh, gw->ln2_w, gw->ln2_b, n->dt2, n->h[l], w->ln2_w, n->ln2m[l],
                            n->ln2r[l], NNu, C);
    /* h = x + attn: the block input gets dh directly and through attention */
    memcpy(n->dx, n->dh, NC * sizeof(float));
    memset(n->dt2, 0, NC * sizeof(float));
    rank_matmul_backward(n->dt2, gw->w_o, gw->b_o, n->dh, n->y[l], w->w_o, NNu, C, C);
    memset(n->dqkv, 0, NC * 3 * sizeof(float));
    size_t matt_off = 0;
    for (uint32_t u = 0; u < n->U; u++) {
        uint32_t r0 = n->roff[u], nu = n->roff[u + 1] - r0;
        rank_mha_backward(n->dqkv + (size_t)r0 * 3 * C, n->datt, n->dt2 + (size_t)r0 * C,
                          n->matt[l] + matt_off, n->qkv[l] + (size_t)r0 * 3 * C, (int)nu, C, NH);
        matt_off += (size_t)NH * nu * nu;
    }
    memset(n->dt2, 0, NC * sizeof(float));
    rank_matmul_backward(n->dt2, gw->w_qkv, gw->b_qkv, n->dqkv, n->ln1[l], w->w_qkv, NNu, C, 3 * C);
    rank_layernorm_backward(n->dx, gw->ln1_w, gw->ln1_b, n->dt2, n->bx[l], w->ln1_w, n->ln1m[l],
                            n->ln1r[l], NNu, C);
}

static void backward_recent(rank_net *n, const mdl_model *m, const mdl_params *g) {
    const mdl_params *p = &m->p;
    const mdl_config *cfg = &n->cfg;
    int C = n->C, NNu = (int)n->roff[n->U], B = (int)n->B;
    size_t NC = (size_t)NNu * C;
    float scale = 1.f / sqrtf((float)C);
    memset(n->dxr, 0, NC * sizeof(float));
    if (cfg->temporal_kind != MDL_TEMPORAL_NONE) {
        memset(n->dvt, 0, (size_t)B * C * sizeof(float));
        memset(n->dpool, 0, (size_t)B * C * sizeof(float));
        memset(n->det, 0, NC * sizeof(float));
        rank_mul_backward(n->dvt, n->dpool, n->dutin, n->vt, n->pool_t, B * C);
        for (uint32_t u = 0; u < n->U; u++) {
            uint32_t g0 = n->goff[u], Bu = n->goff[u + 1] - g0, r0 = n->roff[u];
            uint32_t nu = n->roff[u + 1] - r0;
            const float *eu = n->et + (size_t)r0 * C;
            float *deu = n->det + (size_t)r0 * C;
            rank_tattn_backward(n->dvt + (size_t)g0 * C, deu, deu, n->datt,
                                n->dpool + (size_t)g0 * C, n->att_t + n->aoff_rec[u],
                                n->vt + (size_t)g0 * C, eu, eu, (int)Bu, (int)nu, C, scale);
        }
        for (int b = 0; b < B; b++)
            for (int c = 0; c < C; c++) {
                float d = n->dvt[(size_t)b * C + c];
                n->dq[(size_t)b * C + c] += d;
                g->tin_emb[c] += d;
            }
        for (int r = 0; r < NNu; r++) {
            float *gt = g->tin_emb + (size_t)n->rtb[r] * C;
            for (int c = 0; c < C; c++) {
                float d = n->det[(size_t)r * C + c];
                n->dxr[(size_t)r * C + c] += d;
                gt[c] += d;
            }
        }
    }
    if (cfg->short_kind != MDL_SHORT_NONE) {
        memset(n->dk2, 0, NC * sizeof(float));
        memset(n->dkp, 0, NC * sizeof(float));
        memset(n->dhs, 0, NC * sizeof(float));
        for (uint32_t u = 0; u < n->U; u++) {
            uint32_t g0 = n->goff[u], Bu = n->goff[u + 1] - g0, r0 = n->roff[u];
            uint32_t nu = n->roff[u + 1] - r0;
            rank_tattn_backward(
                n->dq + (size_t)g0 * C, n->dk2 + (size_t)r0 * C, n->dhs + (size_t)r0 * C, n->datt,
                n->dushort + (size_t)g0 * C, n->att_s + n->aoff_rec[u], n->q + (size_t)g0 * C,
                n->k2 + (size_t)r0 * C, n->hs + (size_t)r0 * C, (int)Bu, (int)nu, C, scale);
        }
        /* k2 = kp Wq: dkp += dk2 Wq^T, dWq += kp^T dk2 */
        rank_gemm(0, 1, NNu, C, C, 1.f, n->dk2, C, p->w_tq, C, 1.f, n->dkp, C);
        rank_gemm(1, 0, C, C, NNu, 1.f, n->kp, C, n->dk2, C, 1.f, g->w_tq, C);
        rank_matmul_backward(n->dhs, g->w_tk, NULL, n->dkp, n->hs, p->w_tk, NNu, C, C);
        if (cfg->short_kind == MDL_SHORT_SELFATTN) {
            memset(n->dx, 0, NC * sizeof(float));
            rank_layernorm_backward(n->dx, g->lnf_w, g->lnf_b, n->dhs, n->bx[n->L], p->lnf_w,
                                    n->lnfm, n->lnfr, NNu, C);
            for (int l = n->L - 1; l >= 0; l--)
                backward_block(n, m, g, l, NNu);
            for (int r = 0; r < NNu; r++) {
                float *gp = g->pos_emb + (size_t)n->rpos[r] * C;
                for (int c = 0; c < C; c++) {
                    float d = n->dx[(size_t)r * C + c];
                    n->dxr[(size_t)r * C + c] += d;
                    gp[c] += d;
                }
            }
        } else {
            for (size_t i = 0; i < NC; i++)
                n->dxr[i] += n->dhs[i];
        }
    }
    rank_embed_backward(g->item_emb, g->cat_emb, n->dxr, n->rir, n->rcr, NNu, C);
}

static void backward_long(rank_net *n, const mdl_model *m, const mdl_params *g) {
    int C = n->C, S = n->S, nb = n->nb;
    uint32_t k = n->cfg.long_kind;
    size_t TTu = n->woff[n->U];
    memset(n->dxw, 0, TTu * C * sizeof(float));
    if (k == MDL_LONG_ATTN) {
        /* Query side, q2 = q M:   dq += dq2 M^T, dM += q^T dq2.
         * Key side, k2 = x M^T:   dx += dk2 M,   dM += dk2^T x  (x also gets dv as the value).
         * M = Wq^T Wk, M_ij = sum_o Wq_oi Wk_oj: dWq += Wk dM^T, dWk += Wq dM. */
        float scale = 1.f / sqrtf((float)C);
        memset(n->dMl, 0, (size_t)C * C * sizeof(float));
        for (uint32_t u = 0; u < n->U; u++) {
            uint32_t g0 = n->goff[u], Bu = n->goff[u + 1] - g0, w0 = n->woff[u];
            uint32_t T = n->woff[u + 1] - w0;
            const float *xu = n->xw + (size_t)w0 * C, *qu = n->q + (size_t)g0 * C;
            const float *att = n->att_long + n->aoff_long[u], *dout = n->dulong + (size_t)g0 * C;
            float *dxu = n->dxw + (size_t)w0 * C, *dqu = n->dq + (size_t)g0 * C;
            int side = long_attn_side(Bu, T);
            if (side == LONG_ATTN_QUERY) {
                float *dq2 = n->dq2l + (size_t)g0 * C;
                const float *q2 = n->q2l + (size_t)g0 * C;
                memset(dq2, 0, (size_t)Bu * C * sizeof(float));
                rank_tattn_backward(dq2, dxu, dxu, n->datt, dout, att, q2, xu, xu, (int)Bu, (int)T,
                                    C, scale);
                rank_gemm(0, 1, (int)Bu, C, C, 1.f, dq2, C, n->Ml, C, 1.f, dqu, C);
                rank_gemm(1, 0, C, C, (int)Bu, 1.f, qu, C, dq2, C, 1.f, n->dMl, C);
            } else if (side == LONG_ATTN_KEY) {
                float *dk2 = n->dk2l + (size_t)n->lkoff[u] * C;
                const float *k2 = n->k2l + (size_t)n->lkoff[u] * C;
                memset(dk2, 0, (size_t)T * C * sizeof(float));
                rank_tattn_backward(dqu, dk2, dxu, n->datt, dout, att, qu, k2, xu, (int)Bu, (int)T,
                                    C, scale);
                rank_gemm(0, 0, (int)T, C, C, 1.f, dk2, C, n->Ml, C, 1.f, dxu, C);
                rank_gemm(1, 0, C, C, (int)T, 1.f, dk2, C, xu, C, 1.f, n->dMl, C);
            }
        }
        rank_gemm(0, 1, C, C, C, 1.f, m->p.w_lk, C, n->dMl, C, 1.f, g->w_lq, C);
        rank_gemm(0, 0, C, C, C, 1.f, m->p.w_lq, C, n->dMl, C, 1.f, g->w_lk, C);
    } else {
        size_t VS = (size_t)S * nb * C;
        for (uint32_t u = 0; u < n->U; u++) {
            uint32_t g0 = n->goff[u], Bu = n->goff[u + 1] - g0, w0 = n->woff[u];
            uint32_t T = n->woff[u + 1] - w0;
            /* buckets read from a store carry no path back to the embeddings */
            CORE_ASSERT(n->built[u] || !Bu);
            if (!Bu || !T) continue;
            float *dV = n->dV + (size_t)u * VS;
            memset(dV, 0, VS * sizeof(float));
            if (k == MDL_LONG_SDIM) {
                float *dUn = n->dUn + (size_t)u * VS;
                memset(dUn, 0, VS * sizeof(float));
                rank_sdim_backward(dUn, n->dulong + (size_t)g0 * C, n->csig + (size_t)g0 * S,
                                   (int)Bu, S, nb, C);
                rank_l2rows_backward(dV, dUn, n->Un + (size_t)u * VS, n->Unorm + (size_t)u * S * nb,
                                     S * nb, C, RANK_SDIM_EPS);
            } else {
                memset(n->dsum, 0, (size_t)C * sizeof(float));
                for (uint32_t b = 0; b < Bu; b++)
                    for (int c = 0; c < C; c++)
                        n->dsum[c] += n->dulong[(size_t)(g0 + b) * C + c];
                rank_avgpool_backward(dV, n->dsum, n->wlen[u], nb, C);
            }
            rank_buckets_backward(n->dxw + (size_t)w0 * C, dV, n->wsig + (size_t)w0 * S, (int)T, S,
                                  nb, C);
        }
    }
    rank_embed_backward(g->item_emb, g->cat_emb, n->dxw, n->wir, n->wcr, (int)TTu, C);
}

void rank_net_backward(rank_net *n, const mdl_model *m, const rank_batch *bt, const float *dlogits,
                       const mdl_params *g) {
    CORE_ASSERT(n->sh.train);
    CORE_ASSERT(bt->B == n->B && bt->U == n->U);
    const mdl_config *cfg = &n->cfg;
    const mdl_params *p = &m->p;
    int B = (int)n->B, C = n->C, D = n->D, H1 = n->H1, H2 = n->H2;
    for (int i = 0; i < B; i++) {
        n->dl[i] = dlogits[n->perm[i]];
        g->item_bias[n->cir[i]] += n->dl[i];
    }
    /* head */
    memset(n->da2, 0, (size_t)B * H2 * sizeof(float));
    rank_matmul_backward(n->da2, g->w3, g->b3, n->dl, n->a2, p->w3, B, H2, 1);
    memset(n->dp2, 0, (size_t)B * H2 * sizeof(float));
    rank_relu_backward(n->dp2, n->da2, n->a2, B * H2);
    memset(n->da1, 0, (size_t)B * H1 * sizeof(float));
    rank_matmul_backward(n->da1, g->w2, g->b2, n->dp2, n->a1, p->w2, B, H1, H2);
    memset(n->dp1, 0, (size_t)B * H1 * sizeof(float));
    rank_relu_backward(n->dp1, n->da1, n->a1, B * H1);
    memset(n->dz, 0, (size_t)B * D * sizeof(float));
    rank_matmul_backward(n->dz, g->w1, g->b1, n->dp1, n->z, p->w1, B, D, H1);
    /* split dz along the blocks; a product block q (.) u gives dz u to q and dz q to u (the
     * hash passes nothing to q) */
    size_t cb = (size_t)C * sizeof(float);
    for (int i = 0; i < B; i++) {
        float *dz = n->dz + (size_t)i * D;
        size_t row = (size_t)i * C;
        if (bt->branch_keep)
            scale_branches(n, dz, bt->branch_keep + (size_t)n->perm[i] * RANK_BRANCHES);
        memcpy(n->dq + row, dz, cb);
        if (n->col.ul >= 0) {
            memcpy(n->dulong + row, dz + n->col.ul, cb);
            rank_mul_backward(n->dq + row, n->dulong + row, dz + n->col.ulq, n->q + row,
                              n->ulong + row, C);
        }
        if (n->col.us >= 0) memcpy(n->dushort + row, dz + n->col.us, cb);
        if (n->col.usq >= 0)
            rank_mul_backward(n->dq + row, n->dushort + row, dz + n->col.usq, n->q + row,
                              n->ushort + row, C);
        if (n->col.ut >= 0) memcpy(n->dutin + row, dz + n->col.ut, cb);
    }
    if (cfg->long_kind != MDL_LONG_NONE) backward_long(n, m, g);
    if (cfg->short_kind != MDL_SHORT_NONE || cfg->temporal_kind != MDL_TEMPORAL_NONE)
        backward_recent(n, m, g);
    rank_embed_backward(g->item_emb, g->cat_emb, n->dq, n->cir, n->ccr, B, C);
}

void rank_net_touched(const rank_net *n, const uint32_t **item_rows, uint32_t *n_item,
                      const uint32_t **cat_rows, uint32_t *n_cat) {
    CORE_ASSERT(n->sh.train);
    *item_rows = n->t_ir;
    *n_item = n->n_ti;
    *cat_rows = n->t_cr;
    *n_cat = n->n_tc;
}

const float *rank_net_head_input(const rank_net *n, uint32_t b) {
    CORE_ASSERT(b < n->B && !n->fold);
    return n->z + (size_t)n->iperm[b] * n->D;
}

int rank_net_folded(const rank_net *n) {
    return n->fold;
}

static uint64_t pattern_mix(uint64_t h, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint64_t)(x[i] > 0.f)) * 0x100000001B3ull + i;
    return h;
}

uint64_t rank_net_relu_pattern(const rank_net *n) {
    uint64_t h = 0xCBF29CE484222325ull;
    h = pattern_mix(h, n->a1, (size_t)n->B * n->H1);
    h = pattern_mix(h, n->a2, (size_t)n->B * n->H2);
    if (n->cfg.short_kind == MDL_SHORT_SELFATTN)
        for (int l = 0; l < n->L; l++)
            h = pattern_mix(h, n->f1[l], (size_t)n->roff[n->U] * n->F);
    return h;
}
