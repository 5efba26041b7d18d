/* trn_gen.c: the synthetic stream of `trail gen` (model in docs/SYNTHETIC.md).
 *
 * Does: item catalogue, per-user latent traits, sessions in time order, impressions with their true
 * click probability from traits and past behaviors only. Does not: write files (trn_cli.c does).
 */
#include "trn_gen.h"
#include "trn_metrics.h"

#include "core_alloc.h"
#include "core_err.h"
#include "core_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GEN_T0 1700000000ll /* 2023-11-14 22:13:20 UTC: day 0 of every stream */
#define GEN_DAY 86400.0
#define GEN_INTERESTS 4      /* long-term interest categories per user */
#define GEN_SESSION_MEAN 8.0 /* behaviors per session (1 + geometric) */
#define GEN_P_IMPRESSION 0.5 /* chance a session step shows an impression */
#define GEN_HABIT_SHARE 0.25 /* share of sessions that are the daily habit */

/* Click model coefficients (logit scale); see docs/SYNTHETIC.md. */
#define B_BASE (-2.4)
#define B_QUALITY 0.4
#define B_LONG 1.6
#define B_SESSION 0.9
#define B_RECENCY 1.0
#define B_PERIODIC 1.2
#define RECENCY_S 3600.0 /* recency decays with exp(-gap / 1 h) */

/* The resurfacing world (docs/SYNTHETIC.md): each interest returns in bursts weeks apart. */
#define RES_ITEMS_PER_CAT 400 /* K = I / 400 categories */
#define RES_ITEM_POP 0.5      /* item popularity (r + 10)^-0.5: flat, so items rarely repeat */
#define RES_CAT_POP 0.6       /* items per category ~ (k + 1)^-0.6: some kinds are common */
#define RES_SESSION_MEAN 5.0  /* steps per session (1 + geometric) */
#define RES_GAP_MIN_DAYS 7.0  /* an interest's bursts are 7 + Exp(14) days apart */
#define RES_GAP_EXP_DAYS 14.0
#define RES_FIRST_DAYS 21.0 /* its first burst starts uniform over the first 21 days */
#define RES_BURST_SHARE 0.7 /* share of a user's sessions that belong to bursts */
#define RB_BASE (-2.3)
#define RB_LONG 1.6
#define RB_SESSION 0.8

void trn_gen_conf_default(trn_gen_conf *conf) {
    memset(conf, 0, sizeof *conf);
    conf->users = 1000;
    conf->items = 20000;
    conf->events = 1000000;
    conf->seed = 1;
    conf->days = 60;
    conf->until_day = -1;
    conf->world = TRN_GEN_WORLD_SESSIONS;
}

// ---------------------------------------------------------------------------------------------
// Catalogue: items 1..I, categories 1..K, popularity Zipf(0.9) over a random rank, quality N(0,1).

typedef struct gen_cat {
    uint32_t K, I;
    uint32_t *item_cat;  // (I) 0-based category of item i
    float *quality;      // (I)
    double *global_cdf;  // (I) cumulative popularity over all items
    uint32_t *cat_start; // (K+1) offsets into cat_items
    uint32_t *cat_items; // (I) items grouped by category
    double *cat_cdf;     // (I) cumulative popularity within each category's group
    double *catpop_cdf;  // (K) cumulative category popularity
} gen_cat;

static void cat_free(gen_cat *c) {
    core_free(c->item_cat);
    core_free(c->quality);
    core_free(c->global_cdf);
    core_free(c->cat_start);
    core_free(c->cat_items);
    core_free(c->cat_cdf);
    core_free(c->catpop_cdf);
}

static uint32_t cdf_draw(const double *cdf, uint32_t n, core_rng *r);

/* The sessions world: K = I / 40, each item's category uniform, popularity (r + 10)^-0.9. The
 * resurfacing world: K = I / 400, categories drawn with weight (k + 1)^-0.6, popularity
 * (r + 10)^-0.5. */
static int cat_build(gen_cat *c, uint32_t I, uint64_t seed, trn_gen_world world) {
    core_rng r;
    uint32_t *rank = NULL, *fill = NULL;
    double *pop = NULL, *kind_cdf = NULL;
    int res = world == TRN_GEN_WORLD_RESURFACING;
    uint32_t per_cat = res ? RES_ITEMS_PER_CAT : 40;
    double pop_exp = res ? RES_ITEM_POP : 0.9;
    memset(c, 0, sizeof *c);
    c->I = I;
    c->K = I / per_cat < 8 ? 8 : I / per_cat;
    c->item_cat = core_malloc(sizeof(uint32_t) * I);
    c->quality = core_malloc(sizeof(float) * I);
    c->global_cdf = core_malloc(sizeof(double) * I);
    c->cat_start = core_calloc(c->K + 1, sizeof(uint32_t));
    c->cat_items = core_malloc(sizeof(uint32_t) * I);
    c->cat_cdf = core_malloc(sizeof(double) * I);
    c->catpop_cdf = core_calloc(c->K, sizeof(double));
    rank = core_malloc(sizeof(uint32_t) * I);
    fill = core_calloc(c->K, sizeof(uint32_t));
    pop = core_malloc(sizeof(double) * I);
    if (res && (kind_cdf = core_malloc(sizeof(double) * c->K)))
        for (uint32_t k = 0; k < c->K; k++)
            kind_cdf[k] = (k ? kind_cdf[k - 1] : 0.0) + pow((double)k + 1.0, -RES_CAT_POP);
    if ((res && !kind_cdf) || !c->item_cat || !c->quality || !c->global_cdf || !c->cat_start ||
        !c->cat_items || !c->cat_cdf || !c->catpop_cdf || !rank || !fill || !pop)
        goto fail;
    core_rng_seed(&r, seed ^ 0xC47A106ull);
    for (uint32_t i = 0; i < I; i++)
        rank[i] = i;
    for (uint32_t i = I - 1; i > 0; i--) { /* Fisher-Yates: popularity rank of item i */
        uint32_t j = (uint32_t)core_rng_below(&r, i + 1), t = rank[i];
        rank[i] = rank[j];
        rank[j] = t;
    }
    double acc = 0;
    for (uint32_t i = 0; i < I; i++) {
        /* the first K items seed every category so none is empty */
        c->item_cat[i] = i < c->K ? i
                         : res    ? cdf_draw(kind_cdf, c->K, &r)
                                  : (uint32_t)core_rng_below(&r, c->K);
        c->quality[i] = (float)core_rng_gauss(&r);
        pop[i] = pow((double)rank[i] + 10.0, -pop_exp);
        acc += pop[i];
        c->global_cdf[i] = acc;
        c->cat_start[c->item_cat[i] + 1]++;
    }
    for (uint32_t k = 0; k < c->K; k++)
        c->cat_start[k + 1] += c->cat_start[k];
    for (uint32_t i = 0; i < I; i++) {
        uint32_t k = c->item_cat[i];
        c->cat_items[c->cat_start[k] + fill[k]++] = i;
    }
    acc = 0;
    for (uint32_t k = 0; k < c->K; k++) {
        double a = 0;
        for (uint32_t j = c->cat_start[k]; j < c->cat_start[k + 1]; j++) {
            a += pop[c->cat_items[j]];
            c->cat_cdf[j] = a;
        }
        acc += a;
        c->catpop_cdf[k] = acc;
    }
    core_free(rank);
    core_free(fill);
    core_free(pop);
    core_free(kind_cdf);
    return CORE_OK;
fail:
    core_free(rank);
    core_free(fill);
    core_free(pop);
    core_free(kind_cdf);
    cat_free(c);
    return CORE_ENOMEM;
}

/* Index in [0, n) of the first cdf entry above u * cdf[n-1]. */
static uint32_t cdf_draw(const double *cdf, uint32_t n, core_rng *r) {
    double u = core_rng_uniform(r) * cdf[n - 1];
    uint32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static uint32_t draw_global(const gen_cat *c, core_rng *r) {
    return cdf_draw(c->global_cdf, c->I, r);
}

static uint32_t draw_in_cat(const gen_cat *c, uint32_t k, core_rng *r) {
    uint32_t a = c->cat_start[k], n = c->cat_start[k + 1] - a;
    return c->cat_items[a + cdf_draw(c->cat_cdf + a, n, r)];
}

// ---------------------------------------------------------------------------------------------
// One user's timeline

/* What the observers of test_part_aucs know of one impression (all zero for a behavior).
 * post: gen_session_posterior of the candidate's category; topic: whether it is the session's.
 * recency: the logit's recency term, which every observer sees (with the base, the only terms
 * besides the propensity, the item's quality and the three terms an observer who does not know
 * the user's interests must guess: long-term interest, session, habit).
 * w: gen_interest_posterior's probabilities of those three terms, indexed by GEN_W. */
typedef struct gen_obs {
    float post, recency, w[6];
    uint8_t topic;
} gen_obs;

/* w's index of (interest, session, habit); the habit term needs the interest */
#define GEN_W(i, s, h) ((i) ? 2 + (s) + 2 * (h) : (s))

typedef struct gen_out {
    sch_event *ev;
    gen_obs *obs; /* only when observe: the observers serve trn_gen_stats alone */
    size_t n, cap;
    int observe;
} gen_out;

static int out_push(gen_out *o, const sch_event *e, const gen_obs *ob) {
    size_t ce = o->cap, co = o->cap; /* ev and obs grow together */
    if (core_grow(&o->ev, &ce, o->n + 1, sizeof *o->ev, 4096) ||
        (o->observe && core_grow(&o->obs, &co, o->n + 1, sizeof *o->obs, 4096)))
        return CORE_ENOMEM;
    o->cap = ce;
    if (o->observe) o->obs[o->n] = *ob;
    o->ev[o->n++] = *e;
    return CORE_OK;
}

typedef struct gen_user {
    uint32_t interests[GEN_INTERESTS];
    double propensity;    /* q_u */
    double habit_hour_s;  /* H_u: seconds into the UTC day */
    int64_t *last_in_cat; // (K) ts of the user's latest behavior per category, or INT64_MIN
    uint32_t *sess_cnt;   // (K) behaviors per category in the current session so far
    uint32_t *sess_cats;  // (K) the categories with sess_cnt > 0
    uint32_t n_sess_cats;
    uint32_t *topic_n;    // (K) the user's past regular sessions per topic
    uint32_t *topic_cats; // (K) the categories with topic_n > 0
    uint32_t n_topic_cats;
    int habit_seen; /* a habit session has begun: its topic shows interests[0] */
} gen_user;

static double sigmoid(double x) {
    return 1.0 / (1.0 + exp(-x));
}

static int is_interest(const gen_user *u, uint32_t k) {
    for (int i = 0; i < GEN_INTERESTS; i++)
        if (u->interests[i] == k) return 1;
    return 0;
}

/* Whether t lies within 1 h of u's habit hour (circular over the day). */
static int near_habit_hour(const gen_user *u, int64_t t) {
    double tod = fmod((double)(t - GEN_T0), GEN_DAY), d = fabs(tod - u->habit_hour_s);
    if (d > GEN_DAY / 2) d = GEN_DAY - d;
    return d < 3600.0;
}

/* The click logit's terms that an observer without the user's interests must guess. */
static double guessed_terms(int interest, int session, int habit) {
    return B_LONG * interest + B_SESSION * session + B_PERIODIC * habit;
}

/* The recency term of category k at time t: 0 if u never touched k. */
static double recency_term(const gen_user *u, uint32_t k, int64_t t) {
    if (u->last_in_cat[k] == INT64_MIN) return 0.0;
    return B_RECENCY * exp(-(double)(t - u->last_in_cat[k]) / RECENCY_S);
}

/* The true click probability of item i for user u at time t during a session on `topic`.
 * Reads only traits and u->last_in_cat, which holds behaviors generated before t. */
static double click_prob(const gen_cat *c, const gen_user *u, uint32_t i, uint32_t topic,
                         int64_t t) {
    uint32_t k = c->item_cat[i];
    double z = B_BASE + u->propensity + B_QUALITY * c->quality[i] + recency_term(u, k, t);
    int habit = k == u->interests[0] && near_habit_hour(u, t);
    z += guessed_terms(is_interest(u, k), k == topic, habit);
    return sigmoid(z);
}

static double cat_weight(const gen_cat *c, uint32_t k) {
    return c->catpop_cdf[k] - (k ? c->catpop_cdf[k - 1] : 0.0);
}

/* The prior of topic s (see gen_session_posterior). */
static double session_prior(const gen_cat *c, const gen_user *u, int habit, uint32_t s) {
    if (habit) return s == u->interests[0] ? 1.0 : 0.0;
    double W = c->catpop_cdf[c->K - 1];
    return 0.6 / GEN_INTERESTS * is_interest(u, s) + 0.4 * cat_weight(c, s) / W;
}

/* P(the session's topic is k | the session's behaviors so far), for an observer who knows more
 * than any model: the user's interests, whether the session is the habit session, and where the
 * session began. Prior: the habit session's topic is interests[0]; a regular session's is a
 * uniform interest with probability 0.6, else a category by popularity. Each behavior so far is
 * of the topic with probability 0.85 (an item by popularity within it), else a popular item from
 * anywhere; the item's own weight cancels, leaving per behavior of category s a likelihood ratio
 * r_s = 1 + 0.85 W / (0.15 W_s) (W_s the category's popularity, W the total) for topic s against
 * a topic it does not match. In logs, against overflow in long sessions. */
static double gen_session_posterior(const gen_cat *c, const gen_user *u, int habit, uint32_t k) {
    double W = c->catpop_cdf[c->K - 1];
    /* Z = sum over topics of prior * r^count, kept as exp(M) * Z with M the largest log term so
     * far (at least 0, the log term of every topic without behaviors) */
    double rest = 1.0, M = 0.0, Z = 0.0, num = 0.0;
    for (uint32_t j = 0; j < u->n_sess_cats; j++) {
        uint32_t s = u->sess_cats[j];
        double pr = session_prior(c, u, habit, s);
        rest -= pr;
        if (pr <= 0) continue;
        double a = log(pr) + u->sess_cnt[s] * log1p(0.85 * W / (0.15 * cat_weight(c, s)));
        if (a > M) { /* rescale what is summed so far to the new largest term */
            Z *= exp(M - a);
            num *= exp(M - a);
            M = a;
        }
        Z += exp(a - M);
        if (s == k) num = exp(a - M);
    }
    if (rest < 0) rest = 0; /* rounding */
    Z += rest * exp(-M);    /* the topics without behaviors so far */
    if (!u->sess_cnt[k]) num = session_prior(c, u, habit, k) * exp(-M);
    return Z > 0 ? num / Z : 0.0;
}

/* Sums over the m-subsets T of a set of categories, each with a weight r and a likelihood l:
 * e[m] = sum of prod_{j in T} r_j, g[m] = sum of prod_{j in T} r_j * sum_{j in T} l_j. Long double:
 * the weights are powers with exponents in the tens. */
typedef struct gen_esp {
    long double e[GEN_INTERESTS + 1], g[GEN_INTERESTS + 1];
} gen_esp;

static void esp_add(gen_esp *s, long double r, long double l) {
    for (int m = GEN_INTERESTS; m >= 1; m--) { /* downwards: the right sides are the old sums */
        s->g[m] += r * (s->g[m - 1] + l * s->e[m - 1]);
        s->e[m] += r * s->e[m - 1];
    }
}

/* s with n more categories of r = l = 1: a subset takes j of s's and m - j of the n. */
static gen_esp esp_with_plain(const gen_esp *s, uint32_t n) {
    gen_esp o;
    memset(&o, 0, sizeof o);
    for (int m = 0; m <= GEN_INTERESTS; m++)
        for (int j = 0; j <= m; j++) {
            long double b = 1; /* C(n, m - j) */
            for (int i = 0; i < m - j; i++)
                b = b * (long double)(n - i) / (long double)(i + 1);
            o.e[m] += s->e[j] * b;
            o.g[m] += (s->g[j] + s->e[j] * (long double)(m - j)) * b;
        }
    return o;
}

/* The posterior of an observer who knows less than gen_session_posterior's: not the user's four
 * interests L, but the topic of every past session, which sessions are the habit session (so
 * interests[0], once one has begun), the habit hour, where the current session began and its
 * behaviors so far. Under a uniform prior over L, past regular sessions with n_s on topic s
 * (chosen from L with 0.15 each, by popularity p_s with 0.4) weigh L by prod_{s in L} r_s,
 * r_s = ((0.15 + 0.4 p_s) / (0.4 p_s))^n_s. A regular current session on topic S has prior
 * 0.15 [S in L] + 0.4 p_S and likelihood l_S = (1 + 0.85 / (0.15 p_S))^(its behaviors in S so
 * far), as in gen_session_posterior. Summing over L with esp sums gives, for candidate category
 * k, the joint probability of (k in L, S == k, the habit term) in w (GEN_W). Categories with
 * no past session and no behavior in this one have r = l = 1 and are counted, not listed. */
static void gen_interest_posterior(const gen_cat *c, const gen_user *u, int habit, uint32_t k,
                                   int near, float w[6]) {
    double W = c->catpop_cdf[c->K - 1];
    uint32_t L0 = u->interests[0];
    int known = habit || u->habit_seen; /* interests[0] is known: L = {L0} + m more */
    int m = GEN_INTERESTS - known;
    memset(w, 0, 6 * sizeof(float));
    if (habit && k == L0) { /* the habit session's topic is L0 */
        w[GEN_W(1, 1, near)] = 1.0f;
        return;
    }
    gen_esp s; /* over the categories L may still hold, less k */
    memset(&s, 0, sizeof s);
    s.e[0] = 1;
    uint32_t listed = 0;
    long double A = 0; /* sum over S of l_S (0.4 p_S + 0.15 [S == L0 known]) */
    for (int pass = 0; pass < 2; pass++) {
        const uint32_t *cats = pass ? u->sess_cats : u->topic_cats;
        uint32_t nc = pass ? u->n_sess_cats : u->n_topic_cats;
        for (uint32_t j = 0; j < nc; j++) {
            uint32_t q = cats[j];
            if (pass && u->topic_n[q]) continue; /* listed in the first pass */
            double p = cat_weight(c, q) / W;
            long double r = powl((0.15L + 0.4L * p) / (0.4L * p), u->topic_n[q]);
            long double l = habit ? 1 : powl(1.0L + 0.85L / (0.15L * p), u->sess_cnt[q]);
            if (!habit) A += (l - 1) * 0.4L * p; /* on top of the sum with every l = 1 */
            if (known && q == L0) {
                if (!habit) A += 0.15L * l;
                continue;
            }
            if (q == k) continue;
            esp_add(&s, r, l);
            listed++;
        }
    }
    A += 0.4L;
    if (known && !u->topic_n[L0] && !u->sess_cnt[L0]) A += 0.15L; /* l = 1 */
    double pk = cat_weight(c, k) / W;
    long double rk = powl((0.15L + 0.4L * pk) / (0.4L * pk), u->topic_n[k]);
    long double lk = habit ? 1 : powl(1.0L + 0.85L / (0.15L * pk), u->sess_cnt[k]);
    uint32_t rest = c->K - (uint32_t)known - 1;
    if (known && k == L0) {                                /* only the session term is unknown */
        gen_esp a = esp_with_plain(&s, rest + 1 - listed); /* k is L0, not among the rest */
        long double Z = a.e[m] * A + 0.15L * a.g[m];
        long double pS = lk * (0.4L * pk + 0.15L) * a.e[m] / Z;
        w[GEN_W(1, 1, near)] = (float)pS;
        w[GEN_W(1, 0, near)] = (float)(1 - pS);
        return;
    }
    gen_esp a = esp_with_plain(&s, rest - listed); /* every candidate for L but k */
    if (habit) { /* the session is on L0; it says nothing more of L */
        long double p1 = rk * a.e[m - 1] / (a.e[m] + rk * a.e[m - 1]);
        w[GEN_W(0, 0, 0)] = (float)(1 - p1);
        w[GEN_W(1, 0, 0)] = (float)p1;
        return;
    }
    long double em = a.e[m] + rk * a.e[m - 1];
    long double gm = a.g[m] + rk * (a.g[m - 1] + lk * a.e[m - 1]);
    long double Z = em * A + 0.15L * gm;
    long double p11 = lk * (0.4L * pk + 0.15L) * rk * a.e[m - 1] / Z;
    long double p01 = lk * 0.4L * pk * a.e[m] / Z;
    long double p1 = rk * (a.e[m - 1] * (A + 0.15L * lk) + 0.15L * a.g[m - 1]) / Z;
    long double h = !known && near ? 0.25L : 0; /* k is L0 for a quarter of the L holding it */
    w[GEN_W(0, 0, 0)] = (float)(1 - p1 - p01);
    w[GEN_W(0, 1, 0)] = (float)p01;
    w[GEN_W(1, 0, 0)] = (float)((1 - h) * (p1 - p11));
    w[GEN_W(1, 1, 0)] = (float)((1 - h) * p11);
    w[GEN_W(1, 0, 1)] = (float)(h * (p1 - p11));
    w[GEN_W(1, 1, 1)] = (float)(h * p11);
}

static uint8_t draw_action(core_rng *r) {
    double a = core_rng_uniform(r);
    return a < 0.90   ? SCH_ACTION_CLICK
           : a < 0.95 ? SCH_ACTION_CART
           : a < 0.98 ? SCH_ACTION_FAV
                      : SCH_ACTION_BUY;
}

static double draw_exp(core_rng *r, double mean) {
    return -mean * log(1.0 - core_rng_uniform(r));
}

/* Three streams per user, so traits, arrivals and session content stay independent; then the
 * traits both worlds share: GEN_INTERESTS distinct interests, uniform, and the propensity. */
static void user_begin(const trn_gen_conf *conf, const gen_cat *c, gen_user *u, uint32_t uid,
                       core_rng *rt, core_rng *ra, core_rng *rs) {
    uint64_t base = core_hash_id(uid, conf->seed);
    core_rng_seed(rt, base ^ 1);
    core_rng_seed(ra, base ^ 2);
    core_rng_seed(rs, base ^ 3);
    for (int i = 0; i < GEN_INTERESTS; i++) {
        uint32_t k;
        do
            k = (uint32_t)core_rng_below(rt, c->K);
        while (i > 0 && is_interest(u, k));
        u->interests[i] = k;
        for (int j = i + 1; j < GEN_INTERESTS; j++)
            u->interests[j] = k; /* keep is_interest exact */
    }
    u->propensity = 0.3 * core_rng_gauss(rt);
}

/* An impression of item i at t with true probability p, its label drawn from rs. */
static sch_event impression_event(const gen_cat *c, uint32_t uid, uint32_t i, double t, double p,
                                  uint64_t step, core_rng *rs) {
    sch_event e;
    memset(&e, 0, sizeof e);
    e.user_id = uid + 1;
    e.ts = GEN_T0 + (int64_t)t;
    e.item_id = i + 1;
    e.category_id = c->item_cat[i] + 1;
    e.action = SCH_ACTION_VIEW;
    e.label = core_rng_uniform(rs) < p;
    e.prob = (float)p;
    e.request_id = ((uint64_t)(uid + 1) << 32) | (step & 0xffffffffu);
    e.flags = SCH_F_LABEL | SCH_F_PROB | SCH_F_REQUEST;
    return e;
}

/* A behavior at t: an item of the topic (0.85) or a popular one from anywhere, its action drawn. */
static sch_event behavior_event(const gen_cat *c, uint32_t uid, uint32_t topic, double t,
                                core_rng *rs) {
    sch_event e;
    memset(&e, 0, sizeof e);
    uint32_t i = core_rng_uniform(rs) < 0.85 ? draw_in_cat(c, topic, rs) : draw_global(c, rs);
    e.user_id = uid + 1;
    e.ts = GEN_T0 + (int64_t)t;
    e.item_id = i + 1;
    e.category_id = c->item_cat[i] + 1;
    e.action = draw_action(rs);
    return e;
}

static int gen_user_run(const trn_gen_conf *conf, const gen_cat *c, gen_user *u, uint32_t uid,
                        double sessions_per_day, gen_out *o) {
    core_rng rt, ra, rs;
    user_begin(conf, c, u, uid, &rt, &ra, &rs);
    u->habit_hour_s = core_rng_uniform(&rt) * GEN_DAY;
    for (uint32_t k = 0; k < c->K; k++)
        u->last_in_cat[k] = INT64_MIN;
    for (uint32_t j = 0; j < u->n_topic_cats; j++)
        u->topic_n[u->topic_cats[j]] = 0;
    u->n_topic_cats = 0;
    u->habit_seen = 0;

    double horizon = (conf->until_day >= 0 ? conf->until_day : conf->days) * GEN_DAY;
    double regular_rate = sessions_per_day * (1.0 - GEN_HABIT_SHARE) / GEN_DAY; /* per second */
    double habit_p = fmin(1.0, sessions_per_day * GEN_HABIT_SHARE);
    double next_regular = draw_exp(&ra, 1.0 / regular_rate);
    double next_habit = -1;
    int64_t habit_day = -1;
    double t_free = 0; /* sessions do not overlap: one starts after the previous ended */
    uint64_t step = 0;
    for (;;) {
        while (next_habit < 0) { /* the next day whose habit session happens */
            habit_day++;
            if ((double)habit_day * GEN_DAY > horizon + GEN_DAY) break;
            if (core_rng_uniform(&ra) < habit_p)
                next_habit =
                    (double)habit_day * GEN_DAY + u->habit_hour_s + 600.0 * core_rng_gauss(&ra);
        }
        int habit = next_habit >= 0 && next_habit < next_regular;
        double start = habit ? next_habit : next_regular;
        if (habit)
            next_habit = -1;
        else
            next_regular += draw_exp(&ra, 1.0 / regular_rate);
        if (start < t_free) start = t_free;
        if (start >= horizon) break;
        uint32_t topic;
        if (habit)
            topic = u->interests[0];
        else if (core_rng_uniform(&rs) < 0.6)
            topic = u->interests[core_rng_below(&rs, GEN_INTERESTS)];
        else
            topic = cdf_draw(c->catpop_cdf, c->K, &rs);
        double t = start;
        for (uint32_t j = 0; j < u->n_sess_cats; j++) /* a new session: nothing seen of it yet */
            u->sess_cnt[u->sess_cats[j]] = 0;
        u->n_sess_cats = 0;
        uint32_t len = 1;
        while (core_rng_uniform(&rs) > 1.0 / GEN_SESSION_MEAN)
            len++;
        for (uint32_t s = 0; s < len && t < horizon; s++, step++) {
            t += 1.0 + draw_exp(&rs, 90.0);
            sch_event e;
            if (core_rng_uniform(&rs) < GEN_P_IMPRESSION) {
                double a = core_rng_uniform(&rs);
                uint32_t i =
                    a < 0.3 ? draw_in_cat(c, topic, &rs)
                    : a < 0.6
                        ? draw_in_cat(c, u->interests[core_rng_below(&rs, GEN_INTERESTS)], &rs)
                        : draw_global(c, &rs);
                e = impression_event(c, uid, i, t, click_prob(c, u, i, topic, GEN_T0 + (int64_t)t),
                                     step, &rs);
                uint32_t k = c->item_cat[i];
                gen_obs ob = {0};
                if (o->observe) {
                    ob.post = (float)gen_session_posterior(c, u, habit, k);
                    ob.topic = k == topic;
                    ob.recency = (float)recency_term(u, k, e.ts);
                    gen_interest_posterior(c, u, habit, k, near_habit_hour(u, e.ts), ob.w);
                }
                if (t < horizon && out_push(o, &e, &ob)) return CORE_ENOMEM;
                t += 1.0 +
                     draw_exp(&rs, 20.0); /* the behavior comes strictly after the impression */
            }
            e = behavior_event(c, uid, topic, t, &rs);
            gen_obs none = {0};
            if (t < horizon && out_push(o, &e, &none)) return CORE_ENOMEM;
            uint32_t bk = (uint32_t)e.category_id - 1;
            u->last_in_cat[bk] = e.ts;
            if (!u->sess_cnt[bk]++) u->sess_cats[u->n_sess_cats++] = bk;
        }
        t_free = t + 1.0;
        if (habit)
            u->habit_seen = 1; /* later sessions see this one's topic */
        else if (!u->topic_n[topic]++)
            u->topic_cats[u->n_topic_cats++] = topic;
    }
    return CORE_OK;
}

// ---------------------------------------------------------------------------------------------
// The resurfacing world: one user's timeline

typedef struct res_session {
    double start;
    uint32_t topic;
} res_session;

static int res_cmp(const void *a, const void *b) {
    const res_session *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static int res_push(res_session **v, size_t *n, size_t *cap, double start, uint32_t topic) {
    if (core_grow(v, cap, *n + 1, sizeof **v, 64)) return CORE_ENOMEM;
    (*v)[(*n)++] = (res_session){start, topic};
    return CORE_OK;
}

/* The click probability in the resurfacing world: interest and session terms, no recency or
 * habit (docs/SYNTHETIC.md). */
static double res_click_prob(const gen_cat *c, const gen_user *u, uint32_t i, uint32_t topic) {
    uint32_t k = c->item_cat[i];
    return sigmoid(RB_BASE + u->propensity + B_QUALITY * c->quality[i] +
                   RB_LONG * is_interest(u, k) + RB_SESSION * (k == topic));
}

/* Every session of the user is planned first (arrivals from ra over the whole --days, so a cut at
 * --until-day keeps the past), then played in time order with content from rs. Each interest
 * bursts: the first burst starts uniform over the first 21 days, the next 7 + Exp(14) days after
 * the previous; a burst is 1 + geometric sessions on the interest, each starting uniform within
 * the burst's day. Between bursts, background sessions (Poisson) explore categories by
 * popularity. bursts: the mean sessions per burst; background: sessions per day. */
static int res_user_run(const trn_gen_conf *conf, const gen_cat *c, gen_user *u, uint32_t uid,
                        double burst_mean, double background, gen_out *o) {
    core_rng rt, ra, rs;
    res_session *ss = NULL;
    size_t ns = 0, cap = 0;
    user_begin(conf, c, u, uid, &rt, &ra, &rs);
    double days = (double)conf->days * GEN_DAY;
    double horizon = (conf->until_day >= 0 ? conf->until_day : conf->days) * GEN_DAY;
    double p_more = burst_mean > 1 ? 1.0 - 1.0 / burst_mean : 0.0; /* 1 + geometric */
    for (int i = 0; i < GEN_INTERESTS; i++)
        for (double b = core_rng_uniform(&ra) * RES_FIRST_DAYS * GEN_DAY; b < days;
             b += (RES_GAP_MIN_DAYS + draw_exp(&ra, RES_GAP_EXP_DAYS)) * GEN_DAY) {
            do
                if (res_push(&ss, &ns, &cap, b + core_rng_uniform(&ra) * GEN_DAY, u->interests[i]))
                    goto nomem;
            while (core_rng_uniform(&ra) < p_more);
        }
    if (background > 0)
        for (double t = draw_exp(&ra, GEN_DAY / background); t < days;
             t += draw_exp(&ra, GEN_DAY / background))
            if (res_push(&ss, &ns, &cap, t, cdf_draw(c->catpop_cdf, c->K, &ra))) goto nomem;
    qsort(ss, ns, sizeof *ss, res_cmp);
    double t_free = 0;
    uint64_t step = 0;
    for (size_t j = 0; j < ns; j++) {
        double t = ss[j].start < t_free ? t_free : ss[j].start;
        uint32_t topic = ss[j].topic, len = 1;
        if (t >= horizon) break;
        while (core_rng_uniform(&rs) > 1.0 / RES_SESSION_MEAN)
            len++;
        for (uint32_t s = 0; s < len && t < horizon; s++, step++) {
            t += 1.0 + draw_exp(&rs, 90.0);
            sch_event e;
            gen_obs none = {0};
            if (core_rng_uniform(&rs) < GEN_P_IMPRESSION) {
                double a = core_rng_uniform(&rs);
                uint32_t i =
                    a < 0.2 ? draw_in_cat(c, topic, &rs)
                    : a < 0.6
                        ? draw_in_cat(c, u->interests[core_rng_below(&rs, GEN_INTERESTS)], &rs)
                        : draw_global(c, &rs);
                e = impression_event(c, uid, i, t, res_click_prob(c, u, i, topic), step, &rs);
                if (t < horizon && out_push(o, &e, &none)) goto nomem;
                t += 1.0 + draw_exp(&rs, 20.0);
            }
            e = behavior_event(c, uid, topic, t, &rs);
            if (t < horizon && out_push(o, &e, &none)) goto nomem;
        }
        t_free = t + 1.0;
    }
    core_free(ss);
    return CORE_OK;
nomem:
    core_free(ss);
    return CORE_ENOMEM;
}

// ---------------------------------------------------------------------------------------------
// The merged stream

typedef struct gen_key {
    int64_t ts;
    uint64_t user;
    size_t idx;
} gen_key;

static int key_cmp(const void *a, const void *b) {
    const gen_key *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    if (x->user != y->user) return x->user < y->user ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Each item's quality as well as its training labels can tell: the MAP estimate of z_i under its
 * N(0, 1) prior from the labels of the item's impressions in the first 80%, given everything else
 * in their logits (an estimator no model can beat: it knows the rest of the truth). Newton's
 * method on the concave log posterior, per item at once. zhat: (I) out, zero-initialized. */
static int estimate_quality(double *zhat, const sch_event *res, size_t m, size_t n_train,
                            const gen_cat *c) {
    double *g = core_malloc(sizeof(double) * c->I), *h = core_malloc(sizeof(double) * c->I);
    if (!g || !h) {
        core_free(g);
        core_free(h);
        return CORE_ENOMEM;
    }
    for (int it = 0; it < 20; it++) {
        for (uint32_t i = 0; i < c->I; i++)
            g[i] = -zhat[i], h[i] = 1.0; /* the prior's gradient and curvature */
        for (size_t j = 0, seen = 0; j < m && seen < n_train; j++) {
            if (!(res[j].flags & SCH_F_LABEL)) continue;
            seen++;
            uint32_t i = (uint32_t)(res[j].item_id - 1);
            double p = res[j].prob, base = log(p / (1.0 - p)) - B_QUALITY * c->quality[i];
            double q = 1.0 / (1.0 + exp(-(base + B_QUALITY * zhat[i])));
            g[i] += B_QUALITY * ((res[j].label ? 1.0 : 0.0) - q);
            h[i] += B_QUALITY * B_QUALITY * q * (1.0 - q);
        }
        for (uint32_t i = 0; i < c->I; i++)
            zhat[i] += g[i] / h[i];
    }
    core_free(g);
    core_free(h);
    return CORE_OK;
}

/* The known-form learner: an impression's click probability is
 * p = sum_j w_j sigmoid(theta . x_j + b_item), over the six (interest, session, habit) cases j of
 * gen_interest_posterior with their probabilities w_j, x_j = (1, interest, session, habit,
 * recency term). form_prob gives p, and optionally its gradient in theta (dp, 5) and in the
 * item's bias (db). */
#define FORM_K 5

static double form_prob(const gen_obs *o, double b, const double th[FORM_K], double dp[FORM_K],
                        double *db) {
    double R = o->recency, p = 0;
    if (dp) memset(dp, 0, FORM_K * sizeof *dp);
    if (db) *db = 0;
    for (int a = 0; a < 2; a++)
        for (int s = 0; s < 2; s++)
            for (int h = 0; h <= a; h++) {
                double w = o->w[GEN_W(a, s, h)];
                if (w <= 0) continue;
                double x[FORM_K] = {1, a, s, h, R}, e = b, q;
                for (int k = 0; k < FORM_K; k++)
                    e += th[k] * x[k];
                q = sigmoid(e);
                p += w * q;
                for (int k = 0; dp && k < FORM_K; k++)
                    dp[k] += w * q * (1 - q) * x[k];
                if (db) *db += w * q * (1 - q);
            }
    return fmin(fmax(p, 1e-12), 1 - 1e-12);
}

/* Fit theta and every item's bias to the labels of the first n_train impressions: maximum a
 * posteriori with the biases under N(0, 0.4^2), the quality term's prior, by Fisher scoring (theta
 * a 5 x 5 step, the biases one diagonal step each), alternating for 60 rounds from zero. What a
 * learner that knows the click model's form and is handed the observer's posteriors learns from
 * the training labels. bias: (I) out. */
static int fit_known_form(double th[FORM_K], double *bias, const sch_event *res, const gen_obs *obs,
                          size_t m, size_t n_train, uint32_t I) {
    const double prior = 1.0 / (B_QUALITY * B_QUALITY);
    double *g = core_malloc(sizeof(double) * I), *h = core_malloc(sizeof(double) * I);
    if (!g || !h) {
        core_free(g);
        core_free(h);
        return CORE_ENOMEM;
    }
    memset(th, 0, FORM_K * sizeof *th);
    memset(bias, 0, I * sizeof *bias);
    for (int round = 0; round < 60; round++) {
        double A[FORM_K][FORM_K] = {{0}}, r[FORM_K] = {0}, dp[FORM_K], db;
        for (size_t j = 0, seen = 0; j < m && seen < n_train; j++) {
            if (!(res[j].flags & SCH_F_LABEL)) continue;
            seen++;
            double p = form_prob(&obs[j], bias[res[j].item_id - 1], th, dp, NULL);
            double v = p * (1 - p), c = ((res[j].label ? 1.0 : 0.0) - p) / v;
            for (int a = 0; a < FORM_K; a++) {
                r[a] += c * dp[a];
                for (int k = 0; k < FORM_K; k++)
                    A[a][k] += dp[a] * dp[k] / v;
            }
        }
        for (int a = 0; a < FORM_K; a++)
            A[a][a] += 1e-6 * (1 + A[a][a]); /* a case never seen */
        for (int a = 0; a < FORM_K; a++) /* solve A step = r: A is symmetric positive definite */
            for (int k = a + 1; k < FORM_K; k++) {
                double f = A[k][a] / A[a][a];
                for (int j = a; j < FORM_K; j++)
                    A[k][j] -= f * A[a][j];
                r[k] -= f * r[a];
            }
        for (int a = FORM_K - 1; a >= 0; a--) {
            for (int k = a + 1; k < FORM_K; k++)
                r[a] -= A[a][k] * r[k];
            r[a] /= A[a][a];
            th[a] += r[a];
        }
        for (uint32_t i = 0; i < I; i++)
            g[i] = -prior * bias[i], h[i] = prior;
        for (size_t j = 0, seen = 0; j < m && seen < n_train; j++) {
            if (!(res[j].flags & SCH_F_LABEL)) continue;
            seen++;
            uint32_t i = (uint32_t)(res[j].item_id - 1);
            double p = form_prob(&obs[j], bias[i], th, NULL, &db), v = p * (1 - p);
            g[i] += ((res[j].label ? 1.0 : 0.0) - p) / v * db;
            h[i] += db * db / v;
        }
        for (uint32_t i = 0; i < I; i++)
            bias[i] += g[i] / h[i];
    }
    core_free(g);
    core_free(h);
    return CORE_OK;
}

/* The AUCs of trn_gen_stats on the last 10% of impressions: the true logit, the logit less the
 * user's propensity, and less the item's quality too (recovered from the stored probability), and
 * with the quality the training labels show (estimate_quality) in its place; then that last one
 * with the session term replaced by its expectation under gen_session_posterior; last, with the
 * interest, session and habit terms replaced by their expectation under gen_interest_posterior
 * (obs: per event, as out_push stored them); and the known-form learner's (fit_known_form). */
static int test_part_aucs(trn_gen_stats *st, const sch_event *res, size_t m, const double *prop,
                          const gen_obs *obs, const gen_cat *c) {
    size_t n_imp = 0, k = 0, n;
    for (size_t i = 0; i < m; i++)
        n_imp += (res[i].flags & SCH_F_LABEL) != 0;
    n = n_imp - n_imp * 9 / 10;
    float *s0 = core_malloc(sizeof(float) * (n ? n : 1)),
          *s1 = core_malloc(sizeof(float) * (n ? n : 1)),
          *s2 = core_malloc(sizeof(float) * (n ? n : 1)),
          *s3 = core_malloc(sizeof(float) * (n ? n : 1)),
          *s4 = core_malloc(sizeof(float) * (n ? n : 1)),
          *s5 = core_malloc(sizeof(float) * (n ? n : 1)),
          *s6 = core_malloc(sizeof(float) * (n ? n : 1));
    uint8_t *y = core_malloc(n ? n : 1);
    double *zhat = core_calloc(c->I, sizeof(double)), *fbias = core_malloc(sizeof(double) * c->I);
    double fth[FORM_K];
    int rc = CORE_ENOMEM;
    if (!s0 || !s1 || !s2 || !s3 || !s4 || !s5 || !s6 || !y || !zhat || !fbias) goto done;
    if ((rc = estimate_quality(zhat, res, m, n_imp * 8 / 10, c))) goto done;
    if (obs && (rc = fit_known_form(fth, fbias, res, obs, m, n_imp * 8 / 10, c->I))) goto done;
    for (size_t i = 0, seen = 0; i < m; i++) {
        if (!(res[i].flags & SCH_F_LABEL)) continue;
        if (seen++ < n_imp * 9 / 10) continue;
        double p = res[i].prob, lg = log(p / (1.0 - p));
        uint32_t it = (uint32_t)(res[i].item_id - 1);
        lg -= prop[res[i].user_id - 1];
        s0[k] = (float)p;
        s1[k] = (float)lg;
        s2[k] = (float)(lg - B_QUALITY * c->quality[it]);
        s3[k] = (float)(lg - B_QUALITY * c->quality[it] + B_QUALITY * zhat[it]);
        if (!obs) { /* the resurfacing world: no observers */
            y[k++] = res[i].label;
            continue;
        }
        double z0 = s3[k] - (obs[i].topic ? B_SESSION : 0.0); /* every term but the session's */
        s4[k] = (float)(obs[i].post * sigmoid(z0 + B_SESSION) + (1.0 - obs[i].post) * sigmoid(z0));
        double z1 = B_BASE + obs[i].recency + B_QUALITY * zhat[it], e = 0; /* not guessed */
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++)
                for (int h = 0; h <= a; h++)
                    e += obs[i].w[GEN_W(a, b, h)] * sigmoid(z1 + guessed_terms(a, b, h));
        s5[k] = (float)e;
        s6[k] = (float)form_prob(&obs[i], fbias[it], fth, NULL, NULL);
        y[k++] = res[i].label;
    }
    trn_auc(&st->oracle_auc_test, s0, y, n);
    trn_auc(&st->auc_without_propensity, s1, y, n);
    trn_auc(&st->auc_without_propensity_quality, s2, y, n);
    trn_auc(&st->auc_with_estimated_quality, s3, y, n);
    st->auc_session_from_history = st->auc_interests_from_history = st->auc_known_form_fitted = NAN;
    if (obs) {
        trn_auc(&st->auc_session_from_history, s4, y, n);
        trn_auc(&st->auc_interests_from_history, s5, y, n);
        trn_auc(&st->auc_known_form_fitted, s6, y, n);
    }
    rc = CORE_OK;
done:
    core_free(s0);
    core_free(s1);
    core_free(s2);
    core_free(s3);
    core_free(s4);
    core_free(s5);
    core_free(s6);
    core_free(fbias);
    core_free(y);
    core_free(zhat);
    return rc;
}

int trn_gen_events(const trn_gen_conf *conf, sch_event **out, size_t *n, trn_gen_stats *stats,
                   char *err, size_t err_size) {
    gen_cat c;
    gen_out o = {0};
    gen_user u;
    gen_key *keys = NULL;
    sch_event *res = NULL;
    double *prop = NULL;
    gen_obs *robs = NULL;
    int rc;
    memset(&u, 0, sizeof u);
    o.observe = stats != NULL && conf->world == TRN_GEN_WORLD_SESSIONS;
    if (conf->users < 1 || conf->items < 16 || conf->events < 1 || conf->days < 1 ||
        conf->until_day > conf->days ||
        (conf->world != TRN_GEN_WORLD_SESSIONS && conf->world != TRN_GEN_WORLD_RESURFACING)) {
        snprintf(err, err_size,
                 "gen: need users >= 1, items >= 16, events >= 1, days >= 1, until <= days, a "
                 "known world");
        return CORE_EINVAL;
    }
    if ((rc = cat_build(&c, conf->items, conf->seed, conf->world))) return rc;
    u.last_in_cat = core_malloc(sizeof(int64_t) * c.K);
    u.sess_cnt = core_calloc(c.K, sizeof(uint32_t));
    u.sess_cats = core_malloc(sizeof(uint32_t) * c.K);
    u.topic_n = core_calloc(c.K, sizeof(uint32_t));
    u.topic_cats = core_malloc(sizeof(uint32_t) * c.K);
    prop = core_malloc(sizeof(double) * conf->users);
    if (!u.last_in_cat || !u.sess_cnt || !u.sess_cats || !u.topic_n || !u.topic_cats || !prop)
        goto nomem;
    /* Events per session step: one behavior plus an impression half the time. Generate about 5%
     * more than asked, so that the cut by time, not the rate, decides the count. */
    int res_world = conf->world == TRN_GEN_WORLD_RESURFACING;
    double per_session =
        (res_world ? RES_SESSION_MEAN : GEN_SESSION_MEAN) * (1.0 + GEN_P_IMPRESSION);
    double spd = 1.05 * (double)conf->events / ((double)conf->users * conf->days * per_session);
    /* resurfacing: RES_BURST_SHARE of the sessions in bursts, about days / 21 bursts per interest
     * (a burst has at least one session, so a small budget gets more than its share), the rest
     * background */
    double bursts = GEN_INTERESTS * (double)conf->days / (RES_GAP_MIN_DAYS + RES_GAP_EXP_DAYS);
    double burst_mean = fmax(1.0, RES_BURST_SHARE * spd * conf->days / bursts);
    for (uint32_t uid = 0; uid < conf->users; uid++) {
        if (res_world
                ? res_user_run(conf, &c, &u, uid, burst_mean, (1.0 - RES_BURST_SHARE) * spd, &o)
                : gen_user_run(conf, &c, &u, uid, spd, &o))
            goto nomem;
        prop[uid] = u.propensity;
    }
    keys = core_malloc(sizeof(gen_key) * (o.n ? o.n : 1));
    if (!keys) goto nomem;
    for (size_t i = 0; i < o.n; i++)
        keys[i] = (gen_key){o.ev[i].ts, o.ev[i].user_id, i};
    qsort(keys, o.n, sizeof *keys, key_cmp);
    size_t m = o.n < conf->events ? o.n : (size_t)conf->events;
    res = core_malloc(sizeof(sch_event) * (m ? m : 1));
    if (!res) goto nomem;
    if (o.observe && !(robs = core_malloc(sizeof(gen_obs) * (m ? m : 1)))) goto nomem;
    for (size_t i = 0; i < m; i++) {
        res[i] = o.ev[keys[i].idx];
        if (robs) robs[i] = o.obs[keys[i].idx];
    }
    if (stats) {
        memset(stats, 0, sizeof *stats);
        uint64_t imp[3] = {0}, clk[3] = {0};
        double psum = 0;
        for (size_t i = 0; i < m; i++) {
            if (!(res[i].flags & SCH_F_LABEL)) {
                stats->behaviors++;
                continue;
            }
            int part = i < m * 8 / 10 ? 0 : i < m * 9 / 10 ? 1 : 2;
            imp[part]++;
            clk[part] += res[i].label;
            psum += res[i].prob;
        }
        for (int p = 0; p < 3; p++) {
            stats->impressions += imp[p];
            stats->clicks += clk[p];
            stats->split_ctr[p] = imp[p] ? (double)clk[p] / (double)imp[p] : 0;
        }
        stats->mean_prob = stats->impressions ? psum / (double)stats->impressions : 0;
        if ((rc = test_part_aucs(stats, res, m, prop, robs, &c))) goto fail;
    }
    core_free(keys);
    core_free(o.ev);
    core_free(o.obs);
    core_free(robs);
    core_free(u.last_in_cat);
    core_free(u.sess_cnt);
    core_free(u.sess_cats);
    core_free(u.topic_n);
    core_free(u.topic_cats);
    core_free(prop);
    cat_free(&c);
    *out = res;
    *n = m;
    return CORE_OK;
nomem:
    rc = CORE_ENOMEM;
fail:
    core_free(keys);
    core_free(o.ev);
    core_free(o.obs);
    core_free(robs);
    core_free(u.last_in_cat);
    core_free(u.sess_cnt);
    core_free(u.sess_cats);
    core_free(u.topic_n);
    core_free(u.topic_cats);
    core_free(prop);
    core_free(res);
    cat_free(&c);
    snprintf(err, err_size, "gen: out of memory");
    return rc;
}
