/*
 * The engine: event -> route -> model -> score, and score -> fusion window
 * -> threat. Models are created on a series' first event (bounded by
 * engine.max_series) and live as long as the engine; the particle filter
 * workspace is allocated once. Each series' RNG seed is derived from the
 * configured seed and the series key, so output does not depend on how
 * series interleave. A series none of whose events arrived while the
 * watermark moved engine.retire_after_ms is retired (a pass every quarter
 * of that, on stream time, so replay and the Kafka stage retire alike).
 * Changed objects are tracked for the changelog (snapshot.c).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bayeswatch/hash.h"
#include "bayeswatch/mem.h"
#include "bayeswatch/timefmt.h"
#include "engine_int.h"

bool bw__split_key(const char *key, char *buf, size_t n, char **a, char **b,
                   char **c)
{
    if (strlen(key) >= n) {
        return false;
    }
    strcpy(buf, key);
    *a = buf;
    *b = strchr(*a, '\x1f');
    if (*b == NULL) {
        return false;
    }
    *(*b)++ = '\0';
    *c = strchr(*b, '\x1f');
    if (*c == NULL) {
        return false;
    }
    *(*c)++ = '\0';
    return strchr(*c, '\x1f') == NULL;
}

bw_engine_t *bw_engine_new(const bw_config_t *cfg, char *errstr,
                           size_t errstr_size)
{
    bw_engine_t *eng = bw_calloc(1, sizeof(*eng));
    size_t max = (size_t)cfg->engine.max_series;

    if (eng == NULL) {
        goto fail;
    }
    eng->cfg = cfg;
    eng->watermark = eng->retire_mark = -1;
    for (int r = 0; r < cfg->engine.n_routes; r++) {
        eng->route_pf[r] = cfg->model.pf;
        if (cfg->engine.routes[r].tail_scale >= 0.0) {
            eng->route_pf[r].tail_scale = cfg->engine.routes[r].tail_scale;
        }
    }
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

void bw__free_series(const char *key, void *v, void *arg)
{
    series_t *s = v;

    (void)key, (void)arg;
    if (s == NULL) {
        return;
    }
    bw_pf_destroy(s->pf);
    bw_free(s->o.key);
    bw_free(s);
}

void bw__free_group(const char *key, void *v, void *arg)
{
    group_t *g = v;

    (void)key, (void)arg;
    if (g == NULL) {
        return;
    }
    bw_hier_destroy(g->h);
    bw_map_destroy(g->regions);
    bw_free(g->o.key);
    bw_free(g);
}

void bw__free_entity(const char *key, void *v, void *arg)
{
    entity_t *e = v;

    (void)key, (void)arg;
    if (e == NULL) {
        return;
    }
    bw_fusion_destroy(e->fu);
    bw_free(e->o.key);
    bw_free(e);
}

void bw_engine_destroy(bw_engine_t *eng)
{
    if (eng == NULL) {
        return;
    }
    if (eng->series != NULL) {
        bw_map_each(eng->series, bw__free_series, NULL);
    }
    if (eng->groups != NULL) {
        bw_map_each(eng->groups, bw__free_group, NULL);
    }
    if (eng->entities != NULL) {
        bw_map_each(eng->entities, bw__free_entity, NULL);
    }
    for (size_t i = 0; i < eng->n_tombs; i++) {
        bw_free(eng->tombs[i]);
    }
    bw_free(eng->tombs);
    bw_free(eng->dirty);
    bw_wbuf_free(&eng->snap);
    bw_map_destroy(eng->series);
    bw_map_destroy(eng->groups);
    bw_map_destroy(eng->entities);
    bw_pf_ws_destroy(eng->ws);
    bw_free(eng);
}

static void count_model(const char *key, void *v, void *arg)
{
    const series_t *s = v;
    bw_engine_stats_t *st = arg;

    (void)key;
    st->series_by_model[s->ro->model]++;
}

void bw_engine_stats(const bw_engine_t *eng, bw_engine_stats_t *st)
{
    *st = eng->st;
    st->series = bw_map_size(eng->series);
    st->groups = bw_map_size(eng->groups);
    st->entities = bw_map_size(eng->entities);
    memset(st->series_by_model, 0, sizeof(st->series_by_model));
    bw_map_each(eng->series, count_model, st); /* O(series) */
}

typedef struct {
    bw_series_cb_t cb;
    void *opaque;
} each_t;

static void each_series(const char *key, void *v, void *arg)
{
    const each_t *e = arg;
    char buf[BW_ID_MAX];
    char *region, *service, *metric;

    (void)v;
    if (bw__split_key(key, buf, sizeof(buf), &region, &service, &metric)) {
        e->cb(e->opaque, region, service, metric);
    }
}

void bw_engine_each_series(const bw_engine_t *eng, bw_series_cb_t cb,
                           void *opaque)
{
    each_t e = {cb, opaque};

    bw_map_each(eng->series, each_series, &e);
}

/* ---- routing and model creation ---- */

/* Series matching no route get a plain per-series filter. */
const bw_route_cfg_t bw__default_route = {.region = "*",
                                          .service = "*",
                                          .metric = "*",
                                          .model = BW_MODEL_SERIES,
                                          .transform = BW_TRANSFORM_NONE,
                                          .slo = 0.0,
                                          .tail_scale = -1.0};

/* ---- change tracking ---- */

void bw_engine_touch(bw_engine_t *eng)
{
    eng->meta_dirty = true;
}

void bw_engine_untracked(bw_engine_t *eng)
{
    eng->untracked = true;
}

void bw__mark(bw_engine_t *eng, obj_kind_t kind, obj_t *o, void *obj)
{
    if (o->dirty || eng->untracked) {
        return;
    }
    if (eng->n_dirty == eng->cap_dirty) {
        size_t cap = eng->cap_dirty ? 2 * eng->cap_dirty : 64;
        dirty_t *d = bw_realloc(eng->dirty, cap * sizeof(*d));
        if (d == NULL) {
            eng->track_err = BW_ERR_NOMEM;
            return;
        }
        eng->dirty = d;
        eng->cap_dirty = cap;
    }
    eng->dirty[eng->n_dirty++] = (dirty_t){kind, obj};
    o->dirty = true;
}

void bw__tomb(bw_engine_t *eng, const char *key)
{
    char *k;

    if (eng->untracked) {
        return;
    }
    k = bw_strdup(key);
    if (k != NULL && eng->n_tombs == eng->cap_tombs) {
        size_t cap = eng->cap_tombs ? 2 * eng->cap_tombs : 16;
        char **t = bw_realloc(eng->tombs, cap * sizeof(*t));
        if (t == NULL) {
            bw_free(k);
            k = NULL;
        } else {
            eng->tombs = t;
            eng->cap_tombs = cap;
        }
    }
    if (k == NULL) {
        eng->track_err = BW_ERR_NOMEM;
        return;
    }
    eng->tombs[eng->n_tombs++] = k;
}

/* Forget a dirty entry (the object is being freed). */
static void unmark(bw_engine_t *eng, void *obj)
{
    for (size_t i = 0; i < eng->n_dirty; i++) {
        if (eng->dirty[i].obj == obj) {
            eng->dirty[i] = eng->dirty[--eng->n_dirty];
            return;
        }
    }
}

static bw_err_t transform(int t, double v, double *out);

/* A pooled route's slo on the scale its model works on: a pooled_normal
 * slo is written in the metric's own units, as the values are, and the
 * model sees them transformed (log), so the threshold goes there too
 * (P(mean > 500 ms) was asked of log values, about 0 whatever the
 * latency); a pooled_count slo is a rate. */
static double group_slo(const bw_route_cfg_t *ro)
{
    double slo = ro->slo;

    if (ro->model != BW_MODEL_POOLED_COUNT && slo > 0.0 &&
        transform(ro->transform, slo, &slo) != BW_OK) {
        slo = 0.0;
    }
    return slo;
}

/* A pooled group (not yet in the map) keyed "ROUTE US service US metric". */
group_t *bw__group_new(bw_engine_t *eng, int route, const char *map_key)
{
    group_t *g = bw_calloc(1, sizeof(*g));
    char key[KEY_MAX];
    int kind = eng->cfg->engine.routes[route].model; /* pooled: a real route */

    if (g == NULL) {
        return NULL;
    }
    snprintf(key, sizeof(key), GROUP_PREFIX "%s", map_key);
    g->route = route;
    g->slo = group_slo(&eng->cfg->engine.routes[route]);
    g->o.key = bw_strdup(key);
    g->h = bw_hier_new(&eng->cfg->model.hier,
                       kind == BW_MODEL_POOLED_COUNT ? BW_HIER_COUNT
                                                     : BW_HIER_NORMAL,
                       NULL, 0);
    g->regions = bw_map_new((size_t)eng->cfg->model.hier.max_regions);
    if (g->o.key == NULL || g->h == NULL || g->regions == NULL) {
        bw__free_group(NULL, g, NULL);
        return NULL;
    }
    return g;
}

static group_t *get_group(bw_engine_t *eng, int route, const char *service,
                          const char *metric, bw_err_t *err)
{
    char key[KEY_MAX];
    group_t *g;

    snprintf(key, sizeof(key), "%d\x1f%s\x1f%s", route, service, metric);
    g = bw_map_get(eng->groups, key);
    if (g != NULL) {
        return g;
    }
    g = bw__group_new(eng, route, key);
    if (g == NULL || (*err = bw_map_put(eng->groups, key, g)) != BW_OK) {
        bw__free_group(NULL, g, NULL);
        *err = *err != BW_OK ? *err : BW_ERR_NOMEM;
        return NULL;
    }
    eng->st.bytes += bw_hier_memory(g->h);
    bw__mark(eng, OBJ_GROUP, &g->o, g);
    return g;
}

static void mark_slot(const char *key, void *v, void *arg)
{
    unsigned char *used = arg;

    (void)key;
    used[(intptr_t)v - 1] = 1;
}

void bw__slots_used(const group_t *g, unsigned char *used)
{
    memset(used, 0, BW_REGIONS_MAX);
    bw_map_each(g->regions, mark_slot, used);
}

/* A slot for a new region of @p g (index + 1), 0 when every slot up to
 * max_regions is held: the next one never used, else the lowest one a
 * retired region left (release_slot). */
static intptr_t free_slot(const group_t *g, int max)
{
    unsigned char used[BW_REGIONS_MAX];

    if (g->n_regions < max) {
        return g->n_regions + 1;
    }
    bw__slots_used(g, used);
    for (int i = 0; i < g->n_regions; i++) {
        if (!used[i]) {
            return i + 1;
        }
    }
    return 0;
}

/* Join a pooled series to its group, registering its region. */
bw_err_t bw__link(bw_engine_t *eng, series_t *s)
{
    char buf[KEY_MAX], *region, *service, *metric;
    bw_err_t err = BW_OK;
    group_t *g;
    intptr_t idx;

    if (!bw__split_key(s->o.key, buf, sizeof(buf), &region, &service,
                       &metric)) {
        return BW_ERR_INVAL;
    }
    g = get_group(eng, s->route, service, metric, &err);
    if (g == NULL) {
        return err;
    }
    idx = (intptr_t)bw_map_get(g->regions, region);
    if (idx == 0) {
        idx = free_slot(g, eng->cfg->model.hier.max_regions);
        if (idx == 0) {
            return BW_ERR_FULL;
        }
        err = bw_map_put(g->regions, region, (void *)idx);
        if (err != BW_OK) {
            return err; /* no slot taken */
        }
        g->n_regions = idx > g->n_regions ? (int)idx : g->n_regions;
        bw__mark(eng, OBJ_GROUP, &g->o, g);
    }
    s->grp = g;
    s->region = (int)idx - 1;
    return BW_OK;
}

/* A region leaves its group: its name and its statistics go, and the slot
 * can take a new region (free_slot), so a group whose regions come and go
 * is not full for ever after model.hier.max_regions of them. */
void bw__unlink_region(bw_engine_t *eng, group_t *g, const char *region)
{
    char name[KEY_MAX]; /* @p region may be the map's own copy */
    intptr_t idx;

    snprintf(name, sizeof(name), "%s", region);
    idx = (intptr_t)bw_map_del(g->regions, name);
    if (idx != 0) {
        bw_hier_forget(g->h, (int)idx - 1);
        bw__mark(eng, OBJ_GROUP, &g->o, g);
    }
}

/* A pooled series' region leaves its group: the series retired, or was
 * never kept (engine.max_series). */
static void release_slot(bw_engine_t *eng, series_t *s)
{
    char buf[KEY_MAX], *region, *service, *metric;

    if (s->grp != NULL &&
        bw__split_key(s->o.key, buf, sizeof(buf), &region, &service,
                      &metric) &&
        (intptr_t)bw_map_get(s->grp->regions, region) == s->region + 1) {
        bw__unlink_region(eng, s->grp, region);
    }
}

series_t *bw__series_new(bw_engine_t *eng, const char *key, const char *region,
                         const char *service, const char *metric, bw_err_t *err)
{
    series_t *s = bw_calloc(1, sizeof(*s));
    uint64_t seed;

    *err = BW_ERR_NOMEM;
    if (s == NULL || (s->o.key = bw_strdup(key)) == NULL) {
        goto fail;
    }
    s->last_ms = s->seen_ms = -1;
    s->src = (uint32_t)bw_hash64(BW_HASH64_INIT, key, strlen(key)) | 1u;
    s->route = bw_config_route(&eng->cfg->engine, region, service, metric);
    s->ro =
        s->route >= 0 ? &eng->cfg->engine.routes[s->route] : &bw__default_route;
    if (s->ro->model == BW_MODEL_SERIES) {
        seed = bw_hash64((uint64_t)eng->cfg->engine.seed ^ BW_HASH64_INIT, key,
                         strlen(key));
        s->pf = bw_pf_new(s->route >= 0 ? &eng->route_pf[s->route]
                                        : &eng->cfg->model.pf,
                          seed, NULL, 0);
        if (s->pf == NULL) {
            goto fail;
        }
    }
    *err = BW_OK;
    return s;
fail:
    bw__free_series(NULL, s, NULL);
    return NULL;
}

static series_t *new_series(bw_engine_t *eng, const char *key,
                            const bw_event_t *ev, bw_err_t *err)
{
    series_t *s;

    if (bw_map_size(eng->series) >= (size_t)eng->cfg->engine.max_series) {
        /* refused before anything is built: a model allocated per refused
         * event, and a pooled group made for it and left empty for ever */
        *err = BW_ERR_FULL;
        return NULL;
    }
    s = bw__series_new(eng, key, ev->region, ev->service, ev->metric, err);
    if (s == NULL) {
        return NULL;
    }
    if (s->pf == NULL) {
        *err = bw__link(eng, s);
    }
    if (*err == BW_OK && (*err = bw_map_put(eng->series, key, s)) != BW_OK) {
        release_slot(eng, s); /* engine.max_series: no series holds it */
    }
    if (*err != BW_OK) {
        bw__free_series(NULL, s, NULL);
        return NULL;
    }
    eng->st.bytes += sizeof(*s) + (s->pf ? bw_pf_memory(s->pf) : 0);
    return s;
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
                             const bw_event_t *ev, double y, bw_score_t *out,
                             bw_fusion_obs_t *fin)
{
    bw_pf_out_t po;
    bw_err_t err = bw_pf_update(s->pf, eng->ws, ev->time_ms, y, &po);

    if (err == BW_ERR_LATE) {
        /* older than the series' newest: not absorbed, no prediction */
        out->late = true;
        out->expected = out->lower = out->upper = NAN;
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
    fin->x = y - po.seasonal;
    fin->sd = po.pred_sd;
    fin->frame = po.frame;
    if (po.frame == 0 && !isnan(po.provisional)) {
        /* no value where the first day missed the bin: no reference then,
         * and no restart (the frame stays) */
        fin->x = isfinite(po.provisional) ? y - po.provisional : NAN;
        fin->frame = BW_FRAME_EARLY;
    } else if (isfinite(po.provisional_last)) {
        /* the profile applies from this event: the value as the frame
         * before had it, so the fusion's reference carries over */
        fin->x_prev = y - po.provisional_last;
        fin->frame_prev = BW_FRAME_EARLY;
    }
    if (po.block_closed) {
        out->p_collective = po.p_collective;
        out->block_mean = untransform(tr, po.block_mean);
        out->block_expected = untransform(tr, po.block_expected);
    }
    return BW_OK;
}

static bw_err_t score_pooled(series_t *s, const bw_route_cfg_t *ro,
                             const bw_event_t *ev, double y, bw_score_t *out,
                             bw_fusion_obs_t *fin)
{
    bw_hier_out_t ho;
    bool count = ro->model == BW_MODEL_POOLED_COUNT;
    bw_err_t err = bw_hier_observe(s->grp->h, s->region, ev->time_ms, y,
                                   count ? ev->count : 1.0, s->grp->slo, &ho);

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
        fin->x = ho.own_z; /* already against the region's own baseline */
        fin->sd = 1.0;
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
    /* a count near DBL_MAX would overflow the group's trial totals (and
     * lgamma of them) for every region, for good */
    if (ev->count > BW_MODEL_MAX_ABS) {
        return bw_seterr(errstr, errstr_size, BW_ERR_RANGE,
                         "count %g beyond the models' range (count <= %g)",
                         ev->count, BW_MODEL_MAX_ABS);
    }
    return BW_OK;
}

/* ---- fusion ---- */

entity_t *bw__entity_new(bw_engine_t *eng, const char *map_key)
{
    entity_t *e = bw_calloc(1, sizeof(*e));
    char key[KEY_MAX];

    if (e == NULL) {
        return NULL;
    }
    snprintf(key, sizeof(key), ENTITY_PREFIX "%s", map_key);
    e->o.key = bw_strdup(key);
    e->fu = bw_fusion_new(&eng->cfg->model.fusion, NULL, 0);
    if (e->o.key == NULL || e->fu == NULL) {
        bw__free_entity(NULL, e, NULL);
        return NULL;
    }
    return e;
}

static entity_t *get_entity(bw_engine_t *eng, const char *key)
{
    entity_t *e = bw_map_get(eng->entities, key);

    if (e != NULL) {
        return e;
    }
    e = bw__entity_new(eng, key);
    if (e == NULL || bw_map_put(eng->entities, key, e) != BW_OK) {
        bw__free_entity(NULL, e, NULL);
        return NULL;
    }
    eng->st.bytes += sizeof(*e);
    return e;
}

/* The fusion entity's map key of @p region and @p service (KEY_MAX). */
static void entity_key(const bw_engine_t *eng, char *key, const char *region,
                       const char *service)
{
    bw_join_esc(key, KEY_MAX, '/', region,
                eng->cfg->model.fusion.entity == BW_ENTITY_REGION ? NULL
                                                                  : service,
                NULL);
}

/* True if a fusion rule names @p metric as a signal. */
static bool feeds_fusion(const bw_fusion_cfg_t *fc, const char *metric)
{
    for (int r = 0; r < fc->n_rules; r++) {
        for (int s = 0; s < fc->rules[r].n_signals; s++) {
            if (strcmp(fc->rules[r].signals[s].metric, metric) == 0) {
                return true;
            }
        }
    }
    return false;
}

static void fuse(bw_engine_t *eng, const bw_event_t *ev,
                 const bw_fusion_obs_t *in, bw_threat_cb_t cb, void *opaque)
{
    const bw_fusion_cfg_t *fc = &eng->cfg->model.fusion;
    char key[KEY_MAX];
    entity_t *e = NULL;

    if (fc->n_rules == 0) {
        return; /* nothing to fuse: skip the entity key */
    }
    entity_key(eng, key, ev->region, ev->service);
    for (int r = 0; r < fc->n_rules; r++) {
        const bw_rule_cfg_t *rule = &fc->rules[r];
        bw_threat_rec_t rec;
        bool seen = false;
        /* every signal of the rule the event feeds, then one evaluation:
         * a rule naming the metric twice is judged once, on both */
        for (int s = 0; s < rule->n_signals; s++) {
            if (strcmp(rule->signals[s].metric, ev->metric) != 0) {
                continue;
            }
            if (e == NULL && (e = get_entity(eng, key)) == NULL) {
                return;
            }
            bw_fusion_observe_value(e->fu, r, s, ev->time_ms, in);
            seen = true;
        }
        if (!seen) {
            continue;
        }
        bw__mark(eng, OBJ_ENTITY, &e->o, e);
        if (bw_fusion_eval(e->fu, r, ev->time_ms, &rec.threat) && cb != NULL) {
            rec.time_ms = rec.threat.at_ms; /* the time it stands at */
            rec.entity = key;
            rec.region = ev->region;
            rec.service = fc->entity == BW_ENTITY_REGION ? NULL : ev->service;
            rec.rule = rule;
            cb(opaque, &rec);
        }
    }
}

static const bw_route_cfg_t *route_of(const bw_engine_t *eng,
                                      const bw_event_t *ev)
{
    int route = bw_config_route(&eng->cfg->engine, ev->region, ev->service,
                                ev->metric);

    return route >= 0 ? &eng->cfg->engine.routes[route] : &bw__default_route;
}

/* The event's series if it has one (*s NULL if not), its key in @p key
 * (KEY_MAX). */
static bw_err_t lookup(bw_engine_t *eng, const bw_event_t *ev, char *key,
                       series_t **s, char *errstr, size_t errstr_size)
{
    bw_err_t err;

    if (strlen(ev->region) > NAME_LIMIT || strlen(ev->service) > NAME_LIMIT ||
        strlen(ev->metric) > NAME_LIMIT) {
        return bw_seterr(errstr, errstr_size, BW_ERR_INVAL,
                         "region, service or metric longer than %d bytes",
                         NAME_LIMIT);
    }
    bw_join(key, KEY_MAX, '\x1f', ev->region, ev->service, ev->metric);
    *s = bw_map_get(eng->series, key);
    if (*s != NULL && (*s)->pf == NULL && (*s)->grp == NULL &&
        (err = bw__link(eng, *s)) != BW_OK) { /* restored, not yet linked */
        return bw_seterr(errstr, errstr_size, err,
                         "cannot join the pooled group: %s", bw_strerror(err));
    }
    return BW_OK;
}

/* A series for an event that passed its route's checks. */
static bw_err_t create(bw_engine_t *eng, const bw_event_t *ev,
                       const char *key, series_t **s, char *errstr,
                       size_t errstr_size)
{
    bw_err_t err = BW_OK;

    if ((*s = new_series(eng, key, ev, &err)) == NULL) {
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
    if (t_ms > s->last_ms) { /* only new time ends a silence: a delayed
                                 or repeated record does not */
        s->last_ms = t_ms;
        s->stale = false;
    }
    if (t_ms > eng->watermark) {
        eng->watermark = t_ms;
        eng->meta_dirty = true;
    }
    s->seen_ms = eng->watermark;
}

/* ---- dropping and retiring ---- */

void bw__drop(bw_engine_t *eng, bw_map_t *m, const char *mk)
{
    void *obj = bw_map_del(m, mk);

    if (obj == NULL) {
        return;
    }
    if (m == eng->series) {
        series_t *s = obj;
        eng->st.bytes -= sizeof(*s) + (s->pf ? bw_pf_memory(s->pf) : 0);
        bw__free_series(NULL, s, NULL);
    } else if (m == eng->groups) {
        eng->st.bytes -= bw_hier_memory(((group_t *)obj)->h);
        bw__free_group(NULL, obj, NULL);
    } else {
        eng->st.bytes -= sizeof(entity_t);
        bw__free_entity(NULL, obj, NULL);
    }
}

typedef struct {
    bw_engine_t *eng;
    int64_t before;
    char **keys;
    size_t n, cap;
} retire_scan_t;

static void add_key(retire_scan_t *rs, const char *key)
{
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? 2 * rs->cap : 16;
        char **k = bw_realloc(rs->keys, cap * sizeof(*k));
        if (k == NULL) {
            return; /* retired at a later pass */
        }
        rs->keys = k;
        rs->cap = cap;
    }
    rs->keys[rs->n++] = (char *)key;
}

/* A series not seen for retire_after_ms: no event of it arrived while
 * the watermark moved that far (its own event times are not the clock:
 * a series stamped behind or ahead of the partition keeps its key while
 * its events arrive). */
static void find_idle(const char *key, void *v, void *arg)
{
    series_t *s = v;
    retire_scan_t *rs = arg;

    if (s->seen_ms >= 0 && s->seen_ms < rs->before) {
        add_key(rs, key);
    }
}

/* A live series' pooled group and the fusion entity it feeds, marked as
 * in use for this pass. */
static void mark_linked(const char *key, void *v, void *arg)
{
    series_t *s = v;
    bw_engine_t *eng = arg;
    char buf[KEY_MAX], ekey[KEY_MAX], *region, *service, *metric;
    entity_t *e;

    if (s->grp != NULL) {
        s->grp->linked = true;
    }
    if (s->seen_ms < 0 || /* no event scored in the engine yet */
        !bw__split_key(key, buf, sizeof(buf), &region, &service, &metric) ||
        !feeds_fusion(&eng->cfg->model.fusion, metric)) {
        return;
    }
    entity_key(eng, ekey, region, service);
    if ((e = bw_map_get(eng->entities, ekey)) != NULL) {
        e->linked = true;
    }
}

/* A fusion entity or pooled group no live series feeds, silent since
 * before rs->before (its last activity read from its own state, so a
 * restore retires one whose series did not come back alike). A live
 * series keeps them: their event times lag as its own do. */
static void find_idle_entity(const char *key, void *v, void *arg)
{
    entity_t *e = v;
    retire_scan_t *rs = arg;

    /* -1: an FU06 entity without buckets */
    if (!e->linked && bw_fusion_last_ms(e->fu) < rs->before) {
        add_key(rs, key);
    }
    e->linked = false;
}

static void find_idle_group(const char *key, void *v, void *arg)
{
    group_t *g = v;
    retire_scan_t *rs = arg;

    if (!g->linked && bw_hier_last_ms(g->h) < rs->before) {
        add_key(rs, key);
    }
    g->linked = false;
}

/* One object of @p m retired: off the change list, a tombstone for its
 * changelog key, counted, freed. */
static void retire_one(bw_engine_t *eng, bw_map_t *m, const char *key)
{
    obj_t *o = bw_map_get(m, key); /* the first member of every object */

    if (o->dirty) {
        unmark(eng, o);
    }
    bw__tomb(eng, o->key); /* copies it */
    if (m == eng->series) {
        release_slot(eng, (series_t *)o);
        eng->st.retired++;
    } else if (m == eng->groups) {
        eng->st.retired_groups++;
    } else {
        eng->st.retired_entities++;
    }
    bw__drop(eng, m, key);
}

/* Retire what @p find collects from @p map (the keys are the map's own
 * copies: each is copied before its entry is deleted). */
static void retire_from(bw_engine_t *eng, bw_map_t *map,
                        void (*find)(const char *, void *, void *),
                        int64_t before)
{
    retire_scan_t rs = {eng, before, NULL, 0, 0};

    bw_map_each(map, find, &rs);
    for (size_t i = 0; i < rs.n; i++) {
        char key[KEY_MAX];
        snprintf(key, sizeof(key), "%s", rs.keys[i]);
        retire_one(eng, map, key);
    }
    bw_free(rs.keys);
}

/* Every quarter of engine.retire_after_ms of stream time: retire the
 * series not seen for retire_after_ms of it, then the fusion entities
 * and the pooled groups no longer in use (their state would otherwise be
 * held for ever as services come and go, up to engine.max_series). */
static void retire_pass(bw_engine_t *eng)
{
    double after = eng->cfg->engine.retire_after_ms;
    int64_t before;

    if (after <= 0 || eng->watermark < 0) {
        return;
    }
    if (eng->retire_mark < 0) {
        /* state like any later mark: a restart replays from the last
         * flush, and a mark set at another watermark would run every
         * later pass at other stream times */
        eng->retire_mark = eng->watermark;
        eng->meta_dirty = true;
        return;
    }
    if ((double)(eng->watermark - eng->retire_mark) < after / 4) {
        return;
    }
    eng->retire_mark = eng->watermark;
    eng->meta_dirty = true;
    before = eng->watermark - (int64_t)after;
    retire_from(eng, eng->series, find_idle, before);
    bw_map_each(eng->series, mark_linked, eng);
    retire_from(eng, eng->entities, find_idle_entity, before);
    retire_from(eng, eng->groups, find_idle_group, before);
}

typedef struct {
    bw_engine_t *eng;
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
    bw__mark(sc->eng, OBJ_SERIES, &s->o, s);
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
    st.model = s->ro->model;
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
    ev->region = bw_name_or_default(ev->region);
    ev->service = bw_name_or_default(ev->service);
    ev->metric = bw_name_or_default(ev->metric);
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
    char key[KEY_MAX];
    double y = 0.0;
    bw_fusion_obs_t fin = {NAN, NAN, NAN, 0, NAN, 0, 0};
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
    if ((err = lookup(eng, ev, key, &s, errstr, errstr_size)) != BW_OK) {
        return err;
    }
    /* the event is checked against its route before any model is made
     * for it: a refused event leaves no series behind */
    ro = s != NULL ? s->ro : route_of(eng, ev);
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
    if (s == NULL && (err = create(eng, ev, key, &s, errstr, errstr_size)) !=
                         BW_OK) {
        return err;
    }
    err = s->pf != NULL ? score_series(eng, s, ro->transform, ev, y, out, &fin)
                        : score_pooled(s, ro, ev, y, out, &fin);
    /* marked also when the model refused the event: it may have moved
     * first (a pooled event is in the pool, and the pool decayed, before
     * the refit that failed), and that state must reach the changelog */
    bw__mark(eng, OBJ_SERIES, &s->o, s);
    if (s->grp != NULL) {
        bw__mark(eng, OBJ_GROUP, &s->grp->o, s->grp);
    }
    /* arrived, also late for its filter or refused by its model (a
     * scored event moves the watermark, and its mark, below) */
    s->seen_ms = eng->watermark;
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
        fin.z = out->warmup ? NAN : out->baseline_z;
        fin.src = s->src;
        fuse(eng, ev, &fin, cb, opaque);
        retire_pass(eng); /* last: it may free s */
    }
    return BW_OK;
reject:
    eng->st.rejected++;
    return err;
}
