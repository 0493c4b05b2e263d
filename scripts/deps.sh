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
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
echo "deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
