/*
 * The obs handle's internals, shared by http.c (the listener and its
 * routes) and view.c (the web view's store and its JSON).
 *
 * Locking: `mu` guards the store (series, points, threats) and the
 * published metrics page; health and readiness are atomics and a small
 * string under `mu`. The listener's thread and the stage's threads take
 * `mu` for one record or one page at a time.
 */
#ifndef BW_OBS_INT_H
#define BW_OBS_INT_H

#include <pthread.h>

#include "bayeswatch/map.h"
#include "bayeswatch/obs.h"

#define VIEW_TOP 12 /* contributors kept per threat */
/* an event's name, whole */
#define VNAME (BW_EVENT_NAME_MAX + 1)

/* One series in the web view: its latest score and freshness. */
typedef struct {
    char region[VNAME], service[VNAME], metric[VNAME];
    int model;
    double slo;      /* the route's slo (pooled), 0 none */
    int region_slot; /* per-region metric label slot; -1 = "other" */
    int64_t last_event_ms, last_wall_ms;
    int64_t seen_ms; /* the view's clock at its last score (retirement) */
    int64_t abnormal_since;
    double p, value, expected, lower, upper, p_slo, p_own, p_pop, p_block;
    int direction;
    bool alert, stale, warmup;
    bool moved; /* its partition left this instance (bw_obs_moved) */
} vseries_t;

/* One score in the ring of recent points (the series charts). */
typedef struct {
    int64_t t;
    uint32_t s; /* series index */
    float value, expected, lower, upper, p, p_block, p_pop, count;
    uint8_t direction, alert;
} vpoint_t;

typedef struct {
    char entity[BW_ID_MAX];
    char region[VNAME]; /* the entity's region, as it came */
    const bw_rule_cfg_t *rule;
    int64_t time_ms, wall_ms;
    int64_t seen_ms;  /* the view's clock at its last assessment */
    int64_t since_ms; /* bw_threat_t.since_ms */
    double probability, llr;
    int level;
    int n;
    struct {
        const char *metric;
        double llr, p;
    } top[VIEW_TOP];
} vthreat_t;

struct bw_obs_s {
    const bw_config_t *cfg;
    pthread_mutex_t mu;
    /* the listener (http.c) */
    struct MHD_Daemon *daemon;
    char url[160];
    bw_wbuf_t page;                          /* the stage's published metrics */
    _Atomic int64_t beat_ms, beat_window_ms; /* monotonic */
    atomic_bool ready;
    char not_ready[256];
    /* the store (view.c) */
    bw_map_t *index; /* "region/service/metric" -> vseries_t* */
    vseries_t *series;
    int n_series, cap_series;
    uint64_t dropped; /* scores of series beyond the cap */
    vpoint_t *ring;
    size_t ring_cap, ring_head, ring_n;
    bw_map_t *threat_index; /* "entity\x1frule" -> vthreat_t* */
    vthreat_t *threats;
    int n_threats, cap_threats;
    /* retirement (view.c): the newest event time scored, the earliest
     * clock at which a kept series or threat can retire, and each old
     * slot's new index during a sweep (cap_series of them) */
    int64_t clock_ms, sweep_at;
    uint32_t *remap;
    char regions[1000][VNAME]; /* labelled regions, in order seen */
    int n_regions;
    uint64_t scores, alerts;
};

/* view.c */
bw_err_t bw__view_init(bw_obs_t *obs, char *errstr, size_t errstr_size);
void bw__view_free(bw_obs_t *obs);
/** Drop what engine.retire_after_ms has retired (mu held). */
void bw__view_sweep(bw_obs_t *obs);
/** Add a pooled-count point with an slo to the error and allowed-error
 * sums of the 1 h and 6 h windows before its series' latest event. */
void bw__burn_add(const bw_obs_t *obs, const vpoint_t *pt, double err[2],
                  double budget[2]);

#endif
