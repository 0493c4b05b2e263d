#!/usr/bin/env bash
# The fleet evaluation: generate seeds, replay them through bayeswatch with
# one config, score each, and print the mean and spread over the seeds.
# usage: bench/fleet/run.sh [--config FILE] [--threshold T] [--days D]
#                           [--generator main|alt] SEED...
#   (--generator alt: gen_fleet_alt.py, the independently written second
#    generator, a held-out check only: never tune on it)
#   (BW_BIN: the bayeswatch binary; default build/bayeswatch)
#   (tune on seeds 1-5; report on 6-15: bench/fleet/run.sh $(seq 6 15))
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${BW_BIN:-$root/build/bayeswatch}
cfg=$root/bench/fleet/fleet.yaml
thr=0.99
days=4
gen=gen_fleet.py
while [ $# -gt 0 ]; do
    case $1 in
    --config) cfg=$2; shift 2 ;;
    --threshold) thr=$2; shift 2 ;;
    --days) days=$2; shift 2 ;;
    --generator)
        case $2 in
        main) gen=gen_fleet.py ;;
        alt) gen=gen_fleet_alt.py ;;
        *) echo "unknown generator: $2" >&2; exit 64 ;;
        esac
        shift 2 ;;
    *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--config F] [--threshold T] SEED..." >&2; exit 64; }
[ -x "$bin" ] || "$root/scripts/build.sh" > /dev/null
out=${FLEET_OUT:-$root/build/fleet}
mkdir -p "$out"
for s in "$@"; do
    d=$out/seed$s
    mkdir -p "$d"
    python3 "$root/bench/fleet/$gen" --seed "$s" --days "$days" \
        --out "$d" > /dev/null
    t0=$(date +%s%N)
    "$bin" replay --config "$cfg" --threats "$d/threats.csv" \
        "$d/events.csv" > "$d/scores.csv" 2> /dev/null
    t1=$(date +%s%N)
    rows=$(($(wc -l < "$d/events.csv") - 1))
    echo "$rows $(( (t1 - t0) / 1000 ))" > "$d/timing"
    python3 "$root/bench/fleet/score_fleet.py" --truth "$d/truth.json" \
        --scores "$d/scores.csv" --threats "$d/threats.csv" \
        --threshold "$thr" --json "$d/score.json" > "$d/report.txt"
done
python3 - "$out" "$@" <<'PY'
import json, statistics as st, sys
out, seeds = sys.argv[1], sys.argv[2:]
rows, cal, delays = [], {}, []
for s in seeds:
    j = json.load(open(f"{out}/seed{s}/score.json"))
    n, us = map(int, open(f"{out}/seed{s}/timing").read().split())
    inc = [i for i in j["incidents"] if i.get("expect") in ("series", "pooled")]
    cov = [i["coverage"] for i in inc if i.get("coverage") is not None]
    t = j["threats"]
    delays += [i["delay_min"] for i in inc if i.get("found")]
    for k, b in enumerate(j["calibration"]):
        cal.setdefault(k, {"lo": b["lo"], "hi": b["hi"], "n": 0, "sum": 0.0,
                           "inside": 0, "inside_tail": 0})
        c = cal[k]
        c["n"] += b["n"]
        c["sum"] += (b["mean_score"] or 0.0) * b["n"]
        c["inside"] += b["inside"]
        c["inside_tail"] += b["inside_tail"]
    rows.append({
        "found": sum(bool(i.get("found")) for i in inc) / len(inc),
        "coverage": sum(cov) / len(cov),
        "fa": j["false_alarms"]["per_series_day"],
        "threat_tp": t["found"] / t["total"] if t["total"] else float("nan"),
        "threat_high": sum(i["high_share"] for i in t["incidents"])
        / len(t["incidents"]) if t["incidents"] else float("nan"),
        "decoy_fp": t["decoy_false_positives"] / t["decoy_total"]
        if t["decoy_total"] else float("nan"),
        "false_high": t["false_high_per_entity_day"],
        "precision": j["precision"] or 0.0,
        "precision_strict": j["precision_strict"] or 0.0,
        "rows_per_s": n / (us / 1e6)})
print(f"{len(seeds)} seeds ({' '.join(seeds)}):")
for k in rows[0]:
    v = [r[k] for r in rows]
    print(f"  {k:16s} mean {st.mean(v):10.3f}  min {min(v):10.3f}  "
          f"max {max(v):10.3f}")
if delays:
    delays.sort()
    print(f"  detection delay of the found incidents, minutes after onset: "
          f"median {st.median(delays):g}, mean {st.mean(delays):.1f}, "
          f"90th percentile {delays[int(0.9 * (len(delays) - 1))]:g}, "
          f"max {delays[-1]:g} ({len(delays)} incidents)")
print("reliability over the seeds (after warm-up; inside: an incident or "
      "decoy's series in [start, end); +30: to end + 30 min):")
print(f"  {'p_anomaly':12s} {'events':>9s} {'mean':>8s} {'inside':>8s} "
      f"{'inside+30':>9s}")
for k in sorted(cal):
    c = cal[k]
    hi = f"{c['hi']:.2f})" if c["hi"] < 1 else "1.00]"
    if c["n"]:
        print(f"  [{c['lo']:.2f},{hi:6s} {c['n']:9d} {c['sum'] / c['n']:8.4f} "
              f"{c['inside'] / c['n']:8.4f} {c['inside_tail'] / c['n']:9.4f}")
PY
