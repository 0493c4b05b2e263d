#!/usr/bin/env bash
# bayeswatch demo, unpaced and without the live view: it must detect the
# three injected incidents with no false alarm, and its read_committed
# read-back must equal what the stage produced (else exit 2).
set -euo pipefail
bin=$1
out=$("$bin" demo --speed 0 --plain --hours 6 2> /dev/null)
echo "$out" | tail -n 8
echo "$out" | grep -q "^3 of 3 incidents detected; 0 false alarms" ||
    { echo "FAIL: expected 3 of 3 detected and no false alarm" >&2; exit 1; }
echo "$out" | grep -q "committed (read_committed): 23040 scores" ||
    { echo "FAIL: expected 23040 committed scores" >&2; exit 1; }
