/*
 * The demo's orchestration: a mock cluster (rdkafka_mock.h), the generator
 * producing into it, the real pipeline consuming from it and producing
 * scores and threats back (exactly-once), observed by the view; then the
 * summary: each injected incident detected or not and after how long,
 * false alarms, and the committed output counts read back as a
 * read_committed consumer would.
 */
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "bayeswatch/config.h"
#include "bayeswatch/demo.h"
#include "bayeswatch/ingest.h"
#include "bayeswatch/pipeline.h"
#include "bayeswatch/schemas.h"
#include "bayeswatch/obs.h"
#include "demo_int.h"
#include "bayeswatch/mem.h"
#include "bayeswatch/timefmt.h"

#define T0_MS 1795478400000LL /* 2026-11-24 00:00 UTC */
#define POISON_EVERY_MIN 97   /* one malformed record per ~1.6 sim hours */
#define RENDER_MS 200

extern const char bw_demo_config[];
extern const size_t bw_demo_config_len;

typedef struct {
    const bw_demo_opts_t *o;
    bw_config_t cfg;
    rd_kafka_t *gen_rk; /* generator producer; owns the mock cluster */
    rd_kafka_mock_cluster_t *mock;
    rd_kafka_t *reader;     /* read_committed consumer of the outputs */
    long long committed[3]; /* scores, threats, dead letters read back */
    bw_pipeline_t *pipe;
    bw_obs_t *obs; /* the web view and /metrics */
    bw_codec_t *codec;
    bw_wbuf_t buf;
    bw_demo_gen_t gen;
    bw_demo_view_t view;
    FILE *devnull;
    long long produced;
    long long failed; /* feed: deliveries that failed */
    int minute;       /* current simulated minute */
    bw_demo_judge_t judge;
    char err[512];
} demo_t;

/* Position of @p s in @p names, or -1. */
static int name_index(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(s, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* Minutes since the start of the live part (negative during history). */
static int live_minute(int64_t t_ms)
{
    return (int)((t_ms - T0_MS) / 60000) - DEMO_HISTORY_MIN;
}

/* One line of the view's log, prefixed with the simulated HH:MM. */
static void log_line(demo_t *d, int64_t t_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void log_line(demo_t *d, int64_t t_ms, const char *fmt, ...)
{
    char line[160];
    int n = snprintf(line, sizeof(line), "%02d:%02d  ",
                     (int)(t_ms / 3600000 % 24), (int)(t_ms / 60000 % 60));
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    bw__demo_view_log(&d->view, line);
}

/* ---- alerts in the view's log ---- */

/* A probabilistic SLO breach (P(rate > slo) >= the alert threshold) is
 * how a pooled rate alerts: one alert when it starts, as an alert manager
 * would fire it, resolved when the probability falls back. */
static void log_slo_breach(demo_t *d, const bw_event_t *ev,
                           const bw_score_t *sc)
{
    d->view.alerts++;
    log_line(d, ev->time_ms,
             "%-8s %-13s SLO BREACH P(rate > 1%%)=%.3f, rate %.2f%% (%g/%g)",
             ev->region, ev->metric, sc->p_slo, 100 * sc->actual, ev->value,
             ev->count);
}

static void log_alert(demo_t *d, const bw_event_t *ev, const bw_score_t *sc,
                      int m)
{
    bool block = sc->p_collective > sc->p_anomaly; /* a run of events */

    d->view.alerts++;
    log_line(d, ev->time_ms,
             "%-8s %-13s %-10s P=%.3f  actual %.4g, typical %.4g%s", ev->region,
             ev->metric, bw_direction_name(sc->direction),
             bw_score_evidence(sc),
             block           ? sc->block_mean
             : m == M_ERRORS ? ev->value / ev->count
                             : ev->value,
             block ? sc->block_expected : sc->expected,
             block ? " (block mean)" : "");
}

static void on_score(void *opaque, const bw_event_t *ev, const bw_score_t *sc)
{
    demo_t *d = opaque;
    int r = name_index(bw__demo_regions, DEMO_REGIONS, ev->region);
    int m = name_index(bw__demo_metrics, DEMO_METRICS, ev->metric);
    int live = live_minute(ev->time_ms), raised;

    d->view.scores++;
    d->view.sim_ms = ev->time_ms;
    if (r < 0 || m < 0) {
        return;
    }
    d->view.r[r].value[m] = ev->value;
    d->view.r[r].p[m] = bw_score_evidence(sc);
    if (m == M_ERRORS) {
        d->view.r[r].rate = ev->value / ev->count;
        d->view.r[r].p_slo = sc->p_slo;
    }
    if (live < 0) {
        return;
    }
    raised = bw__demo_judge_score(&d->judge, r, m, live, sc);
    if (raised & BW_JUDGE_SLO) {
        log_slo_breach(d, ev, sc);
    }
    if (raised & BW_JUDGE_ALERT) {
        log_alert(d, ev, sc, m);
    }
}

static void on_threat(void *opaque, const bw_threat_rec_t *t)
{
    demo_t *d = opaque;
    int r = name_index(bw__demo_regions, DEMO_REGIONS, t->region);
    int live = live_minute(t->time_ms);

    d->view.threats++;
    if (r < 0) {
        return;
    }
    d->view.r[r].threat = t->threat.probability;
    d->view.r[r].level = t->threat.level;
    if (live >= 0 &&
        bw__demo_judge_threat(&d->judge, r, live, t->threat.level)) {
        log_line(d, t->time_ms, "%-8s THREAT %s: %s, P=%.3f", t->entity,
                 t->rule->name, bw_level_name(t->threat.level),
                 t->threat.probability);
    }
}

/* ---- producing the telemetry ---- */

static void send_value(demo_t *d, const char *key, const void *v, size_t n)
{
    while (rd_kafka_producev(d->gen_rk,
                             RD_KAFKA_V_TOPIC(d->cfg.ingest.topics[0]),
                             RD_KAFKA_V_KEY((void *)key, strlen(key)),
                             RD_KAFKA_V_VALUE((void *)v, n),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(d->gen_rk, 10);
    }
    d->produced++;
}

static void emit_event(void *arg, const bw_event_t *ev)
{
    demo_t *d = arg;

    if (d->o->events != NULL) {
        fprintf(d->o->events, "%lld,%s,%s,%s,%.17g,", (long long)ev->time_ms,
                ev->region, ev->service, ev->metric, ev->value);
        if (!isnan(ev->count)) {
            fprintf(d->o->events, "%.17g", ev->count);
        }
        fputc('\n', d->o->events);
    }
    bw_wbuf_reset(&d->buf);
    if (bw_codec_encode(d->codec, ev, &d->buf) == BW_OK) {
        send_value(d, ev->region, d->buf.data, d->buf.len);
    }
}

static void produce_minute(demo_t *d)
{
    static const char poison[] = "{\"not\": \"avro\"}";

    bw__demo_gen_minute(&d->gen, d->minute, emit_event, d);
    if (d->minute % POISON_EVERY_MIN == POISON_EVERY_MIN - 1) {
        send_value(d, "poison", poison, sizeof(poison) - 1);
    }
    d->minute++;
    rd_kafka_poll(d->gen_rk, 0);
}

/* A read_committed consumer of the three output topics, polled alongside
 * the stage (the mock cluster trims old log segments, so it reads as the
 * records are committed, as a downstream service would). */
static int reader_start(demo_t *d)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    const bw_emit_cfg_t *em = &d->cfg.emit;
    const char *topics[3] = {em->scores.topic, em->threats.topic,
                             em->dead_letters.topic};
    rd_kafka_topic_partition_list_t *l;

    if (rd_kafka_conf_set(c, "bootstrap.servers",
                          rd_kafka_mock_cluster_bootstraps(d->mock), NULL, 0) ||
        rd_kafka_conf_set(c, "group.id", "demo-reader", NULL, 0) ||
        rd_kafka_conf_set(c, "isolation.level", "read_committed", NULL, 0) ||
        (d->reader = rd_kafka_new(RD_KAFKA_CONSUMER, c, d->err,
                                  sizeof(d->err))) == NULL) {
        rd_kafka_conf_destroy(c);
        return -1;
    }
    l = rd_kafka_topic_partition_list_new(3);
    for (int i = 0; i < 3; i++) {
        rd_kafka_topic_partition_list_add(l, topics[i], 0)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_assign(d->reader, l);
    rd_kafka_topic_partition_list_destroy(l);
    return 0;
}

/* Count what has been committed since the last call. */
static long long reader_poll(demo_t *d, int timeout_ms)
{
    const char *scores = d->cfg.emit.scores.topic;
    const char *threats = d->cfg.emit.threats.topic;
    rd_kafka_message_t *m;
    long long n = 0;

    while ((m = rd_kafka_consumer_poll(d->reader, timeout_ms)) != NULL) {
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            const char *t = rd_kafka_topic_name(m->rkt);
            int k = strcmp(t, scores) == 0    ? 0
                    : strcmp(t, threats) == 0 ? 1
                                              : 2;
            d->committed[k]++;
            n++;
        }
        rd_kafka_message_destroy(m);
        timeout_ms = 0;
    }
    return n;
}

/* ---- running ---- */

static int step(demo_t *d, int timeout_ms)
{
    bw_pipeline_stats_t st;

    if (bw_pipeline_step(d->pipe, timeout_ms, d->err, sizeof(d->err)) !=
        BW_OK) {
        return -1;
    }
    reader_poll(d, 0);
    bw_pipeline_stats(d->pipe, &st);
    d->view.events = (long long)st.consumed;
    d->view.dead = (long long)st.dead_letters;
    return 0;
}

/* Let the stage consume everything produced so far. */
static int drain(demo_t *d)
{
    int64_t last = bw_mono_ms();

    rd_kafka_flush(d->gen_rk, 10000);
    while (d->view.events < d->produced) {
        if (step(d, 50) != 0) {
            return -1;
        }
        if (bw_mono_ms() - last >= RENDER_MS) {
            bw__demo_view_render(&d->view);
            last = bw_mono_ms();
        }
    }
    return 0;
}

static int live(demo_t *d)
{
    int end = DEMO_HISTORY_MIN + d->o->hours * 60;
    int64_t start = bw_mono_ms(), last = 0;

    d->view.phase = "live: incidents are injected";
    while (d->minute < end) {
        int64_t due = d->o->speed > 0
                          ? start + (int64_t)((d->minute - DEMO_HISTORY_MIN) *
                                              1000.0 / d->o->speed)
                          : 0;
        while (bw_mono_ms() < due) {
            if (step(d, 10) != 0) {
                return -1;
            }
            if (bw_mono_ms() - last >= RENDER_MS) {
                bw__demo_view_render(&d->view);
                last = bw_mono_ms();
            }
        }
        produce_minute(d);
        if (d->o->speed <= 0 && step(d, 0) != 0) {
            return -1;
        }
    }
    return drain(d);
}

/* ---- setup ---- */

static int load_cfg(demo_t *d)
{
    FILE *diag = stderr;
    bw_err_t err =
        d->o->config_path != NULL
            ? bw_config_load(&d->cfg, d->o->config_path, diag)
            : bw_config_load_string(&d->cfg, "<embedded config/demo.yaml>",
                                    bw_demo_config, bw_demo_config_len, diag);

    if (err == BW_OK && bw_pipeline_check_config(&d->cfg, diag) != BW_OK) {
        err = BW_ERR_CONFIG;
    }
    return err == BW_OK ? 0 : BW_EXIT_CONFIG;
}

static void quiet_log(const rd_kafka_t *rk, int level, const char *fac,
                      const char *buf)
{
    (void)rk, (void)level, (void)fac, (void)buf;
}

static int start_cluster(demo_t *d)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    const bw_config_t *cfg = &d->cfg;
    const char *topics[3] = {cfg->emit.scores.topic, cfg->emit.threats.topic,
                             cfg->emit.dead_letters.topic};

    rd_kafka_conf_set_log_cb(c, quiet_log); /* e.g. "brokers down" at exit */
    d->gen_rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, d->err, sizeof(d->err));
    if (d->gen_rk == NULL) {
        rd_kafka_conf_destroy(c);
        return -1;
    }
    d->mock = rd_kafka_mock_cluster_new(d->gen_rk, 1);
    if (d->mock == NULL) {
        snprintf(d->err, sizeof(d->err), "cannot start the mock cluster");
        return -1;
    }
    /* one input partition: every region in one task, pooled together */
    rd_kafka_mock_topic_create(d->mock, cfg->ingest.topics[0], 1, 1);
    for (int i = 0; i < 3; i++) {
        rd_kafka_mock_topic_create(d->mock, topics[i], 1, 1);
    }
    /* the generator produces through the mock cluster's bootstraps */
    rd_kafka_brokers_add(d->gen_rk, rd_kafka_mock_cluster_bootstraps(d->mock));
    return 0;
}

/* The generator's encoder for the ingest topic's format. */
static int make_codec(demo_t *d)
{
    d->codec = bw_codec_new(
        bw_schema_metric_event, bw_schema_metric_event_len,
        d->cfg.ingest.format == BW_FORMAT_AVRO ? BW_FRAMING_CONFLUENT
                                               : BW_FRAMING_PLAIN,
        (int32_t)d->cfg.ingest.schema_id, d->err, sizeof(d->err));
    return d->codec != NULL ? 0 : -1;
}

static int start_stage(demo_t *d)
{
    bw_pipeline_opts_t po = {
        .bootstrap_servers = rd_kafka_mock_cluster_bootstraps(d->mock),
        .observer = {.score = on_score, .threat = on_threat, .opaque = d},
        .log = d->view.ansi ? d->devnull : d->o->out,
    };

    bw_log_setup((bw_log_level_t)d->cfg.obs.log_level,
                 (bw_log_format_t)d->cfg.obs.log_format, po.log);
    d->obs = bw_obs_new(&d->cfg, true, d->err, sizeof(d->err));
    if (d->obs == NULL) {
        return -1;
    }
    po.obs = d->obs;
    if (bw_obs_url(d->obs) != NULL) {
        bw__demo_view_url(&d->view, bw_obs_url(d->obs));
    }

    if (make_codec(d) != 0) {
        return -1;
    }
    d->pipe = bw_pipeline_new(&d->cfg, &po, d->err, sizeof(d->err));
    return d->pipe != NULL ? 0 : -1;
}

static void teardown(demo_t *d)
{
    bw_pipeline_destroy(d->pipe);
    bw_obs_destroy(d->obs);
    if (d->reader != NULL) {
        rd_kafka_consumer_close(d->reader);
        rd_kafka_destroy(d->reader);
    }
    bw_codec_destroy(d->codec);
    if (d->mock != NULL) {
        rd_kafka_mock_cluster_destroy(d->mock);
    }
    if (d->gen_rk != NULL) {
        rd_kafka_destroy(d->gen_rk);
    }
    bw_wbuf_free(&d->buf);
    if (d->devnull != NULL) {
        fclose(d->devnull);
    }
}

/* ---- the summary ---- */

static int print_incidents(demo_t *d)
{
    FILE *out = d->o->out;
    const bw_demo_judge_t *j = &d->judge;
    int detected = bw__demo_judge_detected(j);
    int injected = bw__demo_judge_injected(j);

    fprintf(out, "\ninjected incidents (live part, %d simulated hours):\n",
            d->o->hours);
    for (int i = 0; i < DEMO_INCIDENTS; i++) {
        const bw_incident_t *in = &j->inc[i];
        if (in->start >= j->live_min) {
            continue;
        }
        if (j->first_alert[i] >= 0) {
            fprintf(out, "  detected  %-55s after %d min%s\n", in->name,
                    j->first_alert[i] - in->start,
                    in->threat ? " (fused threat, level high+)" : "");
        } else {
            fprintf(out, "  MISSED    %s\n", in->name);
        }
    }
    fprintf(out,
            "%d of %d incidents detected; %lld false alarms in %lld scored "
            "live events (%.2f per 10,000)\n",
            detected, injected, j->false_alarms, j->live_scores,
            j->live_scores
                ? 1e4 * (double)j->false_alarms / (double)j->live_scores
                : 0.0);
    return detected == injected ? 0 : 1;
}

static int finish(demo_t *d)
{
    bw_pipeline_stats_t st;
    long long sc, th, dl;

    if (bw_pipeline_close(d->pipe, d->err, sizeof(d->err)) != BW_OK) {
        return 2;
    }
    bw_pipeline_stats(d->pipe, &st);
    d->view.phase = "done";
    bw__demo_view_render(&d->view);
    while (reader_poll(d, 1000) > 0) {
        /* until a second passes with nothing new */
    }
    sc = d->committed[0];
    th = d->committed[1];
    dl = d->committed[2];
    fprintf(d->o->out,
            "\n%lld events in; committed (read_committed): %lld scores, %lld "
            "threats, %lld dead letters; %llu transactions\n",
            d->produced, sc, th, dl, (unsigned long long)st.commits);
    if (sc != (long long)st.scored || th != (long long)st.threats ||
        dl != (long long)st.dead_letters) {
        snprintf(d->err, sizeof(d->err),
                 "committed outputs (%lld, %lld, %lld) differ from what the "
                 "stage produced (%llu, %llu, %llu)",
                 sc, th, dl, (unsigned long long)st.scored,
                 (unsigned long long)st.threats,
                 (unsigned long long)st.dead_letters);
        return 2;
    }
    return print_incidents(d);
}

/* Keep the web view up after the summary (obs.listen). */
static void linger(demo_t *d)
{
    const char *url = bw_obs_url(d->obs);
    int64_t until = bw_mono_ms() + (int64_t)(d->o->linger_s * 1000.0);

    if (url == NULL || d->o->linger_s == 0) {
        return;
    }
    if (d->o->linger_s < 0) {
        fprintf(d->o->out, "\nthe web view stays up at %s (Ctrl-C to exit)\n",
                url);
    } else {
        fprintf(d->o->out, "\nthe web view stays up at %s for %.0f s\n", url,
                d->o->linger_s);
    }
    fflush(d->o->out);
    while (d->o->linger_s < 0 || bw_mono_ms() < until) {
        struct timespec ts = {0, 200 * 1000000};
        nanosleep(&ts, NULL);
    }
}

static void on_fed(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    demo_t *d = opaque;

    (void)rk;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && d->failed++ == 0) {
        snprintf(d->err, sizeof(d->err), "feed: %s: %s",
                 rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
    }
}

/* Feed mode: the generator's telemetry to real brokers, paced. */
static int feed(demo_t *d)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    int end = DEMO_HISTORY_MIN + d->o->hours * 60;
    int64_t start;

    rd_kafka_conf_set_opaque(c, d);
    rd_kafka_conf_set_dr_msg_cb(c, on_fed);
    if (rd_kafka_conf_set(c, "bootstrap.servers", d->o->feed_brokers, d->err,
                          sizeof(d->err)) != RD_KAFKA_CONF_OK ||
        (d->gen_rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, d->err,
                                  sizeof(d->err))) == NULL) {
        rd_kafka_conf_destroy(c);
        return 2;
    }
    if (make_codec(d) != 0) {
        return 2;
    }
    fprintf(d->o->out,
            "feeding %s on %s: one day of history, then %d live "
            "hours at %g simulated minutes per second\n",
            d->cfg.ingest.topics[0], d->o->feed_brokers, d->o->hours,
            d->o->speed);
    while (d->minute < DEMO_HISTORY_MIN) {
        produce_minute(d);
    }
    for (start = bw_mono_ms(); d->minute < end && d->failed == 0;) {
        int64_t due =
            start + (int64_t)((d->minute - DEMO_HISTORY_MIN) * 1000.0 /
                              (d->o->speed > 0 ? d->o->speed : 1e9));
        rd_kafka_poll(d->gen_rk,
                      (int)(due > bw_mono_ms() ? due - bw_mono_ms() : 0));
        if (bw_mono_ms() >= due) {
            produce_minute(d);
        }
    }
    if (rd_kafka_flush(d->gen_rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR &&
        d->failed == 0) {
        snprintf(d->err, sizeof(d->err), "feed: events not acknowledged");
        return 2;
    }
    if (d->failed > 0) {
        return 2; /* d->err says why */
    }
    fprintf(d->o->out, "fed %lld events\n", d->produced);
    return 0;
}

int bw_demo_run(const bw_demo_opts_t *o, char *errstr, size_t errstr_size)
{
    demo_t *d = bw_calloc(1, sizeof(*d));
    int rc = 2;

    if (d == NULL) {
        snprintf(errstr, errstr_size, "demo: out of memory");
        return 2;
    }
    d->o = o;
    d->view.out = o->out;
    d->view.ansi = !o->plain && isatty(fileno(o->out));
    d->view.phase = "learning one day of history";
    d->devnull = fopen("/dev/null", "w");
    bw__demo_gen_init(&d->gen, 2026, T0_MS);
    if (o->events != NULL) {
        fputs("timestamp,region,service,metric,value,count\n", o->events);
    }
    if ((rc = load_cfg(d)) != 0) {
        goto out;
    }
    bw__demo_judge_init(&d->judge, d->gen.inc, o->hours * 60,
                        d->cfg.engine.alert_threshold);
    rc = 2;
    if (o->feed_brokers != NULL) {
        rc = feed(d);
        goto out;
    }
    if (d->view.ansi) {
        fputs("\033[2J", o->out);
    }
    if (start_cluster(d) != 0 || start_stage(d) != 0 || reader_start(d) != 0) {
        goto out;
    }
    while (d->minute < DEMO_HISTORY_MIN) {
        produce_minute(d);
    }
    if (drain(d) != 0 || live(d) != 0) {
        goto out;
    }
    rc = finish(d);
    linger(d);
out:
    if (rc == 2) {
        snprintf(errstr, errstr_size, "%s", d->err[0] ? d->err : "demo failed");
    }
    teardown(d);
    bw_free(d);
    return rc;
}
