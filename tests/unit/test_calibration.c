/*
 * Calibration of p_anomaly on data simulated from the model itself:
 * Student-t noise as the model represents it (the Gauss-Laguerre scale
 * mixture), spikes and level shifts at their prior rates, a random noise
 * scale per series that the filter must learn. Events after warm-up are
 * binned by p_anomaly; in every bin the anomalous fraction must match the
 * mean forecast within Monte Carlo error, and
 *  - ECE (expected calibration error) below its Monte Carlo bound
 *    sum_b (n_b/N) * 3 * sqrt(p_b (1 - p_b) / n_b): what a perfectly
 *    calibrated forecaster would show at about 3 sigma;
 *  - Spiegelhalter's Z (1986) for calibration, |Z| < 4;
 *  - the Brier score well below that of the constant base-rate forecast.
 */
#include <gsl/gsl_errno.h>
#include <gsl/gsl_integration.h>

#include "testutil.h"

#define SERIES 24
#define LEN 2000

static bw_pf_cfg_t model_cfg(void)
{
    bw_pf_cfg_t c = test_pf_cfg();

    c.p_spike = 0.02;
    c.p_shift = 0.005;
    c.recur_window = 0; /* simulated: normal, spike and shift regimes only */
    c.scale_discount = 1.0; /* the simulated noise scale is constant */
    c.warmup = 50;
    return c;
}

/* The model's scale mixture: nodes lambda_j with weights omega_j. */
static int mixture(const bw_pf_cfg_t *c, double *lam, double *om)
{
    gsl_integration_fixed_workspace *w = gsl_integration_fixed_alloc(
        gsl_integration_fixed_laguerre, (size_t)c->t_nodes, 0.0, c->t_dof / 2.0,
        c->t_dof / 2.0 - 1.0, 0.0);
    double s = 0.0;

    for (int j = 0; j < c->t_nodes; j++) {
        s += gsl_integration_fixed_weights(w)[j];
    }
    for (int j = 0; j < c->t_nodes; j++) {
        lam[j] = gsl_integration_fixed_nodes(w)[j];
        om[j] = gsl_integration_fixed_weights(w)[j] / s;
    }
    gsl_integration_fixed_free(w);
    return c->t_nodes;
}

/* One observation from the model; returns 1 if anomalous. */
static int draw(const bw_pf_cfg_t *c, bw_rng_t *rng, const double *lam,
                const double *om, int nn, double sigma, double *level,
                double *y)
{
    double u = bw_rng_uniform(rng), vbar = 0.0;

    for (int j = 0; j < nn; j++) {
        vbar += om[j] / lam[j];
    }
    *level += sqrt(c->level_ratio) * sigma * bw_rng_gauss(rng);
    if (u < c->p_spike) {
        *y = *level + c->spike_scale * sigma * bw_rng_gauss(rng);
        return 1;
    }
    if (u < c->p_spike + c->p_shift) {
        *level += c->shift_scale * sigma * bw_rng_gauss(rng);
        *y = *level + sqrt(vbar) * sigma * bw_rng_gauss(rng);
        return 1;
    }
    u = bw_rng_uniform(rng);
    for (int j = 0; j < nn; j++) {
        if (u < om[j] || j == nn - 1) {
            *y = *level + sigma / sqrt(lam[j]) * bw_rng_gauss(rng);
            return 0;
        }
        u -= om[j];
    }
    return 0;
}

static void reliability(const bw_pf_cfg_t *cfg, const char *what)
{
    bw_pf_cfg_t c = *cfg;
    bw_pf_ws_t *ws = bw_pf_ws_new(&c);
    reliability_t rel;
    double lam[16], om[16], base, zn = 0, zd = 0, ece, bound, zmax;
    double alarms = 0, hits = 0;
    int nn = mixture(&c, lam, om);
    bw_rng_t rng;

    memset(&rel, 0, sizeof(rel));
    bw_rng_seed(&rng, 2026);
    for (int s = 0; s < SERIES; s++) {
        bw_pf_t *pf = bw_pf_new(&c, 1000 + s, NULL, 0);
        double sigma = exp(-2.0 + 5.0 * bw_rng_uniform(&rng));
        double level = 50.0 * sigma;
        for (int t = 0; t < LEN; t++) {
            bw_pf_out_t out;
            double y = 0.0, p;
            int a = draw(&c, &rng, lam, om, nn, sigma, &level, &y);
            assert_int_equal(bw_pf_update(pf, ws, (int64_t)t * 60000, y, &out),
                             BW_OK);
            if (out.warmup || t == 0) {
                continue;
            }
            p = out.p_anomaly;
            rel_add(&rel, p, a);
            zn += (a - p) * (1 - 2 * p);
            zd += (1 - 2 * p) * (1 - 2 * p) * p * (1 - p);
            alarms += p >= 0.5;
            hits += p >= 0.5 && a;
        }
        bw_pf_destroy(pf);
    }
    base = rel.anoms / rel.total * (1 - rel.anoms / rel.total);
    ece = rel_ece(&rel, &bound, &zmax);
    print_message("%s: events %.0f anomalies %.0f: ECE %.5f (bound %.5f) "
                  "Spiegelhalter Z %.2f Brier %.5f (base rate %.5f) "
                  "precision@0.5 %.3f recall@0.5 %.3f\n",
                  what, rel.total, rel.anoms, ece, bound, zn / sqrt(zd),
                  rel.brier / rel.total, base, hits / alarms, hits / rel.anoms);
    assert_true(zmax < 4.5); /* every well-populated bin within 4.5 se */
    assert_true(ece <= bound);
    assert_true(fabs(zn / sqrt(zd)) < 4.0);
    assert_true(rel.brier / rel.total < 0.5 * base);
    bw_pf_ws_destroy(ws);
}

static void test_reliability(void **state)
{
    bw_pf_cfg_t c = model_cfg();

    (void)state;
    reliability(&c, "model");
}

/* The same data with the memory of recent values on and the local noise
 * estimated from it (no recurrent regime: the simulation has none). Where
 * the model holds the series has one state, and the local noise must leave
 * the probabilities calibrated. */
static void test_reliability_with_local_noise(void **state)
{
    bw_pf_cfg_t c = model_cfg();

    (void)state;
    c.recur_window = 2016;
    c.p_recur = 0.0;
    c.local_noise = true;
    reliability(&c, "model + local noise");
}

/* The settings the block filter (block.c) runs with, for the default
 * block_size of 12: the noise sd's prior over sqrt(12), a memory of
 * 2016 / 12 values, the local noise on. p_collective is this filter's
 * p_anomaly on block means; where they follow the model it must be
 * calibrated too. */
static void test_reliability_block_settings(void **state)
{
    bw_pf_cfg_t c = model_cfg();

    (void)state;
    c.block_size = 0;
    c.scale_prior /= sqrt(12.0);
    c.scale_floor /= sqrt(12.0);
    c.recur_window = 2016 / 12;
    c.p_recur = 0.0;
    c.local_noise = true;
    reliability(&c, "block model settings");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reliability),
        cmocka_unit_test(test_reliability_with_local_noise),
        cmocka_unit_test(test_reliability_block_settings),
    };

    gsl_set_error_handler_off();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
