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

#include "demo_int.h"

const char *const bw__demo_regions[DEMO_REGIONS] = {"us-east", "us-west",
                                                    "eu-west", "ap-south"};
const char *const bw__demo_metrics[DEMO_METRICS] = {
    "latency_ms", "errors", "auth_failures", "egress_bytes"};

static const double traffic[DEMO_REGIONS] = {2000, 1500, 1200, 40};
static const double latency[DEMO_REGIONS] = {120, 140, 110, 180};
static const double err_rate[DEMO_REGIONS] = {0.003, 0.002, 0.004, 0.003};

const bw_incident_t bw__demo_incidents[DEMO_INCIDENTS] = {
    {"latency regression in eu-west (+45%, lasting)", 2, 1 << M_LATENCY, false,
     60, -1},
    {"error-rate burst in low-traffic ap-south (0.3% -> 8%)", 3, 1 << M_ERRORS,
     false, 150, 40},
    {"account takeover + exfiltration in us-west", 1,
     1 << M_AUTH | 1 << M_EGRESS, true, 240, 20},
};

void bw__demo_gen_init(bw_demo_gen_t *g, uint64_t seed, int64_t t0_ms)
{
    bw_rng_seed(&g->rng, seed);
    g->t0_ms = t0_ms;
}

bool bw__demo_incident_active(const bw_incident_t *in, int live_minute)
{
    return live_minute >= in->start &&
           (in->duration < 0 || live_minute < in->start + in->duration);
}

static bool active(int region, int metric, int minute)
{
    for (int i = 0; i < DEMO_INCIDENTS; i++) {
        const bw_incident_t *in = &bw__demo_incidents[i];
        if (in->region == region && (in->metrics & (1 << metric)) &&
            bw__demo_incident_active(in, minute - DEMO_HISTORY_MIN)) {
            return true;
        }
    }
    return false;
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
               (active(reg, M_LATENCY, minute) ? 1.45 : 1.0);
    emit(arg, &ev);

    ev.service = "auth";
    ev.metric = bw__demo_metrics[M_AUTH];
    ev.value = poisson(&g->rng, traffic[reg] / 500 * d *
                                    (active(reg, M_AUTH, minute) ? 15 : 1));
    emit(arg, &ev);

    ev.service = "edge";
    ev.metric = bw__demo_metrics[M_EGRESS];
    ev.value = 2e3 * traffic[reg] * d * exp(0.1 * bw_rng_gauss(&g->rng)) *
               (active(reg, M_EGRESS, minute) ? 5 : 1);
    emit(arg, &ev);

    if (minute % 5 == 4) {
        double n =
            floor(traffic[reg] * d * 5 * (1 + 0.05 * bw_rng_gauss(&g->rng)));
        double p =
            err_rate[reg] * (active(reg, M_ERRORS, minute) ? 80.0 / 3 : 1);
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
