/*
 * bayeswatch - the statistical models. Pure math: this header and
 * src/model/ see only GSL and our own headers, never Kafka, Avro or YAML,
 * so every model is tested with plain arrays.
 *
 *  - bw_rng_t    xoshiro256** (Blackman & Vigna 2018); a plain value saved
 *                with each model's state.
 *  - bw_pf_t     per-series Rao-Blackwellised particle filter for a robust,
 *                regime-switching local-level(-trend) model (src/model/pf.c).
 *  - bw_hier_t   hierarchical pooling of one service/metric across regions:
 *                Beta-Binomial for counts, normal for continuous values,
 *                hyperposterior on a deterministic grid (src/model/hier.c).
 *  - bw_fusion_t Bayesian fusion of anomaly posteriors into a threat
 *                probability per entity (src/model/fusion.c).
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#ifndef BAYESWATCH_MODEL_H
#define BAYESWATCH_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/config.h"
#include "bayeswatch/err.h"

/* ---- RNG ------------------------------------------------------------------
 */

typedef struct {
    uint64_t s[4];
} bw_rng_t;

void bw_rng_seed(bw_rng_t *rng, uint64_t seed);
uint64_t bw_rng_next(bw_rng_t *rng);
/** @brief Uniform on [0, 1) with 53 random bits. */
double bw_rng_uniform(bw_rng_t *rng);
/** @brief Standard normal (polar Box-Muller, no cached spare). */
double bw_rng_gauss(bw_rng_t *rng);

/* ---- resampling (src/model/resample.c) ------------------------------------
 */

/**
 * @brief Systematic resampling (Kitagawa 1996): N ancestors from normalised
 * log-weights with one uniform. O(N). Prefix sums in double.
 * @param idx output, N ancestor indices in ascending order.
 */
void bw_resample_systematic(const double *logw, int n, double u, int *idx);

/** @brief Effective sample size 1 / sum(w^2) of normalised log-weights. */
double bw_ess(const double *logw, int n);

/** @brief log(sum(exp(x))) without overflow. */
double bw_logsumexp(const double *x, int n);

/* ---- per-series particle filter -------------------------------------------
 */

typedef enum {
    BW_DIR_NONE = 0,
    BW_DIR_SPIKE, /* transient, above the expected value */
    BW_DIR_DIP,   /* transient, below */
    BW_DIR_SHIFT_UP,
    BW_DIR_SHIFT_DOWN,
    BW_DIR_SUSTAINED_UP, /* collective: a block of events above expected */
    BW_DIR_SUSTAINED_DOWN,
} bw_direction_t;

const char *bw_direction_name(int dir);

/** Per-event output of the particle filter (model scale: transformed). */
typedef struct {
    double p_anomaly;  /* P(spike, shift or abnormal episode | data to now) */
    double p_spike;    /* P(transient anomaly | ...) */
    double p_shift;    /* P(level shift or abnormal episode | ...) */
    double p_abnormal; /* P(in an abnormal episode | ...) (p_episode > 0) */
    double p_recur;    /* P(jump to a recently seen value | ...): no anomaly */
    double p_value;    /* two-sided predictive tail probability */
    double surprise;   /* -log predictive density of the value */
    double expected;   /* predictive mean (of the baseline: normal) */
    double pred_sd;    /* its predictive sd */
    double lower;      /* central 95% predictive interval */
    double upper;
    double ess; /* after the update, before resampling */
    bool resampled;
    bool warmup; /* fewer than cfg->warmup events seen */
    bw_direction_t direction;
    double level;        /* posterior mean level after the update */
    double noise_sd;     /* posterior point estimate of the noise sd */
    double seasonal;     /* seasonal component applied to this event */
    double noise_factor; /* local noise: variance factor applied (>= 1) */
    int frame; /* profiles in the baseline's frame: bit 0 daily, 1 weekly */
    /* The daily profile's estimate at this phase while it does not apply
     * yet (its first period done, before min_cycles; NAN otherwise;
     * INFINITY where the first day missed this bin), as it stood before
     * the visit of this event's bin began: one day of data is no profile
     * for the filter, but it is the best reference the threat fusion has
     * on the second day. At the event where the daily profile starts to
     * apply to values that no profile applied to before, this estimate is
     * given in provisional_last (NAN at every other event), so the fusion
     * can carry its reference into the new frame. */
    double provisional;
    double provisional_last;
    /* The abnormal episode: its first event's time on an event with
     * P(abnormal) >= 1/2 (-1 otherwise, also on the up to 3 events of a gap
     * below 1/2 that the episode survives); adopted on the event where an
     * episode older than cfg->adopt_after_ms, abnormal on its last 4
     * events, became the new normal. */
    int64_t since_ms;
    bool adopted;
    /* Collective anomalies (block.c), on the event that closes a block of
     * cfg->block_size events once the block model is warm; else false/0. */
    bool block_closed;
    double p_collective;   /* P(block mean anomalous | block means to now),
                              0 when a point anomaly was reported in this
                              block or the previous one */
    double block_mean;     /* the block's mean (point anomalies removed) */
    double block_expected; /* its predictive mean */
} bw_pf_out_t;

typedef struct bw_pf_s bw_pf_t;
/** Scratch space shared by all filters of one thread. */
typedef struct bw_pf_ws_s bw_pf_ws_t;

/**
 * @brief Create a filter.
 * @param cfg borrowed; must outlive the filter.
 * @param seed RNG seed (the engine derives one per series).
 * @returns NULL on failure, with errstr set.
 */
bw_pf_t *bw_pf_new(const bw_pf_cfg_t *cfg, uint64_t seed, char *errstr,
                   size_t errstr_size);
void bw_pf_destroy(bw_pf_t *pf);
/** @brief Workspace for filters of up to cfg->particles particles. */
bw_pf_ws_t *bw_pf_ws_new(const bw_pf_cfg_t *cfg);
void bw_pf_ws_destroy(bw_pf_ws_t *ws);

/** Largest |value| the models take: their sums of squares stay finite and
 * the filter's memory of recent values (single precision) holds it. One
 * absurd value beyond it would otherwise poison a series' state. */
#define BW_MODEL_MAX_ABS 1e30

/**
 * @brief Absorb one observation: predict, weight, propagate (no resampling).
 * @returns BW_OK; BW_ERR_LATE if @p t_ms is before the last event (state
 * untouched, out->p_anomaly 0); BW_ERR_RANGE for non-finite @p y or
 * |y| > BW_MODEL_MAX_ABS (state untouched).
 * @locality the thread owning @p ws.
 */
bw_err_t bw_pf_step(bw_pf_t *pf, bw_pf_ws_t *ws, int64_t t_ms, double y,
                    bw_pf_out_t *out);
/** @brief Effective sample size of the current weights. */
double bw_pf_ess(const bw_pf_t *pf);
/** @brief Systematic resampling; weights become uniform. */
void bw_pf_resample(bw_pf_t *pf, bw_pf_ws_t *ws);
/** @brief step, then ESS, then resample when ESS < threshold * N. */
bw_err_t bw_pf_update(bw_pf_t *pf, bw_pf_ws_t *ws, int64_t t_ms, double y,
                      bw_pf_out_t *out);
/** @brief Posterior mean and variance of the level (tests, explanations). */
void bw_pf_level(const bw_pf_t *pf, double *mean, double *var);
/** @brief Events absorbed and late events rejected. */
uint64_t bw_pf_events(const bw_pf_t *pf);
uint64_t bw_pf_late(const bw_pf_t *pf);
/** @brief Heap bytes held by the filter. */
size_t bw_pf_memory(const bw_pf_t *pf);

bw_err_t bw_pf_save(const bw_pf_t *pf, bw_wbuf_t *w);
/** @brief Restore into a filter created with the same config. */
bw_err_t bw_pf_load(bw_pf_t *pf, bw_rbuf_t *r);

/* ---- hierarchical pooled model --------------------------------------------
 */

typedef enum { BW_HIER_COUNT, BW_HIER_NORMAL } bw_hier_kind_t;

typedef struct {
    double mean;  /* posterior mean of the region's rate (or mean) */
    double lower; /* central credible interval, cfg->credible_mass */
    double upper;
    double raw;       /* the region's own estimate (rate or mean) */
    double shrinkage; /* E[weight on the population] in [0, 1] */
    double p_slo;     /* P(rate > slo | data); NaN if slo is 0 */
    double p_outlier; /* P(rate > population's outlier_quantile | data) */
    double pop_mean;  /* posterior mean of the population mean */
    double pop_z;     /* (mean - pop_mean) / population sd */
    double n_eff;     /* the region's effective trials (or events) */
    /* Counts, bw_hier_observe only: the interval against the region's own
     * baseline (0 / NAN otherwise). */
    double p_own;         /* P(rate has left its own baseline | data) */
    double own_z;         /* (count - expected) / predictive sd */
    double own_ratio;     /* rate multiplier in the episode (posterior) */
    int64_t own_since_ms; /* episode start, -1 none */
    bool own_adopted;     /* an old episode became the baseline now */
    bool own_warmup;      /* too few intervals for the own evidence */
} bw_hier_out_t;

typedef struct bw_hier_s bw_hier_t;

/** @param cfg borrowed; must outlive the model. */
bw_hier_t *bw_hier_new(const bw_hier_cfg_t *cfg, bw_hier_kind_t kind,
                       char *errstr, size_t errstr_size);
void bw_hier_destroy(bw_hier_t *h);

/**
 * @brief Add an interval's data for one region and update the hyperposterior.
 * @param region index in [0, cfg->max_regions).
 * @param value  count kind: bad events; normal kind: the (transformed) value.
 * @param trials count kind: trials (>= value); ignored for normal.
 * @param slo    threshold for p_slo, 0 = none.
 */
bw_err_t bw_hier_observe(bw_hier_t *h, int region, int64_t t_ms, double value,
                         double trials, double slo, bw_hier_out_t *out);
/** @brief Posterior for a region without adding data. */
bw_err_t bw_hier_region(bw_hier_t *h, int region, double slo,
                        bw_hier_out_t *out);
/** @brief Set a region's sufficient statistics directly (tests). */
bw_err_t bw_hier_set(bw_hier_t *h, int region, double value, double trials);
/** @brief Region @p region has left the group: its statistics and its own
 * baseline are cleared, so that the slot can take another region (the
 * scheduled population is refitted at the group's next event). No-op for an
 * index out of range or a NULL model. */
void bw_hier_forget(bw_hier_t *h, int region);
/** @brief A region's (decayed) trials or weight: 0 for a slot no region
 * holds (or an index out of range). */
double bw_hier_weight(const bw_hier_t *h, int region);
/** @brief Recompute the hyperposterior from the current statistics. */
bw_err_t bw_hier_refresh(bw_hier_t *h);
/** @brief Posterior means of the population mean and concentration (count)
 * or of mu and tau (normal). */
void bw_hier_hyper(const bw_hier_t *h, double *pop_mean, double *spread);
size_t bw_hier_memory(const bw_hier_t *h);
/** @brief The newest event time the group has seen, -1 if none. */
int64_t bw_hier_last_ms(const bw_hier_t *h);
bw_err_t bw_hier_save(const bw_hier_t *h, bw_wbuf_t *w);
bw_err_t bw_hier_load(bw_hier_t *h, bw_rbuf_t *r);

/* ---- threat fusion ---------------------------------------------------------
 */

typedef enum {
    BW_LEVEL_LOW,
    BW_LEVEL_MODERATE,
    BW_LEVEL_HIGH,
    BW_LEVEL_CRITICAL
} bw_level_t;

const char *bw_level_name(int level);

typedef struct {
    int signal; /* index into the rule's signals */
    double p;   /* P(signal elevated in the window | its data) */
    double lbf; /* log Bayes factor of elevation (accumulated evidence) */
    double llr; /* log-likelihood ratio contributed (after discount) */
} bw_contrib_t;

typedef struct {
    double probability; /* P(threat | evidence in window) */
    double score;       /* 100 * probability */
    bw_level_t level;
    double llr; /* total log-likelihood ratio */
    int n_contrib;
    bw_contrib_t contrib[BW_SIGNALS_MAX]; /* ranked by llr, descending */
    /* event time at which the level rose from low, moderate or above at
     * every evaluation since; -1 while low (bw_fusion_eval; the pure
     * bw_fusion_combine leaves it -1) */
    int64_t since_ms;
    /* the stream time the evaluation stands at: the event's, or the
     * entity's newest event when that is at most a window later (a late
     * event does not take the assessment back); -1 from the pure
     * bw_fusion_combine */
    int64_t at_ms;
} bw_threat_t;

/**
 * @brief Fuse evidence by Bayes' rule (pure; the core of the stage).
 * @param lbf per signal: log Bayes factor of elevation over the window
 * (bw_fusion_lbf), or NaN for "no evidence".
 */
void bw_fusion_combine(const bw_fusion_cfg_t *cfg, const bw_rule_cfg_t *rule,
                       const double *lbf, bw_threat_t *out);

/**
 * @brief Log Bayes factor that a signal is elevated, from @p n events whose
 * standardised deviations from the baseline sum to @p zsum (clipped ones:
 * see fusion.c). NAN when n is 0.
 */
double bw_fusion_lbf(const bw_signal_cfg_t *sig, double n, double zsum);

/**
 * @brief Log Bayes factor that a signal is elevated, from a statistic @p s
 * that is N(0, 1) under the baseline and N(@p mu, 1) when elevated (prior
 * on the mean N(mu, (mu/2)^2); see fusion.c). NAN when mu <= 0.
 */
double bw_fusion_lbf_std(const bw_signal_cfg_t *sig, double s, double mu);

/**
 * @brief Posteriors over when a signal's elevation began (pure; tests).
 * The hypotheses of `spans` (> 1) windows: an elevation in progress
 * begun a windows before the last (a < spans; prior q times its start
 * prior, log of that prior plus its log Bayes factor in num[a]), one that
 * ended, over windows e + 1 .. a (prior (1 - q) q spread evenly over the
 * spans (spans - 1) / 2 pairs; lend_a[a] the log of the sum of their
 * Bayes factors over e < a, -INFINITY for a = 0), or none ((1 - q)^2);
 * 2 <= spans <= BW_SPANS_MAX.
 * @param pn out, spans entries: pn[m] the posterior that no elevation
 * reaches back to window m or older (pn[0]: none at all).
 */
void bw_fusion_reach_back(int spans, double q, const double *num,
                          const double *lend_a, double *pn);

/** Sliding-window evidence of one entity for every rule. */
typedef struct bw_fusion_s bw_fusion_t;

bw_fusion_t *bw_fusion_new(const bw_fusion_cfg_t *cfg, char *errstr,
                           size_t errstr_size);
void bw_fusion_destroy(bw_fusion_t *fu);
/** @brief Record one event of signal @p sig of rule @p rule: its
 * standardised deviation from the baseline prediction (NAN: none). */
void bw_fusion_observe(bw_fusion_t *fu, int rule, int sig, int64_t t_ms,
                       double z);
/** bw_fusion_obs_t.frame of values less bw_pf_out_t.provisional. */
#define BW_FRAME_EARLY 4

/** One scored event as the fusion window learns from it. */
typedef struct {
    double z;  /* standardised deviation from the baseline (NAN: none) */
    double x;  /* de-seasonalised value, model scale (NAN: none) */
    double sd; /* the filter's predictive sd, model scale */
    int frame; /* what x is de-seasonalised by (bw_pf_out_t.frame, or
                  BW_FRAME_EARLY for its provisional profile): a change
                  restarts the signal's reference, unless... */
    /* ... at the event where the frame moves on, the same value in the
     * frame before is given (x_prev, in frame_prev): the reference then
     * carries over, re-expressed by their difference, if it was learnt
     * from this source's values alone. Only a move from BW_FRAME_EARLY
     * carries (0: none). */
    double x_prev;
    int frame_prev;
    uint32_t src; /* the series the value is from (0: unknown) */
} bw_fusion_obs_t;

/** @brief As bw_fusion_observe, with the value from which the signal's
 * own reference is learnt (cfg->baseline_ms). */
void bw_fusion_observe_value(bw_fusion_t *fu, int rule, int sig, int64_t t_ms,
                             const bw_fusion_obs_t *ob);
/**
 * @brief Evaluate a rule at @p t_ms.
 * @returns true when the caller should emit (score moved by emit_delta or
 * the level changed since the last emission).
 */
bool bw_fusion_eval(bw_fusion_t *fu, int rule, int64_t t_ms, bw_threat_t *out);
/** @brief The newest event time observed (saved with the state; for a
 * state saved before FU07, the end of the newest bucket it holds), -1 if
 * none: the entity's last activity, by which the engine retires it. */
int64_t bw_fusion_last_ms(const bw_fusion_t *fu);
/** @brief The weight of the null samples counted in a signal's phi for
 * @p span (decayed; NAN for no such signal or span; tests). */
double bw_fusion_phi_weight(const bw_fusion_t *fu, int rule, int sig,
                            int span);
bw_err_t bw_fusion_save(const bw_fusion_t *fu, bw_wbuf_t *w);
bw_err_t bw_fusion_load(bw_fusion_t *fu, bw_rbuf_t *r);

#endif
