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

#endif
