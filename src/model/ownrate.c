/*
 * A region's error rate judged against its own recent baseline.
 *
 * The pooled model (hier.c) judges a region against the other regions: a
 * busy region whose rate rises from 0.1% to 0.35% can still sit inside a
 * population whose regions differ by that much, and its own rate estimate
 * follows the change. Here each region's intervals (k bad of n) follow a
 * hidden Markov model (Rabiner 1989) over the states
 *   normal:        rate theta_t around the baseline m,
 *   abnormal(r_i): rate theta_t around min(r_i m, 0.995), i = 1..R,
 *                  r_i on a grid of factors >= 2.5 (rises) or <= 0.4
 *                  (drops; own_direction says which count),
 * with a sticky regime: an episode starts with probability p_episode per
 * interval (its multiplier uniform over the grid), goes on with
 * probability stay = 1 - 1/episode_duration, and otherwise ends (half of
 * that mass) or moves to a neighbouring multiplier (the other half: a rate
 * that keeps rising). Given the state, k ~ Beta-Binomial(n, mu c,
 * (1 - mu) c): the interval's rate varies around its mean (overdispersion,
 * the intra-interval correlation rho = 1 / (kappa + 1), Williams 1982) and
 * the baseline is itself uncertain (Beta(a0, b0)), so
 *   1 / (c + 1) = rho + 1 / (a0 + b0 + 1)
 * (the two variance shares added). The forward recursion over the R + 1
 * states is exact given m, rho and c.
 *
 * Learning, in proportion to the posterior probability of the normal state
 * (an incident cannot teach the baseline that it is normal): the baseline
 * Beta(a0, b0) gains P(normal) (k, n - k) and is forgotten toward the
 * Jeffreys prior with half-life own_half_life_ms before each interval is
 * judged (stabilised forgetting, forget()); rho is a forgotten,
 * P(normal)-weighted moment estimate (unfloored: each interval's is at
 * least -1 / (n - 1)),
 * E[(k - n m)^2 / (n m (1 - m)) - 1] = (n - 1) rho for the
 * Beta-Binomial. An episode that has lasted adopt_after_ms becomes the new
 * baseline (its posterior mean multiplier applied to m): a configured
 * horizon, since no data tell a lasting incident from a permanent change
 * before the rate returns. During the first own_warmup intervals there is
 * no baseline to deviate from: every interval teaches it (and, from the
 * WARM_RHO-th on, the dispersion), and nothing is abnormal.
 *
 * Cost: 2 (R + 1) log-beta evaluations per interval; memory R + 10 doubles.
 */
#include <math.h>
#include <string.h>

#include "ownrate.h"

/* At least a factor 2.5 from the baseline: a rate that wanders by less (a
 * slow drift, a busy hour; error rates commonly drift by half and now and
 * then double) is the baseline's own variation, which the forgetting and
 * the overdispersion absorb. The first DOWN_MULTS are drops. */
#define DOWN_MULTS BW_OWN_DROPS
static const double MULTS[BW_OWN_MULTS] = {0.125, 0.25, 0.4,  2.5,  3.0, 4.0,
                                           6.0,   8.0,  12.0, 16.0, 32.0};

#define MAX_RATE 0.995
#define MAX_RHO 0.5
#define WARM_RHO 5 /* intervals before the dispersion is estimated */
#define AB_FLOOR 1e-300 /* least baseline counts a0, b0 (a normal double) */
#define DT_W 0.05 /* weight of a step in the typical step's forgotten mean
                   * (a running mean of the first 1 / DT_W) */
#define DT_CAP 4.0 /* once learnt, a step counts at most this factor from
                    * the typical one (a silence is not the cadence) */
#define GAP_DURATIONS 20.0 /* a silence of more steps than this many mean
                            * episodes is predicted as this many: an
                            * episode outlives it with odds below e^-20 */
#define GAP_STEPS_MAX 100000.0 /* and never more than this many */

void bw__own_init(bw_own_t *o)
{
    memset(o, 0, sizeof(*o));
    o->a0 = o->b0 = 0.5; /* Jeffreys */
    o->p_normal = 1.0;
    o->t_last = INT64_MIN;
    o->since = -1;
}

/* log B(a, b) by lgamma: the states' log-likelihoods are compared with
 * each other, and the absolute rounding (~1e-16 of lgamma's magnitude,
 * below 1e-8 for a + b up to 1e8) is far below any difference that moves a
 * posterior; GSL's lnbeta is exact to the last bit but several times
 * slower for large arguments, and this runs 22 times an interval. */
static double lnbeta(double a, double b)
{
    int sg; /* lgamma_r: no shared signgam between stream threads */

    if (!(a > 0.0) || !(b > 0.0)) {
        return -INFINITY;
    }
    return lgamma_r(a, &sg) + lgamma_r(b, &sg) - lgamma_r(a + b, &sg);
}

/* log Beta-Binomial(k; n, mu c, (1 - mu) c) without the binomial
 * coefficient (common to every state). */
static double log_bb(double k, double n, double mu, double c)
{
    double a = mu * c, b = (1.0 - mu) * c;

    return lnbeta(k + a, n - k + b) - lnbeta(a, b);
}

/* The predicted state probabilities: prior[0] normal, prior[1 + i]
 * abnormal at MULTS[i]. */
static void predict(const bw_own_t *o, const bw_hier_cfg_t *cfg, double *prior)
{
    double stay = 1.0 - 1.0 / cfg->episode_duration, ab = 0.0;
    int up = cfg->own_direction != BW_DIRECTION_DOWN;
    int down = cfg->own_direction != BW_DIRECTION_UP;
    int nm = up * (BW_OWN_MULTS - DOWN_MULTS) + down * DOWN_MULTS;
    double enter = cfg->p_episode / nm, move = 0.25 * (1.0 - stay);

    for (int i = 0; i < BW_OWN_MULTS; i++) {
        ab += o->p_ab[i];
    }
    prior[0] = o->p_normal * (1.0 - cfg->p_episode) + 0.5 * (1.0 - stay) * ab;
    for (int i = 0; i < BW_OWN_MULTS; i++) {
        /* an episode moves to the next multiplier on its own side; the
         * drops' and the rises' ends reflect (a drop does not become a
         * rise, nor lose its share to a side the direction rules out) */
        int allowed = i < DOWN_MULTS ? down : up;
        int first = i < DOWN_MULTS ? 0 : DOWN_MULTS;
        int last = i < DOWN_MULTS ? DOWN_MULTS - 1 : BW_OWN_MULTS - 1;
        double p = allowed ? o->p_normal * enter + o->p_ab[i] * stay : 0.0;
        p += i > first ? o->p_ab[i - 1] * move : o->p_ab[i] * move;
        p += i < last ? o->p_ab[i + 1] * move : o->p_ab[i] * move;
        prior[1 + i] = allowed ? p : 0.0;
    }
}

/* The prediction over @p steps steps (a silence of several typical
 * steps is that many transitions of the regime: an episode seen before a
 * four-hour drain has most likely ended, and the interval after it is
 * judged from that prior, not adopted as an episode four hours old). An
 * episode that more likely than not ended in the silence is, if the data
 * still say abnormal, a new one: its start (and adoption clock) is this
 * interval's. */
static void predict_steps(bw_own_t *o, const bw_hier_cfg_t *cfg, int steps,
                          double *prior)
{
    double stay = 1.0 - 1.0 / cfg->episode_duration;

    predict(o, cfg, prior);
    for (int s = 1; s < steps; s++) {
        o->p_normal = prior[0];
        memcpy(o->p_ab, prior + 1, sizeof(o->p_ab));
        predict(o, cfg, prior);
    }
    if (steps > 1 && pow(stay, steps - 1) < 0.5) {
        o->since = -1;
    }
}

/* The regime's steps in a gap of @p gap ms (at least 1), and the typical
 * step learns from it: a geometric mean (a running one over the first
 * 1 / DT_W steps, so that a first step that was an outage or a duplicate
 * is outvoted; forgotten after), each step within DT_CAP of it once it
 * has been learnt. */
static int gap_steps(bw_own_t *o, const bw_hier_cfg_t *cfg, double gap)
{
    double steps = o->dt > 0.0 ? floor(gap / o->dt + 0.5) : 1.0;
    double most = fmin(ceil(GAP_DURATIONS * cfg->episode_duration),
                       GAP_STEPS_MAX);
    double lg = log(gap);

    if (o->dt > 0.0 && o->dt_n > 0.0) {
        double l0 = log(o->dt), w = fmax(1.0 / (o->dt_n + 1.0), DT_W);
        if (o->dt_n >= 1.0 / DT_W) {
            lg = fmin(fmax(lg, l0 - log(DT_CAP)), l0 + log(DT_CAP));
        }
        lg = l0 + w * (lg - l0);
    }
    o->dt = exp(lg);
    o->dt_n = fmin(o->dt_n + 1.0, 1.0 / DT_W);
    return (int)fmax(1.0, fmin(steps, most));
}

/* Concentration c of the interval's rate around its mean (header). */
static double concentration(const bw_own_t *o)
{
    double share = fmax(o->rho, 0.0) + 1.0 / (o->a0 + o->b0 + 1.0);

    return share < 1.0 ? 1.0 / share - 1.0 : 1e-3;
}

/* Forward step: the posterior over the states from the prior and the
 * interval's likelihoods. */
static void forward(bw_own_t *o, const double *prior, double k, double n,
                    double m, double c)
{
    double ll[BW_OWN_MULTS + 1], mx, s = 0.0;

    ll[0] = log_bb(k, n, m, c);
    mx = ll[0];
    for (int i = 0; i < BW_OWN_MULTS; i++) {
        ll[1 + i] = log_bb(k, n, fmin(MULTS[i] * m, MAX_RATE), c);
        /* the largest among the states the prior allows: a state of prior
         * 0 (a drop under own_direction up) that fits far better would
         * otherwise underflow every allowed one */
        mx = prior[1 + i] > 0.0 && ll[1 + i] > mx ? ll[1 + i] : mx;
    }
    for (int i = 0; i <= BW_OWN_MULTS; i++) { /* (0 * inf is no 0) */
        ll[i] = prior[i] > 0.0 ? prior[i] * exp(ll[i] - mx) : 0.0;
        s += ll[i];
    }
    if (!(s > 0.0) || !isfinite(s)) { /* nothing learned: the prediction */
        s = 0.0;
        for (int i = 0; i <= BW_OWN_MULTS; i++) {
            s += prior[i];
        }
        for (int i = 0; i <= BW_OWN_MULTS; i++) {
            ll[i] = prior[i];
        }
    }
    o->p_normal = ll[0] / s;
    for (int i = 0; i < BW_OWN_MULTS; i++) {
        o->p_ab[i] = ll[1 + i] / s;
    }
}

/* The forgetting of the time since the last interval, before this one is
 * judged (the baseline it is judged against is what is known of the rate
 * now): stabilised forgetting (Kulhavy & Zarrop 1993), the posterior
 * flattened toward the Jeffreys prior, Beta(a0, b0)^f Beta(1/2, 1/2)^(1-f).
 * Forgotten toward nothing, a region without errors for a day held a0 near
 * 0, a baseline rate of about 0 that every multiple of it explains almost
 * as badly: its first burst of 50 errors in 1000 read p_own 0.95, below
 * the alert threshold, and taught the baseline (test_ownrate). The
 * dispersion's weight decays alike. */
static void forget(bw_own_t *o, double f)
{
    o->a0 = f * o->a0 + (1.0 - f) * 0.5;
    o->b0 = f * o->b0 + (1.0 - f) * 0.5;
    o->rho_w *= f;
}

/* The baseline and the overdispersion learn from the interval in
 * proportion to P(normal). */
static void learn(bw_own_t *o, double k, double n, double m, int dispersion)
{
    double w = o->p_normal, v = n * m * (1.0 - m);

    /* floored (defensive: the forgetting keeps them at least 1/2 once a
     * gap has passed): at 0, lnbeta(0, .) would be NaN, and the load
     * refuses 0 */
    o->a0 = fmax(o->a0 + w * k, AB_FLOOR);
    o->b0 = fmax(o->b0 + w * (n - k), AB_FLOOR);
    if (dispersion && n >= 2.0 && v > 0.0 && w > 0.0) {
        double e = (k - n * m) * (k - n * m) / v - 1.0;
        /* not floored at 0 here: the mean of max(e, 0) is no moment of
         * the Beta-Binomial (binomial data, rho 0, settled at (n - 1) rho
         * of 0.5-0.8, the predictive variance 1.5-1.8x too wide); the
         * estimate is floored where it is used (concentration) */
        double est = fmin(fmax(e / (n - 1.0), -1.0), MAX_RHO);
        o->rho = (o->rho_w * o->rho + w * est) / (o->rho_w + w);
        o->rho_w += w;
    }
}

static double mean_multiplier(const bw_own_t *o)
{
    double s = 0.0, ab = 0.0;

    for (int i = 0; i < BW_OWN_MULTS; i++) {
        s += o->p_ab[i] * log(MULTS[i]);
        ab += o->p_ab[i];
    }
    return ab > 0.0 ? exp(s / ab) : 1.0;
}

/* The episode: its start, and adoption once it is adopt_after_ms old. */
static void episode(bw_own_t *o, const bw_hier_cfg_t *cfg, int64_t t_ms,
                    bw_own_out_t *out)
{
    if (o->p_normal >= 0.5) {
        o->since = -1;
        return;
    }
    if (o->since < 0) {
        /* not before the newest interval seen: a delayed record that
         * starts an episode does not start its adoption clock early */
        o->since = o->t_last;
    }
    out->since_ms = o->since;
    if (cfg->adopt_after_ms > 0.0 &&
        (double)(t_ms - o->since) >= cfg->adopt_after_ms) {
        double s = o->a0 + o->b0, m = o->a0 / s;
        m = fmin(m * mean_multiplier(o), MAX_RATE);
        o->a0 = m * s;
        o->b0 = (1.0 - m) * s;
        o->p_normal = 1.0;
        memset(o->p_ab, 0, sizeof(o->p_ab));
        o->since = -1;
        out->adopted = true;
    }
}

void bw__own_observe(bw_own_t *o, const bw_hier_cfg_t *cfg, int64_t t_ms,
                     double k, double n, bw_own_out_t *out)
{
    double prior[BW_OWN_MULTS + 1], m, c, sd;
    int steps = 1;

    memset(out, 0, sizeof(*out));
    out->since_ms = -1;
    if (o->t_last != INT64_MIN && t_ms > o->t_last) {
        double gap = (double)(t_ms - o->t_last);
        if (n > 0.0) {
            steps = gap_steps(o, cfg, gap);
        }
        if (cfg->own_half_life_ms > 0.0) {
            forget(o, exp2(-gap / cfg->own_half_life_ms));
        }
    }
    /* the baseline rate, below 1 as the episodes' are: after days of
     * nothing but errors b0 / a0 falls under the rounding of 1 */
    m = fmin(o->a0 / (o->a0 + o->b0), MAX_RATE);
    c = concentration(o);
    out->baseline = m;
    out->expected = n * m;
    sd = sqrt(n * m * (1.0 - m) * (1.0 + (n - 1.0) / (c + 1.0)));
    out->z = sd > 0.0 ? (k - n * m) / sd : 0.0;
    if (n > 0.0 && o->seen < (uint64_t)cfg->own_warmup) {
        /* no baseline yet to deviate from: every interval teaches it */
        o->p_normal = 1.0;
        learn(o, k, n, m, o->seen >= WARM_RHO);
        o->seen++;
    } else if (n > 0.0) {
        predict_steps(o, cfg, steps, prior);
        forward(o, prior, k, n, m, c);
        /* the dispersion from the WARM_RHO-th interval also when the
         * warm-up is shorter: the first against the prior's mean of 1/2
         * read as a dispersion of 0.5 (own_warmup 0) */
        learn(o, k, n, m, o->seen >= WARM_RHO);
        o->seen++;
    }
    if (t_ms > o->t_last || o->t_last == INT64_MIN) {
        o->t_last = t_ms;
    }
    out->p_abnormal = fmin(fmax(1.0 - o->p_normal, 0.0), 1.0);
    out->ratio = mean_multiplier(o);
    out->warmup = o->seen <= (uint64_t)cfg->own_warmup;
    episode(o, cfg, t_ms, out);
}

void bw__own_save(const bw_own_t *o, bw_wbuf_t *w)
{
    bw_wbuf_f64(w, o->a0);
    bw_wbuf_f64(w, o->b0);
    bw_wbuf_f64(w, o->rho);
    bw_wbuf_f64(w, o->rho_w);
    bw_wbuf_f64(w, o->p_normal);
    bw_wbuf_f64s(w, o->p_ab, BW_OWN_MULTS);
    bw_wbuf_i64(w, o->t_last);
    bw_wbuf_i64(w, o->since);
    bw_wbuf_u64(w, o->seen);
    bw_wbuf_f64(w, o->dt);
    bw_wbuf_f64(w, o->dt_n);
}

static int prob_ok(double p)
{
    return p >= 0.0 && p <= 1.0;
}

void bw__own_load(bw_own_t *o, bw_rbuf_t *r, bool has_dt)
{
    double sum;

    o->a0 = bw_rbuf_finite(r);
    o->b0 = bw_rbuf_finite(r);
    o->rho = bw_rbuf_finite(r);
    o->rho_w = bw_rbuf_finite(r);
    o->p_normal = bw_rbuf_finite(r);
    bw_rbuf_f64s(r, o->p_ab, BW_OWN_MULTS);
    o->t_last = bw_rbuf_time(r, INT64_MIN);
    o->since = bw_rbuf_time(r, -1);
    o->seen = bw_rbuf_u64(r);
    o->dt = has_dt ? bw_rbuf_finite(r) : 0.0;
    o->dt_n = has_dt ? bw_rbuf_finite(r) : 0.0;
    sum = o->p_normal;
    for (int i = 0; i < BW_OWN_MULTS; i++) {
        sum += o->p_ab[i];
        if (!prob_ok(o->p_ab[i])) {
            r->err = BW_ERR_CORRUPT;
        }
    }
    if (!(o->a0 > 0.0) || !(o->b0 > 0.0) || !(o->rho >= -1.0) ||
        o->rho > MAX_RHO || !(o->rho_w >= 0.0) || !prob_ok(o->p_normal) ||
        fabs(sum - 1.0) > 1e-6 || o->since < -1 || !(o->dt >= 0.0) ||
        !(o->dt_n >= 0.0) || o->dt_n > 1.0 / DT_W ||
        (o->dt > 0.0) != (o->dt_n > 0.0)) {
        r->err = BW_ERR_CORRUPT;
    }
}
