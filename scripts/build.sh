#!/usr/bin/env bash
# Configure and build bayeswatch (warnings are errors).
# usage: scripts/build.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/build}
shift || true
"$root/scripts/deps.sh"
gen=()
if command -v ninja > /dev/null; then gen=(-G Ninja); fi
if [ ! -f "$dir/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$dir" "${gen[@]}" -DBW_WERROR=ON "$@" > /dev/null
elif [ $# -gt 0 ]; then
    # an existing build directory takes the settings given now (e.g. the
    # ASan build's flags after they change)
    cmake -S "$root" -B "$dir" "$@" > /dev/null
fi
cmake --build "$dir" -j "$(nproc)"
