#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Independent second synthetic fleet generator (held-out check only).

Writes DIR/events.csv (timestamp,region,service,metric,value,count; one row
per series per minute, none inside data gaps) and DIR/truth.json (regions,
series, injections; the format score_fleet.py reads) for 8 regions, two of
them low-traffic, each with api/{latency_ms,errors,cpu} and
auth/{auth_failures,waf_hits,egress_bytes}.

It was written apart from gen_fleet.py, from a description of the fleet
only, so that its shapes and noise differ in character. It exists to check
that defaults developed on gen_fleet.py generalise: never tune against it.

Model: load is a piecewise-linear working-day profile in each region's local
time (night trough, steep morning ramp, plateau with a lunchtime dip, evening
hump), flatter and lower at weekends, times a slow AR(1) drift. Requests and
errors are gamma-Poisson; latency is lognormal around a level convex in load,
with a sigma that shrinks with traffic, an upward tail and AR(1) wander;
cpu is affine in load plus AR(1) noise that grows with load, with hourly
cron bumps on some regions; auth counts are overdispersed gamma-Poisson;
egress follows realised requests, with a nightly batch on some regions. Some
series carry a few benign one-minute outliers a day. Injections (see
schedule()) modify the latent level before noise, after a 24 h warm-up.

usage: gen_fleet_alt.py --seed N [--days D] --out DIR [--check]
"""
import argparse
import csv
import datetime as dt
import json
import math
import os
import random
import sys

FMT = "%Y-%m-%d %H:%M:%S"
HEADER = ["timestamp", "region", "service", "metric", "value", "count"]
WARM = 24 * 60          # minutes without injections
SEP = 60                # minutes between injections on one region/service
BASE_DAY = dt.datetime(2025, 2, 3)      # a Monday; the seed shifts the weekday
# name, UTC offset (hours), low traffic
REGIONS = [("nordic-1", 1, False), ("iberia-2", 0, False), ("us-lakes", -6, False),
           ("us-pacific", -8, False), ("in-deccan", 5.5, False), ("jp-kansai", 9, False),
           ("af-sahel", 0, True), ("pac-fiji", 12, True)]
SERIES = [("api", "latency_ms"), ("api", "errors"), ("api", "cpu"),
          ("auth", "auth_failures"), ("auth", "waf_hits"), ("auth", "egress_bytes")]
ID_KEYS = ("id", "family", "kind", "expect", "region", "service", "metrics")
# local hour -> relative load on a working day
KNOTS = [(0.0, .42), (2.5, .28), (5.5, .27), (7.0, .45), (8.5, .85), (9.5, 1.0),
         (12.0, .98), (12.75, .86), (13.75, .97), (16.5, .95), (18.0, .72),
         (20.0, .80), (22.0, .62), (24.0, .42)]
NOISE = {
    "latency_ms": "lognormal x (sigma ~ 1/sqrt(requests), 2% upward tail), AR(1) wander, integer",
    "errors": "gamma-Poisson (k=15) on requests x rate; requests gamma-Poisson (k=300)",
    "cpu": "affine in load + AR(1) (phi .85) + white, scaled by load; 0.1 steps; cron",
    "auth_failures": "gamma-Poisson k=6, weak diurnal",
    "waf_hits": "gamma-Poisson k=3, nearly flat, scanner bursts",
    "egress_bytes": "requests x bytes/request x lognormal; nightly batch on some regions"}


def poisson(rng, lam):
    if lam <= 0:
        return 0
    if lam > 60:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    lim, k, p = math.exp(-lam), 0, rng.random()
    while p > lim:
        k += 1
        p *= rng.random()
    return k


def gpois(rng, lam, k):
    """Gamma-Poisson (negative binomial) with shape k: var = lam + lam^2/k."""
    return poisson(rng, lam * rng.gammavariate(k, 1.0 / k))


def interp(knots, h):
    for (h0, v0), (h1, v1) in zip(knots, knots[1:]):
        if h0 <= h <= h1:
            return v0 + (v1 - v0) * (h - h0) / (h1 - h0)
    return knots[-1][1]


def ts(start, t):
    return (start + dt.timedelta(minutes=t)).strftime(FMT)


def region_params(seed):
    rng = random.Random("%d/regions" % seed)
    out = {}
    for name, tz, low in REGIONS:
        r = lambda lo, hi, nd=2: round(rng.uniform(lo, hi), nd)
        lh = lambda lo_rng, hi_rng, nd=2: r(*(lo_rng if low else hi_rng), nd)
        knots = [(h if h in (0.0, 24.0) else h + rng.uniform(-1 / 3, 1 / 3),
                  v * rng.uniform(.93, 1.07)) for h, v in KNOTS]
        knots[-1] = (24.0, knots[0][1])
        p = {"name": name, "utc_offset_h": tz, "low_traffic": low, "_knots": knots,
             "peak_requests_per_min": lh((250, 750), (14000, 38000), 0),
             "weekend_factor": r(.6, .8), "error_rate": r(.0005, .003, 5),
             "latency_base_ms": lh((80, 200), (35, 150), 1), "latency_load_gain": r(.25, .6),
             "latency_sigma": r(.05, .08, 3), "cpu_idle": lh((4, 9), (8, 20)),
             "cpu_span": lh((12, 25), (35, 55)), "cpu_innov": lh((1.0, 1.6), (.8, 1.4)),
             "cpu_hourly_cron": rng.random() < .5, "cron_minute": rng.randrange(60),
             "cron_pp": r(1.5, 3), "auth_failures_base": lh((.8, 3), (5, 30)),
             "waf_hits_base": lh((.8, 3), (3, 35)),
             "bytes_per_request": lh((1e4, 2.5e4), (1500, 3200), 0),
             "nightly_egress_batch": rng.random() < .5, "batch_local_hour": r(1.5, 3.5),
             "outliers_per_day": {m: r(lo, hi) for m, pr, lo, hi in
                                  (("latency_ms", .6, 2, 5), ("cpu", .4, 1, 3),
                                   ("waf_hits", .5, 2, 4)) if rng.random() < pr}}
        het = 0.6 + 0.6 * 0.7       # cpu noise scale at a typical load
        p["cpu_noise_sd"] = round(het * math.sqrt(p["cpu_innov"] ** 2 / (1 - .85 ** 2) + .25), 3)
        out[name] = p
    return out


def load_curve(p, start, n, rng):
    """Relative load per minute (local profile, weekend, drift), local hours."""
    u, hours, drift = [], [], 0.0
    for t in range(n):
        loc = start + dt.timedelta(minutes=t, hours=p["utc_offset_h"])
        h = loc.hour + loc.minute / 60.0
        v = interp(p["_knots"], h)
        if loc.weekday() >= 5:
            v = p["weekend_factor"] * (0.55 * v + 0.45 * 0.6)
        elif loc.weekday() == 4 and h >= 15:
            v *= 0.9
        drift = 0.999 * drift + rng.gauss(0, 0.0022)
        u.append(v * math.exp(drift))
        hours.append(h)
    return u, hours


# ---------------------------------------------------------------- injections

def schedule(seed, n, params):
    rng = random.Random("%d/schedule" % seed)
    names = [r for r, _, _ in REGIONS]
    high = [r for r in names if not params[r]["low_traffic"]]
    low = [r for r in names if params[r]["low_traffic"]]
    busy, incs = {}, []

    def place(family, kind, expect, service, metrics, pool, dur, mag, apply,
              ramp=0, permanent=False, **extra):
        for _ in range(2000):
            r = rng.choice(pool)
            a = rng.randrange(WARM + 360, n - 360) if permanent \
                else rng.randrange(WARM + 30, n - dur - 30)
            b = n if permanent else a + dur
            if all(a >= y + SEP or b + SEP <= x for x, y in busy.get((r, service), [])):
                busy.setdefault((r, service), []).append((a, b))
                incs.append(dict(family=family, kind=kind, expect=expect, region=r,
                                 service=service, metrics=metrics, magnitude=mag,
                                 _a=a, _b=b, _apply=apply, _ramp=ramp, ramp_min=ramp, **extra))
                return r
        return None

    u = lambda lo, hi, nd=3: round(rng.uniform(lo, hi), nd)
    mults = {m: u(1.5, 2.0) for m in ("auth_failures", "waf_hits", "egress_bytes")}
    sec = place("security_multi_signal", "incident", "threat", "auth", sorted(mults), names,
                rng.randint(60, 120), min(mults.values()), {m: ("mul", v) for m, v in mults.items()},
                ramp=rng.randint(3, 10), unit="x", multipliers=mults)
    x = u(3, 5)
    place("auth_decoy", "decoy", "none", "auth", ["auth_failures"], [r for r in names if r != sec],
          rng.randint(20, 40), x, {"auth_failures": ("mul", x)}, unit="x")
    x = u(2.5, 4)
    place("error_rate_high_traffic", "incident", "pooled", "api", ["errors"], high,
          rng.randint(60, 150), x, {"errors": ("mul", x)}, unit="x")
    x = u(.03, .10, 4)
    place("error_burst_low_traffic", "incident", "pooled", "api", ["errors"], low,
          rng.randint(15, 60), x, {"errors": ("rate", x)}, unit="error_rate")
    x = u(4, 8, 2)
    place("cpu_saturation", "incident", "series", "api", ["cpu"], names, rng.randint(45, 120), x,
          {"cpu": ("add_sd", x)}, ramp=rng.randint(2, 6) if rng.random() < .5 else 0,
          unit="noise_sd")
    x = u(.5, .7)
    place("latency_dip", "incident", "series", "api", ["latency_ms"], names,
          rng.randint(30, 90), x, {"latency_ms": ("mul", x)}, unit="x")
    x = u(1.3, 2.0)
    place("latency_shift", "incident", "series", "api", ["latency_ms"], names,
          rng.randint(30, 180), x, {"latency_ms": ("mul", x)},
          ramp=rng.randint(5, 10) if rng.random() < .5 else 0, unit="x")
    benign = rng.random() < .5
    for _ in range(1 if benign or rng.random() < .6 else 2):
        x = u(3, 8, 2)
        place("latency_spike", "incident", "series", "api", ["latency_ms"], names, 1, x,
              {"latency_ms": ("mul", x)}, unit="x")
    dur = rng.randint(15, 60)
    place("data_gap", "gap", "none", "api", ["latency_ms", "errors", "cpu"], names,
          dur, dur, {}, unit="minutes")
    if benign:
        m = rng.choice(["latency_ms", "cpu"])
        x = round(rng.choice([-1, 1]) * rng.uniform(.10, .25) + 1, 3)
        place("deploy_level_change", "benign_change", "none", "api", [m], names, 0, x,
              {m: ("mul", x)}, permanent=True, unit="x")
    incs.sort(key=lambda i: (i["_a"], i["region"]))
    for k, i in enumerate(incs):
        i["id"] = "A%02d" % (k + 1)
    return incs


def effect_arrays(incs, region, metric, n):
    """Per-minute multiplier, additive (noise sds) and replacement rate."""
    mul, add, rate = [1.0] * n, [0.0] * n, [None] * n
    for i in incs:
        if i["region"] != region or metric not in i["_apply"]:
            continue
        op, v = i["_apply"][metric]
        for t in range(i["_a"], i["_b"]):
            w = min(1.0, (t - i["_a"] + 1) / (i["_ramp"] + 1.0))
            if op == "mul":
                mul[t] *= 1 + (v - 1) * w
            elif op == "add_sd":
                add[t] += v * w
            else:
                rate[t] = v
    return mul, add, rate


def outlier_hits(p, metric, n, incs, region, service, rng):
    """A few benign one-minute outliers a day, none near an injection."""
    quiet = set(t for i in incs if i["region"] == region and i["service"] == service
                and i["kind"] != "benign_change" for t in range(i["_a"] - 15, i["_b"] + 15))
    rate = p["outliers_per_day"].get(metric, 0.0) / 1440.0
    draws = [rng.random() for _ in range(n)]
    return set(t for t in range(n) if draws[t] < rate and t not in quiet)


# ---------------------------------------------------------------- series
# each: (params, load, requests, local hours, effects, outlier minutes, rng) -> values

def gen_latency(p, u, req, hours, eff, hits, rng):
    mul, vals, ar = eff[0], [], 0.0
    for t, x in enumerate(u):
        ar = 0.8 * ar + rng.gauss(0, 0.025)
        lvl = p["latency_base_ms"] * (1 + p["latency_load_gain"] * x ** 2.5) * math.exp(ar)
        sig = p["latency_sigma"] * min(2.5, max(0.7, math.sqrt(5000.0 / req[t])))
        z = rng.gauss(0, sig)
        if rng.random() < 0.02:         # slow-request tail: upward only
            z = 2.5 * abs(z)
        v = lvl * mul[t] * math.exp(z) * (rng.uniform(1.6, 2.4) if t in hits else 1)
        vals.append(max(1, int(round(v))))
    return vals


def gen_cpu(p, u, req, hours, eff, hits, rng):
    mul, add, _ = eff
    sd, vals, ar = p["cpu_noise_sd"], [], 0.0
    for t, x in enumerate(u):
        ar = 0.85 * ar + rng.gauss(0, p["cpu_innov"])
        het = 0.6 + 0.6 * x
        lvl = (p["cpu_idle"] + p["cpu_span"] * x ** 0.9) * mul[t]
        if p["cpu_hourly_cron"] and (t - p["cron_minute"]) % 60 < 2:
            lvl += p["cron_pp"]
        v = lvl + het * ar + rng.gauss(0, 0.5 * het) + add[t] * sd
        if add[t] > 0 and v > 98.5:     # saturated: pinned under the ceiling
            v = 98.5 + rng.gauss(0, 0.4)
        v += rng.uniform(3, 5) * sd if t in hits else 0
        vals.append(round(min(100.0, max(0.3, v)), 1))
    return vals


def gen_errors(p, u, req, hours, eff, hits, rng):
    mul, _, rate = eff
    vals = []
    for t, x in enumerate(u):
        pr = p["error_rate"] * (0.85 + 0.3 * x) * mul[t] if rate[t] is None else rate[t]
        e = poisson(rng, req[t] * pr * rng.gammavariate(15, 1 / 15.0))
        vals.append((min(e, req[t]), req[t]))
    return vals


def gen_counts(metric, k, lo, slope):
    """Overdispersed counts; an outlier minute adds a scanner-like burst."""
    def gen(p, u, req, hours, eff, hits, rng):
        base, vals = p[metric + "_base"], []
        for t, x in enumerate(u):
            lam = base * (lo + slope * x) * eff[0][t]
            burst = gpois(rng, lam * rng.uniform(2, 4), k) + 1 if t in hits else 0
            vals.append(gpois(rng, lam, k) + burst)
        return vals
    return gen


def gen_egress(p, u, req, hours, eff, hits, rng):
    vals, b0 = [], p["batch_local_hour"]
    for t, r in enumerate(req):
        batch = 1.4 if p["nightly_egress_batch"] and 0 <= hours[t] - b0 < .5 else 1
        sig = 0.09 + 0.5 / math.sqrt(r)
        vals.append(int(r * p["bytes_per_request"] * batch * eff[0][t]
                        * math.exp(rng.gauss(0, sig))))
    return vals


GEN = {"latency_ms": gen_latency, "cpu": gen_cpu, "errors": gen_errors,
       "auth_failures": gen_counts("auth_failures", 6, .5, .6),
       "waf_hits": gen_counts("waf_hits", 3, .85, .25), "egress_bytes": gen_egress}


def generate(seed, days, out):
    n = days * 1440
    start = BASE_DAY + dt.timedelta(days=(seed * 3) % 7)
    params = region_params(seed)
    incs = schedule(seed, n, params)
    data, series = {}, []
    for region, _, _ in REGIONS:
        p = params[region]
        rng = random.Random("%d/%s/load" % (seed, region))
        u, hours = load_curve(p, start, n, rng)
        req = [max(1, gpois(rng, p["peak_requests_per_min"] * x, 300)) for x in u]
        for svc, m in SERIES:
            rng = random.Random("%d/%s/%s/%s" % (seed, region, svc, m))
            hits = outlier_hits(p, m, n, incs, region, svc, rng)
            eff = effect_arrays(incs, region, m, n)
            data[(region, svc, m)] = GEN[m](p, u, req, hours, eff, hits, rng)
            info = {"region": region, "service": svc, "metric": m, "low_traffic": p["low_traffic"],
                    "noise": NOISE[m], "benign_outliers": [ts(start, t) for t in sorted(hits)]}
            if m == "cpu":
                info["noise_sd"] = p["cpu_noise_sd"]
            series.append(info)
    for i in incs:
        for t in range(i["_a"], i["_b"]) if i["kind"] == "gap" else ():
            for m in i["metrics"]:
                data[(i["region"], i["service"], m)][t] = None
        if i["family"] == "cpu_saturation":
            i["delta_pct"] = round(i["magnitude"] * params[i["region"]]["cpu_noise_sd"], 2)
    write_events(out, start, n, data)
    truth = {"seed": seed, "days": days, "start": ts(start, 0), "end": ts(start, n),
             "interval_s": 60, "warmup_hours": 24, "generator": "gen_fleet_alt.py",
             "regions": [{k: v for k, v in p.items() if k[0] != "_"} for p in params.values()],
             "series": series, "incidents": [truth_incident(i, start) for i in incs]}
    with open(os.path.join(out, "truth.json"), "w") as f:
        json.dump(truth, f, indent=1)
        f.write("\n")


def truth_incident(i, start):
    out = {k: i[k] for k in ID_KEYS}
    out.update(start=ts(start, i["_a"]), end=ts(start, i["_b"]), magnitude=i["magnitude"])
    out.update((k, v) for k, v in i.items() if k not in out and k[0] != "_")
    return out


def write_events(out, start, n, data):
    keys = [(r, s, m) for r, _, _ in REGIONS for s, m in SERIES]
    with open(os.path.join(out, "events.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HEADER)
        for t in range(n):
            stamp = ts(start, t)
            for key in keys:
                v = data[key][t]
                if v is not None:
                    w.writerow([stamp, *key, *(v if isinstance(v, tuple) else (v, ""))])


# ---------------------------------------------------------------- --check

def read_back(out):
    with open(os.path.join(out, "truth.json")) as f:
        truth = json.load(f)
    t0 = dt.datetime.strptime(truth["start"], FMT)
    n = truth["days"] * 1440
    index = {ts(t0, t): t for t in range(n + 1)}
    data, last, rows = {}, -1, 0
    with open(os.path.join(out, "events.csv"), newline="") as f:
        rd = csv.reader(f)
        if next(rd) != HEADER:
            raise SystemExit("check: bad header")
        for stamp, r, s, m, v, c in rd:
            t = index[stamp]
            if t < last or (m == "errors") != (c != ""):
                raise SystemExit("check: bad row order or count column at %s" % stamp)
            last, rows = t, rows + 1
            data.setdefault((r, s, m), {})[t] = (float(v), int(c) if c else None)
    for i in truth["incidents"]:
        i["_a"], i["_b"] = index[i["start"]], index[i["end"]]
    return truth, n, data, rows


def fit_quadratic(pts):
    """Least squares y = c0 + c1 x + c2 x^2 (normal equations)."""
    A = [[0.0] * 4 for _ in range(3)]
    for x, y in pts:
        f = (1.0, x, x * x)
        for i in range(3):
            A[i] = [A[i][j] + f[i] * (f[j] if j < 3 else y) for j in range(4)]
    for i in range(3):
        for k in range(i + 1, 3):
            r = A[k][i] / A[i][i]
            A[k] = [u - r * v for u, v in zip(A[k], A[i])]
    c = [0.0] * 3
    for i in (2, 1, 0):
        c[i] = (A[i][3] - sum(A[i][j] * c[j] for j in range(i + 1, 3))) / A[i][i]
    return lambda x: c[0] + c[1] * x + c[2] * x * x


def observed_vs_expected(d, q, a, b, busy):
    """Mean of [a, b) and what the region's load (requests, q) predicts for
    it, the relation fitted on the minutes clear of the series' injections
    (this absorbs the daily, weekly and drift structure)."""
    qmax = max(q.values())
    bad = set(t for x, y in busy for t in range(x - 30, y + 30))
    f = fit_quadratic([(q[t] / qmax, d[t][0]) for t in d if t not in bad and t in q])
    win = [t for t in range(a, b) if t in d and t in q]
    return (sum(d[t][0] for t in win) / len(win),
            sum(f(q[t] / qmax) for t in win) / len(win), win)


def check_one(i, truth, data, n, q):
    a, b, fam, mag = i["_a"], i["_b"], i["family"], i["magnitude"]
    key = lambda m: (i["region"], i["service"], m)
    if fam == "data_gap":
        inside = sum(1 for m in i["metrics"] for t in range(a, b) if t in data[key(m)])
        edges = all(a - 1 in data[key(m)] and (b >= n or b in data[key(m)]) for m in i["metrics"])
        return inside == 0 and edges, "%d rows inside, neighbours present: %s" % (inside, edges)
    if fam == "latency_spike":
        d = data[key("latency_ms")]
        around = sorted(d[t][0] for t in range(a - 30, a + 31) if t != a and t in d)
        r = d[a][0] / around[len(around) // 2]
        return r >= 0.6 * mag, "value / local median %.2f (x%g)" % (r, mag)
    if fam == "deploy_level_change":
        b = min(a + 360, n)
    ok, msgs, qr = True, [], q[i["region"]]
    for m in i["metrics"]:
        busy = [(j["_a"], j["_b"]) for j in truth["incidents"] if j["region"] == i["region"]
                and j["service"] == i["service"] and m in j["metrics"]]
        x, ref, win = observed_vs_expected(data[key(m)], qr, a, b, busy)
        if fam == "cpu_saturation":
            good = x - ref >= 0.5 * min(i["delta_pct"], 98 - ref)
        elif fam == "error_burst_low_traffic":
            reqs = sum(qr[t] for t in win) / len(win)
            x, ref = x / reqs, ref / reqs       # counts -> rates
            good = x >= 0.5 * mag and x >= 3 * ref
        else:
            want = i.get("multipliers", {}).get(m, mag)
            share = {"deploy_level_change": 0.4, "security_multi_signal": 0.35}.get(fam, 0.5)
            good = (x / ref - 1) / (want - 1) >= share
        ok &= bool(good)
        msgs.append("%s %.4g vs expected %.4g" % (m, x, ref))
    return ok, "; ".join(msgs) + ", magnitude %g" % mag


def check(out):
    truth, n, data, rows = read_back(out)
    print("check: %d rows, %d series, %d injections" % (rows, len(data), len(truth["incidents"])))
    q = {r["name"]: {t: c for t, (_, c) in data[(r["name"], "api", "errors")].items()}
         for r in truth["regions"]}     # the region's requests per minute: its load
    fails = 0
    for i in truth["incidents"]:
        ok, msg = check_one(i, truth, data, n, q)
        fails += not ok
        print("%-4s %-4s %-24s %-10s %-6s %s %4d min: %s" % (
            "ok" if ok else "FAIL", i["id"], i["family"], i["region"], i["expect"],
            i["start"][5:16], i["_b"] - i["_a"], msg))
    return 1 if fails else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--days", type=int, default=4)
    ap.add_argument("--out", required=True)
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    if a.days < 2:
        ap.error("--days must be at least 2 (24 h warm-up plus room for injections)")
    os.makedirs(a.out, exist_ok=True)
    generate(a.seed, a.days, a.out)
    return check(a.out) if a.check else 0


if __name__ == "__main__":
    sys.exit(main())
