#!/usr/bin/env bash
# Soak test of the Kafka stage on the real broker (not in CI): one hour by
# default at a steady rate with a poison record every POISON-th and one
# broker restart half way; reports memory, records in and lag every
# minute, and checks that nothing is lost or duplicated and that memory
# stops growing (tests/integration/soak.py).
# usage: scripts/soak.sh [SECONDS] [RATE] [POISON]   (3600 1000 5000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh" test
"$root/scripts/build.sh" "$root/build" > /dev/null
started=""
if ! "$root/scripts/kafka.sh" status > /dev/null 2>&1; then
    "$root/scripts/kafka.sh" start
    started=yes
fi
trap '[ -z "$started" ] || "$root/scripts/kafka.sh" stop' EXIT
export BW_KAFKA_BROKERS=127.0.0.1:${BW_KAFKA_PORT:-9092}
python3 "$root/tests/integration/soak.py" "$root/build" "$root" \
    "${1:-3600}" "${2:-1000}" "${3:-5000}"
