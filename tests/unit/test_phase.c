/*
 * Recurring spikes by time of day (model.pf.recur_spike_prior, phase.c).
 *  - Exact: the posterior of a recurring spike at a phase, P(H1 | k of n
 *    days), against numerical integration of the Beta(3, 1)-Binomial
 *    marginal (GSL QAGS), for whole and forgotten (fractional) counts.
 *  - Known truth: a daily job's spike at 03:05 (5-minute data, Gaussian
 *    noise) is flagged on its first day and is usual (p < 1/2) from its
 *    fourth; a spike at another hour, a dip at the job's hour and a job
 *    twice its usual size are still flagged, and all of that at 1e10 and
 *    -3e9 as at 100. Spikes at random hours are flagged as often as with
 *    the model off.
 *  - A 90-minute shift at one hour every day is a recurring change, not
 *    a recurring spike: its events are flagged at least as often as with
 *    the model off.
 *  - State: a run split by save/load after the job became usual is
 *    bit-identical to the run in one piece.
 */
#include <gsl/gsl_cdf.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_integration.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "testutil.h"
#include "bayeswatch/buf.h"
#include "../../src/model/phase.h"

#define STEP_MS (5 * 60 * 1000LL)
#define PER_DAY 288
#define DAYS 10
#define N_EV (DAYS * PER_DAY)
#define JOB_BIN 37 /* 03:05 */
#define SIZE 15.0  /* noise sds */
#define SEEDS 5

/* ---- the posterior against quadrature ----------------------------------- */

typedef struct {
    double k, n;
} kn_t;

static double h1_integrand(double rho, void *arg)
{
    const kn_t *a = arg;

    return 3.0 * rho * rho * pow(rho, a->k) * pow(1.0 - rho, a->n - a->k);
}

static double posterior_by_quadrature(double k, double n, double q0,
                                      double prior)
{
    gsl_integration_workspace *ws = gsl_integration_workspace_alloc(1000);
    kn_t a = {k, n};
    gsl_function f = {h1_integrand, &a};
    double m1, err, m0 = pow(q0, k) * pow(1.0 - q0, n - k);

    assert_non_null(ws);
    assert_int_equal(
        gsl_integration_qags(&f, 0.0, 1.0, 0.0, 1e-12, 1000, ws, &m1, &err),
        GSL_SUCCESS);
    gsl_integration_workspace_free(ws);
    return prior * m1 / (prior * m1 + (1.0 - prior) * m0);
}

static void test_posterior_vs_quadrature(void **state)
{
    static const double cases[][4] = {
        {0, 1, 0.0345, 1e-4}, {1, 1, 0.0345, 1e-4},  {2, 2, 0.0345, 1e-4},
        {3, 3, 0.0345, 1e-4}, {1, 5, 0.11, 1e-4},    {2.5, 4.7, 0.16, 1e-3},
        {0.3, 10, 0.5, 0.01}, {6.2, 6.2, 0.2, 1e-4}, {4, 9.5, 0.0345, 0.3},
    };

    (void)state;
    gsl_set_error_handler_off();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const double *c = cases[i];
        double got = bw__phase_posterior(c[0], c[1], c[2], c[3]);
        double want = posterior_by_quadrature(c[0], c[1], c[2], c[3]);
        print_message("k %.1f n %.1f q0 %.4f prior %g: P(H1) %.6g (quadrature "
                      "%.6g)\n",
                      c[0], c[1], c[2], c[3], got, want);
        assert_true(fabs(got - want) <= 1e-9 * want + 1e-15);
    }
    /* q0 = 1 (a high p_spike on fast data) with k = n: 0 log 0 is 0, not
     * the NaN that 0 * log1p(-1) gave */
    {
        double got = bw__phase_posterior(5.0, 5.0, 1.0, 1e-4);
        assert_true(got >= 0.0 && got <= 1.0);
    }
}

/* ---- known truth --------------------------------------------------------- */

/* 5-minute Gaussian noise around @p level (sd 1) with spikes: what[t] is
 * the spike's size in noise sds at event t, 0 for none. */
static void series_at(uint64_t seed, double level, const double *what,
                      double *y)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);

    gsl_rng_set(r, seed);
    for (int t = 0; t < N_EV; t++) {
        y[t] = level + gsl_ran_gaussian(r, 1.0) + what[t];
    }
    gsl_rng_free(r);
}

static void series(uint64_t seed, const double *what, double *y)
{
    series_at(seed, 100.0, what, y);
}

static bw_pf_cfg_t phase_cfg(double prior)
{
    bw_pf_cfg_t c = test_pf_cfg();

    c.daily.enabled = true; /* the shipped default */
    c.recur_spike_prior = prior;
    return c;
}

static void run(const bw_pf_cfg_t *c, const double *y, int from, int to,
                bw_pf_t *pf, bw_pf_out_t *out)
{
    bw_pf_ws_t *ws = bw_pf_ws_new(c);

    assert_non_null(ws);
    for (int t = from; t < to; t++) {
        assert_int_equal(
            bw_pf_update(pf, ws, (int64_t)t * STEP_MS, y[t], &out[t]), BW_OK);
    }
    bw_pf_ws_destroy(ws);
}

static void run_all(const bw_pf_cfg_t *c, uint64_t seed, const double *y,
                    bw_pf_out_t *out)
{
    bw_pf_t *pf = bw_pf_new(c, seed, NULL, 0);

    assert_non_null(pf);
    run(c, y, 0, N_EV, pf, out);
    bw_pf_destroy(pf);
}

/* The job at 03:05 on days 0-7 (its size within +-3%); day 8 a dip at
 * its hour; day 9 the job twice its size; day 7 also a spike at 15:00. */
static void job(uint64_t seed, double *what)
{
    memset(what, 0, sizeof(double) * N_EV);
    for (int d = 0; d < DAYS; d++) {
        double wobble =
            0.03 * ((double)((seed * 7 + (uint64_t)d * 13) % 21) - 10.0) / 10.0;
        what[d * PER_DAY + JOB_BIN] = SIZE * (1.0 + wobble);
    }
    what[8 * PER_DAY + JOB_BIN] = -SIZE;
    what[9 * PER_DAY + JOB_BIN] = 2.0 * SIZE;
    what[7 * PER_DAY + 180] = 25.0; /* not the job's height */
}

/* The job's series at @p level, seed s: asserts as test_daily_job_is_usual
 * says (day 0's job only if @p first); @p off also runs the model without
 * the prior for the log. */
static void daily_job_at(uint64_t s, double level, bool first, bool off)
{
    static double what[N_EV], y[N_EV];
    static bw_pf_out_t out[N_EV];
    bw_pf_cfg_t c = phase_cfg(1e-5);

    job(s, what);
    series_at(100 + s, level, what, y);
    run_all(&c, s, y, out);
    print_message("seed %d at %g: the job's p_anomaly by day:", (int)s, level);
    for (int d = 0; d < DAYS; d++) {
        print_message(" %.3f", out[d * PER_DAY + JOB_BIN].p_anomaly);
    }
    print_message("; 15:00 on day 7: %.3f\n", out[7 * PER_DAY + 180].p_anomaly);
    if (off) {
        bw_pf_cfg_t c0 = phase_cfg(0.0);
        static bw_pf_out_t o0[N_EV];
        run_all(&c0, s, y, o0);
        print_message("  off:");
        for (int d = 0; d < DAYS; d++) {
            print_message(" %.3f", o0[d * PER_DAY + JOB_BIN].p_anomaly);
        }
        print_message("\n");
    }
    assert_true(!first || out[JOB_BIN].p_anomaly >= 0.99);
    assert_true(out[PER_DAY + JOB_BIN].p_anomaly >= 0.99);
    for (int d = 5; d < 8; d++) {
        const bw_pf_out_t *o = &out[d * PER_DAY + JOB_BIN];
        assert_true(o->p_anomaly < 0.5);
        assert_int_equal(o->direction, BW_DIR_NONE);
    }
    assert_true(out[7 * PER_DAY + 180].p_anomaly >= 0.99);
    assert_true(out[8 * PER_DAY + JOB_BIN].p_anomaly >= 0.99);
    assert_true(out[9 * PER_DAY + JOB_BIN].p_anomaly >= 0.99);
}

/* Ten seeds of the job on days 0-8 and, on day 8, a 2-sd rise for 3 hours
 * from event @p at of the day (12-event blocks, aligned with days): how
 * many of the rise's first blocks the block model reports
 * (p_collective >= 0.5). */
static int rise_block_reports(int at)
{
    static double what[N_EV], y[N_EV];
    static bw_pf_out_t out[N_EV];
    bw_pf_cfg_t c = phase_cfg(1e-5);
    int reports = 0;

    for (uint64_t s = 1; s <= 10; s++) {
        memset(what, 0, sizeof(what));
        for (int d = 0; d < 9; d++) {
            what[d * PER_DAY + JOB_BIN] = SIZE;
        }
        for (int t = 8 * PER_DAY + at; t < 8 * PER_DAY + at + 36; t++) {
            what[t] += 2.0;
        }
        series_at(100 + s, 100.0, what, y);
        run_all(&c, s, y, out);
        reports += out[8 * PER_DAY + at + 11].p_collective >= 0.5;
    }
    return reports;
}

/* A learnt job is reported as usual (p_anomaly ~0.01), so its block is
 * one the point model did not report: a rise that starts with the job's
 * block is reported by the block model as one at 15:00 is (7 and 8 of
 * 10; a binomial difference's sd is about 2). The block model had been
 * held back by the job's raw probability (~1): 0 of 10. */
static void test_job_block_still_reports(void **state)
{
    int job_hour, afternoon;

    (void)state;
    job_hour = rise_block_reports(36);
    afternoon = rise_block_reports(180);
    print_message("2-sd rises' first blocks reported: at the job's %d of 10, "
                  "at 15:00 %d\n",
                  job_hour, afternoon);
    assert_true(job_hour >= 5);
    assert_true(abs(job_hour - afternoon) <= 4);
}

static void test_daily_job_is_usual(void **state)
{
    (void)state;
    for (uint64_t s = 1; s <= SEEDS; s++) {
        daily_job_at(s, 100.0, true, true);
    }
}

/* The job on days 0-7 and a dip of its size at its hour on day 8; on day
 * 9 the dip again (@p dip) or the job: the job's p_anomaly on day 9, the
 * least over five seeds if @p dip, else the largest. */
static double after_a_dip(bool dip)
{
    static double what[N_EV], y[N_EV];
    static bw_pf_out_t out[N_EV];
    bw_pf_cfg_t c = phase_cfg(1e-5);
    double worst = dip ? 1.0 : 0.0;

    for (uint64_t s = 1; s <= SEEDS; s++) {
        job(s, what);
        what[9 * PER_DAY + JOB_BIN] = dip ? -SIZE : SIZE;
        what[7 * PER_DAY + 180] = 0.0;
        series(100 + s, what, y);
        run_all(&c, s, y, out);
        worst = dip ? fmin(worst, out[9 * PER_DAY + JOB_BIN].p_anomaly)
                    : fmax(worst, out[9 * PER_DAY + JOB_BIN].p_anomaly);
    }
    return worst;
}

/* A bin holds one spike size with its evidence: one dip at the learnt
 * job's hour is an anomaly of its own and does not take the bin. A dip
 * there the next day is still anomalous (it had been read as usual, with
 * the job's days as its evidence), and the job itself still usual (it
 * had been flagged, its size no longer the bin's). */
static void test_dip_does_not_take_the_job(void **state)
{
    double dip, job_p;

    (void)state;
    dip = after_a_dip(true);
    job_p = after_a_dip(false);
    print_message("day 9 after a dip on day 8: a dip again at least %.3f, "
                  "the job at most %.3f\n",
                  dip, job_p);
    assert_true(dip >= 0.99);
    assert_true(job_p < 0.5);
}

/* The same job far from 0 (a gauge at 1e10 with unit noise): the spikes'
 * sizes are held as excursions from the level, so the job is learnt as at
 * 100. Held as values in single precision (rounded to 1,024 at 1e10), no
 * later day's job matched an earlier one's within the familiarity radius
 * (3 noise sds) and it stayed flagged every day. Day 0's job (the 38th
 * event) is not asserted here: that early the particles' weights still
 * carry the noise prior's width, which scales with the offset (pf.c,
 * cap_prior), so it scores 0.94-1 at 1e10; the job's learning starts on
 * day 1 either way. */
static void test_daily_job_at_any_offset(void **state)
{
    (void)state;
    for (uint64_t s = 1; s <= 3; s++) {
        daily_job_at(s, 1e10, false, false);
        daily_job_at(s, -3e9, false, false);
    }
}

/* Four spikes a day at random times: nothing recurs, so as many are
 * flagged as with the model off. */
static void test_random_spikes_stay_anomalies(void **state)
{
    static double what[N_EV], y[N_EV];
    static bw_pf_out_t on[N_EV], off[N_EV];
    bw_pf_cfg_t c_on = phase_cfg(1e-5), c_off = phase_cfg(0.0);
    int n_on = 0, n_off = 0, spikes = 0;

    (void)state;
    for (uint64_t s = 1; s <= SEEDS; s++) {
        gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
        gsl_rng_set(r, 500 + s);
        memset(what, 0, sizeof(what));
        for (int d = 0; d < DAYS; d++) {
            for (int j = 0; j < 4; j++) {
                what[d * PER_DAY + (int)gsl_rng_uniform_int(r, PER_DAY)] =
                    gsl_ran_flat(r, 8.0, 40.0);
            }
        }
        gsl_rng_free(r);
        series(200 + s, what, y);
        run_all(&c_on, s, y, on);
        run_all(&c_off, s, y, off);
        for (int t = PER_DAY; t < N_EV; t++) {
            if (what[t] > 0.0) {
                spikes++;
                n_on += on[t].p_anomaly >= 0.99;
                n_off += off[t].p_anomaly >= 0.99;
            }
        }
    }
    print_message("random spikes after day 1 flagged: %d of %d on, %d off\n",
                  n_on, spikes, n_off);
    assert_int_equal(n_on, n_off);
}

/* Days with a 90-minute shift at 20:00: the first two (onset-only, so
 * its onset and end are short excursions, i.e. spikes, which the phase
 * prior learns) and the last, a week after them: past the memory of recent
 * values (recur_window, a week of 5-minute data), so no return to a state
 * the series has shown, and a change. */
static int shift_day(int d)
{
    return d < 2 || d == DAYS - 1;
}

/* A shift to one height at one hour on several days is a change, not a
 * recurring spike: the phase prior, which has seen the first days' onsets
 * and ends as spikes at that hour, must not flag its events less often
 * than the model without it. The last shift day's 18 events are flagged
 * nearly all or none, so the comparison is of runs: over the runs where
 * the two differ, the prior may lose no more often than a fair coin would
 * at the 1% level (a one-sided sign test), and with the prior on at least
 * a third of the shift's events are flagged (the sign test cannot see
 * both collapse together). The days between are clean at that hour: at
 * most 1% of their events flagged.
 *
 * History: this test had shifts on every other day from day 4 as well,
 * and required the floor over all of them. A shift a few days after the
 * last is a return to a state the memory holds (the recurrent regime reads
 * it as familiar, as any build does when the first two days are without
 * it: 0 of 720 such events flagged), and what had been flagged there
 * (444 and 543 of 1,080 on two builds) came with the first days' shift
 * left in the profile's unconfirmed bins: the days without the shift were
 * flagged at that hour as a shift down, 378-468 of 1,800 events over 20
 * seeds. With those bins rejected at their first check
 * (bw__season_judged) neither is flagged. */
static void test_daily_shifts_stay_flagged(void **state)
{
    enum { SHIFT_SEEDS = 20 };
    static double what[N_EV], y[N_EV];
    static bw_pf_out_t on[N_EV], off[N_EV];
    bw_pf_cfg_t c_on = phase_cfg(1e-5), c_off = phase_cfg(0.0);
    const int at = 20 * 12, len = 18, last = (DAYS - 1) * PER_DAY + at;
    int n_on = 0, n_off = 0, n = 0, wins = 0, losses = 0, quiet = 0, fa = 0;
    double p;

    (void)state;
    for (uint64_t s = 1; s <= SHIFT_SEEDS; s++) {
        int k_on = 0, k_off = 0;
        memset(what, 0, sizeof(what));
        for (int d = 0; d < DAYS; d++) {
            for (int t = 0; t < len && shift_day(d); t++) {
                what[d * PER_DAY + at + t] = 8.0;
            }
        }
        series(300 + s, what, y);
        run_all(&c_on, s, y, on);
        run_all(&c_off, s, y, off);
        for (int t = 0; t < len; t++) {
            n++;
            k_on += on[last + t].p_anomaly >= 0.99;
            k_off += off[last + t].p_anomaly >= 0.99;
        }
        for (int d = 2; d < DAYS - 1; d++) {
            for (int t = 0; t < len; t++) {
                quiet++;
                fa += on[d * PER_DAY + at + t].p_anomaly >= 0.99;
            }
        }
        n_on += k_on;
        n_off += k_off;
        wins += k_on > k_off;
        losses += k_on < k_off;
    }
    /* P(losses or more | the two differ on wins + losses runs at random) */
    p = losses > 0 ? gsl_cdf_binomial_Q((unsigned)losses - 1, 0.5,
                                        (unsigned)(wins + losses))
                   : 1.0;
    print_message("the last day's shift flagged on %d of %d events with the "
                  "prior, %d without; runs the prior flagged more %d, fewer "
                  "%d (sign test p %.3g); the days between flagged at that "
                  "hour on %d of %d events\n",
                  n_on, n, n_off, wins, losses, p, fa, quiet);
    assert_true(p >= 0.01);
    assert_true(3 * n_on >= n);
    assert_true(100 * fa <= quiet);
}

/* A record of an excursion under way without its time (a spike's run
 * with run_t unset) is refused: days() of it would overflow. The record
 * with its time loads. */
static void test_run_without_time_refused(void **state)
{
    bw__phase_t p, l;

    (void)state;
    assert_int_equal(bw__phase_init(&p, 288, 1, 1e-5, 7.0), 0);
    assert_int_equal(bw__phase_init(&l, 288, 1, 1e-5, 7.0), 0);
    p.t0 = 0;
    p.run_len = 2;
    p.run_p = 0.9;
    for (int bad = 0; bad < 2; bad++) {
        bw_wbuf_t w = {0};
        bw_rbuf_t r;
        p.run_t = bad ? INT64_MIN : STEP_MS;
        bw__phase_save(&p, &w);
        bw_rbuf_init(&r, w.data, w.len);
        bw__phase_load(&l, &r);
        assert_int_equal(r.err, bad ? BW_ERR_CORRUPT : BW_OK);
        bw_wbuf_free(&w);
    }
    bw__phase_free(&p);
    bw__phase_free(&l);
}

static void test_state_round_trip(void **state)
{
    static double what[N_EV], y[N_EV];
    static bw_pf_out_t a[N_EV], b[N_EV];
    bw_pf_cfg_t c = phase_cfg(1e-5);
    const int half = 5 * PER_DAY + 100;
    bw_pf_t *first, *second;
    bw_wbuf_t w = {0};
    bw_rbuf_t r;

    (void)state;
    job(3, what);
    series(103, what, y);
    run_all(&c, 3, y, a);
    first = bw_pf_new(&c, 3, NULL, 0);
    second = bw_pf_new(&c, 77, NULL, 0);
    assert_non_null(first);
    assert_non_null(second);
    run(&c, y, 0, half, first, b);
    assert_int_equal(bw_pf_save(first, &w), BW_OK);
    bw_rbuf_init(&r, w.data, w.len);
    assert_int_equal(bw_pf_load(second, &r), BW_OK);
    assert_int_equal(r.pos, w.len);
    run(&c, y, half, N_EV, second, b);
    assert_true(a[6 * PER_DAY + JOB_BIN].p_anomaly < 0.5); /* it mattered */
    assert_memory_equal(a, b, sizeof(a));
    bw_pf_destroy(first);
    bw_pf_destroy(second);
    bw_wbuf_free(&w);
}

/* Learners of the job at @p level, 6 days: @p now as this build learns
 * (excursions), @p old as a record before PF15 held it (a learner given
 * level 0 holds the values), then converted with tolerance @p tol. */
static void learn_old_and_new(double level, double size, double tol,
                              bw__phase_t *now, bw__phase_t *old)
{
    assert_int_equal(bw__phase_init(now, PER_DAY, 1, 1e-5, 3.0), 0);
    assert_int_equal(bw__phase_init(old, PER_DAY, 1, 1e-5, 3.0), 0);
    for (int e = 0; e < 6 * PER_DAY; e++) {
        int job_now = e % PER_DAY == JOB_BIN;
        double y = level + (job_now ? size : 0.0), p = job_now ? 1.0 : 0.0;
        bw__phase_learn(now, (int64_t)e * STEP_MS,
                        &(bw__phase_at_t){y, level, 1.0, 2.0, 0.2}, p,
                        STEP_MS);
        bw__phase_learn(old, (int64_t)e * STEP_MS,
                        &(bw__phase_at_t){y, 0.0, 1.0, 2.0, 0.2}, p, STEP_MS);
    }
    bw__phase_values_to_excursions(old, level, tol);
}

/* The spike prior of a value @p x above @p level at the job's hour on day
 * 6, and its anomalous share. */
static double job_prior(const bw__phase_t *p, double level, double x,
                        double *anomalous)
{
    bw__phase_at_t at = {level + x, level, 1.0, 2.0, 0.2};
    int64_t t = (int64_t)(6 * PER_DAY + JOB_BIN) * STEP_MS;

    return bw__phase_spike_prior(p, t, STEP_MS, 1e-3, &at, anomalous);
}

/* A record written before PF15 held the spikes' values. Made excursions
 * from the level they were seen at (bw__phase_values_to_excursions, as
 * bw_pf_load does for older records), they give the job's prior of a
 * learner that held excursions from the start, to single-precision
 * rounding: the job is usual at its hour, and one twice its size, or a
 * dip, is not. At 1e10 the old values were held to a step of 1,024, far
 * coarser than the familiarity radius (2 noise sds): those bins are
 * forgotten, not made into sizes that would call a dip of -500 usual. */
static void test_old_values_become_excursions(void **state)
{
    const double level = 12345.678, size = 15.3;
    static const double next[] = {size, 2.0 * size, -size};
    bw__phase_t now, old;
    double p_now, p_old, an_now, an_old;

    (void)state;
    learn_old_and_new(level, size, 2.0, &now, &old);
    assert_true(fabs(old.run_y - now.run_y) <= 1e-9);
    for (size_t i = 0; i < sizeof(next) / sizeof(next[0]); i++) {
        p_now = job_prior(&now, level, next[i], &an_now);
        p_old = job_prior(&old, level, next[i], &an_old);
        print_message("a spike of %+.1f at the job's hour: prior %.4g "
                      "(converted record %.4g), anomalous share %.3g\n",
                      next[i], p_now, p_old, an_now);
        assert_true(fabs(p_old - p_now) <= 1e-9 * p_now);
        assert_true(fabs(an_old - an_now) <= 1e-9);
        if (i == 0) {
            assert_true(p_now > 0.1 && an_now < 0.01); /* the job: usual */
        } else {
            assert_true(p_now == 1e-3 && an_now == 1.0);
        }
    }
    bw__phase_free(&now);
    bw__phase_free(&old);
    learn_old_and_new(1e10, size, 2.0, &now, &old);
    p_now = job_prior(&now, 1e10, size, &an_now);
    p_old = job_prior(&old, 1e10, size, &an_old);
    print_message("at 1e10: the job's prior %.4g, converted record %.4g\n",
                  p_now, p_old);
    assert_true(p_now > 0.1 && an_now < 0.01);
    assert_true(p_old == 1e-3 && an_old == 1.0); /* forgotten */
    assert_true(job_prior(&old, 1e10, -500.0, &an_old) == 1e-3);
    bw__phase_free(&now);
    bw__phase_free(&old);
}

/* A PF14 record of a filter that learnt the job loads into bw_pf_load
 * with its values made excursions. The PF15 blob of the filter at day 5
 * is rewritten as PF14 held it: each visited bin's size plus the filter's
 * level (single precision), the open excursion's too, and the tag. The
 * layout after the phase bins (a regular series: no memory gap logged):
 * the episode's gap and calm counts (8 bytes), the tail counts (16), the
 * memory's times (52), the first steps' sum and the memory's origin (16),
 * the open block's sum with the profile added back (8, PF16: dropped).
 * Loaded, it goes on as the PF15 record does (every p_anomaly within
 * 1e-6, the same alerts); loaded with the sizes left as they were (a
 * conversion that did not run), the next job is no longer usual (p >=
 * 1/2, as with the model off: test_daily_job_is_usual). */
#define AFTER_PHASE (8 + 16 + 52 + 16 + 8)
static void test_pf_reads_pf14_spikes(void **state)
{
    static double what[N_EV], y[N_EV];
    static bw_pf_out_t a[N_EV], b[N_EV];
    bw_pf_cfg_t c = phase_cfg(1e-5);
    const int half = 5 * PER_DAY + 100;
    const size_t bins = (size_t)PER_DAY * 4 * sizeof(float);
    bw_pf_t *first, *second;
    bw_wbuf_t w = {0};
    bw_rbuf_t r;
    size_t at;
    double level, run_y;
    double left;

    (void)state;
    job(3, what);
    series(103, what, y);
    first = bw_pf_new(&c, 3, NULL, 0);
    assert_non_null(first);
    run(&c, y, 0, half, first, a);
    assert_int_equal(bw_pf_save(first, &w), BW_OK);
    assert_memory_equal(w.data, "\x36\x31\x46\x50", 4); /* "PF16" */
    level = a[half - 1].level;
    at = w.len - AFTER_PHASE - bins; /* the bins; run_y, run_t before */
    assert_int_equal(get_u32_le(w.data, w.len - 28), 0); /* no gap */
    for (size_t k = 0; k < (size_t)PER_DAY; k++) {
        size_t e = at + 16 * k; /* old, new, day, size */
        if (k == JOB_BIN) { /* the job's size (15 sds +- 3%, noise), day 5 */
            assert_true(fabs(get_f32_le(w.data, e + 12) - SIZE) < 3.0 &&
                        get_f32_le(w.data, e + 8) > 5.0f);
        }
        if (get_f32_le(w.data, e + 8) >= 0.0f) {
            put_f32_le(w.data, e + 12,
                       (float)(get_f32_le(w.data, e + 12) + level));
        }
    }
    run_y = get_f64_le(w.data, at - 16);
    put_f64_le(w.data, at - 16, run_y + level);
    w.len -= 8; /* PF16's open block sum */
    w.data[0] = '4';
    second = bw_pf_new(&c, 77, NULL, 0);
    assert_non_null(second);
    bw_rbuf_init(&r, w.data, w.len);
    assert_int_equal(bw_pf_load(second, &r), BW_OK);
    assert_int_equal(r.pos, w.len);
    memcpy(b, a, sizeof(a[0]) * half);
    run(&c, y, half, N_EV, first, a);
    run(&c, y, half, N_EV, second, b);
    for (int t = half; t < N_EV; t++) {
        assert_true(fabs(a[t].p_anomaly - b[t].p_anomaly) <= 1e-6);
        assert_int_equal(a[t].p_anomaly >= 0.99, b[t].p_anomaly >= 0.99);
    }
    assert_true(a[6 * PER_DAY + JOB_BIN].p_anomaly < 0.5);
    print_message("a PF14 record at level %.2f: the job on day 6 %.3f as "
                  "the PF15 record's %.3f\n",
                  level, b[6 * PER_DAY + JOB_BIN].p_anomaly,
                  a[6 * PER_DAY + JOB_BIN].p_anomaly);
    /* the values left as values: the job no longer matches */
    w.data[0] = '5';
    bw_pf_destroy(second);
    second = bw_pf_new(&c, 77, NULL, 0);
    assert_non_null(second);
    bw_rbuf_init(&r, w.data, w.len);
    assert_int_equal(bw_pf_load(second, &r), BW_OK);
    run(&c, y, half, N_EV, second, b);
    left = b[6 * PER_DAY + JOB_BIN].p_anomaly;
    print_message("  its values left as they were: %.3f\n", left);
    assert_true(left >= 0.5);
    bw_pf_destroy(first);
    bw_pf_destroy(second);
    bw_wbuf_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_posterior_vs_quadrature),
        cmocka_unit_test(test_job_block_still_reports),
        cmocka_unit_test(test_daily_job_is_usual),
        cmocka_unit_test(test_dip_does_not_take_the_job),
        cmocka_unit_test(test_daily_job_at_any_offset),
        cmocka_unit_test(test_random_spikes_stay_anomalies),
        cmocka_unit_test(test_daily_shifts_stay_flagged),
        cmocka_unit_test(test_state_round_trip),
        cmocka_unit_test(test_run_without_time_refused),
        cmocka_unit_test(test_old_values_become_excursions),
        cmocka_unit_test(test_pf_reads_pf14_spikes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
