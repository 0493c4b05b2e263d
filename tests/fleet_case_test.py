#!/usr/bin/env python3
"""A lasting change to a level earlier days held only at other hours, on
data the filter was not written against: bench/fleet's second generator
(gen_fleet_alt.py, seed 2; its own load curve, cron bumps, AR(1) load
drift), region nordic-1's CPU, replayed alone with the fleet's config.

On day 3, once the daily profile applies, CPU saturates at 01:17 by 4.5
noise sds for two hours. In the profile's frame the jump lands on a level
Monday's working hours held for hours (the first day, a Sunday, was
quieter, and the profile lies between them), so the recurrent regime
reads it as a return to a familiar state that those stays confirm: with
model.pf.novel_phase_ms 0 (any hour counting) it is flagged at its onset
at most. With the default, the level's hour is read (the memory's values
near 01:17 on earlier days hold none of it), the visit is held
unconfirmed, and the episode is flagged from soon after its onset to its
end: measured 99 of its 120 events, against none. Asserted: at least 75%
with the default and at most 5% without. Printed, not asserted: alert
episodes elsewhere on the series' days 2-4 (measured 3 with the default,
0 without: the first day is a Sunday, so Monday's morning rise is a level
the first day never reached at that hour, and Wednesday's rises above a
profile the Sunday still pulls down; the fleet's figures are the README's).
usage: fleet_case_test.py BAYESWATCH_BINARY SOURCE_DIR"""

import csv
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile

BIN, SRC = sys.argv[1], sys.argv[2]
SEED, REGION, METRIC, INCIDENT = 2, "nordic-1", "cpu", "A07"
THRESHOLD, GAP_MIN = 0.99, 5  # the fleet scorer's alert and episode gap


def replay(work, events, phase_ms):
    cfg = os.path.join(work, "cfg_%d.yaml" % phase_ms)
    with open(os.path.join(SRC, "bench", "fleet", "fleet.yaml")) as f:
        fleet = f.read()
    with open(cfg, "w") as f:
        f.write(fleet.replace("  pf:\n", "  pf:\n    novel_phase_ms: %d\n"
                              % phase_ms, 1))
    out = subprocess.run([BIN, "replay", "--config", cfg, events],
                         check=True, capture_output=True, text=True).stdout
    rows = list(csv.DictReader(out.splitlines()))
    return [(dt.datetime.fromisoformat(r["timestamp"]),
             float(r["anomaly_score"] or 0) >= THRESHOLD and
             r["warmup"] != "1") for r in rows]


def count(rows, a, b):
    """Events in [a, b) and those flagged; alert episodes outside it (flags
    more than GAP_MIN minutes apart start a new one) from day 2 on."""
    span = flagged = episodes = 0
    last = None
    day2 = rows[0][0] + dt.timedelta(days=1)
    for t, hit in rows:
        if a <= t < b:
            span += 1
            flagged += hit
        elif hit and t >= day2 and not a <= t < b + dt.timedelta(minutes=30):
            gap = last is None or (t - last).total_seconds() > 60 * GAP_MIN
            episodes += gap
            last = t
    return span, flagged, episodes


def main():
    with tempfile.TemporaryDirectory() as work:
        subprocess.run([sys.executable,
                        os.path.join(SRC, "bench", "fleet",
                                     "gen_fleet_alt.py"),
                        "--seed", str(SEED), "--out", work], check=True,
                       stdout=subprocess.DEVNULL)
        with open(os.path.join(work, "truth.json")) as f:
            truth = json.load(f)
        inc = [i for i in truth["incidents"] if i["id"] == INCIDENT][0]
        assert (inc["family"], inc["region"]) == ("cpu_saturation", REGION)
        events = os.path.join(work, "one.csv")
        with open(os.path.join(work, "events.csv"), newline="") as f, \
                open(events, "w", newline="") as g:
            rd, wr = csv.reader(f), csv.writer(g)
            wr.writerow(next(rd))
            for row in rd:
                if row[1] == REGION and row[3] == METRIC:
                    wr.writerow(row)
        a = dt.datetime.fromisoformat(inc["start"])
        b = dt.datetime.fromisoformat(inc["end"])
        on = count(replay(work, events, 3600000), a, b)
        off = count(replay(work, events, 0), a, b)
    print("fleet case (second generator seed %d, %s %s, %s): flagged %d of "
          "%d events, %d alert episodes elsewhere; any hour counting: %d of "
          "%d, %d elsewhere" % (SEED, REGION, METRIC, inc["start"], on[1],
                                on[0], on[2], off[1], off[0], off[2]))
    ok = on[0] > 100 and on[1] * 4 >= on[0] * 3 and off[1] * 20 <= off[0]
    print("fleet_case_test: %s" % ("ok" if ok else "FAILED"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
