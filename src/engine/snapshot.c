/*
 * The engine's state as changelog records (the Kafka Streams state-store
 * changelog, here one record per model-holding key): bw_engine_changes
 * writes the keys changed since its last call, at most once each, with
 * tombstones for retired keys; bw_engine_restore loads one record into an
 * engine that has not scored yet. Each record is a state envelope
 * (state.h) whose config version is the state version of its model kind
 * (config.h): a record written under another model config is discarded,
 * and its key starts from the prior (the rule in the README, "Running
 * several instances"). Loads are all-or-nothing: a record is decoded into
 * a new object, which replaces nothing until it has loaded completely.
 *
 * Bodies (little-endian):
 *   series: u8 model, u8 transform, i64 last event time, f64 usual
 *           interval, u8 flags (1 stale, 2 a seen mark follows), the
 *           i64 watermark at its last event if it is not the last event
 *           time, then the filter's snapshot (model series). A build
 *           before the seen mark reads one as corrupt; its own records
 *           (flags 0 or 1) load with the seen mark at the event time.
 *   group:  u32 route, u32 regions, each u32 length + name (in index
 *           order), then the hierarchy's snapshot
 *   entity: the fusion snapshot
 *   meta:   i64 watermark, i64 last retirement pass
 */
#include <stdlib.h>
#include <string.h>

#include "bayeswatch/hash.h"
#include "bayeswatch/mem.h"
#include "bayeswatch/state.h"
#include "engine_int.h"

/* ---- out ---- */

/* The state versions records are written under, or (@p docs) those a
 * build before the doc-free versions wrote: a record of either loads. */
static const bw_state_versions_t *versions(const bw_engine_t *eng, bool docs)
{
    return docs ? &eng->cfg->state_version_docs : &eng->cfg->state_version;
}

/* A series filter's version is model.pf's, with the tail_scale its
 * filter runs with where that differs (a route's own: another model). */
static uint64_t series_version(const bw_engine_t *eng, const series_t *s,
                               bool docs)
{
    const bw_state_versions_t *sv = versions(eng, docs);
    double ts;

    if (s->pf == NULL) {
        return sv->hier;
    }
    ts = s->route >= 0 ? eng->route_pf[s->route].tail_scale
                       : eng->cfg->model.pf.tail_scale;
    if (ts == eng->cfg->model.pf.tail_scale) {
        return sv->pf;
    }
    return bw_hash64(sv->pf, &ts, sizeof(ts));
}

/* A pooled group's statistics are on its route's scale: a pooled_normal
 * route's transform is part of their version (none keeps the model
 * section's own, as before it was). */
static uint64_t group_version(const bw_engine_t *eng, int route, bool docs)
{
    const bw_route_cfg_t *ro = &eng->cfg->engine.routes[route];
    uint64_t v = versions(eng, docs)->hier;
    uint32_t tr;

    if (ro->model != BW_MODEL_POOLED_NORMAL ||
        ro->transform == BW_TRANSFORM_NONE) {
        return v;
    }
    tr = (uint32_t)ro->transform;
    return bw_hash64(v, &tr, sizeof(tr));
}

/* A record's version @p v is the current one (@p now) or the one a build
 * before the doc-free versions wrote (@p before). Such a key is written
 * under the current one when it next changes, as every key is: forcing
 * every restored key out at the first commit would make that commit's
 * transaction the size of the whole state. */
static bool version_ok(uint64_t v, uint64_t now, uint64_t before)
{
    return v == now || v == before;
}

/* A series body's flags. */
enum { SER_STALE = 1, SER_SEEN = 2 };

static void body_series(bw_wbuf_t *w, const series_t *s)
{
    bool seen = s->seen_ms != s->last_ms;

    bw_wbuf_u8(w, (uint8_t)s->ro->model);
    bw_wbuf_u8(w, (uint8_t)s->ro->transform);
    bw_wbuf_i64(w, s->last_ms);
    bw_wbuf_f64(w, s->interval_ms);
    bw_wbuf_u8(w, (uint8_t)((s->stale ? SER_STALE : 0) |
                            (seen ? SER_SEEN : 0)));
    if (seen) {
        bw_wbuf_i64(w, s->seen_ms);
    }
    if (s->pf != NULL) {
        bw_state_append_pf(s->pf, w);
    }
}

typedef struct {
    const char **names;
} names_t;

static void collect_name(const char *key, void *v, void *arg)
{
    names_t *nm = arg;

    nm->names[(intptr_t)v - 1] = key;
}

static bw_err_t body_group(bw_wbuf_t *w, const group_t *g)
{
    const char *stack[64] = {0}, **names = stack;
    names_t nm;
    bw_err_t err;

    if (g->n_regions > 64 &&
        (names = bw_calloc((size_t)g->n_regions, sizeof(*names))) == NULL) {
        return BW_ERR_NOMEM;
    }
    nm.names = names;
    bw_map_each(g->regions, collect_name, &nm);
    bw_wbuf_u32(w, (uint32_t)g->route);
    bw_wbuf_u32(w, (uint32_t)g->n_regions);
    for (int i = 0; i < g->n_regions; i++) { /* "": a slot a region left */
        size_t len = names[i] != NULL ? strlen(names[i]) : 0;
        bw_wbuf_u32(w, (uint32_t)len);
        bw_wbuf_bytes(w, names[i], len);
    }
    err = bw_state_append_hier(g->h, w);
    if (names != stack) {
        bw_free(names);
    }
    return err;
}

/* One object's record into eng->snap (reset first). */
static bw_err_t record(bw_engine_t *eng, obj_kind_t kind, void *obj,
                       int64_t offset)
{
    bw_wbuf_t *w = &eng->snap;
    size_t start;
    bw_err_t err = BW_OK;

    w->len = 0;
    w->err = BW_OK;
    switch (kind) {
    case OBJ_SERIES:
        start = bw_envelope_begin(w, BW_REC_SERIES,
                                  series_version(eng, obj, false), offset);
        body_series(w, obj);
        break;
    case OBJ_GROUP:
        start = bw_envelope_begin(w, BW_REC_GROUP,
                                  group_version(eng, ((group_t *)obj)->route,
                                                false),
                                  offset);
        err = body_group(w, obj);
        break;
    default:
        start = bw_envelope_begin(w, BW_REC_ENTITY,
                                  versions(eng, false)->fusion, offset);
        err = bw_state_append_fusion(((entity_t *)obj)->fu, w);
        break;
    }
    return err != BW_OK ? err : bw_envelope_end(w, start);
}

static bw_err_t meta_record(bw_engine_t *eng, int64_t offset)
{
    bw_wbuf_t *w = &eng->snap;
    size_t start;

    w->len = 0;
    w->err = BW_OK;
    start = bw_envelope_begin(w, BW_REC_META, 0, offset);
    bw_wbuf_i64(w, eng->watermark);
    bw_wbuf_i64(w, eng->retire_mark);
    return bw_envelope_end(w, start);
}

size_t bw_engine_pending(const bw_engine_t *eng)
{
    if (eng->untracked) {
        return 0;
    }
    return eng->n_dirty + eng->n_tombs + (eng->meta_dirty ? 1 : 0);
}

static bw_err_t emit_meta(bw_engine_t *eng, int64_t offset, bw_change_cb_t cb,
                          void *opaque)
{
    bw_err_t err = meta_record(eng, offset);

    if (err == BW_OK) {
        cb(opaque, META_KEY, strlen(META_KEY), eng->snap.data, eng->snap.len);
    }
    return err;
}

/* Every change passed: the list, the tombstones and the engine's own
 * record's mark are cleared. */
static void forget_changes(bw_engine_t *eng)
{
    for (size_t i = 0; i < eng->n_tombs; i++) {
        bw_free(eng->tombs[i]);
    }
    eng->n_tombs = 0;
    for (size_t i = 0; i < eng->n_dirty; i++) {
        ((obj_t *)eng->dirty[i].obj)->dirty = false; /* obj_t first */
    }
    eng->n_dirty = 0;
    eng->meta_dirty = false;
}

bw_err_t bw_engine_changes(bw_engine_t *eng, int64_t offset, bw_change_cb_t cb,
                           void *opaque, char *errstr, size_t errstr_size)
{
    bw_err_t err = eng->track_err;

    if (err != BW_OK) {
        return bw_seterr(errstr, errstr_size, err,
                         "engine: a change could not be recorded (%s)",
                         bw_strerror(err));
    }
    for (size_t i = 0; i < eng->n_tombs; i++) {
        cb(opaque, eng->tombs[i], strlen(eng->tombs[i]), NULL, 0);
    }
    for (size_t i = 0; i < eng->n_dirty && err == BW_OK; i++) {
        obj_t *o = eng->dirty[i].obj; /* obj_t first */
        err = record(eng, eng->dirty[i].kind, eng->dirty[i].obj, offset);
        if (err == BW_OK) {
            cb(opaque, o->key, strlen(o->key), eng->snap.data, eng->snap.len);
        }
    }
    if (err == BW_OK && eng->meta_dirty) {
        err = emit_meta(eng, offset, cb, opaque);
    }
    if (err != BW_OK) { /* the caller does not commit: the next call passes
                           every change again, tombstones too */
        return bw_seterr(errstr, errstr_size, err,
                         "engine: cannot serialise state (%s)",
                         bw_strerror(err));
    }
    forget_changes(eng);
    return BW_OK;
}

typedef struct {
    bw_engine_t *eng;
    obj_kind_t kind;
    int64_t offset;
    bw_change_cb_t cb;
    void *opaque;
    bw_err_t err;
} snap_walk_t;

static void snap_one(const char *key, void *v, void *arg)
{
    snap_walk_t *sw = arg;
    const obj_t *o = v; /* obj_t first */

    (void)key;
    if (sw->err != BW_OK) {
        return;
    }
    sw->err = record(sw->eng, sw->kind, v, sw->offset);
    if (sw->err == BW_OK) {
        sw->cb(sw->opaque, o->key, strlen(o->key), sw->eng->snap.data,
               sw->eng->snap.len);
    }
}

bw_err_t bw_engine_snapshot(bw_engine_t *eng, int64_t offset, bw_change_cb_t cb,
                            void *opaque, char *errstr, size_t errstr_size)
{
    snap_walk_t sw = {eng, OBJ_GROUP, offset, cb, opaque, BW_OK};

    bw_map_each(eng->groups, snap_one, &sw);
    sw.kind = OBJ_SERIES;
    bw_map_each(eng->series, snap_one, &sw);
    sw.kind = OBJ_ENTITY;
    bw_map_each(eng->entities, snap_one, &sw);
    if (sw.err == BW_OK) {
        sw.err = emit_meta(eng, offset, cb, opaque);
    }
    if (sw.err != BW_OK) {
        return bw_seterr(errstr, errstr_size, sw.err,
                         "engine: cannot serialise state (%s)",
                         bw_strerror(sw.err));
    }
    return BW_OK;
}

/* ---- in ---- */

static bw_err_t corrupt(char *errstr, size_t n, const char *what)
{
    return bw_seterr(errstr, n, BW_ERR_CORRUPT, "changelog record: %s", what);
}

/* The rest of @p r as a framed snapshot. */
static void rest(bw_rbuf_t *r, const uint8_t **p, size_t *n)
{
    *p = r->data + r->pos;
    *n = r->len - r->pos;
}

static bw_err_t put_series(bw_engine_t *eng, series_t *s)
{
    bw_err_t err;

    bw__drop(eng, eng->series, s->o.key); /* a later record of the key */
    err = bw_map_put(eng->series, s->o.key, s);
    if (err == BW_OK) {
        eng->st.bytes += sizeof(*s) + (s->pf ? bw_pf_memory(s->pf) : 0);
    }
    return err;
}

static bw_err_t load_series(bw_engine_t *eng, const char *key,
                            const bw_envelope_t *env, char *errstr, size_t n)
{
    char buf[KEY_MAX], *region, *service, *metric;
    bw_rbuf_t r;
    series_t *s;
    bw_err_t err;
    int model, transform, flags;
    const uint8_t *blob;
    size_t blen;

    if (!bw__split_key(key, buf, sizeof(buf), &region, &service, &metric) ||
        strlen(region) > NAME_LIMIT || strlen(service) > NAME_LIMIT ||
        strlen(metric) > NAME_LIMIT || *region == '\0' || *service == '\0' ||
        *metric == '\0') {
        return corrupt(errstr, n,
                       "series key is not REGION US SERVICE US "
                       "METRIC (each 1 to 255 bytes)");
    }
    s = bw__series_new(eng, key, region, service, metric, &err);
    if (s == NULL) {
        return bw_seterr(errstr, n, err, "changelog record: %s",
                         bw_strerror(err));
    }
    bw_rbuf_init(&r, env->body, env->body_len);
    model = bw_rbuf_u8(&r);
    transform = bw_rbuf_u8(&r);
    s->last_ms = bw_rbuf_time(&r, -1);
    s->interval_ms = bw_rbuf_finite(&r);
    flags = bw_rbuf_u8(&r);
    s->stale = (flags & SER_STALE) != 0;
    s->seen_ms = flags & SER_SEEN ? bw_rbuf_time(&r, -1) : s->last_ms;
    if (r.err != BW_OK || s->interval_ms < 0 || s->last_ms < -1 ||
        (flags & ~(SER_STALE | SER_SEEN)) != 0 ||
        s->seen_ms < s->last_ms) { /* its watermark passed its time */
        err = corrupt(errstr, n, "series body");
    } else if (model != s->ro->model || transform != s->ro->transform ||
               !version_ok(env->config_version, series_version(eng, s, false),
                           series_version(eng, s, true))) {
        err = bw_seterr(errstr, n, BW_ERR_VERSION,
                        "changelog record: written under another model "
                        "config (route or model section changed)");
    } else if (s->pf != NULL) {
        rest(&r, &blob, &blen);
        err = bw_state_load_pf(s->pf, blob, blen, errstr, n);
    } else if (r.pos != r.len) {
        err = corrupt(errstr, n, "trailing bytes after a pooled series");
    }
    if (err == BW_OK) {
        err = put_series(eng, s); /* pooled: linked by restore_done */
    }
    if (err != BW_OK) {
        bw__free_series(NULL, s, NULL);
    }
    return err;
}

/* The slots no region holds, cleared of whatever else the record put
 * there, so a region that takes one starts from nothing; false if one has
 * data (a free slot was cleared when its region left). */
static bool clear_free_slots(group_t *g, int max)
{
    unsigned char used[BW_REGIONS_MAX];

    bw__slots_used(g, used);
    for (int j = 0; j < max; j++) {
        if (used[j]) {
            continue;
        }
        if (bw_hier_weight(g->h, j) != 0.0) {
            return false;
        }
        bw_hier_forget(g->h, j);
    }
    return true;
}

/* The regions by slot; an empty name is a slot a retired region left (a
 * build before slots were reused never writes one). */
static bw_err_t read_regions(group_t *g, bw_rbuf_t *r, int max)
{
    uint32_t n = bw_rbuf_u32_in(r, 0, (uint32_t)max);
    char name[NAME_LIMIT + 1];

    for (uint32_t i = 0; i < n && r->err == BW_OK; i++) {
        uint32_t len = bw_rbuf_u32_in(r, 0, NAME_LIMIT);
        bw_err_t err;
        bw_rbuf_bytes(r, name, len);
        if (r->err != BW_OK) {
            break;
        }
        name[len] = '\0';
        if (strlen(name) != len ||
            (len > 0 && bw_map_get(g->regions, name) != NULL)) {
            return BW_ERR_CORRUPT;
        }
        err = len > 0 ? bw_map_put(g->regions, name, (void *)(intptr_t)(i + 1))
                      : BW_OK;
        if (err != BW_OK) {
            return err; /* out of memory: the record is sound, and stays */
        }
        g->n_regions = (int)i + 1;
    }
    return r->err;
}

static bw_err_t put_keyed(bw_engine_t *eng, bw_map_t *m, const char *map_key,
                          void *obj)
{
    bw__drop(eng, m, map_key);
    return bw_map_put(m, map_key, obj);
}

static bw_err_t load_group(bw_engine_t *eng, const char *key,
                           const bw_envelope_t *env, char *errstr, size_t n)
{
    const char *map_key = key + PREFIX_LEN;
    const bw_engine_cfg_t *ec = &eng->cfg->engine;
    bw_rbuf_t r;
    group_t *g = NULL;
    uint32_t route;
    const uint8_t *blob;
    size_t blen;
    bw_err_t err = BW_OK;

    bw_rbuf_init(&r, env->body, env->body_len);
    route = bw_rbuf_u32(&r);
    /* the key names the route too ("ROUTE US service US metric") */
    if (r.err != BW_OK || (int)route < 0 || (int)route >= ec->n_routes ||
        ec->routes[route].model == BW_MODEL_SERIES ||
        strtol(map_key, NULL, 10) != (long)route ||
        !version_ok(env->config_version, group_version(eng, (int)route, false),
                    group_version(eng, (int)route, true))) {
        return bw_seterr(errstr, n, BW_ERR_VERSION,
                         "changelog record: pooled group written under "
                         "another model config");
    }
    g = bw__group_new(eng, (int)route, map_key);
    if (g == NULL) {
        return bw_seterr(errstr, n, BW_ERR_NOMEM, "changelog record: %s",
                         bw_strerror(BW_ERR_NOMEM));
    }
    err = read_regions(g, &r, eng->cfg->model.hier.max_regions);
    if (err == BW_ERR_NOMEM) {
        err = bw_seterr(errstr, n, err, "changelog record: %s",
                        bw_strerror(err));
    } else if (err != BW_OK) {
        err = corrupt(errstr, n, "pooled group regions");
    } else {
        rest(&r, &blob, &blen);
        err = bw_state_load_hier(g->h, blob, blen, errstr, n);
    }
    if (err == BW_OK && !clear_free_slots(g, eng->cfg->model.hier.max_regions)) {
        err = corrupt(errstr, n, "pooled group: data in a slot no region holds");
    }
    if (err == BW_OK) {
        err = put_keyed(eng, eng->groups, map_key, g);
    }
    if (err != BW_OK) {
        bw__free_group(NULL, g, NULL);
    } else {
        eng->st.bytes += bw_hier_memory(g->h);
    }
    return err;
}

/* An entity id as this build writes it (bw_join_esc): the region, or
 * region/service, with '%' only in %25 and %2F. A build before the
 * encoding wrote a name's '/' and '%' as they were: such a key would never
 * be found again. */
static bool entity_key_valid(const bw_engine_t *eng, const char *k)
{
    int slashes = 0;

    for (; *k != '\0'; k++) {
        slashes += *k == '/';
        if (*k == '%' && strncmp(k, "%25", 3) != 0 &&
            strncmp(k, "%2F", 3) != 0) {
            return false;
        }
    }
    return slashes ==
           (eng->cfg->model.fusion.entity == BW_ENTITY_REGION ? 0 : 1);
}

static bw_err_t load_entity(bw_engine_t *eng, const char *key,
                            const bw_envelope_t *env, char *errstr, size_t n)
{
    const char *map_key = key + PREFIX_LEN;
    entity_t *e;
    bw_err_t err;

    if (!entity_key_valid(eng, map_key)) {
        return bw_seterr(errstr, n, BW_ERR_VERSION,
                         "changelog record: fusion entity id not of this "
                         "config's entity kind or encoding");
    }
    if (!version_ok(env->config_version, versions(eng, false)->fusion,
                    versions(eng, true)->fusion)) {
        return bw_seterr(errstr, n, BW_ERR_VERSION,
                         "changelog record: fusion entity written under "
                         "another model config");
    }
    e = bw__entity_new(eng, map_key);
    if (e == NULL) {
        return bw_seterr(errstr, n, BW_ERR_NOMEM, "changelog record: %s",
                         bw_strerror(BW_ERR_NOMEM));
    }
    err = bw_state_load_fusion(e->fu, env->body, env->body_len, errstr, n);
    if (err == BW_OK) {
        err = put_keyed(eng, eng->entities, map_key, e);
    }
    if (err != BW_OK) {
        bw__free_entity(NULL, e, NULL);
    } else {
        eng->st.bytes += sizeof(*e);
    }
    return err;
}

static bw_err_t load_meta(bw_engine_t *eng, const bw_envelope_t *env,
                          char *errstr, size_t n)
{
    bw_rbuf_t r;
    int64_t mark, retire;

    bw_rbuf_init(&r, env->body, env->body_len);
    mark = bw_rbuf_time(&r, -1);
    retire = bw_rbuf_time(&r, -1);
    if (r.err != BW_OK || r.pos != r.len || mark < -1 || retire < -1) {
        return corrupt(errstr, n, "engine meta");
    }
    eng->watermark = mark;
    eng->retire_mark = retire;
    return BW_OK;
}

/* The record kind a key's form names. */
static int kind_of_key(const char *key)
{
    if (strcmp(key, META_KEY) == 0) {
        return BW_REC_META;
    }
    if (strncmp(key, GROUP_PREFIX, PREFIX_LEN) == 0) {
        return BW_REC_GROUP;
    }
    if (strncmp(key, ENTITY_PREFIX, PREFIX_LEN) == 0) {
        return BW_REC_ENTITY;
    }
    return key[0] != '\x1f' ? BW_REC_SERIES : 0;
}

static bw_err_t restore_one(bw_engine_t *eng, const char *key,
                            const bw_envelope_t *env, char *errstr, size_t n)
{
    if ((int)env->kind != kind_of_key(key)) {
        return corrupt(errstr, n, "record kind does not match its key");
    }
    switch (env->kind) {
    case BW_REC_SERIES:
        return load_series(eng, key, env, errstr, n);
    case BW_REC_GROUP:
        return load_group(eng, key, env, errstr, n);
    case BW_REC_ENTITY:
        return load_entity(eng, key, env, errstr, n);
    default:
        return load_meta(eng, env, errstr, n);
    }
}

/* The map holding a key's object, and its key there (NULL: the engine's
 * own record, or no such form). */
static bw_map_t *map_of(bw_engine_t *eng, const char *key, const char **mk)
{
    *mk = key + PREFIX_LEN;
    switch (kind_of_key(key)) {
    case BW_REC_SERIES:
        *mk = key;
        return eng->series;
    case BW_REC_GROUP:
        return eng->groups;
    case BW_REC_ENTITY:
        return eng->entities;
    default:
        return NULL;
    }
}

/* Drop a restored key (a later tombstone in the changelog). */
static void forget(bw_engine_t *eng, const char *key)
{
    const char *mk;
    bw_map_t *m = map_of(eng, key, &mk);

    if (m != NULL) {
        bw__drop(eng, m, mk);
    }
}

bw_err_t bw_engine_restore(bw_engine_t *eng, const char *key, size_t key_len,
                           const uint8_t *value, size_t len,
                           bw_restore_stats_t *st, char *errstr,
                           size_t errstr_size)
{
    char k[KEY_MAX];
    bw_envelope_t env;
    bw_err_t err;

    if (key_len == 0 || key_len >= sizeof(k) || memchr(key, 0, key_len)) {
        err = corrupt(errstr, errstr_size, "bad key");
        st->corrupt++;
        return err;
    }
    memcpy(k, key, key_len);
    k[key_len] = '\0';
    if (value == NULL) { /* a tombstone: the key was retired */
        forget(eng, k);
        return BW_OK;
    }
    err = bw_envelope_parse(value, len, &env, errstr, errstr_size);
    if (err != BW_OK) { /* unreadable, or a newer format: starts afresh */
        st->corrupt++;
        forget(eng, k); /* an older record's state, restored before it */
        bw__tomb(eng, k);
        return err;
    }
    err = restore_one(eng, k, &env, errstr, errstr_size);
    if (err == BW_OK) {
        st->loaded++;
        st->offset = env.offset > st->offset ? env.offset : st->offset;
        return BW_OK;
    }
    /* the key starts from the prior, not from an older record's state
     * restored before this one */
    forget(eng, k);
    if (err != BW_ERR_VERSION && err != BW_ERR_CORRUPT) {
        /* out of memory, or the series limit: nothing wrong with the
         * record, which must stay (a tombstone lost it for good) */
        st->failed++;
        return err;
    }
    if (err == BW_ERR_VERSION) {
        st->config_changed++;
    } else {
        st->corrupt++;
    }
    bw__tomb(eng, k); /* its old record goes */
    return err;
}

typedef struct {
    bw_engine_t *eng;
    bw_err_t err;  /* out of memory: the restore fails */
    char **unlinked; /* series that cannot join their group (map keys) */
    size_t n, cap;
} link_walk_t;

static void link_one(const char *key, void *v, void *arg)
{
    series_t *s = v;
    link_walk_t *lw = arg;
    bw_err_t err;

    if (s->pf != NULL || s->grp != NULL || lw->err != BW_OK) {
        return;
    }
    err = bw__link(lw->eng, s);
    if (err == BW_OK) {
        return;
    }
    if (err == BW_ERR_NOMEM) { /* the record is sound: the restore fails */
        lw->err = err;
        return;
    }
    if (lw->n == lw->cap) {
        size_t cap = lw->cap ? 2 * lw->cap : 16;
        char **k = bw_realloc(lw->unlinked, cap * sizeof(*k));
        if (k == NULL) {
            lw->err = BW_ERR_NOMEM;
            return;
        }
        lw->unlinked = k;
        lw->cap = cap;
    }
    lw->unlinked[lw->n++] = (char *)key;
}

/* A series whose group is full or cannot be made (max_series or
 * max_regions lowered since it was saved) starts afresh, as a series whose
 * record cannot be read does: one key is lost, not the whole restore. */
static void drop_unlinked(bw_engine_t *eng, link_walk_t *lw)
{
    for (size_t i = 0; i < lw->n; i++) {
        char key[KEY_MAX];
        snprintf(key, sizeof(key), "%s", lw->unlinked[i]);
        forget(eng, key);
        bw__tomb(eng, key);
    }
    bw_free(lw->unlinked);
}

/* The regions of one group that no restored series holds. */
typedef struct {
    bw_engine_t *eng;
    group_t *g;
    const char *service, *metric;
    const char **names; /* the map's own keys */
    int n;
} orphans_t;

static void find_orphan(const char *name, void *v, void *arg)
{
    orphans_t *os = arg;
    char key[KEY_MAX];
    series_t *s;

    (void)v;
    bw_join(key, sizeof(key), '\x1f', name, os->service, os->metric);
    s = bw_map_get(os->eng->series, key);
    if (s == NULL || s->grp != os->g) {
        os->names[os->n++] = name;
    }
}

/* A group's region whose series record was discarded (corrupt, or written
 * under another config) leaves the group, as a retired one does: the
 * series starts afresh, and nothing would ever free its slot. */
static void release_orphans(const char *map_key, void *v, void *arg)
{
    group_t *g = v;
    link_walk_t *lw = arg;
    char buf[KEY_MAX], *route, *service, *metric;
    orphans_t os = {lw->eng, g, NULL, NULL, NULL, 0};

    if (lw->err != BW_OK || g->n_regions == 0 ||
        !bw__split_key(map_key, buf, sizeof(buf), &route, &service,
                       &metric)) {
        return;
    }
    os.service = service, os.metric = metric;
    if ((os.names = bw_calloc((size_t)g->n_regions, sizeof(char *))) ==
        NULL) {
        lw->err = BW_ERR_NOMEM;
        return;
    }
    bw_map_each(g->regions, find_orphan, &os);
    for (int i = 0; i < os.n; i++) {
        bw__unlink_region(lw->eng, g, os.names[i]); /* copies the name */
    }
    bw_free(os.names);
}

bw_err_t bw_engine_restore_done(bw_engine_t *eng)
{
    link_walk_t lw = {eng, BW_OK, NULL, 0, 0};
    size_t kept = 0;

    /* discarded keys that a later record restored keep their state */
    for (size_t i = 0; i < eng->n_tombs; i++) {
        const char *mk;
        bw_map_t *m = map_of(eng, eng->tombs[i], &mk);
        if (m != NULL && bw_map_get(m, mk) != NULL) {
            bw_free(eng->tombs[i]);
            eng->tombs[i--] = eng->tombs[--eng->n_tombs];
        }
    }
    bw_map_each(eng->series, link_one, &lw);
    drop_unlinked(eng, &lw);
    bw_map_each(eng->groups, release_orphans, &lw);
    /* linking marks groups that gained a region; anything else restored
     * is as the changelog holds it: nothing to write back */
    for (size_t i = 0; i < eng->n_dirty; i++) {
        if (eng->dirty[i].kind == OBJ_GROUP) {
            eng->dirty[kept++] = eng->dirty[i];
        }
    }
    eng->n_dirty = kept;
    return lw.err;
}
