/*
 * bayeswatch - the embedded demo: librdkafka's in-process mock cluster, a
 * synthetic telemetry generator with injected incidents, the real Kafka
 * stage (bw_pipeline, exactly-once) between them, a live terminal view,
 * and a summary of detected vs injected incidents.
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#ifndef BAYESWATCH_DEMO_H
#define BAYESWATCH_DEMO_H

#include <stdbool.h>
#include <stdio.h>

typedef struct {
    const char *config_path; /* NULL = the embedded config/demo.yaml */
    double speed; /* simulated minutes per wall second; 0 = no pacing */
    int hours;    /* live hours after one simulated day of history */
    bool plain;   /* no live view: alerts as lines (default off a tty) */
    FILE *out;
    FILE *events; /* if set, the generated events as replay CSV */
    /* the web view (obs.listen; a free port if that one is taken) stays
     * up this many seconds after the summary; < 0 until interrupted */
    double linger_s;
    /* feed mode: produce the demo's telemetry (one day of history at once,
     * then live at `speed`) to these brokers' ingest topic and nothing
     * else: no mock cluster, no stage (docker/compose.yaml's feed) */
    const char *feed_brokers;
} bw_demo_opts_t;

/**
 * @brief Run the demo and print the summary.
 * @returns 0 when every injected incident was detected, 1 when one was
 *  missed, BW_EXIT_CONFIG for a bad config, 2 for other failures (errstr).
 */
int bw_demo_run(const bw_demo_opts_t *o, char *errstr, size_t errstr_size);

#endif
