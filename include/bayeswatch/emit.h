/*
 * bayeswatch - emit: anomaly-score and threat records as Avro
 * (schemas/anomaly_score.avsc, schemas/threat_score.avsc) with the
 * Confluent framing or plain. Schemas are parsed once per encoder and the
 * Avro value reused for every record.
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#ifndef BAYESWATCH_EMIT_H
#define BAYESWATCH_EMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/event.h"
#include "bayeswatch/ingest.h"

/** Where a record came from, and when: lineage and freshness. */
typedef struct {
    int64_t source_timestamp; /* Kafka timestamp of the input record, ms */
    int64_t processed_at;     /* wall clock when scored, ms */
    bool stale;
    const char *config_version; /* hex hash of the effective config */
    const char *source_topic;
    int32_t source_partition;
    int64_t source_offset;
} bw_origin_t;

typedef struct bw_encoder_s bw_encoder_t;

typedef enum {
    BW_RECORD_SCORE,      /* schemas/anomaly_score.avsc */
    BW_RECORD_THREAT,     /* schemas/threat_score.avsc */
    BW_RECORD_DEAD_LETTER /* schemas/dead_letter.avsc */
} bw_record_kind_t;

/** An input record that could not be scored. Bytes are borrowed. */
typedef struct {
    bw_dlq_reason_t reason;
    const char *detail; /* human-readable */
    const void *key;    /* NULL = the record had no key */
    size_t key_len;
    const void *value; /* NULL = the record had no value */
    size_t value_len;
} bw_dead_letter_t;

/**
 * @brief An encoder for one output schema.
 * @returns NULL with errstr set if the schema does not parse or is not the
 *  expected record.
 */
bw_encoder_t *bw_encoder_new(bw_record_kind_t kind, const char *schema_json,
                             size_t len, bw_framing_t framing,
                             int32_t schema_id, char *errstr,
                             size_t errstr_size);
void bw_encoder_destroy(bw_encoder_t *e);

/** @brief Append the score of @p ev to @p w. */
bw_err_t bw_encode_score(bw_encoder_t *e, const bw_event_t *ev,
                         const bw_score_t *sc, const bw_origin_t *o,
                         bw_wbuf_t *w);

/** @brief Append a threat assessment to @p w. */
bw_err_t bw_encode_threat(bw_encoder_t *e, const bw_threat_rec_t *t,
                          const bw_origin_t *o, bw_wbuf_t *w);

/** @brief Append a dead letter (source coordinates from @p o). */
bw_err_t bw_encode_dead_letter(bw_encoder_t *e, const bw_dead_letter_t *d,
                               const bw_origin_t *o, bw_wbuf_t *w);

/**
 * @brief A stale marker: the score record of a series that has gone silent
 * (stale = true, probability 0, no actual or typical value, event_time =
 * its last event).
 */
void bw_stale_score(bw_score_t *sc, int model);

/**
 * @brief The same records as one-line JSON objects (field names as in the
 * .avsc files; nulls for absent or non-finite numbers), appended to @p w.
 */
bw_err_t bw_json_score(const bw_event_t *ev, const bw_score_t *sc,
                       const bw_origin_t *o, bw_wbuf_t *w);
bw_err_t bw_json_threat(const bw_threat_rec_t *t, const bw_origin_t *o,
                        bw_wbuf_t *w);
/** @remark original_key / original_value are base64 (RFC 4648) strings. */
bw_err_t bw_json_dead_letter(const bw_dead_letter_t *d, const bw_origin_t *o,
                             bw_wbuf_t *w);

/* ---- SIEM alerts (src/emit/siem.c) ---- */

typedef enum {
    BW_ALERT_ANOMALY, /* a score at engine.alert_threshold */
    BW_ALERT_SLO,     /* p_slo at engine.alert_threshold */
    BW_ALERT_THREAT   /* a threat at emit.alerts.threat_level or above */
} bw_alert_kind_t;

/** @brief The alerts a score raises: a mask of 1 << bw_alert_kind_t. */
int bw_siem_score_alerts(const bw_alerts_cfg_t *cfg, double threshold,
                         const bw_score_t *sc);

/**
 * @brief The deterministic id of an alert (32 hex digits and a NUL): the
 * same source record, rule and subject give the same id, so at-least-once
 * sinks can drop duplicates.
 */
void bw_alert_id(const bw_origin_t *o, const char *rule, const char *subject,
                 char out[33]);

/** @brief Append an ECS or OCSF (bw_siem_format_t) alert document for
 * score @p sc of event @p ev (one JSON object, no newline). */
bw_err_t bw_siem_score(int format, bw_alert_kind_t kind, const bw_event_t *ev,
                       const bw_score_t *sc, const bw_origin_t *o,
                       bw_wbuf_t *w);
/** @brief The same for a threat record (its region and service from the
 * record). */
bw_err_t bw_siem_threat(int format, const bw_threat_rec_t *t,
                        const bw_origin_t *o, bw_wbuf_t *w);

#endif
