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
#define FUSION_STATE_TAG 0x46553032u /* "FU02" */

typedef struct {
    int64_t slot[BUCKETS]; /* bucket index (time / width) held, -1 empty */
    double n[BUCKETS];     /* events */
    double z[BUCKETS];     /* sum of their clipped z */
} window_t;

struct bw_fusion_s {
    const bw_fusion_cfg_t *cfg;
    int nwin;
    window_t *win; /* rule-major: rules * BW_SIGNALS_MAX */
    double *last_score;
    bw_level_t *last_level;
};

const char *bw_level_name(int level)
{
    static const char *const names[] = {"low", "moderate", "high", "critical"};
    return (level >= 0 && level <= 3) ? names[level] : "?";
}

double bw_fusion_lbf(const bw_signal_cfg_t *sig, double n, double zsum)
{
    double m = sig->elevation, v = 0.25 * m * m, up, down, mx;

    if (!(n > 0.0)) {
        return NAN;
    }
    up = -0.5 * log1p(n * v) +
         (zsum + m / v) * (zsum + m / v) / (2.0 * (n + 1.0 / v)) -
         m * m / (2.0 * v);
    down = -0.5 * log1p(n * v) +
           (-zsum + m / v) * (-zsum + m / v) / (2.0 * (n + 1.0 / v)) -
           m * m / (2.0 * v);
    if (sig->direction == BW_DIRECTION_UP) {
        return up;
    }
    if (sig->direction == BW_DIRECTION_DOWN) {
        return down;
    }
    mx = fmax(up, down);
    return mx + log(0.5 * (exp(up - mx) + exp(down - mx)));
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

static int level_of(const bw_fusion_cfg_t *cfg, double p)
{
    if (p >= cfg->band_critical) {
        return BW_LEVEL_CRITICAL;
    }
    if (p >= cfg->band_high) {
        return BW_LEVEL_HIGH;
    }
    return p >= cfg->band_moderate ? BW_LEVEL_MODERATE : BW_LEVEL_LOW;
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
    fu->last_score = bw_calloc((size_t)rules, sizeof(double));
    fu->last_level = bw_calloc((size_t)rules, sizeof(bw_level_t));
    if (fu->win == NULL || fu->last_score == NULL || fu->last_level == NULL) {
        goto fail;
    }
    for (int w = 0; w < fu->nwin; w++) {
        for (int b = 0; b < BUCKETS; b++) {
            fu->win[w].slot[b] = -1;
        }
    }
    for (int r = 0; r < rules; r++) {
        fu->last_score[r] = -1.0;
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
    bw_free(fu->last_score);
    bw_free(fu->last_level);
    bw_free(fu);
}

static int64_t slot_of(const bw_fusion_cfg_t *cfg, int64_t t_ms)
{
    double width = cfg->window_ms / BUCKETS;

    return (int64_t)floor((double)t_ms / width);
}

void bw_fusion_observe(bw_fusion_t *fu, int rule, int sig, int64_t t_ms,
                       double z)
{
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
        w->slot[b] = slot;
        w->n[b] = w->z[b] = 0.0;
    }
    w->n[b] += 1.0;
    w->z[b] += fmin(fmax(z, -Z_CLIP), Z_CLIP);
}

/* The window's log Bayes factor of elevation, NAN without events. */
static double window_lbf(const window_t *w, const bw_signal_cfg_t *sig,
                         int64_t now_slot)
{
    double n = 0.0, z = 0.0;

    for (int b = 0; b < BUCKETS; b++) {
        if (w->slot[b] > now_slot - BUCKETS && w->slot[b] <= now_slot) {
            n += w->n[b];
            z += w->z[b];
        }
    }
    return bw_fusion_lbf(sig, n, z);
}

bool bw_fusion_eval(bw_fusion_t *fu, int rule, int64_t t_ms, bw_threat_t *out)
{
    const bw_rule_cfg_t *r = &fu->cfg->rules[rule];
    double lbf[BW_SIGNALS_MAX];
    int64_t now = slot_of(fu->cfg, t_ms);
    bool emit;

    for (int s = 0; s < r->n_signals; s++) {
        lbf[s] = window_lbf(&fu->win[rule * BW_SIGNALS_MAX + s], &r->signals[s],
                            now);
    }
    bw_fusion_combine(fu->cfg, r, lbf, out);
    emit = fu->last_score[rule] < 0.0 || out->level != fu->last_level[rule] ||
           fabs(out->score - fu->last_score[rule]) >= fu->cfg->emit_delta;
    if (emit) {
        fu->last_score[rule] = out->score;
        fu->last_level[rule] = out->level;
    }
    return emit;
}

bw_err_t bw_fusion_save(const bw_fusion_t *fu, bw_wbuf_t *w)
{
    int rules = fu->nwin / BW_SIGNALS_MAX;

    bw_wbuf_u32(w, FUSION_STATE_TAG);
    bw_wbuf_u32(w, (uint32_t)fu->nwin);
    for (int i = 0; i < fu->nwin; i++) {
        for (int b = 0; b < BUCKETS; b++) {
            bw_wbuf_i64(w, fu->win[i].slot[b]);
            bw_wbuf_f64(w, fu->win[i].n[b]);
            bw_wbuf_f64(w, fu->win[i].z[b]);
        }
    }
    for (int r = 0; r < rules; r++) {
        bw_wbuf_f64(w, fu->last_score[r]);
        bw_wbuf_u32(w, (uint32_t)fu->last_level[r]);
    }
    return w->err;
}

bw_err_t bw_fusion_load(bw_fusion_t *fu, bw_rbuf_t *r)
{
    int rules = fu->nwin / BW_SIGNALS_MAX;

    if (bw_rbuf_u32(r) != FUSION_STATE_TAG ||
        bw_rbuf_u32(r) != (uint32_t)fu->nwin) {
        return BW_ERR_CORRUPT;
    }
    for (int i = 0; i < fu->nwin; i++) {
        for (int b = 0; b < BUCKETS; b++) {
            fu->win[i].slot[b] = bw_rbuf_time(r, -1);
            fu->win[i].n[b] = bw_rbuf_finite(r);
            fu->win[i].z[b] = bw_rbuf_finite(r);
            if (fu->win[i].n[b] < 0.0 ||
                fabs(fu->win[i].z[b]) > Z_CLIP * fu->win[i].n[b]) {
                r->err = BW_ERR_CORRUPT;
            }
        }
    }
    for (int q = 0; q < rules; q++) {
        fu->last_score[q] = bw_rbuf_f64(r);
        fu->last_level[q] = (bw_level_t)bw_rbuf_u32_in(r, 0, BW_LEVEL_CRITICAL);
    }
    return r->err != BW_OK ? BW_ERR_CORRUPT : BW_OK;
}
