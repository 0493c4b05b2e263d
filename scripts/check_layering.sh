#!/usr/bin/env bash
# Layering rules the build cannot see, checked in CI (exit 1 on a breach):
#  1. no source under src/ includes a header by a path that climbs out of
#     its folder ("../"): a stage reaches another only through its public
#     header under include/bayeswatch/, or a library's declared include
#     directory (src/avro);
#  2. the math (src/model/) includes only the C library, GSL and our own
#     headers: no Kafka, Avro or YAML in the models.
# usage: scripts/check_layering.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
if grep -rn '#include *"\.\./' src; then
    echo "layering: the includes above climb out of their folder" >&2
    bad=1
fi
std='assert|errno|float|inttypes|limits|math|stdarg|stdbool|stddef|stdint|stdio|stdlib|string'
if grep -rn '#include *<' src/model | grep -Ev "#include *<(($std)\.h|gsl/[a-z_]+\.h)>"; then
    echo "layering: src/model includes more than the C library and GSL" >&2
    bad=1
fi
if grep -rn '#include *"' src/model |
    grep -Ev '#include *"(bayeswatch/(err|mem|hash|buf|config|model|map|timefmt)\.h|[a-z_]+\.h)"'; then
    echo "layering: src/model includes a stage header other than base (err, mem, hash, buf, map, timefmt), config, model" >&2
    bad=1
fi
[ "$bad" -eq 0 ] && echo "layering: ok"
exit "$bad"
