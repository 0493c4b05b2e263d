/*
 * Writes the changelog of a short run (series with a daily profile, a
 * pooled count and a pooled normal group, a fusion entity, the engine's
 * own record) in fuzz_restore.c's input format into a corpus directory:
 * make_restore_seeds tests/fuzz/corpus/restore
 */
#include <math.h>
#include <stdio.h>

#include <gsl/gsl_errno.h>

#include "bayeswatch/engine.h"
#include "restore_config.h"

static void put(void *opaque, const char *key, size_t klen, const uint8_t *v,
                size_t len)
{
    FILE *f = opaque;

    if (klen > 255 || len >= 0xffff) {
        return;
    }
    fputc((int)klen, f);
    fwrite(key, 1, klen, f);
    fputc((int)(len & 0xff), f);
    fputc((int)(len >> 8), f);
    fwrite(v, 1, len, f);
}

int main(int argc, char **argv)
{
    static const char *const metrics[3] = {"latency", "errors", "cpu"};
    static const char *const regions[2] = {"eu", "us"};
    bw_config_t cfg;
    bw_engine_t *eng;
    bw_score_t sc;
    char err[256], path[1024];
    FILE *f;

    if (argc != 2) {
        fprintf(stderr, "usage: make_restore_seeds DIR\n");
        return 64;
    }
    gsl_set_error_handler_off();
    if (bw_config_load_string(&cfg, "seed", bw_fuzz_restore_yaml,
                              sizeof(bw_fuzz_restore_yaml) - 1,
                              stderr) != BW_OK) {
        return 1;
    }
    eng = bw_engine_new(&cfg, err, sizeof(err));
    for (int t = 0; t < 300; t++) {
        for (int i = 0; i < 6; i++) {
            bw_event_t ev = {.region = regions[i % 2],
                             .service = "api",
                             .metric = metrics[i / 2],
                             .time_ms = 1700000000000LL + t * 300000LL,
                             .value = 10 + sin(t * 0.1 + i),
                             .count = 1000};
            bw_engine_process(eng, &ev, &sc, NULL, NULL, err, sizeof(err));
        }
    }
    snprintf(path, sizeof(path), "%s/seed-changelog", argv[1]);
    f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    bw_engine_changes(eng, 1800, put, f, err, sizeof(err));
    fclose(f);
    bw_engine_destroy(eng);
    return 0;
}
