/*
 * bayeswatch - the Avro schemas (the .avsc files of schemas/), embedded in the
 * binary at build time (cmake/embed.cmake), NUL-terminated.
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#ifndef BAYESWATCH_SCHEMAS_H
#define BAYESWATCH_SCHEMAS_H

#include <stddef.h>

extern const char bw_schema_metric_event[];
extern const size_t bw_schema_metric_event_len;
extern const char bw_schema_anomaly_score[];
extern const size_t bw_schema_anomaly_score_len;
extern const char bw_schema_threat_score[];
extern const size_t bw_schema_threat_score_len;
extern const char bw_schema_dead_letter[];
extern const size_t bw_schema_dead_letter_len;

#endif
