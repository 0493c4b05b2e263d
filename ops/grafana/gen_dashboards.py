#!/usr/bin/env python3
"""Write bayeswatch's three Grafana dashboards (ops/grafana/dashboards/).

    python3 ops/grafana/gen_dashboards.py [OUT_DIR]

The dashboards are generated so that every panel has the same shape and
datasource, and so that tests can list their queries (`--queries` prints
one PromQL expression per line). Standard library only; the JSON files
are committed, and tests/integration/ops_test.py checks that they match
this script's output and that every query returns data from a real
Prometheus scraping the stage.

  on-call       posterior per region against the alert threshold, threats,
                freshness, dead letters, alerts
  model health  ESS, resampling, inference time, warm-up, stale series,
                restore, calibration (alerting events vs. pages)
  executive     SLO-breach probability and error-budget burn by region
"""

import json
import os
import sys

DS = {"type": "prometheus", "uid": "${datasource}"}


def panel(pid, title, exprs, x, y, w=12, h=8, unit="short", kind="timeseries",
          thresholds=None, legend="{{region}}", maxv=None, desc=""):
    targets = []
    for i, e in enumerate(exprs):
        expr, leg = e if isinstance(e, tuple) else (e, legend)
        targets.append({"refId": chr(65 + i), "datasource": DS,
                        "expr": expr, "legendFormat": leg})
    steps = [{"color": "green", "value": None}]
    for value, color in thresholds or []:
        steps.append({"color": color, "value": value})
    defaults = {"unit": unit, "thresholds": {"mode": "absolute",
                                             "steps": steps}}
    if maxv is not None:
        defaults["min"], defaults["max"] = 0, maxv
    if kind == "timeseries" and thresholds:
        defaults["custom"] = {"thresholdsStyle": {"mode": "area"}}
    return {"id": pid, "type": kind, "title": title, "description": desc,
            "datasource": DS, "targets": targets,
            "gridPos": {"x": x, "y": y, "w": w, "h": h},
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {}}


def dashboard(uid, title, panels, tags):
    return {
        "uid": uid, "title": title, "tags": ["bayeswatch"] + tags,
        "schemaVersion": 38, "version": 1, "editable": True,
        "time": {"from": "now-6h", "to": "now"}, "refresh": "30s",
        "timezone": "utc",
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus",
             "label": "Prometheus", "current": {}, "hide": 0},
            {"name": "instance", "type": "query", "datasource": DS,
             "query": "label_values(bayeswatch_build_info, instance)",
             "refresh": 2, "multi": True, "includeAll": True,
             "current": {"text": "All", "value": "$__all"}}]},
        "annotations": {"list": []},
        "panels": panels,
    }


SEL = 'instance=~"$instance"'


def oncall():
    p = [
        panel(1, "P(abnormal) by region (alert threshold 0.99)",
              [f"bayeswatch_region_anomaly_probability{{{SEL}}}"], 0, 0,
              w=24, h=9, unit="percentunit", maxv=1,
              thresholds=[(0.5, "orange"), (0.99, "red")],
              desc="The largest current posterior probability of an "
                   "abnormal state among each region's fresh series; the "
                   "shaded bands are 0.5 and the page threshold 0.99."),
        panel(2, "Fused threat probability by region",
              [f"bayeswatch_region_threat_probability{{{SEL}}}"], 0, 9,
              unit="percentunit", maxv=1,
              thresholds=[(0.2, "yellow"), (0.5, "orange"), (0.8, "red")],
              desc="Levels: moderate 0.2, high 0.5, critical 0.8."),
        panel(3, "Input freshness (seconds since the newest event)",
              [f"bayeswatch_region_input_age_seconds{{{SEL}}}"], 12, 9,
              unit="s", thresholds=[(300, "red")]),
        panel(4, "Stale series by region",
              [f"bayeswatch_region_stale_series{{{SEL}}}"], 0, 17,
              thresholds=[(1, "orange")]),
        panel(5, "Dead letters per second by reason",
              [(f"sum by (reason) (rate(bayeswatch_dead_letters_total"
                f"{{{SEL}}}[5m]))", "{{reason}}")], 12, 17, unit="ops"),
        panel(6, "Alerting events per minute",
              [(f"sum by (instance) (rate(bayeswatch_alerts_total{{{SEL}}}"
                f"[5m])) * 60", "{{instance}}")], 0, 25),
        panel(7, "Consumer lag (records)",
              [(f"max by (topic, partition) (bayeswatch_consumer_lag"
                f"{{{SEL}}})", "{{topic}} [{{partition}}]")], 12, 25),
    ]
    return dashboard("bayeswatch-oncall", "bayeswatch / on-call", p,
                     ["on-call"])


def model_health():
    hq = "histogram_quantile"
    p = [
        panel(1, "Minimum ESS / particles (since the previous scrape page)",
              [(f"bayeswatch_ess_ratio_min{{{SEL}}}", "{{instance}}")],
              0, 0, unit="percentunit", maxv=1,
              thresholds=[(0.05, "green")]),
        panel(2, "ESS / particles, quantiles",
              [(f"{hq}(0.05, sum by (le) (rate(bayeswatch_ess_ratio_bucket"
                f"{{{SEL}}}[5m])))", "p05"),
               (f"{hq}(0.5, sum by (le) (rate(bayeswatch_ess_ratio_bucket"
                f"{{{SEL}}}[5m])))", "median")], 12, 0, unit="percentunit",
              maxv=1),
        panel(3, "Resampling steps per scored series event",
              [(f"sum(rate(bayeswatch_resamples_total{{{SEL}}}[5m])) / "
                f"sum(rate(bayeswatch_ess_ratio_count{{{SEL}}}[5m]))",
                "resample rate")], 0, 8, unit="percentunit"),
        panel(4, "Inference time per event (p50, p99)",
              [(f"{hq}(0.5, sum by (le) (rate("
                f"bayeswatch_event_processing_seconds_bucket{{{SEL}}}[5m])))",
                "p50"),
               (f"{hq}(0.99, sum by (le) (rate("
                f"bayeswatch_event_processing_seconds_bucket{{{SEL}}}[5m])))",
                "p99")], 12, 8, unit="s"),
        panel(5, "Event-to-commit latency (p50, p99)",
              [(f"{hq}(0.5, sum by (le) (rate("
                f"bayeswatch_event_commit_latency_seconds_bucket{{{SEL}}}"
                f"[5m])))", "p50"),
               (f"{hq}(0.99, sum by (le) (rate("
                f"bayeswatch_event_commit_latency_seconds_bucket{{{SEL}}}"
                f"[5m])))", "p99")], 0, 16, unit="s"),
        panel(6, "Share of scores in warm-up",
              [(f"sum(rate(bayeswatch_warmup_scores_total{{{SEL}}}[5m])) / "
                f"sum(rate(bayeswatch_records_scored_total{{{SEL}}}[5m]))",
                "warm-up")], 12, 16, unit="percentunit", maxv=1),
        panel(7, "Calibration: share of events at or below predictive "
                 "tail probability q (calibrated: q)",
              [(f'sum(rate(bayeswatch_predictive_pvalue_bucket{{{SEL},'
                f'le="{q}"}}[1h])) / sum(rate('
                f'bayeswatch_predictive_pvalue_count{{{SEL}}}[1h]))',
                f"q = {q}") for q in ("0.01", "0.05", "0.1")]
              + [(f"sum(rate(bayeswatch_alerts_total{{{SEL}}}[1h])) / "
                  f"sum(rate(bayeswatch_records_scored_total{{{SEL}}}[1h]))",
                  "alerting share")], 0, 24, unit="percentunit",
              desc="The probability integral transform of the predictive: "
                   "on normal data a calibrated model puts a share q of "
                   "events at or below tail probability q. Far above q: "
                   "predictions too narrow, or an incident in progress."),
        panel(8, "Models held and their memory",
              [(f"sum by (kind) (bayeswatch_model_objects{{{SEL}}})",
                "{{kind}}")], 12, 24),
        panel(9, "Model memory", [(f"sum(bayeswatch_model_memory_bytes"
                                   f"{{{SEL}}})", "bytes")], 0, 32,
              unit="bytes"),
        panel(10, "Restore: partitions pending and seconds spent",
              [(f"sum(bayeswatch_restore_partitions_pending{{{SEL}}})",
                "pending"),
               (f"sum(increase(bayeswatch_restore_seconds_total{{{SEL}}}"
                f"[1h]))", "seconds restoring (1 h)")], 12, 32),
        panel(11, "Transactions per second (committed, aborted)",
              [(f"sum(rate(bayeswatch_transactions_committed_total"
                f"{{{SEL}}}[5m]))", "committed"),
               (f"sum(rate(bayeswatch_transactions_aborted_total{{{SEL}}}"
                f"[5m]))", "aborted")], 0, 40, unit="ops"),
        panel(12, "Ready (restored and producer initialised)",
              [(f"bayeswatch_ready{{{SEL}}}", "{{instance}}")], 12, 40,
              maxv=1),
        panel(13, "Stale series and series in warm-up",
              [(f"sum(bayeswatch_region_stale_series{{{SEL}}})", "stale"),
               (f"sum(bayeswatch_warmup_series{{{SEL}}})", "warm-up")],
              0, 48),
    ]
    return dashboard("bayeswatch-model-health", "bayeswatch / model health",
                     p, ["debugging"])


def executive():
    p = [
        panel(1, "P(SLO breached now) by region",
              [f"bayeswatch_slo_breach_probability{{{SEL}}}"], 0, 0, w=24,
              unit="percentunit", maxv=1,
              thresholds=[(0.5, "orange"), (0.9, "red")]),
        panel(2, "Error-budget burn rate, 1 h window",
              [f'bayeswatch_error_budget_burn_rate{{{SEL},window="1h"}}'],
              0, 8, thresholds=[(1, "yellow"), (14.4, "red")],
              desc="1 = spending the budget as fast as it accrues; 14.4 "
                   "spends 2% of a 30-day budget in an hour."),
        panel(3, "Error-budget burn rate, 6 h window",
              [f'bayeswatch_error_budget_burn_rate{{{SEL},window="6h"}}'],
              12, 8, thresholds=[(1, "yellow"), (6, "red")]),
        panel(4, "Regions at risk (burn over 6 h above 1)",
              [(f'count(bayeswatch_error_budget_burn_rate{{{SEL},'
                f'window="6h"}} > 1) or vector(0)', "regions")], 0, 16, w=8,
              kind="stat"),
        panel(5, "Highest P(breach)",
              [(f"max(bayeswatch_slo_breach_probability{{{SEL}}})",
                "max")], 8, 16, w=8, kind="stat", unit="percentunit"),
        panel(6, "Threats at high or above",
              [(f"count(bayeswatch_region_threat_probability{{{SEL}}} >= "
                f"0.5) or vector(0)", "threats")], 16, 16, w=8, kind="stat"),
    ]
    return dashboard("bayeswatch-executive", "bayeswatch / executive", p,
                     ["executive"])


BOARDS = {"oncall.json": oncall, "model-health.json": model_health,
          "executive.json": executive}


def queries():
    for make in BOARDS.values():
        for pnl in make()["panels"]:
            for t in pnl["targets"]:
                yield t["expr"]


def main(argv):
    if len(argv) > 1 and argv[1] == "--queries":
        for q in queries():
            print(q.replace('instance=~"$instance"', 'instance=~".*"'))
        return 0
    out = argv[1] if len(argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "dashboards")
    os.makedirs(out, exist_ok=True)
    for name, make in BOARDS.items():
        with open(os.path.join(out, name), "w") as fh:
            json.dump(make(), fh, indent=2, sort_keys=True)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
