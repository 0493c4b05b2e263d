/*
 * Seasonal profile (daily or weekly) shared by all particles of a series.
 * See season.c for the estimator.
 */
#ifndef BW_MODEL_SEASON_H
#define BW_MODEL_SEASON_H

#include <stdint.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/config.h"

/* A visit of the profile's bins being accumulated: the consecutive events
 * of one bin in one period (season.c, the empirical-Bayes shrinkage). */
typedef struct {
    int bin;     /* -1: none open */
    double mean; /* gain-weighted mean of the deviations so far */
    double w;    /* sum of gain */
    double old;  /* the bin's mean before the visit; NAN: its first visit */
} bw__visit_t;
#define BW__VISIT_NONE                                                         \
    {                                                                          \
        -1, 0.0, 0.0, NAN                                                      \
    }

typedef struct {
    const bw_season_cfg_t *cfg;
    int64_t period_ms;
    double alpha;    /* a visit count's forgetting per visit (from cfg) */
    double *mean;    /* per bin: forgetting mean of the de-trended value */
    double *wt;      /* per bin: forgetting weight (0 = never seen) */
    double *last;    /* per bin: last de-seasonalised value (baseline) */
    double *nvis;    /* per bin: forgetting count of visits (in the
                        first period: its values' summed P(normal)) */
    float *var;      /* per bin: forgetting variance of visit means; -1
                        for a bin not confirmed yet (season.c) */
    double last_sum; /* sum of last[] over seen bins */
    double mean_sum; /* sum of mean[] over confirmed bins */
    double mean_sq;  /* sum of mean[]^2 over confirmed bins */
    double wt_sum;
    double nvis_sum;   /* sum of nvis[] over seen bins */
    double within;     /* pooled variance of a visit's mean around its bin's */
    double updates;    /* visits the pooled variance has learned from */
    bw__visit_t visit; /* the open visit */
    int seen;          /* bins seen at least once */
    int unconf;        /* of them unconfirmed (derived: not saved) */
    int64_t t0;        /* first value's time; INT64_MIN before it */
} bw_season_t;

/** The bin of @p t_ms's phase in a period of @p period_ms cut into
 * @p bins (also the recurring spikes' bins, phase.c). */
static inline int bw__phase_bin(int64_t t_ms, int64_t period_ms, int bins)
{
    int64_t ph = t_ms % period_ms;

    if (ph < 0) {
        ph += period_ms;
    }
    /* in integers: the quotient in doubles rounds some bins' exact starts
     * (Monday 01:00 of a 168-bin week) into the bin before */
    return (int)(ph * bins / period_ms);
}

int bw__season_init(bw_season_t *s, const bw_season_cfg_t *cfg,
                    int64_t period_ms);
void bw__season_free(bw_season_t *s);
/** Whether the profile is applied at series age @p age_ms: its
 * min_cycles have passed and its first period has been estimated. */
int bw__season_active(const bw_season_t *s, int64_t age_ms);
/** Seasonal component to subtract at @p t_ms (0 until trusted). */
double bw__season_value(const bw_season_t *s, int64_t t_ms, int64_t age_ms);
/** The profile's estimate at @p t_ms whether or not it applies yet, as it
 * stood before the visit now in progress: NAN until a first period is
 * done; INFINITY for a bin that period did not see. Read by no model
 * state; the threat fusion's reference uses it on the second day
 * (bw_pf_out_t.provisional). */
double bw__season_early(const bw_season_t *s, int64_t t_ms);
/** Learn from @p y (with other seasonal parts removed) at @p t_ms: the
 * bin's mean with weight @p gain, the baseline's latest value of the bin
 * with weight @p gain_last (both 0 for an anomaly; they differ while an
 * adopted change is held out of the shape but is the level); @p normal is
 * P(the value is normal), which the gains are over the local noise
 * factor (before a profile applies, a value in an abnormal episode counts
 * as normal, as its gain does): whether the first period saw a bin as
 * normal, and whether a value the bin learns from confirms one it did
 * not (season.c, confirm). */
void bw__season_update(bw_season_t *s, int64_t t_ms, double y, double gain,
                       double gain_last, double normal, double interval_ms);
/** The applied profile's prediction at @p t_ms was judged: @p normal is
 * P(the value there is normal) given it. An unconfirmed bin (season.c) whose
 * prediction the value rejects (@p normal < 1/2) takes its neighbours'
 * deviation instead. Call before bw__season_update, and only while the
 * profile applies (bw__season_active). */
void bw__season_judged(bw_season_t *s, int64_t t_ms, double normal);
/** An unconfirmed bin's first check, before the value at @p t_ms is scored
 * against it: @p resid is the value less everything else the filter
 * predicts (its level and the other profile). When it lies nearer the
 * prediction with the bin rejected (its neighbours' deviation) than the
 * one with the bin's own kept deviation, the bin is rejected now, so the
 * value is scored against the neighbours: a normal value at a phase whose
 * visits so far were abnormal is not itself read as a dip of their size.
 * A value nearer the kept deviation is judged after scoring, as before
 * (bw__season_judged). No-op unless the profile applies at @p age_ms. */
void bw__season_precheck(bw_season_t *s, int64_t t_ms, int64_t age_ms,
                         double resid);
/** Learn from @p y, seen at @p t_ms and held back until now: the bin's
 * latest value and mean (against today's baseline; in the first period
 * its mean of values only). */
void bw__season_learn_late(bw_season_t *s, bw__visit_t *v, int64_t t_ms,
                           double y, double gain, double interval_ms);
/** End the visit @p v of values learned late (bw__season_learn_late's
 * consecutive values of one bin share it). */
void bw__season_late_done(bw_season_t *s, bw__visit_t *v, double interval_ms);
/** The baseline's latest value of @p t_ms's bin becomes @p y (a value held
 * back that turned out to be the new level: an adopted change). */
void bw__season_catch_up(bw_season_t *s, int64_t t_ms, double y);
/** Every bin's latest value moves by @p delta: the level under the profile
 * moved (an adopted change), its shape did not. */
void bw__season_shift_level(bw_season_t *s, double delta);
/** Recompute the running sums from the bins. */
void bw__season_resum(bw_season_t *s);
/** The event at @p t_ms follows one at @p t_prev: at the first event of
 * each period counted from the profile's first value, its running sums are
 * recomputed (bw__season_resum; a schedule of event times alone, so a run
 * split by save/load keeps it). */
void bw__season_tick(bw_season_t *s, int64_t t_prev, int64_t t_ms);
/** A profile saved before PF13 counted its unconfirmed bins in its centring
 * and spread: if it holds one, its running sums are recomputed without. */
void bw__season_recentre(bw_season_t *s);
void bw__season_save(const bw_season_t *s, bw_wbuf_t *w);
/** Read a profile saved by bw__season_save. @p visits: the blob holds the
 * visit counts (PF09 on); an older one's are taken from its weights. */
void bw__season_load(bw_season_t *s, bw_rbuf_t *r, int visits);
size_t bw__season_memory(const bw_season_t *s);

#endif
