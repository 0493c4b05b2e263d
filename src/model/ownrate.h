/*
 * A region's error rate against its own recent baseline: a hidden Markov
 * model over {normal, abnormal at rate multiplier r_1..r_R}. See ownrate.c.
 */
#ifndef BW_MODEL_OWNRATE_H
#define BW_MODEL_OWNRATE_H

#include <stdbool.h>
#include <stdint.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/config.h"

#define BW_OWN_MULTS 11 /* abnormal rate multipliers */
#define BW_OWN_DROPS 3  /* of them, the first are drops (below 1) */

typedef struct {
    double a0, b0; /* baseline rate: Beta pseudo-counts (forgotten) */
    double rho;    /* intra-interval correlation: overdispersion */
    double rho_w;  /* its forgotten weight */
    double p_normal;
    double p_ab[BW_OWN_MULTS]; /* P(abnormal at multiplier r_i) */
    int64_t t_last;            /* last interval's time; INT64_MIN none */
    double dt;   /* typical step between intervals (ms, a geometric mean,
                    forgotten; 0 unknown): a silence is that many steps */
    double dt_n; /* steps it has learnt from (at most 1 / DT_W) */
    int64_t since;             /* episode start; -1 none */
    uint64_t seen;             /* intervals seen */
} bw_own_t;

typedef struct {
    double p_abnormal; /* P(the region's rate is not its baseline's) */
    double baseline;   /* the baseline rate (posterior mean) */
    double expected;   /* expected count under the baseline */
    double z;          /* (count - expected) / baseline predictive sd */
    double ratio;      /* posterior mean rate multiplier in an episode */
    int64_t since_ms;  /* episode start, -1 none */
    bool adopted;      /* an old episode became the new baseline now */
    bool warmup;       /* fewer than own_warmup intervals seen */
} bw_own_out_t;

void bw__own_init(bw_own_t *o);
/** Absorb one interval: @p k bad events of @p n trials at @p t_ms. */
void bw__own_observe(bw_own_t *o, const bw_hier_cfg_t *cfg, int64_t t_ms,
                     double k, double n, bw_own_out_t *out);
void bw__own_save(const bw_own_t *o, bw_wbuf_t *w);
/** Validates every field; sets r->err on a bad one (o may be partly
 * written: the caller loads into scratch first). @p has_dt: the record
 * holds the typical step (HI04 on; before it, 0: learnt anew). */
void bw__own_load(bw_own_t *o, bw_rbuf_t *r, bool has_dt);

#endif
