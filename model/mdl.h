/* mdl.h: the ranker's model: configuration, parameter layout, and the model file.
 *
 * A model is a config plus one float arena that holds every parameter. The arena is carved into
 * tensors in a fixed order derived from the config alone (mdl_layout), so gradient and Adam arenas
 * bind to the same shapes with mdl_params_bind. The file format is in schemas/model-file.md.
 *
 * Two fingerprints identify a model:
 * - model_version: XXH3-64 of the config and every parameter; changes with any training step.
 * - encoding_version: XXH3-64 of what the encoder's buckets depend on (C, S, tau, table sizes,
 *   hash seed, the SimHash projection and both embedding tables). A store is tied to this one: a
 *   new model needs `trail reencode` exactly when its encoding_version differs from the store's.
 */
#ifndef TRAIL_MDL_H
#define TRAIL_MDL_H

#include <stddef.h>
#include <stdint.h>

#define MDL_MAGIC "TRAILMDL"
#define MDL_FORMAT_VERSION 3 /* 3: flags word (q (.) u_short, SDIM hash, cross); 2: w_lq, w_lk */
#define MDL_FORMAT_OLDEST 2  /* version 2 reads as version 3 with no flags */
#define MDL_MAX_BLOCKS 4
#define MDL_MAX_TENSORS 72 /* mdl_layout: 5 + 12 per block + 13 others (66 at MDL_MAX_BLOCKS) */
#define MDL_NAME_LEN 32

typedef enum {
    MDL_LONG_NONE = 0,
    MDL_LONG_AVGPOOL = 1,
    MDL_LONG_SDIM = 2,
    MDL_LONG_ATTN = 3
} mdl_long;
/* short: none; selfattn = transformer block(s) then target attention; din = target attention over
 * the raw recent embeddings (the DIN-short baseline). */
typedef enum { MDL_SHORT_NONE = 0, MDL_SHORT_SELFATTN = 1, MDL_SHORT_DIN = 2 } mdl_short;
typedef enum { MDL_TEMPORAL_NONE = 0, MDL_TEMPORAL_TIN = 1 } mdl_temporal;
/* What SDIM's signatures hash (the rows of the SimHash projection R):
 * concat  every signature projects the whole item-side embedding [item | category] (the paper);
 * fields  the first S/2 signatures project the category half only, the other S - S/2 the item
 *         half only (R is zero off its field). A behavior of the candidate's category then shares
 *         the candidate's bucket in every category signature, whatever its item: SDIM keeps the
 *         category-level interest that concat blurs while new items' embeddings are near their
 *         random start (docs/TRAINING.md measures it). Only R differs; bucket sums, lookups and
 *         gradients are the same code. */
typedef enum { MDL_HASH_CONCAT = 0, MDL_HASH_FIELDS = 1 } mdl_sdim_hash;
/* Candidate x history statistics per candidate (the `cross` block of the MLP input). */
#define MDL_CROSS_DIM 8

typedef struct mdl_config {
    uint32_t C;             /* item-side embedding width: item C/2 + category C/2; even */
    uint32_t S;             /* SimHash signatures */
    uint32_t tau;           /* bits per signature; 2^tau buckets each */
    uint32_t item_rows;     /* hashed item embedding rows */
    uint32_t cat_rows;      /* hashed category embedding rows */
    uint32_t long_kind;     /* mdl_long */
    uint32_t short_kind;    /* mdl_short */
    uint32_t temporal_kind; /* mdl_temporal */
    uint32_t n_recent;      /* N: short-term behaviors the ranker uses (positional rows) */
    uint32_t n_blocks;      /* self-attention blocks, 1..MDL_MAX_BLOCKS */
    uint32_t n_heads;       /* heads per block; divides C */
    uint32_t ffn_dim;       /* feed-forward width inside a block */
    uint32_t tin_buckets;   /* log-scale time-gap buckets (row 0 of tin_emb is the target) */
    uint32_t h1, h2;        /* MLP hidden widths */
    uint32_t n_dense;       /* dense features appended to the MLP input (request-supplied) */
    uint32_t q_short;       /* 1: q (.) u_short joins the MLP input after u_short (short != none) */
    uint32_t sdim_hash;     /* mdl_sdim_hash: how R is drawn (fixed at init) */
    uint32_t cross;         /* 1: MDL_CROSS_DIM candidate x history statistics join the MLP input
                               (rank_net.h lists them); they read the raw window */
    uint32_t window;        /* behaviors per user the model was trained on (0: not recorded); no
                               shape depends on it, a store with another window serves with a
                               warning (mdl_window_mismatch) */
    uint64_t seed;          /* initialization and SimHash projection seed */
    uint64_t hash_seed;     /* id -> row hashing seed (items use it, categories use it + 1) */
} mdl_config;

/* Pointers into an arena; shapes in comments. Unused branches still exist (a model holds every
 * parameter), so switching a variant never changes the file layout rules. */
typedef struct mdl_block {
    float *ln1_w, *ln1_b; // (C), (C)
    float *w_qkv, *b_qkv; // (3C, C), (3C)
    float *w_o, *b_o;     // (C, C), (C)
    float *ln2_w, *ln2_b; // (C), (C)
    float *w_ff1, *b_ff1; // (F, C), (F)
    float *w_ff2, *b_ff2; // (C, F), (C)
} mdl_block;

typedef struct mdl_params {
    float *item_emb;  // (item_rows, C/2)
    float *cat_emb;   // (cat_rows, C/2)
    float *item_bias; // (item_rows)
    float *simhash_r; // (S*tau, C)  fixed, never trained
    float *pos_emb;   // (n_recent, C) position 0 = most recent
    mdl_block blk[MDL_MAX_BLOCKS];
    float *lnf_w, *lnf_b; // (C), (C)
    float *w_tq, *w_tk;   // (C, C), (C, C) target-attention projections for the short branch
    float *w_lq, *w_lk;   // (C, C), (C, C) target-attention projections for long = attention
    float *tin_emb;       // (tin_buckets + 1, C) row 0 = target
    float *w1, *b1;       // (h1, D), (h1)   D = mdl_mlp_in_dim
    float *w2, *b2;       // (h2, h1), (h2)
    float *w3, *b3;       // (h2), (1)
} mdl_params;

typedef struct mdl_tensor {
    char name[MDL_NAME_LEN];
    uint32_t ndim;
    uint32_t dims[4];
    size_t offset; /* in floats from the arena start */
    size_t count;  /* floats */
    int trainable; /* 0 for simhash_r */
} mdl_tensor;

typedef struct mdl_model {
    mdl_config cfg;
    mdl_params p;
    float *arena; /* all parameters, 64-byte aligned */
    size_t n_floats;
    int n_tensors;
    mdl_tensor tensors[MDL_MAX_TENSORS];
    uint64_t model_version;
    uint64_t encoding_version;
    /* optional Adam state, present if loaded from or set for a training checkpoint */
    float *adam_m, *adam_v; /* same layout as arena, or NULL */
    uint64_t adam_step;
} mdl_model;

/** @brief The defaults (C=64, S=16, tau=4, field-wise SDIM hash, full model with the cross
 *  statistics, MLP 200-80). */
void mdl_config_default(mdl_config *cfg);
/** @brief Check ranges and relations (C even, heads divide C, tau in 1..16, ...).
 *  @return CORE_OK or CORE_EINVAL with the reason in err. */
int mdl_config_check(const mdl_config *cfg, char *err, size_t err_size);
/* Where each block of the MLP input starts (rank_net.h gives the order), -1 if the config has no
 * such block; q is at 0. */
typedef struct mdl_mlp_cols {
    int ul, ulq; /* u_long, q (.) u_long */
    int us, usq; /* u_short, q (.) u_short */
    int ut;      /* u_tin */
    int cross;   /* the MDL_CROSS_DIM candidate x history statistics */
    int dense;   /* the n_dense request features */
    int D;       /* the width */
} mdl_mlp_cols;
/** @brief The MLP input's column blocks for a config. */
void mdl_mlp_layout(const mdl_config *cfg, mdl_mlp_cols *out);
/** @brief 1 if scoring with this config reads each user's raw window even when the store's
 *  bucket sums are at hand: long = attention attends over it, cross counts in it. */
int mdl_reads_window(const mdl_config *cfg);
/** @brief 1 if scoring with this config reads the store's bucket sums (long = sdim or avgpool),
 *  which must then have been encoded with the model's encoding_version, S, tau and C. */
int mdl_reads_buckets(const mdl_config *cfg);
/** @brief Nonzero if a store keeping store_window behaviors per user would give this model other
 *  long-term inputs than it was trained on: the model records a window (cfg->window != 0), reads
 *  the long history (any long branch sums or attends over the store's window; cross counts in
 *  it), and store_window differs. The message then names both and what to do. */
int mdl_window_mismatch(const mdl_config *cfg, uint32_t store_window, char *msg, size_t cap);
#define MDL_MAX_WINDOW ((1u << 24) - 1) /* the model file keeps the window in 24 bits */
/** @brief MLP input width D: C (q) + C per enabled branch + C (q*u_long, if long) + cross +
 * n_dense. */
uint32_t mdl_mlp_in_dim(const mdl_config *cfg);
/** @brief The tensor list for a config, in file order. @return the number of floats in all. */
size_t mdl_layout(const mdl_config *cfg, mdl_tensor *tensors, int *n_tensors);
/** @brief Point p's members at the tensors of an arena laid out by mdl_layout. */
void mdl_params_bind(mdl_params *p, const mdl_config *cfg, float *arena);

/** @brief Allocate a model with a random initialization from cfg->seed (SimHash projection from
 *  N(0,1), zero off each signature's field when sdim_hash = fields; embeddings N(0, 0.05^2),
 *  linear layers scaled by fan-in, LayerNorm 1/0, biases 0).
 *  w_lq and w_lk start as the identity divided by the embeddings' init std (0.05): scaled
 *  dot-product attention assumes unit-variance inputs, and this makes <w_lq q, w_lk x>/sqrt(C) the
 *  score unit-variance embeddings would give, so long = attention can attend sharply from the
 *  start. (At the identity the scores are 400x smaller, the softmax over the window is nearly
 *  uniform, and Adam at lr 1e-3 does not grow the projections enough in two epochs: it stayed
 *  average pooling.) */
int mdl_model_init(mdl_model **out, const mdl_config *cfg, char *err, size_t err_size);
/** @brief Recompute model_version and encoding_version from the parameters (after training). */
void mdl_model_refresh_versions(mdl_model *m);
/** @brief Deep copy (without Adam state). */
int mdl_model_clone(mdl_model **out, const mdl_model *src);
void mdl_model_destroy(mdl_model *m);

/** @brief Write atomically (temporary file, fsync, rename). Adam state is written when present
 *  and with_adam is set. */
int mdl_model_save(const mdl_model *m, const char *path, int with_adam, char *err, size_t err_size);
/** @brief Load and verify magic, format version, config, tensor table, sizes and the checksum.
 *  Any mismatch or truncation fails with CORE_EFORMAT / CORE_EVERSION / CORE_ECHECKSUM and a
 *  message naming the file and what is wrong. */
int mdl_model_load(mdl_model **out, const char *path, char *err, size_t err_size);

/** @brief Embedding row of an item / category id. */
uint32_t mdl_item_row(const mdl_model *m, uint64_t item_id);
uint32_t mdl_cat_row(const mdl_model *m, uint64_t category_id);
/** @brief The item-side embedding x = [item_emb[row(item)], cat_emb[row(cat)]]. out: (C). */
void mdl_embed(const mdl_model *m, uint64_t item_id, uint64_t category_id, float *out);
/** @brief TIN time-gap bucket for gap = t_request - t_behavior in seconds: 1 for gaps under 60 s
 *  (and negative gaps), then one bucket per doubling, capped at tin_buckets. Row 0 is the target.
 */
uint32_t mdl_tin_bucket(const mdl_config *cfg, int64_t gap_s);

/** @brief Names for variants, for the CLI and the JSON output. */
const char *mdl_long_name(uint32_t k);
const char *mdl_short_name(uint32_t k);
const char *mdl_temporal_name(uint32_t k);
const char *mdl_hash_name(uint32_t k); /* mdl_sdim_hash: "concat", "fields" */
/** @brief Parse "long=sdim,short=selfattn,temporal=tin,q_short=1,hash=fields,cross=1" style
 *  words; each key optional. Also accepts the preset names din-short, avgpool, din-long, sdim,
 *  full (the only one with cross=1), optionally followed by keys that override them
 *  ("full,cross=0"). */
int mdl_variant_parse(mdl_config *cfg, const char *spec, char *err, size_t err_size);
/** @brief "long=sdim,short=selfattn,temporal=tin,q_short=1,hash=fields,cross=1" into buf
 *  (q_short=1 only when it takes effect, i.e. short != none; hash only for long = sdim; cross
 *  only when set). */
void mdl_variant_str(const mdl_config *cfg, char *buf, size_t cap);
/** @brief Hex string of a version, 16 chars + NUL. */
void mdl_version_hex(uint64_t v, char out[17]);

#endif
