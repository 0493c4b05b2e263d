/*
 * Recurring spikes by time of day (a daily job): which spikes are usual at
 * a phase of the day. See phase.c for the model. Internal to src/model.
 */
#ifndef BW_MODEL_PHASE_H
#define BW_MODEL_PHASE_H

#include <stdint.h>

#include "bayeswatch/buf.h"

typedef struct {
    float *bin;       /* per phase bin: PH_FIELDS floats (phase.c) */
    int bins;         /* phase bins per day */
    int width;        /* neighbourhood: bins either side */
    double prior;     /* P(a phase window holds a recurring spike); 0 = off */
    double half_life; /* forgetting, in days */
    double rate;      /* spikes (ended short excursions) per event, forgotten */
    int64_t t0;       /* first event's time; INT64_MIN before it */
    int run_len;      /* events of the current excursion (p >= 1/2) */
    double run_p, run_y; /* its most anomalous event: probability, and
                            excursion from the level before it */
    int64_t run_t;       /* ... and time */
} bw__phase_t;

/* What an event's prior needs beyond its time: its (de-seasonalised)
 * value, the level and noise sd before it, the familiarity radius. */
typedef struct {
    double y, level, sd;
    double bandwidth; /* noise sds */
    double relative;  /* ... or this fraction of the spike's excursion */
} bw__phase_at_t;

/** Allocate @p bins phase bins (none, and off, when @p prior is 0); 0, or
 * -1 out of memory. */
int bw__phase_init(bw__phase_t *p, int bins, int width, double prior,
                   double half_life);
void bw__phase_free(bw__phase_t *p);
size_t bw__phase_memory(const bw__phase_t *p);
/** P(a recurring spike at this phase | k of n earlier days had one there)
 * with a day's chance q0 of one there by chance (Beta(3,1) for a recurring
 * job's chance per day); the prior odds are prior / (1 - prior). */
double bw__phase_posterior(double k, double n, double q0, double prior);
/** The spike regime's prior probability for the event at @p t_ms (at least
 * @p p0, the configured p_spike) and, in *@p anomalous, the share of it
 * that is an anomaly (1 when nothing recurs at this phase). */
double bw__phase_spike_prior(const bw__phase_t *p, int64_t t_ms,
                             double interval_ms, double p0,
                             const bw__phase_at_t *at, double *anomalous);
/** Learn from the event at @p t_ms (at->y, the level before it at->level;
 * the familiarity radius from at's sd, bandwidth and relative), anomalous
 * with probability @p p_anomaly: an excursion of at most 3 events
 * (p >= 1/2) counts as its day's spike once it has ended (a longer one is
 * an episode, not a spike), its size y - level. */
void bw__phase_learn(bw__phase_t *p, int64_t t_ms, const bw__phase_at_t *at,
                     double p_anomaly, double interval_ms);
/** A record written before the spikes' sizes were excursions held their
 * values: make them excursions from @p level (the loaded filter's; right
 * for spikes seen at that level, to single precision). A bin whose value
 * was held coarser than @p tol (one float step; the familiarity radius's
 * floor) is forgotten: far from 0 the value no longer told the size. */
void bw__phase_values_to_excursions(bw__phase_t *p, double level, double tol);
void bw__phase_save(const bw__phase_t *p, bw_wbuf_t *w);
void bw__phase_load(bw__phase_t *p, bw_rbuf_t *r);

#endif
