/*
 * obs: the log sink (levels, JSON lines, rate limit, secrets), the
 * Prometheus text format (samples, escaping, histograms), librdkafka
 * statistics, the web view's store (per-region labels under the cap,
 * burn rates against a hand count, series points, episodes) and the
 * listener's routes over a real socket.
 */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "bayeswatch/config.h"
#include "bayeswatch/obs.h"

/* ---- helpers ---- */

static char *slurp(FILE *f)
{
    long n;
    char *s;

    fflush(f);
    n = ftell(f);
    s = calloc(1, (size_t)n + 1);
    rewind(f);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    return s;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++) {
        n++;
    }
    return n;
}

static void load(bw_config_t *cfg, const char *yaml)
{
    assert_int_equal(
        bw_config_load_string(cfg, "test.yaml", yaml, strlen(yaml), stderr),
        BW_OK);
}

/* ---- log ---- */

static void test_log_levels_and_json(void **state)
{
    FILE *f = tmpfile();
    char *out;

    (void)state;
    bw_log_setup(BW_LOG_INFO, BW_LOG_JSON, f);
    bw_log_instance("i-1");
    BW_LOG(BW_LOG_DEBUG, "test", -1, "not written %d", 1);
    BW_LOG(BW_LOG_INFO, "test", 7, "quote \" and\nnewline");
    assert_false(bw_log_enabled(BW_LOG_DEBUG));
    assert_true(bw_log_enabled(BW_LOG_WARN));
    out = slurp(f);
    assert_null(strstr(out, "not written"));
    assert_non_null(strstr(out, "\"level\":\"info\",\"component\":\"test\","
                                "\"instance\":\"i-1\",\"partition\":7,"
                                "\"msg\":\"quote \\\" and\\u000anewline\"}\n"));
    free(out);
    fclose(f);
    bw_log_setup(BW_LOG_INFO, BW_LOG_PLAIN, NULL);
}

static void test_log_rate_limit(void **state)
{
    FILE *f = tmpfile();
    bw_log_stats_t before, after;
    char *out;

    (void)state;
    bw_log_setup(BW_LOG_INFO, BW_LOG_PLAIN, f);
    bw_log_stats(&before);
    for (int i = 0; i < 20; i++) {
        BW_LOG(BW_LOG_WARN, "test", -1, "broker down %d", i);
    }
    for (int i = 0; i < 3; i++) {
        BW_LOG(BW_LOG_INFO, "test", -1, "info lines are not limited %d", i);
    }
    bw_log_stats(&after);
    out = slurp(f);
    assert_int_equal(count(out, "broker down"), 5);
    assert_int_equal(count(out, "info lines are not limited"), 3);
    assert_int_equal(after.suppressed - before.suppressed, 15);
    assert_int_equal(after.lines[BW_LOG_WARN] - before.lines[BW_LOG_WARN], 5);
    assert_non_null(strstr(out, " warn  bayeswatch["));
    free(out);
    fclose(f);
    bw_log_setup(BW_LOG_INFO, BW_LOG_PLAIN, NULL);
}

static void test_log_secrets(void **state)
{
    bw_config_t cfg;
    FILE *f = tmpfile(), *dump = tmpfile();
    char *out, *dumped;

    (void)state;
    load(&cfg, "kafka:\n"
               "  producer:\n"
               "    sasl.password: \"s3cr3t-Pa55\"\n"
               "    ssl.key.password: \"k3y-pa55word\"\n"
               "    sasl.username: \"svc-bayeswatch\"\n");
    assert_true(bw_config_key_is_secret("sasl.password"));
    assert_true(bw_config_key_is_secret("SSL.KEY.PASSWORD"));
    assert_true(bw_config_key_is_secret("sasl.oauthbearer.client.secret"));
    assert_false(bw_config_key_is_secret("sasl.username"));
    bw_log_setup(BW_LOG_DEBUG, BW_LOG_PLAIN, f);
    bw_log_config_secrets(&cfg);
    BW_LOG(BW_LOG_DEBUG, "rdkafka", -1,
           "conf: sasl.password=s3cr3t-Pa55 ssl.key.password=k3y-pa55word "
           "user svc-bayeswatch; again s3cr3t-Pa55");
    out = slurp(f);
    assert_null(strstr(out, "s3cr3t"));
    assert_null(strstr(out, "k3y-pa55"));
    assert_int_equal(count(out, "***"), 3);
    assert_non_null(strstr(out, "svc-bayeswatch"));
    bw_config_dump(&cfg, dump);
    dumped = slurp(dump);
    assert_null(strstr(dumped, "s3cr3t"));
    assert_null(strstr(dumped, "k3y-pa55"));
    assert_non_null(strstr(dumped, "svc-bayeswatch"));
    free(out);
    free(dumped);
    fclose(f);
    fclose(dump);
    bw_log_setup(BW_LOG_INFO, BW_LOG_PLAIN, NULL);
}

/* A secret kept in a file (`${file:PATH}`) is blanked in log lines as its
 * contents, which is what the clients are given. */
static void test_log_file_secret(void **state)
{
    char path[] = "/tmp/bw_secret_XXXXXX", yaml[256];
    int fd = mkstemp(path);
    bw_config_t cfg;
    FILE *f = tmpfile();
    char *out;

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "f1le-s3cret\n", 12), 12);
    close(fd);
    snprintf(yaml, sizeof(yaml),
             "kafka:\n  client:\n    sasl.password: \"${file:%s}\"\n", path);
    load(&cfg, yaml);
    bw_log_setup(BW_LOG_DEBUG, BW_LOG_PLAIN, f);
    bw_log_config_secrets(&cfg);
    BW_LOG(BW_LOG_WARN, "rdkafka", -1, "auth failed with f1le-s3cret");
    out = slurp(f);
    assert_null(strstr(out, "f1le-s3cret"));
    assert_non_null(strstr(out, "auth failed with ***"));
    free(out);
    fclose(f);
    unlink(path);
    bw_log_setup(BW_LOG_INFO, BW_LOG_PLAIN, NULL);
}

/* ---- Prometheus text ---- */

static void test_prom_text(void **state)
{
    static const double bounds[] = {0.1, 1, 10};
    bw_wbuf_t w = {0};
    bw_hist_t h;
    char esc[64];

    (void)state;
    bw_prom_escape(esc, sizeof(esc), "a\"b\\c\nd");
    assert_string_equal(esc, "a\\\"b\\\\c\\nd");
    bw_prom_family(&w, "x_total", "counter", "help text");
    bw_prom_sample(&w, "x_total", "", 3);
    bw_prom_sample(&w, "y", "k=\"v\"", 0.25);
    bw_prom_sample(&w, "z", "", NAN);
    bw_prom_sample(&w, "z", "", -INFINITY);
    bw_hist_init(&h, bounds, 3);
    bw_hist_observe(&h, 0.05);
    bw_hist_observe(&h, 0.1); /* on a bound: le is inclusive */
    bw_hist_observe(&h, 5);
    bw_hist_observe(&h, 50);
    bw_hist_write(&w, "d_seconds", "k=\"v\"", &h);
    bw_wbuf_bytes(&w, "", 1);
    assert_string_equal(
        (char *)w.data,
        "# HELP x_total help text\n# TYPE x_total counter\nx_total 3\n"
        "y{k=\"v\"} 0.25\nz NaN\nz -Inf\n"
        "d_seconds_bucket{k=\"v\",le=\"0.1\"} 2\n"
        "d_seconds_bucket{k=\"v\",le=\"1\"} 2\n"
        "d_seconds_bucket{k=\"v\",le=\"10\"} 3\n"
        "d_seconds_bucket{k=\"v\",le=\"+Inf\"} 4\n"
        "d_seconds_sum{k=\"v\"} 55.15\nd_seconds_count{k=\"v\"} 4\n");
    bw_wbuf_free(&w);
    /* a week's backlog aged at 40,000 commits: 2.4e10 s (as nanoseconds
     * in a u64 it wrapped, and the sum went backwards) */
    bw_hist_init(&h, bounds, 3);
    for (int i = 0; i < 40000; i++) {
        bw_hist_observe(&h, 604800.0);
    }
    memset(&w, 0, sizeof(w));
    bw_hist_write(&w, "d_seconds", "", &h);
    bw_wbuf_bytes(&w, "", 1);
    assert_non_null(strstr((char *)w.data, "d_seconds_sum 2.4192e+10\n"));
    bw_wbuf_free(&w);
}

/* ---- librdkafka statistics ---- */

static const char stats_doc[] =
    "{\"name\":\"rdkafka#consumer-1\",\"type\":\"consumer\",\"ts\":1,"
    "\"brokers\":{\"localhost:9092/bootstrap\":{\"name\":\"x\",\"nodeid\":-1,"
    "\"rtt\":{\"min\":0,\"avg\":0}},"
    "\"127.0.0.1:9092/1\":{\"nodeid\":1,\"state\":\"UP\","
    "\"rtt\":{\"min\":100,\"max\":900,\"avg\":2500,\"p99\":800},"
    "\"toppars\":{\"in-0\":{\"topic\":\"in\",\"partition\":0}}},"
    "\"GroupCoordinator\":{\"nodeid\":1,\"source\":\"logical\","
    "\"rtt\":{\"avg\":1000}}},"
    "\"topics\":{\"in\":{\"topic\":\"in\",\"partitions\":{"
    "\"0\":{\"partition\":0,\"consumer_lag\":42,\"lo\":[1,2],"
    "\"hi_offset\":100,\"ls_offset\":90},"
    "\"1\":{\"partition\":1,\"desired\":true,\"consumer_lag\":-1},"
    "\"2\":{\"partition\":2,\"desired\":false,\"consumer_lag\":5},"
    "\"-1\":{\"partition\":-1,\"consumer_lag\":-1}}},"
    "\"we\\\"ird\":{\"partitions\":{\"3\":{\"partition\":3,"
    "\"consumer_lag\":7}}}},"
    "\"cgrp\":{\"state\":\"up\",\"rebalance_cnt\":2},"
    "\"eos\":{\"idemp_state\":\"Assigned\",\"txn_state\":\"InTransaction\"}}";

static void test_kstats(void **state)
{
    bw_kstats_t *st = calloc(1, sizeof(*st));
    char bad[sizeof(stats_doc)];

    (void)state;
    assert_int_equal(bw_kstats_parse(stats_doc, strlen(stats_doc), st), BW_OK);
    assert_int_equal(st->n_parts, 3); /* not partition 2: "desired": false */
    assert_string_equal(st->parts[0].topic, "in");
    assert_int_equal(st->parts[0].partition, 0);
    assert_int_equal(st->parts[0].lag, 42);
    assert_int_equal(st->parts[0].hi_offset, 100);
    assert_int_equal(st->parts[0].ls_offset, 90);
    assert_int_equal(st->parts[1].lag, -1);
    assert_int_equal(st->parts[1].ls_offset, -1);
    assert_string_equal(st->parts[2].topic, "we\"ird");
    assert_int_equal(st->parts[2].lag, 7);
    assert_int_equal(st->n_brokers, 1);
    assert_string_equal(st->brokers[0].name, "127.0.0.1:9092/1");
    assert_float_equal(st->brokers[0].rtt_s, 0.0025, 1e-12);
    assert_string_equal(st->txn_state, "InTransaction");
    /* lag: the last stable offset (90) less the position, whatever
     * librdkafka's committed-offset figure (42) says once records flow; it
     * only before the first; the high watermark where there is no stable
     * offset; unknown without either */
    assert_int_equal(bw_kstats_lag(st, 0, 80), 10);
    assert_int_equal(bw_kstats_lag(st, 0, 95), 0); /* statistics older */
    assert_int_equal(bw_kstats_lag(st, 0, -1), 42);
    assert_int_equal(bw_kstats_lag(st, 1, -1), -1);
    assert_int_equal(bw_kstats_lag(st, 1, 5), -1);
    st->parts[0].ls_offset = -1;
    assert_int_equal(bw_kstats_lag(st, 0, 80), 20);
    /* every truncation: an error or a partial read, never a crash */
    for (size_t n = 0; n < strlen(stats_doc); n++) {
        memcpy(bad, stats_doc, n);
        bad[n] = '\0';
        assert_int_equal(bw_kstats_parse(bad, n, st), BW_ERR_PARSE);
    }
    free(st);
}

/* ---- the web view store ---- */

static const char view_yaml[] =
    "engine:\n"
    "  routes:\n"
    "    - {metric: errors, model: pooled_count, slo: 0.01}\n"
    "obs: {listen: \"\", region_label_cap: 2, view_points: 1000}\n";

static bw_score_t plain_score(double p, bool alert)
{
    bw_score_t sc = {.model = BW_MODEL_SERIES,
                     .p_anomaly = p,
                     .p_collective = NAN,
                     .alert = alert,
                     .expected = 10,
                     .lower = 8,
                     .upper = 12,
                     .p_slo = NAN,
                     .p_own = NAN,
                     .p_population = NAN,
                     .ess = 100,
                     .abnormal_since = -1};
    return sc;
}

static void feed(bw_obs_t *obs, const char *region, const char *metric,
                 int64_t t, double value, double cnt, double p, bool alert)
{
    bw_event_t ev = {.time_ms = t,
                     .region = region,
                     .service = "api",
                     .metric = metric,
                     .value = value,
                     .count = cnt};
    bw_score_t sc = plain_score(p, alert);

    sc.actual = cnt > 0 ? value / cnt : value;
    bw_obs_score(obs, &ev, &sc, 1000);
}

static char *text(bw_wbuf_t *w)
{
    bw_wbuf_bytes(w, "", 1);
    assert_int_equal(w->err, BW_OK);
    return (char *)w->data;
}

static void test_view_metrics(void **state)
{
    static bw_config_t cfg;
    char errstr[256];
    bw_obs_t *obs;
    bw_wbuf_t w = {0};
    double err1 = 0, req1 = 0, want;
    char line[128], *t;

    (void)state;
    load(&cfg, view_yaml);
    obs = bw_obs_new(&cfg, false, errstr, sizeof(errstr));
    assert_non_null(obs);
    assert_null(bw_obs_url(obs));
    /* 2 hours of one-minute error counts in r1; the burn rates by hand */
    for (int m = 0; m < 120; m++) {
        int64_t at = (int64_t)m * 60000;
        double e = (double)(m % 7), n = 1000.0;
        feed(obs, "r1", "errors", at, e, n, 0.01, false);
        if (119 * 60000 - at < 3600000) {
            err1 += e;
            req1 += n;
        }
    }
    feed(obs, "r2", "latency", 0, 5, NAN, 0.3, false);
    feed(obs, "r3", "latency", 0, 5, NAN, 0.995, true); /* beyond the cap */
    feed(obs, "r4", "latency", 0, 5, NAN, 0.7, false);  /* also "other" */
    bw_obs_view_metrics(obs, 61000, &w);
    t = text(&w);
    assert_non_null(strstr(t, "bayeswatch_region_anomaly_probability{region="
                              "\"r2\"} 0.3\n"));
    assert_non_null(strstr(t, "bayeswatch_region_anomaly_probability{region="
                              "\"other\"} 0.995\n"));
    assert_null(strstr(t, "region=\"r3\""));
    want = err1 / (0.01 * req1);
    snprintf(line, sizeof(line),
             "bayeswatch_error_budget_burn_rate{region=\"r1\",window=\"1h\"} "
             "%.9g\n",
             want);
    assert_non_null(strstr(t, line));
    assert_non_null(strstr(t, "bayeswatch_view_series 4\n"));
    assert_non_null(strstr(t, "bayeswatch_warmup_series 0\n"));
    assert_non_null(strstr(t, "bayeswatch_region_input_age_seconds{region="
                              "\"r1\"} 60\n"));
    bw_wbuf_free(&w);
    bw_obs_destroy(obs);
}

/* A revoked partition's series: this instance stops reporting its last
 * word on them (an alert at 0.995 stayed in the per-region gauge and the
 * overview for ever, and dashboards taking the max over instances kept
 * alerting); a score here again brings it back. */
static void test_view_moved(void **state)
{
    static bw_config_t cfg;
    char errstr[256];
    bw_obs_t *obs;
    bw_wbuf_t w = {0};
    char *t;

    (void)state;
    load(&cfg, view_yaml);
    obs = bw_obs_new(&cfg, false, errstr, sizeof(errstr));
    feed(obs, "r1", "latency", 0, 5, NAN, 0.995, true);
    feed(obs, "r2", "latency", 0, 5, NAN, 0.2, false);
    bw_obs_moved(obs, "r1", "api", "latency");
    bw_obs_moved(obs, "nowhere", "api", "latency"); /* never seen: nothing */
    bw_obs_view_metrics(obs, 1000, &w);
    t = text(&w);
    assert_non_null(strstr(t, "bayeswatch_region_anomaly_probability{region="
                              "\"r1\"} 0\n"));
    w.len = 0;
    assert_true(bw_obs_view_json(obs, "overview", NULL, 1000, &w));
    t = text(&w);
    { /* not among the series shown; its episode kept, no longer ongoing */
        const char *top = strstr(t, "\"top\":["),
                   *end = top != NULL ? strstr(top, "],\"stale\"") : NULL;
        const char *r1 = top != NULL ? strstr(top, "r1/api/latency") : NULL;
        assert_non_null(end);
        assert_true(r1 == NULL || r1 > end);
        assert_non_null(strstr(t, "\"key\":\"r1/api/latency\",\"start\":0,"
                                  "\"end\":0,\"peak\":0.995,"
                                  "\"ongoing\":false}"));
        assert_non_null(strstr(top, "r2/api/latency"));
    }
    feed(obs, "r1", "latency", 60000, 5, NAN, 0.995, true); /* back here */
    w.len = 0;
    bw_obs_view_metrics(obs, 61000, &w);
    t = text(&w);
    assert_non_null(strstr(t, "bayeswatch_region_anomaly_probability{region="
                              "\"r1\"} 0.995\n"));
    bw_wbuf_free(&w);
    bw_obs_destroy(obs);
}

/* Region labels are whole names: a region of 70 bytes with two services
 * is one label (cut to 63 bytes it never matched its own copy, and took a
 * second slot: a duplicate series promtool refuses), and a multi-byte
 * name is not cut inside a character; a region called "other" is the
 * overflow slot's (its own slot beside it gave two samples of one label
 * set, which Prometheus drops one of). A '/' in a name does not merge
 * series: "a/b" + "c" and "a" + "b/c" are two. */
static void test_view_long_names(void **state)
{
    static bw_config_t cfg;
    char errstr[256], longr[71], utf[81], line[256];
    bw_obs_t *obs;
    bw_wbuf_t w = {0};
    bw_event_t ev = {.time_ms = 0, .metric = "m", .value = 1, .count = NAN};
    bw_score_t sc = plain_score(0.5, false);
    char *t;

    (void)state;
    memset(longr, 'r', 70);
    longr[70] = '\0';
    for (int i = 0; i < 40; i++) {
        memcpy(utf + 2 * i, "\xc3\xa9", 2);
    }
    utf[80] = '\0';
    load(&cfg, "obs: {listen: \"\", region_label_cap: 8}\n");
    obs = bw_obs_new(&cfg, false, errstr, sizeof(errstr));
    ev.region = longr;
    ev.service = "a";
    bw_obs_score(obs, &ev, &sc, 1000);
    ev.service = "b";
    bw_obs_score(obs, &ev, &sc, 1000);
    ev.region = utf;
    bw_obs_score(obs, &ev, &sc, 1000);
    ev.region = "a/b";
    ev.service = "c";
    bw_obs_score(obs, &ev, &sc, 1000);
    ev.region = "a";
    ev.service = "b/c";
    bw_obs_score(obs, &ev, &sc, 1000);
    ev.region = "other"; /* folds into the overflow slot: one label set */
    bw_obs_score(obs, &ev, &sc, 1000);
    bw_obs_view_metrics(obs, 1000, &w);
    t = text(&w);
    assert_int_equal(
        count(t, "bayeswatch_region_anomaly_probability{region=\"other\"}"),
        1);
    snprintf(line, sizeof(line),
             "bayeswatch_region_anomaly_probability{region=\"%s\"}", longr);
    assert_int_equal(count(t, line), 1);
    snprintf(line, sizeof(line),
             "bayeswatch_region_anomaly_probability{region=\"%s\"}", utf);
    assert_int_equal(count(t, line), 1);
    assert_non_null(strstr(t, "bayeswatch_view_series 6\n"));
    w.len = 0;
    assert_true(bw_obs_view_json(obs, "series", "a%2Fb/c/m", 1000, &w));
    w.len = 0;
    assert_true(bw_obs_view_json(obs, "series", "a/b%2Fc/m", 1000, &w));
    bw_wbuf_free(&w);
    bw_obs_destroy(obs);
}

static void test_view_json(void **state)
{
    static bw_config_t cfg;
    char errstr[256];
    bw_obs_t *obs;
    bw_wbuf_t w = {0};
    char *t;

    (void)state;
    load(&cfg, view_yaml);
    obs = bw_obs_new(&cfg, false, errstr, sizeof(errstr));
    for (int i = 0; i < 30; i++) { /* an episode of 10 alerts, then quiet */
        bool a = i >= 10 && i < 20;
        feed(obs, "eu", "latency", (int64_t)i * 1000, i, NAN, a ? 1 : 0.01, a);
    }
    { /* a late score (older than the series' newest, unscored): no point,
       * and not the series' latest state */
        bw_event_t ev = {.time_ms = 5000,
                         .region = "eu",
                         .service = "api",
                         .metric = "latency",
                         .value = 99,
                         .count = NAN};
        bw_score_t sc = plain_score(0, false);
        sc.late = true;
        sc.actual = 99;
        sc.expected = sc.lower = sc.upper = NAN;
        bw_obs_score(obs, &ev, &sc, 1000);
    }
    for (int i = 0; i < 5; i++) { /* an ongoing one in another series */
        feed(obs, "us", "latency", 40000 + i * 1000, i, NAN, 1, true);
    }
    { /* a threat at high since 42 s */
        static bw_rule_cfg_t rule = {.name = "exfil", .n_signals = 1};
        bw_threat_rec_t rec = {
            .time_ms = 50000, .entity = "eu", .region = "eu", .rule = &rule};
        strcpy(rule.signals[0].metric, "auth_failures");
        rec.threat.probability = 0.7;
        rec.threat.level = BW_LEVEL_HIGH;
        rec.threat.since_ms = 42000;
        rec.threat.n_contrib = 1;
        rec.threat.contrib[0].llr = 3.0;
        bw_obs_threat(obs, &rec, 5000);
    }
    assert_true(bw_obs_view_json(obs, "overview", NULL, 5000, &w));
    t = text(&w);
    assert_non_null(strstr(t, "\"rule\":\"exfil\",\"probability\":0.7,"
                              "\"level\":\"high\",\"time\":50000,"
                              "\"since\":42000"));
    assert_non_null(strstr(t, "\"episodes\":[{\"key\":\"us/api/latency\","
                              "\"start\":40000,\"end\":44000,\"peak\":1,"
                              "\"ongoing\":true},{\"key\":\"eu/api/latency\","
                              "\"start\":10000,\"end\":19000,\"peak\":1,"
                              "\"ongoing\":false}]"));
    assert_non_null(strstr(t, "\"region\":\"eu\",\"service\":\"api\""));
    w.len = 0;
    assert_true(bw_obs_view_json(obs, "series", "eu/api/latency", 5000, &w));
    t = text(&w);
    assert_int_equal(count(t, "],["), 29); /* 30 points: not the late one */
    assert_non_null(strstr(t, "\"points\":[[0,0,10,8,12,0.01,null,null,"
                              "\"none\",0]"));
    /* the latest state is the newest event's, not the late one's */
    assert_non_null(strstr(t, "\"value\":29,"));
    assert_non_null(strstr(t, "\"last_event\":29000,"));
    w.len = 0;
    assert_false(bw_obs_view_json(obs, "series", "no/such/series", 5000, &w));
    assert_false(bw_obs_view_json(obs, "nothing", NULL, 5000, &w));
    { /* a series first seen through its stale marker (restored from the
       * changelog, silent since): its last event, and no age (it read
       * as the wall clock itself, 1.7e9 s in a stage, from a wall time
       * of 0) */
        bw_stale_t st = {.region = "ap",
                         .service = "api",
                         .metric = "cpu",
                         .last_event_ms = 7000,
                         .silent_ms = 60000};
        bw_obs_stale(obs, &st);
        w.len = 0;
        assert_true(bw_obs_view_json(obs, "series", "ap/api/cpu", 5000, &w));
        t = text(&w);
        assert_non_null(strstr(t, "\"last_event\":7000,\"age_s\":null"));
        w.len = 0;
        assert_true(bw_obs_view_json(obs, "overview", NULL, 5000, &w));
        t = text(&w);
        assert_non_null(strstr(t, "\"age_s\":null,\"series\":1,"));
    }
    bw_wbuf_free(&w);
    bw_obs_destroy(obs);
}

/* The view forgets what the engine retires (engine.retire_after_ms: 10
 * minutes here): sixteen series fill the store (obs.view_series 16), one
 * of them stale and one alerting, and a seventeenth goes untracked. Once
 * the view's clock has moved ten minutes past the others' last score,
 * they go: a new series is tracked (it had been untracked for good), the
 * stale gauge and the alert no longer count the retired ones, and the
 * series kept keeps its chart in its new slot, the first (the ring of
 * 1,000 points had wrapped, and held 150 of a retired series' points),
 * with no point of a retired one in it or in the new series' chart. A
 * region whose series have all gone gives up its label slot
 * (region_label_cap 2). Threats alike. */
static void test_view_retired(void **state)
{
    static bw_config_t cfg;
    static bw_rule_cfg_t rule = {.name = "exfil", .n_signals = 1};
    bw_threat_rec_t rec = {.entity = "r1", .region = "r1", .rule = &rule};
    char errstr[256], name[16];
    bw_obs_t *obs;
    bw_wbuf_t w = {0};
    bw_stale_t st = {.region = "r2", .service = "api", .metric = "m3",
                     .last_event_ms = 0, .silent_ms = 60000};
    char *t;

    (void)state;
    load(&cfg, "engine: {retire_after_ms: 600000}\n"
               "obs: {listen: \"\", view_series: 16, view_points: 1000,\n"
               "      region_label_cap: 2}\n");
    obs = bw_obs_new(&cfg, false, errstr, sizeof(errstr));
    assert_non_null(obs);
    for (int i = 0; i < 16; i++) { /* r1/api/m0 .. r2/api/m15 */
        snprintf(name, sizeof(name), "m%d", i);
        feed(obs, i < 8 ? "r1" : "r2", name, 0, 100 + i, NAN,
             i == 9 ? 0.999 : 0.1, i == 9);
    }
    bw_obs_stale(obs, &st);
    bw_obs_threat(obs, &rec, 1000);
    feed(obs, "r3", "late", 60000, 1, NAN, 0.1, false); /* no room */
    for (int sec = 1; sec <= 1100; sec++) { /* r2/api/m15 goes on, */
        if (sec <= 400) { /* r1/api/m0 for 400 s */
            feed(obs, "r1", "m0", (int64_t)sec * 1000, 1, NAN, 0.1, false);
        }
        feed(obs, "r2", "m15", (int64_t)sec * 1000, sec, NAN, 0.1, false);
    }
    feed(obs, "r3", "new", 1101000, 7, NAN, 0.1, false); /* room now */
    bw_obs_view_metrics(obs, 1000, &w);
    t = text(&w);
    assert_non_null(strstr(t, "bayeswatch_view_series 2\n"));
    assert_non_null(strstr(t, "bayeswatch_view_untracked_scores_total 1\n"));
    assert_non_null(strstr(t, "bayeswatch_region_stale_series{region="
                              "\"r2\"} 0\n"));
    /* r2/api/m9's 0.999 retired: the kept m15's 0.1 */
    assert_non_null(strstr(t, "bayeswatch_region_anomaly_probability{region="
                              "\"r2\"} 0.1\n"));
    /* r1's label slot went with its series, and r3 took it (with two
     * slots it would have been "other") */
    assert_null(strstr(t, "region=\"r1\""));
    assert_non_null(strstr(t, "bayeswatch_region_anomaly_probability{region="
                              "\"r3\"} 0.1\n"));
    w.len = 0;
    /* from the last slot to the first: its key follows it */
    assert_true(bw_obs_view_json(obs, "series", "r2/api/m15", 1000, &w));
    t = text(&w);
    assert_int_equal(count(t, "],["), 849); /* 251 s to 1,100 s */
    assert_non_null(strstr(t, "\"points\":[[251000,251,"));
    assert_non_null(strstr(t, "[1100000,1100,"));
    w.len = 0;
    assert_true(bw_obs_view_json(obs, "series", "r3/api/new", 1000, &w));
    t = text(&w);
    assert_int_equal(count(t, "],["), 0);
    assert_non_null(strstr(t, "\"points\":[[1101000,7,"));
    w.len = 0;
    assert_false(bw_obs_view_json(obs, "series", "r2/api/m9", 1000, &w));
    assert_false(bw_obs_view_json(obs, "series", "r1/api/m0", 1000, &w));
    assert_true(bw_obs_view_json(obs, "overview", NULL, 1000, &w));
    t = text(&w);
    assert_null(strstr(t, "exfil"));
    bw_wbuf_free(&w);
    bw_obs_destroy(obs);
}

/* ---- the listener ---- */

/* A TCP connection to 127.0.0.1:@p port from the loopback address @p src
 * (NULL: any). */
static int dial(const char *src, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)},
                       from = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    if (src != NULL) {
        inet_pton(AF_INET, src, &from.sin_addr);
        assert_int_equal(bind(fd, (struct sockaddr *)&from, sizeof(from)), 0);
    }
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* GET (or @p method) @p path from 127.0.0.1:@p port, connecting from
 * @p src: the status code (-1: closed without a response), and the whole
 * response in @p out. */
static int http_from(const char *src, int port, const char *method,
                     const char *path, char *out, size_t n)
{
    int fd = dial(src, port), code = -1;
    char req[256];
    size_t got = 0;
    ssize_t r;

    snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\n\r\n", method, path);
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    while (got + 1 < n && (r = read(fd, out + got, n - 1 - got)) > 0) {
        got += (size_t)r;
    }
    out[got] = '\0';
    close(fd);
    sscanf(out, "HTTP/1.%*d %d", &code);
    return code;
}

static int http(int port, const char *method, const char *path, char *out,
                size_t n)
{
    return http_from(NULL, port, method, path, out, n);
}

static int port_of(const bw_obs_t *obs)
{
    const char *u = bw_obs_url(obs);

    assert_non_null(u);
    return atoi(strrchr(u, ':') + 1);
}

/* `probe` against an IPv6 listener: the literal's colons are not the
 * port's. */
static void test_probe_ipv6(void **state)
{
    static bw_config_t cfg;
    char errstr[256], url[64], out[256];
    bw_obs_t *obs;

    (void)state;
    load(&cfg, "obs: {listen: \"[::1]:0\"}\n");
    obs = bw_obs_new(&cfg, false, errstr, sizeof(errstr));
    if (obs == NULL) {
        skip(); /* no IPv6 loopback on this host */
    }
    snprintf(url, sizeof(url), "http://[::1]:%d/healthz", port_of(obs));
    assert_int_equal(bw_obs_probe(url, 3000, out, sizeof(out)), 200);
    assert_int_equal(bw_obs_probe("http://[::1/healthz", 3000, out,
                                  sizeof(out)),
                     -1);
    assert_non_null(strstr(out, "not an http:// URL"));
    bw_obs_destroy(obs);
}

static void test_http_routes(void **state)
{
    static bw_config_t cfg;
    static char buf[1 << 16];
    char errstr[256];
    bw_obs_t *obs, *other;
    bw_wbuf_t page = {0};
    int port;

    (void)state;
    load(&cfg, "obs: {listen: \"127.0.0.1:0\"}\n");
    obs = bw_obs_new(&cfg, false, errstr, sizeof(errstr));
    assert_non_null(obs);
    port = port_of(obs);
    assert_int_equal(http(port, "GET", "/healthz", buf, sizeof(buf)), 200);
    assert_non_null(strstr(buf, "starting"));
    assert_int_equal(http(port, "GET", "/readyz", buf, sizeof(buf)), 503);
    bw_obs_set_ready(obs, true, NULL);
    assert_int_equal(http(port, "GET", "/readyz", buf, sizeof(buf)), 200);
    bw_obs_set_ready(obs, false, "restoring 2 partition(s)");
    assert_int_equal(http(port, "GET", "/readyz", buf, sizeof(buf)), 503);
    assert_non_null(strstr(buf, "restoring 2 partition(s)"));
    { /* a heartbeat that goes quiet for longer than its window */
        struct timespec ts, nap = {0, 60 * 1000000};
        clock_gettime(CLOCK_MONOTONIC, &ts);
        bw_obs_heartbeat(obs, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
                         30);
        assert_int_equal(http(port, "GET", "/healthz", buf, sizeof(buf)), 200);
        nanosleep(&nap, NULL);
        assert_int_equal(http(port, "GET", "/healthz", buf, sizeof(buf)), 503);
        assert_non_null(strstr(buf, "has not turned"));
    }
    bw_wbuf_printf(&page, "bayeswatch_test_total 5\n");
    bw_obs_publish_metrics(obs, &page);
    assert_int_equal(http(port, "GET", "/metrics", buf, sizeof(buf)), 200);
    assert_non_null(strstr(buf, "text/plain; version=0.0.4"));
    assert_non_null(strstr(buf, "\r\n\r\nbayeswatch_test_total 5\n"));
    assert_non_null(strstr(buf, "bayeswatch_log_lines_total{level=\"warn\"}"));
    assert_int_equal(http(port, "GET", "/", buf, sizeof(buf)), 200);
    assert_non_null(strstr(buf, "<title>bayeswatch</title>"));
    assert_int_equal(http(port, "GET", "/app.js", buf, sizeof(buf)), 200);
    assert_int_equal(http(port, "GET", "/api/overview", buf, sizeof(buf)), 200);
    assert_int_equal(
        http(port, "GET", "/api/series?key=a%2Fb%2Fc", buf, sizeof(buf)), 404);
    assert_int_equal(http(port, "GET", "/nope", buf, sizeof(buf)), 404);
    assert_int_equal(http(port, "POST", "/metrics", buf, sizeof(buf)), 405);
    /* the same port again: an error, or (fallback) another port */
    snprintf(cfg.obs.listen, sizeof(cfg.obs.listen), "127.0.0.1:%d", port);
    assert_null(bw_obs_new(&cfg, false, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "cannot listen on 127.0.0.1:"));
    other = bw_obs_new(&cfg, true, errstr, sizeof(errstr));
    assert_non_null(other);
    assert_int_not_equal(port_of(other), port);
    snprintf(cfg.obs.listen, sizeof(cfg.obs.listen), "no-port");
    assert_null(bw_obs_new(&cfg, false, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "expected HOST:PORT"));
    bw_obs_destroy(other);
    bw_obs_destroy(obs);
    bw_wbuf_free(&page);
}

/* One client's idle connections take at most 16 of the listener's 64: its
 * 17th is closed unanswered, while another address (a health probe) is
 * still served, and the client is again once its connections close. */
static void test_http_per_ip_limit(void **state)
{
    static bw_config_t cfg;
    static char buf[4096];
    char errstr[256];
    int idle[16], port;
    bw_obs_t *obs;

    (void)state;
    load(&cfg, "obs: {listen: \"127.0.0.1:0\"}\n");
    obs = bw_obs_new(&cfg, false, errstr, sizeof(errstr));
    assert_non_null(obs);
    port = port_of(obs);
    for (int i = 0; i < 16; i++) {
        idle[i] = dial("127.0.0.1", port);
    }
    assert_int_equal(
        http_from("127.0.0.1", port, "GET", "/healthz", buf, sizeof(buf)), -1);
    assert_int_equal(
        http_from("127.0.0.2", port, "GET", "/healthz", buf, sizeof(buf)), 200);
    for (int i = 0; i < 16; i++) {
        close(idle[i]);
    }
    /* the daemon notices the closes at its next poll */
    for (int tries = 0; tries < 100; tries++) {
        struct timespec nap = {0, 20 * 1000000};
        if (http_from("127.0.0.1", port, "GET", "/healthz", buf,
                      sizeof(buf)) == 200) {
            break;
        }
        assert_true(tries < 99);
        nanosleep(&nap, NULL);
    }
    bw_obs_destroy(obs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_levels_and_json),
        cmocka_unit_test(test_log_rate_limit),
        cmocka_unit_test(test_log_secrets),
        cmocka_unit_test(test_log_file_secret),
        cmocka_unit_test(test_prom_text),
        cmocka_unit_test(test_kstats),
        cmocka_unit_test(test_view_metrics),
        cmocka_unit_test(test_view_json),
        cmocka_unit_test(test_view_long_names),
        cmocka_unit_test(test_view_moved),
        cmocka_unit_test(test_view_retired),
        cmocka_unit_test(test_probe_ipv6),
        cmocka_unit_test(test_http_routes),
        cmocka_unit_test(test_http_per_ip_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
