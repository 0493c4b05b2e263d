/*
 * The direct AnomalyScore writer against Avro-C's generic encoder: byte
 * for byte over random records (NaN -> null unions, every model kind and
 * direction, negative and huge longs, long and non-ASCII strings), and
 * the schema check refuses a layout it was not written for.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/emit/direct.h"
#include "bayeswatch/buf.h"
#include "bayeswatch/config.h"
#include "bayeswatch/emit.h"
#include "bayeswatch/model.h"
#include "bayeswatch/schemas.h"
#include "bayeswatch/timefmt.h"

static double maybe_nan(bw_rng_t *r, double v)
{
    return bw_rng_uniform(r) < 0.2 ? NAN : v;
}

static void random_record(bw_rng_t *r, bw_event_t *ev, bw_score_t *sc,
                          bw_origin_t *o, char *region)
{
    /* with '/' and '%': the id %-encodes them (bw_join_esc) */
    static const char *const services[] = {"api", "", "s\xc3\xa9rvice",
                                           "a/b", "5%"};
    int len = (int)(bw_rng_uniform(r) * 200);

    memset(region, 'a' + (int)(bw_rng_uniform(r) * 26), (size_t)len);
    region[len] = '\0';
    ev->region = region;
    ev->service = services[bw_rng_next(r) % 5];
    ev->metric = "latency_ms";
    ev->time_ms =
        (int64_t)(bw_rng_next(r) >> 1) * (bw_rng_uniform(r) < 0.5 ? -1 : 1);
    memset(sc, 0, sizeof(*sc));
    sc->model = (int)(bw_rng_next(r) % 3);
    sc->p_anomaly = bw_rng_uniform(r);
    sc->score = 100 * sc->p_anomaly;
    sc->alert = bw_rng_uniform(r) < 0.5;
    sc->direction = (int)(bw_rng_next(r) % 5);
    /* NaN: a stale marker's (null in Avro) */
    sc->actual = maybe_nan(r, bw_rng_gauss(r) * 1e6);
    sc->expected = maybe_nan(r, bw_rng_gauss(r));
    sc->lower = maybe_nan(r, -INFINITY);
    sc->upper = maybe_nan(r, 1e308);
    sc->p_value = maybe_nan(r, bw_rng_uniform(r));
    sc->p_slo = maybe_nan(r, bw_rng_uniform(r));
    sc->shrinkage = maybe_nan(r, bw_rng_uniform(r));
    sc->pop_mean = maybe_nan(r, bw_rng_uniform(r));
    sc->p_collective = maybe_nan(r, bw_rng_uniform(r));
    sc->block_mean = maybe_nan(r, bw_rng_gauss(r));
    sc->block_expected = maybe_nan(r, bw_rng_gauss(r));
    sc->p_own = maybe_nan(r, bw_rng_uniform(r));
    sc->p_population = maybe_nan(r, bw_rng_uniform(r));
    sc->abnormal_since = bw_rng_uniform(r) < 0.5
                             ? -1
                             : (int64_t)(bw_rng_next(r) % 4000000000000ULL);
    sc->adopted = bw_rng_uniform(r) < 0.1;
    sc->baseline_z = maybe_nan(r, bw_rng_gauss(r) * 5);
    sc->warmup = bw_rng_uniform(r) < 0.3;
    sc->late = bw_rng_uniform(r) < 0.1;
    o->source_timestamp = (int64_t)bw_rng_next(r) % 4000000000000LL;
    o->processed_at = (int64_t)(bw_rng_next(r) % 4000000000000ULL);
    o->stale = bw_rng_uniform(r) < 0.1;
    o->config_version = "0123456789abcdef";
    o->source_topic = "metrics";
    o->source_partition = (int32_t)(bw_rng_next(r) % 100000) - 1;
    o->source_offset = (int64_t)(bw_rng_next(r) >> 2) - 1;
}

static void test_direct_equals_generic(void **state)
{
    char err[256], region[256];
    bw_encoder_t *fast = bw_encoder_new(
        BW_RECORD_SCORE, bw_schema_anomaly_score, bw_schema_anomaly_score_len,
        BW_FRAMING_CONFLUENT, 7, err, sizeof(err));
    bw_encoder_t *ref = bw_encoder_new(
        BW_RECORD_SCORE, bw_schema_anomaly_score, bw_schema_anomaly_score_len,
        BW_FRAMING_CONFLUENT, 7, err, sizeof(err));
    bw_wbuf_t a = {0}, b = {0};
    bw_rng_t r;

    (void)state;
    assert_non_null(fast);
    assert_non_null(ref);
    bw__encoder_force_generic(ref);
    bw_rng_seed(&r, 42);
    for (int i = 0; i < 5000; i++) {
        bw_event_t ev;
        bw_score_t sc;
        bw_origin_t o;
        random_record(&r, &ev, &sc, &o, region);
        a.len = b.len = 0;
        assert_int_equal(bw_encode_score(fast, &ev, &sc, &o, &a), BW_OK);
        assert_int_equal(bw_encode_score(ref, &ev, &sc, &o, &b), BW_OK);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, a.len);
    }
    bw_wbuf_free(&a);
    bw_wbuf_free(&b);
    bw_encoder_destroy(fast);
    bw_encoder_destroy(ref);
}

/* A dead letter's detail cut inside a character (an engine message of 256
 * bytes ending in a long non-ASCII name) is written as well-formed UTF-8,
 * each stray byte of the cut character as U+FFFD (as the JSON writer
 * does): strict Avro readers failed on it. */
static void test_dead_letter_detail_utf8(void **state)
{
    char err[256], detail[256];
    bw_encoder_t *e = bw_encoder_new(
        BW_RECORD_DEAD_LETTER, bw_schema_dead_letter,
        bw_schema_dead_letter_len, BW_FRAMING_PLAIN, 0, err, sizeof(err));
    bw_dead_letter_t d = {.reason = BW_DLQ_MISSING_FIELD, .detail = detail};
    bw_origin_t o = {.source_topic = "metrics", .processed_at = 1};
    bw_wbuf_t w = {0};
    const uint8_t *p;
    uint64_t z = 0;
    int shift = 0;
    size_t len;
    char text[300];

    (void)state;
    assert_non_null(e);
    memset(detail, 'a', 250);
    memcpy(detail + 250, "\xe2\x82", 2); /* the first two bytes of a euro */
    detail[252] = '\0';
    assert_int_equal(bw_encode_dead_letter(e, &d, &o, &w), BW_OK);
    p = w.data + 1; /* past the reason's enum index (one byte) */
    do {
        z |= (uint64_t)(*p & 0x7f) << shift;
        shift += 7;
    } while (*p++ & 0x80);
    len = (size_t)(z >> 1);
    assert_int_equal(len, 256); /* a U+FFFD for each stray byte, as JSON */
    memcpy(text, p, len);
    text[len] = '\0';
    assert_true(bw_utf8_valid(text));
    assert_memory_equal(text + 250, "\xef\xbf\xbd\xef\xbf\xbd", 6);
    bw_wbuf_free(&w);
    bw_encoder_destroy(e);
}

/* An alert about long names keeps its figures (the message was cut at
 * 512 bytes, before "P = ..."), and NULL names are "default" as in every
 * other record (the subject lost its metric; %s of NULL). */
static void test_siem_long_and_null_names(void **state)
{
    char region[251], metric[251];
    bw_event_t ev = {.time_ms = 1000, .region = region, .service = "api",
                     .metric = metric, .value = 5};
    bw_score_t sc = {.p_anomaly = 0.999, .actual = 5, .expected = 1,
                     .abnormal_since = 0, .p_slo = NAN};
    bw_origin_t o = {.source_topic = "metrics", .processed_at = 1,
                     .config_version = "0"};
    bw_wbuf_t w = {0};

    (void)state;
    memset(region, 'r', 250);
    region[250] = '\0';
    memset(metric, 'm', 250);
    metric[250] = '\0';
    for (int f = BW_SIEM_ECS; f <= BW_SIEM_OCSF; f++) {
        w.len = 0;
        assert_int_equal(bw_siem_score(f, BW_ALERT_ANOMALY, &ev, &sc, &o, &w),
                         BW_OK);
        bw_wbuf_bytes(&w, "", 1);
        assert_non_null(strstr((char *)w.data, "P = 0.9990 (actual 5"));
    }
    ev.region = "eu";
    ev.service = NULL;
    ev.metric = "cpu";
    w.len = 0;
    assert_int_equal(bw_siem_score(BW_SIEM_ECS, BW_ALERT_ANOMALY, &ev, &sc,
                                   &o, &w),
                     BW_OK);
    bw_wbuf_bytes(&w, "", 1);
    assert_non_null(strstr((char *)w.data, "cpu of eu/default is abnormal"));
    assert_null(strstr((char *)w.data, "(null)"));
    bw_wbuf_free(&w);
}

static void test_layout_check(void **state)
{
    avro_schema_t s;
    /* the shipped schema with two fields swapped */
    const char *swapped =
        "{\"type\":\"record\",\"name\":\"AnomalyScore\",\"fields\":["
        "{\"name\":\"entity_type\",\"type\":\"string\"},"
        "{\"name\":\"entity_id\",\"type\":\"string\"}]}";

    (void)state;
    assert_int_equal(avro_schema_from_json_length(bw_schema_anomaly_score,
                                                  bw_schema_anomaly_score_len,
                                                  &s),
                     0);
    assert_true(bw__direct_score_fits(s));
    avro_schema_decref(s);
    assert_int_equal(avro_schema_from_json_length(swapped, strlen(swapped), &s),
                     0);
    assert_false(bw__direct_score_fits(s));
    avro_schema_decref(s);
}

/* JSON strings are always UTF-8: a byte outside any well-formed sequence
 * becomes U+FFFD; quotes and control characters are escaped. */
static void test_json_utf8(void **state)
{
    bw_rng_t r;
    bw_event_t ev = {.time_ms = 1000, .value = 1, .count = NAN};
    bw_score_t sc;
    bw_origin_t o = {.config_version = "v", .source_topic = "t"};
    bw_wbuf_t w = {0};
    char region[64], service[64];

    (void)state;
    bw_rng_seed(&r, 11);
    memset(&sc, 0, sizeof(sc));
    sc.p_anomaly = 0.5;
    ev.region = "a\xff"
                "b\"\x01\xc3\xa9\xed\xa0\x80";
    ev.service = "s";
    ev.metric = "m";
    bw_json_score(&ev, &sc, &o, &w);
    bw_wbuf_u8(&w, 0);
    assert_non_null(strstr((const char *)w.data,
                           "\"region\":\"a\\ufffdb\\\"\\u0001\xc3\xa9"
                           "\\ufffd\\ufffd\\ufffd\""));
    for (int i = 0; i < 2000; i++) { /* random bytes: always valid UTF-8 */
        for (int k = 0; k < 63; k++) {
            region[k] = (char)(1 + (int)(bw_rng_uniform(&r) * 255));
            service[k] = (char)(1 + (int)(bw_rng_uniform(&r) * 255));
        }
        region[63] = service[63] = '\0';
        ev.region = region, ev.service = service;
        w.len = 0;
        bw_json_score(&ev, &sc, &o, &w);
        bw_wbuf_u8(&w, 0);
        assert_int_equal(w.err, BW_OK);
        assert_true(bw_utf8_valid((const char *)w.data));
        for (size_t k = 0; k + 1 < w.len - 1; k++) { /* no raw controls */
            assert_true(w.data[k] >= 0x20 && w.data[k] != 0x7f);
        }
    }
    bw_wbuf_free(&w);
}

/* RFC 3339 formatting: hand-checked instants (the epoch, a leap day, the
 * last millisecond representable), then the parser as the reference for
 * 20,000 random instants over the valid range. */
static void test_time_format(void **state)
{
    char buf[40];
    uint64_t x = 88172645463325252ULL;

    (void)state;
    bw_time_format(0, buf, sizeof(buf));
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    bw_time_format(INT64_C(1709251199999), buf, sizeof(buf));
    assert_string_equal(buf, "2024-02-29T23:59:59.999Z");
    bw_time_format(BW_TIME_MAX_MS, buf, sizeof(buf));
    assert_string_equal(buf, "9999-12-31T23:59:59.999Z");
    for (int i = 0; i < 20000; i++) {
        int64_t ms, back;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        ms = (int64_t)(x % (uint64_t)BW_TIME_MAX_MS);
        bw_time_format(ms, buf, sizeof(buf));
        assert_int_equal(bw_time_parse(buf, &back), BW_OK);
        assert_true(back == ms);
    }
}

/* Alert ids: the same source record, rule and subject give the same id
 * whenever it is processed; any coordinate, the rule or the subject
 * changes it. */
static void test_alert_id(void **state)
{
    bw_origin_t o = {.source_timestamp = 5,
                     .processed_at = 1000,
                     .config_version = "v",
                     .source_topic = "metrics",
                     .source_partition = 3,
                     .source_offset = 42};
    char a[33], b[33];

    (void)state;
    bw_alert_id(&o, "anomaly:cpu", "eu/api/cpu", a);
    assert_int_equal(strlen(a), 32);
    o.processed_at = 99999; /* re-processed later: the same id */
    o.source_timestamp = 7;
    bw_alert_id(&o, "anomaly:cpu", "eu/api/cpu", b);
    assert_string_equal(a, b);
    o.source_offset = 43;
    bw_alert_id(&o, "anomaly:cpu", "eu/api/cpu", b);
    assert_string_not_equal(a, b);
    o.source_offset = 42;
    o.source_partition = 4;
    bw_alert_id(&o, "anomaly:cpu", "eu/api/cpu", b);
    assert_string_not_equal(a, b);
    o.source_partition = 3;
    o.source_topic = "metrics2";
    bw_alert_id(&o, "anomaly:cpu", "eu/api/cpu", b);
    assert_string_not_equal(a, b);
    o.source_topic = "metrics";
    bw_alert_id(&o, "slo_breach:cpu", "eu/api/cpu", b);
    assert_string_not_equal(a, b);
    bw_alert_id(&o, "anomaly:cpu", "eu/api/cpu2", b);
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_direct_equals_generic),
        cmocka_unit_test(test_layout_check),
        cmocka_unit_test(test_dead_letter_detail_utf8),
        cmocka_unit_test(test_siem_long_and_null_names),
        cmocka_unit_test(test_json_utf8),
        cmocka_unit_test(test_time_format),
        cmocka_unit_test(test_alert_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
