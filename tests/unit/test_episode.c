/*
 * Abnormal episodes (model.pf.p_episode): the sticky abnormal regime of the
 * particle filter, against references that do not share its code.
 *  - Exact: P(anomalous | y_1:t) vs exhaustive enumeration of every regime
 *    history of the episode model (normal, spike, shift, enter, stay; the
 *    baseline and the abnormal level each a Kalman filter), written out here
 *    from the model's definition.
 *  - Known truth: sustained shifts of 3-6 noise sds, up and down, lasting
 *    30-180 events, in data from three noise families (Gaussian, Student-t
 *    with 3 dof, AR(1) with coefficient 0.5: the last two not the model's
 *    own): the share of their events flagged, with episodes against
 *    without; isolated spikes are flagged once; false alarms stay rare.
 *  - Adoption: a change that outlasts adopt_after_ms becomes the new normal,
 *    once, and is not reported after that; an adopted day without its daily
 *    pattern does not teach the profile (the next days are not flagged);
 *    nor does a dip before the profile applies.
 *  - State: a run split by save/load inside an episode is bit-identical.
 */
#include <gsl/gsl_errno.h>

#include "testutil.h"
#include "../../src/model/block.h"

#define STEP_MS 1000
#define REPS 16
/* The shift grid's floors on the flagged share: measured 0.875 / 0.856 /
 * 0.895 less three Monte Carlo standard errors (0.081 / 0.059 / 0.032,
 * shift_share), rounded down. The runs' spread is wide (a run is mostly
 * flagged or mostly not), so the floors guard against a collapse, not a
 * few points: the episode's gap, which lifted t(3) from 0.728, has its own
 * test (test_outlier_inside_episode_keeps_its_start). */
#define FLOOR_GAUSS 0.63
#define FLOOR_T3 0.67
#define FLOOR_AR1 0.79

/* ---- exhaustive enumeration ------------------------------------------------
 */

#define EP_T 7
#define EP_MAX 15625 /* 5^6 */

typedef struct {
    double logw, m, c, ma, ca;
    int ab;
} ep_hist_t;

typedef struct {
    const bw_pf_cfg_t *c;
    double s2, stay, y;
    double pri[4]; /* from the normal state: normal, spike, shift, enter */
} ep_model_t;

static double lnorm(double e, double var)
{
    return -0.5 * log(2 * M_PI * var) - 0.5 * e * e / var;
}

/* Child @p j (0 normal, 1 spike, 2 shift, 3 enter, 4 stay) of history @p h
 * with prior factor @p f; returns the new history in @p o. */
static void ep_child(const ep_model_t *md, const ep_hist_t *h, int j, double f,
                     ep_hist_t *o)
{
    const bw_pf_cfg_t *c = md->c;
    double q = c->level_ratio, k2 = c->shift_scale * c->shift_scale;
    double r = h->c + q, e = md->y - h->m;

    *o = *h;
    if (j <= 2) { /* the baseline takes the value */
        double w = j == 2 ? k2 : 0.0;
        double v = j == 1 ? c->spike_scale * c->spike_scale : 1.0;
        double rr = r + w, qv = rr + v;
        o->logw = h->logw + log(f * md->pri[j]) + lnorm(e, qv * md->s2);
        o->m = h->m + rr / qv * e;
        o->c = rr - rr * rr / qv;
        o->ab = 0;
        return;
    }
    /* enter or stay: the baseline is only predicted */
    double am = j == 3 ? h->m : h->ma;
    double ar = j == 3 ? r + k2 : h->ca + q;
    double qv = ar + 1.0, ea = md->y - am;
    o->logw = h->logw + log(j == 3 ? f * md->pri[3] : md->stay) +
              lnorm(ea, qv * md->s2);
    o->c = r;
    o->ma = am + ar / qv * ea;
    o->ca = ar - ar * ar / qv;
    /* an abnormal level within episode_min sds of the baseline ends it */
    o->ab = fabs(o->ma - o->m) >= c->episode_min * sqrt(md->s2);
}

static void ep_enumerate(const bw_pf_cfg_t *c, const double *y, double *p)
{
    static ep_hist_t h[EP_MAX], nh[EP_MAX * 5];
    ep_model_t md = {c,
                     c->scale_prior * c->scale_prior,
                     1.0 - 1.0 / c->episode_duration,
                     0.0,
                     {0}};
    int nhist = 1;

    md.pri[1] = c->p_spike, md.pri[2] = c->p_shift, md.pri[3] = c->p_episode;
    md.pri[0] = 1.0 - md.pri[1] - md.pri[2] - md.pri[3];
    h[0] = (ep_hist_t){0.0, y[0], c->init_level_var, y[0], 0.0, 0};
    p[0] = 0.0;
    for (int t = 1; t < EP_T; t++) {
        double tot = 0.0, anom = 0.0, mx = -INFINITY;
        int k = 0;
        md.y = y[t];
        for (int i = 0; i < nhist; i++) {
            double f = h[i].ab ? 1.0 - md.stay : 1.0;
            for (int j = 0; j < (h[i].ab ? 5 : 4); j++) {
                ep_child(&md, &h[i], j, f, &nh[k]);
                mx = fmax(mx, nh[k].logw);
                k++;
            }
        }
        /* anomalous: every child but the normal one (j = 0) */
        for (int i = 0, kk = 0; i < nhist; i++) {
            for (int j = 0; j < (h[i].ab ? 5 : 4); j++, kk++) {
                double wi = exp(nh[kk].logw - mx);
                tot += wi;
                anom += j != 0 ? wi : 0.0;
            }
        }
        p[t] = anom / tot;
        for (int i = 0; i < k; i++) {
            h[i] = nh[i];
            h[i].logw -= mx;
        }
        nhist = k;
        assert_true(nhist <= EP_MAX);
    }
}

static bw_pf_cfg_t episode_exact_cfg(void)
{
    bw_pf_cfg_t c = test_pf_cfg();

    c.particles = 2000;
    c.t_dof = 0;
    c.recur_window = 0;
    c.block_size = 0;
    c.ar_noise = false;
    c.learn_scale = false;
    c.scale_prior = 1.0;
    c.level_ratio = 0.05;
    c.init_level_var = 1.0;
    c.warmup = 0;
    c.p_spike = 0.05;
    c.p_shift = 0.005;
    c.p_episode = 0.03;
    c.episode_duration = 10.0;
    c.spike_scale = 4.0;
    c.shift_scale = 4.0;
    return c;
}

static void test_episodes_match_enumeration(void **state)
{
    bw_pf_cfg_t c = episode_exact_cfg();
    /* a spike, then an episode of three events, then back to normal */
    const double y[EP_T] = {0.0, 0.3, 6.0, 5.8, 6.3, 6.1, 0.2};
    double exact[EP_T];

    (void)state;
    ep_enumerate(&c, y, exact);
    pf_vs_exact(&c, y, EP_T, exact, REPS, 300);
    /* The episode is abnormal on every one of its events, the return not. */
    assert_true(exact[3] > 0.8 && exact[5] > 0.8 && exact[6] < 0.1);
}

/* ---- sustained shifts, spikes and false alarms (known truth) ---------------
 */

enum { FAM_GAUSS, FAM_T3, FAM_AR1, N_FAM };

typedef struct {
    bw_rng_t rng;
    int family;
    double ar; /* AR(1) state */
} noise_t;

/* Unit-variance noise of the family. */
static double noise_next(noise_t *n)
{
    double z;
    if (n->family == FAM_T3) {
        return test_t3_unit(&n->rng);
    }
    z = bw_rng_gauss(&n->rng);
    if (n->family == FAM_AR1) {
        n->ar = 0.5 * n->ar + sqrt(1.0 - 0.25) * z;
        return n->ar;
    }
    return z;
}

/* The shipped defaults (abnormal episodes; a lasting change becomes normal
 * by adoption only), daily profile off. */
static bw_config_t episode_cfg(void)
{
    bw_config_t cfg;

    bw_config_defaults(&cfg);
    cfg.model.pf.daily.enabled = false;
    return cfg;
}

/* The onset model as it was before episodes: level shifts that are normal
 * from the next event on, every remembered value familiar, white noise. */
static bw_config_t onset_cfg(void)
{
    bw_config_t cfg = episode_cfg();

    cfg.model.pf.p_episode = 0.0;
    cfg.model.pf.p_shift = 0.001;
    cfg.model.pf.recur_gap = 0.0;
    cfg.model.pf.recur_min_count = 1;
    cfg.model.pf.ar_noise = false;
    return cfg;
}

typedef struct {
    int runs, late, covered, span, false_alarms, normal_events;
    int fa_episodes;                 /* runs of consecutive false alarms */
    int amp_covered[3], amp_span[3]; /* by amplitude (3, 4, 6 sds) */
    /* by cell of the grid (amplitude x length): runs, and the sums of
     * covered, span, covered^2, span^2 and covered*span over them */
    int n[9];
    double c[9], s[9], cc[9], ss[9], cs[9];
} shift_stats_t;

/* One run: 800 normal events, then a shift of @p amp sds for @p len events,
 * then 200 normal events. Counts onset delays beyond @p max_delay, flagged
 * events in [onset + max_delay, end) (also under the grid's cell @p cell,
 * amplitude index cell / 3), false alarms outside. */
static void shift_run(const bw_config_t *cfgp, int family, double amp, int len,
                      int max_delay, uint64_t seed, shift_stats_t *st, int cell)
{
    bw_config_t cfg = *cfgp;
    bw_pf_t *pf = bw_pf_new(&cfg.model.pf, seed, NULL, 0);
    bw_pf_ws_t *ws = bw_pf_ws_new(&cfg.model.pf);
    noise_t nz = {.family = family};
    const int start = 800, end = start + len;
    int first = -1, prev_fa = 0, covered = 0, span = 0;

    assert_non_null(pf);
    bw_rng_seed(&nz.rng, seed * 7919 + 1);
    for (int t = 0; t < end + 200; t++) {
        bw_pf_out_t out;
        int in = t >= start && t < end;
        double y = 50.0 + 2.0 * noise_next(&nz) + (in ? 2.0 * amp : 0.0);
        bool flag;
        assert_int_equal(bw_pf_update(pf, ws, (int64_t)t * 60000, y, &out),
                         BW_OK);
        flag = out.p_anomaly >= cfg.engine.alert_threshold && !out.warmup;
        if (in) {
            if (flag && first < 0) {
                first = t;
            }
            if (t >= start + max_delay) {
                span++;
                covered += flag;
            }
        } else if (t >= 100 && (t < start || t >= end + 5)) {
            st->normal_events++;
            st->false_alarms += flag;
            st->fa_episodes += flag && !prev_fa;
            prev_fa = flag;
        }
    }
    st->runs++;
    st->late += first < 0 || first - start >= max_delay;
    st->covered += covered;
    st->span += span;
    st->amp_covered[cell / 3] += covered;
    st->amp_span[cell / 3] += span;
    st->n[cell]++;
    st->c[cell] += covered;
    st->s[cell] += span;
    st->cc[cell] += (double)covered * covered;
    st->ss[cell] += (double)span * span;
    st->cs[cell] += (double)covered * span;
    bw_pf_ws_destroy(ws);
    bw_pf_destroy(pf);
}

/* Every family, amplitude (with its allowed onset delay), length and sign
 * under one config. */
static void shift_grid(const bw_config_t *cfg, shift_stats_t *st)
{
    const double amps[] = {3.0, 4.0, 6.0};
    const int delays[] = {10, 6, 3}, lens[] = {30, 90, 180};
    uint64_t seed = 1;

    for (int f = 0; f < N_FAM; f++) {
        for (int a = 0; a < 3; a++) {
            for (int l = 0; l < 3; l++) {
                for (int sgn = -1; sgn <= 1; sgn += 2) {
                    shift_run(cfg, f, sgn * amps[a], lens[l], delays[a], seed++,
                              &st[f], 3 * a + l);
                }
            }
        }
    }
}

/*
 * The episode regime (the defaults) against the onset model (onset_cfg),
 * on the same data. Measured (flagged share of the events from the
 * allowed delay to the end; Gaussian / t(3) / AR(1)): onset model 0.0% /
 * 0.4% / 0.0%, episodes 87.5% / 85.6% / 89.5% (standard errors 8.1 / 5.9
 * / 3.2 points over the 18 runs of each family, within the grid's cells;
 * t(3) 72.8% before the episode's gap, when one tail value inside an
 * episode ended it), with 1 / 2 / 6 of 18 onsets later than allowed. By
 * amplitude (3 / 4 / 6 sds): Gaussian 66.5% / 95.0% / 99.8%, t(3) 83.7% /
 * 73.9% / 98.8%, AR(1) 75.4% / 92.4% / 99.8%. The target (90% of
 * those events, onsets within 3-10 events) is reached for no family yet:
 * a 3-sd shift sits at episode_min (3 sds), where an episode is told from
 * noise only barely, t(3) noise hides a shift in its tails, and
 * correlated noise adds only (1 - phi) of a shift per event to the
 * evidence. The grid is small for the runs' spread (a run is mostly
 * flagged or mostly not): three runs of each sign per cell (54 per
 * family) measured 91.8% / 74.9% / 86.5% (t(3) 59.8% before the gap), and
 * on AR(1) noise 8 false-alarm episodes (87 events), all in one run,
 * after a 3-sd shift of 180 events ended (README, Evaluation). Asserted:
 * the shares are at least the floors above (measured less three standard
 * errors), the episode regime flags at least five times the share the
 * onset model does in every family (plus 100 events), and raises at most
 * one false-alarm episode on Gaussian and on AR(1) noise in 16,110 events
 * each (measured 0 and 0); t(3) noise's extreme values are spikes to both
 * models.
 */
/* The pooled flagged share of a family's shifted events and its Monte Carlo
 * standard error. The grid is a fixed design, so the error is that of a
 * stratified ratio (Cochran 1977, 6.3 and 5.7): within each cell
 * (amplitude x length) the runs are the independent units and the ratio's
 * linearised variance is taken over them; the cells' variances are summed
 * with the squares of their shares of the events. The spread between
 * cells (66% at 3 sds against 99.8% at 6) is design, not noise. */
static double shift_share(const shift_stats_t *st, double *se)
{
    double r = (double)st->covered / st->span, v = 0.0;

    for (int h = 0; h < 9; h++) {
        double rh, sbar, vh;
        if (st->n[h] < 2) {
            continue;
        }
        rh = st->c[h] / st->s[h];
        sbar = st->s[h] / st->n[h];
        vh = (st->cc[h] - 2.0 * rh * st->cs[h] + rh * rh * st->ss[h]) /
             ((double)st->n[h] * (st->n[h] - 1) * sbar * sbar);
        v += (st->s[h] / st->span) * (st->s[h] / st->span) * fmax(vh, 0.0);
    }
    *se = sqrt(v);
    return r;
}

static void test_episodes_keep_sustained_shifts_flagged(void **state)
{
    /* Measured minus three standard errors (Gaussian / t(3) / AR(1)). */
    const double floor_share[N_FAM] = {FLOOR_GAUSS, FLOOR_T3, FLOOR_AR1};
    bw_config_t on = episode_cfg(), off = onset_cfg();
    shift_stats_t st_on[N_FAM] = {{0}}, st_off[N_FAM] = {{0}};

    (void)state;
    shift_grid(&on, st_on);
    shift_grid(&off, st_off);
    for (int f = 0; f < N_FAM; f++) {
        double se, r = shift_share(&st_on[f], &se);
        print_message(
            "family %d: %d runs; flagged %.1f%% (se %.1f; 3 / 4 / 6 sds "
            "%.1f%% / %.1f%% / %.1f%%) with episodes (%d late onsets, %d "
            "false alarms in %d episodes, %d events), %.1f%% without (%d "
            "late, %d false alarms)\n",
            f, st_on[f].runs, 100.0 * r, 100.0 * se,
            100.0 * st_on[f].amp_covered[0] / st_on[f].amp_span[0],
            100.0 * st_on[f].amp_covered[1] / st_on[f].amp_span[1],
            100.0 * st_on[f].amp_covered[2] / st_on[f].amp_span[2],
            st_on[f].late, st_on[f].false_alarms, st_on[f].fa_episodes,
            st_on[f].normal_events, 100.0 * st_off[f].covered / st_off[f].span,
            st_off[f].late, st_off[f].false_alarms);
    }
    for (int f = 0; f < N_FAM; f++) {
        double se;
        assert_true(shift_share(&st_on[f], &se) >= floor_share[f]);
        assert_true(st_on[f].covered >= 5 * st_off[f].covered + 100);
    }
    assert_true(st_on[FAM_GAUSS].fa_episodes <= 1);
    assert_true(st_on[FAM_AR1].fa_episodes <= 1);
}

/*
 * A shift onto a level that only scattered values had touched: Gaussian
 * noise (sd 2, level 50) with a lone value 4-8 sds up every 40 events for
 * 2,000 events (50 of them: what heavy-tailed noise leaves in the memory),
 * then a 6-sd shift for 90 events. Each earlier visit to that range lasted
 * one event and the shift lasts, so it is no return to a known state
 * (recur_visit): in every one of 8 runs it is flagged by its third event
 * and on at least 90% of its events from the third on (measured: min 0.99,
 * no late onset). Without the visit's cost (recur_visit 0) the jump reads
 * as a return to a familiar level: 5 of 8 runs are flagged on less than
 * half (7 late onsets); asserted at least 2, so the test fails without it.
 */
static double lone_then_shift(int visit, uint64_t seed, int *late)
{
    bw_config_t cfg = episode_cfg();
    bw_pf_t *pf;
    bw_pf_ws_t *ws;
    noise_t nz = {.family = FAM_GAUSS};
    const int start = 2100, end = start + 90;
    int covered = 0, first = -1;

    cfg.model.pf.recur_visit = visit;
    pf = bw_pf_new(&cfg.model.pf, seed, NULL, 0);
    ws = bw_pf_ws_new(&cfg.model.pf);
    bw_rng_seed(&nz.rng, seed * 31 + 7);
    for (int t = 0; t < end; t++) {
        bw_pf_out_t out;
        int lone = t >= 100 && t < start && t % 40 == 17;
        int in = t >= start;
        double y = 50.0 + 2.0 * noise_next(&nz) + (in ? 12.0 : 0.0) +
                   (lone ? 8.0 + 8.0 * bw_rng_uniform(&nz.rng) : 0.0);
        assert_int_equal(bw_pf_update(pf, ws, (int64_t)t * 60000, y, &out),
                         BW_OK);
        if (in && out.p_anomaly >= cfg.engine.alert_threshold) {
            first = first < 0 ? t : first;
            covered += t >= start + 2;
        }
    }
    *late += first < 0 || first > start + 2;
    bw_pf_ws_destroy(ws);
    bw_pf_destroy(pf);
    return covered / 88.0;
}

static void test_shift_onto_tail_values_stays_flagged(void **state)
{
    double on = 1.0, mean_on = 0.0;
    int late_on = 0, late_off = 0, lost_off = 0;

    (void)state;
    for (uint64_t r = 0; r < 8; r++) {
        double a = lone_then_shift(8, 40 + r, &late_on);
        double b = lone_then_shift(0, 40 + r, &late_off);
        on = fmin(on, a);
        mean_on += a / 8.0;
        lost_off += b < 0.5;
    }
    print_message("shift onto tail values: flagged share min %.2f (mean %.2f, "
                  "%d of 8 onsets after the third event) with visits; "
                  "without, %d of 8 runs flagged on less than half (%d "
                  "late)\n",
                  on, mean_on, late_on, lost_off, late_off);
    assert_true(on >= 0.9);
    assert_int_equal(late_on, 0);
    assert_true(lost_off >= 2);
}

static void test_spike_flagged_once(void **state)
{
    bw_config_t cfg = episode_cfg();
    int flagged = 0, runs = 40;

    (void)state;
    for (int r = 0; r < runs; r++) {
        bw_pf_t *pf = bw_pf_new(&cfg.model.pf, 70 + (uint64_t)r, NULL, 0);
        bw_pf_ws_t *ws = bw_pf_ws_new(&cfg.model.pf);
        noise_t nz = {.family = FAM_GAUSS};
        bw_rng_seed(&nz.rng, 500 + (uint64_t)r);
        for (int t = 0; t < 700; t++) {
            bw_pf_out_t out;
            double y = 50.0 + 2.0 * noise_next(&nz) + (t == 600 ? 24.0 : 0.0);
            bw_pf_update(pf, ws, (int64_t)t * 60000, y, &out);
            if (t == 600) {
                assert_true(out.p_anomaly >= 0.99);
                assert_true(out.direction == BW_DIR_SPIKE ||
                            out.direction == BW_DIR_SHIFT_UP);
            } else if (t > 600) {
                flagged += out.p_anomaly >= 0.99;
            }
        }
        bw_pf_ws_destroy(ws);
        bw_pf_destroy(pf);
    }
    print_message("%d flags after %d spikes\n", flagged, runs);
    assert_true(flagged <= 2);
}

/* ---- adoption and state -----------------------------------------------------
 */

static void test_lasting_change_is_adopted(void **state)
{
    bw_config_t cfg = episode_cfg();
    bw_pf_t *pf = bw_pf_new(&cfg.model.pf, 3, NULL, 0);
    bw_pf_ws_t *ws = bw_pf_ws_new(&cfg.model.pf);
    noise_t nz = {.family = FAM_GAUSS};
    const int start = 600, horizon = (int)(cfg.model.pf.adopt_after_ms / 60000);
    int adopted = 0, at = -1, flagged_after = 0, flagged_before = 0;

    (void)state;
    bw_rng_seed(&nz.rng, 9);
    for (int t = 0; t < start + 2 * horizon; t++) {
        bw_pf_out_t out;
        double y = 50.0 + 2.0 * noise_next(&nz) + (t >= start ? 12.0 : 0.0);
        bw_pf_update(pf, ws, (int64_t)t * 60000, y, &out);
        if (t >= start + 6 && at < 0) {
            flagged_before += out.p_anomaly >= 0.99;
            /* since when: the episode's first event (measured: start + 4;
             * the first events are partly taken as spikes) */
            assert_true(out.since_ms >= (int64_t)start * 60000 &&
                        out.since_ms <= (int64_t)(start + 6) * 60000);
        }
        if (out.adopted) {
            adopted++;
            at = t;
        } else if (at >= 0) {
            flagged_after += out.p_anomaly >= 0.99;
            assert_true(out.since_ms == -1 || out.p_abnormal >= 0.5);
        }
    }
    print_message("adopted %d time(s) at +%d events (horizon %d); flagged "
                  "%d of %d before, %d after\n",
                  adopted, at - start, horizon, flagged_before, at - start - 6,
                  flagged_after);
    assert_int_equal(adopted, 1);
    /* the horizon runs from the episode's first event (at most start + 6) */
    assert_true(at - start >= horizon && at - start <= horizon + 6);
    assert_true(flagged_before >= (at - start - 6) * 9 / 10);
    assert_true(flagged_after <= 2);
    bw_pf_ws_destroy(ws);
    bw_pf_destroy(pf);
}

/*
 * Adoption inside an open block: the block model's inputs so far were the
 * old baseline's (an episode's values are taken out of them), and its
 * level moves with the filter's at adoption, so its open block must move
 * too (as reframe_block does), and so must the adoption event's own input,
 * or the block closing after the adoption mixes the two levels. A 6-sd
 * rise from event 609, adopted late in a block, ten noise seeds: the
 * first block mean after it (12 values of sd 2: sd 0.58; the ten runs'
 * mean has sd 0.18) lies near the new level 62 on average within 0.55, 3
 * sds (measured 62.06; 61.02 with the adoption event's input at the old
 * baseline, 12/12 low; 50.29 in one run with the block unmoved).
 */
static void test_adoption_moves_open_block(void **state)
{
    bw_config_t cfg = episode_cfg();
    const int start = 609, runs = 10;
    double sum = 0.0;

    (void)state;
    for (int r = 0; r < runs; r++) {
        bw_pf_t *pf = bw_pf_new(&cfg.model.pf, 3, NULL, 0);
        bw_pf_ws_t *ws = bw_pf_ws_new(&cfg.model.pf);
        noise_t nz = {.family = FAM_GAUSS};
        int at = -1;
        double block_after = NAN;
        bw_rng_seed(&nz.rng, 9 + (uint64_t)r);
        for (int t = 0; t < start + 400 && isnan(block_after); t++) {
            bw_pf_out_t out;
            double y =
                50.0 + 2.0 * noise_next(&nz) + (t >= start ? 12.0 : 0.0);
            bw_pf_update(pf, ws, (int64_t)t * 60000, y, &out);
            if (out.adopted) {
                at = t;
            } else if (at >= 0 && out.block_closed) {
                block_after = out.block_mean;
            }
        }
        assert_true(at >= 0 && isfinite(block_after));
        sum += block_after;
        bw_pf_ws_destroy(ws);
        bw_pf_destroy(pf);
    }
    print_message("the first block mean after adoption, mean of %d runs: "
                  "%.2f (the level 62)\n",
                  runs, sum / runs);
    assert_true(fabs(sum / runs - 62.0) < 0.55);
}

/*
 * Adoption with a trend (model.pf.trend): the baseline's level/trend
 * covariance grows over the episode's predictions, and the adopted level
 * has none with the trend. A 6-sd rise held past the adoption horizon,
 * then 300 events more, three runs: the change is adopted once, and every
 * output after it is finite and the level's variance positive (the
 * covariance had been kept: the matrix went indefinite at adoption, and
 * the likelihoods NaN within events).
 */
static void test_adoption_with_trend(void **state)
{
    bw_config_t cfg = episode_cfg();

    (void)state;
    cfg.model.pf.trend = true;
    for (int r = 0; r < 3; r++) {
        bw_pf_t *pf = bw_pf_new(&cfg.model.pf, 11 + (uint64_t)r, NULL, 0);
        bw_pf_ws_t *ws = bw_pf_ws_new(&cfg.model.pf);
        noise_t nz = {.family = FAM_GAUSS};
        int adopted = 0, bad = 0;
        bw_rng_seed(&nz.rng, 21 + (uint64_t)r);
        for (int t = 0; t < 600 + 240 + 300; t++) {
            bw_pf_out_t out;
            double y = 50.0 + 2.0 * noise_next(&nz) + (t >= 600 ? 12.0 : 0.0);
            double m, v;
            assert_int_equal(bw_pf_update(pf, ws, (int64_t)t * 60000, y, &out),
                             BW_OK);
            adopted += out.adopted;
            bw_pf_level(pf, &m, &v);
            bad += !(isfinite(out.p_anomaly) && isfinite(out.expected) &&
                     isfinite(m) && v > 0.0);
        }
        print_message("trend, run %d: adopted %d, outputs not finite %d\n", r,
                      adopted, bad);
        assert_int_equal(adopted, 1);
        assert_int_equal(bad, 0);
        bw_pf_ws_destroy(ws);
        bw_pf_destroy(pf);
    }
}

/*
 * One heavy-tailed value inside an episode does not end it. Gaussian noise
 * (sd 2, level 50, one-minute data), a 12-sd rise from event 600 lasting
 * twice the adoption horizon, and 60 events into it one value back at the
 * baseline (a 6-sd outlier of the abnormal level toward normal), in 8 runs.
 * The outlier takes P(abnormal) below 1/2 for an event or two; the episode
 * survives such a gap (EPISODE_GAP), so `since_ms` after it is the
 * episode's first event again and the change is adopted once, a horizon
 * after that event (measured: the episode from +1, two events below 1/2
 * after the outlier, adopted at +241 in every run; horizon 240). Without
 * the gap (EPISODE_GAP 0) the outlier ended the episode, and ten events
 * later the series was in none: the check there fails.
 */
static void test_outlier_inside_episode_keeps_its_start(void **state)
{
    bw_config_t cfg = episode_cfg();
    bw_pf_ws_t *ws = bw_pf_ws_new(&cfg.model.pf);
    const int start = 600, horizon = (int)(cfg.model.pf.adopt_after_ms / 60000);
    int dipped = 0;

    (void)state;
    for (uint64_t seed = 1; seed <= 8; seed++) {
        bw_pf_t *pf = bw_pf_new(&cfg.model.pf, seed, NULL, 0);
        noise_t nz = {.family = FAM_GAUSS};
        int64_t since = -1;
        int at = -1, adopted = 0, dip = 0;

        bw_rng_seed(&nz.rng, 40 + seed);
        for (int t = 0; t < start + 2 * horizon; t++) {
            bw_pf_out_t out;
            double y = 50.0 + 2.0 * noise_next(&nz) + (t >= start ? 24.0 : 0.0);
            if (t == start + 60) {
                y = 50.0;
            }
            bw_pf_update(pf, ws, (int64_t)t * 60000, y, &out);
            if (t == start + 59) {
                since = out.since_ms; /* the episode's start, before */
                assert_true(since >= 0);
            }
            if (t > start + 59 && t < start + 70) {
                dip += out.p_abnormal < 0.5;
            }
            if (t == start + 70) { /* after: the same episode */
                assert_int_equal(out.since_ms, since);
            }
            if (out.adopted) {
                adopted++;
                at = t;
            }
        }
        dipped += dip > 0;
        print_message("seed %d: episode from +%d, %d events below 1/2 after "
                      "the outlier, adopted at +%d\n",
                      (int)seed, (int)(since / 60000) - start, dip, at - start);
        assert_int_equal(adopted, 1);
        assert_int_equal((int64_t)at * 60000 - since, (int64_t)horizon * 60000);
        bw_pf_destroy(pf);
    }
    /* the outlier must have made a gap, or the test shows nothing */
    assert_int_equal(dipped, 8);
    bw_pf_ws_destroy(ws);
}

/*
 * Adoption waits for EPISODE_GAP + 1 abnormal events in a row after a gap.
 * The same 12-sd rise, with two values back at the baseline at the
 * horizon's end (+239, +240), in 8 runs: the episode resumes after the gap
 * with its adoption clock already past the horizon, and is adopted on its
 * fourth abnormal event after it, not on the first, where the particles
 * that carry the episode had re-entered it an event before (measured: in
 * every run it resumed at +242 and was adopted at +245; adopted at the
 * resumption itself, before the wait).
 */
static void test_no_adoption_as_a_gap_ends(void **state)
{
    bw_config_t cfg = episode_cfg();
    bw_pf_ws_t *ws = bw_pf_ws_new(&cfg.model.pf);
    const int start = 600, horizon = (int)(cfg.model.pf.adopt_after_ms / 60000);

    (void)state;
    for (uint64_t seed = 1; seed <= 8; seed++) {
        bw_pf_t *pf = bw_pf_new(&cfg.model.pf, seed, NULL, 0);
        noise_t nz = {.family = FAM_GAUSS};
        int at = -1, adopted = 0, resumed = -1, gap = 0;

        bw_rng_seed(&nz.rng, 60 + seed);
        for (int t = 0; t < start + 2 * horizon; t++) {
            bw_pf_out_t out;
            double y = 50.0 + 2.0 * noise_next(&nz) + (t >= start ? 24.0 : 0.0);
            if (t == start + horizon - 1 || t == start + horizon) {
                y = 50.0;
            }
            bw_pf_update(pf, ws, (int64_t)t * 60000, y, &out);
            gap +=
                t >= start + horizon - 1 && out.p_abnormal < 0.5 && resumed < 0;
            if (gap > 0 && resumed < 0 && out.p_abnormal >= 0.5) {
                resumed = t;
            }
            if (out.adopted) {
                adopted++;
                at = t;
            }
        }
        print_message("seed %d: %d events below 1/2, resumed at +%d, adopted "
                      "at +%d\n",
                      (int)seed, gap, resumed - start, at - start);
        assert_int_equal(adopted, 1);
        assert_true(gap > 0 && resumed > 0);
        assert_true(at - resumed >= 3); /* EPISODE_GAP */
        bw_pf_destroy(pf);
    }
    bw_pf_ws_destroy(ws);
}

/*
 * A day without its daily pattern (5-minute data, high from 09:00 to 18:00,
 * on day 8 flat at the low level all day, as NAB's art_daily_nojump): the
 * missing high phase is flagged from its onset until the episode is
 * adopted, and the adopted change teaches the daily profile nothing for a
 * day from the episode's start, so the next days' normal high phases are
 * not flagged (before the hold the profile learned the flat afternoon and
 * the next day's afternoon read as a shift up). A run split by save/load
 * during the hold is bit-identical.
 */
#define DAY5 288
static double square_day(int t, noise_t *nz, int missing_day)
{
    int ph = t % DAY5, hi = ph >= 108 && ph < 216; /* 09:00-18:00 */

    if (t / DAY5 == missing_day) {
        hi = 0;
    }
    return (hi ? 80.0 : 20.0) + noise_next(nz);
}

/* The seasonal tests' filter: the defaults with a daily profile of `bins`
 * bins, its workspace and Gaussian noise. */
typedef struct {
    bw_config_t cfg;
    bw_pf_t *pf;
    bw_pf_ws_t *ws;
    noise_t nz;
} daily_t;

/* The filter and noise of @p d, from its config as set. */
static void daily_start(daily_t *d, uint64_t seed, uint64_t noise_seed)
{
    d->pf = bw_pf_new(&d->cfg.model.pf, seed, NULL, 0);
    d->ws = bw_pf_ws_new(&d->cfg.model.pf);
    d->nz = (noise_t){.family = FAM_GAUSS};
    bw_rng_seed(&d->nz.rng, noise_seed);
}

static void daily_open(daily_t *d, int bins, uint64_t seed, uint64_t noise_seed)
{
    bw_config_defaults(&d->cfg);
    d->cfg.model.pf.daily.bins = bins;
    daily_start(d, seed, noise_seed);
}

static void daily_close(daily_t *d)
{
    bw_pf_ws_destroy(d->ws);
    bw_pf_destroy(d->pf);
}

/* daily_open with novel_episodes set as given. */
static void daily_open_novel(daily_t *d, uint64_t seed, uint64_t noise_seed,
                             bool novel)
{
    bw_config_defaults(&d->cfg);
    d->cfg.model.pf.daily.bins = 288;
    d->cfg.model.pf.novel_episodes = novel;
    daily_start(d, seed, noise_seed);
}

static void test_missing_day_does_not_teach_profile(void **state)
{
    daily_t d;
    bw_pf_t *copy;
    const int day = 8, onset = day * DAY5 + 108;
    int adopted_at = -1, flagged_missing = 0, flagged_after = 0;
    bw_wbuf_t w = {0};
    bw_rbuf_t rd;

    (void)state;
    daily_open(&d, DAY5, 21, 17);
    copy = bw_pf_new(&d.cfg.model.pf, 22, NULL, 0);
    for (int t = 0; t < 11 * DAY5; t++) {
        bw_pf_out_t out, oc;
        double y = square_day(t, &d.nz, day);
        int64_t ts = (int64_t)t * 300000;
        bw_pf_update(d.pf, d.ws, ts, y, &out);
        if (copy != NULL && adopted_at >= 0) {
            bw_pf_update(copy, d.ws, ts, y, &oc);
            assert_memory_equal(&out, &oc, sizeof(out));
        }
        if (out.adopted && adopted_at < 0) {
            adopted_at = t; /* split the run inside the hold */
            assert_int_equal(bw_pf_save(d.pf, &w), BW_OK);
            bw_rbuf_init(&rd, w.data, w.len);
            assert_int_equal(bw_pf_load(copy, &rd), BW_OK);
        }
        if (t >= onset + 3 && adopted_at < 0) {
            flagged_missing += out.p_anomaly >= 0.99;
        }
        if (t >= (day + 1) * DAY5) {
            flagged_after += out.p_anomaly >= 0.99;
        }
    }
    print_message("missing high phase: adopted at +%d events, flagged %d of "
                  "%d before; the next two days: %d events flagged\n",
                  adopted_at - onset, flagged_missing, adopted_at - onset - 3,
                  flagged_after);
    assert_true(adopted_at > onset);
    assert_true(flagged_missing >= (adopted_at - onset - 3) * 9 / 10);
    assert_true(flagged_after <= 2);
    bw_wbuf_free(&w);
    daily_close(&d);
    bw_pf_destroy(copy);
}

/*
 * A lasting change adopted on the daily profile's first applied day
 * (`min_cycles: 1`, one-minute data, 96 bins, a daily sine of 4 noise sds;
 * a rise of 9 noise sds from 01:00 of day 2, as the demo's latency
 * regression): the profile learns its bins at once there, from their
 * deviations against the baseline (the mean of the bins' latest values).
 * The adopted change moves that baseline with the level (pf.c,
 * shift_learning); without it the baseline lagged by the five sixths of
 * the day the episode had not covered, the bins visited next learned the
 * lag as their shape on top of the moved level, and `expected` rose 5
 * noise sds above the values within three events, flagged as a drop.
 * Measured: adopted once, at +241 events, then 0 of 298 events flagged
 * and `expected` at most 1.48 noise sds from the level (without the
 * shift 232 of the 297 events after the first adoption were flagged,
 * as a drop that was adopted in turn at +527, and `expected` was up to
 * 5.24 sds off). Asserted: adopted once, at most 2 flagged, within 2
 * noise sds.
 */
static void test_adopted_on_profile_first_day(void **state)
{
    bw_config_t cfg;
    bw_pf_t *pf;
    bw_pf_ws_t *ws;
    noise_t nz = {.family = FAM_GAUSS};
    const int rise = 1440 + 60;
    const double sd = 0.04;
    int at = -1, flagged_after = 0, after = 0, adoptions = 0;
    double dev = 0.0;

    (void)state;
    bw_config_defaults(&cfg);
    cfg.model.pf.daily.bins = 96;
    cfg.model.pf.daily.min_cycles = 1;
    pf = bw_pf_new(&cfg.model.pf, 5, NULL, 0);
    ws = bw_pf_ws_new(&cfg.model.pf);
    bw_rng_seed(&nz.rng, 19);
    for (int t = 0; t < rise + 540; t++) {
        bw_pf_out_t out;
        double mean = 4.7 + 4.0 * sd * sin(2.0 * M_PI * t / 1440.0) +
                      (t >= rise ? 9.0 * sd : 0.0);
        bw_pf_update(pf, ws, (int64_t)t * 60000, mean + sd * noise_next(&nz),
                     &out);
        if (out.adopted) {
            at = at < 0 ? t : at;
            adoptions++;
        } else if (at >= 0) {
            after++;
            flagged_after += out.p_anomaly >= 0.99;
            dev = fmax(dev, fabs(out.expected - mean) / sd);
        }
    }
    print_message("adopted on the profile's first day at +%d events; after "
                  "it %d of %d flagged, expected at most %.2f noise sds from "
                  "the level\n",
                  at - rise, flagged_after, after, dev);
    assert_true(at > rise);
    assert_int_equal(adoptions, 1);
    assert_true(flagged_after <= 2);
    assert_true(dev <= 2.0);
    bw_pf_ws_destroy(ws);
    bw_pf_destroy(pf);
}

/*
 * A dip before the daily profile applies (one-minute data, a daily sine of
 * 8 noise sds, 17 sds down for 75 minutes on day 2, as the fleet's
 * level_dip): its onset is found (p >= 1/2), and its values do not teach
 * the profile, so day 3, the profile's first, does not read the same
 * hour's normal values as a shift up (without the excursion guard: the
 * profile predicted the dip again and day 3 was flagged for about an
 * hour). The dip reaches levels the first day's trough visited (its noise
 * left values in the kernel: p 0.77 at its onset, then followed), so it is
 * a change to a visited level, onset-only, with or without novel_episodes,
 * and the excursion guard keeps it out of the profile; both ways are
 * asserted. (A dip to an unvisited level is an episode, which teaches the
 * young profile nothing either: test_excursion_baseline_from_its_phase.)
 */
#define DAY1 1440
/* One-minute data: 40 with a daily sine of 8 noise sds. */
static double sine_day(int t, noise_t *nz)
{
    return 40.0 + 8.0 * sin(2 * M_PI * t / DAY1) + noise_next(nz);
}

static void young_dip(bool novel)
{
    daily_t d;
    const int dip = DAY1 + 600, len = 75;
    int day3 = 0, day3_other = 0;
    double onset = 0.0;

    daily_open_novel(&d, 31, 23, novel);
    for (int t = 0; t < 3 * DAY1; t++) {
        bw_pf_out_t out;
        double y =
            sine_day(t, &d.nz) + (t >= dip && t < dip + len ? -17.0 : 0.0);
        bw_pf_update(d.pf, d.ws, (int64_t)t * 60000, y, &out);
        if (t >= dip && t < dip + 3) {
            onset = fmax(onset, out.p_anomaly);
        }
        if (t >= 2 * DAY1) {
            int same = t >= dip + DAY1 - 30 && t < dip + DAY1 + len + 30;
            day3 += same && out.p_anomaly >= 0.99;
            day3_other += !same && out.p_anomaly >= 0.99;
        }
    }
    print_message("young dip (novel_episodes %d): onset p %.3f; day 3: %d "
                  "events flagged in the dip's hours, %d elsewhere\n",
                  novel, onset, day3, day3_other);
    assert_true(onset >= 0.5); /* what starts the excursion */
    assert_true(day3 <= 2);
    daily_close(&d);
}

static void test_young_dip_does_not_teach_profile(void **state)
{
    (void)state;
    young_dip(true);
    young_dip(false);
}

/*
 * A lasting change on day 2, before the daily profile applies (one-minute
 * data, the daily sine of 8 noise sds above, Gaussian noise): 6 noise sds
 * up at the cycle's peak (06:00) or down at its trough (18:00) for 90
 * minutes, a level the first day never visited. With novel_episodes (the
 * default) such a change is an abnormal episode as it would be once the
 * profile applies: flagged within 3 events and on at least 90% of its
 * events over 10 runs each way (the requirement for 6-sd shifts).
 * Without it, changes before the profile are onset-only and the filter
 * follows the level: the same runs are flagged on a small share of their
 * events, which is what the contrast asserts (at most half). The rest of
 * day 2, the daily cycle over levels the first day visited, is not flagged
 * (at most 2 alerts per run outside the change and the half hour after).
 * Measured: printed; the README's *Day 2* figures are the fleet's.
 */
typedef struct {
    int flagged, span, late, other;
} day2_t;

/* Two days of the sine through the opened filter @p d, @p size added for
 * 90 minutes from @p at (none if 0), counted into @p r: the change's
 * events and those flagged, a first flag @p delay events or more after
 * its start as late, and alerts on day 2 outside the change and the half
 * hour after (all of day 2 without one). Closes @p d. */
static void day2_run(daily_t *d, int at, double size, int delay, day2_t *r)
{
    const int len = 90;
    int first = -1;

    for (int t = 0; t < 2 * DAY1; t++) {
        bw_pf_out_t out;
        int in = size != 0.0 && t >= at && t < at + len;
        double y = sine_day(t, &d->nz) + (in ? size : 0.0);
        bw_pf_update(d->pf, d->ws, (int64_t)t * 60000, y, &out);
        if (in) {
            r->span++;
            r->flagged += out.p_anomaly >= 0.99;
            first = first < 0 && out.p_anomaly >= 0.99 ? t - at : first;
        } else if (t >= DAY1 &&
                   (size == 0.0 || t < at || t >= at + len + 30)) {
            r->other += out.p_anomaly >= 0.99;
        }
    }
    r->late += size != 0.0 && (first < 0 || first >= delay);
    daily_close(d);
}

static void day2_change(bool novel, int at, double size, uint64_t seed,
                        day2_t *r)
{
    daily_t d;

    daily_open_novel(&d, seed, seed + 100, novel);
    day2_run(&d, at, size, 3, r);
}

static void test_day2_unvisited_level_is_held(void **state)
{
    day2_t on = {0}, off = {0};
    int other_max = 0;

    (void)state;
    for (int k = 0; k < 20; k++) {
        int up = k % 2 == 0, at = DAY1 + (up ? 360 : 1080) - 45;
        int before = on.other;
        day2_change(true, at, up ? 6.0 : -6.0, 700 + k, &on);
        other_max = on.other - before > other_max ? on.other - before
                                                  : other_max;
        day2_change(false, at, up ? 6.0 : -6.0, 700 + k, &off);
    }
    print_message("day 2, 6-sd changes to unvisited levels for 90 minutes "
                  "(20 runs): flagged %d of %d events (%d runs later than 3 "
                  "events), %d alerts elsewhere on day 2 (at most %d in a "
                  "run); onset-only (novel_episodes false): %d of %d, %d "
                  "late\n",
                  on.flagged, on.span, on.late, on.other, other_max,
                  off.flagged, off.span, off.late);
    assert_int_equal(on.late, 0);
    assert_true(on.flagged * 10 >= on.span * 9);
    assert_true(other_max <= 2);
    assert_true(off.flagged * 2 <= off.span);
}

/*
 * A change on day 2 to a level the first day reached only at other hours
 * (one-minute data, the daily sine of 8 noise sds above): 16 noise sds up
 * from the trough (from 17:15) to the peak's level, which the first day
 * held around 06:00, or down from the peak (from 05:15) to the trough's,
 * for 90 minutes. The whole memory has values there, so by level alone it
 * is a return to a familiar state, onset-only before the profile applies
 * (novel_phase_ms 0: no event flagged). The values within novel_phase_ms
 * of this time on day 1 have none (other_hours), so with the default the
 * onset is still read as a likely return (p about 0.1: one tail value
 * lands on such levels too), but the visit is held unconfirmed and goes on
 * with the chance 1/2 per event that no stay at this hour supports, and
 * the episode takes over: measured, 18 of 20 runs flagged from their
 * 10th-19th event to the end, 1,382 of 1,800 events; in the other two the
 * episode's particles died out at the second event and the visit's level
 * became the normal particles' (rebase_level finds no normal level left
 * but the visit's). Asserted: at least 70% of the events, at most 4 runs
 * unflagged by the 20th event, and at most half with novel_phase_ms 0. The
 * rest of day 2 is not flagged (at most 2 alerts per run outside the
 * change and the half hour after; measured 0). And t(3) noise on the same
 * cycle with no change, whose tail values land on levels the cycle holds
 * at other hours, raises no more day-2 alerts with the rule than without
 * it, plus 2 over the 10 runs (measured 10 and 11): a tail value's visit
 * ends at the next event, before holding it costs anything.
 */
#define OTHER_HOURS_DELAY 20 /* events: the visit is disbelieved by then */
static void other_hours_run(double phase_ms, int family, int at, double size,
                            uint64_t seed, day2_t *r)
{
    daily_t d;

    bw_config_defaults(&d.cfg);
    d.cfg.model.pf.daily.bins = 288;
    d.cfg.model.pf.novel_phase_ms = phase_ms;
    daily_start(&d, seed, seed + 100);
    d.nz.family = family;
    day2_run(&d, at, size, OTHER_HOURS_DELAY, r);
}

static void test_day2_level_of_other_hours_is_held(void **state)
{
    const double hour = 3600000.0;
    day2_t on = {0}, off = {0}, t3_on = {0}, t3_off = {0};
    int other_max = 0;

    (void)state;
    for (int k = 0; k < 20; k++) {
        int up = k % 2 == 0, at = DAY1 + (up ? 1080 : 360) - 45;
        int before = on.other;
        other_hours_run(hour, FAM_GAUSS, at, up ? 16.0 : -16.0, 900 + k, &on);
        other_max = on.other - before > other_max ? on.other - before
                                                  : other_max;
        other_hours_run(0.0, FAM_GAUSS, at, up ? 16.0 : -16.0, 900 + k, &off);
    }
    for (int k = 0; k < 10; k++) {
        other_hours_run(hour, FAM_T3, 0, 0.0, 950 + k, &t3_on);
        other_hours_run(0.0, FAM_T3, 0, 0.0, 950 + k, &t3_off);
    }
    print_message("day 2, 16-sd changes to levels of other hours for 90 "
                  "minutes (20 runs): flagged %d of %d events (%d runs "
                  "later than 20 events), %d alerts elsewhere on day 2 (at "
                  "most %d in a run); any hour counting (novel_phase_ms "
                  "0): %d of %d, %d late; t(3) noise, no change (10 runs): "
                  "%d day-2 alerts, %d with any hour counting\n",
                  on.flagged, on.span, on.late, on.other, other_max,
                  off.flagged, off.span, off.late, t3_on.other,
                  t3_off.other);
    assert_true(on.late <= 4);
    assert_true(on.flagged * 10 >= on.span * 7);
    assert_true(other_max <= 2);
    assert_true(off.flagged * 2 <= off.span);
    assert_true(t3_on.other <= t3_off.other + 2);
}

/*
 * Determinism through a day-2 episode: the rise of
 * test_excursion_baseline_from_its_phase (24 sds up from 21:30 on day 2,
 * an unvisited level, to 00:45 on day 3) cut by save/load inside the
 * episode on day 2 and just before the profile starts to apply, then
 * continued from the loaded copy: bit-identical output (whether a level
 * is unvisited is read from the memory, which is state).
 */
static void test_day2_episode_restores_identically(void **state)
{
    const int start = 2 * DAY1 - 150, end = 2 * DAY1 + 45;
    const int cuts[] = {start + 20, 2 * DAY1 - 1};

    (void)state;
    for (int c = 0; c < 2; c++) {
        daily_t d, e;
        bw_wbuf_t w = {0};
        bw_rbuf_t rd;
        bool saved = false;

        daily_open(&d, 288, 37, 29);
        daily_open(&e, 288, 37, 29);
        for (int t = 0; t < end + 120; t++) {
            bw_pf_out_t oa, ob;
            double y =
                sine_day(t, &d.nz) + (t >= start && t < end ? 24.0 : 0.0);
            bw_pf_update(d.pf, d.ws, (int64_t)t * 60000, y, &oa);
            if (t == cuts[c]) {
                assert_true(oa.p_abnormal >= 0.5); /* inside the episode */
                assert_int_equal(bw_pf_save(d.pf, &w), BW_OK);
                bw_rbuf_init(&rd, w.data, w.len);
                assert_int_equal(bw_pf_load(e.pf, &rd), BW_OK);
                saved = true;
            } else if (saved) {
                bw_pf_update(e.pf, e.ws, (int64_t)t * 60000, y, &ob);
                assert_memory_equal(&oa, &ob, sizeof(oa));
            }
        }
        assert_true(saved);
        bw_wbuf_free(&w);
        daily_close(&d);
        daily_close(&e);
    }
}

/*
 * A lasting shift on a seasonal series with a settled profile (the square
 * day above, 10 noise sds up from day 8, 09:30, for good): flagged until
 * adopted, once; the adopted change becomes the level of the profile's
 * baseline from its start (give_held), and the next two days are
 * not flagged. (At this size the baseline's catch-up is not what keeps
 * them quiet, the hold is; test_quality is where leaving the baseline at
 * the old level shows: 13.5 false alarms per 10,000 events without the
 * catch-up, 7.3 with.)
 */
static void test_seasonal_shift_is_adopted_cleanly(void **state)
{
    daily_t d;
    const int day = 8, onset = day * DAY5 + 114;
    int adopted = 0, flagged_after = 0;

    (void)state;
    daily_open(&d, DAY5, 41, 19);
    for (int t = 0; t < 11 * DAY5; t++) {
        bw_pf_out_t out;
        double y = square_day(t, &d.nz, -1) + (t >= onset ? 10.0 : 0.0);
        bw_pf_update(d.pf, d.ws, (int64_t)t * 300000, y, &out);
        adopted += out.adopted;
        if (t >= (day + 1) * DAY5) {
            flagged_after += out.p_anomaly >= 0.99;
        }
    }
    print_message("lasting seasonal shift: adopted %d time(s); the next two "
                  "days: %d events flagged\n",
                  adopted, flagged_after);
    assert_int_equal(adopted, 1);
    assert_true(flagged_after <= 2);
    daily_close(&d);
}

/*
 * A rise that starts before the daily profile applies and ends after it
 * (one-minute data, a daily sine of 8 noise sds, 16 sds up from 23:30 on
 * day 2 to 01:00 on day 3): flagged from when the profile applies until it
 * ends, as an abnormal episode counted from its start, and not after.
 * The rise goes above anything the first day visited, so by default it is
 * an abnormal episode from its start (novel_episodes). Without that
 * (novel_episodes false), changes before the profile are onset-only: the
 * filter follows the rise, and the excursion becomes an episode when the
 * profile applies. Without the conversion 1 of the 57 events was flagged:
 * the filter's level was the baseline (and where the old level is not
 * familiar, the return then reads as a drop until adopted: the fleet's
 * seed 10). Both ways are asserted.
 */
static void excursion_across_profile_start(bool novel)
{
    daily_t d;
    const int start = 2 * DAY1 - 30, end = 2 * DAY1 + 60;
    int during = 0, after = 0;
    int64_t since = -1;

    daily_open_novel(&d, 37, 29, novel);
    for (int t = 0; t < 2 * DAY1 + 420; t++) {
        bw_pf_out_t out;
        double y = sine_day(t, &d.nz) + (t >= start && t < end ? 16.0 : 0.0);
        bw_pf_update(d.pf, d.ws, (int64_t)t * 60000, y, &out);
        if (t >= 2 * DAY1 + 3 && t < end) {
            during += out.p_anomaly >= 0.99;
            if (t == 2 * DAY1 + 3) {
                since = out.since_ms;
            }
        }
        if (t >= end + 3) {
            after += out.p_anomaly >= 0.99;
        }
    }
    print_message("rise across the profile's start (novel_episodes %d): "
                  "flagged %d of %d events after it applies, since %+lld "
                  "min; %d flagged in the 6 hours after it ended\n",
                  novel, during, end - 2 * DAY1 - 3,
                  since < 0 ? 0LL : (long long)(since / 60000 - start), after);
    assert_true(during >= (end - 2 * DAY1 - 3) * 9 / 10);
    assert_true(since >= (int64_t)start * 60000 &&
                since <= (int64_t)(start + 3) * 60000);
    assert_true(after <= 2);
    daily_close(&d);
}

static void test_excursion_across_profile_start(void **state)
{
    (void)state;
    excursion_across_profile_start(true);
    excursion_across_profile_start(false);
}

/*
 * An excursion just short of adopt_after_ms when the profile starts to
 * apply (novel_episodes false: 24 sds up from 238 minutes before it)
 * converts to an episode whose particles entered it there: adoption waits
 * for EPISODE_GAP + 1 abnormal events in a row, as for any episode that
 * re-entered (the excursion's own events had counted as such: adopted at
 * the conversion's third event, 2 after it).
 */
static void test_old_excursion_adopted_after_conversion(void **state)
{
    daily_t d;
    const int start = 2 * DAY1 - 238, end = 2 * DAY1 + 120;
    int adopted_at = -1, first = -1;

    (void)state;
    daily_open_novel(&d, 37, 29, false);
    for (int t = 0; t < end && adopted_at < 0; t++) {
        bw_pf_out_t out;
        double y = sine_day(t, &d.nz) + (t >= start ? 24.0 : 0.0);
        bw_pf_update(d.pf, d.ws, (int64_t)t * 60000, y, &out);
        if (first < 0 && out.since_ms >= 0) {
            first = t;
        }
        if (out.adopted) {
            adopted_at = t;
        }
    }
    print_message("excursion converted at event %+d of the profile, "
                  "adopted %d after\n",
                  first - 2 * DAY1, adopted_at - first);
    assert_true(first >= 2 * DAY1);
    assert_true(adopted_at >= first + 3); /* EPISODE_GAP */
    daily_close(&d);
}

/*
 * The same, begun where the profile is far from its value at the phase
 * where it starts to apply: 24 sds up from 21:30 on day 2 (profile -4.9
 * sds there) to 00:45 on day 3 (the profile applies at 00:00, +0). The
 * baseline the episode keeps is the level the rise left less the profile
 * at 21:30, the phase where it began, so `expected` says what normal
 * would be: for an excursion converted at the profile's start
 * (novel_episodes false; excursion_to_episode), and for an episode held
 * since 21:30 (novel_episodes; episode_base_shift). Taken less the
 * profile at 00:00 instead, it lay 4.9 sds low (measured: expected up to
 * 5.79 sds from normal for the excursion, 5.77 for the episode; 0.76 and
 * 0.75 with the fix).
 */
static void excursion_baseline_from_its_phase(bool novel)
{
    daily_t d;
    const int start = 2 * DAY1 - 150, end = 2 * DAY1 + 45;
    int during = 0, after = 0;
    double worst = 0.0;

    daily_open_novel(&d, 37, 29, novel);
    for (int t = 0; t < 2 * DAY1 + 420; t++) {
        bw_pf_out_t out;
        double normal = 40.0 + 8.0 * sin(2 * M_PI * t / DAY1);
        double y = sine_day(t, &d.nz) + (t >= start && t < end ? 24.0 : 0.0);
        bw_pf_update(d.pf, d.ws, (int64_t)t * 60000, y, &out);
        if (t >= 2 * DAY1 + 3 && t < end) {
            during += out.p_anomaly >= 0.99;
            worst = fmax(worst, fabs(out.expected - normal));
        }
        if (t >= end + 3) {
            after += out.p_anomaly >= 0.99;
        }
    }
    print_message("rise from 21:30 across the profile's start "
                  "(novel_episodes %d): flagged %d of %d events after it "
                  "applies, expected at most %.2f noise sds from normal; %d "
                  "flagged in the 6 hours after it ended\n",
                  novel, during, end - 2 * DAY1 - 3, worst, after);
    assert_true(during >= (end - 2 * DAY1 - 3) * 9 / 10);
    assert_true(worst < 2.0);
    assert_true(after <= 2);
    daily_close(&d);
}

static void test_excursion_baseline_from_its_phase(void **state)
{
    (void)state;
    excursion_baseline_from_its_phase(true);
    excursion_baseline_from_its_phase(false);
}

/*
 * The block model (block.c) filters block means of the de-seasonalised
 * values, so when the daily profile starts to apply its frame must move
 * with the filter's. A daily cosine of 8 noise sds is at its peak at
 * midnight, when the profile starts to apply on day 3: without the move,
 * the block means dropped by the profile's value there (about 8 sds) and
 * 4 of the 150 blocks of the next 6 hours (5 noise seeds) were reported as
 * sustained anomalies, as were the fleet's CPU series at 00:11 of day 3.
 * No incident here: no block may be flagged.
 */
static void test_profile_start_moves_block_model(void **state)
{
    int flagged = 0, blocks = 0;

    (void)state;
    for (uint64_t k = 0; k < 5; k++) {
        daily_t d;

        daily_open(&d, 288, 51 + k, 61 + k);
        for (int t = 0; t < 2 * DAY1 + 360; t++) {
            bw_pf_out_t out;
            double y =
                40.0 + 8.0 * cos(2 * M_PI * t / DAY1) + noise_next(&d.nz);
            bw_pf_update(d.pf, d.ws, (int64_t)t * 60000, y, &out);
            if (t >= 2 * DAY1 && out.block_closed) {
                blocks++;
                flagged += out.p_collective >= 0.5;
            }
        }
        daily_close(&d);
    }
    print_message("profile start: %d of %d blocks in the next 6 hours "
                  "flagged (5 seeds)\n",
                  flagged, blocks);
    assert_true(blocks > 0);
    assert_int_equal(flagged, 0);
}

/*
 * AR(1) noise across the profile's start. When the daily profile starts to
 * apply, the noise's autocorrelation is measured again against the model
 * that has it (a cycle the level lagged read as correlation), from the
 * remembered values in the new frame (pf.c, ar_from_memory). Set to 0
 * there until 30 new pairs were in, the correlated noise of the next half
 * hour read as level changes (the fleet: AR(1) CPU, latency and egress
 * series flagged from 00:09-00:14 of day 3, up to 134 rows; held-out
 * seeds, 8 episodes). One-minute data, a daily sine of 8 noise sds, AR(1)
 * noise with phi 0.8 and unit variance, 10 noise seeds; no incident, so
 * nothing may be flagged in the 6 hours after the profile starts (events
 * flagged: 19 of 3,600 with the reset to 0, 0 re-measured).
 */
static void test_profile_start_remeasures_ar(void **state)
{
    const double phi = 0.8;
    int flagged = 0;

    (void)state;
    for (uint64_t k = 0; k < 10; k++) {
        daily_t d;
        double e = 0.0;

        daily_open(&d, 288, 91 + k, 101 + k);
        for (int t = 0; t < 2 * DAY1 + 360; t++) {
            bw_pf_out_t out;
            e = phi * e + sqrt(1.0 - phi * phi) * bw_rng_gauss(&d.nz.rng);
            bw_pf_update(d.pf, d.ws, (int64_t)t * 60000,
                         40.0 + 8.0 * sin(2 * M_PI * t / DAY1) + e, &out);
            if (t >= 2 * DAY1) {
                flagged += out.p_anomaly >= 0.99;
            }
        }
        daily_close(&d);
    }
    print_message("AR(1) noise, profile start: %d of %d events in the next "
                  "6 hours flagged (10 seeds)\n",
                  flagged, 10 * 360);
    assert_int_equal(flagged, 0);
}

/*
 * The re-measured coefficient against the truth. AR(1) noise with phi 0,
 * 0.5 and 0.8 (unit variance) on a daily sine of 8 noise sds, one-minute
 * data; at the first event with the profile applied, phi is read from the
 * 2,016 remembered values in the new frame (pf.c, ar_from_memory: phi =
 * 1 + 2 r, r the lag-1 autocorrelation of their first differences). Those
 * values are in-sample residuals of the profile's bins, which were
 * estimated from them, so the estimate is biased low (measured: 0.39 for
 * 0.5, 0.58 for 0.8; from the raw values it is unbiased, 0.49 and 0.79,
 * but a cycle's own steps then read as correlation: NAB CV -1.5). Low is
 * the side of the behaviour before (0): asserted, over 10 noise seeds,
 * that the mean never exceeds the truth by more than 3 standard errors
 * (an estimate above it would hide changes, test_quality), and that it
 * recovers at least half of a correlation that is there.
 */
static void test_profile_start_ar_estimate(void **state)
{
    static const double truth[] = {0.0, 0.5, 0.8};

    (void)state;
    for (int c = 0; c < 3; c++) {
        const double phi = truth[c];
        double sum = 0.0, sum2 = 0.0;
        for (uint64_t k = 0; k < 10; k++) {
            daily_t d;
            double e = 0.0, got = -1.0;
            daily_open(&d, 288, 111 + k, 121 + k);
            for (int t = 0; t <= 2 * DAY1; t++) {
                bw_pf_out_t out;
                e = phi * e + sqrt(1.0 - phi * phi) * bw_rng_gauss(&d.nz.rng);
                bw_pf_update(d.pf, d.ws, (int64_t)t * 60000,
                             40.0 + 8.0 * sin(2 * M_PI * t / DAY1) + e, &out);
                if (out.frame & 1) {
                    got = bw__pf_ar(d.pf);
                    break;
                }
            }
            assert_true(got >= 0.0);
            sum += got;
            sum2 += got * got;
            daily_close(&d);
        }
        print_message("AR(1) phi %.1f: re-measured at the profile's start "
                      "%.3f (mean of 10)\n",
                      phi, sum / 10);
        assert_true(sum / 10 <=
                    phi + 3.0 * sqrt(sum2 / 10 - sum * sum / 100) / sqrt(10.0));
        assert_true(sum / 10 >= 0.5 * phi);
    }
}

/*
 * Day 2, before the daily profile applies: the filter's changes to a
 * level the first day visited are onset-only (novel_episodes holds only
 * unvisited ones), so such a change is flagged at its onset and then
 * followed. The block model sees the change after that (its mean moves
 * by the shift); it must not stay silent because the onset was flagged.
 * A shift of 12 noise sds for 90 minutes at 00:00 and at 12:00 on day 2
 * (daily sine of 8 sds, crossing its mean there), 10 noise seeds each:
 * the onset's p is at least 1/2 but mostly below 0.99 (a level the cycle
 * visits), and the block model then reported it. Found (max of p_anomaly
 * and p_collective >= 0.99 during the shift): 20 of 20; with the block's
 * report held back by the flagged onset, 4 of 20 (1 and 3), as the
 * fleet's day-2 incidents (held-out seeds: 10 of 13 misses found).
 */
static void test_day2_shift_reported_by_blocks(void **state)
{
    int found = 0, onset_flagged = 0;

    (void)state;
    for (int at = 0; at < DAY1; at += DAY1 / 2) {
        for (uint64_t k = 0; k < 10; k++) {
            daily_t d;
            const int start = DAY1 + at, len = 90;
            double best = 0.0;

            daily_open(&d, 288, 71 + k, 81 + k);
            for (int t = 0; t < start + len; t++) {
                bw_pf_out_t out;
                double y = sine_day(t, &d.nz) + (t >= start ? 12.0 : 0.0);
                bw_pf_update(d.pf, d.ws, (int64_t)t * 60000, y, &out);
                onset_flagged += t == start && out.p_anomaly >= 0.5;
                if (t >= start) {
                    best = fmax(best, fmax(out.p_anomaly, out.p_collective));
                }
            }
            found += best >= 0.99;
            daily_close(&d);
        }
    }
    print_message("day-2 shifts of 12 sds: onset p >= 0.5 on %d of 20, "
                  "found on %d of 20\n",
                  onset_flagged, found);
    assert_true(found >= 18);
}

/* A run cut by save/load at @p cut and continued from the loaded copy
 * gives bit-identical output. A 5-sd rise from event 700, and four values
 * back at the baseline from event 740: a gap in the episode that outlasts
 * EPISODE_GAP, so a copy that lost the gap's count would go on with the
 * episode where the original ends it. */
static void identity_run(int cut, bool in_gap)
{
    bw_config_t cfg = episode_cfg();
    bw_pf_t *a = bw_pf_new(&cfg.model.pf, 11, NULL, 0);
    bw_pf_t *b = bw_pf_new(&cfg.model.pf, 11, NULL, 0);
    bw_pf_ws_t *ws = bw_pf_ws_new(&cfg.model.pf);
    noise_t nz = {.family = FAM_GAUSS};
    bw_wbuf_t w = {0};
    bw_rbuf_t rd;
    bool saved = false, resumed = false;

    bw_rng_seed(&nz.rng, 13);
    for (int t = 0; t < 900; t++) {
        bw_pf_out_t oa, ob;
        double y = 50.0 + 2.0 * noise_next(&nz) + (t >= 700 ? 10.0 : 0.0);
        if (t >= 740 && t < 744) {
            y = 50.0;
        }
        bw_pf_update(a, ws, (int64_t)t * 60000, y, &oa);
        if (t >= 740 && t < 744) { /* the gap, longer than EPISODE_GAP */
            assert_true(oa.p_abnormal < 0.5);
        }
        if (t >= 744 && oa.since_ms >= 0 && !resumed) {
            /* the episode after it is a new one */
            assert_true(oa.since_ms >= (int64_t)744 * 60000);
            resumed = true;
        }
        if (t == cut) {
            /* in the episode, or in its gap (no episode reported) */
            assert_true(in_gap ? oa.p_abnormal < 0.5 && oa.since_ms < 0
                               : oa.p_abnormal >= 0.5);
            assert_int_equal(bw_pf_save(a, &w), BW_OK);
            bw_rbuf_init(&rd, w.data, w.len);
            assert_int_equal(bw_pf_load(b, &rd), BW_OK);
            saved = true;
            continue;
        }
        if (saved) {
            bw_pf_update(b, ws, (int64_t)t * 60000, y, &ob);
            assert_memory_equal(&oa, &ob, sizeof(oa));
        }
    }
    assert_true(resumed);
    bw_wbuf_free(&w);
    bw_pf_ws_destroy(ws);
    bw_pf_destroy(a);
    bw_pf_destroy(b);
}

static void test_state_identity_inside_episode(void **state)
{
    (void)state;
    identity_run(720, false);
    identity_run(741, true);
}

/*
 * No phantom episode after a spike (known truth). One-minute AR(1) noise
 * (phi 0.5, unit innovations) on a daily sine of 5, a +6 shift over
 * events 3000-3089, whose values make a level 6 above familiar, a -5 dip
 * over 4200-4259, and from event 500 a spike of 6, 8 or 10 every 997
 * events (none within 300 events before either change), four days, the
 * shipped defaults. Such a spike may read as a recurrent jump to the
 * familiar level (a visit, the particle's baseline at the spike's value);
 * when the next value is back, a particle that entered an episode from
 * that visit kept the baseline, so its abnormal level followed the data
 * exactly as the normal particles did, and the family grew by the regimes'
 * priors alone (an episode stays with 1 - 1/120 an event, a normal
 * particle keeps 0.984) until it held the record in a false episode for
 * hours. An episode entered from a visit not yet confirmed is now judged
 * against the normal particles' level (rebase_level). Asserted over 40
 * filter and noise seeds at each size, in the 300 events after each spike
 * (the spike itself left out): no run of more than 2 alerts (single tail
 * values of the noise remain) and no record in an episode (since_ms) for
 * more than 5 events (a spike's own episode is held through a gap of up to
 * 3 events below 1/2). The build before: alert runs of 7, 190 and 37
 * events (278 alerts at size 8); this build: none longer than 1.
 */
#define EPISODE_GAP_EVENTS 3 /* pf.c's EPISODE_GAP */
static double phantom_value(int t, double spike, noise_t *nz)
{
    double v = 100.0 + 5.0 * sin(2 * M_PI * t / 1440.0) +
               noise_next(nz) / sqrt(0.75);
    v += t % 997 == 500 ? spike : 0.0;
    v += t >= 3000 && t < 3090 ? 6.0 : 0.0;
    v -= t >= 4200 && t < 4260 ? 5.0 : 0.0;
    return v;
}

/* The longest run of alerts in the 300 events after a spike (not the
 * spike itself, nor the warm-up); *alerts counts them all, *held is the
 * longest run of events the record spent in an episode there. */
static int after_spikes(uint64_t seed, double spike, int *alerts, int *held)
{
    bw_config_t cfg;
    bw_pf_t *pf;
    bw_pf_ws_t *ws;
    noise_t nz = {.family = FAM_AR1};
    int run = 0, longest = 0, in_ep = 0;

    bw_config_defaults(&cfg);
    pf = bw_pf_new(&cfg.model.pf, seed, NULL, 0);
    ws = bw_pf_ws_new(&cfg.model.pf);
    assert_non_null(pf);
    assert_non_null(ws);
    bw_rng_seed(&nz.rng, 100 + seed);
    *alerts = *held = 0;
    for (int t = 0; t < 4 * 1440; t++) {
        bw_pf_out_t out;
        int since = (t - 500) % 997; /* negative before the first spike */
        bool after, alert;
        assert_int_equal(bw_pf_update(pf, ws, (int64_t)t * 60000,
                                      phantom_value(t, spike, &nz), &out),
                         BW_OK);
        after = since > 0 && since <= 300 && !out.warmup;
        alert = after && out.p_anomaly >= 0.99;
        *alerts += alert;
        run = alert ? run + 1 : 0;
        longest = run > longest ? run : longest;
        in_ep = after && out.since_ms >= 0 ? in_ep + 1 : 0;
        *held = in_ep > *held ? in_ep : *held;
    }
    bw_pf_ws_destroy(ws);
    bw_pf_destroy(pf);
    return longest;
}

static void test_no_phantom_episode_after_spike(void **state)
{
    (void)state;
    for (int k = 0; k < 3; k++) {
        double spike = 6.0 + 2.0 * k;
        int worst = 0, total = 0, held = 0;
        for (uint64_t seed = 1; seed <= 40; seed++) {
            int alerts, h, longest = after_spikes(seed, spike, &alerts, &h);
            worst = longest > worst ? longest : worst;
            held = h > held ? h : held;
            total += alerts;
        }
        print_message("spikes of %g: %d alerts after them in 40 runs, the "
                      "longest run %d; in an episode at most %d events\n",
                      spike, total, worst, held);
        assert_true(worst <= 2);
        assert_true(held <= 2 + EPISODE_GAP_EVENTS);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_episodes_match_enumeration),
        cmocka_unit_test(test_episodes_keep_sustained_shifts_flagged),
        cmocka_unit_test(test_shift_onto_tail_values_stays_flagged),
        cmocka_unit_test(test_spike_flagged_once),
        cmocka_unit_test(test_lasting_change_is_adopted),
        cmocka_unit_test(test_adoption_moves_open_block),
        cmocka_unit_test(test_adoption_with_trend),
        cmocka_unit_test(test_outlier_inside_episode_keeps_its_start),
        cmocka_unit_test(test_no_adoption_as_a_gap_ends),
        cmocka_unit_test(test_missing_day_does_not_teach_profile),
        cmocka_unit_test(test_adopted_on_profile_first_day),
        cmocka_unit_test(test_young_dip_does_not_teach_profile),
        cmocka_unit_test(test_day2_unvisited_level_is_held),
        cmocka_unit_test(test_day2_level_of_other_hours_is_held),
        cmocka_unit_test(test_day2_episode_restores_identically),
        cmocka_unit_test(test_seasonal_shift_is_adopted_cleanly),
        cmocka_unit_test(test_excursion_across_profile_start),
        cmocka_unit_test(test_old_excursion_adopted_after_conversion),
        cmocka_unit_test(test_excursion_baseline_from_its_phase),
        cmocka_unit_test(test_profile_start_moves_block_model),
        cmocka_unit_test(test_profile_start_remeasures_ar),
        cmocka_unit_test(test_profile_start_ar_estimate),
        cmocka_unit_test(test_day2_shift_reported_by_blocks),
        cmocka_unit_test(test_state_identity_inside_episode),
        cmocka_unit_test(test_no_phantom_episode_after_spike),
    };

    gsl_set_error_handler_off();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
