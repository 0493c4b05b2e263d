#!/usr/bin/env bash
# The state changelog on a real broker (scripts/kafka.sh start first):
#   1. throughput of `bayeswatch run` (exactly_once, 1 thread) with the
#      changelog on against the same run with it off, RUNS times each,
#      alternating, each timed by a read_committed reader of its scores
#      (`kbench tail`); EVENTS events of SERIES series (one event per series
#      per minute), on 4 partitions; changelog records and bytes per run;
#   2. restore: the same input on ONE partition, scored by an instance that
#      then stops; a second start restores the partition from the changelog
#      (no local checkpoint), then a third from its local checkpoint
#      (state.dir); restore time, keys, records read per live key and
#      bytes from the stage's log;
#   3. restore after kill -9 KILL_AFTER (15) seconds into a run of the same
#      input: the last flush plus the input since it, replayed.
# usage: bench/state.sh [SERIES] [EVENTS]   (default 5000 series, 200000
#        events; RUNS=5; COMMIT_MS=100, the commit interval; FLUSH_MS=10000,
#        state.flush_interval_ms)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
brokers=${BW_KAFKA_BROKERS:-127.0.0.1:9092}
series=${1:-5000}
n=${2:-200000}
runs=${RUNS:-5}
tag=st-$(date +%s)
kb=$build/bench/kbench
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2> /dev/null || true; rm -rf "$dir"' EXIT

config() { # NAME INPUT CHANGELOG [STATE_DIR]
    cat > "$dir/$1.yaml" <<YAML
kafka: {bootstrap_servers: "$brokers", group_id: "$tag-$1"}
ingest: {topics: ["$2"]}
emit:
  scores: {topic: "$tag.$1.s"}
  threats: {topic: "$tag.$1.t"}
  dead_letters: {topic: "$tag.$1.d"}
engine: {max_series: 200000}
pipeline: {instance_id: "$1", stats_interval_ms: 0,
           commit_interval_ms: ${COMMIT_MS:-100}}
state: {changelog: $3, dir: "${4:-}",
        flush_interval_ms: ${FLUSH_MS:-10000}}
obs: {listen: "127.0.0.1:0"}
YAML
}

# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

run_once() { # NAME INPUT CHANGELOG PARTITIONS: rate of one run
    config "$1" "$2" "$3"
    time_stage "$1" "$4"
}

echo "== $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "== $n events of $series series"
"$build/tests/bw_topics" "$brokers" 4 $tag.in
"$build/tests/bw_topics" "$brokers" 1 $tag.in1
"$kb" feed "$brokers" $tag.in "$n" 0 0 "$series"
"$kb" feed "$brokers" $tag.in1 "$n" 0 0 "$series"

on="" off="" bytes="" recs=""
for i in $(seq "$runs"); do
    off+=" $(run_once off$i $tag.in false 4)"
    on+=" $(run_once on$i $tag.in true 4)"
    line=$(grep 'state: .* changelog records' "$dir/on$i.log")
    recs+=" $(echo "$line" | sed -n 's/.*state: \([0-9]*\) changelog.*/\1/p')"
    bytes+=" $(echo "$line" | sed -n 's/.*records (\([0-9.]*\) MB).*/\1/p')"
done
# shellcheck disable=SC2086
{
    summary "records/s, changelog off" $off
    summary "records/s, changelog on" $on
    summary "changelog records per run" $recs
    summary "changelog MB per run" $bytes
}
# shellcheck disable=SC2086
summary "on / off, run by run (%)" $(echo "$on" "$off" | awk '{
    n = NF / 2; for (i = 1; i <= n; i++) printf "%.1f\n", 100 * $i / $(i + n) }')

# -- restore of one partition holding every series
mkdir -p "$dir/ckpt"
config rs $tag.in1 true "$dir/ckpt"
"$build/tests/bw_topics" "$brokers" 1 $tag.rs.s $tag.rs.t $tag.rs.d
"$kb" tail "$brokers" $tag.rs.s "$n" > /dev/null &
tail=$!
"$build/bayeswatch" run --config "$dir/rs.yaml" 2> "$dir/rs1.log" &
stage=$!
wait $tail
kill -TERM $stage
wait $stage
grep 'state: .* changelog records' "$dir/rs1.log"
restore() { # LOG [NAME]: start, wait for the restore line, stop
    "$build/bayeswatch" run --config "$dir/${2:-rs}.yaml" 2> "$1" &
    local stage=$!
    for _ in $(seq 600); do
        grep -q 'state: restored' "$1" && break
        sleep 0.5
    done
    kill -TERM $stage
    wait $stage
    grep -m1 'state: restored' "$1" | sed 's/^[^:]*: //'
}
mv "$dir/ckpt" "$dir/ckpt.off" # first: the changelog alone
echo "restore from the changelog:"
restore "$dir/rs2.log"
mv "$dir/ckpt.off" "$dir/ckpt"
rm -f "$dir"/ckpt/*
"$build/bayeswatch" run --config "$dir/rs.yaml" 2> "$dir/rs3.log" &
stage=$!
for _ in $(seq 600); do
    grep -q 'state: restored' "$dir/rs3.log" && break
    sleep 0.5
done
kill -TERM $stage # a clean stop writes the checkpoint
wait $stage
grep -m1 'state: checkpoint' "$dir/rs3.log" | sed 's/^[^:]*: //'
echo "restore from the local checkpoint:"
restore "$dir/rs4.log"

# -- restore after kill -9: the last flush, then the input since it replayed
config kr $tag.in1 true
"$build/tests/bw_topics" "$brokers" 1 $tag.kr.s $tag.kr.t $tag.kr.d
"$build/bayeswatch" run --config "$dir/kr.yaml" 2> "$dir/kr1.log" &
stage=$!
sleep "${KILL_AFTER:-15}"
kill -KILL $stage
wait $stage || true
echo "restore after kill -9 (${KILL_AFTER:-15} s into the run):"
restore "$dir/kr2.log" kr
