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

/* A pf config with every default, seasonality off. */
static inline bw_pf_cfg_t test_pf_cfg(void)
{
    bw_config_t cfg;

    bw_config_defaults(&cfg);
    cfg.model.pf.daily.enabled = false;
    cfg.model.pf.weekly.enabled = false;
    return cfg.model.pf;
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
