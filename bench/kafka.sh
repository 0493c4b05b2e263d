#!/usr/bin/env bash
# The Kafka stage through a real broker (scripts/kafka.sh start first), all
# in one run on the same broker, each throughput configuration RUNS times
# (default 5; median, min and max), every one timed the same way: a
# read_committed reader (`kbench tail`) of its output topic, from the
# first record visible to the N-th:
#   1. pass-through: a transactional consume -> produce of the same records
#      with the stage's commit interval (the ceiling, like for like);
#   2. bayeswatch run, exactly_once, default model, 1 and 2 stream threads
#      (1 thread also with obs.listen off: what /metrics and the web view's
#      store cost);
#   3. the same under at_least_once;
#   4. latency: events paced at RATE/s for 10 s into a running
#      exactly_once stage; append -> readable by a read_committed reader,
#      p50 and p99 in steady state (the first 2 s, start-up, excluded).
# usage: bench/kafka.sh [N] [RATE]   (default 200000 events, 5000/s)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
brokers=${BW_KAFKA_BROKERS:-127.0.0.1:9092}
n=${1:-200000}
rate=${2:-5000}
runs=${RUNS:-5}
commit_ms=100 # the stage's default pipeline.commit_interval_ms
tag=kb-$(date +%s)
kb=$build/bench/kbench
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2> /dev/null || true; rm -rf "$dir"' EXIT

"$build/tests/bw_topics" "$brokers" 4 $tag.in $tag.lat $tag.lat.s $tag.lat.t \
    $tag.lat.d

config() { # NAME INPUT GUARANTEE THREADS [OBS_LISTEN]
    cat > "$dir/$1.yaml" <<YAML
kafka: {bootstrap_servers: "$brokers", group_id: "$tag-$1"}
ingest: {topics: ["$2"]}
emit:
  scores: {topic: "$tag.$1.s"}
  threats: {topic: "$tag.$1.t"}
  dead_letters: {topic: "$tag.$1.d"}
pipeline: {guarantee: $3, instance_id: "$1", threads: $4,
           commit_interval_ms: $commit_ms}
obs: {listen: "${5-127.0.0.1:0}"}
YAML
}

# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
unit=" records/s"

stage_once() { # NAME GUARANTEE THREADS [OBS_LISTEN]: one run on fresh
    #             outputs and group
    config "$1" $tag.in "$2" "$3" "${4-127.0.0.1:0}"
    time_stage "$1" 4
}

pt_once() { # NAME
    "$build/tests/bw_topics" "$brokers" 4 "$tag.$1"
    "$kb" tail "$brokers" "$tag.$1" "$n" > "$dir/$1.tail" &
    local tail=$!
    "$kb" passthrough "$brokers" $tag.in "$tag.$1" "$n" $commit_ms
    wait $tail
    rate_of "$dir/$1.tail"
}

echo "== $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
"$kb" feed "$brokers" $tag.in "$n" 0
declare -A rates
for i in $(seq "$runs"); do
    rates[pt]+=" $(pt_once pt$i)"
    rates[eos]+=" $(stage_once eos$i exactly_once 1)"
    rates[eosnoobs]+=" $(stage_once eosnoobs$i exactly_once 1 '')"
    rates[eos2t]+=" $(stage_once eos2t$i exactly_once 2)"
    rates[alo]+=" $(stage_once alo$i at_least_once 1)"
done
# shellcheck disable=SC2086
{
    summary "pass-through (transactional)" ${rates[pt]}
    summary "bayeswatch exactly_once, 1 thread" ${rates[eos]}
    summary "  the same, obs.listen off (no metrics, view)" ${rates[eosnoobs]}
    summary "bayeswatch exactly_once, 2 threads" ${rates[eos2t]}
    summary "bayeswatch at_least_once, 1 thread" ${rates[alo]}
}

config lat $tag.lat exactly_once 1
m=$((rate * 10))
"$kb" tail "$brokers" $tag.lat.s $m $((rate * 2)) > "$dir/lat.tail" &
tail=$!
"$build/bayeswatch" run --config "$dir/lat.yaml" 2> "$dir/lat.log" &
stage=$!
sleep 10 # group join and first fetch
"$kb" feed "$brokers" $tag.lat $m "$rate"
wait $tail
kill -TERM $stage
wait $stage
echo "latency at $rate events/s: $(cat "$dir/lat.tail")"
