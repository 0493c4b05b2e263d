/*
 * bayeswatch - the records every stage shares: a metric event in, its
 * score, a fused threat and a stale-series marker out. Plain data; the
 * engine (engine.h) makes them, ingest decodes events, emit encodes the
 * rest, so none of those needs the engine's API.
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#ifndef BAYESWATCH_EVENT_H
#define BAYESWATCH_EVENT_H

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

/** An event's name as the models and records use it: a missing or empty
 * region, service or metric is "default". */
static inline const char *bw_name_or_default(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : "default";
}

/** The score of one event. Values are on the original (untransformed) scale. */
typedef struct {
    bw_model_kind_t model;
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
    bool late;                /* out of order for its series: not absorbed */
    bw_direction_t direction; /* series */
    double noise_sd;          /* series: model-scale noise sd */
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

/** The most bytes of an event's region, service or metric (the engine
 * refuses longer names). */
#define BW_EVENT_NAME_MAX 255

/** Room for an id: region/service/metric, each name %-encoded
 * (bw_join_esc: up to 3 bytes a byte), two separators and the NUL. */
#define BW_ID_MAX (3 * 3 * BW_EVENT_NAME_MAX + 3)

/** A fused threat assessment, reported when it changes. */
typedef struct {
    int64_t time_ms;
    const char *entity;        /* borrowed for the callback: the region,
                                  or region/service; '/' and '%' inside a
                                  name %-encoded (bw_join_esc) */
    const char *region;        /* the entity's names as they came, */
    const char *service;       /* NULL for a region entity (borrowed) */
    const bw_rule_cfg_t *rule; /* names of the rule and its signals */
    bw_threat_t threat;
} bw_threat_rec_t;

/** The entity's kind as the outputs name it: a region entity has no
 * service. */
static inline const char *bw_threat_entity_type(const bw_threat_rec_t *t)
{
    return t->service == NULL ? "region" : "region_service";
}

/** A series that has gone silent. Strings borrowed for the callback. */
typedef struct {
    const char *region, *service, *metric;
    int64_t last_event_ms; /* its last event time */
    int64_t silent_ms;     /* now - last event */
    double interval_ms;    /* its usual interval */
    int model;             /* bw_model_kind_t of its route */
} bw_stale_t;

#endif
