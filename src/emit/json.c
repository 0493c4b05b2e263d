/*
 * The same output records as JSON objects (one per line), for consumers
 * without Avro: field names and meanings as in the schemas/ .avsc files;
 * nullable and non-finite numbers are null; strings escaped per RFC 8259,
 * bytes that are not UTF-8 replaced by U+FFFD, so every line parses.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/emit.h"
#include "jsonw.h"

/* An event time, or null when there is none (< 0). */
/* Freshness and lineage; `stale` here too when @p with_stale (the threat
 * schema's order; the score schema has it earlier). */
static void jorigin(bw_wbuf_t *w, int64_t t, const bw_origin_t *o,
                    bool with_stale, int *first)
{
    jint(w, "event_time", t, first);
    jint(w, "source_timestamp", o->source_timestamp, first);
    jint(w, "processed_at", o->processed_at, first);
    jint(w, "freshness_lag_ms", o->processed_at - t, first);
    if (with_stale) {
        jbool(w, "stale", o->stale, first);
    }
    jstr(w, "config_version", o->config_version, first);
    jstr(w, "source_topic", o->source_topic, first);
    jint(w, "source_partition", o->source_partition, first);
    jint(w, "source_offset", o->source_offset, first);
}

bw_err_t bw_json_score(const bw_event_t *ev, const bw_score_t *sc,
                       const bw_origin_t *o, bw_wbuf_t *w)
{
    char id[BW_ID_MAX];
    int first = 1;

    bw_join_esc(id, sizeof(id), '/', ev->region, ev->service,
                ev->metric);
    put(w, "{");
    jstr(w, "entity_id", id, &first);
    jstr(w, "entity_type", "series", &first);
    jstr(w, "region", ev->region, &first);
    jstr(w, "service", ev->service, &first);
    jstr(w, "metric", ev->metric, &first);
    jstr(w, "model", bw_model_kind_name(sc->model), &first);
    jnum(w, "probability", sc->p_anomaly, &first);
    jnum(w, "score", sc->score, &first);
    jbool(w, "alert", sc->alert, &first);
    jstr(w, "direction", bw_direction_name(sc->direction), &first);
    jnum(w, "actual", sc->actual, &first);
    jnum(w, "typical", sc->expected, &first);
    jnum(w, "typical_lower", sc->lower, &first);
    jnum(w, "typical_upper", sc->upper, &first);
    jnum(w, "p_value", sc->p_value, &first);
    jnum(w, "p_slo_breach", sc->p_slo, &first);
    jnum(w, "shrinkage", sc->shrinkage, &first);
    jnum(w, "population_mean", sc->pop_mean, &first);
    jnum(w, "p_collective", sc->p_collective, &first);
    jnum(w, "block_mean", sc->block_mean, &first);
    jnum(w, "block_typical", sc->block_expected, &first);
    jnum(w, "p_own", sc->p_own, &first);
    jnum(w, "p_population", sc->p_population, &first);
    jtime_opt(w, "abnormal_since", sc->abnormal_since, &first);
    jbool(w, "adopted", sc->adopted, &first);
    jnum(w, "baseline_z", sc->baseline_z, &first);
    jbool(w, "warmup", sc->warmup, &first);
    jbool(w, "late", sc->late, &first);
    jbool(w, "stale", o->stale, &first);
    jorigin(w, ev->time_ms, o, false, &first);
    put(w, "}\n");
    return w->err;
}

bw_err_t bw_json_threat(const bw_threat_rec_t *t, const bw_origin_t *o,
                        bw_wbuf_t *w)
{
    int first = 1;

    put(w, "{");
    jstr(w, "entity_id", t->entity, &first);
    jstr(w, "entity_type", bw_threat_entity_type(t), &first);
    jstr(w, "rule", t->rule->name, &first);
    jnum(w, "probability", t->threat.probability, &first);
    jnum(w, "score", t->threat.score, &first);
    jstr(w, "level", bw_level_name(t->threat.level), &first);
    jnum(w, "log_likelihood_ratio", t->threat.llr, &first);
    key(w, "contributors", &first);
    put(w, "[");
    for (int k = 0; k < t->threat.n_contrib; k++) {
        const bw_contrib_t *c = &t->threat.contrib[k];
        int f2 = 1;
        put(w, k ? ",{" : "{");
        jstr(w, "metric", t->rule->signals[c->signal].metric, &f2);
        jnum(w, "probability", c->p, &f2);
        jnum(w, "log_likelihood_ratio", c->llr, &f2);
        jnum(w, "log_bayes_factor", c->lbf, &f2);
        put(w, "}");
    }
    put(w, "]");
    jtime_opt(w, "elevated_since", t->threat.since_ms, &first);
    jorigin(w, t->time_ms, o, true, &first);
    put(w, "}\n");
    return w->err;
}

/* RFC 4648 base64 with padding. */
static void jb64(bw_wbuf_t *w, const char *k, const void *p, size_t n,
                 int *first)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *b = p;
    char q[4];

    key(w, k, first);
    if (p == NULL) {
        put(w, "null");
        return;
    }
    put(w, "\"");
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)b[i] << 16;
        v |= i + 1 < n ? (uint32_t)b[i + 1] << 8 : 0;
        v |= i + 2 < n ? b[i + 2] : 0;
        q[0] = tbl[(v >> 18) & 63];
        q[1] = tbl[(v >> 12) & 63];
        q[2] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? tbl[v & 63] : '=';
        bw_wbuf_bytes(w, q, 4);
    }
    put(w, "\"");
}

bw_err_t bw_json_dead_letter(const bw_dead_letter_t *d, const bw_origin_t *o,
                             bw_wbuf_t *w)
{
    int first = 1;

    put(w, "{");
    jstr(w, "reason", bw_dlq_reason_name(d->reason), &first);
    jstr(w, "detail", d->detail, &first);
    jb64(w, "original_key", d->key, d->key_len, &first);
    jb64(w, "original_value", d->value, d->value_len, &first);
    jstr(w, "source_topic", o->source_topic, &first);
    jint(w, "source_partition", o->source_partition, &first);
    jint(w, "source_offset", o->source_offset, &first);
    jint(w, "source_timestamp", o->source_timestamp, &first);
    jint(w, "processed_at", o->processed_at, &first);
    put(w, "}\n");
    return w->err;
}
