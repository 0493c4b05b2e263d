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
    char name[96];
    int region;
    int metrics;  /* bit set of M_* */
    bool threat;  /* detected by a fused threat rather than a score */
    int start;    /* minutes after the start of the live part */
    int duration; /* minutes; -1 = lasts to the end */
    /* while active, each affected metric's mean is multiplied by this
     * (latency, auth failures, egress bytes; errors: the error rate) */
    double factor[DEMO_METRICS];
} bw_incident_t;

typedef struct {
    bw_rng_t rng;
    int64_t t0_ms; /* simulated time of minute 0 */
    bw_incident_t inc[DEMO_INCIDENTS];
} bw_demo_gen_t;

typedef void (*bw_demo_emit_t)(void *arg, const bw_event_t *ev);

/** The demo's generator with its shipped incidents (9-16 noise sds). */
void bw__demo_gen_init(bw_demo_gen_t *g, uint64_t seed, int64_t t0_ms);
/**
 * @brief The same kinds of incident (a lasting latency regression, an
 * error-rate burst, a security incident on auth failures and egress),
 * each in a random region at a random time within @p live_min minutes,
 * sized uniformly between @p sd_lo and @p sd_hi noise sds of each
 * affected metric at the daily mean (Poisson sds for counts): a test of
 * detection on the demo's telemetry with known truth.
 */
void bw__demo_gen_scenario(bw_demo_gen_t *g, uint64_t seed, int64_t t0_ms,
                           int live_min, double sd_lo, double sd_hi);
/** Emit the events of simulated minute @p minute (0 = first of history). */
void bw__demo_gen_minute(bw_demo_gen_t *g, int minute, bw_demo_emit_t emit,
                         void *arg);
bool bw__demo_incident_active(const bw_incident_t *in, int live_minute);

/* ---- judge: alerts against the injected incidents (judge.c) ---- */

typedef struct {
    const bw_incident_t *inc;        /* borrowed: DEMO_INCIDENTS of them */
    int live_min;                    /* length of the live part */
    double threshold;                /* engine.alert_threshold */
    int first_alert[DEMO_INCIDENTS]; /* live minute, -1 = not yet */
    bool breached[DEMO_REGIONS];     /* SLO breach in progress */
    long long false_alarms, live_scores;
} bw_demo_judge_t;

enum { BW_JUDGE_ALERT = 1, BW_JUDGE_SLO = 2 };

void bw__demo_judge_init(bw_demo_judge_t *j, const bw_incident_t *inc,
                         int live_min, double threshold);
/** A score of @p region / @p metric at live minute @p live (>= 0): which
 * alerts it raised (BW_JUDGE_*), each a detection or a false alarm. An SLO
 * breach alerts once when it starts, as an alert manager fires it. */
int bw__demo_judge_score(bw_demo_judge_t *j, int region, int metric, int live,
                         const bw_score_t *sc);
/** A fused threat at live minute @p live: level high+ alerts. */
bool bw__demo_judge_threat(bw_demo_judge_t *j, int region, int live, int level);
/** Incidents that started within the live part; of them, detected. */
int bw__demo_judge_injected(const bw_demo_judge_t *j);
int bw__demo_judge_detected(const bw_demo_judge_t *j);

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
    char url[160]; /* the web view, "" none */
    bool ansi;
    FILE *out;
} bw_demo_view_t;

void bw__demo_view_log(bw_demo_view_t *v, const char *line);
/** The web view's address: printed now (plain) or in the header. */
void bw__demo_view_url(bw_demo_view_t *v, const char *url);
void bw__demo_view_render(const bw_demo_view_t *v);

#endif
