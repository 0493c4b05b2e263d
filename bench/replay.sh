#!/usr/bin/env bash
# End-to-end replay throughput (rows/s, one core), median of N runs.
# usage: bench/replay.sh [--runs N] [--config FILE] FILE_OR_DIR...
# Each CSV is replayed separately (as a detector would see it); the rate is
# total rows / total wall time of the replays.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/build/bayeswatch
runs=5
cfg=()
while [ $# -gt 0 ]; do
    case $1 in
    --runs) runs=$2; shift 2 ;;
    --config) cfg=(--config "$2"); shift 2 ;;
    *) break ;;
    esac
done
[ -x "$bin" ] || "$root/scripts/build.sh" > /dev/null
mapfile -t files < <(find "$@" -name '*.csv' -type f | sort)
rows=0
for f in "${files[@]}"; do rows=$((rows + $(wc -l < "$f") - 1)); done
rates=()
for _ in $(seq "$runs"); do
    t0=$(date +%s%N)
    for f in "${files[@]}"; do
        taskset -c 0 "$bin" replay "${cfg[@]}" "$f" > /dev/null 2>&1
    done
    t1=$(date +%s%N)
    rates+=("$(awk -v r="$rows" -v ns=$((t1 - t0)) 'BEGIN{printf "%.0f", r / (ns / 1e9)}')")
done
med=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
echo "replay: ${#files[@]} files, $rows rows: median $med rows/s over $runs runs (runs: ${rates[*]})"
