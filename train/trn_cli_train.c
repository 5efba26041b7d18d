/* trn_cli_train.c: `trail train`, `trail eval` and `trail bench train`. */
#include "core_alloc.h"
#include "core_err.h"
#include "core_report.h"
#include "mdl.h"
#include "rank_isa.h"
#include "mdl_opts.h"
#include "trn_cli.h"
#include "trn_gen.h"
#include "trn_loop.h"
#include "trn_samples.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const core_cmd trn_train_cmd = {
    "train", "train a model on point-in-time samples of an event file", trn_cmd_train,
    "The seed drives initialization, negative sampling and shuffling; evaluate with the same\n"
    "--protocol, --negatives, --seed and --window to see the same samples.\n",
    NULL};

/* the fields of metrics train --json's "valid" and eval share */
static void report_metrics(core_report *r, const trn_metrics *m) {
    core_report_num(r, "auc", "%.6f", m->auc);
    core_report_num(r, "gauc", "%.6f", m->gauc);
    core_report_num(r, "logloss", "%.6f", m->logloss);
    core_report_num(r, "calibration", "%.6f", m->calibration);
    core_report_u64(r, "samples", m->samples);
    if (!isnan(m->oracle_auc)) core_report_num(r, "oracle_auc", "%.6f", m->oracle_auc);
}

static int parse_protocol(const char *v, void *protocol, char *err, size_t n) {
    int p = trn_proto_parse(v);
    if (p < 0) return snprintf(err, n, "'%s' is not auto, impressions, next or taobao", v), 1;
    *(int *)protocol = p;
    return 0;
}

/* The rows train and eval share (they must see the same samples): --protocol, --negatives,
 * --window. */
#define TRN_SAMPLE_OPTS(dc, window, window_seen)                                                   \
    {CORE_OPT_ROW("protocol", CORE_OPT_FUNC, &(dc).protocol, "P",                                  \
                  "auto | impressions | next | taobao (auto: impressions if the file has any)"),   \
     .fn = parse_protocol, .def = "auto"},                                                         \
        CORE_OPT_U32("negatives", &(dc).negatives, "K", 1, 63,                                     \
                     "sampled negatives per positive for next"),                                   \
    {                                                                                              \
        CORE_OPT_ROW("window", CORE_OPT_U32, window, "T", "long-term behaviors per sample"),       \
            .umin = 1, .umax = 100000, .seen = window_seen                                         \
    }

/* train --json: the run's report as one JSON object on stdout */
static void print_train_json(const char *out, const char *vs, int protocol, const trn_report *rep,
                             uint32_t pretrain, const trn_report *prep) {
    core_report r;
    core_report_begin(&r, stdout, CORE_REPORT_JSON_TIGHT, NULL);
    core_report_str(&r, "model", out);
    core_report_str(&r, "variant", vs);
    core_report_str(&r, "protocol", trn_proto_name(protocol));
    core_report_u64(&r, "steps", rep->steps);
    core_report_num(&r, "seconds", "%.3f", rep->seconds);
    core_report_num(&r, "best_epoch", "%.3f", rep->best_epoch);
    core_report_u64(&r, "evals", rep->evals);
    core_report_bool(&r, "stopped_early", rep->stopped_early);
    core_report_obj(&r, "valid");
    report_metrics(&r, &rep->best_valid);
    core_report_close(&r);
    /* "calibration": "platt" (the fit under "platt"), "off" (--calibrate 0) or "skipped: why" */
    if (rep->calibrated) {
        core_report_obj(&r, "platt");
        core_report_num(&r, "slope", "%.6f", rep->cal_slope);
        core_report_num(&r, "offset", "%.6f", rep->cal_offset);
        core_report_num(&r, "valid_logloss_before", "%.6f", rep->raw_logloss);
        core_report_num(&r, "valid_calibration_before", "%.6f", rep->raw_calibration);
        core_report_num(&r, "rate", "%.6f", rep->cal_rate);
        core_report_num(&r, "rate_w_valid", "%.6f", rep->cal_rate_w_valid);
        core_report_close(&r);
        core_report_str(&r, "calibration", "platt");
    } else if (rep->cal_skipped[0]) {
        core_report_strf(&r, "calibration", "skipped: %s", rep->cal_skipped);
    } else {
        core_report_str(&r, "calibration", "off");
    }
    if (pretrain) {
        core_report_obj(&r, "pretrain");
        core_report_u64(&r, "steps", prep->steps);
        core_report_num(&r, "seconds", "%.3f", prep->seconds);
        core_report_num(&r, "best_epoch", "%.3f", prep->best_epoch);
        core_report_num(&r, "valid_gauc", "%.6f", prep->best_valid_gauc);
    }
    core_report_end(&r);
}

int trn_cmd_train(int argc, char **argv) {
    const char *events = NULL, *out = NULL, *init = NULL;
    trn_conf tc;
    trn_data_conf dc;
    mdl_config cfg;
    int rc, json = 0, recent_set = 0, window_set = 0, strict = 1;
    uint32_t pretrain = 0;
    char err[512];
    trn_conf_default(&tc);
    trn_data_conf_default(&dc);
    mdl_config_default(&cfg);
    uint64_t seed = tc.seed;
    const core_opt opts[] = {
        CORE_OPT_NEED("events", &events, "FILE", "the event file"),
        CORE_OPT_NEED("model-out", &out, "M", "the model file to write"),
        TRN_SAMPLE_OPTS(dc, &tc.window, &window_set),
        {CORE_OPT_ROW("strict", CORE_OPT_INT, &strict, "0|1",
                      "1: auto refuses a file whose labeled records were all rejected, or with\n"
                      "more than 1% of its records rejected; 0: warn and go on"),
         .imin = 0, .imax = 1},
        {CORE_OPT_ROW("recent", CORE_OPT_U32, &cfg.n_recent, "N",
                      "short-term behaviors, the model's N"),
         .umin = 1, .umax = 1024, .seen = &recent_set, .def = "50; taobao: 16"},
        CORE_OPT_INCLUDE(mdl_opts_shape, &cfg),
        CORE_OPT_U32("epochs", &tc.epochs, "E", 0, 100000,
                     "passes over the train split (0, with --init: only calibrate that model)"),
        CORE_OPT_U32("batch", &tc.batch, "B", 1, TRN_MAX_BATCH, "samples per step"),
        CORE_OPT_FLT("lr", &tc.adam.lr, "X", 0, 10, "Adam's learning rate"),
        CORE_OPT_U64("seed", &seed, "S", 0, UINT64_MAX,
                     "initialization, negative sampling and shuffling"),
        CORE_OPT_U32("threads", &tc.threads, "K", 1, 64, "training threads"),
        CORE_OPT_FLT("clip", &tc.adam.clip, "X", 0, 1e6, "global gradient-norm clip, 0 = off"),
        CORE_OPT_FLT("branch-dropout", &tc.branch_dropout, "P", 0, 0.9,
                     "training only: zero each sample's u_long, u_short, u_tin and cross blocks\n"
                     "of the head, each with probability P"),
        CORE_OPT_FLT("l2", &tc.adam.l2_emb, "X", 0, 100,
                     "L2 on the embedding rows a batch touches"),
        CORE_OPT_U32("patience", &tc.patience, "K", 0, 1000,
                     "evaluations without a better valid GAUC before stopping"),
        CORE_OPT_U32("evals-per-epoch", &tc.evals_per_epoch, "K", 1, 1000,
                     "validation passes per epoch"),
        CORE_OPT_FILE("init", &init, "M", "resume from a model file (its config and Adam state)"),
        CORE_OPT_U32("pretrain", &pretrain, "E", 0, 1000,
                     "impressions only: first up to E epochs of next-behavior samples (one\n"
                     "popularity negative) from the file's own behaviors of the train period,\n"
                     "stopped early on those of the valid period (0: off)"),
        CORE_OPT_BOOL("calibrate", &tc.calibrate,
                      "Platt-scale the kept model on the valid split: a logit slope and offset,\n"
                      "folded into the output layer and item biases"),
        CORE_OPT_FLG("json", &json, "print the final report as one JSON object on stdout"),
        CORE_OPT_LOG_LEVEL,
        CORE_OPT_ENDROW};
    if ((rc = core_opts_parse(&trn_train_cmd, opts, argc, argv)) != CORE_OPTS_GO) return rc;
    tc.seed = dc.seed = cfg.seed = seed;
    if (tc.epochs == 0 && (!init || pretrain))
        return core_cmd_usage(&trn_train_cmd,
                              "--epochs 0 calibrates the --init model only; it needs --init and "
                              "takes no --pretrain");
    if (dc.protocol == TRN_PROTO_TAOBAO) { /* the pinned protocol: long 256, short 16 */
        if (!window_set) tc.window = 256;
        if (!recent_set) cfg.n_recent = 16;
    }
    mdl_model *m = NULL;
    trn_data *d = NULL;
    trn_report rep;
    sch_event *ev = NULL;
    size_t n_ev = 0;
    trn_read_stats rs;
    rc = 1;
    if (!init && mdl_config_check(&cfg, err, sizeof err)) {
        fprintf(stderr, "trail: %s\n", err);
        return 2;
    }
    if (init ? mdl_model_load(&m, init, err, sizeof err)
             : mdl_model_init(&m, &cfg, err, sizeof err)) {
        fprintf(stderr, "trail: %s%s\n", init ? "--init: " : "", err);
        return 1;
    }
    /* read once: pretraining builds its own samples from the same events */
    if (trn_events_read_stats(events, &ev, &n_ev, &rs, err, sizeof err)) goto fail;
    if (dc.protocol == TRN_PROTO_AUTO) { /* auto must not switch task because records were lost */
        char why[640];
        if (trn_auto_check(&rs, ev, n_ev, why, sizeof why)) {
            if (strict) {
                fprintf(stderr, "trail: %s: %s (or --strict 0 to go ahead)\n", events, why);
                goto done;
            }
            fprintf(stderr, "trail: warning: %s: %s; going ahead (--strict 0)\n", events, why);
        }
    }
    if (trn_data_build(&d, ev, n_ev, &dc, err, sizeof err)) goto fail;
    d->bad_records = rs.bad;
    char vs[96];
    mdl_variant_str(&m->cfg, vs, sizeof vs);
    fprintf(stderr,
            "train: events=%s protocol=%s samples=%zu train=%zu valid=%zu test=%zu users=%u "
            "behaviors=%zu variant=%s window=%u recent=%u threads=%u%s%s\n",
            events, trn_proto_name(d->protocol), d->n_samples, d->split[0],
            d->split[1] - d->split[0], d->n_samples - d->split[1], d->n_users, d->n_beh, vs,
            tc.window, m->cfg.n_recent, tc.threads, init ? " resume=" : "", init ? init : "");
    tc.progress = stderr;
    tc.progress_tty = isatty(2);
    trn_report prep = {0};
    if (pretrain && trn_pretrain(m, d, ev, n_ev, &dc, &tc, pretrain, &prep, err, sizeof err))
        goto fail;
    core_free(ev); /* the samples hold what training needs */
    ev = NULL;
    if ((tc.epochs ? trn_train : trn_calibrate)(m, d, &tc, &rep, err, sizeof err) ||
        mdl_model_save(m, out, 1, err, sizeof err))
        goto fail;
    if (rep.calibrated)
        fprintf(stderr,
                "train: calibrated on the valid split: logit' = %.4f logit %+.4f; valid log loss "
                "%.4f -> %.4f, calibration %.4f -> %.4f (mean prediction %.4f: the valid click "
                "rate %.4f weighted %.2f, the train split's the rest)\n",
                rep.cal_slope, rep.cal_offset, rep.raw_logloss, rep.best_valid.logloss,
                rep.raw_calibration, rep.best_valid.calibration, rep.cal_rate,
                rep.best_valid.mean_label, rep.cal_rate_w_valid);
    if (rep.cal_skipped[0])
        fprintf(stderr,
                "trail: warning: calibration skipped: %s; the model is saved "
                "uncalibrated\n",
                rep.cal_skipped);
    fprintf(stderr,
            "train: kept the model of epoch %.2f (valid gauc %.4f) in %s; %llu steps, %.1f s%s\n",
            rep.best_epoch, rep.best_valid_gauc, out, (unsigned long long)rep.steps, rep.seconds,
            rep.stopped_early ? ", stopped early" : "");
    rep.seconds += prep.seconds; /* the report's time is the whole run's */
    if (json) print_train_json(out, vs, d->protocol, &rep, pretrain, &prep);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "trail: %s\n", err);
done:
    core_free(ev);
    trn_data_destroy(d);
    mdl_model_destroy(m);
    return rc;
}

// ---------------------------------------------------------------------------------------------

const core_cmd trn_eval_cmd = {
    "eval", "evaluate a model on a split of an event file (AUC, GAUC, log loss)", trn_cmd_eval,
    "--protocol, --negatives, --seed and --window: the values used in training.\n", NULL};

static const char *const splits[] = {"train", "valid", "test", "all", NULL};

int trn_cmd_eval(int argc, char **argv) {
    const char *model = NULL, *events = NULL, *isa_name = NULL;
    rank_isa isa = RANK_ISA_FP32;
    trn_path_row rows[RANK_ISA_COUNT];
    int n_rows = 0, paths = 0, si = 2, rc;
    trn_data_conf dc;
    uint32_t window = 256, threads = 2;
    int json = 0, by_history = 0;
    char err[512];
    trn_data_conf_default(&dc);
    const core_opt opts[] = {
        CORE_OPT_NEED("model", &model, "M", "the model file"),
        CORE_OPT_NEED("events", &events, "FILE", "the event file"),
        {CORE_OPT_ROW("split", CORE_OPT_ENUM, &si, NULL, "the samples scored"), .choices = splits},
        TRN_SAMPLE_OPTS(dc, &window, NULL),
        CORE_OPT_U64("seed", &dc.seed, "S", 0, UINT64_MAX, "negative sampling"),
        CORE_OPT_U32("threads", &threads, "K", 1, 64, "scoring threads"),
        CORE_OPT_JSON(&json),
        CORE_OPT_FLG("by-history", &by_history,
                     "also the AUC of each kind of positive against all negatives: its item in\n"
                     "the window, only its category, or neither"),
        {CORE_OPT_ROW("isa", CORE_OPT_STRING, &isa_name, "NAME",
                      "score on that serving compute path (scalar, fp32, avx2, avx512-bf16,\n"
                      "amx-bf16, auto; fp32 = training's OpenBLAS forward)"),
         .def = "fp32"},
        CORE_OPT_FLG("paths", &paths,
                     "score on fp32, then on every other path this machine runs, and report each\n"
                     "one's difference from fp32 (\"paths\" in the JSON; within_bounds: max\n"
                     "|p - p_fp32| <= 5e-3, |AUC diff| <= 5e-4, |log-loss diff| <= 1e-3)"),
        CORE_OPT_LOG_LEVEL,
        CORE_OPT_ENDROW};
    if ((rc = core_opts_parse(&trn_eval_cmd, opts, argc, argv)) != CORE_OPTS_GO) return rc;
    if (isa_name && rank_isa_parse(isa_name, &isa, err, sizeof err))
        return core_cmd_usage(&trn_eval_cmd, "--isa: %s", err);
    if (paths && isa_name)
        return core_cmd_usage(&trn_eval_cmd,
                              "--paths scores every path against fp32; it takes no --isa");
    const char *split = splits[si];
    mdl_model *m = NULL;
    trn_data *d = NULL;
    trn_metrics mt;
    float *preds = NULL;
    rc = 1;
    if (mdl_model_load(&m, model, err, sizeof err) ||
        trn_data_load(&d, events, &dc, err, sizeof err))
        goto fail;
    size_t lo = 0, hi = d->n_samples;
    if (si < 3) trn_data_split(d, si, &lo, &hi);
    if (hi == lo) {
        snprintf(err, sizeof err, "split %s has no samples", split);
        goto fail;
    }
    static const char *kinds[3] = {"item_in_window", "category_in_window", "neither"};
    double kauc[3];
    uint64_t kpos[3];
    snprintf(err, sizeof err, "eval: out of memory"); /* unless a step below says otherwise */
    if (!(preds = core_malloc((hi - lo) * sizeof *preds)) ||
        trn_eval_isa(m, d, lo, hi, window, threads, isa, preds, &mt, err, sizeof err) ||
        (paths && (n_rows = trn_eval_paths(m, d, lo, hi, window, threads, preds, &mt, rows, err,
                                           sizeof err)) < 0) ||
        (by_history && trn_eval_by_history(d, lo, hi, window, preds, kauc, kpos)))
        goto fail;
    core_report r;
    core_report_begin(&r, stdout, json ? CORE_REPORT_JSON_TIGHT : CORE_REPORT_TEXT, "eval");
    core_report_str(&r, "split", split);
    core_report_str(&r, "protocol", trn_proto_name(d->protocol));
    report_metrics(&r, &mt);
    core_report_u64(&r, "gauc_users", mt.gauc_users);
    if (by_history) {
        core_report_obj(&r, "by_history");
        for (int k = 0; k < 3; k++) {
            core_report_obj(&r, kinds[k]);
            core_report_u64(&r, "positives", kpos[k]);
            core_report_num(&r, "auc", "%.6f", kauc[k]);
            core_report_close(&r);
        }
        core_report_close(&r);
    }
    if (isa_name) {
        core_report_str(&r, "isa", rank_isa_name(isa));
        core_report_str(&r, "precision", rank_isa_precision(isa));
    }
    if (paths) {
        core_report_arr(&r, "paths");
        for (int i = 0; i < n_rows; i++) {
            const trn_path_row *w = &rows[i];
            core_report_obj(&r, NULL);
            core_report_str(&r, "isa", rank_isa_name(w->isa));
            core_report_str(&r, "precision", rank_isa_precision(w->isa));
            core_report_num(&r, "auc", "%.6g", w->mt.auc);
            core_report_num(&r, "logloss", "%.6g", w->mt.logloss);
            core_report_num(&r, "max_abs_diff_vs_fp32", "%.6g", w->max_abs);
            core_report_num(&r, "auc_diff", "%.6g", w->auc_diff);
            core_report_num(&r, "logloss_diff", "%.6g", w->logloss_diff);
            core_report_bool(&r, "within_bounds", w->ok);
            core_report_close(&r);
        }
        core_report_close(&r);
        core_report_arr(&r, "paths_unavailable");
        for (int i = 0; i < RANK_ISA_COUNT; i++)
            if (!rank_isa_available((rank_isa)i))
                core_report_str(&r, NULL, rank_isa_name((rank_isa)i));
    }
    core_report_end(&r);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "trail: %s\n", err);
done:
    core_free(preds);
    trn_data_destroy(d);
    mdl_model_destroy(m);
    return rc;
}

// ---------------------------------------------------------------------------------------------

const core_cmd trn_bench_train_cmd = {"bench train", "training throughput (samples/s)",
                                      trn_cmd_bench_train, NULL, NULL};

int trn_cmd_bench_train(int argc, char **argv) {
    trn_conf tc;
    mdl_config cfg;
    uint32_t steps = 20;
    int json = 0;
    char err[512];
    trn_conf_default(&tc);
    mdl_config_default(&cfg);
    tc.window = 1024;
    cfg.n_recent = 50;
    cfg.C = 64;
    const core_opt opts[] = {
        CORE_OPT_U32("threads", &tc.threads, "K", 1, 64, "training threads"),
        CORE_OPT_U32("batch", &tc.batch, "B", 1, TRN_MAX_BATCH, "samples per step"),
        CORE_OPT_U32("window", &tc.window, "T", 1, 100000, "long-term behaviors per sample"),
        CORE_OPT_U32("steps", &steps, "K", 1, 100000, "timed steps"),
        CORE_OPT_INCLUDE(mdl_opts_shape, &cfg),
        CORE_OPT_JSON(&json),
        CORE_OPT_ENDROW};
    int rc = core_opts_parse(&trn_bench_train_cmd, opts, argc, argv);
    if (rc != CORE_OPTS_GO) return rc;
    if (mdl_config_check(&cfg, err, sizeof err)) {
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
    rc = 1;
    trn_gen_conf_default(&gc);
    gc.users = 64;
    gc.items = 20000;
    gc.events = (uint64_t)gc.users * (tc.window * 2 + 400);
    gc.days = 30;
    trn_data_conf_default(&dc);
    dc.protocol = TRN_PROTO_IMPRESSIONS;
    if (trn_gen_events(&gc, &ev, &n, NULL, err, sizeof err) ||
        trn_data_build(&d, ev, n, &dc, err, sizeof err) ||
        mdl_model_init(&m, &cfg, err, sizeof err))
        goto fail;
    /* keep only samples whose history fills the window */
    size_t k = 0;
    for (size_t i = 0; i < d->n_samples; i++)
        if (d->samples[i].hist >= tc.window) d->samples[k++] = d->samples[i];
    if (k < tc.batch) {
        snprintf(err, sizeof err, "bench: only %zu samples with %u behaviors of history", k,
                 tc.window);
        goto fail;
    }
    d->n_samples = k;
    d->split[0] = d->split[1] = k;
    if (trn_bench_steps(m, d, &tc, steps, &sps, err, sizeof err)) goto fail;
    char vs[96];
    mdl_variant_str(&cfg, vs, sizeof vs);
    core_report r;
    core_report_begin(&r, stdout, json ? CORE_REPORT_JSON_TIGHT : CORE_REPORT_TEXT, "bench train");
    core_report_str(&r, "bench", "train");
    core_report_str(&r, "variant", vs);
    core_report_num(&r, "samples_per_s", "%.1f", sps);
    core_report_u64(&r, "batch", tc.batch);
    core_report_u64(&r, "threads", tc.threads);
    core_report_u64(&r, "window", tc.window);
    core_report_u64(&r, "recent", cfg.n_recent);
    core_report_u64(&r, "C", cfg.C);
    core_report_u64(&r, "steps", steps);
    core_report_end(&r);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "trail: %s\n", err);
done:
    core_free(ev);
    trn_data_destroy(d);
    mdl_model_destroy(m);
    return rc;
}
