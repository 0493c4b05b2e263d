/*
 * Metric-event codec: Confluent framing plus Avro binary. Every payload is
 * first checked structurally (avro_check.c) against the schema it was
 * written with; then the shipped layout is read directly (Avro 1.11
 * binary encoding), any other layout with Avro-C's generic values (one
 * value per codec, reset per message). With a schema lookup (a registry),
 * each schema id's writer schema is resolved against ours once
 * (resolve.c) and kept.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <avro.h>

#include "avro_check.h"
#include "avro_io.h"
#include "codec_int.h"
#include "resolve.h"
#include "bayeswatch/ingest.h"
#include "bayeswatch/timefmt.h"
#include "bayeswatch/mem.h"

#define WRITERS_MAX 32 /* writer schemas kept per codec */

struct bw_codec_s {
    bw__avro_t avro; /* schema, reusable value, writer */
    avro_reader_t reader;
    bw_framing_t framing;
    bool direct;     /* the shipped layout: read it without Avro-C values */
    bw_wbuf_t names; /* direct reads: region, service, metric, NUL-ended */
    char *json;      /* our schema's text (the reader of resolutions) */
    bw_schema_lookup_fn lookup; /* NULL: the one configured schema id */
    void *lookup_ctx;
    bw__writer_t writers[WRITERS_MAX];
    int n_writers, next_evict;
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

static bool direct_fits(avro_schema_t s);

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
    if ((c->json = bw_malloc(len + 1)) == NULL) {
        bw_seterr(errstr, errstr_size, BW_ERR_NOMEM, "ingest: out of memory");
        goto fail;
    }
    memcpy(c->json, schema_json, len);
    c->json[len] = '\0';
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
    c->direct = direct_fits(c->avro.schema);
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
    bw_wbuf_free(&c->names);
    for (int i = 0; i < c->n_writers; i++) {
        bw__writer_free(&c->writers[i]);
    }
    bw_free(c->json);
    bw_free(c);
}

void bw_codec_set_lookup(bw_codec_t *c, bw_schema_lookup_fn fn, void *ctx)
{
    c->lookup = fn;
    c->lookup_ctx = ctx;
}

void bw__codec_force_generic(bw_codec_t *c)
{
    c->direct = false;
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
                        int32_t *id_out, const uint8_t **body, size_t *blen,
                        bw_dlq_reason_t *reason, char *detail, size_t n)
{
    int32_t id = -1;

    *id_out = -1;
    if (c->framing == BW_FRAMING_PLAIN) {
        *body = buf, *blen = len;
        return BW_OK;
    }
    if (bw__avro_unframe(buf, len, &id, body, blen) != 0) {
        return fail(reason, BW_DLQ_UNDECODABLE, detail, n,
                    "not in the Confluent wire format (magic byte 0 + "
                    "4-byte schema id)");
    }
    *id_out = id;
    if (c->lookup != NULL && id < 0) { /* no registry gives one */
        *reason = BW_DLQ_UNKNOWN_SCHEMA;
        snprintf(detail, n, "schema id %d (registry ids are not negative)",
                 id);
        return BW_ERR_PARSE;
    }
    if (c->lookup == NULL && id != c->avro.schema_id) {
        *reason = BW_DLQ_UNKNOWN_SCHEMA;
        snprintf(detail, n, "schema id %d, expected %d", id, c->avro.schema_id);
        return BW_ERR_PARSE;
    }
    return BW_OK;
}

/* *nul is set if the string holds a NUL byte before its end. */
static int get_string(avro_value_t *rec, const char *name, const char **out,
                      bool *nul)
{
    avro_value_t f;
    size_t size = 0;

    if (avro_value_get_by_name(rec, name, &f, NULL) != 0 ||
        avro_value_get_string(&f, out, &size) != 0) {
        return 1;
    }
    *nul |= size > 0 && strlen(*out) + 1 != size;
    return 0;
}

static bw_err_t check_event(bw_event_t *ev, bool has_count, bool nul,
                            bw_dlq_reason_t *reason, char *detail, size_t n);

/* Fill ev from the decoded record @p rec; checks values, not framing. A
 * record resolved from a writer without `count` lacks it: its default,
 * null. */
static bw_err_t extract(avro_value_t *rec, bw_event_t *ev,
                        bw_dlq_reason_t *reason, char *detail, size_t n)
{
    avro_value_t f, branch;
    int disc = 0;
    bool has_count = avro_value_get_by_name(rec, "count", &f, NULL) == 0;
    bool nul = false;

    if (avro_value_get_by_name(rec, "event_time", &f, NULL) != 0 ||
        avro_value_get_long(&f, &ev->time_ms) != 0 ||
        get_string(rec, "region", &ev->region, &nul) ||
        get_string(rec, "service", &ev->service, &nul) ||
        get_string(rec, "metric", &ev->metric, &nul) ||
        avro_value_get_by_name(rec, "value", &f, NULL) != 0 ||
        avro_value_get_double(&f, &ev->value) != 0 ||
        (has_count && (avro_value_get_by_name(rec, "count", &f, NULL) != 0 ||
                       avro_value_get_discriminant(&f, &disc) != 0))) {
        return fail(reason, BW_DLQ_WRONG_SCHEMA, detail, n, avro_strerror());
    }
    ev->count = NAN;
    if (disc == 1 && (avro_value_get_current_branch(&f, &branch) != 0 ||
                      avro_value_get_double(&branch, &ev->count) != 0)) {
        return fail(reason, BW_DLQ_WRONG_SCHEMA, detail, n, avro_strerror());
    }
    return check_event(ev, disc == 1, nul, reason, detail, n);
}

/* The checks on decoded values, whichever path decoded them; @p nul: a
 * name held a NUL byte (it would have been cut short there). */
static bw_err_t check_event(bw_event_t *ev, bool has_count, bool nul,
                            bw_dlq_reason_t *reason, char *detail, size_t n)
{
    int disc = has_count;

    /* an empty service is the engine's "default": say so in the records
     * too (replay names it so), not "" beside a model of "default" */
    ev->service = bw_name_or_default(ev->service);

    if (nul) { /* before the emptiness: "\0abc" reads as empty */
        return fail(reason, BW_DLQ_REJECTED, detail, n,
                    "region, service or metric holds a control character "
                    "(U+0000-U+001F or U+007F)");
    }
    if (ev->metric[0] == '\0' || ev->region[0] == '\0') {
        return fail(reason, BW_DLQ_MISSING_FIELD, detail, n,
                    "empty region or metric");
    }
    if (!bw_utf8_valid(ev->region) || !bw_utf8_valid(ev->service) ||
        !bw_utf8_valid(ev->metric)) {
        return fail(reason, BW_DLQ_INVALID_UTF8, detail, n,
                    "region, service or metric is not valid UTF-8");
    }
    if (bw_has_control(ev->region) || bw_has_control(ev->service) ||
        bw_has_control(ev->metric)) {
        return fail(reason, BW_DLQ_REJECTED, detail, n,
                    "region, service or metric holds a control character "
                    "(U+0000-U+001F or U+007F)");
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

/* ---- direct reads of the shipped layout (after bw__avro_check) ---- */

static bool field_is(avro_schema_t s, int i, const char *name, avro_type_t t)
{
    avro_schema_t f = avro_schema_record_field_get_by_index(s, i);
    const char *fname = avro_schema_record_field_name(s, i);

    return f != NULL && fname != NULL && strcmp(fname, name) == 0 &&
           avro_typeof(f) == t;
}

/* event_time, region, service, metric, value, count ["null","double"],
 * labels map: the layout read_direct reads. */
static bool direct_fits(avro_schema_t s)
{
    avro_schema_t count;

    if (avro_schema_record_size(s) != 7 ||
        !field_is(s, 0, "event_time", AVRO_INT64) ||
        !field_is(s, 1, "region", AVRO_STRING) ||
        !field_is(s, 2, "service", AVRO_STRING) ||
        !field_is(s, 3, "metric", AVRO_STRING) ||
        !field_is(s, 4, "value", AVRO_DOUBLE) ||
        !field_is(s, 5, "count", AVRO_UNION) ||
        !field_is(s, 6, "labels", AVRO_MAP)) {
        return false;
    }
    count = avro_schema_record_field_get_by_index(s, 5);
    return avro_schema_union_size(count) == 2 &&
           avro_typeof(avro_schema_union_branch(count, 0)) == AVRO_NULL &&
           avro_typeof(avro_schema_union_branch(count, 1)) == AVRO_DOUBLE;
}

typedef struct {
    const uint8_t *p, *end;
} rd_t;

/* The structure was checked first (bw__avro_check): reads cannot fail. */
static int64_t rd_long(rd_t *r)
{
    int64_t v = 0;

    bw__avro_get_long(&r->p, r->end, &v);
    return v;
}

static double rd_double(rd_t *r)
{
    double d = 0.0;

    bw__avro_get_double(&r->p, r->end, &d);
    return d;
}

/* Copy a string into c->names; returns its offset there. *nul is set if
 * it holds a NUL byte. */
static size_t rd_string(rd_t *r, bw_codec_t *c, bool *nul)
{
    int64_t n = rd_long(r);
    size_t off = c->names.len;

    if (n < 0 || n > r->end - r->p) {
        n = 0; /* cannot happen after bw__avro_check */
    }
    *nul |= n > 0 && memchr(r->p, 0, (size_t)n) != NULL;
    bw_wbuf_bytes(&c->names, r->p, (size_t)n);
    bw_wbuf_u8(&c->names, 0);
    r->p += n;
    return off;
}

static bw_err_t read_direct(bw_codec_t *c, const uint8_t *body, size_t len,
                            bw_event_t *ev, bw_dlq_reason_t *reason,
                            char *detail, size_t n)
{
    rd_t r = {body, body + len};
    size_t reg, svc, met;
    bool has_count, nul = false;

    bw_wbuf_reset(&c->names);
    ev->time_ms = rd_long(&r);
    reg = rd_string(&r, c, &nul);
    svc = rd_string(&r, c, &nul);
    met = rd_string(&r, c, &nul);
    ev->value = rd_double(&r);
    has_count = rd_long(&r) == 1;
    ev->count = has_count ? rd_double(&r) : NAN;
    if (c->names.err != BW_OK) {
        return fail(reason, BW_DLQ_UNDECODABLE, detail, n, "out of memory");
    }
    ev->region = (const char *)c->names.data + reg;
    ev->service = (const char *)c->names.data + svc;
    ev->metric = (const char *)c->names.data + met;
    return check_event(ev, has_count, nul, reason, detail, n);
}

/* The resolved writer of schema id @p id: kept, or looked up and made. */
static bw_err_t writer(bw_codec_t *c, int32_t id, bw__writer_t **out,
                       bw_dlq_reason_t *reason, char *detail, size_t n)
{
    const char *json = NULL;
    bw__writer_t *w = NULL;
    bw_err_t err;

    for (int i = 0; i < c->n_writers && w == NULL; i++) {
        w = c->writers[i].id == id ? &c->writers[i] : NULL;
    }
    if (w == NULL) {
        err = c->lookup(c->lookup_ctx, id, &json, detail, n);
        if (err == BW_ERR_IO) {
            return err; /* undecided: not a dead letter */
        }
        if (err != BW_OK) {
            *reason = BW_DLQ_UNKNOWN_SCHEMA;
            return BW_ERR_PARSE;
        }
        if (c->n_writers < WRITERS_MAX) {
            w = &c->writers[c->n_writers++];
        } else {
            w = &c->writers[c->next_evict];
            c->next_evict = (c->next_evict + 1) % WRITERS_MAX;
            bw__writer_free(w);
        }
        if (bw__writer_init(w, id, json, c->json) != BW_OK) {
            /* the slot holds no writer: no later record of this id may
             * find it (ids looked up are never negative) */
            bw__writer_free(w);
            w->id = -1;
            return fail(reason, BW_DLQ_WRONG_SCHEMA, detail, n,
                        "out of memory");
        }
        w->direct = w->status == BW_OK && direct_fits(w->writer);
    }
    if (w->status != BW_OK) {
        *reason = BW_DLQ_WRONG_SCHEMA;
        snprintf(detail, n, "schema id %d cannot be read as a metric event: %s",
                 id, w->why);
        return BW_ERR_PARSE;
    }
    *out = w;
    return BW_OK;
}

bw_err_t bw_codec_decode(bw_codec_t *c, const void *buf, size_t len,
                         bw_event_t *ev, bw_dlq_reason_t *reason, char *detail,
                         size_t detail_size)
{
    const uint8_t *body;
    size_t blen;
    long used;
    int32_t id;
    bw__writer_t *w = NULL;
    avro_schema_t schema = c->avro.schema;
    avro_value_t *into = &c->avro.value, *rec = &c->avro.value;
    bool direct = c->direct;
    bw_err_t err =
        unframe(c, buf, len, &id, &body, &blen, reason, detail, detail_size);

    if (err == BW_OK && c->lookup != NULL && id >= 0) {
        err = writer(c, id, &w, reason, detail, detail_size);
    }
    if (err != BW_OK) {
        return err;
    }
    if (w != NULL) { /* read through the resolver into the reduced reader */
        schema = w->writer, direct = w->direct;
        into = &w->rw, rec = &w->out;
    }
    /* Check the structure first: Avro-C trusts length prefixes. */
    used = bw__avro_check(schema, body, blen);
    if (used < 0) {
        return fail(reason, BW_DLQ_UNDECODABLE, detail, detail_size,
                    "not a well-formed record of its writer schema");
    }
    if ((size_t)used != blen) {
        return fail(reason, BW_DLQ_WRONG_SCHEMA, detail, detail_size,
                    "the payload is longer than one record");
    }
    if (direct) {
        return read_direct(c, body, blen, ev, reason, detail, detail_size);
    }
    avro_value_reset(into);
    avro_reader_memory_set_source(c->reader, (const char *)body, (int64_t)blen);
    if (avro_value_read(c->reader, into) != 0) {
        return fail(reason, w ? BW_DLQ_WRONG_SCHEMA : BW_DLQ_UNDECODABLE,
                    detail, detail_size, avro_strerror());
    }
    return extract(rec, ev, reason, detail, detail_size);
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
