/*
 * Particle filter vs exact references:
 *  - Rao-Blackwellised, Gaussian, known scale: every particle is the exact
 *    Kalman filter (to rounding);
 *  - learned scale: the conjugate DLM with unknown variance (West &
 *    Harrison 1997, 4.6), written out here independently;
 *  - sampled state (rao_blackwell = false): posterior mean and variance of
 *    the level within Monte Carlo error of the Kalman filter at every step,
 *    the error measured over independent replicates;
 *  - regime switching: P(anomalous | y_1:t) vs exhaustive enumeration of
 *    all 3^(T-1) regime histories.
 */
#include <limits.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_randist.h>

#include "../../src/model/block.h"
#include "bayeswatch/mem.h"
#include "../../src/model/memory.h"
#include "../../src/model/season.h"
#include "testutil.h"

#define T_STEPS 60
#define REPS 16
#define STEP_MS 1000

static void simulate_local_level(double q, double sigma, uint64_t seed,
                                 double *y, int n)
{
    bw_rng_t rng;
    double level = 10.0;

    bw_rng_seed(&rng, seed);
    for (int t = 0; t < n; t++) {
        level += sqrt(q) * sigma * bw_rng_gauss(&rng);
        y[t] = level + sigma * bw_rng_gauss(&rng);
    }
}

/* Exact Kalman filter for the local level model, started like the PF. */
static void kalman(const double *y, int n, double q, double s2, double c0,
                   double *m, double *v)
{
    m[0] = y[0];
    v[0] = c0 * s2;
    for (int t = 1; t < n; t++) {
        double r = v[t - 1] + q * s2, k = r / (r + s2);
        m[t] = m[t - 1] + k * (y[t] - m[t - 1]);
        v[t] = r - k * r;
    }
}

static bw_pf_cfg_t gaussian_cfg(int particles, bool rb)
{
    bw_pf_cfg_t c = test_pf_cfg();

    c.particles = particles;
    c.rao_blackwell = rb;
    c.t_dof = 0;
    c.p_spike = c.p_shift = c.p_episode = 0;
    c.recur_window = 0; /* the references have no recurrent regime */
    c.ar_noise = false; /* ... and white noise (AR: test_ar_noise_...) */
    c.learn_scale = false;
    c.scale_prior = 1.5;
    c.level_ratio = 0.3;
    c.init_level_var = 1.0;
    c.warmup = 0;
    return c;
}

static void run_filter(const bw_pf_cfg_t *c, uint64_t seed, const double *y,
                       int n, double *m, double *v)
{
    bw_pf_t *pf = bw_pf_new(c, seed, NULL, 0);
    bw_pf_ws_t *ws = bw_pf_ws_new(c);
    bw_pf_out_t out;

    assert_non_null(pf);
    assert_non_null(ws);
    for (int t = 0; t < n; t++) {
        assert_int_equal(bw_pf_update(pf, ws, (int64_t)t * STEP_MS, y[t], &out),
                         BW_OK);
        bw_pf_level(pf, &m[t], &v[t]);
    }
    bw_pf_ws_destroy(ws);
    bw_pf_destroy(pf);
}

static void test_rb_equals_kalman(void **state)
{
    bw_pf_cfg_t c = gaussian_cfg(32, true);
    double y[T_STEPS], m[T_STEPS], v[T_STEPS], km[T_STEPS], kv[T_STEPS];

    (void)state;
    simulate_local_level(c.level_ratio, c.scale_prior, 7, y, T_STEPS);
    kalman(y, T_STEPS, c.level_ratio, c.scale_prior * c.scale_prior,
           c.init_level_var, km, kv);
    run_filter(&c, 1, y, T_STEPS, m, v);
    for (int t = 0; t < T_STEPS; t++) {
        assert_float_equal(m[t], km[t], 1e-9 * (1 + fabs(km[t])));
        assert_float_equal(v[t], kv[t], 1e-9 * kv[t]);
    }
}

/*
 * Sampled-state filter: at every step the replicate average of the
 * posterior mean (and variance) must be within 5 standard errors of the
 * Kalman value. The standard error is estimated from the REPS replicates;
 * it is floored at half the error pooled over all steps so one unluckily
 * tight replicate set cannot make the bound vanish.
 */
static void check_mc(const double est[REPS][T_STEPS], const double *exact,
                     const char *what)
{
    double pooled = 0.0;

    for (int t = 1; t < T_STEPS; t++) {
        double col[REPS], mu, se;
        for (int r = 0; r < REPS; r++) {
            col[r] = est[r][t];
        }
        mean_se(col, REPS, &mu, &se);
        pooled += se * se / (T_STEPS - 1);
    }
    pooled = sqrt(pooled);
    for (int t = 1; t < T_STEPS; t++) {
        double col[REPS], mu, se;
        for (int r = 0; r < REPS; r++) {
            col[r] = est[r][t];
        }
        mean_se(col, REPS, &mu, &se);
        se = fmax(se, 0.5 * pooled);
        if (fabs(mu - exact[t]) > 5.0 * se) {
            fail_msg("%s at step %d: pf %.6f vs exact %.6f (5 se = %.6f)", what,
                     t, mu, exact[t], 5.0 * se);
        }
    }
}

static void test_sampled_within_mc_error(void **state)
{
    bw_pf_cfg_t c = gaussian_cfg(1000, false);
    static double ms[REPS][T_STEPS], vs[REPS][T_STEPS];
    double y[T_STEPS], km[T_STEPS], kv[T_STEPS];

    (void)state;
    simulate_local_level(c.level_ratio, c.scale_prior, 11, y, T_STEPS);
    kalman(y, T_STEPS, c.level_ratio, c.scale_prior * c.scale_prior,
           c.init_level_var, km, kv);
    for (int r = 0; r < REPS; r++) {
        run_filter(&c, 100 + r, y, T_STEPS, ms[r], vs[r]);
    }
    check_mc((const double(*)[T_STEPS])ms, km, "posterior mean");
    check_mc((const double(*)[T_STEPS])vs, kv, "posterior variance");
}

/* The sampled filter must not agree with a wrong model (the test can fail). */
static void test_sampled_detects_wrong_variance(void **state)
{
    bw_pf_cfg_t c = gaussian_cfg(1000, false);
    double y[T_STEPS], km[T_STEPS], kv[T_STEPS], m[T_STEPS], v[T_STEPS];
    int off = 0;

    (void)state;
    simulate_local_level(c.level_ratio, c.scale_prior, 11, y, T_STEPS);
    kalman(y, T_STEPS, 2.0 * c.level_ratio, c.scale_prior * c.scale_prior,
           c.init_level_var, km, kv);
    run_filter(&c, 100, y, T_STEPS, m, v);
    for (int t = 1; t < T_STEPS; t++) {
        off += fabs(v[t] - kv[t]) > 0.1 * kv[t];
    }
    assert_true(off > T_STEPS / 2);
}

/* Conjugate DLM with unknown, discounted observational variance. */
/* The conjugate DLM with unknown variance written out (West & Harrison
 * 1997, 4.6), started from a prior of sd @p s0 worth c->scale_prior_dof
 * events: the level's mean m[t] and variance v[t] after y[t], and the
 * surprise sur[t] of y[t] (-log of its Student-t predictive density). */
static void conjugate_dlm(const bw_pf_cfg_t *c, const double *y, int len,
                          double s0, double *m, double *v, double *sur)
{
    double q = c->level_ratio, cs = c->init_level_var;
    double n = c->scale_prior_dof, d = n * s0 * s0;

    m[0] = y[0], v[0] = cs * s0 * s0, sur[0] = 0.0;
    for (int t = 1; t < len; t++) {
        double r, qq, e, sd;
        n *= c->scale_discount;
        d *= c->scale_discount;
        r = cs + q;
        qq = r + 1.0;
        e = y[t] - m[t - 1];
        sd = sqrt(qq * d / n);
        sur[t] = -log(gsl_ran_tdist_pdf(e / sd, n) / sd);
        m[t] = m[t - 1] + r / qq * e;
        cs = r - r * r / qq;
        d += e * e / qq;
        n += 1.0;
        v[t] = cs * d / n;
    }
}

/* The learned scale against the conjugate DLM, on a local level at 10 +
 * @p offset (noise sd 0.7). The noise prior is 5% of the first value; at
 * the 10th event its sd is capped at 10 times the spread of the steps so
 * far (rms over sqrt 2), written out here. From there the filter must be
 * exactly the DLM started from the capped prior (the data's share of the
 * statistic is in noise units: it does not depend on the prior), and
 * before it the DLM started from the prior. Returns whether the cap bound. */
static bool learned_scale_vs_dlm(double offset)
{
    enum { CAP_AT = 9 }; /* the 10th event */
    bw_pf_cfg_t c = gaussian_cfg(8, true);
    double y[T_STEPS], m0[T_STEPS], v0[T_STEPS], sur0[T_STEPS];
    double m1[T_STEPS], v1[T_STEPS], sur1[T_STEPS], ss = 0.0, s0, cap;
    /* the filter and the reference round the level's mean differently, by
     * about 1e-16 of it: the prediction errors (about 1) squared into the
     * statistic carry that, relative to the level */
    double tol = 1e-9 * (1.0 + fabs(offset) / 10.0);
    bw_pf_t *pf;
    bw_pf_ws_t *ws;
    bw_pf_out_t out;

    c.learn_scale = true;
    c.scale_prior = 0.05;
    c.scale_prior_dof = 2.0;
    c.scale_discount = 0.98;
    c.scale_prior_spread = 10.0;
    simulate_local_level(c.level_ratio, 0.7, 3, y, T_STEPS);
    for (int t = 0; t < T_STEPS; t++) {
        y[t] += offset;
    }
    for (int t = 1; t <= CAP_AT; t++) {
        ss += (y[t] - y[t - 1]) * (y[t] - y[t - 1]);
    }
    s0 = c.scale_prior * fabs(y[0]);
    cap = c.scale_prior_spread * sqrt(ss / (2.0 * CAP_AT));
    conjugate_dlm(&c, y, T_STEPS, s0, m0, v0, sur0);
    conjugate_dlm(&c, y, T_STEPS, fmin(s0, cap), m1, v1, sur1);
    pf = bw_pf_new(&c, 5, NULL, 0);
    ws = bw_pf_ws_new(&c);
    for (int t = 0; t < T_STEPS; t++) {
        const double *m = t < CAP_AT ? m0 : m1, *v = t < CAP_AT ? v0 : v1;
        const double *sur = t <= CAP_AT ? sur0 : sur1;
        double pm, pv;
        assert_int_equal(bw_pf_update(pf, ws, (int64_t)t * STEP_MS, y[t], &out),
                         BW_OK);
        bw_pf_level(pf, &pm, &pv);
        assert_float_equal(pm, m[t], 1e-9 * (1 + fabs(m[t])));
        assert_float_equal(pv, v[t], tol * v[t]);
        if (t > 0) {
            assert_float_equal(out.surprise, sur[t], tol);
        }
    }
    bw_pf_ws_destroy(ws);
    bw_pf_destroy(pf);
    return cap < s0;
}

/* At a level of about 10 the prior (sd 0.5) is below the cap; at 1e4 (a
 * prior of 500 for a noise of 0.7) the cap binds. */
static void test_learned_scale_matches_conjugate_dlm(void **state)
{
    (void)state;
    assert_false(learned_scale_vs_dlm(0.0));
    assert_true(learned_scale_vs_dlm(1e4));
}

/*
 * AR(1) observation noise: the filter's measurement differencing against
 * the exact Kalman filter of the augmented state (level, noise), y = level
 * + noise exactly, written out here: F = diag(1, phi), Q = s2 diag(q, 1).
 * The first value fixes level + noise = y0 with the level's variance c0.
 */
static void kalman_ar(const double *y, int n, double q, double phi, double s2,
                      double c0, double *m, double *v)
{
    double x0 = y[0], x1 = 0.0, p00 = c0 * s2, p01 = -c0 * s2, p11 = c0 * s2;

    m[0] = x0, v[0] = p00;
    for (int t = 1; t < n; t++) {
        /* predict */
        double a0 = x0, a1 = phi * x1;
        double r00 = p00 + q * s2, r01 = phi * p01, r11 = phi * phi * p11 + s2;
        /* observe y = x0 + x1 */
        double sv = r00 + 2 * r01 + r11, e = y[t] - a0 - a1;
        double k0 = (r00 + r01) / sv, k1 = (r01 + r11) / sv;
        x0 = a0 + k0 * e;
        x1 = a1 + k1 * e;
        p00 = r00 - k0 * (r00 + r01);
        p01 = r01 - k0 * (r01 + r11);
        p11 = r11 - k1 * (r01 + r11);
        m[t] = x0, v[t] = p00;
    }
}

static void test_ar_noise_equals_augmented_kalman(void **state)
{
    bw_pf_cfg_t c = gaussian_cfg(16, true);
    const double phi = 0.7;
    double y[T_STEPS], m[T_STEPS], v[T_STEPS], km[T_STEPS], kv[T_STEPS];
    double e = 0.0, level = 10.0;
    bw_pf_t *pf = bw_pf_new(&c, 1, NULL, 0);
    bw_pf_ws_t *ws = bw_pf_ws_new(&c);
    bw_rng_t rng;
    bw_pf_out_t out;

    (void)state;
    bw_rng_seed(&rng, 12);
    for (int t = 0; t < T_STEPS; t++) {
        level += sqrt(c.level_ratio) * c.scale_prior * bw_rng_gauss(&rng);
        e = phi * e + c.scale_prior * bw_rng_gauss(&rng);
        y[t] = level + e;
    }
    kalman_ar(y, T_STEPS, c.level_ratio, phi, c.scale_prior * c.scale_prior,
              c.init_level_var, km, kv);
    for (int t = 0; t < T_STEPS; t++) {
        assert_int_equal(bw_pf_update(pf, ws, (int64_t)t * STEP_MS, y[t], &out),
                         BW_OK);
        if (t == 0) {
            bw__pf_set_ar(pf, phi);
        }
        bw_pf_level(pf, &m[t], &v[t]);
        assert_float_equal(m[t], km[t], 1e-9 * (1 + fabs(km[t])));
        assert_float_equal(v[t], kv[t], 1e-9 * kv[t]);
    }
    bw_pf_ws_destroy(ws);
    bw_pf_destroy(pf);
}

/* ---- regime switching vs exhaustive enumeration ----------------------------
 */

#define EN_T 8
#define EN_MAX 2187 /* 3^7 */

typedef struct {
    double logw, m, c;
} hist_t;

/* Exact filter: every regime history kept. Returns P(anomalous) per step. */
static void enumerate(const bw_pf_cfg_t *c, const double *y, double *p)
{
    static hist_t h[EN_MAX], nh[EN_MAX * 3];
    double pri[3] = {1.0 - c->p_spike - c->p_shift, c->p_spike, c->p_shift};
    double v[3] = {1.0, c->spike_scale * c->spike_scale, 1.0};
    double w[3] = {0.0, 0.0, c->shift_scale * c->shift_scale};
    double s2 = c->scale_prior * c->scale_prior;
    int nhist = 1;

    h[0].logw = 0.0, h[0].m = y[0], h[0].c = c->init_level_var;
    p[0] = 0.0;
    for (int t = 1; t < EN_T; t++) {
        double tot = 0.0, anom = 0.0, mx = -INFINITY;
        int k = 0;
        for (int i = 0; i < nhist; i++) {
            for (int j = 0; j < 3; j++, k++) {
                double r = h[i].c + c->level_ratio + w[j], qv = r + v[j];
                double e = y[t] - h[i].m;
                nh[k].logw = h[i].logw + log(pri[j]) -
                             0.5 * log(2 * M_PI * qv * s2) -
                             0.5 * e * e / (qv * s2);
                nh[k].m = h[i].m + r / qv * e;
                nh[k].c = r - r * r / qv;
                mx = fmax(mx, nh[k].logw);
            }
        }
        for (int i = 0; i < k; i++) {
            double wi = exp(nh[i].logw - mx);
            tot += wi;
            anom += (i % 3 != 0) ? wi : 0.0;
        }
        p[t] = anom / tot;
        for (int i = 0; i < k; i++) {
            h[i] = nh[i];
            h[i].logw -= mx;
        }
        nhist = k;
    }
}

static void test_regimes_match_enumeration(void **state)
{
    bw_pf_cfg_t c = gaussian_cfg(2000, true);
    const double y[EN_T] = {0.0, 0.3, -0.2, 6.0, 0.1, 5.5, 5.7, 5.4};
    double exact[EN_T];

    (void)state;
    c.p_spike = 0.05;
    c.p_shift = 0.03;
    c.spike_scale = 4.0;
    c.shift_scale = 4.0;
    c.scale_prior = 1.0;
    c.level_ratio = 0.05;
    enumerate(&c, y, exact);
    pf_vs_exact(&c, y, EN_T, exact, REPS, 900);
    /* The spike at t=3 and the shift at t=5 are seen; t=7 is normal. */
    assert_true(exact[3] > 0.9 && exact[5] > 0.5 && exact[7] < 0.2);
}

/* ---- robustness and bookkeeping --------------------------------------------
 */

static void test_outlier_does_not_drag_level(void **state)
{
    bw_pf_cfg_t c = test_pf_cfg();
    bw_pf_t *pf = bw_pf_new(&c, 1, NULL, 0);
    bw_pf_ws_t *ws = bw_pf_ws_new(&c);
    bw_pf_out_t out;
    bw_rng_t rng;
    double before, after, v;
    int t;

    (void)state;
    bw_rng_seed(&rng, 3);
    for (t = 0; t < 300; t++) {
        bw_pf_update(pf, ws, (int64_t)t * 60000, 100 + bw_rng_gauss(&rng),
                     &out);
    }
    bw_pf_level(pf, &before, &v);
    bw_pf_update(pf, ws, (int64_t)t++ * 60000, 160.0, &out);
    assert_true(out.p_anomaly > 0.99);
    assert_int_equal(out.direction, BW_DIR_SPIKE);
    assert_true(out.p_value < 1e-6);
    /* Back to normal: the next event is not anomalous, and the level is
     * where it was (at the outlier itself the posterior is still a
     * spike/shift mixture: that is the honest answer then). */
    bw_pf_update(pf, ws, (int64_t)t++ * 60000, 100.2, &out);
    assert_true(out.p_anomaly < 0.05);
    bw_pf_level(pf, &after, &v);
    assert_true(fabs(after - before) < 0.5);
    bw_pf_ws_destroy(ws);
    bw_pf_destroy(pf);
}

/* The onset model (level shifts, no abnormal episodes): a shift is flagged
 * at its start and its new level is normal from the next event on. The
 * episode model's handling of a lasting change is test_episode's. */
static void test_level_shift_is_absorbed(void **state)
{
    bw_pf_cfg_t c = test_pf_cfg();

    c.p_episode = 0.0;
    c.p_shift = 0.001;
    bw_pf_t *pf = bw_pf_new(&c, 1, NULL, 0);
    bw_pf_ws_t *ws = bw_pf_ws_new(&c);
    bw_pf_out_t out;
    bw_rng_t rng;
    double lv, v;
    int t, alarms = 0;

    (void)state;
    bw_rng_seed(&rng, 4);
    for (t = 0; t < 300; t++) {
        bw_pf_update(pf, ws, (int64_t)t * 60000, 100 + bw_rng_gauss(&rng),
                     &out);
    }
    for (; t < 340; t++) {
        bw_pf_update(pf, ws, (int64_t)t * 60000, 130 + bw_rng_gauss(&rng),
                     &out);
        alarms += out.p_anomaly > 0.5;
        if (t == 300) {
            assert_true(out.direction == BW_DIR_SPIKE ||
                        out.direction == BW_DIR_SHIFT_UP);
        }
    }
    bw_pf_level(pf, &lv, &v);
    assert_true(fabs(lv - 130) < 1.0);
    assert_true(alarms <= 3); /* the shift is flagged, not every later event */
    assert_true(alarms >= 1);
    bw_pf_ws_destroy(ws);
    bw_pf_destroy(pf);
}

static void test_late_and_gap(void **state)
{
    bw_pf_cfg_t c = test_pf_cfg();
    bw_pf_t *pf = bw_pf_new(&c, 1, NULL, 0);
    bw_pf_ws_t *ws = bw_pf_ws_new(&c);
    bw_pf_out_t out;
    bw_rng_t rng;
    uint8_t *a = NULL, *b = NULL;
    bw_wbuf_t w1 = {0}, w2 = {0};
    int t;

    (void)state;
    bw_rng_seed(&rng, 5);
    for (t = 0; t < 200; t++) {
        bw_pf_update(pf, ws, (int64_t)t * 60000, 50 + bw_rng_gauss(&rng), &out);
    }
    bw_pf_save(pf, &w1);
    assert_int_equal(bw_pf_update(pf, ws, 1000, 80.0, &out), BW_ERR_LATE);
    assert_int_equal(bw_pf_late(pf), 1);
    bw_pf_save(pf, &w2);
    /* Only the late counter changed. */
    assert_int_equal(w1.len, w2.len);
    a = w1.data, b = w2.data;
    assert_int_not_equal(memcmp(a, b, w1.len), 0);
    /* A week-long gap, then the random walk has drifted a little: no alarm. */
    assert_int_equal(
        bw_pf_update(pf, ws, (int64_t)(t + 10080) * 60000, 53.0, &out), BW_OK);
    assert_true(out.p_anomaly < 0.2);
    assert_int_equal(bw_pf_update(pf, ws, 0, NAN, &out), BW_ERR_RANGE);
    bw_wbuf_free(&w1);
    bw_wbuf_free(&w2);
    bw_pf_ws_destroy(ws);
    bw_pf_destroy(pf);
}

/* A filter with the shipped defaults (daily profile on) and its
 * workspace; cfg outlives both (the filter keeps a pointer to it). */
typedef struct {
    bw_config_t cfg;
    bw_pf_t *pf;
    bw_pf_ws_t *ws;
} dflt_t;

/* The filter and workspace of d->cfg, set beforehand. */
static void dflt_start(dflt_t *d, uint64_t seed)
{
    d->pf = bw_pf_new(&d->cfg.model.pf, seed, NULL, 0);
    d->ws = bw_pf_ws_new(&d->cfg.model.pf);
    assert_non_null(d->pf);
    assert_non_null(d->ws);
}

static void dflt_open(dflt_t *d, uint64_t seed, bool local_noise)
{
    bw_config_defaults(&d->cfg);
    d->cfg.model.pf.local_noise = local_noise;
    dflt_start(d, seed);
}

static void dflt_close(dflt_t *d)
{
    bw_pf_ws_destroy(d->ws);
    bw_pf_destroy(d->pf);
}

static void test_warmup_no_alarm_flood(void **state)
{
    bw_pf_cfg_t c = test_pf_cfg();
    bw_rng_t rng;
    int alarms = 0;

    (void)state;
    bw_rng_seed(&rng, 6);
    for (int s = 0; s < 50; s++) {
        bw_pf_t *pf = bw_pf_new(&c, (uint64_t)s, NULL, 0);
        bw_pf_ws_t *ws = bw_pf_ws_new(&c);
        bw_pf_out_t out;
        double base = 10.0 + 1000.0 * bw_rng_uniform(&rng);
        double sd = base * (0.01 + 0.3 * bw_rng_uniform(&rng));
        for (int t = 0; t < c.warmup; t++) {
            bw_pf_update(pf, ws, (int64_t)t * 60000,
                         base + sd * bw_rng_gauss(&rng), &out);
            assert_true(out.warmup);
            alarms += out.p_anomaly > 0.5;
        }
        bw_pf_ws_destroy(ws);
        bw_pf_destroy(pf);
    }
    /* 50 clean series x warmup events: at most a handful above 0.5. */
    assert_true(alarms <= 2);
}

/*
 * Disk writes: small writes (30% of the 5-minute steps, |N(0, 2e5)|
 * bytes) and a job every other day at about the same time (a backup: four
 * steps of familiar heights up to 1.4e8, start jittered by up to 15
 * minutes). The bursts are recurrent jumps between familiar states, and
 * a day without the job is not a dip. If the bursts printed into the daily
 * profile, ordinary zeros at those phases would read as dips (seen on NAB's
 * ec2_disk_write_bytes_1ef3de). Twelve days, daily profile on; from day 4
 * on no idle value may score as an anomaly (the rule this test guards:
 * the old one flagged 7 of them).
 */
static void test_bursts_do_not_teach_the_season(void **state)
{
    static const double job[4] = {2.0e7, 5.0e7, 1.43e8, 3.0e7};
    dflt_t f;
    bw_pf_out_t out;
    bw_rng_t rng;
    int alarms = 0, idle = 0, start = 0;

    (void)state;
    dflt_open(&f, 3, true);
    bw_rng_seed(&rng, 8);
    for (int t = 0; t < 12 * 288; t++) {
        int day = t / 288, phase = t % 288, k;
        double y = 0.0;
        if (phase == 0) {
            start = 220 + (int)(bw_rng_uniform(&rng) * 4.0);
        }
        k = phase - start;
        if (day % 2 == 0 && k >= 0 && k < 4) {
            y = job[k] * (1.0 + 0.02 * bw_rng_gauss(&rng));
        } else if (bw_rng_uniform(&rng) < 0.3) {
            y = fabs(2e5 * bw_rng_gauss(&rng));
        }
        bw_pf_update(f.pf, f.ws, (int64_t)t * 300000, y, &out);
        if (day >= 4 && y < 1e6) {
            idle++;
            alarms += out.p_anomaly >= 0.99;
        }
    }
    print_message("idle values scored >= 0.99: %d of %d\n", alarms, idle);
    assert_int_equal(alarms, 0);
    dflt_close(&f);
}

/* Idle/busy CPU: idle spells at 1 with sd 0.1, busy spells at a per-spell
 * level in [60, 95] with sd 2 (lengths geometric with the given means).
 * Returns the next value; *starts tells whether it starts a spell. */
typedef struct {
    bw_rng_t rng;
    double idle_mean, busy_mean; /* spell lengths, events */
    int busy, left;
    double level;
} bursty_t;

static double bursty_next(bursty_t *b, int *starts)
{
    *starts = 0;
    while (b->left <= 0) {
        b->busy = !b->busy;
        b->left = 1 + (int)(-log(1.0 - bw_rng_uniform(&b->rng)) *
                            (b->busy ? b->busy_mean : b->idle_mean));
        b->level = 60.0 + 35.0 * bw_rng_uniform(&b->rng);
        *starts = 1;
    }
    b->left--;
    if (!b->busy) {
        return 1.0 + 0.1 * bw_rng_gauss(&b->rng);
    }
    return b->level + 2.0 * bw_rng_gauss(&b->rng);
}

/*
 * The local noise factor against a brute-force recomputation from the
 * history: the last W values before each event (a short window, so the
 * ring wraps), the neighbourhood of the previous value (recur_bandwidth
 * noise sds, or recur_relative of its distance from their mean), the pairs
 * of consecutive values inside it, and the moderated ratio with the
 * learned variance's weight of 100 pairs (pf.c's LN_W).
 */
static void test_local_noise_matches_bruteforce(void **state)
{
    enum { W = 60, T = 3000 };
    bw_pf_cfg_t c = test_pf_cfg();
    bw_pf_t *pf;
    bw_pf_ws_t *ws;
    bw_pf_out_t out;
    bursty_t b = {.idle_mean = 30.0, .busy_mean = 10.0};
    float hist[T];
    double sd_prev = 0.0;
    int inflated = 0, starts;

    (void)state;
    c.recur_window = W;
    /* every value is remembered: the onset model (an ongoing episode's
     * values would be left out of the scan) */
    c.p_episode = 0.0;
    c.p_shift = 0.001;
    pf = bw_pf_new(&c, 4, NULL, 0);
    ws = bw_pf_ws_new(&c);
    bw_rng_seed(&b.rng, 12);
    for (int t = 0; t < T; t++) {
        double y = bursty_next(&b, &starts), k = 1.0;
        int m = t < W ? t : W;
        hist[t] = (float)y;
        if (m >= 16) {
            double mean = 0.0, ss = 0.0, ha, s2 = sd_prev * sd_prev;
            float prev = hist[t - 1], lo, hi;
            int pairs = 0;
            for (int i = t - m; i < t; i++) {
                mean += hist[i];
            }
            mean /= m;
            ha = fmax(c.recur_bandwidth * sd_prev,
                      c.recur_relative * fabs(prev - mean));
            lo = (float)(prev - ha), hi = (float)(prev + ha);
            for (int i = t - m; i < t - 1; i++) {
                if (hist[i] >= lo && hist[i] <= hi && hist[i + 1] >= lo &&
                    hist[i + 1] <= hi) {
                    double d = (double)hist[i + 1] - (double)hist[i];
                    pairs++;
                    ss += d * d;
                }
            }
            k = fmax(1.0, (0.5 * ss + 100.0 * s2) / ((pairs + 100.0) * s2));
        }
        assert_int_equal(bw_pf_update(pf, ws, (int64_t)t * 300000, y, &out),
                         BW_OK);
        /* 1e-5: the filter sums the squared differences in single
         * precision (pf.c, scan_stretch); pairs and neighbourhood are
         * exact, so a wrong selection would miss by far more. */
        assert_true(fabs(out.noise_factor - k) <= 1e-5 * k);
        inflated += k > 1.25;
        sd_prev = out.noise_sd;
    }
    print_message(
        "events with the noise variance widened by more than 25%%: %d of %d\n",
        inflated, T);
    assert_true(inflated >= 100); /* the check exercised real factors */
    bw_pf_ws_destroy(ws);
    bw_pf_destroy(pf);
}

/*
 * A bursty series (idle <-> busy, see bursty_next) with the default model,
 * two weeks of 5-minute values per run: the busy state's own spread (sd 2,
 * twenty times the idle noise) is no anomaly once the series has shown a
 * few busy spells. Counts alerts (p >= 0.99) inside spells after the
 * second day, with and without the local noise (on the second day, before
 * the daily profile applies, a busy spell at a level the first day did not
 * show is an abnormal episode, novel_episodes: its alerts are counted
 * apart, in *day2), and checks that one genuine
 * anomaly per run, a value in the gap between idle and busy that the
 * series has never shown (10 below the lowest busy level in a busy spell,
 * 40 in an idle one), is found either way.
 */
static int bursty_alerts(bool local, uint64_t seed, int *found, int *values,
                         int *day2)
{
    dflt_t f;
    bw_pf_out_t out;
    bursty_t b = {.idle_mean = 150.0, .busy_mean = 10.0};
    int alerts = 0, starts, at;

    dflt_open(&f, seed, local);
    bw_rng_seed(&b.rng, seed);
    at = 288 + (int)(bw_rng_uniform(&b.rng) * 12 * 288);
    *found = 0;
    for (int t = 0; t < 14 * 288; t++) {
        double y = bursty_next(&b, &starts);
        if (t == at) {
            y = b.busy ? 50.0 : 40.0;
        }
        bw_pf_update(f.pf, f.ws, (int64_t)t * 300000, y, &out);
        if (t == at) {
            *found = out.p_anomaly >= 0.99;
        } else if (t >= 288 && t < 2 * 288) {
            *day2 += !starts && t != at + 1 && out.p_anomaly >= 0.99;
        } else if (t >= 2 * 288 && !starts && t != at + 1) {
            alerts += out.p_anomaly >= 0.99;
            (*values)++;
        }
    }
    dflt_close(&f);
    return alerts;
}

static void test_busy_spread_is_not_an_anomaly(void **state)
{
    enum { RUNS = 10 };
    int on = 0, off = 0, on_found = 0, off_found = 0, f, values = 0, v2 = 0;
    int day2 = 0, day2_off = 0;

    (void)state;
    for (int r = 0; r < RUNS; r++) {
        on += bursty_alerts(true, 100 + r, &f, &values, &day2);
        on_found += f;
        off += bursty_alerts(false, 100 + r, &f, &v2, &day2_off);
        off_found += f;
    }
    print_message("alerts among %d values inside spells from day 3: %d with "
                  "local noise, %d without; anomalies found %d and %d of %d; "
                  "day 2: %d and %d\n",
                  values, on, off, on_found, off_found, RUNS, day2, day2_off);
    /* At most 5 per 10,000 (the default threshold's nominal rate is 1 per
     * 100 under the model, and the busy state breaks the model's single
     * noise scale), and a fifth of the rate without the local noise. */
    assert_true(on * 10000 <= 5 * values);
    assert_true(off >= 5 * (on + 1));
    assert_int_equal(on_found, RUNS);
    assert_int_equal(off_found, RUNS);
}

/* A daily square wave: 70 from 9:00 to 18:00, 20 otherwise (5-minute
 * steps), plus N(0, 2) noise. */
static double square_day(int t, bw_rng_t *rng)
{
    int phase = t % 288;

    return (phase >= 108 && phase < 216 ? 70.0 : 20.0) +
           2.0 * bw_rng_gauss(rng);
}

/*
 * The seasonal profile after two days of a clean square wave. Its bin means
 * hold the wave's full 50 between day and night: the first day's values
 * are taken against the whole day's mean once it is complete (against the
 * partial day's moving average, as before, only 43 was reachable); the
 * James-Stein shrinkage should then cost little, because the within-bin
 * noise (sd 2) is small against the profile. The within-bin noise is
 * measured from each bin's second visit on: counting first visits as
 * deviations from 0 shrank the profile to 28.8, and the filter then
 * alerted at the first 9:00 edge after the profile switched on.
 */
static void test_profile_learns_full_amplitude(void **state)
{
    bw_config_t cfg;
    bw_season_t s;
    bw_rng_t rng;
    double day, night;
    const int64_t step = 300000;

    (void)state;
    bw_config_defaults(&cfg);
    assert_int_equal(bw__season_init(&s, &cfg.model.pf.daily, 86400000LL), 0);
    bw_rng_seed(&rng, 31);
    for (int t = 0; t < 2 * 288; t++) {
        bw__season_update(&s, t * step, square_day(t, &rng), 1.0, 1.0, 1.0,
                          step);
    }
    day = bw__season_value(&s, (2 * 288 + 150) * step, 2 * 86400000LL);
    night = bw__season_value(&s, (2 * 288 + 30) * step, 2 * 86400000LL);
    print_message("profile day - night after two days: %.2f (truth 50)\n",
                  day - night);
    /* 50 less at most a fifth for the shrinkage of a profile seen twice,
     * and at most 3 sds of the difference of two bin means (each of sd
     * 2 / sqrt(2), so the difference has sd 2) above it. This run: 51.4
     * (39.0 with the partial-day baseline). */
    assert_true(day - night > 50.0 * 0.8 && day - night < 56.0);
    bw__season_free(&s);
}

/* A filter's blob whose generator state is all zero is refused: no seed
 * gives it, and xoshiro256** then returns 0 for ever, so the polar
 * method's Gaussian draw (rao_blackwell false) never ends and the stream
 * thread hangs. The blob as saved loads. */
static void test_zero_rng_refused(void **state)
{
    bw_pf_cfg_t c = test_pf_cfg();
    bw_pf_t *pf, *into;
    bw_rng_t rng;
    bw_wbuf_t w = {0};
    size_t at = 0;
    bool found = false;

    (void)state;
    c.rao_blackwell = false;
    pf = bw_pf_new(&c, 77, NULL, 0);
    into = bw_pf_new(&c, 78, NULL, 0);
    assert_non_null(pf);
    assert_non_null(into);
    bw_rng_seed(&rng, 77); /* the filter's generator, as it starts */
    assert_int_equal(bw_pf_save(pf, &w), BW_OK);
    while (at + sizeof(rng.s) <= w.len &&
           !(found = memcmp(w.data + at, rng.s, sizeof(rng.s)) == 0)) {
        at++;
    }
    assert_true(found); /* (little-endian host, as the state's encoding) */
    for (int zero = 0; zero < 2; zero++) {
        bw_rbuf_t r;
        if (zero) {
            memset(w.data + at, 0, sizeof(rng.s));
        }
        bw_rbuf_init(&r, w.data, w.len);
        assert_int_equal(bw_pf_load(into, &r),
                         zero ? BW_ERR_CORRUPT : BW_OK);
    }
    bw_wbuf_free(&w);
    bw_pf_destroy(pf);
    bw_pf_destroy(into);
}

/* An episode's start is read back checked: an event time of the filter's
 * own span (a start after its last event held adoption back by that much,
 * one before its first moved the adoption horizon the other way). */
static void test_episode_start_checked(void **state)
{
    bw_pf_cfg_t c = test_pf_cfg();
    bw_pf_t *pf = bw_pf_new(&c, 91, NULL, 0);
    bw_pf_t *into = bw_pf_new(&c, 92, NULL, 0);
    bw_pf_ws_t *ws = bw_pf_ws_new(&c);
    bw_wbuf_t w = {0};
    bw_pf_out_t out;
    int64_t since = -1, last = 0;
    size_t at = 0;
    int hits = 0;

    (void)state;
    for (int t = 0; t < 160; t++) {
        last = (int64_t)(t + 1000) * 60000;
        bw_pf_update(pf, ws, last, 10.0 + sin(t) + (t >= 150 ? 30.0 : 0.0),
                     &out);
        since = out.since_ms;
    }
    assert_true(since > 0); /* in an episode */
    assert_int_equal(bw_pf_save(pf, &w), BW_OK);
    for (size_t i = 0; i + 8 <= w.len; i++) {
        if (memcmp(w.data + i, &since, 8) == 0 && hits++ == 0) {
            at = i; /* the filter's (the block model's comes later) */
        }
    }
    assert_true(hits >= 1); /* (little-endian host) */
    /* as saved; before the first event; after the last */
    const int64_t v[3] = {since, 1000 * 60000LL - 1, last + 1};
    for (int k = 0; k < 3; k++) {
        bw_rbuf_t r;
        memcpy(w.data + at, &v[k], 8);
        bw_rbuf_init(&r, w.data, w.len);
        assert_int_equal(bw_pf_load(into, &r),
                         k == 0 ? BW_OK : BW_ERR_CORRUPT);
    }
    bw_wbuf_free(&w);
    bw_pf_ws_destroy(ws);
    bw_pf_destroy(pf);
    bw_pf_destroy(into);
}

/* A profile's blob is refused when it holds what no profile could: a
 * NaN bin mean (every value of the profile would be NaN, and the
 * filter's input with it), a count of seen bins that is not the number
 * of bins with a last value, a negative pooled variance (the shrinkage
 * would divide by 0), or a bin mean or last value far beyond the models'
 * range (1e300: the filter's input became -1e300 and its memory -inf,
 * which its next record could not hold). Layout: mean, wt, last (bins
 * doubles each), six sums, then seen (u32). */
static void test_profile_load_checks(void **state)
{
    bw_config_t cfg;
    bw_season_t s, t;
    bw_rng_t rng;
    bw_wbuf_t w = {0};
    const int64_t step = 300000;
    const int bins = 288;

    (void)state;
    bw_config_defaults(&cfg);
    assert_int_equal(bw__season_init(&s, &cfg.model.pf.daily, 86400000LL), 0);
    assert_int_equal(bw__season_init(&t, &cfg.model.pf.daily, 86400000LL), 0);
    bw_rng_seed(&rng, 32);
    for (int k = 0; k < 288 + 100; k++) {
        bw__season_update(&s, k * step, square_day(k, &rng), 1.0, 1.0, 1.0,
                          step);
    }
    bw__season_save(&s, &w);
    for (int k = 0; k < 8; k++) {
        uint8_t *copy = bw_malloc(w.len);
        bw_rbuf_t r;
        assert_non_null(copy);
        memcpy(copy, w.data, w.len);
        if (k == 1) {
            put_f64_le(copy, 8 * 5, NAN); /* mean[5] */
        } else if (k == 2) { /* seen, one less */
            copy[8 * (3 * bins + 6)] -= 1;
        } else if (k == 5) { /* the pooled variance, < 0 */
            put_f64_le(copy, 8 * (3 * bins + 4), -1.0);
        } else if (k == 6) { /* mean[5], beyond the range */
            put_f64_le(copy, 8 * 5, 1e300);
        } else if (k == 7) { /* last[9] */
            put_f64_le(copy, 8 * (2 * bins + 9), -1e300);
        } else if (k >= 3) { /* var[7]: an unconfirmed bin's, or < 0 */
            float v = k == 3 ? -1.0f : -0.5f;
            memcpy(copy + 8 * (3 * bins + 6) + 4 + 8 + 4 * 7, &v, 4);
        }
        bw_rbuf_init(&r, copy, w.len);
        bw__season_load(&t, &r, 1);
        assert_int_equal(r.err, k == 0 || k == 3 ? BW_OK : BW_ERR_CORRUPT);
        bw_free(copy);
    }
    bw_wbuf_free(&w);
    bw__season_free(&t);
    bw__season_free(&s);
}

/* Two days of 5-minute noise (sd 1) through a daily profile; at 04:10 on
 * the first day a value of 1,000 at gain 0 if @p spike, and on the second
 * a normal value learnt for the level only (gain 0) if @p held. *before:
 * the pooled variance when that bin is next visited. */
static void profile_days(bw_season_t *s, bool spike, bool held,
                         double *before)
{
    const int64_t step = 300000;
    bw_config_t cfg;
    bw_rng_t rng;

    bw_config_defaults(&cfg);
    assert_int_equal(bw__season_init(s, &cfg.model.pf.daily, 86400000LL), 0);
    bw_rng_seed(&rng, 33);
    for (int k = 0; k < 2 * 288; k++) {
        double y = bw_rng_gauss(&rng), g = 1.0, p = 1.0; /* gain, normal */
        if (k == 50 && spike) {
            y = 1000.0;
            g = p = 0.0;
        }
        if (k == 288 + 50) {
            *before = s->within;
            g = held ? 0.0 : 1.0;
        }
        bw__season_update(s, k * step, y, g, p, p, step);
    }
}

/* A bin the first period saw only as an abnormal value (gain 0: a spike
 * of 1,000 over noise of sd 1) is unconfirmed: its first normal value
 * replaces its estimate (the build before averaged the two, ~500, for
 * days) and counts its deviation in the bin's own variance, and in the
 * pooled one at most 10 pooled sds: against the same days without the
 * spike, the pooled variance gains at most 100 times the pooled variance
 * at that visit over the visits it averages. The baseline never holds
 * the spike: every other bin's deviation is as without it, but for bin
 * 50's own value's share of the baseline (1/288 of it). */
static void test_unconfirmed_bin_replaced(void **state)
{
    bw_season_t s, c;
    double before, before_c, bound, worst = 0.0;

    (void)state;
    profile_days(&s, true, false, &before);
    profile_days(&c, false, false, &before_c);
    bound = c.within + 100.0 * before / s.updates;
    for (int b = 0; b < 288; b++) {
        if (b != 50) {
            worst = fmax(worst, fabs(s.mean[b] - c.mean[b]));
        }
    }
    print_message("bin 50: mean %.3f, var %.1f; pooled variance %.3f (%.3f "
                  "without the spike, bound %.3f); other bins' means within "
                  "%.3g of the spike-free run's\n",
                  s.mean[50], s.var[50], s.within, c.within, bound, worst);
    assert_true(fabs(s.mean[50]) < 5.0);
    assert_true(s.var[50] > 1e5f);
    assert_true(s.within <= bound);
    assert_true(worst < 4.0 / 288.0); /* bin 50's own value, 4 sds at most */
    bw__season_free(&s);
    bw__season_free(&c);
    /* a normal value the bin does not learn from (a held profile's level
     * only update) does not confirm it: the first day's estimate stays */
    profile_days(&s, true, true, &before);
    print_message("held: bin 50's weight %.3f, variance %.1f\n", s.wt[50],
                  s.var[50]);
    assert_true(s.wt[50] > 0.0);
    assert_true(s.var[50] == -1.0f);
    bw__season_free(&s);
}

/* Every bin's exact start falls in that bin, and the instant before it in
 * the bin before, for the daily and weekly bin counts a config may
 * choose (the quotient in doubles put Monday 01:00 of a 168-bin week, and
 * the starts of other bins, in the bin before). */
static void test_bin_starts(void **state)
{
    const int64_t day = 86400000, week = 7 * day;
    const struct {
        int64_t period;
        int bins;
    } c[] = {{day, 24}, {day, 96}, {day, 288}, {day, 1440},
             {week, 168}, {week, 336}, {week, 2016}};
    int wrong = 0;

    (void)state;
    assert_int_equal(bw__phase_bin(97 * 3600000LL, week, 168), 97);
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        int64_t w = c[i].period / c[i].bins;
        for (int b = 0; b < c[i].bins; b++) {
            wrong += bw__phase_bin(b * w + 3 * week, c[i].period,
                                   c[i].bins) != b;
            wrong += bw__phase_bin(b * w - 1 + c[i].period, c[i].period,
                                   c[i].bins) !=
                     (b + c[i].bins - 1) % c[i].bins;
        }
    }
    assert_int_equal(wrong, 0);
}

/* A bin the first period never saw (an outage at 08:20 on day 1) whose
 * first value, on day 2, is a spike of 10,000 read as abnormal (gains 0):
 * the baseline (the mean of the bins' latest values) stays where it was,
 * as for a bin seen before. The bin had taken the spike as its latest
 * value, and the baseline moved by 10,000 / 288 (35 noise sds), shifting
 * every other bin's deviation until the bin's next normal visit. */
static void test_late_bin_keeps_baseline(void **state)
{
    const int64_t step = 300000;
    static bw_config_t cfg; /* the profile keeps a pointer to its config */
    bw_season_t s;
    bw_rng_t rng;
    double base = 0.0;

    (void)state;
    bw_config_defaults(&cfg);
    assert_int_equal(bw__season_init(&s, &cfg.model.pf.daily, 86400000LL), 0);
    bw_rng_seed(&rng, 35);
    for (int k = 0; k <= 288 + 100; k++) {
        double y = bw_rng_gauss(&rng), p = 1.0;
        if (k == 100) {
            continue; /* the outage */
        }
        if (k == 288 + 100) {
            base = s.last_sum / s.seen;
            y = 1e4;
            p = 0.0;
        }
        bw__season_update(&s, k * step, y, p, p, p, step);
    }
    print_message("baseline %.6f before the late bin's spike, %.6f after\n",
                  base, s.last_sum / s.seen);
    assert_int_equal(s.seen, 288);
    assert_float_equal(s.last_sum / s.seen, base, 1e-9);
    bw__season_free(&s);
}

/* The first period's profile over noise of sd 1 and a ramp of 0.01 per
 * bin, with a value of 1,000 read as abnormal (P(normal) 0) in bins 48,
 * 49 and 287, closed by the first event of the second day. */
static void first_day_with_spikes(bw_season_t *s)
{
    const int64_t step = 300000;
    static bw_config_t cfg; /* the profile keeps a pointer to its config */
    bw_rng_t rng;

    bw_config_defaults(&cfg);
    assert_int_equal(bw__season_init(s, &cfg.model.pf.daily, 86400000LL), 0);
    bw_rng_seed(&rng, 34);
    for (int k = 0; k <= 288; k++) {
        double y = 0.01 * (k % 288) + bw_rng_gauss(&rng), p = 1.0;
        if (k == 48 || k == 49 || k == 287) {
            y = 1000.0;
            p = 0.0;
        }
        bw__season_update(s, k * step, y, p, p, p, step);
    }
}

/* The profile's running sums against the bins (an unconfirmed bin left
 * out of the centring and spread, and of their count). */
static double sums_error(const bw_season_t *s)
{
    double ms = 0.0, mq = 0.0, ws = 0.0, ns = 0.0;
    int unconf = 0;

    for (int b = 0; b < s->cfg->bins; b++) {
        double m = s->var[b] == -1.0f ? 0.0 : s->mean[b];
        unconf += s->var[b] == -1.0f;
        ms += m;
        mq += m * m;
        ws += s->wt[b];
        ns += s->nvis[b];
    }
    if (unconf != s->unconf) {
        return INFINITY;
    }
    return fmax(fmax(fabs(ms - s->mean_sum), fabs(mq - s->mean_sq)),
                fmax(fabs(ws - s->wt_sum), fabs(ns - s->nvis_sum)));
}

/* An unconfirmed bin (season.c) is kept out of the profile's centring and
 * spread, and a value judged abnormal against its prediction once the
 * profile applies rejects it: it takes its neighbours' deviation,
 * interpolated between the nearest confirmed bins by their distance, with
 * the weight of one visit. Bins 48 and 49 spiked on the first day: a
 * rejection at 49 interpolates between 47 and 50 (1 and 2 bins away: 2/3
 * and 1/3), after a day-2 value at gain 0 had decayed its weight; at bin
 * 287 (spiked too) between 286 and 0, around the period. A value judged
 * normal leaves the bin to bw__season_update's confirmation, and a
 * confirmed bin is never touched. A PF12 profile counted the unconfirmed
 * bins in its sums: bw__season_recentre recomputes them. */
static void test_unconfirmed_bin_rejected_for_neighbours(void **state)
{
    const int64_t day = 86400000LL, step = 300000;
    bw_season_t s;
    double m47, m50, want;

    (void)state;
    first_day_with_spikes(&s);
    assert_true(s.var[49] == -1.0f && s.var[48] == -1.0f &&
                s.var[287] == -1.0f);
    assert_int_equal(s.unconf, 3);
    assert_true(s.mean[49] > 990.0);    /* the deviation is kept ... */
    assert_true(sums_error(&s) < 1e-9); /* ... but not counted */
    assert_true(fabs(s.mean_sum / (s.seen - 3)) < 0.5);
    bw__season_update(&s, day + 49 * step, 0.0, 0.0, 0.0, 0.0, step);
    assert_true(s.wt[49] < 1.0 && s.var[49] == -1.0f); /* decayed, kept */
    bw__season_judged(&s, day + 49 * step, 0.9); /* read as normal */
    assert_true(s.var[49] == -1.0f);
    m47 = s.mean[47], m50 = s.mean[50];
    bw__season_judged(&s, day + 47 * step, 0.0); /* a confirmed bin */
    assert_true(s.mean[47] == m47 && s.var[47] >= 0.0f);
    bw__season_judged(&s, day + 49 * step, 0.1); /* rejected */
    want = (1.0 * m47 + 2.0 * m50) / 3.0;
    print_message("bin 49 after its rejection: %.4f (47: %.4f, 50: %.4f)\n",
                  s.mean[49], m47, m50);
    assert_true(s.var[49] == 0.0f && s.unconf == 2);
    assert_true(fabs(s.mean[49] - want) < 1e-12);
    assert_true(s.wt[49] == 1.0 && s.nvis[49] == 1.0);
    assert_true(sums_error(&s) < 1e-9);
    bw__season_judged(&s, day + 287 * step, 0.0); /* between 286 and 0 */
    assert_true(fabs(s.mean[287] - 0.5 * (s.mean[286] + s.mean[0])) < 1e-12);
    assert_true(sums_error(&s) < 1e-9);
    /* as a PF12 profile held it: the unconfirmed bin 48 in the sums */
    s.mean_sum += s.mean[48];
    s.mean_sq += s.mean[48] * s.mean[48];
    assert_false(sums_error(&s) < 1e-9);
    bw__season_recentre(&s);
    assert_true(sums_error(&s) < 1e-9);
    bw__season_free(&s);
}

/* A profile's state, byte for byte: its scalars and its bins. */
static bool season_same(const bw_season_t *a, const bw_season_t *b)
{
    size_t n = (size_t)a->cfg->bins;

    return a->last_sum == b->last_sum && a->mean_sum == b->mean_sum &&
           a->mean_sq == b->mean_sq && a->wt_sum == b->wt_sum &&
           a->nvis_sum == b->nvis_sum && a->within == b->within &&
           a->updates == b->updates && a->seen == b->seen &&
           a->unconf == b->unconf && a->t0 == b->t0 &&
           a->visit.bin == b->visit.bin &&
           memcmp(&a->visit.old, &b->visit.old, sizeof(double)) == 0 &&
           memcmp(a->mean, b->mean, n * sizeof(double)) == 0 &&
           memcmp(a->wt, b->wt, n * sizeof(double)) == 0 &&
           memcmp(a->last, b->last, n * sizeof(double)) == 0 &&
           memcmp(a->nvis, b->nvis, n * sizeof(double)) == 0 &&
           memcmp(a->var, b->var, n * sizeof(float)) == 0;
}

/* The first check before scoring (bw__season_precheck) on bin 49 of
 * first_day_with_spikes: a residual at the kept deviation, or nearer it
 * than the neighbours', leaves the profile exactly as it was (the undo of
 * the tentative rejection is complete); one at the neighbours' deviation,
 * or nearer it, leaves it exactly as bw__season_judged rejecting the bin
 * does; a confirmed bin and a profile that does not apply yet are left
 * alone. */
static void test_unconfirmed_bin_prechecked(void **state)
{
    const int64_t day = 86400000LL, step = 300000, t = day + 49 * step;
    const int64_t age = 3 * day;
    bw_season_t s, ref, rej;
    double keep, alt;

    (void)state;
    first_day_with_spikes(&s);
    first_day_with_spikes(&ref);
    first_day_with_spikes(&rej);
    assert_true(bw__season_active(&s, age));
    keep = bw__season_value(&s, t, age);
    bw__season_judged(&rej, t, 0.0);
    alt = bw__season_value(&rej, t, age);
    print_message("bin 49: kept deviation %.2f, neighbours' %.2f\n", keep,
                  alt);
    assert_true(keep > 500.0 && fabs(alt) < 5.0); /* shrunk: one visit */
    bw__season_precheck(&s, t, age, keep);
    assert_true(season_same(&s, &ref));
    bw__season_precheck(&s, t, age, 0.6 * keep + 0.4 * alt);
    assert_true(season_same(&s, &ref));
    bw__season_precheck(&s, t, age - 2 * day, alt); /* not applying yet */
    assert_true(season_same(&s, &ref));
    bw__season_precheck(&s, day + 47 * step, age, 1e6); /* confirmed bin */
    assert_true(season_same(&s, &ref));
    bw__season_precheck(&s, t, age, 0.4 * keep + 0.6 * alt);
    assert_true(season_same(&s, &rej));
    bw__season_free(&s);
    bw__season_free(&ref);
    bw__season_free(&rej);
}

/* A bin no normal value confirmed before the profile applied. Five-minute
 * data at 100 (sd 1) with a daily cycle of amplitude 10 and a value of
 * 1,000 at 08:20 on the first day, for 7 days: with min_cycles 1 (the
 * profile applies on day 2, whose 08:20 is the bin's first check), or with
 * the default 2 and no data over 07:30-09:10 on day 2 (the first check on
 * day 3). The bin had predicted the spike every day after: the build before
 * expected 999 at 08:20 on every later day, read each value there as a
 * 890-sd dip (then as a jump to a familiar level, unflagged), and its block
 * model raised false sustained_down / sustained_up alerts on the next two
 * days. Against the same runs without the spike (the reference): from the
 * day after the first check, 08:20's expected value is within 3 noise sds
 * of the cycle's (measured: at most 0.97) and no more events alert, point
 * or block, than without the spike. */
static void unconfirmed_run(int min_cycles, bool gap, double spike,
                            uint64_t seed, int from_day, double *worst,
                            int *alerts)
{
    dflt_t f;
    bw_pf_out_t out;
    bw_rng_t rng;

    bw_config_defaults(&f.cfg);
    f.cfg.model.pf.daily.min_cycles = min_cycles;
    dflt_start(&f, seed);
    bw_rng_seed(&rng, 200 + seed);
    *worst = 0.0;
    *alerts = 0;
    for (int t = 0; t < 7 * 288; t++) {
        int day = t / 288, phase = t % 288;
        double truth = 100.0 + 10.0 * sin(2.0 * M_PI * phase / 288.0);
        double y = truth + bw_rng_gauss(&rng);
        if (gap && day == 1 && phase >= 90 && phase <= 110) {
            continue;
        }
        if (day == 0 && phase == 100 && spike != 0.0) {
            y = spike;
        }
        assert_int_equal(bw_pf_update(f.pf, f.ws, (int64_t)t * 300000, y, &out),
                         BW_OK);
        if (day < from_day) {
            continue;
        }
        *alerts += out.p_anomaly >= 0.99 || out.p_collective >= 0.99;
        if (phase == 100) {
            *worst = fmax(*worst, fabs(out.expected - truth));
        }
    }
    dflt_close(&f);
}

static void test_unconfirmed_bin_does_not_stick(void **state)
{
    (void)state;
    for (int v = 0; v < 2; v++) {
        int min_cycles = v == 0 ? 1 : 2, from = v == 0 ? 2 : 3;
        for (uint64_t seed = 1; seed <= 3; seed++) {
            double w0, w1;
            int a0, a1;
            unconfirmed_run(min_cycles, v == 1, 0.0, seed, from, &w0, &a0);
            unconfirmed_run(min_cycles, v == 1, 1000.0, seed, from, &w1, &a1);
            print_message("min_cycles %d%s, run %d: from day %d, |expected "
                          "- cycle| at 08:20 at most %.2f (%.2f without the "
                          "spike), alerts %d (%d)\n",
                          min_cycles, v == 1 ? ", day 2 gap" : "", (int)seed,
                          from + 1, w1, w0, a1, a0);
            assert_true(w1 < 3.0);
            assert_true(a1 <= a0);
        }
    }
}

/*
 * The daily profile starts to apply after min_cycles (2) days. The filter
 * tracked the raw level until then; without moving its particles into the
 * de-seasonalised frame, the first value with the profile applied read as
 * a jump of the profile's size (p = 0.99999 at midnight on NAB's
 * art_daily_jumpsup). Five days of the square wave: no alert from the day
 * the profile switches on.
 */
/* The profile switches on after min_cycles days; the filter's frame moves
 * with it. With min_cycles 1 the profile is due at the first event of day
 * 2, before its first period has been estimated (that happens as that
 * event is absorbed): the frame must move when the estimate arrives, or
 * the level keeps the night's value and the profile is added on top (a
 * prediction 9 sds low, read as an abnormal episode, as the demo showed
 * on other seeds before this was fixed). */
static void switch_on(int min_cycles)
{
    dflt_t f;
    bw_pf_out_t out;
    bw_rng_t rng;
    double at_switch = -1.0, worst = 0.0;
    int alerts = 0, on = min_cycles * 288;

    bw_config_defaults(&f.cfg);
    f.cfg.model.pf.daily.min_cycles = min_cycles;
    f.pf = bw_pf_new(&f.cfg.model.pf, 7, NULL, 0);
    f.ws = bw_pf_ws_new(&f.cfg.model.pf);
    assert_non_null(f.pf);
    bw_rng_seed(&rng, 32);
    for (int t = 0; t < 5 * 288; t++) {
        double y = square_day(t, &rng);
        bw_pf_update(f.pf, f.ws, (int64_t)t * 300000, y, &out);
        if (t == on) {
            at_switch = out.p_anomaly;
        }
        if (t >= on && t < on + 12) { /* the night: 20 expected */
            worst = fmax(worst, fabs(out.expected - 20.0));
        }
        if (t >= on) {
            alerts += out.p_anomaly >= 0.99;
        }
    }
    print_message("min_cycles %d: p at the switch: %.3g; worst |expected - "
                  "20| in its first hour %.2f; alerts after it: %d\n",
                  min_cycles, at_switch, worst, alerts);
    assert_true(at_switch < 0.5);
    assert_true(worst < 3.0 * 2.0); /* 3 noise sds */
    assert_int_equal(alerts, 0);
    dflt_close(&f);
}

static void test_profile_switch_on_is_not_an_anomaly(void **state)
{
    (void)state;
    switch_on(2); /* the default */
    switch_on(1);
}

/*
 * A job on some days: a flat series (100, sd 5, 5-minute steps) and, on a
 * random third of the days, a three-step burst of about 5,000 at 19:00.
 * Inside a burst the second and third values are ordinary for the busy
 * state, so they teach the daily profile. Each 19:00 bin then holds values
 * that disagree from day to day; its own standard error shrinks it to ~0,
 * so a day without the job expects 100 at 19:00 (a profile shrunk as a
 * whole kept ~1,600 there, and every quiet 19:00 read as a dip, as on
 * NAB's ec2_network_in_5abac7).
 */
static void test_job_on_some_days_is_not_seasonal(void **state)
{
    dflt_t f;
    bw_pf_out_t out;
    bw_rng_t rng;
    int job = 0, alerts = 0, quiet = 0;
    double worst = 0.0;

    (void)state;
    dflt_open(&f, 9, true);
    bw_rng_seed(&rng, 41);
    for (int t = 0; t < 14 * 288; t++) {
        int day = t / 288, k = t % 288 - 228;
        double y = 100.0 + 5.0 * bw_rng_gauss(&rng);
        if (t % 288 == 0) {
            job = bw_rng_uniform(&rng) < 1.0 / 3.0;
        }
        if (job && k >= 0 && k < 3) {
            y = 5000.0 + 200.0 * bw_rng_gauss(&rng);
        }
        bw_pf_update(f.pf, f.ws, (int64_t)t * 300000, y, &out);
        if (day >= 4 && !job && k >= 0 && k < 3) {
            quiet++;
            alerts += out.p_anomaly >= 0.99;
            worst = fmax(worst, fabs(out.expected - 100.0));
        }
    }
    print_message("quiet 19:00 values: %d, alerts %d, largest |expected - "
                  "100| %.1f\n",
                  quiet, alerts, worst);
    assert_true(quiet >= 12);
    assert_int_equal(alerts, 0);
    assert_true(worst < 50.0); /* 1% of the burst; noise sd is 5 */
    dflt_close(&f);
}

/*
 * A weekly pattern (taxi-like: 30-minute data, a daily swing, weekends at
 * 0.7 of the weekday level with their peak three hours later, lognormal
 * noise of 5%) and, on a weekday of week 7, a "holiday": the weekend's
 * level and shape all day. Without a weekly profile the holiday's values
 * are levels the series visits every weekend, read as familiar (nothing
 * flagged in its first hours: p about 0.25); with the weekly profile (on
 * by default, applying from the fourth week) the holiday is an abnormal
 * episode (p 0.7-1 from its first value, flagged at 0.99 in most runs;
 * the drop is 30%, about 6 noise sds, of which the profiles' own error
 * takes a part). Eight noise seeds; weeks 4-8 outside the holiday raise
 * no more alerts with the profile than without it.
 */
/* The defaults' filter, with or without the weekly profile. */
static void weekly_open(dflt_t *f, bool weekly, uint64_t seed)
{
    bw_config_defaults(&f->cfg);
    f->cfg.model.pf.weekly.enabled = weekly;
    dflt_start(f, seed);
}

static double taxi_like(int t, bool holiday, bw_rng_t *rng)
{
    int day = t / 48;
    double h = (t % 48) / 2.0;
    bool we = day % 7 >= 5 || holiday;
    double peak = we ? 17.0 : 14.0;
    double d = 1.0 + 0.6 * exp(-pow((h - peak) / 4.0, 2.0)) -
               0.5 * exp(-pow((h - 4.0) / 3.0, 2.0));

    return 10000.0 * d * (we ? 0.7 : 1.0) * exp(0.05 * bw_rng_gauss(rng));
}

static void weekly_run(bool weekly, uint64_t seed, int *hol_first10,
                       int *others)
{
    const int hol = (6 * 7 + 2) * 48; /* a Wednesday of week 7 */
    dflt_t f;
    bw_pf_out_t out;
    bw_rng_t rng;

    weekly_open(&f, weekly, seed);
    bw_rng_seed(&rng, 70 + seed);
    *hol_first10 = *others = 0;
    for (int t = 0; t < 8 * 7 * 48; t++) {
        bool in = t >= hol && t < hol + 48;
        double y = taxi_like(t, in, &rng);
        bw_pf_update(f.pf, f.ws, (int64_t)t * 1800000, y, &out);
        if (in && t < hol + 10) {
            *hol_first10 += out.p_anomaly >= 0.99;
        } else if (!in && t >= 3 * 7 * 48) {
            *others += out.p_anomaly >= 0.99;
        }
    }
    dflt_close(&f);
}

static void test_weekly_profile_sees_a_holiday(void **state)
{
    int found[2] = {0, 0}, fa[2] = {0, 0};

    (void)state;
    for (uint64_t seed = 1; seed <= 8; seed++) {
        for (int weekly = 0; weekly < 2; weekly++) {
            int first10, others;
            weekly_run(weekly, seed, &first10, &others);
            found[weekly] += first10 > 0;
            fa[weekly] += others;
            if (weekly) {
                print_message("seed %d: holiday's first 10 events flagged "
                              "%d with the weekly profile\n",
                              (int)seed, first10);
            }
        }
    }
    print_message("holiday flagged in its first 10 events in %d of 8 runs "
                  "with the weekly profile, %d without; alerts elsewhere "
                  "from week 4: %d and %d\n",
                  found[1], found[0], fa[1], fa[0]);
    /* This run: 7 of 8 and 0; 0 alerts elsewhere and 22 (before the
     * episode's gap: 7 of 8, 0 and 26). */
    assert_true(found[1] >= 5);
    assert_int_equal(found[0], 0);
    assert_true(fa[1] <= fa[0]);
}

/*
 * A series without a weekly pattern that wanders for hours (AR(1) with
 * coefficient 0.98 per 5-minute step around 80, innovation sd 0.3): each
 * hourly weekly bin sees twelve strongly correlated values a week. Counted
 * as twelve independent values, the bins' wander passed for a weekly
 * pattern: six seeds raised 101 alerts with the profile against 34 without
 * it. With a visit's mean as one observation (season.c) the profile is
 * shrunk: its values stay below a fifth of the wander's own sd (1.5; the
 * largest is 0.2, in hours where the wander sits far out). A run with it
 * follows the run without it until that difference tips a resampling,
 * and the two then differ as runs of different particle seeds do. So each
 * run with the profile (three particle seeds per series) must also raise
 * no more alerts than the most any of the three runs without it raises on
 * the same series: it adds nothing beyond the particle filter's own
 * randomness. (The runs without it raise 0-27 alerts on one series across
 * the particle seeds; with the profile the same counts, but for one run
 * of 2 where the run without raises 0: 127 against 125 in all.)
 */
static int wander_alerts(bool weekly, uint64_t seed, uint64_t pf_seed,
                         double *largest)
{
    dflt_t f;
    bw_pf_out_t out;
    bw_rng_t rng;
    double x = 0.0;
    int alerts = 0;

    weekly_open(&f, weekly, pf_seed);
    bw_rng_seed(&rng, 80 + seed);
    for (int t = 0; t < 6 * 7 * 288; t++) {
        int64_t ts = (int64_t)t * 300000;
        x = 0.98 * x + 0.3 * bw_rng_gauss(&rng);
        bw_pf_update(f.pf, f.ws, ts, 80.0 + x, &out);
        alerts += out.p_anomaly >= 0.99;
        *largest = fmax(*largest, fabs(bw__season_value(bw__pf_weekly(f.pf),
                                                        ts, ts)));
    }
    dflt_close(&f);
    return alerts;
}

static void test_weekly_profile_of_wander_is_shrunk(void **state)
{
    int on = 0, off = 0;
    double largest = 0.0, none = 0.0;

    (void)state;
    for (uint64_t seed = 1; seed <= 6; seed++) {
        int a[3], b[3], most = 0;
        for (int j = 0; j < 3; j++) {
            a[j] = wander_alerts(true, seed, seed + 100 * (uint64_t)j,
                                 &largest);
            b[j] = wander_alerts(false, seed, seed + 100 * (uint64_t)j,
                                 &none);
            most = b[j] > most ? b[j] : most;
            on += a[j];
            off += b[j];
        }
        print_message("AR(1) wander, six weeks, seed %d: %d, %d, %d alerts "
                      "with the weekly profile, %d, %d, %d without "
                      "(particle seeds %d, %d, %d)\n",
                      (int)seed, a[0], a[1], a[2], b[0], b[1], b[2],
                      (int)seed, (int)seed + 100, (int)seed + 200);
        for (int j = 0; j < 3; j++) {
            assert_true(a[j] <= most);
        }
    }
    print_message("AR(1) wander: %d alerts with the weekly profile, %d "
                  "without (18 runs each); the profile's largest value "
                  "%.3g\n",
                  on, off, largest);
    assert_true(none == 0.0);
    assert_true(largest < 0.3);
}

/*
 * Collective anomalies (block.c): for 36 events (3 blocks) the series sits
 * @p amp noise sds above its level, each value unremarkable on its own.
 * Counts the runs in which the block model alerts during the run or the
 * block after it, the runs in which the point model alerts there, and the
 * alerts of either before the run.
 */
typedef struct {
    int block_hits, point_hits, false_alarms;
} run_counts_t;

static run_counts_t sustained_runs(int block_size, bool episodes, double amp,
                                   int runs)
{
    run_counts_t rc = {0, 0, 0};
    bw_rng_t rng;

    bw_rng_seed(&rng, 21);
    for (int r = 0; r < runs; r++) {
        dflt_t f;
        int start = 1500 + (int)(12 * bw_rng_uniform(&rng)), bh = 0, ph = 0;
        bw_config_defaults(&f.cfg);
        f.cfg.model.pf.block_size = block_size;
        if (!episodes) { /* the onset model as it was before episodes */
            f.cfg.model.pf.p_episode = 0.0;
            f.cfg.model.pf.p_shift = 0.001;
            f.cfg.model.pf.recur_gap = 0.0;
            f.cfg.model.pf.recur_min_count = 1;
            f.cfg.model.pf.ar_noise = false;
        }
        f.pf = bw_pf_new(&f.cfg.model.pf, 40 + (uint64_t)r, NULL, 0);
        f.ws = bw_pf_ws_new(&f.cfg.model.pf);
        assert_non_null(f.pf);
        for (int t = 0; t < start + 60; t++) {
            bw_pf_out_t out;
            double y = 100.0 + bw_rng_gauss(&rng);
            y += t >= start && t < start + 36 ? amp : 0.0;
            assert_int_equal(
                bw_pf_update(f.pf, f.ws, (int64_t)t * 300000, y, &out), BW_OK);
            if (t < 400) { /* the block model's warm-up: 30 blocks */
                continue;
            }
            if (t < start) {
                rc.false_alarms +=
                    out.p_anomaly >= 0.99 || out.p_collective >= 0.99;
            } else if (t < start + 48) {
                bh |= out.p_collective >= 0.99;
                ph |= out.p_anomaly >= 0.99;
                if (out.p_collective >= 0.99 && !episodes) {
                    assert_int_equal(out.direction, BW_DIR_SUSTAINED_UP);
                    assert_true(out.block_mean > out.block_expected + amp / 2);
                }
            }
        }
        rc.block_hits += bh;
        rc.point_hits += ph;
        dflt_close(&f);
    }
    return rc;
}

/* A spike the point model reports is not reported again by its block or
 * (echo of a shift) the next one, and does not move the block's mean. */
static void test_reported_spike_is_not_collective(void **state)
{
    dflt_t f;
    bw_rng_t rng;
    int spike = 905, reported = 0;

    (void)state;
    dflt_open(&f, 5, true);
    bw_rng_seed(&rng, 5);
    for (int t = 0; t < 960; t++) {
        bw_pf_out_t out;
        double y = 100.0 + bw_rng_gauss(&rng) + (t == spike ? 40.0 : 0.0);
        bw_pf_update(f.pf, f.ws, (int64_t)t * 300000, y, &out);
        if (t == spike) {
            reported = out.p_anomaly >= 0.99;
        }
        if (out.block_closed && t >= spike && t < spike + 24) {
            assert_true(out.p_collective == 0.0);
            assert_true(fabs(out.block_mean - 100.0) < 1.5);
        }
    }
    assert_true(reported);
    dflt_close(&f);
}

/* A block's reported mean is the mean of its values (no point anomaly
 * here), also where a daily profile applies: 5-minute data on a daily
 * sine of amplitude 20 (sd 0.2 noise), blocks of 12. The block had added
 * back its closing event's profile value to the mean of the
 * de-seasonalised values, 27.5 minutes from the block's middle: up to
 * 20 * 2 pi / 288 * 5.5 = 2.4 off. A filter saved in the middle of a block
 * and loaded goes on reporting the same means; loaded from the record as
 * PF15 held it (without that block's own sum), its first block is
 * reported as before and the next ones as the filter's, also when it is
 * saved and loaded again before that block closes. */
static void test_block_mean_in_values_frame(void **state)
{
    dflt_t f;
    bw_pf_t *g = NULL, *h = NULL;
    bw_wbuf_t w = {0};
    bw_rbuf_t r;
    bw_rng_t rng;
    double ring[12], worst = 0.0;
    int blocks = 0, h_blocks = 0;

    (void)state;
    dflt_open(&f, 8, true);
    bw_rng_seed(&rng, 8);
    for (int t = 0; t < 5 * 288; t++) {
        bw_pf_out_t out, out2;
        double y = 100.0 + 20.0 * sin(2.0 * M_PI * t / 288.0) +
                   0.2 * bw_rng_gauss(&rng), mean = 0.0;
        ring[t % 12] = y;
        assert_int_equal(
            bw_pf_update(f.pf, f.ws, (int64_t)t * 300000, y, &out), BW_OK);
        if (g != NULL) {
            assert_int_equal(
                bw_pf_update(g, f.ws, (int64_t)t * 300000, y, &out2), BW_OK);
            assert_true(out2.block_closed == out.block_closed);
            assert_true(!out.block_closed ||
                        out2.block_mean == out.block_mean);
            assert_int_equal(
                bw_pf_update(h, f.ws, (int64_t)t * 300000, y, &out2), BW_OK);
            if (out.block_closed && h_blocks++ > 0) {
                assert_true(out2.block_mean == out.block_mean);
            } else if (out.block_closed) {
                assert_true(fabs(out2.block_mean - out.block_mean) < 3.0);
            }
        }
        if (t == 4 * 288 + 5) { /* mid-block */
            assert_int_equal(bw_pf_save(f.pf, &w), BW_OK);
            g = bw_pf_new(&f.cfg.model.pf, 8, NULL, 0);
            bw_rbuf_init(&r, w.data, w.len);
            assert_int_equal(bw_pf_load(g, &r), BW_OK);
            w.len -= 8; /* as PF15 held it */
            w.data[0] = '5';
            h = bw_pf_new(&f.cfg.model.pf, 8, NULL, 0);
            bw_rbuf_init(&r, w.data, w.len);
            assert_int_equal(bw_pf_load(h, &r), BW_OK);
            assert_int_equal(r.pos, w.len);
            /* saved again before its block closes: it loads (its NaN sum
             * had been refused, and the series' state lost) */
            w.len = 0;
            assert_int_equal(bw_pf_save(h, &w), BW_OK);
            bw_pf_destroy(h);
            h = bw_pf_new(&f.cfg.model.pf, 8, NULL, 0);
            bw_rbuf_init(&r, w.data, w.len);
            assert_int_equal(bw_pf_load(h, &r), BW_OK);
        }
        if (!out.block_closed || t < 3 * 288) { /* the profile applies */
            continue;
        }
        for (int k = 0; k < 12; k++) {
            mean += ring[k] / 12.0;
        }
        worst = fmax(worst, fabs(out.block_mean - mean));
        blocks++;
    }
    print_message("block mean against the values' mean over %d blocks: "
                  "worst %.3g\n", blocks, worst);
    assert_true(blocks >= 40);
    assert_true(worst < 0.05 && h_blocks >= 20);
    bw_wbuf_free(&w);
    bw_pf_destroy(g);
    bw_pf_destroy(h);
    dflt_close(&f);
}

/* The block layer alone (block.c), 5-minute blocks of 12 at 100 (sd 1)
 * past its warm-up; then a block that closes 10 sds high on an event the
 * point model reported as a spike while its episodes do not apply yet
 * (point_holds false): the block reports the block, the event keeps its own
 * direction (it had been relabelled sustained_up). A load takes the block
 * as saved and refuses a probability outside [0, 1] or a sum without
 * events. */
static void test_block_layer(void **state)
{
    bw_pf_cfg_t c = test_pf_cfg();
    bw_pf_ws_t *ws = bw_pf_ws_new(&c);
    bw_block_t b, l;
    bw_pf_out_t out;
    bw_rng_t rng;
    int t = 0;

    (void)state;
    c.block_size = 12;
    assert_non_null(ws);
    assert_int_equal(bw__block_init(&b, &c, 3, NULL, 0), 0);
    assert_int_equal(bw__block_init(&l, &c, 3, NULL, 0), 0);
    bw_rng_seed(&rng, 3);
    for (; t < 12 * 60; t++) {
        memset(&out, 0, sizeof(out));
        double v = bw_rng_gauss(&rng);
        bw__block_add(&b, ws, (int64_t)t * 300000, v, v, false, &out);
    }
    for (int k = 0; k < 12; k++, t++) {
        memset(&out, 0, sizeof(out));
        out.p_anomaly = k == 11 ? 0.9 : 0.0;
        out.direction = k == 11 ? BW_DIR_SPIKE : BW_DIR_NONE;
        bw__block_add(&b, ws, (int64_t)t * 300000, 10.0, 10.0, false, &out);
    }
    assert_true(out.block_closed && out.p_collective >= 0.99);
    assert_int_equal(out.direction, BW_DIR_SPIKE);
    for (int bad = -1; bad < 4; bad++) { /* -1: as saved */
        bw_block_t c2 = b;
        bw_wbuf_t w = {0};
        bw_rbuf_t r;
        c2.p_max = bad == 0 ? 7.0 : 0.0;
        c2.p_prev = bad == 1 ? -0.5 : 0.0;
        c2.sum = bad == 2 ? 3.0 : 0.0; /* with n 0: the block just closed */
        c2.raw_sum = bad == 3 ? 3.0 : 0.0;
        bw__block_save(&c2, &w);
        bw__block_save_raw(&c2, &w);
        bw_rbuf_init(&r, w.data, w.len);
        bw__block_load(&l, &r);
        bw__block_load_raw(&l, &r, true);
        assert_int_equal(r.err, bad < 0 ? BW_OK : BW_ERR_CORRUPT);
        bw_wbuf_free(&w);
    }
    bw__block_free(&b);
    bw__block_free(&l);
    bw_pf_ws_destroy(ws);
}

static void test_sustained_run_is_collective(void **state)
{
    const int runs = 40;
    run_counts_t with = sustained_runs(12, false, 4.0, runs);
    run_counts_t without = sustained_runs(0, false, 4.0, runs);
    run_counts_t ep = sustained_runs(12, true, 4.0, runs);

    (void)state;
    print_message("36 events 4 sds high, %d runs: onset model: block model "
                  "alerts in %d, point model in %d (alone: %d); episodes (the "
                  "default): point model in %d; false alarms before the run: "
                  "%d with blocks, %d without, %d with episodes (%d events)\n",
                  runs, with.block_hits, with.point_hits, without.point_hits,
                  ep.point_hits, with.false_alarms, without.false_alarms,
                  ep.false_alarms, runs * 1100);
    /* The onset model (no episodes), measured 28/40 hits through blocks: a
     * run that starts late in a block moves that block a little, the block
     * model partly follows it as a familiar value (its recurrent regime),
     * and the next block is then less of a surprise. Asserted: >= 20, about
     * 3 binomial sds below; the point model alone at most 8 (measured 3, 3
     * sds above); the block model adds no false alarm on the noise. With
     * abnormal episodes (the default) the point model itself holds the run
     * (measured 39/40; asserted >= 34, 3 binomial sds below 39/40's rate),
     * with no false alarm before it. */
    assert_true(with.block_hits >= 20);
    assert_true(without.point_hits <= 8);
    assert_int_equal(with.false_alarms, without.false_alarms);
    assert_true(ep.point_hits >= 34);
    assert_int_equal(ep.false_alarms, 0);
}


/* The most children a particle can have: t_nodes at its bound (16) with
 * spikes, episodes and the recurrent jump on, without and with the learned
 * tail node (tail_scale), which is one more. The workspace and the
 * children's tables are sized for it (the ASan build checks the step's
 * writes); a t_nodes beyond the bound is refused, not written past. */
static void test_most_children(void **state)
{
    bw_pf_cfg_t c = test_pf_cfg();
    char err[128] = "";

    (void)state;
    c.t_nodes = 16;
    for (int tail = 0; tail < 2; tail++) {
        bw_pf_t *pf;
        bw_pf_ws_t *ws;
        bw_pf_out_t out;
        bw_rng_t rng;
        c.tail_scale = tail ? 4.0 : 0.0;
        pf = bw_pf_new(&c, 1, NULL, 0);
        ws = bw_pf_ws_new(&c);
        assert_non_null(pf);
        assert_non_null(ws);
        bw_rng_seed(&rng, 3);
        for (int t = 0; t < 400; t++) {
            double y = 50.0 + bw_rng_gauss(&rng) + (t >= 300 ? 12.0 : 0.0);
            assert_int_equal(
                bw_pf_update(pf, ws, (int64_t)t * 60000, y, &out), BW_OK);
            assert_true(isfinite(out.p_anomaly) && isfinite(out.expected));
        }
        assert_true(out.p_anomaly >= 0.99); /* the shift is an episode */
        assert_true(tail ? bw__pf_tail(pf) > 0.0 : bw__pf_tail(pf) == 0.0);
        bw_pf_ws_destroy(ws);
        bw_pf_destroy(pf);
    }
    c.tail_scale = 0.0;
    c.t_nodes = 17;
    assert_null(bw_pf_new(&c, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "t_nodes"));
}

/* scale_floor 0 is allowed: a counter that stays at 0 (then moves) keeps
 * a positive noise sd (SD_MIN), so no 0/0 reaches the weights, and its
 * state saves and loads. */
static void test_zero_floor_constant_series(void **state)
{
    bw_pf_cfg_t c = test_pf_cfg();
    bw_pf_t *pf = NULL, *copy = NULL;
    bw_pf_ws_t *ws;
    bw_pf_out_t out;
    bw_wbuf_t w = {0};
    bw_rbuf_t r;

    (void)state;
    c.scale_floor = 0.0;
    pf = bw_pf_new(&c, 1, NULL, 0);
    copy = bw_pf_new(&c, 2, NULL, 0);
    ws = bw_pf_ws_new(&c);
    assert_non_null(pf);
    for (int t = 0; t < 300; t++) {
        double y = t < 250 ? 0.0 : 3.0;
        assert_int_equal(bw_pf_update(pf, ws, (int64_t)t * 60000, y, &out),
                         BW_OK);
        assert_true(isfinite(out.p_anomaly) && isfinite(out.noise_sd) &&
                    out.noise_sd > 0.0);
    }
    assert_int_equal(bw_pf_save(pf, &w), BW_OK);
    bw_rbuf_init(&r, w.data, w.len);
    assert_int_equal(bw_pf_load(copy, &r), BW_OK);
    bw_wbuf_free(&w);
    bw_pf_ws_destroy(ws);
    bw_pf_destroy(copy);
    bw_pf_destroy(pf);
}

/* scale_floor 0 and a series alternating between 0 and 1e-40: the local
 * noise's scan, in float, overflowed (1 / 1e-40), every child's variance
 * was inf and the weights NaN (a NaN level and noise sd published, p 0).
 * Every output stays finite. */
static void test_tiny_alternation_finite(void **state)
{
    bw_config_t cfg;
    bw_pf_t *pf;
    bw_pf_ws_t *ws;
    bw_pf_out_t out;
    int bad = 0;

    (void)state;
    bw_config_defaults(&cfg);
    cfg.model.pf.scale_floor = 0.0;
    pf = bw_pf_new(&cfg.model.pf, 1, NULL, 0);
    ws = bw_pf_ws_new(&cfg.model.pf);
    assert_non_null(pf);
    assert_non_null(ws);
    for (int t = 0; t < 300; t++) {
        assert_int_equal(bw_pf_update(pf, ws, (int64_t)t * 60000,
                                      t % 2 ? 1e-40 : 0.0, &out),
                         BW_OK);
        bad += !(isfinite(out.level) && isfinite(out.noise_sd) &&
                 isfinite(out.surprise) && isfinite(out.p_anomaly));
    }
    print_message("alternating 0 and 1e-40, scale_floor 0: %d of 300 "
                  "outputs not finite\n", bad);
    assert_int_equal(bad, 0);
    bw_pf_ws_destroy(ws);
    bw_pf_destroy(pf);
}

/* One run of 1-minute data, N(@p level, 1), 600 events, with 8-sd values
 * at events 300 and 500 (@p flat: the first 50 events all at the level)
 * under the shipped defaults and model.pf.scale_prior_spread @p spread.
 * Counts the 8-sd values flagged (p_anomaly >= 0.99) and the other alerts
 * after the warm-up; *sd300 is the learned noise sd after event 300,
 * p[] every event's p_anomaly and *wide the largest ratio of the
 * predictive sd to the noise sd over events 100-299 (before the first
 * 8-sd value, after which the particles part). */
static void offset_run(double level, uint64_t seed, double spread, bool flat,
                       int *hits, int *other, double *sd300, double *p,
                       double *wide)
{
    dflt_t f;
    bw_pf_out_t out;
    bw_rng_t rng;

    bw_config_defaults(&f.cfg);
    f.cfg.model.pf.scale_prior_spread = spread;
    dflt_start(&f, seed);
    bw_rng_seed(&rng, 300 + seed);
    *hits = *other = 0;
    *wide = 0.0;
    for (int t = 0; t < 600; t++) {
        bool big = t == 300 || t == 500;
        double y = level + (big ? 8.0 : flat && t < 50 ? 0.0
                                                       : bw_rng_gauss(&rng));
        assert_int_equal(bw_pf_update(f.pf, f.ws, (int64_t)t * 60000, y, &out),
                         BW_OK);
        p[t] = out.p_anomaly;
        if (big) {
            *hits += out.p_anomaly >= 0.99;
        } else if (!out.warmup) {
            *other += out.p_anomaly >= 0.99;
        }
        if (t == 300) {
            *sd300 = out.noise_sd;
        }
        if (t >= 100 && t < 300) {
            *wide = fmax(*wide, out.pred_sd / out.noise_sd);
        }
    }
    dflt_close(&f);
}

/* The noise prior does not depend on the series' offset. Its sd is 5% of
 * the first value, worth one event, and was only discounted away: on
 * N(1e4, 1) data 8-sd values at events 200 and 500 scored p 0.0007 and
 * 0.0009, and at 1e6 nothing was flagged for thousands of events (the
 * predictive interval some 2,000 wide at event 100, 9,500 at 300). It is
 * now capped at the 10th event at 10 times the spread of the steps so far
 * (cap_prior), so at every level (four seeds each) 8-sd values at events
 * 300 and 500 are flagged, no other value is, and the noise sd learned by
 * event 300 is within 50% of the data's (a prior of up to 10 sds worth
 * one event, discounted 300 times, is still in it). At 1e10 the memory of
 * recent values, single precision, held the values to 1024 (the local
 * noise read that rounding as spread: p 0.06 at 8-sd values of N(1e10,
 * 30)); it now holds them less an origin near the level (memory.h). At
 * 1e12 the noise statistic itself cannot resolve one noise variance next
 * to the prior's (5e10 squared): the cap never leaves less than its own
 * share (without that, the noise learned there by event 300 was 12% below
 * the one learned at 1e4; at 1e6, 1e10 and 1e12 it must be within 5%). A series whose first 50 values do not move is capped at its
 * first step (it had kept its prior: with the cap off nothing is
 * flagged). The predictive sd stays within twice the noise sd before the
 * first 8-sd value (1.28-1.45 at every level): the particles' spread was
 * taken as E[m^2] - E[m]^2, which at 1e10 kept 1e20's rounding, and the
 * interval (and baseline_z, fusion's input) was some 50 noise sds wide at
 * scattered events. */
static void test_noise_prior_is_offset_free(void **state)
{
    static const double levels[5] = {100.0, 1e4, 1e6, 1e10, 1e12};
    static double p[600];
    int hits, other;
    double sd, sd4[5] = {0}, wide;

    (void)state;
    for (int l = 0; l < 5; l++) {
        for (uint64_t seed = 1; seed <= 4; seed++) {
            offset_run(levels[l], seed, 10.0, false, &hits, &other, &sd, p, &wide);
            print_message("level %g, seed %d: 8-sd values flagged %d of 2 "
                          "(p %.4g, %.4g), other alerts %d, noise sd at "
                          "event 300 %.3f, predictive sd at most %.3f "
                          "noise sds\n",
                          levels[l], (int)seed, hits, p[300], p[500], other,
                          sd, wide);
            assert_int_equal(hits, 2);
            assert_int_equal(other, 0);
            assert_true(sd < 1.5);
            assert_true(wide < 2.0);
            if (l == 1) {
                sd4[seed] = sd; /* at 1e4, where the cap binds */
            } else if (l > 1) { /* the same noise learned at every level */
                assert_true(fabs(sd - sd4[seed]) <= 0.05 * sd4[seed]);
            }
        }
    }
    for (uint64_t seed = 1; seed <= 4; seed++) {
        offset_run(1e6, seed, 10.0, true, &hits, &other, &sd, p, &wide);
        print_message("level 1e6, flat for 50 events, seed %d: 8-sd values "
                      "flagged %d of 2, other alerts %d, noise sd at event "
                      "300 %.3f\n",
                      (int)seed, hits, other, sd);
        assert_int_equal(hits, 2);
        assert_int_equal(other, 0);
        assert_true(sd < 1.5);
    }
    offset_run(1e6, 1, 0.0, true, &hits, &other, &sd, p, &wide);
    assert_int_equal(hits, 0); /* the cap off: as before it */
}

/* One run of 5-minute data at 100 (sd 1) with a daily cycle of amplitude
 * 10: a value of @p spike at 08:20 on the first day (0: none), spikes of
 * @p later noise sds at 04:10, 08:20, 12:30 and 16:40 on the second (0:
 * none) and a rise of 6 noise sds over 12:30-17:30 on the third. Returns
 * the rise's events scored >= 0.99; *spiked tells whether the first-day
 * spike was, *other counts the other events scored >= 0.99 between the
 * warm-up (30 events) and the rise, the second day's spikes left out: the
 * spikes' aftermath. */
static int rise_after_spike(uint64_t seed, double spike, double later,
                            int *spiked, int *other, double *p_third)
{
    dflt_t f;
    bw_pf_out_t out;
    bw_rng_t rng;
    int flagged = 0;

    dflt_open(&f, seed, true);
    bw_rng_seed(&rng, 100 + seed);
    *spiked = *other = 0;
    for (int t = 0; t < 3 * 288; t++) {
        int day = t / 288, phase = t % 288;
        double y = 100.0 + 10.0 * sin(2.0 * M_PI * phase / 288.0) +
                   bw_rng_gauss(&rng);
        bool rise = day == 2 && phase >= 150 && phase < 210;
        bool at_spike = day == 0 && phase == 100 && spike != 0.0;
        bool at_later = day == 1 && phase % 50 == 0 && phase > 0 &&
                        phase <= 200 && later != 0.0;
        int alarm;
        y = at_spike ? spike : y + (rise ? 6.0 : 0.0) + (at_later ? later : 0.0);
        assert_int_equal(bw_pf_update(f.pf, f.ws, (int64_t)t * 300000, y, &out),
                         BW_OK);
        alarm = out.p_anomaly >= 0.99;
        if (p_third != NULL && t == 2 * 288 + 100) {
            *p_third = out.p_anomaly; /* the third day's 08:20 */
        }
        if (at_spike) {
            *spiked = alarm;
        } else if (rise) {
            flagged += alarm;
        } else if (t >= 30 && t < 2 * 288 + 150 && !at_later) {
            *other += alarm;
        }
    }
    dflt_close(&f);
    return flagged;
}

/* Six runs of rise_after_spike each without and with the first day's
 * spike of 1000 (and @p later-sd spikes on the second day in both): the
 * spike is flagged in every run, the rise on at most 5 fewer of its 60
 * events in any run and on at least 90% of the events the runs without
 * the spike flag, which must themselves flag 3/4 of it; no more other
 * alerts with the spike than without. Returns the largest p_anomaly of
 * the third day's 08:20 in the runs with it. */
static double rise_pairs(double later)
{
    int clean = 0, after = 0, spiked = 0, other0 = 0, other1 = 0;
    double worst = 0.0;

    for (uint64_t seed = 1; seed <= 6; seed++) {
        int s0, s1, o0, o1;
        double p3;
        int k0 = rise_after_spike(seed, 0.0, later, &s0, &o0, NULL);
        int k1 = rise_after_spike(seed, 1000.0, later, &s1, &o1, &p3);
        print_message("run %d: the rise flagged on %d of 60 events without "
                      "the first day's spike, %d with it; other alerts %d, "
                      "%d; p at day 3's 08:20 %.3g\n",
                      (int)seed, k0, k1, o0, o1, p3);
        assert_true(k1 >= k0 - 5);
        clean += k0;
        after += k1;
        spiked += s1;
        other0 += o0;
        other1 += o1;
        worst = fmax(worst, p3);
    }
    print_message("6-sd rise flagged on %d of 360 events without a spike of "
                  "1000 two days before, %d after it (flagged in %d of 6 "
                  "runs; second-day spikes of %g sds in both); other alerts "
                  "%d without, %d with\n",
                  clean, after, spiked, later, other0, other1);
    assert_true(4 * clean >= 3 * 360);
    assert_int_equal(spiked, 6);
    assert_true(10 * after >= 9 * clean);
    assert_true(other1 <= other0);
    return worst;
}

/* One huge spike must not blind the series. A value 900 noise sds out,
 * read as a spike, had added about 8,000 noise variances to the noise
 * statistic and founded its bin of the first day's profile, and a 6-sd
 * rise two days later was flagged on 0 of 360 events (six runs) against
 * 292 without the spike. The reference is the same runs without the
 * spike, which must themselves flag most of the rise (3/4 of its events;
 * they flag 292), else the comparison says nothing: the spike is flagged;
 * the rise is flagged on at most 5 fewer of its 60 events in any run and
 * on at least 90% of the events the clean runs flag; and the spike's
 * aftermath alerts no more than the clean runs do over the same span. */
static void test_huge_spike_does_not_blind(void **state)
{
    (void)state;
    rise_pairs(0.0);
}

/* A spike's profile bin whose next visit is a spike too is first checked
 * by a normal value. The first day's spike (1000 on a series at 100) and
 * the second day's at the same time of day (30 noise sds) leave the bin
 * at 08:20 unconfirmed (neither visit normal), and the profile applies
 * from the third day. Its first check scored that day's normal value
 * against the kept spike, about 900 noise sds below it: a false alert in
 * each of the six runs, and the noise the filter learns widened by it (by
 * up to a spike's cap, 100 noise variances). The bin is now
 * judged before the value is scored when the value lies nearer the
 * neighbours' deviation (bw__season_precheck). There must be no more
 * alerts outside the spikes and the rise than in the same runs without
 * the first day's spike, and the rise must be flagged as in those (at
 * most 5 fewer of its 60 events in any run, at least 90% of theirs over
 * six runs), which must themselves flag 3/4 of it. */
static void test_spike_bin_checked_by_a_normal_value(void **state)
{
    (void)state;
    /* the normal value the first check reads */
    assert_true(rise_pairs(30.0) < 0.5);
}

/* The memory scan's visit statistics (near, dwell) after unscan, and its
 * kernel count outside the zone less the left-out newest values
 * (bw__memory_count_newest: pf.c's novelty), against a direct count over
 * the values in time order: rings full and not, wrapped at every position,
 * with skipped and left-out newest values. */
static void test_memory_visit_counts(void **state)
{
    enum { W = 37 };
    bw_rng_t rng;

    (void)state;
    bw_rng_seed(&rng, 12);
    for (int trial = 0; trial < 400; trial++) {
        bw__memory_t m;
        bw__mem_scan_t r = {0};
        float seq[3 * W + 2];
        int pushes = 2 + (int)(bw_rng_uniform(&rng) * 3 * W), len, kept;
        int skip = (int)(bw_rng_uniform(&rng) * 6), e;
        int near = 0, dwell = 0, count = 0, fresh;

        assert_int_equal(bw__memory_init(&m, W), 0);
        for (int i = 0; i < pushes; i++) {
            seq[i] = (float)(bw_rng_uniform(&rng) * 10.0);
            bw__memory_push(&m, seq[i], 0, 0.0);
        }
        len = pushes < W ? pushes : W; /* held, oldest first at pushes-len */
        skip = skip < len ? skip : len - 1;
        e = (int)(bw_rng_uniform(&rng) * 10);
        r.lo = 3.0f, r.hi = 6.0f, r.dlo = 2.0f, r.dhi = 7.5f;
        r.zlo = 4.0f, r.zhi = 4.5f, r.alo = r.ahi = -1.0f, r.inv = 0.0f;
        bw__memory_scan(&m, skip, &r);
        fresh = r.count - bw__memory_count_newest(&m, skip, e, &r);
        bw__memory_unscan(&m, skip, e, &r);
        kept = len - skip - e;
        for (int i = 0; i < kept; i++) {
            float v = seq[pushes - len + i];
            int in = v >= r.lo && v <= r.hi;
            near += in;
            count += in && (v <= r.zlo || v >= r.zhi);
            if (i + 1 < kept) {
                float n = seq[pushes - len + i + 1];
                dwell += in && n >= r.dlo && n <= r.dhi;
            }
        }
        if (len - skip < 2) { /* the scan counts nothing below two values */
            near = dwell = count = 0;
        }
        assert_int_equal(fresh, count); /* the count less the newest e */
        assert_int_equal(r.near, near);
        assert_int_equal(r.dwell, dwell);
        bw__memory_free(&m);
    }
}

/* A scan that stopped short counts no more than the full scan @p full;
 * one that did not is the full scan. */
static void check_phase_stop(const bw__mem_phase_t *e,
                             const bw__mem_phase_t *full)
{
    assert_true(e->held <= full->held && e->count <= full->count &&
                e->near <= full->near && e->dwell <= full->dwell);
    if (!e->stopped) {
        assert_int_equal(e->held, full->held);
        assert_int_equal(e->count, full->count);
        assert_int_equal(e->near, full->near);
        assert_int_equal(e->dwell, full->dwell);
    }
}

/* The memory's phase windows (bw__memory_scan_phase: pf.c's values near
 * this time of day on earlier days) against a direct count over the values
 * by their true times: one-minute values over three "days" of 100 minutes
 * with gaps of 7 and 23 minutes (so that ages come from logged stretches),
 * random skips, window half-widths and offsets of the next event (up to
 * two and a half periods: windows that start before the newest value are
 * counted from the value before it, as a dwell pair needs); held,
 * count (kernel outside the zone), near and dwell (a kernel value followed
 * by one in the stay range). A scan told to stop at the second kernel
 * value, or the second outside the zone, or at both, stops there exactly
 * when the full counts reach them, and is the full scan otherwise. */
static void test_memory_phase_counts(void **state)
{
    enum { W = 280, N = 300 };
    const int64_t min = 60000, period = 100 * min;
    static int64_t t[N];
    static float seq[N];
    bw_rng_t rng;
    bw__memory_t m;
    int64_t tm = 0;
    int seen = 0, stops = 0, count_stops = 0;

    (void)state;
    bw_rng_seed(&rng, 31);
    assert_int_equal(bw__memory_init(&m, W), 0);
    for (int i = 0; i < N; i++) {
        tm += i == 90 ? 7 * min : (i == 170 ? 23 * min : min);
        t[i] = tm;
        seq[i] = (float)(bw_rng_uniform(&rng) * 10.0);
        bw__memory_push(&m, seq[i], tm, 0.0);
    }
    for (int trial = 0; trial < 300; trial++) {
        bw__mem_scan_t r = {0};
        bw__mem_phase_t ph, early, by_count, both;
        int skip = (int)(bw_rng_uniform(&rng) * 20);
        /* the next event soon, or periods later (windows that begin
         * before the newest value, or past it) */
        int64_t ahead = min * (1 + (int64_t)(bw_rng_uniform(&rng) *
                                            (trial % 2 ? 3 : 250)));
        int64_t half = min * (int64_t)(bw_rng_uniform(&rng) * 15);
        int held = 0, count = 0, near = 0, dwell = 0;

        r.lo = 3.0f, r.hi = 6.0f, r.dlo = 2.0f, r.dhi = 7.5f;
        r.zlo = 4.0f, r.zhi = 4.5f;
        bw__memory_scan_phase(&m, skip, ahead, period, half, &r, INT_MAX,
                              INT_MAX, &ph);
        /* stopped at the second value in the kernel, or never */
        bw__memory_scan_phase(&m, skip, ahead, period, half, &r, 2, 0,
                              &early);
        /* ... at the second outside the zone (a jump's count), or at the
         * first value in the kernel once two are outside the zone */
        bw__memory_scan_phase(&m, skip, ahead, period, half, &r, 0, 2,
                              &by_count);
        bw__memory_scan_phase(&m, skip, ahead, period, half, &r, 1, 2,
                              &both);
        /* k pushes back: value N - 1 - k, seen ahead + t[N-1] - t[q]
         * before the event; in a window if within half of a whole number
         * of periods; held from the value before the newest on */
        for (int k = skip > 1 ? skip : 1; k < W; k++) {
            int q = N - 1 - k;
            int64_t age = t[N - 1] - t[q] + ahead, off = age % period;
            int in_win = age >= period - half &&
                         (off <= half || off >= period - half);
            float v = seq[q], next = seq[q + 1];
            int in = v >= r.lo && v <= r.hi;
            if (!in_win) {
                continue;
            }
            held++;
            near += in;
            count += in && (v <= r.zlo || v >= r.zhi);
            dwell += in && next >= r.dlo && next <= r.dhi;
        }
        assert_int_equal(ph.held, held);
        assert_int_equal(ph.count, count);
        assert_int_equal(ph.near, near);
        assert_int_equal(ph.dwell, dwell);
        assert_int_equal(ph.stopped, 0);
        assert_int_equal(early.stopped, near >= 2);
        assert_int_equal(early.near, near >= 2 ? 2 : near);
        check_phase_stop(&early, &ph);
        assert_int_equal(by_count.stopped, count >= 2);
        assert_int_equal(by_count.count, count >= 2 ? 2 : count);
        check_phase_stop(&by_count, &ph);
        /* near counts every kernel value outside the zone too */
        assert_int_equal(both.stopped, count >= 2);
        assert_int_equal(both.count, count >= 2 ? 2 : count);
        check_phase_stop(&both, &ph);
        seen += dwell > 0 && count < near;
        stops += early.stopped && near > 2;
        count_stops += by_count.stopped && count > 2;
    }
    assert_true(seen >= 100); /* windows, kernels and zones all exercised */
    assert_true(stops >= 100 && count_stops >= 100); /* scans stopped */
    bw__memory_free(&m);
}

/* Times pushed and the memory's ages against them: exact for a value in
 * a logged stretch (@p exact_from: the oldest such value's number), within
 * 10% of its true age before it (the spacing's fallback). */
static void check_ages(const bw__memory_t *m, const int64_t *t, int n,
                       int exact_from)
{
    for (int k = 0; k < m->n; k++) {
        int q = n - 1 - k;
        int64_t want = t[n - 1] - t[q], age = bw__memory_age_ms(m, k);
        if (q >= exact_from) {
            assert_true(age == want);
        } else {
            assert_true(llabs(age - want) <= want / 10);
        }
        assert_true(bw__memory_back(m, k) == (double)q);
    }
}

/* @p src saved (values, times and origin) and loaded into @p dst: the load's
 * error. */
static bw_err_t memory_round_trip(const bw__memory_t *src, bw__memory_t *dst)
{
    bw_wbuf_t w = {0};
    bw_rbuf_t r;

    bw__memory_save(src, &w);
    bw__memory_save_times(src, &w);
    bw__memory_save_origin(src, &w);
    bw_rbuf_init(&r, w.data, w.len);
    bw__memory_load(dst, &r);
    bw__memory_load_times(dst, &r);
    bw__memory_load_origin(dst, &r);
    bw_wbuf_free(&w);
    return r.err;
}

/* A first step of years (a first event stamped in seconds, the next in
 * milliseconds) with a long window: the spacing it learns stays one a load
 * accepts, so the state saved then loads (it had been refused as corrupt,
 * and the series restarted from nothing). */
static void test_memory_long_first_step(void **state)
{
    bw__memory_t m, l;

    (void)state;
    assert_int_equal(bw__memory_init(&m, 2016), 0);
    assert_int_equal(bw__memory_init(&l, 2016), 0);
    bw__memory_push(&m, 1.0, INT64_C(1738800000), 0.0);
    bw__memory_push(&m, 2.0, INT64_C(1738800000000), 0.0);
    assert_true(m.spacing > 0.0);
    assert_int_equal(memory_round_trip(&m, &l), BW_OK);
    assert_true(l.spacing == m.spacing);
    bw__memory_free(&m);
    bw__memory_free(&l);
}

/* The memory's times: values a minute apart with gaps of 7, 30 and 2
 * minutes (6, 29 and 1 values missing): each value's age from the newest
 * is its true one, to the millisecond, and so after a save and load; a
 * load refuses gaps out of order or after the newest value. With 20 gaps,
 * only the newest BW__MEM_GAPS are logged: the values from the horizon's on
 * are exact (the oldest stretch's and the value before it), older ones
 * timed by the spacing (within 10%). A long first step, and sampling that
 * speeds up fivefold, cut stretches too. Steps jittered by 40%
 * of the spacing log none, and sampling that slows to 5 minutes logs one
 * boundary, at the change. */
static void test_memory_gap_times(void **state)
{
    const int64_t min = 60000;
    bw__memory_t m, l;
    static int64_t t[400];
    int64_t tm = 0;
    int n = 0, gaps = 0;

    (void)state;
    assert_int_equal(bw__memory_init(&m, 300), 0);
    assert_int_equal(bw__memory_init(&l, 300), 0);
    for (; n < 200; n++) {
        tm += n == 50 ? 7 * min : (n == 120 ? 30 * min : (n == 180 ? 2 * min
                                                                : min));
        t[n] = tm;
        bw__memory_push(&m, (double)n, tm, 0.0);
    }
    assert_int_equal(m.ngaps, 3);
    check_ages(&m, t, n, 0);
    assert_int_equal(memory_round_trip(&m, &l), BW_OK);
    check_ages(&l, t, n, 0);
    for (int bad = 0; bad < 2; bad++) { /* order; after the newest value */
        bw__memory_t c = m;
        if (bad == 0) {
            c.gap[1].before = c.gap[0].before - 1;
        } else {
            c.gap[2].after = c.t_push + 1;
        }
        assert_int_equal(memory_round_trip(&c, &l), BW_ERR_CORRUPT);
    }
    for (int i = 0; i < 100; i++) { /* jitter: 0.6 to 1.4 minutes */
        tm += 3 * min / 5 + (i * 7919 % 49) * min / 60;
        bw__memory_push(&m, 0.0, tm, 0.0);
    }
    assert_int_equal(m.ngaps, 3);
    for (int i = 0; i < 100; i++) { /* sampling slows to 5 minutes */
        tm += 5 * min;
        bw__memory_push(&m, 0.0, tm, 0.0);
    }
    assert_int_equal(m.ngaps, 4); /* one boundary, at the change */
    bw__memory_free(&m);
    bw__memory_free(&l);
    /* one value, then 5-minute data from 6 hours on: the first step is a
     * stretch boundary, so the later values are not spread over it; and
     * sampling that speeds up from 10 minutes to 1 is cut at the change */
    assert_int_equal(bw__memory_init(&m, 300), 0);
    for (n = 0, tm = 0; n < 150; n++) {
        tm += n == 0 ? 0 : (n == 1 ? 360 * min : (n < 100 ? 5 * min : min));
        t[n] = tm;
        bw__memory_push(&m, (double)n, tm, 0.0);
    }
    assert_int_equal(m.ngaps, 2); /* at values 2 and 100 */
    check_ages(&m, t, n, 0);
    bw__memory_free(&m);
    /* 20 gaps of 5 minutes, one every 10 values: the oldest 4 dropped */
    assert_int_equal(bw__memory_init(&m, 300), 0);
    n = 0;
    for (tm = 0; n < 250; n++) {
        int gap = n > 0 && n % 10 == 0 && gaps < 20;
        gaps += gap;
        tm += gap ? 5 * min : min;
        t[n] = tm;
        bw__memory_push(&m, (double)n, tm, 0.0);
    }
    assert_int_equal(m.ngaps, BW__MEM_GAPS);
    check_ages(&m, t, n, 39); /* the horizon: value 40, and the one before */
    assert_int_equal(m.horizon, 40);
    bw__memory_free(&m);
}

/* A gap before the daily profile applies. When it starts to apply, the
 * memory of recent values moves into its frame: each value less the
 * profile at that value's time. The build before took a value's time as
 * k usual intervals back from the newest, so every value before a gap got
 * the profile of a phase as far off as the gap (105 minutes here): on a
 * daily cycle of amplitude 10 noise sds that left the first day's values
 * up to 3.6 sds off in the new frame, and a first-day spike's bin (above)
 * then made a garbage level familiar. Five-minute data, no values over
 * 07:30-09:10 on day 2: at the profile's first event each remembered value
 * equals its raw value less the profile at its own time (float rounding:
 * 1e-4). */
static void test_memory_reframed_at_true_times(void **state)
{
    const int last = 2 * 288; /* the first event of day 3 */
    dflt_t f;
    bw_pf_out_t out;
    bw_rng_t rng;
    static double y[3 * 288], prof[3 * 288];
    static int64_t ts[3 * 288];
    const bw__memory_t *m;
    int n = 0;
    double worst = 0.0;

    (void)state;
    dflt_open(&f, 3, true);
    bw_rng_seed(&rng, 41);
    for (int t = 0; t <= last; t++) {
        int day = t / 288, phase = t % 288;
        if (day == 1 && phase >= 90 && phase <= 110) {
            continue;
        }
        y[n] = 100.0 + 10.0 * sin(2.0 * M_PI * phase / 288.0) +
               bw_rng_gauss(&rng);
        ts[n] = (int64_t)t * 300000;
        if (t == last) { /* the profile the frame moves by: as it stands */
            for (int k = 0; k < n; k++) {
                prof[k] = bw__season_value(bw__pf_daily(f.pf), ts[k], ts[n]);
            }
        }
        assert_int_equal(bw_pf_update(f.pf, f.ws, ts[n], y[n], &out), BW_OK);
        n++;
    }
    m = bw__pf_memory(f.pf);
    assert_true(bw__season_active(bw__pf_daily(f.pf), ts[n - 1]));
    assert_int_equal(m->ngaps, 1);
    for (int k = 1; k < m->n; k++) { /* k 0: the profile's first event */
        int q = n - 1 - k;
        worst = fmax(worst, fabs(bw__memory_back(m, k) - (y[q] - prof[q])));
    }
    print_message("remembered values against raw less the profile at their "
                  "times: worst %.2e\n",
                  worst);
    assert_true(worst < 1e-4);
    dflt_close(&f);
}

/* The memory holds its values less an origin (the first push's, then the
 * one given at each wrap), so single precision resolves them near the
 * origin however far it is from 0. A gauge at 1e11 rising 1e5 a step
 * with a small wobble, the newest value as the origin (the filter passes
 * its level), 1,000 pushes into 64 slots: every value held comes back
 * within 1 (the values lie within 6.4e6 of the origin: a float's
 * resolution there is 0.5; at 1e11 it is 8,192), and so does their mean.
 * With origin 0 the memory holds them as they are. */
static void test_memory_origin(void **state)
{
    enum { W = 64, N = 1000 };
    bw__memory_t m, z;
    static double y[N];
    double worst = 0.0, mean = 0.0;

    (void)state;
    assert_int_equal(bw__memory_init(&m, W), 0);
    assert_int_equal(bw__memory_init(&z, W), 0);
    for (int i = 0; i < N; i++) {
        y[i] = 1e11 + 1e5 * i + 0.25 * (i % 7);
        bw__memory_push(&m, y[i], (int64_t)i * 60000, y[i]);
        bw__memory_push(&z, y[i], (int64_t)i * 60000, 0.0);
    }
    for (int k = 0; k < W; k++) {
        worst = fmax(worst, fabs(bw__memory_back(&m, k) - y[N - 1 - k]));
        mean += y[N - 1 - k] / W;
        assert_true(bw__memory_back(&z, k) == (double)(float)y[N - 1 - k]);
    }
    print_message("a gauge at 1e11: values held within %.3g, mean within "
                  "%.3g\n",
                  worst, fabs(bw__memory_mean(&m) - mean));
    assert_true(worst <= 1.0);
    assert_true(fabs(bw__memory_mean(&m) - mean) <= 1.0);
    bw__memory_free(&m);
    bw__memory_free(&z);
}

/* A memory whose running sum carries the rounding residue of a value far
 * larger than those it holds now (a 1e12 among values of 1e-3, gone from
 * the ring but not yet resummed at a wrap) saves and loads bit for bit:
 * the load refused it, a live series' own state, for a sum off the
 * values' by more than 1e-6 of their magnitude. */
static void test_memory_residue_loads(void **state)
{
    enum { W = 64 };
    bw__memory_t m, copy;
    bw_wbuf_t w = {0};
    bw_rbuf_t r;
    double exact = 0.0, mag = 0.0;

    (void)state;
    assert_int_equal(bw__memory_init(&m, W), 0);
    assert_int_equal(bw__memory_init(&copy, W), 0);
    for (int i = 0; i < W + 11; i++) { /* the 1e12 at slot 10, then over */
        bw__memory_push(&m, i == 10 ? 1e12 : 1e-3 * (1.0 + 0.37 * (i % 7)), 0,
                        0.0);
    }
    for (int i = 0; i < m.n; i++) {
        exact += m.v[i];
        mag += fabs(m.v[i]);
    }
    assert_true(fabs(m.sum - exact) > 1e-6 * mag); /* the residue is there */
    bw__memory_save(&m, &w);
    assert_int_equal(w.err, BW_OK);
    bw_rbuf_init(&r, w.data, w.len);
    bw__memory_load(&copy, &r);
    assert_int_equal(r.err, BW_OK);
    assert_memory_equal(&copy.sum, &m.sum, sizeof(m.sum));
    assert_int_equal(copy.n, m.n);
    assert_int_equal(copy.pos, m.pos);
    assert_memory_equal(copy.v, m.v, (size_t)m.n * sizeof(m.v[0]));
    bw_wbuf_free(&w);
    bw__memory_free(&copy);
    bw__memory_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rb_equals_kalman),
        cmocka_unit_test(test_ar_noise_equals_augmented_kalman),
        cmocka_unit_test(test_learned_scale_matches_conjugate_dlm),
        cmocka_unit_test(test_sampled_within_mc_error),
        cmocka_unit_test(test_sampled_detects_wrong_variance),
        cmocka_unit_test(test_regimes_match_enumeration),
        cmocka_unit_test(test_outlier_does_not_drag_level),
        cmocka_unit_test(test_level_shift_is_absorbed),
        cmocka_unit_test(test_late_and_gap),
        cmocka_unit_test(test_warmup_no_alarm_flood),
        cmocka_unit_test(test_bursts_do_not_teach_the_season),
        cmocka_unit_test(test_local_noise_matches_bruteforce),
        cmocka_unit_test(test_busy_spread_is_not_an_anomaly),
        cmocka_unit_test(test_profile_learns_full_amplitude),
        cmocka_unit_test(test_profile_switch_on_is_not_an_anomaly),
        cmocka_unit_test(test_job_on_some_days_is_not_seasonal),
        cmocka_unit_test(test_weekly_profile_sees_a_holiday),
        cmocka_unit_test(test_weekly_profile_of_wander_is_shrunk),
        cmocka_unit_test(test_sustained_run_is_collective),
        cmocka_unit_test(test_block_layer),
        cmocka_unit_test(test_reported_spike_is_not_collective),
        cmocka_unit_test(test_block_mean_in_values_frame),
        cmocka_unit_test(test_memory_visit_counts),
        cmocka_unit_test(test_memory_phase_counts),
        cmocka_unit_test(test_tiny_alternation_finite),
        cmocka_unit_test(test_huge_spike_does_not_blind),
        cmocka_unit_test(test_noise_prior_is_offset_free),
        cmocka_unit_test(test_memory_origin),
        cmocka_unit_test(test_spike_bin_checked_by_a_normal_value),
        cmocka_unit_test(test_unconfirmed_bin_replaced),
        cmocka_unit_test(test_late_bin_keeps_baseline),
        cmocka_unit_test(test_bin_starts),
        cmocka_unit_test(test_unconfirmed_bin_rejected_for_neighbours),
        cmocka_unit_test(test_unconfirmed_bin_prechecked),
        cmocka_unit_test(test_unconfirmed_bin_does_not_stick),
        cmocka_unit_test(test_memory_gap_times),
        cmocka_unit_test(test_memory_long_first_step),
        cmocka_unit_test(test_memory_reframed_at_true_times),
        cmocka_unit_test(test_memory_residue_loads),
        cmocka_unit_test(test_most_children),
        cmocka_unit_test(test_zero_floor_constant_series),
        cmocka_unit_test(test_profile_load_checks),
        cmocka_unit_test(test_zero_rng_refused),
        cmocka_unit_test(test_episode_start_checked),
    };

    gsl_set_error_handler_off();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
