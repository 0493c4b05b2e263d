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
    uint64_t series;
    uint64_t groups;
    uint64_t entities;
    uint64_t bytes; /* heap held by models */
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

/**
 * @brief Report series silent for more than engine.stale_factor times their
 * usual interval at stream time @p now_ms (each once, until data resumes).
 * @returns how many were reported. O(series): call it on a timer.
 */
int bw_engine_stale_scan(bw_engine_t *eng, int64_t now_ms, bw_stale_cb_t cb,
                         void *opaque);

/** @brief The newest event time seen (the watermark), or -1. */
int64_t bw_engine_watermark(const bw_engine_t *eng);

#endif
