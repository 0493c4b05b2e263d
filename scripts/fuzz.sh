#!/usr/bin/env bash
# Build the libFuzzer targets with clang (+ ASan/UBSan) and fuzz each,
# starting from tests/fuzz/corpus/TARGET:
#   scripts/fuzz.sh [SECONDS] [TARGET...]  each for SECONDS (default 60)
#   scripts/fuzz.sh --long [TARGET...]     each for at least 10M executions
# (JOBS parallel workers, default 2; built RelWithDebInfo with ASan+UBSan,
# as libFuzzer is usually run: -O0 is several times slower).
# Then the new inputs that reach new coverage are merged into the committed
# corpus (libFuzzer -merge=1: only what adds coverage), so ctest replays
# them on every build; commit tests/fuzz/corpus. Crashing inputs go to
# build-fuzz/crashes/ (commit them to the corpus once fixed). Prints, per
# target, the executions and crashes.
# Targets: config state replay ingest (framing + Avro) restore (a
# partition's changelog, checksums fixed up so mutations reach the decoders).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
long=""
secs=60
if [ "${1:-}" = --long ]; then
    long=yes
    shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    secs=$1
    shift
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config state replay ingest restore)
jobs=${JOBS:-2}
"$root/scripts/deps.sh" clang
dir=$root/build-fuzz
CC=clang-14 cmake -S "$root" -B "$dir" -DBW_FUZZ=ON -DBW_SANITIZE=ON \
    -DBW_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$dir" -j "$(nproc)" --target \
    $(printf 'fuzz_%s ' "${targets[@]}") > /dev/null
mkdir -p "$dir/crashes"
summary=()
for t in "${targets[@]}"; do
    bin=$dir/tests/fuzz_$t
    work=$dir/corpus-$t
    logs=$dir/logs-$t
    rm -rf "$logs"
    mkdir -p "$work" "$logs"
    if [ -n "$long" ]; then
        # each worker runs its share of the 10M; a crash stops that worker
        runs=$(( (10000000 + jobs - 1) / jobs ))
        echo "== fuzz_$t: 10M executions over $jobs workers"
        for j in $(seq "$jobs"); do
            "$bin" -runs="$runs" -timeout=10 -seed="$j" -print_final_stats=1 \
                -artifact_prefix="$dir/crashes/$t-" "$work" \
                "$root/tests/fuzz/corpus/$t" > "$logs/w$j.log" 2>&1 &
        done
        wait || true
    else
        echo "== fuzz_$t for ${secs}s over $jobs workers"
        for j in $(seq "$jobs"); do
            "$bin" -max_total_time="$secs" -timeout=10 -seed="$j" \
                -print_final_stats=1 -artifact_prefix="$dir/crashes/$t-" \
                "$work" "$root/tests/fuzz/corpus/$t" > "$logs/w$j.log" 2>&1 &
        done
        wait || true
    fi
    execs=$(cat "$logs"/w*.log | sed -n 's/^stat::number_of_executed_units: *//p' |
        awk '{s += $1} END {print s + 0}')
    crashes=$(ls "$dir/crashes" | grep -c "^$t-" || true)
    "$bin" -merge=1 "$root/tests/fuzz/corpus/$t" "$work" > "$logs/merge.log" 2>&1
    added=$(sed -n 's/.*MERGE-OUTER: \([0-9]*\) new files.*/\1/p' "$logs/merge.log")
    summary+=("fuzz_$t: $execs executions, $crashes crashing inputs, ${added:-0} inputs added to the corpus")
done
printf '%s\n' "${summary[@]}"
