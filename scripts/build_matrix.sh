#!/usr/bin/env bash
# The compiler and build-type matrix of CI: builds bayeswatch with warnings as
# errors as Debug and Release with gcc and as RelWithDebInfo with clang (the
# RelWithDebInfo gcc build and the ASan build are scripts/test.sh's), and runs
# the unit tests of each, so the optimiser's warnings and results are checked
# wherever a packager may build.
# usage: scripts/build_matrix.sh [BUILD_ROOT]   (default: build-matrix/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build-matrix}
"$root/scripts/deps.sh" test
if ! command -v clang-14 > /dev/null; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        --no-install-recommends clang-14 >&2
fi
run() { # NAME CC BUILD_TYPE
    echo "== $1 ($2, $3)" >&2
    CC=$2 "$root/scripts/build.sh" "$out/$1" -DCMAKE_BUILD_TYPE="$3" \
        -DBW_BENCH=ON
    (cd "$out/$1" && ctest -L unit -j 2 --output-on-failure > "$out/$1.log" 2>&1) ||
        { cat "$out/$1.log"; exit 1; }
    grep "tests passed" "$out/$1.log" >&2
}
run gcc-debug gcc Debug
run gcc-release gcc Release
run clang-relwithdebinfo clang-14 RelWithDebInfo
