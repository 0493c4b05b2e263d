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
#define BINS 10

typedef struct {
    double n, p, y;
} bin_t;

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

static void test_reliability(void **state)
{
    bw_pf_cfg_t c = model_cfg();
    bw_pf_ws_t *ws = bw_pf_ws_new(&c);
    bin_t bins[BINS] = {{0}};
    double lam[16], om[16], brier = 0, base = 0, zn = 0, zd = 0, ece = 0;
    double bound = 0, total = 0, alarms = 0, hits = 0, anoms = 0;
    int nn = mixture(&c, lam, om);
    bw_rng_t rng;

    (void)state;
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
            bins[p >= 1.0 ? BINS - 1 : (int)(p * BINS)].n += 1;
            bins[p >= 1.0 ? BINS - 1 : (int)(p * BINS)].p += p;
            bins[p >= 1.0 ? BINS - 1 : (int)(p * BINS)].y += a;
            brier += (p - a) * (p - a);
            zn += (a - p) * (1 - 2 * p);
            zd += (1 - 2 * p) * (1 - 2 * p) * p * (1 - p);
            total += 1;
            anoms += a;
            alarms += p >= 0.5;
            hits += p >= 0.5 && a;
        }
        bw_pf_destroy(pf);
    }
    base = anoms / total * (1 - anoms / total);
    brier /= total;
    for (int b = 0; b < BINS; b++) {
        double pb, ob;
        if (bins[b].n == 0) {
            continue;
        }
        pb = bins[b].p / bins[b].n;
        ob = bins[b].y / bins[b].n;
        ece += bins[b].n / total * fabs(ob - pb);
        bound += bins[b].n / total * 3.0 * sqrt(pb * (1 - pb) / bins[b].n);
        print_message("bin %d: n %6.0f forecast %.4f observed %.4f\n", b,
                      bins[b].n, pb, ob);
        if (bins[b].n >= 20) {
            double se = sqrt(fmax(pb * (1 - pb), 1e-4) / bins[b].n);
            if (fabs(ob - pb) > 4.5 * se) {
                fail_msg("bin %d miscalibrated: %.4f vs %.4f (se %.4f)", b, ob,
                         pb, se);
            }
        }
    }
    print_message("events %.0f anomalies %.0f: ECE %.5f (bound %.5f) "
                  "Spiegelhalter Z %.2f Brier %.5f (base rate %.5f) "
                  "precision@0.5 %.3f recall@0.5 %.3f\n",
                  total, anoms, ece, bound, zn / sqrt(zd), brier, base,
                  hits / alarms, hits / anoms);
    assert_true(ece <= bound);
    assert_true(fabs(zn / sqrt(zd)) < 4.0);
    assert_true(brier < 0.5 * base);
    bw_pf_ws_destroy(ws);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reliability),
    };

    gsl_set_error_handler_off();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
