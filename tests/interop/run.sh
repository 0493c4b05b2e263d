#!/usr/bin/env bash
# ctest driver: write vectors with the C encoders, check them with fastavro.
set -euo pipefail
vectors=$1
src=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$vectors" "$dir"
python3 "$src/tests/interop/check_avro.py" "$dir" "$src/schemas"
