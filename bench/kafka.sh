#!/usr/bin/env bash
# The Kafka stage through a real broker (scripts/kafka.sh start first), all
# in one run on the same broker:
#   1. pass-through: consume -> produce of the same messages (the ceiling);
#   2. bayeswatch run, exactly_once, default model: scores/s as a
#      read_committed reader sees them, with 1 and 2 stream threads;
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
tag=kb-$(date +%s)
kb=$build/bench/kbench
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2> /dev/null || true; rm -rf "$dir"' EXIT

"$build/tests/bw_topics" "$brokers" 4 $tag.in $tag.lat $tag.pt \
    $tag.eos.s $tag.eos.t $tag.eos.d $tag.alo.s $tag.alo.t $tag.alo.d \
    $tag.lat.s $tag.lat.t $tag.lat.d $tag.eos2t.s $tag.eos2t.t $tag.eos2t.d

config() { # NAME INPUT GUARANTEE THREADS
    cat > "$dir/$1.yaml" <<YAML
kafka: {bootstrap_servers: "$brokers", group_id: "$tag-$1"}
ingest: {topics: ["$2"]}
emit:
  scores: {topic: "$tag.$1.s"}
  threats: {topic: "$tag.$1.t"}
  dead_letters: {topic: "$tag.$1.d"}
pipeline: {guarantee: $3, instance_id: "$1", threads: $4}
YAML
}

stage_run() { # NAME: run the stage until the tail has seen N scores
    "$kb" tail "$brokers" "$tag.$1.s" "$n" > "$dir/$1.tail" &
    local tail=$! pids=()
    "$build/bayeswatch" run --config "$dir/$1.yaml" 2> "$dir/$1.log" &
    pids+=($!)
    wait $tail
    kill -TERM "${pids[@]}"
    wait "${pids[@]}"
    echo "$1: $(cat "$dir/$1.tail")"
}

echo "== $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
"$kb" feed "$brokers" $tag.in "$n" 0
"$kb" passthrough "$brokers" $tag.in $tag.pt "$n"
config eos $tag.in exactly_once 1
stage_run eos
config eos2t $tag.in exactly_once 2
stage_run eos2t
config alo $tag.in at_least_once 1
stage_run alo

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
