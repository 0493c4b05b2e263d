#!/usr/bin/env python3
"""Integration tests of `bayeswatch run` with a real schema registry
(Apicurio Registry 3, scripts/registry.sh, its Confluent-compatible API)
and the real broker (scripts/kafka.sh).

usage: registry_test.py BUILD_DIR SOURCE_DIR TEST
tests: evolution, down, tls_auth
env:   BW_KAFKA_BROKERS (127.0.0.1:9092), BW_REGISTRY_URL
       (http://127.0.0.1:8081/apis/ccompat/v7)

Input is produced by Python's confluent_kafka AvroSerializer against the
same registry (interop), and by hand (fastavro + the Confluent frame) where
a test needs a schema id the stage has not seen. Outputs are decoded with
the schema the registry returns for the id in their frame.
"""
import base64
import http.server
import io
import json
import os
import re
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import fastavro
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

import kafka_test as kt
from kafka_test import check

REG = os.environ.get("BW_REGISTRY_URL",
                     "http://127.0.0.1:8081/apis/ccompat/v7")
CT = "application/vnd.schemaregistry.v1+json"


def rest(method, path, body=None):
    req = urllib.request.Request(
        REG + path, method=method, headers={"Content-Type": CT},
        data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def progress(msg):
    """A step reached, printed at once: a test that hangs shows where."""
    print(msg, flush=True)


def register(subject, schema):
    return rest("POST", f"/subjects/{subject}/versions",
                {"schema": json.dumps(schema)})["id"]


def ours(src):
    with open(f"{src}/schemas/metric_event.avsc") as f:
        return json.load(f)


def evolved(src):
    """A producer's evolution: `metric` renamed `metric_name` (the old
    name kept as an alias), `value` an int, a new field `host`, `labels`
    and `count` dropped (both have defaults in the stage's schema)."""
    s = ours(src)
    fields = []
    for f in s["fields"]:
        if f["name"] == "metric":
            fields.append({"name": "metric_name", "type": "string",
                           "aliases": ["metric"]})
        elif f["name"] == "value":
            fields.append({"name": "value", "type": "int"})
        elif f["name"] not in ("count", "labels"):
            fields.append(f)
    fields.append({"name": "host", "type": "string", "default": ""})
    return {**s, "fields": fields}


def incompatible(src):
    s = ours(src)
    return {**s, "fields": [dict(f, type="string") if f["name"] == "value"
                            else f for f in s["fields"]]}


def frame(schema_id, schema, rec):
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), rec)
    return b"\0" + struct.pack(">i", schema_id) + buf.getvalue()


def produce(topic, msgs):
    """msgs: (partition, value bytes); returns when all are acknowledged."""
    p = Producer({"bootstrap.servers": kt.BROKERS, "enable.idempotence": True})
    for part, value in msgs:
        p.produce(topic, value=value, partition=part, key=b"k")
    check(p.flush(60) == 0, "produce: not all acknowledged")


def decode_registered(env, what):
    """Output records of @p what: each framed with the id the registry
    holds for TOPIC-value, decoded with the schema fetched by that id."""
    subject = f"{env.topics[what]}-value"
    latest = rest("GET", f"/subjects/{subject}/versions/latest")
    schema = fastavro.parse_schema(json.loads(
        rest("GET", f"/schemas/ids/{latest['id']}")["schema"]))
    out = []
    for r in env.tap(what):
        v = r["value"]
        check(v[0] == 0 and struct.unpack(">i", v[1:5])[0] == latest["id"],
              f"{what}: frame {v[:5]!r}, registry id {latest['id']}")
        d = fastavro.schemaless_reader(io.BytesIO(v[5:]), schema)
        out.append({k: kt.wire(x) for k, x in d.items()})
    return out, latest["id"]


def rec_of(row, shape):
    t, region, service, metric, value = row[:5]
    count = float(row[5]) if len(row) > 5 and row[5] != "" else None
    if shape == "ours":
        return {"event_time": int(t), "region": region, "service": service,
                "metric": metric, "value": float(value), "count": count,
                "labels": {}}
    return {"event_time": int(t), "region": region, "service": service,
            "metric_name": metric, "value": int(round(float(value))),
            "host": "h1"}


def previous_schemas(src, name):
    """Every earlier landed version of schemas/NAME.avsc, oldest first
    (tests/data/schema_history: the newest there is schemas/'s own)."""
    hist = f"{src}/tests/data/schema_history"
    vs = sorted(int(m.group(1)) for m in (
        re.fullmatch(re.escape(name) + r"\.v(\d+)\.avsc", f)
        for f in os.listdir(hist)) if m)
    out = []
    for v in vs[:-1]:
        with open(f"{hist}/{name}.v{v}.avsc") as f:
            out.append(json.load(f))
    return out


def upgrade_from_history(env):
    """The scores subject as an upgraded deployment finds it: every earlier
    score schema registered, oldest first, under BACKWARD_TRANSITIVE (the
    rule README's compatibility promise is checked against). A schema
    that breaks it is refused (409), so the registry does enforce it; the
    stage must then register its own schema over them."""
    subject = f"{env.topics['scores']}-value"
    rest("PUT", f"/config/{subject}", {"compatibility": "BACKWARD_TRANSITIVE"})
    olds = previous_schemas(env.src, "anomaly_score")
    for s in olds:
        register(subject, s)
    bad = {**olds[-1], "fields": [dict(f, type="string")
                                  if f["name"] == "probability" else f
                                  for f in olds[-1]["fields"]]}
    # compatible with the newest but not with the oldest (refused by the
    # transitive rule only; plain BACKWARD accepts it): a field the oldest
    # lacks, its default dropped, and a new field with a default (without
    # one, a registry that compares schemas without their defaults, as
    # Apicurio 3 does, finds it equal to the newest and answers its id)
    first = {f["name"] for f in olds[0]["fields"]}
    late = next(f["name"] for f in olds[-1]["fields"]
                if f["name"] not in first and "default" in f)
    transitive = {**olds[-1], "fields": [
        {k: v for k, v in f.items() if k != "default"}
        if f["name"] == late else f for f in olds[-1]["fields"]] + [
        {"name": "compat_probe", "type": "int", "default": 0}]}
    for what, s in (("incompatible", bad), ("transitively incompatible",
                                            transitive)):
        try:
            register(subject, s)
            check(False, f"the registry accepted an {what} score schema")
        except urllib.error.HTTPError as e:
            check(e.code == 409, f"{what} score schema: HTTP {e.code}")
    # a registry may count versions differing only in docs as one
    return len(rest("GET", f"/subjects/{subject}/versions"))


def stage_config(env, extra=""):
    return env.config(base=f"{env.src}/config/sample.yaml", extra=f"""
registry: {{url: "{REG}", timeout_ms: 1000, backoff_max_ms: 2000}}
{extra}""")


def test_evolution(env):
    """Our schema through confluent_kafka's AvroSerializer, then an
    evolved schema (rename with alias, int for a double, a new field,
    fields with defaults dropped): both decoded and scored exactly as the
    replay of the same rows; an unknown id and an incompatible registered
    schema go to the dead letters with their reasons; the outputs carry
    the ids the registry gave them; the scores schema registers over every
    earlier landed version under BACKWARD_TRANSITIVE (upgrade_from_history)."""
    src = env.src
    # the client's HTTP calls have no timeout by default (httpx, None): a
    # registry that stalls one request hung the test until ctest's 600 s
    client = SchemaRegistryClient({"url": REG, "timeout": 30})
    topic = env.topics["in"]
    ser = AvroSerializer(client, json.dumps(ours(src)))
    ser2 = AvroSerializer(client, json.dumps(evolved(src)), conf={
        "subject.name.strategy": lambda ctx, name: f"{topic}-evolved"})
    rows = [r for r in kt.sample_rows(src)
            if len(r) == 5 and not r[4].startswith("-")][:1500]
    rows2 = []
    msgs = []
    for i, r in enumerate(rows):
        ctx = SerializationContext(topic, MessageField.VALUE)
        if i < len(rows) // 2:
            msgs.append((0, ser(rec_of(r, "ours"), ctx)))
            rows2.append(r)
        else:  # the evolved writer carries an int value and no count
            r2 = r[:4] + [str(int(round(float(r[4]))))]
            msgs.append((0, ser2(rec_of(r, "evolved"), ctx)))
            rows2.append(r2)
    bad_id = register(f"{topic}-bad", incompatible(src))
    msgs.insert(100, (0, b"\0" + struct.pack(">i", 987654) + b"\2x"))
    msgs.insert(900, (0, frame(bad_id, incompatible(src), {
        **rec_of(rows[0], "ours"), "value": "12"})))
    progress("evolution: input serialised against the registry")
    produce(topic, msgs)
    n_old = upgrade_from_history(env)
    progress(f"evolution: {len(msgs)} records produced, {n_old} earlier "
             f"score schemas registered")

    config = stage_config(env)
    stage = env.start(config, "reg")
    env.wait_count("scores", len(rows), 180, [stage])
    env.wait_count("dead_letters", 2, 60, [stage])
    progress("evolution: outputs counted; stopping the stage")
    rc, log = env.stop(stage)
    check(rc == 0, f"stage exit {rc}:\n{log[-3000:]}")
    got_s, sid = decode_registered(env, "scores")
    got_t, tid = decode_registered(env, "threats")
    dls, did = decode_registered(env, "dead_letters")
    kt.equal_to_replay(env, got_s, got_t, rows2, config)
    reasons = sorted((d["reason"], d["source_offset"]) for d in dls)
    check([r for r, _ in reasons] == ["unknown_schema", "wrong_schema"],
          f"dead letters {reasons}")
    check(any("987654" in d["detail"] for d in dls) and
          any("value" in d["detail"] for d in dls), f"details {dls}")
    check(len({sid, tid, did}) == 3, "three output schemas, three ids")
    versions = rest("GET", f"/subjects/{env.topics['scores']}-value/versions")
    check(len(versions) == n_old + 1,
          f"scores subject: {n_old} earlier versions, then ours: {versions}")
    print(f"evolution: {len(got_s)} scores ({len(rows) // 2} written with "
          f"our schema by AvroSerializer, the rest with an evolved one) "
          f"equal to replay; dead letters {reasons}; output ids "
          f"{sid}/{tid}/{did} from the registry; the scores schema "
          f"registered over its {n_old} earlier versions under "
          f"BACKWARD_TRANSITIVE")


def test_down(env):
    """The registry stops answering (SIGSTOP) mid-run: partition 0, whose
    schema is cached, goes on being scored; partition 1's records with a
    schema id not yet seen wait (neither scored nor dead letters) and are
    scored once the registry answers again; every input scored once. A
    stage started with the registry unreachable says so and exits."""
    src = env.src
    topic = env.topics["in"]
    rows = [r for r in kt.sample_rows(src) if not r[4].startswith("-")]
    sa = ours(src)
    id_a = register(f"{topic}-value", sa)
    sb = {**sa, "fields": sa["fields"] + [
        {"name": "zone", "type": "string", "default": "z"}]}
    id_b = register(f"{topic}-b", sb)

    bad = env.config(name="bad", extra='registry: {url: '
                     '"http://127.0.0.1:9/apis/ccompat/v7", timeout_ms: 500}')
    bad_rc, log, _ = env.run_to_exit(bad, "bad")
    check(bad_rc != 0 and "registry" in log and "9/apis" in log,
          f"unreachable registry at start-up: exit {bad_rc}\n{log[-2000:]}")
    said = log.strip().splitlines()[-1][:160]

    part0 = [r for r in rows if r[1] in ("eu-west", "us-east")]
    part1 = [r for r in rows if r[1] not in ("eu-west", "us-east")]
    n0 = len(part0) // 2
    produce(topic, [(0, frame(id_a, sa, rec_of(r, "ours")))
                    for r in part0[:n0]])
    config = stage_config(env)
    stage = env.start(config, "reg")
    env.wait_count("scores", n0, 120, [stage])
    subprocess.run([f"{src}/scripts/registry.sh", "pause"], check=True)
    try:
        produce(topic, [(1, frame(id_b, sb, {**rec_of(r, "ours"),
                                             "zone": "z1"}))
                        for r in part1[:300]])
        produce(topic, [(0, frame(id_a, sa, rec_of(r, "ours")))
                        for r in part0[n0:]])
        env.wait_count("scores", len(part0), 120, [stage])
        time.sleep(3)
        got = env.tap("scores")
        check(len(got) == len(part0),
              f"{len(got)} scores while the registry is down, wanted "
              f"{len(part0)} (partition 0 only)")
        check(len(env.tap("dead_letters")) == 0,
              "no dead letters while the registry is down")
    finally:
        subprocess.run([f"{src}/scripts/registry.sh", "resume"], check=True)
    env.wait_count("scores", len(part0) + 300, 120, [stage])
    rc, log = env.stop(stage)
    check(rc == 0, f"stage exit {rc}:\n{log[-3000:]}")
    got_s, _ = decode_registered(env, "scores")
    kt.exactly_once(got_s, len(part0) + 300)
    check("waits at offset" in log, "the wait is logged")
    print(f"down: {len(part0)} scores on partition 0 while the registry was "
          f"stopped, partition 1's 300 waited and were scored after; no "
          f"dead letters; start-up with no registry: exit {bad_rc}, "
          f"{said!r}")


def reg_dir(env):
    return os.environ.get("BW_REGISTRY_DIR") or f"{env.src}/build/registry"


def proxy_body(handler):
    """The request's body, None without one."""
    n = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(n) if n else None


def forward(handler, body):
    """The real registry's answer to @p handler's request: (body, code)."""
    base = REG.split("/apis/")[0]
    req = urllib.request.Request(base + handler.path, data=body,
                                 method=handler.command,
                                 headers={"Content-Type": CT})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read(), r.status
    except urllib.error.HTTPError as e:
        return e.read(), e.code


def reply(handler, code, out):
    handler.send_response(code)
    handler.send_header("Content-Type", CT)
    handler.send_header("Content-Length", str(len(out)))
    handler.end_headers()
    handler.wfile.write(out)


class AuthProxy(http.server.ThreadingHTTPServer):
    """HTTP basic auth in front of the registry (Apicurio's own needs an
    OIDC server): 401 without the right credentials, else forwarded."""

    def __init__(self, user, password):
        want = "Basic " + base64.b64encode(
            f"{user}:{password}".encode()).decode()
        self.seen = []

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_any(self):
                self.server.seen.append(self.headers.get("Authorization"))
                body = proxy_body(self)
                if self.headers.get("Authorization") != want:
                    out, code = b'{"error_code":401,"message":"Unauthorized"}', 401
                else:
                    out, code = forward(self, body)
                reply(self, code, out)
            do_GET = do_POST = do_any

        super().__init__(("127.0.0.1", 0), H)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class OddRegistry(http.server.ThreadingHTTPServer):
    """The registry behind a proxy that answers three ids oddly: @big with
    a 5 MB body (over the client's 4 MiB), @limited with 429 (rate
    limited) and @refused with 401 (credentials refused) their first @n
    times each; everything else forwarded."""

    def __init__(self, big, limited, refused, n):
        self.asked = {big: 0, limited: 0, refused: 0}

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_any(self):
                srv = self.server
                body = proxy_body(self)
                for sid in (big, limited, refused):
                    if self.path.endswith(f"/schemas/ids/{sid}"):
                        srv.asked[sid] += 1
                if self.path.endswith(f"/schemas/ids/{big}"):
                    pad = "x" * (5 * 1024 * 1024)
                    return reply(self, 200, json.dumps(
                        {"schema": "{}", "pad": pad}).encode())
                if (self.path.endswith(f"/schemas/ids/{limited}") and
                        srv.asked[limited] <= n):
                    return reply(self, 429, b'{"error_code":429,'
                                 b'"message":"Too Many Requests"}')
                if (self.path.endswith(f"/schemas/ids/{refused}") and
                        srv.asked[refused] <= n):
                    return reply(self, 401, b'{"error_code":401,'
                                 b'"message":"Unauthorized"}')
                out, code = forward(self, body)
                reply(self, code, out)
            do_GET = do_POST = do_any

        super().__init__(("127.0.0.1", 0), H)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_odd_answers(env):
    """Answers that are not the schema: one over 4 MiB is a remembered miss
    (its records are dead letters, unknown_schema, and the partition goes
    on; it stalled the partition for ever, read as an outage that the
    prober kept seeing end), a rate limit (429) and a refusal of the
    stage's credentials at run time (401: a password rotated under it) are
    outages to wait out (their records are scored once the registry
    answers; they were dead letters)."""
    src = env.src
    topic = env.topics["in"]
    rows = [r for r in kt.sample_rows(src)
            if len(r) == 5 and not r[4].startswith("-")][:300]
    sa = ours(src)
    id_a = register(f"{topic}-value", sa)
    sb = {**sa, "fields": sa["fields"] + [
        {"name": "zone", "type": "string", "default": "z"}]}
    id_b = register(f"{topic}-odd-b", sb)
    sc = {**sa, "fields": sa["fields"] + [
        {"name": "rack", "type": "string", "default": "r"}]}
    id_c = register(f"{topic}-odd-c", sc)
    big = 987001
    proxy = OddRegistry(big, id_b, id_c, 2)
    url = f"http://127.0.0.1:{proxy.server_address[1]}/apis/ccompat/v7"
    msgs = [(0, frame(id_a, sa, rec_of(r, "ours"))) for r in rows[:100]]
    msgs += [(0, b"\0" + struct.pack(">i", big) + b"\2x")] * 3
    msgs += [(0, frame(id_b, sb, {**rec_of(r, "ours"), "zone": "q"}))
             for r in rows[100:200]]
    msgs += [(0, frame(id_c, sc, {**rec_of(r, "ours"), "rack": "k"}))
             for r in rows[200:250]]
    msgs += [(0, frame(id_a, sa, rec_of(r, "ours"))) for r in rows[250:]]
    produce(topic, msgs)
    config = env.config(base=f"{src}/config/sample.yaml", extra=f"""
registry: {{url: "{url}", timeout_ms: 2000, backoff_max_ms: 2000}}""")
    stage = env.start(config, "odd")
    env.wait_count("scores", len(rows), 120, [stage])
    env.wait_count("dead_letters", 3, 60, [stage])
    rc, log = env.stop(stage)
    check(rc == 0, f"stage exit {rc}:\n{log[-3000:]}")
    dls, _ = decode_registered(env, "dead_letters")
    check(len(dls) == 3 and all(d["reason"] == "unknown_schema"
                                for d in dls) and
          any("over 4194304 bytes" in d["detail"] for d in dls),
          f"dead letters {[(d['reason'], d['detail']) for d in dls]}")
    check(proxy.asked[big] == 1,
          f"the long answer asked for {proxy.asked[big]} times, wanted once")
    check(proxy.asked[id_b] >= 3, f"429 twice, then forwarded: "
          f"{proxy.asked[id_b]} requests")
    check(proxy.asked[id_c] >= 3, f"401 twice, then forwarded: "
          f"{proxy.asked[id_c]} requests")
    check("Unauthorized" in log, "the wait for the refused id is logged "
          "with the registry's answer")
    proxy.shutdown()
    print(f"odd answers: {len(rows)} scored, 100 of them after two 429s "
          f"and 50 after two 401s; the 5 MB answer asked for once, its 3 "
          f"records dead letters")


def refused_at_start(env, name, extra, pattern):
    rc, log, _ = env.run_to_exit(env.config(name=name, extra=extra), name)
    last = log.strip().splitlines()[-1] if log.strip() else ""
    check(rc != 0 and re.search(pattern, last),
          f"{name}: exit {rc}, last line {last!r}, wanted {pattern!r}")
    return last


def test_tls_auth(env):
    """https with registry.ca_location; without it, or by a name the
    certificate does not carry, a clear start-up error. Basic auth with
    the password from a file; a wrong one is a clear start-up error and
    is not printed."""
    src = env.src
    port = int(REG.split(":")[2].split("/")[0]) + 2
    ca = f"{reg_dir(env)}/tls/ca.pem"
    https = f"https://localhost:{port}/apis/ccompat/v7"
    rows = [r for r in kt.sample_rows(src) if len(r) == 5][:200]
    topic = env.topics["in"]
    sid = register(f"{topic}-value", ours(src))
    produce(topic, [(0, frame(sid, ours(src), rec_of(r, "ours")))
                    for r in rows])
    config = env.config(base=f"{src}/config/sample.yaml", extra=f"""
registry: {{url: "{https}", ca_location: "{ca}", timeout_ms: 2000}}""")
    stage = env.start(config, "tls")
    env.wait_count("scores", len(rows), 120, [stage])
    rc, log = env.stop(stage)
    check(rc == 0 and "has schema id" in log, f"https: exit {rc}\n{log[-2000:]}")
    no_ca = refused_at_start(env, "no_ca", f'registry: {{url: "{https}"}}',
                             r"registry: .*https://localhost.*certificate "
                             r"problem")
    wrong_name = refused_at_start(
        env, "wrong_name", f'registry: {{url: "https://127.0.0.1:{port}'
        f'/apis/ccompat/v7", ca_location: "{ca}"}}',
        r"registry: .*127\.0\.0\.1.*(does not match|no alternative)")

    proxy = AuthProxy("bw", "s3cret-registry")
    url = f"http://127.0.0.1:{proxy.server_address[1]}/apis/ccompat/v7"
    pw = f"{env.dir}/registry.password"
    with open(pw, "w") as f:
        f.write("s3cret-registry\n")
    ok = env.config(name="auth", base=f"{src}/config/sample.yaml", extra=f"""
registry: {{url: "{url}", username: bw, password: "${{file:{pw}}}"}}""")
    stage = env.start(ok, "auth")
    sv = {**ours(src), "fields": ours(src)["fields"] + [
        {"name": "zone", "type": "string", "default": "z"}]}
    vid = register(f"{topic}-v2", sv)  # a new id: fetched through the proxy
    more = [r for r in kt.sample_rows(src) if len(r) == 5][200:300]
    produce(topic, [(0, frame(vid, sv, {**rec_of(r, "ours"), "zone": "a"}))
                    for r in more])
    env.wait_count("scores", len(rows) + len(more), 120, [stage])
    rc, log = env.stop(stage)
    check(rc == 0 and "s3cret" not in log and "has schema id" in log,
          f"basic auth: exit {rc}\n{log[-2000:]}")
    check(all(a is not None for a in proxy.seen), "every request authorised")
    with open(pw, "w") as f:
        f.write("wrong-pass\n")
    bad = refused_at_start(env, "auth_bad", f"""
registry: {{url: "{url}", username: bw, password: "${{file:{pw}}}"}}""",
                           r"registry: .*HTTP 401")
    check("wrong-pass" not in bad, "the password is not printed")
    proxy.shutdown()
    print(f"tls_auth: {len(rows)} scored over https with ca_location and "
          f"through basic auth; refused: "
          f"{[x.split('versions: ')[-1] for x in (no_ca, wrong_name, bad)]}")


TESTS = {"evolution": (test_evolution, 1), "down": (test_down, 2),
         "tls_auth": (test_tls_auth, 1), "odd_answers": (test_odd_answers, 1)}

if __name__ == "__main__":
    sys.exit(kt.run_main(TESTS))
