/* trn_loop.c: batches, threads, the reduction, the optimizer step, evaluation and early stopping
 * (trn_loop.h). The network itself is rank_net (ranker/rank_net.h). */
#include "trn_loop.h"

#include "core_alloc.h"
#include "core_err.h"
#include "core_util.h"
#include "rank_blas.h"
#include "rank_engine.h"
#include "rank_net.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

/* A batch closes before a group that would overflow it, but a first group may be larger than the
 * batch: nets are sized for this much more (groups are 1 + negatives samples). */
#define TRN_GROUP_SLACK 64

void trn_conf_default(trn_conf *c) {
    memset(c, 0, sizeof *c);
    c->epochs = 10;
    c->batch = 256;
    c->threads = 2;
    c->window = 256;
    c->evals_per_epoch = 2;
    c->patience = 3;
    c->seed = 1;
    c->calibrate = 1;
    trn_adam_conf_default(&c->adam);
}

// ---------------------------------------------------------------------------------------------
// Workers: one rank_net, one gradient arena and one batch part each.

typedef struct trn_worker {
    rank_net *net;
    float *grad; /* gradient arena (model layout), zero outside dense + touched rows */
    mdl_params gp;
    rank_history *users;  // (max_B)
    uint32_t *uidx;       // (max_B)
    uint64_t *item, *cat; // (max_B)
    float *probs, *dlog;  // (max_B)
    float *keep;          // (max_B x RANK_BRANCHES) branch dropout's multipliers, train only
    float drop;           /* the branch dropout probability of this step (0: none) */
    uint64_t drop_seed;   /* with the sample index, draws its mask */
    /* the current job */
    const mdl_model *m;
    const trn_data *d;
    uint32_t window, max_B;
    const size_t *sidx;        /* sample indices of this part (train) */
    size_t lo, hi;             /* sample range (eval) */
    float *preds;              /* eval output for [lo, hi) */
    const rank_engine *engine; /* eval on a serving path (shared, read-only); NULL: fp32 OpenBLAS */
    uint32_t n;
    int backward;
    float scale; /* dlogit scale: 1 / batch size */
    double loss;
    int rc;
    const uint32_t *t_item, *t_cat;
    uint32_t n_ti, n_tc;
} trn_worker;

typedef struct trn_ctx {
    uint32_t nt;
    trn_worker *w;
    trn_opt opt;
    uint32_t *mark_item, *mark_cat; /* stamp per row: in the union of this step */
    uint32_t *u_item, *u_cat;       /* the union of touched rows */
    uint32_t stamp;
    size_t n_floats;
} trn_ctx;

static void ctx_destroy(trn_ctx *x) {
    if (!x) return;
    for (uint32_t t = 0; x->w && t < x->nt; t++) {
        trn_worker *w = &x->w[t];
        rank_net_destroy(w->net);
        core_free(w->grad);
        core_free(w->users);
        core_free(w->uidx);
        core_free(w->item);
        core_free(w->cat);
        core_free(w->probs);
        core_free(w->dlog);
        core_free(w->keep);
    }
    core_free(x->w);
    core_free(x->mark_item);
    core_free(x->mark_cat);
    core_free(x->u_item);
    core_free(x->u_cat);
    core_free(x);
}

static uint32_t needs_window(const mdl_config *cfg) {
    return cfg->long_kind != MDL_LONG_NONE || mdl_reads_window(cfg);
}

static int ctx_new(trn_ctx **out, const mdl_model *m, uint32_t nt, uint32_t max_B, uint32_t window,
                   int train, char *err, size_t err_size) {
    trn_ctx *x = core_calloc(1, sizeof *x);
    int rc = CORE_ENOMEM;
    if (!x) goto nomem;
    rank_blas_single_thread(); /* the workers are the parallelism; BLAS threads would fight them */
    x->nt = nt;
    x->n_floats = m->n_floats;
    trn_opt_init(&x->opt, &m->cfg);
    x->w = core_calloc(nt, sizeof *x->w);
    if (!x->w) goto nomem;
    rank_net_shape shape = {max_B, max_B, needs_window(&m->cfg) ? window : 0, 0, train, 0};
    for (uint32_t t = 0; t < nt; t++) {
        trn_worker *w = &x->w[t];
        if ((rc = rank_net_new(&w->net, &m->cfg, &shape, err, err_size))) goto fail;
        rc = CORE_ENOMEM;
        w->users = core_calloc(max_B, sizeof *w->users);
        w->uidx = core_malloc(max_B * sizeof *w->uidx);
        w->item = core_malloc(max_B * sizeof *w->item);
        w->cat = core_malloc(max_B * sizeof *w->cat);
        w->probs = core_malloc(max_B * sizeof *w->probs);
        w->dlog = core_malloc(max_B * sizeof *w->dlog);
        if (!w->users || !w->uidx || !w->item || !w->cat || !w->probs || !w->dlog) goto nomem;
        if (train) {
            w->grad = core_aligned_alloc(m->n_floats * sizeof(float));
            w->keep = core_malloc((size_t)max_B * RANK_BRANCHES * sizeof *w->keep);
            if (!w->grad || !w->keep) goto nomem;
            memset(w->grad, 0, m->n_floats * sizeof(float));
            mdl_params_bind(&w->gp, &m->cfg, w->grad);
        }
        w->max_B = max_B;
        w->window = window;
    }
    if (train) {
        x->mark_item = core_calloc(m->cfg.item_rows, sizeof(uint32_t));
        x->mark_cat = core_calloc(m->cfg.cat_rows, sizeof(uint32_t));
        x->u_item = core_malloc(m->cfg.item_rows * sizeof(uint32_t));
        x->u_cat = core_malloc(m->cfg.cat_rows * sizeof(uint32_t));
        if (!x->mark_item || !x->mark_cat || !x->u_item || !x->u_cat) goto nomem;
    }
    *out = x;
    return CORE_OK;
nomem:
    snprintf(err, err_size, "train: out of memory");
    rc = CORE_ENOMEM;
fail:
    ctx_destroy(x);
    return rc;
}

/* One rank_history per distinct (user, hist, ts) among consecutive samples. */
static uint32_t fill_batch(trn_worker *w, const trn_sample *const *s, uint32_t n) {
    const mdl_config *cfg = &w->m->cfg;
    uint32_t U = 0, T = needs_window(cfg) ? w->window : 0;
    for (uint32_t b = 0; b < n; b++) {
        const trn_sample *x = s[b];
        if (b == 0 || x->user != s[b - 1]->user || x->hist != s[b - 1]->hist ||
            x->ts != s[b - 1]->ts) {
            rank_history *h = &w->users[U++];
            uint32_t nT, nN;
            memset(h, 0, sizeof *h);
            h->window = T ? trn_data_history(w->d, x, T, &nT) : NULL;
            h->T = T ? nT : 0;
            h->window_len = h->T;
            h->recent = trn_data_history(w->d, x, cfg->n_recent, &nN);
            h->N = nN;
            h->now_ts = x->ts;
        }
        w->uidx[b] = U - 1;
        w->item[b] = x->item_id;
        w->cat[b] = x->category_id;
    }
    return U;
}

static int run_part(trn_worker *w, const trn_sample *const *s, uint32_t n, float *probs_out) {
    rank_batch bt;
    memset(&bt, 0, sizeof bt);
    bt.U = fill_batch(w, s, n);
    bt.users = w->users;
    bt.item_id = w->item;
    bt.category_id = w->cat;
    bt.user = w->uidx;
    bt.B = n;
    bt.engine = w->engine;
    if (w->backward && w->drop > 0) bt.branch_keep = w->keep;
    int rc = rank_net_forward(w->net, w->m, &bt, NULL, probs_out);
    if (rc || !w->backward) return rc;
    for (uint32_t b = 0; b < n; b++) {
        float p = probs_out[b], y = s[b]->label ? 1.0f : 0.0f;
        double pc = p < 1e-7f ? 1e-7 : p > 1 - 1e-7f ? 1 - 1e-7 : p;
        w->loss -= y > 0 ? log(pc) : log(1 - pc);
        w->dlog[b] = (p - y) * w->scale; /* d(mean BCE)/dlogit */
    }
    rank_net_backward(w->net, w->m, &bt, w->dlog, &w->gp);
    rank_net_touched(w->net, &w->t_item, &w->n_ti, &w->t_cat, &w->n_tc);
    return CORE_OK;
}

static void *train_part(void *arg) {
    trn_worker *w = arg;
    const trn_sample *ptr[TRN_MAX_BATCH + TRN_GROUP_SLACK];
    w->loss = 0;
    w->n_ti = w->n_tc = 0;
    w->rc = CORE_OK;
    if (w->n == 0) return NULL;
    for (uint32_t b = 0; b < w->n; b++)
        ptr[b] = &w->d->samples[w->sidx[b]];
    /* branch dropout: each sample's mask from its index and the step, so it does not depend on
     * how the batch was split over threads */
    for (uint32_t b = 0; w->drop > 0 && b < w->n; b++) {
        core_rng r;
        core_rng_seed(&r, core_hash_id(w->sidx[b], w->drop_seed));
        for (int k = 0; k < RANK_BRANCHES; k++)
            w->keep[(size_t)b * RANK_BRANCHES + k] =
                core_rng_uniform(&r) < w->drop ? 0.f : 1.f / (1.f - w->drop);
    }
    w->rc = run_part(w, ptr, w->n, w->probs);
    return NULL;
}

static void *eval_part(void *arg) {
    trn_worker *w = arg;
    const trn_sample *ptr[TRN_MAX_BATCH + TRN_GROUP_SLACK];
    w->rc = CORE_OK;
    for (size_t i = w->lo; i < w->hi && !w->rc; i += w->max_B) {
        uint32_t n = (uint32_t)(w->hi - i < w->max_B ? w->hi - i : w->max_B);
        for (uint32_t b = 0; b < n; b++)
            ptr[b] = &w->d->samples[i + b];
        w->rc = run_part(w, ptr, n, w->preds + (i - w->lo));
    }
    return NULL;
}

/* Run fn on every worker: worker 0 on this thread, the others on their own threads. */
static int run_workers(trn_ctx *x, void *(*fn)(void *)) {
    pthread_t th[64];
    uint32_t started = 0;
    for (uint32_t t = 1; t < x->nt; t++, started++)
        if (pthread_create(&th[t], NULL, fn, &x->w[t])) break;
    fn(&x->w[0]);
    for (uint32_t t = 1; t <= started; t++)
        pthread_join(th[t], NULL);
    for (uint32_t t = started + 1; t < x->nt; t++)
        fn(&x->w[t]); /* could not start: run here */
    for (uint32_t t = 0; t < x->nt; t++)
        if (x->w[t].rc) return x->w[t].rc;
    return CORE_OK;
}

// ---------------------------------------------------------------------------------------------
// Evaluation

int trn_eval(const mdl_model *m, const trn_data *d, size_t lo, size_t hi, uint32_t window,
             uint32_t threads, float *preds, trn_metrics *metrics, char *err, size_t err_size) {
    return trn_eval_isa(m, d, lo, hi, window, threads, RANK_ISA_FP32, preds, metrics, err,
                        err_size);
}

int trn_eval_isa(const mdl_model *m, const trn_data *d, size_t lo, size_t hi, uint32_t window,
                 uint32_t threads, rank_isa isa, float *preds, trn_metrics *metrics, char *err,
                 size_t err_size) {
    trn_ctx *x = NULL;
    rank_engine *eng = NULL;
    float *p = preds;
    uint8_t *lab = NULL;
    uint64_t *usr = NULL;
    float *orc = NULL;
    size_t n = hi - lo;
    int rc;
    const uint32_t max_B = 256;
    if (threads < 1) threads = 1;
    if (threads > n / max_B + 1) threads = (uint32_t)(n / max_B + 1);
    if ((unsigned)isa >= RANK_ISA_COUNT || !rank_isa_available(isa)) {
        snprintf(err, err_size, "eval: compute path '%s' is not available on this machine",
                 rank_isa_name(isa));
        return CORE_ERANGE;
    }
    /* fp32 is training's own forward (OpenBLAS, no engine): trn_eval's numbers exactly */
    if (isa != RANK_ISA_FP32 && (rc = rank_engine_new(&eng, m, isa))) {
        snprintf(err, err_size, "eval: packing the model for path %s: %s", rank_isa_name(isa),
                 core_strerror(rc));
        return rc;
    }
    if ((rc = ctx_new(&x, m, threads, max_B, window, 0, err, err_size))) {
        rank_engine_destroy(eng);
        return rc;
    }
    rc = CORE_ENOMEM;
    if (!p && !(p = core_malloc(sizeof(float) * (n ? n : 1)))) goto fail;
    for (uint32_t t = 0; t < threads; t++) {
        trn_worker *w = &x->w[t];
        w->engine = eng;
        w->m = m;
        w->d = d;
        w->lo = lo + n * t / threads;
        w->hi = lo + n * (t + 1) / threads;
        w->preds = p + (w->lo - lo);
        w->backward = 0;
    }
    if ((rc = run_workers(x, eval_part))) {
        snprintf(err, err_size, "eval: forward failed: %s", core_strerror(rc));
        goto fail;
    }
    if (metrics) {
        rc = CORE_ENOMEM;
        lab = core_malloc(n ? n : 1);
        usr = core_malloc(sizeof(uint64_t) * (n ? n : 1));
        orc = core_malloc(sizeof(float) * (n ? n : 1));
        if (!lab || !usr || !orc) goto fail;
        int all_prob = n > 0;
        for (size_t i = 0; i < n; i++) {
            const trn_sample *s = &d->samples[lo + i];
            lab[i] = s->label;
            usr[i] = d->user_id[s->user];
            orc[i] = s->prob;
            all_prob &= s->has_prob;
        }
        if ((rc = trn_metrics_compute(metrics, p, lab, usr, all_prob ? orc : NULL, n))) goto fail;
    }
    rc = CORE_OK;
fail:
    if (rc == CORE_ENOMEM) snprintf(err, err_size, "eval: out of memory");
    if (p != preds) core_free(p);
    core_free(lab);
    core_free(usr);
    core_free(orc);
    ctx_destroy(x);
    rank_engine_destroy(eng);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// Training

/* Split a batch of samples (whole groups) into one contiguous part per worker, at group bounds. */
static void assign_parts(trn_ctx *x, const trn_data *d, const size_t *sidx, uint32_t n) {
    uint32_t start = 0;
    for (uint32_t t = 0; t < x->nt; t++) {
        uint32_t end = t + 1 == x->nt ? n : (uint32_t)((uint64_t)n * (t + 1) / x->nt);
        if (end < start) end = start;
        /* move the cut forward to the next group boundary */
        while (end > start && end < n) {
            const trn_sample *a = &d->samples[sidx[end - 1]], *b = &d->samples[sidx[end]];
            if (a->user != b->user || a->hist != b->hist || a->ts != b->ts) break;
            end++;
        }
        x->w[t].sidx = sidx + start;
        x->w[t].n = end - start;
        start = end;
    }
}

/* Union the touched rows, reduce the arenas into worker 0's, step Adam, zero the arenas. */
static void reduce_and_step(trn_ctx *x, mdl_model *m, const trn_adam_conf *ac, double *gnorm) {
    uint32_t nu_i = 0, nu_c = 0;
    if (++x->stamp == 0) { /* wrapped: clear the marks once every 2^32 steps */
        memset(x->mark_item, 0, m->cfg.item_rows * sizeof(uint32_t));
        memset(x->mark_cat, 0, m->cfg.cat_rows * sizeof(uint32_t));
        x->stamp = 1;
    }
    for (uint32_t t = 0; t < x->nt; t++) {
        trn_worker *w = &x->w[t];
        for (uint32_t i = 0; i < w->n_ti; i++)
            if (x->mark_item[w->t_item[i]] != x->stamp) {
                x->mark_item[w->t_item[i]] = x->stamp;
                x->u_item[nu_i++] = w->t_item[i];
            }
        for (uint32_t i = 0; i < w->n_tc; i++)
            if (x->mark_cat[w->t_cat[i]] != x->stamp) {
                x->mark_cat[w->t_cat[i]] = x->stamp;
                x->u_cat[nu_c++] = w->t_cat[i];
            }
    }
    float *g0 = x->w[0].grad;
    for (uint32_t t = 1; t < x->nt; t++) {
        trn_worker *w = &x->w[t];
        trn_rows r = {w->t_item, w->n_ti, w->t_cat, w->n_tc};
        trn_opt_accumulate(&x->opt, g0, w->grad, &r);
        trn_opt_zero(&x->opt, w->grad, &r);
    }
    trn_rows all = {x->u_item, nu_i, x->u_cat, nu_c};
    trn_adam_step(&x->opt, ac, m->arena, m->adam_m, m->adam_v, g0, &m->adam_step, &all, gnorm);
    trn_opt_zero(&x->opt, g0, &all);
}

typedef struct trn_groups {
    size_t *start; /* (n + 1) sample index of each group's first sample in the train split */
    size_t n;
    size_t *order; /* (n) shuffled group ids */
} trn_groups;

static int groups_build(trn_groups *g, const trn_data *d, size_t lo, size_t hi) {
    g->start = core_malloc(sizeof(size_t) * (hi - lo + 1));
    g->order = core_malloc(sizeof(size_t) * (hi - lo + 1));
    if (!g->start || !g->order) return CORE_ENOMEM;
    g->n = 0;
    for (size_t i = lo; i < hi; i++) {
        const trn_sample *a = &d->samples[i];
        if (i == lo || a->user != a[-1].user || a->hist != a[-1].hist || a->ts != a[-1].ts ||
            i - g->start[g->n - 1] >= TRN_GROUP_SLACK) /* a long run of one context is cut */
            g->start[g->n++] = i;
    }
    g->start[g->n] = hi;
    for (size_t i = 0; i < g->n; i++)
        g->order[i] = i;
    return CORE_OK;
}

static void fmt_dur(char *buf, size_t cap, double s) {
    if (!(s >= 0) || s > 1e7)
        snprintf(buf, cap, "?");
    else if (s >= 3600)
        snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else if (s >= 60)
        snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(buf, cap, "%.0fs", s);
}

static void progress(const trn_conf *c, int final, double epoch, uint64_t step, uint64_t total,
                     double sps, double loss, double vgauc, double best, double eta) {
    if (!c->progress) return;
    char e[32], vg[16] = "-", bs[16] = "-"; /* "-" until the first evaluation */
    fmt_dur(e, sizeof e, eta);
    if (!isnan(vgauc)) snprintf(vg, sizeof vg, "%.4f", vgauc);
    if (best >= 0) snprintf(bs, sizeof bs, "%.4f", best);
    if (c->progress_tty) {
        int width = 24, fill = total ? (int)((double)width * (double)step / (double)total) : 0;
        char bar[32];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(c->progress,
                "\r[%s] epoch %.2f step %llu/%llu | %.0f samples/s | loss %.4f | "
                "valid gauc %s (best %s) | eta %s   ",
                bar, epoch, (unsigned long long)step, (unsigned long long)total, sps, loss, vg, bs,
                e);
        if (final) fputc('\n', c->progress);
    } else {
        fprintf(c->progress,
                "train: epoch=%.2f step=%llu/%llu samples_per_s=%.0f loss=%.4f "
                "valid_gauc=%s best=%s eta=%s\n",
                epoch, (unsigned long long)step, (unsigned long long)total, sps, loss, vg, bs, e);
    }
    fflush(c->progress);
}

static void shuffle_groups(trn_groups *g, core_rng *rng) {
    for (size_t i = g->n; i > 1; i--) { /* Fisher-Yates over groups */
        size_t j = (size_t)core_rng_below(rng, i), t = g->order[i - 1];
        g->order[i - 1] = g->order[j];
        g->order[j] = t;
    }
}

/* Fill a batch from the shuffled groups starting at *gi; returns its sample count. */
static uint32_t next_batch(const trn_groups *g, size_t *gi, size_t *sidx, uint32_t batch) {
    uint32_t n = 0;
    while (*gi < g->n) {
        size_t id = g->order[*gi], len = g->start[id + 1] - g->start[id];
        if (n > 0 && n + len > batch) break;
        for (size_t k = 0; k < len; k++)
            sidx[n++] = g->start[id] + k; /* len <= TRN_GROUP_SLACK */
        (*gi)++;
    }
    return n;
}

static int train_step(trn_ctx *x, mdl_model *m, const trn_data *d, const trn_conf *c,
                      const size_t *sidx, uint32_t n, double *loss) {
    assign_parts(x, d, sidx, n);
    for (uint32_t t = 0; t < x->nt; t++) {
        x->w[t].m = m;
        x->w[t].d = d;
        x->w[t].backward = 1;
        x->w[t].scale = 1.0f / (float)n;
        x->w[t].drop = c->branch_dropout;
        x->w[t].drop_seed = core_hash_id(m->adam_step, c->seed ^ 0xD509ull);
    }
    int rc = run_workers(x, train_part);
    if (rc) return rc;
    *loss = 0;
    for (uint32_t t = 0; t < x->nt; t++)
        *loss += x->w[t].loss;
    *loss /= n;
    reduce_and_step(x, m, &c->adam, NULL);
    return CORE_OK;
}

static int alloc_adam(mdl_model *m) {
    if (m->adam_m && m->adam_v) return CORE_OK;
    size_t bytes = m->n_floats * sizeof(float);
    /* a fresh optimizer state: allocate what is missing, zero both, restart the step count */
    if (!m->adam_m && !(m->adam_m = core_aligned_alloc(bytes))) return CORE_ENOMEM;
    if (!m->adam_v && !(m->adam_v = core_aligned_alloc(bytes))) return CORE_ENOMEM;
    memset(m->adam_m, 0, bytes);
    memset(m->adam_v, 0, bytes);
    m->adam_step = 0;
    return CORE_OK;
}

/* Platt scaling on the valid split, folded into the weights so that every scorer serves it:
 * a * (w3 . h + b3 + item_bias) + c = (a w3) . h + (a b3 + c) + a item_bias. kept: the valid
 * predictions of m as the evaluation that chose it made them. The slope and offset are fitted
 * to the valid labels; the offset is then moved so that the valid split's mean prediction is
 * trn_level_prior's rate, the valid click rate shrunk toward the train split's as far as the
 * train split shows the rate to be stable (docs/TRAINING.md: the valid split's own rate is off
 * its true rate by binomial noise, 1.3% on 15,000 impressions, and the fit copied that error to
 * every later prediction). A fit that fails (see trn_platt_fit) leaves the model as it is and
 * says why in rep->cal_skipped. The valid metrics are measured again (into vpred). */
static int calibrate(mdl_model *m, const trn_data *d, size_t tr_lo, size_t tr_hi, size_t lo,
                     size_t hi, const trn_conf *c, const float *kept, float *vpred, trn_report *rep,
                     char *err, size_t err_size) {
    size_t n = hi - lo, nt = tr_hi - tr_lo;
    uint8_t *lab = core_malloc(n ? n : 1), *tlab = core_malloc(nt ? nt : 1);
    if (!lab || !tlab) {
        core_free(lab);
        core_free(tlab);
        snprintf(err, err_size, "train: out of memory");
        return CORE_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        lab[i] = d->samples[lo + i].label;
    for (size_t i = 0; i < nt; i++)
        tlab[i] = d->samples[tr_lo + i].label;
    double a, off, rate = NAN, w = NAN;
    char why[128];
    int fit = trn_platt_fit_why(&a, &off, kept, lab, n, why, sizeof why);
    if (fit == CORE_OK && (fit = trn_level_prior(&rate, &w, tlab, nt, lab, n)) == CORE_OK)
        fit = trn_platt_level(&off, a, kept, n, rate);
    core_free(lab);
    core_free(tlab);
    if (fit == CORE_ENOMEM) {
        snprintf(err, err_size, "train: out of memory");
        return CORE_ENOMEM;
    }
    if (fit != CORE_OK) { /* the model stays as it is; the caller says so */
        snprintf(rep->cal_skipped, sizeof rep->cal_skipped, "%s",
                 why[0] ? why : core_strerror(fit));
        return CORE_OK;
    }
    mdl_params *p = &m->p;
    for (uint32_t i = 0; i < m->cfg.h2; i++)
        p->w3[i] = (float)(a * p->w3[i]);
    p->b3[0] = (float)(a * p->b3[0] + off);
    for (uint32_t i = 0; i < m->cfg.item_rows; i++)
        p->item_bias[i] = (float)(a * p->item_bias[i]);
    rep->calibrated = 1;
    rep->cal_slope = a;
    rep->cal_offset = off;
    rep->cal_rate = rate;
    rep->cal_rate_w_valid = w;
    rep->raw_logloss = rep->best_valid.logloss;
    rep->raw_calibration = rep->best_valid.calibration;
    return trn_eval(m, d, lo, hi, c->window, c->threads, vpred, &rep->best_valid, err, err_size);
}

int trn_calibrate(mdl_model *m, const trn_data *d, const trn_conf *c, trn_report *rep, char *err,
                  size_t err_size) {
    size_t tr_lo, tr_hi, va_lo, va_hi;
    double t0 = (double)core_now_ns() * 1e-9;
    memset(rep, 0, sizeof *rep);
    rep->best_valid_gauc = NAN;
    if (c->threads < 1 || c->threads > 64) {
        snprintf(err, err_size, "train: threads must be 1..64");
        return CORE_EINVAL;
    }
    trn_data_split(d, 0, &tr_lo, &tr_hi);
    trn_data_split(d, 1, &va_lo, &va_hi);
    m->cfg.window = c->window;
    if (va_hi == va_lo) {
        snprintf(rep->cal_skipped, sizeof rep->cal_skipped, "the valid split is empty");
        rep->seconds = (double)core_now_ns() * 1e-9 - t0;
        return CORE_OK;
    }
    float *kept = core_malloc(sizeof(float) * (va_hi - va_lo));
    float *vpred = core_malloc(sizeof(float) * (va_hi - va_lo));
    int rc = CORE_ENOMEM;
    if (!kept || !vpred) {
        snprintf(err, err_size, "train: out of memory");
        goto out;
    }
    if ((rc = trn_eval(m, d, va_lo, va_hi, c->window, c->threads, kept, &rep->best_valid, err,
                       err_size)))
        goto out;
    rep->best_valid_gauc = rep->best_valid.gauc;
    if (c->calibrate &&
        (rc = calibrate(m, d, tr_lo, tr_hi, va_lo, va_hi, c, kept, vpred, rep, err, err_size)))
        goto out;
    mdl_model_refresh_versions(m);
    rep->seconds = (double)core_now_ns() * 1e-9 - t0;
    rc = CORE_OK;
out:
    core_free(kept);
    core_free(vpred);
    return rc;
}

/* One training run, from batch to batch: the schedule, the progress line's numbers, and the model
 * of the best evaluation so far, which the run ends with. */
typedef struct trn_run {
    mdl_model *m;
    const trn_data *d;
    const trn_conf *c;
    trn_report *rep;
    trn_ctx *x;
    trn_groups g;
    core_rng rng;
    size_t *sidx; /* the batch's sample indices */
    size_t tr_lo, tr_hi, va_lo, va_hi;
    int have_valid;
    size_t bytes;                  /* the model arena's, and each Adam moment's */
    uint32_t K;                    /* the first epochs, whose steps were counted up front */
    uint64_t total, step, printed; /* steps planned, done; the step of the last progress line */
    uint64_t samples_timed;
    double tstep, loss_ema, last_v, best, epoch_now;
    uint32_t bad_evals;
    float *vpred; /* the latest evaluation's valid predictions */
    /* the best evaluation's model (arena, Adam moments and step) and valid predictions */
    float *best_p, *best_m, *best_v, *best_vpred;
    uint64_t best_step;
} trn_run;

static int run_alloc(trn_run *r) {
    size_t nv = r->va_hi - r->va_lo + 1;
    r->bytes = r->m->n_floats * sizeof(float);
    r->sidx = core_malloc(sizeof(size_t) * (r->c->batch + TRN_GROUP_SLACK));
    r->best_p = core_aligned_alloc(r->bytes);
    r->best_m = core_aligned_alloc(r->bytes);
    r->best_v = core_aligned_alloc(r->bytes);
    r->vpred = core_malloc(sizeof(float) * nv);
    r->best_vpred = core_malloc(sizeof(float) * nv);
    if (!r->sidx || !r->best_p || !r->best_m || !r->best_v || !r->vpred || !r->best_vpred ||
        alloc_adam(r->m) || groups_build(&r->g, r->d, r->tr_lo, r->tr_hi))
        return CORE_ENOMEM;
    return CORE_OK;
}

static void run_free(trn_run *r) {
    core_free(r->g.start);
    core_free(r->g.order);
    core_free(r->sidx);
    core_free(r->best_p);
    core_free(r->best_m);
    core_free(r->best_v);
    core_free(r->vpred);
    core_free(r->best_vpred);
    ctx_destroy(r->x);
}

/* The batches next_batch makes of g's order, counted (sidx: scratch). */
static uint64_t count_steps(const trn_groups *g, size_t *sidx, uint32_t batch) {
    uint64_t steps = 0;
    size_t gi = 0;
    while (next_batch(g, &gi, sidx, batch))
        steps++;
    return steps;
}

/* The progress line's total. Steps of each epoch: a batch closes before a group that would
 * overflow it, so the count depends on the shuffled order (groups of 3 and 1 pack into batches of
 * 4 in one order, not in another). Each epoch counts its batches after its shuffle, and the
 * evaluations are scheduled on that count. For the total, the shuffles of the first K epochs are
 * replayed up front on a copy of the order and the RNG (the same shuffles training will make), K
 * as many as 2^26 group visits allow (all of them but for very long runs); later epochs are
 * estimated from the last counted one until they are counted. */
static int plan_steps(trn_run *r) {
    uint32_t epochs = r->c->epochs, K = epochs;
    if ((uint64_t)K * (r->g.n + 1) > (1ull << 26)) K = (uint32_t)((1ull << 26) / (r->g.n + 1));
    if (K < 1) K = 1;
    trn_groups g = r->g;
    core_rng r2 = r->rng;
    uint64_t steps = 0;
    if (!(g.order = core_malloc(sizeof(size_t) * (g.n + 1)))) return CORE_ENOMEM;
    memcpy(g.order, r->g.order, sizeof(size_t) * g.n);
    for (uint32_t ep = 0; ep < K; ep++) {
        shuffle_groups(&g, &r2);
        steps = count_steps(&g, r->sidx, r->c->batch);
        r->total += steps;
    }
    core_free(g.order);
    r->total += (uint64_t)(epochs - K) * steps;
    r->K = K;
    return CORE_OK;
}

static double run_sps(const trn_run *r) {
    return (double)r->samples_timed / (r->tstep > 0 ? r->tstep : 1e-9);
}

/* Evaluate on the valid split (without one, the training loss stands in): a better score keeps
 * the model, patience evaluations without one stop the run (rep->stopped_early). */
static int evaluate(trn_run *r, char *err, size_t err_size) {
    const trn_conf *c = r->c;
    trn_report *rep = r->rep;
    trn_metrics vm;
    int rc;
    rep->evals++;
    if (r->have_valid) {
        if ((rc = trn_eval(r->m, r->d, r->va_lo, r->va_hi, c->window, c->threads, r->vpred, &vm,
                           err, err_size)))
            return rc;
        r->last_v = vm.gauc;
    } else {
        memset(&vm, 0, sizeof vm);
        r->last_v = -r->loss_ema; /* no validation split: keep the latest */
    }
    double score = isnan(r->last_v) ? -1 : r->last_v;
    if (score > r->best || r->best < 0) {
        r->best = score;
        rep->best_valid_gauc = r->have_valid ? vm.gauc : NAN;
        rep->best_valid = vm;
        rep->best_epoch = r->epoch_now;
        memcpy(r->best_p, r->m->arena, r->bytes);
        memcpy(r->best_m, r->m->adam_m, r->bytes);
        memcpy(r->best_v, r->m->adam_v, r->bytes);
        if (r->have_valid) memcpy(r->best_vpred, r->vpred, sizeof(float) * (r->va_hi - r->va_lo));
        r->best_step = r->m->adam_step;
        r->bad_evals = 0;
    } else if (++r->bad_evals >= c->patience && c->patience > 0) {
        rep->stopped_early = 1;
    }
    return CORE_OK;
}

/* Epoch ep: shuffle the groups, count this order's steps, train on its batches with min(epe,
 * steps) evaluations among them; a stop (rep->stopped_early) ends it at its evaluation. */
static int train_epoch(trn_run *r, uint32_t ep, char *err, size_t err_size) {
    const trn_conf *c = r->c;
    uint32_t epe = c->evals_per_epoch ? c->evals_per_epoch : 1;
    shuffle_groups(&r->g, &r->rng);
    uint64_t steps_per_epoch = count_steps(&r->g, r->sidx, c->batch);
    if (ep >= r->K) /* past the replayed epochs: this one counted, the rest estimated from it */
        r->total = r->step + (uint64_t)(c->epochs - ep) * steps_per_epoch;
    uint32_t n, evals_done = 0;
    uint64_t s_in_epoch = 0;
    size_t gi = 0;
    int rc;
    while ((n = next_batch(&r->g, &gi, r->sidx, c->batch)) > 0) {
        double loss, ts = (double)core_now_ns() * 1e-9;
        if ((rc = train_step(r->x, r->m, r->d, c, r->sidx, n, &loss))) {
            snprintf(err, err_size, "train: step %llu failed: %s", (unsigned long long)r->step,
                     core_strerror(rc));
            return rc;
        }
        r->tstep += (double)core_now_ns() * 1e-9 - ts;
        r->samples_timed += n;
        r->rep->samples_seen += n;
        r->step++, s_in_epoch++;
        r->loss_ema = isnan(r->loss_ema) ? loss : 0.98 * r->loss_ema + 0.02 * loss;
        double eta = (double)(r->total - r->step) * (r->tstep / (double)r->step);
        r->epoch_now = ep + (double)s_in_epoch / (double)steps_per_epoch;
        /* at most one evaluation a step; the epoch's last step always evaluates: min(epe,
         * steps) evaluations per epoch */
        int eval_now = s_in_epoch >= steps_per_epoch || gi >= r->g.n ||
                       s_in_epoch * epe >= steps_per_epoch * (evals_done + 1);
        if (eval_now) {
            evals_done++;
            if ((rc = evaluate(r, err, err_size))) return rc;
            progress(c, 0, r->epoch_now, r->step, r->total, run_sps(r), r->loss_ema, r->last_v,
                     r->best, eta);
            r->printed = r->step;
            if (r->rep->stopped_early) break;
        } else if (c->progress_tty && r->step % 10 == 0) {
            progress(c, 0, r->epoch_now, r->step, r->total, run_sps(r), r->loss_ema, r->last_v,
                     r->best, eta);
        }
    }
    return CORE_OK;
}

/* The run ends with the best evaluation's model: its weights, Adam state and step. */
static void restore_best(trn_run *r) {
    memcpy(r->m->arena, r->best_p, r->bytes);
    memcpy(r->m->adam_m, r->best_m, r->bytes);
    memcpy(r->m->adam_v, r->best_v, r->bytes);
    r->m->adam_step = r->best_step;
}

int trn_train(mdl_model *m, const trn_data *d, const trn_conf *c, trn_report *rep, char *err,
              size_t err_size) {
    trn_run r = {.m = m, .d = d, .c = c, .rep = rep};
    int rc;
    double t0 = (double)core_now_ns() * 1e-9;
    memset(rep, 0, sizeof *rep);
    rep->best_valid_gauc = NAN;
    if (c->batch < 1 || c->batch > TRN_MAX_BATCH || c->threads < 1 || c->threads > 64 ||
        c->epochs < 1) {
        snprintf(err, err_size, "train: batch must be 1..%d, threads 1..64, epochs >= 1",
                 TRN_MAX_BATCH);
        return CORE_EINVAL;
    }
    trn_data_split(d, 0, &r.tr_lo, &r.tr_hi);
    trn_data_split(d, 1, &r.va_lo, &r.va_hi);
    if (r.tr_hi == r.tr_lo) {
        snprintf(err, err_size, "train: the train split is empty");
        return CORE_EINVAL;
    }
    r.have_valid = r.va_hi > r.va_lo;
    r.best = -1; /* no evaluation yet */
    r.last_v = r.loss_ema = NAN;
    r.printed = UINT64_MAX;
    /* a group never straddles a batch, so the largest group bounds the batch from below */
    uint32_t max_B = c->batch + TRN_GROUP_SLACK;
    if ((rc = ctx_new(&r.x, m, c->threads, max_B, c->window, 1, err, err_size))) return rc;
    rc = CORE_ENOMEM;
    if (run_alloc(&r)) goto fail;
    core_rng_seed(&r.rng, c->seed ^ 0x7EA1ull);
    if (plan_steps(&r)) goto fail;
    for (uint32_t ep = 0; ep < c->epochs && !rep->stopped_early; ep++)
        if ((rc = train_epoch(&r, ep, err, err_size))) goto fail;
    restore_best(&r);
    m->cfg.window = c->window; /* what serving compares its store's window with */
    if (c->calibrate && !r.have_valid)
        snprintf(rep->cal_skipped, sizeof rep->cal_skipped, "the valid split is empty");
    if (c->calibrate && r.have_valid &&
        (rc = calibrate(m, d, r.tr_lo, r.tr_hi, r.va_lo, r.va_hi, c, r.best_vpred, r.vpred, rep,
                        err, err_size)))
        goto fail;
    mdl_model_refresh_versions(m);
    rep->steps = r.step;
    rep->seconds = (double)core_now_ns() * 1e-9 - t0;
    if (c->progress_tty || r.printed != r.step) /* a log already has the last evaluation's line */
        progress(c, 1, r.epoch_now, r.step, r.total, run_sps(&r), r.loss_ema, r.last_v, r.best, 0);
    rc = CORE_OK;
fail:
    if (rc == CORE_ENOMEM) snprintf(err, err_size, "train: out of memory");
    run_free(&r);
    return rc;
}

int trn_bench_steps(mdl_model *m, const trn_data *d, const trn_conf *c, uint32_t steps,
                    double *samples_per_s, char *err, size_t err_size) {
    trn_ctx *x = NULL;
    trn_groups g = {0};
    size_t *sidx = NULL;
    size_t lo, hi;
    int rc;
    trn_data_split(d, 0, &lo, &hi);
    if ((rc = ctx_new(&x, m, c->threads, c->batch + TRN_GROUP_SLACK, c->window, 1, err, err_size)))
        return rc;
    rc = CORE_ENOMEM;
    sidx = core_malloc(sizeof(size_t) * (c->batch + TRN_GROUP_SLACK));
    if (!sidx || alloc_adam(m) || groups_build(&g, d, lo, hi)) goto fail;
    size_t gi = 0;
    uint64_t samples = 0;
    double t = 0;
    for (uint32_t s = 0; s <= steps; s++) { /* step 0 warms up and is not timed */
        uint32_t n = next_batch(&g, &gi, sidx, c->batch);
        if (n < c->batch) {
            gi = 0;
            n = next_batch(&g, &gi, sidx, c->batch);
        }
        double loss, t0 = (double)core_now_ns() * 1e-9;
        if ((rc = train_step(x, m, d, c, sidx, n, &loss))) {
            snprintf(err, err_size, "bench: step failed: %s", core_strerror(rc));
            goto fail;
        }
        if (s > 0) {
            t += (double)core_now_ns() * 1e-9 - t0;
            samples += n;
        }
    }
    *samples_per_s = (double)samples / t;
    rc = CORE_OK;
fail:
    if (rc == CORE_ENOMEM) snprintf(err, err_size, "bench: out of memory");
    core_free(g.start);
    core_free(g.order);
    core_free(sidx);
    ctx_destroy(x);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// Pretraining, and the evaluations `trail eval` adds

int trn_pretrain(mdl_model *m, const trn_data *d, const sch_event *ev, size_t n_ev,
                 const trn_data_conf *dc, const trn_conf *c, uint32_t epochs, trn_report *rep,
                 char *err, size_t err_size) {
    char why[512];
    if (d->protocol != TRN_PROTO_IMPRESSIONS) {
        snprintf(err, err_size,
                 "--pretrain: the %s protocol's samples are next-behavior samples already; "
                 "pretraining applies to --protocol impressions",
                 trn_proto_name(d->protocol));
        return CORE_EINVAL;
    }
    trn_data_conf pc = *dc;
    pc.protocol = TRN_PROTO_NEXT;
    pc.negatives = 1;
    trn_data *p = NULL;
    int rc = trn_data_build(&p, ev, n_ev, &pc, why, sizeof why);
    if (rc) return snprintf(err, err_size, "--pretrain: %s", why), rc;
    trn_data_split_at(p, trn_data_split_ts(d, 1), trn_data_split_ts(d, 2));
    if (!p->split[0] || p->split[1] == p->split[0]) {
        snprintf(err, err_size,
                 "--pretrain: %zu behaviors before the impressions' valid period and %zu within "
                 "it; pretraining needs some of both",
                 p->split[0], p->split[1] - p->split[0]);
        trn_data_destroy(p);
        return CORE_EINVAL;
    }
    if (c->progress)
        fprintf(c->progress,
                "pretrain: next-behavior samples train=%zu valid=%zu (before the impressions' "
                "valid and test periods), up to %u epochs\n",
                p->split[0], p->split[1] - p->split[0], epochs);
    trn_conf pt = *c;
    pt.epochs = epochs;
    pt.calibrate = 0; /* the impressions' training follows; it calibrates */
    if ((rc = trn_train(m, p, &pt, rep, why, sizeof why)))
        snprintf(err, err_size, "--pretrain: %s", why);
    else if (c->progress)
        fprintf(c->progress, "pretrain: kept epoch %.2f (next-behavior valid gauc %.4f), %.1f s\n",
                rep->best_epoch, rep->best_valid_gauc, rep->seconds);
    trn_data_destroy(p);
    return rc;
}

/* a - ref within bound (both NaN, one class only: no AUC on either path, counts as within) */
static int diff_within(double a, double ref, double bound, double *diff) {
    int none = isnan(a) && isnan(ref);
    *diff = none ? 0 : a - ref;
    return none || fabs(*diff) <= bound;
}

int trn_eval_paths(const mdl_model *m, const trn_data *d, size_t lo, size_t hi, uint32_t window,
                   uint32_t threads, const float *ref, const trn_metrics *ref_mt,
                   trn_path_row *rows, char *err, size_t err_size) {
    size_t n = hi - lo;
    float *p = core_malloc(n * sizeof *p);
    int nr = 0;
    if (!p) return snprintf(err, err_size, "eval: out of memory"), -1;
    for (int i = 0; i < RANK_ISA_COUNT; i++) {
        rank_isa isa = (rank_isa)i;
        if (isa == RANK_ISA_FP32 || !rank_isa_available(isa)) continue;
        trn_path_row *r = &rows[nr++];
        memset(r, 0, sizeof *r);
        r->isa = isa;
        if (trn_eval_isa(m, d, lo, hi, window, threads, isa, p, &r->mt, err, err_size)) {
            nr = -1;
            break;
        }
        for (size_t k = 0; k < n; k++) {
            double e = fabs((double)p[k] - (double)ref[k]);
            if (!(e <= r->max_abs))
                r->max_abs = e; /* a NaN prediction makes it NaN: out of bounds */
        }
        int ok_auc = diff_within(r->mt.auc, ref_mt->auc, TRN_PATH_AUC, &r->auc_diff);
        int ok_ll = diff_within(r->mt.logloss, ref_mt->logloss, TRN_PATH_LOGLOSS, &r->logloss_diff);
        r->ok = r->max_abs <= TRN_PATH_MAX_ABS && ok_auc && ok_ll;
    }
    core_free(p);
    return nr;
}

int trn_eval_by_history(const trn_data *d, size_t lo, size_t hi, uint32_t window,
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
