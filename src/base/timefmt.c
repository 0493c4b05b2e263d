/*
 * Timestamp and number parsing and formatting. Civil dates to days since
 * the epoch and back by Howard Hinnant's days_from_civil and
 * civil_from_days algorithms (O(1), no time zone tables).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bayeswatch/timefmt.h"

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t era;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

void bw_time_format(int64_t ms, char *out, size_t size)
{
    int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
    int64_t rem = ms - days * 86400000, y;
    unsigned m, d;

    civil_from_days(days, &y, &m, &d);
    snprintf(out, size, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", (long long)y,
             m, d, (int)(rem / 3600000), (int)(rem / 60000 % 60),
             (int)(rem / 1000 % 60), (int)(rem % 1000));
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 ? 28 + leap : dm[m - 1];
}

/* Read exactly n digits. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i])) {
            return -1;
        }
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int expect(const char **p, char c)
{
    if (**p != c) {
        return -1;
    }
    (*p)++;
    return 0;
}

static bw_err_t parse_epoch(const char *s, int64_t *ms)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (*end != '\0' || errno != 0 || end == s) {
        return BW_ERR_PARSE;
    }
    *ms = v;
    return BW_OK;
}

static int parse_millis(const char **p)
{
    int ms = 0, scale = 100;

    if (**p != '.') {
        return 0;
    }
    (*p)++;
    if (!isdigit((unsigned char)**p)) {
        return -1;
    }
    while (isdigit((unsigned char)**p)) {
        ms += scale * (**p - '0');
        scale /= 10;
        (*p)++;
    }
    return ms;
}

bw_err_t bw_time_parse(const char *s, int64_t *ms)
{
    const char *p = s;
    int Y, M, D, h, mi, sec, frac;

    if (strlen(s) < 19 || s[4] != '-') {
        return parse_epoch(s, ms);
    }
    if (digits(&p, 4, &Y) || expect(&p, '-') || digits(&p, 2, &M) ||
        expect(&p, '-') || digits(&p, 2, &D) || (*p != ' ' && *p != 'T')) {
        return BW_ERR_PARSE;
    }
    p++;
    if (digits(&p, 2, &h) || expect(&p, ':') || digits(&p, 2, &mi) ||
        expect(&p, ':') || digits(&p, 2, &sec)) {
        return BW_ERR_PARSE;
    }
    frac = parse_millis(&p);
    if (frac < 0 || (*p == 'Z' && *++p != '\0') || *p != '\0') {
        return BW_ERR_PARSE;
    }
    if (Y < 1970 || M < 1 || M > 12 || D < 1 || D > days_in_month(Y, M) ||
        h > 23 || mi > 59 || sec > 60 ||
        (sec == 60 && (h != 23 || mi != 59))) { /* a leap second: 23:59 */
        return BW_ERR_PARSE;
    }
    *ms = ((days_from_civil(Y, (unsigned)M, (unsigned)D) * 24 + h) * 60 + mi) *
              60000LL +
          sec * 1000LL + frac;
    return BW_OK;
}

bw_err_t bw_parse_double(const char *s, double *out)
{
    char *end;
    double v;

    while (isspace((unsigned char)*s)) {
        s++;
    }
    if (*s == '\0') {
        return BW_ERR_PARSE;
    }
    errno = 0;
    v = strtod(s, &end);
    while (isspace((unsigned char)*end)) {
        end++;
    }
    if (*end != '\0' || end == s) {
        return BW_ERR_PARSE;
    }
    if (!isfinite(v)) {
        return BW_ERR_RANGE;
    }
    *out = v;
    return BW_OK;
}

int64_t bw_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double bw_mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int64_t bw_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t bw_boot_ms(void)
{
    struct timespec ts;

#ifdef CLOCK_BOOTTIME
    clock_gettime(CLOCK_BOOTTIME, &ts);
#else
    clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
