/*
 * Shared helpers for the cmocka unit tests.
 */
#ifndef BW_TESTUTIL_H
#define BW_TESTUTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "bayeswatch/config.h"
#include "bayeswatch/model.h"

/* cmocka's assert_float_equal casts its arguments to float (and, being a
 * macro, only the first term of an expression): tolerances below about
 * 1e-7 relative were never checked. This one compares doubles, with the
 * values in the message. */
static inline void bw_assert_near(double a, double b, double eps,
                                  const char *file, int line)
{
    if (!(fabs(a - b) <= eps)) {
        print_error("%.17g != %.17g (tolerance %g)\n", a, b, eps);
        _fail(file, line);
    }
}
#undef assert_float_equal
#define assert_float_equal(a, b, eps)                                          \
    bw_assert_near((double)(a), (double)(b), (double)(eps), __FILE__, __LINE__)

/* A pf config with every default, seasonality off. */
static inline bw_pf_cfg_t test_pf_cfg(void)
{
    bw_config_t cfg;

    bw_config_defaults(&cfg);
    cfg.model.pf.daily.enabled = false;
    cfg.model.pf.weekly.enabled = false;
    return cfg.model.pf;
}

/* Student-t noise with 3 degrees of freedom scaled to unit variance
 * (t(3) has variance 3): a heavy-tailed family that is not the model's. */
static inline double test_t3_unit(bw_rng_t *rng)
{
    double z = bw_rng_gauss(rng), chi = 0.0;

    for (int i = 0; i < 3; i++) {
        double g = bw_rng_gauss(rng);
        chi += g * g;
    }
    return z / sqrt(chi / 3.0) / sqrt(3.0);
}

/* Little-endian double at byte @p off of @p buf (the state's encoding):
 * tests that patch a saved blob. */
static inline void put_f64_le(uint8_t *buf, size_t off, double v)
{
    uint64_t u;

    memcpy(&u, &v, sizeof(u));
    for (int i = 0; i < 8; i++) {
        buf[off + (size_t)i] = (uint8_t)(u >> (8 * i));
    }
}

/* ... and the little-endian double there. */
static inline double get_f64_le(const uint8_t *buf, size_t off)
{
    uint64_t u = 0;
    double v;

    for (int i = 0; i < 8; i++) {
        u |= (uint64_t)buf[off + (size_t)i] << (8 * i);
    }
    memcpy(&v, &u, sizeof(v));
    return v;
}

/* The little-endian u32 and float there (the state's f32 arrays). */
static inline uint32_t get_u32_le(const uint8_t *buf, size_t off)
{
    uint32_t u = 0;

    for (int i = 0; i < 4; i++) {
        u |= (uint32_t)buf[off + (size_t)i] << (8 * i);
    }
    return u;
}

static inline float get_f32_le(const uint8_t *buf, size_t off)
{
    uint32_t u = get_u32_le(buf, off);
    float v;

    memcpy(&v, &u, sizeof(v));
    return v;
}

static inline void put_f32_le(uint8_t *buf, size_t off, float v)
{
    uint32_t u;

    memcpy(&u, &v, sizeof(u));
    for (int i = 0; i < 4; i++) {
        buf[off + (size_t)i] = (uint8_t)(u >> (8 * i));
    }
}

/* Mean and standard error of x[0..n). */
static inline void mean_se(const double *x, int n, double *mean, double *se)
{
    double m = 0.0, v = 0.0;

    for (int i = 0; i < n; i++) {
        m += x[i];
    }
    m /= n;
    for (int i = 0; i < n; i++) {
        v += (x[i] - m) * (x[i] - m);
    }
    *mean = m;
    *se = sqrt(v / (n - 1) / n);
}

/*
 * A particle filter's P(anomalous) against an exact reference: @p reps
 * (<= 16) filters of @p c on the values y[0..n) (n <= 16, one second
 * apart), seeds seed0 + r. The first step after the start is
 * deterministic and must match to 1e-12; every later one (from step 2)
 * must lie within 5 standard errors of the replicates' mean.
 */
static inline void pf_vs_exact(const bw_pf_cfg_t *c, const double *y, int n,
                               const double *exact, int reps, uint64_t seed0)
{
    double est[16][16];

    for (int r = 0; r < reps; r++) {
        bw_pf_t *pf = bw_pf_new(c, seed0 + (uint64_t)r, NULL, 0);
        bw_pf_ws_t *ws = bw_pf_ws_new(c);
        bw_pf_out_t out;
        assert_non_null(pf);
        assert_non_null(ws);
        for (int t = 0; t < n; t++) {
            assert_int_equal(
                bw_pf_update(pf, ws, (int64_t)t * 1000, y[t], &out), BW_OK);
            est[r][t] = out.p_anomaly;
        }
        assert_float_equal(est[r][1], exact[1], 1e-12);
        bw_pf_ws_destroy(ws);
        bw_pf_destroy(pf);
    }
    for (int t = 0; t < n; t++) {
        print_message("exact p_anomaly[%d] = %.6f\n", t, exact[t]);
    }
    for (int t = 2; t < n; t++) {
        double col[16], mu, se;
        for (int r = 0; r < reps; r++) {
            col[r] = est[r][t];
        }
        mean_se(col, reps, &mu, &se);
        if (fabs(mu - exact[t]) > 5.0 * se + 1e-12) {
            fail_msg("step %d: pf %.6f exact %.6f se %.2g", t, mu, exact[t],
                     se);
        }
    }
}

/*
 * Reliability bins for probability forecasts: ECE, its Monte Carlo bound
 * (what a calibrated forecaster shows at ~3 sigma per bin) and Brier.
 */
#define REL_BINS 10

typedef struct {
    double n[REL_BINS], p[REL_BINS], y[REL_BINS];
    double total, anoms, brier;
} reliability_t;

static inline void rel_add(reliability_t *r, double p, int anomalous)
{
    int b = p >= 1.0 ? REL_BINS - 1 : (int)(p * REL_BINS);

    r->n[b] += 1;
    r->p[b] += p;
    r->y[b] += anomalous;
    r->total += 1;
    r->anoms += anomalous;
    r->brier += (p - anomalous) * (p - anomalous);
}

/* Prints the bins; returns ECE, its bound and the largest per-bin z (over
 * bins with at least 20 events). */
static inline double rel_ece(const reliability_t *r, double *bound,
                             double *zmax)
{
    double ece = 0.0;

    *bound = *zmax = 0.0;
    for (int b = 0; b < REL_BINS; b++) {
        double pb, ob;
        if (r->n[b] == 0) {
            continue;
        }
        pb = r->p[b] / r->n[b];
        ob = r->y[b] / r->n[b];
        ece += r->n[b] / r->total * fabs(ob - pb);
        *bound += r->n[b] / r->total * 3.0 * sqrt(pb * (1 - pb) / r->n[b]);
        if (r->n[b] >= 20) {
            double se = sqrt(fmax(pb * (1 - pb), 1e-4) / r->n[b]);
            *zmax = fmax(*zmax, fabs(ob - pb) / se);
        }
        print_message("bin %d: n %6.0f forecast %.4f observed %.4f\n", b,
                      r->n[b], pb, ob);
    }
    return ece;
}

#endif
