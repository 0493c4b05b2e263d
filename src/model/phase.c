/*
 * Recurring spikes by time of day: a nightly job's burst is usual at its
 * hour, not an anomaly, once earlier days have shown it there.
 *
 * A Bayesian test per phase window (the event's phase bin +- width bins)
 * between two hypotheses about the spikes seen there on earlier days:
 *   H0: nothing recurs; a spike falls in the window by chance, with
 *       q0 = 1 - (1 - r)^e per day (r the series' own rate of spikes per
 *       event, at least p_spike; e the window's events per day);
 *   H1: a job recurs there, on a day with chance rho ~ Beta(3, 1).
 * With k of n earlier days showing a spike of about this event's size in
 * the window, the Bayes factor is the Beta-Binomial marginal over the
 * Binomial one, B(k + 3, n - k + 1) / B(3, 1) / (q0^k (1 - q0)^(n - k))
 * (the binomial coefficients cancel), and the prior odds of H1 are
 * prior / (1 - prior). The spike regime then has the prior
 *   p = (1 - P(H1)) p_spike + P(H1) E[rho | k, n] / e,
 * of which (1 - P(H1)) p_spike / p is an anomaly: a spike explained by the
 * job is usual. Only spikes of about this size count (the recurrent
 * regime's familiarity radius around the spike seen there): a job whose
 * burst comes out twice as large, or a dip at its hour, is still anomalous.
 * A spike's size is its excursion from the level before it (a job's burst
 * rides on whatever the level is that day), held in single precision: as
 * an excursion it is resolved at any offset (a gauge at 1e10 held as a
 * value was rounded to a step of 1,024), and it is the same in the raw
 * frame and in the daily profile's, which subtracts the same value from
 * both.
 *
 * A spike, for this count, is an excursion of at most PH_RUN_MAX events at
 * p >= 1/2 that has ended (a longer one is an episode: a daily shift is a
 * change, not a job). Once over, its largest probability is credited to
 * every bin within width of its phase as that day's evidence (each bin
 * keeps its day's largest, with the spike's size), counted from the next
 * day on (a cluster of spikes within one day is not a recurrence) and
 * exponentially forgotten with the daily profile's half-life, which also
 * weights the days n. Per bin PH_FIELDS floats; O(1) per event, O(width)
 * per spike credited.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include <gsl/gsl_sf_gamma.h>

#include "phase.h"
#include "season.h"
#include "sf.h"
#include "bayeswatch/mem.h"

#define DAY_MS 86400000.0
#define PH_FIELDS 4 /* earlier days' evidence, this visit's, its day, y */
#define PH_OLD 0
#define PH_NEW 1
#define PH_DAY 2      /* day of the bin's latest visit; -1 never */
#define PH_Y 3        /* excursion of the bin's latest likely spike */
#define PH_A 3.0      /* Beta(PH_A, 1): a job's chance per day */
#define PH_MIN_K 0.05 /* less evidence than this: nothing recurs */
#define PH_MAX_P 0.5  /* cap on the spike prior */
#define PH_RUN_MAX 3  /* a longer excursion is an episode, not a spike */

int bw__phase_init(bw__phase_t *p, int bins, int width, double prior,
                   double half_life)
{
    memset(p, 0, sizeof(*p));
    p->t0 = INT64_MIN;
    p->bins = bins;
    p->width = width;
    p->prior = prior;
    p->half_life = half_life;
    if (!(prior > 0.0) || bins <= 0) {
        p->prior = 0.0;
        return 0;
    }
    p->bin = bw_calloc((size_t)bins * PH_FIELDS, sizeof(float));
    if (p->bin == NULL) {
        return -1;
    }
    for (int b = 0; b < bins; b++) {
        p->bin[b * PH_FIELDS + PH_DAY] = -1.0f;
    }
    return 0;
}

void bw__phase_free(bw__phase_t *p)
{
    bw_free(p->bin);
    p->bin = NULL;
}

size_t bw__phase_memory(const bw__phase_t *p)
{
    return p->bin != NULL ? (size_t)p->bins * PH_FIELDS * sizeof(float) : 0;
}

double bw__phase_posterior(double k, double n, double q0, double prior)
{
    /* 0 * log(0) is 0 here: q0 reaches 1 (a high p_spike on fast data)
     * exactly when the clamped evidence has k = n */
    double lbf = bw__lnbeta(k + PH_A, n - k + 1.0) -
                 bw__lnbeta(PH_A, 1.0) -
                 ((k > 0.0 ? k * log(q0) : 0.0) +
                  (n - k > 0.0 ? (n - k) * log1p(-q0) : 0.0));
    double lo = log(prior) - log1p(-prior) + lbf;

    return lo > 0.0 ? 1.0 / (1.0 + exp(-lo)) : exp(lo) / (1.0 + exp(lo));
}

static double days(const bw__phase_t *p, int64_t t_ms)
{
    return (double)(t_ms - p->t0) / DAY_MS;
}

static int bin_of(const bw__phase_t *p, int64_t t_ms)
{
    return bw__phase_bin(t_ms, (int64_t)DAY_MS, p->bins);
}

/* Bin b's evidence from earlier days, forgotten to day @p now: its latest
 * visit counts once it is over half a day old. */
static double earlier(const float *e, double now, double dec)
{
    double old = e[PH_OLD];

    if (e[PH_DAY] < 0.0f) {
        return 0.0;
    }
    if (now - e[PH_DAY] > 0.5) {
        old += e[PH_NEW];
    }
    return old > 0.0 ? old * pow(dec, now - e[PH_DAY]) : 0.0;
}

/* Whether excursion @p x is about the size @p v a bin holds: within the
 * recurrent regime's familiarity radius around it. */
static bool same_size(const bw__phase_at_t *at, double v, double x)
{
    return fabs(x - v) <= fmax(at->bandwidth * at->sd, at->relative * fabs(v));
}

/* Earlier days' spikes in bin b's window (the bin holds each day's
 * largest, credited to every bin within width of the spike), if their
 * excursion was about at->y's from at->level. */
static double evidence(const bw__phase_t *p, int b, double now, double dec,
                       const bw__phase_at_t *at)
{
    const float *e = p->bin + (size_t)b * PH_FIELDS;

    return same_size(at, e[PH_Y], at->y - at->level) ? earlier(e, now, dec)
                                                       : 0.0;
}

double bw__phase_spike_prior(const bw__phase_t *p, int64_t t_ms,
                             double interval_ms, double p0,
                             const bw__phase_at_t *at, double *anomalous)
{
    double now, dec, n, k, e, q0, h1, rho, pr;

    *anomalous = 1.0;
    if (p->bin == NULL || p->t0 == INT64_MIN || !(interval_ms > 0.0)) {
        return p0;
    }
    now = days(p, t_ms);
    if (now < 1.0) {
        return p0;
    }
    dec = exp2(-1.0 / p->half_life);
    k = evidence(p, bin_of(p, t_ms), now, dec, at);
    if (k < PH_MIN_K) {
        return p0;
    }
    /* earlier days, each weighted as its evidence is (a day ago: dec) */
    n = dec * (1.0 - pow(dec, floor(now))) / (1.0 - dec);
    k = fmin(k, n);
    e = fmax((2 * p->width + 1) * DAY_MS / p->bins / interval_ms, 1.0);
    q0 = -expm1(e * log1p(-fmax(p0, fmin(p->rate, PH_MAX_P))));
    h1 = bw__phase_posterior(k, n, q0, p->prior);
    rho = (k + PH_A) / (n + PH_A + 1.0);
    pr = fmin((1.0 - h1) * p0 + h1 * rho / e, PH_MAX_P);
    if (!(pr > p0)) {
        return p0;
    }
    *anomalous = (1.0 - h1) * p0 / pr;
    return pr;
}

/* Bin e's evidence of day @p now: a visit more than half a day after the
 * last starts a new day (the last one's goes to the earlier days). The bin
 * holds one size, its evidence that of spikes of about that size: a spike
 * of another size (radius as at's) takes the bin only where the held
 * size's evidence, forgotten to now, is less than its own, and then starts
 * from its own alone. (It had taken the bin with the held size's
 * evidence: one dip at a learnt job's hour made a dip there the next day
 * usual, and the job itself anomalous.) */
static void credit(const bw__phase_t *p, float *e, double now, double x,
                   double pr, const bw__phase_at_t *at)
{
    if (e[PH_DAY] >= 0.0f && !same_size(at, e[PH_Y], x)) {
        double held = ((double)e[PH_OLD] + e[PH_NEW]) *
                      exp2(-(now - e[PH_DAY]) / p->half_life);
        if (held >= pr) {
            return; /* an anomaly of its own, not the bin's spike */
        }
        e[PH_OLD] = e[PH_NEW] = 0.0f;
        e[PH_DAY] = (float)now;
    }
    if (e[PH_DAY] < 0.0f || now - e[PH_DAY] > 0.5) {
        if (e[PH_DAY] >= 0.0f) {
            e[PH_OLD] = (float)((e[PH_OLD] + e[PH_NEW]) *
                                exp2(-(now - e[PH_DAY]) / p->half_life));
        }
        e[PH_NEW] = 0.0f;
        e[PH_DAY] = (float)now;
    }
    if (pr > e[PH_NEW]) { /* the size: a mean over the days, by evidence */
        double w = e[PH_OLD]; /* 0 on the bin's first day */
        e[PH_Y] = (float)(w > 0.0 ? (w * e[PH_Y] + pr * x) / (w + pr) : x);
        e[PH_NEW] = (float)pr;
    }
}

/* A short excursion that has ended: its most anomalous event is a spike of
 * its day in every bin within width of its phase. */
static void credit_run(bw__phase_t *p, const bw__phase_at_t *at)
{
    int b = bin_of(p, p->run_t);
    double now = days(p, p->run_t);

    for (int j = -p->width; j <= p->width; j++) {
        int bb = ((b + j) % p->bins + p->bins) % p->bins;
        credit(p, p->bin + (size_t)bb * PH_FIELDS, now, p->run_y, p->run_p,
               at);
    }
}

void bw__phase_learn(bw__phase_t *p, int64_t t_ms, const bw__phase_at_t *at,
                     double p_anomaly, double interval_ms)
{
    double y = at->y, level = at->level;
    double spike = 0.0;

    if (p->bin == NULL) {
        return;
    }
    if (p->t0 == INT64_MIN) {
        p->t0 = t_ms;
    }
    if (p_anomaly >= 0.5) { /* an excursion goes on */
        if (p->run_len == 0 || p_anomaly > p->run_p) {
            p->run_p = p_anomaly;
            p->run_y = y - level;
            p->run_t = t_ms;
        }
        p->run_len = p->run_len < PH_RUN_MAX + 1 ? p->run_len + 1 : p->run_len;
    } else {
        if (p->run_len > 0 && p->run_len <= PH_RUN_MAX) {
            credit_run(p, at);
            spike = p->run_p;
        }
        p->run_len = 0;
    }
    if (interval_ms > 0.0) {
        double a = fmin(interval_ms / (DAY_MS * p->half_life), 1.0);
        p->rate += a * (spike - p->rate);
    }
}

void bw__phase_values_to_excursions(bw__phase_t *p, double level, double tol)
{
    if (p->bin == NULL) {
        return;
    }
    p->run_y -= level;
    for (int b = 0; b < p->bins; b++) {
        float *e = p->bin + (size_t)b * PH_FIELDS;
        double x = (double)e[PH_Y] - level;
        /* a value held coarser than tol (single precision far from 0)
         * says nothing of the spike's size: its evidence is dropped */
        if (!(fabs((double)e[PH_Y]) * FLT_EPSILON <= tol) ||
            !(fabs(x) <= FLT_MAX)) {
            e[PH_OLD] = e[PH_NEW] = e[PH_Y] = 0.0f;
            e[PH_DAY] = -1.0f;
            continue;
        }
        e[PH_Y] = (float)x;
    }
}

void bw__phase_save(const bw__phase_t *p, bw_wbuf_t *w)
{
    if (p->bin == NULL) {
        return;
    }
    bw_wbuf_f64(w, p->rate);
    bw_wbuf_i64(w, p->t0);
    bw_wbuf_u32(w, (uint32_t)p->run_len);
    bw_wbuf_f64(w, p->run_p);
    bw_wbuf_f64(w, p->run_y);
    bw_wbuf_i64(w, p->run_t);
    bw_wbuf_f32s(w, p->bin, (size_t)p->bins * PH_FIELDS);
}

void bw__phase_load(bw__phase_t *p, bw_rbuf_t *r)
{
    if (p->bin == NULL) {
        return;
    }
    p->rate = bw_rbuf_finite(r);
    p->t0 = bw_rbuf_time(r, INT64_MIN);
    p->run_len = (int)bw_rbuf_u32_in(r, 0, PH_RUN_MAX + 1);
    p->run_p = bw_rbuf_finite(r);
    p->run_y = bw_rbuf_finite(r);
    p->run_t = bw_rbuf_time(r, INT64_MIN);
    bw_rbuf_f32s(r, p->bin, (size_t)p->bins * PH_FIELDS);
    if (!(p->rate >= 0.0 && p->rate <= 1.0 && p->run_p >= 0.0 &&
          p->run_p <= 1.0) ||
        (p->run_len > 0 && (p->run_t == INT64_MIN || p->t0 == INT64_MIN))) {
        /* an excursion under way has its time (days() would overflow) */
        r->err = BW_ERR_CORRUPT;
    }
    for (int b = 0; b < p->bins; b++) {
        const float *e = p->bin + (size_t)b * PH_FIELDS;
        if (!(e[PH_OLD] >= 0.0f && e[PH_NEW] >= 0.0f && e[PH_NEW] <= 1.0f &&
              e[PH_DAY] >= -1.0f && isfinite(e[PH_OLD]) &&
              isfinite(e[PH_DAY]) && isfinite(e[PH_Y]))) {
            r->err = BW_ERR_CORRUPT;
        }
    }
}
