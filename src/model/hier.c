/*
 * Hierarchical pooling of one service/metric across regions, with the
 * hyperposterior computed on a deterministic grid (no MCMC).
 *
 * Counts (Beta-Binomial; Gelman et al., BDA3 sec. 5.3):
 *   y_j | theta_j ~ Bin(n_j, theta_j), theta_j ~ Beta(mu kappa, (1-mu) kappa),
 *   p(alpha, beta) ~ (alpha + beta)^power  (BDA3 uses power = -5/2).
 *   The grid lives in (logit mu, log kappa). The posterior can be
 *   multi-modal (a U-shaped Beta at small kappa competes with a common
 *   rate at large kappa), so no local optimiser decides where the mass
 *   is: two global scans of the profile posterior over log kappa bound
 *   the rows, and each row's logit-mu points follow that row's conditional
 *   mode +- grid_sd sds (a sheared quadrature grid, cf. the conditional
 *   grids of INLA, Rue, Martino & Chopin 2009), so 40,000 trials and 3
 *   trials are both resolved.
 *   Per region the posterior is a grid mixture of Beta(alpha+y, beta+n-y).
 *
 * Continuous values (normal hierarchy; BDA3 sec. 5.4):
 *   ybar_j ~ N(theta_j, s_j^2 / n_j), theta_j ~ N(mu, tau^2), flat prior on
 *   (mu, tau); mu is integrated analytically, tau on a 1-D grid.
 *   s_j^2 shrinks the region's within variance toward the pooled one
 *   (within_prior_n pseudo-events), so a region with one value has a sane
 *   standard error.
 *
 * A region's outlier probability is cross-validated: see loo_outlier().
 * Counts and sums are exponentially forgotten (half_life_ms) at each event,
 * so the model tracks change. Mixture quantiles: Newton's method on the
 * mixture CDF, started from a moment-matched Beta/normal.
 * Cost: counts O(G^2 J) per refit of the grid, once every refresh_intervals
 * intervals per region, and a conjugate Beta update per event in between;
 * normal O(G J) per event; memory O(G^2 + J).
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_sf_gamma.h>
#include <gsl/gsl_sf_psi.h>

#include "bayeswatch/model.h"
#include "ownrate.h"
#include "sf.h"
#include "bayeswatch/mem.h"

#define DECAYED 1e-9 /* a region's trials or weight below this: gone */
#define HIER_STATE_TAG 0x48493034u /* "HI04": a region's typical step */
#define HIER_STATE_TAG_V3 0x48493033u /* "HI03": the sum of squares centred */
/* A region's leave-one-out prior (lvalid): none yet (its next event
 * refits: a new region, or the population changed), valid, due for a
 * refit without the full grid (within a refit only), or none because the
 * last refit had fewer than three regions (no population: it waits for
 * the schedule as a valid prior does; it had refitted the whole grid at
 * every event of a one- or two-region group). Saved with the state. */
#define LV_NONE 0
#define LV_OK 1
#define LV_REFIT 2
#define LV_SMALL 3
#define HIER_STATE_TAG_RAW 0x48493032u /* "HI02": raw, converted on load */
#define LOGIT_LIM 30.0
#define ACTIVE_W 1e-9
#define TAIL_MASS                                                              \
    1e-6 /* kappa-marginal mass left outside the rows, per side                \
          */

typedef struct hier_type_s hier_type_t;

struct bw_hier_s {
    const bw_hier_cfg_t *cfg;
    const hier_type_t *type; /* the kind and its operations (end of file) */
    int nr;                  /* max regions */
    double *y, *n, *s2; /* per region: bad/sum, trials/weight, and the
                           (normal kind) sum of squares about the mean,
                           updated as Welford/West do: the raw sum of
                           squares less y^2/n lost every digit when the
                           mean was large against the spread */
    int64_t t_last;
    int have_time;
    /* grid (derived from the above by refresh) */
    int npts;
    double *w, *ga, *gb, *gq; /* weight, alpha|mu, beta|tau, pop quantile */
    int *act;
    int nact;
    double *ca, *cb, *cl, *cw; /* one region's mixture components */
    double pop_mean, spread;
    /* Counts: each region against its own baseline (ownrate.c), and the
     * scheduled population (refresh_intervals > 0): per region, the
     * population prior fitted without it, Beta(la, lb), and its outlier
     * threshold lq, from the last refit (lvalid). Derived, not state. */
    bw_own_t *own;
    double *la, *lb, *lq;
    unsigned char *lvalid;
    uint64_t since_refit; /* observations since the last refit */
    int refit_regions;    /* regions with data at the last refit */
    double pop_sd;
};

/* Conditional posterior of region j at grid point g: a mixture component. */
typedef struct {
    double a, b; /* count: Beta(a, b); normal: N(a, b) with b variance */
    double shrink;
    double q; /* population outlier threshold */
    double pop_sd;
    /* normal: the variance of theta_j - mu + mu's estimate, which the
     * outlier test compares with q (mu is uncertain, and q moves with it);
     * counts: unused (a grid point fixes the population) */
    double qv;
} comp_t;

/* What differs between the two kinds (their tables at the end). */
struct hier_type_s {
    bw_hier_kind_t kind;
    size_t (*grid_points)(const bw_hier_cfg_t *cfg);
    int (*alloc)(bw_hier_t *h); /* the kind's own parts, or NULL */
    bw_err_t (*refresh)(bw_hier_t *h);
    void (*population_quantiles)(bw_hier_t *h); /* after a refit, or NULL */
    double (*pooled_var)(const bw_hier_t *h);
    void (*component)(const bw_hier_t *h, int j, int g, double vpool,
                      comp_t *c);
    double (*comp_cdf)(const comp_t *c, double x);
    /* P(theta_j above the population's outlier quantile), the component's
     * share of it */
    double (*comp_outlier)(const comp_t *c);
    void (*comp_moments)(const comp_t *c, double *m, double *v);
    double (*comp_norm)(const comp_t *c);
    void (*mix_term)(double ca, double cb, double cl, double x, double *F,
                     double *f);
    bool (*valid)(double value, double trials);
    bool (*valid_interval)(double trials);
    void (*add)(bw_hier_t *h, int j, double value, double trials);
    /* regions besides the judged one its population needs: with a flat
     * prior on tau the normal model's p(tau | y) of J regions falls as
     * tau^(1 - J), improper for J = 2 (Gelman 2006), and the answer was
     * the grid's truncation's; the counts' hyperprior is proper */
    int min_others;
    bool unit_interval; /* the parameter is a rate in [0, 1] */
    bool scheduled;     /* a scheduled population (refresh_intervals) */
    bool own_baseline;  /* each region against itself (ownrate.c) */
};

static const hier_type_t *type_of(bw_hier_kind_t kind);

static double clampd(double x, double lo, double hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* Only reachable for extreme shapes, where the continued fraction does
 * not converge: the normal with the Beta's mean and variance. */
static double beta_normal_cdf(double x, double a, double b)
{
    double m = a / (a + b), v = a * b / ((a + b) * (a + b) * (a + b + 1));

    return gsl_cdf_gaussian_P(x - m, sqrt(v));
}

/* Regularised incomplete beta I_x(a, b), GSL status checked. */
static double beta_cdf(double x, double a, double b)
{
    gsl_sf_result r;

    if (x <= 0.0) {
        return 0.0;
    }
    if (x >= 1.0) {
        return 1.0;
    }
    if (gsl_sf_beta_inc_e(a, b, x, &r) != GSL_SUCCESS || !isfinite(r.val)) {
        return beta_normal_cdf(x, a, b);
    }
    return clampd(r.val, 0.0, 1.0);
}

/* A Beta(a, b) posterior with its log normaliser ln B(a, b), taken once
 * for the several incomplete beta functions of one region's output. */
typedef struct {
    double a, b, lb;
} beta_t;

static beta_t beta_of(double a, double b)
{
    beta_t B = {a, b, bw__lnbeta(a, b)};

    return B;
}

/* The continued fraction of I_x(a, b) by the modified Lentz method
 * (Numerical Recipes in C, 2nd ed., sec. 6.4, betacf), to 2 DBL_EPSILON
 * as GSL's; NAN if 512 terms (GSL's limit) do not converge. */
static double beta_cf(double a, double b, double x)
{
    const double tiny = 1e-300, eps = 2.0 * DBL_EPSILON;
    double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0), h;

    d = 1.0 / (fabs(d) < tiny ? tiny : d);
    h = d;
    for (int m = 1; m <= 512; m++) {
        double m2 = 2.0 * m, del;
        double aa = m * (b - m) * x / ((a - 1.0 + m2) * (a + m2));
        d = 1.0 + aa * d;
        c = 1.0 + aa / c;
        d = 1.0 / (fabs(d) < tiny ? tiny : d);
        c = fabs(c) < tiny ? tiny : c;
        h *= d * c;
        aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + 1.0 + m2));
        d = 1.0 + aa * d;
        c = 1.0 + aa / c;
        d = 1.0 / (fabs(d) < tiny ? tiny : d);
        c = fabs(c) < tiny ? tiny : c;
        del = d * c;
        h *= del;
        if (fabs(del - 1.0) < eps) {
            return h;
        }
    }
    return NAN;
}

/* I_x(a, b) with B's normaliser: the prefactor x^a (1 - x)^b / B(a, b)
 * times the continued fraction, or 1 less that of I_{1-x}(b, a) above
 * (a + 1) / (a + b + 2), where the fraction converges faster (as GSL's
 * gsl_sf_beta_inc, which takes ln B(a, b) anew at every call); the normal
 * approximation where it does not converge, as beta_cdf. */
static double beta_cdf_of(const beta_t *B, double x)
{
    double a = B->a, b = B->b, lf, r;

    if (x <= 0.0 || x >= 1.0 || !isfinite(B->lb)) {
        return beta_cdf(x, a, b);
    }
    lf = a * log(x) + b * log1p(-x) - B->lb;
    r = x < (a + 1.0) / (a + b + 2.0)
            ? exp(lf) * beta_cf(a, b, x) / a
            : 1.0 - exp(lf) * beta_cf(b, a, 1.0 - x) / b;
    /* GSL's fraction is the same, with the same limit: where this one
     * does not converge, neither does it */
    return isfinite(r) ? clampd(r, 0.0, 1.0) : beta_normal_cdf(x, a, b);
}

/*
 * Beta quantile: safeguarded Newton in logit space (bisection whenever a
 * step leaves the bracket), bounded iterations. Replaces
 * gsl_cdf_beta_Pinv, which can fail to terminate for tiny shapes.
 */
/* F(x) and dF/dx of a continuous CDF-like function. */
typedef void (*cdf_fn_t)(const void *ctx, double x, double *F, double *f);

/*
 * The x in (lo, hi) where F(x) = p, for F increasing with F(lo) < p <=
 * F(hi): Newton's method, falling back to bisection whenever a step leaves
 * the bracket (which shrinks every iteration). Stops when a step is below
 * rtol * (|x| + scale) or the bracket below width; at most 100 iterations.
 */
static double solve_cdf(cdf_fn_t fn, const void *ctx, double p, double x,
                        double lo, double hi, double rtol, double scale,
                        double width)
{
    for (int it = 0; it < 100; it++) {
        double F, f, xn;
        if (!(x > lo && x < hi)) {
            x = 0.5 * (lo + hi);
        }
        fn(ctx, x, &F, &f);
        if (F < p) {
            lo = x;
        } else {
            hi = x;
        }
        xn = (f > 0.0 && isfinite(f)) ? x - (F - p) / f : 0.5 * (lo + hi);
        if (!(xn > lo && xn < hi)) {
            xn = 0.5 * (lo + hi);
        }
        if (fabs(xn - x) < rtol * (fabs(x) + scale) || hi - lo < width) {
            return xn;
        }
        x = xn;
    }
    return x;
}

/* Beta CDF as a function of logit(theta). */
static void beta_logit_cdf(const void *ctx, double x, double *F, double *f)
{
    const double *ab = ctx, th = 1.0 / (1.0 + exp(-x));

    *F = beta_cdf(th, ab[0], ab[1]);
    *f = gsl_ran_beta_pdf(th, ab[0], ab[1]) * th * (1.0 - th);
}

static double beta_quantile(double p, double a, double b)
{
    double sd = sqrt(bw__psi1(a) + bw__psi1(b)), x, lo, hi, w;
    const double ab[2] = {a, b};

    /* Start from the normal approximation of logit(theta), whose mean and
     * variance are digamma(a) - digamma(b) and trigamma(a) + trigamma(b),
     * and bracket the root by expanding geometrically around it. */
    x = bw__psi(a) - bw__psi(b) + gsl_cdf_ugaussian_Pinv(p) * sd;
    if (!isfinite(x) || !isfinite(sd)) {
        x = 0.0, sd = 1.0;
    }
    w = fmax(0.5 * sd, 1e-3);
    lo = x - w;
    for (int k = 0; k < 60 && beta_cdf(1.0 / (1.0 + exp(-lo)), a, b) > p; k++) {
        lo -= (w *= 2.0);
    }
    w = fmax(0.5 * sd, 1e-3);
    hi = x + w;
    for (int k = 0; k < 60 && beta_cdf(1.0 / (1.0 + exp(-hi)), a, b) < p; k++) {
        hi += (w *= 2.0);
    }
    x = solve_cdf(beta_logit_cdf, ab, p, x, lo, hi, 1e-10, 1.0, 1e-10);
    return 1.0 / (1.0 + exp(-x));
}

/* The count kind's per-region parts. */
static int alloc_counts(bw_hier_t *h)
{
    h->own = bw_calloc((size_t)h->nr, sizeof(bw_own_t));
    h->la = bw_calloc(3 * (size_t)h->nr, sizeof(double));
    h->lvalid = bw_calloc((size_t)h->nr, 1);
    if (h->own == NULL || h->la == NULL || h->lvalid == NULL) {
        return -1;
    }
    h->lb = h->la + h->nr;
    h->lq = h->lb + h->nr;
    for (int j = 0; j < h->nr; j++) {
        bw__own_init(&h->own[j]);
    }
    return 0;
}

/*
 * The same quantile by Halley's method on the logit scale x from the
 * normal approximation of logit(theta) (mean digamma(a) - digamma(b), sd
 * s = sqrt(trigamma(a) + trigamma(b))), which is within about 0.03 of p in
 * probability for a >= 5. With G(x) = F(theta(x)) - p, G' = pdf(theta)
 * theta (1 - theta) and G''/G' = a - (a + b) theta, so the Newton step
 * r = G/G' becomes r / (1 - r G''/(2 G')) (cubic convergence; Newton's r
 * where that denominator is below 1/2). A step below 1e-4 s leaves an
 * error of the order of its cube: the quantile is accepted there, on
 * average after 2.6 evaluations of the incomplete beta function where
 * Newton's method to 1e-9 in logit took 4.2 (a, b from 2 to 3e7, tail
 * probabilities 1e-4 to 0.995); test_hier's grid agrees with
 * gsl_cdf_beta_Pinv to 1e-12 relative. Falls back to the bracketed solver
 * when a step misbehaves or it has not converged.
 */
static double beta_quantile_fast(double p, const beta_t *B)
{
    const double a = B->a, b = B->b, lb = B->lb;
    double sd = sqrt(bw__psi1(a) + bw__psi1(b));
    double x = bw__psi(a) - bw__psi(b) + gsl_cdf_ugaussian_Pinv(p) * sd;

    for (int it = 0; it < 8 && isfinite(x) && isfinite(lb); it++) {
        double th = 1.0 / (1.0 + exp(-x)), F = beta_cdf_of(B, th);
        double lf = a * log(th) + b * log1p(-th) - lb; /* pdf x th(1-th) */
        double r = (F - p) / exp(lf), den, step;
        if (!isfinite(r) || fabs(r) > 2.0) {
            break;
        }
        den = 1.0 - 0.5 * r * (a - (a + b) * th);
        step = den > 0.5 ? r / den : r;
        x -= step;
        if (fabs(step) < 1e-4 * sd) {
            return 1.0 / (1.0 + exp(-x));
        }
    }
    return beta_quantile(p, a, b);
}

bw_hier_t *bw_hier_new(const bw_hier_cfg_t *cfg, bw_hier_kind_t kind,
                       char *errstr, size_t errstr_size)
{
    bw_hier_t *h = bw_calloc(1, sizeof(*h));
    size_t g;

    if (h == NULL) {
        goto fail;
    }
    h->cfg = cfg;
    h->type = type_of(kind);
    h->nr = cfg->max_regions;
    g = h->type->grid_points(cfg);
    h->npts = (int)g;
    h->y = bw_calloc(3 * (size_t)h->nr, sizeof(double));
    h->w = bw_calloc(8 * g, sizeof(double));
    h->act = bw_calloc(g, sizeof(int));
    if (h->y == NULL || h->w == NULL || h->act == NULL) {
        goto fail;
    }
    h->n = h->y + h->nr;
    h->s2 = h->n + h->nr;
    h->ga = h->w + g;
    h->gb = h->ga + g;
    h->gq = h->gb + g;
    h->ca = h->gq + g;
    h->cb = h->ca + g;
    h->cl = h->cb + g;
    h->cw = h->cl + g;
    if (h->type->alloc != NULL && h->type->alloc(h) != 0) {
        goto fail;
    }
    return h;
fail:
    bw_hier_destroy(h);
    bw_seterr(errstr, errstr_size, BW_ERR_NOMEM, "model.hier: out of memory");
    return NULL;
}

void bw_hier_destroy(bw_hier_t *h)
{
    if (h == NULL) {
        return;
    }
    bw_free(h->y);
    bw_free(h->w);
    bw_free(h->act);
    bw_free(h->own);
    bw_free(h->la);
    bw_free(h->lvalid);
    bw_free(h);
}

size_t bw_hier_memory(const bw_hier_t *h)
{
    size_t counts =
        h->own != NULL
            ? (size_t)h->nr * (sizeof(bw_own_t) + 3 * sizeof(double) + 1)
            : 0;

    return sizeof(*h) + 3 * (size_t)h->nr * sizeof(double) +
           (size_t)h->npts * (8 * sizeof(double) + sizeof(int)) + counts;
}

int64_t bw_hier_last_ms(const bw_hier_t *h)
{
    return h->have_time ? h->t_last : -1;
}

void bw_hier_hyper(const bw_hier_t *h, double *pop_mean, double *spread)
{
    *pop_mean = h->pop_mean;
    *spread = h->spread;
}

/* ---- Beta-Binomial hyperposterior ---- */

static double bb_logpost(const bw_hier_t *h, double lm, double lk)
{
    double mu = 1.0 / (1.0 + exp(-lm)), k = exp(lk);
    double a = mu * k, b = (1.0 - mu) * k, lbab, s = 0.0;

    if (a <= 0.0 || b <= 0.0) {
        return -INFINITY;
    }
    lbab = bw__lgamma(a) + bw__lgamma(b) - bw__lgamma(k);
    for (int j = 0; j < h->nr; j++) {
        if (h->n[j] <= 0.0) {
            continue;
        }
        s += bw__lgamma(a + h->y[j]) + bw__lgamma(b + h->n[j] - h->y[j]) -
             bw__lgamma(k + h->n[j]) - lbab;
    }
    /* p(logit mu, log kappa) ~ kappa^(power + 2) mu (1 - mu). */
    return s + (h->cfg->kappa_prior_power + 2.0) * lk + log(mu) + log1p(-mu);
}

/*
 * The first and second derivatives of bb_logpost in logit(mu) at fixed
 * log(kappa), in closed form: with a = mu kappa, b = (1 - mu) kappa,
 *   S1 = sum_j psi(a + y_j) - psi(a) - psi(b + n_j - y_j) + psi(b),
 *   S2 = sum_j psi1(a + y_j) - psi1(a) + psi1(b + n_j - y_j) - psi1(b),
 *   g  = mu (1 - mu) kappa S1 + 1 - 2 mu,
 *   d2 = mu (1 - mu) (kappa (1 - 2 mu) S1 + mu (1 - mu) kappa^2 S2 - 2).
 * Central differences of the log posterior (a sum of lgammas of the
 * forgotten counts, terms of ~1e12 at 1e9 trials an interval) were
 * rounding there: the sd came out 2x too small at 1e9 counts a region
 * and 20x at 1e11. With bw__psi_fast this is also cheaper than the two
 * extra log posteriors the differences took. False if not finite.
 */
static bool bb_dlogit(const bw_hier_t *h, double lm, double lk, double *g,
                      double *d2)
{
    double mu = 1.0 / (1.0 + exp(-lm)), k = exp(lk);
    double a = mu * k, b = (1.0 - mu) * k, v = mu * (1.0 - mu);
    double pa = bw__psi_fast(a), pb = bw__psi_fast(b), qa = bw__psi1_fast(a),
           qb = bw__psi1_fast(b), s1 = 0.0, s2 = 0.0;

    for (int j = 0; j < h->nr; j++) {
        double bj;
        if (h->n[j] <= 0.0) {
            continue;
        }
        bj = b + h->n[j] - h->y[j];
        s1 += bw__psi_fast(a + h->y[j]) - pa - bw__psi_fast(bj) + pb;
        s2 += bw__psi1_fast(a + h->y[j]) - qa + bw__psi1_fast(bj) - qb;
    }
    *g = v * k * s1 + 1.0 - 2.0 * mu;
    *d2 = v * (k * (1.0 - 2.0 * mu) * s1 + v * k * k * s2 - 2.0);
    return isfinite(*g) && isfinite(*d2);
}

/*
 * Conditional mode and sd of logit(mu) at fixed log(kappa): 1-D Newton on
 * the closed-form derivatives (bb_dlogit), safeguarded by step halving;
 * a step is taken if the log posterior does not fall by more than its
 * terms' rounding (near the mode of a large group the differences are
 * below it, and the derivatives, not the values, say where the mode is;
 * the terms are about (kappa + n_j) log(kappa + n_j) each). Returns the
 * log posterior at the mode.
 */
static double profile_mu(const bw_hier_t *h, double lk, double *lm, double *sd)
{
    double x = *lm, f = bb_logpost(h, x, lk), g, d2 = -1.0, tol = 0.0;
    double k = exp(lk);

    for (int j = 0; j < h->nr; j++) {
        if (h->n[j] > 0.0) {
            tol += 3.0 * (k + h->n[j]) * (fabs(log(k + h->n[j])) + 1.0);
        }
    }
    tol *= 8.0 * DBL_EPSILON;
    for (int it = 0; it < 50; it++) {
        double step;
        if (!bb_dlogit(h, x, lk, &g, &d2)) {
            d2 = 1.0; /* no curvature known: the fallback sd */
            break;
        }
        step = d2 < 0 ? -g / d2 : (g > 0 ? 1.0 : -1.0);
        step = clampd(step, -5.0, 5.0);
        for (int i = 0; i < 40; i++, step *= 0.5) {
            double xn = clampd(x + step, -LOGIT_LIM, LOGIT_LIM);
            double fn = bb_logpost(h, xn, lk);
            if (fn >= f - tol) {
                x = xn;
                f = fn;
                break;
            }
        }
        if (fabs(step) < 1e-6) {
            break;
        }
    }
    if (!bb_dlogit(h, x, lk, &g, &d2)) { /* the curvature at the mode */
        d2 = 1.0;
    }
    *lm = x;
    *sd = d2 < 0 ? fmin(1.0 / sqrt(-d2), LOGIT_LIM) : 3.0;
    return f;
}

/* Scan n values of log kappa in [lo, hi]: profile log posterior and the
 * Laplace log marginal lp + log sd of each. Returns the best lp. */
#define SCAN 25   /* points of the fine scan of log kappa */
#define COARSE 13 /* points of the coarse one over the whole range */
typedef struct {
    double lk[SCAN], lp[SCAN], lmarg[SCAN];
} scan_t;

static double scan_kappa(const bw_hier_t *h, double lo, double hi, double lm,
                         scan_t *sc, int n)
{
    double best = -INFINITY, sd;

    for (int i = 0; i < n; i++) {
        sc->lk[i] = lo + (hi - lo) * i / (n - 1);
        sc->lp[i] = profile_mu(h, sc->lk[i], &lm, &sd);
        sc->lmarg[i] = sc->lp[i] + log(sd);
        best = fmax(best, sc->lp[i]);
    }
    return best;
}

/* Position of mass fraction u in the scan's (trapezoid) CDF. */
static double scan_quantile(const scan_t *sc, const double *cdf, double u)
{
    int i = 0;
    double t;

    u *= cdf[SCAN - 1];
    while (i < SCAN - 2 && cdf[i + 1] < u) {
        i++;
    }
    t = cdf[i + 1] > cdf[i] ? (u - cdf[i]) / (cdf[i + 1] - cdf[i]) : 0.5;
    return sc->lk[i] + clampd(t, 0.0, 1.0) * (sc->lk[i + 1] - sc->lk[i]);
}

/*
 * Rows of the grid in log kappa: a coarse scan over the whole configured
 * range finds the support, a finer one gives the (Laplace-approximated)
 * marginal of log kappa, and G uniform rows span its TAIL_MASS ..
 * 1 - TAIL_MASS quantiles (the binomial limit gives log kappa a long, thin
 * right tail: covering it to 1e-9 would starve the peak of rows). Uniform rows
 * keep the trapezoid rule's spectral accuracy for smooth integrands; bounding
 * them by mass, not by a local curvature, keeps every mode and heavy tail
 * inside.
 */
static void kappa_rows(const bw_hier_t *h, double lm, double *row,
                       double *width)
{
    const double klo = log(h->cfg->kappa_min), khi = log(h->cfg->kappa_max);
    int G = h->cfg->grid, first = COARSE, last = -1;
    double lo = klo, hi = khi, cdf[SCAN], best, mx = -INFINITY, pz;
    scan_t sc;

    best = scan_kappa(h, lo, hi, lm, &sc, COARSE); /* find the support */
    for (int i = 0; i < COARSE; i++) {
        if (sc.lp[i] > best - 40.0) {
            first = i < first ? i : first;
            last = i;
        }
    }
    lo = sc.lk[first > 0 ? first - 1 : 0];
    hi = sc.lk[last < COARSE - 1 ? last + 1 : COARSE - 1];
    scan_kappa(h, lo, hi, lm, &sc, SCAN); /* resolve the marginal */
    for (int i = 0; i < SCAN; i++) {
        mx = fmax(mx, sc.lmarg[i]);
    }
    cdf[0] = 0.0;
    for (int i = 1; i < SCAN; i++) {
        cdf[i] = cdf[i - 1] +
                 0.5 * (exp(sc.lmarg[i] - mx) + exp(sc.lmarg[i - 1] - mx));
    }
    pz = TAIL_MASS;
    lo = scan_quantile(&sc, cdf, pz);
    hi = scan_quantile(&sc, cdf, 1.0 - pz);
    if (!(hi > lo)) {
        hi = lo + 1e-6;
    }
    for (int r = 0; r < G; r++) {
        row[r] = lo + (hi - lo) * r / (G - 1);
        width[r] = (hi - lo) / (G - 1);
    }
}

static double pooled_logit(const bw_hier_t *h)
{
    double sy = 0.5, sn = 1.0;

    for (int j = 0; j < h->nr; j++) {
        sy += h->y[j];
        sn += h->n[j];
    }
    return log(sy / (sn - sy));
}

static void normalise(bw_hier_t *h, const double *lp)
{
    double mx = -INFINITY, s = 0.0;

    for (int g = 0; g < h->npts; g++) {
        mx = lp[g] > mx ? lp[g] : mx;
    }
    for (int g = 0; g < h->npts; g++) {
        h->w[g] = isfinite(lp[g]) ? exp(lp[g] - mx) : 0.0;
        s += h->w[g];
    }
    h->nact = 0;
    for (int g = 0; g < h->npts; g++) {
        h->w[g] /= s;
        if (h->w[g] > ACTIVE_W) {
            h->act[h->nact++] = g;
        }
    }
}

/*
 * Population outlier thresholds q(alpha, beta) of the grid points. q is
 * smooth in (logit mu, log kappa), so it is computed exactly on a coarse
 * sub-grid (every max(2, G/8)-th point) and interpolated bilinearly in
 * logit(q): ~50 quantiles per refresh instead of G^2.
 */
static int coarse_axis(int G, int *idx)
{
    int step = (G - 1) / 8 > 2 ? (G - 1) / 8 : 2, n = 0;

    for (int i = 0; i < G - 1; i += step) {
        idx[n++] = i;
    }
    idx[n++] = G - 1;
    return n;
}

static void bb_quantiles(bw_hier_t *h)
{
    int G = h->cfg->grid, ci[210], nc = coarse_axis(G, ci);
    double lq[210 * 210 / 16 + 64];

    for (int i = 0; i < nc; i++) {
        for (int k = 0; k < nc; k++) {
            int g = ci[i] * G + ci[k];
            double q =
                beta_quantile(h->cfg->outlier_quantile, h->ga[g], h->gb[g]);
            q = clampd(q, 1e-300, 1.0 - 1e-16);
            lq[i * nc + k] = log(q) - log1p(-q);
        }
    }
    for (int a = 0; a < h->nact; a++) {
        int g = h->act[a], gi = g / G, gk = g % G, i = 0, k = 0;
        double ti, tk, l;
        while (i < nc - 2 && ci[i + 1] <= gi) {
            i++;
        }
        while (k < nc - 2 && ci[k + 1] <= gk) {
            k++;
        }
        ti = (double)(gi - ci[i]) / (ci[i + 1] - ci[i]);
        tk = (double)(gk - ci[k]) / (ci[k + 1] - ci[k]);
        l = (1 - ti) * (1 - tk) * lq[i * nc + k] +
            (1 - ti) * tk * lq[i * nc + k + 1] +
            ti * (1 - tk) * lq[(i + 1) * nc + k] +
            ti * tk * lq[(i + 1) * nc + k + 1];
        h->gq[g] = 1.0 / (1.0 + exp(-l));
    }
}

/*
 * The grid: G rows of log kappa (kappa_rows); in each row G points of logit mu
 * spanning the conditional mode +- grid_sd conditional sds. The row's spacing
 * enters the quadrature weight, so the grid follows curved and multi-modal
 * posteriors without a global optimiser.
 */
static bw_err_t bb_refresh(bw_hier_t *h)
{
    int G = h->cfg->grid;
    double *lp = h->gq; /* scratch: quantiles are computed after */
    double pm = 0.0, pk = 0.0, lm = pooled_logit(h), row[201], width[201];

    kappa_rows(h, lm, row, width);
    for (int i = 0; i < G; i++) {
        double lk = row[i], sd, lo, hi, dm;
        profile_mu(h, lk, &lm, &sd);
        lo = fmax(lm - h->cfg->grid_sd * sd, -LOGIT_LIM);
        hi = fmin(lm + h->cfg->grid_sd * sd, LOGIT_LIM);
        dm = (hi - lo) / (G - 1);
        for (int k = 0; k < G; k++) {
            double x = lo + dm * k, mu = 1.0 / (1.0 + exp(-x)), kap = exp(lk);
            int g = i * G + k;
            h->ga[g] = mu * kap;
            h->gb[g] = (1.0 - mu) * kap;
            lp[g] = bb_logpost(h, x, lk) + log(dm * width[i]);
        }
    }
    normalise(h, lp);
    for (int a = 0; a < h->nact; a++) {
        int g = h->act[a];
        double al = h->ga[g], be = h->gb[g];
        pm += h->w[g] * al / (al + be);
        pk += h->w[g] * (al + be);
    }
    h->pop_mean = pm;
    h->spread = pk;
    return BW_OK;
}

/* ---- normal hyperposterior ---- */

static double pooled_within(const bw_hier_t *h)
{
    double ss = 0.0, w = 0.0;

    for (int j = 0; j < h->nr; j++) {
        if (h->n[j] > 0.0) {
            ss += h->s2[j];
            w += h->n[j];
        }
    }
    return w > 0.0 ? ss / w : 0.0;
}

/* Region j's mean and squared standard error. */
static void nm_region(const bw_hier_t *h, int j, double vpool, double *ybar,
                      double *se2)
{
    double nj = h->n[j], v = h->s2[j];
    double nu = h->cfg->within_prior_n;

    *ybar = h->y[j] / nj;
    *se2 = fmax((v + nu * vpool) / (nj + nu), 1e-300) / nj;
}

/* p(tau | y) up to a constant, mu integrated (BDA3 eq. 5.21). */
static double nm_logpost(const bw_hier_t *h, double tau, double vpool,
                         double *muhat)
{
    double sw = 0.0, swy = 0.0, lp = 0.0;

    for (int j = 0; j < h->nr; j++) {
        double yb, se2;
        if (h->n[j] <= 0.0) {
            continue;
        }
        nm_region(h, j, vpool, &yb, &se2);
        sw += 1.0 / (se2 + tau * tau);
        swy += yb / (se2 + tau * tau);
    }
    *muhat = swy / sw;
    for (int j = 0; j < h->nr; j++) {
        double yb, se2, v;
        if (h->n[j] <= 0.0) {
            continue;
        }
        nm_region(h, j, vpool, &yb, &se2);
        v = se2 + tau * tau;
        lp += -0.5 * log(v) - 0.5 * (yb - *muhat) * (yb - *muhat) / v;
    }
    return lp - 0.5 * log(sw);
}

static bw_err_t nm_refresh(bw_hier_t *h)
{
    double vpool = pooled_within(h), lo = INFINITY, hi = -INFINITY, semax = 0.0;
    double tmax, pm = 0.0, pt = 0.0;
    double *lp = h->gq;

    for (int j = 0; j < h->nr; j++) {
        double yb, se2;
        if (h->n[j] > 0.0) {
            nm_region(h, j, vpool, &yb, &se2);
            lo = fmin(lo, yb);
            hi = fmax(hi, yb);
            semax = fmax(semax, sqrt(se2));
        }
    }
    tmax = 3.0 * (hi - lo) + 3.0 * semax + 1e-12;
    for (int g = 0; g < h->npts; g++) {
        double tau = tmax * g / (h->npts - 1);
        h->gb[g] = tau;
        lp[g] = nm_logpost(h, tau, vpool, &h->ga[g]);
    }
    normalise(h, lp);
    for (int a = 0; a < h->nact; a++) {
        int g = h->act[a];
        pm += h->w[g] * h->ga[g];
        pt += h->w[g] * h->gb[g];
    }
    h->pop_mean = pm;
    h->spread = pt;
    return BW_OK;
}

bw_err_t bw_hier_refresh(bw_hier_t *h)
{
    int any = 0;

    for (int j = 0; j < h->nr; j++) {
        any |= h->n[j] > 0.0;
    }
    if (!any) {
        return BW_ERR_NOTFOUND;
    }
    return h->type->refresh(h);
}

/* ---- per-region posterior ---- */

static void bb_component(const bw_hier_t *h, int j, int g, double vpool,
                         comp_t *c)
{
    double k = h->ga[g] + h->gb[g], mu = h->ga[g] / k;

    (void)vpool;
    c->a = h->ga[g] + h->y[j];
    c->b = h->gb[g] + h->n[j] - h->y[j];
    c->shrink = k / (k + h->n[j]);
    c->q = h->gq[g];
    c->pop_sd = sqrt(mu * (1.0 - mu) / (k + 1.0));
    c->qv = 0.0;
}

/*
 * Region j at grid point g (tau): theta_j | mu, y_j is N((1 - B) y_j +
 * B mu, (1 - B) se_j^2), and mu | tau is N(muhat, V) (BDA3 5.4). Its
 * posterior: mean (1 - B) y_j + B muhat, variance (1 - B) se_j^2 + B^2 V,
 * with V over every region with data. The outlier test asks whether
 * theta_j lies above mu + z tau, and mu is the same uncertain mu: theta_j
 * - mu has variance (1 - B) se_j^2 + (1 - B)^2 V, with V over the others
 * only, the population being fitted without j (loo_outlier). With mu
 * taken as known, a region measured well (B near 0) was judged against a
 * threshold as certain as tau alone made it: 0.466 against the 2-D
 * integral's 0.469 above four others (test_hier's
 * test_normal_outlier_vs_integration, the grid's error extrapolated
 * away), and where tau is well determined mu's uncertainty is all of it.
 */
static void nm_component(const bw_hier_t *h, int j, int g, double vpool,
                         comp_t *c)
{
    double yb, se2, tau2 = h->gb[g] * h->gb[g], B, vmu = 0.0, vo = 0.0;

    nm_region(h, j, vpool, &yb, &se2);
    B = tau2 > 0.0 ? se2 / (se2 + tau2) : 1.0;
    for (int i = 0; i < h->nr; i++) {
        double yi, si;
        if (h->n[i] > 0.0) {
            nm_region(h, i, vpool, &yi, &si);
            vmu += 1.0 / (si + tau2);
            vo += i != j ? 1.0 / (si + tau2) : 0.0;
        }
    }
    vmu = 1.0 / vmu;
    vo = vo > 0.0 ? 1.0 / vo : 0.0;
    c->a = (1.0 - B) * yb + B * h->ga[g];
    c->b = (1.0 - B) * se2 + B * B * vmu;
    c->qv = (1.0 - B) * se2 + (1.0 - B) * (1.0 - B) * vo;
    c->shrink = B;
    c->q =
        h->ga[g] + gsl_cdf_ugaussian_Pinv(h->cfg->outlier_quantile) * h->gb[g];
    c->pop_sd = h->gb[g];
}

static double bb_comp_cdf(const comp_t *c, double x)
{
    return beta_cdf(x, c->a, c->b);
}

static double nm_comp_cdf(const comp_t *c, double x)
{
    return gsl_cdf_gaussian_P(x - c->a, sqrt(c->b));
}

static double bb_comp_outlier(const comp_t *c)
{
    return 1.0 - bb_comp_cdf(c, c->q);
}

/* At tau 0 (B 1) theta_j is mu: no spread, and never above mu + 0. */
static double nm_comp_outlier(const comp_t *c)
{
    if (!(c->qv > 0.0)) {
        return c->a > c->q ? 1.0 : 0.0;
    }
    return gsl_cdf_gaussian_Q(c->q - c->a, sqrt(c->qv));
}

static void bb_comp_moments(const comp_t *c, double *m, double *v)
{
    double s = c->a + c->b;

    *m = c->a / s;
    *v = c->a * c->b / (s * s * (s + 1.0));
}

static void nm_comp_moments(const comp_t *c, double *m, double *v)
{
    *m = c->a;
    *v = c->b;
}

/* A component's normaliser for the mixture density: log B(a, b) for a
 * Beta, the sd for a normal. */
static double bb_comp_norm(const comp_t *c)
{
    return bw__lnbeta(c->a, c->b);
}

static double nm_comp_norm(const comp_t *c)
{
    return sqrt(c->b);
}

/* One component's CDF and density at x (ca, cb, cl as stored). */
static void bb_mix_term(double ca, double cb, double cl, double x, double *F,
                        double *f)
{
    *F = beta_cdf(x, ca, cb);
    *f = exp((ca - 1.0) * log(x) + (cb - 1.0) * log1p(-x) - cl);
}

static void nm_mix_term(double ca, double cb, double cl, double x, double *F,
                        double *f)
{
    double z = (x - ca) / cl;

    (void)cb;
    *F = gsl_cdf_ugaussian_P(z);
    *f = exp(-0.5 * z * z) / (cl * sqrt(2 * M_PI));
}

/* Mixture CDF and density at x from the precomputed components. */
static void mix_eval(const bw_hier_t *h, double x, double *F, double *f)
{
    double sf = 0.0, sd = 0.0;

    for (int a = 0; a < h->nact; a++) {
        double F1, f1;
        h->type->mix_term(h->ca[a], h->cb[a], h->cl[a], x, &F1, &f1);
        sf += h->cw[a] * F1;
        sd += h->cw[a] * f1;
    }
    *F = sf;
    *f = sd;
}

/* Quantile p of the region's grid mixture by safeguarded Newton. */
static void mix_cdf(const void *ctx, double x, double *F, double *f)
{
    mix_eval(ctx, x, F, f);
}

static double mixture_quantile(const bw_hier_t *h, double p, double mean,
                               double var)
{
    double lo, hi, x;

    /* no spread (one event, or m2 - m^2 rounded below 0): a point mass;
     * sqrt of it made the interval NaN */
    if (!(var > 0.0)) {
        return mean;
    }
    lo = mean - 40 * sqrt(var), hi = mean + 40 * sqrt(var);
    x = mean + gsl_cdf_ugaussian_Pinv(p) * sqrt(var);

    if (h->type->unit_interval) {
        lo = 0.0, hi = 1.0;
        if (var > 0.0 && var < mean * (1.0 - mean)) {
            /* start at the quantile of the moment-matched Beta */
            double k = mean * (1.0 - mean) / var - 1.0;
            x = beta_quantile(p, mean * k, (1.0 - mean) * k);
        }
    }
    if (h->type->unit_interval) {
        return solve_cdf(mix_cdf, h, p, x, lo, hi, 1e-8, 1e-300, 1e-14);
    }
    /* to 1e-8 of the spread, not of the value: a mean of 1e8 with an sd
     * of 1 stopped a whole sd short */
    return solve_cdf(mix_cdf, h, p, x, lo, hi, DBL_EPSILON,
                     1e-8 * sqrt(var) / DBL_EPSILON, 1e-14 * sqrt(var));
}

static double exceed(const bw_hier_t *h, const comp_t *c, double thr)
{
    return 1.0 - h->type->comp_cdf(c, thr);
}

/*
 * P(theta_j > population quantile), cross-validated (Marshall &
 * Spiegelhalter 2007, "Identifying outliers in Bayesian hierarchical
 * models"): the population is fitted without region j, so one deviant
 * region cannot widen the population enough to hide itself. theta_j's
 * posterior combines that population prior with region j's own data.
 */
static double loo_outlier(bw_hier_t *h, int j)
{
    double yj = h->y[j], nj = h->n[j], s2j = h->s2[j], vpool, po = 0.0;
    int others = 0;

    for (int i = 0; i < h->nr; i++) {
        others += i != j && h->n[i] > 0.0;
    }
    if (others < h->type->min_others) {
        return 0.0; /* no population to compare with */
    }
    h->y[j] = h->n[j] = h->s2[j] = 0.0;
    vpool = h->type->pooled_var(h);
    bw_hier_refresh(h);
    h->y[j] = yj, h->n[j] = nj, h->s2[j] = s2j;
    if (h->type->population_quantiles != NULL) {
        h->type->population_quantiles(h);
    }
    for (int a = 0; a < h->nact; a++) {
        comp_t c;
        h->type->component(h, j, h->act[a], vpool, &c);
        po += h->w[h->act[a]] * h->type->comp_outlier(&c);
    }
    return fmin(fmax(po, 0.0), 1.0);
}

/* ---- the scheduled population (counts, refresh_intervals > 0) ---- */

static bw_err_t exact_region(bw_hier_t *h, int j, double slo,
                             bw_hier_out_t *out);

/* The population's Beta at the posterior means of logit(mu) and log(kappa)
 * under grid weights wt[] over the active points (a plug-in of the
 * hyperparameters; matching the mixture's moments instead lets its few
 * small-kappa points, whose Betas are very wide, dominate the variance, and
 * a quiet region is then hardly pooled at all). */
static void population_beta(const bw_hier_t *h, const double *wt, double *a,
                            double *b)
{
    double lm = 0.0, lk = 0.0, mu, k;

    for (int i = 0; i < h->nact; i++) {
        int g = h->act[i];
        double kap = h->ga[g] + h->gb[g];
        lm += wt[i] * log(h->ga[g] / h->gb[g]);
        lk += wt[i] * log(kap);
    }
    mu = 1.0 / (1.0 + exp(-lm));
    k = fmax(exp(lk), h->cfg->kappa_min);
    mu = clampd(mu, 1e-12, 1.0 - 1e-12);
    *a = mu * k;
    *b = (1.0 - mu) * k;
}

/*
 * Region j's leave-one-out population from the full grid by importance
 * reweighting (w_g / p(y_j | g): the exact grid posterior without y_j, on
 * the full fit's grid). Returns the effective sample size of the weights;
 * when it is small the full grid does not cover the posterior without j
 * (a strong outlier), and the caller refits without j instead.
 */
static double loo_reweight(const bw_hier_t *h, int j, double *a, double *b)
{
    double *lw = h->cw, mx = -INFINITY, s = 0.0, s2 = 0.0;

    for (int i = 0; i < h->nact; i++) {
        int g = h->act[i];
        double al = h->ga[g], be = h->gb[g];
        lw[i] = log(h->w[g]) -
                (bw__lnbeta(al + h->y[j], be + h->n[j] - h->y[j]) -
                 bw__lnbeta(al, be));
        mx = lw[i] > mx ? lw[i] : mx;
    }
    for (int i = 0; i < h->nact; i++) {
        lw[i] = exp(lw[i] - mx);
        s += lw[i];
    }
    for (int i = 0; i < h->nact; i++) {
        lw[i] /= s;
        s2 += lw[i] * lw[i];
    }
    population_beta(h, lw, a, b);
    return 1.0 / s2;
}

/* The same by refitting without j (the exact leave-one-out grid). */
static void loo_refit(bw_hier_t *h, int j, double *a, double *b)
{
    double yj = h->y[j], nj = h->n[j];

    h->y[j] = h->n[j] = 0.0;
    if (bw_hier_refresh(h) == BW_OK) {
        for (int i = 0; i < h->nact; i++) {
            h->cw[i] = h->w[h->act[i]];
        }
        population_beta(h, h->cw, a, b);
    }
    h->y[j] = yj, h->n[j] = nj;
}

static int active_regions(const bw_hier_t *h)
{
    int n = 0;

    for (int j = 0; j < h->nr; j++) {
        n += h->n[j] > 0.0;
    }
    return n;
}

/* Population sd of the full fit (the grid's average population sd). */
static double population_sd(const bw_hier_t *h)
{
    double psd = 0.0;

    for (int i = 0; i < h->nact; i++) {
        int g = h->act[i];
        double kap = h->ga[g] + h->gb[g], mu = h->ga[g] / kap;
        psd += h->w[g] * sqrt(mu * (1.0 - mu) / (kap + 1.0));
    }
    return psd;
}

/* Refit the population and every region's leave-one-out prior. */
static bw_err_t scheduled_refit(bw_hier_t *h)
{
    int refit = 0, others;

    h->refit_regions = active_regions(h);
    others = h->refit_regions - 1;

    if (bw_hier_refresh(h) != BW_OK || h->nact == 0) {
        return BW_ERR_NOTFOUND;
    }
    for (int j = 0; j < h->nr; j++) {
        h->lvalid[j] = h->n[j] <= 0.0 ? LV_NONE : LV_SMALL;
        if (h->n[j] <= 0.0 || others < 2) {
            continue;
        }
        if (loo_reweight(h, j, &h->la[j], &h->lb[j]) < 0.05 * h->nact) {
            h->lvalid[j] = LV_REFIT; /* refit below, without the full grid */
            refit = 1;
        } else {
            h->lvalid[j] = LV_OK;
        }
    }
    for (int j = 0; refit && j < h->nr; j++) {
        if (h->lvalid[j] == LV_REFIT) {
            loo_refit(h, j, &h->la[j], &h->lb[j]);
            h->lvalid[j] = LV_OK;
        }
    }
    if (refit && bw_hier_refresh(h) != BW_OK) {
        return BW_ERR_NOTFOUND;
    }
    for (int j = 0; j < h->nr; j++) {
        if (h->lvalid[j] == LV_OK) {
            h->lq[j] =
                beta_quantile(h->cfg->outlier_quantile, h->la[j], h->lb[j]);
        }
    }
    h->pop_sd = population_sd(h);
    h->since_refit = 0;
    return BW_OK;
}

/* Region j's posterior from its leave-one-out population prior and its
 * own data: a conjugate Beta, O(1) (a few incomplete beta functions). */
static bw_err_t scheduled_region(bw_hier_t *h, int j, double slo,
                                 bw_hier_out_t *out)
{
    double tail = (1.0 - h->cfg->credible_mass) / 2.0, a, b, k;
    beta_t B;
    /* A region's first event refits (it has no leave-one-out prior), so
     * the count of regions at the last refit is the current one. */
    int due = h->since_refit >=
              (uint64_t)h->cfg->refresh_intervals * (uint64_t)h->refit_regions;

    if ((due || h->lvalid[j] == LV_NONE) && scheduled_refit(h) != BW_OK) {
        return BW_ERR_NOTFOUND;
    }
    if (h->lvalid[j] != LV_OK) { /* fewer than three regions: none */
        h->la[j] = h->lb[j] = 0.5;
        h->lq[j] = 1.0;
    }
    k = h->la[j] + h->lb[j];
    a = h->la[j] + h->y[j];
    b = h->lb[j] + h->n[j] - h->y[j];
    B = beta_of(a, b);
    out->mean = a / (a + b);
    out->lower = beta_quantile_fast(tail, &B);
    out->upper = beta_quantile_fast(1.0 - tail, &B);
    out->raw = h->y[j] / h->n[j];
    out->shrinkage = k / (k + h->n[j]);
    out->p_slo = slo > 0.0 ? 1.0 - beta_cdf_of(&B, slo) : NAN;
    out->p_outlier =
        h->lvalid[j] == LV_OK ? 1.0 - beta_cdf_of(&B, h->lq[j]) : 0.0;
    out->pop_mean = h->pop_mean;
    out->pop_z = h->pop_sd > 0.0 ? (out->mean - h->pop_mean) / h->pop_sd : 0.0;
    out->n_eff = h->n[j];
    return BW_OK;
}

bw_err_t bw_hier_region(bw_hier_t *h, int j, double slo, bw_hier_out_t *out)
{
    if (h->type->scheduled && h->cfg->refresh_intervals > 0) {
        memset(out, 0, sizeof(*out));
        if (j < 0 || j >= h->nr || h->n[j] <= 0.0) {
            return BW_ERR_NOTFOUND;
        }
        return scheduled_region(h, j, slo, out);
    }
    return exact_region(h, j, slo, out);
}

/* The exact posterior: the grid refitted at every call, and again without
 * the region for its outlier probability. */
static bw_err_t exact_region(bw_hier_t *h, int j, double slo,
                             bw_hier_out_t *out)
{
    double vpool, m = 0.0, m2 = 0.0, sh = 0.0, ps = 0.0, psd = 0.0, po;
    double tail = (1.0 - h->cfg->credible_mass) / 2.0;

    memset(out, 0, sizeof(*out));
    if (j < 0 || j >= h->nr || h->n[j] <= 0.0) {
        return BW_ERR_NOTFOUND;
    }
    po = loo_outlier(h, j);
    if (bw_hier_refresh(h) != BW_OK || h->nact == 0) {
        return BW_ERR_NOTFOUND;
    }
    vpool = h->type->pooled_var(h);
    for (int a = 0; a < h->nact; a++) {
        int g = h->act[a];
        double w = h->w[g], cm, cv;
        comp_t c;
        h->type->component(h, j, g, vpool, &c);
        h->type->comp_moments(&c, &cm, &cv);
        h->ca[a] = c.a;
        h->cb[a] = c.b;
        h->cw[a] = w;
        h->cl[a] = h->type->comp_norm(&c);
        m += w * cm;
        sh += w * c.shrink;
        ps += slo > 0.0 ? w * exceed(h, &c, slo) : 0.0;
        psd += w * c.pop_sd;
    }
    /* the mixture's variance about its mean, E[var] + var[E] (the raw
     * second moment less m^2 was 0 for means far from zero) */
    for (int a = 0; a < h->nact; a++) {
        comp_t c = {.a = h->ca[a], .b = h->cb[a]};
        double cm, cv;
        h->type->comp_moments(&c, &cm, &cv);
        m2 += h->cw[a] * (cv + (cm - m) * (cm - m));
    }
    out->mean = m;
    out->lower = mixture_quantile(h, tail, m, m2);
    out->upper = mixture_quantile(h, 1.0 - tail, m, m2);
    out->raw = h->y[j] / h->n[j];
    out->shrinkage = sh;
    out->p_slo = slo > 0.0 ? fmin(fmax(ps, 0.0), 1.0) : NAN;
    out->p_outlier = po;
    out->pop_mean = h->pop_mean;
    out->pop_z = psd > 0.0 ? (m - h->pop_mean) / psd : 0.0;
    out->n_eff = h->n[j];
    return BW_OK;
}

/* ---- data ---- */

/* A region left the group: every region's leave-one-out prior is refitted
 * at the group's next event (the schedule's count of regions is not
 * state, so a restored group must not wait for it either). */
static void population_changed(bw_hier_t *h)
{
    if (h->lvalid != NULL) {
        memset(h->lvalid, 0, (size_t)h->nr);
    }
}

static void decay(bw_hier_t *h, int64_t t_ms)
{
    double f;

    if (!h->have_time) {
        h->t_last = t_ms;
        h->have_time = 1;
        return;
    }
    if (t_ms <= h->t_last || h->cfg->half_life_ms <= 0.0) {
        return;
    }
    f = exp2(-(double)(t_ms - h->t_last) / h->cfg->half_life_ms);
    for (int j = 0; j < 3 * h->nr; j++) {
        h->y[j] *= f;
    }
    /* A region whose weight has decayed to nothing has left the group:
     * kept "active" with n a denormal, its standard error vpool / n was
     * inf and every grid point's likelihood -inf, so every event of the
     * group failed (a region silent for ~1000 half-lives). */
    for (int j = 0; j < h->nr; j++) {
        if (h->n[j] < DECAYED) {
            if (h->n[j] > 0.0) {
                population_changed(h);
            }
            h->y[j] = h->n[j] = h->s2[j] = 0.0;
        }
    }
    h->t_last = t_ms;
}

bw_err_t bw_hier_set(bw_hier_t *h, int j, double value, double trials)
{
    if (j < 0 || j >= h->nr || !isfinite(value) || !isfinite(trials)) {
        return BW_ERR_RANGE;
    }
    if (!h->type->valid(value, trials)) {
        return BW_ERR_RANGE;
    }
    h->y[j] = value;
    h->n[j] = trials;
    h->s2[j] = 0.0;
    return BW_OK;
}

void bw_hier_forget(bw_hier_t *h, int j)
{
    if (h == NULL || j < 0 || j >= h->nr) {
        return;
    }
    if (h->n[j] > 0.0) { /* an empty slot's leaving changes nothing */
        population_changed(h);
    }
    h->y[j] = h->n[j] = h->s2[j] = 0.0;
    if (h->own != NULL) {
        bw__own_init(&h->own[j]);
    }
}

double bw_hier_weight(const bw_hier_t *h, int j)
{
    return h != NULL && j >= 0 && j < h->nr ? h->n[j] : 0.0;
}

/* Region j's interval against its own baseline (ownrate.c). */
static void own_evidence(bw_hier_t *h, int j, int64_t t_ms, double k, double n,
                         bw_hier_out_t *out)
{
    bw_own_out_t oo;

    bw__own_observe(&h->own[j], h->cfg, t_ms, k, n, &oo);
    out->p_own = oo.p_abnormal;
    out->own_z = oo.z;
    out->own_ratio = oo.ratio;
    out->own_since_ms = oo.since_ms;
    out->own_adopted = oo.adopted;
    out->own_warmup = oo.warmup;
}

bw_err_t bw_hier_observe(bw_hier_t *h, int j, int64_t t_ms, double value,
                         double trials, double slo, bw_hier_out_t *out)
{
    bw_err_t err;

    if (j < 0 || j >= h->nr || !isfinite(value)) {
        return BW_ERR_RANGE;
    }
    if (!h->type->valid(value, trials) || !h->type->valid_interval(trials)) {
        return BW_ERR_RANGE;
    }
    decay(h, t_ms);
    h->type->add(h, j, value, trials);
    err = bw_hier_region(h, j, slo, out);
    if (h->type->own_baseline) { /* the region against itself needs no
                                  * population: it learns the interval its
                                  * counts took in even if the fit failed */
        own_evidence(h, j, t_ms, value, trials, out);
    }
    return err == BW_ERR_NOTFOUND ? BW_ERR_NUMERIC : err;
}

/* ---- the two kinds ---- */

static size_t bb_grid_points(const bw_hier_cfg_t *cfg)
{
    return (size_t)cfg->grid * cfg->grid; /* logit(mu) x log(kappa) */
}

static size_t nm_grid_points(const bw_hier_cfg_t *cfg)
{
    return 4 * (size_t)cfg->grid; /* mu | tau rows */
}

static double bb_pooled_var(const bw_hier_t *h)
{
    (void)h;
    return 0.0;
}

/* counts: 0 <= value <= trials; normal: any finite value (checked before) */
static bool bb_valid(double value, double trials)
{
    return value >= 0 && trials >= value;
}

static bool nm_valid(double value, double trials)
{
    (void)value, (void)trials;
    return true;
}

/* an observed interval: counts need its trials */
static bool bb_valid_interval(double trials)
{
    return isfinite(trials) && trials > 0;
}

static bool nm_valid_interval(double trials)
{
    (void)trials;
    return true;
}

static void bb_add(bw_hier_t *h, int j, double value, double trials)
{
    h->y[j] += value;
    h->n[j] += trials;
    h->since_refit++;
}

/* West (1979): with the new value's weight 1, the sum of squares about
 * the mean grows by (x - old mean)(x - new mean); forgetting scales it
 * with the weights (decay), the mean unchanged. */
static void nm_add(bw_hier_t *h, int j, double value, double trials)
{
    double d = h->n[j] > 0.0 ? value - h->y[j] / h->n[j] : 0.0;

    (void)trials;
    h->y[j] += value;
    h->n[j] += 1.0;
    /* the two factors share a sign in exact arithmetic; rounded, for a
     * value within an ulp of both means they may not, and a sum of
     * squares below 0 was a group the state's load refuses */
    h->s2[j] = fmax(h->s2[j] + d * (value - h->y[j] / h->n[j]), 0.0);
}

static const hier_type_t count_type = {
    .kind = BW_HIER_COUNT,
    .grid_points = bb_grid_points,
    .alloc = alloc_counts,
    .refresh = bb_refresh,
    .population_quantiles = bb_quantiles,
    .pooled_var = bb_pooled_var,
    .component = bb_component,
    .comp_cdf = bb_comp_cdf,
    .comp_outlier = bb_comp_outlier,
    .comp_moments = bb_comp_moments,
    .comp_norm = bb_comp_norm,
    .mix_term = bb_mix_term,
    .valid = bb_valid,
    .valid_interval = bb_valid_interval,
    .add = bb_add,
    .min_others = 2,
    .unit_interval = true,
    .scheduled = true,
    .own_baseline = true,
};

static const hier_type_t normal_type = {
    .kind = BW_HIER_NORMAL,
    .grid_points = nm_grid_points,
    .refresh = nm_refresh,
    .pooled_var = pooled_within,
    .component = nm_component,
    .comp_cdf = nm_comp_cdf,
    .comp_outlier = nm_comp_outlier,
    .comp_moments = nm_comp_moments,
    .comp_norm = nm_comp_norm,
    .mix_term = nm_mix_term,
    .valid = nm_valid,
    .valid_interval = nm_valid_interval,
    .add = nm_add,
    .min_others = 3,
};

static const hier_type_t *type_of(bw_hier_kind_t kind)
{
    return kind == BW_HIER_COUNT ? &count_type : &normal_type;
}

bw_err_t bw_hier_save(const bw_hier_t *h, bw_wbuf_t *w)
{
    bw_wbuf_u32(w, HIER_STATE_TAG);
    bw_wbuf_u32(w, (uint32_t)h->type->kind);
    bw_wbuf_u32(w, (uint32_t)h->nr);
    bw_wbuf_f64s(w, h->y, 3 * (size_t)h->nr);
    bw_wbuf_i64(w, h->t_last);
    bw_wbuf_u32(w, (uint32_t)h->have_time);
    for (int j = 0; h->own != NULL && j < h->nr; j++) {
        bw__own_save(&h->own[j], w);
    }
    if (h->own != NULL) { /* the scheduled population, as last refitted */
        bw_wbuf_f64s(w, h->la, 3 * (size_t)h->nr);
        bw_wbuf_bytes(w, h->lvalid, (size_t)h->nr);
        bw_wbuf_u64(w, h->since_refit);
        bw_wbuf_f64(w, h->pop_mean);
        bw_wbuf_f64(w, h->pop_sd);
    }
    return w->err;
}

/* The scheduled population as saved (header of bw_hier_save). */
static void load_schedule(bw_hier_t *h, bw_rbuf_t *r)
{
    bw_rbuf_f64s(r, h->la, 3 * (size_t)h->nr);
    bw_rbuf_bytes(r, h->lvalid, (size_t)h->nr);
    h->since_refit = bw_rbuf_u64(r);
    h->refit_regions = active_regions(h);
    h->pop_mean = bw_rbuf_finite(r);
    h->pop_sd = bw_rbuf_finite(r);
    for (int j = 0; j < h->nr; j++) {
        if ((h->lvalid[j] != LV_NONE && h->lvalid[j] != LV_OK &&
             h->lvalid[j] != LV_SMALL) ||
            (h->lvalid[j] == LV_OK &&
             !(h->la[j] > 0.0 && h->lb[j] > 0.0 && isfinite(h->la[j]) &&
               isfinite(h->lb[j]) && h->lq[j] >= 0.0 && h->lq[j] <= 1.0))) {
            r->err = BW_ERR_CORRUPT;
        }
    }
}

bw_err_t bw_hier_load(bw_hier_t *h, bw_rbuf_t *r)
{
    uint32_t tag = bw_rbuf_u32(r);

    if (tag != HIER_STATE_TAG && tag != HIER_STATE_TAG_V3 &&
        tag != HIER_STATE_TAG_RAW) {
        return BW_ERR_CORRUPT;
    }
    if (bw_rbuf_u32(r) != (uint32_t)h->type->kind) {
        /* the other pooled model's (a route switched between counts and
         * normal values): a config change, not a corrupt record */
        return r->err != BW_OK ? r->err : BW_ERR_VERSION;
    }
    if (bw_rbuf_u32(r) != (uint32_t)h->nr) {
        return BW_ERR_CORRUPT;
    }
    for (int j = 0; j < 3 * h->nr; j++) {
        h->y[j] = bw_rbuf_finite(r);
    }
    for (int j = 0; tag == HIER_STATE_TAG_RAW && j < h->nr; j++) {
        if (h->n[j] > 0.0 && h->s2[j] >= 0.0) { /* as the build before */
            h->s2[j] = fmax(h->s2[j] - h->y[j] * h->y[j] / h->n[j], 0.0);
        }
    }
    /* statistics a group could hold: no negative weight or sum of
     * squares, counts within their trials (a count above them made the
     * pooled logit the log of a negative, every grid point NaN); a sum of
     * squares a rounding below 0, as the build before nm_add's clamp
     * could save, is 0 */
    for (int j = 0; j < h->nr; j++) {
        double tol = 1e-12 * (h->n[j] > 0.0 ? h->y[j] * h->y[j] / h->n[j] : 0.0);
        if (h->s2[j] < 0.0 && h->s2[j] >= -tol - 1e-300) {
            h->s2[j] = 0.0;
        }
        if (!(h->n[j] >= 0.0) || !(h->s2[j] >= 0.0) ||
            !h->type->valid(h->y[j], h->n[j])) {
            r->err = BW_ERR_CORRUPT;
        }
    }
    h->t_last = bw_rbuf_time(r, 0);
    h->have_time = (int)bw_rbuf_u32_in(r, 0, 1);
    for (int j = 0; h->own != NULL && j < h->nr; j++) {
        bw__own_load(&h->own[j], r, tag == HIER_STATE_TAG);
    }
    if (h->own != NULL) {
        load_schedule(h, r);
    }
    if (r->err != BW_OK) {
        return BW_ERR_CORRUPT;
    }
    /* The grid is derived state: rebuild it from the statistics (the
     * scheduled population keeps what its last refit saw). */
    {
        double pm = h->pop_mean, psd = h->pop_sd;
        bw_err_t err = bw_hier_refresh(h);
        if (h->own != NULL && h->cfg->refresh_intervals > 0) {
            h->pop_mean = pm;
            h->pop_sd = psd;
        }
        return err == BW_ERR_NOTFOUND ? BW_OK : err;
    }
}
