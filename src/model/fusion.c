/*
 * Bayesian threat fusion of weak anomaly signals.
 *
 * Each signal s of a rule reports an anomaly posterior p_s (the maximum over
 * the sliding window). p_s is soft evidence about the binary event A_s
 * "signal anomalous in the window": its likelihood ratio for A_s is
 *   lambda_s = [p_s / (1 - p_s)] / [b_s / (1 - b_s)]
 * with b_s the detector's prior anomaly rate (Pearl's virtual evidence,
 * Probabilistic Reasoning in Intelligent Systems, 1988, sec. 2.2.2).
 * With detection rate d_s = P(A_s | T) and false-alarm rate f_s =
 * P(A_s | not T), the evidence's likelihood ratio for the threat T is
 *   LR_s = (d_s lambda_s + 1 - d_s) / (f_s lambda_s + 1 - f_s),
 * which is 1 when p_s = b_s (no information), tends to d_s / f_s as
 * p_s -> 1 and to (1 - d_s) / (1 - f_s) as p_s -> 0.
 *
 * Naive Bayes would add all log LR_s; correlated signals double-count. The
 * discount ranks the contributions by |log LR| and weights the k-th by
 * (1 - rho)^(k-1): rho = 0 is naive Bayes, rho = 1 keeps only the strongest
 * signal. The posterior is logistic(logit(prior) + sum of weighted log LR).
 *
 * The window keeps, per signal, the maximum p in each of BUCKETS time
 * buckets of window/BUCKETS; O(1) memory and time per event, the window edge
 * resolved to one bucket.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bayeswatch/model.h"

#define BUCKETS 16
#define FUSION_STATE_TAG 0x46553031u /* "FU01" */

typedef struct {
    int64_t slot[BUCKETS]; /* bucket index (time / width) held, -1 empty */
    double pmax[BUCKETS];
} window_t;

struct bw_fusion_s {
    const bw_fusion_cfg_t *cfg;
    int nwin;
    window_t *win; /* rule-major: rules * BW_SIGNALS_MAX */
    double *last_score;
    int *last_level;
};

const char *bw_level_name(int level)
{
    static const char *const names[] = {"low", "moderate", "high", "critical"};
    return (level >= 0 && level <= 3) ? names[level] : "?";
}

static double signal_llr(const bw_signal_cfg_t *s, double p)
{
    double b = s->base_rate, lam;

    p = fmin(fmax(p, 1e-12), 1.0 - 1e-12);
    lam = (p / (1.0 - p)) / (b / (1.0 - b));
    return log((s->detection * lam + 1.0 - s->detection) /
               (s->false_alarm * lam + 1.0 - s->false_alarm));
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
                       const double *p, bw_threat_t *out)
{
    double total = 0.0, weight = 1.0, logit;
    int n = 0;

    memset(out, 0, sizeof(*out));
    for (int s = 0; s < rule->n_signals; s++) {
        if (isnan(p[s])) {
            continue;
        }
        out->contrib[n].signal = s;
        out->contrib[n].p = p[s];
        out->contrib[n++].llr = signal_llr(&rule->signals[s], p[s]);
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
    fu->last_level = bw_calloc((size_t)rules, sizeof(int));
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
                       double p)
{
    window_t *w;
    int64_t slot = slot_of(fu->cfg, t_ms);
    int b = (int)(((slot % BUCKETS) + BUCKETS) % BUCKETS);

    if (rule < 0 || rule >= fu->cfg->n_rules || sig < 0 ||
        sig >= BW_SIGNALS_MAX || !isfinite(p)) {
        return;
    }
    w = &fu->win[rule * BW_SIGNALS_MAX + sig];
    if (w->slot[b] != slot) {
        if (w->slot[b] > slot) {
            return; /* older than the window: no evidence left to update */
        }
        w->slot[b] = slot;
        w->pmax[b] = p;
    } else if (p > w->pmax[b]) {
        w->pmax[b] = p;
    }
}

static double window_max(const window_t *w, int64_t now_slot)
{
    double m = NAN;

    for (int b = 0; b < BUCKETS; b++) {
        if (w->slot[b] > now_slot - BUCKETS && w->slot[b] <= now_slot &&
            (isnan(m) || w->pmax[b] > m)) {
            m = w->pmax[b];
        }
    }
    return m;
}

bool bw_fusion_eval(bw_fusion_t *fu, int rule, int64_t t_ms, bw_threat_t *out)
{
    const bw_rule_cfg_t *r = &fu->cfg->rules[rule];
    double p[BW_SIGNALS_MAX];
    int64_t now = slot_of(fu->cfg, t_ms);
    bool emit;

    for (int s = 0; s < r->n_signals; s++) {
        p[s] = window_max(&fu->win[rule * BW_SIGNALS_MAX + s], now);
    }
    bw_fusion_combine(fu->cfg, r, p, out);
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
            bw_wbuf_f64(w, fu->win[i].pmax[b]);
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
            fu->win[i].slot[b] = bw_rbuf_i64(r);
            fu->win[i].pmax[b] = bw_rbuf_f64(r);
        }
    }
    for (int q = 0; q < rules; q++) {
        fu->last_score[q] = bw_rbuf_f64(r);
        fu->last_level[q] = (int)bw_rbuf_u32_in(r, 0, BW_LEVEL_CRITICAL);
    }
    return r->err != BW_OK ? BW_ERR_CORRUPT : BW_OK;
}
