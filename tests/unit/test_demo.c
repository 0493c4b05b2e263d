/*
 * The demo's telemetry with known truth over many seeds (issue #15): the
 * demo's own incidents are 9-16 noise sds, so one seed of it shows little.
 * Here each of NSEEDS seeds gets the same three kinds of incident (a
 * lasting latency regression, an error-rate burst, a security incident on
 * auth failures and egress) in random regions at random times, each sized
 * 3-5 noise sds of its metrics, scored by the engine under the demo's
 * config (config/demo.yaml, as embedded) and judged as the demo judges
 * (src/demo/judge.c: an alert in an incident's region and signal within
 * it or 15 minutes after is its detection, any other alert is false).
 *
 * Asserted, with margins from the binomial error of NSEEDS seeds: the
 * detection rate of each kind, and the share of seeds with any false
 * alarm, each within 3 binomial sds of the rate measured on 200 other
 * seeds (25-224, which the test does not run): latency regressions 111 of
 * 200 found, error bursts 120, security incidents 187; 51 of 200 seeds
 * with a false alarm. False alarms per event are reported, not asserted:
 * they are too overdispersed for a bound at this size (165 of 224 seeds
 * have none, one has 211: one long episode). The seeds are fixed, so the
 * test is deterministic; the margins say what a change of seeds alone may
 * move. (Measured with this build; the rates are low for latency and
 * errors: issue #11's open work, not accepted behaviour.)
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <gsl/gsl_errno.h>

#include "../../src/demo/demo_int.h"
#include "bayeswatch/config.h"
#include "bayeswatch/engine.h"

#define NSEEDS 40
#define LIVE_MIN 360
#define T0_MS 1795478400000LL

/* Rates on seeds 25-224 (see above). */
static const double p_found[DEMO_INCIDENTS] = {111 / 200.0, 120 / 200.0,
                                               187 / 200.0};
static const double p_seed_fa = 51 / 200.0;

/* The fewest (or, @p upper, most) of @p n that rate @p p allows at 3
 * binomial sds. */
static double margin(double p, int n, int upper)
{
    double sd = sqrt(n * p * (1 - p));
    return upper ? n * p + 3 * sd : n * p - 3 * sd;
}

extern const char bw_demo_config[];
extern const size_t bw_demo_config_len;

typedef struct {
    bw_engine_t *eng;
    bw_demo_judge_t judge;
    bw_err_t err;
} run_t;

static int index_of(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i], s) == 0) {
            return i;
        }
    }
    return -1;
}

static int live_minute(int64_t t_ms)
{
    return (int)((t_ms - T0_MS) / 60000) - DEMO_HISTORY_MIN;
}

static void on_threat(void *opaque, const bw_threat_rec_t *t)
{
    run_t *r = opaque;
    int reg = index_of(bw__demo_regions, DEMO_REGIONS, t->entity);
    int live = live_minute(t->time_ms);

    if (reg >= 0 && live >= 0) {
        bw__demo_judge_threat(&r->judge, reg, live, t->threat.level);
    }
}

static void on_event(void *arg, const bw_event_t *ev)
{
    run_t *r = arg;
    bw_score_t sc;
    char errstr[256];
    int reg = index_of(bw__demo_regions, DEMO_REGIONS, ev->region);
    int met = index_of(bw__demo_metrics, DEMO_METRICS, ev->metric);
    int live = live_minute(ev->time_ms);
    bw_err_t err = bw_engine_process(r->eng, ev, &sc, on_threat, r, errstr,
                                     sizeof(errstr));

    if (err != BW_OK) {
        r->err = err;
        return;
    }
    if (live >= 0) {
        bw__demo_judge_score(&r->judge, reg, met, live, &sc);
    }
}

static void test_seeds(void **state)
{
    bw_config_t cfg;
    int hit[DEMO_INCIDENTS] = {0}, n[DEMO_INCIDENTS] = {0};
    double fa = 0, scored = 0;
    int fa_seeds = 0;

    (void)state;
    assert_int_equal(bw_config_load_string(&cfg, "demo.yaml", bw_demo_config,
                                           bw_demo_config_len, stderr),
                     BW_OK);
    for (int s = 1; s <= NSEEDS; s++) {
        bw_demo_gen_t g;
        run_t r = {.err = BW_OK};
        bw__demo_gen_scenario(&g, (uint64_t)s, T0_MS, LIVE_MIN, 3.0, 5.0);
        r.eng = bw_engine_new(&cfg, NULL, 0);
        assert_non_null(r.eng);
        bw__demo_judge_init(&r.judge, g.inc, LIVE_MIN,
                            cfg.engine.alert_threshold);
        for (int m = 0; m < DEMO_HISTORY_MIN + LIVE_MIN; m++) {
            bw__demo_gen_minute(&g, m, on_event, &r);
        }
        assert_int_equal(r.err, BW_OK);
        for (int i = 0; i < DEMO_INCIDENTS; i++) {
            n[i]++;
            hit[i] += r.judge.first_alert[i] >= 0;
            if (r.judge.first_alert[i] < 0) {
                print_message("seed %2d: missed %s\n", s, g.inc[i].name);
            }
        }
        fa += (double)r.judge.false_alarms;
        fa_seeds += r.judge.false_alarms > 0;
        scored += (double)r.judge.live_scores;
        bw_engine_destroy(r.eng);
    }
    print_message("%d seeds, incidents of 3-5 sds: latency %d/%d, errors "
                  "%d/%d, security %d/%d detected; %.0f false alarms in %.0f "
                  "live events (%.2f per 10,000), %d seeds with one\n",
                  NSEEDS, hit[0], n[0], hit[1], n[1], hit[2], n[2], fa, scored,
                  1e4 * fa / scored, fa_seeds);
    for (int i = 0; i < DEMO_INCIDENTS; i++) {
        if (hit[i] < margin(p_found[i], n[i], 0)) {
            fail_msg("incident kind %d: %d of %d found, fewer than %.1f", i,
                     hit[i], n[i], margin(p_found[i], n[i], 0));
        }
    }
    assert_true(fa_seeds <= margin(p_seed_fa, NSEEDS, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seeds),
    };

    gsl_set_error_handler_off();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
