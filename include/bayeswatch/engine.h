/*
 * bayeswatch - the engine: routes metric events to their models (per-series
 * particle filters, pooled groups), feeds the fusion windows and reports
 * scores and threats. Transport-free: replay drives it from CSV, the Kafka
 * stage will drive it from Avro records.
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#ifndef BAYESWATCH_ENGINE_H
#define BAYESWATCH_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "bayeswatch/config.h"
#include "bayeswatch/model.h"

/** One metric event. Strings are borrowed for the call only; NULL or empty
 * names mean "default". */
typedef struct {
    int64_t time_ms; /* event time, epoch milliseconds */
    const char *region;
    const char *service;
    const char *metric;
    double value;
    double count; /* trials for count metrics; NAN when absent */
} bw_event_t;

/** The score of one event. Values are on the original (untransformed) scale. */
typedef struct {
    int model;        /* bw_model_kind_t */
    double p_anomaly; /* posterior probability the event is anomalous */
    /* series: P(the block of events this one closes is anomalous as a
     * whole), on block-closing events; NAN otherwise (bw_pf_out_t) */
    double p_collective;
    double score;    /* 0-100: 100 * bw_score_evidence() */
    bool alert;      /* evidence >= engine.alert_threshold, not warming up */
    double p_value;  /* predictive tail probability (series); NAN pooled */
    double surprise; /* -log predictive density, model scale (series) */
    double actual;   /* the value (series) or the region's rate (count) */
    double expected; /* predictive mean / posterior mean */
    double lower;    /* 95% predictive / credible interval */
    double upper;
    double ess; /* series only; NAN pooled */
    bool resampled;
    bool warmup;
    bool late;       /* out of order for its series: not absorbed */
    int direction;   /* bw_direction_t (series) */
    double noise_sd; /* series: model-scale noise sd */
    /* pooled models only (NAN otherwise) */
    double p_slo;     /* P(rate > route.slo) */
    double shrinkage; /* weight on the population */
    double pop_mean;  /* population mean rate / mean */
    double pop_z;     /* distance from the population in population sds */
    /* series, block-closing events: the block's mean and its predictive
     * mean (NAN otherwise) */
    double block_mean;
    double block_expected;
    /* pooled counts (NAN otherwise): the two pieces of evidence; p_anomaly
     * is p_own once the region has own_warmup intervals of history, and
     * p_population before (a region always above its peers is not
     * anomalous now; p_population says it is above them) */
    double p_own;        /* P(the rate has left the region's own baseline) */
    double p_population; /* P(rate above the population's outlier quantile),
                            the population fitted without the region */
    /* The abnormal episode the series is in (series: p_episode > 0;
     * pooled counts: its own baseline): the event time it started, -1
     * none; adopted on the event where a lasting one became normal. */
    int64_t abnormal_since;
    bool adopted;
    /* (value - expected) / predictive sd against the baseline, model scale
     * (series; pooled counts: the interval's count); NAN otherwise. The
     * evidence fusion accumulates. */
    double baseline_z;
} bw_score_t;

/** @brief The score's evidence for an alert: the larger of the event's
 * and (when a block closed) its block's posterior anomaly probability. */
static inline double bw_score_evidence(const bw_score_t *s)
{
    return s->p_collective > s->p_anomaly ? s->p_collective : s->p_anomaly;
}

/** A fused threat assessment, reported when it changes. */
typedef struct {
    int64_t time_ms;
    const char *entity;        /* borrowed for the callback */
    const bw_rule_cfg_t *rule; /* names of the rule and its signals */
    bw_threat_t threat;
} bw_threat_rec_t;

typedef void (*bw_threat_cb_t)(void *opaque, const bw_threat_rec_t *rec);

/** A series that has gone silent. Strings borrowed for the callback. */
typedef struct {
    const char *region, *service, *metric;
    int64_t last_event_ms; /* its last event time */
    int64_t silent_ms;     /* now - last event */
    double interval_ms;    /* its usual interval */
} bw_stale_t;

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
