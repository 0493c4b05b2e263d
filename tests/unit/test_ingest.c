/*
 * Metric-event codec: decode of a record hand-encoded here from the Avro
 * specification (an independent encoder), round trips in both framings,
 * and every dead-letter reason.
 */
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "bayeswatch/ingest.h"
#include "../../src/avro/avro_check.h"
#include "testutil.h"
#include "bayeswatch/mem.h"

#ifndef BW_SOURCE_DIR
#error BW_SOURCE_DIR must be defined
#endif

static char *schema(size_t *len)
{
    FILE *f = fopen(BW_SOURCE_DIR "/schemas/metric_event.avsc", "rb");
    char *buf = calloc(1, 65536);

    assert_non_null(f);
    *len = fread(buf, 1, 65535, f);
    fclose(f);
    return buf;
}

static bw_codec_t *codec(bw_framing_t framing)
{
    size_t len;
    char *s = schema(&len), err[256];
    bw_codec_t *c = bw_codec_new(s, len, framing, 42, err, sizeof(err));

    if (c == NULL) {
        fail_msg("%s", err);
    }
    free(s);
    return c;
}

/* Avro binary by hand: zig-zag varints, strings, doubles (spec 1.11). */
static size_t put_long(uint8_t *p, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 0;

    do {
        p[n++] = (uint8_t)((z & 0x7f) | (z > 0x7f ? 0x80 : 0));
        z >>= 7;
    } while (z);
    return n;
}

static size_t put_string(uint8_t *p, const char *s)
{
    size_t n = put_long(p, (int64_t)strlen(s));

    memcpy(p + n, s, strlen(s));
    return n + strlen(s);
}

static size_t put_double(uint8_t *p, double d)
{
    memcpy(p, &d, 8); /* little-endian on this platform, as Avro wants */
    return 8;
}

static size_t hand_encoded(uint8_t *p, int with_count)
{
    size_t n = 0;

    p[n++] = 0; /* Confluent magic */
    p[n++] = 0, p[n++] = 0, p[n++] = 0, p[n++] = 42;
    n += put_long(p + n, INT64_C(1767225600123));
    n += put_string(p + n, "eu-west");
    n += put_string(p + n, "api");
    n += put_string(p + n, "errors");
    n += put_double(p + n, 3.0);
    n += put_long(p + n, with_count ? 1 : 0); /* union branch */
    if (with_count) {
        n += put_double(p + n, 1200.0);
    }
    n += put_long(p + n, 1); /* labels: one block of one entry */
    n += put_string(p + n, "host");
    n += put_string(p + n, "h1");
    n += put_long(p + n, 0); /* end of map */
    return n;
}

static void test_independent_encoding(void **state)
{
    bw_codec_t *c = codec(BW_FRAMING_CONFLUENT);
    uint8_t buf[256];
    size_t n = hand_encoded(buf, 1);
    bw_event_t ev;
    bw_dlq_reason_t why;
    char detail[256];

    (void)state;
    assert_int_equal(bw_codec_decode(c, buf, n, &ev, &why, detail, 256), BW_OK);
    assert_int_equal(ev.time_ms, INT64_C(1767225600123));
    assert_string_equal(ev.region, "eu-west");
    assert_string_equal(ev.service, "api");
    assert_string_equal(ev.metric, "errors");
    assert_float_equal(ev.value, 3.0, 0);
    assert_float_equal(ev.count, 1200.0, 0);
    n = hand_encoded(buf, 0);
    assert_int_equal(bw_codec_decode(c, buf, n, &ev, &why, detail, 256), BW_OK);
    assert_true(isnan(ev.count));
    bw_codec_destroy(c);
}

/* One failed allocation of the names buffer dead-letters its record as out
 * of memory, and only that one: the buffer's error is not sticky across
 * records (every later record of the worker was dead-lettered before). */
static void test_names_recover_after_oom(void **state)
{
    bw_codec_t *c = codec(BW_FRAMING_CONFLUENT);
    uint8_t buf[256];
    size_t n = hand_encoded(buf, 1);
    bw_event_t ev;
    bw_dlq_reason_t why;
    char detail[256];

    (void)state;
    bw_mem_fail_after(0);
    assert_int_not_equal(bw_codec_decode(c, buf, n, &ev, &why, detail, 256),
                         BW_OK);
    bw_mem_fail_after(-1);
    assert_int_equal(why, BW_DLQ_UNDECODABLE);
    assert_non_null(strstr(detail, "out of memory"));
    assert_int_equal(bw_codec_decode(c, buf, n, &ev, &why, detail, 256), BW_OK);
    assert_string_equal(ev.region, "eu-west");
    bw_codec_destroy(c);
}

static void test_round_trip(void **state)
{
    bw_framing_t framings[2] = {BW_FRAMING_CONFLUENT, BW_FRAMING_PLAIN};

    (void)state;
    for (int k = 0; k < 2; k++) {
        bw_codec_t *c = codec(framings[k]);
        bw_event_t in = {.time_ms = 5000,
                         .region = "r",
                         .service = "s",
                         .metric = "latency_ms",
                         .value = 12.5,
                         .count = NAN};
        bw_event_t out;
        bw_wbuf_t w = {0};
        bw_dlq_reason_t why;
        char detail[256];
        assert_int_equal(bw_codec_encode(c, &in, &w), BW_OK);
        assert_int_equal(w.data[0] == 0, framings[k] == BW_FRAMING_CONFLUENT);
        assert_int_equal(
            bw_codec_decode(c, w.data, w.len, &out, &why, detail, 256), BW_OK);
        assert_int_equal(out.time_ms, 5000);
        assert_string_equal(out.metric, "latency_ms");
        assert_float_equal(out.value, 12.5, 0);
        assert_true(isnan(out.count));
        bw_wbuf_free(&w);
        bw_codec_destroy(c);
    }
}

/* A framed record (schema id 42) whose region is the @p len raw bytes of
 * @p region (NULs included); its size. */
static size_t raw_region_record(uint8_t *p, const char *region, size_t len)
{
    size_t k = 0;

    p[k++] = 0, p[k++] = 0, p[k++] = 0, p[k++] = 0, p[k++] = 42;
    k += put_long(p + k, INT64_C(1767225600123));
    k += put_long(p + k, (int64_t)len);
    memcpy(p + k, region, len);
    k += len;
    k += put_string(p + k, "api");
    k += put_string(p + k, "errors");
    k += put_double(p + k, 3.0);
    k += put_long(p + k, 0); /* no count */
    k += put_long(p + k, 0); /* no labels */
    return k;
}

static void expect(bw_codec_t *c, const uint8_t *buf, size_t n,
                   bw_dlq_reason_t want)
{
    bw_event_t ev;
    bw_dlq_reason_t why = BW_DLQ_REJECTED;
    char detail[256] = "";

    assert_int_equal(bw_codec_decode(c, buf, n, &ev, &why, detail, 256),
                     BW_ERR_PARSE);
    if (why != want) {
        fail_msg("reason %s (%s), expected %s", bw_dlq_reason_name(why), detail,
                 bw_dlq_reason_name(want));
    }
    assert_true(detail[0] != '\0');
}

static void test_dead_letter_reasons(void **state)
{
    bw_codec_t *c = codec(BW_FRAMING_CONFLUENT);
    uint8_t buf[256], bad[256];
    size_t n = hand_encoded(buf, 1);
    bw_event_t ev = {.time_ms = 1000,
                     .region = "r",
                     .service = "s",
                     .metric = "m",
                     .value = 1,
                     .count = NAN};
    bw_wbuf_t w = {0};

    (void)state;
    memcpy(bad, buf, n);
    bad[0] = 7;
    expect(c, bad, n, BW_DLQ_UNDECODABLE); /* magic */
    expect(c, buf, 3, BW_DLQ_UNDECODABLE); /* shorter than a frame */
    memcpy(bad, buf, n);
    bad[4] = 43;
    expect(c, bad, n, BW_DLQ_UNKNOWN_SCHEMA);
    expect(c, buf, n - 4, BW_DLQ_UNDECODABLE); /* truncated record */
    memcpy(bad, buf, n);
    bad[n] = 0x02;
    expect(c, bad, n + 1, BW_DLQ_WRONG_SCHEMA); /* trailing bytes */
    ev.value = NAN;
    bw_codec_encode(c, &ev, &w);
    expect(c, w.data, w.len, BW_DLQ_NON_FINITE);
    w.len = 0;
    ev.value = 1, ev.time_ms = -1;
    bw_codec_encode(c, &ev, &w);
    expect(c, w.data, w.len, BW_DLQ_BAD_TIMESTAMP);
    w.len = 0;
    ev.time_ms = 1000, ev.metric = "";
    bw_codec_encode(c, &ev, &w);
    expect(c, w.data, w.len, BW_DLQ_MISSING_FIELD);
    w.len = 0;
    ev.metric = "m", ev.region = "eu\xc0\xaf"; /* overlong: not UTF-8 */
    bw_codec_encode(c, &ev, &w);
    expect(c, w.data, w.len, BW_DLQ_INVALID_UTF8);
    w.len = 0;
    ev.region = "r", ev.service = "\xed\xa0\x80"; /* a surrogate */
    bw_codec_encode(c, &ev, &w);
    expect(c, w.data, w.len, BW_DLQ_INVALID_UTF8);
    /* control characters: 0x1f separates the parts of the engine's keys,
     * so "a\x1fb"/"c" and "a"/"b\x1fc" would share one model */
    w.len = 0;
    ev.service = "b\x1f" "c";
    bw_codec_encode(c, &ev, &w);
    expect(c, w.data, w.len, BW_DLQ_REJECTED);
    w.len = 0;
    ev.service = "api\x7f";
    bw_codec_encode(c, &ev, &w);
    expect(c, w.data, w.len, BW_DLQ_REJECTED);
    { /* an empty service is "default", as the engine and replay name it */
        bw_event_t got;
        bw_dlq_reason_t why;
        char d[128];
        w.len = 0;
        ev.service = "";
        bw_codec_encode(c, &ev, &w);
        assert_int_equal(bw_codec_decode(c, w.data, w.len, &got, &why, d,
                                         sizeof(d)),
                         BW_OK);
        assert_string_equal(got.service, "default");
    }
    ev.service = "api";
    {
        uint8_t nb[64];
        /* a NUL inside a name: "eu\0x" would be read as "eu" */
        expect(c, nb, raw_region_record(nb, "eu\0x", 4), BW_DLQ_REJECTED);
        /* ... and at its start ("\0eu" read as empty): rejected, not
         * missing */
        expect(c, nb, raw_region_record(nb, "\0eu", 3), BW_DLQ_REJECTED);
    }
    assert_string_equal(bw_dlq_reason_name(BW_DLQ_LATE), "late");
    assert_string_equal(bw_dlq_reason_name(BW_DLQ_TIME_SKEW), "time_skew");
    bw_wbuf_free(&w);
    bw_codec_destroy(c);
}

/* ---- writer schemas from a registry (resolve.c) ---- */

#define F(n, t) "{\"name\":\"" n "\",\"type\":" t "}"
#define REC(fields)                                                            \
    "{\"type\":\"record\",\"name\":\"MetricEvent\",\"namespace\":"             \
    "\"io.bayeswatch\",\"fields\":[" fields "]}"

/* A producer's evolution: metric renamed (the old name kept as an alias),
 * value an int, a new field, count and labels dropped (both have
 * defaults in ours). */
static const char *const w_evolved =
    REC(F("event_time", "\"long\"") "," F("region", "\"string\"") "," F(
        "service",
        "\"string\"") ","
                      "{\"name\":\"metric_name\",\"type\":\"string\","
                      "\"aliases\":[\"metric\"]}," F("value", "\"int\"") "," F(
                          "host", "\"string\""));
/* event_time an int (promoted to long), fields in another order. */
static const char *const w_promoted =
    REC(F("value", "\"double\"") "," F("event_time", "\"int\"") "," F(
        "region",
        "\"string\"") "," F("service",
                            "\"string\"") "," F("metric",
                                                "\"string\"") "," F("count",
                                                                    "[\"null\","
                                                                    "\"double\""
                                                                    "]"));
static const char *const w_no_region =
    REC(F("event_time", "\"long\"") "," F("service", "\"string\"") "," F(
        "metric", "\"string\"") "," F("value", "\"double\""));
static const char *const w_string_value =
    REC(F("event_time", "\"long\"") "," F("region", "\"string\"") "," F(
        "service", "\"string\"") "," F("metric",
                                       "\"string\"") "," F("value",
                                                           "\"string\""));

static char *ours;

static bw_err_t lookup(void *ctx, int32_t id, const char **json, char *errstr,
                       size_t n)
{
    int *calls = ctx;

    (*calls)++;
    switch (id) {
    case 42:
        *json = ours;
        return BW_OK;
    case 11:
        *json = w_evolved;
        return BW_OK;
    case 12:
        *json = w_promoted;
        return BW_OK;
    case 13:
        *json = w_no_region;
        return BW_OK;
    case 14:
        *json = w_string_value;
        return BW_OK;
    case 98:
        snprintf(errstr, n, "registry unreachable");
        return BW_ERR_IO;
    default:
        snprintf(errstr, n, "schema id %d not found", id);
        return BW_ERR_NOTFOUND;
    }
}

static size_t frame(uint8_t *p, int32_t id)
{
    p[0] = 0, p[1] = (uint8_t)(id >> 24), p[2] = (uint8_t)(id >> 16);
    p[3] = (uint8_t)(id >> 8), p[4] = (uint8_t)id;
    return 5;
}

/* jansson's allocator, failing once its countdown reaches 0 (-1: never). */
static long json_fail_in = -1;

static void *json_alloc(size_t n)
{
    if (json_fail_in == 0) {
        return NULL;
    }
    json_fail_in -= json_fail_in > 0;
    return malloc(n);
}

/* A writer that could not be built for lack of memory leaves no slot
 * behind: the next record of its id looks the schema up again and is
 * decoded (every later record was dead-lettered as wrong_schema with an
 * empty reason before). The allocation that fails is found by counting up
 * until the decode reports out of memory. */
static void test_writer_retried_after_oom(void **state)
{
    uint8_t buf[256];
    size_t n, len;
    int calls = 0, failed = 0;
    bw_event_t ev;
    bw_dlq_reason_t why;
    char detail[256];

    (void)state;
    ours = schema(&len);
    n = frame(buf, 11);
    n += put_long(buf + n, INT64_C(1767225600123));
    n += put_string(buf + n, "eu");
    n += put_string(buf + n, "api");
    n += put_string(buf + n, "cpu");
    n += put_long(buf + n, 7);
    n += put_string(buf + n, "h1");
    for (long k = 0; k < 200 && !failed; k++) {
        bw_codec_t *c = codec(BW_FRAMING_CONFLUENT);
        bw_err_t err;
        bw_codec_set_lookup(c, lookup, &calls);
        json_set_alloc_funcs(json_alloc, free);
        json_fail_in = k;
        err = bw_codec_decode(c, buf, n, &ev, &why, detail, 256);
        json_fail_in = -1;
        json_set_alloc_funcs(malloc, free);
        if (err != BW_OK && strstr(detail, "out of memory") != NULL) {
            failed = 1;
            assert_int_equal(bw_codec_decode(c, buf, n, &ev, &why, detail, 256),
                             BW_OK);
            assert_string_equal(ev.metric, "cpu");
        }
        bw_codec_destroy(c);
    }
    assert_true(failed);
    free(ours);
}

static void test_writer_schemas(void **state)
{
    bw_codec_t *c = codec(BW_FRAMING_CONFLUENT);
    uint8_t buf[256];
    size_t n, len;
    int calls = 0;
    bw_event_t ev;
    bw_dlq_reason_t why;
    char detail[256];

    (void)state;
    ours = schema(&len);
    bw_codec_set_lookup(c, lookup, &calls);
    /* our own schema under the registry's id: the direct path */
    n = hand_encoded(buf, 1);
    assert_int_equal(bw_codec_decode(c, buf, n, &ev, &why, detail, 256), BW_OK);
    assert_float_equal(ev.count, 1200.0, 0);
    /* the evolved writer */
    n = frame(buf, 11);
    n += put_long(buf + n, INT64_C(1767225600123));
    n += put_string(buf + n, "eu");
    n += put_string(buf + n, "api");
    n += put_string(buf + n, "cpu");
    n += put_long(buf + n, 7); /* an int */
    n += put_string(buf + n, "h1");
    for (int k = 0; k < 2; k++) { /* the second time from the codec's cache */
        assert_int_equal(bw_codec_decode(c, buf, n, &ev, &why, detail, 256),
                         BW_OK);
        assert_int_equal(ev.time_ms, INT64_C(1767225600123));
        assert_string_equal(ev.region, "eu");
        assert_string_equal(ev.metric, "cpu");
        assert_float_equal(ev.value, 7.0, 0);
        assert_true(isnan(ev.count));
    }
    assert_int_equal(calls, 2);
    /* int -> long, another field order */
    n = frame(buf, 12);
    n += put_double(buf + n, 2.5);
    n += put_long(buf + n, 86400000);
    n += put_string(buf + n, "us");
    n += put_string(buf + n, "auth");
    n += put_string(buf + n, "errors");
    n += put_long(buf + n, 1);
    n += put_double(buf + n, 40.0);
    assert_int_equal(bw_codec_decode(c, buf, n, &ev, &why, detail, 256), BW_OK);
    assert_int_equal(ev.time_ms, 86400000);
    assert_string_equal(ev.service, "auth");
    assert_float_equal(ev.value, 2.5, 0);
    assert_float_equal(ev.count, 40.0, 0);
    /* incompatible writers, unknown ids: dead letters with the reason */
    frame(buf, 13);
    expect(c, buf, 5, BW_DLQ_WRONG_SCHEMA);
    assert_int_equal(bw_codec_decode(c, buf, 5, &ev, &why, detail, 256),
                     BW_ERR_PARSE);
    assert_non_null(strstr(detail, "lacks field region"));
    frame(buf, 14);
    expect(c, buf, 5, BW_DLQ_WRONG_SCHEMA);
    frame(buf, 99);
    expect(c, buf, 5, BW_DLQ_UNKNOWN_SCHEMA);
    /* a negative id is no registry's: not decoded with the reader schema */
    n = hand_encoded(buf, 1);
    buf[1] = 0x80;
    expect(c, buf, n, BW_DLQ_UNKNOWN_SCHEMA);
    /* a registry that cannot be reached decides nothing */
    frame(buf, 98);
    assert_int_equal(bw_codec_decode(c, buf, 5, &ev, &why, detail, 256),
                     BW_ERR_IO);
    assert_non_null(strstr(detail, "unreachable"));
    bw_codec_destroy(c);
    free(ours);
}

/* Arrays of zero-byte items (null here) cannot make the structure check
 * quadratic: 300 blocks, each claiming as many nulls as bytes remain + 1
 * (2,600 down to 2,002; 2,000 bytes of padding after the array), passed
 * the per-block check and cost about 690,000 item visits for 2,601 bytes.
 * The datum's item budget (its length + 1) refuses them at the second
 * block. An array within the budget passes. */
static void test_check_items_budget(void **state)
{
    enum { B = 300, P = 2000, L = 2 * B + 1 + P };
    avro_schema_t s = NULL;
    static uint8_t buf[L];
    size_t n = 0;

    (void)state;
    assert_int_equal(avro_schema_from_json_literal(
                         "{\"type\":\"array\",\"items\":\"null\"}", &s),
                     0);
    for (int k = 0; k < B; k++) {
        n += put_long(buf + n, L - 2 * (k + 1) + 1); /* 2 bytes each */
    }
    buf[n++] = 0; /* end of the array; then the padding */
    assert_int_equal(n, 2 * B + 1);
    assert_int_equal(bw__avro_check(s, buf, L), -1);
    n = put_long(buf, 2); /* two nulls in a block, then the end */
    buf[n++] = 0;
    assert_int_equal(bw__avro_check(s, buf, n), (long)n);
    avro_schema_decref(s);
}

/* A writer schema that names a type once and uses it again by name: Avro-C
 * reads the second use as a link, which the structure check follows (it
 * refused every such record as undecodable before); a recursive type is
 * bounded by the nesting depth. */
static void test_check_follows_named_types(void **state)
{
    avro_schema_t s = NULL, list = NULL;
    uint8_t buf[64];
    size_t n = 0;

    (void)state;
    assert_int_equal(
        avro_schema_from_json_literal(
            "{\"type\":\"record\",\"name\":\"R\",\"fields\":["
            "{\"name\":\"a\",\"type\":{\"type\":\"enum\",\"name\":\"U\","
            "\"symbols\":[\"x\",\"y\"]}},{\"name\":\"b\",\"type\":\"U\"}]}",
            &s),
        0);
    n += put_long(buf + n, 1);
    n += put_long(buf + n, 0);
    assert_int_equal(bw__avro_check(s, buf, n), (long)n);
    buf[n - 1] = 4; /* b's symbol 2: out of U's range */
    assert_int_equal(bw__avro_check(s, buf, n), -1);
    assert_int_equal(
        avro_schema_from_json_literal(
            "{\"type\":\"record\",\"name\":\"L\",\"fields\":["
            "{\"name\":\"next\",\"type\":[\"null\",\"L\"]}]}",
            &list),
        0);
    n = 0;
    n += put_long(buf + n, 1); /* next: an L */
    n += put_long(buf + n, 0); /* its next: null */
    assert_int_equal(bw__avro_check(list, buf, n), (long)n);
    n = 0;
    for (int k = 0; k < 40; k++) { /* deeper than the depth bound */
        n += put_long(buf + n, 1);
    }
    n += put_long(buf + n, 0);
    assert_int_equal(bw__avro_check(list, buf, n), -1);
    avro_schema_decref(list);
    avro_schema_decref(s);
}

static void test_bad_schema(void **state)
{
    char err[256];
    const char *other = "{\"type\":\"record\",\"name\":\"X\",\"fields\":"
                        "[{\"name\":\"a\",\"type\":\"int\"}]}";

    (void)state;
    assert_null(bw_codec_new("{", 1, BW_FRAMING_PLAIN, 0, err, sizeof(err)));
    assert_non_null(strstr(err, "schema"));
    assert_null(bw_codec_new(other, strlen(other), BW_FRAMING_PLAIN, 0, err,
                             sizeof(err)));
    assert_non_null(strstr(err, "lacks"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_independent_encoding),
        cmocka_unit_test(test_names_recover_after_oom),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_dead_letter_reasons),
        cmocka_unit_test(test_bad_schema),
        cmocka_unit_test(test_check_items_budget),
        cmocka_unit_test(test_check_follows_named_types),
        cmocka_unit_test(test_writer_schemas),
        cmocka_unit_test(test_writer_retried_after_oom),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
