/* trn_adam.h: the optimizer: Adam with bias correction, clipping by global norm, optional L2 on the
 * embedding rows a batch touched, and the helpers that keep gradient arenas sparse.
 *
 * A gradient arena has the model arena's layout (mdl_layout). Three tensors are sparse, indexed by
 * embedding row: item_emb and item_bias (item rows) and cat_emb (category rows). Everything after
 * simhash_r (fixed, never trained) is dense. A step reads and writes only the dense region and the
 * rows listed in a trn_rows, so its cost does not grow with the table sizes.
 *
 * Lazy Adam on embeddings: a row the batch did not touch keeps its parameters and its m and v as
 * they are (its moments are not decayed), the usual choice for sparse embeddings; the bias
 * correction uses the global step count for every row. The L2 term (l2/2 * |w|^2 per touched row)
 * is added to the gradient before the global norm is taken, so clipping bounds the whole step.
 */
#ifndef TRAIL_TRN_ADAM_H
#define TRAIL_TRN_ADAM_H

#include "mdl.h"

#include <stddef.h>
#include <stdint.h>

typedef struct trn_adam_conf {
    float lr;     /* 1e-3 */
    float beta1;  /* 0.9 */
    float beta2;  /* 0.999 */
    float eps;    /* 1e-8 */
    float clip;   /* global-norm clip; 0 = off (5, as in TIN's code) */
    float l2_emb; /* L2 on touched embedding rows (item, category, item bias); 0 = off */
} trn_adam_conf;

/* Unique embedding rows a batch touched. */
typedef struct trn_rows {
    const uint32_t *item; // (n_item) item rows (item_emb and item_bias), no duplicates
    uint32_t n_item;
    const uint32_t *cat; // (n_cat) category rows (cat_emb), no duplicates
    uint32_t n_cat;
} trn_rows;

/* Where the sparse tensors and the dense region sit in an arena. */
typedef struct trn_opt {
    size_t item_off, cat_off, bias_off; /* floats from the arena start */
    uint32_t half;                      /* C/2: floats per item or category row */
    size_t dense_off, dense_end;        /* [dense_off, dense_end): every trainable dense tensor */
} trn_opt;

void trn_adam_conf_default(trn_adam_conf *ac);
void trn_opt_init(trn_opt *o, const mdl_config *cfg);

/** @brief Zero the dense region and the listed rows of a gradient arena. */
void trn_opt_zero(const trn_opt *o, float *g, const trn_rows *rows);
/** @brief dst += src over the dense region and the listed rows (the deterministic reduction of
 *  per-thread arenas: call it in thread order). */
void trn_opt_accumulate(const trn_opt *o, float *dst, const float *src, const trn_rows *rows);
/** @brief L2 norm of the gradient over the dense region and the listed rows. */
double trn_opt_grad_norm(const trn_opt *o, const float *g, const trn_rows *rows);

/** @brief One Adam step: adds the L2 term to g on the listed rows, clips by global norm, updates
 *  param, m and v on the dense region and the listed rows, and increments *step.
 *  @param[out] norm the gradient norm before clipping (may be NULL). */
void trn_adam_step(const trn_opt *o, const trn_adam_conf *ac, float *param, float *m, float *v,
                   float *g, uint64_t *step, const trn_rows *rows, double *norm);

#endif
