/* The demo's generator and terminal view (internal to src/demo). */
#ifndef BW_DEMO_INT_H
#define BW_DEMO_INT_H

#include <stdbool.h>
#include <stdio.h>

#include "bayeswatch/engine.h"
#include "bayeswatch/model.h"

#define DEMO_REGIONS 4
#define DEMO_METRICS 4
#define DEMO_HISTORY_MIN 1440 /* one simulated day before the live part */
#define DEMO_INCIDENTS 3
#define DEMO_GRACE_MIN 15 /* alerts this long after an incident are its own */

enum { M_LATENCY, M_ERRORS, M_AUTH, M_EGRESS };
extern const char *const bw__demo_regions[DEMO_REGIONS];
extern const char *const bw__demo_metrics[DEMO_METRICS];

typedef struct {
    const char *name;
    int region;
    int metrics;  /* bit set of M_* */
    bool threat;  /* detected by a fused threat rather than a score */
    int start;    /* minutes after the start of the live part */
    int duration; /* minutes; -1 = lasts to the end */
} bw_incident_t;
extern const bw_incident_t bw__demo_incidents[DEMO_INCIDENTS];

typedef struct {
    bw_rng_t rng;
    int64_t t0_ms; /* simulated time of minute 0 */
} bw_demo_gen_t;

typedef void (*bw_demo_emit_t)(void *arg, const bw_event_t *ev);

void bw__demo_gen_init(bw_demo_gen_t *g, uint64_t seed, int64_t t0_ms);
/** Emit the events of simulated minute @p minute (0 = first of history). */
void bw__demo_gen_minute(bw_demo_gen_t *g, int minute, bw_demo_emit_t emit,
                         void *arg);
bool bw__demo_incident_active(const bw_incident_t *in, int live_minute);

/* ---- view ---- */
#define DEMO_LOG_LINES 8

typedef struct {
    double value[DEMO_METRICS];
    double p[DEMO_METRICS]; /* anomaly probability, latest */
    double p_slo;           /* errors: P(rate > SLO) */
    double rate;            /* errors / requests */
    double threat;          /* fused threat probability */
    int level;
} bw_region_view_t;

typedef struct {
    bw_region_view_t r[DEMO_REGIONS];
    char log[DEMO_LOG_LINES][160];
    int n_log;
    long long events, scores, threats, alerts, dead;
    int64_t sim_ms;
    const char *phase;
    bool ansi;
    FILE *out;
} bw_demo_view_t;

void bw__demo_view_log(bw_demo_view_t *v, const char *line);
void bw__demo_view_render(const bw_demo_view_t *v);

#endif
