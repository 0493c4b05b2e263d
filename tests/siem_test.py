#!/usr/bin/env python3
"""SIEM alert documents (emit.alerts, src/emit/siem.c) against the field
lists shipped in schemas/siem/ (ECS 8.11, OCSF 1.5.0 Detection Finding,
their sources named in the files).

Telemetry with known incidents (a latency shift, an error-rate breach of
the SLO, a weak three-signal security incident) is replayed with
`--alerts` in each format. Checked:
  - every document validates: ECS fields known (or under the custom
    namespace), types, allowed values, required fields; OCSF attributes
    known per object, types, enums, required attributes, type_uid;
  - the fields the issue names are there (event.kind alert, category,
    risk_score and risk_score_norm 0-100, severity, @timestamp,
    event.created, rule.name, observer/service, ranked contributors);
  - each incident raises its kind of alert (anomaly, slo_breach, threat);
  - ids: unique, the same for the same record in both formats, and the
    same when the records are replayed (a replay of the first part of the
    input gives byte-identical documents for it);
  - every line is one JSON document, also with --threats written beside;
  - the validators reject a wrong document (they can fail).
usage: siem_test.py BAYESWATCH_BIN SOURCE_DIR
"""
import datetime
import json
import math
import os
import random
import subprocess
import sys
import tempfile

BIN, SRC = None, None  # main(): the binary and the source tree
STEP = 60_000
T0 = 1_709_251_200_000  # 2024-03-01T00:00:00Z
MINUTES = 2 * 1440

CONFIG = """
engine:
  routes:
    - metric: latency_ms
      transform: log
    - metric: errors
      model: pooled_count
      slo: 0.01
    - metric: auth_failures
      transform: log1p
    - metric: waf_hits
      transform: log1p
    - metric: egress_bytes
      transform: log
model:
  pf:
    daily: {enabled: false}
  fusion:
    window_ms: 1800000
    prior: 0.01
    rules:
      - name: stuffing
        signals:
          - {metric: auth_failures, detection: 0.85, false_alarm: 0.02}
          - {metric: waf_hits, detection: 0.8, false_alarm: 0.02}
          - {metric: egress_bytes, detection: 0.7, false_alarm: 0.02}
emit:
  alerts:
    format: %s
"""

INCIDENT = (1900, 1990)  # minutes: latency x1.8 in r1, errors x4 in r2,
# the security signals of r3 raised 1.8x (egress by 2 sds)


def poisson(rng, lam):
    lim, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= lim:
            return k
        k += 1


def generate(path):
    rng = random.Random(11)
    with open(path, "w") as f:
        f.write("timestamp,region,service,metric,value,count\n")
        for t in range(MINUTES):
            inc = INCIDENT[0] <= t < INCIDENT[1]
            ts = T0 + t * STEP
            for r in ("r1", "r2", "r3", "r4"):
                lat = 120 * math.exp(0.1 * rng.gauss(0, 1))
                if inc and r == "r1":
                    lat *= 1.8
                f.write(f"{ts},{r},api,latency_ms,{lat:.3f},\n")
                n = 5000
                rate = 0.004 * (4 if inc and r == "r2" else 1)
                f.write(f"{ts},{r},api,errors,{poisson(rng, n * rate)},{n}\n")
                up = 1.8 if inc and r == "r3" else 1.0
                f.write(f"{ts},{r},auth,auth_failures,"
                        f"{poisson(rng, 4 * up)},\n")
                f.write(f"{ts},{r},auth,waf_hits,{poisson(rng, 3 * up)},\n")
                eg = 5e6 * math.exp(0.15 * rng.gauss(0, 1)
                                    + (0.3 if up > 1 else 0))
                f.write(f"{ts},{r},auth,egress_bytes,{eg:.0f},\n")


def replay(workdir, fmt, name):
    """Replay workdir/events.csv, named as the source "events.csv"."""
    cfg = os.path.join(workdir, f"{fmt}.yaml")
    with open(cfg, "w") as f:
        f.write(CONFIG % fmt)
    out = os.path.join(workdir, name)
    # with a threats CSV next to them: alerts must stay whole NDJSON
    # lines (a shared scratch buffer once leaked CSV bytes into them)
    subprocess.run([BIN, "replay", "--config", cfg, "--alerts", out,
                    "--threats", os.path.join(workdir, f"{name}.threats"),
                    "events.csv"], check=True, cwd=workdir,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out) as f:
        lines = f.read().splitlines()
    return lines, [json.loads(x) for x in lines]


# ---- validators ---------------------------------------------------------

def is_date(v):
    try:
        datetime.datetime.strptime(v, "%Y-%m-%dT%H:%M:%S.%fZ")
        return True
    except (TypeError, ValueError):
        return False


def ecs_type_ok(t, v):
    if t == "date":
        return is_date(v)
    if t in ("keyword", "match_only_text"):
        return isinstance(v, str)
    if t == "long":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "float":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return t == "object" and isinstance(v, dict)


def flatten(doc, prefix=""):
    """Dotted paths to leaves; a dict is a leaf only under `labels`."""
    for k, v in doc.items():
        path = prefix + k
        if isinstance(v, dict) and path != "labels":
            yield from flatten(v, path + ".")
        else:
            yield path, v


def validate_ecs(doc, spec):
    errs, fields = [], spec["fields"]
    ns = spec["custom_namespace"] + "."
    seen = set()
    for path, v in flatten(doc):
        seen.add(path)
        if path.startswith(ns):
            continue
        f = fields.get(path)
        if f is None:
            errs.append(f"{path}: not an ECS field (nor under {ns})")
            continue
        vals = v if f.get("array") and isinstance(v, list) else [v]
        for x in vals:
            if not ecs_type_ok(f["type"], x):
                errs.append(f"{path}: {x!r} is not {f['type']}")
            elif "allowed" in f and x not in f["allowed"]:
                errs.append(f"{path}: {x!r} not an allowed value")
            elif "min" in f and not f["min"] <= x <= f["max"]:
                errs.append(f"{path}: {x!r} outside {f['min']}-{f['max']}")
    errs += [f"{r}: required, missing" for r in spec["required"]
             if r not in seen]
    return errs


def ocsf_type_ok(t, v):
    if t in ("integer_t", "long_t", "timestamp_t"):
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "string_t":
        return isinstance(v, str)
    if t == "boolean_t":
        return isinstance(v, bool)
    return t == "object" and isinstance(v, dict)


def validate_ocsf_obj(obj, attrs, spec, where):
    errs = []
    for k, v in obj.items():
        a = attrs.get(k)
        if a is None:
            errs.append(f"{where}{k}: not an attribute here")
            continue
        vals = v if a.get("array") else [v]
        if a.get("array") and not isinstance(v, list):
            errs.append(f"{where}{k}: not an array")
            continue
        for x in vals:
            if not ocsf_type_ok(a["type"], x):
                errs.append(f"{where}{k}: {x!r} is not {a['type']}")
            elif "enum" in a and x not in a["enum"]:
                errs.append(f"{where}{k}: {x!r} not in its enum")
            elif a["type"] == "object" and a.get("object"):
                errs += validate_ocsf_obj(x, spec["objects"][a["object"]],
                                          spec, f"{where}{k}.")
    errs += [f"{where}{k}: required, missing" for k, a in attrs.items()
             if a["requirement"] == "required" and k not in obj]
    return errs


def validate_ocsf(doc, spec):
    errs = validate_ocsf_obj(doc, spec["class"], spec, "")
    if doc.get("type_uid") != spec["class_uid"] * 100 + doc.get("activity_id",
                                                                -1):
        errs.append("type_uid: not class_uid * 100 + activity_id")
    return errs


# ---- the checks ---------------------------------------------------------

def minute(doc_time_ms):
    return (doc_time_ms - T0) // STEP


def check_ecs(docs, spec):
    kinds, no_since = {}, [0]
    for d in docs:
        errs = validate_ecs(d, spec)
        assert not errs, f"ECS document invalid: {errs}\n{d}"
        ev, bw = d["event"], d["bayeswatch"]
        assert ev["kind"] == "alert" and ev["category"] and ev["id"]
        assert 0 <= ev["risk_score_norm"] <= 100
        assert ev["severity"] in (2, 3, 4, 5)
        assert is_date(ev["created"]) and d["rule"]["name"]
        assert d["observer"]["product"] == "bayeswatch"
        t = int(datetime.datetime.strptime(
            d["@timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=datetime.timezone.utc).timestamp() * 1000)
        if bw["alert_kind"] == "threat":
            llr = [c["log_likelihood_ratio"] for c in bw["contributors"]]
            assert llr and llr == sorted(llr, reverse=True), bw
            # an alerting level is above low: it has a start, by then
            assert 0 <= bw["elevated_since"] <= t, bw
            assert is_date(ev["start"]), ev
        else:
            assert d["service"]["name"] in ("api", "auth")
            # no episode (an onset, a spike): null, as in the score records
            since = bw["abnormal_since"]
            assert since is None or 0 <= since <= t, bw
            no_since[0] += since is None
        kinds.setdefault(bw["alert_kind"], []).append(
            (minute(t), d["cloud"]["region"], bw.get("metric")))
    print(f"ECS: {no_since[0]} anomaly alerts without an episode "
          "(abnormal_since null)")
    return kinds


def in_incident(m):
    return INCIDENT[0] <= m < INCIDENT[1] + 30


def load_specs(src):
    """The shipped field lists: (ECS, OCSF)."""
    with open(os.path.join(src, "schemas/siem/ecs_fields.json")) as f:
        ecs = json.load(f)
    with open(os.path.join(src, "schemas/siem/ocsf_detection_finding.json")) \
            as f:
        return ecs, json.load(f)


def smt_key(doc, conf):
    """The record key the Elasticsearch sink's transforms make from an
    alert document: ValueToKey (top-level fields), then ExtractField$Key
    (a dotted path under field.syntax.version V2, KIP-821)."""
    chain = conf["transforms"].split(",")
    key = None
    for name in chain:
        t = f"transforms.{name}."
        kind = conf[t + "type"].rsplit(".", 1)[1]
        if kind == "ValueToKey":
            key = {f: doc[f] for f in conf[t + "fields"].split(",")}
        elif kind == "ExtractField$Key":
            path = conf[t + "field"]
            if conf.get(t + "field.syntax.version") == "V2":
                for part in path.split("."):
                    key = key[part]
            else:
                key = key[path]
        else:
            raise AssertionError(f"unexpected transform {kind}")
    return key


def check_connectors(src, ecs):
    """The shipped Kafka Connect sink configs (config/siem/): what a SIEM
    needs from them holds on the documents this build writes."""
    def load(name):
        with open(os.path.join(src, "config/siem", name)) as f:
            return json.load(f)["config"]
    sp, es = load("splunk-sink.json"), load("elasticsearch-sink.json")
    for c in (sp, es):
        assert c["topics"] == "bayeswatch.alerts"
        assert c["consumer.override.isolation.level"] == "read_committed"
        assert c["errors.tolerance"] == "none"
        for k, v in c.items():  # secrets through a config provider only
            if "token" in k or "password" in k:
                assert v.startswith("${file:"), k
    assert sp["connector.class"] == "com.splunk.kafka.connect.SplunkSinkConnector"
    assert sp["splunk.hec.ack.enabled"] == "true"
    assert sp["splunk.sourcetypes"] == "_json"
    assert sp["splunk.hec.raw"] == "false"
    assert sp["splunk.hec.json.event.formatted"] == "false"
    assert sp["value.converter"].endswith("StringConverter")
    assert sp["splunk.hec.ssl.validate.certs"] == "true"
    assert es["key.ignore"] == "false" and es["write.method"] == "upsert"
    ids = [smt_key(d, es) for d in ecs]
    assert ids == [d["event"]["id"] for d in ecs], "the sink's _id is not event.id"
    assert len(set(ids)) == len(ids)
    print(f"connectors: Splunk HEC (_json, acks) and Elasticsearch "
          f"(_id = event.id for all {len(ids)} documents) configs check")


def main():
    global BIN, SRC
    BIN, SRC = os.path.abspath(sys.argv[1]), sys.argv[2]
    ecs_spec, ocsf_spec = load_specs(SRC)

    with tempfile.TemporaryDirectory() as wd:
        events = os.path.join(wd, "events.csv")
        generate(events)
        ecs_lines, ecs = replay(wd, "ecs", "ecs.json")
        ocsf_lines, ocsf = replay(wd, "ocsf", "ocsf.json")

        kinds = check_ecs(ecs, ecs_spec)
        want = {"anomaly": ("r1", "latency_ms"), "slo_breach": ("r2", "errors"),
                "threat": ("r3", None)}
        for kind, (region, metric) in want.items():
            hits = [k for k in kinds.get(kind, [])
                    if k[1] == region and k[2] == metric and in_incident(k[0])]
            assert hits, f"no {kind} alert for {region} in the incident"
            print(f"{kind}: {len(hits)} alerts on {region} in the incident")
        outside = [k for v in kinds.values() for k in v if not in_incident(k[0])]
        print(f"alerts outside the incident: {len(outside)}")
        assert len(outside) <= 2, outside
        for d in ocsf:
            errs = validate_ocsf(d, ocsf_spec)
            assert not errs, f"OCSF document invalid: {errs}\n{d}"
            assert d["finding_info"]["uid"] == d["metadata"]["uid"]
            if d["unmapped"]["alert_kind"] != "threat":
                aa = d["anomaly_analyses"][0]
                assert aa["baselines"][0]["observations"][0]["value"]

        ids = [d["event"]["id"] for d in ecs]
        assert len(set(ids)) == len(ids), "duplicate alert ids"
        sev = {d["event"]["id"]: d["event"]["severity"] for d in ecs}
        assert sev == {d["finding_info"]["uid"]: d["severity_id"]
                       for d in ocsf}, "ECS and OCSF ids or severities differ"

        # a replayed record gets the same id: replay the first 68% (to mid-incident) again
        with open(events) as f:
            rows = f.read().splitlines()
        part = os.path.join(wd, "part")
        os.mkdir(part)
        with open(os.path.join(part, "events.csv"), "w") as f:
            f.write("\n".join(rows[: int(len(rows) * 0.68)]) + "\n")
        again, _ = replay(part, "ecs", "again.json")
        assert again and again == ecs_lines[: len(again)], \
            "replayed records gave other documents"

        # the validators can fail
        bad = json.loads(ecs_lines[0])
        bad["event"]["kind"] = "alarm"
        bad["event"]["risk_score_norm"] = 140
        bad["host"] = {"nam": "x"}
        assert len(validate_ecs(bad, ecs_spec)) == 3
        bad = json.loads(ocsf_lines[0])
        bad["severity_id"] = 7
        del bad["finding_info"]["uid"]
        bad["metadata"]["product"]["vendor"] = "x"
        assert len(validate_ocsf(bad, ocsf_spec)) == 3
        check_connectors(SRC, ecs)
        print(f"{len(ecs)} ECS and {len(ocsf)} OCSF documents valid; "
              f"{len(again)} replayed with the same ids")


if __name__ == "__main__":
    main()
