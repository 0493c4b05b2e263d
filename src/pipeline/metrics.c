/*
 * The stage's Prometheus metrics page, its health and readiness.
 *
 * Counters are counted where they happen (stream threads: relaxed
 * atomics and lock-free histograms per worker; the main thread: plain
 * fields) and summed into one page by the main thread at most once a
 * second, with the stream threads quiesced by the caller (so engine
 * statistics and the per-page ESS minimum are read race-free). Also the
 * stage's totals (bw_pipeline_stats), which the page and the log share. The
 * page is handed to the listener (obs.h), which never reads the stage's state
 * itself. Consumer lag, broker round-trip times and the producer's transaction
 * state come from librdkafka's statistics (statistics.interval.ms =
 * obs.kafka_stats_ms), parsed by bw_kstats_parse.
 *
 * Naming follows Prometheus' conventions: bayeswatch_ prefix, counters
 * end in _total, durations in seconds, sizes in bytes; label values are
 * bounded (topic, partition, reason, rule, output, kind, broker).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bayeswatch/mem.h"
#include "pipeline_int.h"

#define PAGE_MS 1000
#define RELAXED memory_order_relaxed
#define LOADR(x) atomic_load_explicit(&(x), RELAXED)

static const double proc_bounds[] = {5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4,
                                     5e-4, 1e-3, 2.5e-3, 1e-2, 0.1,  1};
static const double commit_bounds[] = {
    1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
static const double e2c_bounds[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                    2.5,  5,     10,   30,  60,   300};
static const double ess_bounds[] = {0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1};
static const double pit_bounds[] = {0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1};

#define NB(a) ((int)(sizeof(a) / sizeof((a)[0])))

void bw__worker_metrics_init(bw_worker_t *w)
{
    bw_hist_init(&w->proc, proc_bounds, NB(proc_bounds));
    bw_hist_init(&w->ess, ess_bounds, NB(ess_bounds));
    bw_hist_init(&w->pit, pit_bounds, NB(pit_bounds));
    w->ess_min = INFINITY;
}

/* The consumer's max.poll.interval.ms: as configured, or librdkafka's
 * default. */
static int64_t poll_interval(const bw_config_t *cfg)
{
    const bw_kvmap_t *m = &cfg->kafka.consumer;

    for (int i = 0; i < m->n; i++) {
        if (strcmp(m->kv[i].key, "max.poll.interval.ms") == 0) {
            return strtoll(m->kv[i].value, NULL, 10);
        }
    }
    return 300000;
}

void bw__metrics_init(bw_pipeline_t *p)
{
    p->obs = p->opts.obs;
    bw_hist_init(&p->commit_hist, commit_bounds, NB(commit_bounds));
    bw_hist_init(&p->e2c_hist, e2c_bounds, NB(e2c_bounds));
    if (p->obs != NULL) {
        p->kstats = bw_calloc(1, sizeof(*p->kstats));
        p->kstats_prod = bw_calloc(1, sizeof(*p->kstats_prod));
    }
    p->health_window_ms = poll_interval(p->cfg) / 2;
    p->ready_state = -1;
}

void bw__metrics_free(bw_pipeline_t *p)
{
    bw_free(p->kstats);
    bw_free(p->kstats_prod);
    bw_free(p->stats_json);
    bw_wbuf_free(&p->page);
}

/* ---- librdkafka statistics ---- */

int bw__on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    bw_pipeline_t *p = opaque;
    bw_kstats_t *st = p->kstats;
    bool consumer = rk == p->consumer;

    if (st == NULL) {
        return 0;
    }
    pthread_mutex_lock(&p->mu);
    if (len + 1 > p->stats_cap) {
        char *b = bw_realloc(p->stats_json, len + 1);
        if (b != NULL) {
            p->stats_json = b;
            p->stats_cap = len + 1;
        }
    }
    if (len + 1 <= p->stats_cap) {
        memcpy(p->stats_json, json, len);
        p->stats_json[len] = '\0';
        if (consumer) {
            bw_kstats_parse(p->stats_json, len, st);
        } else if (p->kstats_prod != NULL) {
            /* the producer's document: its transaction state only */
            bw_kstats_parse(p->stats_json, len, p->kstats_prod);
            snprintf(p->txn_state, sizeof(p->txn_state), "%s",
                     p->kstats_prod->txn_state);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return 0; /* librdkafka frees json */
}

/* ---- the page ---- */

static void counter(bw_wbuf_t *w, const char *name, const char *help, double v)
{
    bw_prom_family(w, name, "counter", help);
    bw_prom_sample(w, name, "", v);
}

static void gauge(bw_wbuf_t *w, const char *name, const char *help, double v)
{
    bw_prom_family(w, name, "gauge", help);
    bw_prom_sample(w, name, "", v);
}

static void tp_label(char *lab, size_t n, const char *topic, int32_t part)
{
    char esc[512];

    bw_prom_escape(esc, sizeof(esc), topic);
    snprintf(lab, n, "topic=\"%s\",partition=\"%d\"", esc, (int)part);
}

static void stage_families(bw_pipeline_t *p, bw_wbuf_t *w,
                           const bw_pipeline_stats_t *st)
{
    char lab[600];
    uint64_t dlq[N_DLQ] = {0}, alerts = 0;

    bw_prom_family(w, "bayeswatch_records_in_total", "counter",
                   "input records processed, per input partition");
    for (int i = 0; i < p->n_tasks; i++) {
        tp_label(lab, sizeof(lab), p->tasks[i]->topic, p->tasks[i]->partition);
        bw_prom_sample(w, "bayeswatch_records_in_total", lab,
                       (double)LOADR(p->tasks[i]->consumed));
    }
    counter(w, "bayeswatch_records_scored_total",
            "input records scored (a score record produced)",
            (double)st->scored);
    for (int i = 0; i < p->n_workers; i++) {
        for (int r = 0; r < N_DLQ; r++) {
            dlq[r] += LOADR(p->workers[i].dlq[r]);
        }
        alerts += LOADR(p->workers[i].alerts);
    }
    bw_prom_family(w, "bayeswatch_dead_letters_total", "counter",
                   "input records sent to the dead-letter topic, by reason");
    for (int r = 0; r < N_DLQ; r++) {
        bw_prom_sample1(w, "bayeswatch_dead_letters_total", "reason",
                        bw_dlq_reason_name(r), (double)dlq[r]);
    }
    counter(w, "bayeswatch_late_records_total",
            "records out of order for their series (a score record "
            "marked late) or past the allowed lateness (a dead letter, "
            "reason late)",
            (double)st->late);
    counter(w, "bayeswatch_alerts_total",
            "scored events at or above engine.alert_threshold, out of "
            "warm-up",
            (double)alerts);
    bw_prom_family(w, "bayeswatch_output_records_total", "counter",
                   "records produced, by output");
    bw_prom_sample(w, "bayeswatch_output_records_total", "output=\"scores\"",
                   (double)(st->scored + st->stale));
    bw_prom_sample(w, "bayeswatch_output_records_total", "output=\"threats\"",
                   (double)st->threats);
    bw_prom_sample(w, "bayeswatch_output_records_total",
                   "output=\"dead_letters\"", (double)st->dead_letters);
    bw_prom_sample(w, "bayeswatch_output_records_total", "output=\"alerts\"",
                   (double)st->siem_alerts);
    counter(w, "bayeswatch_stale_markers_total",
            "stale-series markers produced (once per silence)",
            (double)st->stale);
}

static void threat_families(bw_pipeline_t *p, bw_wbuf_t *w)
{
    const bw_fusion_cfg_t *fc = &p->cfg->model.fusion;

    bw_prom_family(w, "bayeswatch_threat_assessments_total", "counter",
                   "threat records produced, by fusion rule");
    for (int r = 0; r < fc->n_rules; r++) {
        uint64_t n = 0;
        for (int i = 0; i < p->n_workers; i++) {
            n += LOADR(p->workers[i].rule_threats[r]);
        }
        bw_prom_sample1(w, "bayeswatch_threat_assessments_total", "rule",
                        fc->rules[r].name, (double)n);
    }
}

static void txn_families(bw_pipeline_t *p, bw_wbuf_t *w,
                         const bw_pipeline_stats_t *st)
{
    counter(w, "bayeswatch_transactions_committed_total",
            "transactions committed (at_least_once: offset commits)",
            (double)st->commits);
    counter(w, "bayeswatch_transactions_aborted_total",
            "transactions aborted (their input rewound and replayed)",
            (double)st->aborts);
    counter(w, "bayeswatch_producer_renewals_total",
            "producers replaced after a stall fenced them (their "
            "transaction outlived transaction.timeout.ms)",
            (double)p->renewals);
    counter(w, "bayeswatch_schema_waits_total",
            "times a partition paused for a writer schema the registry "
            "could not give (registry.url): the record is tried again",
            (double)st->schema_waits);
    bw_prom_family(w, "bayeswatch_commit_duration_seconds", "histogram",
                   "time to commit a transaction (state, offsets, commit)");
    bw_hist_write(w, "bayeswatch_commit_duration_seconds", "", &p->commit_hist);
    bw_prom_family(w, "bayeswatch_event_commit_latency_seconds", "histogram",
                   "per partition and commit: from the Kafka timestamp of "
                   "its oldest record in the transaction to the commit");
    bw_hist_write(w, "bayeswatch_event_commit_latency_seconds", "",
                  &p->e2c_hist);
}

/* Lag of statistics partition @p i (mu held, workers quiesced) if this
 * instance holds it: its end less this instance's position
 * (bw_kstats_lag); -1 for a partition it does not hold, whose figure
 * (librdkafka keeps every subscribed partition) another instance owns. */
static int64_t lag_of(const bw_pipeline_t *p, int i)
{
    const bw_kstats_t *st = p->kstats;

    for (int k = 0; k < p->n_tasks; k++) {
        const task_t *t = p->tasks[k];
        if (t->partition == st->parts[i].partition &&
            strcmp(t->topic, st->parts[i].topic) == 0) {
            return bw_kstats_lag(st, i, t->next);
        }
    }
    return -1;
}

static void consumer_families(bw_pipeline_t *p, bw_wbuf_t *w,
                              const bw_pipeline_stats_t *st)
{
    char lab[600];

    counter(w, "bayeswatch_rebalances_total",
            "partition assignments and revocations", (double)st->rebalances);
    gauge(w, "bayeswatch_assigned_partitions",
          "input partitions assigned to this instance", st->partitions);
    pthread_mutex_lock(&p->mu);
    bw_prom_family(w, "bayeswatch_consumer_lag", "gauge",
                   "records between this instance's position and the "
                   "partition's end (read_committed: the last stable "
                   "offset), per librdkafka's statistics");
    for (int i = 0; p->kstats != NULL && i < p->kstats->n_parts; i++) {
        int64_t lag = lag_of(p, i);
        if (lag >= 0) {
            tp_label(lab, sizeof(lab), p->kstats->parts[i].topic,
                     p->kstats->parts[i].partition);
            bw_prom_sample(w, "bayeswatch_consumer_lag", lab, (double)lag);
        }
    }
    bw_prom_family(w, "bayeswatch_broker_rtt_seconds", "gauge",
                   "average broker round-trip time (librdkafka statistics)");
    for (int i = 0; p->kstats != NULL && i < p->kstats->n_brokers; i++) {
        bw_prom_sample1(w, "bayeswatch_broker_rtt_seconds", "broker",
                        p->kstats->brokers[i].name,
                        p->kstats->brokers[i].rtt_s);
    }
    bw_prom_family(w, "bayeswatch_producer_transaction_state", "gauge",
                   "1 for the transactional producer's current state "
                   "(librdkafka statistics)");
    if (p->txn_state[0] != '\0') {
        bw_prom_sample1(w, "bayeswatch_producer_transaction_state", "state",
                        p->txn_state, 1);
    }
    pthread_mutex_unlock(&p->mu);
}

/* Add @p t's engine's retirements since the last call to the pipeline's
 * totals. */
static void retired_fold(bw_pipeline_t *p, task_t *t)
{
    bw_engine_stats_t es;
    uint64_t cur[3];

    if (t->eng == NULL) {
        return;
    }
    bw_engine_stats(t->eng, &es);
    cur[0] = es.retired;
    cur[1] = es.retired_groups;
    cur[2] = es.retired_entities;
    for (int k = 0; k < 3; k++) {
        /* an engine's counts only grow while it lives */
        p->retired_total[k] += cur[k] - t->retired_seen[k];
        t->retired_seen[k] = cur[k];
    }
}

void bw__task_engine(bw_pipeline_t *p, task_t *t, bw_engine_t *eng)
{
    retired_fold(p, t);
    bw_engine_destroy(t->eng);
    t->eng = eng;
    memset(t->retired_seen, 0, sizeof(t->retired_seen));
}

static void model_families(bw_pipeline_t *p, bw_wbuf_t *w)
{
    bw_engine_stats_t es, sum = {0};
    bw_hist_t proc, ess, pit;
    double ess_min = INFINITY;
    uint64_t resampled = 0, warm = 0;

    for (int i = 0; i < p->n_tasks; i++) {
        bw_engine_stats(p->tasks[i]->eng, &es);
        sum.series += es.series;
        sum.groups += es.groups;
        sum.entities += es.entities;
        sum.bytes += es.bytes;
        retired_fold(p, p->tasks[i]);
        for (int m = 0; m <= BW_MODEL_POOLED_NORMAL; m++) {
            sum.series_by_model[m] += es.series_by_model[m];
        }
    }
    bw_hist_init(&proc, proc_bounds, NB(proc_bounds));
    bw_hist_init(&ess, ess_bounds, NB(ess_bounds));
    bw_hist_init(&pit, pit_bounds, NB(pit_bounds));
    for (int i = 0; i < p->n_workers; i++) {
        bw_worker_t *wk = &p->workers[i];
        bw_hist_add(&proc, &wk->proc);
        bw_hist_add(&ess, &wk->ess);
        bw_hist_add(&pit, &wk->pit);
        ess_min = wk->ess_min < ess_min ? wk->ess_min : ess_min;
        wk->ess_min = INFINITY;
        resampled += LOADR(wk->resampled);
        warm += LOADR(wk->warmup);
    }
    bw_prom_family(w, "bayeswatch_event_processing_seconds", "histogram",
                   "time to decode, score and produce one input record");
    bw_hist_write(w, "bayeswatch_event_processing_seconds", "", &proc);
    bw_prom_family(w, "bayeswatch_series", "gauge",
                   "series held, by the model their route gives them");
    for (int m = 0; m <= BW_MODEL_POOLED_NORMAL; m++) {
        bw_prom_sample1(w, "bayeswatch_series", "model", bw_model_kind_name(m),
                        (double)sum.series_by_model[m]);
    }
    bw_prom_family(w, "bayeswatch_model_objects", "gauge",
                   "models held, by kind");
    bw_prom_sample(w, "bayeswatch_model_objects", "kind=\"series\"",
                   (double)sum.series);
    bw_prom_sample(w, "bayeswatch_model_objects", "kind=\"pooled_group\"",
                   (double)sum.groups);
    bw_prom_sample(w, "bayeswatch_model_objects", "kind=\"fusion_entity\"",
                   (double)sum.entities);
    gauge(w, "bayeswatch_model_memory_bytes", "heap held by the models",
          (double)sum.bytes);
    /* every engine this instance has held: a partition that moves away
     * does not take its count with it (a transaction abort's replay
     * counts the retirements it redoes again) */
    counter(w, "bayeswatch_series_retired_total",
            "series retired after engine.retire_after_ms of silence",
            (double)p->retired_total[0]);
    bw_prom_family(w, "bayeswatch_model_objects_retired_total", "counter",
                   "models retired after engine.retire_after_ms of silence, "
                   "by kind");
    bw_prom_sample(w, "bayeswatch_model_objects_retired_total",
                   "kind=\"series\"", (double)p->retired_total[0]);
    bw_prom_sample(w, "bayeswatch_model_objects_retired_total",
                   "kind=\"pooled_group\"", (double)p->retired_total[1]);
    bw_prom_sample(w, "bayeswatch_model_objects_retired_total",
                   "kind=\"fusion_entity\"", (double)p->retired_total[2]);
    bw_prom_family(w, "bayeswatch_ess_ratio", "histogram",
                   "particle filter effective sample size / particles, per "
                   "series score");
    bw_hist_write(w, "bayeswatch_ess_ratio", "", &ess);
    bw_prom_family(w, "bayeswatch_predictive_pvalue", "histogram",
                   "the two-sided predictive tail probability of each series "
                   "score out of warm-up: for a calibrated model on normal "
                   "data a share q of them lies at or below q (a share far "
                   "above 0.01 at le=0.01 means over-confident predictions "
                   "or many anomalies)");
    bw_hist_write(w, "bayeswatch_predictive_pvalue", "", &pit);
    gauge(w, "bayeswatch_ess_ratio_min",
          "the smallest ESS / particles since the previous page (1 when no "
          "series was scored)",
          isfinite(ess_min) ? ess_min : 1.0);
    counter(w, "bayeswatch_resamples_total", "particle filter resampling steps",
            (double)resampled);
    counter(w, "bayeswatch_warmup_scores_total",
            "scores of series still in warm-up (not alerting)", (double)warm);
}

/* Readiness, in the order its conditions are met (/readyz and the
 * bayeswatch_ready gauge). */
enum { NOT_INIT, NOT_JOINED, NOT_RESTORED, READY };

static int readiness(const bw_pipeline_t *p)
{
    return !p->producer_ready   ? NOT_INIT
           : !p->joined         ? NOT_JOINED
           : p->restore_pending ? NOT_RESTORED
                                : READY;
}

static void state_families(bw_pipeline_t *p, bw_wbuf_t *w,
                           const bw_pipeline_stats_t *st)
{
    counter(w, "bayeswatch_restores_total", "partitions restored",
            (double)st->restores);
    counter(w, "bayeswatch_restore_replayed_records_total",
            "input records replayed by restores (those since the last "
            "state flush)",
            (double)p->replayed);
    counter(w, "bayeswatch_restore_skipped_records_total",
            "input records delivered again after a restore whose state "
            "had already learned from them, not scored twice",
            (double)atomic_load(&p->skipped));
    counter(w, "bayeswatch_restore_seconds_total",
            "time spent restoring partitions", st->restore_s);
    gauge(w, "bayeswatch_restore_partitions_pending",
          "partitions of the current assignment not yet restored",
          p->restore_pending);
    gauge(w, "bayeswatch_restore_records_read",
          "changelog records read by the latest partition restore",
          (double)p->restore_read);
    counter(w, "bayeswatch_changelog_records_total",
            "state changelog records produced (tombstones included)",
            (double)st->changelog_records);
    counter(w, "bayeswatch_changelog_bytes_total",
            "state changelog bytes produced (keys and values)",
            (double)st->changelog_bytes);
    gauge(w, "bayeswatch_ready",
          "1 when the producer is initialised, the group has given this "
          "member its assignment and every assigned partition is restored",
          readiness(p) == READY);
}

static void build_info(bw_pipeline_t *p, bw_wbuf_t *w)
{
    char lab[400], inst[300];

    bw_prom_escape(inst, sizeof(inst), p->instance);
    snprintf(lab, sizeof(lab),
             "version=\"%s\",config_version=\"%s\",instance=\"%s\","
             "guarantee=\"%s\"",
             BW_VERSION, p->version, inst,
             p->eos ? "exactly_once" : "at_least_once");
    bw_prom_family(w, "bayeswatch_build_info", "gauge",
                   "1, labelled with the build and the running config");
    bw_prom_sample(w, "bayeswatch_build_info", lab, 1);
}

bool bw__metrics_due(const bw_pipeline_t *p)
{
    return p->obs != NULL && bw_mono_ms() - p->last_page >= PAGE_MS;
}

void bw__metrics_publish(bw_pipeline_t *p)
{
    bw_pipeline_stats_t st;
    bw_wbuf_t *w = &p->page;

    if (p->obs == NULL) {
        return;
    }
    p->last_page = bw_mono_ms();
    bw_pipeline_stats(p, &st);
    w->len = 0;
    w->err = BW_OK;
    build_info(p, w);
    stage_families(p, w, &st);
    threat_families(p, w);
    txn_families(p, w, &st);
    consumer_families(p, w, &st);
    model_families(p, w);
    state_families(p, w, &st);
    if (w->err == BW_OK) {
        bw_obs_publish_metrics(p->obs, w);
    }
}

void bw_pipeline_stats(const bw_pipeline_t *p, bw_pipeline_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    for (int i = 0; i < p->n_workers; i++) {
        bw_worker_t *w = &p->workers[i];
        st->consumed += LOADR(w->consumed);
        st->scored += LOADR(w->scored);
        st->threats += LOADR(w->threats);
        st->siem_alerts += LOADR(w->siem_alerts);
        st->stale += LOADR(w->stale);
        st->dead_letters += LOADR(w->dead_letters);
        st->late += LOADR(w->late);
    }
    st->commits = p->commits;
    st->aborts = p->aborts;
    st->schema_waits = atomic_load(&p->schema_waits);
    st->rebalances = p->rebalances;
    st->changelog_records = p->cl_records;
    st->changelog_bytes = p->cl_bytes;
    st->restores = p->restores;
    st->restore_s = (double)p->restore_ms / 1000.0;
    st->partitions = p->n_tasks;
}

/* ---- health ---- */

void bw__health(bw_pipeline_t *p)
{
    char why[128];
    int state = readiness(p);

    if (p->obs == NULL) {
        return;
    }
    bw_obs_heartbeat(p->obs, bw_mono_ms(), p->health_window_ms);
    if (state == p->ready_state && state != NOT_RESTORED) {
        return; /* unchanged: no lock taken */
    }
    p->ready_state = state;
    if (state == NOT_INIT) {
        bw_obs_set_ready(p->obs, false, "the producer is initialising");
    } else if (state == NOT_JOINED) {
        bw_obs_set_ready(p->obs, false,
                         "joining the consumer group (no assignment yet)");
    } else if (state == NOT_RESTORED) {
        snprintf(why, sizeof(why), "restoring %d partition(s)",
                 p->restore_pending);
        bw_obs_set_ready(p->obs, false, why);
    } else {
        bw_obs_set_ready(p->obs, true, NULL);
    }
}
