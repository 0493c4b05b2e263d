/*
 * GSL's special functions through their _e forms, so that every status is
 * checked (the house rule): NAN where GSL reports an error, which every
 * caller already treats as "no value" (isfinite checks and fallbacks).
 * lgamma through lgamma_r: glibc's lgamma writes the global signgam, a
 * data race between stream threads. The values are GSL's and libm's own,
 * bit for bit.
 */
#ifndef BW_MODEL_SF_H
#define BW_MODEL_SF_H

#include <math.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_sf_gamma.h>
#include <gsl/gsl_sf_psi.h>

static inline double bw__lnbeta(double a, double b)
{
    gsl_sf_result r;

    return gsl_sf_lnbeta_e(a, b, &r) == GSL_SUCCESS ? r.val : NAN;
}

static inline double bw__psi(double x)
{
    gsl_sf_result r;

    return gsl_sf_psi_e(x, &r) == GSL_SUCCESS ? r.val : NAN;
}

static inline double bw__psi1(double x)
{
    gsl_sf_result r;

    return gsl_sf_psi_1_e(x, &r) == GSL_SUCCESS ? r.val : NAN;
}

/* Digamma and trigamma for x > 0 by the recurrence up to x >= 12 and the
 * asymptotic (Stirling) series there (Abramowitz & Stegun 6.3.18,
 * 6.4.12), to the x^-12 (x^-13) term: the series' first omitted term is
 * below 1e-15 of the value at 12. No status to check, and several times
 * faster than GSL's (which also estimates its error): for the population
 * model's derivatives, four a region per Newton step (test_sf_fast
 * checks them against GSL). NAN for x <= 0 or NAN. */
static inline double bw__psi_fast(double x)
{
    double r = 0.0, x2;

    if (!(x > 0.0)) {
        return NAN;
    }
    for (; x < 12.0; x += 1.0) {
        r -= 1.0 / x;
    }
    x2 = 1.0 / (x * x);
    return r + log(x) - 0.5 / x -
           x2 * (1.0 / 12 -
                 x2 * (1.0 / 120 -
                       x2 * (1.0 / 252 -
                             x2 * (1.0 / 240 -
                                   x2 * (1.0 / 132 - x2 * 691.0 / 32760)))));
}

static inline double bw__psi1_fast(double x)
{
    double r = 0.0, x2;

    if (!(x > 0.0)) {
        return NAN;
    }
    for (; x < 12.0; x += 1.0) {
        r += 1.0 / (x * x);
    }
    x2 = 1.0 / (x * x);
    return r + 1.0 / x + 0.5 * x2 +
           x2 / x *
               (1.0 / 6 -
                x2 * (1.0 / 30 -
                      x2 * (1.0 / 42 -
                            x2 * (1.0 / 30 - x2 * (5.0 / 66 -
                                                   x2 * 691.0 / 2730)))));
}

static inline double bw__lgamma(double x)
{
    int sign;

    return lgamma_r(x, &sign);
}

#endif
