#!/usr/bin/env bash
# Offline example (README "Replay"): build, then
# replay the shipped sample telemetry through the engine and print the
# alerting scores and the fused threat assessments.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh" "$root/build" > /dev/null
out=$root/build/sample
mkdir -p "$out"
"$root/build/bayeswatch" replay --config "$root/config/sample.yaml" \
    --threats "$out/threats.csv" "$root/tests/data/sample_telemetry.csv" \
    > "$out/scores.csv"
echo
echo "== alerts: p_anomaly >= engine.alert_threshold (0.99 by default), after warm-up"
awk -F, 'NR == 1 || $17 == 1 {
    printf "%-20s %-9s %-5s %-14s %-12s p=%-6.4f expected=%-10.4g actual=%-10.4g %s\n",
        $1, $4, $5, $6, $7, $3, $10, $20, $16 }' "$out/scores.csv" | tail -n +2
echo
echo "== probabilistic SLO: regions with P(error rate > 1%) >= 0.95"
awk -F, 'NR > 1 && $7 == "pooled_count" && $21 >= 0.95 {
    printf "%-20s %-9s rate=%.4f [%.4f, %.4f] P(>1%%)=%.3f shrinkage=%.3f\n",
        $1, $4, $20, $11, $12, $21, $22 }' "$out/scores.csv" | head -n 12
echo
echo "== fused threat assessments at moderate or above"
awk -F, 'NR > 1 && $6 != "low"' "$out/threats.csv" | head -n 20
echo
echo "full output: $out/scores.csv and $out/threats.csv"
