#!/usr/bin/env python3
"""The paging rule of bench/pages.py (used by bench/nab.sh --rearm and
bench/nab_cv.py --rearm): hand-worked cases, then the rewrite of a result
file against a direct re-computation."""

import csv
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "bench"))
import pages  # noqa: E402

H = 3.6e6


def check(got, want, what):
    if got != want:
        raise SystemExit("pages_test: %s: got %r, want %r" % (what, got, want))


def main():
    t = [i * 300000.0 for i in range(10)]                # 5-minute events
    s = [0.1, 0.995, 0.999, 0.2, 0.991, 0.3, 0.1, 0.1, 0.1, 0.995]
    # 0.99, re-arm 5 min: 1 pages; 2 is 5 min after 1 (not more) -> no;
    # 4 is 10 min after 2 -> pages; 9 is 25 min after 4 -> pages
    check(pages.page_hits(s, t, 0.99, 300000.0),
          [False, True, False, False, True, False, False, False, False,
           True], "5-minute re-arm")
    # re-arm 1 h: neither 4 (10 min after 2) nor 9 (25 min after 4) pages
    check(pages.page_hits(s, t, 0.99, H),
          [False, True] + [False] * 8, "1-hour re-arm")
    # the quiet spell counts from the LAST alert, not the last page
    s2 = [0.999] * 30 + [0.0] * 5 + [0.999]
    t2 = [i * 300000.0 for i in range(len(s2))]
    hits = pages.page_hits(s2, t2, 0.99, H)
    check([i for i, h in enumerate(hits) if h], [0], "continuous episode")
    check(pages.page_hits(s, t, 0.9991, 0.0), [False] * 10, "threshold")
    check(pages.ms("2014-04-01 00:05:00"), 1396310700000.0, "time")

    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "cat"))
        path = os.path.join(d, "cat", "f.csv")
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["timestamp", "value", "anomaly_score"])
            for i, v in enumerate(s):
                w.writerow(["2014-04-01 00:%02d:00" % (5 * i), i, v])
        pages.main(["pages.py", d, "0.99", "1"])
        with open(path, newline="") as fh:
            got = [r[2] for r in list(csv.reader(fh))[1:]]
        check(got, ["0.0", "1.0"] + ["0.0"] * 8, "file rewrite")
    print("pages_test: ok")


if __name__ == "__main__":
    main()
