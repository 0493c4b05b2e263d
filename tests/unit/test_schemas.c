/*
 * Every schema in schemas/ parses with Avro-C and has the fields the
 * pipeline relies on.
 */
#include <avro.h>
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"

#ifndef BW_SOURCE_DIR
#error BW_SOURCE_DIR must be defined
#endif

static avro_schema_t load(const char *name)
{
    char path[1024], buf[16384];
    avro_schema_t s = NULL;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "%s/schemas/%s", BW_SOURCE_DIR, name);
    f = fopen(path, "rb");
    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (avro_schema_from_json_length(buf, n, &s) != 0) {
        fail_msg("%s: %s", name, avro_strerror());
    }
    return s;
}

static void has_fields(avro_schema_t s, const char *const *fields)
{
    for (int i = 0; fields[i] != NULL; i++) {
        if (avro_schema_record_field_get_index(s, fields[i]) < 0) {
            fail_msg("missing field %s", fields[i]);
        }
    }
}

static void test_schemas_parse(void **state)
{
    static const char *const ev[] = {"event_time", "region", "service",
                                     "metric",     "value",  "count",
                                     "labels",     NULL};
    static const char *const sc[] = {"entity_id",
                                     "probability",
                                     "score",
                                     "actual",
                                     "typical",
                                     "event_time",
                                     "source_timestamp",
                                     "processed_at",
                                     "freshness_lag_ms",
                                     "stale",
                                     "config_version",
                                     "source_topic",
                                     "source_partition",
                                     "source_offset",
                                     NULL};
    static const char *const th[] = {
        "entity_id", "probability",      "score", "level", "contributors",
        "stale",     "freshness_lag_ms", NULL};
    static const char *const dl[] = {"reason", "original_value", "source_topic",
                                     "source_offset", NULL};
    const char *names[] = {"metric_event.avsc", "anomaly_score.avsc",
                           "threat_score.avsc", "dead_letter.avsc"};
    const char *const *fields[] = {ev, sc, th, dl};

    (void)state;
    for (int i = 0; i < 4; i++) {
        avro_schema_t s = load(names[i]);
        assert_true(is_avro_record(s));
        has_fields(s, fields[i]);
        avro_schema_decref(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schemas_parse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
