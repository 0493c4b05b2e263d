/*
 * Fuzz target: the state loader. The first byte picks the model (particle
 * filter with seasonality, pooled counts, pooled normal, fusion); the rest
 * is the blob. Any input must load or be rejected; a model that loaded must
 * then score an event without crashing.
 */
#include <math.h>

#include <gsl/gsl_errno.h>

#include "bayeswatch/state.h"
#include "fuzz.h"

static void try_pf(const bw_config_t *cfg, const uint8_t *b, size_t n)
{
    bw_pf_t *pf = bw_pf_new(&cfg->model.pf, 1, NULL, 0);
    bw_pf_ws_t *ws = bw_pf_ws_new(&cfg->model.pf);
    bw_pf_out_t out;

    if (pf != NULL && ws != NULL &&
        bw_state_load_pf(pf, b, n, NULL, 0) == BW_OK) {
        bw_pf_update(pf, ws, INT64_C(1) << 40, 1.0, &out);
    }
    bw_pf_ws_destroy(ws);
    bw_pf_destroy(pf);
}

static void try_hier(const bw_config_t *cfg, int kind, const uint8_t *b,
                     size_t n)
{
    bw_hier_t *h = bw_hier_new(&cfg->model.hier, kind, NULL, 0);
    bw_hier_out_t out;

    if (h != NULL && bw_state_load_hier(h, b, n, NULL, 0) == BW_OK) {
        bw_hier_observe(h, 0, INT64_C(1) << 40, 1.0, 10.0, 0.01, &out);
    }
    bw_hier_destroy(h);
}

static void try_fusion(const bw_config_t *cfg, const uint8_t *b, size_t n)
{
    bw_fusion_t *fu = bw_fusion_new(&cfg->model.fusion, NULL, 0);
    bw_threat_t t;

    if (fu != NULL && bw_state_load_fusion(fu, b, n, NULL, 0) == BW_OK &&
        cfg->model.fusion.n_rules > 0) {
        bw_fusion_eval(fu, 0, 0, &t);
    }
    bw_fusion_destroy(fu);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bw_config_t cfg;

    if (size < 1) {
        return 0;
    }
    gsl_set_error_handler_off();
    bw_config_defaults(&cfg);
    cfg.model.pf.weekly.enabled = true;
    cfg.model.fusion.n_rules = 1;
    cfg.model.fusion.rules[0].n_signals = 2;
    switch (data[0] % 4) {
    case 0:
        try_pf(&cfg, data + 1, size - 1);
        break;
    case 1:
        try_hier(&cfg, BW_HIER_COUNT, data + 1, size - 1);
        break;
    case 2:
        try_hier(&cfg, BW_HIER_NORMAL, data + 1, size - 1);
        break;
    default:
        try_fusion(&cfg, data + 1, size - 1);
        break;
    }
    return 0;
}
