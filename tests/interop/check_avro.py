#!/usr/bin/env python3
"""Decode bayeswatch's output records with fastavro, an independent Avro
implementation, using only the .avsc files in schemas/, and compare them
with the values the C side says it encoded.

usage: check_avro.py VECTOR_DIR SCHEMA_DIR
"""
import io
import json
import math
import struct
import sys

import fastavro


def close(a, b):
    if a is None or b is None:
        return a is b
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-15, abs_tol=0.0) or a == b
    return a == b


def main():
    vec, schemas = sys.argv[1], sys.argv[2]
    parsed = {}
    checked = failed = 0
    for line in open(f"{vec}/expected.jsonl"):
        exp = json.loads(line)
        name = exp["schema"]
        if name not in parsed:
            parsed[name] = fastavro.parse_schema(json.load(open(f"{schemas}/{name}")))
        raw = open(f"{vec}/{exp['file']}", "rb").read()
        magic, schema_id = struct.unpack(">bI", raw[:5])
        buf = io.BytesIO(raw[5:])
        rec = fastavro.schemaless_reader(buf, parsed[name])
        problems = []
        if magic != 0 or schema_id != exp["id"]:
            problems.append(f"frame {magic}/{schema_id}")
        if buf.tell() != len(raw) - 5:
            problems.append("trailing bytes")
        for key, want in exp["fields"].items():
            got = rec[key]
            if key == "contributors":
                got = len(got)
            if not close(got, want):
                problems.append(f"{key}: got {got!r}, want {want!r}")
        checked += 1
        if problems:
            failed += 1
            print(f"FAIL {exp['file']}: {'; '.join(problems)}")
    kinds = sorted(parsed)
    print(f"{checked} records decoded with fastavro {fastavro.__version__} "
          f"({', '.join(kinds)}): {checked - failed} passed, {failed} failed")
    sys.exit(1 if failed or checked == 0 or len(kinds) < 2 else 0)


if __name__ == "__main__":
    main()
