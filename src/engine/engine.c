/*
 * The engine: event -> route -> model -> score, and score -> fusion window
 * -> threat. Models are created on a series' first event (bounded by
 * engine.max_series) and live as long as the engine; the particle filter
 * workspace is allocated once. Each series' RNG seed is derived from the
 * configured seed and the series key, so output does not depend on how
 * series interleave.
 */
#include <fnmatch.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/engine.h"
#include "bayeswatch/map.h"
#include "bayeswatch/timefmt.h"
#include "bayeswatch/mem.h"
#include "bayeswatch/hash.h"

#define KEY_MAX 800
#define NAME_LIMIT 255

typedef struct group_s {
    bw_hier_t *h;
    bw_map_t *regions; /* name -> index + 1 */
    int n_regions;
} group_t;

typedef struct {
    const bw_route_cfg_t *ro; /* the matching route, or default_route */
    int route;                /* its index; -1 for default_route */
    int64_t last_ms;          /* last event time (-1 none) */
    double interval_ms;       /* usual gap between events, EWMA; 0 unknown */
    bool stale;               /* reported stale, not yet resumed */
    bw_pf_t *pf;
    group_t *grp;
    int region;
} series_t;

typedef struct {
    bw_fusion_t *fu;
} entity_t;

struct bw_engine_s {
    const bw_config_t *cfg;
    int64_t watermark;
    bw_pf_ws_t *ws;
    bw_map_t *series;
    bw_map_t *groups;
    bw_map_t *entities;
    bw_engine_stats_t st;
};

bw_engine_t *bw_engine_new(const bw_config_t *cfg, char *errstr,
                           size_t errstr_size)
{
    bw_engine_t *eng = bw_calloc(1, sizeof(*eng));
    size_t max = (size_t)cfg->engine.max_series;

    if (eng == NULL) {
        goto fail;
    }
    eng->cfg = cfg;
    eng->watermark = -1;
    eng->ws = bw_pf_ws_new(&cfg->model.pf);
    eng->series = bw_map_new(max);
    eng->groups = bw_map_new(max);
    eng->entities = bw_map_new(max);
    if (eng->ws == NULL || eng->series == NULL || eng->groups == NULL ||
        eng->entities == NULL) {
        goto fail;
    }
    return eng;
fail:
    bw_engine_destroy(eng);
    bw_seterr(errstr, errstr_size, BW_ERR_NOMEM, "engine: out of memory");
    return NULL;
}

static void free_series(const char *key, void *v, void *arg)
{
    series_t *s = v;

    (void)key, (void)arg;
    bw_pf_destroy(s->pf);
    bw_free(s);
}

static void free_group(const char *key, void *v, void *arg)
{
    group_t *g = v;

    (void)key, (void)arg;
    bw_hier_destroy(g->h);
    bw_map_destroy(g->regions);
    bw_free(g);
}

static void free_entity(const char *key, void *v, void *arg)
{
    entity_t *e = v;

    (void)key, (void)arg;
    bw_fusion_destroy(e->fu);
    bw_free(e);
}

void bw_engine_destroy(bw_engine_t *eng)
{
    if (eng == NULL) {
        return;
    }
    if (eng->series != NULL) {
        bw_map_each(eng->series, free_series, NULL);
    }
    if (eng->groups != NULL) {
        bw_map_each(eng->groups, free_group, NULL);
    }
    if (eng->entities != NULL) {
        bw_map_each(eng->entities, free_entity, NULL);
    }
    bw_map_destroy(eng->series);
    bw_map_destroy(eng->groups);
    bw_map_destroy(eng->entities);
    bw_pf_ws_destroy(eng->ws);
    bw_free(eng);
}

void bw_engine_stats(const bw_engine_t *eng, bw_engine_stats_t *st)
{
    *st = eng->st;
    st->series = bw_map_size(eng->series);
    st->groups = bw_map_size(eng->groups);
    st->entities = bw_map_size(eng->entities);
}

/* ---- routing and model creation ---- */

/* Series matching no route get a plain per-series filter. */
static const bw_route_cfg_t default_route = {.region = "*",
                                             .service = "*",
                                             .metric = "*",
                                             .model = BW_MODEL_SERIES,
                                             .transform = BW_TRANSFORM_NONE,
                                             .slo = 0.0};

static int match_route(const bw_engine_cfg_t *ec, const bw_event_t *ev)
{
    for (int r = 0; r < ec->n_routes; r++) {
        const bw_route_cfg_t *ro = &ec->routes[r];
        if (fnmatch(ro->region, ev->region, 0) == 0 &&
            fnmatch(ro->service, ev->service, 0) == 0 &&
            fnmatch(ro->metric, ev->metric, 0) == 0) {
            return r;
        }
    }
    return -1;
}

static group_t *get_group(bw_engine_t *eng, int route, const bw_event_t *ev,
                          bw_err_t *err)
{
    char key[KEY_MAX];
    group_t *g;
    int kind = eng->cfg->engine.routes[route].model; /* pooled: a real route */

    snprintf(key, sizeof(key), "%d\x1f%s\x1f%s", route, ev->service,
             ev->metric);
    g = bw_map_get(eng->groups, key);
    if (g != NULL) {
        return g;
    }
    g = bw_calloc(1, sizeof(*g));
    if (g == NULL) {
        *err = BW_ERR_NOMEM;
        return NULL;
    }
    g->h = bw_hier_new(&eng->cfg->model.hier,
                       kind == BW_MODEL_POOLED_COUNT ? BW_HIER_COUNT
                                                     : BW_HIER_NORMAL,
                       NULL, 0);
    g->regions = bw_map_new((size_t)eng->cfg->model.hier.max_regions);
    if (g->h == NULL || g->regions == NULL ||
        (*err = bw_map_put(eng->groups, key, g)) != BW_OK) {
        free_group(NULL, g, NULL);
        *err = *err != BW_OK ? *err : BW_ERR_NOMEM;
        return NULL;
    }
    eng->st.bytes += bw_hier_memory(g->h);
    return g;
}

static bw_err_t join_group(bw_engine_t *eng, series_t *s, const bw_event_t *ev)
{
    bw_err_t err = BW_OK;
    group_t *g = get_group(eng, s->route, ev, &err);
    intptr_t idx;

    if (g == NULL) {
        return err;
    }
    idx = (intptr_t)bw_map_get(g->regions, ev->region);
    if (idx == 0) {
        if (g->n_regions >= eng->cfg->model.hier.max_regions) {
            return BW_ERR_FULL;
        }
        idx = ++g->n_regions;
        err = bw_map_put(g->regions, ev->region, (void *)idx);
        if (err != BW_OK) {
            return err;
        }
    }
    s->grp = g;
    s->region = (int)idx - 1;
    return BW_OK;
}

static series_t *new_series(bw_engine_t *eng, const char *key,
                            const bw_event_t *ev, bw_err_t *err)
{
    series_t *s = bw_calloc(1, sizeof(*s));
    uint64_t seed;

    if (s == NULL) {
        *err = BW_ERR_NOMEM;
        return NULL;
    }
    s->last_ms = -1;
    s->route = match_route(&eng->cfg->engine, ev);
    s->ro = s->route >= 0 ? &eng->cfg->engine.routes[s->route] : &default_route;
    if (s->ro->model == BW_MODEL_SERIES) {
        seed = bw_hash64((uint64_t)eng->cfg->engine.seed ^ BW_HASH64_INIT, key,
                         strlen(key));
        s->pf = bw_pf_new(&eng->cfg->model.pf, seed, NULL, 0);
        *err = s->pf != NULL ? BW_OK : BW_ERR_NOMEM;
    } else {
        *err = join_group(eng, s, ev);
    }
    if (*err == BW_OK) {
        *err = bw_map_put(eng->series, key, s);
    }
    if (*err != BW_OK) {
        goto fail;
    }
    eng->st.bytes += sizeof(*s) + (s->pf ? bw_pf_memory(s->pf) : 0);
    return s;
fail:
    free_series(NULL, s, NULL);
    return NULL;
}

/* ---- scoring ---- */

static bw_err_t transform(int t, double v, double *out)
{
    switch (t) {
    case BW_TRANSFORM_LOG:
        *out = log(v);
        return v > 0.0 ? BW_OK : BW_ERR_RANGE;
    case BW_TRANSFORM_LOG1P:
        *out = log1p(v);
        return v > -1.0 ? BW_OK : BW_ERR_RANGE;
    default:
        *out = v;
        return BW_OK;
    }
}

static double untransform(int t, double v)
{
    switch (t) {
    case BW_TRANSFORM_LOG:
        return exp(v);
    case BW_TRANSFORM_LOG1P:
        return expm1(v);
    default:
        return v;
    }
}

static void clear_score(bw_score_t *out, int model)
{
    memset(out, 0, sizeof(*out));
    out->model = model;
    out->p_value = out->ess = out->surprise = out->noise_sd = NAN;
    out->p_slo = out->shrinkage = out->pop_mean = out->pop_z = NAN;
    out->p_collective = out->block_mean = out->block_expected = NAN;
    out->p_own = out->p_population = out->baseline_z = NAN;
    out->abnormal_since = -1;
}

static bw_err_t score_series(bw_engine_t *eng, series_t *s, int tr,
                             const bw_event_t *ev, double y, bw_score_t *out)
{
    bw_pf_out_t po;
    bw_err_t err = bw_pf_update(s->pf, eng->ws, ev->time_ms, y, &po);

    if (err == BW_ERR_LATE) {
        out->late = true;
        eng->st.late++;
        return BW_OK;
    }
    if (err != BW_OK) {
        return err;
    }
    out->p_anomaly = po.p_anomaly;
    out->p_value = po.p_value;
    out->surprise = po.surprise;
    out->expected = untransform(tr, po.expected);
    out->lower = untransform(tr, po.lower);
    out->upper = untransform(tr, po.upper);
    out->ess = po.ess;
    out->resampled = po.resampled;
    out->warmup = po.warmup;
    out->direction = po.direction;
    out->noise_sd = po.noise_sd;
    out->abnormal_since = po.since_ms;
    out->adopted = po.adopted;
    out->baseline_z = po.pred_sd > 0.0 ? (y - po.expected) / po.pred_sd : NAN;
    if (po.block_closed) {
        out->p_collective = po.p_collective;
        out->block_mean = untransform(tr, po.block_mean);
        out->block_expected = untransform(tr, po.block_expected);
    }
    return BW_OK;
}

static bw_err_t score_pooled(series_t *s, const bw_route_cfg_t *ro,
                             const bw_event_t *ev, double y, bw_score_t *out)
{
    bw_hier_out_t ho;
    bool count = ro->model == BW_MODEL_POOLED_COUNT;
    bw_err_t err = bw_hier_observe(s->grp->h, s->region, ev->time_ms, y,
                                   count ? ev->count : 1.0, ro->slo, &ho);

    if (err != BW_OK) {
        return err;
    }
    out->p_anomaly = ho.p_outlier;
    out->p_population = ho.p_outlier;
    if (count) {
        /* The region against itself once it has a history: a region that
         * has always been above its peers is not anomalous now (its
         * p_population says it is above them). Until then, against its
         * peers (a new region has no baseline of its own). */
        out->p_own = ho.own_warmup ? NAN : ho.p_own;
        out->p_anomaly = ho.own_warmup ? ho.p_outlier : ho.p_own;
        out->abnormal_since = ho.own_warmup ? -1 : ho.own_since_ms;
        out->adopted = ho.own_adopted;
        out->baseline_z = ho.own_z;
        out->direction = out->p_anomaly < 0.5  ? BW_DIR_NONE
                         : ho.own_ratio >= 1.0 ? BW_DIR_SHIFT_UP
                                               : BW_DIR_SHIFT_DOWN;
    }
    out->actual = count ? ev->value / ev->count : ev->value;
    out->expected = count ? ho.mean : untransform(ro->transform, ho.mean);
    out->lower = count ? ho.lower : untransform(ro->transform, ho.lower);
    out->upper = count ? ho.upper : untransform(ro->transform, ho.upper);
    out->p_slo = ho.p_slo;
    out->shrinkage = ho.shrinkage;
    out->pop_mean =
        count ? ho.pop_mean : untransform(ro->transform, ho.pop_mean);
    out->pop_z = ho.pop_z;
    return BW_OK;
}

static bw_err_t check_event(const bw_event_t *ev, const bw_route_cfg_t *ro,
                            char *errstr, size_t errstr_size)
{
    if (!isfinite(ev->value)) {
        return bw_seterr(errstr, errstr_size, BW_ERR_RANGE,
                         "value is not finite");
    }
    if (fabs(ev->value) > BW_MODEL_MAX_ABS) {
        return bw_seterr(errstr, errstr_size, BW_ERR_RANGE,
                         "value %g beyond the models' range (|value| <= %g)",
                         ev->value, BW_MODEL_MAX_ABS);
    }
    if (ro->model != BW_MODEL_POOLED_COUNT) {
        return BW_OK;
    }
    if (isnan(ev->count)) {
        return bw_seterr(errstr, errstr_size, BW_ERR_INVAL,
                         "metric %s is routed to pooled_count but the event "
                         "has no count",
                         ev->metric);
    }
    if (!isfinite(ev->count) || ev->count <= 0 || ev->value < 0 ||
        ev->value > ev->count) {
        return bw_seterr(errstr, errstr_size, BW_ERR_RANGE,
                         "need 0 <= value <= count and count > 0, got "
                         "value=%g count=%g",
                         ev->value, ev->count);
    }
    return BW_OK;
}

/* ---- fusion ---- */

static entity_t *get_entity(bw_engine_t *eng, const char *key)
{
    entity_t *e = bw_map_get(eng->entities, key);

    if (e != NULL) {
        return e;
    }
    e = bw_calloc(1, sizeof(*e));
    if (e == NULL) {
        return NULL;
    }
    e->fu = bw_fusion_new(&eng->cfg->model.fusion, NULL, 0);
    if (e->fu == NULL || bw_map_put(eng->entities, key, e) != BW_OK) {
        free_entity(NULL, e, NULL);
        return NULL;
    }
    eng->st.bytes += sizeof(*e);
    return e;
}

static void fuse(bw_engine_t *eng, const bw_event_t *ev, double z,
                 bw_threat_cb_t cb, void *opaque)
{
    const bw_fusion_cfg_t *fc = &eng->cfg->model.fusion;
    char key[KEY_MAX];
    entity_t *e = NULL;

    if (fc->n_rules == 0) {
        return; /* nothing to fuse: skip the entity key */
    }
    bw_join(key, sizeof(key), '/', ev->region,
            fc->entity == BW_ENTITY_REGION ? NULL : ev->service, NULL);
    for (int r = 0; r < fc->n_rules; r++) {
        const bw_rule_cfg_t *rule = &fc->rules[r];
        for (int s = 0; s < rule->n_signals; s++) {
            bw_threat_rec_t rec;
            if (strcmp(rule->signals[s].metric, ev->metric) != 0) {
                continue;
            }
            if (e == NULL && (e = get_entity(eng, key)) == NULL) {
                return;
            }
            bw_fusion_observe(e->fu, r, s, ev->time_ms, z);
            if (bw_fusion_eval(e->fu, r, ev->time_ms, &rec.threat) &&
                cb != NULL) {
                rec.time_ms = ev->time_ms;
                rec.entity = key;
                rec.rule = rule;
                cb(opaque, &rec);
            }
        }
    }
}

static bw_err_t lookup(bw_engine_t *eng, const bw_event_t *ev, series_t **s,
                       char *errstr, size_t errstr_size)
{
    char key[KEY_MAX];
    bw_err_t err = BW_OK;

    if (strlen(ev->region) > NAME_LIMIT || strlen(ev->service) > NAME_LIMIT ||
        strlen(ev->metric) > NAME_LIMIT) {
        return bw_seterr(errstr, errstr_size, BW_ERR_INVAL,
                         "region, service or metric longer than %d bytes",
                         NAME_LIMIT);
    }
    bw_join(key, sizeof(key), '\x1f', ev->region, ev->service, ev->metric);
    *s = bw_map_get(eng->series, key);
    if (*s == NULL && (*s = new_series(eng, key, ev, &err)) == NULL) {
        return bw_seterr(errstr, errstr_size, err,
                         err == BW_ERR_FULL
                             ? "capacity reached (engine.max_series or "
                               "model.hier.max_regions)"
                             : "cannot create model: %s",
                         bw_strerror(err));
    }
    return BW_OK;
}

/* Watermark, usual interval (bw_interval_update over ~20 events; the gap
 * that ends a reported silence is an outage, not the rhythm, and is left
 * out) and the end of a stale episode. */
static void track_activity(bw_engine_t *eng, series_t *s, int64_t t_ms)
{
    if (s->last_ms >= 0 && t_ms > s->last_ms && !s->stale) {
        s->interval_ms = bw_interval_update(s->interval_ms,
                                            (double)(t_ms - s->last_ms), 0.05);
    }
    if (t_ms > s->last_ms) {
        s->last_ms = t_ms;
    }
    s->stale = false;
    if (t_ms > eng->watermark) {
        eng->watermark = t_ms;
    }
}

typedef struct {
    const bw_engine_t *eng;
    int64_t now;
    bw_stale_cb_t cb;
    void *opaque;
    int n;
} stale_scan_t;

static void scan_one(const char *key, void *v, void *arg)
{
    series_t *s = v;
    stale_scan_t *sc = arg;
    char buf[KEY_MAX], *region, *service, *metric;
    bw_stale_t st;

    if (s->stale || s->last_ms < 0 || s->interval_ms <= 0.0 ||
        (double)(sc->now - s->last_ms) <=
            sc->eng->cfg->engine.stale_factor * s->interval_ms) {
        return;
    }
    s->stale = true;
    sc->n++;
    if (sc->cb == NULL) {
        return;
    }
    snprintf(buf, sizeof(buf), "%s", key); /* region\x1fservice\x1fmetric */
    region = buf;
    service = strchr(region, '\x1f');
    *service++ = '\0';
    metric = strchr(service, '\x1f');
    *metric++ = '\0';
    st.region = region, st.service = service, st.metric = metric;
    st.last_event_ms = s->last_ms;
    st.silent_ms = sc->now - s->last_ms;
    st.interval_ms = s->interval_ms;
    sc->cb(sc->opaque, &st);
}

int bw_engine_stale_scan(bw_engine_t *eng, int64_t now_ms, bw_stale_cb_t cb,
                         void *opaque)
{
    stale_scan_t sc = {eng, now_ms, cb, opaque, 0};

    bw_map_each(eng->series, scan_one, &sc);
    return sc.n;
}

int64_t bw_engine_watermark(const bw_engine_t *eng)
{
    return eng->watermark;
}

/* Copy of the event with absent names defaulted, or an error. */
static bw_err_t normalise(const bw_event_t *in, bw_event_t *ev, char *errstr,
                          size_t errstr_size)
{
    *ev = *in;
    ev->region = ev->region != NULL && *ev->region ? ev->region : "default";
    ev->service = ev->service != NULL && *ev->service ? ev->service : "default";
    ev->metric = ev->metric != NULL && *ev->metric ? ev->metric : "default";
    if (!bw_time_valid(ev->time_ms)) {
        return bw_seterr(errstr, errstr_size, BW_ERR_RANGE,
                         "timestamp %lld ms is outside 1970..9999",
                         (long long)ev->time_ms);
    }
    return BW_OK;
}

bw_err_t bw_engine_process(bw_engine_t *eng, const bw_event_t *in,
                           bw_score_t *out, bw_threat_cb_t cb, void *opaque,
                           char *errstr, size_t errstr_size)
{
    const bw_route_cfg_t *ro;
    series_t *s = NULL;
    double y = 0.0;
    bw_event_t evn, *ev = &evn;
    bw_err_t err = normalise(in, &evn, errstr, errstr_size);

    if (err != BW_OK) {
        eng->st.rejected++;
        return err;
    }
    if (eng->cfg->engine.lateness_ms > 0 && eng->watermark >= 0 &&
        (double)(eng->watermark - ev->time_ms) > eng->cfg->engine.lateness_ms) {
        eng->st.late++;
        return bw_seterr(errstr, errstr_size, BW_ERR_LATE,
                         "event %lld ms behind the watermark (lateness %g ms)",
                         (long long)(eng->watermark - ev->time_ms),
                         eng->cfg->engine.lateness_ms);
    }
    err = lookup(eng, ev, &s, errstr, errstr_size);

    if (err != BW_OK) {
        return err;
    }
    ro = s->ro;
    clear_score(out, ro->model);
    out->actual = ev->value;
    if ((err = check_event(ev, ro, errstr, errstr_size)) != BW_OK) {
        goto reject;
    }
    if (ro->model != BW_MODEL_POOLED_COUNT &&
        transform(ro->transform, ev->value, &y) != BW_OK) {
        err = bw_seterr(errstr, errstr_size, BW_ERR_RANGE,
                        "value %g outside the domain of transform %s",
                        ev->value, bw_transform_name(ro->transform));
        goto reject;
    }
    if (ro->model == BW_MODEL_POOLED_COUNT) {
        y = ev->value;
    }
    err = s->pf != NULL ? score_series(eng, s, ro->transform, ev, y, out)
                        : score_pooled(s, ro, ev, y, out);
    if (err != BW_OK) {
        bw_seterr(errstr, errstr_size, err, "model rejected the event: %s",
                  bw_strerror(err));
        goto reject;
    }
    out->score = 100.0 * bw_score_evidence(out);
    out->alert = !out->warmup && !out->late &&
                 bw_score_evidence(out) >= eng->cfg->engine.alert_threshold;
    if (!out->late) {
        eng->st.events++;
        track_activity(eng, s, ev->time_ms);
        /* warm-up: the baseline is not yet a reference to deviate from */
        fuse(eng, ev, out->warmup ? NAN : out->baseline_z, cb, opaque);
    }
    return BW_OK;
reject:
    eng->st.rejected++;
    return err;
}
