/*
 * bayeswatch - offline replay: a CSV of metric events through the engine,
 * in file order, scores to a CSV stream.
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#ifndef BAYESWATCH_REPLAY_H
#define BAYESWATCH_REPLAY_H

#include <stdint.h>
#include <stdio.h>

#include "bayeswatch/config.h"

typedef struct {
    const char *input; /* path of the input CSV ("-" = stdin) */
    FILE *in;          /* if set: read this stream; input only names it */
    FILE *out;         /* scores */
    FILE *threats;     /* fused threats, or NULL */
    FILE *stale;       /* stale-series markers, or NULL */
    FILE *alerts;      /* SIEM alert documents (emit.alerts.format), NDJSON,
                          or NULL */
    FILE *diag;        /* per-row errors and the summary */
    int json;          /* 1: NDJSON records (schemas' field names), not CSV */
} bw_replay_opts_t;

typedef struct {
    uint64_t rows; /* data rows read */
    uint64_t scored;
    uint64_t bad;     /* unparseable or rejected rows, skipped */
    uint64_t late;    /* out of order for their series, or beyond lateness */
    uint64_t stale;   /* stale markers written */
    uint64_t threats; /* threat rows written */
    uint64_t alerts;  /* SIEM alert documents written */
    uint64_t series;
} bw_replay_stats_t;

/**
 * @brief Run a replay.
 * @returns BW_OK (bad rows do not fail the run), BW_ERR_IO (unreadable
 * input or no header) or BW_ERR_PARSE (header lacks timestamp/value).
 */
bw_err_t bw_replay_run(const bw_config_t *cfg, const bw_replay_opts_t *opts,
                       bw_replay_stats_t *st);

#endif
