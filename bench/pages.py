#!/usr/bin/env python3
"""Turn NAB result files' anomaly scores into pages, in place.

usage: bench/pages.py RESULTS_DIR THRESHOLD REARM_HOURS

An event alerts when its anomaly_score >= THRESHOLD.  It pages (1.0) only
when no event of the same file alerted in the REARM_HOURS before it;
every other row becomes 0.0.  This is how an alerting layer in front of
a state score behaves (one page per episode, re-armed after a quiet
spell), and how bench/nab_cv.py --rearm scores its paged candidates.
Standard library only."""

import csv
import os
import sys
from datetime import datetime

EPOCH = datetime(1970, 1, 1)


def ms(text):
    text = text.strip().replace("T", " ").replace("Z", "")
    return (datetime.fromisoformat(text) - EPOCH).total_seconds() * 1000.0


def page_hits(scores, times_ms, thr, rearm_ms):
    """Per event: does it page?  (scores and times in event order)"""
    out = []
    last = None
    for s, t in zip(scores, times_ms):
        alert = s >= thr
        out.append(alert and (last is None or t - last > rearm_ms))
        if alert:
            last = t
    return out


def page_file(path, thr, rearm_ms):
    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh) if r]
    hdr, body = rows[0], rows[1:]
    it, ia = hdr.index("timestamp"), hdr.index("anomaly_score")
    hits = page_hits([float(r[ia] or 0) for r in body],
                     [ms(r[it]) for r in body], thr, rearm_ms)
    for r, page in zip(body, hits):
        r[ia] = "1.0" if page else "0.0"
    with open(path, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([hdr] + body)


def main(argv):
    if len(argv) != 4:
        raise SystemExit(__doc__.split("\n\n")[1])
    root, thr, hours = argv[1], float(argv[2]), float(argv[3])
    for d, _, names in os.walk(root):
        for n in sorted(names):
            if n.endswith(".csv"):
                page_file(os.path.join(d, n), thr, hours * 3.6e6)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
