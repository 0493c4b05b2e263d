/*
 * The web view's JSON (GET /api/overview, /api/series?key=..., /api/slo),
 * built from the store under its lock by the listener's thread.
 *
 * overview: regions by services, each cell the largest current anomaly
 *   probability of its series and its oldest freshness; the most anomalous
 *   series; active threats, ranked, with their contributors; stale series.
 * series:   one series' recent points (value, expected, 95% band, the
 *   event's, block and pooled evidence, direction, alert).
 * slo:      pooled series with an slo: P(breach) now and the error-budget
 *   burn rate over 1 h and 6 h (view.c), with a risk level from the SRE
 *   Workbook's multiwindow thresholds (14.4 over 1 h: critical; 6 over
 *   6 h: high; above 1 over 6 h: elevated).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bayeswatch/mem.h"
#include "obs_int.h"

#define TOP_SERIES 40
#define MAX_STALE 100
#define MAX_CELLS 4096
#define MAX_POINTS 20000
#define MAX_EPISODES 50
#define EPISODE_RING 1024

/* @p before (a separator or key), then @p v, or null when not finite. */
static void jnum(bw_wbuf_t *w, const char *before, double v)
{
    bw_wbuf_printf(w, "%s", before);
    if (isfinite(v)) {
        bw_wbuf_printf(w, "%.6g", v);
    } else {
        bw_wbuf_printf(w, "null");
    }
}

/* An age in seconds (one decimal), null when there is none. */
static void jage(bw_wbuf_t *w, int64_t now, int64_t wall_ms)
{
    if (wall_ms > 0) {
        bw_wbuf_printf(w, ",\"age_s\":%.1f", (double)(now - wall_ms) / 1000.0);
    } else {
        bw_wbuf_printf(w, ",\"age_s\":null");
    }
}

static void jkey(bw_wbuf_t *w, const vseries_t *s)
{
    char key[BW_ID_MAX];

    bw_join_esc(key, sizeof(key), '/', s->region, s->service, s->metric);
    bw_wbuf_json_str(w, key);
}

/* ---- overview ---- */

typedef struct {
    const vseries_t *top; /* the cell's most anomalous series */
    double p;
    int64_t oldest_wall;
    int n, alerts, stale;
} cell_t;

static void cell_add(cell_t *c, const vseries_t *s)
{
    double p = s->warmup || s->stale ? 0.0 : s->p;

    if (c->n == 0 || p > c->p) {
        c->p = p;
        c->top = s;
    }
    /* a series not scored since this process started (first seen through
     * a stale marker after a restore) has no wall time: no age */
    if (s->last_wall_ms > 0 &&
        (c->oldest_wall == 0 || s->last_wall_ms < c->oldest_wall)) {
        c->oldest_wall = s->last_wall_ms;
    }
    c->n++;
    c->alerts += s->alert && !s->stale;
    c->stale += s->stale;
}

static void cells_json(bw_obs_t *obs, int64_t now, bw_wbuf_t *w)
{
    bw_map_t *idx = bw_map_new(MAX_CELLS);
    cell_t *cells = bw_calloc(MAX_CELLS, sizeof(cell_t));
    int n = 0;

    for (int i = 0; idx != NULL && cells != NULL && i < obs->n_series; i++) {
        const vseries_t *s = &obs->series[i];
        char key[2 * VNAME];
        cell_t *c;
        if (s->moved) {
            continue;
        }
        bw_join(key, sizeof(key), '\x1f', s->region, s->service, NULL);
        if ((c = bw_map_get(idx, key)) == NULL && n < MAX_CELLS &&
            bw_map_put(idx, key, &cells[n]) == BW_OK) {
            c = &cells[n++];
        }
        if (c != NULL) {
            cell_add(c, s);
        }
    }
    bw_wbuf_printf(w, "\"cells\":[");
    for (int i = 0; i < n; i++) {
        const cell_t *c = &cells[i];
        bw_wbuf_printf(w, "%s{\"region\":", i ? "," : "");
        bw_wbuf_json_str(w, c->top->region);
        bw_wbuf_printf(w, ",\"service\":");
        bw_wbuf_json_str(w, c->top->service);
        bw_wbuf_printf(w, ",\"top\":");
        jkey(w, c->top);
        jnum(w, ",\"p\":", c->p);
        jage(w, now, c->oldest_wall);
        bw_wbuf_printf(w, ",\"series\":%d,\"alerts\":%d,\"stale\":%d}",
                       c->n, c->alerts, c->stale);
    }
    bw_wbuf_printf(w, "]");
    bw_map_destroy(idx);
    bw_free(cells);
}

static void series_json(bw_wbuf_t *w, const vseries_t *s, int64_t now)
{
    bw_wbuf_printf(w, "{\"key\":");
    jkey(w, s);
    bw_wbuf_printf(w, ",\"model\":\"%s\",\"p\":", bw_model_kind_name(s->model));
    jnum(w, "", s->p);
    jnum(w, ",\"value\":", s->value);
    jnum(w, ",\"expected\":", s->expected);
    jnum(w, ",\"lower\":", s->lower);
    jnum(w, ",\"upper\":", s->upper);
    bw_wbuf_printf(w,
                   ",\"direction\":\"%s\",\"alert\":%s,\"warmup\":%s,"
                   "\"stale\":%s,\"abnormal_since\":%lld,\"last_event\":%lld",
                   bw_direction_name(s->direction), s->alert ? "true" : "false",
                   s->warmup ? "true" : "false", s->stale ? "true" : "false",
                   (long long)s->abnormal_since, (long long)s->last_event_ms);
    jage(w, now, s->last_wall_ms);
    bw_wbuf_printf(w, "}");
}

static int by_p_desc(const void *a, const void *b)
{
    double pa = (*(const vseries_t *const *)a)->p,
           pb = (*(const vseries_t *const *)b)->p;

    return (pa < pb) - (pa > pb);
}

static void top_json(bw_obs_t *obs, int64_t now, bw_wbuf_t *w)
{
    const vseries_t **v = bw_calloc((size_t)obs->n_series + 1, sizeof(*v));
    int n = 0, m = 0;

    for (int i = 0; v != NULL && i < obs->n_series; i++) {
        if (!obs->series[i].stale && !obs->series[i].warmup &&
            !obs->series[i].moved) {
            v[n++] = &obs->series[i];
        }
    }
    if (v != NULL) {
        qsort(v, (size_t)n, sizeof(*v), by_p_desc);
    }
    bw_wbuf_printf(w, "\"top\":[");
    for (int i = 0; i < n && i < TOP_SERIES; i++) {
        bw_wbuf_printf(w, "%s", i ? "," : "");
        series_json(w, v[i], now);
    }
    bw_wbuf_printf(w, "],\"stale\":[");
    for (int i = 0; i < obs->n_series && m < MAX_STALE; i++) {
        if (obs->series[i].stale && !obs->series[i].moved) {
            bw_wbuf_printf(w, "%s", m++ ? "," : "");
            series_json(w, &obs->series[i], now);
        }
    }
    bw_wbuf_printf(w, "]");
    bw_free(v);
}

static int by_threat_desc(const void *a, const void *b)
{
    double pa = (*(const vthreat_t *const *)a)->probability,
           pb = (*(const vthreat_t *const *)b)->probability;

    return (pa < pb) - (pa > pb);
}

static void threats_json(bw_obs_t *obs, bw_wbuf_t *w)
{
    const vthreat_t **v = bw_calloc((size_t)obs->n_threats + 1, sizeof(*v));
    int n = obs->n_threats;

    bw_wbuf_printf(w, "\"threats\":[");
    for (int i = 0; v != NULL && i < n; i++) {
        v[i] = &obs->threats[i];
    }
    if (v != NULL) {
        qsort(v, (size_t)n, sizeof(*v), by_threat_desc);
    }
    for (int i = 0; v != NULL && i < n; i++) {
        bw_wbuf_printf(w, "%s{\"entity\":", i ? "," : "");
        bw_wbuf_json_str(w, v[i]->entity);
        bw_wbuf_printf(w, ",\"rule\":");
        bw_wbuf_json_str(w, v[i]->rule->name);
        jnum(w, ",\"probability\":", v[i]->probability);
        bw_wbuf_printf(w,
                       ",\"level\":\"%s\",\"time\":%lld,\"since\":%lld,"
                       "\"llr\":",
                       bw_level_name(v[i]->level), (long long)v[i]->time_ms,
                       (long long)v[i]->since_ms);
        jnum(w, "", v[i]->llr);
        bw_wbuf_printf(w, ",\"contributors\":[");
        for (int k = 0; k < v[i]->n; k++) {
            bw_wbuf_printf(w, "%s{\"metric\":", k ? "," : "");
            bw_wbuf_json_str(w, v[i]->top[k].metric);
            jnum(w, ",\"llr\":", v[i]->top[k].llr);
            jnum(w, ",\"p\":", v[i]->top[k].p);
            bw_wbuf_printf(w, "}");
        }
        bw_wbuf_printf(w, "]}");
    }
    bw_wbuf_printf(w, "]");
    bw_free(v);
}

/* ---- alert episodes in the ring ---- */

typedef struct {
    int64_t start, end;
    float peak;
    uint32_t s;
    bool open;
} episode_t;

static int by_start_desc(const void *a, const void *b)
{
    int64_t x = ((const episode_t *)a)->start,
            y = ((const episode_t *)b)->start;

    return (x < y) - (x > y);
}

/* The newest MAX_EPISODES runs of alerting points in the ring, newest
 * first; a series' run is ended by its next non-alerting point. The
 * runs are kept in a ring of EPISODE_RING while the points are read. */
static void episodes_json(bw_obs_t *obs, bw_wbuf_t *w)
{
    episode_t *ep = bw_calloc(EPISODE_RING, sizeof(*ep));
    int *cur = bw_calloc((size_t)obs->n_series + 1, sizeof(int));
    int n = 0;
    uint64_t made = 0;

    for (size_t k = 0; ep != NULL && cur != NULL && k < obs->ring_n; k++) {
        const vpoint_t *pt =
            &obs->ring[(obs->ring_head + obs->ring_cap - obs->ring_n + k) %
                       obs->ring_cap];
        int *c = &cur[pt->s]; /* its open episode + 1, or 0 */
        if (!pt->alert) {
            if (*c > 0) {
                ep[*c - 1].open = false;
            }
            *c = 0;
        } else if (*c > 0) {
            episode_t *e = &ep[*c - 1];
            e->end = pt->t;
            e->peak = pt->p > e->peak ? pt->p : e->peak;
        } else {
            int slot = (int)(made++ % EPISODE_RING);
            if (n < EPISODE_RING) {
                n++;
            } else if (cur[ep[slot].s] == slot + 1) {
                cur[ep[slot].s] = 0; /* the overwritten one's series */
            }
            ep[slot] = (episode_t){pt->t, pt->t, pt->p, pt->s, true};
            *c = slot + 1;
        }
    }
    if (ep != NULL) {
        qsort(ep, (size_t)n, sizeof(*ep), by_start_desc);
    }
    bw_wbuf_printf(w, "\"episodes\":[");
    for (int i = 0; ep != NULL && i < n && i < MAX_EPISODES; i++) {
        bw_wbuf_printf(w, "%s{\"key\":", i ? "," : "");
        jkey(w, &obs->series[ep[i].s]);
        bw_wbuf_printf(w,
                       ",\"start\":%lld,\"end\":%lld,\"peak\":%.6g,"
                       "\"ongoing\":%s}",
                       (long long)ep[i].start, (long long)ep[i].end, ep[i].peak,
                       ep[i].open && !obs->series[ep[i].s].moved ? "true"
                                                                 : "false");
    }
    bw_wbuf_printf(w, "]");
    bw_free(ep);
    bw_free(cur);
}

static void overview(bw_obs_t *obs, int64_t now, bw_wbuf_t *w)
{
    bw_wbuf_printf(w,
                   "{\"now\":%lld,\"threshold\":%g,\"series\":%d,"
                   "\"untracked_scores\":%llu,\"scores\":%llu,\"alerts\":%llu,",
                   (long long)now, obs->cfg->engine.alert_threshold,
                   obs->n_series, (unsigned long long)obs->dropped,
                   (unsigned long long)obs->scores,
                   (unsigned long long)obs->alerts);
    cells_json(obs, now, w);
    bw_wbuf_printf(w, ",");
    top_json(obs, now, w);
    bw_wbuf_printf(w, ",");
    threats_json(obs, w);
    bw_wbuf_printf(w, ",");
    episodes_json(obs, w);
    bw_wbuf_printf(w, "}");
}

/* ---- one series ---- */

static void point_json(bw_wbuf_t *w, const vpoint_t *pt, bool first)
{
    bw_wbuf_printf(w, "%s[%lld,", first ? "" : ",", (long long)pt->t);
    jnum(w, "", pt->value);
    jnum(w, ",", pt->expected);
    jnum(w, ",", pt->lower);
    jnum(w, ",", pt->upper);
    jnum(w, ",", pt->p);
    jnum(w, ",", pt->p_block);
    jnum(w, ",", pt->p_pop);
    bw_wbuf_printf(w, ",\"%s\",%d]", bw_direction_name(pt->direction),
                   pt->alert);
}

static bool one_series(bw_obs_t *obs, const char *key, int64_t now,
                       bw_wbuf_t *w)
{
    const vseries_t *s = key != NULL ? bw_map_get(obs->index, key) : NULL;
    uint32_t idx;
    size_t k, n = 0, first;

    if (s == NULL) {
        return false;
    }
    idx = (uint32_t)(s - obs->series);
    /* the newest MAX_POINTS of its points, oldest first */
    for (k = 0, first = obs->ring_n; k < obs->ring_n && n < MAX_POINTS; k++) {
        size_t at = (obs->ring_head + obs->ring_cap - 1 - k) % obs->ring_cap;
        if (obs->ring[at].s == idx) {
            n++;
            first = k;
        }
    }
    bw_wbuf_printf(w, "{\"series\":");
    series_json(w, s, now);
    bw_wbuf_printf(w,
                   ",\"threshold\":%g,\"slo\":%g,\"columns\":[\"t\",\"value\","
                   "\"expected\",\"lower\",\"upper\",\"p\",\"p_block\","
                   "\"p_pooled\",\"direction\",\"alert\"],\"points\":[",
                   obs->cfg->engine.alert_threshold, s->slo);
    n = 0;
    for (k = first + 1; k-- > 0 && first < obs->ring_n;) {
        size_t at = (obs->ring_head + obs->ring_cap - 1 - k) % obs->ring_cap;
        if (obs->ring[at].s == idx) {
            point_json(w, &obs->ring[at], n++ == 0);
        }
    }
    bw_wbuf_printf(w, "]}");
    return true;
}

/* ---- SLOs ---- */

typedef struct {
    double err[2], budget[2];
} burn_t;

static const char *risk_of(const burn_t *b)
{
    double b1 = b->budget[0] > 0 ? b->err[0] / b->budget[0] : 0.0,
           b6 = b->budget[1] > 0 ? b->err[1] / b->budget[1] : 0.0;

    return b1 >= 14.4 ? "critical"
           : b6 >= 6  ? "high"
           : b6 > 1   ? "elevated"
                      : "ok";
}

static void slo_json(bw_obs_t *obs, bw_wbuf_t *w)
{
    burn_t *b = bw_calloc((size_t)obs->n_series + 1, sizeof(*b));
    int m = 0;

    for (size_t k = 0; b != NULL && k < obs->ring_n; k++) {
        const vpoint_t *pt = &obs->ring[k];
        bw__burn_add(obs, pt, b[pt->s].err, b[pt->s].budget);
    }
    bw_wbuf_printf(w, "{\"slos\":[");
    for (int i = 0; b != NULL && i < obs->n_series; i++) {
        const vseries_t *s = &obs->series[i];
        if (!(s->slo > 0) || s->moved) {
            continue;
        }
        bw_wbuf_printf(w, "%s{\"key\":", m++ ? "," : "");
        jkey(w, s);
        bw_wbuf_printf(w, ",\"slo\":%g,\"p_breach\":", s->slo);
        jnum(w, "", s->p_slo);
        jnum(w, ",\"rate\":", s->value);
        for (int win = 0; win < 2; win++) {
            jnum(w, win ? ",\"burn_6h\":" : ",\"burn_1h\":",
                 b[i].budget[win] > 0 ? b[i].err[win] / b[i].budget[win] : NAN);
        }
        bw_wbuf_printf(w, ",\"risk\":\"%s\"}", risk_of(&b[i]));
    }
    bw_wbuf_printf(w, "]}");
    bw_free(b);
}

bool bw_obs_view_json(bw_obs_t *obs, const char *what, const char *arg,
                      int64_t now_ms, bw_wbuf_t *w)
{
    bool ok = true;

    pthread_mutex_lock(&obs->mu);
    bw__view_sweep(obs);
    if (strcmp(what, "overview") == 0) {
        overview(obs, now_ms, w);
    } else if (strcmp(what, "slo") == 0) {
        slo_json(obs, w);
    } else if (strcmp(what, "series") == 0) {
        ok = one_series(obs, arg, now_ms, w);
    } else {
        ok = false;
    }
    pthread_mutex_unlock(&obs->mu);
    return ok;
}
