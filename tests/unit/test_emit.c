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
#include "bayeswatch/emit.h"
#include "bayeswatch/model.h"
#include "bayeswatch/schemas.h"

static double maybe_nan(bw_rng_t *r, double v)
{
    return bw_rng_uniform(r) < 0.2 ? NAN : v;
}

static void random_record(bw_rng_t *r, bw_event_t *ev, bw_score_t *sc,
                          bw_origin_t *o, char *region)
{
    static const char *const services[] = {"api", "", "s\xc3\xa9rvice"};
    int len = (int)(bw_rng_uniform(r) * 200);

    memset(region, 'a' + (int)(bw_rng_uniform(r) * 26), (size_t)len);
    region[len] = '\0';
    ev->region = region;
    ev->service = services[bw_rng_next(r) % 3];
    ev->metric = "latency_ms";
    ev->time_ms =
        (int64_t)(bw_rng_next(r) >> 1) * (bw_rng_uniform(r) < 0.5 ? -1 : 1);
    memset(sc, 0, sizeof(*sc));
    sc->model = (int)(bw_rng_next(r) % 3);
    sc->p_anomaly = bw_rng_uniform(r);
    sc->score = 100 * sc->p_anomaly;
    sc->alert = bw_rng_uniform(r) < 0.5;
    sc->direction = (int)(bw_rng_next(r) % 5);
    sc->actual = bw_rng_gauss(r) * 1e6;
    sc->expected = maybe_nan(r, bw_rng_gauss(r));
    sc->lower = -INFINITY;
    sc->upper = 1e308;
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
    ev.region = "a\xff" "b\"\x01\xc3\xa9\xed\xa0\x80";
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_direct_equals_generic),
        cmocka_unit_test(test_layout_check),
        cmocka_unit_test(test_json_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
