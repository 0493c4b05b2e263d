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

static inline double bw__lgamma(double x)
{
    int sign;

    return lgamma_r(x, &sign);
}

#endif
