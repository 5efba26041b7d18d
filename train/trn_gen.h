/* trn_gen.h: `trail gen`, a synthetic event stream with planted structure and known truth.
 *
 * Each user's timeline is generated in time order from per-user random streams: latent traits
 * first, then sessions one after another; an impression's true click probability is computed from
 * the traits and the behaviors already generated, never from later ones. docs/SYNTHETIC.md states
 * the model. The global stream is every user's events merged by (ts, user, sequence) and cut at the
 * requested count, so cutting it earlier never changes what comes before the cut.
 */
#ifndef TRAIL_TRN_GEN_H
#define TRAIL_TRN_GEN_H

#include "sch_event.h"

#include <stddef.h>
#include <stdint.h>

/* The worlds of `trail gen --world` (docs/SYNTHETIC.md). */
typedef enum trn_gen_world {
    TRN_GEN_WORLD_SESSIONS = 0,    /* the default: interests revisited in sessions days apart */
    TRN_GEN_WORLD_RESURFACING = 1, /* interests return in bursts weeks apart; items rarely repeat */
} trn_gen_world;

typedef struct trn_gen_conf {
    uint32_t users;  /* U >= 1 */
    uint32_t items;  /* I >= 16 */
    uint64_t events; /* E: events written (behaviors + impressions), at most */
    uint64_t seed;
    uint32_t days;       /* horizon in days (60); rates are derived from E / (U * days) */
    double until_day;    /* stop generating at this day (<= days); for the causality test */
    trn_gen_world world; /* TRN_GEN_WORLD_SESSIONS unless told */
} trn_gen_conf;

typedef struct trn_gen_stats {
    uint64_t behaviors, impressions, clicks;
    double split_ctr[3]; /* click rate of impressions in the first 80% / next 10% / last 10% */
    double mean_prob;    /* mean true probability over impressions */
    /* On the last 10% of impressions (the impressions protocol's test split): the AUC of the true
     * probability (the oracle), of the probability without the user's propensity q_u (no input
     * of the ranker can see it: it shapes only labels, never behaviors), and without the item's
     * quality too (seen only through the item's own labeled impressions). They bound what a
     * history-only model can reach; NaN if the part has one class only. And the AUC without the
     * propensity, with each item's quality replaced by the best estimate its impressions in the
     * first 80% allow (MAP under the N(0, 1) prior, the rest of each logit known): what a model
     * that learned every history term exactly, and item quality from the training labels, would
     * reach. Last, that AUC with the session term (the candidate's category is the session's
     * topic) replaced by its expectation given the session's behaviors so far, for an observer
     * who also knows the user's interests, whether the session is the habit session and where it
     * began: the first impression of a session comes before any of its behaviors, so no history
     * shows its topic. Then that with the user's interests unknown too: the interest, session
     * and habit terms replaced by their joint posterior for an observer who knows the topic of
     * every past session and which were the habit session, but not the interests (the ceiling
     * for a model trained on the stream; docs/SYNTHETIC.md). */
    double oracle_auc_test, auc_without_propensity, auc_without_propensity_quality;
    double auc_with_estimated_quality, auc_session_from_history, auc_interests_from_history;
    /* A learner that knows the click model's form and is handed those posteriors, fitting its
     * five coefficients and the item biases to the first 80% of impressions' labels.
     * The resurfacing world has no such observers: these last three are NaN there. */
    double auc_known_form_fitted;
} trn_gen_stats;

void trn_gen_conf_default(trn_gen_conf *conf);

/** @brief Generate the stream into an array ordered by (ts, user, sequence).
 *  @param[out] out events (core_free), @param[out] n their count.
 *  @return CORE_OK, CORE_EINVAL (bad conf, reason in err) or CORE_ENOMEM. */
int trn_gen_events(const trn_gen_conf *conf, sch_event **out, size_t *n, trn_gen_stats *stats,
                   char *err, size_t err_size);

#endif
