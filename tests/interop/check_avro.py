#!/usr/bin/env python3
"""Decode bayeswatch's output records with fastavro, an independent Avro
implementation, using only the .avsc files in schemas/, and compare them
with the values the C side says it encoded, and with the JSON form of the
same records.

usage: check_avro.py VECTOR_DIR SCHEMA_DIR
"""
import datetime
import io
import json
import math
import struct
import sys

import fastavro


def wire(v):
    """fastavro returns timestamp-millis as datetime; the wire value is ms."""
    if isinstance(v, datetime.datetime):
        return round(v.timestamp() * 1000)
    return v


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
        # the JSON form of the same record must agree field by field
        js = json.loads(open(f"{vec}/{exp['file']}.json").read())
        for key, got in rec.items():
            if key not in js:
                problems.append(f"json lacks {key}")
            elif key == "contributors":
                if [c["metric"] for c in got] != [c["metric"] for c in js[key]]:
                    problems.append("json contributors differ")
            elif not close(js[key], wire(got)):
                problems.append(f"json {key}: {js[key]!r} vs avro {got!r}")
        if set(js) != set(rec):
            problems.append(f"json keys differ: {sorted(set(js) ^ set(rec))}")
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
