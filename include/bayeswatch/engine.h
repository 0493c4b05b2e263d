/*
 * bayeswatch - the engine: routes metric events to their models (per-series
 * particle filters, pooled groups), feeds the fusion windows and reports
 * scores and threats. Transport-free: replay drives it from CSV, the Kafka
 * stage (src/pipeline/) from Avro records. The records it reads and
 * writes are in event.h.
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#ifndef BAYESWATCH_ENGINE_H
#define BAYESWATCH_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "bayeswatch/config.h"
#include "bayeswatch/event.h"
#include "bayeswatch/model.h"

typedef void (*bw_threat_cb_t)(void *opaque, const bw_threat_rec_t *rec);

typedef void (*bw_stale_cb_t)(void *opaque, const bw_stale_t *st);

typedef struct bw_engine_s bw_engine_t;

typedef struct {
    uint64_t events;   /* scored */
    uint64_t late;     /* out of order for the series, or beyond lateness */
    uint64_t rejected; /* value outside the model's domain */
    uint64_t retired;  /* series retired (engine.retire_after_ms) */
    uint64_t retired_groups;   /* pooled groups retired with their series */
    uint64_t retired_entities; /* fusion entities retired likewise */
    uint64_t series;
    uint64_t groups;
    uint64_t entities;
    uint64_t bytes; /* heap held by models */
    uint64_t series_by_model[BW_MODEL_POOLED_NORMAL + 1]; /* bw_model_kind_t */
} bw_engine_stats_t;

/**
 * @param cfg borrowed; must outlive the engine.
 * @returns NULL on failure with errstr set.
 */
bw_engine_t *bw_engine_new(const bw_config_t *cfg, char *errstr,
                           size_t errstr_size);
void bw_engine_destroy(bw_engine_t *eng);

/**
 * @brief Score one event.
 * @returns BW_OK (out filled; out->late for out-of-order events), or
 *  BW_ERR_LATE (older than the watermark minus engine.lateness_ms) or
 *  BW_ERR_RANGE / BW_ERR_INVAL / BW_ERR_FULL with errstr saying why (the
 *  event is rejected, models untouched).
 * @remark Threats whose assessment changed are passed to @p cb (may be NULL).
 */
bw_err_t bw_engine_process(bw_engine_t *eng, const bw_event_t *ev,
                           bw_score_t *out, bw_threat_cb_t cb, void *opaque,
                           char *errstr, size_t errstr_size);

void bw_engine_stats(const bw_engine_t *eng, bw_engine_stats_t *st);

/** A series' names, for bw_engine_each_series (borrowed for the call). */
typedef void (*bw_series_cb_t)(void *opaque, const char *region,
                               const char *service, const char *metric);

/** @brief Call @p cb once for every series the engine holds. O(series). */
void bw_engine_each_series(const bw_engine_t *eng, bw_series_cb_t cb,
                           void *opaque);

/**
 * @brief Report series silent for more than engine.stale_factor times their
 * usual interval at stream time @p now_ms (each once, until data resumes).
 * @returns how many were reported. O(series): call it on a timer.
 */
int bw_engine_stale_scan(bw_engine_t *eng, int64_t now_ms, bw_stale_cb_t cb,
                         void *opaque);

/** @brief The newest event time seen (the watermark), or -1. */
int64_t bw_engine_watermark(const bw_engine_t *eng);

/* ---- state: changelog records (src/engine/snapshot.c) ----
 *
 * A key is a series id (region, service and metric joined by 0x1f), or,
 * starting with 0x1f, a pooled group, a fusion entity or the engine's own
 * record (watermark). A value is a state envelope (state.h); NULL is a
 * tombstone (the key was retired or its state discarded). */

/** A record for the changelog; key and value borrowed for the call. */
typedef void (*bw_change_cb_t)(void *opaque, const char *key, size_t key_len,
                               const uint8_t *value, size_t len);

/**
 * @brief Pass every key changed since the last call to @p cb, once each
 * (tombstones first), stamped with @p offset (the input offset after the
 * last event the state reflects), and forget the changes.
 * @returns BW_OK, or BW_ERR_NOMEM when a change could not be recorded or
 * serialised: the caller must not commit (the changelog would miss it).
 * A call that fails forgets nothing: the next passes every change again,
 * the tombstones too.
 */
bw_err_t bw_engine_changes(bw_engine_t *eng, int64_t offset, bw_change_cb_t cb,
                           void *opaque, char *errstr, size_t errstr_size);

/** @brief Stop recording changes and tombstones (on by default): for a
 * caller that never calls bw_engine_changes (replay, a stage without a
 * changelog), whose change list would otherwise grow with every new or
 * retired key. bw_engine_snapshot still writes every key. */
void bw_engine_untracked(bw_engine_t *eng);

/** @brief Make the next bw_engine_changes write the engine's own record
 * (stamped with its offset) even if no model changed: the caller's input
 * position moved past records that a restore must not replay. */
void bw_engine_touch(bw_engine_t *eng);

/** @brief How many records bw_engine_changes would pass now. */
size_t bw_engine_pending(const bw_engine_t *eng);

/** @brief Every key's current record (a checkpoint), like
 * bw_engine_changes but leaving the change list alone. */
bw_err_t bw_engine_snapshot(bw_engine_t *eng, int64_t offset, bw_change_cb_t cb,
                            void *opaque, char *errstr, size_t errstr_size);

typedef struct {
    uint64_t loaded;
    uint64_t config_changed; /* written under another model config */
    uint64_t corrupt;        /* failed a check; the key starts afresh */
    uint64_t failed; /* not loaded for want of memory or of room
                        (engine.max_series): the record stays */
    int64_t offset; /* the largest input offset the records reflect; -1 */
} bw_restore_stats_t;

/**
 * @brief Load one changelog record (the latest of its key) into an engine
 * that has not scored an event yet. All or nothing: a record that fails
 * any check (envelope, checksum, kind, sizes, finite values, ranges) or
 * was written under another model config (the state version of its kind,
 * config.h, or the series' route model and transform) changes nothing;
 * its key starts from the prior and gets a tombstone at the next
 * bw_engine_changes. A record that cannot be held (out of memory, or
 * engine.max_series reached) is left out without a tombstone, counted in
 * st->failed: the caller must not go on as if it had been restored.
 * @returns BW_OK, BW_ERR_VERSION (other config), BW_ERR_CORRUPT, or
 * BW_ERR_NOMEM / BW_ERR_FULL, with errstr set; @p st counts each outcome.
 */
bw_err_t bw_engine_restore(bw_engine_t *eng, const char *key, size_t key_len,
                           const uint8_t *value, size_t len,
                           bw_restore_stats_t *st, char *errstr,
                           size_t errstr_size);

/** @brief After the last bw_engine_restore: link pooled series to their
 * groups. */
bw_err_t bw_engine_restore_done(bw_engine_t *eng);

#endif
