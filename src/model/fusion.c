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
 * The window keeps, per signal, the count and the sum of z in each of
 * BUCKETS time buckets of window/BUCKETS; O(1) memory and time per event,
 * the window edge resolved to one bucket.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bayeswatch/model.h"
#include "bayeswatch/mem.h"

#define BUCKETS 16
#define Z_CLIP 3.0
#define FUSION_STATE_TAG 0x46553034u    /* "FU04" */
#define FUSION_STATE_TAG_V3 0x46553033u /* "FU03": no level start */
#define FUSION_STATE_TAG_V2 0x46553032u /* "FU02": window only */
#define REF_MIN 30.0                    /* reference events before it is used */
#define PHI_PRIOR_W 16.0                /* pseudo-samples of phi = 1 (iid) */
#define PHI_SPAN 12.0    /* phi's horizon in reference horizons (baseline_ms) */
#define ADOPT_FLOOR 0.25 /* least weight of an elevated bucket */
#define SD_FLOOR 0.5     /* reference sd >= this x the filter's */

typedef struct {
    int64_t slot[BUCKETS]; /* bucket index (time / width) held, -1 empty */
    double n[BUCKETS];     /* events */
    double z[BUCKETS];     /* sum of their clipped z */
    double nx[BUCKETS];    /* events with a value x */
    double x[BUCKETS];     /* sum of x - shift */
    double x2[BUCKETS];    /* sum of (x - shift)^2 */
    double sd2[BUCKETS];   /* sum of the filter's predictive variance */
    /* the reference: EW sums over buckets that left the window */
    double shift;          /* first x seen (NAN: none yet) */
    int frame;             /* bw_fusion_obs_t.frame of the reference */
    double r0, r1, r2, rv; /* weight, sum x, sum x^2, sum sd^2 */
    double p0, p1;         /* null samples of n D^2 / var: weight, sum */
    double p_elev;         /* P(elevated) of the last complete window */
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
    window_t *win;    /* rule-major: rules * BW_SIGNALS_MAX */
    rule_state_t *rs; /* per rule */
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
    double m = sig->elevation, v = 0.25 * m * m, up, down;

    if (!(n > 0.0)) {
        return NAN;
    }
    up = -0.5 * log1p(n * v) +
         (zsum + m / v) * (zsum + m / v) / (2.0 * (n + 1.0 / v)) -
         m * m / (2.0 * v);
    down = -0.5 * log1p(n * v) +
           (-zsum + m / v) * (-zsum + m / v) / (2.0 * (n + 1.0 / v)) -
           m * m / (2.0 * v);
    return by_direction(sig, up, down);
}

/* log LR_s from log lambda (header), without overflow. */
static double signal_llr(const bw_signal_cfg_t *s, double lbf)
{
    double d = s->detection, f = s->false_alarm;

    if (lbf > 0.0) { /* divide through by lambda */
        double il = exp(-lbf);
        return log((d + (1.0 - d) * il) / (f + (1.0 - f) * il));
    }
    {
        double l = exp(lbf);
        return log((d * l + 1.0 - d) / (f * l + 1.0 - f));
    }
}

/* P(the signal is elevated | window), at the prior rate of elevation that
 * the rule implies, prior d + (1 - prior) f. */
static double signal_p(const bw_fusion_cfg_t *cfg, const bw_signal_cfg_t *s,
                       double lbf)
{
    double q = cfg->prior * s->detection + (1.0 - cfg->prior) * s->false_alarm;
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
    logit = log(cfg->prior) - log1p(-cfg->prior) + total;
    out->probability = 1.0 / (1.0 + exp(-logit));
    out->score = 100.0 * out->probability;
    out->level = level_of(cfg, out->probability);
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
    fu->nwin = rules * BW_SIGNALS_MAX;
    fu->win = bw_calloc((size_t)fu->nwin, sizeof(window_t));
    fu->rs = bw_calloc((size_t)rules, sizeof(rule_state_t));
    if (fu->win == NULL || fu->rs == NULL) {
        goto fail;
    }
    for (int w = 0; w < fu->nwin; w++) {
        for (int b = 0; b < BUCKETS; b++) {
            fu->win[w].slot[b] = -1;
        }
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
    bw_free(fu->rs);
    bw_free(fu);
}

static int64_t slot_of(const bw_fusion_cfg_t *cfg, int64_t t_ms)
{
    double width = cfg->window_ms / BUCKETS;

    return (int64_t)floor((double)t_ms / width);
}

/* Window sums over the buckets in (now - BUCKETS, now]. */
static wsum_t window_sum(const window_t *w, int64_t now_slot)
{
    wsum_t t = {0};

    for (int b = 0; b < BUCKETS; b++) {
        if (w->slot[b] > now_slot - BUCKETS && w->slot[b] <= now_slot) {
            t.n += w->n[b];
            t.z += w->z[b];
            t.nx += w->nx[b];
            t.x += w->x[b];
            t.x2 += w->x2[b];
        }
    }
    return t;
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

static double phi_of(const window_t *w)
{
    return fmax(1.0, (w->p1 + PHI_PRIOR_W) / (w->p0 + PHI_PRIOR_W));
}

double bw_fusion_lbf_std(const bw_signal_cfg_t *sig, double s, double mu)
{
    double v = 0.25 * mu * mu, up, down;

    if (!isfinite(s) || !(mu > 0.0)) {
        return NAN;
    }
    up = -0.5 * log1p(v) + 0.5 * s * s - (s - mu) * (s - mu) / (2.0 * (1 + v));
    down =
        -0.5 * log1p(v) + 0.5 * s * s - (s + mu) * (s + mu) / (2.0 * (1 + v));
    return by_direction(sig, up, down);
}

/* The evidence of window sums @p t: against the reference once it is warm,
 * else from the filter's innovations; NAN without events. */
static double sum_lbf(const window_t *w, const bw_signal_cfg_t *sig,
                      const wsum_t *t)
{
    double mean, var, phi;

    if (!(t->nx > 0.0) || !ref_warm(w)) {
        return bw_fusion_lbf(sig, t->n, t->z);
    }
    ref_moments(w, &mean, &var);
    phi = phi_of(w);
    return bw_fusion_lbf_std(sig,
                             (t->x / t->nx - mean) * sqrt(t->nx / (phi * var)),
                             sig->elevation * sqrt(t->nx / phi));
}

/* A new bucket starts at @p slot in place of bucket @p b: sample the null
 * statistic of the window that just closed, then fold the evicted bucket
 * into the reference. */
static void roll(const bw_fusion_cfg_t *cfg, const bw_signal_cfg_t *sig,
                 window_t *w, int b, int64_t slot)
{
    double width = cfg->window_ms / BUCKETS;
    double decay = exp(-width / cfg->baseline_ms);
    double phi_decay = exp(-width / (PHI_SPAN * cfg->baseline_ms));
    wsum_t t = window_sum(w, slot - 1);
    double lbf = sum_lbf(w, sig, &t), keep;

    if (!isnan(lbf)) {
        double q =
            cfg->prior * sig->detection + (1.0 - cfg->prior) * sig->false_alarm;
        w->p_elev = 1.0 / (1.0 + exp(-(log(q) - log1p(-q) + lbf)));
    }
    if (ref_warm(w) && t.nx > 0.0) {
        double mean, var, d;
        ref_moments(w, &mean, &var);
        d = t.x / t.nx - mean;
        w->p0 = phi_decay * w->p0 + (1.0 - w->p_elev);
        w->p1 = phi_decay * w->p1 + (1.0 - w->p_elev) * t.nx * d * d / var;
    }
    if (w->slot[b] >= 0 && w->slot[b] <= slot - BUCKETS) {
        keep = fmax(1.0 - w->p_elev, ADOPT_FLOOR);
        w->r0 = decay * w->r0 + keep * w->nx[b];
        w->r1 = decay * w->r1 + keep * w->x[b];
        w->r2 = decay * w->r2 + keep * w->x2[b];
        w->rv = decay * w->rv + keep * w->sd2[b];
    }
    w->slot[b] = slot;
    w->n[b] = w->z[b] = w->nx[b] = w->x[b] = w->x2[b] = w->sd2[b] = 0.0;
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
static void ref_restart(window_t *w, int frame)
{
    double keep = w->p0 > PHI_PRIOR_W ? PHI_PRIOR_W / w->p0 : 1.0;

    w->shift = NAN;
    w->frame = frame;
    w->r0 = w->r1 = w->r2 = w->rv = 0.0;
    w->p0 *= keep;
    w->p1 *= keep;
    for (int b = 0; b < BUCKETS; b++) {
        w->nx[b] = w->x[b] = w->x2[b] = w->sd2[b] = 0.0;
    }
}

void bw_fusion_observe_value(bw_fusion_t *fu, int rule, int sig, int64_t t_ms,
                             const bw_fusion_obs_t *ob)
{
    double z = ob->z, x = ob->x, sd = ob->sd;
    window_t *w;
    int64_t slot = slot_of(fu->cfg, t_ms);
    int b = (int)(((slot % BUCKETS) + BUCKETS) % BUCKETS);

    if (rule < 0 || rule >= fu->cfg->n_rules || sig < 0 ||
        sig >= BW_SIGNALS_MAX || !isfinite(z)) {
        return;
    }
    w = &fu->win[rule * BW_SIGNALS_MAX + sig];
    if (w->slot[b] != slot) {
        if (w->slot[b] > slot) {
            return; /* older than the window: no evidence left to update */
        }
        roll(fu->cfg, &fu->cfg->rules[rule].signals[sig], w, b, slot);
    }
    w->n[b] += 1.0;
    w->z[b] += fmin(fmax(z, -Z_CLIP), Z_CLIP);
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
         window_sum(w, slot).nx == 0.0)) {
        if (ob->frame != w->frame) {
            ref_restart(w, ob->frame);
        }
        if (isnan(w->shift)) {
            w->shift = x;
        }
        x -= w->shift;
        if (ref_warm(w)) { /* one spike is not a sustained elevation */
            double mean, var;
            ref_moments(w, &mean, &var);
            x = fmin(fmax(x, mean - Z_CLIP * sqrt(var)),
                     mean + Z_CLIP * sqrt(var));
        }
        w->nx[b] += 1.0;
        w->x[b] += x;
        w->x2[b] += x * x;
        w->sd2[b] += sd * sd;
    }
}

void bw_fusion_observe(bw_fusion_t *fu, int rule, int sig, int64_t t_ms,
                       double z)
{
    bw_fusion_obs_t ob = {z, NAN, NAN, 0};

    bw_fusion_observe_value(fu, rule, sig, t_ms, &ob);
}

/* The window's log Bayes factor of elevation, NAN without events. */
static double window_lbf(const window_t *w, const bw_signal_cfg_t *sig,
                         int64_t now_slot)
{
    wsum_t t = window_sum(w, now_slot);

    return sum_lbf(w, sig, &t);
}

bool bw_fusion_eval(bw_fusion_t *fu, int rule, int64_t t_ms, bw_threat_t *out)
{
    const bw_rule_cfg_t *r = &fu->cfg->rules[rule];
    double lbf[BW_SIGNALS_MAX];
    int64_t now = slot_of(fu->cfg, t_ms);
    rule_state_t *st = &fu->rs[rule];
    bool emit;

    for (int s = 0; s < r->n_signals; s++) {
        lbf[s] = window_lbf(&fu->win[rule * BW_SIGNALS_MAX + s], &r->signals[s],
                            now);
    }
    bw_fusion_combine(fu->cfg, r, lbf, out);
    if (st->score >= 0.0) { /* the level emitted last is current */
        out->level =
            held_level(fu->cfg, out->probability, out->level, st->level);
    }
    if (out->level == BW_LEVEL_LOW) {
        st->since = -1;
    } else if (st->since < 0) {
        st->since = t_ms;
    }
    out->since_ms = st->since;
    emit = st->score < 0.0 || out->level != st->level ||
           fabs(out->score - st->score) >= fu->cfg->emit_delta;
    if (emit) {
        st->score = out->score;
        st->level = out->level;
    }
    return emit;
}

bw_err_t bw_fusion_save(const bw_fusion_t *fu, bw_wbuf_t *w)
{
    int rules = fu->nwin / BW_SIGNALS_MAX;

    bw_wbuf_u32(w, FUSION_STATE_TAG);
    bw_wbuf_u32(w, (uint32_t)fu->nwin);
    for (int i = 0; i < fu->nwin; i++) {
        const window_t *win = &fu->win[i];
        for (int b = 0; b < BUCKETS; b++) {
            bw_wbuf_i64(w, win->slot[b]);
            bw_wbuf_f64(w, win->n[b]);
            bw_wbuf_f64(w, win->z[b]);
            bw_wbuf_f64(w, win->nx[b]);
            bw_wbuf_f64(w, win->x[b]);
            bw_wbuf_f64(w, win->x2[b]);
            bw_wbuf_f64(w, win->sd2[b]);
        }
        bw_wbuf_f64(w, win->shift);
        bw_wbuf_u32(w, (uint32_t)win->frame);
        bw_wbuf_f64(w, win->r0);
        bw_wbuf_f64(w, win->r1);
        bw_wbuf_f64(w, win->r2);
        bw_wbuf_f64(w, win->rv);
        bw_wbuf_f64(w, win->p0);
        bw_wbuf_f64(w, win->p1);
        bw_wbuf_f64(w, win->p_elev);
    }
    for (int r = 0; r < rules; r++) {
        bw_wbuf_f64(w, fu->rs[r].score);
        bw_wbuf_u32(w, (uint32_t)fu->rs[r].level);
        bw_wbuf_i64(w, fu->rs[r].since);
    }
    return w->err;
}

static bool bucket_ok(const window_t *w, int b)
{
    return w->n[b] >= 0.0 && fabs(w->z[b]) <= Z_CLIP * w->n[b] &&
           w->nx[b] >= 0.0 && w->nx[b] <= w->n[b] && w->x2[b] >= 0.0 &&
           w->sd2[b] >= 0.0;
}

/* One window into @p w (validated by the caller's bw_rbuf error and
 * bucket_ok); the previous format (v2) has no values or reference. */
static bool load_window(bw_rbuf_t *r, window_t *w, bool v2)
{
    bool ok = true;

    memset(w, 0, sizeof(*w));
    w->shift = NAN;
    for (int b = 0; b < BUCKETS; b++) {
        w->slot[b] = bw_rbuf_time(r, -1);
        w->n[b] = bw_rbuf_finite(r);
        w->z[b] = bw_rbuf_finite(r);
        if (!v2) {
            w->nx[b] = bw_rbuf_finite(r);
            w->x[b] = bw_rbuf_finite(r);
            w->x2[b] = bw_rbuf_finite(r);
            w->sd2[b] = bw_rbuf_finite(r);
        }
        ok = ok && bucket_ok(w, b);
    }
    if (!v2) {
        w->shift = bw_rbuf_f64(r); /* NAN until a value was seen */
        w->frame = (int)bw_rbuf_u32_in(r, 0, BW_FRAME_EARLY);
        w->r0 = bw_rbuf_finite(r);
        w->r1 = bw_rbuf_finite(r);
        w->r2 = bw_rbuf_finite(r);
        w->rv = bw_rbuf_finite(r);
        w->p0 = bw_rbuf_finite(r);
        w->p1 = bw_rbuf_finite(r);
        w->p_elev = bw_rbuf_finite(r);
        ok = ok && !isinf(w->shift) && w->r0 >= 0.0 && w->r2 >= 0.0 &&
             w->rv >= 0.0 && w->p0 >= 0.0 && w->p1 >= 0.0 && w->p_elev >= 0.0 &&
             w->p_elev <= 1.0;
    }
    return ok;
}

/* One rule's state; before v4 (FU04) no level start: -1. */
static void load_rule(bw_rbuf_t *r, rule_state_t *q, bool has_since)
{
    q->score = bw_rbuf_f64(r);
    q->level = (bw_level_t)bw_rbuf_u32_in(r, 0, BW_LEVEL_CRITICAL);
    q->since = has_since ? bw_rbuf_time(r, -1) : -1;
}

bw_err_t bw_fusion_load(bw_fusion_t *fu, bw_rbuf_t *r)
{
    int rules = fu->nwin / BW_SIGNALS_MAX;
    uint32_t tag = bw_rbuf_u32(r);
    window_t *tmp = NULL;
    rule_state_t *rs = NULL;
    bw_err_t err = BW_ERR_CORRUPT;

    if ((tag != FUSION_STATE_TAG && tag != FUSION_STATE_TAG_V3 &&
         tag != FUSION_STATE_TAG_V2) ||
        bw_rbuf_u32(r) != (uint32_t)fu->nwin) {
        return BW_ERR_CORRUPT;
    }
    /* all or nothing: the state goes live only once all of it is valid */
    tmp = bw_calloc((size_t)fu->nwin, sizeof(window_t));
    rs = bw_calloc((size_t)rules, sizeof(rule_state_t));
    if (tmp == NULL || rs == NULL) {
        err = BW_ERR_NOMEM;
        goto done;
    }
    for (int i = 0; i < fu->nwin; i++) {
        if (!load_window(r, &tmp[i], tag == FUSION_STATE_TAG_V2)) {
            goto done;
        }
    }
    for (int q = 0; q < rules; q++) {
        load_rule(r, &rs[q], tag == FUSION_STATE_TAG);
    }
    if (r->err == BW_OK) {
        memcpy(fu->win, tmp, (size_t)fu->nwin * sizeof(window_t));
        memcpy(fu->rs, rs, (size_t)rules * sizeof(rule_state_t));
        err = BW_OK;
    }
done:
    bw_free(tmp);
    bw_free(rs);
    return err;
}
