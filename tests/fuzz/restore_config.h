/*
 * The config of the restore fuzz target, shared with the program that
 * writes its seeds (their records must be of this config to load).
 */
#ifndef BW_FUZZ_RESTORE_CONFIG_H
#define BW_FUZZ_RESTORE_CONFIG_H

static const char bw_fuzz_restore_yaml[] =
    "engine:\n"
    "  routes:\n"
    "    - metric: errors\n"
    "      model: pooled_count\n"
    "    - metric: cpu\n"
    "      model: pooled_normal\n"
    "model:\n"
    "  pf:\n"
    "    daily: {enabled: true, bins: 24}\n"
    "  fusion:\n"
    "    rules:\n"
    "      - name: r\n"
    "        signals:\n"
    "          - metric: latency\n"
    "          - metric: errors\n";

#endif
