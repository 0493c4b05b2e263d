#!/usr/bin/env bash
# Build the libFuzzer targets with clang (+ ASan/UBSan) and fuzz each for
# SECONDS (default 60), starting from and adding to tests/fuzz/corpus.
# Crashing inputs are written to build-fuzz/crashes/; commit them to the
# corpus once fixed, so ctest replays them on every build.
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (config state replay ingest)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config state replay ingest)
"$root/scripts/deps.sh"
if ! command -v clang-14 > /dev/null; then
    apt-get install -y -qq clang-14 libclang-rt-14-dev > /dev/null
fi
dir=$root/build-fuzz
CC=clang-14 cmake -S "$root" -B "$dir" -DBW_FUZZ=ON -DBW_SANITIZE=ON \
    -DBW_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug > /dev/null
cmake --build "$dir" -j "$(nproc)" --target \
    $(printf 'fuzz_%s ' "${targets[@]}") > /dev/null
mkdir -p "$dir/crashes"
for t in "${targets[@]}"; do
    echo "== fuzz_$t for ${secs}s"
    mkdir -p "$dir/corpus-$t"
    "$dir/tests/fuzz_$t" -max_total_time="$secs" -timeout=10 \
        -artifact_prefix="$dir/crashes/$t-" -print_final_stats=1 \
        "$dir/corpus-$t" "$root/tests/fuzz/corpus/$t" 2>&1 | tail -n 12
done
