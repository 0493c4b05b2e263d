/*
 * bayeswatch - the Kafka stage: a consumer-group member that decodes metric
 * events, scores them with one engine per input partition (a task, as in
 * Kafka Streams: a partition's models live and move with the partition),
 * and produces anomaly scores, threat assessments, stale markers and dead
 * letters.
 *
 * exactly_once: a transactional producer (KIP-98) whose transactions also
 * carry the consumed offsets (send_offsets_to_transaction with the
 * consumer's group metadata, KIP-447), committed every
 * pipeline.commit_interval_ms. at_least_once: outputs flushed and
 * acknowledged, then the offsets committed.
 *
 * Partitioning contract: every event of a region must arrive on one input
 * partition (key the input by region). Fusion needs a region's signals
 * together; pooled models pool the regions that share a partition.
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#ifndef BAYESWATCH_PIPELINE_H
#define BAYESWATCH_PIPELINE_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "bayeswatch/config.h"
#include "bayeswatch/event.h"

typedef struct bw_pipeline_s bw_pipeline_t;

typedef struct {
    uint64_t consumed;          /* input records */
    uint64_t scored;            /* score records produced */
    uint64_t threats;           /* threat records produced */
    uint64_t siem_alerts;       /* SIEM alert documents produced */
    uint64_t stale;             /* stale markers produced */
    uint64_t dead_letters;      /* dead letters produced */
    uint64_t late;              /* scores marked late + late dead letters */
    uint64_t commits;           /* transactions (or offset commits) completed */
    uint64_t aborts;            /* transactions aborted (input rewound) */
    uint64_t schema_waits;      /* records that waited for the registry */
    uint64_t rebalances;        /* assignment changes */
    uint64_t changelog_records; /* state records produced (incl. tombstones) */
    uint64_t changelog_bytes;   /* their keys and values */
    uint64_t restores;          /* partitions restored */
    double restore_s;           /* time spent restoring */
    int partitions;             /* partitions assigned now */
} bw_pipeline_stats_t;

/** Optional observers (the demo's live view); called on the stage's
 * thread, arguments borrowed for the call. */
typedef struct {
    void (*score)(void *opaque, const bw_event_t *ev, const bw_score_t *sc);
    void (*threat)(void *opaque, const bw_threat_rec_t *t);
    void *opaque;
} bw_pipeline_observer_t;

typedef struct {
    const char *bootstrap_servers; /* overrides kafka.bootstrap_servers */
    const char *instance_id;       /* overrides pipeline.instance_id */
    bw_pipeline_observer_t observer;
    FILE *log; /* if set, the log sink's output (bw_log_setup) */
    /* borrowed, may be NULL: fed with metrics, health, scores, threats */
    struct bw_obs_s *obs;
} bw_pipeline_opts_t;

/**
 * @brief Check kafka.consumer / kafka.producer with librdkafka itself
 * (unknown property, bad value), reporting `FILE:LINE:COL: error: ...`.
 * @returns BW_OK or BW_ERR_CONFIG.
 */
bw_err_t bw_pipeline_check_config(const bw_config_t *cfg, FILE *diag);

/**
 * @brief Create the clients (and, under exactly_once, initialise the
 * transactional producer, fencing any earlier instance with the same
 * transactional.id). Subscribes to ingest.topics.
 * @param cfg borrowed; must outlive the pipeline.
 * @returns NULL with errstr set.
 */
bw_pipeline_t *bw_pipeline_new(const bw_config_t *cfg,
                               const bw_pipeline_opts_t *opts, char *errstr,
                               size_t errstr_size);

/**
 * @brief One turn of the loop: poll for input (up to @p timeout_ms), score
 * it, and commit when the commit interval has passed.
 * @returns BW_OK, or BW_ERR_KAFKA on a fatal error (fenced producer,
 *  authorisation, ...) with errstr saying which: the process should exit.
 */
bw_err_t bw_pipeline_step(bw_pipeline_t *p, int timeout_ms, char *errstr,
                          size_t errstr_size);

/**
 * @brief Loop until *stop becomes non-zero (a signal handler sets it), then
 * close: commit the open transaction (or the acknowledged offsets), leave
 * the group, flush the producer.
 * @returns BW_OK on a clean stop, BW_ERR_KAFKA on a fatal error.
 */
bw_err_t bw_pipeline_run(bw_pipeline_t *p, volatile sig_atomic_t *stop,
                         char *errstr, size_t errstr_size);

/** @brief Commit what is open, leave the group, flush. Idempotent. */
bw_err_t bw_pipeline_close(bw_pipeline_t *p, char *errstr, size_t errstr_size);

void bw_pipeline_stats(const bw_pipeline_t *p, bw_pipeline_stats_t *st);

/** @brief NULL-safe; closes first if bw_pipeline_close was not called. */
void bw_pipeline_destroy(bw_pipeline_t *p);

#endif
