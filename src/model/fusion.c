/*
 * Bayesian threat fusion of weak signals: accumulated evidence, not
 * thresholded per-event probabilities.
 *
 * Per signal s of a rule, each event contributes its standardised deviation
 * from the baseline predictive, z = (y - expected) / predictive sd (model
 * scale; clipped to +-Z_CLIP so one spike is not a sustained elevation).
 * Over the sliding window (n events, sum Z) the evidence that the signal is
 * elevated is the Bayes factor of a mean shift delta (in predictive sds,
 * prior N(m, (m/2)^2), m = the signal's `elevation`, in the rule's
 * direction) against no shift, in closed form:
 *   log lambda = -log(1 + n v) / 2 + (Z + m / v)^2 / (2 (n + 1 / v))
 *                - m^2 / (2 v),    v = (m/2)^2
 * (the normal-mean model with a conjugate prior; "down" uses -Z, "both"
 * averages the two Bayes factors). It accumulates: many events each a
 * little high add up, which a maximum of per-event probabilities cannot.
 *
 * A signal can be elevated without a threat (an outage, a benign burst):
 * with detection rate d = P(elevated | threat) and false-alarm rate f =
 * P(elevated | no threat), the signal's likelihood ratio for the threat is
 *   LR_s = (d lambda + 1 - d) / (f lambda + 1 - f)
 * (Pearl's virtual evidence, Probabilistic Reasoning in Intelligent Systems,
 * 1988, sec. 2.2.2), bounded by d/f: one signal alone, however strong,
 * moves the odds by at most d/f, and the rule's other signals staying at
 * their baseline (lambda << 1) count against the threat, by (1-d)/(1-f).
 *
 * Naive Bayes would add all log LR_s; correlated signals double-count. The
 * discount ranks the contributions by |log LR| and weights the k-th by
 * (1 - rho)^(k-1): rho = 0 is naive Bayes, rho = 1 keeps only the strongest
 * signal. The posterior is logistic(logit(prior) + sum of weighted log LR).
 *
 * The baseline a signal is judged against must not follow the elevation
 * it is meant to detect. A series' own filter does: its level's random walk
 * takes in a 0.8-sd rise within about ten events, after which z is back
 * near 0 and the evidence stops growing. So once a signal has history, the
 * window is judged against a reference that the window cannot move: an
 * exponentially weighted mean and variance (horizon `baseline_ms`) of the
 * signal's de-seasonalised values x = y - seasonal (on a series' second
 * day, before its daily profile applies, y less the first day's profile as
 * it stood before the current visit: engine.c, BW_FRAME_EARLY; without it
 * a reference two hours old lies on another part of the daily cycle) from
 * the buckets that have LEFT the window, each bucket weighted by the posterior
 * that it was not elevated (at least ADOPT_FLOOR, so a lasting change becomes
 * the reference within a few horizons). The window mean's deviation D from it
 * is standardised by an empirical null, S = D sqrt(n / (phi var)), where
 * phi = E[n D^2 / var] over past unelevated windows (>= 1) absorbs what an
 * iid model misses: autocorrelation, slow drift, the reference's own
 * error. phi is the structure of the noise, which changes slowly, so it
 * remembers PHI_SPAN reference horizons (a day at the default): with the
 * reference's own horizon, the soft null weights of a sustained elevation
 * (each window only moderately likely to be elevated, so each counted a
 * little as null) inflated phi within the hour and the evidence of an
 * attack still in progress faded. Under the null S ~ N(0, 1); elevated by
 * m sds per event, its mean is mu = m sqrt(n / phi), prior
 * N(mu, (mu/2)^2), so
 *   log lambda = -log(1 + v)/2 + S^2/2 - (S - mu)^2 / (2 (1 + v)),
 *   v = (mu/2)^2
 * (the same conjugate normal-mean Bayes factor, for one standardised
 * statistic: the two-window test of Basseville & Nikiforov, Detection of
 * Abrupt Changes, 1993, sec. 2.2, with an empirical null). Until the
 * reference holds REF_MIN events the innovation form above is used.
 *
 * Spans. One window's evidence stops growing once an elevation has
 * lasted a window, so a long attack's posterior hovers at the band. The
 * evidence that an elevation is in progress averages the Bayes factors of
 * "elevated over the last a + 1 windows", a < `spans` (the prior on when
 * it began: half on the last window, the rest spread evenly), against the
 * null or an elevation that has already ended (elevated over windows
 * e + 1 .. a only, prior q: the signal's prior rate of elevation):
 *   lambda = sum_a pi_a lambda(0..a) / ((1 - q) + q mean_{e<a}
 *            lambda(e+1..a))
 * (spans_lbf). A mixture of Bayes factors against one null is one, and
 * the denominator is at least 1 - q, so lambda's null expectation is at
 * most 1 / (1 - q) (test_spans_null_bound). Each span length has its
 * own empirical null phi (a longer span's mean carries more drift), and
 * the buckets older than the window stay in the ring for the longer spans
 * after they have gone into the reference.
 *
 * Which windows are null samples of phi is judged with hindsight. A
 * window's P(not elevated) when it closes is the filtering posterior, and
 * at an elevation's start, while the evidence is still weak, it is far
 * from 0: each of a weak attack's first windows counted as a null sample
 * with a large deviation, phi grew, the evidence shrank with it, and the
 * next window counted more (on the second day, where phi has little
 * history, an attack 45 minutes after midnight reached high in 1 of 20
 * runs). So a shorter span's sample is held in the bucket that began at
 * its roll until its windows are the oldest the longest span sees
 * (spans - 1 - j windows for span j), and then counts with the fixed-lag
 * smoothed posterior that no elevation, in progress or ended, reaches
 * back to them (bw_fusion_reach_back). The longest span's sample counts
 * at once, as before: its
 * windows are all in view when it is taken. A transient excursion is
 * judged null once what follows is normal (the filtering weights, lower
 * at every large deviation, had biased phi low); an elevation that goes
 * on is judged elevated before its windows count. With one span nothing is
 * held.
 *
 * The window keeps, per signal, the count and the sum of z in each of
 * BUCKETS time buckets of window/BUCKETS (times `spans` for the longer
 * spans); O(spans^2) time per evaluation (kept until the window changes;
 * the ended elevations' part until a roll, see spans_lbf), the window
 * edge resolved to one bucket.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bayeswatch/mem.h"
#include "bayeswatch/model.h"
#include "bayeswatch/timefmt.h"

#define BUCKETS 16
#define Z_CLIP 3.0
#define FUSION_STATE_TAG 0x46553038u    /* "FU08" */
#define FUSION_STATE_TAG_V7 0x46553037u /* "FU07": no held null samples */
#define FUSION_STATE_TAG_V6 0x46553036u /* "FU06": no last event time */
#define FUSION_STATE_TAG_V5 0x46553035u /* "FU05": no source of the frame */
#define FUSION_STATE_TAG_V4 0x46553034u /* "FU04": one span, no ref_slot */
#define FUSION_STATE_TAG_V3 0x46553033u /* "FU03": no level start */
#define FUSION_STATE_TAG_V2 0x46553032u /* "FU02": window only */
#define REF_MIN 30.0                    /* reference events before it is used */
#define PHI_PRIOR_W 16.0                /* pseudo-samples of phi = 1 (iid) */
#define PHI_SPAN 12.0    /* phi's horizon in reference horizons (baseline_ms) */
#define ADOPT_FLOOR 0.25 /* least weight of an elevated bucket */
#define SD_FLOOR 0.5     /* reference sd >= this x the filter's */

typedef struct {
    int64_t slot; /* bucket index (time / width) held, -1 empty */
    double n;     /* events */
    double z;     /* sum of their clipped z */
    double nx;    /* events with a value x */
    double x;     /* sum of x - shift */
    double x2;    /* sum of (x - shift)^2 */
    double sd2;   /* sum of the filter's predictive variance */
} bucket_t;

typedef struct {
    bucket_t *bk;     /* BUCKETS * spans, a ring by slot (owned by fu);
                         NULL for a signal the rule does not have */
    double *held;     /* per bucket of bk, spans - 1 null samples of phi
                         taken when it began and not yet counted (NAN:
                         none; owned by fu; NULL with bk or one span) */
    int64_t ref_slot; /* newest slot folded into the reference, -1 none */
    /* the reference: EW sums over buckets that left the window */
    double shift;          /* first x seen (NAN: none yet) */
    int frame;             /* bw_fusion_obs_t.frame of the reference */
    uint32_t src;          /* the source of its values in this frame */
    uint32_t mixed;        /* 1: more than one source, or not known */
    double r0, r1, r2, rv; /* weight, sum x, sum x^2, sum sd^2 */
    /* per span: null samples of n D^2 / var: weight, sum */
    double p0[BW_SPANS_MAX], p1[BW_SPANS_MAX];
    double p_elev; /* P(elevated) of the last complete window */
    /* derived, not state: the newest slot the ring holds (-1 none), and
     * the last evaluation, kept until the window changes */
    int64_t top;
    int64_t lbf_slot;  /* its slot, -1 none */
    double lbf;               /* spans_lbf's evidence */
    double num[BW_SPANS_MAX]; /* and its in-progress terms */
    /* the ended elevations' term of spans_lbf (log mean of their Bayes
     * factors), at den_slot (-1 none): it reads only the buckets older
     * than the last window, the reference and phi, which change at a
     * roll, a frame's move or an event that old, not at every event */
    int64_t den_slot;
    double lend;
    double lend_a[BW_SPANS_MAX]; /* per oldest window a: log sum over e */
} window_t;

typedef struct {
    double n, z, nx, x, x2; /* window sums */
} wsum_t;

/* Per rule: the last emission (score -1 before the first) and the level's
 * start (bw_threat_t.since_ms of the last evaluation). */
typedef struct {
    double score;
    bw_level_t level;
    int64_t since;
} rule_state_t;

struct bw_fusion_s {
    const bw_fusion_cfg_t *cfg;
    int nwin;
    int nb;           /* buckets per window: BUCKETS * cfg->spans */
    window_t *win;    /* rule-major: rules * BW_SIGNALS_MAX */
    bucket_t *pool;   /* the buckets of the rules' signals, nb each */
    size_t npool;     /* buckets in pool */
    double *hpool;    /* their held samples, spans - 1 per bucket */
    rule_state_t *rs; /* per rule */
    double lstart[BW_SPANS_MAX]; /* log start_prior, per span */
    int64_t last_ms;             /* newest event time observed, -1 none */
};

const char *bw_level_name(int level)
{
    static const char *const names[] = {"low", "moderate", "high", "critical"};
    return (level >= 0 && level <= 3) ? names[level] : "?";
}

/* The log Bayes factor in the signal's direction from those of a rise and
 * a fall: "both" averages the two Bayes factors. */
static double by_direction(const bw_signal_cfg_t *sig, double up, double down)
{
    double mx = fmax(up, down);

    if (sig->direction == BW_DIRECTION_UP) {
        return up;
    }
    if (sig->direction == BW_DIRECTION_DOWN) {
        return down;
    }
    return mx + log(0.5 * (exp(up - mx) + exp(down - mx)));
}

double bw_fusion_lbf(const bw_signal_cfg_t *sig, double n, double zsum)
{
    double m = sig->elevation, v = 0.25 * m * m, c, up, down;

    if (!(n > 0.0)) {
        return NAN;
    }
    c = -0.5 * log1p(n * v);
    up = c + (zsum + m / v) * (zsum + m / v) / (2.0 * (n + 1.0 / v)) -
         m * m / (2.0 * v);
    down = c + (-zsum + m / v) * (-zsum + m / v) / (2.0 * (n + 1.0 / v)) -
           m * m / (2.0 * v);
    return by_direction(sig, up, down);
}

/* log LR_s from log lambda (header), without overflow; at least
 * -LLR_FLOOR: with detection 1 a signal at its baseline (lambda 0) gave
 * log 0 = -inf, and -inf times a correlation weight of 0 a NaN score. */
#define LLR_FLOOR 700.0
static double signal_llr(const bw_signal_cfg_t *s, double lbf)
{
    double d = s->detection, f = s->false_alarm, v;

    if (lbf > 0.0) { /* divide through by lambda */
        double il = exp(-lbf);
        v = log((d + (1.0 - d) * il) / (f + (1.0 - f) * il));
    } else {
        double l = exp(lbf);
        v = log((d * l + 1.0 - d) / (f * l + 1.0 - f));
    }
    return fmax(v, -LLR_FLOOR);
}

/* A signal's prior probability of being elevated in a window. */
static double prior_q(const bw_fusion_cfg_t *cfg, const bw_signal_cfg_t *sig)
{
    return cfg->prior * sig->detection + (1.0 - cfg->prior) * sig->false_alarm;
}

/* P(the signal is elevated | window), at the prior rate of elevation that
 * the rule implies, prior d + (1 - prior) f. */
static double signal_p(const bw_fusion_cfg_t *cfg, const bw_signal_cfg_t *s,
                       double lbf)
{
    double q = prior_q(cfg, s);
    double lo = log(q) - log1p(-q) + lbf;

    return 1.0 / (1.0 + exp(-lo));
}

static int by_abs_llr(const void *a, const void *b)
{
    const bw_contrib_t *x = a, *y = b;
    double ax = fabs(x->llr), ay = fabs(y->llr);

    if (ax != ay) {
        return ax < ay ? 1 : -1;
    }
    return x->signal - y->signal; /* deterministic ties */
}

static int by_llr(const void *a, const void *b)
{
    const bw_contrib_t *x = a, *y = b;

    if (x->llr != y->llr) {
        return x->llr < y->llr ? 1 : -1;
    }
    return x->signal - y->signal;
}

/* The probability at which @p level begins (low: 0). */
static double band_of(const bw_fusion_cfg_t *cfg, int level)
{
    const double band[] = {0.0, cfg->band_moderate, cfg->band_high,
                           cfg->band_critical};

    return band[level];
}

/* The level with hysteresis: the band level of @p p, or a level up to
 * @p prev that p still holds at level_hold times its band (a level is
 * left only when the probability has clearly fallen, not as it hovers at
 * the band: a Schmitt trigger on the posterior; the probability itself is
 * unchanged). */
static bw_level_t held_level(const bw_fusion_cfg_t *cfg, double p,
                             bw_level_t now, bw_level_t prev)
{
    for (int l = (int)prev; l > (int)now; l--) {
        if (p >= cfg->level_hold * band_of(cfg, l)) {
            return (bw_level_t)l;
        }
    }
    return now;
}

/* The highest level whose band @p p reaches. */
static bw_level_t level_of(const bw_fusion_cfg_t *cfg, double p)
{
    int l = BW_LEVEL_CRITICAL;

    while (l > BW_LEVEL_LOW && !(p >= band_of(cfg, l))) {
        l--;
    }
    return (bw_level_t)l;
}

/* (bw_config_rule_ceiling, src/config/load.c, repeats this combination at
 * saturation for the loader's warning: change both together; test_fusion's
 * test_rule_ceiling_is_combination holds them equal.) */
void bw_fusion_combine(const bw_fusion_cfg_t *cfg, const bw_rule_cfg_t *rule,
                       const double *lbf, bw_threat_t *out)
{
    double total = 0.0, weight = 1.0, logit;
    int n = 0;

    memset(out, 0, sizeof(*out));
    for (int s = 0; s < rule->n_signals; s++) {
        if (isnan(lbf[s])) {
            continue;
        }
        out->contrib[n].signal = s;
        out->contrib[n].lbf = lbf[s];
        out->contrib[n].p = signal_p(cfg, &rule->signals[s], lbf[s]);
        out->contrib[n++].llr = signal_llr(&rule->signals[s], lbf[s]);
    }
    qsort(out->contrib, (size_t)n, sizeof(bw_contrib_t), by_abs_llr);
    for (int k = 0; k < n; k++) {
        out->contrib[k].llr *= weight;
        total += out->contrib[k].llr;
        weight *= 1.0 - cfg->correlation;
    }
    qsort(out->contrib, (size_t)n, sizeof(bw_contrib_t), by_llr);
    out->n_contrib = n;
    out->llr = total;
    out->since_ms = -1;
    out->at_ms = -1;
    logit = log(cfg->prior) - log1p(-cfg->prior) + total;
    out->probability = 1.0 / (1.0 + exp(-logit));
    out->score = 100.0 * out->probability;
    out->level = level_of(cfg, out->probability);
}

/* Whether window @p w (rule-major) is a signal of its rule. */
static bool in_use(const bw_fusion_cfg_t *cfg, int w)
{
    int r = w / BW_SIGNALS_MAX;

    return r < cfg->n_rules && w % BW_SIGNALS_MAX < cfg->rules[r].n_signals;
}

/* Null samples held per bucket: one per span but the longest. */
static int held_per_bucket(const bw_fusion_t *fu)
{
    return fu->nb / BUCKETS - 1;
}

/* Point the windows in use at their buckets in @p pool and their held
 * samples in @p hpool (laid out as fu->pool and fu->hpool), the others at
 * NULL. */
static void share_pool(const bw_fusion_t *fu, window_t *win, bucket_t *pool,
                       double *hpool)
{
    size_t at = 0, hp = (size_t)held_per_bucket(fu);

    for (int w = 0; w < fu->nwin; w++) {
        bool use = in_use(fu->cfg, w);
        win[w].bk = use ? pool + at : NULL;
        win[w].held = use && hp > 0 ? hpool + at * hp : NULL;
        at += use ? (size_t)fu->nb : 0;
    }
}

static void empty_pool(const bw_fusion_t *fu, bucket_t *pool, double *hpool)
{
    size_t nh = fu->npool * (size_t)held_per_bucket(fu);

    for (size_t k = 0; k < fu->npool; k++) {
        memset(&pool[k], 0, sizeof(bucket_t));
        pool[k].slot = -1;
    }
    for (size_t k = 0; k < nh; k++) {
        hpool[k] = NAN;
    }
}

/* Span @p j's held sample in bucket @p b of window @p w. */
static double *held_at(const bw_fusion_t *fu, const window_t *w, int b, int j)
{
    return &w->held[(size_t)b * (size_t)held_per_bucket(fu) + (size_t)j];
}

static double *new_hpool(const bw_fusion_t *fu)
{
    size_t nh = fu->npool * (size_t)held_per_bucket(fu);

    return bw_calloc(nh > 0 ? nh : 1, sizeof(double));
}

/* The prior that an elevation in progress began @p a windows before the
 * last (of @p spans): half on the last window, so that a new elevation's
 * evidence is discounted by at most log 2 against the last window's test
 * alone, and half spread evenly over the earlier starts. */
static double start_prior(int spans, int a)
{
    return spans == 1 ? 1.0 : a == 0 ? 0.5 : 0.5 / (spans - 1);
}

bw_fusion_t *bw_fusion_new(const bw_fusion_cfg_t *cfg, char *errstr,
                           size_t errstr_size)
{
    bw_fusion_t *fu = bw_calloc(1, sizeof(*fu));
    int rules = cfg->n_rules > 0 ? cfg->n_rules : 1;

    if (fu == NULL) {
        goto fail;
    }
    fu->cfg = cfg;
    fu->last_ms = -1;
    fu->nwin = rules * BW_SIGNALS_MAX;
    fu->nb = BUCKETS * (cfg->spans < 1              ? 1
                        : cfg->spans > BW_SPANS_MAX ? BW_SPANS_MAX
                                                    : cfg->spans);
    for (int w = 0; w < fu->nwin; w++) {
        fu->npool += in_use(cfg, w) ? (size_t)fu->nb : 0;
    }
    for (int a = 0; a < fu->nb / BUCKETS; a++) {
        fu->lstart[a] = log(start_prior(fu->nb / BUCKETS, a));
    }
    fu->win = bw_calloc((size_t)fu->nwin, sizeof(window_t));
    fu->pool = bw_calloc(fu->npool > 0 ? fu->npool : 1, sizeof(bucket_t));
    fu->hpool = new_hpool(fu);
    fu->rs = bw_calloc((size_t)rules, sizeof(rule_state_t));
    if (fu->win == NULL || fu->pool == NULL || fu->hpool == NULL ||
        fu->rs == NULL) {
        goto fail;
    }
    empty_pool(fu, fu->pool, fu->hpool);
    share_pool(fu, fu->win, fu->pool, fu->hpool);
    for (int w = 0; w < fu->nwin; w++) {
        fu->win[w].ref_slot = -1;
        fu->win[w].top = -1;
        fu->win[w].lbf_slot = fu->win[w].den_slot = -1;
        fu->win[w].shift = NAN;
    }
    for (int r = 0; r < rules; r++) {
        fu->rs[r].score = -1.0;
        fu->rs[r].since = -1;
    }
    return fu;
fail:
    bw_fusion_destroy(fu);
    bw_seterr(errstr, errstr_size, BW_ERR_NOMEM, "model.fusion: out of memory");
    return NULL;
}

void bw_fusion_destroy(bw_fusion_t *fu)
{
    if (fu == NULL) {
        return;
    }
    bw_free(fu->win);
    bw_free(fu->pool);
    bw_free(fu->hpool);
    bw_free(fu->rs);
    bw_free(fu);
}

static int64_t slot_of(const bw_fusion_cfg_t *cfg, int64_t t_ms)
{
    double width = cfg->window_ms / BUCKETS;

    return (int64_t)floor((double)t_ms / width);
}

static void add_sum(wsum_t *t, const wsum_t *k)
{
    t->n += k->n;
    t->z += k->z;
    t->nx += k->nx;
    t->x += k->x;
    t->x2 += k->x2;
}

static void add_bucket(wsum_t *t, const bucket_t *k)
{
    t->n += k->n;
    t->z += k->z;
    t->nx += k->nx;
    t->x += k->x;
    t->x2 += k->x2;
}

/* The sums of the first @p spans spans: t[j] over the buckets in
 * (now - (j + 1) BUCKETS, now]; t[0] is the window's. With @p per, also
 * each window's own: per[j] over (now - (j + 1) BUCKETS, now - j BUCKETS]. */
static void span_sums(const bw_fusion_t *fu, const window_t *w,
                      int64_t now_slot, wsum_t *t, wsum_t *per, int spans)
{
    memset(t, 0, (size_t)spans * sizeof(*t));
    for (int b = 0; b < fu->nb; b++) {
        int64_t age = now_slot - w->bk[b].slot;
        if (w->bk[b].slot >= 0 && age >= 0 && age < spans * BUCKETS) {
            add_bucket(&t[age / BUCKETS], &w->bk[b]);
        }
    }
    if (per != NULL) {
        memcpy(per, t, (size_t)spans * sizeof(*t));
    }
    for (int j = 1; j < spans; j++) {
        t[j].n += t[j - 1].n;
        t[j].z += t[j - 1].z;
        t[j].nx += t[j - 1].nx;
        t[j].x += t[j - 1].x;
        t[j].x2 += t[j - 1].x2;
    }
}

/* The events with a value in the window ending at @p now_slot. */
static double window_nx(const bw_fusion_t *fu, const window_t *w,
                        int64_t now_slot)
{
    wsum_t t;

    span_sums(fu, w, now_slot, &t, NULL, 1);
    return t.nx;
}

static bool ref_warm(const window_t *w)
{
    return w->r0 >= REF_MIN;
}

/* The reference's mean (about shift) and per-event variance, floored at
 * SD_FLOOR^2 times the filter's mean predictive variance. */
static void ref_moments(const window_t *w, double *mean, double *var)
{
    double m = w->r1 / w->r0;

    *mean = m;
    *var = fmax(w->r2 / w->r0 - m * m, SD_FLOOR * SD_FLOOR * w->rv / w->r0);
}

static double phi_of(const window_t *w, int span)
{
    return fmax(1.0, (w->p1[span] + PHI_PRIOR_W) / (w->p0[span] + PHI_PRIOR_W));
}

double bw_fusion_lbf_std(const bw_signal_cfg_t *sig, double s, double mu)
{
    double v = 0.25 * mu * mu, c, up, down;

    if (!isfinite(s) || !(mu > 0.0)) {
        return NAN;
    }
    c = -0.5 * log1p(v); /* once: libm calls are not merged */
    up = c + 0.5 * s * s - (s - mu) * (s - mu) / (2.0 * (1 + v));
    down = c + 0.5 * s * s - (s + mu) * (s + mu) / (2.0 * (1 + v));
    return by_direction(sig, up, down);
}

/* The reference as the spans read it: warm, its mean and variance. */
typedef struct {
    bool warm;
    double mean, var;
} ref_t;

static ref_t ref_of(const window_t *w)
{
    ref_t r = {ref_warm(w), 0.0, 0.0};

    if (r.warm) {
        ref_moments(w, &r.mean, &r.var);
    }
    return r;
}

/* The evidence of the sums @p t of span @p span: against the reference
 * @p ref once it is warm, else from the filter's innovations; NAN without
 * events. */
static double sum_lbf(const window_t *w, const ref_t *ref,
                      const bw_signal_cfg_t *sig, const wsum_t *t, int span)
{
    double phi;

    if (!(t->nx > 0.0) || !ref->warm) {
        return bw_fusion_lbf(sig, t->n, t->z);
    }
    phi = phi_of(w, span);
    return bw_fusion_lbf_std(
        sig, (t->x / t->nx - ref->mean) * sqrt(t->nx / (phi * ref->var)),
        sig->elevation * sqrt(t->nx / phi));
}

/* log sum exp(l[0..n)), NAN terms left out; -INFINITY if none. */
static double log_sum_exp(const double *l, int n)
{
    double mx = -INFINITY, acc = 0.0;

    for (int k = 0; k < n; k++) {
        mx = isnan(l[k]) ? mx : fmax(mx, l[k]);
    }
    if (isinf(mx)) {
        return mx;
    }
    for (int k = 0; k < n; k++) {
        acc += isnan(l[k]) ? 0.0 : exp(l[k] - mx);
    }
    return mx + log(acc);
}

void bw_fusion_reach_back(int spans, double q, const double *num,
                          const double *lend_a, double *pn)
{
    const int pairs = spans * (spans - 1) / 2;
    double l[2 * BW_SPANS_MAX + 1], lz;
    int n = 0;

    /* every hypothesis' weight times pairs: none, then in progress from
     * a and ended with oldest window a */
    l[n++] = 2.0 * log1p(-q) + log(pairs);
    for (int a = 0; a < spans; a++) {
        l[n++] = log(q) + num[a] + log(pairs);
        l[n++] = log1p(-q) + log(q) + lend_a[a];
    }
    lz = log_sum_exp(l, n);
    for (int m = 0; m < spans; m++) {
        /* none, and those whose oldest window is newer than m */
        pn[m] = exp(log_sum_exp(l, 1 + 2 * m) - lz);
    }
}

/* The evidence that an elevation is in progress, from the sums @p t of
 * the spans (t[j]: the last j + 1 windows):
 *   lambda = sum_a pi_a lambda(0..a) / ((1 - q) + q mean_{e<a}
 *            lambda(e+1..a)),
 * lambda(e+1..a) the Bayes factor of "elevated over windows e + 1 .. a"
 * (0 the last; sum_lbf over that part of the ring, phi of its length)
 * against the baseline, pi_a = start_prior, q the signal's prior of
 * elevation (prior_q). The numerator averages over when the elevation
 * began, so the evidence of a lasting elevation goes on growing after one
 * window; the denominator's elevations that have ended are the
 * alternative that keeps an elevation over from reading as one in
 * progress (without them, a span's mean stays high for spans - 1 windows
 * after the end). One span: the last window's Bayes factor. NAN while the
 * last window has no events. @p num (spans entries): log pi_a +
 * log lambda(0..a), for the posteriors of null_weights; the ended
 * elevations' sums per oldest window are cached in w->lend_a. */
static double spans_lbf(const bw_fusion_t *fu, window_t *w,
                        const bw_signal_cfg_t *sig, const wsum_t *t,
                        const wsum_t *per, int64_t now_slot, double *num)
{
    const int spans = fu->nb / BUCKETS, pairs = spans * (spans - 1) / 2;
    const ref_t ref = ref_of(w);
    double q = prior_q(fu->cfg, sig),
           den[BW_SPANS_MAX * BW_SPANS_MAX / 2] = {0}, lnum, lend;
    int k = 0;

    for (int a = 0; a < spans; a++) {
        num[a] = sum_lbf(w, &ref, sig, &t[a], a) + fu->lstart[a];
        if (a == 0 && isnan(num[0])) {
            return NAN;
        }
        if (w->den_slot != now_slot) {
            /* windows e + 1 .. a, summed window by window from the oldest,
             * not t[a] - t[e]: the cached term must not hold
             * the last window's values even in its rounding (a restored
             * state, which has no cache, recomputes it) */
            wsum_t d = {0};
            for (int e = a - 1; e >= 0; e--) {
                double le;
                add_sum(&d, &per[e + 1]);
                le = sum_lbf(w, &ref, sig, &d, a - e - 1);
                den[k + e] = isnan(le) ? 0.0 : le; /* no data: no evidence */
            }
            w->lend_a[a] = a > 0 ? log_sum_exp(&den[k], a) : -INFINITY;
            k += a;
        }
    }
    if (pairs == 0) {
        return num[0];
    }
    lnum = log_sum_exp(num, spans);
    if (w->den_slot != now_slot) {
        w->lend = log_sum_exp(den, pairs) - log(pairs);
        w->den_slot = now_slot;
    }
    lend = w->lend;
    den[0] = log(q) + lend;
    den[1] = log1p(-q);
    return lnum - log_sum_exp(den, 2);
}

/* One bucket into the reference, weighted by the posterior that the
 * window it was last in was not elevated (at least ADOPT_FLOOR). The
 * reference decays once per bucket that held data (as phi does once per
 * roll), so baseline_ms is a horizon in such buckets, not in time: a
 * sparse signal's reference reaches further back, and a silence does
 * not age it (README, Threat fusion). */
static void fold_one(const bw_fusion_t *fu, window_t *w, const bucket_t *q)
{
    double decay = exp(-(fu->cfg->window_ms / BUCKETS) / fu->cfg->baseline_ms);
    double keep = fmax(1.0 - w->p_elev, ADOPT_FLOOR);

    w->r0 = decay * w->r0 + keep * q->nx;
    w->r1 = decay * w->r1 + keep * q->x;
    w->r2 = decay * w->r2 + keep * q->x2;
    w->rv = decay * w->rv + keep * q->sd2;
}

/* The buckets that have left the window by @p slot go into the reference,
 * oldest first. They stay in the ring for the longer spans. The slots not
 * yet folded lie in (ref_slot, top], at most a ring's width (a roll leaves
 * ref_slot a window behind top; a load folds what an older format left),
 * so they are read directly, in order, also after a gap; a position still
 * holding an older slot is skipped by the slot check. */
static void fold_aged(const bw_fusion_t *fu, window_t *w, int64_t slot)
{
    int64_t hi = slot - BUCKETS < w->top ? slot - BUCKETS : w->top;
    int64_t lo = w->top - fu->nb + 1 > w->ref_slot + 1 ? w->top - fu->nb + 1
                                                       : w->ref_slot + 1;

    for (int64_t s = lo; s <= hi; s++) {
        if (w->bk[s % fu->nb].slot == s) {
            fold_one(fu, w, &w->bk[s % fu->nb]);
        }
    }
    w->ref_slot = slot - BUCKETS > w->ref_slot ? slot - BUCKETS : w->ref_slot;
}

/* After a load from a format before v5, which folded a bucket only when a
 * newer one took its place: the held buckets already a window behind the
 * newest go into the reference now, oldest first, as fold_aged would
 * have put them (else those older than the ring's width never would). */
static void fold_loaded(const bw_fusion_t *fu, window_t *w)
{
    int64_t prev = -1;

    if (w->bk == NULL) {
        return;
    }
    for (;;) { /* the next older slot to fold: at most nb passes */
        const bucket_t *next = NULL;
        for (int b = 0; b < fu->nb; b++) {
            const bucket_t *q = &w->bk[b];
            if (q->slot > prev && q->slot <= w->top - BUCKETS &&
                (next == NULL || q->slot < next->slot)) {
                next = q;
            }
        }
        if (next == NULL) {
            break;
        }
        fold_one(fu, w, next);
        prev = next->slot;
    }
    w->ref_slot = w->top - BUCKETS > -1 ? w->top - BUCKETS : -1;
}

/* One null sample @p s of span @p j's phi, weight @p wt, after the older
 * ones decay by @p decay. */
static void phi_add(window_t *w, int j, double s, double wt, double decay)
{
    w->p0[j] = decay * w->p0[j] + wt;
    w->p1[j] = decay * w->p1[j] + wt * s;
}

/* From spans_lbf's terms @p num (and w->lend_a, of the same evaluation):
 * pn[0] the posterior that none of the spans' windows was elevated (prior
 * (1 - q)^2 against q for one in progress and (1 - q) q for one that
 * ended; with one span, 1 - P(elevated now)), the weight of the longest
 * span's null samples of phi; pn[m] that none reaches back to window m
 * (bw_fusion_reach_back). All NAN while the last window has no events,
 * and with one span (the roll then weighs by 1 - P(elevated now), the
 * same posterior). Only a roll reads them, so an evaluation does not
 * compute them. */
static void null_weights(const bw_fusion_t *fu, const window_t *w,
                         const bw_signal_cfg_t *sig, const double *num,
                         double *pn)
{
    const int spans = fu->nb / BUCKETS;

    if (isnan(num[0]) || spans == 1) {
        for (int m = 0; m < spans; m++) {
            pn[m] = NAN;
        }
    } else {
        bw_fusion_reach_back(spans, prior_q(fu->cfg, sig), num, w->lend_a, pn);
    }
}

/* The held samples due at the roll to @p slot: span j's, taken at the
 * roll that began a bucket at least BUCKETS (spans - 1 - j) slots ago, now
 * cover the windows spans - 1 - j .. spans - 1 before the last, and count
 * with pn[spans - 1 - j], with no floor: the longest span's samples have
 * none, and with ADOPT_FLOOR an attack's windows inflated the shorter
 * spans' phi alone, so that after its end the elevations that ended
 * (shorter spans) read weaker than the longest one still in progress,
 * and high held for a median 21 minutes past the end (7 without; fleet
 * held-out seeds). @p fallback: the weight while the last window had no
 * events. Oldest first. */
static void release_held(const bw_fusion_t *fu, window_t *w, int64_t slot,
                         const double *pn, double fallback, double decay)
{
    const int spans = fu->nb / BUCKETS, hp = held_per_bucket(fu);

    for (int j = 0; j < hp; j++) {
        int m = spans - 1 - j;
        /* due now, not at the last roll (w->top): slots in (top - lag,
         * slot - lag] that the ring holds before this roll, (top - nb,
         * top]; after a gap, at the first roll since they fell due */
        int64_t hi = slot - BUCKETS * m, lo = w->top - BUCKETS * m + 1;
        lo = lo > w->top - fu->nb + 1 ? lo : w->top - fu->nb + 1;
        hi = hi < w->top ? hi : w->top; /* at most nb slots: not the gap */
        for (int64_t s = lo > 0 ? lo : 0; s <= hi; s++) {
            int i = (int)(s % fu->nb);
            double *h;
            if (w->bk[i].slot != s) {
                continue;
            }
            h = held_at(fu, w, i, j);
            if (!isnan(*h)) {
                phi_add(w, j, *h, isnan(pn[m]) ? fallback : pn[m], decay);
                *h = NAN;
            }
        }
    }
}

/* A new bucket starts at @p slot in place of bucket @p b: sample each
 * span's null statistic of the window that just closed, count the held
 * samples now due, then fold the buckets that left the window into the
 * reference. The longest span's sample counts at once, by P(none of its
 * windows was elevated); the shorter spans' are held in the new bucket
 * until their windows are the longest span's oldest (release_held). A
 * late event's new bucket (older than the newest: its window closed long
 * ago) changes only the bucket. */
static void roll(const bw_fusion_t *fu, const bw_signal_cfg_t *sig, window_t *w,
                 int b, int64_t slot)
{
    const int spans = fu->nb / BUCKETS, hp = held_per_bucket(fu);
    wsum_t t[BW_SPANS_MAX], per[BW_SPANS_MAX];
    const double decay = exp(-(fu->cfg->window_ms / BUCKETS) /
                             (PHI_SPAN * fu->cfg->baseline_ms));
    double lbf, num[BW_SPANS_MAX], pn[BW_SPANS_MAX], sample[BW_SPANS_MAX],
        fallback;
    ref_t ref;

    for (int j = 0; j < spans; j++) {
        sample[j] = NAN;
    }
    if (slot < w->top) {
        goto reset;
    }
    span_sums(fu, w, slot - 1, t, per, spans);
    /* the evaluation after the window's last event is usually this one */
    if (w->lbf_slot == slot - 1) {
        lbf = w->lbf;
        memcpy(num, w->num, sizeof(num));
    } else {
        lbf = spans_lbf(fu, w, sig, t, per, slot - 1, num);
    }
    null_weights(fu, w, sig, num, pn);
    if (!isnan(lbf)) {
        double q = prior_q(fu->cfg, sig);
        w->p_elev = 1.0 / (1.0 + exp(-(log(q) - log1p(-q) + lbf)));
    }
    ref = ref_of(w);
    for (int j = 0; ref.warm && j < spans; j++) {
        double d;
        if (t[j].nx > 0.0) {
            d = t[j].x / t[j].nx - ref.mean;
            sample[j] = t[j].nx * d * d / ref.var;
        }
    }
    fallback = 1.0 - w->p_elev;
    release_held(fu, w, slot, pn, fallback, decay);
    if (!isnan(sample[spans - 1])) {
        /* one span: P(not elevated now) */
        phi_add(w, spans - 1, sample[spans - 1],
                spans == 1 || isnan(pn[0]) ? fallback : pn[0], decay);
    }
    fold_aged(fu, w, slot);
    w->top = slot;
reset:
    memset(&w->bk[b], 0, sizeof(bucket_t));
    w->bk[b].slot = slot;
    for (int j = 0; j < hp; j++) {
        *held_at(fu, w, b, j) = sample[j];
    }
}

/* How far a frame has come: raw values (0), less the first day's
 * provisional profile (BW_FRAME_EARLY), less an applied daily or weekly
 * profile (1, 2), less both (3). A series' frame only moves forward. */
static int frame_rank(int frame)
{
    return frame == 0 ? 0 : frame == BW_FRAME_EARLY ? 1 : frame == 3 ? 3 : 2;
}

/* The values' frame moved on (the first day's provisional profile, or a
 * profile began to apply): what was learnt in the old frame is no
 * reference for the new one. phi, the noise's structure, is the series'
 * own and is kept, but with at most its prior's weight: the old frame's
 * windows also held what the new frame takes out (on the first day, the
 * daily cycle), and its own null windows soon outweigh them. Without it
 * phi restarts at 1 (iid), and AR(1) noise read as elevation in the first
 * hours of the new frame. */
static void phi_to_prior_weight(window_t *w)
{
    for (int j = 0; j < BW_SPANS_MAX; j++) {
        double keep = w->p0[j] > PHI_PRIOR_W ? PHI_PRIOR_W / w->p0[j] : 1.0;
        w->p0[j] *= keep;
        w->p1[j] *= keep;
    }
}

/* The null samples of phi still held are the old frame's windows: they
 * go too (those counted keep only the prior's weight). */
static void drop_held(const bw_fusion_t *fu, window_t *w)
{
    size_t nh = (size_t)fu->nb * (size_t)held_per_bucket(fu);

    for (size_t k = 0; w->held != NULL && k < nh; k++) {
        w->held[k] = NAN;
    }
}

static void ref_restart(const bw_fusion_t *fu, window_t *w, int frame)
{
    w->shift = NAN;
    w->frame = frame;
    w->src = 0;
    w->mixed = 0;
    w->r0 = w->r1 = w->r2 = w->rv = 0.0;
    phi_to_prior_weight(w);
    drop_held(fu, w);
    for (int b = 0; b < fu->nb; b++) {
        bucket_t *q = &w->bk[b];
        q->nx = q->x = q->x2 = q->sd2 = 0.0;
    }
}

/* Whose values the reference of the window's frame holds: one source
 * (a series), or a mix that a move of one of them must not carry. */
static void note_source(window_t *w, uint32_t src)
{
    if (w->src == 0 && !w->mixed) {
        w->src = src;
    } else if (w->src != src) {
        w->mixed = 1;
    }
}

/* The frame moves on from the second day's provisional profile to the
 * daily profile (both are the first days' cycle, the second with one more
 * period in its bins), and this event's value is given in both: the
 * reference and the window's buckets carry over, their origin moved by the
 * difference, so that x - shift is the same in both frames at this phase
 * (the engine's difference is 0 unless the move falls inside a bin's visit
 * already begun: both then read the same bin mean). Restarted here
 * instead, a signal has only the filter's innovations (which follow an
 * elevation) for the new reference's first REF_MIN events, and an attack
 * in progress at midnight lost its evidence (fleet seed 10). The profiles
 * differ from phase to phase by about a day's noise in a bin's mean, which
 * the reference's variance already holds, and the reference learns the new
 * frame over its horizon; phi, measured partly on the provisional
 * profile's errors, keeps at most its prior's weight as in a restart.
 * Only a reference learnt from the moving series alone carries: where
 * several series share the signal, it holds their mixed levels, and after
 * the move only the mover's values come in (the others' rank lower) and
 * would read as a shift from the mix. Any other move restarts
 * (ref_restart): from raw values the cycle itself goes. */
static void ref_move(const bw_fusion_t *fu, window_t *w,
                     const bw_fusion_obs_t *ob)
{
    if (w->frame == BW_FRAME_EARLY && ob->frame_prev == BW_FRAME_EARLY &&
        isfinite(ob->x_prev) && !isnan(w->shift) && ob->src != 0 &&
        w->src == ob->src && !w->mixed) {
        w->shift += ob->x - ob->x_prev;
        w->frame = ob->frame;
        phi_to_prior_weight(w);
        drop_held(fu, w);
        return;
    }
    ref_restart(fu, w, ob->frame);
}

void bw_fusion_observe_value(bw_fusion_t *fu, int rule, int sig, int64_t t_ms,
                             const bw_fusion_obs_t *ob)
{
    double z = ob->z, x = ob->x, sd = ob->sd;
    window_t *w;
    int64_t slot = slot_of(fu->cfg, t_ms);
    int b = (int)(((slot % fu->nb) + fu->nb) % fu->nb);
    bucket_t *q;

    fu->last_ms = t_ms > fu->last_ms ? t_ms : fu->last_ms;
    if (rule < 0 || rule >= fu->cfg->n_rules || sig < 0 ||
        sig >= BW_SIGNALS_MAX || !isfinite(z)) {
        return;
    }
    w = &fu->win[rule * BW_SIGNALS_MAX + sig];
    if (w->bk == NULL) {
        return; /* not a signal of the rule */
    }
    q = &w->bk[b];
    if (q->slot > slot || slot <= w->ref_slot) {
        return; /* older than the window: no evidence left to update */
    }
    if (q->slot != slot) {
        roll(fu, &fu->cfg->rules[rule].signals[sig], w, b, slot);
        w->den_slot = -1;
    }
    w->lbf_slot = -1;
    if (slot <= w->den_slot - BUCKETS) { /* older than the last window */
        w->den_slot = -1;
    }
    q->n += 1.0;
    q->z += fmin(fmax(z, -Z_CLIP), Z_CLIP);
    /* Several series of one entity may share a signal (entity: region),
     * and each moves its frame at its own age: a frame further on takes
     * the window over, and values of one not as far add no reference
     * while the window's own frame is fed (they would restart it at every
     * event). After a whole window without a value in its frame (that
     * series retired, or restarted at frame 0), the values that still
     * come take it over. */
    if (fu->cfg->baseline_ms > 0.0 && isfinite(x) && isfinite(sd) &&
        (ob->frame == w->frame ||
         frame_rank(ob->frame) > frame_rank(w->frame) ||
         window_nx(fu, w, slot) == 0.0)) {
        if (ob->frame != w->frame) {
            ref_move(fu, w, ob);
            w->den_slot = -1;
        }
        if (isnan(w->shift)) {
            w->shift = x;
        }
        note_source(w, ob->src);
        x -= w->shift;
        /* one spike is not a sustained elevation: clipped against the
         * reference once it is warm, against the filter's predictive until
         * then (a value 1e3 sds out on the reference's 5th event had held
         * its variance up for a day) */
        if (ref_warm(w)) {
            double mean, var;
            ref_moments(w, &mean, &var);
            x = fmin(fmax(x, mean - Z_CLIP * sqrt(var)),
                     mean + Z_CLIP * sqrt(var));
        } else {
            x -= (z - fmin(fmax(z, -Z_CLIP), Z_CLIP)) * sd;
        }
        q->nx += 1.0;
        q->x += x;
        q->x2 += x * x;
        q->sd2 += sd * sd;
    }
}

void bw_fusion_observe(bw_fusion_t *fu, int rule, int sig, int64_t t_ms,
                       double z)
{
    bw_fusion_obs_t ob = {z, NAN, NAN, 0, NAN, 0, 0};

    bw_fusion_observe_value(fu, rule, sig, t_ms, &ob);
}

/* The signal's log Bayes factor of elevation, NAN without events in the
 * window; kept until the window changes (the other signals' events
 * evaluate the rule too). */
static double window_lbf(const bw_fusion_t *fu, window_t *w,
                         const bw_signal_cfg_t *sig, int64_t now_slot)
{
    wsum_t t[BW_SPANS_MAX], per[BW_SPANS_MAX];

    if (w->lbf_slot != now_slot) {
        span_sums(fu, w, now_slot, t, per, fu->nb / BUCKETS);
        w->lbf = spans_lbf(fu, w, sig, t, per, now_slot, w->num);
        w->lbf_slot = now_slot;
    }
    return w->lbf;
}

bool bw_fusion_eval(bw_fusion_t *fu, int rule, int64_t t_ms, bw_threat_t *out)
{
    const bw_rule_cfg_t *r = &fu->cfg->rules[rule];
    double lbf[BW_SIGNALS_MAX];
    rule_state_t *st = &fu->rs[rule];
    int64_t now;
    bool emit, behind;

    /* A late event (another series of the entity behind the newest) does
     * not take the rule back in time: within a window (in buckets) of the
     * entity's newest event it is judged as the rule stands there, as the
     * evaluation before it was, and the time stays in order. One further
     * behind (a series whose clock lags by more than a window, or the
     * newest was a bogus future time) holds no evidence the newest
     * evaluation sees: it is judged at its own time, and neither emits
     * nor moves the rule's level (the two clocks' views had alternated,
     * each event swinging the level). */
    now = slot_of(fu->cfg, t_ms);
    behind = false;
    if (fu->last_ms > t_ms) {
        int64_t newest = slot_of(fu->cfg, fu->last_ms);
        behind = newest - now >= BUCKETS;
        if (!behind) {
            t_ms = fu->last_ms;
            now = newest;
        }
    }

    for (int s = 0; s < r->n_signals; s++) {
        lbf[s] = window_lbf(fu, &fu->win[rule * BW_SIGNALS_MAX + s],
                            &r->signals[s], now);
    }
    bw_fusion_combine(fu->cfg, r, lbf, out);
    if (st->score >= 0.0) { /* the level emitted last is current */
        out->level =
            held_level(fu->cfg, out->probability, out->level, st->level);
    }
    if (behind) {
        out->since_ms = out->level == BW_LEVEL_LOW ? -1 : st->since;
        out->at_ms = t_ms;
        return false;
    }
    if (out->level == BW_LEVEL_LOW) {
        st->since = -1;
    } else if (st->since < 0) {
        st->since = t_ms;
    }
    out->since_ms = st->since;
    out->at_ms = t_ms;
    emit = st->score < 0.0 || out->level != st->level ||
           fabs(out->score - st->score) >= fu->cfg->emit_delta;
    if (emit) {
        st->score = out->score;
        st->level = out->level;
    }
    return emit;
}

static void save_window(const bw_fusion_t *fu, const window_t *win,
                        bw_wbuf_t *w)
{
    int nb = win->bk != NULL ? fu->nb : 0;

    bw_wbuf_u32(w, (uint32_t)nb);
    for (int b = 0; b < nb; b++) {
        const bucket_t *q = &win->bk[b];
        bw_wbuf_i64(w, q->slot);
        bw_wbuf_f64(w, q->n);
        bw_wbuf_f64(w, q->z);
        bw_wbuf_f64(w, q->nx);
        bw_wbuf_f64(w, q->x);
        bw_wbuf_f64(w, q->x2);
        bw_wbuf_f64(w, q->sd2);
        for (int j = 0; j < held_per_bucket(fu); j++) {
            bw_wbuf_f64(w, *held_at(fu, win, b, j));
        }
    }
    bw_wbuf_i64(w, win->ref_slot);
    bw_wbuf_f64(w, win->shift);
    bw_wbuf_u32(w, (uint32_t)win->frame);
    bw_wbuf_u32(w, win->src);
    bw_wbuf_u32(w, win->mixed);
    bw_wbuf_f64(w, win->r0);
    bw_wbuf_f64(w, win->r1);
    bw_wbuf_f64(w, win->r2);
    bw_wbuf_f64(w, win->rv);
    for (int j = 0; j < fu->nb / BUCKETS; j++) {
        bw_wbuf_f64(w, win->p0[j]);
        bw_wbuf_f64(w, win->p1[j]);
    }
    bw_wbuf_f64(w, win->p_elev);
}

double bw_fusion_phi_weight(const bw_fusion_t *fu, int rule, int sig,
                            int span)
{
    const window_t *w;

    if (rule < 0 || rule >= fu->cfg->n_rules || sig < 0 ||
        sig >= BW_SIGNALS_MAX || span < 0 || span >= fu->nb / BUCKETS) {
        return NAN;
    }
    w = &fu->win[rule * BW_SIGNALS_MAX + sig];
    return w->bk != NULL ? w->p0[span] : NAN;
}

int64_t bw_fusion_last_ms(const bw_fusion_t *fu)
{
    return fu->last_ms;
}

/* Before v7 the last event time was not saved: the start of the newest
 * bucket held stands for it (-1 if none). */
static int64_t last_from_buckets(const bw_fusion_t *fu, const window_t *win)
{
    int64_t top = -1;

    for (int w = 0; w < fu->nwin; w++) {
        top = win[w].bk != NULL && win[w].top > top ? win[w].top : top;
    }
    if (top < 0) {
        return -1;
    }
    /* never after the newest event, so the evaluations after the restore
     * stand where the run's would have */
    return (int64_t)ceil((double)top * (fu->cfg->window_ms / BUCKETS));
}

bw_err_t bw_fusion_save(const bw_fusion_t *fu, bw_wbuf_t *w)
{
    int rules = fu->nwin / BW_SIGNALS_MAX;

    bw_wbuf_u32(w, FUSION_STATE_TAG);
    bw_wbuf_u32(w, (uint32_t)fu->nwin);
    bw_wbuf_u32(w, (uint32_t)(fu->nb / BUCKETS));
    for (int i = 0; i < fu->nwin; i++) {
        save_window(fu, &fu->win[i], w);
    }
    for (int r = 0; r < rules; r++) {
        bw_wbuf_f64(w, fu->rs[r].score);
        bw_wbuf_u32(w, (uint32_t)fu->rs[r].level);
        bw_wbuf_i64(w, fu->rs[r].since);
    }
    bw_wbuf_i64(w, fu->last_ms);
    return w->err;
}

static bool bucket_ok(const bucket_t *q)
{
    return q->n >= 0.0 && fabs(q->z) <= Z_CLIP * q->n && q->nx >= 0.0 &&
           q->nx <= q->n && q->x2 >= 0.0 && q->sd2 >= 0.0;
}

/* A saved bucket goes to its place in this build's ring unless a newer
 * one holds it (a ring of fewer spans than the saved one keeps the
 * newest), with its held samples @p held where the saved spans are this
 * build's (else none: they are not due at the same rolls). */
static void place_bucket(const bw_fusion_t *fu, window_t *w, const bucket_t *q,
                         const double *held, bool same_spans)
{
    const int hp = held_per_bucket(fu);
    int i;

    if (q->slot < 0 || w->bk == NULL) {
        return;
    }
    i = (int)(q->slot % fu->nb);
    if (w->bk[i].slot < q->slot) {
        w->bk[i] = *q;
        for (int j = 0; j < hp; j++) {
            *held_at(fu, w, i, j) = same_spans ? held[j] : NAN;
        }
    }
}

/* A held sample: none (NAN) or a sum of squares. */
static bool held_ok(double h)
{
    return isnan(h) || (isfinite(h) && h >= 0.0);
}

/* The format a blob was written in: its version (2-8) and spans. */
typedef struct {
    int version;
    int spans;
} blob_fmt_t;

/* One window into @p w (validated by the caller's bw_rbuf error and
 * bucket_ok). Before v5 a window has one span of BUCKETS buckets, folded
 * into the reference only as they left the ring (ref_slot -1: none of
 * them is in it yet); v2 has no values or reference. A saved window of
 * other spans than this build's keeps the spans both have. */
static bool load_window(const bw_fusion_t *fu, bw_rbuf_t *r, window_t *w,
                        blob_fmt_t f)
{
    const int64_t max_slot = slot_of(fu->cfg, BW_TIME_MAX_MS);
    bucket_t *bk = w->bk;
    double *held = w->held;
    int nb = BUCKETS; /* before v5: every window has one span */
    bool ok = true;

    memset(w, 0, sizeof(*w));
    w->bk = bk;
    w->held = held;
    w->ref_slot = w->top = w->lbf_slot = w->den_slot = -1;
    w->shift = NAN;
    if (f.version >= 5) {
        nb = (int)bw_rbuf_u32(r);
        ok = nb == 0 || nb == BUCKETS * f.spans;
        nb = ok ? nb : 0;
    }
    for (int b = 0; b < nb; b++) {
        bucket_t q = {0};
        double hs[BW_SPANS_MAX];
        q.slot = bw_rbuf_time(r, -1);
        q.n = bw_rbuf_finite(r);
        q.z = bw_rbuf_finite(r);
        if (f.version > 2) {
            q.nx = bw_rbuf_finite(r);
            q.x = bw_rbuf_finite(r);
            q.x2 = bw_rbuf_finite(r);
            q.sd2 = bw_rbuf_finite(r);
        }
        for (int j = 0; j < f.spans - 1; j++) {
            hs[j] = f.version >= 8 ? bw_rbuf_f64(r) : NAN;
            ok = ok && held_ok(hs[j]);
        }
        ok = ok && bucket_ok(&q) && q.slot <= max_slot;
        w->top = q.slot > w->top ? q.slot : w->top;
        place_bucket(fu, w, &q, hs, f.spans == fu->nb / BUCKETS);
    }
    if (f.version == 2) {
        fold_loaded(fu, w); /* no values: only ref_slot moves */
        return ok;
    }
    if (f.version >= 5) { /* a roll leaves it a window behind the newest */
        w->ref_slot = bw_rbuf_time(r, -1);
        ok = ok && (w->ref_slot == -1 || w->ref_slot <= w->top - BUCKETS);
    }
    w->shift = bw_rbuf_f64(r); /* NAN until a value was seen */
    w->frame = (int)bw_rbuf_u32_in(r, 0, BW_FRAME_EARLY);
    if (f.version >= 6) {
        w->src = bw_rbuf_u32(r);
        w->mixed = bw_rbuf_u32_in(r, 0, 1);
    } else {
        w->mixed = 1; /* not known: its frame's move restarts it */
    }
    w->r0 = bw_rbuf_finite(r);
    w->r1 = bw_rbuf_finite(r);
    w->r2 = bw_rbuf_finite(r);
    w->rv = bw_rbuf_finite(r);
    for (int j = 0; j < f.spans; j++) {
        double p0 = bw_rbuf_finite(r), p1 = bw_rbuf_finite(r);
        ok = ok && p0 >= 0.0 && p1 >= 0.0;
        if (j < fu->nb / BUCKETS) {
            w->p0[j] = p0;
            w->p1[j] = p1;
        }
    }
    w->p_elev = bw_rbuf_finite(r);
    if (f.version < 5) {
        fold_loaded(fu, w);
    }
    /* a reference with weight has a variance (rv > 0: every value came
     * with a predictive sd) and its moments are those of some values
     * (r1^2 <= r0 r2, to rounding) */
    ok = ok && (w->r0 == 0.0 ||
                (w->rv > 0.0 && w->r1 * w->r1 <= w->r0 * w->r2 * (1.0 + 1e-9)));
    return ok && !isinf(w->shift) && w->r0 >= 0.0 && w->r2 >= 0.0 &&
           w->rv >= 0.0 && w->p_elev >= 0.0 && w->p_elev <= 1.0;
}

/* One rule's state; before v4 (FU04) no level start: -1. False if its
 * score is neither -1 (nothing emitted yet) nor a score (0-100). */
static bool load_rule(bw_rbuf_t *r, rule_state_t *q, bool has_since)
{
    q->score = bw_rbuf_f64(r);
    q->level = (bw_level_t)bw_rbuf_u32_in(r, 0, BW_LEVEL_CRITICAL);
    q->since = has_since ? bw_rbuf_time(r, -1) : -1;
    return q->score == -1.0 || (q->score >= 0.0 && q->score <= 100.0);
}

/* The blob's format from its header, or version 0 if it is none of ours
 * (or holds another number of windows). */
static blob_fmt_t read_header(const bw_fusion_t *fu, bw_rbuf_t *r)
{
    uint32_t tag = bw_rbuf_u32(r);
    blob_fmt_t f = {0, 1};

    f.version = tag == FUSION_STATE_TAG      ? 8
                : tag == FUSION_STATE_TAG_V7 ? 7
                : tag == FUSION_STATE_TAG_V6 ? 6
                : tag == FUSION_STATE_TAG_V5 ? 5
                : tag == FUSION_STATE_TAG_V4 ? 4
                : tag == FUSION_STATE_TAG_V3 ? 3
                : tag == FUSION_STATE_TAG_V2 ? 2
                                             : 0;
    if (bw_rbuf_u32(r) != (uint32_t)fu->nwin) {
        f.version = 0;
    }
    if (f.version >= 5) {
        f.spans = (int)bw_rbuf_u32_in(r, 1, BW_SPANS_MAX);
    }
    if (r->err != BW_OK) {
        f.version = 0;
    }
    return f;
}

bw_err_t bw_fusion_load(bw_fusion_t *fu, bw_rbuf_t *r)
{
    int rules = fu->nwin / BW_SIGNALS_MAX;
    blob_fmt_t f = read_header(fu, r);
    window_t *tmp = NULL;
    bucket_t *pool = NULL;
    double *hpool = NULL;
    rule_state_t *rs = NULL;
    int64_t last;
    bw_err_t err = BW_ERR_CORRUPT;

    if (f.version == 0) {
        return BW_ERR_CORRUPT;
    }
    /* all or nothing: the state goes live only once all of it is valid */
    tmp = bw_calloc((size_t)fu->nwin, sizeof(window_t));
    pool = bw_calloc(fu->npool > 0 ? fu->npool : 1, sizeof(bucket_t));
    hpool = new_hpool(fu);
    rs = bw_calloc((size_t)rules, sizeof(rule_state_t));
    if (tmp == NULL || pool == NULL || hpool == NULL || rs == NULL) {
        err = BW_ERR_NOMEM;
        goto done;
    }
    empty_pool(fu, pool, hpool);
    share_pool(fu, tmp, pool, hpool);
    for (int i = 0; i < fu->nwin; i++) {
        if (!load_window(fu, r, &tmp[i], f)) {
            goto done;
        }
    }
    for (int q = 0; q < rules; q++) {
        if (!load_rule(r, &rs[q], f.version >= 4)) {
            goto done;
        }
    }
    last = f.version >= 7 ? bw_rbuf_time(r, -1) : last_from_buckets(fu, tmp);
    if (r->err == BW_OK) {
        fu->last_ms = last;
        memcpy(fu->pool, pool, fu->npool * sizeof(bucket_t));
        memcpy(fu->hpool, hpool,
               fu->npool * (size_t)held_per_bucket(fu) * sizeof(double));
        share_pool(fu, tmp, fu->pool, fu->hpool);
        memcpy(fu->win, tmp, (size_t)fu->nwin * sizeof(window_t));
        memcpy(fu->rs, rs, (size_t)rules * sizeof(rule_state_t));
        err = BW_OK;
    }
done:
    bw_free(tmp);
    bw_free(pool);
    bw_free(hpool);
    bw_free(rs);
    return err;
}
