/* trn_loop.h: the training loop and evaluation over point-in-time samples.
 *
 * A step takes a batch of sample groups (a positive with its negatives, or one impression, share
 * one user context), splits it into one contiguous part per thread, runs rank_net forward and
 * backward on each part into that thread's gradient arena, reduces the arenas in thread order
 * (so a seed and a thread count give the same model bytes on every run), and applies one Adam
 * step (trn_adam.h) to the dense parameters and the embedding rows the batch touched.
 * Features are rebuilt per batch from trn_data_history: the window of `window` behaviors (SDIM
 * buckets are built from it with the current embeddings; attention reads it) and the last
 * n_recent of them for the short and temporal branches.
 */
#ifndef TRAIL_TRN_LOOP_H
#define TRAIL_TRN_LOOP_H

#include "mdl.h"
#include "rank_isa.h"
#include "trn_adam.h"
#include "trn_metrics.h"
#include "trn_samples.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TRN_MAX_BATCH 4096

typedef struct trn_conf {
    uint32_t epochs;          /* 10 */
    uint32_t batch;           /* samples per step (256) */
    uint32_t threads;         /* 1..64 (2) */
    uint32_t window;          /* long-term window T per sample (256) */
    uint32_t evals_per_epoch; /* validation passes per epoch (2) */
    uint32_t patience;        /* stop after this many evaluations without a better valid GAUC (3) */
    uint64_t seed;            /* shuffling (1) */
    int calibrate;            /* 1: after training, Platt-scale on the valid split (its level
                                 set by trn_level_prior), folded into the output layer and the
                                 item biases (1) */
    float branch_dropout;     /* each step, each sample's head blocks u_long, u_short, u_tin and
                                 cross are each zeroed with this probability, the kept ones scaled
                                 by 1 / (1 - p); evaluation and serving see them all (0) */
    trn_adam_conf adam;
    FILE *progress;   /* NULL: quiet */
    int progress_tty; /* 1: one live line rewritten with \r; 0: plain lines */
} trn_conf;

typedef struct trn_report {
    uint64_t steps, samples_seen;
    uint64_t evals; /* validation passes run: min(evals_per_epoch, steps) per epoch
                       (fewer after an early stop) */
    double seconds; /* wall time of the whole run, evaluations included */
    double best_valid_gauc;
    double best_epoch;      /* fractional epoch of the best evaluation */
    trn_metrics best_valid; /* validation metrics of the kept model (after calibration) */
    int stopped_early;
    int calibrated;               /* 1: the kept model was Platt-scaled on the valid split */
    char cal_skipped[160];        /* calibration was asked for but not done: why ("" otherwise) */
    double cal_slope, cal_offset; /* its logit' = slope * logit + offset */
    double cal_rate;              /* the valid mean prediction it was set to (trn_level_prior) */
    double cal_rate_w_valid; /* that rate's weight on the valid labels' mean (1 - on train's) */
    double raw_logloss, raw_calibration; /* valid log loss and calibration before it */
} trn_report;

void trn_conf_default(trn_conf *c);

/** @brief Train m in place on the train split of d and keep the parameters (and Adam state) of the
 *  evaluation with the best valid GAUC. m->adam_m / adam_v are allocated when absent (a resumed
 *  model keeps its own and its step count).
 *  @return CORE_OK, CORE_ENOMEM, CORE_EINVAL (a config/shape problem, reason in err). */
int trn_train(mdl_model *m, const trn_data *d, const trn_conf *c, trn_report *rep, char *err,
              size_t err_size);

/** @brief No training: score the valid split of d with m as it is and calibrate m on it as
 *  trn_train calibrates its kept model (when c->calibrate; skips are reported the same way).
 *  rep has the valid metrics and the fit; steps are 0. What `trail train --init M --epochs 0`
 *  runs: a trained model recalibrated without retraining it. @return as trn_train. */
int trn_calibrate(mdl_model *m, const trn_data *d, const trn_conf *c, trn_report *rep, char *err,
                  size_t err_size);

/** @brief Forward over samples [lo, hi) of d. preds: (hi - lo) click probabilities out, or NULL;
 *  metrics out (or NULL). @return CORE_OK, CORE_ENOMEM, CORE_EINVAL. */
int trn_eval(const mdl_model *m, const trn_data *d, size_t lo, size_t hi, uint32_t window,
             uint32_t threads, float *preds, trn_metrics *metrics, char *err, size_t err_size);

/** @brief trn_eval on a serving compute path (rank_isa.h): one rank_engine of m for the path,
 *  shared read-only by every evaluation thread, so the predictions are what `trail serve` on that
 *  path would score for these samples. RANK_ISA_FP32 is trn_eval itself (OpenBLAS, no engine:
 *  the same bytes). @return CORE_OK, CORE_ERANGE (the path is unknown or this machine cannot run
 *  it; err says which), CORE_ENOMEM, CORE_EINVAL. */
int trn_eval_isa(const mdl_model *m, const trn_data *d, size_t lo, size_t hi, uint32_t window,
                 uint32_t threads, rank_isa isa, float *preds, trn_metrics *metrics, char *err,
                 size_t err_size);

/** @brief Time training steps only (no evaluation) for `steps` batches; for `trail bench train`.
 *  @param[out] samples_per_s */
int trn_bench_steps(mdl_model *m, const trn_data *d, const trn_conf *c, uint32_t steps,
                    double *samples_per_s, char *err, size_t err_size);

/** @brief Pretraining for the impressions protocol (`trail train --pretrain E`): next-behavior
 *  samples (one popularity negative, dc's seed) from d's own events ev, split at the impressions'
 *  valid and test start times, so that pretraining learns from the train period only and stops
 *  on the valid period's behaviors; nothing of the test period is seen. m then trains on the
 *  impressions as usual from the pretrained weights and Adam state. Up to epochs epochs, no
 *  calibration; c->progress (when set) gets its lines. @return CORE_OK, or an error with the
 *  reason in err (d of another protocol: CORE_EINVAL). */
int trn_pretrain(mdl_model *m, const trn_data *d, const sch_event *ev, size_t n_ev,
                 const trn_data_conf *dc, const trn_conf *c, uint32_t epochs, trn_report *rep,
                 char *err, size_t err_size);

/* The serving paths' accuracy bounds against fp32 (docs/QUALITY.md, "Serving paths"). */
#define TRN_PATH_MAX_ABS 5e-3
#define TRN_PATH_AUC 5e-4
#define TRN_PATH_LOGLOSS 1e-3

/* One serving path's evaluation against fp32's (trn_eval_paths). */
typedef struct trn_path_row {
    rank_isa isa;
    trn_metrics mt;
    double max_abs, auc_diff, logloss_diff; /* max |p - p_fp32|, AUC and log-loss differences */
    int ok;                                 /* each within its bound above */
} trn_path_row;

/** @brief trn_eval_isa on every path this machine runs but fp32, each against the fp32
 *  predictions ref and metrics ref_mt of the same samples. rows: RANK_ISA_COUNT.
 *  @return the number of rows, or -1 with the reason in err. */
int trn_eval_paths(const mdl_model *m, const trn_data *d, size_t lo, size_t hi, uint32_t window,
                   uint32_t threads, const float *ref, const trn_metrics *ref_mt,
                   trn_path_row *rows, char *err, size_t err_size);

/** @brief The AUC of each kind of positive of [lo, hi) (trn_match over window: auc[k], pos[k] for
 *  k = TRN_MATCH_ITEM ...) against all its negatives, from the predictions preds.
 *  @return CORE_OK or CORE_ENOMEM. */
int trn_eval_by_history(const trn_data *d, size_t lo, size_t hi, uint32_t window,
                        const float *preds, double auc[3], uint64_t pos[3]);

#endif
