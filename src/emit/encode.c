/*
 * Output records in Avro through Avro-C generic values: one value per
 * encoder, reset per record; nullable doubles are ["null", "double"]
 * unions set to null when the model has no such figure (NaN).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <avro.h>

#include "avro_io.h"
#include "bayeswatch/buf.h"
#include "bayeswatch/emit.h"
#include "direct.h"
#include "bayeswatch/mem.h"

struct bw_encoder_s {
    bw_record_kind_t kind;
    bool direct;     /* the schema is the shipped layout: write it directly */
    bw__avro_t avro; /* schema, reusable value, writer */
};

bw_encoder_t *bw_encoder_new(bw_record_kind_t kind, const char *schema_json,
                             size_t len, bw_framing_t framing,
                             int32_t schema_id, char *errstr,
                             size_t errstr_size)
{
    bw_encoder_t *e = bw_calloc(1, sizeof(*e));
    static const char *const names[] = {"AnomalyScore", "ThreatScore",
                                        "DeadLetter"};
    const char *want = names[kind];

    if (e == NULL) {
        bw_seterr(errstr, errstr_size, BW_ERR_NOMEM, "emit: out of memory");
        return NULL;
    }
    e->kind = kind;
    if (bw__avro_init(&e->avro, schema_json, len,
                      framing == BW_FRAMING_CONFLUENT, schema_id, "emit",
                      errstr, errstr_size) != BW_OK) {
        goto fail;
    }
    if (!is_avro_record(e->avro.schema) ||
        strcmp(avro_schema_name(e->avro.schema), want) != 0) {
        bw_seterr(errstr, errstr_size, BW_ERR_CONFIG,
                  "emit: expected the %s record schema", want);
        goto fail;
    }
    e->direct =
        kind == BW_RECORD_SCORE && bw__direct_score_fits(e->avro.schema);
    return e;
fail:
    bw_encoder_destroy(e);
    return NULL;
}

void bw_encoder_destroy(bw_encoder_t *e)
{
    if (e == NULL) {
        return;
    }
    bw__avro_free(&e->avro);
    bw_free(e);
}

/* ---- field setters: 0 on success ---- */

static int field(avro_value_t *rec, const char *name, avro_value_t *f)
{
    return avro_value_get_by_name(rec, name, f, NULL);
}

static int set_str(avro_value_t *rec, const char *name, const char *s)
{
    avro_value_t f;

    return field(rec, name, &f) || avro_value_set_string(&f, s ? s : "");
}

static int set_dbl(avro_value_t *rec, const char *name, double v)
{
    avro_value_t f;

    return field(rec, name, &f) || avro_value_set_double(&f, v);
}

static int set_long(avro_value_t *rec, const char *name, int64_t v)
{
    avro_value_t f;

    return field(rec, name, &f) || avro_value_set_long(&f, v);
}

static int set_bool(avro_value_t *rec, const char *name, bool v)
{
    avro_value_t f;

    return field(rec, name, &f) || avro_value_set_boolean(&f, v);
}

static int set_enum(avro_value_t *rec, const char *name, int v)
{
    avro_value_t f;

    return field(rec, name, &f) || avro_value_set_enum(&f, v);
}

/* ["null", "double"]: null for NaN and +-Inf (no value; JSON has no
 * other spelling for them, and the JSON output writes null too). */
static int set_opt(avro_value_t *rec, const char *name, double v)
{
    avro_value_t f, b;

    if (field(rec, name, &f) ||
        avro_value_set_branch(&f, isfinite(v) ? 1 : 0, &b)) {
        return 1;
    }
    return isfinite(v) ? avro_value_set_double(&b, v) : avro_value_set_null(&b);
}

/* ["null", "long"]: null for a negative value (none). */
static int set_opt_long(avro_value_t *rec, const char *name, int64_t v)
{
    avro_value_t f, b;

    if (field(rec, name, &f) || avro_value_set_branch(&f, v < 0 ? 0 : 1, &b)) {
        return 1;
    }
    return v < 0 ? avro_value_set_null(&b) : avro_value_set_long(&b, v);
}

static int set_origin(avro_value_t *r, int64_t event_time, const bw_origin_t *o)
{
    avro_value_t f;

    return set_long(r, "event_time", event_time) ||
           set_long(r, "source_timestamp", o->source_timestamp) ||
           set_long(r, "processed_at", o->processed_at) ||
           set_long(r, "freshness_lag_ms", o->processed_at - event_time) ||
           set_bool(r, "stale", o->stale) ||
           set_str(r, "config_version", o->config_version) ||
           set_str(r, "source_topic", o->source_topic) ||
           field(r, "source_partition", &f) ||
           avro_value_set_int(&f, o->source_partition) ||
           set_long(r, "source_offset", o->source_offset);
}

bw_err_t bw_encode_score(bw_encoder_t *e, const bw_event_t *ev,
                         const bw_score_t *sc, const bw_origin_t *o,
                         bw_wbuf_t *w)
{
    avro_value_t *r = &e->avro.value;
    char id[BW_ID_MAX];

    if (e->kind != BW_RECORD_SCORE) {
        return BW_ERR_INVAL;
    }
    if (e->direct) {
        bw__avro_frame(&e->avro, w);
        bw__direct_score(w, ev, sc, o);
        return w->err;
    }
    bw_join_esc(id, sizeof(id), '/', ev->region, ev->service,
                ev->metric);
    avro_value_reset(r);
    if (set_str(r, "entity_id", id) || set_str(r, "entity_type", "series") ||
        set_str(r, "region", ev->region) ||
        set_str(r, "service", ev->service) ||
        set_str(r, "metric", ev->metric) || set_enum(r, "model", sc->model) ||
        set_dbl(r, "probability", sc->p_anomaly) ||
        set_dbl(r, "score", sc->score) || set_bool(r, "alert", sc->alert) ||
        set_str(r, "direction", bw_direction_name(sc->direction)) ||
        set_opt(r, "actual", sc->actual) ||
        set_opt(r, "typical", sc->expected) ||
        set_opt(r, "typical_lower", sc->lower) ||
        set_opt(r, "typical_upper", sc->upper) ||
        set_opt(r, "p_value", sc->p_value) ||
        set_opt(r, "p_slo_breach", sc->p_slo) ||
        set_opt(r, "shrinkage", sc->shrinkage) ||
        set_opt(r, "population_mean", sc->pop_mean) ||
        set_opt(r, "p_collective", sc->p_collective) ||
        set_opt(r, "block_mean", sc->block_mean) ||
        set_opt(r, "block_typical", sc->block_expected) ||
        set_opt(r, "p_own", sc->p_own) ||
        set_opt(r, "p_population", sc->p_population) ||
        set_opt_long(r, "abnormal_since", sc->abnormal_since) ||
        set_bool(r, "adopted", sc->adopted) ||
        set_opt(r, "baseline_z", sc->baseline_z) ||
        set_bool(r, "warmup", sc->warmup) || set_bool(r, "late", sc->late) ||
        set_origin(r, ev->time_ms, o)) {
        return BW_ERR_INVAL;
    }
    return bw__avro_write(&e->avro, w);
}

static int set_contributors(avro_value_t *r, const bw_threat_rec_t *t)
{
    avro_value_t arr, item;

    if (field(r, "contributors", &arr)) {
        return 1;
    }
    for (int k = 0; k < t->threat.n_contrib; k++) {
        const bw_contrib_t *c = &t->threat.contrib[k];
        if (avro_value_append(&arr, &item, NULL) ||
            set_str(&item, "metric", t->rule->signals[c->signal].metric) ||
            set_dbl(&item, "probability", c->p) ||
            set_dbl(&item, "log_likelihood_ratio", c->llr) ||
            set_opt(&item, "log_bayes_factor", c->lbf)) {
            return 1;
        }
    }
    return 0;
}

bw_err_t bw_encode_threat(bw_encoder_t *e, const bw_threat_rec_t *t,
                          const bw_origin_t *o, bw_wbuf_t *w)
{
    avro_value_t *r = &e->avro.value;

    if (e->kind != BW_RECORD_THREAT) {
        return BW_ERR_INVAL;
    }
    avro_value_reset(r);
    if (set_str(r, "entity_id", t->entity) ||
        set_str(r, "entity_type", bw_threat_entity_type(t)) ||
        set_str(r, "rule", t->rule->name) ||
        set_dbl(r, "probability", t->threat.probability) ||
        set_dbl(r, "score", t->threat.score) ||
        set_enum(r, "level", t->threat.level) ||
        set_dbl(r, "log_likelihood_ratio", t->threat.llr) ||
        set_contributors(r, t) ||
        set_opt_long(r, "elevated_since", t->threat.since_ms) ||
        set_origin(r, t->time_ms, o)) {
        return BW_ERR_INVAL;
    }
    return bw__avro_write(&e->avro, w);
}

/* ["null", "bytes"]: null for a NULL pointer. */
static int set_opt_bytes(avro_value_t *rec, const char *name, const void *p,
                         size_t n)
{
    avro_value_t f, b;

    if (field(rec, name, &f) || avro_value_set_branch(&f, p ? 1 : 0, &b)) {
        return 1;
    }
    return p ? avro_value_set_bytes(&b, (void *)p, n) : avro_value_set_null(&b);
}

bw_err_t bw_encode_dead_letter(bw_encoder_t *e, const bw_dead_letter_t *d,
                               const bw_origin_t *o, bw_wbuf_t *w)
{
    avro_value_t *r = &e->avro.value;
    avro_value_t f;
    /* an Avro string is UTF-8: a detail cut inside a character (a long
     * name at the end of a 256-byte message) failed strict readers */
    char detail[1024];

    if (e->kind != BW_RECORD_DEAD_LETTER) {
        return BW_ERR_INVAL;
    }
    bw_utf8_clean(detail, sizeof(detail), d->detail);
    avro_value_reset(r);
    if (set_enum(r, "reason", d->reason) || set_str(r, "detail", detail) ||
        set_opt_bytes(r, "original_key", d->key, d->key_len) ||
        set_opt_bytes(r, "original_value", d->value, d->value_len) ||
        set_str(r, "source_topic", o->source_topic) ||
        field(r, "source_partition", &f) ||
        avro_value_set_int(&f, o->source_partition) ||
        set_long(r, "source_offset", o->source_offset) ||
        set_long(r, "source_timestamp", o->source_timestamp) ||
        set_long(r, "processed_at", o->processed_at)) {
        return BW_ERR_INVAL;
    }
    return bw__avro_write(&e->avro, w);
}

void bw_stale_score(bw_score_t *sc, int model)
{
    memset(sc, 0, sizeof(*sc));
    sc->model = model;
    sc->direction = BW_DIR_NONE;
    sc->actual = sc->expected = sc->lower = sc->upper = NAN;
    sc->p_value = sc->surprise = sc->ess = sc->noise_sd = NAN;
    sc->p_slo = sc->shrinkage = sc->pop_mean = sc->pop_z = NAN;
    sc->p_collective = sc->block_mean = sc->block_expected = NAN;
    sc->p_own = sc->p_population = sc->baseline_z = NAN;
    sc->abnormal_since = -1;
}

void bw__encoder_force_generic(bw_encoder_t *e)
{
    e->direct = false;
}
