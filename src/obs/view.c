/*
 * The web view's store: every tracked series' latest score and freshness,
 * a ring of the most recent score points (all series together, for the
 * series charts), and each entity's latest threat assessment. Fixed
 * capacity, allocated at start-up (obs.view_series, obs.view_points);
 * writers take the handle's lock for one record.
 *
 * It also answers what the dashboards ask of the store: per-region
 * gauges (anomaly, threat, SLO-breach probability, error-budget burn
 * rate, stale series) under obs.region_label_cap, and the JSON of the
 * web view's three pages. Burn rate follows the multiwindow method of
 * the Google SRE Workbook, ch. 5 ("Alerting on SLOs"): the error rate
 * over a window divided by the SLO's error rate, over 1 h and 6 h of
 * event time; 14.4 over 1 h spends 2% of a 30-day budget in that hour.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bayeswatch/mem.h"
#include "obs_int.h"

#define MAX_THREATS 4096
#define HOUR_MS 3600000LL
#define GONE UINT32_MAX /* a retired slot's entry in remap */

bw_err_t bw__view_init(bw_obs_t *obs, char *errstr, size_t errstr_size)
{
    const bw_obs_cfg_t *c = &obs->cfg->obs;

    obs->cap_series = c->view_series;
    obs->ring_cap = (size_t)c->view_points;
    obs->cap_threats = MAX_THREATS;
    obs->index = bw_map_new((size_t)obs->cap_series);
    obs->threat_index = bw_map_new(MAX_THREATS);
    obs->series = bw_calloc((size_t)obs->cap_series, sizeof(vseries_t));
    obs->ring = bw_calloc(obs->ring_cap, sizeof(vpoint_t));
    obs->threats = bw_calloc(MAX_THREATS, sizeof(vthreat_t));
    obs->remap = bw_calloc((size_t)obs->cap_series, sizeof(uint32_t));
    obs->clock_ms = obs->sweep_at = INT64_MIN;
    if (obs->index == NULL || obs->threat_index == NULL ||
        obs->series == NULL || obs->ring == NULL || obs->threats == NULL ||
        obs->remap == NULL) {
        snprintf(errstr, errstr_size, "obs: out of memory for the web view");
        return BW_ERR_NOMEM;
    }
    return BW_OK;
}

void bw__view_free(bw_obs_t *obs)
{
    bw_map_destroy(obs->index);
    bw_map_destroy(obs->threat_index);
    bw_free(obs->series);
    bw_free(obs->ring);
    bw_free(obs->threats);
    bw_free(obs->remap);
}

/* ---- feeding ---- */

/* A region's label slot, -1 for the overflow slot "other": the later
 * regions past the cap, and a region called "other" itself (its own slot
 * next to the overflow one gave two samples with one label set). */
static int region_slot(bw_obs_t *obs, const char *region)
{
    if (strcmp(region, "other") == 0) {
        return -1;
    }
    for (int i = 0; i < obs->n_regions; i++) {
        if (strcmp(obs->regions[i], region) == 0) {
            return i;
        }
    }
    if (obs->n_regions >= obs->cfg->obs.region_label_cap) {
        return -1;
    }
    snprintf(obs->regions[obs->n_regions], VNAME, "%s", region);
    return obs->n_regions++;
}

/* A series' key in the store ("region/service/metric", each %-escaped;
 * NULL names are "default"). */
static void series_key(char key[BW_ID_MAX], const char *region,
                       const char *service, const char *metric)
{
    bw_join_esc(key, BW_ID_MAX, '/', bw_name_or_default(region),
                bw_name_or_default(service), bw_name_or_default(metric));
}

/* A threat's key in the store: its entity and its rule's name. */
static void threat_key(char key[BW_ID_MAX + BW_NAME_MAX + 2],
                       const char *entity, const char *rule)
{
    bw_join(key, BW_ID_MAX + BW_NAME_MAX + 2, '\x1f', entity, rule, NULL);
}

/* ---- retirement ----
 *
 * The store forgets what the engine retires (engine.retire_after_ms): a
 * series none of whose scores came while the view's clock (the newest
 * event time it has seen) moved retire_after_ms, and an entity's threat
 * alike. It is the engine's rule (arrival, not the series' own event
 * times) read on the view's one clock instead of each partition's
 * watermark. Without it a fleet whose series come and go filled
 * obs.view_series with retired ones, the stale-series gauge counted them
 * for ever, and new series went untracked. A sweep runs before every page
 * and when the store is full, and not again until the clock reaches the
 * earliest time a kept entry can retire (sweep_at). Kept entries keep
 * their order; the ring of points drops the retired series' points and
 * follows the others to their new slots. */

static void note_seen(bw_obs_t *obs, int64_t seen_ms)
{
    double after = obs->cfg->engine.retire_after_ms;
    int64_t at;

    if (after > 0) {
        at = seen_ms + (int64_t)after + 1; /* the first clock it is gone */
        obs->sweep_at = at < obs->sweep_at ? at : obs->sweep_at;
    }
}

/* The clock moved to @p t_ms if that is newer. */
static void tick(bw_obs_t *obs, int64_t t_ms)
{
    obs->clock_ms = t_ms > obs->clock_ms ? t_ms : obs->clock_ms;
}

/* The seen mark of what arrives now: the clock, noted for the sweep. */
static int64_t seen_now(bw_obs_t *obs)
{
    note_seen(obs, obs->clock_ms);
    return obs->clock_ms;
}

/* Compact the series, dropping those seen before @p before; remap[old] is
 * each kept one's new index (GONE for the dropped). Returns how many
 * went. */
static int sweep_series(bw_obs_t *obs, int64_t before)
{
    char key[BW_ID_MAX];
    int n = 0, gone;

    for (int i = 0; i < obs->n_series; i++) {
        vseries_t *s = &obs->series[i];
        if (s->seen_ms < before || n != i) {
            series_key(key, s->region, s->service, s->metric);
        }
        if (s->seen_ms < before) {
            bw_map_del(obs->index, key);
            obs->remap[i] = GONE;
            continue;
        }
        if (n != i) { /* its key is in: the put moves its value, no copy */
            obs->series[n] = *s;
            (void)bw_map_put(obs->index, key, &obs->series[n]);
        }
        obs->remap[i] = (uint32_t)n++;
        note_seen(obs, obs->series[n - 1].seen_ms);
    }
    gone = obs->n_series - n;
    obs->n_series = n;
    return gone;
}

static void reverse(vpoint_t *a, size_t from, size_t to)
{
    while (from + 1 < to) {
        vpoint_t t = a[from];
        a[from++] = a[--to];
        a[to] = t;
    }
}

/* The ring without the dropped series' points, oldest first from slot 0
 * (rotated there first: a full ring starts at its head). */
static void sweep_ring(bw_obs_t *obs)
{
    size_t start = (obs->ring_head + obs->ring_cap - obs->ring_n) %
                   obs->ring_cap,
           n = 0;

    reverse(obs->ring, 0, start);
    reverse(obs->ring, start, obs->ring_cap);
    reverse(obs->ring, 0, obs->ring_cap);
    for (size_t k = 0; k < obs->ring_n; k++) {
        uint32_t s = obs->remap[obs->ring[k].s];
        if (s != GONE) {
            obs->ring[n] = obs->ring[k];
            obs->ring[n++].s = s;
        }
    }
    obs->ring_n = n;
    obs->ring_head = n % obs->ring_cap;
}

static void sweep_threats(bw_obs_t *obs, int64_t before)
{
    char key[BW_ID_MAX + BW_NAME_MAX + 2];
    int n = 0;

    for (int i = 0; i < obs->n_threats; i++) {
        vthreat_t *v = &obs->threats[i];
        if (v->seen_ms < before || n != i) {
            threat_key(key, v->entity, v->rule->name);
        }
        if (v->seen_ms < before) {
            bw_map_del(obs->threat_index, key);
            continue;
        }
        if (n != i) { /* as sweep_series */
            obs->threats[n] = *v;
            (void)bw_map_put(obs->threat_index, key, &obs->threats[n]);
        }
        note_seen(obs, obs->threats[n++].seen_ms);
    }
    obs->n_threats = n;
}

/* Free the label slots of regions no kept series holds (their gauges go
 * with them), the others keeping their order; a series that fell into
 * "other" for want of a slot takes one that came free. */
static void sweep_regions(bw_obs_t *obs)
{
    bool used[sizeof(obs->regions) / sizeof(obs->regions[0])] = {false};
    int slot[sizeof(obs->regions) / sizeof(obs->regions[0])], k = 0;

    for (int i = 0; i < obs->n_series; i++) {
        if (obs->series[i].region_slot >= 0) {
            used[obs->series[i].region_slot] = true;
        }
    }
    for (int r = 0; r < obs->n_regions; r++) {
        slot[r] = used[r] ? k : -1;
        if (used[r] && k != r) {
            memcpy(obs->regions[k], obs->regions[r], VNAME);
        }
        k += used[r];
    }
    if (k == obs->n_regions) {
        return;
    }
    obs->n_regions = k;
    for (int i = 0; i < obs->n_series; i++) {
        vseries_t *s = &obs->series[i];
        s->region_slot = s->region_slot >= 0 ? slot[s->region_slot]
                                             : region_slot(obs, s->region);
    }
}

/* Retire what the clock has left behind (mu held). */
void bw__view_sweep(bw_obs_t *obs)
{
    double after = obs->cfg->engine.retire_after_ms;
    int64_t before;

    if (!(after > 0) || obs->clock_ms == INT64_MIN ||
        obs->clock_ms < obs->sweep_at) {
        return;
    }
    before = obs->clock_ms - (int64_t)after;
    obs->sweep_at = INT64_MAX;
    if (sweep_series(obs, before) > 0) {
        sweep_ring(obs);
        sweep_regions(obs);
    }
    sweep_threats(obs, before);
}

/* The series of @p ev, added if new and there is room (mu held). */
static vseries_t *series_of(bw_obs_t *obs, const bw_event_t *ev)
{
    const char *r = bw_name_or_default(ev->region),
               *sv = bw_name_or_default(ev->service),
               *m = bw_name_or_default(ev->metric);
    char key[BW_ID_MAX];
    vseries_t *s;
    int route;

    series_key(key, r, sv, m);
    s = bw_map_get(obs->index, key);
    if (s == NULL && obs->n_series >= obs->cap_series) {
        bw__view_sweep(obs);
    }
    if (s != NULL || obs->n_series >= obs->cap_series) {
        return s;
    }
    s = &obs->series[obs->n_series];
    memset(s, 0, sizeof(*s)); /* a slot a sweep left may hold a copy */
    if (bw_map_put(obs->index, key, s) != BW_OK) {
        return NULL;
    }
    obs->n_series++;
    snprintf(s->region, sizeof(s->region), "%s", r);
    snprintf(s->service, sizeof(s->service), "%s", sv);
    snprintf(s->metric, sizeof(s->metric), "%s", m);
    route = bw_config_route(&obs->cfg->engine, r, sv, m);
    s->slo = route >= 0 ? obs->cfg->engine.routes[route].slo : 0.0;
    s->region_slot = region_slot(obs, r);
    return s;
}

static void push_point(bw_obs_t *obs, uint32_t idx, const bw_event_t *ev,
                       const bw_score_t *sc)
{
    vpoint_t *pt = &obs->ring[obs->ring_head];

    pt->t = ev->time_ms;
    pt->s = idx;
    pt->value = (float)ev->value;
    pt->count = (float)ev->count;
    pt->expected = (float)sc->expected;
    pt->lower = (float)sc->lower;
    pt->upper = (float)sc->upper;
    pt->p = (float)sc->p_anomaly;
    pt->p_block = (float)sc->p_collective;
    pt->p_pop = (float)(isnan(sc->p_own) ? sc->p_population : sc->p_own);
    pt->direction = (uint8_t)sc->direction;
    pt->alert = sc->alert;
    obs->ring_head = (obs->ring_head + 1) % obs->ring_cap;
    obs->ring_n += obs->ring_n < obs->ring_cap;
}

void bw_obs_score(bw_obs_t *obs, const bw_event_t *ev, const bw_score_t *sc,
                  int64_t wall_ms)
{
    vseries_t *s;

    if (obs == NULL) {
        return;
    }
    pthread_mutex_lock(&obs->mu);
    obs->scores++;
    obs->alerts += sc->alert;
    if (!sc->late) {
        tick(obs, ev->time_ms);
    }
    if (sc->late) {
        /* older than the series' newest, unscored: neither its latest
         * state nor a point of its chart, which runs forward in time */
    } else if ((s = series_of(obs, ev)) == NULL) {
        obs->dropped++;
    } else {
        s->model = sc->model;
        s->last_event_ms = ev->time_ms;
        s->last_wall_ms = wall_ms;
        s->seen_ms = seen_now(obs);
        s->abnormal_since = sc->abnormal_since;
        s->p = bw_score_evidence(sc);
        s->value = sc->actual;
        s->expected = sc->expected;
        s->lower = sc->lower;
        s->upper = sc->upper;
        s->p_slo = sc->p_slo;
        s->p_own = sc->p_own;
        s->p_pop = sc->p_population;
        s->p_block = sc->p_collective;
        s->direction = sc->direction;
        s->alert = sc->alert;
        s->warmup = sc->warmup;
        s->stale = false;
        s->moved = false;
        push_point(obs, (uint32_t)(s - obs->series), ev, sc);
    }
    pthread_mutex_unlock(&obs->mu);
}

void bw_obs_stale(bw_obs_t *obs, const bw_stale_t *st)
{
    bw_event_t ev = {
        .region = st->region, .service = st->service, .metric = st->metric};
    vseries_t *s;

    if (obs == NULL) {
        return;
    }
    pthread_mutex_lock(&obs->mu);
    if ((s = series_of(obs, &ev)) != NULL) {
        s->stale = true;
        if (s->last_event_ms == 0) { /* first seen through its marker */
            s->last_event_ms = st->last_event_ms;
            /* before any score the view's clock is unset: its own time */
            s->seen_ms = obs->clock_ms != INT64_MIN ? obs->clock_ms
                                                    : st->last_event_ms;
            note_seen(obs, s->seen_ms);
        }
    }
    pthread_mutex_unlock(&obs->mu);
}

void bw_obs_moved(bw_obs_t *obs, const char *region, const char *service,
                  const char *metric)
{
    char key[BW_ID_MAX];
    vseries_t *s;

    if (obs == NULL) {
        return;
    }
    series_key(key, region, service, metric);
    pthread_mutex_lock(&obs->mu);
    if ((s = bw_map_get(obs->index, key)) != NULL) {
        s->moved = true;
    }
    pthread_mutex_unlock(&obs->mu);
}

static vthreat_t *threat_of(bw_obs_t *obs, const bw_threat_rec_t *t)
{
    char key[BW_ID_MAX + BW_NAME_MAX + 2];
    vthreat_t *v;

    threat_key(key, t->entity, t->rule->name);
    v = bw_map_get(obs->threat_index, key);
    if (v == NULL && obs->n_threats >= obs->cap_threats) {
        bw__view_sweep(obs);
    }
    if (v != NULL || obs->n_threats >= obs->cap_threats) {
        return v;
    }
    v = &obs->threats[obs->n_threats];
    memset(v, 0, sizeof(*v));
    if (bw_map_put(obs->threat_index, key, v) != BW_OK) {
        return NULL;
    }
    obs->n_threats++;
    snprintf(v->entity, sizeof(v->entity), "%s", t->entity);
    snprintf(v->region, sizeof(v->region), "%s",
             t->region != NULL ? t->region : t->entity);
    v->rule = t->rule;
    return v;
}

void bw_obs_threat(bw_obs_t *obs, const bw_threat_rec_t *t, int64_t wall_ms)
{
    vthreat_t *v;

    if (obs == NULL) {
        return;
    }
    pthread_mutex_lock(&obs->mu);
    tick(obs, t->time_ms);
    if ((v = threat_of(obs, t)) != NULL) {
        v->seen_ms = seen_now(obs);
        v->time_ms = t->time_ms;
        v->wall_ms = wall_ms;
        v->probability = t->threat.probability;
        v->llr = t->threat.llr;
        v->level = t->threat.level;
        v->since_ms = t->threat.since_ms;
        v->n = t->threat.n_contrib < VIEW_TOP ? t->threat.n_contrib : VIEW_TOP;
        for (int i = 0; i < v->n; i++) {
            const bw_contrib_t *c = &t->threat.contrib[i];
            v->top[i].metric = t->rule->signals[c->signal].metric;
            v->top[i].llr = c->llr;
            v->top[i].p = c->p;
        }
    }
    pthread_mutex_unlock(&obs->mu);
}

/* ---- per-region gauges ---- */

typedef struct {
    double p, threat, p_slo, stale;
    double newest_wall;       /* arrival of the region's newest score, ms */
    double err[2], budget[2]; /* errors, allowed errors: 1 h, 6 h */
} region_agg_t;

/* The region slot (or the "other" slot, cap) of a threat's region. */
static int entity_slot(const bw_obs_t *obs, const char *region)
{
    for (int i = 0; i < obs->n_regions; i++) {
        if (strcmp(obs->regions[i], region) == 0) {
            return i;
        }
    }
    return obs->n_regions;
}

void bw__burn_add(const bw_obs_t *obs, const vpoint_t *pt, double err[2],
                  double budget[2])
{
    const vseries_t *s = &obs->series[pt->s];

    if (!(s->slo > 0.0) || !(pt->count > 0.0f)) {
        return;
    }
    for (int w = 0; w < 2; w++) {
        if (s->last_event_ms - pt->t < (w == 0 ? 1 : 6) * HOUR_MS) {
            err[w] += pt->value;
            budget[w] += s->slo * pt->count;
        }
    }
}

static void burn_windows(const bw_obs_t *obs, region_agg_t *agg)
{
    for (size_t k = 0; k < obs->ring_n; k++) {
        const vpoint_t *pt = &obs->ring[k];
        int slot = obs->series[pt->s].region_slot;
        region_agg_t *a = &agg[slot >= 0 ? slot : obs->n_regions];
        bw__burn_add(obs, pt, a->err, a->budget);
    }
}

static void aggregate(const bw_obs_t *obs, region_agg_t *agg)
{
    for (int i = 0; i < obs->n_series; i++) {
        const vseries_t *s = &obs->series[i];
        region_agg_t *a =
            &agg[s->region_slot >= 0 ? s->region_slot : obs->n_regions];
        if (s->moved) { /* another instance's now: its figures, not ours */
            continue;
        }
        if (s->stale) {
            a->stale += 1;
        } else if (!s->warmup && s->p > a->p) {
            a->p = s->p;
        }
        if (s->p_slo > a->p_slo) {
            a->p_slo = s->p_slo;
        }
        if ((double)s->last_wall_ms > a->newest_wall) {
            a->newest_wall = (double)s->last_wall_ms;
        }
    }
    for (int i = 0; i < obs->n_threats; i++) {
        region_agg_t *a = &agg[entity_slot(obs, obs->threats[i].region)];
        if (obs->threats[i].probability > a->threat) {
            a->threat = obs->threats[i].probability;
        }
    }
    burn_windows(obs, agg);
}

static void region_family(bw_wbuf_t *w, const bw_obs_t *obs,
                          const region_agg_t *agg, const char *name,
                          const char *help, size_t field)
{
    bw_prom_family(w, name, "gauge", help);
    for (int i = 0; i <= obs->n_regions; i++) {
        bw_prom_sample1(w, name, "region",
                        i < obs->n_regions ? obs->regions[i] : "other",
                        *(const double *)((const char *)&agg[i] + field));
    }
}

static void burn_family(bw_wbuf_t *w, const bw_obs_t *obs,
                        const region_agg_t *agg)
{
    const char *name = "bayeswatch_error_budget_burn_rate";
    char lab[VNAME * 2 + 32], esc[VNAME * 2];

    bw_prom_family(w, name, "gauge",
                   "errors over the window divided by the errors the SLO "
                   "allows in it (pooled counts with an slo); 1 = spending "
                   "the budget exactly as fast as it accrues");
    for (int i = 0; i <= obs->n_regions; i++) {
        bw_prom_escape(esc, sizeof(esc),
                       i < obs->n_regions ? obs->regions[i] : "other");
        for (int k = 0; k < 2; k++) {
            if (agg[i].budget[k] > 0.0) {
                snprintf(lab, sizeof(lab), "region=\"%s\",window=\"%s\"", esc,
                         k == 0 ? "1h" : "6h");
                bw_prom_sample(w, name, lab, agg[i].err[k] / agg[i].budget[k]);
            }
        }
    }
}

static int warming(const bw_obs_t *obs)
{
    int n = 0;

    for (int i = 0; i < obs->n_series; i++) {
        n += obs->series[i].warmup && !obs->series[i].stale &&
             !obs->series[i].moved;
    }
    return n;
}

void bw_obs_view_metrics(bw_obs_t *obs, int64_t now_ms, bw_wbuf_t *w)
{
    region_agg_t *agg;

    pthread_mutex_lock(&obs->mu);
    bw__view_sweep(obs);
    agg = bw_calloc((size_t)obs->n_regions + 1, sizeof(*agg));
    if (agg != NULL) {
        aggregate(obs, agg);
        region_family(w, obs, agg, "bayeswatch_region_anomaly_probability",
                      "the largest current anomaly probability among the "
                      "region's fresh series out of warm-up",
                      offsetof(region_agg_t, p));
        region_family(w, obs, agg, "bayeswatch_region_threat_probability",
                      "the largest current fused threat probability among "
                      "the region's entities",
                      offsetof(region_agg_t, threat));
        region_family(w, obs, agg, "bayeswatch_slo_breach_probability",
                      "the largest P(rate > slo) among the region's pooled "
                      "series",
                      offsetof(region_agg_t, p_slo));
        region_family(w, obs, agg, "bayeswatch_region_stale_series",
                      "series of the region whose input has gone silent",
                      offsetof(region_agg_t, stale));
        for (int i = 0; i <= obs->n_regions; i++) {
            agg[i].newest_wall =
                agg[i].newest_wall > 0
                    ? (double)(now_ms - agg[i].newest_wall) / 1000.0
                    : NAN;
        }
        region_family(w, obs, agg, "bayeswatch_region_input_age_seconds",
                      "wall-clock seconds since the region's newest event "
                      "was scored: how fresh its inputs are",
                      offsetof(region_agg_t, newest_wall));
        burn_family(w, obs, agg);
        bw_free(agg);
    }
    bw_prom_family(w, "bayeswatch_view_series", "gauge",
                   "series the web view tracks (obs.view_series caps it)");
    bw_prom_sample(w, "bayeswatch_view_series", "", obs->n_series);
    bw_prom_family(w, "bayeswatch_warmup_series", "gauge",
                   "tracked series still in warm-up (not alerting yet)");
    bw_prom_sample(w, "bayeswatch_warmup_series", "", warming(obs));
    bw_prom_family(w, "bayeswatch_view_untracked_scores_total", "counter",
                   "scores of series beyond obs.view_series");
    bw_prom_sample(w, "bayeswatch_view_untracked_scores_total", "",
                   (double)obs->dropped);
    pthread_mutex_unlock(&obs->mu);
}
