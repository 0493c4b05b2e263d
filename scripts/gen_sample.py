#!/usr/bin/env python3
"""Generate the shipped sample telemetry (tests/data/sample_telemetry.csv).

Deterministic (fixed seed). Three regions (ap-south is low traffic), two
services, five metrics at 5-minute intervals over three days, with a daily
pattern, noise, and three injected incidents:
  1. eu-west/api latency regression: x1.8 from day 2 12:00 onwards;
  2. ap-south/api error burst (low-traffic region): 25% errors for 40 min;
  3. us-east/auth security incident: auth failures x15 and egress x12
     for 30 minutes at day 3 03:00.
"""
import csv
import math
import random
import sys
from datetime import datetime, timedelta, timezone

rng = random.Random(20261125)
start = datetime(2026, 11, 1, tzinfo=timezone.utc)
STEP = timedelta(minutes=5)
N = 3 * 288
REGIONS = {"us-east": 1.0, "eu-west": 0.7, "ap-south": 0.02}

def daily(i, amp):
    hour = (i % 288) / 12.0
    return 1.0 + amp * math.sin(2 * math.pi * (hour - 8) / 24.0)

def rows():
    for i in range(N):
        ts = (start + i * STEP).strftime("%Y-%m-%d %H:%M:%S")
        for region, traffic in REGIONS.items():
            d = daily(i, 0.35)
            lat = 120 * d ** 0.5 * math.exp(rng.gauss(0, 0.08))
            if region == "eu-west" and i >= 288 + 144:
                lat *= 1.8
            yield ts, region, "api", "latency_ms", round(lat, 2), ""
            req = max(1, int(rng.gauss(20000 * traffic * d, 300 * traffic + 2)))
            rate = 0.002
            if region == "ap-south" and 400 <= i < 408:
                rate = 0.25
            err = sum(1 for _ in range(req) if rng.random() < rate) \
                if req < 2000 else max(0, int(rng.gauss(req * rate, math.sqrt(req * rate))))
            yield ts, region, "api", "errors", err, req
            cpu = min(100, max(0, 35 * d + rng.gauss(0, 3)))
            yield ts, region, "api", "cpu", round(cpu, 2), ""
            fails = rng.expovariate(1 / (3 * traffic * d + 0.5))
            egress = rng.lognormvariate(math.log(5e6 * traffic * d + 1e4), 0.15)
            if region == "us-east" and 2 * 288 + 36 <= i < 2 * 288 + 42:
                fails *= 15
                fails += 40
                egress *= 12
            yield ts, region, "auth", "auth_failures", int(fails), ""
            yield ts, region, "auth", "egress_bytes", int(egress), ""

w = csv.writer(sys.stdout, lineterminator="\n")
w.writerow(["timestamp", "region", "service", "metric", "value", "count"])
for r in rows():
    w.writerow(r)
