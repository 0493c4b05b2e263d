/*
 * Writes valid state blobs of every model kind, prefixed with the selector
 * byte fuzz_state.c expects, into a corpus directory. Rerun when the state
 * format changes: make_state_seeds tests/fuzz/corpus/state
 */
#include <math.h>
#include <stdio.h>

#include <gsl/gsl_errno.h>

#include "bayeswatch/state.h"
#include "bayeswatch/mem.h"

static void put(const char *dir, const char *name, uint8_t sel,
                const uint8_t *blob, size_t len)
{
    char path[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        return;
    }
    fputc(sel, f);
    fwrite(blob, 1, len, f);
    fclose(f);
}

int main(int argc, char **argv)
{
    bw_config_t cfg;
    uint8_t *blob;
    size_t len;
    bw_pf_t *pf;
    bw_pf_ws_t *ws;
    bw_hier_t *h;
    bw_fusion_t *fu;
    bw_pf_out_t po;
    bw_hier_out_t ho;
    bw_threat_t t;

    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 64;
    }
    gsl_set_error_handler_off();
    bw_config_defaults(&cfg);
    cfg.model.pf.weekly.enabled = true;
    cfg.model.fusion.n_rules = 1;
    cfg.model.fusion.rules[0].n_signals = 2;
    pf = bw_pf_new(&cfg.model.pf, 1, NULL, 0);
    ws = bw_pf_ws_new(&cfg.model.pf);
    for (int i = 0; i < 400; i++) {
        bw_pf_update(pf, ws, (int64_t)i * 300000,
                     10 + sin(i / 20.0) + (i % 97 == 0) * 9, &po);
    }
    bw_state_save_pf(pf, &blob, &len);
    put(argv[1], "pf.bin", 0, blob, len);
    bw_free(blob);
    for (int kind = 0; kind < 2; kind++) {
        h = bw_hier_new(&cfg.model.hier, kind, NULL, 0);
        for (int i = 0; i < 12; i++) {
            bw_hier_observe(h, i % 4, i * 1000, kind ? 5 + i % 3 : i % 3, 50,
                            0.01, &ho);
        }
        bw_state_save_hier(h, &blob, &len);
        put(argv[1], kind ? "hier_normal.bin" : "hier_count.bin",
            (uint8_t)(1 + kind), blob, len);
        bw_free(blob);
        bw_hier_destroy(h);
    }
    fu = bw_fusion_new(&cfg.model.fusion, NULL, 0);
    bw_fusion_observe(fu, 0, 0, 1000, 0.9);
    bw_fusion_observe(fu, 0, 1, 2000, 0.2);
    bw_fusion_eval(fu, 0, 2000, &t);
    bw_state_save_fusion(fu, &blob, &len);
    put(argv[1], "fusion.bin", 3, blob, len);
    bw_free(blob);
    bw_fusion_destroy(fu);
    bw_pf_ws_destroy(ws);
    bw_pf_destroy(pf);
    return 0;
}
