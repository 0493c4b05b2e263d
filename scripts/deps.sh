#!/usr/bin/env bash
# Install bayeswatch's build and test dependencies from Debian's packages.
# Idempotent: does nothing when everything is already installed.
set -euo pipefail
pkgs=(build-essential cmake pkg-config librdkafka-dev libavro-dev libyaml-dev
      libgsl-dev libcmocka-dev python3)
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
# fastavro (PyPI): the independent Avro implementation of the interop test.
if ! python3 -c 'import fastavro' 2> /dev/null; then
    echo "deps: installing fastavro" >&2
    python3 -m pip install --quiet fastavro >&2 ||
        python3 -m pip install --quiet --break-system-packages fastavro >&2
fi
