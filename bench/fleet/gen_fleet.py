#!/usr/bin/env python3
"""Synthetic multi-region SRE telemetry with ground truth (bench/fleet).

usage: python3 gen_fleet.py --seed N [--days D] --out DIR [--check]

Writes DIR/events.csv (the `bayeswatch replay` input format: header
timestamp,region,service,metric,value,count; one-minute data, UTC, sorted by
timestamp) and DIR/truth.json (the injected incidents, decoys, benign level
changes and data gaps, and every series with its noise family).

Fleet: 8 regions, 2 of them low-traffic (1-2% of the others' requests).
  api:  latency_ms (lognormal), errors (binomial count out of `count`
        requests), cpu (percent)
  auth: auth_failures, waf_hits (Poisson counts), egress_bytes (lognormal)
Daily cycle (random phase and amplitude per region) and a mild weekly cycle.
Noise families vary by series: gaussian, Student-t, AR(1); counts plain or
overdispersed. Nothing is injected in the first 24 hours (warm-up).

Deterministic given --seed (Python's random.Random, standard library only).
--check re-reads the written files and verifies that every truth entry is
visible in the data (means inside vs outside, rows absent in gaps).
"""
import argparse
import datetime as dt
import json
import math
import os
import random
import sys

REGIONS = ["us-east", "us-west", "eu-west", "eu-central",
           "ap-south", "ap-northeast", "sa-east", "af-south"]
METRICS = [("api", "latency_ms"), ("api", "errors"), ("api", "cpu"),
           ("auth", "auth_failures"), ("auth", "waf_hits"),
           ("auth", "egress_bytes")]
SERVICE = dict((m, s) for s, m in METRICS)
START = dt.datetime(2024, 3, 4, 0, 0, 0)   # a Monday, UTC
DAY = 1440
WARMUP = DAY                               # minutes without injections
BUFFER = 60                                # minutes between incidents of a region/service
BENIGN_WINDOW = 360                        # a benign change blocks 6 h for other injections

# Incidents per post-warm-up day, per family (at least one of each).
FAMILIES = [
    # name, kind, service, expect, rate per day
    ("deploy_level_change", "benign_change", "api", "none", 0.4),
    ("latency_shift_up", "incident", "api", "series", 1.0),
    ("error_rise_high_traffic", "incident", "api", "pooled", 0.7),
    ("security_multi_signal", "incident", "auth", "threat", 0.7),
    ("cpu_saturation", "incident", "api", "series", 0.7),
    ("level_dip", "incident", "api", "series", 0.7),
    ("error_burst_low_traffic", "incident", "api", "pooled", 0.7),
    ("security_decoy", "decoy", "auth", "none", 0.7),
    ("api_data_gap", "gap", "api", "none", 0.4),
    ("latency_spike", "incident", "api", "series", 1.3),
]


def ts(minute):
    return (START + dt.timedelta(minutes=minute)).strftime("%Y-%m-%d %H:%M:%S")


# ---------------------------------------------------------------- samplers

def poisson(rng, lam):
    if lam <= 0:
        return 0
    if lam < 30:
        limit, k, p = math.exp(-lam), 0, rng.random()
        while p > limit:
            k += 1
            p *= rng.random()
        return k
    return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))


def binomial(rng, n, p):
    if n <= 0 or p <= 0:
        return 0
    if p >= 1:
        return n
    mean = n * p
    if mean < 50:                       # inversion, O(np)
        q = 1.0 - p
        pmf = q ** n
        cdf, u, k = pmf, rng.random(), 0
        while u > cdf and k < n:
            pmf *= (n - k) / (k + 1) * p / q
            k += 1
            cdf += pmf
        return k
    x = int(round(rng.gauss(mean, math.sqrt(mean * (1 - p)))))
    return min(n, max(0, x))


class Noise:
    """One series' noise: gaussian, student_t or ar1 with a given sd."""

    def __init__(self, rng, sd, kinds=(("gaussian", 0.45), ("student_t", 0.35), ("ar1", 0.2))):
        self.rng, self.sd = rng, sd
        u, acc = rng.random(), 0.0
        self.kind = kinds[-1][0]
        for k, w in kinds:
            acc += w
            if u < acc:
                self.kind = k
                break
        self.dof = rng.choice([3, 4, 5]) if self.kind == "student_t" else 0
        self.phi = round(rng.uniform(0.5, 0.85), 3) if self.kind == "ar1" else 0.0
        self.state = 0.0

    def describe(self):
        d = {"family": self.kind, "sd": round(self.sd, 4)}
        if self.dof:
            d["dof"] = self.dof
        if self.phi:
            d["phi"] = self.phi
        return d

    def draw(self):
        r = self.rng
        if self.kind == "gaussian":
            return r.gauss(0.0, self.sd)
        if self.kind == "student_t":
            chi2 = r.gammavariate(self.dof / 2.0, 2.0)
            t = r.gauss(0.0, 1.0) / math.sqrt(chi2 / self.dof)
            return self.sd * t * math.sqrt((self.dof - 2.0) / self.dof)
        self.state = self.phi * self.state + r.gauss(0.0, self.sd * math.sqrt(1 - self.phi ** 2))
        return self.state


# ---------------------------------------------------------------- schedule

def overlaps(busy, region, service, a, b):
    for (r, s, x, y) in busy:
        if r == region and s == service and a < y + BUFFER and x < b + BUFFER:
            return True
    return False


def schedule(rng, days, low):
    T = days * DAY
    post = days - 1
    high = [r for r in REGIONS if r not in low]
    busy, out = [], []
    security_regions = []
    for name, kind, service, expect, rate in FAMILIES:
        n = max(1, int(round(rate * post)))
        for _ in range(n):
            for _attempt in range(2000):
                inc = draft(rng, name, kind, service, expect, low, high, security_regions, T)
                if inc is None:
                    continue
                a, b = inc["_a"], inc["_block_end"]
                if a < WARMUP or b + BUFFER > T:
                    continue
                if overlaps(busy, inc["region"], service, a, b):
                    continue
                busy.append((inc["region"], service, a, b))
                if name == "security_multi_signal":
                    security_regions.append(inc["region"])
                out.append(inc)
                break
            else:
                raise SystemExit("gen_fleet: could not place %s; use more --days" % name)
    out.sort(key=lambda i: (i["_a"], i["region"], i["family"]))
    for k, inc in enumerate(out):
        inc["id"] = "I%02d" % (k + 1)
    return out


def draft(rng, name, kind, service, expect, low, high, security_regions, T):
    inc = {"family": name, "kind": kind, "service": service, "expect": expect}
    lo_start = WARMUP
    if name == "latency_shift_up":
        region, metrics = rng.choice(REGIONS), ["latency_ms"]
        dur, mag = rng.randint(30, 180), round(rng.uniform(1.3, 2.0), 3)
    elif name == "level_dip":
        region, metrics = rng.choice(REGIONS), [rng.choice(["latency_ms", "cpu"])]
        dur, mag = rng.randint(30, 120), round(rng.uniform(0.5, 0.7), 3)
    elif name == "latency_spike":
        region, metrics = rng.choice(REGIONS), ["latency_ms"]
        dur, mag = 1, round(rng.uniform(3.0, 6.0), 3)
    elif name == "cpu_saturation":
        region, metrics = rng.choice(REGIONS), ["cpu"]
        dur = rng.randint(45, 120)
        if rng.random() < 0.5:
            inc["variant"] = "add"
            mag = round(rng.uniform(10.0, 25.0), 2)          # points added
        else:
            inc["variant"] = "flat_top"
            mag = round(rng.uniform(95.0, 99.0), 2)          # plateau level
    elif name == "error_burst_low_traffic":
        region, metrics = rng.choice(low), ["errors"]
        dur, mag = rng.randint(15, 60), round(rng.uniform(0.03, 0.10), 4)   # new rate
    elif name == "error_rise_high_traffic":
        region, metrics = rng.choice(high), ["errors"]
        dur, mag = rng.randint(60, 180), round(rng.uniform(2.5, 5.0), 3)    # rate factor
    elif name == "security_multi_signal":
        region = rng.choice(REGIONS)
        metrics = ["auth_failures", "waf_hits", "egress_bytes"]
        dur = rng.randint(30, 120)
        inc["factors"] = dict((m, round(rng.uniform(1.5, 2.0), 3)) for m in metrics)
        mag = round(sum(inc["factors"].values()) / 3.0, 3)
    elif name == "security_decoy":
        # a region without a security incident, while one is left (runs of
        # more than two weeks place a security incident in every region;
        # incidents of a region never overlap, see BUFFER)
        cands = [r for r in REGIONS if r not in security_regions] or REGIONS
        region, metrics = rng.choice(cands), ["auth_failures"]
        dur, mag = 30, 4.0
    elif name == "api_data_gap":
        region, metrics = rng.choice(REGIONS), ["latency_ms", "errors", "cpu"]
        dur, mag = rng.randint(20, 60), 0.0
    elif name == "deploy_level_change":
        region, metrics = rng.choice(REGIONS), [rng.choice(["latency_ms", "cpu"])]
        step = rng.uniform(0.15, 0.30)
        mag = round(1.0 + step if rng.random() < 0.7 else 1.0 - step, 3)
        dur = None
        lo_start = WARMUP + 120
    else:
        raise ValueError(name)
    if dur is None:                         # permanent from start on
        a = rng.randint(lo_start, T - BENIGN_WINDOW - BUFFER)
        b, block_end = T, a + BENIGN_WINDOW
    else:
        a = rng.randint(lo_start, T - dur - BUFFER)
        b = block_end = a + dur
    inc.update({"region": region, "metrics": metrics, "magnitude": mag,
                "_a": a, "_b": b, "_block_end": block_end})
    return inc


# ---------------------------------------------------------------- series

def generate(seed, days, out):
    rng = random.Random(seed)
    T = days * DAY
    low = sorted(rng.sample(REGIONS, 2), key=REGIONS.index)
    regions = []
    for r in REGIONS:
        traffic = rng.uniform(0.01, 0.02) if r in low else rng.uniform(0.85, 1.15)
        regions.append({
            "region": r, "low_traffic": r in low, "traffic": round(traffic, 4),
            "daily_amp": round(rng.uniform(0.2, 0.4), 3),
            "daily_phase": round(rng.uniform(0, 2 * math.pi), 4),
            "weekly_amp": round(rng.uniform(0.03, 0.08), 3),
            "weekly_phase": round(rng.uniform(0, 2 * math.pi), 4),
        })
    incidents = schedule(rng, days, low)

    # per-minute load cycle of each region
    cycles = {}
    for g in regions:
        cycles[g["region"]] = [
            (1 + g["daily_amp"] * math.sin(2 * math.pi * t / DAY + g["daily_phase"]))
            * (1 + g["weekly_amp"] * math.sin(2 * math.pi * t / (7 * DAY) + g["weekly_phase"]))
            for t in range(T)]

    values, counts, series_info = {}, {}, []
    for g in regions:
        r, traffic, cyc = g["region"], g["traffic"], cycles[g["region"]]
        srng = random.Random("%d/%s" % (seed, r))   # per-region stream, stable per seed
        mine = [i for i in incidents if i["region"] == r]

        def mods(metric):
            mult, add, flat = [1.0] * T, [0.0] * T, [None] * T
            for i in mine:
                if metric not in i["metrics"]:
                    continue
                a, b = i["_a"], i["_b"]
                f = i["family"]
                for t in range(a, b):
                    if f in ("latency_shift_up", "level_dip", "latency_spike",
                             "deploy_level_change", "error_rise_high_traffic"):
                        mult[t] *= i["magnitude"]
                    elif f == "security_multi_signal":
                        mult[t] *= i["factors"][metric]
                    elif f == "security_decoy":
                        mult[t] *= i["magnitude"]
                    elif f == "cpu_saturation":
                        if i["variant"] == "add":
                            add[t] += i["magnitude"]
                        else:
                            flat[t] = i["magnitude"]
                    elif f == "error_burst_low_traffic":
                        flat[t] = i["magnitude"]
            return mult, add, flat

        # api/latency_ms: lognormal around 100-200 ms, rising with load
        base = srng.uniform(100, 200)
        nz = Noise(srng, srng.uniform(0.05, 0.12))
        mult, _, _ = mods("latency_ms")
        values[(r, "latency_ms")] = [
            "%.2f" % (base * (1 + 0.5 * (cyc[t] - 1)) * math.exp(nz.draw()) * mult[t])
            for t in range(T)]
        series_info.append((r, "latency_ms", {"base": round(base, 2), "noise": nz.describe()}))

        # api/errors: binomial out of requests
        rate0 = srng.uniform(0.001, 0.003)
        reqs0 = 25000.0 * traffic
        drift = srng.random() < 0.5
        dsd, dphi, dstate = srng.uniform(0.05, 0.25), 0.95, 0.0
        mult, _, flat = mods("errors")
        errs, ns = [], []
        for t in range(T):
            lam = reqs0 * cyc[t]
            n = poisson(srng, lam)
            if drift:
                dstate = dphi * dstate + srng.gauss(0, dsd * math.sqrt(1 - dphi ** 2))
            p = rate0 * math.exp(dstate) * mult[t] if flat[t] is None else flat[t]
            errs.append(str(binomial(srng, n, min(p, 1.0))))
            ns.append(str(n))
        values[(r, "errors")], counts[(r, "errors")] = errs, ns
        series_info.append((r, "errors", {
            "base_rate": round(rate0, 5), "requests_per_min": round(reqs0, 1),
            "noise": {"family": "binomial_drift" if drift else "binomial",
                      **({"log_rate_sd": round(dsd, 3), "phi": dphi} if drift else {})}}))

        # api/cpu: percent, daily cycle, clipped 0..100
        base = srng.uniform(30, 50)
        nz = Noise(srng, srng.uniform(1.5, 2.5))
        mult, add, flat = mods("cpu")
        vs = []
        for t in range(T):
            if flat[t] is not None:
                v = flat[t] + srng.gauss(0, 0.6)
            else:
                v = base * (1 + 0.6 * (cyc[t] - 1)) * mult[t] + add[t] + nz.draw()
            vs.append("%.2f" % min(100.0, max(0.0, v)))
        values[(r, "cpu")] = vs
        series_info.append((r, "cpu", {"base": round(base, 2), "noise": nz.describe()}))

        # auth/auth_failures and auth/waf_hits: Poisson (optionally overdispersed)
        for metric, mean in (("auth_failures", max(2.0, srng.uniform(3, 10) * traffic)),
                             ("waf_hits", srng.uniform(5, 20))):
            shape = srng.uniform(5, 20) if srng.random() < 0.4 else 0.0
            amp = 1.0 if metric == "auth_failures" else 0.5     # waf is less tied to traffic
            mult, _, _ = mods(metric)
            vs = []
            for t in range(T):
                lam = mean * (1 + amp * (cyc[t] - 1)) * mult[t]
                if shape:
                    lam *= srng.gammavariate(shape, 1.0 / shape)
                vs.append(str(poisson(srng, lam)))
            values[(r, metric)] = vs
            series_info.append((r, metric, {
                "base_mean": round(mean, 3),
                "noise": {"family": "negbin", "shape": round(shape, 2)} if shape
                else {"family": "poisson"}}))

        # auth/egress_bytes: lognormal around 5e6 * traffic
        nz = Noise(srng, 0.15)
        mult, _, _ = mods("egress_bytes")
        values[(r, "egress_bytes")] = [
            "%.0f" % (5e6 * traffic * cyc[t] * math.exp(nz.draw()) * mult[t]) for t in range(T)]
        series_info.append((r, "egress_bytes", {"base": round(5e6 * traffic, 1), "noise": nz.describe()}))

    # rows absent in gaps
    absent = set()
    for i in incidents:
        if i["kind"] == "gap":
            for m in i["metrics"]:
                for t in range(i["_a"], i["_b"]):
                    absent.add((i["region"], m, t))

    os.makedirs(out, exist_ok=True)
    nrows = 0
    with open(os.path.join(out, "events.csv"), "w", newline="") as f:
        f.write("timestamp,region,service,metric,value,count\n")
        buf = []
        for t in range(T):
            stamp = ts(t)
            for g in regions:
                r = g["region"]
                for service, metric in METRICS:
                    if absent and (r, metric, t) in absent:
                        continue
                    c = counts[(r, metric)][t] if metric == "errors" else ""
                    buf.append("%s,%s,%s,%s,%s,%s\n" % (stamp, r, service, metric,
                                                        values[(r, metric)][t], c))
            if len(buf) > 50000:
                nrows += len(buf)
                f.writelines(buf)
                buf = []
        nrows += len(buf)
        f.writelines(buf)

    low_of = dict((g["region"], g["low_traffic"]) for g in regions)
    truth = {
        "seed": seed, "days": days, "start": ts(0), "end": ts(T),
        "interval_s": 60, "warmup_hours": WARMUP // 60,
        "regions": regions,
        "series": [dict([("region", r), ("service", SERVICE[m]), ("metric", m),
                         ("low_traffic", low_of[r])] + sorted(info.items()))
                   for r, m, info in series_info],
        "incidents": [],
    }
    for i in incidents:
        d = {"id": i["id"], "family": i["family"], "kind": i["kind"],
             "region": i["region"], "service": i["service"], "metrics": i["metrics"],
             "start": ts(i["_a"]), "end": ts(i["_b"]),
             "magnitude": i["magnitude"], "expect": i["expect"]}
        for k in ("variant", "factors"):
            if k in i:
                d[k] = i[k]
        truth["incidents"].append(d)
    with open(os.path.join(out, "truth.json"), "w") as f:
        json.dump(truth, f, indent=1)
        f.write("\n")
    return nrows, truth


# ---------------------------------------------------------------- self-check

def check(out):
    """Re-read DIR and verify each truth entry against the data."""
    with open(os.path.join(out, "truth.json")) as f:
        truth = json.load(f)
    t0 = dt.datetime.strptime(truth["start"], "%Y-%m-%d %H:%M:%S")

    def minute(s):
        return int((dt.datetime.strptime(s, "%Y-%m-%d %H:%M:%S") - t0).total_seconds() // 60)

    data = {}
    cache = {}
    with open(os.path.join(out, "events.csv")) as f:
        header = f.readline().strip().split(",")
        assert header == ["timestamp", "region", "service", "metric", "value", "count"], header
        last = None
        for line in f:
            s, r, _svc, m, v, c = line.rstrip("\n").split(",")
            if s not in cache:
                cache[s] = minute(s)
                assert last is None or cache[s] > last, "rows not sorted at %s" % s
                last = cache[s]
            t = cache[s]
            val = float(v) / float(c) if m == "errors" else float(v)
            data.setdefault((r, m), {})[t] = val

    spans = {}
    for i in truth["incidents"]:
        for m in i["metrics"]:
            spans.setdefault((i["region"], m), []).append(
                (i["id"], i["kind"], minute(i["start"]), minute(i["end"])))

    def mean(d, a, b, key, own, until):
        # minutes of [a, b) outside the other truth entries of the series and
        # not before a benign change that starts by `until`
        def valid(t):
            for iid, kind, x, y in spans.get(key, []):
                if iid == own:
                    continue
                if kind == "benign_change":
                    if t < x <= until:
                        return False
                elif x <= t < y:
                    return False
            return t in d
        xs = [d[t] for t in range(a, b) if valid(t)]
        return (sum(xs) / len(xs) if xs else float("nan")), len(xs)

    def ref(d, a, b, key, own):
        # same clock time one day earlier (removes the daily cycle), else the
        # hour before
        x, n = mean(d, a - DAY, b - DAY, key, own, a)
        if n >= 0.5 * (b - a) and a - DAY >= 0:
            return x
        return mean(d, a - 60, a, key, own, a)[0]

    ok = True
    for i in truth["incidents"]:
        a, b = minute(i["start"]), minute(i["end"])
        f = i["family"]
        msgs, inc_ok = [], True
        for m in i["metrics"]:
            key = (i["region"], m)
            d = data[key]
            if f == "api_data_gap":
                n = sum(1 for t in range(a, b) if t in d)
                good = n == 0 and (a - 1) in d and b in d
                msgs.append("%s rows in gap=%d" % (m, n))
                inc_ok &= good
                continue
            if f == "deploy_level_change":
                b = a + BENIGN_WINDOW
            if f == "latency_spike":
                inside = d[a]
                around = sorted(d[t] for t in range(a - 30, a + 31) if t != a and t in d)
                r_ = inside / around[len(around) // 2]
                good = r_ > 2.0
            elif f == "cpu_saturation":
                r_ = mean(d, a, b, key, i["id"], a)[0] - ref(d, a, b, key, i["id"])
                good = r_ > 7.0
            else:
                r_ = mean(d, a, b, key, i["id"], a)[0] / ref(d, a, b, key, i["id"])
                want = i["magnitude"] if f != "security_multi_signal" else i["factors"][m]
                if f == "error_burst_low_traffic":
                    want = i["magnitude"] / ref(d, a, b, key, i["id"])
                frac = 0.33 if m in ("auth_failures", "waf_hits") else 0.5   # small counts are noisy
                good = (r_ > 1 + frac * (want - 1)) if want > 1 else (r_ < 1 - frac * (1 - want))
            msgs.append("%s %.3g" % (m, r_))
            inc_ok &= good
        print("%-4s %-24s %-12s %s..%s %s  %s" % (
            i["id"], f, i["region"], i["start"][5:16], i["end"][5:16],
            "ok  " if inc_ok else "FAIL", "; ".join(msgs)))
        ok &= inc_ok
    if not truth["incidents"]:
        ok = False
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--days", type=int, default=4)
    ap.add_argument("--out", required=True)
    ap.add_argument("--check", action="store_true",
                    help="re-read the written files and verify the truth against the data")
    a = ap.parse_args()
    if a.days < 2:
        ap.error("--days must be at least 2 (the first 24 hours are warm-up)")
    nrows, truth = generate(a.seed, a.days, a.out)
    kinds = {}
    for i in truth["incidents"]:
        kinds[i["kind"]] = kinds.get(i["kind"], 0) + 1
    print("gen_fleet: seed %d, %d days: %d rows, %d series, %s -> %s" % (
        a.seed, a.days, nrows, len(truth["series"]),
        ", ".join("%d %s" % (v, k) for k, v in sorted(kinds.items())), a.out))
    if a.check:
        if not check(a.out):
            print("gen_fleet: self-check FAILED", file=sys.stderr)
            return 1
        print("gen_fleet: self-check ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
