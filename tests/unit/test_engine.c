/*
 * The engine's contract at its boundary: defaulted names, rejected events
 * with precise reasons (models untouched), late events, routing and the
 * threat callback.
 */
#include <gsl/gsl_errno.h>
#include <math.h>
#include <stdlib.h>

#include "bayeswatch/engine.h"
#include <stdio.h>

#include "bayeswatch/buf.h"
#include "testutil.h"

static int threats;

static void on_threat(void *opaque, const bw_threat_rec_t *rec)
{
    (void)opaque;
    assert_string_equal(rec->rule->name, "r");
    threats++;
}

static void load(bw_config_t *cfg)
{
    static const char yaml[] = "engine:\n"
                               "  routes:\n"
                               "    - metric: errors\n"
                               "      model: pooled_count\n"
                               "    - metric: latency\n"
                               "      transform: log\n"
                               "model:\n"
                               "  fusion:\n"
                               "    rules:\n"
                               "      - name: r\n"
                               "        signals:\n"
                               "          - metric: latency\n";
    assert_int_equal(
        bw_config_load_string(cfg, "t", yaml, sizeof(yaml) - 1, stderr), BW_OK);
}

static void test_boundary(void **state)
{
    bw_config_t cfg;
    bw_engine_t *eng;
    bw_engine_stats_t st;
    bw_score_t sc;
    char err[256];
    bw_event_t ev = {.time_ms = 1000, .value = 1.0, .count = NAN};

    (void)state;
    load(&cfg);
    eng = bw_engine_new(&cfg, err, sizeof(err));
    assert_non_null(eng);
    /* NULL names are "default" */
    assert_int_equal(bw_engine_process(eng, &ev, &sc, NULL, NULL, err, 256),
                     BW_OK);
    assert_int_equal(sc.model, BW_MODEL_SERIES);
    /* absurd timestamps */
    ev.time_ms = -1;
    assert_int_equal(bw_engine_process(eng, &ev, &sc, NULL, NULL, err, 256),
                     BW_ERR_RANGE);
    assert_non_null(strstr(err, "outside 1970..9999"));
    ev.time_ms = INT64_MAX;
    assert_int_equal(bw_engine_process(eng, &ev, &sc, NULL, NULL, err, 256),
                     BW_ERR_RANGE);
    /* count metrics need a count, and value <= count */
    ev.time_ms = 2000;
    ev.metric = "errors";
    assert_int_equal(bw_engine_process(eng, &ev, &sc, NULL, NULL, err, 256),
                     BW_ERR_INVAL);
    assert_non_null(strstr(err, "has no count"));
    ev.value = 5, ev.count = 3;
    assert_int_equal(bw_engine_process(eng, &ev, &sc, NULL, NULL, err, 256),
                     BW_ERR_RANGE);
    ev.value = 1, ev.count = 30;
    assert_int_equal(bw_engine_process(eng, &ev, &sc, NULL, NULL, err, 256),
                     BW_OK);
    assert_int_equal(sc.model, BW_MODEL_POOLED_COUNT);
    /* a count near DBL_MAX is refused before it reaches the group's totals
     * (it overflowed them, and every later event of the group was refused) */
    ev.value = 0, ev.count = 1e308;
    assert_int_equal(bw_engine_process(eng, &ev, &sc, NULL, NULL, err, 256),
                     BW_ERR_RANGE);
    assert_non_null(strstr(err, "count 1e+308 beyond"));
    ev.value = 2, ev.count = 30, ev.time_ms = 2050;
    assert_int_equal(bw_engine_process(eng, &ev, &sc, NULL, NULL, err, 256),
                     BW_OK);
    assert_true(isfinite(sc.expected));
    ev.time_ms = 2000;
    /* beyond the models' range: rejected, and the series is not poisoned
     * (one 1e300 used to leave it predicting 1e300 for ever) */
    ev.metric = "cpu";
    ev.count = NAN;
    ev.value = 1.0;
    ev.time_ms = 2100;
    assert_int_equal(bw_engine_process(eng, &ev, &sc, NULL, NULL, err, 256),
                     BW_OK);
    ev.value = 1e300;
    assert_int_equal(bw_engine_process(eng, &ev, &sc, NULL, NULL, err, 256),
                     BW_ERR_RANGE);
    assert_non_null(strstr(err, "beyond the models' range"));
    ev.value = 1.0;
    ev.time_ms = 2500;
    assert_int_equal(bw_engine_process(eng, &ev, &sc, NULL, NULL, err, 256),
                     BW_OK);
    assert_true(fabs(sc.expected - 1.0) < 1e-6);
    ev.time_ms = 2000;
    /* the log transform's domain */
    ev.metric = "latency";
    ev.count = NAN;
    ev.value = 0.0;
    assert_int_equal(bw_engine_process(eng, &ev, &sc, NULL, NULL, err, 256),
                     BW_ERR_RANGE);
    assert_non_null(strstr(err, "transform log"));
    /* scoring a fusion signal reports the first assessment */
    ev.value = 120.0;
    assert_int_equal(
        bw_engine_process(eng, &ev, &sc, on_threat, NULL, err, 256), BW_OK);
    assert_int_equal(threats, 1);
    assert_true(sc.expected > 0.0); /* back on the original scale */
    /* late for its series: reported, not absorbed, no prediction */
    ev.time_ms = 1500;
    assert_int_equal(bw_engine_process(eng, &ev, &sc, NULL, NULL, err, 256),
                     BW_OK);
    assert_true(sc.late);
    assert_true(isnan(sc.expected) && isnan(sc.lower) && isnan(sc.upper));
    assert_true(sc.p_anomaly == 0.0 && !sc.alert);
    bw_engine_stats(eng, &st);
    assert_int_equal(st.late, 1);
    assert_int_equal(st.rejected, 7);
    assert_int_equal(st.events, 6);
    bw_engine_destroy(eng);
}

static int stale_seen;
static char stale_region[64];
static int stale_model;

static void on_stale(void *opaque, const bw_stale_t *st)
{
    (void)opaque;
    stale_seen++;
    snprintf(stale_region, sizeof(stale_region), "%s", st->region);
    stale_model = st->model;
    assert_string_equal(st->metric, "cpu");
    assert_float_equal(st->interval_ms, 60000.0, 1e-6);
}

static void feed(bw_engine_t *eng, const char *region, int64_t t)
{
    bw_event_t ev = {.time_ms = t,
                     .region = region,
                     .service = "s",
                     .metric = "cpu",
                     .value = 1.0 + (t % 7),
                     .count = NAN};
    bw_score_t sc;

    assert_int_equal(bw_engine_process(eng, &ev, &sc, NULL, NULL, NULL, 0),
                     BW_OK);
}

/* (A delayed record does not end a silence: it had cleared the stale
 * flag, and the same silence was reported again.) */
static void test_stale_and_lateness(void **state)
{
    bw_config_t cfg;
    bw_engine_t *eng;
    bw_engine_stats_t st;
    bw_event_t late = {.time_ms = 0,
                       .region = "a",
                       .service = "s",
                       .metric = "cpu",
                       .value = 1.0,
                       .count = NAN};
    bw_score_t sc;
    char err[256];
    int64_t t;

    (void)state;
    bw_config_defaults(&cfg);
    cfg.engine.lateness_ms = 120000;
    eng = bw_engine_new(&cfg, NULL, 0);
    for (t = 0; t < 20 * 60000; t += 60000) {
        feed(eng, "a", t);
        feed(eng, "b", t);
    }
    for (; t < 30 * 60000; t += 60000) {
        feed(eng, "a", t); /* b falls silent at 19 min */
    }
    assert_int_equal(bw_engine_watermark(eng), 29 * 60000);
    /* 10 minutes silent > 5 x 1 minute: b once, a never */
    assert_int_equal(bw_engine_stale_scan(eng, t, on_stale, NULL), 1);
    assert_string_equal(stale_region, "b");
    assert_int_equal(stale_model, BW_MODEL_SERIES);
    assert_int_equal(bw_engine_stale_scan(eng, t + 60000, on_stale, NULL), 0);
    feed(eng, "b", t); /* resumes: a new silence is reported again */
    assert_int_equal(bw_engine_stale_scan(eng, t + 10 * 60000, on_stale, NULL),
                     2);
    assert_int_equal(stale_seen, 3);
    /* older than the watermark minus the allowed lateness */
    late.time_ms = t - 180000;
    assert_int_equal(bw_engine_process(eng, &late, &sc, NULL, NULL, err, 256),
                     BW_ERR_LATE);
    assert_non_null(strstr(err, "behind the watermark"));
    late.time_ms = t - 90000; /* within lateness, out of order for "a" */
    assert_int_equal(bw_engine_process(eng, &late, &sc, NULL, NULL, err, 256),
                     BW_OK);
    assert_true(sc.late);
    bw_engine_stats(eng, &st);
    assert_int_equal(st.late, 2);
    bw_engine_destroy(eng);
    { /* a pooled series' marker names its model */
        static const char yaml[] = "engine:\n"
                                   "  routes:\n"
                                   "    - metric: cpu\n"
                                   "      model: pooled_normal\n";
        assert_int_equal(bw_config_load_string(&cfg, "t", yaml,
                                               sizeof(yaml) - 1, stderr),
                         BW_OK);
        eng = bw_engine_new(&cfg, NULL, 0);
        for (t = 0; t < 20 * 60000; t += 60000) {
            feed(eng, "a", t);
        }
        assert_int_equal(bw_engine_stale_scan(eng, t + 10 * 60000, on_stale,
                                              NULL),
                         1);
        assert_int_equal(stale_model, BW_MODEL_POOLED_NORMAL);
        /* a delayed record (a pooled model takes it) ends no silence
         * either: the silence is not reported twice */
        feed(eng, "a", t - 90000);
        assert_int_equal(bw_engine_stale_scan(eng, t + 11 * 60000, on_stale,
                                              NULL),
                         0);
        bw_engine_destroy(eng);
    }
}

/* Alerts of four series (regions) fed Student-t(3) noise (unit sd) on a
 * flat level, each region's values the same for every metric. */
static int heavy_alerts(bw_engine_t *eng, const char *metric)
{
    static const char *const regions[] = {"a", "b", "c", "d"};
    bw_event_t ev = {.service = "s", .metric = metric, .count = NAN};
    bw_score_t sc;
    bw_rng_t rng;
    int alerts = 0;

    for (int r = 0; r < 4; r++) {
        ev.region = regions[r];
        bw_rng_seed(&rng, 11 + (uint64_t)r);
        for (int t = 0; t < 6000; t++) {
            ev.time_ms = (int64_t)t * 60000;
            ev.value = 100.0 + test_t3_unit(&rng);
            assert_int_equal(
                bw_engine_process(eng, &ev, &sc, NULL, NULL, NULL, 0), BW_OK);
            alerts += sc.alert;
        }
    }
    return alerts;
}

/* A route's tail_scale reaches its series' filters, and only theirs: the
 * same heavy-tailed values raise fewer alerts there (test_tail measures
 * the model itself). */
static void test_route_tail_scale(void **state)
{
    static const char yaml[] = "engine:\n"
                               "  routes:\n"
                               "    - metric: heavy\n"
                               "      tail_scale: 4\n"
                               "    - metric: \"*\"\n";
    bw_config_t cfg;
    bw_engine_t *eng;
    int heavy, plain;

    (void)state;
    assert_int_equal(
        bw_config_load_string(&cfg, "t", yaml, sizeof(yaml) - 1, stderr),
        BW_OK);
    assert_true(cfg.engine.routes[1].tail_scale < 0.0);
    eng = bw_engine_new(&cfg, NULL, 0);
    assert_non_null(eng);
    heavy = heavy_alerts(eng, "heavy");
    plain = heavy_alerts(eng, "plain");
    print_message("t(3) noise, 4 x 6000 events: %d alerts with the route's "
                  "tail_scale, %d without\n",
                  heavy, plain);
    /* measured 15 and 42: at most half, some three binomial standard
     * errors from both */
    assert_true(plain >= 20 && heavy * 2 <= plain);
    bw_engine_destroy(eng);
}

/* bw_join builds every per-event key: it must equal snprintf, truncation
 * included. */
static void test_join_equals_snprintf(void **state)
{
    const char *parts[] = {"", "eu-west", "api", "latency_ms", "x"};
    char want[16], got[16];

    (void)state;
    for (size_t cap = 1; cap <= sizeof(got); cap++) {
        for (int a = 0; a < 5; a++) {
            for (int b = 0; b < 5; b++) {
                size_t n;
                snprintf(want, cap, "%s/%s/%s", parts[a], parts[b], "m");
                n = bw_join(got, cap, '/', parts[a], parts[b], "m");
                assert_string_equal(got, want);
                assert_int_equal(n, strlen(want));
                snprintf(want, cap, "%s\x1f%s", parts[a], parts[b]);
                bw_join(got, cap, '\x1f', parts[a], parts[b], NULL);
                assert_string_equal(got, want);
            }
        }
    }
    bw_join(got, sizeof(got), '/', "only", NULL, NULL);
    assert_string_equal(got, "only");
}

/* A refused event leaves no model behind: three series whose only
 * events are outside their transform's domain do not fill max_series. */
static void test_refused_events_make_no_series(void **state)
{
    bw_config_t cfg;
    bw_engine_t *eng;
    bw_engine_stats_t st;
    bw_score_t sc;
    const char *regions[] = {"a", "b", "c"};
    bw_event_t ev = {.time_ms = 1000, .service = "s", .metric = "latency",
                     .value = -1.0, .count = NAN};

    (void)state;
    load(&cfg);
    cfg.engine.max_series = 3;
    eng = bw_engine_new(&cfg, NULL, 0);
    assert_non_null(eng);
    for (int i = 0; i < 3; i++) {
        ev.region = regions[i];
        assert_int_equal(bw_engine_process(eng, &ev, &sc, NULL, NULL, NULL, 0),
                         BW_ERR_RANGE);
    }
    bw_engine_stats(eng, &st);
    assert_int_equal(st.series, 0);
    ev.region = "d";
    ev.value = 5.0;
    assert_int_equal(bw_engine_process(eng, &ev, &sc, NULL, NULL, NULL, 0),
                     BW_OK);
    /* a pooled count refused takes no region slot and makes no group */
    ev.metric = "errors";
    ev.value = 5.0;
    ev.count = 1.0;
    assert_int_equal(bw_engine_process(eng, &ev, &sc, NULL, NULL, NULL, 0),
                     BW_ERR_RANGE);
    bw_engine_stats(eng, &st);
    assert_int_equal(st.series, 1);
    assert_int_equal(st.groups, 0);
    assert_int_equal(st.rejected, 4);
    /* at max_series, a pooled series refused for room makes no group (each
     * had made one, left empty for ever: 3 here) */
    ev.metric = "latency";
    ev.count = NAN;
    for (int i = 0; i < 2; i++) {
        ev.region = regions[i];
        assert_int_equal(bw_engine_process(eng, &ev, &sc, NULL, NULL, NULL, 0),
                         BW_OK);
    }
    ev.metric = "errors";
    ev.count = 100.0;
    ev.value = 1.0;
    for (int i = 0; i < 20; i++) {
        char service[16];
        snprintf(service, sizeof(service), "s%d", i);
        ev.service = service;
        assert_int_equal(bw_engine_process(eng, &ev, &sc, NULL, NULL, NULL, 0),
                         BW_ERR_FULL);
    }
    bw_engine_stats(eng, &st);
    assert_int_equal(st.series, 3);
    assert_int_equal(st.groups, 0);
    bw_engine_destroy(eng);
}

/* A pooled_normal route's slo is in the metric's own units: with a log
 * transform it is compared on the log scale (it was compared raw with the
 * log of the values: P(mean > 500) was 0 for values near 1000). */
static void test_pooled_normal_slo_transformed(void **state)
{
    static const char yaml[] =
        "engine:\n"
        "  routes:\n"
        "    - {metric: latency, model: pooled_normal, transform: log, "
        "slo: 500}\n";
    bw_config_t cfg;
    bw_engine_t *eng;
    bw_score_t sc;
    bw_event_t ev = {.service = "api", .metric = "latency", .count = NAN};
    const char *regions[] = {"a", "b", "c", "d"};

    (void)state;
    assert_int_equal(
        bw_config_load_string(&cfg, "t", yaml, strlen(yaml), NULL), BW_OK);
    eng = bw_engine_new(&cfg, NULL, 0);
    for (int t = 0; t < 50; t++) {
        for (int r = 0; r < 4; r++) {
            ev.time_ms = (int64_t)t * 60000;
            ev.region = regions[r];
            ev.value = 1000.0 + 10.0 * ((t * 7 + r * 3) % 5);
            assert_int_equal(
                bw_engine_process(eng, &ev, &sc, NULL, NULL, NULL, 0), BW_OK);
        }
    }
    assert_true(sc.p_slo > 0.99);
    bw_engine_destroy(eng);
}

static char series_seen[4][96];
static int n_series_seen;

static void on_series(void *opaque, const char *region, const char *service,
                      const char *metric)
{
    (void)opaque;
    if (n_series_seen < 4) {
        snprintf(series_seen[n_series_seen++], 96, "%s|%s|%s", region,
                 service, metric);
    }
}

static int by_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Every series the engine holds, each once and by its own names (a
 * revoked partition's series are told to the web view this way). */
static void test_each_series(void **state)
{
    bw_config_t cfg;
    bw_engine_t *eng;
    bw_score_t sc;
    bw_event_t ev = {.time_ms = 1000, .value = 5.0, .count = NAN};
    const char *names[3][3] = {
        {"eu", "api", "latency"}, {"us", "", "cpu"}, {"a/b", "c", "m"}};

    (void)state;
    load(&cfg);
    eng = bw_engine_new(&cfg, NULL, 0);
    for (int i = 0; i < 3; i++) {
        ev.region = names[i][0];
        ev.service = names[i][1];
        ev.metric = names[i][2];
        assert_int_equal(bw_engine_process(eng, &ev, &sc, NULL, NULL, NULL, 0),
                         BW_OK);
    }
    n_series_seen = 0;
    bw_engine_each_series(eng, on_series, NULL);
    assert_int_equal(n_series_seen, 3);
    qsort(series_seen, 3, sizeof(series_seen[0]), by_str);
    assert_string_equal(series_seen[0], "a/b|c|m");
    assert_string_equal(series_seen[1], "eu|api|latency");
    assert_string_equal(series_seen[2], "us|default|cpu");
    bw_engine_destroy(eng);
}

static char entity_seen[4][64];
static int n_entity_seen;

static void on_entity(void *opaque, const bw_threat_rec_t *rec)
{
    (void)opaque;
    if (n_entity_seen < 4) {
        snprintf(entity_seen[n_entity_seen++], 64, "%s", rec->entity);
    }
}

/* A name may hold the id's separator: "a/b" + "c" and "a" + "b/c" are two
 * entities with two fusion states and two ids (%-encoded), not one. */
static void test_entity_ids_are_unambiguous(void **state)
{
    static const char yaml[] = "model:\n"
                               "  fusion:\n"
                               "    entity: region_service\n"
                               "    rules:\n"
                               "      - name: r\n"
                               "        signals:\n"
                               "          - metric: auth\n";
    bw_config_t cfg;
    bw_engine_t *eng;
    bw_engine_stats_t st;
    bw_score_t sc;
    bw_event_t a = {.time_ms = 1000, .region = "a/b", .service = "c",
                    .metric = "auth", .value = 1.0, .count = NAN};
    bw_event_t b = a;

    (void)state;
    b.region = "a";
    b.service = "b/c";
    assert_int_equal(
        bw_config_load_string(&cfg, "t", yaml, sizeof(yaml) - 1, stderr), BW_OK);
    eng = bw_engine_new(&cfg, NULL, 0);
    assert_non_null(eng);
    assert_int_equal(
        bw_engine_process(eng, &a, &sc, on_entity, NULL, NULL, 0), BW_OK);
    assert_int_equal(
        bw_engine_process(eng, &b, &sc, on_entity, NULL, NULL, 0), BW_OK);
    bw_engine_stats(eng, &st);
    assert_int_equal(st.entities, 2);
    assert_int_equal(n_entity_seen, 2);
    assert_string_equal(entity_seen[0], "a%2Fb/c");
    assert_string_equal(entity_seen[1], "a/b%2Fc");
    bw_engine_destroy(eng);
}

static int dup_threats;

static void on_dup(void *opaque, const bw_threat_rec_t *rec)
{
    (void)opaque;
    (void)rec;
    dup_threats++;
}

/* A rule that names one metric twice (two elevations of one signal) is
 * evaluated once per event, after both signals have the value: with
 * emit_delta 0 every evaluation emits, one threat row an event (two, the
 * first before the second signal had the value, with the same id, before
 * the engine fed all of a rule's signals first). */
static void test_rule_evaluated_once_per_event(void **state)
{
    static const char yaml[] = "model:\n"
                               "  fusion:\n"
                               "    emit_delta: 0\n"
                               "    rules:\n"
                               "      - name: r\n"
                               "        signals:\n"
                               "          - metric: egress\n"
                               "            elevation: 1\n"
                               "          - metric: egress\n"
                               "            elevation: 3\n";
    bw_config_t cfg;
    bw_engine_t *eng;
    bw_score_t sc;
    bw_rng_t rng;

    (void)state;
    assert_int_equal(bw_config_load_string(&cfg, "t", yaml, sizeof(yaml) - 1,
                                           stderr),
                     BW_OK);
    eng = bw_engine_new(&cfg, NULL, 0);
    assert_non_null(eng);
    bw_rng_seed(&rng, 3);
    dup_threats = 0;
    for (int t = 0; t < 50; t++) {
        bw_event_t ev = {.time_ms = 60000 * (int64_t)(t + 1), .region = "eu",
                         .metric = "egress",
                         .value = 100.0 + bw_rng_gauss(&rng), .count = NAN};
        assert_int_equal(
            bw_engine_process(eng, &ev, &sc, on_dup, NULL, NULL, 0), BW_OK);
    }
    assert_int_equal(dup_threats, 50);
    bw_engine_destroy(eng);
}

/* bw_join_esc: names without '/' or '%' join as bw_join; truncation never
 * leaves half an escape. */
static void test_join_esc(void **state)
{
    char got[16];

    (void)state;
    bw_join_esc(got, sizeof(got), '/', "eu-west", "api", NULL);
    assert_string_equal(got, "eu-west/api");
    bw_join_esc(got, sizeof(got), '/', "5%", "a/b", NULL);
    assert_string_equal(got, "5%25/a%2Fb");
    for (size_t cap = 1; cap <= 6; cap++) {
        size_t n = bw_join_esc(got, cap, '/', "x//", NULL, NULL);
        const char *want[] = {"", "x", "x", "x", "x%2F", "x%2F"};
        assert_string_equal(got, want[cap - 1]);
        assert_int_equal(n, strlen(want[cap - 1]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_tail_scale),
        cmocka_unit_test(test_boundary),
        cmocka_unit_test(test_join_equals_snprintf),
        cmocka_unit_test(test_join_esc),
        cmocka_unit_test(test_refused_events_make_no_series),
        cmocka_unit_test(test_each_series),
        cmocka_unit_test(test_pooled_normal_slo_transformed),
        cmocka_unit_test(test_entity_ids_are_unambiguous),
        cmocka_unit_test(test_rule_evaluated_once_per_event),
        cmocka_unit_test(test_stale_and_lateness),
    };

    gsl_set_error_handler_off();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
