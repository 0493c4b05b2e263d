#!/usr/bin/env bash
# Build bayeswatch as a packager or user would (Release; no tests, no
# benchmarks; warnings are not errors) and install it under PREFIX,
# honouring DESTDIR. docker/Dockerfile builds with exactly this script, and
# CI (scripts/build_matrix.sh) runs it the same way.
# usage: [DESTDIR=/staging] scripts/install.sh [PREFIX] [BUILD_DIR]
#   PREFIX     default /usr/local
#   BUILD_DIR  default build-install/
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-/usr/local}
dir=${2:-$root/build-install}
"$root/scripts/deps.sh"
gen=()
if command -v ninja > /dev/null; then gen=(-G Ninja); fi
cmake -S "$root" -B "$dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DBW_TESTS=OFF -DBW_BENCH=OFF -DCMAKE_INSTALL_PREFIX="$prefix" > /dev/null
cmake --build "$dir" -j "$(nproc)"
cmake --install "$dir" > /dev/null
echo "installed bayeswatch under ${DESTDIR:-}$prefix" >&2
