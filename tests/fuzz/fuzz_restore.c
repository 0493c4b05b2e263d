/*
 * Fuzz target: restoring a partition from its changelog. The input is a
 * sequence of records, each u8 key length | key | u16 value length
 * (little-endian; 0xffff = tombstone) | value. Before a value is restored
 * its checksums are made right again (the state blob's inside it, then the
 * envelope's), so mutations reach the decoders behind them instead of
 * stopping at the checksum. Any input must restore or be refused key by
 * key; the engine must then score events of every restored key and write
 * its changes without crashing.
 */
#include <math.h>
#include <string.h>

#include <gsl/gsl_errno.h>

#include "bayeswatch/engine.h"
#include "restore_config.h"
#include "bayeswatch/hash.h"
#include "fuzz.h"

static void put_crc(uint8_t *p, size_t len)
{
    uint32_t crc = bw_crc32(0, p, len - 4);

    for (int i = 0; i < 4; i++) {
        p[len - 4 + i] = (uint8_t)(crc >> (8 * i));
    }
}

/* The blob inside (it ends where the envelope's checksum starts), then
 * the envelope. */
static void fix_checksums(uint8_t *v, size_t len)
{
    if (len < 44 || memcmp(v, "BWCL", 4) != 0) {
        return;
    }
    for (size_t i = 36; i + 28 <= len - 4; i++) {
        if (memcmp(v + i, "BWST", 4) == 0) {
            put_crc(v + i, len - 4 - i);
            break;
        }
    }
    put_crc(v, len);
}

static void score_all(bw_engine_t *eng)
{
    static const char *const metrics[4] = {"latency", "errors", "cpu", "x"};
    bw_score_t sc;
    char err[256];

    for (int m = 0; m < 4; m++) {
        bw_event_t ev = {.region = "eu",
                         .service = "api",
                         .metric = metrics[m],
                         .value = 3,
                         .count = 100,
                         .time_ms = INT64_C(1) << 40};
        bw_engine_process(eng, &ev, &sc, NULL, NULL, err, sizeof(err));
    }
}

static void sink(void *opaque, const char *key, size_t klen, const uint8_t *v,
                 size_t len)
{
    (void)opaque, (void)key, (void)klen, (void)v, (void)len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bw_config_t cfg;
    static bool loaded;
    static uint8_t value[65536];
    bw_restore_stats_t st = {.offset = -1};
    char err[256];
    bw_engine_t *eng;
    size_t pos = 0;

    gsl_set_error_handler_off();
    if (!loaded) {
        bw_config_load_string(&cfg, "fuzz", bw_fuzz_restore_yaml,
                              sizeof(bw_fuzz_restore_yaml) - 1, NULL);
        loaded = true;
    }
    eng = bw_engine_new(&cfg, err, sizeof(err));
    if (eng == NULL) {
        return 0;
    }
    while (pos + 3 <= size) {
        size_t klen = data[pos], vlen;
        const char *key = (const char *)data + pos + 1;
        pos += 1 + klen;
        if (pos + 2 > size) {
            break;
        }
        vlen = (size_t)data[pos] | (size_t)data[pos + 1] << 8;
        pos += 2;
        if (vlen == 0xffff) {
            bw_engine_restore(eng, key, klen, NULL, 0, &st, err, sizeof(err));
            continue;
        }
        if (vlen > size - pos) {
            break;
        }
        memcpy(value, data + pos, vlen);
        fix_checksums(value, vlen);
        bw_engine_restore(eng, key, klen, value, vlen, &st, err, sizeof(err));
        pos += vlen;
    }
    bw_engine_restore_done(eng);
    score_all(eng);
    bw_engine_changes(eng, 0, sink, NULL, err, sizeof(err));
    bw_engine_destroy(eng);
    return 0;
}
