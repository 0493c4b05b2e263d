/*
 * Fuzz target: Confluent framing + Avro decode of metric events. Any bytes
 * must decode or be rejected with a dead-letter reason.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bayeswatch/ingest.h"
#include "fuzz.h"

#ifndef BW_SOURCE_DIR
#error BW_SOURCE_DIR must be defined
#endif

static bw_codec_t *c;

static void release(void)
{
    bw_codec_destroy(c); /* so LeakSanitizer sees a clean exit */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bw_event_t ev;
    bw_dlq_reason_t why;
    char detail[256];

    if (c == NULL) {
        char buf[65536];
        FILE *f = fopen(BW_SOURCE_DIR "/schemas/metric_event.avsc", "rb");
        size_t n = f != NULL ? fread(buf, 1, sizeof(buf), f) : 0;
        if (f != NULL) {
            fclose(f);
        }
        c = bw_codec_new(buf, n, BW_FRAMING_CONFLUENT, 1, NULL, 0);
        if (c == NULL) {
            abort();
        }
        atexit(release);
    }
    bw_codec_decode(c, data, size, &ev, &why, detail, sizeof(detail));
    return 0;
}
