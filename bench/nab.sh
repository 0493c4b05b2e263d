#!/usr/bin/env bash
# NAB evaluation: replay every series of a NAB-format data directory through
# `bayeswatch replay` with ONE configuration (default: the shipped default,
# i.e. no --config), then score with the NAB scorer.
# usage: bench/nab.sh [--config FILE] [--threshold T [--rearm HOURS]]
#                     DATA_DIR LABELS_JSON [SCORER]
#   DATA_DIR     NAB data root (category/file.csv)
#   LABELS_JSON  combined_windows.json
#   SCORER       nab_score.py (default: ../shared/tools/nab_score.py)
#   --rearm H    score pages, not alerting events: an event with
#                anomaly_score >= T counts only when no such event came in
#                the H hours before it (README, Evaluation)
# Causal by construction: replay scores each row from the past only; the
# labels are read by the scorer alone.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/build/bayeswatch
cfg=()
thr=()
rearm=
while [ $# -gt 0 ]; do
    case $1 in
    --config) cfg=(--config "$2"); shift 2 ;;
    --threshold) thr=(--threshold "$2"); shift 2 ;;
    --rearm) rearm=$2; shift 2 ;;
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
if [ -n "$rearm" ]; then
    [ ${#thr[@]} -eq 2 ] || { echo "nab.sh: --rearm needs --threshold" >&2; exit 2; }
    python3 "$root/bench/pages.py" "$out" "${thr[1]}" "$rearm"
    thr=(--threshold 0.5)
fi
awk -v r="$rows" -v ns=$((t1 - t0)) \
    'BEGIN{printf "replayed %d rows in %.2f s (%.0f rows/s incl. process start-up)\n", r, ns/1e9, r/(ns/1e9)}'
python3 "$scorer" --data "$data" --labels "$labels" --results "$out" \
    "${thr[@]}" ${NAB_PER_FILE:+--per-file}
