/*
 * The demo's synthetic telemetry: four regions (one low-traffic) with a
 * daily cycle; one-minute latency (log-normal noise), auth failures
 * (Poisson) and egress bytes (log-normal), five-minute error counts
 * (Poisson thinning of the requests). Three incidents are injected in the
 * live part: a regional latency regression (a lasting level shift), an
 * error-rate burst in the low-traffic region, and a multi-signal security
 * incident (auth failures and egress together).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "demo_int.h"

const char *const bw__demo_regions[DEMO_REGIONS] = {"us-east", "us-west",
                                                    "eu-west", "ap-south"};
const char *const bw__demo_metrics[DEMO_METRICS] = {
    "latency_ms", "errors", "auth_failures", "egress_bytes"};

static const double traffic[DEMO_REGIONS] = {2000, 1500, 1200, 40};
static const double latency[DEMO_REGIONS] = {120, 140, 110, 180};
static const double err_rate[DEMO_REGIONS] = {0.003, 0.002, 0.004, 0.003};

/* The shipped incidents: 9-16 noise sds, so that the demo shows them. */
static const bw_incident_t shipped[DEMO_INCIDENTS] = {
    {"latency regression in eu-west (+45%, lasting)",
     2,
     1 << M_LATENCY,
     false,
     60,
     -1,
     {[M_LATENCY] = 1.45}},
    {"error-rate burst in low-traffic ap-south (0.3% -> 8%)",
     3,
     1 << M_ERRORS,
     false,
     150,
     40,
     {[M_ERRORS] = 80.0 / 3}},
    {"account takeover + exfiltration in us-west",
     1,
     1 << M_AUTH | 1 << M_EGRESS,
     true,
     240,
     20,
     {[M_AUTH] = 15, [M_EGRESS] = 5}},
};

void bw__demo_gen_init(bw_demo_gen_t *g, uint64_t seed, int64_t t0_ms)
{
    bw_rng_seed(&g->rng, seed);
    g->t0_ms = t0_ms;
    memcpy(g->inc, shipped, sizeof(shipped));
}

static double uniform(bw_rng_t *r, double lo, double hi)
{
    return lo + (hi - lo) * bw_rng_uniform(r);
}

static int pick(bw_rng_t *r, int n)
{
    int k = (int)(bw_rng_uniform(r) * n);
    return k < n ? k : n - 1;
}

void bw__demo_gen_scenario(bw_demo_gen_t *g, uint64_t seed, int64_t t0_ms,
                           int live_min, double sd_lo, double sd_hi)
{
    bw_rng_t r;
    bw_incident_t *lat = &g->inc[0], *err = &g->inc[1], *sec = &g->inc[2];
    double k;
    int reg;

    bw__demo_gen_init(g, seed, t0_ms);
    bw_rng_seed(&r, seed ^ 0x5ce7a410ULL); /* apart from the telemetry's */
    for (int i = 0; i < DEMO_INCIDENTS; i++) {
        for (int m = 0; m < DEMO_METRICS; m++) {
            g->inc[i].factor[m] = 1.0;
        }
    }
    /* latency: log-normal noise of sd 0.04 */
    k = uniform(&r, sd_lo, sd_hi), reg = pick(&r, DEMO_REGIONS);
    lat->region = reg, lat->start = 20 + pick(&r, live_min / 3),
    lat->duration = -1;
    lat->factor[M_LATENCY] = exp(0.04 * k);
    snprintf(lat->name, sizeof(lat->name),
             "latency regression in %s (%.1f sds, lasting)",
             bw__demo_regions[reg], k);
    /* errors: Poisson, mean 5 minutes' requests x the region's error rate */
    k = uniform(&r, sd_lo, sd_hi), reg = pick(&r, DEMO_REGIONS);
    err->region = reg, err->start = 20 + pick(&r, live_min / 2);
    err->duration = 40 + pick(&r, 50);
    err->factor[M_ERRORS] = 1.0 + k / sqrt(traffic[reg] * 5 * err_rate[reg]);
    snprintf(err->name, sizeof(err->name), "error-rate burst in %s (%.1f sds)",
             bw__demo_regions[reg], k);
    /* security: auth failures (Poisson) and egress (log-normal, sd 0.1) */
    k = uniform(&r, sd_lo, sd_hi), reg = pick(&r, DEMO_REGIONS);
    sec->region = reg, sec->start = 20 + pick(&r, live_min / 2);
    sec->duration = 20 + pick(&r, 20);
    sec->factor[M_AUTH] = 1.0 + k / sqrt(traffic[reg] / 500);
    sec->factor[M_EGRESS] = exp(0.1 * k);
    snprintf(sec->name, sizeof(sec->name),
             "account takeover + exfiltration in %s (%.1f sds)",
             bw__demo_regions[reg], k);
}

bool bw__demo_incident_active(const bw_incident_t *in, int live_minute)
{
    return live_minute >= in->start &&
           (in->duration < 0 || live_minute < in->start + in->duration);
}

/* The product of the active incidents' factors on a region's metric. */
static double factor(const bw_demo_gen_t *g, int region, int metric, int minute)
{
    double f = 1.0;

    for (int i = 0; i < DEMO_INCIDENTS; i++) {
        const bw_incident_t *in = &g->inc[i];
        if (in->region == region && (in->metrics & (1 << metric)) &&
            bw__demo_incident_active(in, minute - DEMO_HISTORY_MIN)) {
            f *= in->factor[metric];
        }
    }
    return f;
}

/* Knuth's multiplication method for small means, normal beyond. */
static double poisson(bw_rng_t *r, double lambda)
{
    double l = exp(-lambda), p = 1.0;
    int k = 0;

    if (lambda > 30) {
        double x = floor(lambda + sqrt(lambda) * bw_rng_gauss(r) + 0.5);
        return x > 0 ? x : 0;
    }
    do {
        k++;
        p *= bw_rng_uniform(r);
    } while (p > l);
    return k - 1;
}

static double daily(int minute)
{
    double phase = (minute % 1440) / 1440.0;

    return 1.0 + 0.35 * sin(2 * M_PI * (phase - 0.3));
}

static void region_minute(bw_demo_gen_t *g, int reg, int minute,
                          bw_demo_emit_t emit, void *arg)
{
    double d = daily(minute);
    bw_event_t ev = {.time_ms = g->t0_ms + (int64_t)minute * 60000,
                     .region = bw__demo_regions[reg],
                     .service = "checkout",
                     .count = NAN};

    ev.metric = bw__demo_metrics[M_LATENCY];
    ev.value = latency[reg] * (1 + 0.25 * (d - 1)) *
               exp(0.04 * bw_rng_gauss(&g->rng)) *
               factor(g, reg, M_LATENCY, minute);
    emit(arg, &ev);

    ev.service = "auth";
    ev.metric = bw__demo_metrics[M_AUTH];
    ev.value = poisson(&g->rng,
                       traffic[reg] / 500 * d * factor(g, reg, M_AUTH, minute));
    emit(arg, &ev);

    ev.service = "edge";
    ev.metric = bw__demo_metrics[M_EGRESS];
    ev.value = 2e3 * traffic[reg] * d * exp(0.1 * bw_rng_gauss(&g->rng)) *
               factor(g, reg, M_EGRESS, minute);
    emit(arg, &ev);

    if (minute % 5 == 4) {
        double n =
            floor(traffic[reg] * d * 5 * (1 + 0.05 * bw_rng_gauss(&g->rng)));
        double p = err_rate[reg] * factor(g, reg, M_ERRORS, minute);
        double k = poisson(&g->rng, n * p);
        ev.service = "checkout";
        ev.metric = bw__demo_metrics[M_ERRORS];
        ev.value = k < n ? k : n;
        ev.count = n;
        emit(arg, &ev);
    }
}

void bw__demo_gen_minute(bw_demo_gen_t *g, int minute, bw_demo_emit_t emit,
                         void *arg)
{
    for (int r = 0; r < DEMO_REGIONS; r++) {
        region_minute(g, r, minute, emit, arg);
    }
}
