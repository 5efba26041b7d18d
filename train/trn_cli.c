/* trn_cli.c: `trail gen`. */
#include "core_args.h"
#include "core_alloc.h"
#include "core_err.h"
#include "sch_event.h"
#include "trail_cmds.h"
#include "trn_gen.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void gen_usage(FILE *f) {
    fprintf(f, "usage: trail gen --out FILE [options]\n"
               "  --users U       users (1000)\n"
               "  --items I       items (20000); categories are I/40 (at least 8)\n"
               "  --events E      events written, behaviors and impressions (1000000)\n"
               "  --seed S        seed (1)\n"
               "  --days D        horizon in days (60; 120 with --world resurfacing)\n"
               "  --world W       sessions (the default): interests revisited in sessions days apart;\n"
               "                  resurfacing: interests return in bursts weeks apart, items rarely repeat\n"
               "  --until-day X   stop the timelines at day X (same stream, cut earlier)\n"
               "  --binary        write the binary event file instead of JSON lines\n"
               "The model is documented in docs/SYNTHETIC.md.\n");
}

int trn_cmd_gen(int argc, char **argv) {
    static const struct option opts[] = {
        {"out", 1, 0, 'o'},  {"users", 1, 0, 'u'},     {"items", 1, 0, 'i'},
        {"events", 1, 0, 'e'}, {"seed", 1, 0, 's'},    {"days", 1, 0, 'd'},
        {"until-day", 1, 0, 'x'}, {"binary", 0, 0, 'b'}, {"world", 1, 0, 'w'},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    trn_gen_conf conf;
    trn_gen_stats st;
    const char *out = NULL;
    int binary = 0, days_given = 0, c, rc;
    uint64_t v;
    char err[512];
    trn_gen_conf_default(&conf);
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'u': if (core_parse_u64(optarg, 1, 100000000, "--users", &v)) return 2; conf.users = (uint32_t)v; break;
        case 'i': if (core_parse_u64(optarg, 16, 1000000000, "--items", &v)) return 2; conf.items = (uint32_t)v; break;
        case 'e': if (core_parse_u64(optarg, 1, 2000000000, "--events", &v)) return 2; conf.events = v; break;
        case 's': if (core_parse_u64(optarg, 0, UINT64_MAX, "--seed", &v)) return 2; conf.seed = v; break;
        case 'd': if (core_parse_u64(optarg, 1, 3650, "--days", &v)) return 2; conf.days = (uint32_t)v; days_given = 1; break;
        case 'w':
            if (!strcmp(optarg, "sessions")) conf.world = TRN_GEN_WORLD_SESSIONS;
            else if (!strcmp(optarg, "resurfacing")) conf.world = TRN_GEN_WORLD_RESURFACING;
            else {
                fprintf(stderr, "trail: --world: '%s' is not sessions or resurfacing\n", optarg);
                return 2;
            }
            break;
        case 'x': if (core_parse_double(optarg, 0, 3650, "--until-day", &conf.until_day)) return 2; break;
        case 'b': binary = 1; break;
        case 'h': gen_usage(stdout); return 0;
        default: gen_usage(stderr); return 2;
        }
    }
    if (!out || optind != argc) {
        gen_usage(stderr);
        return 2;
    }
    if (conf.world == TRN_GEN_WORLD_RESURFACING && !days_given) conf.days = 120; /* weeks apart */
    if (conf.until_day > conf.days) {
        fprintf(stderr, "trail: --until-day must not exceed --days\n");
        return 2;
    }
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
    for (size_t i = 0; i < n && !rc; i++) rc = sch_writer_put(w, &ev[i]);
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
        fprintf(stderr, " session_from_history=%.4f interests_from_history=%.4f known_form_fitted=%.4f",
                st.auc_session_from_history, st.auc_interests_from_history, st.auc_known_form_fitted);
    fputc('\n', stderr);
    return 0;
}
