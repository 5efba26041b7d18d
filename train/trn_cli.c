/* trn_cli.c: `trail gen`. */
#include "core_alloc.h"
#include "core_err.h"
#include "sch_event.h"
#include "trn_cli.h"
#include "trn_gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const worlds[] = {"sessions", "resurfacing", NULL}; /* trn_gen_world's order */

const core_cmd trn_gen_cmd = {"gen",
                              "write a synthetic event stream with known click probabilities",
                              trn_cmd_gen, "The model is documented in docs/SYNTHETIC.md.\n", NULL};

int trn_cmd_gen(int argc, char **argv) {
    trn_gen_conf conf;
    trn_gen_stats st;
    const char *out = NULL;
    int binary = 0, days_given = 0, world = 0, rc;
    char err[512];
    trn_gen_conf_default(&conf);
    const core_opt opts[] = {
        CORE_OPT_NEED("out", &out, "FILE", "the event file to write"),
        CORE_OPT_U32("users", &conf.users, "U", 1, 100000000, "users"),
        CORE_OPT_U32("items", &conf.items, "I", 16, 1000000000,
                     "items; categories are I/40 (at least 8)"),
        CORE_OPT_U64("events", &conf.events, "E", 1, 2000000000,
                     "events written, behaviors and impressions"),
        CORE_OPT_U64("seed", &conf.seed, "S", 0, UINT64_MAX, "seed"),
        {CORE_OPT_ROW("days", CORE_OPT_U32, &conf.days, "D", "horizon in days"), .umin = 1,
         .umax = 3650, .seen = &days_given, .def = "60; 120 with --world resurfacing"},
        {CORE_OPT_ROW("world", CORE_OPT_ENUM, &world, "W",
                      "sessions: interests revisited in sessions days apart; resurfacing:\n"
                      "interests return in bursts weeks apart, items rarely repeat"),
         .choices = worlds},
        {CORE_OPT_ROW("until-day", CORE_OPT_DOUBLE, &conf.until_day, "X",
                      "stop the timelines at day X (same stream, cut earlier)"),
         .dmin = 0, .dmax = 3650, .def = "off"},
        CORE_OPT_FLG("binary", &binary, "write the binary event file instead of JSON lines"),
        CORE_OPT_ENDROW};
    if ((rc = core_opts_parse(&trn_gen_cmd, opts, argc, argv)) != CORE_OPTS_GO) return rc;
    conf.world = world ? TRN_GEN_WORLD_RESURFACING : TRN_GEN_WORLD_SESSIONS;
    if (conf.world == TRN_GEN_WORLD_RESURFACING && !days_given) conf.days = 120; /* weeks apart */
    if (conf.until_day > conf.days)
        return core_cmd_usage(&trn_gen_cmd, "--until-day %g exceeds --days %u", conf.until_day,
                              conf.days);
    sch_event *ev = NULL;
    size_t n = 0;
    sch_writer *w = NULL;
    if ((rc = trn_gen_events(&conf, &ev, &n, &st, err, sizeof err))) {
        fprintf(stderr, "trail: %s\n", err);
        return 1;
    }
    if ((rc = sch_writer_open(&w, out, binary, err, sizeof err))) {
        fprintf(stderr, "trail: %s\n", err);
        core_free(ev);
        return 1;
    }
    for (size_t i = 0; i < n && !rc; i++)
        rc = sch_writer_put(w, &ev[i]);
    int rc2 = sch_writer_close(w);
    core_free(ev);
    if (rc || rc2) {
        fprintf(stderr, "trail: writing %s: %s\n", out, core_strerror(rc ? rc : rc2));
        return 1;
    }
    fprintf(stderr,
            "gen: wrote %zu events to %s: behaviors=%llu impressions=%llu clicks=%llu "
            "ctr_train=%.4f ctr_valid=%.4f ctr_test=%.4f mean_prob=%.4f\n"
            "gen: last 10%% of impressions: oracle_auc=%.4f without_propensity=%.4f "
            "without_propensity_and_quality=%.4f with_quality_from_train_labels=%.4f",
            n, out, (unsigned long long)st.behaviors, (unsigned long long)st.impressions,
            (unsigned long long)st.clicks, st.split_ctr[0], st.split_ctr[1], st.split_ctr[2],
            st.mean_prob, st.oracle_auc_test, st.auc_without_propensity,
            st.auc_without_propensity_quality, st.auc_with_estimated_quality);
    if (conf.world == TRN_GEN_WORLD_SESSIONS) /* the observers exist in this world only */
        fprintf(
            stderr, " session_from_history=%.4f interests_from_history=%.4f known_form_fitted=%.4f",
            st.auc_session_from_history, st.auc_interests_from_history, st.auc_known_form_fitted);
    fputc('\n', stderr);
    return 0;
}

const core_cmd *const trn_cmds[] = {&trn_gen_cmd, &trn_train_cmd, &trn_eval_cmd,
                                    &trn_bench_train_cmd, NULL};
