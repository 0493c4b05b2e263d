/*
 * Direct Avro binary writer for AnomalyScore (see direct.h).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "avro_io.h"
#include "direct.h"

/* The layout written below: name:type, in schema order. */
static const char *const layout[] = {
    "entity_id:string",      "entity_type:string",
    "region:string",         "service:string",
    "metric:string",         "model:enum",
    "probability:double",    "score:double",
    "alert:boolean",         "direction:string",
    "actual:?double",        "typical:?double",
    "typical_lower:?double", "typical_upper:?double",
    "p_value:?double",       "p_slo_breach:?double",
    "shrinkage:?double",     "population_mean:?double",
    "p_collective:?double",  "block_mean:?double",
    "block_typical:?double", "p_own:?double",
    "p_population:?double",  "abnormal_since:?long",
    "adopted:boolean",       "baseline_z:?double",
    "warmup:boolean",        "late:boolean",
    "stale:boolean",         "event_time:long",
    "source_timestamp:long", "processed_at:long",
    "freshness_lag_ms:long", "config_version:string",
    "source_topic:string",   "source_partition:int",
    "source_offset:long",    NULL};

static const char *type_code(avro_schema_t s)
{
    switch (avro_typeof(s)) {
    case AVRO_STRING:
        return "string";
    case AVRO_DOUBLE:
        return "double";
    case AVRO_BOOLEAN:
        return "boolean";
    case AVRO_INT32:
        return "int";
    case AVRO_INT64:
        return "long";
    case AVRO_ENUM:
        return "enum";
    case AVRO_UNION:
        if (avro_schema_union_size(s) == 2 &&
            avro_typeof(avro_schema_union_branch(s, 0)) == AVRO_NULL &&
            avro_typeof(avro_schema_union_branch(s, 1)) == AVRO_DOUBLE) {
            return "?double";
        }
        if (avro_schema_union_size(s) == 2 &&
            avro_typeof(avro_schema_union_branch(s, 0)) == AVRO_NULL &&
            avro_typeof(avro_schema_union_branch(s, 1)) == AVRO_INT64) {
            return "?long";
        }
        return "union";
    default:
        return "other";
    }
}

bool bw__direct_score_fits(avro_schema_t schema)
{
    size_t n = avro_schema_record_size(schema);
    char sig[96];

    for (size_t i = 0; i < n; i++) {
        if (layout[i] == NULL) {
            return false;
        }
        snprintf(
            sig, sizeof(sig), "%s:%s",
            avro_schema_record_field_name(schema, (int)i),
            type_code(avro_schema_record_field_get_by_index(schema, (int)i)));
        if (strcmp(sig, layout[i]) != 0) {
            return false;
        }
    }
    return layout[n] == NULL;
}

static void w_long(bw_wbuf_t *w, int64_t v)
{
    bw__avro_put_long(w, v);
}

static void w_str(bw_wbuf_t *w, const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;

    w_long(w, (int64_t)n);
    bw_wbuf_bytes(w, s, n);
}

static void w_bool(bw_wbuf_t *w, bool b)
{
    bw_wbuf_u8(w, b ? 1 : 0);
}

/* ["null", "double"]: null for NaN and +-Inf (encode.c, set_opt) */
static void w_opt(bw_wbuf_t *w, double v)
{
    w_long(w, isfinite(v) ? 1 : 0);
    if (isfinite(v)) {
        bw_wbuf_f64(w, v);
    }
}

/* ["null", "long"]: null for a negative value (none) */
static void w_opt_long(bw_wbuf_t *w, int64_t v)
{
    w_long(w, v < 0 ? 0 : 1);
    if (v >= 0) {
        w_long(w, v);
    }
}

/* "region/service/metric", each name %-encoded as every id is
 * (bw_join_esc), as a string. */
static void w_entity(bw_wbuf_t *w, const bw_event_t *ev)
{
    char id[BW_ID_MAX];
    size_t n = bw_join_esc(id, sizeof(id), '/', ev->region, ev->service,
                           ev->metric);

    w_long(w, (int64_t)n);
    bw_wbuf_bytes(w, id, n);
}

void bw__direct_score(bw_wbuf_t *w, const bw_event_t *ev, const bw_score_t *sc,
                      const bw_origin_t *o)
{
    w_entity(w, ev);
    w_str(w, "series");
    w_str(w, ev->region);
    w_str(w, ev->service);
    w_str(w, ev->metric);
    w_long(w, sc->model);
    bw_wbuf_f64(w, sc->p_anomaly);
    bw_wbuf_f64(w, sc->score);
    w_bool(w, sc->alert);
    w_str(w, bw_direction_name(sc->direction));
    w_opt(w, sc->actual);
    w_opt(w, sc->expected);
    w_opt(w, sc->lower);
    w_opt(w, sc->upper);
    w_opt(w, sc->p_value);
    w_opt(w, sc->p_slo);
    w_opt(w, sc->shrinkage);
    w_opt(w, sc->pop_mean);
    w_opt(w, sc->p_collective);
    w_opt(w, sc->block_mean);
    w_opt(w, sc->block_expected);
    w_opt(w, sc->p_own);
    w_opt(w, sc->p_population);
    w_opt_long(w, sc->abnormal_since);
    w_bool(w, sc->adopted);
    w_opt(w, sc->baseline_z);
    w_bool(w, sc->warmup);
    w_bool(w, sc->late);
    w_bool(w, o->stale);
    w_long(w, ev->time_ms);
    w_long(w, o->source_timestamp);
    w_long(w, o->processed_at);
    w_long(w, o->processed_at - ev->time_ms);
    w_str(w, o->config_version);
    w_str(w, o->source_topic);
    w_long(w, o->source_partition);
    w_long(w, o->source_offset);
}
