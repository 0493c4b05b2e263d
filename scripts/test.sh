#!/usr/bin/env bash
# The test command of the README and of CI: installs what it needs, builds,
# starts a single-node Kafka broker (scripts/kafka.sh) and a schema
# registry (scripts/registry.sh) for the integration tests, runs the whole
# suite, then builds with AddressSanitizer +
# UndefinedBehaviorSanitizer and runs the suite again; stops what it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh" test
"$root/scripts/build.sh" "$root/build"
started=""
if ! "$root/scripts/kafka.sh" status > /dev/null 2>&1; then
    "$root/scripts/kafka.sh" start
    started=yes
fi
reg_started=""
if ! "$root/scripts/registry.sh" status > /dev/null 2>&1; then
    "$root/scripts/registry.sh" start
    reg_started=yes
fi
trap '[ -z "$started" ] || "$root/scripts/kafka.sh" stop
      [ -z "$reg_started" ] || "$root/scripts/registry.sh" stop' EXIT
export BW_KAFKA_BROKERS=127.0.0.1:${BW_KAFKA_PORT:-9092}
export BW_REGISTRY_URL=http://127.0.0.1:${BW_REGISTRY_PORT:-8081}/apis/ccompat/v7
(cd "$root/build" && ctest --output-on-failure -j 2)
# -O1, as the sanitizers' documentation advises for speed: the unit tests
# ran about three times faster than at -O0 (the same sanitizers; the
# optimiser may drop a few accesses that -O0 would have checked)
"$root/scripts/build.sh" "$root/build-asan" -DBW_SANITIZE=ON \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DBW_BENCH=OFF
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd "$root/build-asan" && ctest --output-on-failure -j 2)
