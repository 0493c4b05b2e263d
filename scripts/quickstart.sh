#!/usr/bin/env bash
# The README's main-job command: install the build dependencies, build, and
# run `bayeswatch demo` - the real Kafka stage (exactly-once) on librdkafka's
# in-process mock cluster, fed by a synthetic telemetry generator with
# injected incidents, shown live; no external Kafka needed. Extra
# arguments go to the demo (e.g. --speed 30 --hours 8, --plain).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh" "$root/build" > /dev/null
exec "$root/build/bayeswatch" demo "$@"
