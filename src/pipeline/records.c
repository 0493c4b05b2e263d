/*
 * One input record through the stage, in a worker's context: decode
 * (dead letter on failure), score with the partition's engine, produce the
 * score, any threat assessments, or the dead letter. Also the stale
 * markers of a partition's silent series.
 */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/schemas.h"
#include "bayeswatch/timefmt.h"
#include "pipeline_int.h"

#define COUNT(x) atomic_fetch_add_explicit(&(x), 1, memory_order_relaxed)

bw_err_t bw__worker_init(bw_worker_t *w, bw_pipeline_t *p, char *errstr,
                         size_t errstr_size)
{
    const bw_emit_cfg_t *em = &p->cfg->emit;
    const bw_output_cfg_t *outs[3] = {&em->scores, &em->threats,
                                      &em->dead_letters};
    const char *schemas[3] = {bw_schema_anomaly_score, bw_schema_threat_score,
                              bw_schema_dead_letter};
    const size_t lens[3] = {bw_schema_anomaly_score_len,
                            bw_schema_threat_score_len,
                            bw_schema_dead_letter_len};

    w->p = p;
    w->codec = bw_codec_new(
        bw_schema_metric_event, bw_schema_metric_event_len,
        p->cfg->ingest.format == BW_FORMAT_AVRO ? BW_FRAMING_CONFLUENT
                                                : BW_FRAMING_PLAIN,
        (int32_t)p->cfg->ingest.schema_id, errstr, errstr_size);
    if (w->codec == NULL) {
        return BW_ERR_CONFIG;
    }
    if (p->registry != NULL) {
        bw_codec_set_lookup(w->codec, bw__registry_lookup, p);
    }
    for (int i = 0; i < 3; i++) {
        w->enc[i] = bw_encoder_new((bw_record_kind_t)i, schemas[i], lens[i],
                                   outs[i]->format == BW_FORMAT_AVRO
                                       ? BW_FRAMING_CONFLUENT
                                       : BW_FRAMING_PLAIN,
                                   p->schema_ids[i], errstr, errstr_size);
        if (w->enc[i] == NULL) {
            return BW_ERR_CONFIG;
        }
    }
    return BW_OK;
}

void bw__worker_free(bw_worker_t *w)
{
    bw_codec_destroy(w->codec);
    for (int i = 0; i < 3; i++) {
        bw_encoder_destroy(w->enc[i]);
    }
    bw_wbuf_free(&w->buf);
}

/* ---- producing ---- */

/* Produce one output of the record (or stale marker) from @p o's input
 * partition; kept for an abort without a changelog (resend.c), where a
 * failure that asks for the abort is done: the abort produces it again. */
static bw_err_t produce(bw_pipeline_t *p, rd_kafka_topic_t *topic,
                        const void *key, size_t klen, const void *val,
                        size_t vlen, rd_kafka_headers_t *hdrs,
                        const bw_origin_t *o)
{
    bw_err_t err;

    if (p->resend &&
        bw__resend_keep(p, topic, key, klen, val, vlen, hdrs, o->source_topic,
                        o->source_partition) != BW_OK) {
        if (hdrs != NULL) {
            rd_kafka_headers_destroy(hdrs);
        }
        return BW_ERR_NOMEM; /* fatal */
    }
    err = bw__producev(p, topic, RD_KAFKA_PARTITION_UA, key, klen, val, vlen,
                       hdrs);
    return err != BW_OK && p->resend && !atomic_load(&p->failed) ? BW_OK
                                                                 : err;
}

static bw_origin_t origin_of(const bw_pipeline_t *p,
                             const rd_kafka_message_t *m, int64_t event_time)
{
    int64_t ts = m != NULL ? rd_kafka_message_timestamp(m, NULL) : -1;
    bw_origin_t o = {
        .source_timestamp = ts >= 0 ? ts : event_time,
        .processed_at = bw_wall_ms(),
        .stale = false,
        .config_version = p->version,
        .source_topic = m != NULL ? rd_kafka_topic_name(m->rkt) : "",
        .source_partition = m != NULL ? m->partition : -1,
        .source_offset = m != NULL ? m->offset : -1,
    };
    return o;
}

/* The SIEM alerts a score raises, on the alert topic (emit.alerts), keyed
 * like the score. */
static bw_err_t emit_score_alerts(bw_worker_t *w, const bw_event_t *ev,
                                  const bw_score_t *sc, const bw_origin_t *o,
                                  const char *key, size_t key_len)
{
    const bw_config_t *cfg = w->p->cfg;
    int mask = w->p->out[OUT_ALERTS] == NULL
                   ? 0
                   : bw_siem_score_alerts(&cfg->emit.alerts,
                                          cfg->engine.alert_threshold, sc);
    bw_err_t err = BW_OK;

    for (int k = BW_ALERT_ANOMALY; k <= BW_ALERT_SLO && err == BW_OK; k++) {
        if (!(mask & (1 << k))) {
            continue;
        }
        bw_wbuf_reset(&w->buf);
        err = bw_siem_score(cfg->emit.alerts.format, (bw_alert_kind_t)k, ev, sc,
                            o, &w->buf);
        err = err != BW_OK ? bw__fatal(w->p, "encode alert", bw_strerror(err))
                           : produce(w->p, w->p->out[OUT_ALERTS], key, key_len,
                                     w->buf.data, w->buf.len, NULL, o);
        if (err == BW_OK) {
            COUNT(w->siem_alerts);
        }
    }
    return err;
}

static bw_err_t emit_score(bw_worker_t *w, const bw_event_t *ev,
                           const bw_score_t *sc, const bw_origin_t *o)
{
    const bw_output_cfg_t *out = &w->p->cfg->emit.scores;
    char key[BW_ID_MAX];
    bw_err_t err;

    size_t key_len =
        bw_join_esc(key, sizeof(key), '/', ev->region, ev->service,
                ev->metric);

    bw_wbuf_reset(&w->buf);
    err = out->format == BW_FORMAT_JSON
              ? bw_json_score(ev, sc, o, &w->buf)
              : bw_encode_score(w->enc[0], ev, sc, o, &w->buf);
    if (err != BW_OK) {
        return bw__fatal(w->p, "encode score", bw_strerror(err));
    }
    err = produce(w->p, w->p->out[BW_RECORD_SCORE], key, key_len, w->buf.data,
                  w->buf.len, NULL, o);
    return err != BW_OK ? err : emit_score_alerts(w, ev, sc, o, key, key_len);
}

static void on_threat(void *opaque, const bw_threat_rec_t *t)
{
    bw_worker_t *w = opaque;
    bw_pipeline_t *p = w->p;
    const bw_output_cfg_t *out = &p->cfg->emit.threats;
    bw_origin_t o = origin_of(p, w->cur, t->time_ms);
    bw_err_t err;

    bw_wbuf_reset(&w->buf);
    err = out->format == BW_FORMAT_JSON
              ? bw_json_threat(t, &o, &w->buf)
              : bw_encode_threat(w->enc[1], t, &o, &w->buf);
    if (err == BW_OK) {
        err = produce(p, p->out[BW_RECORD_THREAT], t->entity, strlen(t->entity),
                      w->buf.data, w->buf.len, NULL, &o);
    } else {
        err = bw__fatal(p, "encode threat", bw_strerror(err));
    }
    if (err == BW_OK && p->out[OUT_ALERTS] != NULL &&
        (int)t->threat.level >= p->cfg->emit.alerts.threat_level) {
        bw_wbuf_reset(&w->buf);
        err = bw_siem_threat(p->cfg->emit.alerts.format, t, &o, &w->buf);
        err = err != BW_OK
                  ? bw__fatal(p, "encode alert", bw_strerror(err))
                  : produce(p, p->out[OUT_ALERTS], t->entity, strlen(t->entity),
                            w->buf.data, w->buf.len, NULL, &o);
        if (err == BW_OK) {
            COUNT(w->siem_alerts);
        }
    }
    if (err == BW_OK) {
        COUNT(w->threats);
        COUNT(w->rule_threats[t->rule - p->cfg->model.fusion.rules]);
        bw_obs_threat(p->obs, t, o.processed_at);
        if (p->opts.observer.threat != NULL) {
            p->opts.observer.threat(p->opts.observer.opaque, t);
        }
    } else {
        w->cb_err = err;
    }
}

static rd_kafka_headers_t *dead_letter_headers(const rd_kafka_message_t *m,
                                               int reason)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    char num[32];

    rd_kafka_header_add(h, "bw.reason", -1, bw_dlq_reason_name(reason), -1);
    rd_kafka_header_add(h, "bw.source.topic", -1, rd_kafka_topic_name(m->rkt),
                        -1);
    snprintf(num, sizeof(num), "%d", (int)m->partition);
    rd_kafka_header_add(h, "bw.source.partition", -1, num, -1);
    snprintf(num, sizeof(num), "%lld", (long long)m->offset);
    rd_kafka_header_add(h, "bw.source.offset", -1, num, -1);
    return h;
}

/* The dead letter carries the original bytes; headers repeat the reason
 * and the coordinates for readers that do not decode Avro (kcat -J). */
/* A dead letter copies at most this much of the record's key and value:
 * the Avro writer's buffer is 64 KiB, and a larger record (up to the
 * broker's message size) made the encoding fail, which stopped the stage
 * at the same offset after every restart. The whole record stays at its
 * source coordinates, which the dead letter names. */
#define DLQ_VALUE_MAX 57344
#define DLQ_KEY_MAX 4096

static bw_err_t dead_letter(bw_worker_t *w, const rd_kafka_message_t *m,
                            int reason, const char *detail)
{
    const bw_output_cfg_t *out = &w->p->cfg->emit.dead_letters;
    char cut[512];
    bw_dead_letter_t d = {.reason = reason,
                          .detail = detail,
                          .key = m->key,
                          .key_len = m->key_len,
                          .value = m->payload,
                          .value_len = m->len};
    bw_origin_t o = origin_of(w->p, m, 0);
    bw_err_t err;

    if (d.key_len > DLQ_KEY_MAX || d.value_len > DLQ_VALUE_MAX) {
        d.key_len = d.key_len > DLQ_KEY_MAX ? DLQ_KEY_MAX : d.key_len;
        d.value_len = d.value_len > DLQ_VALUE_MAX ? DLQ_VALUE_MAX : d.value_len;
        snprintf(cut, sizeof(cut),
                 "%s (original_key and original_value: their first %zu and "
                 "%zu of %zu and %zu bytes)",
                 detail, d.key_len, d.value_len, m->key_len, m->len);
        d.detail = cut;
    }

    bw_wbuf_reset(&w->buf);
    err = out->format == BW_FORMAT_JSON
              ? bw_json_dead_letter(&d, &o, &w->buf)
              : bw_encode_dead_letter(w->enc[2], &d, &o, &w->buf);
    if (err != BW_OK) {
        return bw__fatal(w->p, "encode dead letter", bw_strerror(err));
    }
    COUNT(w->dead_letters);
    if (reason >= 0 && reason < N_DLQ) {
        COUNT(w->dlq[reason]);
    }
    if (reason == BW_DLQ_LATE) {
        COUNT(w->late);
    }
    return produce(w->p, w->p->out[BW_RECORD_DEAD_LETTER], m->key, m->key_len,
                   w->buf.data, w->buf.len, dead_letter_headers(m, reason), &o);
}

/* ---- scoring ---- */

bool bw__time_skew(const bw_pipeline_cfg_t *c, int64_t t_ms, int64_t now_ms,
                   char *detail, size_t n)
{
    double ahead = (double)t_ms - (double)now_ms;

    if (ahead > c->max_ahead_ms) {
        snprintf(detail, n,
                 "event_time %lld is %.0f s ahead of the wall clock "
                 "(pipeline.max_ahead_ms %.0f)",
                 (long long)t_ms, ahead / 1000.0, c->max_ahead_ms);
        return true;
    }
    if (c->max_behind_ms > 0 && -ahead > c->max_behind_ms) {
        snprintf(detail, n,
                 "event_time %lld is %.0f s behind the wall clock "
                 "(pipeline.max_behind_ms %.0f)",
                 (long long)t_ms, -ahead / 1000.0, c->max_behind_ms);
        return true;
    }
    return false;
}

static int engine_reason(bw_err_t err, const bw_event_t *ev)
{
    if (err == BW_ERR_LATE) {
        return BW_DLQ_LATE;
    }
    if (!bw_time_valid(ev->time_ms)) {
        return BW_DLQ_BAD_TIMESTAMP;
    }
    return isfinite(ev->value) ? BW_DLQ_REJECTED : BW_DLQ_NON_FINITE;
}

/* What /metrics counts of a score (this worker's counters). */
static void score_metrics(bw_worker_t *w, const bw_score_t *sc)
{
    if (sc->alert) {
        COUNT(w->alerts);
    }
    if (sc->warmup) {
        COUNT(w->warmup);
    }
    if (sc->late) { /* out of order for its series (late_records_total) */
        COUNT(w->late);
    }
    if (sc->model == BW_MODEL_SERIES && isfinite(sc->ess)) {
        double r = sc->ess / (double)w->p->cfg->model.pf.particles;
        bw_hist_observe(&w->ess, r);
        w->ess_min = r < w->ess_min ? r : w->ess_min;
        if (sc->resampled) {
            COUNT(w->resampled);
        }
        if (!sc->warmup && isfinite(sc->p_value)) {
            bw_hist_observe(&w->pit, sc->p_value);
        }
    }
}

static bw_err_t score(bw_worker_t *w, task_t *t, const rd_kafka_message_t *m)
{
    bw_pipeline_t *p = w->p;
    bw_event_t ev;
    bw_score_t sc;
    bw_dlq_reason_t reason;
    char detail[256];
    bw_err_t err;

    err = bw_codec_decode(w->codec, m->payload, m->len, &ev, &reason, detail,
                          sizeof(detail));
    if (err == BW_ERR_IO) {
        bw__schema_wait(p, t, m, detail); /* undecided: not a dead letter */
        return err;
    }
    if (err != BW_OK) {
        /* the registry's answer now, not a property of the bytes: a
         * restore must not replay the record under another answer */
        if (reason == BW_DLQ_UNKNOWN_SCHEMA) {
            t->force_flush = true;
        }
        return dead_letter(w, m, reason, detail);
    }
    if (bw__time_skew(&p->cfg->pipeline, ev.time_ms, bw_wall_ms(), detail,
                      sizeof(detail))) {
        t->force_flush = true; /* a wall-clock decision: see flush_due */
        return dead_letter(w, m, BW_DLQ_TIME_SKEW, detail);
    }
    w->cur = m;
    w->cb_err = BW_OK;
    err = bw_engine_process(t->eng, &ev, &sc, on_threat, w, detail,
                            sizeof(detail));
    w->cur = NULL;
    if (w->cb_err != BW_OK) {
        return w->cb_err;
    }
    if (err != BW_OK) {
        return dead_letter(w, m, engine_reason(err, &ev), detail);
    }
    bw_origin_t o = origin_of(p, m, ev.time_ms);
    err = emit_score(w, &ev, &sc, &o);
    if (err == BW_OK) {
        COUNT(w->scored);
        score_metrics(w, &sc);
        bw_obs_score(p->obs, &ev, &sc, o.processed_at);
        if (p->opts.observer.score != NULL) {
            p->opts.observer.score(p->opts.observer.opaque, &ev, &sc);
        }
    }
    return err;
}

void bw__record(bw_worker_t *w, task_t *t, const rd_kafka_message_t *m)
{
    double t0 = bw_mono_s();
    int64_t mark;

    if (atomic_load(&t->wait_state) != WAIT_NONE) {
        return; /* queued before its partition paused: it comes again */
    }
    if (m->offset < t->state_offset) {
        /* the restored state has learned from it (at_least_once writes
         * the state after the outputs, before the offsets): scored again,
         * a pooled group would count it twice and a filter call it late */
        t->next = m->offset + 1;
        atomic_fetch_add(&w->p->skipped, 1);
        return;
    }
    if (score(w, t, m) != BW_OK) {
        return; /* reported: an abort replays it, or the stage stops */
    }
    bw_hist_observe(&w->proc, bw_mono_s() - t0);
    COUNT(t->consumed);
    mark = bw_engine_watermark(t->eng);
    t->next = m->offset + 1;
    if (mark != t->mark) {
        t->mark = mark;
        t->wall_at_mark = bw_wall_ms();
    }
    COUNT(w->consumed);
}

void bw__replay_record(bw_worker_t *w, task_t *t, const rd_kafka_message_t *m)
{
    bw_event_t ev;
    bw_score_t sc;
    bw_dlq_reason_t reason;
    char detail[256];
    bw_err_t err;
    double waited = 0;

    /* the restore must see what was scored: it waits for the registry */
    while ((err = bw_codec_decode(w->codec, m->payload, m->len, &ev, &reason,
                                  detail, sizeof(detail))) == BW_ERR_IO &&
           waited < w->p->cfg->state.restore_timeout_ms) {
        usleep(500 * 1000);
        waited += 500;
    }
    if (err == BW_ERR_IO) {
        bw__fatal(w->p, "state replay", detail);
    }
    if (err == BW_OK) {
        /* no time-skew check: a record it refused forced a flush, so none
         * is replayed; the engine's own refusals repeat by themselves */
        bw_engine_process(t->eng, &ev, &sc, NULL, NULL, detail, sizeof(detail));
    }
    t->next = m->offset + 1 > t->next ? m->offset + 1 : t->next;
    t->mark = bw_engine_watermark(t->eng);
    t->wall_at_mark = bw_wall_ms();
}

/* ---- stale series ---- */

typedef struct {
    bw_worker_t *w;
    task_t *t;
} stale_ctx_t;

static void on_stale(void *opaque, const bw_stale_t *s)
{
    stale_ctx_t *c = opaque;
    bw_event_t ev = {.time_ms = s->last_event_ms,
                     .region = s->region,
                     .service = s->service,
                     .metric = s->metric,
                     .value = NAN,
                     .count = NAN};
    bw_score_t sc;
    bw_origin_t o = origin_of(c->w->p, NULL, s->last_event_ms);

    o.stale = true;
    o.source_topic = c->t->topic;
    o.source_partition = c->t->partition;
    bw_stale_score(&sc, s->model); /* the series' model, pooled or not */
    c->t->txn_touched = true; /* its stale flag is set: see the abort */
    if (bw__begin_txn(c->w->p) == BW_OK &&
        emit_score(c->w, &ev, &sc, &o) == BW_OK) {
        COUNT(c->w->stale);
        bw_obs_stale(c->w->p->obs, s);
    }
}

/* Stream time of a task: its watermark, advanced by the wall-clock time
 * since it last moved (a silent input still ages its series). */
void bw__stale_scan(bw_worker_t *w, task_t *t, int64_t now)
{
    stale_ctx_t c = {w, t};

    if (t->mark >= 0 &&
        bw_engine_stale_scan(t->eng, t->mark + (now - t->wall_at_mark),
                             on_stale, &c) > 0) {
        t->force_flush = true; /* a wall-clock decision: see flush_due */
    }
}
