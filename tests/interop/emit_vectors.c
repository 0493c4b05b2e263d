/*
 * Writes Confluent-framed Avro score and threat records produced by the
 * real engine and encoders into DIR, with the values they must decode to
 * (expected.jsonl), for tests/interop/check_avro.py to check with an
 * independent Avro implementation.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>

#include "bayeswatch/emit.h"
#include "bayeswatch/engine.h"

#ifndef BW_SOURCE_DIR
#error BW_SOURCE_DIR must be defined
#endif

typedef struct {
    const char *dir;
    FILE *expected;
    bw_encoder_t *threat_enc;
    const bw_config_t *cfg;
    int n;
} ctx_t;

static bw_encoder_t *encoder(bw_record_kind_t kind, const char *file, int id)
{
    char path[1024], buf[65536], err[256];
    FILE *f;
    size_t n;
    bw_encoder_t *e;

    snprintf(path, sizeof(path), "%s/schemas/%s", BW_SOURCE_DIR, file);
    f = fopen(path, "rb");
    n = f ? fread(buf, 1, sizeof(buf), f) : 0;
    if (f) {
        fclose(f);
    }
    e = bw_encoder_new(kind, buf, n, BW_FRAMING_CONFLUENT, id, err, 256);
    if (e == NULL) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    return e;
}

static void jnum(FILE *f, const char *k, double v)
{
    if (isnan(v)) {
        fprintf(f, "\"%s\": null, ", k);
    } else {
        fprintf(f, "\"%s\": %.17g, ", k, v);
    }
}

static void write_bin(ctx_t *c, const char *name, const bw_wbuf_t *w)
{
    char path[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", c->dir, name);
    f = fopen(path, "wb");
    fwrite(w->data, 1, w->len, f);
    fclose(f);
}

static const bw_origin_t origin = {.source_timestamp = 1767225600500,
                                   .processed_at = 1767225601000,
                                   .stale = false,
                                   .config_version = "00ff",
                                   .source_topic = "metrics",
                                   .source_partition = 3,
                                   .source_offset = 77};

static void on_threat(void *opaque, const bw_threat_rec_t *t)
{
    ctx_t *c = opaque;
    bw_wbuf_t w = {0};
    char name[64];

    snprintf(name, sizeof(name), "threat_%d.bin", c->n++);
    if (bw_encode_threat(c->threat_enc, t, &origin,
                         &w) != BW_OK) {
        exit(1);
    }
    write_bin(c, name, &w);
    w.len = 0;
    if (bw_json_threat(t, &origin, &w) != BW_OK) {
        exit(1);
    }
    strcat(name, ".json");
    write_bin(c, name, &w);
    name[strlen(name) - 5] = '\0';
    fprintf(c->expected,
            "{\"file\": \"%s\", \"schema\": \"threat_score.avsc\", "
            "\"id\": 8, \"fields\": {\"entity_id\": \"%s\", \"rule\": \"%s\", "
            "\"level\": \"%s\", \"contributors\": %d, ",
            name, t->entity, t->rule->name, bw_level_name(t->threat.level),
            t->threat.n_contrib);
    jnum(c->expected, "probability", t->threat.probability);
    fprintf(c->expected, "\"freshness_lag_ms\": %lld}}\n",
            (long long)(origin.processed_at - t->time_ms));
    bw_wbuf_free(&w);
}

/* One score record as Avro (score_K.bin) and JSON (.bin.json), with the
 * values it must decode to; the value fields' NaN must read as null. */
static int score_vector(ctx_t *c, bw_encoder_t *se, const bw_event_t *ev,
                        const bw_score_t *sc, const bw_origin_t *o, int k)
{
    bw_wbuf_t w = {0}, j = {0};
    char name[64];

    if (bw_encode_score(se, ev, sc, o, &w) != BW_OK ||
        bw_json_score(ev, sc, o, &j) != BW_OK) {
        return 1;
    }
    snprintf(name, sizeof(name), "score_%d.bin.json", k);
    write_bin(c, name, &j);
    snprintf(name, sizeof(name), "score_%d.bin", k);
    write_bin(c, name, &w);
    fprintf(c->expected,
            "{\"file\": \"%s\", \"schema\": \"anomaly_score.avsc\", "
            "\"id\": 7, \"fields\": {\"entity_id\": \"%s/%s/%s\", "
            "\"model\": \"%s\", \"direction\": \"%s\", \"stale\": %s, "
            "\"late\": %s, ",
            name, ev->region, ev->service, ev->metric,
            bw_model_kind_name(sc->model), bw_direction_name(sc->direction),
            o->stale ? "true" : "false", sc->late ? "true" : "false");
    jnum(c->expected, "probability", sc->p_anomaly);
    jnum(c->expected, "actual", sc->actual);
    jnum(c->expected, "typical", sc->expected);
    jnum(c->expected, "typical_lower", sc->lower);
    jnum(c->expected, "typical_upper", sc->upper);
    jnum(c->expected, "p_value", sc->p_value);
    jnum(c->expected, "p_slo_breach", sc->p_slo);
    fprintf(c->expected,
            "\"freshness_lag_ms\": %lld, \"source_offset\": 77}}\n",
            (long long)(o->processed_at - ev->time_ms));
    bw_wbuf_free(&w);
    bw_wbuf_free(&j);
    return 0;
}

int main(int argc, char **argv)
{
    static const char yaml[] = "engine:\n"
                               "  routes:\n"
                               "    - metric: errors\n"
                               "      model: pooled_count\n"
                               "      slo: 0.01\n"
                               "model:\n"
                               "  fusion:\n"
                               "    rules:\n"
                               "      - name: exfil\n"
                               "        signals:\n"
                               "          - metric: egress\n"
                               "          - metric: errors\n";
    bw_config_t cfg;
    bw_engine_t *eng;
    bw_encoder_t *se;
    ctx_t c = {0};
    char path[1024];

    if (argc != 2) {
        return 64;
    }
    gsl_set_error_handler_off();
    if (bw_config_load_string(&cfg, "v", yaml, sizeof(yaml) - 1, stderr)) {
        return 1;
    }
    c.dir = argv[1];
    c.cfg = &cfg;
    snprintf(path, sizeof(path), "%s/expected.jsonl", c.dir);
    c.expected = fopen(path, "w");
    se = encoder(BW_RECORD_SCORE, "anomaly_score.avsc", 7);
    c.threat_enc = encoder(BW_RECORD_THREAT, "threat_score.avsc", 8);
    eng = bw_engine_new(&cfg, NULL, 0);
    for (int i = 0; i < 24; i++) {
        const char *regions[3] = {"eu", "us", "ap"};
        bw_event_t ev = {.time_ms = 1767225600000 + i * 60000,
                         .region = regions[i % 3],
                         .service = "api",
                         .metric = i % 2 ? "errors" : "egress",
                         .value = i % 2 ? 2 + i % 3 : 100 + (i == 20) * 500,
                         .count = i % 2 ? 1000 : NAN};
        bw_score_t sc;
        if (bw_engine_process(eng, &ev, &sc, on_threat, &c, NULL, 0) ||
            score_vector(&c, se, &ev, &sc, &origin, i)) {
            return 1;
        }
    }
    {
        /* an event older than its series' newest: late, unscored, the
         * typical fields null */
        bw_event_t ev = {.time_ms = 1767225600000 + 5 * 60000,
                         .region = "ap",
                         .service = "api",
                         .metric = "egress",
                         .value = 120,
                         .count = NAN};
        bw_score_t sc;
        if (bw_engine_process(eng, &ev, &sc, on_threat, &c, NULL, 0) ||
            !sc.late || score_vector(&c, se, &ev, &sc, &origin, 25)) {
            return 1;
        }
    }
    {
        /* a stale marker: no value, so the value fields are null */
        bw_event_t ev = {.time_ms = 1767225600000,
                         .region = "eu",
                         .service = "api",
                         .metric = "egress",
                         .value = NAN,
                         .count = NAN};
        bw_origin_t stale = origin;
        bw_score_t sc;
        stale.stale = true;
        bw_stale_score(&sc, BW_MODEL_SERIES);
        if (score_vector(&c, se, &ev, &sc, &stale, 24)) {
            return 1;
        }
    }
    fclose(c.expected);
    bw_engine_destroy(eng);
    bw_encoder_destroy(se);
    bw_encoder_destroy(c.threat_enc);
    return 0;
}
