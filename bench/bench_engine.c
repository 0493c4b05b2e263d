/*
 * bayeswatch benchmarks (not tests): one thread, median of REPS runs.
 *
 *   per-series model events/s at 64, 256, 1024 particles and the default
 *   pooled-model (Beta-Binomial, 8 regions) updates/s
 *   memory per series (heap held by one filter with the default config)
 *   replay end-to-end rows/s is measured by bench/replay.sh
 *
 * Targets (issue #2): >= 100,000 events/s/core for the per-series model
 * at its default particle count; <= 64 KiB per series.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <gsl/gsl_errno.h>

#include "bayeswatch/config.h"
#include "bayeswatch/model.h"

#define REPS 5

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp);
    return v[n / 2];
}

/* Realistic input: daily cycle, noise, occasional spikes, 1-minute steps. */
static double value_at(bw_rng_t *rng, int t)
{
    double v = 200 + 40 * sin(2 * M_PI * t / 1440.0) + 5 * bw_rng_gauss(rng);

    return (t % 997 == 0) ? v + 100 : v;
}

static double pf_rate(const bw_pf_cfg_t *c, int events)
{
    bw_pf_t *pf = bw_pf_new(c, 1, NULL, 0);
    bw_pf_ws_t *ws = bw_pf_ws_new(c);
    bw_pf_out_t out;
    bw_rng_t rng;
    double t0, sink = 0.0;

    bw_rng_seed(&rng, 9);
    t0 = now();
    for (int t = 0; t < events; t++) {
        bw_pf_update(pf, ws, (int64_t)t * 60000, value_at(&rng, t), &out);
        sink += out.p_anomaly;
    }
    t0 = now() - t0;
    bw_pf_ws_destroy(ws);
    bw_pf_destroy(pf);
    return sink >= 0 ? events / t0 : 0.0;
}

static void bench_pf(const bw_config_t *cfg)
{
    const int counts[] = {64, 256, 1024, 0};

    for (int k = 0; k < 4; k++) {
        bw_pf_cfg_t c = cfg->model.pf;
        double r[REPS];
        int n = counts[k] ? counts[k] : cfg->model.pf.particles;
        int events = 2000000 / n;
        c.particles = n;
        for (int i = 0; i < REPS; i++) {
            r[i] = pf_rate(&c, events);
        }
        printf("pf %-8s particles=%-5d %10.0f events/s\n",
               counts[k] ? "" : "default", n, median(r, REPS));
    }
    { /* the cost of the collective-anomaly (block) model */
        bw_pf_cfg_t c = cfg->model.pf;
        double r[REPS];
        c.block_size = 0;
        for (int i = 0; i < REPS; i++) {
            r[i] = pf_rate(&c, 2000000 / c.particles);
        }
        printf("pf default without the block model  %10.0f events/s\n",
               median(r, REPS));
    }
    {
        bw_pf_t *pf = bw_pf_new(&cfg->model.pf, 1, NULL, 0);
        printf("pf memory per series (default config, daily profile on): "
               "%zu bytes (%.1f KiB)\n",
               bw_pf_memory(pf), bw_pf_memory(pf) / 1024.0);
        bw_pf_destroy(pf);
    }
}

static void bench_hier(const bw_config_t *cfg, int regions)
{
    double r[REPS];
    /* steady state: every region seen thousands of times (the scheduled
     * refits amortised); the exact per-event refit is far slower */
    const int events = cfg->model.hier.refresh_intervals > 0 ? 200000 : 400;
    size_t mem = 0;

    for (int i = 0; i < REPS; i++) {
        bw_hier_t *h = bw_hier_new(&cfg->model.hier, BW_HIER_COUNT, NULL, 0);
        bw_hier_out_t out;
        bw_rng_t rng;
        double t0;
        bw_rng_seed(&rng, 5);
        t0 = now();
        for (int t = 0; t < events; t++) {
            int j = t % regions;
            double n = 50 + 20000 * (j + 1) / regions;
            double y = floor(n * 0.002 * (1 + bw_rng_uniform(&rng)));
            bw_hier_observe(h, j, (int64_t)t * 10000, y, n, 0.01, &out);
        }
        r[i] = events / (now() - t0);
        mem = bw_hier_memory(h);
        bw_hier_destroy(h);
    }
    printf("pooled count model, %2d regions%s: %8.0f updates/s (memory %zu "
           "bytes per group)\n",
           regions, cfg->model.hier.refresh_intervals > 0 ? "" : " (exact)",
           median(r, REPS), mem);
}

int main(void)
{
    bw_config_t cfg;

    gsl_set_error_handler_off();
    bw_config_defaults(&cfg);
    printf("bayeswatch bench: one thread, median of %d runs\n", REPS);
    bench_pf(&cfg);
    bench_hier(&cfg, 3);
    bench_hier(&cfg, 8);
    bench_hier(&cfg, 32);
    cfg.model.hier.refresh_intervals = 0;
    bench_hier(&cfg, 8);
    cfg.model.hier.refresh_intervals = 32;
    return 0;
}
