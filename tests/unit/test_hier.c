/*
 * Hierarchical pooled models vs independent references.
 *
 * Beta-Binomial on the rat tumour data (Tarone 1982; Gelman et al., BDA3
 * Table 5.1 and sec. 5.3), prior p(alpha, beta) ~ (alpha + beta)^(-5/2):
 * the reference integrates the exact joint posterior in
 * (u, v) = (log(alpha/beta), log(alpha+beta)) with a 2-D Gauss-Legendre
 * product rule (GSL glfixed, 200 x 200 nodes) over a box far wider than the
 * posterior; quantities are posterior expectations of closed-form
 * conditionals. The model under test uses an adaptive Newton-centred grid:
 * different resolution, bounds and code. Quadrature error of either is far
 * below the asserted 1e-4 relative.
 */
#include <gsl/gsl_cdf.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_integration.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_sf_gamma.h>

#include "testutil.h"
#include "../../src/model/sf.h"

#define NRAT 71
static const double rat_y[NRAT] = {
    0, 0, 0,  0,  0, 0, 0, 0,  0, 0, 0, 0, 0,  0,  1,  1,  1, 1,
    1, 1, 1,  1,  2, 2, 2, 2,  2, 2, 2, 2, 2,  1,  5,  2,  5, 3,
    2, 7, 7,  3,  3, 2, 9, 10, 4, 4, 4, 4, 4,  4,  4,  10, 4, 4,
    4, 5, 11, 12, 5, 5, 6, 5,  6, 6, 6, 6, 16, 15, 15, 9,  4,
};
static const double rat_n[NRAT] = {
    20, 20, 20, 20, 20, 20, 20, 19, 19, 19, 19, 18, 18, 17, 20, 20, 20, 20,
    19, 19, 18, 18, 25, 24, 23, 20, 20, 20, 20, 20, 20, 10, 49, 19, 46, 27,
    17, 49, 47, 20, 20, 13, 48, 50, 20, 20, 20, 20, 20, 20, 20, 48, 19, 19,
    19, 22, 46, 49, 20, 20, 23, 19, 22, 20, 20, 20, 52, 46, 47, 24, 14,
};

static bw_hier_cfg_t hier_cfg(void)
{
    bw_config_t cfg;

    bw_config_defaults(&cfg);
    cfg.model.hier.half_life_ms = 0; /* no forgetting: a static posterior */
    cfg.model.hier.max_regions = 128;
    cfg.model.hier.kappa_min = 0.01; /* the reference integrates from 0.05 */
    cfg.model.hier.refresh_intervals = 0; /* the exact grid at every call */
    return cfg.model.hier;
}

/* Reference posterior expectations for region j. */
typedef struct {
    double mean_theta, p_exceed, mean_mu, mean_shrink, cdf_lo;
} ref_t;

static double rat_loglik(double a, double b)
{
    double s = 0.0;

    for (int j = 0; j < NRAT; j++) {
        s += gsl_sf_lnbeta(a + rat_y[j], b + rat_n[j] - rat_y[j]) -
             gsl_sf_lnbeta(a, b);
    }
    return s;
}

static void reference(int j, double thr, double x_lo, ref_t *r)
{
    const int N = 200;
    gsl_integration_glfixed_table *t = gsl_integration_glfixed_table_alloc(N);
    double z = 0.0, mx = -INFINITY;
    static double lp[200][200], A[200][200], B[200][200], wu[200], wv[200];
    static int done;

    memset(r, 0, sizeof(*r));
    for (int i = 0; i < N && !done; i++) {
        double u, v;
        gsl_integration_glfixed_point(-6.0, 2.0, (size_t)i, &u, &wu[i], t);
        for (int k = 0; k < N; k++) {
            gsl_integration_glfixed_point(-3.0, 12.0, (size_t)k, &v, &wv[k], t);
            A[i][k] = exp(v) / (1.0 + exp(-u));
            B[i][k] = exp(v) / (1.0 + exp(u));
            /* prior (a+b)^-2.5, Jacobian a*b */
            lp[i][k] = rat_loglik(A[i][k], B[i][k]) - 2.5 * v + log(A[i][k]) +
                       log(B[i][k]);
        }
    }
    done = 1;
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < N; k++) {
            mx = fmax(mx, lp[i][k]);
        }
    }
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < N; k++) {
            double w = wu[i] * wv[k] * exp(lp[i][k] - mx), a, b;
            a = A[i][k] + rat_y[j];
            b = B[i][k] + rat_n[j] - rat_y[j];
            z += w;
            r->mean_theta += w * a / (a + b);
            r->p_exceed += w * gsl_cdf_beta_Q(thr, a, b);
            r->mean_mu += w * A[i][k] / (A[i][k] + B[i][k]);
            r->mean_shrink +=
                w * (A[i][k] + B[i][k]) / (A[i][k] + B[i][k] + rat_n[j]);
            r->cdf_lo += w * gsl_cdf_beta_P(x_lo, a, b);
        }
    }
    r->mean_theta /= z, r->p_exceed /= z, r->mean_mu /= z;
    r->mean_shrink /= z, r->cdf_lo /= z;
    gsl_integration_glfixed_table_free(t);
}

static void test_rats_vs_numerical_integration(void **state)
{
    bw_hier_cfg_t cfg = hier_cfg();
    bw_hier_t *h = bw_hier_new(&cfg, BW_HIER_COUNT, NULL, 0);
    bw_hier_out_t out;
    const int regions[] = {0, 45, 70, 67};
    double pm, sp;

    (void)state;
    assert_non_null(h);
    for (int j = 0; j < NRAT; j++) {
        assert_int_equal(bw_hier_set(h, j, rat_y[j], rat_n[j]), BW_OK);
    }
    assert_int_equal(bw_hier_refresh(h), BW_OK);
    bw_hier_hyper(h, &pm, &sp);
    for (size_t q = 0; q < sizeof(regions) / sizeof(regions[0]); q++) {
        int j = regions[q];
        ref_t r;
        assert_int_equal(bw_hier_region(h, j, 0.2, &out), BW_OK);
        /* The reference CDF at the model's lower bound must be the tail. */
        reference(j, 0.2, out.lower, &r);
        print_message("rat %d: E[theta] %.6f (ref %.6f) P(>0.2) %.6f (ref "
                      "%.6f) lower %.5f cdf %.6f\n",
                      j, out.mean, r.mean_theta, out.p_slo, r.p_exceed,
                      out.lower, r.cdf_lo);
        assert_float_equal(out.mean, r.mean_theta, 1e-4 * r.mean_theta);
        assert_float_equal(out.p_slo, r.p_exceed, 1e-4);
        assert_float_equal(out.shrinkage, r.mean_shrink, 1e-4);
        assert_float_equal(out.pop_mean, r.mean_mu, 1e-4 * r.mean_mu);
        assert_float_equal(r.cdf_lo, 0.025, 1e-4);
    }
    bw_hier_destroy(h);
}

/* BDA3 sec. 5.3 / Fig. 5.4: the 71st experiment (4/14) is pulled from its
 * raw 0.286 toward the population mean of about 0.14. */
static void test_rats_shrinkage_direction(void **state)
{
    bw_hier_cfg_t cfg = hier_cfg();
    bw_hier_t *h = bw_hier_new(&cfg, BW_HIER_COUNT, NULL, 0);
    bw_hier_out_t out;

    (void)state;
    for (int j = 0; j < NRAT; j++) {
        bw_hier_set(h, j, rat_y[j], rat_n[j]);
    }
    bw_hier_refresh(h);
    bw_hier_region(h, 70, 0, &out);
    assert_true(out.pop_mean > 0.13 && out.pop_mean < 0.16);
    assert_true(out.mean < out.raw && out.mean > out.pop_mean);
    assert_true(isnan(out.p_slo));
    bw_hier_destroy(h);
}

/* Required behaviour: small regions shrink, big regions speak for
 * themselves, and a region that is really different is flagged. */
static void test_small_and_large_regions(void **state)
{
    bw_hier_cfg_t cfg = hier_cfg();

    cfg.kappa_min = 2; /* the production hyperprior */
    {
        bw_hier_t *h = bw_hier_new(&cfg, BW_HIER_COUNT, NULL, 0);
        bw_hier_out_t small, big, typical;
        const double rates[8] = {0.0009, 0.0011, 0.001,   0.0012,
                                 0.0008, 0.001,  0.00105, 0.00095};

        (void)state;
        for (int j = 0; j < 8; j++) {
            bw_hier_set(h, j, rates[j] * 100000, 100000);
        }
        bw_hier_set(h, 8, 1, 3);       /* 1 error in 3 requests */
        bw_hier_set(h, 9, 400, 40000); /* 1%: ten times the population */
        bw_hier_refresh(h);
        bw_hier_region(h, 8, 0.005, &small);
        bw_hier_region(h, 9, 0.005, &big);
        bw_hier_region(h, 2, 0.005, &typical);
        print_message("1/3: mean %.5f shrink %.4f p_out %.4f; 400/40000: mean "
                      "%.5f shrink %.4f p_out %.4f\n",
                      small.mean, small.shrinkage, small.p_outlier, big.mean,
                      big.shrinkage, big.p_outlier);
        /* Shrunk toward the population: at least 90% of the way from its raw
         * 1/3 (the exact posterior under the default hyperprior: 94%). */
        assert_true(fabs(small.mean - small.pop_mean) <
                    0.1 * fabs(small.raw - small.pop_mean));
        assert_true(small.shrinkage > 0.9);
        assert_true(small.p_outlier < 0.5); /* not flagged */
        assert_true(small.p_slo < big.p_slo);
        assert_float_equal(big.mean, 0.01, 0.0005); /* dominated by its data */
        assert_true(big.shrinkage < 0.1);
        assert_true(big.p_outlier > 0.99);
        assert_true(big.p_slo > 0.99);
        assert_true(typical.p_outlier < 0.05);
        assert_true(big.lower < 0.01 && big.upper > 0.01);
        bw_hier_destroy(h);
    }
}

/* Forgetting: after a long quiet period old data weigh little. */
static void test_forgetting(void **state)
{
    bw_hier_cfg_t cfg = hier_cfg();
    bw_hier_t *h;
    bw_hier_out_t out;

    (void)state;
    cfg.half_life_ms = 1000;
    h = bw_hier_new(&cfg, BW_HIER_COUNT, NULL, 0);
    bw_hier_observe(h, 0, 0, 500, 1000, 0, &out);
    bw_hier_observe(h, 1, 0, 1, 1000, 0, &out);
    bw_hier_observe(h, 0, 3000, 10, 1000, 0, &out);
    /* 1000 trials at 0 ms decayed by 2^-3 plus 1000 new ones. */
    assert_float_equal(out.n_eff, 1125.0, 1e-9);
    assert_int_equal(bw_hier_observe(h, 0, 3000, 5, 4, 0, &out), BW_ERR_RANGE);
    assert_int_equal(bw_hier_observe(h, 99999, 3000, 1, 4, 0, &out),
                     BW_ERR_RANGE);
    bw_hier_destroy(h);
}

/* A region silent for longer than the forgetting can hold leaves the
 * group: the others go on being scored. Kept with its weight a denormal,
 * its standard error was inf, every grid point's likelihood -inf, and
 * every event of the group failed after ~1000 half-lives. The first
 * event's interval is its mean (no spread), not NaN. */
static void test_silent_region_leaves(void **state)
{
    bw_hier_cfg_t cfg = hier_cfg();
    bw_hier_t *h;
    bw_hier_out_t out;
    bw_rng_t rng;

    (void)state;
    cfg.half_life_ms = 60000;
    h = bw_hier_new(&cfg, BW_HIER_NORMAL, NULL, 0);
    bw_rng_seed(&rng, 4);
    for (int t = 0; t < 1300; t++) {
        int64_t ms = (int64_t)t * 60000;
        assert_int_equal(
            bw_hier_observe(h, 0, ms, 10.0 + bw_rng_gauss(&rng), 0, 0, &out),
            BW_OK);
        assert_true(isfinite(out.mean) && isfinite(out.lower) &&
                    isfinite(out.upper));
        if (t < 5) {
            assert_int_equal(bw_hier_observe(h, 1, ms,
                                             12.0 + bw_rng_gauss(&rng), 0, 0,
                                             &out),
                             BW_OK);
        }
    }
    bw_hier_destroy(h);
}

/*
 * Normal hierarchy vs 1-D numerical integration over tau (adaptive QAGS,
 * independent of the model's grid): regions' means with known standard
 * errors (within_prior_n = 0 and exact within variances).
 */
typedef struct {
    const double *yb, *se2;
    int n;
    int which; /* 0 density, 1 density * E[theta_0 | tau] */
} nm_ref_t;

static double nm_integrand(double tau, void *p)
{
    const nm_ref_t *r = p;
    double sw = 0.0, swy = 0.0, lp = 0.0, mu, vmu, B;

    for (int j = 0; j < r->n; j++) {
        sw += 1.0 / (r->se2[j] + tau * tau);
        swy += r->yb[j] / (r->se2[j] + tau * tau);
    }
    mu = swy / sw;
    vmu = 1.0 / sw;
    for (int j = 0; j < r->n; j++) {
        double v = r->se2[j] + tau * tau;
        lp += -0.5 * log(v) - 0.5 * (r->yb[j] - mu) * (r->yb[j] - mu) / v;
    }
    lp += 0.5 * log(vmu);
    if (r->which == 0) {
        return exp(lp);
    }
    B = r->se2[0] / (r->se2[0] + tau * tau);
    return exp(lp) * ((1 - B) * r->yb[0] + B * mu);
}

static void test_normal_vs_integration(void **state)
{
    bw_hier_cfg_t cfg = hier_cfg();
    bw_hier_t *h;
    bw_hier_out_t out;
    /* Each region: values x_j +- d_j, so mean x_j and within var d_j^2. */
    const double x[6] = {5.0, 5.4, 4.6, 6.1, 5.2, 4.9},
                 d[6] = {1, 2, 1, 1, 3, 1};
    double yb[6], se2[6], z, num, err;
    gsl_integration_workspace *w = gsl_integration_workspace_alloc(1000);
    gsl_function f;
    nm_ref_t r = {yb, se2, 6, 0};

    (void)state;
    cfg.within_prior_n = 0;
    cfg.grid = 101; /* the normal model uses 4 * grid points in tau */
    h = bw_hier_new(&cfg, BW_HIER_NORMAL, NULL, 0);
    for (int j = 0; j < 6; j++) {
        bw_hier_observe(h, j, 0, x[j] - d[j], 0, 0, &out);
        bw_hier_observe(h, j, 0, x[j] + d[j], 0, 0, &out);
        yb[j] = x[j];
        se2[j] = d[j] * d[j] / 2.0; /* within var d^2 over 2 values */
    }
    bw_hier_region(h, 0, 0, &out);
    f.function = nm_integrand;
    f.params = &r;
    gsl_integration_qags(&f, 0.0, 100.0, 1e-12, 1e-10, 1000, w, &z, &err);
    r.which = 1;
    gsl_integration_qags(&f, 0.0, 100.0, 1e-12, 1e-10, 1000, w, &num, &err);
    print_message("normal: E[theta_0] %.6f ref %.6f\n", out.mean, num / z);
    /* The model truncates tau at 3 * range + 3 * max se (~11): the
     * posterior mass beyond is < 1e-3 here, so 1e-3 relative. */
    assert_float_equal(out.mean, num / z, 1e-3 * fabs(num / z));
    assert_true(out.shrinkage > 0.0 && out.shrinkage < 1.0);
    gsl_integration_workspace_free(w);
    bw_hier_destroy(h);
}

/*
 * The normal model's cross-validated outlier probability against 2-D
 * numerical integration (adaptive QAGS over tau, and inside it over mu,
 * independent of the model's grid and of its closed forms): region 0 is
 * measured well (se 0.014) and lies above four others (se 0.71), and
 *   P(theta_0 > mu + z tau) = int p(tau | y_-0) int N(mu; muhat, V)
 *       P(theta_0 > mu + z tau | mu, tau, y_0) dmu dtau,
 * the population fitted without region 0, tau flat on [0, the model's
 * truncation 3 range + 3 max se of the others]. With mu taken as known
 * (its uncertainty left out of the test) the model said 0.466.
 * With two others the population's p(tau | y) is improper under the flat
 * prior: no population, p_outlier 0 (it was the truncation's answer).
 */
typedef struct {
    nm_ref_t pop; /* the others */
    double y0, se0, z, tau, muhat, vmu;
    gsl_integration_workspace *inner;
} out_ref_t;

static double out_inner(double mu, void *p)
{
    const out_ref_t *o = p;
    double B = o->se0 / (o->se0 + o->tau * o->tau);
    double m = (1.0 - B) * o->y0 + B * mu, sd = sqrt((1.0 - B) * o->se0);

    return gsl_ran_gaussian_pdf(mu - o->muhat, sqrt(o->vmu)) *
           gsl_cdf_gaussian_Q(mu + o->z * o->tau - m, sd);
}

static double out_outer(double tau, void *p)
{
    out_ref_t *o = p;
    double sw = 0.0, swy = 0.0, v, err;
    gsl_function f = {out_inner, o};

    for (int j = 0; j < o->pop.n; j++) {
        sw += 1.0 / (o->pop.se2[j] + tau * tau);
        swy += o->pop.yb[j] / (o->pop.se2[j] + tau * tau);
    }
    o->tau = tau;
    o->muhat = swy / sw;
    o->vmu = 1.0 / sw;
    gsl_integration_qags(&f, o->muhat - 12 * sqrt(o->vmu),
                         o->muhat + 12 * sqrt(o->vmu), 1e-13, 1e-10, 1000,
                         o->inner, &v, &err);
    return nm_integrand(tau, &o->pop) * v;
}

/* Region 0's p_outlier with a tau grid of 4 * @p grid points. */
static double normal_outlier(int grid, const double *x, const double *d)
{
    bw_hier_cfg_t cfg = hier_cfg();
    bw_hier_t *h;
    bw_hier_out_t out;

    cfg.within_prior_n = 0;
    cfg.grid = grid;
    h = bw_hier_new(&cfg, BW_HIER_NORMAL, NULL, 0);
    for (int j = 0; j < 5; j++) {
        bw_hier_observe(h, j, 0, x[j] - d[j], 0, 0, &out);
        bw_hier_observe(h, j, 0, x[j] + d[j], 0, 0, &out);
    }
    bw_hier_region(h, 0, 0, &out);
    bw_hier_destroy(h);
    return out.p_outlier;
}

static void test_normal_outlier_vs_integration(void **state)
{
    const double x[5] = {6.6, 5.0, 5.4, 4.6, 6.1}, d[5] = {0.02, 1, 1, 1, 1};
    double yb[4], se2[4], z, num, err, tmax, lo = 1e300, hi = -1e300;
    double p1, p2, rich;
    gsl_integration_workspace *w = gsl_integration_workspace_alloc(1000);
    out_ref_t o;
    gsl_function f;

    (void)state;
    for (int j = 1; j < 5; j++) {
        yb[j - 1] = x[j];
        se2[j - 1] = d[j] * d[j] / 2.0;
        lo = fmin(lo, x[j]);
        hi = fmax(hi, x[j]);
    }
    o.pop = (nm_ref_t){yb, se2, 4, 0};
    o.y0 = x[0];
    o.se0 = d[0] * d[0] / 2.0;
    o.z = gsl_cdf_ugaussian_Pinv(hier_cfg().outlier_quantile);
    o.inner = gsl_integration_workspace_alloc(1000);
    tmax = 3.0 * (hi - lo) + 3.0 * sqrt(0.5);
    f.function = nm_integrand;
    f.params = &o.pop;
    gsl_integration_qags(&f, 0.0, tmax, 1e-12, 1e-10, 1000, w, &z, &err);
    f.function = out_outer;
    f.params = &o;
    gsl_integration_qags(&f, 0.0, tmax, 1e-12, 1e-9, 1000, w, &num, &err);
    /* The model's tau grid is a rectangle rule (its error is first order
     * in the spacing: 0.010 at 404 points, 0.005 at 804), so the two grids
     * are extrapolated (Richardson) before the comparison; what is left
     * is second order, under 1e-3 here. */
    p1 = normal_outlier(101, x, d);
    p2 = normal_outlier(201, x, d);
    rich = 2.0 * p2 - p1;
    print_message("normal: p_outlier %.5f (404 taus), %.5f (804), "
                  "extrapolated %.5f; reference %.5f\n",
                  p1, p2, rich, num / z);
    assert_float_equal(rich, num / z, 1e-3);
    {
        const double x3[5] = {6.6, 5.0, 5.4, NAN, NAN};
        bw_hier_cfg_t cfg = hier_cfg();
        bw_hier_t *h = bw_hier_new(&cfg, BW_HIER_NORMAL, NULL, 0);
        bw_hier_out_t out;
        for (int j = 0; j < 3; j++) {
            bw_hier_observe(h, j, 0, x3[j] - d[j], 0, 0, &out);
            bw_hier_observe(h, j, 0, x3[j] + d[j], 0, 0, &out);
        }
        bw_hier_region(h, 0, 0, &out);
        assert_true(out.p_outlier == 0.0);
        bw_hier_destroy(h);
    }
    gsl_integration_workspace_free(o.inner);
    gsl_integration_workspace_free(w);
}

/*
 * The same regions a hundred million higher: the regions' spread is taken
 * about their means, and so is the mixture's, so the answer is the one
 * near zero moved by 1e8 (measured equal to 1e-6). With raw sums of
 * squares (about 1e16 per region) less y^2 / n, the within variances of
 * 1-9 were lost to rounding, and the mixture's second moment less m^2
 * with them: the mean came out 0.008 off and the 95% interval 2.83 wide
 * against 2.01.
 * A group saved by the build before (state HI02, raw sums) loads into the
 * same answer.
 */
static void test_normal_far_from_zero(void **state)
{
    bw_hier_cfg_t cfg = hier_cfg();
    bw_hier_t *h, *g;
    bw_hier_out_t out, near, old;
    const double x[6] = {5.0, 5.4, 4.6, 6.1, 5.2, 4.9},
                 d[6] = {1, 2, 1, 1, 3, 1}, far = 1e8;
    bw_wbuf_t w = {0};
    bw_rbuf_t r;
    int nr;

    (void)state;
    cfg.within_prior_n = 0;
    cfg.grid = 101;
    h = bw_hier_new(&cfg, BW_HIER_NORMAL, NULL, 0);
    g = bw_hier_new(&cfg, BW_HIER_NORMAL, NULL, 0);
    for (int j = 0; j < 6; j++) {
        bw_hier_observe(h, j, 0, x[j] - d[j], 0, 0, &out);
        bw_hier_observe(h, j, 0, x[j] + d[j], 0, 0, &out);
        bw_hier_observe(g, j, 0, far + x[j] - d[j], 0, 0, &out);
        bw_hier_observe(g, j, 0, far + x[j] + d[j], 0, 0, &out);
    }
    bw_hier_region(h, 0, 0, &near);
    bw_hier_region(g, 0, 0, &out);
    print_message("normal, 1e8 away: E[theta_0] - 1e8 %.6f, near 0 %.6f; "
                  "interval width %.6f, near 0 %.6f\n",
                  out.mean - far, near.mean, out.upper - out.lower,
                  near.upper - near.lower);
    assert_float_equal(out.mean - far, near.mean, 1e-6);
    assert_float_equal(out.upper - out.lower, near.upper - near.lower, 1e-6);
    /* the build before's blob: its third array held the raw sums */
    assert_int_equal(bw_hier_save(g, &w), BW_OK);
    nr = (int)cfg.max_regions;
    assert_int_equal(w.data[0], 0x34); /* "HI04", 0x48493034 little-endian */
    w.data[0] = 0x32;                  /* "HI02" */
    for (int j = 0; j < nr; j++) {
        double y, n, m2;
        memcpy(&y, w.data + 12 + 8 * (size_t)j, 8);
        memcpy(&n, w.data + 12 + 8 * (size_t)(nr + j), 8);
        memcpy(&m2, w.data + 12 + 8 * (size_t)(2 * nr + j), 8);
        if (n > 0.0) {
            put_f64_le(w.data, 12 + 8 * (size_t)(2 * nr + j), m2 + y * y / n);
        }
    }
    bw_rbuf_init(&r, w.data, w.len);
    assert_int_equal(bw_hier_load(g, &r), BW_OK);
    bw_hier_region(g, 0, 0, &old);
    /* the raw sums' rounding is back: only roughly the same */
    assert_true(isfinite(old.mean) && fabs(old.mean - out.mean) < 10.0);
    bw_wbuf_free(&w);
    bw_hier_destroy(g);
    bw_hier_destroy(h);
}

/* A count group's state loaded into a group of normal values (a route
 * switched from pooled_count to pooled_normal, whose versions agree when
 * its transform is none) is a config change, refused as such (it had been
 * refused as corrupt, and counted and logged so), and the group is left as
 * it was. */
static void test_other_kind_is_a_config_change(void **state)
{
    bw_hier_cfg_t cfg = hier_cfg();
    bw_hier_t *counts = bw_hier_new(&cfg, BW_HIER_COUNT, NULL, 0);
    bw_hier_t *normal = bw_hier_new(&cfg, BW_HIER_NORMAL, NULL, 0);
    bw_hier_out_t out, before, after;
    bw_wbuf_t w = {0};
    bw_rbuf_t r;

    (void)state;
    assert_non_null(counts);
    assert_non_null(normal);
    for (int j = 0; j < 4; j++) {
        bw_hier_observe(counts, j, 0, 3.0 + j, 1000.0, 0, &out);
        bw_hier_observe(normal, j, 0, 5.0 + j, 0, 0, &out);
    }
    bw_hier_region(normal, 1, 0, &before);
    assert_int_equal(bw_hier_save(counts, &w), BW_OK);
    bw_rbuf_init(&r, w.data, w.len);
    assert_int_equal(bw_hier_load(normal, &r), BW_ERR_VERSION);
    bw_hier_region(normal, 1, 0, &after);
    assert_true(after.mean == before.mean);
    bw_wbuf_free(&w);
    bw_hier_destroy(counts);
    bw_hier_destroy(normal);
}

/*
 * The scheduled output's Beta posterior against GSL: a region without a
 * population (fewer than three) has Beta(1/2 + y, 1/2 + n - y), whose
 * credible bounds (our Halley steps on our continued fraction with the
 * normaliser taken once) and P(rate > slo) must be GSL's
 * gsl_cdf_beta_Pinv and gsl_cdf_beta_Q, from 0 of 10 to 25,000 of 10^6.
 */
static void test_scheduled_beta_vs_gsl(void **state)
{
    bw_hier_cfg_t cfg = hier_cfg();
    const double ys[] = {0, 1, 3, 40, 900, 25000}, ns[] = {10, 100, 1e4, 1e6};
    const double slos[] = {0.01, 0.3};
    double tail = (1.0 - cfg.credible_mass) / 2.0, worst_q = 0.0, worst_p = 0.0;
    bw_hier_t *h;

    (void)state;
    cfg.refresh_intervals = 32;
    h = bw_hier_new(&cfg, BW_HIER_COUNT, NULL, 0);
    assert_non_null(h);
    for (int i = 0; i < 6; i++) {
        for (int k = 0; k < 4; k++) {
            for (int s = 0; s < 2 && ys[i] <= ns[k]; s++) {
                double a = 0.5 + ys[i], b = 0.5 + ns[k] - ys[i];
                double lo = gsl_cdf_beta_Pinv(tail, a, b);
                double hi = gsl_cdf_beta_Pinv(1.0 - tail, a, b);
                double q = gsl_cdf_beta_Q(slos[s], a, b);
                bw_hier_out_t out;
                assert_int_equal(bw_hier_set(h, 0, ys[i], ns[k]), BW_OK);
                assert_int_equal(bw_hier_region(h, 0, slos[s], &out), BW_OK);
                worst_q = fmax(worst_q, fabs(out.lower - lo) / lo);
                worst_q = fmax(worst_q, fabs(out.upper - hi) / hi);
                worst_p = fmax(worst_p, fabs(out.p_slo - q));
            }
        }
    }
    print_message("largest relative error of a bound %.2e, absolute of "
                  "P(rate > slo) %.2e\n",
                  worst_q, worst_p);
    assert_true(worst_q < 1e-10);
    assert_true(worst_p < 1e-12);
    bw_hier_destroy(h);
}

/* Regions whose value never changes, under forgetting: the sum of squares
 * about the mean is 0 in exact arithmetic, and rounded it may come out an
 * ulp below (the old and new means on either side of the value). Saved
 * after every event, every group loads: a negative sum is what the load
 * refuses as corrupt, so the group was discarded at a restore. */
static void test_constant_regions_load(void **state)
{
    const double v[4] = {7.77, 0.1, 123.456, 1e8 + 0.1};
    bw_hier_cfg_t cfg = hier_cfg();
    bw_hier_t *h, *g;
    bw_hier_out_t out;
    bw_wbuf_t w = {0};
    bw_rbuf_t r;
    int refused = 0;

    (void)state;
    cfg.half_life_ms = 3600000;
    h = bw_hier_new(&cfg, BW_HIER_NORMAL, NULL, 0);
    g = bw_hier_new(&cfg, BW_HIER_NORMAL, NULL, 0);
    assert_non_null(h);
    assert_non_null(g);
    for (int i = 0; i < 400; i++) {
        /* steps of 2 s, then of 2-1400 s: forgetting factors from 0.9996
         * to 0.76 */
        int64_t t = i < 200 ? (int64_t)i * 1997
                            : (int64_t)i * 700000 + (int64_t)(i * i % 1999) * 700;
        for (int j = 0; j < 4; j++) {
            bw_hier_observe(h, j, t, v[j], 0, 0, &out);
        }
        bw_wbuf_reset(&w);
        assert_int_equal(bw_hier_save(h, &w), BW_OK);
        bw_rbuf_init(&r, w.data, w.len);
        refused += bw_hier_load(g, &r) != BW_OK;
    }
    print_message("constant regions under forgetting: %d of 400 saves "
                  "refused at load\n", refused);
    assert_int_equal(refused, 0);
    /* a sum of squares an ulp below 0, as the build before could save,
     * loads as 0; one far below 0 is refused */
    {
        size_t at = 12 + 8 * (size_t)(2 * cfg.max_regions);
        double neg[2] = {-1.1e-31, -1.0};
        for (int k = 0; k < 2; k++) {
            bw_wbuf_reset(&w);
            assert_int_equal(bw_hier_save(h, &w), BW_OK);
            memcpy(w.data + at, &neg[k], sizeof(double));
            bw_rbuf_init(&r, w.data, w.len);
            assert_int_equal(bw_hier_load(g, &r),
                             k == 0 ? BW_OK : BW_ERR_CORRUPT);
        }
    }
    bw_wbuf_free(&w);
    bw_hier_destroy(g);
    bw_hier_destroy(h);
}

/* The population model's digamma and trigamma (asymptotic series after
 * the recurrence to x >= 12) against GSL's over 1e-3..1e12 and densely
 * over 0.01..30 (the recurrence's range and the series' edge): within
 * 2e-15 (relative, absolute below 1 for digamma near its root at 1.46;
 * measured 1.0e-15 and 1.3e-15); NAN outside the domain. */
static void test_sf_fast(void **state)
{
    double worst = 0.0, worst1 = 0.0;

    (void)state;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0;; i++) {
            double x =
                pass == 0 ? pow(10.0, -3.0 + 0.0137 * i) : 0.01 + 0.0071 * i;
            double p = gsl_sf_psi(x), q = gsl_sf_psi_1(x);
            if ((pass == 0 && x > 1e12) || (pass == 1 && x > 30.0)) {
                break;
            }
            worst =
                fmax(worst, fabs(bw__psi_fast(x) - p) / fmax(fabs(p), 1.0));
            worst1 = fmax(worst1, fabs(bw__psi1_fast(x) - q) / q);
        }
    }
    print_message("digamma within %.2g of GSL, trigamma %.2g\n", worst, worst1);
    assert_true(worst < 2e-15 && worst1 < 2e-15);
    assert_true(isnan(bw__psi_fast(0.0)) && isnan(bw__psi1_fast(-1.0)) &&
                isnan(bw__psi_fast(NAN)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scheduled_beta_vs_gsl),
        cmocka_unit_test(test_rats_vs_numerical_integration),
        cmocka_unit_test(test_rats_shrinkage_direction),
        cmocka_unit_test(test_small_and_large_regions),
        cmocka_unit_test(test_forgetting),
        cmocka_unit_test(test_silent_region_leaves),
        cmocka_unit_test(test_normal_vs_integration),
        cmocka_unit_test(test_normal_outlier_vs_integration),
        cmocka_unit_test(test_normal_far_from_zero),
        cmocka_unit_test(test_sf_fast),
        cmocka_unit_test(test_constant_regions_load),
        cmocka_unit_test(test_other_kind_is_a_config_change),
    };

    gsl_set_error_handler_off();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
