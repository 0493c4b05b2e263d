#!/usr/bin/env python3
"""Score `bayeswatch replay` output against gen_fleet.py's ground truth.

usage: python3 score_fleet.py --truth DIR/truth.json --scores SCORES.csv
           [--threats THREATS.csv] [--threshold 0.99] [--warmup-hours 24]
           [--json OUT]

SCORES.csv: stdout of `bayeswatch replay --config fleet.yaml DIR/events.csv`
(columns read by header name: timestamp, region, service, metric,
anomaly_score, warmup, p_slo). THREATS.csv: the file of `--threats`
(timestamp,entity,rule,probability,score,level,...; a row is written when
the assessment changes, so an entity's level persists between its rows).

An event is flagged when anomaly_score >= threshold and the series is out of
warm-up. Reported:
  incidents   expect series/pooled: found if a flagged event of an involved
              series lies in [start, end + 5 min) (pooled: the region's errors
              series); delay = first flag - start; coverage = flagged
              fraction of the involved events in [start, end)
  threats     security incident found if its region's level reaches high or
              critical in [start, end + 5 min); high_share = the fraction
              of its minutes in [start, end) at high or above; a decoy is
              a false positive if its region does so in [start, end + 30 min)
  false alarms  flagged events after the warm-up outside every truth interval
              of their series (incidents and decoys extended by 30 min, gaps
              by 30 min, benign changes 6 h from the change); consecutive
              flags <= 5 min apart are one episode; per series-day.
              Alarms in the benign-change and gap windows are given apart.
  calibration  anomaly_score bins against the fraction of events inside an
              injected anomaly (incident or decoy, involved series only;
              strict [start, end) and lenient [start, end + 30 min)), and the
              precision at the threshold (lenient).
"""
import argparse
import bisect
import csv
import datetime as dt
import json
import sys

FMT = "%Y-%m-%d %H:%M:%S"
BIN_EDGES = [0.0, 0.5, 0.9, 0.99]
LEVELS = {"none": 0, "low": 1, "moderate": 2, "high": 3, "critical": 4}
HIGH = 3
DETECT_SLACK = 5      # minutes after end a detection still counts
TAIL = 30             # minutes after end excluded from false alarms
BENIGN_WINDOW = 360   # minutes after a benign change reported apart
EPISODE_GAP = 5       # flags at most this many minutes apart are one episode


class Clock:
    """Timestamps (text or epoch milliseconds) to minutes since truth start."""

    def __init__(self, start):
        self.t0 = dt.datetime.strptime(start, FMT).replace(tzinfo=dt.timezone.utc)
        self.ms0 = int(self.t0.timestamp() * 1000)
        self.cache = {}

    def __call__(self, s):
        m = self.cache.get(s)
        if m is None:
            s2 = s.strip()
            if s2.isdigit():
                m = (int(s2) - self.ms0) / 60000.0
            else:
                s2 = s2.replace("T", " ").rstrip("Z")
                t = dt.datetime.strptime(s2[:19], FMT).replace(tzinfo=dt.timezone.utc)
                frac = float("0" + s2[19:]) if len(s2) > 19 else 0.0
                m = ((t - self.t0).total_seconds() + frac) / 60.0
            if m == int(m):
                m = int(m)
            self.cache[s] = m
        return m


def load_scores(path, clock):
    series = {}
    with open(path, newline="") as f:
        rd = csv.reader(f)
        head = next(rd)
        col = dict((h, k) for k, h in enumerate(head))
        for need in ("timestamp", "region", "service", "metric", "anomaly_score"):
            if need not in col:
                sys.exit("score_fleet: %s: no column %r" % (path, need))
        it, ir, isv, im, isc = (col["timestamp"], col["region"], col["service"],
                                col["metric"], col["anomaly_score"])
        iw, islo = col.get("warmup"), col.get("p_slo")
        for row in rd:
            if len(row) <= isc:
                continue
            key = (row[ir], row[isv], row[im])
            s = series.get(key)
            if s is None:
                s = series[key] = {"t": [], "score": [], "warm": [], "slo": []}
            s["t"].append(clock(row[it]))
            v = row[isc]
            s["score"].append(float(v) if v else 0.0)
            s["warm"].append(iw is not None and row[iw] == "1")
            v = row[islo] if islo is not None else ""
            s["slo"].append(float(v) if v else float("nan"))
    for s in series.values():        # replay keeps file order; be safe
        if any(s["t"][k] > s["t"][k + 1] for k in range(len(s["t"]) - 1)):
            order = sorted(range(len(s["t"])), key=s["t"].__getitem__)
            for k in ("t", "score", "warm", "slo"):
                s[k] = [s[k][j] for j in order]
    return series


def load_threats(path, clock):
    """region -> sorted [(minute, level)] of the entity's level (max over rules)."""
    per = {}
    with open(path, newline="") as f:
        rd = csv.reader(f)
        head = next(rd)
        col = dict((h, k) for k, h in enumerate(head))
        for row in rd:
            if len(row) <= col["level"]:
                continue
            region = row[col["entity"]].split("/")[0]
            per.setdefault(region, []).append(
                (clock(row[col["timestamp"]]), row[col["rule"]],
                 LEVELS.get(row[col["level"]], 0)))
    out = {}
    for region, rows in per.items():
        rows.sort(key=lambda r: r[0])
        state, seq = {}, []
        for t, rule, lev in rows:
            state[rule] = lev
            lv = max(state.values())
            if seq and seq[-1][0] == t:
                seq[-1] = (t, lv)
            elif not seq or seq[-1][1] != lv:
                seq.append((t, lv))
        out[region] = seq
    return out


def first_high(seq, a, b):
    """First minute in [a, b) at which the level is high+ (persisting state)."""
    if not seq:
        return None
    k = bisect.bisect_right([t for t, _ in seq], a) - 1
    if k >= 0 and seq[k][1] >= HIGH:
        return a
    for t, lv in seq[k + 1:]:
        if t >= b:
            break
        if lv >= HIGH:
            return t
    return None


def high_share(seq, a, b):
    """Share of the minutes in [a, b) at which the level is high+: how much
    of an attack the threat score kept answering "high" for."""
    a, b = int(a), int(b)
    if not seq or b <= a:
        return 0.0
    ts = [t for t, _ in seq]
    hi = 0
    for m in range(a, b):
        k = bisect.bisect_right(ts, m) - 1
        hi += k >= 0 and seq[k][1] >= HIGH
    return hi / (b - a)


def episode_spans(times):
    """[(first minute, rows)] of the episodes in sorted flag times."""
    out = []
    for t in times:
        if out and t - out[-1][2] <= EPISODE_GAP:
            out[-1][1] += 1
            out[-1][2] = t
        else:
            out.append([t, 1, t])
    return [(a, n) for a, n, _ in out]


def episodes(times):
    return len(episode_spans(times))


def in_any(t, ivs):
    for a, b in ivs:
        if a <= t < b:
            return True
    return False


def median(xs):
    xs = sorted(xs)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def fmt(x, spec="%.2f", none="-"):
    return none if x is None else spec % x


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--truth", required=True)
    ap.add_argument("--scores", required=True)
    ap.add_argument("--threats")
    ap.add_argument("--threshold", type=float, default=0.99)
    ap.add_argument("--warmup-hours", type=float, default=24.0)
    ap.add_argument("--json", dest="json_out")
    a = ap.parse_args()
    thr = a.threshold

    with open(a.truth) as f:
        truth = json.load(f)
    clock = Clock(truth["start"])
    t_end = clock(truth["end"])
    warm = a.warmup_hours * 60.0
    incs = truth["incidents"]
    for i in incs:
        i["_a"], i["_b"] = clock(i["start"]), clock(i["end"])
        i["_series"] = [(i["region"], i["service"], m) for m in i["metrics"]]

    series = load_scores(a.scores, clock)
    truth_keys = [(s["region"], s["service"], s["metric"]) for s in truth["series"]]
    missing = [k for k in truth_keys if k not in series]
    unknown = [k for k in series if k not in set(truth_keys)]

    def flagged(s, k):
        return s["score"][k] >= thr and not s["warm"][k]

    def rows(key, a_, b_):
        s = series.get(key)
        if s is None:
            return None, 0, 0
        return s, bisect.bisect_left(s["t"], a_), bisect.bisect_left(s["t"], b_)

    # ---- incidents (series and pooled) and series-level view of the rest
    report_inc = []
    for i in incs:
        if i["kind"] not in ("incident", "decoy"):
            continue
        first, first_slo, n_in, n_flag, n_slo = None, None, 0, 0, 0
        for key in i["_series"]:
            s, lo, hi = rows(key, i["_a"], i["_b"] + DETECT_SLACK)
            if s is None:
                continue
            for k in range(lo, hi):
                t = s["t"][k]
                if flagged(s, k) and (first is None or t < first):
                    first = t
                slo_hit = s["slo"][k] >= thr and not s["warm"][k]
                if slo_hit and (first_slo is None or t < first_slo):
                    first_slo = t
                if t < i["_b"]:
                    n_in += 1
                    n_flag += flagged(s, k)
                    n_slo += slo_hit
        r = {"id": i["id"], "family": i["family"], "kind": i["kind"], "expect": i["expect"],
             "region": i["region"], "metrics": i["metrics"], "start": i["start"],
             "minutes": i["_b"] - i["_a"], "magnitude": i["magnitude"],
             "found": first is not None,
             "delay_min": None if first is None else first - i["_a"],
             "events": n_in, "coverage": n_flag / n_in if n_in else None}
        if i["expect"] == "pooled":
            r["found_slo"] = first_slo is not None
            r["delay_slo_min"] = None if first_slo is None else first_slo - i["_a"]
            r["coverage_slo"] = n_slo / n_in if n_in else None
        report_inc.append(r)
    scored = [r for r in report_inc if r["expect"] in ("series", "pooled")]

    # ---- threats
    threat = None
    if a.threats:
        levels = load_threats(a.threats, clock)
        tp, fp = [], []
        sec_windows = {}
        for i in incs:
            if i["family"] == "security_multi_signal" or i["expect"] == "threat":
                sec_windows.setdefault(i["region"], []).append((i["_a"], i["_b"] + TAIL))
        for i in incs:
            if i["expect"] == "threat":
                t = first_high(levels.get(i["region"]), i["_a"], i["_b"] + DETECT_SLACK)
                tp.append({"id": i["id"], "region": i["region"], "start": i["start"],
                           "minutes": i["_b"] - i["_a"], "found": t is not None,
                           "delay_min": None if t is None else t - i["_a"],
                           "high_share": high_share(levels.get(i["region"]),
                                                    i["_a"], i["_b"])})
            elif i["kind"] == "decoy":
                t = first_high(levels.get(i["region"]), i["_a"], i["_b"] + TAIL)
                fp.append({"id": i["id"], "region": i["region"], "start": i["start"],
                           "false_positive": t is not None,
                           "delay_min": None if t is None else t - i["_a"]})
        # high+ episodes (entries into high or critical) outside security windows
        false_eps, entity_regions = [], sorted(set(k[0] for k in truth_keys))
        for region in entity_regions:
            prev = 0
            for t, lv in levels.get(region, []):
                if lv >= HIGH and prev < HIGH and t >= warm \
                        and not in_any(t, sec_windows.get(region, [])):
                    false_eps.append({"region": region, "minute": t})
                prev = lv
        # share of the time after the warm-up, outside security windows, at high+
        # (the chance that a random window is "found")
        hi_min = out_min = 0.0
        for region in entity_regions:
            seq = levels.get(region, [])
            cuts = sorted(set([warm, t_end] + [t for t, _ in seq if warm < t < t_end]
                              + [x for w_ in sec_windows.get(region, []) for x in w_
                                 if warm < x < t_end]))
            for x, y in zip(cuts, cuts[1:]):
                if in_any(x, sec_windows.get(region, [])):
                    continue
                out_min += y - x
                k = bisect.bisect_right([t for t, _ in seq], x) - 1
                if k >= 0 and seq[k][1] >= HIGH:
                    hi_min += y - x
        ent_days = len(entity_regions) * max(0.0, t_end - warm) / 1440.0
        threat = {"incidents": tp,
                  "found": sum(r["found"] for r in tp), "total": len(tp),
                  "decoy_false_positives": sum(r["false_positive"] for r in fp),
                  "decoys": fp, "decoy_total": len(fp),
                  "false_high_episodes": len(false_eps),
                  "false_high_per_entity_day": len(false_eps) / ent_days if ent_days else None,
                  "false_high_time_share": hi_min / out_min if out_min else None,
                  "false_high_list": false_eps}

    # ---- truth intervals per series
    inside, inside_tail, excl = {}, {}, {}
    benign, gaps = {}, {}
    for i in incs:
        for key in i["_series"]:
            if i["kind"] in ("incident", "decoy"):
                inside.setdefault(key, []).append((i["_a"], i["_b"]))
                inside_tail.setdefault(key, []).append((i["_a"], i["_b"] + TAIL))
                excl.setdefault(key, []).append((i["_a"], i["_b"] + TAIL))
            elif i["kind"] == "benign_change":
                benign.setdefault(key, []).append((i["_a"], i["_a"] + BENIGN_WINDOW))
                excl.setdefault(key, []).append((i["_a"], i["_a"] + BENIGN_WINDOW))
            elif i["kind"] == "gap":
                gaps.setdefault(key, []).append((i["_a"], i["_b"] + TAIL))
                excl.setdefault(key, []).append((i["_a"], i["_b"] + TAIL))

    # ---- false alarms and calibration
    fa_by_metric, fa_series = {}, []
    benign_rows = benign_eps = gap_rows = gap_eps = 0
    bins = [{"lo": lo, "hi": (BIN_EDGES + [1.0])[k + 1], "n": 0, "sum": 0.0,
             "inside": 0, "inside_tail": 0} for k, lo in enumerate(BIN_EDGES)]
    n_flag_all = n_flag_in = n_flag_strict = 0
    low_of = dict(((s["region"], s["service"], s["metric"]), s.get("low_traffic", False))
                  for s in truth["series"])
    for key in truth_keys:
        s = series.get(key)
        if s is None:
            continue
        fa_t, ben_t, gap_t = [], [], []
        ins, inst, ex = inside.get(key, []), inside_tail.get(key, []), excl.get(key, [])
        bn, gp = benign.get(key, []), gaps.get(key, [])
        for k, t in enumerate(s["t"]):
            if t < warm or s["warm"][k]:
                continue
            sc = s["score"][k]
            b = bins[sum(1 for e in BIN_EDGES[1:] if sc >= e)]
            b["n"] += 1
            b["sum"] += sc
            i_in, i_tail = in_any(t, ins), in_any(t, inst)
            b["inside"] += i_in
            b["inside_tail"] += i_tail
            if sc >= thr:
                n_flag_all += 1
                n_flag_in += i_tail
                n_flag_strict += i_in
                if not in_any(t, ex):
                    fa_t.append(t)
                if in_any(t, bn):
                    ben_t.append(t)
                if in_any(t, gp):
                    gap_t.append(t)
        ne = episodes(fa_t)
        fa_series.append({"region": key[0], "service": key[1], "metric": key[2],
                          "low_traffic": low_of.get(key, False),
                          "flagged_rows": len(fa_t), "episodes": ne,
                          "episode_list": [{"start_min": a, "rows": n}
                                           for a, n in episode_spans(fa_t)]})
        m = fa_by_metric.setdefault(key[2], {"episodes": 0, "rows": 0, "series": 0})
        m["episodes"] += ne
        m["rows"] += len(fa_t)
        m["series"] += 1
        benign_rows += len(ben_t)
        benign_eps += episodes(ben_t)
        gap_rows += len(gap_t)
        gap_eps += episodes(gap_t)
    days_after = max(0.0, t_end - warm) / 1440.0
    n_ser = sum(1 for k in truth_keys if k in series)
    fa_eps = sum(x["episodes"] for x in fa_series)
    fa_rate = fa_eps / (n_ser * days_after) if n_ser and days_after else None
    for m in fa_by_metric.values():
        m["per_series_day"] = m["episodes"] / (m["series"] * days_after) if days_after else None
    lt = [x for x in fa_series if x["low_traffic"]]
    ht = [x for x in fa_series if not x["low_traffic"]]
    for b in bins:
        b["mean_score"] = b["sum"] / b["n"] if b["n"] else None
        b["frac_inside"] = b["inside"] / b["n"] if b["n"] else None
        b["frac_inside_tail"] = b["inside_tail"] / b["n"] if b["n"] else None
        del b["sum"]
    precision = n_flag_in / n_flag_all if n_flag_all else None
    # strict: inside [start, end) only, without the 30 minutes after
    precision_strict = n_flag_strict / n_flag_all if n_flag_all else None

    # ---- aggregate
    def agg(rs):
        found = [r for r in rs if r["found"]]
        cov = [r["coverage"] for r in rs if r["coverage"] is not None]
        return {"found": len(found), "total": len(rs),
                "median_delay_min": median([r["delay_min"] for r in found]),
                "mean_coverage": sum(cov) / len(cov) if cov else None}
    ser = agg([r for r in scored if r["expect"] == "series"])
    poo = agg([r for r in scored if r["expect"] == "pooled"])
    allr = agg(scored)
    fams = {}
    for r in scored:
        fams.setdefault(r["family"], []).append(r)
    by_family = dict((f, agg(rs)) for f, rs in sorted(fams.items()))

    result = {
        "threshold": thr, "warmup_hours": a.warmup_hours, "seed": truth.get("seed"),
        "series_missing": ["/".join(k) for k in missing],
        "series_unknown": ["/".join(k) for k in unknown],
        "incidents": report_inc, "series_incidents": ser, "pooled_incidents": poo,
        "all_incidents": allr, "by_family": by_family, "threats": threat,
        "false_alarms": {"episodes": fa_eps, "series": n_ser, "days_after_warmup": days_after,
                         "per_series_day": fa_rate, "by_metric": fa_by_metric,
                         "low_traffic_episodes": sum(x["episodes"] for x in lt),
                         "high_traffic_episodes": sum(x["episodes"] for x in ht),
                         "series_detail": fa_series},
        "benign_change_alarms": {"rows": benign_rows, "episodes": benign_eps,
                                 "changes": sum(1 for i in incs if i["kind"] == "benign_change")},
        "gap_alarms": {"rows": gap_rows, "episodes": gap_eps,
                       "gaps": sum(1 for i in incs if i["kind"] == "gap")},
        "calibration": bins, "flagged_events": n_flag_all, "precision": precision,
        "precision_strict": precision_strict,
    }

    # ---- text
    out = sys.stdout
    w = out.write
    w("fleet score: seed %s, threshold %g, warm-up %g h, %d series scored\n"
      % (truth.get("seed"), thr, a.warmup_hours, n_ser))
    if missing:
        w("WARNING: %d truth series absent from the scores: %s\n"
          % (len(missing), ", ".join("/".join(k) for k in missing)))
    w("\nincidents (found: a flag in [start, end+%d min); coverage: flagged share of [start, end))\n"
      % DETECT_SLACK)
    w("%-4s %-24s %-7s %-12s %-13s %11s %5s %7s  %-5s %6s %6s\n" % (
        "id", "family", "expect", "region", "metric", "start", "min", "mag",
        "found", "delay", "cover"))
    for r in report_inc:
        extra = ""
        if "found_slo" in r:
            extra = "  p_slo: %s delay %s cover %s" % (
                "yes" if r["found_slo"] else "no", fmt(r["delay_slo_min"], "%g"),
                fmt(r["coverage_slo"]))
        w("%-4s %-24s %-7s %-12s %-13s %11s %5g %7g  %-5s %6s %6s%s\n" % (
            r["id"], r["family"], r["expect"], r["region"],
            r["metrics"][0] if len(r["metrics"]) == 1 else "(%d)" % len(r["metrics"]),
            r["start"][5:16], r["minutes"], r["magnitude"],
            "yes" if r["found"] else "NO", fmt(r["delay_min"], "%g"),
            fmt(r["coverage"]), extra))
    w("(decoy and threat rows: series-level view only; they are judged under threats)\n")
    w("\nby family:\n")
    for f, g in by_family.items():
        w("  %-24s %d/%d found, median delay %s min, mean coverage %s\n" % (
            f, g["found"], g["total"], fmt(g["median_delay_min"], "%g"),
            fmt(g["mean_coverage"])))
    if threat is not None:
        w("\nthreats (level high+ in [start, end+%d min); decoys: in [start, end+%d min))\n"
          % (DETECT_SLACK, TAIL))
        for r in threat["incidents"]:
            w("  %-4s security %-12s %s %4d min: %s%s, high+ for %.0f%% of it\n" % (
                r["id"], r["region"], r["start"][5:16], r["minutes"],
                "found" if r["found"] else "MISSED",
                "" if r["delay_min"] is None else " after %g min" % r["delay_min"],
                100.0 * r["high_share"]))
        for r in threat["decoys"]:
            w("  %-4s decoy    %-12s %s: %s\n" % (
                r["id"], r["region"], r["start"][5:16],
                "FALSE POSITIVE" if r["false_positive"] else "quiet"))
        w("  high+ episodes outside security incidents: %d (%s per entity-day); "
          "share of that time at high+: %s\n" % (
              threat["false_high_episodes"], fmt(threat["false_high_per_entity_day"], "%.3f"),
              fmt(threat["false_high_time_share"], "%.3f")))
    w("\nfalse alarms after warm-up, outside truth intervals: %d episodes over %d series x %.2f days"
      " = %s per series-day\n" % (fa_eps, n_ser, days_after, fmt(fa_rate, "%.3f")))
    for m, d in sorted(fa_by_metric.items()):
        w("  %-14s %4d episodes (%5d rows) %s per series-day\n" % (
            m, d["episodes"], d["rows"], fmt(d["per_series_day"], "%.3f")))
    w("  low-traffic series %d episodes, high-traffic %d\n" % (
        result["false_alarms"]["low_traffic_episodes"],
        result["false_alarms"]["high_traffic_episodes"]))
    w("  during benign changes (6 h from the change): %d episodes (%d rows) over %d changes\n" % (
        benign_eps, benign_rows, result["benign_change_alarms"]["changes"]))
    w("  around gaps (gap to end+%d min): %d episodes (%d rows) over %d gaps\n" % (
        TAIL, gap_eps, gap_rows, result["gap_alarms"]["gaps"]))
    w("\ncalibration (after warm-up; inside = an incident/decoy's series in [start,end) / "
      "[start,end+%d))\n" % TAIL)
    w("  %-12s %8s %10s %9s %12s\n" % ("score", "events", "mean", "inside", "inside+30"))
    for b in bins:
        w("  [%.2f,%s %8d %10s %9s %12s\n" % (
            b["lo"], ("%.2f)" % b["hi"]) if b["hi"] < 1 else "1.00]", b["n"],
            fmt(b["mean_score"], "%.4f"), fmt(b["frac_inside"], "%.4f"),
            fmt(b["frac_inside_tail"], "%.4f")))
    w("  precision at %g: %s (%d flagged events; inside [start, end) only: %s)\n" % (
        thr, fmt(precision, "%.3f"), n_flag_all, fmt(precision_strict, "%.3f")))
    summ = ("SUMMARY thr=%g series %d/%d (median delay %s min, coverage %s) pooled %d/%d "
            "(delay %s, coverage %s)" % (
                thr, ser["found"], ser["total"], fmt(ser["median_delay_min"], "%g"),
                fmt(ser["mean_coverage"]), poo["found"], poo["total"],
                fmt(poo["median_delay_min"], "%g"), fmt(poo["mean_coverage"])))
    if threat is not None:
        summ += " threats %d/%d decoy_fp %d/%d high+_share %s" % (
            threat["found"], threat["total"], threat["decoy_false_positives"],
            threat["decoy_total"], fmt(threat["false_high_time_share"], "%.2f"))
    summ += " fa/series-day %s benign_eps %d gap_eps %d precision %s" % (
        fmt(fa_rate, "%.3f"), benign_eps, gap_eps, fmt(precision, "%.3f"))
    w("\n" + summ + "\n")
    result["summary"] = summ
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
