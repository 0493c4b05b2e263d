/*
 * Collective anomalies: the block-mean layer of a series' filter. See
 * block.c for the model.
 */
#ifndef BW_MODEL_BLOCK_H
#define BW_MODEL_BLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/model.h"
#include "memory.h"
#include "season.h"

typedef struct {
    bw_pf_cfg_t cfg; /* the series' config, adapted to blocks; owned */
    bw_pf_t *pf;     /* filter on block means; NULL when disabled */
    int size;        /* events per block */
    int n;           /* events in the open block */
    double sum;      /* their sum (cleaned, de-seasonalised) */
    double raw_sum;  /* ... with the profile added back (the reported
                        mean: moved at an adoption as sum is, not when a
                        profile starts to apply); NAN: not known (a block
                        open in a record before PF16) */
    double p_max;    /* largest point p_anomaly in the open block */
    double p_prev;   /* ... in the previous block */
} bw_block_t;

/** Set up from the series' config (copied into b->cfg, adapted to blocks).
 * Disabled (b->pf NULL) when parent->block_size is 0.
 * @returns 0, or -1 with errstr set. */
int bw__block_init(bw_block_t *b, const bw_pf_cfg_t *parent, uint64_t seed,
                   char *errstr, size_t errstr_size);
void bw__block_free(bw_block_t *b);
/** Add one event (its cleaned, de-seasonalised value @p v, the same with
 * the profile added back @p raw, and the point model's output in @p out);
 * when it closes a block, fill out->p_collective, out->block_mean and
 * out->block_expected. @p point_holds: the point model
 * holds the changes it flags (its abnormal episodes apply, or it has none:
 * the onset model), so a flag (the reported p_anomaly) in
 * this block or the previous one has reported the block's deviation. */
void bw__block_add(bw_block_t *b, bw_pf_ws_t *ws, int64_t t_ms, double v,
                   double raw, bool point_holds, bw_pf_out_t *out);
void bw__block_save(const bw_block_t *b, bw_wbuf_t *w);
void bw__block_load(bw_block_t *b, bw_rbuf_t *r);
/** raw_sum, at the end of the series' record (PF16); @p held: the record
 * has it (else NAN for an open block). */
void bw__block_save_raw(const bw_block_t *b, bw_wbuf_t *w);
void bw__block_load_raw(bw_block_t *b, bw_rbuf_t *r, bool held);
size_t bw__block_memory(const bw_block_t *b);
/** Move every particle's baseline (and abnormal level) by @p delta: an
 * adopted change in the parent (pf.c). NULL-safe. */
void bw__pf_shift(bw_pf_t *pf, double delta);
/** Fix the AR(1) noise coefficient (tests; with cfg->ar_noise false it
 * stays fixed). */
void bw__pf_set_ar(bw_pf_t *pf, double phi);
/** The AR(1) noise coefficient in use (tests). */
double bw__pf_ar(const bw_pf_t *pf);
/** The t quadrature's scale nodes @p lambda and normalised weights
 * @p omega (BW_T_NODES_MAX each): generalised Gauss-Laguerre for
 * Gamma(t_dof/2, rate t_dof/2); one node of weight 1 when t_dof is 0.
 * Returns the node count, -1 if t_nodes is out of range. */
int bw__pf_t_nodes(const bw_pf_cfg_t *cfg, double *lambda, double *omega);
/** The learned tail node's weight in the noise mixture, 0 without it
 * (tests). */
double bw__pf_tail(const bw_pf_t *pf);
/** The memory of recent values and the daily and weekly profiles
 * (tests). */
const bw__memory_t *bw__pf_memory(const bw_pf_t *pf);
const bw_season_t *bw__pf_daily(const bw_pf_t *pf);
const bw_season_t *bw__pf_weekly(const bw_pf_t *pf);

#endif
