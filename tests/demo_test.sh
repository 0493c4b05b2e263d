#!/usr/bin/env bash
# bayeswatch demo, unpaced and without the live view: it must detect the
# three injected incidents with no false alarm, and its read_committed
# read-back must equal what the stage produced (else exit 2).
set -euo pipefail
bin=$1
out=$("$bin" demo --speed 0 --plain --hours 6 2> /dev/null)
echo "$out" | tail -n 8
# here-strings, not pipes: grep -q exits at its first match, and under
# pipefail an echo still writing then dies of SIGPIPE and fails the check
grep -q "^3 of 3 incidents detected; 0 false alarms" <<< "$out" ||
    { echo "FAIL: expected 3 of 3 detected and no false alarm" >&2; exit 1; }
grep -q "committed (read_committed): 23040 scores" <<< "$out" ||
    { echo "FAIL: expected 23040 committed scores" >&2; exit 1; }
