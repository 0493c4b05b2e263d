/*
 * The Prometheus text exposition format, version 0.0.4
 * (prometheus.io/docs/instrumenting/exposition_formats): `# HELP` and
 * `# TYPE` per family, one sample per line, label values escaped, and
 * histograms as cumulative `_bucket{le=...}` samples with `_sum` and
 * `_count`. Histograms are updated lock-free (relaxed atomics) from the
 * stream threads; a page reads each counter once, so a bucket may run a
 * few observations ahead of `_count` within one page, never behind a
 * previous page.
 */
#include <math.h>
#include <string.h>

#include "bayeswatch/obs.h"

void bw_prom_escape(char *dst, size_t cap, const char *v)
{
    size_t o = 0;

    for (; *v != '\0' && o + 3 < cap; v++) {
        if (*v == '\\' || *v == '"') {
            dst[o++] = '\\';
            dst[o++] = *v;
        } else if (*v == '\n') {
            dst[o++] = '\\';
            dst[o++] = 'n';
        } else {
            dst[o++] = *v;
        }
    }
    dst[o] = '\0';
}

void bw_prom_family(bw_wbuf_t *w, const char *name, const char *type,
                    const char *help)
{
    bw_wbuf_printf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void value(bw_wbuf_t *w, double v)
{
    if (isnan(v)) {
        bw_wbuf_printf(w, "NaN\n");
    } else if (isinf(v)) {
        bw_wbuf_printf(w, "%sInf\n", v > 0 ? "+" : "-");
    } else if (v == floor(v) && fabs(v) < 1e15) {
        bw_wbuf_printf(w, "%.0f\n", v);
    } else {
        bw_wbuf_printf(w, "%.9g\n", v);
    }
}

void bw_prom_sample(bw_wbuf_t *w, const char *name, const char *labels,
                    double v)
{
    if (labels != NULL && labels[0] != '\0') {
        bw_wbuf_printf(w, "%s{%s} ", name, labels);
    } else {
        bw_wbuf_printf(w, "%s ", name);
    }
    value(w, v);
}

void bw_prom_sample1(bw_wbuf_t *w, const char *name, const char *label,
                     const char *value, double v)
{
    char esc[2 * 256 + 8], lab[2 * 256 + 96];

    bw_prom_escape(esc, sizeof(esc), value);
    snprintf(lab, sizeof(lab), "%s=\"%s\"", label, esc);
    bw_prom_sample(w, name, lab, v);
}

void bw_hist_init(bw_hist_t *h, const double *bounds, int n)
{
    memset(h, 0, sizeof(*h));
    h->bounds = bounds;
    h->n = n < BW_HIST_MAX ? n : BW_HIST_MAX;
}

#define RELAXED memory_order_relaxed

/* Add @p v to the double held as bits in @p a (compare-and-swap). */
static void atomic_add_f64(_Atomic uint64_t *a, double v)
{
    uint64_t old = atomic_load_explicit(a, RELAXED), nw;
    double d;

    do {
        memcpy(&d, &old, sizeof(d));
        d += v;
        memcpy(&nw, &d, sizeof(nw));
    } while (!atomic_compare_exchange_weak_explicit(a, &old, nw, RELAXED,
                                                    RELAXED));
}

static double load_f64(const _Atomic uint64_t *a)
{
    uint64_t bits = atomic_load_explicit(a, RELAXED);
    double d;

    memcpy(&d, &bits, sizeof(d));
    return d;
}

void bw_hist_observe(bw_hist_t *h, double seconds)
{
    int i = 0;

    if (!(seconds >= 0.0)) {
        seconds = 0.0; /* a clock step backwards */
    }
    while (i < h->n && seconds > h->bounds[i]) {
        i++;
    }
    if (i < h->n) {
        atomic_fetch_add_explicit(&h->bucket[i], 1, RELAXED);
    }
    atomic_fetch_add_explicit(&h->count, 1, RELAXED);
    atomic_add_f64(&h->sum_bits, seconds);
}

void bw_hist_add(bw_hist_t *dst, const bw_hist_t *src)
{
    for (int i = 0; i < src->n && i < dst->n; i++) {
        atomic_fetch_add_explicit(
            &dst->bucket[i], atomic_load_explicit(&src->bucket[i], RELAXED),
            RELAXED);
    }
    atomic_fetch_add_explicit(
        &dst->count, atomic_load_explicit(&src->count, RELAXED), RELAXED);
    atomic_add_f64(&dst->sum_bits, load_f64(&src->sum_bits));
}

void bw_hist_write(bw_wbuf_t *w, const char *name, const char *labels,
                   const bw_hist_t *h)
{
    const char *sep = labels != NULL && labels[0] != '\0' ? "," : "";
    const char *lab = labels != NULL ? labels : "";
    uint64_t cum = 0, count = atomic_load_explicit(&h->count, RELAXED);

    for (int i = 0; i < h->n; i++) {
        cum += atomic_load_explicit(&h->bucket[i], RELAXED);
        bw_wbuf_printf(w, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, lab, sep,
                       h->bounds[i], (unsigned long long)cum);
    }
    if (count < cum) {
        count = cum; /* read after the buckets: never below them */
    }
    bw_wbuf_printf(w, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, lab, sep,
                   (unsigned long long)count);
    bw_wbuf_printf(w, "%s_sum%s%s%s %.9g\n", name, lab[0] ? "{" : "", lab,
                   lab[0] ? "}" : "",
                   load_f64(&h->sum_bits));
    bw_wbuf_printf(w, "%s_count%s%s%s %llu\n", name, lab[0] ? "{" : "", lab,
                   lab[0] ? "}" : "", (unsigned long long)count);
}
