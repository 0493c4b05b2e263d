/*
 * The memory of recent values (a ring of the last recur_window
 * de-seasonalised values of a series) behind the filter's recurrent regime
 * and its local noise: what pf.c asks of it is one scan per event, a push,
 * and its state. Internal to src/model.
 */
#ifndef BW_MODEL_MEMORY_H
#define BW_MODEL_MEMORY_H

#include <stdint.h>

#include "bayeswatch/buf.h"

/* A gap in the values' spacing: value number `at` (counted over all ever
 * pushed) was seen at `after`, the one before it at `before`. */
#define BW__MEM_GAPS 16
typedef struct {
    uint64_t at;
    int64_t before, after;
} bw__mem_gap_t;

typedef struct {
    float *v;   /* the ring, w slots (+1 spare): each value less ref */
    int w;      /* its capacity: recur_window */
    int n, pos; /* values held; the next slot */
    double sum; /* sum of v[], refreshed exactly at each wrap */
    /* The values' origin, set at the first push and at each wrap (to the
     * filter's level). Held less it, single precision resolves the
     * values' spread however far they sit from 0 (a gauge at 1e11 moving
     * by 1e3). */
    double ref;
    /* When the values were seen: the newest's time, the values' usual
     * spacing and the newest BW__MEM_GAPS gaps (oldest first), which cut
     * the values into stretches with known first and last times
     * (bw__memory_age_ms). */
    int64_t t_push;   /* the newest value's time; INT64_MIN before one */
    double spacing;   /* usual ms between values; 0 unknown */
    uint64_t pushes;  /* values ever pushed */
    uint64_t horizon; /* the oldest value of the oldest known stretch (0,
                         or a gap dropped from the log was before it) */
    int64_t t_horizon; /* its time */
    int64_t t_behind;  /* the time of the value before it (INT64_MIN: none) */
    int ngaps;
    bw__mem_gap_t gap[BW__MEM_GAPS];
} bw__memory_t;

/*
 * One pass over the memory of recent values serves all of its uses (the
 * bounds below are relative to the memory's origin: bw__memory_rel):
 *  - the recurrent regime's density at y: a box kernel of half-width h,
 *    count / (n 2h); -inf when fewer than recur_min_count recent values lie
 *    within h (only familiar values, not one stray earlier outlier, can be
 *    explained as a recurrent jump);
 *  - the local noise: pairs of consecutive values that both lie in the
 *    previous value's neighbourhood, and their summed squared differences;
 *  - a visit's chance to go on (pf.c, visit_stay): the values in the kernel
 *    (the zone included) and how many were followed by one in [dlo, dhi].
 * O(window) per event, independent of the particles.
 */
typedef struct {
    float lo, hi;   /* the recurrent kernel at y */
    float zlo, zhi; /* the current state's zone: not another state */
    float alo, ahi; /* the previous value's neighbourhood */
    float inv;      /* 1 / its half-width */
    int count;      /* values in [lo, hi] */
    int pairs;      /* consecutive pairs inside [alo, ahi] */
    float dlo, dhi; /* where a value goes on a visit to y's state */
    int near;       /* values in [lo, hi], the current state's zone too */
    int dwell;      /* of those, followed by a value in [dlo, dhi] */
    double ss;      /* their summed squared differences, times inv^2 */
} bw__mem_scan_t;

/** Allocate a ring of @p window values; 0, or -1 out of memory. */
int bw__memory_init(bw__memory_t *m, int window);
void bw__memory_free(bw__memory_t *m);
/** Append @p y, seen at @p t_ms (not before the newest), forgetting the
 * oldest value when full. A step of 1.5 times the newest stretch's own
 * mean step or more (a value missing, or left out), or of half of it or
 * less (the sampling sped up), is logged as a gap, a stretch boundary;
 * every step teaches the spacing. At the first push and at each wrap the
 * values are re-expressed about @p origin (finite; the filter passes its
 * level, which a glitch does not move; 0 holds them as they are). */
void bw__memory_push(bw__memory_t *m, double y, int64_t t_ms, double origin);
/** How long before the newest value the value @p k pushes back was seen,
 * in ms. The logged gaps cut the values since the horizon into stretches
 * whose first and last times are known, and a stretch's values are taken
 * as evenly spaced between them: exact for values evenly spaced within
 * each stretch. A value before the horizon (more than BW__MEM_GAPS gaps
 * ago: the older gaps are not known) is timed at the spacing back from the
 * value before the horizon. */
int64_t bw__memory_age_ms(const bw__memory_t *m, int k);
/** The value @p k pushes back (0: the newest); the memory is not empty. */
double bw__memory_back(const bw__memory_t *m, int k);
/** @p x relative to the memory's origin, as a scan's bounds are. */
static inline double bw__memory_rel(const bw__memory_t *m, double x)
{
    return x - m->ref;
}
/** The mean of the values held; the memory is not empty. */
double bw__memory_mean(const bw__memory_t *m);
/** Subtract @p delta from the value @p k pushes back (call resum after). */
void bw__memory_shift_back(bw__memory_t *m, int k, double delta);
/** Recompute the running sum exactly. */
void bw__memory_resum(bw__memory_t *m);
/** Count and pair statistics over the memory less its newest @p skip
 * values (the ongoing episode's); r's bounds set by the caller. */
void bw__memory_scan(const bw__memory_t *m, int skip, bw__mem_scan_t *r);
/** Take the @p e values before the newest @p skip out of the scan's near
 * and dwell counts (the pairs they end included). */
void bw__memory_unscan(const bw__memory_t *m, int skip, int e,
                       bw__mem_scan_t *r);
/** Of the @p e values before the newest @p skip, how many the scan's count
 * holds (in the kernel, outside the zone). */
int bw__memory_count_newest(const bw__memory_t *m, int skip, int e,
                            const bw__mem_scan_t *r);
/* A scan's counts over the values seen near a time of day on earlier days
 * (bw__memory_scan_phase). */
typedef struct {
    int held;  /* values in those windows */
    int count; /* of them, in the kernel, outside the zone */
    int near;  /* in the kernel, the zone too */
    int dwell; /* of those, followed by a value in [dlo, dhi] */
    int stopped; /* the scan stopped early: the counts are partial */
} bw__mem_phase_t;

/** The scan's kernel counts over the values before the newest @p skip seen
 * within @p half_ms of a whole number of periods (@p period_ms) before an
 * event @p ahead_ms after the newest value. The scan stops (ph->stopped)
 * once near reaches @p stop_near and count @p stop_count (INT_MAX: never),
 * when the caller's decision is already made. O(log n) per period the
 * memory spans, plus the windows' values. */
void bw__memory_scan_phase(const bw__memory_t *m, int skip, int64_t ahead_ms,
                           int64_t period_ms, int64_t half_ms,
                           const bw__mem_scan_t *r, int stop_near,
                           int stop_count, bw__mem_phase_t *ph);
void bw__memory_save(const bw__memory_t *m, bw_wbuf_t *w);
/** Read what save wrote; a bad count or position sets r->err. The
 * origin is 0 (the values as held) until bw__memory_load_origin. */
void bw__memory_load(bw__memory_t *m, bw_rbuf_t *r);
/** The times (t_push, the gap log), saved apart: at the end of a filter's
 * blob since PF13. */
void bw__memory_save_times(const bw__memory_t *m, bw_wbuf_t *w);
void bw__memory_load_times(bw__memory_t *m, bw_rbuf_t *r);
/** The origin, saved apart: at the end of a filter's blob since PF14. A
 * memory loaded without it (before PF14) held its values as they are:
 * origin 0. */
void bw__memory_save_origin(const bw__memory_t *m, bw_wbuf_t *w);
void bw__memory_load_origin(bw__memory_t *m, bw_rbuf_t *r);
/** A memory loaded without its times (before PF13): its newest value was
 * seen at @p t_ms, its values @p spacing_ms apart, and no gap is known. */
void bw__memory_assume_times(bw__memory_t *m, int64_t t_ms,
                             double spacing_ms);

#endif
