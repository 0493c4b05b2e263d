/*
 * Fuzz target: Confluent framing + Avro decode of metric events. Any bytes
 * must decode or be rejected with a dead-letter reason, and the direct
 * reader of the shipped layout must agree with Avro-C's generic decoding
 * (verdict, reason and every field): a differential fuzzer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/ingest/codec_int.h"
#include "bayeswatch/ingest.h"
#include "fuzz.h"

#ifndef BW_SOURCE_DIR
#error BW_SOURCE_DIR must be defined
#endif

static bw_codec_t *c, *ref;

static void release(void)
{
    bw_codec_destroy(c); /* so LeakSanitizer sees a clean exit */
    bw_codec_destroy(ref);
}

static int same_num(double a, double b)
{
    return a == b || (isnan(a) && isnan(b));
}

static void agree(const uint8_t *data, size_t size)
{
    bw_event_t a, b;
    bw_dlq_reason_t wa = BW_DLQ_REJECTED, wb = BW_DLQ_REJECTED;
    char da[256], db[256];
    bw_err_t ea = bw_codec_decode(c, data, size, &a, &wa, da, sizeof(da));
    bw_err_t eb = bw_codec_decode(ref, data, size, &b, &wb, db, sizeof(db));

    if (ea != eb || (ea != BW_OK && wa != wb) ||
        (ea == BW_OK &&
         (a.time_ms != b.time_ms || strcmp(a.region, b.region) != 0 ||
          strcmp(a.service, b.service) != 0 ||
          strcmp(a.metric, b.metric) != 0 || !same_num(a.value, b.value) ||
          !same_num(a.count, b.count)))) {
        fprintf(stderr,
                "direct and generic decoding disagree: %d/%s vs %d/%s\n", ea,
                bw_dlq_reason_name(wa), eb, bw_dlq_reason_name(wb));
        abort();
    }
}

static bw_codec_t *make(void)
{
    char buf[65536];
    FILE *f = fopen(BW_SOURCE_DIR "/schemas/metric_event.avsc", "rb");
    size_t n = f != NULL ? fread(buf, 1, sizeof(buf), f) : 0;

    if (f != NULL) {
        fclose(f);
    }
    return bw_codec_new(buf, n, BW_FRAMING_CONFLUENT, 1, NULL, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (c == NULL) {
        c = make();
        ref = make();
        if (c == NULL || ref == NULL) {
            abort();
        }
        bw__codec_force_generic(ref);
        atexit(release);
    }
    agree(data, size);
    return 0;
}
