#!/usr/bin/env python3
"""Integration tests of `bayeswatch run` against a real Apache Kafka broker
(scripts/kafka.sh start). Each test uses its own topics and consumer group.

usage: kafka_test.py BUILD_DIR SOURCE_DIR TEST
tests: e2e, exactly_once_kill, rebalance, at_least_once, fenced
env:   BW_KAFKA_BROKERS (default 127.0.0.1:9092)

Outputs are read back with bw_tap (a read_committed consumer) and decoded
with fastavro from the .avsc files in schemas/ alone; kcat must read them
too. A read after the stages stopped waits (SETTLE_S) for the commit
markers of their last transactions and fails naming any partition whose
records stay behind an open transaction.
"""
import collections
import csv
import datetime
import io
import json
import math
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib

import fastavro

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
import siem_test  # noqa: E402  (the shipped field lists' validators)

BROKERS = os.environ.get("BW_KAFKA_BROKERS", "127.0.0.1:9092")
SETTLE_S = 15  # seconds a final read waits for commit markers (Env.tap)
SCHEMA_IDS = {"scores": 2, "threats": 3, "dead_letters": 4}


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


class Env:
    """Topics, config and processes of one test."""

    def __init__(self, build, src, name, partitions):
        self.build, self.src = build, src
        self.tag = f"{name}-{os.getpid()}-{int(time.time() * 1000) % 10**8}"
        self.dir = tempfile.mkdtemp(prefix=f"bw-{name}-")
        self.topics = {k: f"{self.tag}.{k}" for k in
                       ("in", "in2", "scores", "threats", "dead_letters",
                        "alerts")}
        self.procs = []
        self.schemas = {}
        subprocess.run([f"{build}/tests/bw_topics", BROKERS, str(partitions)]
                       + list(self.topics.values()), check=True)

    def config(self, name="stage", extra="", base=None, session=True,
               brokers=BROKERS, client=None):
        """A config: BASE's model sections plus this test's topics; with
        @p session, a 6 s group session (else librdkafka's 45 s default);
        @p client: kafka.client properties (security), bootstrapping from
        @p brokers."""
        text = open(base).read() if base else ""
        client = "".join(f'\n    {k}: "{v}"' for k, v in
                         (client or {}).items()) or " {}"
        consumer = """
  consumer:
    session.timeout.ms: 6000
    heartbeat.interval.ms: 1000""" if session else ""
        text += f"""
kafka:
  bootstrap_servers: "{brokers}"
  group_id: "{self.tag}"
  client:{client}{consumer}
ingest:
  topics: ["{self.topics['in']}"]
emit:
  scores: {{topic: "{self.topics['scores']}"}}
  threats: {{topic: "{self.topics['threats']}"}}
  dead_letters: {{topic: "{self.topics['dead_letters']}"}}
  alerts: {{topic: "{self.topics['alerts']}"}}
{extra}
"""
        if "\nobs:" not in text:  # several stages at once: any free port
            text += 'obs: {listen: "127.0.0.1:0"}\n'
        path = f"{self.dir}/{name}.yaml"
        with open(path, "w") as f:
            f.write(text)
        return path

    def feed(self, rows, poison=0, topic="in"):
        path = f"{self.dir}/feed-{len(os.listdir(self.dir))}.csv"
        with open(path, "w") as f:
            for r in rows:
                f.write(",".join(str(x) for x in r) + "\n")
        args = [f"{self.build}/tests/bw_feed", BROKERS, self.topics[topic],
                path]
        if poison:
            args += ["--poison", str(poison)]
        out = subprocess.run(args, check=True, capture_output=True,
                             text=True).stdout.split()
        return int(out[0]), int(out[1])

    def start(self, config, instance, env=None):
        log = open(f"{self.dir}/{instance}-{len(self.procs)}.log", "w+")
        p = subprocess.Popen([f"{self.build}/bayeswatch", "run", "--config",
                              config, "--instance", instance],
                             stdout=log, stderr=subprocess.STDOUT,
                             env=None if env is None else {**os.environ,
                                                           **env})
        p.log = log
        self.procs.append(p)
        return p

    def run_to_exit(self, config, instance, timeout=60):
        """A stage that should stop by itself: started, given @p timeout
        seconds to exit, then stopped; (its exit code, its log, it)."""
        p = self.start(config, instance)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        rc, log = self.stop(p)
        return rc, log, p

    def stop(self, p, sig=signal.SIGTERM, timeout=60):
        if p.poll() is None:
            p.send_signal(sig)
        rc = p.wait(timeout=timeout)
        p.log.seek(0)
        return rc, p.log.read()

    def tap(self, what, isolation="read_committed", settle=SETTLE_S):
        """Every record of an output topic. A read after the stages have
        stopped waits up to @p settle seconds for the commit markers of
        their last transactions (written asynchronously after the commit
        returns) and fails, naming the partitions, if records stay behind
        an open transaction; a read while a stage runs passes settle=0."""
        out = subprocess.run([f"{self.build}/tests/bw_tap", BROKERS,
                              self.topics[what], isolation, str(settle)],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise Failure(f"bw_tap {what}: {out.stderr.strip()}")
        recs = []
        for line in out.stdout.splitlines():
            part, off, key, val, hdrs = line.split(" ")
            recs.append({
                "partition": int(part), "offset": int(off),
                "key": b"" if key == "-" else bytes.fromhex(key),
                "value": b"" if val == "-" else bytes.fromhex(val),
                "headers": {} if hdrs == "-" else dict(
                    h.split("=", 1) for h in hdrs.split(";"))})
        return recs

    def schema(self, name):
        if name not in self.schemas:
            with open(f"{self.src}/schemas/{name}.avsc") as f:
                self.schemas[name] = fastavro.parse_schema(json.load(f))
        return self.schemas[name]

    def decode(self, what, recs):
        """Confluent framing checked, then fastavro from the .avsc alone."""
        name = {"scores": "anomaly_score", "threats": "threat_score",
                "dead_letters": "dead_letter"}[what]
        out = []
        for r in recs:
            v = r["value"]
            check(v[0] == 0 and struct.unpack(">i", v[1:5])[0] ==
                  SCHEMA_IDS[what], f"{what}: bad Confluent header {v[:5]}")
            buf = io.BytesIO(v[5:])
            d = fastavro.schemaless_reader(buf, self.schema(name))
            check(buf.tell() == len(v) - 5, f"{what}: trailing bytes")
            out.append({k: wire(x) for k, x in d.items()})
        return out

    def wait_count(self, what, n, timeout, procs=()):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = len(self.tap(what, settle=0))
            if got >= n:
                return got
            for p in procs:
                if p.poll() is not None:
                    p.log.seek(0)
                    raise Failure(f"stage exited early: {p.returncode}:\n"
                                  + p.log.read()[-4000:])
            time.sleep(1)
        raise Failure(f"{what}: {got} records after {timeout}s, wanted {n}")

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if os.environ.get("BW_KEEP_LOGS"):
            print(f"logs kept in {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def wire(v):
    if isinstance(v, datetime.datetime):
        return round(v.timestamp() * 1000)
    return v


def sample_rows(src):
    """tests/data/sample_telemetry.csv as feed rows (epoch ms)."""
    rows = []
    with open(f"{src}/tests/data/sample_telemetry.csv") as f:
        for r in csv.DictReader(f):
            t = datetime.datetime.strptime(r["timestamp"], "%Y-%m-%d %H:%M:%S")
            ms = int(t.replace(tzinfo=datetime.timezone.utc).timestamp()) * 1000
            rows.append([ms, r["region"], r["service"], r["metric"],
                         r["value"]] + ([r["count"]] if r["count"] else []))
    return rows


def synthetic_rows(n_regions, n_steps, seed, shift_at=None):
    """Latency of N regions; with @p shift_at, region r0 is 40 higher (8
    sds) for 60 steps from that step."""
    rng = random.Random(seed)
    t0 = 1764000000000
    rows = []
    for i in range(n_steps):
        for k in range(n_regions):
            up = 40 if shift_at is not None and k == 0 and \
                shift_at <= i < shift_at + 60 else 0
            rows.append([t0 + i * 60000, f"r{k}", "api", "latency_ms",
                         f"{100 + up + rng.gauss(0, 5):.4f}"])
    return rows


def exactly_once(scores, n_inputs, what="scores"):
    """One score per input offset, and every input scored."""
    seen = collections.Counter((s["source_partition"], s["source_offset"])
                               for s in scores)
    dups = sum(c - 1 for c in seen.values() if c > 1)
    check(dups == 0, f"{what}: {dups} duplicate outputs for one input")
    check(len(seen) == n_inputs,
          f"{what}: {len(seen)} distinct inputs scored, wanted {n_inputs}")


def replay_reference(env, rows, config):
    """bayeswatch replay of the same rows: the expected content."""
    path = f"{env.dir}/replay.csv"
    with open(path, "w") as f:
        f.write("timestamp,region,service,metric,value,count\n")
        for r in rows:
            f.write(",".join(str(x) for x in r) + ("" if len(r) > 5 else ",")
                    + "\n")
    out = subprocess.run([f"{env.build}/bayeswatch", "replay", "--config",
                          config, "--format", "json", "--threats",
                          f"{env.dir}/threats.jsonl", path],
                         capture_output=True, text=True, check=True).stdout
    scores = [json.loads(x) for x in out.splitlines()]
    threats = [json.loads(x) for x in open(f"{env.dir}/threats.jsonl")]
    return scores, threats


def same(a, b):
    if a is None or b is None:
        return (a is None or (isinstance(a, float) and math.isnan(a))) and \
               (b is None or (isinstance(b, float) and math.isnan(b)))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


SCORE_FIELDS = ("entity_id", "model", "probability", "score", "alert",
                "direction", "actual", "typical", "typical_lower",
                "typical_upper", "p_value", "p_slo_breach", "shrinkage",
                "population_mean", "p_collective", "block_mean",
                "block_typical", "p_own", "p_population", "abnormal_since",
                "adopted", "baseline_z", "warmup", "late", "event_time",
                "config_version")
THREAT_FIELDS = ("entity_id", "rule", "probability", "score", "level",
                 "log_likelihood_ratio", "elevated_since", "event_time")
CONTRIBUTOR_FIELDS = ("metric", "probability", "log_likelihood_ratio",
                      "log_bayes_factor")


def same_contributors(a, b):
    """The ranked contributing signals, field for field."""
    return len(a) == len(b) and all(
        same(x[f], y[f]) for x, y in zip(a, b) for f in CONTRIBUTOR_FIELDS)


def equal_to_replay(env, got_s, got_t, rows, config, what=""):
    """Scores (in input-offset order) and threats equal, field for field
    (all but processed_at and the freshness lag), one uninterrupted replay
    of @p rows: the input of one partition."""
    want_s, want_t = replay_reference(env, rows, config)
    got_s = sorted(got_s, key=lambda s: s["source_offset"])
    check(len(got_s) == len(want_s),
          f"{what}{len(got_s)} scores vs {len(want_s)}")
    for g, w in zip(got_s, want_s):
        for f in SCORE_FIELDS:
            check(same(g[f], w[f]), f"{what}score {g['source_offset']} {f}: "
                  f"{g[f]!r} != replay {w[f]!r}")
    check(len(got_t) == len(want_t),
          f"{what}{len(got_t)} threats vs {len(want_t)}")
    for g, w in zip(got_t, want_t):
        for f in THREAT_FIELDS:
            check(same(g[f], w[f]), f"{what}threat {f}: {g[f]!r} != {w[f]!r}")
        check(same_contributors(g["contributors"], w["contributors"]),
              f"{what}threat contributors: {g['contributors']!r} != "
              f"{w['contributors']!r}")


def scored_once_as_replay(env, rows, config):
    """Every input of @p rows (one partition) scored once, and the scores
    and threats equal to one uninterrupted replay."""
    got_s = env.decode("scores", env.tap("scores"))
    exactly_once(got_s, len(rows))
    equal_to_replay(env, got_s, env.decode("threats", env.tap("threats")),
                    rows, config)


def with_producer(config, props):
    """@p config with kafka.producer set to @p props (a flow mapping)."""
    with open(config) as f:
        text = f.read()
    with open(config, "w") as f:
        f.write(text.replace("\nkafka:\n",
                             f"\nkafka:\n  producer: {props}\n", 1))


def started_a_third_in(env, producer, name, extra=""):
    """The sample's first third scored by a stage committing every 2 s,
    kafka.producer set to @p producer, @p extra config sections: (config,
    rows, first, stage)."""
    config = env.config(base=f"{env.src}/config/sample.yaml", session=False,
                        extra="""pipeline: {static_membership: false,
           commit_interval_ms: 2000}
""" + extra)
    with_producer(config, producer)
    rows = sample_rows(env.src)
    first = len(rows) // 3
    env.feed(rows[:first])
    stage = env.start(config, name)
    env.wait_count("scores", first, 120, [stage])
    return config, rows, first, stage


def log_lines(stage, text):
    """The stage's log lines so far that contain @p text (read apart from
    the stage's own file offset)."""
    with open(stage.log.name) as f:
        return [x for x in f.read().splitlines() if text in x]


def finish(env, stage, rows, at, config):
    """Feed @p rows from @p at, stop the stage once all are scored (exit 0)
    and check them: scored once, equal to one replay."""
    env.feed(rows[at:])
    env.wait_count("scores", len(rows), 300, [stage])
    rc, log = env.stop(stage)
    check(rc == 0, f"exit {rc}:\n{log[-4000:]}")
    scored_once_as_replay(env, rows, config)


def feed_live(env, rows, chunk, pause):
    """Feed @p rows in chunks from a thread: a live stream."""
    def run():
        for i in range(0, len(rows), chunk):
            env.feed(rows[i:i + chunk])
            time.sleep(pause)
    th = threading.Thread(target=run)
    th.start()
    return th


def test_e2e(env):
    """Sample telemetry through one partition: every score and threat equals
    the replay of the same rows; poison records become dead letters with
    their bytes and reasons while the good records around them are scored;
    fastavro and kcat read every output topic."""
    base = f"{env.src}/config/sample.yaml"
    config = env.config(base=base)
    rows = sample_rows(env.src)
    good, bad = env.feed(rows, poison=500)
    check(good == len(rows) and bad > 5, f"fed {good} good, {bad} bad")
    stage = env.start(config, "e2e")
    env.wait_count("scores", good, 180, [stage])
    env.wait_count("dead_letters", bad, 60, [stage])
    rc, log = env.stop(stage)
    check(rc == 0, f"stage exit {rc}:\n{log}")

    got_s = env.decode("scores", env.tap("scores"))
    got_t = env.decode("threats", env.tap("threats"))
    equal_to_replay(env, got_s, got_t, rows, config)
    for g in got_s:
        check(g["freshness_lag_ms"] == g["processed_at"] - g["event_time"]
              and g["source_topic"] == env.topics["in"] and not g["stale"],
              "freshness / lineage fields")
    check(sum(g["p_collective"] is not None for g in got_s) > 0,
          "block-closing events carry p_collective")
    check(len(got_t) > 0, "the sample's security incident gives threats")
    alerts = sum(s["alert"] for s in got_s)
    check(alerts > 0, "the sample's incidents raise alerts")

    dl_recs = env.tap("dead_letters")
    dls = env.decode("dead_letters", dl_recs)
    reasons = collections.Counter(d["reason"] for d in dls)
    check(len(dls) == bad, f"{len(dls)} dead letters, fed {bad} poison")
    check({"undecodable", "unknown_schema", "non_finite",
           "bad_timestamp"} <= set(reasons), f"reasons {dict(reasons)}")
    offsets = {s["source_offset"] for s in got_s}
    for d, r in zip(dls, dl_recs):
        check(d["source_topic"] == env.topics["in"] and d["original_key"]
              == b"poison" and d["original_value"], "dead-letter origin")
        check(r["headers"]["bw.reason"] == d["reason"] and
              int(r["headers"]["bw.source.offset"]) == d["source_offset"],
              "dead-letter headers")
        check(d["source_offset"] + 1 in offsets,
              "the record after a poison record was scored")
    check(any(d["original_value"] == b"not avro at all" for d in dls),
          "original bytes kept")
    check(any(len(d["original_value"]) == 57344 and "first 6 and 57344 of 6 "
              "and 100000 bytes" in d["detail"] for d in dls),
          "a 100 KB record's dead letter keeps its first 56 KiB and says so")

    for what in ("scores", "threats", "dead_letters"):
        out = subprocess.run(["kcat", "-C", "-b", BROKERS, "-t",
                              env.topics[what], "-e", "-q", "-X",
                              "isolation.level=read_committed", "-f",
                              "%k\n"], capture_output=True, timeout=60)
        n = out.stdout.count(b"\n")
        want = {"scores": len(got_s), "threats": len(got_t),
                "dead_letters": len(dls)}[what]
        check(out.returncode == 0 and n == want,
              f"kcat read {n} {what} records, wanted {want}")
    n_siem = check_siem_alerts(env, got_s, got_t, "ecs")
    print(f"e2e: {len(got_s)} scores ({alerts} alerts) and {len(got_t)} "
          f"threats equal to replay; {len(dls)} dead letters {dict(reasons)}; "
          f"{n_siem} ECS alerts")


def check_siem_alerts(env, scores, threats, fmt, threshold=0.99):
    """The alert topic, in the same transactions: one valid document per
    score at the threshold (and per SLO breach), per threat at level high
    or above; each at its source record; ids unique."""
    want = collections.Counter(
        anomaly=sum(s["alert"] for s in scores),
        slo_breach=sum(s["p_slo_breach"] is not None
                       and s["p_slo_breach"] >= threshold
                       and not s["warmup"] for s in scores),
        threat=sum(t["level"] in ("high", "critical") for t in threats))
    for _ in range(10):  # a reader under load has once come back empty
        docs = [json.loads(r["value"]) for r in env.tap("alerts")]
        if len(docs) >= sum(want.values()):
            break
        time.sleep(1)
    ecs_spec, ocsf_spec = siem_test.load_specs(env.src)
    kinds = collections.Counter()
    for d in docs:
        if fmt == "ecs":
            errs = siem_test.validate_ecs(d, ecs_spec)
            extra, uid = d["bayeswatch"], d["event"]["id"]
        else:
            errs = siem_test.validate_ocsf(d, ocsf_spec)
            extra, uid = d["unmapped"], d["finding_info"]["uid"]
        check(not errs, f"{fmt} alert invalid: {errs}")
        kinds[extra["alert_kind"]] += 1
        d["_id"], d["_src"] = uid, extra["source"]
    check(+kinds == +want, f"alerts {dict(kinds)}, wanted {dict(want)}")
    at = {(s["source_partition"], s["source_offset"]) for s in scores}
    check(all((d["_src"]["partition"], d["_src"]["offset"]) in at
              for d in docs), "every alert at a scored source record")
    check(len({d["_id"] for d in docs}) == len(docs), "alert ids unique")
    return len(docs)


def test_exactly_once_kill(env):
    """kill -9 mid-stream, restart: a read_committed reader sees each input
    scored exactly once (two stream threads)."""
    # 1024 particles (~3,600 events/s) so that the kill lands mid-stream,
    # 1 s transactions so that it most likely lands in an open one; two
    # stream threads
    config = env.config(extra="""model: {pf: {particles: 1024}}
pipeline: {commit_interval_ms: 1000, threads: 2}""")
    rows = synthetic_rows(8, 3000, seed=3)
    good, _ = env.feed(rows)
    stage = env.start(config, "k")
    env.wait_count("scores", good // 4, 120, [stage])
    stage.kill()
    stage.wait()
    partial = len(env.tap("scores", settle=0))
    stage = env.start(config, "k")
    env.wait_count("scores", good, 240, [stage])
    rc, log = env.stop(stage)
    check(rc == 0, f"restarted stage exit {rc}:\n{log}")
    scores = env.decode("scores", env.tap("scores"))
    exactly_once(scores, good)
    raw = len(env.tap("scores", "read_uncommitted"))
    print(f"exactly_once_kill: killed at {partial}/{good} committed; "
          f"{raw - good} aborted records invisible to read_committed; "
          f"each of {good} inputs scored once")


def test_kill_restart(env):
    """kill -9, then a restart with the same instance id: with the shipped
    default (static membership) the partitions come back at once, not
    after the dead member's session times out (librdkafka's default 45 s);
    every input is still scored exactly once."""
    config = env.config(extra="model: {pf: {particles: 1024}}", session=False)
    rows = synthetic_rows(8, 1500, seed=5)
    good, _ = env.feed(rows)
    stage = env.start(config, "k")
    wait_log(stage, r"assigned [1-9][0-9]* partition", 60)
    env.wait_count("scores", good // 5, 120, [stage])
    waits = []
    for _ in range(2):
        stage.kill()
        stage.wait()
        t0 = time.time()
        stage = env.start(config, "k")
        wait_log(stage, r"assigned [1-9][0-9]* partition", 45)
        waits.append(time.time() - t0)
    env.wait_count("scores", good, 240, [stage])
    rc, log = env.stop(stage)
    check(rc == 0, f"restarted stage exit {rc}:\n{log}")
    # back before the dead member's session could have timed out: the old
    # default (dynamic membership) waits for it, so it takes 45 s or more
    # (and wait_log gives up at 45). The bound was 15 s until a restart in
    # the ASan run took 15.4 s (a 1,024-particle stage, both cores busy);
    # 30 s still tells the two apart.
    check(max(waits) < 30, f"partitions back after {waits} s: not well "
          "before the 45 s session timeout")
    exactly_once(env.decode("scores", env.tap("scores")), good)
    print("kill_restart: partitions back " +
          ", ".join(f"{w:.1f} s" for w in waits) +
          " after kill -9 (session timeout 45 s); each of "
          f"{good} inputs scored once")


def stage_stats(log):
    for line in log.splitlines():
        if "records in" in line:
            return int(line.split("bayeswatch: ")[1].split()[0])
    return -1


def wait_log(p, pattern, timeout):
    """Wait until a line of the stage's log matches @p pattern."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        p.log.seek(0)
        m = re.search(pattern, p.log.read())
        if m:
            return m.group(0)
        check(p.poll() is None, f"stage exited early: {p.returncode}")
        time.sleep(0.5)
    raise Failure(f"no /{pattern}/ in the log after {timeout}s")


def metric_total(proc, name):
    """The sum of a counter's samples on a stage's /metrics page."""
    url = re.search(r"at (http://\S+/)",
                    wait_log(proc, r"serving /metrics.* at http://\S+/",
                             60)).group(1)
    with urllib.request.urlopen(url + "metrics", timeout=5) as r:
        body = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def test_rebalance(env):
    """Two instances (two stream threads each) share the input partitions
    mid-stream (cooperative rebalance): every input scored exactly once,
    both did work. The second half of the input is fed only once b holds
    partitions, so b has work whatever the machine's speed. Sixteen series
    of the first hour go silent and retire (engine.retire_after_ms 30
    minutes) in a's partitions: a's retirement counters do not fall when
    partitions move to b (they had: each counted only the partitions a
    held at the time)."""
    # 1024 particles: slow enough that a is mid-stream when b joins
    config = env.config(extra="""model: {pf: {particles: 1024}}
engine: {retire_after_ms: 1800000}
pipeline: {threads: 2}""")
    rows = synthetic_rows(8, 3000, seed=4)
    gone = [[rows[8 * i][0], f"g{k}", "api", "latency_ms", rows[8 * i][4]]
            for i in range(60) for k in range(16)]
    rows = sorted(rows + gone, key=lambda r: r[0])  # stable: time order
    half = len(rows) // 2
    good, _ = env.feed(rows[:half])
    a = env.start(config, "a")
    env.wait_count("scores", good // 5, 120, [a])
    name = "bayeswatch_model_objects_retired_total"
    # each partition retires its silent series once its own stream time
    # has passed them (and the page is rebuilt at most once a second)
    deadline = time.time() + 120
    while (before := metric_total(a, name)) < 16 and time.time() < deadline:
        time.sleep(1)
    check(before >= 16, f"a retired the silent series: {before}")
    b = env.start(config, "b")
    wait_log(b, r"assigned [1-9][0-9]* partition", 120)
    wait_log(a, r"revoked", 60)
    time.sleep(2)
    after = metric_total(a, name)
    check(after >= before, f"a's {name} fell from {before} to {after} "
          "when partitions moved")
    more, _ = env.feed(rows[half:])
    good += more
    env.wait_count("scores", good, 300, [a, b])
    rc_b, log_b = env.stop(b)
    rc_a, log_a = env.stop(a)
    check(rc_a == 0 and rc_b == 0, f"exit {rc_a} {rc_b}:\n{log_a}\n{log_b}")
    na, nb = stage_stats(log_a), stage_stats(log_b)
    check(na > 0 and nb > 0, f"both instances work: a {na}, b {nb}")
    check("revoked" in log_a, "instance a gave up partitions")
    scores = env.decode("scores", env.tap("scores"))
    exactly_once(scores, good)
    print(f"rebalance: a scored {na}, b {nb}; each of {good} inputs once")


def test_at_least_once(env):
    """at_least_once, with two input topics, JSON scores and static
    membership: every input of both topics scored, offsets committed after
    the acknowledgements; the JSON records carry the .avsc field names."""
    config = env.config(extra="""pipeline: {guarantee: at_least_once,
           static_membership: true}
state: {changelog: false}""")
    with open(config) as f:
        text = f.read()
    t_in, t_in2, t_sc = (env.topics[k] for k in ("in", "in2", "scores"))
    text = text.replace(f'topics: ["{t_in}"]', f'topics: ["{t_in}", "{t_in2}"]')
    text = text.replace(f'scores: {{topic: "{t_sc}"}}',
                        f'scores: {{topic: "{t_sc}", format: json}}')
    t_al = env.topics["alerts"]
    text = text.replace(f'alerts: {{topic: "{t_al}"}}',
                        f'alerts: {{topic: "{t_al}", format: ocsf}}')
    with open(config, "w") as f:
        f.write(text)
    good1, _ = env.feed(synthetic_rows(4, 1500, seed=5, shift_at=1200))
    good2, _ = env.feed(synthetic_rows(4, 1500, seed=55), topic="in2")
    good = good1 + good2
    stage = env.start(config, "alo")
    env.wait_count("scores", good, 120, [stage])
    env.wait_count("alerts", 1, 60, [stage])  # the shift's
    rc, log = env.stop(stage)
    check(rc == 0, f"exit {rc}:\n{log}")
    scores = [json.loads(r["value"]) for r in env.tap("scores")]
    seen = {(s["source_topic"], s["source_partition"], s["source_offset"])
            for s in scores}
    check(len(seen) == good, f"{len(seen)} of {good} inputs scored")
    fields = [f["name"] for f in
              json.load(open(f"{env.src}/schemas/anomaly_score.avsc"))["fields"]]
    check(all(list(s) == fields for s in scores),
          "JSON scores have the schema's fields, in order")
    topics = collections.Counter(s["source_topic"] for s in scores)
    check(set(topics) == {env.topics["in"], env.topics["in2"]},
          f"both input topics scored: {dict(topics)}")
    n_siem = check_siem_alerts(env, scores, [], "ocsf")
    check(n_siem > 0, "the latency shift raises OCSF alerts")
    print(f"at_least_once: {len(scores)} JSON scores for {good} inputs "
          f"from two topics; {n_siem} OCSF alerts")


def test_alo_restart(env):
    """at_least_once with the state changelog: a crash after a commit's
    state reached the changelog but before its offsets were committed
    (here: the group's offset set back by hand, as `kafka-consumer-groups
    --reset-offsets` would) re-delivers records the restored state has
    already learned from. The restart skips them instead of scoring them
    a second time (pooled groups would count them twice, the filters call
    them late), and every score still equals one uninterrupted replay."""
    config = env.config(base=f"{env.src}/config/sample.yaml",
                        extra="""pipeline: {guarantee: at_least_once,
           static_membership: false}""")
    rows = sample_rows(env.src)
    first, back = 2 * len(rows) // 3, len(rows) // 3
    env.feed(rows[:first])
    stage = env.start(config, "alo")
    env.wait_count("scores", first, 180, [stage])
    rc, log = env.stop(stage)
    check(rc == 0, f"exit {rc}:\n{log}")
    subprocess.run([f"{env.build}/tests/bw_offsets", BROKERS, env.tag,
                    env.topics["in"], "0", str(back)], check=True)
    env.feed(rows[first:])
    stage = env.start(config, "alo")
    env.wait_count("scores", len(rows), 180, [stage])
    rc, log = env.stop(stage)
    check(rc == 0, f"exit {rc}:\n{log}")
    skipped = re.search(r"beyond the committed offset \((\d+);.* skips the "
                        r"input records before offset (\d+)", log)
    check(skipped and skipped.groups() == (str(back), str(first)),
          f"the restart skips offsets {back}..{first - 1}, which its state "
          f"has seen:\n{log[-3000:]}")
    scored_once_as_replay(env, rows, config)
    print(f"alo_restart: {first - back} re-delivered records already in the "
          f"state skipped; {len(rows)} inputs scored once, equal to replay")


def test_fenced(env):
    """A second instance with the same transactional.id fences the first,
    which exits non-zero with a clear message; the second keeps going."""
    config = env.config()
    env.feed(synthetic_rows(4, 200, seed=6))
    a = env.start(config, "same")
    env.wait_count("scores", 800, 120, [a])
    b = env.start(config, "same")
    deadline = time.time() + 90
    n = 0
    while a.poll() is None and time.time() < deadline:
        env.feed(synthetic_rows(4, 50, seed=7 + n))
        n += 1
        time.sleep(1)
    rc_a, log_a = env.stop(a, timeout=30)
    rc_b, log_b = env.stop(b)
    check(rc_a != 0, f"fenced instance exit {rc_a}:\n{log_a}")
    check("fatal" in log_a and "enced" in log_a,
          f"fenced instance says why:\n{log_a}")
    check(rc_b == 0, f"surviving instance exit {rc_b}:\n{log_b}")
    print(f"fenced: first instance exited {rc_a}: " +
          [x for x in log_a.splitlines() if "fatal" in x][0])


def test_stale_late(env):
    """A series that goes silent gets one stale marker on the score topic,
    its value fields null; an event older than its series' newest but
    within the allowed lateness is a score record marked late, unscored
    (its typical fields null); one older than the allowed lateness
    becomes a dead letter with
    reason late; one dated in the year 3000, and one in 1970 (seconds sent
    as milliseconds) with max_behind_ms set, become dead letters with
    reason time_skew and move no stream time: series a, which keeps
    sending, is never marked stale."""
    t0, rows = 1764000000000, []
    behind = int(time.time() * 1000) - t0 + 30 * 86400000  # t0 + 30 days
    config = env.config(extra=f"""engine: {{lateness_ms: 600000}}
pipeline: {{stale_scan_ms: 200, max_behind_ms: {behind}}}""")
    for i in range(80):
        rows.append([t0 + i * 60000, "r0", "api", "a", 100 + i % 3])
        if i < 60:
            rows.append([t0 + i * 60000, "r0", "api", "b", 50 + i % 2])
        if i == 40:
            rows.append([32503680000000, "r0", "api", "c", 1])  # year 3000
            rows.append([1764000000, "r0", "api", "c", 1])  # s as ms
        if i == 70:
            rows.append([t0 + 68 * 60000, "r0", "api", "a", 101])  # 2 min
    rows.append([t0 + 65 * 60000, "r0", "api", "b", 51])  # 14 min late
    good, _ = env.feed(rows)
    stage = env.start(config, "st")
    env.wait_count("dead_letters", 3, 60, [stage])
    deadline = time.time() + 30
    while time.time() < deadline:
        stale = [s for s in env.decode("scores", env.tap("scores", settle=0))
                 if s["stale"]]
        if stale:
            break
        time.sleep(0.5)
    time.sleep(1)  # further scans must not repeat the marker
    rc, log = env.stop(stage)
    check(rc == 0, f"exit {rc}:\n{log}")
    scores = env.decode("scores", env.tap("scores"))
    stale = [s for s in scores if s["stale"]]
    check(len(stale) == 1 and stale[0]["entity_id"] == "r0/api/b" and
          stale[0]["event_time"] == t0 + 59 * 60000,
          f"one stale marker for r0/api/b: {stale}")
    # no value: null, not NaN (which JSON consumers cannot hold)
    check(all(stale[0][k] is None for k in
              ("actual", "typical", "typical_lower", "typical_upper")),
          f"a stale marker's value fields are null: {stale[0]}")
    late = [s for s in scores if s["late"]]
    check(len(late) == 1 and late[0]["entity_id"] == "r0/api/a" and
          late[0]["event_time"] == t0 + 68 * 60000 and
          late[0]["probability"] == 0.0 and
          all(late[0][k] is None for k in
              ("typical", "typical_lower", "typical_upper")),
          f"one late score for r0/api/a, unscored: {late}")
    check(len(scores) == good - 3 + 1, f"{len(scores)} score records")
    dls = env.decode("dead_letters", env.tap("dead_letters"))
    reasons = collections.Counter(d["reason"] for d in dls)
    check(len(dls) == 3 and reasons == {"late": 1, "time_skew": 2},
          f"late and skewed events dead-lettered: {dls}")
    print(f"stale_late: stale marker {stale[0]['entity_id']} (last event "
          f"{stale[0]['event_time']}); " +
          "; ".join(f"{d['reason']} -> {d['detail']}" for d in dls))


def test_skew_restart(env):
    """A record refused for time skew, read after the last state flush,
    is not replayed into the models at the next start. The stage reads
    only a record dated in the year 3000 and stops: no model changed, but
    the changelog's offset must still move past it, or the restore that
    follows replays it without the skew check, the watermark jumps ~1000
    years, and every later event is dead-lettered as late."""
    t0 = 1764000000000
    behind = int(time.time() * 1000) - t0 + 30 * 86400000  # t0 + 30 days
    config = env.config(extra=f"""engine: {{lateness_ms: 600000}}
pipeline: {{max_behind_ms: {behind}}}""")
    first, _ = env.feed([[t0 + i * 60000, "r0", "api", "a", 100 + i % 3]
                         for i in range(40)])
    stage = env.start(config, "sk")
    env.wait_count("scores", first, 120, [stage])
    rc, log = env.stop(stage)
    check(rc == 0, f"exit {rc}:\n{log}")
    env.feed([[32503680000000, "r0", "api", "a", 1]])  # year 3000
    stage = env.start(config, "sk")
    env.wait_count("dead_letters", 1, 60, [stage])
    rc, log = env.stop(stage)
    check(rc == 0, f"exit {rc}:\n{log}")
    second, _ = env.feed([[t0 + i * 60000, "r0", "api", "a", 100 + i % 3]
                          for i in range(40, 60)])
    stage = env.start(config, "sk")
    env.wait_count("scores", first + second, 120, [stage])
    rc, log = env.stop(stage)
    check(rc == 0, f"exit {rc}:\n{log}")
    dls = env.decode("dead_letters", env.tap("dead_letters"))
    check([d["reason"] for d in dls] == ["time_skew"],
          f"one time_skew dead letter, no late ones: {dls}")
    exactly_once(env.decode("scores", env.tap("scores")), first + second)
    print(f"skew_restart: a skewed record after the last flush moved the "
          f"changelog past it; {second} later events scored, none late")


def test_stale_after_restart(env):
    """A stage restarted on an input that has gone silent still marks its
    series stale: stream time resumes from the restored state (before,
    it waited for a new record that never came)."""
    t0 = 1764000000000
    # stale after 20 s without data (10 x 2 s): the first stage is stopped
    # well before, even on a loaded machine
    config = env.config(extra="""pipeline: {stale_scan_ms: 200}
engine: {stale_factor: 10}""")
    rows = [[t0 + i * 2000, "r0", "api", m, 100 + i % 3]
            for i in range(60) for m in ("a", "b")]
    good, _ = env.feed(rows)
    stage = env.start(config, "sr")
    env.wait_count("scores", good, 120, [stage])
    rc, log = env.stop(stage)
    check(rc == 0, f"exit {rc}:\n{log}")
    before = [s for s in env.decode("scores", env.tap("scores"))
              if s["stale"]]
    stage = env.start(config, "sr")
    deadline = time.time() + 60
    stale = []
    while time.time() < deadline and len(stale) < 2:
        stale = [s for s in env.decode("scores", env.tap("scores", settle=0))
                 if s["stale"]]
        time.sleep(0.5)
    rc, log = env.stop(stage)
    check(rc == 0, f"exit {rc}:\n{log}")
    check(len(before) == 0 and
          sorted(s["entity_id"] for s in stale) == ["r0/api/a", "r0/api/b"],
          f"one stale marker per series after the restart: {stale} "
          f"(before it: {before})")
    print("stale_after_restart: both silent series marked stale by the "
          "restarted stage, with no new input")


def kafka_sh(src, what):
    subprocess.run([f"{src}/scripts/kafka.sh", what], check=True,
                   capture_output=True)


def broker_stall(src, seconds):
    """The broker stops answering for @p seconds (SIGSTOP, then SIGCONT)."""
    kafka_sh(src, "pause")
    try:
        time.sleep(seconds)
    finally:
        kafka_sh(src, "resume")


def test_broker_pause(env):
    """The broker stops answering for 25 s mid-stream (SIGSTOP; longer than
    one transactional call's 10 s timeout, so a commit times out and is
    resumed): the stage retries, loses nothing, and still scores each
    input exactly once."""
    # dynamic membership: a static member whose session expires in the
    # stall is fenced and exits (test_static_stall)
    config = env.config(extra="""model: {pf: {particles: 1024}}
pipeline: {static_membership: false}""")
    rows = synthetic_rows(8, 2000, seed=8)
    good, _ = env.feed(rows)
    stage = env.start(config, "p")
    env.wait_count("scores", good // 4, 120, [stage])
    broker_stall(env.src, 25)
    env.wait_count("scores", good, 300, [stage])
    rc, log = env.stop(stage)
    check(rc == 0, f"exit {rc}:\n{log}")
    exactly_once(env.decode("scores", env.tap("scores")), good)
    retries = sum("retrying" in x for x in log.splitlines())
    print(f"broker_pause: {good} inputs scored exactly once across a 25 s "
          f"broker stall ({retries} retry messages)")
    for line in log.splitlines():
        if "commit:" in line or "abort" in line:
            print("  " + line)


def test_abort_rewind(env, extra="", label="abort_rewind"):
    """The broker stops answering (SIGSTOP) for longer than the stage's
    message timeout while outputs of its open transaction wait to be sent
    (linger.ms): they time out undelivered (an abortable error); the stage
    aborts the transaction once the broker is back, rewinds the partition
    to the transaction's first record and restores the models from the
    changelog (the records since the last state flush replayed). Every
    input is scored once, and every score and threat equals one
    uninterrupted replay: nothing the aborted transaction held is lost or
    learned twice."""
    # outputs wait 1 s before they are sent
    config, rows, first, stage = started_a_third_in(
        env, '{message.timeout.ms: "2000", linger.ms: "1000"}', "ab", extra)

    def aborts():
        return log_lines(stage, "aborting the open")

    at = first
    for attempt in range(4):
        if stage.poll() is not None:
            break  # exited: the check below says how
        # a few records scored, their outputs lingering in the open
        # transaction (a commit, which would send them, is most likely
        # more than 0.3 s away; else tried again)
        env.feed(rows[at:at + 100])
        at += 100
        time.sleep(0.3)
        broker_stall(env.src, 6)
        deadline = time.time() + 20
        while not aborts() and time.time() < deadline and \
                stage.poll() is None:
            time.sleep(0.5)
        if aborts():
            break
    check(aborts(), "the stage aborted its transaction:\n" +
          open(stage.log.name).read()[-3000:])
    finish(env, stage, rows, at, config)
    print(f"{label}: {aborts()[0].split('pipeline: ')[-1][:160]} "
          f"(try {attempt + 1}); {len(rows)} inputs scored once, equal to "
          f"replay")
    return stage


def test_abort_resend(env):
    """test_abort_rewind without a state changelog (state.changelog:
    false, as with several input topics): there is no state to go back
    to, so the abort produces the aborted transaction's outputs again, in
    order, and the stage goes on from where its input was. The models had
    kept what the aborted records taught them, and a rewind scored those
    records again as late (their scores lost); now every input is scored
    once and equals one uninterrupted replay."""
    stage = test_abort_rewind(env, "state: {changelog: false}",
                              "abort_resend")
    again = log_lines(stage, "outputs again")
    check(again, "the stage produced the kept outputs again")
    print("abort_resend: " + again[0].split("pipeline: ")[-1][:120])


def test_never_produced(env):
    """An output that can never be produced (the dead letter of a 30 KB
    undecodable record, past the producer's message.max.bytes of 20,000)
    stops the stage with the reason instead of aborting and replaying the
    transaction without end (exactly-once; /healthz stayed up and the
    partition made no progress); nothing of it is committed."""
    from confluent_kafka import Producer
    config = env.config(extra="state: {changelog: false}")
    with_producer(config, '{message.max.bytes: "20000"}')
    env.feed(synthetic_rows(1, 50, seed=11))
    prod = Producer({"bootstrap.servers": BROKERS})
    prod.produce(env.topics["in"], b"\x07" * 30000, key=b"junk")
    prod.flush(30)
    rc, log, stage = env.run_to_exit(config, "np", 90)
    check(rc != 0 and "can never be produced" in log,
          f"exit {rc}, wanted non-zero with the reason:\n{log[-3000:]}")
    check(len(log_lines(stage, "aborting the open")) <= 1,
          "at most one abort before stopping")
    print("never_produced: " + [x for x in log.splitlines()
                                if "can never be produced" in x][0][-200:])


def test_stall_renew(env, extra="", label="stall_renew"):
    """The stage itself stalls (SIGSTOP) for longer than its transaction
    timeout with a transaction open: the broker aborts the transaction and
    bumps the producer's epoch, so the resumed producer finds itself
    fenced (librdkafka: a fatal error, which ended the stage before). The
    stage replaces the producer under the same transactional.id, replays
    the transaction's input from the changelog, and every input is still
    scored once, equal to one uninterrupted replay."""
    config, rows, first, stage = started_a_third_in(
        env, '{transaction.timeout.ms: "3000"}', "sr", extra)

    def renewed():
        return log_lines(stage, "fenced by its own stall")

    at, stalls = first, 0
    for attempt in range(6):
        if stage.poll() is not None:
            break  # exited: the check below says how
        # a few records open a transaction and their scores are produced
        # in it (read_uncommitted sees them); stopped before it commits
        # (else tried again), the stall outlives it and the broker's
        # sweep for timed-out transactions (10 s by default)
        env.feed(rows[at:at + 100])
        at += 100
        deadline = time.time() + 30
        while len(env.tap("scores", "read_uncommitted", settle=0)) < at and \
                time.time() < deadline:
            time.sleep(0.05)
        stage.send_signal(signal.SIGSTOP)
        if len(env.tap("scores", settle=0)) >= at:
            stage.send_signal(signal.SIGCONT)  # committed already
            continue
        stalls += 1
        time.sleep(15)
        stage.send_signal(signal.SIGCONT)
        env.wait_count("scores", at, 60, [stage])  # renewed, or committed
        if renewed():
            break
    check(renewed(), "a stall fenced the producer and it was renewed:\n" +
          open(stage.log.name).read()[-3000:])
    finish(env, stage, rows, at, config)
    print(f"{label}: a 15 s stall past a 3 s transaction timeout fenced "
          f"the producer (stall {stalls}, try {attempt + 1}); renewed; "
          f"{len(rows)} inputs scored once, equal to replay")
    return stage


def test_stall_renew_resend(env):
    """test_stall_renew without a state changelog: the renewed producer
    produces the kept outputs of the transaction the broker aborted again
    (on its own topic handles: the old producer's are gone with it)."""
    stage = test_stall_renew(env, "state: {changelog: false}",
                             "stall_renew_resend")
    check(log_lines(stage, "outputs again"),
          "the renewed producer produced the kept outputs again")


def fenced_or_alive(env, stage, total, limit=120, calm=10):
    """After a broker stall: the stage's exit code if it was fenced and
    exits, or None once the session has shown it survived: @p calm seconds
    past the stall (a fence is noticed at the first heartbeats after it)
    the stage is running and has committed all @p total scores, or goes on
    committing new ones (a fenced member cannot: its transaction's offsets
    are refused). Waiting out @p limit instead cost two minutes per run."""
    t0 = time.monotonic()
    before = None
    while time.monotonic() - t0 < limit:
        try:
            return stage.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() - t0 < calm:
            continue  # a fence is noticed at the first heartbeats
        n = len(env.tap("scores", settle=0))
        if n >= total or (before is not None and n > before):
            return None  # the session survived after all: nothing to recover
        before = n
    return None


def test_static_stall(env):
    """With static membership (the default), a broker stall longer than the
    session timeout fences the member (librdkafka makes that fatal): the
    stage exits 1 saying so and how to recover; restarted, it rejoins and
    every input is still scored exactly once."""
    config = env.config(extra="model: {pf: {particles: 1024}}")
    rows = synthetic_rows(8, 2000, seed=9)
    good, _ = env.feed(rows)
    stage = env.start(config, "s")
    env.wait_count("scores", good // 4, 120, [stage])
    broker_stall(env.src, 15)  # more than the tests' 6 s session
    rc = fenced_or_alive(env, stage, good)
    stage.log.seek(0)
    log = stage.log.read()
    if rc is not None:
        check(rc == 1 and "fenced" in log and "restart it" in log,
              f"fenced static member exits 1 saying how to recover:\n{log[-2000:]}")
        stage = env.start(config, "s")
    env.wait_count("scores", good, 300, [stage])
    rc2, log2 = env.stop(stage)
    check(rc2 == 0, f"exit {rc2}:\n{log2}")
    exactly_once(env.decode("scores", env.tap("scores")), good)
    print("static_stall: " + ("fenced after the stall, exit 1: " +
          [x for x in log.splitlines() if "fatal" in x][0][:160] +
          "; restarted, "
          if rc is not None else "the session survived the stall; ") +
          f"each of {good} inputs scored once")


def test_failover_kill(env):
    """kill -9 at random points (5 times) while input streams in, restart
    with the same instance id each time: every input is scored exactly once,
    and the committed scores and threats equal, field for field, one
    uninterrupted replay: each restart continued the models from the
    changelog instead of starting from the prior."""
    config = env.config(base=f"{env.src}/config/sample.yaml",
                        extra="pipeline: {commit_interval_ms: 200}")
    rows = sample_rows(env.src)
    rng = random.Random(1105)
    feeder = feed_live(env, rows, 200, 0.3)  # about 20 s of input
    stage = env.start(config, "fo")
    kills = []
    for k in range(5):
        wait_log(stage, r"resumes at committed input offset", 120)
        time.sleep(rng.uniform(0.2, 1.5))
        stage.kill()
        stage.wait()
        kills.append(len(env.tap("scores", settle=0)))
        stage = env.start(config, "fo")
    feeder.join()
    env.wait_count("scores", len(rows), 240, [stage])
    rc, log = env.stop(stage)
    check(rc == 0, f"stage exit {rc}:\n{log}")
    check(re.search(r"state: restored .*: [1-9][0-9]* keys", log),
          "the restart restored")
    got_s = env.decode("scores", env.tap("scores"))
    exactly_once(got_s, len(rows))
    check(len(set(kills)) == 5 and kills[-1] < len(rows),
          f"the kills landed mid-stream (committed at each: {kills})")
    equal_to_replay(env, got_s, env.decode("threats", env.tap("threats")),
                    rows, config)
    print(f"failover_kill: killed at {kills} committed scores of "
          f"{len(rows)}; every score and threat equals one uninterrupted "
          f"replay")


def fleet_rows(src, copies):
    """The sample telemetry for @p copies times as many regions."""
    rows = []
    for r in sample_rows(src):
        for k in range(copies):
            rows.append([r[0], f"r{k}-{r[1]}"] + r[2:])
    return rows


def by_partition(env, got_s, got_t, rows, config):
    """Each partition's outputs against the replay of its own input (a
    partition's models are its own: pooled groups pool its regions)."""
    part_of = {}
    for g in got_s:
        part_of[g["region"]] = g["source_partition"]
    check(len(set(part_of.values())) > 3, f"regions spread: {part_of}")
    for part in sorted(set(part_of.values())):
        regions = {r for r, p in part_of.items() if p == part}
        mine = [g for g in got_s if g["source_partition"] == part]
        threats = [t for t in got_t if t["entity_id"] in regions]
        equal_to_replay(env, mine, threats,
                        [r for r in rows if r[1] in regions], config,
                        f"partition {part}: ")


def test_failover_scale(env):
    """Three instances on a 6-partition input: kill -9 one mid-stream and
    restart it, then a rolling restart of all three, while input streams in.
    Each input scored once; each partition's scores and threats equal one
    uninterrupted replay of that partition's input."""
    config = env.config(base=f"{env.src}/config/sample.yaml",
                        extra="pipeline: {commit_interval_ms: 200}")
    rows = fleet_rows(env.src, 4)
    feeder = feed_live(env, rows, 1200, 0.25)
    stages = {n: env.start(config, n) for n in ("a", "b", "c")}
    for n in stages:
        wait_log(stages[n], r"assigned [1-9][0-9]* partition", 120)
    time.sleep(1.5)
    stages["b"].kill()
    stages["b"].wait()
    stages["b"] = env.start(config, "b")
    wait_log(stages["b"], r"resumes at committed input offset", 120)
    for n in ("a", "b", "c"):
        time.sleep(1.0)
        rc, log = env.stop(stages[n])
        check(rc == 0, f"{n} exit {rc}:\n{log}")
        stages[n] = env.start(config, n)
        wait_log(stages[n], r"resumes at committed input offset", 120)
    feeder.join()
    env.wait_count("scores", len(rows), 300, list(stages.values()))
    logs = []
    for n in stages:
        rc, log = env.stop(stages[n])
        check(rc == 0, f"{n} exit {rc}:\n{log}")
        logs.append(log)
    got_s = env.decode("scores", env.tap("scores"))
    exactly_once(got_s, len(rows))
    recs_t = env.tap("threats")
    try:
        by_partition(env, got_s, env.decode("threats", recs_t), rows, config)
    except Failure as e:
        per = collections.Counter(r["partition"] for r in recs_t)
        raw = collections.Counter(
            r["partition"] for r in env.tap("threats", "read_uncommitted"))
        raise Failure(f"{e} (threat records read: {len(recs_t)}, by threat "
                      f"partition {dict(sorted(per.items()))}; read "
                      f"uncommitted {dict(sorted(raw.items()))})")
    print(f"failover_scale: {len(rows)} inputs over 6 partitions, 3 "
          f"instances, one kill -9 and a rolling restart: every partition "
          f"equals its uninterrupted replay")


def series_rows(t0, n, level, sd, seed, region="eu"):
    rng = random.Random(seed)
    return [[t0 + i * 300000, region, "api", "latency_ms",
             f"{level + rng.gauss(0, sd):.4f}"] for i in range(n)]


def test_warm_restart(env):
    """A series with a week of history, a clean restart, then an incident
    (+10 noise sds): the restarted stage is warm and alerts on it at once
    (its models came back from the changelog). The same incident seen by a
    stage without that history (what every restart was before the
    changelog) is scored in warm-up: the test can tell the difference."""
    week = 7 * 288
    t0 = 1764000000000
    history = series_rows(t0, week, 100, 3, 8)
    incident = series_rows(t0 + week * 300000, 24, 130, 3, 9)
    config = env.config(name="warm")
    env.feed(history)
    stage = env.start(config, "warm")
    env.wait_count("scores", week, 180, [stage])
    rc, log = env.stop(stage)
    check(rc == 0, f"exit {rc}:\n{log}")
    env.feed(incident)
    stage = env.start(config, "warm")
    env.wait_count("scores", week + 24, 180, [stage])
    rc, log = env.stop(stage)
    check(rc == 0 and "restored" in log, f"exit {rc}, restored:\n{log}")
    on = [s for s in env.decode("scores", env.tap("scores"))
          if s["source_offset"] >= week]

    with open(config) as f:
        text = f.read()
    text = text.replace(f'group_id: "{env.tag}"', f'group_id: "{env.tag}-cold"')
    text = text.replace(f'topics: ["{env.topics["in"]}"]',
                        f'topics: ["{env.topics["in2"]}"]')
    cold = f"{env.dir}/cold.yaml"
    with open(cold, "w") as f:
        f.write(text + "state: {changelog: false}\n")
    env.feed(incident, topic="in2")
    stage = env.start(cold, "cold")
    env.wait_count("scores", week + 48, 180, [stage])
    rc, log = env.stop(stage)
    check(rc == 0, f"exit {rc}:\n{log}")
    off = [s for s in env.decode("scores", env.tap("scores"))
           if s["source_topic"] == env.topics["in2"]]

    check(len(on) == 24 and len(off) == 24, "the incident scored twice")
    warm = sum(not s["warmup"] for s in on)
    alerts = sum(s["alert"] for s in on)
    check(warm == 24, f"after the restart {24 - warm} of 24 events in warm-up")
    check(alerts >= 22, f"{alerts} of 24 incident events alerted")
    cold_warmup = sum(s["warmup"] for s in off)
    check(cold_warmup == 24 and sum(s["alert"] for s in off) == 0,
          f"without the history: {cold_warmup}/24 in warm-up")
    print(f"warm_restart: {alerts}/24 incident events alerted right after "
          f"a restart; without the history {cold_warmup}/24 in warm-up, "
          f"no alert")


def test_checkpoint(env):
    """Local checkpoints (state.dir): a clean stop writes one; the next
    start restores from it plus the changelog's tail; a corrupt one is
    logged and the restore falls back to the changelog (no crash loop).
    Scores across both restarts equal one uninterrupted replay."""
    ckdir = f"{env.dir}/state"
    os.makedirs(ckdir)
    config = env.config(base=f"{env.src}/config/sample.yaml",
                        extra=f'state: {{dir: "{ckdir}"}}')
    rows = sample_rows(env.src)
    cut = [0, len(rows) // 3, 2 * len(rows) // 3, len(rows)]
    logs = []
    for k in range(3):
        if k == 2:  # corrupt the checkpoint: one byte flipped
            path = os.path.join(ckdir, os.listdir(ckdir)[0])
            data = bytearray(open(path, "rb").read())
            data[len(data) // 2] ^= 0x55
            open(path, "wb").write(bytes(data))
        env.feed(rows[cut[k]:cut[k + 1]])
        stage = env.start(config, "ck")
        env.wait_count("scores", cut[k + 1], 180, [stage])
        rc, log = env.stop(stage)
        check(rc == 0, f"exit {rc}:\n{log}")
        logs.append(log)
    check(re.search(r"state: checkpoint .*\.ckpt: [1-9]", logs[0]),
          "a clean stop writes a checkpoint")
    check("local checkpoint holds" in logs[1],
          "the restart restores from the checkpoint")
    check(re.search(r"checkpoint .* not used \(checksum mismatch\)",
                    logs[2]) and "restored" in logs[2],
          "a corrupt checkpoint falls back to the changelog")
    scored_once_as_replay(env, rows, config)
    # another changelog topic sharing state.dir (another group, or a reset
    # to a new group_id) does not take this one's checkpoint, even under
    # its own file name: it would skip its own changelog's head
    name = [f for f in os.listdir(ckdir) if f.endswith(".ckpt")][0]
    other = f"{env.tag}-other-changelog"
    topic = env.topics["in"]
    h = zlib.crc32(topic.encode(), zlib.crc32(other.encode() + b"\0"))
    check(name.startswith(f"{topic[:100]}-0-"), f"checkpoint name {name}")
    shutil.copy(os.path.join(ckdir, name),
                os.path.join(ckdir, f"{topic[:100]}-0-{h:08x}.ckpt"))
    stage = env.start(env.config(name="ck2", base=f"{env.src}/config/"
                                 "sample.yaml", extra=f'state: {{dir: '
                                 f'"{ckdir}", topic: "{other}"}}'), "ck2")
    said = wait_log(stage, r"checkpoint .* not used \([^)]*\)", 90)
    env.stop(stage)
    check("written for another changelog topic" in said,
          f"another changelog's checkpoint: {said!r}")
    line = [x for x in logs[1].splitlines() if "state: restored" in x][0]
    print("checkpoint: " + line.split("state: ")[1][:150] +
          "; corrupt checkpoint -> changelog; another changelog topic's "
          "checkpoint not used; scores equal replay")


TESTS = {"e2e": (test_e2e, 1), "exactly_once_kill": (test_exactly_once_kill, 4),
         "rebalance": (test_rebalance, 4),
         "at_least_once": (test_at_least_once, 2),
         "alo_restart": (test_alo_restart, 1), "fenced": (test_fenced, 2),
         "stale_late": (test_stale_late, 1),
         "skew_restart": (test_skew_restart, 1),
         "stale_after_restart": (test_stale_after_restart, 1),
         "kill_restart": (test_kill_restart, 4),
         "broker_pause": (test_broker_pause, 4),
         "abort_rewind": (test_abort_rewind, 1),
         "abort_resend": (test_abort_resend, 1),
         "stall_renew": (test_stall_renew, 1),
         "stall_renew_resend": (test_stall_renew_resend, 1),
         "static_stall": (test_static_stall, 4),
         "failover_kill": (test_failover_kill, 1),
         "failover_scale": (test_failover_scale, 6),
         "warm_restart": (test_warm_restart, 1),
         "checkpoint": (test_checkpoint, 1),
         "never_produced": (test_never_produced, 1)}


def run_main(tests):
    """Run the test named by argv[3] from @p tests (name -> (function,
    input partitions)) in a fresh environment; the process exit code."""
    build, src, name = sys.argv[1], sys.argv[2], sys.argv[3]
    fn, partitions = tests[name]
    env = Env(build, src, name, partitions)
    try:
        fn(env)
    except Failure as e:
        print(f"FAIL {name}: {e}", file=sys.stderr)
        return 1
    finally:
        env.close()
    return 0


def main():
    return run_main(TESTS)


if __name__ == "__main__":
    sys.exit(main())
