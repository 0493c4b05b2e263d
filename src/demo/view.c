/*
 * The demo's terminal view: per-region anomaly probabilities as bars, the
 * error rate against its SLO, the fused threat level, and the latest
 * alerts; redrawn in place with ANSI escapes (or, without a terminal,
 * only the alert lines are printed).
 */
#include <math.h>
#include <string.h>
#include <time.h>

#include "demo_int.h"

#define BAR 10

static const char *const level_color[] = {"\033[32m", "\033[33m", "\033[31m",
                                          "\033[1;31m"};

void bw__demo_view_url(bw_demo_view_t *v, const char *url)
{
    snprintf(v->url, sizeof(v->url), "%s", url);
    if (!v->ansi) {
        fprintf(v->out, "web view: %s\n", url);
        fflush(v->out);
    }
}

void bw__demo_view_log(bw_demo_view_t *v, const char *line)
{
    if (!v->ansi) {
        fprintf(v->out, "%s\n", line);
        return;
    }
    memmove(v->log[1], v->log[0], sizeof(v->log[0]) * (DEMO_LOG_LINES - 1));
    snprintf(v->log[0], sizeof(v->log[0]), "%s", line);
    if (v->n_log < DEMO_LOG_LINES) {
        v->n_log++;
    }
}

/* A probability as a bar, colored by how alarming it is. */
static void bar(FILE *out, double p)
{
    int n = isfinite(p) ? (int)floor(p * BAR + 0.5) : 0;
    const char *c = p >= 0.99  ? "\033[1;31m"
                    : p >= 0.5 ? "\033[33m"
                               : "\033[32m";

    fputs(c, out);
    for (int i = 0; i < BAR; i++) {
        fputs(i < n ? "\u2588" : "\u00b7", out);
    }
    fprintf(out, "\033[0m %4.2f", isfinite(p) ? p : 0.0);
}

static void region_row(const bw_demo_view_t *v, int r)
{
    const bw_region_view_t *x = &v->r[r];
    FILE *out = v->out;
    int lv = x->level >= 0 && x->level <= 3 ? x->level : 0;

    fprintf(out, " %-9s %7.1f ", bw__demo_regions[r], x->value[M_LATENCY]);
    bar(out, x->p[M_LATENCY]);
    fprintf(out, "  %5.2f%% ", 100 * x->rate);
    bar(out, x->p_slo);
    fputs("  ", out);
    bar(out, x->p[M_AUTH]);
    fputs("  ", out);
    bar(out, x->p[M_EGRESS]);
    fprintf(out, "  %s%-8s %5.3f\033[0m\033[K\n", level_color[lv],
            bw_level_name(lv), x->threat);
}

void bw__demo_view_render(const bw_demo_view_t *v)
{
    FILE *out = v->out;
    time_t t = (time_t)(v->sim_ms / 1000);
    struct tm tm;
    char when[32];

    if (!v->ansi) {
        return;
    }
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
    fprintf(out,
            "\033[H\033[1mbayeswatch demo\033[0m  %s UTC  \033[2m(%s)"
            "\033[0m\033[K\n",
            when, v->phase);
    fprintf(out,
            " events %lld  scores %lld  threats %lld  alerts %lld  "
            "dead letters %lld  (exactly-once, in-process Kafka)\033[K\n"
            " web view: %s\033[K\n",
            v->events, v->scores, v->threats, v->alerts, v->dead,
            v->url[0] ? v->url : "off (obs.listen)");
    fprintf(out,
            "\033[2m %-9s %7s %-15s  %-6s %-15s  %-15s  %-15s  %s"
            "\033[0m\033[K\n",
            "region", "latency", "P(anomaly)", "errors", "P(rate > 1%)",
            "auth failures", "egress", "threat");
    for (int r = 0; r < DEMO_REGIONS; r++) {
        region_row(v, r);
    }
    fprintf(out, "\033[K\n\033[2m latest alerts and threats\033[0m\033[K\n");
    for (int i = 0; i < DEMO_LOG_LINES; i++) {
        fprintf(out, " %s\033[K\n", i < v->n_log ? v->log[i] : "");
    }
    fflush(out);
}
