/* rank_net.h: the ranking network, forward and backward, batched over B (candidate, user) pairs.
 *
 * One code path for every variant; the model's config picks the branches (docs/MODEL.md section 5):
 *   long     none | avgpool | sdim | attention     (window of T behaviors per user)
 *   short    none | selfattn | din                 (last N recent behaviors per user)
 *   temporal none | tin                            (same recent behaviors, time-gap buckets)
 *
 * long = attention (the DIN-long baseline) is exact target attention over the raw window with
 * learned projections: u_long = sum_k a_k x_k, a = softmax_k(<w_lq q, w_lk x_k> / sqrt(C)); the
 * values are the raw window embeddings, as SDIM sums raw embeddings (the projections' init is in
 * mdl.h, mdl_model_init). M = w_lq^T w_lk is folded
 * once per forward and applied per user on the smaller side (the candidates, or a window shorter
 * than its candidate group), so the per-candidate cost stays two sgemms over blocks of candidates.
 *
 * Per user context (U of them) the candidate-independent work runs once: window and recent
 * embeddings, SDIM bucket sums (taken from the store, or built from the window), the self-attention
 * block(s) and the key projection of the short branch. Per candidate work (B of them) is batched
 * through sgemm: serving is U=1 with up to ~1000 candidates; training batches samples of many
 * users.
 *
 * MLP input, in this order (width mdl_mlp_in_dim(cfg)):
 *   [ q (C) | u_long (C) | q (.) u_long (C) | u_short (C) | q (.) u_short (C) | u_tin (C) |
 *     cross (MDL_CROSS_DIM) | dense (n_dense) ]
 * where the u_long pair is present iff long != none, u_short iff short != none, q (.) u_short iff
 * short != none and the config's q_short is set, u_tin iff temporal != none, cross iff the
 * config's cross is set: eight statistics of the candidate's category and item in the user's raw
 * window (counts, time since the latest, hour- and day-decayed counts, the count at the request's
 * time of day; rank_net.c, forward_cross, defines them). They are functions of the data, so they
 * carry no gradient; W1's columns on them train as any other. Then h1 = relu(W1 z + b1), h2 =
 * relu(W2 h1 + b2), logit = w3 . h2 + b3 + item_bias[row(item)], p = sigmoid(logit).
 *
 * What this file does not do: losses, optimizers, sampling (the trainer owns those), I/O.
 *
 * Threads: a rank_net is one thread's scratch and saved activations; use one per thread. The model
 * is only read. Nothing allocates after rank_net_new.
 */
#ifndef TRAIL_RANK_NET_H
#define TRAIL_RANK_NET_H

#include "enc_simhash.h"
#include "mdl.h"
#include "sch_event.h"

#include <stdint.h>

/* Everything the ranker knows of one user at request time. Pointers are borrowed. */
typedef struct rank_history {
    const float *bucket_sum;    // (S, 2^tau, C) SDIM bucket sums, or NULL: no long-term state
    const uint32_t *bucket_cnt; // (S, 2^tau)
    uint32_t window_len;        /* behaviors behind the buckets (avgpool uses sum/len) */
    const sch_behavior *window; // (T) raw window oldest first: needed by long=attention, and by
                                //     sdim/avgpool when bucket_sum is NULL (buckets built from it)
    uint32_t T;
    const sch_behavior *recent; // (N) recent behaviors oldest first (at most cfg.n_recent used)
    uint32_t N;
    int64_t now_ts;     /* request time, seconds */
    const float *dense; // (n_dense) or NULL (zeros)
} rank_history;

/* Sizes a rank_net is built for; a batch beyond any of them is refused with CORE_ETOOBIG. */
typedef struct rank_net_shape {
    uint32_t max_B;            /* candidates per batch */
    uint32_t max_U;            /* user contexts per batch */
    uint32_t max_T;            /* window behaviors per user (long = attention, cross, or buckets
                                  built from the window); 0 if every user brings stored bucket
                                  sums and the model reads no window (mdl_reads_window) */
    uint32_t max_window_total; /* window behaviors over all users of a batch; 0 = max_U * max_T */
    int train;                 /* 1: save what rank_net_backward needs (and allow it) */
    int no_fold;               /* 1: never fold the head (benchmarks compare the two heads) */
} rank_net_shape;

typedef struct rank_net rank_net;

/* One batch. Users are rank_history contexts (above), one per distinct history:
 * - long = sdim | avgpool: if users[u].bucket_sum is set, the stored buckets are used (serving); if
 *   it is NULL, buckets are built here from users[u].window (training; required for backward).
 *   An empty history (no buckets and T = 0) gives u_long = 0.
 * - long = attention: users[u].window (T behaviors) is attended over directly.
 * - short / temporal: users[u].recent, oldest first; the last min(N, cfg.n_recent) are used, and
 *   TIN buckets the gap users[u].now_ts - ts.
 * - cross: users[u].window (T behaviors) is counted per candidate, whatever the long branch
 *   (the stored buckets do not replace it); T = 0 is an empty history.
 * - dense: users[u].dense (n_dense floats) or NULL for zeros. */
typedef struct rank_batch {
    const rank_history *users; // (U)
    uint32_t U;
    const uint64_t *item_id;     // (B)
    const uint64_t *category_id; // (B)
    const uint32_t *user;        // (B) index into users; NULL means every candidate is user 0
    uint32_t B;
    /* Signatures of candidates (and of window behaviors when buckets are built here) come from this
     * cache when set (serving: the cache must be for this model's current weights); when NULL they
     * are computed from the current embeddings with enc_simhash_sign, once per distinct
     * (item row, category row) per forward (training, whose embeddings change every step). */
    enc_sigcache *sigcache;
    /* Serving: the model's head packed for a compute path (rank_engine.h); the forward then runs
     * every GEMM on that path's kernels. NULL (training, evaluation): OpenBLAS, fp32. Only nets
     * built without shape.train take one. */
    const struct rank_engine *engine;
    /* Serving with an engine whose path gathers in fp16: the candidates' q terms of the first
     * layer come from this per-thread cache (rank_qcache.h), which must be for this model. NULL:
     * q goes through the head's GEMM like the other blocks. */
    struct rank_qcache *qcache;
    /* Training only (branch dropout): per candidate, RANK_BRANCHES multipliers of the head's
     * branch blocks, in the order of enum rank_branch (0 drops the block, 1/(1-p) keeps it);
     * forward and backward must see the same. NULL (evaluation, serving): every block as is. */
    const float *branch_keep; // (B x RANK_BRANCHES)
} rank_batch;

/* The head's branch blocks branch_keep scales: u_long with q (.) u_long, u_short with
 * q (.) u_short, u_tin, the cross statistics. q and dense are never dropped. */
enum rank_branch { RANK_BR_LONG, RANK_BR_SHORT, RANK_BR_TIN, RANK_BR_CROSS, RANK_BRANCHES };

/** @brief Scratch and activations for a model config and the largest batch shape.
 *  @return CORE_OK, CORE_EINVAL (bad shape, message in err), CORE_ENOMEM. */
int rank_net_new(rank_net **out, const mdl_config *cfg, const rank_net_shape *shape, char *err,
                 size_t err_size);
void rank_net_destroy(rank_net *net);
/** @brief Bytes held (for logs and sizing decisions). */
size_t rank_net_bytes(const rank_net *net);

/** @brief Forward pass.
 *  @param[out] logits (B) or NULL; @param[out] probs (B) sigmoid(logits), or NULL.
 *  @return CORE_OK, or CORE_ETOOBIG if the batch exceeds the shape the net was built for,
 *  CORE_EINVAL if the model's config differs from the net's.
 *  @remark In train mode the activations are kept for rank_net_backward on the same batch and
 *  model (both must stay unchanged in between). */
int rank_net_forward(rank_net *net, const mdl_model *m, const rank_batch *bt, float *logits,
                     float *probs);

/** @brief Backward pass of the last forward (train mode only).
 *  @param dlogits (B) dLoss/dlogit per candidate (for binary cross-entropy: p - label, scaled as
 * the trainer wishes).
 *  @param grad parameter gradients, bound with mdl_params_bind to an arena of the model's layout;
 *  every touched tensor is accumulated into (+=). simhash_r is never touched. Of the embedding
 *  tables (item_emb, cat_emb, item_bias) only the rows listed by rank_net_touched change. */
void rank_net_backward(rank_net *net, const mdl_model *m, const rank_batch *bt,
                       const float *dlogits, const mdl_params *grad);

/** @brief Distinct embedding rows the last forward used (candidates, windows, recents), so a
 *  trainer can apply sparse Adam / L2 and zero only those rows. Each list has no duplicates.
 *  item rows index item_emb and item_bias; cat rows index cat_emb.
 *  @remark Train mode only. Pointers valid until the next rank_net_forward on this net. */
void rank_net_touched(const rank_net *net, const uint32_t **item_rows, uint32_t *n_item,
                      const uint32_t **cat_rows, uint32_t *n_cat);

/** @brief The MLP input row of candidate b (input order) from the last forward, mdl_mlp_in_dim(cfg)
 *  floats in the concat order above (so u_long is at offset C when long != none). For tests and
 *  train/serve parity checks. @remark Valid until the next forward on this net, if it did not
 *  fold (rank_net_folded). */
const float *rank_net_head_input(const rank_net *net, uint32_t b);

/** @brief 1 if the last forward folded the user-side first-layer terms (serving: one user, at
 *  least max(S * 2^tau, n_recent) candidates, not train mode); rank_net_head_input is then not
 *  available. */
int rank_net_folded(const rank_net *net);

/** @brief The first layer's candidate-dependent input columns when serving folds the head, in
 *  the order the folded head feeds them (q, [u_long for long = attention], q (.) u_long,
 *  q (.) u_short, u_tin, cross): their indices into W1's D columns go to cols (room for 5C + 8;
 *  NULL only counts). @return their number. */
int rank_net_head_cols(const mdl_config *cfg, int *cols);

/** @brief Calls of the last forwards that a route sent to OpenBLAS because a buffer was too small
 *  (0 when the net sized everything; tests check it). */
unsigned long long rank_net_route_fallbacks(const rank_net *net);

/** @brief A fingerprint of the ReLU on/off pattern of the last forward (MLP and FFN units). The
 *  network is smooth except at ReLU kinks (the hash is frozen by a signature cache), so a
 *  finite-difference step is valid when the pattern does not change; tests use this. */
uint64_t rank_net_relu_pattern(const rank_net *net);

#endif
