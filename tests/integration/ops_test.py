#!/usr/bin/env python3
"""Operability of `bayeswatch run` against the real broker and a real
Prometheus (Debian's `prometheus` and `promtool`).

  metrics: the stage's /metrics during an end-to-end run: counters equal
           what was sent (records, scores, dead letters by reason),
           /healthz and /readyz answer, the page passes `promtool check
           metrics`; a Prometheus server (loopback, bounded) scrapes the
           stage with ops/prometheus/rules.yml: every rule evaluates
           without error, every metric a rule names has data, and every
           dashboard query (ops/grafana/gen_dashboards.py --queries)
           returns data. JSON log lines parse, and carry the partition.

usage: ops_test.py BUILD_DIR SRC_DIR metrics
"""

import collections
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafka_test as kt  # noqa: E402  (the broker environment)

check = kt.check


def get(url, timeout=5):
    """(status, body) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)


def stage_url(proc, timeout=60):
    line = kt.wait_log(proc, r"serving /metrics.* at (http://\S+/)", timeout)
    return re.search(r"at (http://\S+/)", line).group(1)


def scrape(url):
    code, body = get(url + "metrics")
    check(code == 200, f"/metrics answered {code}")
    samples = collections.defaultdict(float)
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name_labels, value = line.rsplit(" ", 1)
            samples[name_labels] = float(value)
    return body, samples


def total(samples, name):
    return sum(v for k, v in samples.items()
               if k == name or k.startswith(name + "{"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """A bounded Prometheus on loopback scraping one target every second."""

    def __init__(self, env, target):
        self.dir = os.path.join(env.dir, "prometheus")
        os.makedirs(self.dir)
        # the shipped rules, each group evaluated every second (the global
        # interval) instead of its own 15-30 s, so a bounded run sees them
        with open(os.path.join(env.src, "ops/prometheus/rules.yml")) as fh:
            rules = re.sub(r"(?m)^    interval: .*\n", "", fh.read())
        with open(os.path.join(self.dir, "rules.yml"), "w") as fh:
            fh.write(rules)
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as fh:
            fh.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
scrape_configs:
  - job_name: bayeswatch
    static_configs:
      - targets: ["{target}"]
""")
        self.url = f"http://127.0.0.1:{free_port()}/"
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={self.dir}/prometheus.yml",
             f"--storage.tsdb.path={self.dir}/data",
             f"--web.listen-address={self.url[7:-1]}",
             "--storage.tsdb.retention.time=1h"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def api(self, path, **params):
        q = urllib.parse.urlencode(params)
        code, body = get(f"{self.url}api/v1/{path}" + (f"?{q}" if q else ""))
        check(code == 200, f"prometheus {path} {params}: {code} {body[:300]}")
        return json.loads(body)["data"]

    def wait_up(self, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            try:
                targets = self.api("targets")["activeTargets"]
                if targets and targets[0]["health"] == "up":
                    return
            except (kt.Failure, OSError, ValueError):
                pass
            time.sleep(0.5)
        self.log.seek(0)
        raise kt.Failure("prometheus never scraped the stage:\n" +
                         self.log.read()[-2000:])

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def rule_exprs(src):
    """(name, expr) of every rule in ops/prometheus/rules.yml."""
    with open(os.path.join(src, "ops/prometheus/rules.yml")) as fh:
        groups = yaml.safe_load(fh)["groups"]
    return [(r.get("alert") or r["record"], r["expr"])
            for g in groups for r in g["rules"]]


def check_prometheus(env, url):
    prom = Prometheus(env, url[7:-1])
    try:
        prom.wait_up()
        end = time.time() + 30  # a few scrapes and rule evaluations
        while True:
            groups = prom.api("rules")["groups"]
            if all(r.get("lastEvaluation", "").startswith("2")
                   and r["health"] != "unknown"
                   for g in groups for r in g["rules"]) or time.time() > end:
                break
            time.sleep(1)
        evaluated = [r for g in groups for r in g["rules"]]
        check(len(evaluated) == len(rule_exprs(env.src)),
              f"{len(evaluated)} rules loaded")
        for r in evaluated:
            check(r["health"] == "ok" and not r.get("lastError"),
                  f"rule {r['name']}: {r['health']} {r.get('lastError')}")
        names = set()
        for _, expr in rule_exprs(env.src):
            names |= set(re.findall(r"\b(bayeswatch_[a-z0-9_]+|up)\b", expr))
        for n in sorted(names):
            res = prom.api("query", query=f"count({n})")["result"]
            check(res and float(res[0]["value"][1]) > 0,
                  f"no data for {n}, named by a rule")
        queries = subprocess.run(
            [sys.executable, os.path.join(env.src, "ops/grafana/"
                                          "gen_dashboards.py"), "--queries"],
            capture_output=True, text=True, check=True).stdout.splitlines()
        for q in queries:  # rates need two scrapes inside their window
            end = time.time() + 20
            while not (res := prom.api("query", query=q)["result"]) and \
                    time.time() < end:
                time.sleep(1)
            check(res, f"dashboard query returned no data: {q}")
        return len(evaluated), len(names), len(queries)
    finally:
        prom.close()


def test_metrics(env):
    config = env.config(base=f"{env.src}/config/sample.yaml",
                        extra="obs: {listen: \"127.0.0.1:0\", "
                              "log_format: json, kafka_stats_ms: 1000}\n")
    stage = env.start(config, "metrics")
    url = stage_url(stage)
    end = time.time() + 60
    reasons = set()
    while (r := get(url + "readyz"))[0] != 200 and time.time() < end and \
            stage.poll() is None:
        reasons.add(r[1].strip())
        time.sleep(0.2)
    stage.log.seek(0)
    log = stage.log.read()
    # ready only once the group has assigned and the partition is restored
    # (a member was ready in the window between its start and its first
    # assignment, then not ready again while it restored)
    check(r[0] == 200 and "resumes at committed input offset" in log,
          f"ready after the assignment: {r}; reasons seen {reasons}\n"
          + log[-3000:])
    check(get(url + "readyz")[0] == 200, "stays ready")
    check(get(url + "healthz")[0] == 200, "not healthy")
    rows = kt.sample_rows(env.src)
    good, bad = env.feed(rows, poison=500)
    env.wait_count("scores", good, 180, [stage])
    env.wait_count("dead_letters", bad, 60, [stage])
    time.sleep(2.5)  # a page is rebuilt every second
    page, s = scrape(url)
    check(total(s, "bayeswatch_records_in_total") == good + bad,
          f"records in {total(s, 'bayeswatch_records_in_total')}, "
          f"sent {good + bad}")
    check(total(s, "bayeswatch_records_scored_total") == good,
          f"scored {total(s, 'bayeswatch_records_scored_total')} of {good}")
    check(s['bayeswatch_output_records_total{output="scores"}'] == good,
          "scores out")
    dls = env.decode("dead_letters", env.tap("dead_letters"))
    reasons = collections.Counter(d["reason"] for d in dls)
    for reason, n in reasons.items():
        got = s[f'bayeswatch_dead_letters_total{{reason="{reason}"}}']
        check(got == n, f"dead letters {reason}: {got}, sent {n}")
    check(total(s, "bayeswatch_dead_letters_total") == bad, "dead letters")
    check(s["bayeswatch_transactions_committed_total"] > 0 and
          s["bayeswatch_ready"] == 1, "transactions, ready")
    check(s["bayeswatch_event_processing_seconds_count"] == good + bad,
          "one processing time per record")
    lag = [v for k, v in s.items() if k.startswith("bayeswatch_consumer_lag")]
    check(lag and min(lag) >= 0, f"consumer lag from statistics: {lag}")
    check(any(k.startswith("bayeswatch_broker_rtt_seconds{") for k in s),
          "broker round-trip time")
    check(s['bayeswatch_producer_transaction_state{state="InTransaction"}']
          == 1 or any(k.startswith("bayeswatch_producer_transaction_state")
                      for k in s), "transaction state")
    with open(os.path.join(env.dir, "metrics.txt"), "w") as fh:
        fh.write(page)
    lint = subprocess.run(["promtool", "check", "metrics"], input=page,
                          capture_output=True, text=True)
    check(lint.returncode == 0 and not lint.stdout.strip() and
          not lint.stderr.strip(),
          f"promtool check metrics: {lint.stdout}{lint.stderr}")
    n_rules, n_names, n_queries = check_prometheus(env, url)
    rc, log = env.stop(stage)
    check(rc == 0, f"exit {rc}")
    lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    check(lines and all({"time", "level", "component", "msg"} <= set(x)
                        for x in lines), "JSON log lines")
    check(any(x.get("partition") == 0 and "restor" in x["msg"]
              for x in lines), "the partition in its restore's lines")
    print(f"metrics: {good + bad} records, {bad} dead letters "
          f"{dict(reasons)} counted exactly; promtool clean; Prometheus "
          f"evaluated {n_rules} rules ({n_names} metrics, all with data) "
          f"and {n_queries} dashboard queries, all with data")


TESTS = {"metrics": (test_metrics, 1)}


if __name__ == "__main__":
    sys.exit(kt.run_main(TESTS))
