/*
 * Threat fusion: hand-computed cases, monotonicity, the correlated-signal
 * discount, windows and emission.
 */
#include <gsl/gsl_errno.h>

#include "testutil.h"

static bw_fusion_cfg_t fusion_cfg(void)
{
    bw_config_t cfg;
    bw_rule_cfg_t *r;

    bw_config_defaults(&cfg);
    cfg.model.fusion.prior = 0.01;
    cfg.model.fusion.correlation = 0.0;
    cfg.model.fusion.n_rules = 1;
    r = &cfg.model.fusion.rules[0];
    strcpy(r->name, "exfil");
    r->n_signals = 2;
    strcpy(r->signals[0].metric, "auth_failures");
    r->signals[0].detection = 0.9;
    r->signals[0].false_alarm = 0.1;
    r->signals[0].base_rate = 0.01;
    strcpy(r->signals[1].metric, "egress_bytes");
    r->signals[1].detection = 0.6;
    r->signals[1].false_alarm = 0.05;
    r->signals[1].base_rate = 0.01;
    return cfg.model.fusion;
}

/*
 * By hand: p = 0.5 with base rate 0.01 gives lambda = 1 / (1/99) = 99.
 * Signal 0: LR = (0.9*99 + 0.1) / (0.1*99 + 0.9) = 89.2 / 10.8.
 * Signal 1 certain (p -> 1): LR -> d/f = 0.6 / 0.05 = 12.
 * Posterior odds = 0.01/0.99 * 89.2/10.8 * 12.
 */
static void test_hand_computed(void **state)
{
    bw_fusion_cfg_t c = fusion_cfg();
    double p[2] = {0.5, 1.0}, odds = 0.01 / 0.99 * (89.2 / 10.8) * 12.0;
    bw_threat_t t;

    (void)state;
    bw_fusion_combine(&c, &c.rules[0], p, &t);
    assert_float_equal(t.probability, odds / (1 + odds), 1e-9);
    assert_int_equal(t.n_contrib, 2);
    /* ranked by LLR: egress (log 12 = 2.48) before auth (log 8.26 = 2.11) */
    assert_int_equal(t.contrib[0].signal, 1);
    assert_float_equal(t.contrib[0].llr, log(12.0), 1e-9);
    assert_float_equal(t.contrib[1].llr, log(89.2 / 10.8), 1e-9);
    assert_float_equal(t.score, 100 * t.probability, 1e-12);
    /* odds = 0.010101 * 8.2593 * 12 = 1.00113: p = 0.50028, level high */
    assert_float_equal(t.probability, 0.50028, 1e-5);
    assert_int_equal(t.level, BW_LEVEL_HIGH);
}

static void test_no_information(void **state)
{
    bw_fusion_cfg_t c = fusion_cfg();
    double base[2] = {0.01, 0.01}, none[2] = {NAN, NAN};
    bw_threat_t t;

    (void)state;
    bw_fusion_combine(&c, &c.rules[0], base, &t);
    assert_float_equal(t.probability, c.prior, 1e-12);
    bw_fusion_combine(&c, &c.rules[0], none, &t);
    assert_float_equal(t.probability, c.prior, 1e-12);
    assert_int_equal(t.n_contrib, 0);
    /* clearly normal signals lower the threat below the prior */
    base[0] = base[1] = 1e-6;
    bw_fusion_combine(&c, &c.rules[0], base, &t);
    assert_true(t.probability < c.prior);
    {
        double lam = (1e-6 / (1 - 1e-6)) / (0.01 / 0.99);
        double llr = log((0.9 * lam + 0.1) / (0.1 * lam + 0.9)) +
                     log((0.6 * lam + 0.4) / (0.05 * lam + 0.95));
        assert_float_equal(t.llr, llr, 1e-12);
    }
}

static void test_monotone(void **state)
{
    bw_fusion_cfg_t c = fusion_cfg();
    double prev = -1.0;

    (void)state;
    for (int i = 0; i <= 100; i++) {
        double p[2] = {i / 100.0, 0.3};
        bw_threat_t t;
        bw_fusion_combine(&c, &c.rules[0], p, &t);
        assert_true(t.probability >= prev);
        prev = t.probability;
    }
    /* higher prior, higher posterior */
    {
        double p[2] = {0.7, 0.7};
        bw_threat_t a, b;
        bw_fusion_combine(&c, &c.rules[0], p, &a);
        c.prior = 0.05;
        bw_fusion_combine(&c, &c.rules[0], p, &b);
        assert_true(b.probability > a.probability);
    }
}

static void test_correlation_discount(void **state)
{
    bw_fusion_cfg_t c = fusion_cfg();
    double p[2] = {1.0, 1.0};
    bw_threat_t ind, half, full;

    (void)state;
    bw_fusion_combine(&c, &c.rules[0], p, &ind);
    c.correlation = 0.5;
    bw_fusion_combine(&c, &c.rules[0], p, &half);
    c.correlation = 1.0;
    bw_fusion_combine(&c, &c.rules[0], p, &full);
    /* independent: both count; rho=0.5: the weaker at half weight;
     * rho=1: only the strongest (egress, log 12). */
    assert_float_equal(ind.llr, log(12.0) + log(9.0), 1e-6);
    assert_float_equal(half.llr, log(12.0) + 0.5 * log(9.0), 1e-6);
    assert_float_equal(full.llr, log(12.0), 1e-6);
    assert_true(ind.probability > half.probability &&
                half.probability > full.probability);
}

static void test_window_and_emission(void **state)
{
    bw_fusion_cfg_t c = fusion_cfg();
    bw_fusion_t *fu = bw_fusion_new(&c, NULL, 0);
    bw_threat_t t;

    (void)state;
    c.window_ms = 160000;                          /* 16 buckets of 10 s */
    assert_true(bw_fusion_eval(fu, 0, 0, &t));     /* first assessment emits */
    assert_false(bw_fusion_eval(fu, 0, 1000, &t)); /* nothing changed */
    bw_fusion_observe(fu, 0, 0, 5000, 0.99);
    assert_true(bw_fusion_eval(fu, 0, 5000, &t));
    assert_float_equal(t.contrib[0].p, 0.99, 1e-12);
    /* a lower value later does not lower the window maximum */
    bw_fusion_observe(fu, 0, 0, 20000, 0.02);
    bw_fusion_eval(fu, 0, 20000, &t);
    assert_float_equal(t.contrib[0].p, 0.99, 1e-12);
    /* after the window has passed, only the later evidence remains */
    bw_fusion_eval(fu, 0, 170000, &t);
    assert_int_equal(t.n_contrib, 1);
    assert_float_equal(t.contrib[0].p, 0.02, 1e-12);
    bw_fusion_eval(fu, 0, 400000, &t);
    assert_int_equal(t.n_contrib, 0);
    bw_fusion_destroy(fu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_computed),
        cmocka_unit_test(test_no_information),
        cmocka_unit_test(test_monotone),
        cmocka_unit_test(test_correlation_discount),
        cmocka_unit_test(test_window_and_emission),
    };

    gsl_set_error_handler_off();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
