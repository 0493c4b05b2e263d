/*
 * Seasonal profile by phase bins, estimated outside the particle filter and
 * subtracted from each value before filtering (a classical decomposition
 * step, cf. Cleveland et al. 1990 STL, kept causal and O(1) per event).
 *
 *  - Baseline: the mean of the most recent de-seasonalised value of every
 *    bin, i.e. a moving average over one period, which removes the seasonal
 *    pattern itself (the textbook centred-moving-average idea). Bins learn
 *    deviations from it only once it spans a whole period (during the
 *    first it is the mean of the part of the period seen so far, and the
 *    first bins would learn ~0 instead of their deviation); at that moment
 *    each bin starts from its value in that period against the period's
 *    mean (the classical first-cycle estimate).
 *  - Each bin keeps an exponentially forgotten mean of value - baseline; the
 *    forgetting half-life is configured in periods.
 *  - The applied profile is each bin's mean minus the profile's mean,
 *    shrunk by its own empirical-Bayes factor tau^2 / (tau^2 + se_b^2)
 *    (normal-normal model for the bin effects; Efron & Morris 1973):
 *    tau^2 is the spread of the bin means less their average noise, se_b^2
 *    the squared standard error of bin b's mean. A series without
 *    seasonality gets a profile of ~0 rather than a profile of noise, and
 *    so does a single bin whose values disagree from day to day (a job
 *    that runs on some days only): one burst no longer prints a daily
 *    expectation of the burst into the profile.
 *  - se_b^2 is the bin's variance over its effective count of visits. A
 *    visit is the consecutive events of one bin in one period (one event
 *    for 5-minute data and 288 bins, five for 1-minute data, twelve for a
 *    weekly profile's hourly bins on 5-minute data), and its mean is one
 *    observation: the events of a visit are not independent evidence (a
 *    series that wanders for hours without any weekly pattern gave each
 *    hourly bin a dozen "independent" values a week, so its weekly
 *    profile of wander was not shrunk). The variance is the squared
 *    deviations of a visit's mean from the bin's mean before it, from the
 *    second visit on (a first visit has no mean to deviate from), moderated
 *    toward the pooled variance with the weight of MODERATION visits (a
 *    moderated variance, Smyth 2004): two visits say little. With one event
 *    per visit this is the per-event estimate. In the pooled variance a
 *    deviation counts at most 10 pooled sds once it has a value (a
 *    winsorised variance, cf. Huber 1981: bounded influence), so one
 *    value far off, such as a spike in the first period, cannot stop
 *    every bin's profile for days.
 *  - A bin whose first-period values were read as abnormal (their
 *    P(normal) sums under 1/2) is unconfirmed: its share of the baseline
 *    is the other bins' mean, and its first value read as more likely
 *    normal than not replaces its estimate instead of averaging with it
 *    (a first day's backup job or spike would otherwise be half the bin's
 *    estimate for days). Until then it keeps the first period's
 *    deviation: a pattern the first day showed as abnormal (a daily job
 *    or shift) is still predicted, but it is left out of the profile's
 *    centring and spread (the mean and spread of the bin means that centre
 *    and shrink every bin): a first day's spike of 900 noise sds had moved
 *    every bin's deviation by 3 noise sds until its bin was replaced, and
 *    the replacement then read as a step of as much. Once the profile
 *    applies, a value read as abnormal against an unconfirmed bin's
 *    prediction (P(normal) < 1/2) rejects it: the estimate rested on one
 *    period's abnormal values and has now failed its first check, so the
 *    bin takes its neighbours' deviation (interpolated between the nearest
 *    confirmed bins either side, with the weight of one visit) and learns
 *    on from there (bw__season_judged). Without that a bin no normal value
 *    confirmed before the profile applied (a gap at that phase on the
 *    second day, or min_cycles 1) predicted the first day's spike every day
 *    after, and each value there read as abnormal and taught it nothing.
 *    The first check is made before the value is scored when the value
 *    decides it (bw__season_precheck): nearer the neighbours' prediction
 *    than the kept one, the bin is rejected first and the value scored
 *    against the neighbours, so a normal value is not itself read as a
 *    dip of the kept spike's size (a false alert, and the filter's noise
 *    widened by it). O(bins) per check, at the bin's first check only.
 *  - The running sums (centring, spread, weights) are recomputed from the
 *    bins once a period (at the first event of each period counted from
 *    the first value, bw__season_tick), so rounding cannot accumulate
 *    over months of updates with values of very different sizes.
 * Memory 4 doubles and a float per bin; O(1) time per event, O(bins) once
 * a period and at a bin's rejection.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "season.h"
#include "bayeswatch/mem.h"
#include "bayeswatch/model.h"

#define MODERATION 2.0 /* visits of the pooled variance in a bin's */
#define UNCONFIRMED -1.0f /* var[b] of a bin founded by abnormal values */
#define WINSOR 100.0 /* a visit's deviation counts at most 10 pooled sds */

/* Bin b's part in the profile's centring and spread (mean_sum, mean_sq):
 * its mean, or none while it is unconfirmed (header comment; the
 * denominators leave it out too, centred_bins). */
static double counted(const bw_season_t *s, int b)
{
    return s->var[b] == UNCONFIRMED ? 0.0 : s->mean[b];
}

/* Bin b's part changed from @p before to its current value. */
static void recount(bw_season_t *s, int b, double before)
{
    double now = counted(s, b);

    s->mean_sum += now - before;
    s->mean_sq += now * now - before * before;
}

/* The bins the centring and spread average over: the seen ones less the
 * unconfirmed (1 if every seen bin is unconfirmed: the sums are then 0). */
static int centred_bins(const bw_season_t *s)
{
    int n = s->seen - s->unconf;

    return n > 0 ? n : 1;
}

/* The running sums from the bins themselves (header comment). The weights'
 * sums only once the first period is estimated: until then wt_sum is 0 by
 * definition (the first period's marker) and nvis holds P(normal) sums.
 * A disabled profile has no bins. */
void bw__season_resum(bw_season_t *s)
{
    double ls = 0.0, ms = 0.0, mq = 0.0, ws = 0.0, ns = 0.0;

    if (!s->cfg->enabled) {
        return;
    }
    s->unconf = 0;
    for (int b = 0; b < s->cfg->bins; b++) {
        double c = counted(s, b);
        s->unconf += s->var[b] == UNCONFIRMED;
        if (!isnan(s->last[b])) {
            ls += s->last[b];
        }
        ms += c;
        mq += c * c;
        ws += s->wt[b];
        ns += s->nvis[b];
    }
    s->last_sum = ls;
    s->mean_sum = ms;
    s->mean_sq = mq;
    if (s->wt_sum > 0.0 && ws > 0.0) {
        s->wt_sum = ws;
        s->nvis_sum = ns;
    }
}

int bw__season_init(bw_season_t *s, const bw_season_cfg_t *cfg,
                    int64_t period_ms)
{
    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    s->period_ms = period_ms;
    s->alpha = 1.0 - exp2(-1.0 / cfg->half_life);
    if (!cfg->enabled) {
        return 0;
    }
    s->mean = bw_calloc(4 * (size_t)cfg->bins, sizeof(double));
    if (s->mean == NULL) {
        return -1;
    }
    s->wt = s->mean + cfg->bins;
    s->last = s->wt + cfg->bins;
    s->nvis = s->last + cfg->bins;
    s->var = bw_calloc((size_t)cfg->bins, sizeof(float));
    if (s->var == NULL) {
        bw__season_free(s);
        return -1;
    }
    s->visit.bin = -1;
    for (int b = 0; b < cfg->bins; b++) {
        s->last[b] = NAN; /* never seen */
    }
    s->t0 = INT64_MIN;
    return 0;
}

void bw__season_free(bw_season_t *s)
{
    bw_free(s->mean);
    bw_free(s->var);
    s->mean = s->wt = s->last = s->nvis = NULL;
    s->var = NULL;
}

size_t bw__season_memory(const bw_season_t *s)
{
    return s->cfg->enabled
               ? (size_t)s->cfg->bins * (4 * sizeof(double) + sizeof(float))
               : 0;
}

static int bin_of(const bw_season_t *s, int64_t t_ms)
{
    return bw__phase_bin(t_ms, s->period_ms, s->cfg->bins);
}

/* Events per visit of a bin at this sampling interval (at least 1). */
static double per_visit(const bw_season_t *s, double interval_ms)
{
    double v = (double)s->period_ms / (interval_ms * s->cfg->bins);

    return v > 1.0 ? v : 1.0;
}

/* Bin b's empirical-Bayes shrinkage factor (header comment). */
static double shrink(const bw_season_t *s, int b)
{
    double mbar = s->mean_sum / centred_bins(s);
    double var = s->mean_sq / centred_bins(s) - mbar * mbar;
    double wbar = s->nvis_sum / s->seen, w = s->nvis[b];
    double tau2 = var - s->within / (wbar > 1.0 ? wbar : 1.0);
    double vb = (w * fmax(s->var[b], 0.0) + MODERATION * s->within) /
                (w + MODERATION);
    double se2 = vb / (w > 1.0 ? w : 1.0);

    if (!(tau2 > 0.0)) {
        return 0.0;
    }
    return tau2 / (tau2 + se2);
}

int bw__season_active(const bw_season_t *s, int64_t age_ms)
{
    return s->cfg->enabled && s->seen >= 2 && s->wt_sum > 0.0 &&
           age_ms >= (int64_t)s->cfg->min_cycles * s->period_ms;
}

double bw__season_value(const bw_season_t *s, int64_t t_ms, int64_t age_ms)
{
    int b;

    if (!bw__season_active(s, age_ms)) {
        return 0.0;
    }
    b = bin_of(s, t_ms);
    if (s->wt[b] <= 0.0) {
        return 0.0;
    }
    return shrink(s, b) * (s->mean[b] - s->mean_sum / centred_bins(s));
}

/* The bin's shrunk deviation (as bw__season_value) from its mean as it
 * stood when the visit in progress began: the visit's own values are what
 * the estimate is about to be judged on, so they must not be in it (a
 * profile read while it learns from the values it predicts passes any
 * test of its predictions). A bin the first period did not see (a gap)
 * has no estimate of its own, and its neighbours' would be another phase's
 * or would have learnt today's values (an attack there would move them):
 * INFINITY says so, apart from NAN (no profile at all). Left in: the centring
 * (mean_sum) has the visit's share, 1/seen of it; and where a bin holds
 * under 1.5 events per period its visits close at once (learn_bin), so a second
 * event in one bin and period reads a mean that has learnt the first. */
double bw__season_early(const bw_season_t *s, int64_t t_ms)
{
    double m;
    int b;

    if (!s->cfg->enabled || s->seen < 2 || !(s->wt_sum > 0.0)) {
        return NAN;
    }
    b = bin_of(s, t_ms);
    if (s->visit.bin == b) {
        m = s->visit.old; /* NAN: the bin had no estimate at the visit */
    } else {
        m = s->wt[b] > 0.0 ? s->mean[b] : NAN;
    }
    if (isnan(m)) {
        return INFINITY; /* a bin the first period missed */
    }
    return shrink(s, b) * (m - s->mean_sum / centred_bins(s));
}

/* Whether the first period saw bin b as normal: its values' P(normal)
 * sum to 1/2 or more (kept in nvis until the period ends), or their gains
 * do (wt: P(normal) over the local noise factor, which also counts values
 * given late, bw__season_learn_late, and is all a state saved in its
 * first period by a build before PF12 kept). */
static bool first_normal(const bw_season_t *s, int b)
{
    return s->nvis[b] >= 0.5 || s->wt[b] >= 0.5;
}

/* The mean latest value of the bins the first period saw as normal (all
 * seen bins if it saw none so): the first period's baseline. */
static double first_base(const bw_season_t *s)
{
    double sum = 0.0;
    int n = 0;

    for (int b = 0; b < s->cfg->bins; b++) {
        if (!isnan(s->last[b]) && first_normal(s, b)) {
            sum += s->last[b];
            n++;
        }
    }
    return n > 0 ? sum / n : s->last_sum / s->seen;
}

/* The first whole period seen: every bin's first deviation is its mean
 * value against the mean of the whole period (the classical first-cycle
 * estimate), with the weight of one visit. A bin seen only as abnormal
 * values (first_normal) is unconfirmed (confirm) and keeps its
 * deviation, but its latest value, the baseline's part, is the others'
 * mean: a spike of 900 noise sds, its bin's only value, had moved the
 * baseline by 3 noise sds until the bin was next seen, then every
 * deviation by as much. */
static void first_period(bw_season_t *s)
{
    double base = first_base(s);

    s->nvis_sum = 0.0;
    s->visit.bin = -1;
    for (int b = 0; b < s->cfg->bins; b++) {
        if (isnan(s->last[b])) {
            continue;
        }
        s->mean[b] = s->last[b] - base;
        s->var[b] = 0.0f;
        if (!first_normal(s, b)) {
            s->var[b] = UNCONFIRMED;
            s->unconf++;
            s->last_sum += base - s->last[b];
            s->last[b] = base;
        }
        s->wt[b] = s->nvis[b] = 1.0;
        s->wt_sum += 1.0;
        s->nvis_sum += 1.0;
        recount(s, b, 0.0);
    }
}

/* A bin's latest value, the whole-period baseline's part, learning with
 * the value's weight as the bin's mean does: an anomaly or an abnormal
 * episode moves neither (else a held-out incident would still bias every
 * deviation of the next period through the baseline). Until the first
 * period is complete (no profile yet, wt_sum 0) it is the weighted mean of
 * the bin's values so far, wt[b] summing their weights: with several
 * events per bin the first-period estimate is their mean, not one value's
 * noise. */
static void last_update(bw_season_t *s, int b, double y, double gain)
{
    double old = s->last[b], g = gain < 1.0 ? gain : 1.0;

    if (s->wt_sum == 0.0) {
        s->wt[b] += g;
        s->last[b] += s->wt[b] > 0.0 ? g * (y - old) / s->wt[b] : 0.0;
    } else {
        s->last[b] += g * (y - old);
    }
    s->last_sum += s->last[b] - old;
}

/* The end of visit v of @p per events: the bin's count of visits learns
 * its weight (the events' gains in visits, forgotten over half_life
 * periods), and the bin's and the pooled variances learn its mean's
 * deviation from the bin's mean before it. */
static void visit_close(bw_season_t *s, bw__visit_t *v, double per)
{
    double gv, g, d, d2, beta;
    int b = v->bin;

    if (b < 0) {
        return;
    }
    v->bin = -1;
    gv = v->w / per;
    s->nvis_sum -= s->nvis[b];
    s->nvis[b] = s->nvis[b] * (1.0 - s->alpha) + gv;
    s->nvis_sum += s->nvis[b];
    if (isnan(v->old) || !(gv > 0.0) || !(s->nvis[b] > 0.0) ||
        s->var[b] == UNCONFIRMED) {
        return; /* no earlier estimate of this bin to deviate from */
    }
    g = gv / s->nvis[b];
    d = v->mean - v->old;
    /* in double, stored clamped: d^2 above FLT_MAX (|d| > 1.8e19, within
     * the models' range) made the float inf, then inf - inf NaN */
    s->var[b] = (float)fmin(s->var[b] + g * (d * d - s->var[b]), FLT_MAX);
    s->updates += gv;
    beta = 1.0 / fmin(fmax(s->updates, 1.0), s->cfg->bins * s->cfg->half_life);
    d2 = s->within > 0.0 ? fmin(d * d, WINSOR * s->within) : d * d;
    s->within += fmin(gv * beta, 1.0) * (d2 - s->within);
}

/* An unconfirmed bin's first value more likely normal than not
 * (P(normal) >= 1/2) replaces its first-period estimate, made of values
 * read as abnormal (first_period), instead of averaging with it, and starts
 * its count of visits (weight and visits stay equal where each visit is
 * one event, as a profile saved before PF09 assumes). The visit's
 * deviation from that estimate still counts in the bin's variance (the
 * bin stays shrunk while its values disagree from day to day) and,
 * winsorised, in the pooled one (visit_close). */
static void confirm(bw_season_t *s, int b)
{
    s->wt_sum -= s->wt[b];
    s->nvis_sum -= s->nvis[b];
    s->wt[b] = s->nvis[b] = 0.0;
    s->var[b] = 0.0f;
    s->unconf--;
}

/* The bin's mean learns the deviation r with weight gain (exponentially
 * forgotten over half_life periods' events) and visit v accumulates it.
 * A visit ends when an event of another bin comes, or at once where a bin
 * holds one event per period (under 1.5 at this interval): a visit is
 * never split by an interval estimate that is off, and with one event per
 * visit the estimate is exactly the per-event one. */
static void learn_bin(bw_season_t *s, bw__visit_t *v, int b, double r,
                      double gain, double normal, double interval_ms)
{
    double per = per_visit(s, interval_ms), alpha, old, g;
    double before = counted(s, b);

    if (v->bin != b) {
        visit_close(s, v, per);
        v->bin = b;
        v->mean = v->w = 0.0;
        v->old = s->wt[b] > 0.0 ? s->mean[b] : NAN;
    }
    if (s->var[b] == UNCONFIRMED && gain > 0.0 && normal >= 0.5) {
        confirm(s, b);
    }
    v->w += gain;
    if (v->w > 0.0) { /* a running mean: exactly r for one event */
        v->mean += gain / v->w * (r - v->mean);
    }
    alpha = 1.0 - exp2(-1.0 / (s->cfg->half_life * per));
    old = s->mean[b];
    s->wt_sum -= s->wt[b];
    s->wt[b] = s->wt[b] * (1.0 - alpha) + gain;
    s->wt_sum += s->wt[b];
    g = s->wt[b] > 0.0 ? gain / s->wt[b] : 0.0;
    s->mean[b] = old + g * (r - old);
    recount(s, b, before);
    if (per < 1.5) {
        visit_close(s, v, per);
    }
}

void bw__season_update(bw_season_t *s, int64_t t_ms, double y, double gain,
                       double gain_last, double normal, double interval_ms)
{
    double base, r;
    int b;

    if (!s->cfg->enabled) {
        return;
    }
    b = bin_of(s, t_ms);
    if (isnan(s->last[b])) {
        /* a bin first seen after the first period starts at the baseline
         * and learns its value as any bin does (by gain_last): an anomaly
         * moves it no more than it moves a bin seen before */
        double start = s->wt_sum > 0.0 && s->seen > 0
                           ? s->last_sum / s->seen
                           : y;
        s->seen++;
        s->last[b] = start;
        s->last_sum += start;
    }
    base = s->last_sum / s->seen;
    last_update(s, b, y, gain_last);
    if (s->wt_sum == 0.0) { /* as last[b]: until first_period, no visits */
        s->nvis[b] += fmin(fmax(normal, 0.0), 1.0); /* but P(normal) */
    }
    r = y - base;
    if (s->t0 == INT64_MIN) {
        s->t0 = t_ms;
    }
    if (t_ms - s->t0 < s->period_ms) {
        return; /* the baseline spans part of a period: no deviations yet */
    }
    if (s->wt_sum == 0.0) {
        first_period(s);
        base = s->last_sum / s->seen;
        r = y - base;
    }
    learn_bin(s, &s->visit, b, r, gain, normal, interval_ms);
}

void bw__season_tick(bw_season_t *s, int64_t t_prev, int64_t t_ms)
{
    if (!s->cfg->enabled || s->t0 == INT64_MIN || t_prev < s->t0 ||
        t_ms <= t_prev) {
        return;
    }
    if ((t_ms - s->t0) / s->period_ms != (t_prev - s->t0) / s->period_ms) {
        bw__season_resum(s);
    }
}

/* Bin b's neighbours' deviation: interpolated between the nearest bins
 * either side (around the period) that hold a confirmed estimate, by
 * their distance; the profile's mean (no deviation) if there is none. */
static double neighbours(const bw_season_t *s, int b)
{
    const int n = s->cfg->bins;
    int lo = 0, hi = 0;

    for (int k = 1; k < n && (lo == 0 || hi == 0); k++) {
        int l = ((b - k) % n + n) % n, h = (b + k) % n;
        if (lo == 0 && s->wt[l] > 0.0 && s->var[l] != UNCONFIRMED) {
            lo = k;
        }
        if (hi == 0 && s->wt[h] > 0.0 && s->var[h] != UNCONFIRMED) {
            hi = k;
        }
    }
    if (lo == 0) {
        return s->mean_sum / centred_bins(s);
    }
    return (hi * s->mean[((b - lo) % n + n) % n] + lo * s->mean[(b + hi) % n]) /
           (lo + hi);
}

/* Writes the profile's scalars and bin b's mean, wt, nvis and var only:
 * bw__season_precheck's undo restores exactly those. */
void bw__season_judged(bw_season_t *s, int64_t t_ms, double normal)
{
    int b;

    if (!s->cfg->enabled || !(s->wt_sum > 0.0) || !(normal < 0.5)) {
        return;
    }
    b = bin_of(s, t_ms);
    if (s->var[b] != UNCONFIRMED) {
        return;
    }
    s->mean[b] = neighbours(s, b);
    s->var[b] = 0.0f;
    s->unconf--;
    recount(s, b, 0.0);
    s->wt_sum += 1.0 - s->wt[b];
    s->nvis_sum += 1.0 - s->nvis[b];
    s->wt[b] = s->nvis[b] = 1.0;
    if (s->visit.bin == b) { /* the visit deviates from the new estimate */
        s->visit.old = s->mean[b];
    }
}

/* A tentative rejection's undo: the profile's scalars (a struct copy) and
 * the per-bin values of the bin judged, everything bw__season_judged can
 * write. */
typedef struct {
    bw_season_t s;
    double mean, wt, nvis;
    float var;
} judged_undo_t;

static void judged_keep(const bw_season_t *s, int b, judged_undo_t *u)
{
    u->s = *s;
    u->mean = s->mean[b];
    u->wt = s->wt[b];
    u->nvis = s->nvis[b];
    u->var = s->var[b];
}

static void judged_undo(bw_season_t *s, int b, const judged_undo_t *u)
{
    *s = u->s; /* the arrays are the same pointers */
    s->mean[b] = u->mean;
    s->wt[b] = u->wt;
    s->nvis[b] = u->nvis;
    s->var[b] = u->var;
}

void bw__season_precheck(bw_season_t *s, int64_t t_ms, int64_t age_ms,
                         double resid)
{
    double keep, alt;
    judged_undo_t u;
    int b;

    if (!bw__season_active(s, age_ms)) {
        return;
    }
    b = bin_of(s, t_ms);
    if (s->var[b] != UNCONFIRMED) {
        return;
    }
    keep = bw__season_value(s, t_ms, age_ms);
    judged_keep(s, b, &u);
    bw__season_judged(s, t_ms, 0.0);
    alt = bw__season_value(s, t_ms, age_ms);
    if (!(fabs(resid - alt) < fabs(resid - keep))) {
        judged_undo(s, b, &u);
    }
}

void bw__season_learn_late(bw_season_t *s, bw__visit_t *v, int64_t t_ms,
                           double y, double gain, double interval_ms)
{
    int b;

    if (!s->cfg->enabled || s->seen == 0) {
        return;
    }
    b = bin_of(s, t_ms);
    if (isnan(s->last[b])) {
        return;
    }
    last_update(s, b, y, gain);
    if (s->wt_sum == 0.0) {
        return; /* the first period: its estimate is the bins' means */
    }
    learn_bin(s, v, b, y - s->last_sum / s->seen, gain, 1.0, interval_ms);
}

void bw__season_late_done(bw_season_t *s, bw__visit_t *v, double interval_ms)
{
    if (s->cfg->enabled) {
        visit_close(s, v, per_visit(s, interval_ms));
    }
}

void bw__season_catch_up(bw_season_t *s, int64_t t_ms, double y)
{
    int b;

    if (!s->cfg->enabled || s->seen == 0) {
        return;
    }
    b = bin_of(s, t_ms);
    if (!isnan(s->last[b])) {
        last_update(s, b, y, 1.0);
    }
}

/* The baseline (the mean of the bins' latest values) moves with a level
 * the filter adopted; the bins' shape stays (why: pf.c, shift_learning). */
void bw__season_shift_level(bw_season_t *s, double delta)
{
    if (!s->cfg->enabled || s->seen == 0 || !isfinite(delta)) {
        return;
    }
    for (int b = 0; b < s->cfg->bins; b++) {
        if (!isnan(s->last[b])) {
            s->last[b] += delta;
            s->last_sum += delta;
        }
    }
}

void bw__season_recentre(bw_season_t *s)
{
    if (!s->cfg->enabled) {
        return;
    }
    for (int b = 0; b < s->cfg->bins; b++) {
        if (s->var[b] == UNCONFIRMED) {
            bw__season_resum(s);
            return;
        }
    }
}

void bw__season_save(const bw_season_t *s, bw_wbuf_t *w)
{
    if (!s->cfg->enabled) {
        return;
    }
    bw_wbuf_f64s(w, s->mean, 3 * (size_t)s->cfg->bins);
    bw_wbuf_f64(w, s->last_sum);
    bw_wbuf_f64(w, s->mean_sum);
    bw_wbuf_f64(w, s->mean_sq);
    bw_wbuf_f64(w, s->wt_sum);
    bw_wbuf_f64(w, s->within);
    bw_wbuf_f64(w, s->updates);
    bw_wbuf_u32(w, (uint32_t)s->seen);
    bw_wbuf_i64(w, s->t0);
    bw_wbuf_f32s(w, s->var, (size_t)s->cfg->bins);
    bw_wbuf_f64s(w, s->nvis, (size_t)s->cfg->bins);
    bw_wbuf_f64(w, s->nvis_sum);
    bw_wbuf_u32(w, (uint32_t)(s->visit.bin + 1));
    bw_wbuf_f64(w, s->visit.mean);
    bw_wbuf_f64(w, s->visit.w);
    bw_wbuf_f64(w, s->visit.old);
}

/* A profile's values as a live one keeps them: deviations of values
 * within BW_MODEL_MAX_ABS from a baseline within it, moved by adoptions
 * of changes within it (a loaded 1e300 gave the filter -1e300 values and
 * a memory of -inf that its next record could not hold). */
#define LOAD_LIM (4.0 * BW_MODEL_MAX_ABS)

void bw__season_load(bw_season_t *s, bw_rbuf_t *r, int visits)
{
    int seen = 0;

    if (!s->cfg->enabled) {
        return;
    }
    bw_rbuf_f64s(r, s->mean, 3 * (size_t)s->cfg->bins);
    s->last_sum = bw_rbuf_finite(r);
    s->mean_sum = bw_rbuf_finite(r);
    s->mean_sq = bw_rbuf_finite(r);
    s->wt_sum = bw_rbuf_finite(r);
    s->within = bw_rbuf_finite(r);
    s->updates = bw_rbuf_finite(r);
    s->seen = (int)bw_rbuf_u32_in(r, 0, (uint32_t)s->cfg->bins);
    s->t0 = bw_rbuf_time(r, INT64_MIN);
    bw_rbuf_f32s(r, s->var, (size_t)s->cfg->bins);
    if (visits) {
        bw_rbuf_f64s(r, s->nvis, (size_t)s->cfg->bins);
        s->nvis_sum = bw_rbuf_finite(r);
        s->visit.bin = (int)bw_rbuf_u32_in(r, 0, (uint32_t)s->cfg->bins) - 1;
        s->visit.mean = bw_rbuf_finite(r);
        s->visit.w = bw_rbuf_finite(r);
        s->visit.old = bw_rbuf_f64(r);
    } else { /* before PF09 every event counted as a visit */
        for (int b = 0; b < s->cfg->bins; b++) {
            s->nvis[b] = s->wt[b];
        }
        s->nvis_sum = s->wt_sum;
        s->visit.bin = -1;
    }
    for (int b = 0; b < s->cfg->bins; b++) {
        /* a NaN mean (or an infinite last value) would make every value
         * of the profile NaN, and the filter's input with it */
        seen += !isnan(s->last[b]);
        if (!((s->var[b] >= 0.0f ||
               (s->var[b] == UNCONFIRMED && !isnan(s->last[b]))) &&
              isfinite(s->var[b]) && s->nvis[b] >= 0.0 &&
              isfinite(s->nvis[b]) && fabs(s->mean[b]) <= LOAD_LIM &&
              s->wt[b] >= 0.0 && isfinite(s->wt[b]) &&
              !(fabs(s->last[b]) > LOAD_LIM))) { /* NaN: not seen */
            r->err = BW_ERR_CORRUPT;
        }
    }
    if (!(fabs(s->last_sum) <= s->cfg->bins * LOAD_LIM &&
          fabs(s->mean_sum) <= s->cfg->bins * LOAD_LIM &&
          s->mean_sq <= s->cfg->bins * LOAD_LIM * LOAD_LIM &&
          fabs(s->visit.mean) <= LOAD_LIM)) {
        /* the models' range, as the memory's (mean_sq's rounding may
         * leave it a few ulp below 0: not checked there) */
        r->err = BW_ERR_CORRUPT;
    }
    s->unconf = 0;
    for (int b = 0; b < s->cfg->bins; b++) {
        s->unconf += s->var[b] == UNCONFIRMED;
    }
    if (seen != s->seen) { /* the bins with a last value */
        r->err = BW_ERR_CORRUPT;
    }
    if (isinf(s->visit.old) || !(s->visit.w >= 0.0) || !(s->nvis_sum >= 0.0) ||
        !(s->within >= 0.0) || !(s->updates >= 0.0)) {
        /* (a negative within made the shrinkage divide by 0 or exceed 1) */
        r->err = BW_ERR_CORRUPT;
    }
}
