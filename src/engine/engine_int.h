/*
 * The engine's internals, shared by engine.c (routing, scoring, fusion,
 * retirement) and snapshot.c (changelog records: changed keys out, a
 * partition's state in).
 *
 * Every model-holding object (series, pooled group, fusion entity) keeps
 * its changelog key and a dirty flag; the engine keeps the list of dirty
 * objects and of retired keys since the last bw_engine_changes().
 */
#ifndef BW_ENGINE_INT_H
#define BW_ENGINE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/engine.h"
#include "bayeswatch/map.h"

/* a key: prefix + three names, each up to 3x when percent-encoded */
#define KEY_MAX (3 * 3 * NAME_LIMIT + 16)
#define NAME_LIMIT BW_EVENT_NAME_MAX

/* Changelog keys: a series' key is its id (region US service US metric,
 * US = 0x1f); the others start with US, which no series key does. */
#define GROUP_PREFIX "\x1fg\x1f"
#define ENTITY_PREFIX                                                          \
    "\x1f"                                                                     \
    "e\x1f"
#define META_KEY "\x1fm"
#define PREFIX_LEN 3 /* of GROUP_PREFIX and ENTITY_PREFIX */

typedef enum { OBJ_SERIES, OBJ_GROUP, OBJ_ENTITY } obj_kind_t;

/* The first member of every model-holding object: a pointer to the
 * object is a pointer to its obj_t. */
typedef struct {
    char *key; /* changelog key (owned) */
    bool dirty;
} obj_t;

typedef struct group_s {
    obj_t o;
    int route;
    double slo; /* the route's slo on the model's scale (0: none) */
    bw_hier_t *h;
    bw_map_t *regions; /* name -> index + 1 */
    int n_regions;
    bool linked; /* a series links to it (a retirement pass's mark) */
} group_t;

typedef struct {
    obj_t o;
    const bw_route_cfg_t *ro; /* the matching route, or default_route */
    int route;                /* its index; -1 for default_route */
    int64_t last_ms;          /* last event time (-1 none) */
    int64_t seen_ms; /* the watermark at its last event to arrive, also
                        one late or refused (-1 none): the
                        clock retirement reads, so a series whose own
                        clock lags or leads the partition's keeps its
                        key while its events arrive */
    double interval_ms;       /* usual gap between events, EWMA; 0 unknown */
    bool stale;               /* reported stale, not yet resumed */
    bw_pf_t *pf;
    group_t *grp; /* pooled; NULL until linked (after a restore) */
    int region;
    uint32_t src; /* bw_fusion_obs_t.src: a hash of the key, never 0 */
} series_t;

typedef struct {
    obj_t o;
    bw_fusion_t *fu;
    bool linked; /* a live series feeds it (a retirement pass's mark) */
} entity_t;

typedef struct {
    obj_kind_t kind;
    void *obj;
} dirty_t;

struct bw_engine_s {
    const bw_config_t *cfg;
    int64_t watermark;
    int64_t retire_mark; /* stream time of the last retirement pass */
    bool meta_dirty;
    bool untracked; /* bw_engine_untracked: no change list, no tombstones */
    bw_pf_ws_t *ws;
    /* model.pf with each route's overrides (bw_engine_new): the filters
     * of a route's series point here */
    bw_pf_cfg_t route_pf[BW_ROUTES_MAX];
    bw_map_t *series;
    bw_map_t *groups;
    bw_map_t *entities;
    bw_engine_stats_t st;
    /* changes since the last bw_engine_changes */
    dirty_t *dirty;
    size_t n_dirty, cap_dirty;
    char **tombs; /* retired or discarded keys (owned) */
    size_t n_tombs, cap_tombs;
    bw_err_t track_err; /* sticky: a change could not be recorded */
    bw_wbuf_t snap;     /* reused by bw_engine_changes */
};

/* engine.c, for snapshot.c */
extern const bw_route_cfg_t bw__default_route;
/** A series for @p key (not yet in the map): its filter, if any, made;
 * pooled series are linked to their group by bw__link. */
series_t *bw__series_new(bw_engine_t *eng, const char *key, const char *region,
                         const char *service, const char *metric,
                         bw_err_t *err);
bw_err_t bw__link(bw_engine_t *eng, series_t *s);
/** Per slot of @p g (BW_REGIONS_MAX of them): 1 if a region holds it. */
void bw__slots_used(const group_t *g, unsigned char *used);
/** Region @p region leaves group @p g: its name, its slot's statistics. */
void bw__unlink_region(bw_engine_t *eng, group_t *g, const char *region);
group_t *bw__group_new(bw_engine_t *eng, int route, const char *map_key);
entity_t *bw__entity_new(bw_engine_t *eng, const char *map_key);
void bw__free_series(const char *key, void *v, void *arg);
void bw__free_group(const char *key, void *v, void *arg);
void bw__free_entity(const char *key, void *v, void *arg);
/** Record that @p obj changed (once per bw_engine_changes). */
void bw__mark(bw_engine_t *eng, obj_kind_t kind, obj_t *o, void *obj);
/** Remove the object at map key @p mk of @p m (one of the engine's maps),
 * if any, with its share of the stats' bytes, and free it. */
void bw__drop(bw_engine_t *eng, bw_map_t *m, const char *mk);
/** Queue a tombstone for @p key. */
void bw__tomb(bw_engine_t *eng, const char *key);
/** Split "a US b US c" into its three parts (in @p buf). */
bool bw__split_key(const char *key, char *buf, size_t n, char **a, char **b,
                   char **c);

#endif
