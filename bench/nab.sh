#!/usr/bin/env bash
# NAB evaluation: replay every series of a NAB-format data directory through
# `bayeswatch replay` with ONE configuration (default: the shipped default,
# i.e. no --config), then score with the NAB scorer.
# usage: bench/nab.sh [--config FILE] [--threshold T] DATA_DIR LABELS_JSON [SCORER]
#   DATA_DIR     NAB data root (category/file.csv)
#   LABELS_JSON  combined_windows.json
#   SCORER       nab_score.py (default: ../shared/tools/nab_score.py)
# Causal by construction: replay scores each row from the past only; the
# labels are read by the scorer alone.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/build/bayeswatch
cfg=()
thr=()
while [ $# -gt 0 ]; do
    case $1 in
    --config) cfg=(--config "$2"); shift 2 ;;
    --threshold) thr=(--threshold "$2"); shift 2 ;;
    *) break ;;
    esac
done
data=${1:?DATA_DIR}
labels=${2:?LABELS_JSON}
scorer=${3:-$root/../shared/tools/nab_score.py}
[ -x "$bin" ] || "$root/scripts/build.sh" > /dev/null
out=${NAB_OUT:-$root/build/nab-results}
rm -rf "$out"
t0=$(date +%s%N)
rows=0
while IFS= read -r f; do
    rel=${f#"$data"/}
    mkdir -p "$out/$(dirname "$rel")"
    "$bin" replay "${cfg[@]}" "$f" 2> /dev/null | cut -d, -f1-3 > "$out/$rel"
    rows=$((rows + $(wc -l < "$f") - 1))
done < <(find "$data" -name '*.csv' -type f | sort)
t1=$(date +%s%N)
awk -v r="$rows" -v ns=$((t1 - t0)) \
    'BEGIN{printf "replayed %d rows in %.2f s (%.0f rows/s incl. process start-up)\n", r, ns/1e9, r/(ns/1e9)}'
python3 "$scorer" --data "$data" --labels "$labels" --results "$out" \
    "${thr[@]}" ${NAB_PER_FILE:+--per-file}
