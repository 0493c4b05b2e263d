/*
 * Metric-event codec: Confluent framing plus Avro binary via Avro-C's
 * generic values (one value per codec, reset per message).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <avro.h>

#include "avro_check.h"
#include "avro_io.h"
#include "bayeswatch/ingest.h"
#include "bayeswatch/timefmt.h"

#define CONFLUENT_MAGIC 0
#define FRAME_LEN BW__FRAME_LEN

struct bw_codec_s {
    bw__avro_t avro; /* schema, reusable value, writer */
    avro_reader_t reader;
    bw_framing_t framing;
};

const char *bw_dlq_reason_name(int reason)
{
    static const char *const names[] = {
#define BW__DLQ_NAME(name, str) str,
        BW_DLQ_MAP(BW__DLQ_NAME)
#undef BW__DLQ_NAME
    };
    return (reason >= 0 && reason < (int)(sizeof(names) / sizeof(names[0])))
               ? names[reason]
               : "?";
}

static int has_fields(avro_schema_t s)
{
    static const char *const need[] = {"event_time", "region", "service",
                                       "metric",     "value",  "count"};

    if (!is_avro_record(s)) {
        return 0;
    }
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
        if (avro_schema_record_field_get_index(s, need[i]) < 0) {
            return 0;
        }
    }
    return 1;
}

bw_codec_t *bw_codec_new(const char *schema_json, size_t len,
                         bw_framing_t framing, int32_t schema_id, char *errstr,
                         size_t errstr_size)
{
    bw_codec_t *c = bw_calloc(1, sizeof(*c));

    if (c == NULL) {
        bw_seterr(errstr, errstr_size, BW_ERR_NOMEM, "ingest: out of memory");
        return NULL;
    }
    c->framing = framing;
    if (bw__avro_init(&c->avro, schema_json, len,
                      framing == BW_FRAMING_CONFLUENT, schema_id, "ingest",
                      errstr, errstr_size) != BW_OK) {
        goto fail;
    }
    if (!has_fields(c->avro.schema)) {
        bw_seterr(errstr, errstr_size, BW_ERR_CONFIG,
                  "ingest: schema lacks the metric event fields (event_time, "
                  "region, service, metric, value, count)");
        goto fail;
    }
    if ((c->reader = avro_reader_memory("", 0)) == NULL) {
        bw_seterr(errstr, errstr_size, BW_ERR_NOMEM, "ingest: %s",
                  avro_strerror());
        goto fail;
    }
    return c;
fail:
    bw_codec_destroy(c);
    return NULL;
}

void bw_codec_destroy(bw_codec_t *c)
{
    if (c == NULL) {
        return;
    }
    if (c->reader != NULL) {
        avro_reader_free(c->reader);
    }
    bw__avro_free(&c->avro);
    bw_free(c);
}

static bw_err_t fail(bw_dlq_reason_t *reason, bw_dlq_reason_t r, char *detail,
                     size_t n, const char *msg)
{
    *reason = r;
    snprintf(detail, n, "%s", msg);
    return BW_ERR_PARSE;
}

/* Strip and check the Confluent frame; *body / *blen: the Avro payload. */
static bw_err_t unframe(const bw_codec_t *c, const uint8_t *buf, size_t len,
                        const uint8_t **body, size_t *blen,
                        bw_dlq_reason_t *reason, char *detail, size_t n)
{
    int32_t id;

    if (c->framing == BW_FRAMING_PLAIN) {
        *body = buf, *blen = len;
        return BW_OK;
    }
    if (len < FRAME_LEN || buf[0] != CONFLUENT_MAGIC) {
        return fail(reason, BW_DLQ_UNDECODABLE, detail, n,
                    "not in the Confluent wire format (magic byte 0 + "
                    "4-byte schema id)");
    }
    id = (int32_t)((uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 |
                   (uint32_t)buf[3] << 8 | buf[4]);
    if (id != c->avro.schema_id) {
        *reason = BW_DLQ_UNKNOWN_SCHEMA;
        snprintf(detail, n, "schema id %d, expected %d", id, c->avro.schema_id);
        return BW_ERR_PARSE;
    }
    *body = buf + FRAME_LEN, *blen = len - FRAME_LEN;
    return BW_OK;
}

static int get_string(avro_value_t *rec, const char *name, const char **out)
{
    avro_value_t f;
    size_t size;

    return avro_value_get_by_name(rec, name, &f, NULL) != 0 ||
           avro_value_get_string(&f, out, &size) != 0;
}

/* Fill ev from the decoded record; checks values, not framing. */
static bw_err_t extract(bw_codec_t *c, bw_event_t *ev, bw_dlq_reason_t *reason,
                        char *detail, size_t n)
{
    avro_value_t f, branch;
    int disc = 0;

    if (avro_value_get_by_name(&c->avro.value, "event_time", &f, NULL) != 0 ||
        avro_value_get_long(&f, &ev->time_ms) != 0 ||
        get_string(&c->avro.value, "region", &ev->region) ||
        get_string(&c->avro.value, "service", &ev->service) ||
        get_string(&c->avro.value, "metric", &ev->metric) ||
        avro_value_get_by_name(&c->avro.value, "value", &f, NULL) != 0 ||
        avro_value_get_double(&f, &ev->value) != 0 ||
        avro_value_get_by_name(&c->avro.value, "count", &f, NULL) != 0 ||
        avro_value_get_discriminant(&f, &disc) != 0) {
        return fail(reason, BW_DLQ_WRONG_SCHEMA, detail, n, avro_strerror());
    }
    ev->count = NAN;
    if (disc == 1 && (avro_value_get_current_branch(&f, &branch) != 0 ||
                      avro_value_get_double(&branch, &ev->count) != 0)) {
        return fail(reason, BW_DLQ_WRONG_SCHEMA, detail, n, avro_strerror());
    }
    if (ev->metric[0] == '\0' || ev->region[0] == '\0') {
        return fail(reason, BW_DLQ_MISSING_FIELD, detail, n,
                    "empty region or metric");
    }
    if (!isfinite(ev->value) || (disc == 1 && !isfinite(ev->count))) {
        return fail(reason, BW_DLQ_NON_FINITE, detail, n,
                    "value or count is NaN or infinite");
    }
    if (!bw_time_valid(ev->time_ms)) {
        *reason = BW_DLQ_BAD_TIMESTAMP;
        snprintf(detail, n, "event_time %lld ms is outside 1970..9999",
                 (long long)ev->time_ms);
        return BW_ERR_PARSE;
    }
    return BW_OK;
}

bw_err_t bw_codec_decode(bw_codec_t *c, const void *buf, size_t len,
                         bw_event_t *ev, bw_dlq_reason_t *reason, char *detail,
                         size_t detail_size)
{
    const uint8_t *body;
    size_t blen;
    long used;
    bw_err_t err =
        unframe(c, buf, len, &body, &blen, reason, detail, detail_size);

    if (err != BW_OK) {
        return err;
    }
    /* Check the structure first: Avro-C trusts length prefixes. */
    used = bw__avro_check(c->avro.schema, body, blen);
    if (used < 0) {
        return fail(reason, BW_DLQ_UNDECODABLE, detail, detail_size,
                    "not a well-formed record of the metric event schema");
    }
    if ((size_t)used != blen) {
        return fail(reason, BW_DLQ_WRONG_SCHEMA, detail, detail_size,
                    "the payload is longer than one record");
    }
    avro_value_reset(&c->avro.value);
    avro_reader_memory_set_source(c->reader, (const char *)body, (int64_t)blen);
    if (avro_value_read(c->reader, &c->avro.value) != 0) {
        return fail(reason, BW_DLQ_UNDECODABLE, detail, detail_size,
                    avro_strerror());
    }
    return extract(c, ev, reason, detail, detail_size);
}

static int set_string(avro_value_t *rec, const char *name, const char *s)
{
    avro_value_t f;

    return avro_value_get_by_name(rec, name, &f, NULL) != 0 ||
           avro_value_set_string(&f, s != NULL ? s : "default") != 0;
}

bw_err_t bw_codec_encode(bw_codec_t *c, const bw_event_t *ev, bw_wbuf_t *w)
{
    avro_value_t f, branch;

    avro_value_reset(&c->avro.value);
    if (avro_value_get_by_name(&c->avro.value, "event_time", &f, NULL) != 0 ||
        avro_value_set_long(&f, ev->time_ms) != 0 ||
        set_string(&c->avro.value, "region", ev->region) ||
        set_string(&c->avro.value, "service", ev->service) ||
        set_string(&c->avro.value, "metric", ev->metric) ||
        avro_value_get_by_name(&c->avro.value, "value", &f, NULL) != 0 ||
        avro_value_set_double(&f, ev->value) != 0 ||
        avro_value_get_by_name(&c->avro.value, "count", &f, NULL) != 0 ||
        avro_value_set_branch(&f, isnan(ev->count) ? 0 : 1, &branch) != 0 ||
        (isnan(ev->count) ? avro_value_set_null(&branch)
                          : avro_value_set_double(&branch, ev->count)) != 0) {
        return BW_ERR_INVAL;
    }
    return bw__avro_write(&c->avro, w);
}
