/*
 * bayeswatch - ingest: metric-event records (Avro, schemas/metric_event.avsc)
 * to bw_event_t, with the Confluent wire format (magic byte 0, 4-byte
 * big-endian schema id, Avro binary) or plain Avro binary. The schema is
 * parsed once per codec and its Avro value reused for every message.
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#ifndef BAYESWATCH_INGEST_H
#define BAYESWATCH_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/event.h"
#include "bayeswatch/err.h"

typedef enum { BW_FRAMING_CONFLUENT, BW_FRAMING_PLAIN } bw_framing_t;

/* Why a record goes to the dead-letter topic; names and order match the
 * DeadLetterReason enum of schemas/dead_letter.avsc. */
#define BW_DLQ_MAP(X)                                                          \
    X(UNDECODABLE, "undecodable")                                              \
    X(UNKNOWN_SCHEMA, "unknown_schema")                                        \
    X(WRONG_SCHEMA, "wrong_schema")                                            \
    X(MISSING_FIELD, "missing_field")                                          \
    X(NON_FINITE, "non_finite")                                                \
    X(BAD_TIMESTAMP, "bad_timestamp")                                          \
    X(LATE, "late")                                                            \
    X(REJECTED, "rejected")                                                    \
    X(INVALID_UTF8, "invalid_utf8")                                            \
    X(TIME_SKEW, "time_skew")

typedef enum {
#define BW__DLQ_ENUM(name, str) BW_DLQ_##name,
    BW_DLQ_MAP(BW__DLQ_ENUM)
#undef BW__DLQ_ENUM
} bw_dlq_reason_t;

const char *bw_dlq_reason_name(int reason);

typedef struct bw_codec_s bw_codec_t;

/**
 * @brief A codec for one metric-event schema.
 * @param schema_json the .avsc text (copied).
 * @param schema_id   the Confluent schema id expected on input and written
 *                    on output (ignored for BW_FRAMING_PLAIN).
 * @returns NULL with errstr set if the schema does not parse or lacks the
 *  fields of schemas/metric_event.avsc.
 */
bw_codec_t *bw_codec_new(const char *schema_json, size_t len,
                         bw_framing_t framing, int32_t schema_id, char *errstr,
                         size_t errstr_size);
void bw_codec_destroy(bw_codec_t *c);

/**
 * Where writer schemas come from (a schema registry): the Avro JSON of
 * schema id @p id in *json (owned by @p ctx, valid while the codec lives).
 * Returns BW_OK; BW_ERR_NOTFOUND (no such schema: its records are dead
 * letters, unknown_schema); BW_ERR_IO (not available now: the record is
 * not decided); anything else makes its records dead letters too.
 */
typedef bw_err_t (*bw_schema_lookup_fn)(void *ctx, int32_t id,
                                        const char **json, char *errstr,
                                        size_t errstr_size);

/**
 * @brief Decode Confluent-framed records by their writer schema: any
 * schema id is looked up with @p fn and resolved against the codec's
 * schema (Avro schema resolution, with aliases and reader defaults; see
 * src/ingest/resolve.c); the schema_id given to bw_codec_new is no longer
 * required. Resolved writers are kept per codec (up to 32 ids).
 */
void bw_codec_set_lookup(bw_codec_t *c, bw_schema_lookup_fn fn, void *ctx);

/**
 * @brief Decode one record value into @p ev.
 * @remark ev's strings point into the codec: valid until the next call.
 * @returns BW_OK; BW_ERR_PARSE with *reason and a human detail (a dead
 * letter); BW_ERR_IO (with detail) when the record's writer schema cannot
 * be had now: not a dead letter, try the record again later.
 */
bw_err_t bw_codec_decode(bw_codec_t *c, const void *buf, size_t len,
                         bw_event_t *ev, bw_dlq_reason_t *reason, char *detail,
                         size_t detail_size);

/** @brief Encode @p ev (framed as configured) and append it to @p w. */
bw_err_t bw_codec_encode(bw_codec_t *c, const bw_event_t *ev, bw_wbuf_t *w);

#endif
