#!/usr/bin/env python3
"""Every published version of an output schema stays readable.

tests/data/schema_history/NAME.vK.avsc holds each version of
schemas/NAME.avsc that landed on main (K = 1 the first); the newest is the
file in schemas/. A consumer that upgrades its reader schema must still
read every record an older bayeswatch wrote: for each pair of versions
(older writer, newer reader) this writes records drawn from the writer
schema (every union branch, enum symbol and array length 0-3 in turn) and
resolves them with fastavro, an independent Avro implementation, under the
reader schema (Avro 1.11 specification, "Schema Resolution"). Every field
the reader adds must come out as its default, every field both have must
come out unchanged. This is the Schema Registry's BACKWARD_TRANSITIVE rule,
checked on data rather than on the schemas' text.

usage: schema_compat_test.py SOURCE_DIR
"""
import glob
import io
import json
import os
import random
import re
import sys

import fastavro

MIN_RECORDS = 64


class Draw:
    """Values of an Avro schema, cycling through the choices."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.turn = {}  # per schema node: how often it was drawn

    def next(self, s):
        k = self.turn.get(id(s), 0)
        self.turn[id(s)] = k + 1
        return k

    def value(self, s, names):
        if isinstance(s, str):
            if s in names:
                return self.value(names[s], names)
            return self.prim(s)
        if isinstance(s, list):
            return self.value(s[self.next(s) % len(s)], names)
        t = s["type"]
        if t == "record":
            names[s["name"]] = s
            return {f["name"]: self.value(f["type"], names)
                    for f in s["fields"]}
        if t == "enum":
            names[s["name"]] = s
            return s["symbols"][self.next(s) % len(s["symbols"])]
        if t == "array":
            return [self.value(s["items"], names)
                    for _ in range(self.next(s) % 4)]
        if t == "map":
            return {f"k{i}": self.value(s["values"], names)
                    for i in range(self.next(s) % 3)}
        if t == "fixed":
            return bytes(self.rng.randrange(256) for _ in range(s["size"]))
        if s.get("logicalType") == "timestamp-millis":
            return 1764000000000 + self.rng.randrange(10 ** 9)
        return self.value(t, names)

    def prim(self, t):
        r = self.rng
        return {
            "null": None,
            "boolean": r.random() < 0.5,
            "int": r.randrange(-2 ** 31, 2 ** 31),
            "long": r.randrange(-2 ** 40, 2 ** 40),
            "float": r.uniform(-1e3, 1e3),
            "double": r.uniform(-1e6, 1e6),
            "bytes": bytes(r.randrange(256) for _ in range(r.randrange(8))),
            "string": "".join(r.choice("abcxyz-_é") for _ in range(r.randrange(9))),
        }[t]


def wire(v):
    """fastavro reads timestamp-millis as datetime; the wire value is ms."""
    if hasattr(v, "timestamp"):
        return round(v.timestamp() * 1000)
    if isinstance(v, dict):
        return {k: wire(x) for k, x in v.items()}
    if isinstance(v, list):
        return [wire(x) for x in v]
    return v


def agree(got, want, s, names):
    """@p got, read under reader schema @p s, is @p want (written under the
    older schema) resolved: nested records' added fields at their
    defaults, everything else unchanged. Returns a reason, or None."""
    if isinstance(s, str) and s in names:
        s = names[s]
    if isinstance(s, list):  # the branch a record value resolves to
        named = [names.get(b, b) if isinstance(b, str) else b for b in s]
        recs = [b for b in named
                if isinstance(b, dict) and b.get("type") == "record"]
        if isinstance(want, dict) and recs:
            return agree(got, want, recs[0], names)
        return None if got == want else f"{got!r} != {want!r}"
    if isinstance(s, dict) and s.get("type") == "record":
        names[s["name"]] = s
        for f in s["fields"]:
            if f["name"] in want:
                why = agree(got[f["name"]], want[f["name"]], f["type"], names)
            elif "default" in f:
                why = None if got[f["name"]] == f["default"] else \
                    f"added field {f['name']}: {got[f['name']]!r} is not " \
                    f"its default {f['default']!r}"
            else:
                why = f"field {f['name']} added without a default"
            if why:
                return f"{f['name']}: {why}"
        return None
    if isinstance(s, dict) and s.get("type") == "array":
        if len(got) != len(want):
            return f"{len(got)} items != {len(want)}"
        for g, w in zip(got, want):
            why = agree(g, w, s["items"], names)
            if why:
                return why
        return None
    if isinstance(s, dict) and s.get("type") == "enum":
        names[s["name"]] = s
    return None if got == want else f"{got!r} != {want!r}"


def check_pair(name, wpath, rpath, seed):
    """Records of the writer schema read under the reader schema: the
    number of records checked; raises on a failure."""
    wjson = json.load(open(wpath))
    rjson = json.load(open(rpath))
    wsch = fastavro.parse_schema(wjson)
    rsch = fastavro.parse_schema(rjson)
    draw = Draw(seed)
    for i in range(MIN_RECORDS):
        rec = draw.value(wjson, {})
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, wsch, rec)
        buf.seek(0)
        try:
            got = wire(fastavro.schemaless_reader(buf, wsch, rsch))
        except Exception as e:  # noqa: BLE001: the resolution's own error
            raise AssertionError(
                f"{name}: {os.path.basename(wpath)} record {i} not readable "
                f"as {os.path.basename(rpath)}: {e}") from e
        why = agree(got, rec, rjson, {})
        if why:
            raise AssertionError(
                f"{name}: {os.path.basename(wpath)} -> "
                f"{os.path.basename(rpath)} record {i}: {why}")
    return MIN_RECORDS


def main():
    src = sys.argv[1]
    hist = os.path.join(src, "tests/data/schema_history")
    by_name = {}
    for p in glob.glob(os.path.join(hist, "*.avsc")):
        m = re.fullmatch(r"(.+)\.v(\d+)\.avsc", os.path.basename(p))
        if m is None:
            print(f"FAIL unexpected file {p}")
            return 1
        by_name.setdefault(m.group(1), []).append((int(m.group(2)), p))
    if not by_name:
        print(f"FAIL no schema history under {hist}")
        return 1
    checked = pairs = 0
    for name, vs in sorted(by_name.items()):
        vs.sort()
        current = os.path.join(src, "schemas", f"{name}.avsc")
        if json.load(open(vs[-1][1])) != json.load(open(current)):
            print(f"FAIL {name}: schemas/{name}.avsc differs from its newest "
                  f"version in the history (add it as v{vs[-1][0] + 1})")
            return 1
        paths = [p for _, p in vs]
        for i, w in enumerate(paths):
            for j, r in enumerate(paths[i:], start=i):
                checked += check_pair(name, w, r, 1000 * i + j)
                pairs += 1
        print(f"{name}: versions 1-{len(paths)}, every older one read by "
              f"every newer one")
    print(f"ok: {pairs} writer/reader pairs, {checked} records resolved")
    return 0


if __name__ == "__main__":
    sys.exit(main())
