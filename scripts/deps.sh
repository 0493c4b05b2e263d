#!/usr/bin/env bash
# Install bayeswatch's build dependencies from Debian's packages; with the
# argument `test`, also what the tests need: a JRE and Maven for the Kafka
# broker of the integration tests (scripts/kafka.sh), kcat, and fastavro
# from PyPI (with pip from Debian if the interpreter has none); with `clang`,
# also clang-14 and its runtime (the compiler matrix, the fuzzers).
# Idempotent.
# usage: scripts/deps.sh [test|clang]
set -euo pipefail
pkgs=(build-essential cmake pkg-config librdkafka-dev libavro-dev libyaml-dev
      libgsl-dev libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev
      libcmocka-dev python3)
if [ "${1:-}" = test ]; then
    pkgs+=(kcat openjdk-17-jre-headless maven prometheus chromium
           chromium-driver)
elif [ "${1:-}" = clang ]; then
    pkgs+=(clang-14 libclang-rt-14-dev)
fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing+=("$p")
done
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >&2
fi
[ "${1:-}" = test ] || exit 0
# Debian's prometheus package starts its own server where it can; the
# tests run their own on a free port.
# fastavro (PyPI): the independent Avro implementation of the interop test.
if ! python3 -c 'import fastavro' 2> /dev/null; then
    if ! python3 -m pip --version > /dev/null 2>&1; then
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
            --no-install-recommends python3-pip >&2
    fi
    echo "deps: installing fastavro" >&2
    python3 -m pip install --quiet fastavro >&2 ||
        python3 -m pip install --quiet --break-system-packages fastavro >&2
fi
# confluent-kafka (PyPI): its wheel bundles a librdkafka >= 2.6.1, which the
# SCRAM tests run the stage with (tests/integration/secure_test.py); also
# the Python client of the interop tests.
if ! python3 -c 'import confluent_kafka.schema_registry.avro' 2> /dev/null; then
    echo "deps: installing confluent-kafka" >&2
    python3 -m pip install --quiet 'confluent-kafka[avro,schemaregistry]' >&2 ||
        python3 -m pip install --quiet --break-system-packages \
            'confluent-kafka[avro,schemaregistry]' >&2
fi
# PyYAML: the compose and provisioning files' check (tests/ops_static_test.py)
if ! python3 -c 'import yaml' 2> /dev/null; then
    echo "deps: installing PyYAML" >&2
    python3 -m pip install --quiet pyyaml >&2 ||
        python3 -m pip install --quiet --break-system-packages pyyaml >&2
fi
