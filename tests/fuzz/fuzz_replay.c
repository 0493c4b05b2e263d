/*
 * Fuzz target: replay's CSV path end to end (header, fields, timestamps,
 * numbers, routing to every model kind, fusion) from an in-memory file.
 */
#include <stdio.h>
#include <string.h>

#include <gsl/gsl_errno.h>

#include "bayeswatch/replay.h"
#include "fuzz.h"

static const char cfg_yaml[] = "engine:\n"
                               "  max_series: 64\n"
                               "  routes:\n"
                               "    - metric: errors\n"
                               "      model: pooled_count\n"
                               "      slo: 0.01\n"
                               "    - metric: lat*\n"
                               "      model: pooled_normal\n"
                               "      transform: log\n"
                               "    - metric: \"*\"\n"
                               "      transform: log1p\n"
                               "model:\n"
                               "  pf:\n" /* light models: the target is */
                               "    particles: 8\n" /* the CSV path */
                               "    recur_window: 64\n"
                               "    daily: {bins: 24}\n"
                               "  hier:\n"
                               "    max_regions: 8\n"
                               "    grid: 5\n"
                               "  fusion:\n"
                               "    rules:\n"
                               "      - name: r\n"
                               "        signals:\n"
                               "          - metric: a\n"
                               "          - metric: errors\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bw_config_t cfg;
    static int ready;
    bw_replay_opts_t o = {.input = "fuzz.csv"};
    bw_replay_stats_t st;
    FILE *in, *null;

    gsl_set_error_handler_off();
    if (!ready) {
        if (bw_config_load_string(&cfg, "fuzz", cfg_yaml, strlen(cfg_yaml),
                                  stderr) != BW_OK) {
            return 0;
        }
        ready = 1;
    }
    in = fmemopen((void *)data, size, "r");
    null = fopen("/dev/null", "w");
    if (in != NULL && null != NULL && size > 0) {
        o.in = in;
        o.out = o.threats = o.diag = null;
        bw_replay_run(&cfg, &o, &st);
    }
    if (in != NULL) {
        fclose(in);
    }
    if (null != NULL) {
        fclose(null);
    }
    return 0;
}
