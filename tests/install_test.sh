#!/usr/bin/env bash
# cmake --install into a staging prefix, then run the installed program:
# `version` prints the build's version, `check-config` accepts the
# installed reference and sample configs, the manual page is the --help
# text, the schemas are there.
# usage: install_test.sh BUILD_DIR
set -euo pipefail
build=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/usr" > /dev/null
bin=$tmp/usr/bin/bayeswatch
want=$("$build/bayeswatch" version)
[ "$("$bin" version)" = "$want" ] || { echo "FAIL: installed version" >&2; exit 1; }
"$bin" check-config "$tmp/usr/share/bayeswatch/bayeswatch.yaml"
"$bin" check-config "$tmp/usr/share/bayeswatch/sample.yaml"
man=$tmp/usr/share/man/man1/bayeswatch.1
head -1 "$man" | grep -q '^\.TH BAYESWATCH 1' || { echo "FAIL: man page" >&2; exit 1; }
grep -q 'check\\-config FILE\|check-config FILE' "$man" || { echo "FAIL: man page lacks the usage" >&2; exit 1; }
[ "$(ls "$tmp/usr/share/bayeswatch/schemas/"*.avsc | wc -l)" -eq 4 ] ||
    { echo "FAIL: schemas" >&2; exit 1; }
echo "installed: $want, configs valid, man page and schemas in place"
