/*
 * bayeswatch - event times: parsing the replay's timestamps, the valid
 * range every stage checks, and the robust interval estimate.
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#ifndef BAYESWATCH_TIMEFMT_H
#define BAYESWATCH_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#include "bayeswatch/err.h"

/**
 * @brief Parse `YYYY-MM-DD HH:MM:SS[.fff]` (a `T` instead of the space and
 * a trailing `Z` allowed; UTC) or integer epoch milliseconds.
 * @returns BW_OK or BW_ERR_PARSE (also for impossible dates, or years
 * outside 1970-9999).
 */
bw_err_t bw_time_parse(const char *s, int64_t *ms);

/** Event times are valid from 1970-01-01 to 9999-12-31T23:59:59.999Z:
 * anything else is an absurd timestamp, and the range keeps every time
 * difference far from int64 overflow. */
#define BW_TIME_MAX_MS INT64_C(253402300799999)

static inline int bw_time_valid(int64_t ms)
{
    return ms >= 0 && ms <= BW_TIME_MAX_MS;
}

/**
 * @brief Robust EWMA of a series' usual interval between events: the first
 * gap starts it; each later gap is clamped to [1/4, 4] x the estimate, so
 * one outage or burst cannot swamp it.
 * @returns the new estimate.
 */
static inline double bw_interval_update(double interval, double gap,
                                        double alpha)
{
    double g;

    if (interval <= 0.0) {
        return gap;
    }
    g = gap < interval / 4.0 ? interval / 4.0
                             : (gap > interval * 4.0 ? interval * 4.0 : gap);
    return interval + alpha * (g - interval);
}

/** @brief @p ms (bw_time_valid) as RFC 3339 UTC with milliseconds,
 * "2024-03-05T14:32:00.000Z", into @p out (at least 25 bytes). */
void bw_time_format(int64_t ms, char *out, size_t size);

/** @brief The wall clock (CLOCK_REALTIME), epoch milliseconds. */
int64_t bw_wall_ms(void);

/** @brief A monotonic clock for durations and timeouts: milliseconds and
 * seconds since an arbitrary start. */
int64_t bw_mono_ms(void);
double bw_mono_s(void);
/** @brief Like bw_mono_ms, but it goes on counting while the machine (or a
 * VM) is suspended (CLOCK_BOOTTIME where there is one): the age of
 * something another machine times out. */
int64_t bw_boot_ms(void);

/** @brief Parse a whole string as a finite double. */
bw_err_t bw_parse_double(const char *s, double *out);

#endif
