#!/usr/bin/env bash
# The compiler and build-type matrix of CI: builds bayeswatch with warnings as
# errors as Debug and Release with gcc and as RelWithDebInfo with clang (the
# RelWithDebInfo gcc build and the ASan build are scripts/test.sh's), and runs
# the unit tests of each (installing into a staging prefix among them), so
# the optimiser's warnings and results are checked wherever a packager may
# build; the Release build is packaged as a .deb (CPack) whose dependencies
# and unpacked program are checked.
# usage: scripts/build_matrix.sh [BUILD_ROOT]   (default: build-matrix/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build-matrix}
"$root/scripts/deps.sh" test
"$root/scripts/deps.sh" clang
run() { # NAME CC BUILD_TYPE
    echo "== $1 ($2, $3)" >&2
    CC=$2 "$root/scripts/build.sh" "$out/$1" -DCMAKE_BUILD_TYPE="$3" \
        -DBW_BENCH=ON
    (cd "$out/$1" && ctest -L unit -j 2 --output-on-failure > "$out/$1.log" 2>&1) ||
        { cat "$out/$1.log"; exit 1; }
    grep "tests passed" "$out/$1.log" >&2
}
deb() { # the Release build's .deb: Debian runtime dependencies, runs unpacked
    local d=$out/gcc-release deb depends
    rm -f "$d"/bayeswatch_*.deb
    (cd "$d" && cpack -G DEB > /dev/null)
    deb=$(ls "$d"/bayeswatch_*.deb)
    depends=$(dpkg-deb -f "$deb" Depends)
    for lib in librdkafka libavro libyaml libgsl libmicrohttpd libc6; do
        grep -q "$lib" <<< "$depends" ||
            { echo "deb: $lib missing from Depends: $depends" >&2; exit 1; }
    done
    rm -rf "$d/deb-root"
    dpkg-deb -x "$deb" "$d/deb-root"
    "$d/deb-root/usr/bin/bayeswatch" check-config \
        "$d/deb-root/usr/share/bayeswatch/bayeswatch.yaml" > /dev/null
    echo "deb: $(basename "$deb"), Depends: $depends" >&2
}
install_script() { # the Dockerfile's build: scripts/install.sh, staged
    local stage=$out/staging
    rm -rf "$stage"
    DESTDIR=$stage "$root/scripts/install.sh" /usr "$out/install" 2>&1 | tail -1 >&2
    "$stage/usr/bin/bayeswatch" check-config \
        "$root/docker/bayeswatch.yaml" > /dev/null
    "$stage/usr/bin/bayeswatch" version >&2
}
install_script
run gcc-debug gcc Debug
run gcc-release gcc Release
deb
run clang-relwithdebinfo clang-14 RelWithDebInfo
