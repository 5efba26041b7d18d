/* trn_cli_train.c: `trail train`, `trail eval` and `trail bench train`. */
#include "core_alloc.h"
#include "core_args.h"
#include "core_err.h"
#include "mdl.h"
#include "rank_isa.h"
#include "trail_cmds.h"
#include "trn_gen.h"
#include "trn_loop.h"
#include "trn_samples.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void train_usage(FILE *f) {
    fprintf(f,
            "usage: trail train --events FILE --model-out M [options]\n"
            "  --variant V        full | sdim | din-long | avgpool | din-short, or long=..,short=..,temporal=..\n"
            "                     (full); q_short=0 after either drops q (.) u_short from the head,\n"
            "                     hash=concat hashes SDIM's [item | category] whole (the paper)\n"
            "                     cross=0 drops the candidate x history statistics full has\n"
            "  --protocol P       auto | impressions | next | taobao (auto: impressions if the file has any)\n"
            "  --strict 0|1       1: auto refuses a file whose labeled records were all rejected, or\n"
            "                     with more than 1%% of its records rejected; 0: warn and go on (1)\n"
            "  --negatives K      sampled negatives per positive for next (1)\n"
            "  --window T         long-term behaviors per sample (256)\n"
            "  --recent N         short-term behaviors, the model's N (50; taobao: 16)\n"
            "  --epochs E (10)  --batch B (256)  --lr X (1e-3)  --seed S (1)  --threads K (2)\n"
            "  --clip X           global gradient-norm clip, 0 = off (5)\n"
            "  --branch-dropout P training only: zero each sample's u_long, u_short, u_tin and\n"
            "                     cross blocks of the head, each with probability P (0)\n"
            "  --l2 X             L2 on the embedding rows a batch touches (0)\n"
            "  --patience K       evaluations without a better valid GAUC before stopping (3)\n"
            "  --evals-per-epoch K  validation passes per epoch (2)\n"
            "  --dim C (64)  --item-rows R (262144)  --cat-rows R (16384)  --hidden H1,H2 (200,80)\n"
            "  --signatures S (16)  --bits TAU (4)   SDIM's SimHash: S signatures of TAU bits\n"
            "  --init M           resume from a model file (its config and Adam state)\n"
            "  --pretrain E       impressions only: first up to E epochs of next-behavior samples\n"
            "                     (one popularity negative) from the file's own behaviors of the\n"
            "                     train period, stopped early on those of the valid period (0: off)\n"
            "  --calibrate 0|1    Platt-scale the kept model on the valid split: a logit slope and\n"
            "                     offset, folded into the output layer and item biases (1)\n"
            "  --json             print the final report as one JSON object on stdout\n"
            "The seed drives initialization, negative sampling and shuffling; evaluate with the same\n"
            "--protocol, --negatives, --seed and --window to see the same samples.\n");
}

static void print_metrics_json(FILE *f, const trn_metrics *m) {
    fprintf(f, "\"auc\":%.6f,\"gauc\":%.6f,\"logloss\":%.6f,\"calibration\":%.6f,\"samples\":%llu",
            m->auc, m->gauc, m->logloss, m->calibration, (unsigned long long)m->samples);
    if (!isnan(m->oracle_auc)) fprintf(f, ",\"oracle_auc\":%.6f", m->oracle_auc);
}

/* The options train and eval share (they must see the same samples): --protocol, --negatives,
 * --window. @return 1 handled, 0 not one of them, 2 usage error. */
static int sample_opt(int c, trn_data_conf *dc, uint32_t *window) {
    uint64_t v;
    switch (c) {
    case 'p':
        if ((dc->protocol = trn_proto_parse(optarg)) < 0) {
            fprintf(stderr, "trail: --protocol: '%s' is not auto, impressions, next or taobao\n", optarg);
            return 2;
        }
        return 1;
    case 'k':
        if (core_parse_u64(optarg, 1, 63, "--negatives", &v)) return 2;
        dc->negatives = (uint32_t)v;
        return 1;
    case 'T':
        if (core_parse_u64(optarg, 1, 100000, "--window", &v)) return 2;
        *window = (uint32_t)v;
        return 1;
    default: return 0;
    }
}

/* --pretrain: next-behavior samples (one popularity negative, the same seed) from the file's own
 * behaviors, split at the impressions' valid and test start times, so that pretraining learns
 * from the train period only and stops on the valid period's behaviors; nothing of the test
 * period is seen. Then the impressions train as usual from the pretrained weights and Adam state.
 * Prints its own line; errors go to stderr. */
static int pretrain_next(mdl_model *m, const trn_data *d, const sch_event *ev, size_t n_ev,
                         const trn_data_conf *dc, const trn_conf *tc, uint32_t epochs,
                         trn_report *rep) {
    char err[512];
    if (d->protocol != TRN_PROTO_IMPRESSIONS) {
        fprintf(stderr, "trail: --pretrain: the %s protocol's samples are next-behavior samples "
                        "already; pretraining applies to --protocol impressions\n",
                trn_proto_name(d->protocol));
        return 1;
    }
    trn_data_conf pc = *dc;
    pc.protocol = TRN_PROTO_NEXT;
    pc.negatives = 1;
    trn_data *p = NULL;
    if (trn_data_build(&p, ev, n_ev, &pc, err, sizeof err)) {
        fprintf(stderr, "trail: --pretrain: %s\n", err);
        return 1;
    }
    trn_data_split_at(p, trn_data_split_ts(d, 1), trn_data_split_ts(d, 2));
    int rc = 1;
    if (!p->split[0] || p->split[1] == p->split[0]) {
        fprintf(stderr, "trail: --pretrain: %zu behaviors before the impressions' valid period and "
                        "%zu within it; pretraining needs some of both\n",
                p->split[0], p->split[1] - p->split[0]);
        goto out;
    }
    fprintf(stderr, "pretrain: next-behavior samples train=%zu valid=%zu (before the impressions' "
                    "valid and test periods), up to %u epochs\n",
            p->split[0], p->split[1] - p->split[0], epochs);
    trn_conf pt = *tc;
    pt.epochs = epochs;
    pt.calibrate = 0; /* the impressions' training follows; it calibrates */
    if (trn_train(m, p, &pt, rep, err, sizeof err)) {
        fprintf(stderr, "trail: --pretrain: %s\n", err);
        goto out;
    }
    fprintf(stderr, "pretrain: kept epoch %.2f (next-behavior valid gauc %.4f), %.1f s\n",
            rep->best_epoch, rep->best_valid_gauc, rep->seconds);
    rc = 0;
out:
    trn_data_destroy(p);
    return rc;
}

int trn_cmd_train(int argc, char **argv) {
    static const struct option opts[] = {
        {"events", 1, 0, 'e'},    {"model-out", 1, 0, 'o'}, {"variant", 1, 0, 'v'},
        {"protocol", 1, 0, 'p'},  {"negatives", 1, 0, 'k'}, {"window", 1, 0, 'T'},
        {"recent", 1, 0, 'N'},    {"epochs", 1, 0, 'E'},    {"batch", 1, 0, 'B'},
        {"lr", 1, 0, 'l'},        {"seed", 1, 0, 's'},      {"threads", 1, 0, 't'},
        {"clip", 1, 0, 'c'},      {"l2", 1, 0, 'L'},        {"patience", 1, 0, 'P'},
        {"evals-per-epoch", 1, 0, 'V'}, {"dim", 1, 0, 'C'}, {"item-rows", 1, 0, 'I'},
        {"cat-rows", 1, 0, 'K'},  {"hidden", 1, 0, 'h'},    {"init", 1, 0, 'i'},
        {"signatures", 1, 0, 'g'}, {"bits", 1, 0, 'u'}, {"pretrain", 1, 0, 'R'},
        {"calibrate", 1, 0, 'A'}, {"json", 0, 0, 'j'},      {"help", 0, 0, 'H'},
        {"strict", 1, 0, 'Z'},    {"branch-dropout", 1, 0, 'D'}, {0, 0, 0, 0}};
    const char *events = NULL, *out = NULL, *init = NULL, *variant = "full";
    trn_conf tc;
    trn_data_conf dc;
    mdl_config cfg;
    uint64_t v;
    double x;
    int c, json = 0, recent_set = 0, window_set = 0, strict = 1;
    uint32_t pretrain = 0;
    char err[512];
    trn_conf_default(&tc);
    trn_data_conf_default(&dc);
    mdl_config_default(&cfg);
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int so = sample_opt(c, &dc, &tc.window);
        if (so == 2) return 2;
        if (so == 1) {
            window_set |= c == 'T';
            continue;
        }
        switch (c) {
        case 'e': events = optarg; break;
        case 'o': out = optarg; break;
        case 'v': variant = optarg; break;
        case 'i': init = optarg; break;
        case 'j': json = 1; break;
        case 'N': if (core_parse_u64(optarg, 1, 1024, "--recent", &v)) return 2; cfg.n_recent = (uint32_t)v; recent_set = 1; break;
        case 'E': if (core_parse_u64(optarg, 1, 100000, "--epochs", &v)) return 2; tc.epochs = (uint32_t)v; break;
        case 'B': if (core_parse_u64(optarg, 1, TRN_MAX_BATCH, "--batch", &v)) return 2; tc.batch = (uint32_t)v; break;
        case 's': if (core_parse_u64(optarg, 0, UINT64_MAX, "--seed", &v)) return 2; tc.seed = dc.seed = cfg.seed = v; break;
        case 't': if (core_parse_u64(optarg, 1, 64, "--threads", &v)) return 2; tc.threads = (uint32_t)v; break;
        case 'P': if (core_parse_u64(optarg, 0, 1000, "--patience", &v)) return 2; tc.patience = (uint32_t)v; break;
        case 'V': if (core_parse_u64(optarg, 1, 1000, "--evals-per-epoch", &v)) return 2; tc.evals_per_epoch = (uint32_t)v; break;
        case 'C': if (core_parse_u64(optarg, 2, 1024, "--dim", &v)) return 2; cfg.C = (uint32_t)v; break;
        case 'I': if (core_parse_u64(optarg, 1, 1u << 30, "--item-rows", &v)) return 2; cfg.item_rows = (uint32_t)v; break;
        case 'K': if (core_parse_u64(optarg, 1, 1u << 30, "--cat-rows", &v)) return 2; cfg.cat_rows = (uint32_t)v; break;
        case 'g': if (core_parse_u64(optarg, 1, 64, "--signatures", &v)) return 2; cfg.S = (uint32_t)v; break;
        case 'u': if (core_parse_u64(optarg, 1, 16, "--bits", &v)) return 2; cfg.tau = (uint32_t)v; break;
        case 'R': if (core_parse_u64(optarg, 0, 1000, "--pretrain", &v)) return 2; pretrain = (uint32_t)v; break;
        case 'A': if (core_parse_u64(optarg, 0, 1, "--calibrate", &v)) return 2; tc.calibrate = (int)v; break;
        case 'Z': if (core_parse_u64(optarg, 0, 1, "--strict", &v)) return 2; strict = (int)v; break;
        case 'l': if (core_parse_double(optarg, 0, 10, "--lr", &x)) return 2; tc.adam.lr = (float)x; break;
        case 'c': if (core_parse_double(optarg, 0, 1e6, "--clip", &x)) return 2; tc.adam.clip = (float)x; break;
        case 'L': if (core_parse_double(optarg, 0, 100, "--l2", &x)) return 2; tc.adam.l2_emb = (float)x; break;
        case 'D': if (core_parse_double(optarg, 0, 0.9, "--branch-dropout", &x)) return 2; tc.branch_dropout = (float)x; break;
        case 'h': {
            unsigned a, b;
            char extra;
            if (sscanf(optarg, "%u,%u%c", &a, &b, &extra) != 2) {
                fprintf(stderr, "trail: --hidden: '%s' is not H1,H2\n", optarg);
                return 2;
            }
            cfg.h1 = a, cfg.h2 = b;
            break;
        }
        case 'H': train_usage(stdout); return 0;
        default: train_usage(stderr); return 2;
        }
    }
    if (!events || !out || optind != argc) {
        train_usage(stderr);
        return 2;
    }
    if (dc.protocol == TRN_PROTO_TAOBAO) { /* the pinned protocol: long 256, short 16 */
        if (!window_set) tc.window = 256;
        if (!recent_set) cfg.n_recent = 16;
    }
    if (mdl_variant_parse(&cfg, variant, err, sizeof err)) {
        fprintf(stderr, "trail: --variant: %s\n", err);
        return 2;
    }
    mdl_model *m = NULL;
    trn_data *d = NULL;
    trn_report rep;
    sch_event *ev = NULL;
    size_t n_ev = 0;
    trn_read_stats rs;
    int rc = 1;
    if (init) {
        if (mdl_model_load(&m, init, err, sizeof err)) {
            fprintf(stderr, "trail: --init: %s\n", err);
            return 1;
        }
    } else {
        if (mdl_config_check(&cfg, err, sizeof err)) {
            fprintf(stderr, "trail: %s\n", err);
            return 2;
        }
        if (mdl_model_init(&m, &cfg, err, sizeof err)) {
            fprintf(stderr, "trail: %s\n", err);
            return 1;
        }
    }
    /* read once: pretraining builds its own samples from the same events */
    if (trn_events_read_stats(events, &ev, &n_ev, &rs, err, sizeof err)) {
        fprintf(stderr, "trail: %s\n", err);
        goto done;
    }
    if (dc.protocol == TRN_PROTO_AUTO) { /* auto must not switch task because records were lost */
        size_t n_lab = 0;
        char why[640];
        for (size_t i = 0; i < n_ev; i++) n_lab += (ev[i].flags & SCH_F_LABEL) != 0;
        if (trn_auto_check(&rs, n_lab, why, sizeof why)) {
            if (strict) {
                fprintf(stderr, "trail: %s: %s (or --strict 0 to go ahead)\n", events, why);
                goto done;
            }
            fprintf(stderr, "trail: warning: %s: %s; going ahead (--strict 0)\n", events, why);
        }
    }
    if (trn_data_build(&d, ev, n_ev, &dc, err, sizeof err)) {
        fprintf(stderr, "trail: %s\n", err);
        goto done;
    }
    d->bad_records = rs.bad;
    char vs[96];
    mdl_variant_str(&m->cfg, vs, sizeof vs);
    fprintf(stderr,
            "train: events=%s protocol=%s samples=%zu train=%zu valid=%zu test=%zu users=%u "
            "behaviors=%zu variant=%s window=%u recent=%u threads=%u%s%s\n",
            events, trn_proto_name(d->protocol), d->n_samples, d->split[0], d->split[1] - d->split[0],
            d->n_samples - d->split[1], d->n_users, d->n_beh, vs, tc.window, m->cfg.n_recent,
            tc.threads, init ? " resume=" : "", init ? init : "");
    tc.progress = stderr;
    tc.progress_tty = isatty(2);
    trn_report prep = {0};
    if (pretrain && pretrain_next(m, d, ev, n_ev, &dc, &tc, pretrain, &prep)) goto done;
    core_free(ev); /* the samples hold what training needs */
    ev = NULL;
    if (trn_train(m, d, &tc, &rep, err, sizeof err)) {
        fprintf(stderr, "trail: %s\n", err);
        goto done;
    }
    if (mdl_model_save(m, out, 1, err, sizeof err)) {
        fprintf(stderr, "trail: %s\n", err);
        goto done;
    }
    if (rep.calibrated)
        fprintf(stderr,
                "train: calibrated on the valid split: logit' = %.4f logit %+.4f; valid log loss "
                "%.4f -> %.4f, calibration %.4f -> %.4f\n",
                rep.cal_slope, rep.cal_offset, rep.raw_logloss, rep.best_valid.logloss,
                rep.raw_calibration, rep.best_valid.calibration);
    if (rep.cal_skipped[0])
        fprintf(stderr, "trail: warning: calibration skipped: %s; the model is saved "
                        "uncalibrated\n", rep.cal_skipped);
    fprintf(stderr, "train: kept the model of epoch %.2f (valid gauc %.4f) in %s; %llu steps, %.1f s%s\n",
            rep.best_epoch, rep.best_valid_gauc, out, (unsigned long long)rep.steps, rep.seconds,
            rep.stopped_early ? ", stopped early" : "");
    rep.seconds += prep.seconds; /* the report's time is the whole run's */
    if (json) {
        printf("{\"model\":\"%s\",\"variant\":\"%s\",\"protocol\":\"%s\",\"steps\":%llu,"
               "\"seconds\":%.3f,\"best_epoch\":%.3f,\"evals\":%llu,\"stopped_early\":%s,\"valid\":{",
               out, vs, trn_proto_name(d->protocol), (unsigned long long)rep.steps, rep.seconds,
               rep.best_epoch, (unsigned long long)rep.evals, rep.stopped_early ? "true" : "false");
        print_metrics_json(stdout, &rep.best_valid);
        printf("}");
        if (rep.calibrated)
            printf(",\"platt\":{\"slope\":%.6f,\"offset\":%.6f,\"valid_logloss_before\":%.6f,"
                   "\"valid_calibration_before\":%.6f}",
                   rep.cal_slope, rep.cal_offset, rep.raw_logloss, rep.raw_calibration);
        /* "platt" (the fit is under "platt"), "off" (--calibrate 0) or "skipped: <why>" */
        if (rep.calibrated) printf(",\"calibration\":\"platt\"");
        else if (rep.cal_skipped[0]) printf(",\"calibration\":\"skipped: %s\"", rep.cal_skipped);
        else printf(",\"calibration\":\"off\"");
        if (pretrain)
            printf(",\"pretrain\":{\"steps\":%llu,\"seconds\":%.3f,\"best_epoch\":%.3f,"
                   "\"valid_gauc\":%.6f}",
                   (unsigned long long)prep.steps, prep.seconds, prep.best_epoch, prep.best_valid_gauc);
        printf("}\n");
    }
    rc = 0;
done:
    core_free(ev);
    trn_data_destroy(d);
    mdl_model_destroy(m);
    return rc;
}

// ---------------------------------------------------------------------------------------------

static void eval_usage(FILE *f) {
    fprintf(f, "usage: trail eval --model M --events FILE [options]\n"
               "  --split S        test | valid | train | all (test)\n"
               "  --protocol P     auto | impressions | next | taobao (auto)\n"
               "  --negatives K (1)  --seed S (1)  --window T (256; the values used in training)\n"
               "  --threads K (2)  --json\n"
               "  --by-history     also the AUC of each kind of positive against all negatives: its\n"
               "                   item in the window, only its category, or neither\n"
               "  --isa NAME       score on that serving compute path (scalar, fp32, avx2, avx512-bf16,\n"
               "                   amx-bf16, auto; fp32 = training's OpenBLAS forward, the default)\n"
               "  --paths          score on fp32, then on every other path this machine runs, and\n"
               "                   report each one's difference from fp32 (\"paths\" in the JSON;\n"
               "                   within_bounds: max |p - p_fp32| <= 5e-3, |AUC diff| <= 5e-4,\n"
               "                   |log-loss diff| <= 1e-3)\n");
}

/* The serving paths' accuracy bounds against fp32 (docs/QUALITY.md, "Serving paths"). */
#define PATH_MAX_ABS 5e-3
#define PATH_AUC 5e-4
#define PATH_LOGLOSS 1e-3

typedef struct path_row {
    rank_isa isa;
    trn_metrics mt;
    double max_abs, auc_diff, logloss_diff;
    int ok;
} path_row;

static int diff_within(double a, double ref, double bound, double *diff) {
    *diff = a - ref;
    if (isnan(a) && isnan(ref)) { /* one class only: no AUC on either path */
        *diff = 0;
        return 1;
    }
    return fabs(*diff) <= bound;
}

/* --paths: every available path but fp32 against the fp32 predictions ref. rows: RANK_ISA_COUNT.
 * @return the number of rows, or -1 (error printed). */
static int eval_paths(const mdl_model *m, const trn_data *d, size_t lo, size_t hi, uint32_t window,
                      uint32_t threads, const float *ref, const trn_metrics *ref_mt, path_row *rows) {
    char err[512];
    size_t n = hi - lo;
    float *p = core_malloc(n * sizeof *p);
    int nr = 0;
    if (!p) {
        fprintf(stderr, "trail: eval: out of memory\n");
        return -1;
    }
    for (int i = 0; i < RANK_ISA_COUNT; i++) {
        rank_isa isa = (rank_isa)i;
        if (isa == RANK_ISA_FP32 || !rank_isa_available(isa)) continue;
        path_row *r = &rows[nr];
        memset(r, 0, sizeof *r);
        r->isa = isa;
        if (trn_eval_isa(m, d, lo, hi, window, threads, isa, p, &r->mt, err, sizeof err)) {
            fprintf(stderr, "trail: %s\n", err);
            core_free(p);
            return -1;
        }
        double mx = 0;
        for (size_t k = 0; k < n; k++) {
            double e = fabs((double)p[k] - (double)ref[k]);
            if (!(e <= mx)) mx = e; /* a NaN prediction makes it NaN: out of bounds */
        }
        r->max_abs = mx;
        int ok_auc = diff_within(r->mt.auc, ref_mt->auc, PATH_AUC, &r->auc_diff);
        int ok_ll = diff_within(r->mt.logloss, ref_mt->logloss, PATH_LOGLOSS, &r->logloss_diff);
        r->ok = mx <= PATH_MAX_ABS && ok_auc && ok_ll;
        nr++;
    }
    core_free(p);
    return nr;
}

static void print_num_json(double v) {
    if (isnan(v) || isinf(v)) printf("null");
    else printf("%.6g", v);
}

/* --by-history: each kind of positive (trn_data_match over the model's window) against all
 * negatives of [lo, hi). @return CORE_OK or CORE_ENOMEM. */
static int by_history_aucs(const trn_data *d, size_t lo, size_t hi, uint32_t window,
                           const float *preds, double auc[3], uint64_t pos[3]) {
    size_t n = hi - lo;
    uint8_t *lab = core_malloc(n), *grp = core_malloc(n);
    int rc = CORE_ENOMEM;
    if (!lab || !grp) goto done;
    for (size_t i = 0; i < n; i++) {
        const trn_sample *s = &d->samples[lo + i];
        lab[i] = s->label;
        grp[i] = s->label ? (uint8_t)trn_data_match(d, s, window) : 0;
    }
    for (uint8_t k = 0; k < 3; k++)
        if ((rc = trn_auc_group(&auc[k], &pos[k], preds, lab, grp, k, n))) goto done;
done:
    core_free(lab);
    core_free(grp);
    return rc;
}

int trn_cmd_eval(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", 1, 0, 'm'},  {"events", 1, 0, 'e'},    {"split", 1, 0, 'S'},
        {"protocol", 1, 0, 'p'}, {"negatives", 1, 0, 'k'}, {"seed", 1, 0, 's'},
        {"window", 1, 0, 'T'}, {"threads", 1, 0, 't'},   {"json", 0, 0, 'j'},
        {"by-history", 0, 0, 'b'}, {"isa", 1, 0, 'i'},   {"paths", 0, 0, 'P'},
        {"help", 0, 0, 'h'},     {0, 0, 0, 0}};
    const char *model = NULL, *events = NULL, *split = "test", *isa_name = NULL;
    rank_isa isa = RANK_ISA_FP32;
    path_row rows[RANK_ISA_COUNT];
    int n_rows = 0, paths = 0;
    trn_data_conf dc;
    uint32_t window = 256, threads = 2;
    uint64_t v;
    int c, json = 0, by_history = 0;
    char err[512];
    trn_data_conf_default(&dc);
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int so = sample_opt(c, &dc, &window);
        if (so == 2) return 2;
        if (so == 1) continue;
        switch (c) {
        case 'b': by_history = 1; break;
        case 'i':
            if (rank_isa_parse(optarg, &isa, err, sizeof err)) {
                fprintf(stderr, "trail: --isa: %s\n", err);
                return 2;
            }
            isa_name = optarg;
            break;
        case 'P': paths = 1; break;
        case 'm': model = optarg; break;
        case 'e': events = optarg; break;
        case 'S': split = optarg; break;
        case 'j': json = 1; break;
        case 's': if (core_parse_u64(optarg, 0, UINT64_MAX, "--seed", &v)) return 2; dc.seed = v; break;
        case 't': if (core_parse_u64(optarg, 1, 64, "--threads", &v)) return 2; threads = (uint32_t)v; break;
        case 'h': eval_usage(stdout); return 0;
        default: eval_usage(stderr); return 2;
        }
    }
    int si = !strcmp(split, "train") ? 0 : !strcmp(split, "valid") ? 1 : !strcmp(split, "test") ? 2
             : !strcmp(split, "all") ? 3 : -1;
    if (!model || !events || optind != argc || si < 0 || (paths && isa_name)) {
        if (si < 0) fprintf(stderr, "trail: --split: '%s' is not test, valid, train or all\n", split);
        if (paths && isa_name)
            fprintf(stderr, "trail: --paths scores every path against fp32; it takes no --isa\n");
        eval_usage(stderr);
        return 2;
    }
    mdl_model *m = NULL;
    trn_data *d = NULL;
    trn_metrics mt;
    float *preds = NULL;
    int rc = 1;
    if (mdl_model_load(&m, model, err, sizeof err)) {
        fprintf(stderr, "trail: %s\n", err);
        return 1;
    }
    if (trn_data_load(&d, events, &dc, err, sizeof err)) {
        fprintf(stderr, "trail: %s\n", err);
        goto done;
    }
    size_t lo = 0, hi = d->n_samples;
    if (si < 3) trn_data_split(d, si, &lo, &hi);
    if (hi == lo) {
        fprintf(stderr, "trail: split %s has no samples\n", split);
        goto done;
    }
    if (!(preds = core_malloc((hi - lo) * sizeof *preds)) ||
        trn_eval_isa(m, d, lo, hi, window, threads, isa, preds, &mt, err, sizeof err)) {
        fprintf(stderr, "trail: %s\n", preds ? err : "eval: out of memory");
        goto done;
    }
    if (paths && (n_rows = eval_paths(m, d, lo, hi, window, threads, preds, &mt, rows)) < 0)
        goto done;
    static const char *kinds[3] = {"item_in_window", "category_in_window", "neither"};
    double kauc[3];
    uint64_t kpos[3];
    if (by_history && by_history_aucs(d, lo, hi, window, preds, kauc, kpos)) {
        fprintf(stderr, "trail: eval: out of memory\n");
        goto done;
    }
    if (json) {
        printf("{\"split\":\"%s\",\"protocol\":\"%s\",", split, trn_proto_name(d->protocol));
        print_metrics_json(stdout, &mt);
        printf(",\"gauc_users\":%llu", (unsigned long long)mt.gauc_users);
        if (by_history) {
            printf(",\"by_history\":{");
            for (int k = 0; k < 3; k++) {
                printf("%s\"%s\":{\"positives\":%llu,\"auc\":", k ? "," : "", kinds[k],
                       (unsigned long long)kpos[k]);
                if (isnan(kauc[k])) printf("null}");
                else printf("%.6f}", kauc[k]);
            }
            printf("}");
        }
        if (isa_name)
            printf(",\"isa\":\"%s\",\"precision\":\"%s\"", rank_isa_name(isa), rank_isa_precision(isa));
        if (paths) {
            printf(",\"paths\":[");
            for (int r = 0; r < n_rows; r++) {
                const path_row *w = &rows[r];
                printf("%s{\"isa\":\"%s\",\"precision\":\"%s\",\"auc\":", r ? "," : "",
                       rank_isa_name(w->isa), rank_isa_precision(w->isa));
                print_num_json(w->mt.auc);
                printf(",\"logloss\":");
                print_num_json(w->mt.logloss);
                printf(",\"max_abs_diff_vs_fp32\":");
                print_num_json(w->max_abs);
                printf(",\"auc_diff\":");
                print_num_json(w->auc_diff);
                printf(",\"logloss_diff\":");
                print_num_json(w->logloss_diff);
                printf(",\"within_bounds\":%s}", w->ok ? "true" : "false");
            }
            printf("],\"paths_unavailable\":[");
            for (int i = 0, k = 0; i < RANK_ISA_COUNT; i++)
                if (!rank_isa_available((rank_isa)i))
                    printf("%s\"%s\"", k++ ? "," : "", rank_isa_name((rank_isa)i));
            printf("]");
        }
        printf("}\n");
    } else {
        printf("split=%s samples=%llu auc=%.4f gauc=%.4f logloss=%.4f calibration=%.4f", split,
               (unsigned long long)mt.samples, mt.auc, mt.gauc, mt.logloss, mt.calibration);
        if (!isnan(mt.oracle_auc)) printf(" oracle_auc=%.4f", mt.oracle_auc);
        if (isa_name) printf(" isa=%s", rank_isa_name(isa));
        printf("\n");
        for (int k = 0; by_history && k < 3; k++)
            printf("  positives with %s: %llu, auc against all negatives %.4f\n", kinds[k],
                   (unsigned long long)kpos[k], kauc[k]);
        for (int r = 0; r < n_rows; r++)
            printf("  path %s (%s): auc=%.6f logloss=%.6f max|p-p_fp32|=%.3g auc_diff=%+.2g "
                   "logloss_diff=%+.2g within_bounds=%s\n",
                   rank_isa_name(rows[r].isa), rank_isa_precision(rows[r].isa), rows[r].mt.auc,
                   rows[r].mt.logloss, rows[r].max_abs, rows[r].auc_diff, rows[r].logloss_diff,
                   rows[r].ok ? "yes" : "no");
    }
    rc = 0;
done:
    core_free(preds);
    trn_data_destroy(d);
    mdl_model_destroy(m);
    return rc;
}

// ---------------------------------------------------------------------------------------------

int trn_cmd_bench_train(int argc, char **argv) {
    static const struct option opts[] = {
        {"threads", 1, 0, 't'}, {"batch", 1, 0, 'B'}, {"window", 1, 0, 'T'}, {"recent", 1, 0, 'N'},
        {"dim", 1, 0, 'C'},     {"steps", 1, 0, 'n'}, {"variant", 1, 0, 'v'}, {"json", 0, 0, 'j'},
        {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
    trn_conf tc;
    mdl_config cfg;
    uint32_t steps = 20;
    const char *variant = "full";
    uint64_t v;
    int c, json = 0;
    char err[512];
    trn_conf_default(&tc);
    mdl_config_default(&cfg);
    tc.window = 1024;
    cfg.n_recent = 50;
    cfg.C = 64;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 't': if (core_parse_u64(optarg, 1, 64, "--threads", &v)) return 2; tc.threads = (uint32_t)v; break;
        case 'B': if (core_parse_u64(optarg, 1, TRN_MAX_BATCH, "--batch", &v)) return 2; tc.batch = (uint32_t)v; break;
        case 'T': if (core_parse_u64(optarg, 1, 100000, "--window", &v)) return 2; tc.window = (uint32_t)v; break;
        case 'N': if (core_parse_u64(optarg, 1, 1024, "--recent", &v)) return 2; cfg.n_recent = (uint32_t)v; break;
        case 'C': if (core_parse_u64(optarg, 2, 1024, "--dim", &v)) return 2; cfg.C = (uint32_t)v; break;
        case 'n': if (core_parse_u64(optarg, 1, 100000, "--steps", &v)) return 2; steps = (uint32_t)v; break;
        case 'v': variant = optarg; break;
        case 'j': json = 1; break;
        case 'h':
            printf("usage: trail bench train [--json] [--threads 2] [--batch 256] [--window 1024] "
                   "[--recent 50] [--dim 64] [--steps 20] [--variant full]\n");
            return 0;
        default: return 2;
        }
    }
    if (mdl_variant_parse(&cfg, variant, err, sizeof err) || mdl_config_check(&cfg, err, sizeof err)) {
        fprintf(stderr, "trail: %s\n", err);
        return 2;
    }
    /* Data: a synthetic stream long enough that the measured samples have full windows. */
    trn_gen_conf gc;
    sch_event *ev = NULL;
    size_t n = 0;
    trn_data *d = NULL;
    mdl_model *m = NULL;
    trn_data_conf dc;
    double sps = 0;
    int rc = 1;
    trn_gen_conf_default(&gc);
    gc.users = 64;
    gc.items = 20000;
    gc.events = (uint64_t)gc.users * (tc.window * 2 + 400);
    gc.days = 30;
    trn_data_conf_default(&dc);
    dc.protocol = TRN_PROTO_IMPRESSIONS;
    if (trn_gen_events(&gc, &ev, &n, NULL, err, sizeof err) ||
        trn_data_build(&d, ev, n, &dc, err, sizeof err) || mdl_model_init(&m, &cfg, err, sizeof err)) {
        fprintf(stderr, "trail: %s\n", err);
        goto done;
    }
    /* keep only samples whose history fills the window */
    size_t k = 0;
    for (size_t i = 0; i < d->n_samples; i++)
        if (d->samples[i].hist >= tc.window) d->samples[k++] = d->samples[i];
    if (k < tc.batch) {
        fprintf(stderr, "trail: bench: only %zu samples with %u behaviors of history\n", k, tc.window);
        goto done;
    }
    d->n_samples = k;
    d->split[0] = d->split[1] = k;
    if (trn_bench_steps(m, d, &tc, steps, &sps, err, sizeof err)) {
        fprintf(stderr, "trail: %s\n", err);
        goto done;
    }
    char vs[96];
    mdl_variant_str(&cfg, vs, sizeof vs);
    if (json)
        printf("{\"bench\":\"train\",\"variant\":\"%s\",\"samples_per_s\":%.1f,\"batch\":%u,"
               "\"threads\":%u,\"window\":%u,\"recent\":%u,\"C\":%u,\"steps\":%u}\n",
               vs, sps, tc.batch, tc.threads, tc.window, cfg.n_recent, cfg.C, steps);
    else
        printf("train: %s samples_per_s=%.1f (batch %u, %u threads, window %u, recent %u, C %u)\n", vs,
               sps, tc.batch, tc.threads, tc.window, cfg.n_recent, cfg.C);
    rc = 0;
done:
    core_free(ev);
    trn_data_destroy(d);
    mdl_model_destroy(m);
    return rc;
}
