#!/usr/bin/env python3
"""What can be checked of ops/ and docker/ without pulling images:

  - promtool: the alert rules parse (check rules), their unit tests pass
    (test rules: pages need evidence AND fresh inputs AND healthy models),
    and the Prometheus config parses (check config);
  - the committed Grafana dashboards are exactly what
    ops/grafana/gen_dashboards.py writes, each is well-formed (unique uid,
    every panel with a Prometheus query and a grid position), and every
    metric they or the rules name is one the stage exports (listed in
    src/);
  - docker/compose.yaml parses and brings up the broker, its topics,
    bayeswatch, the feed, Prometheus and Grafana; every path it mounts
    exists; the provisioning files are well-formed YAML pointing at the
    mounted dashboards;
  - docker/Dockerfile builds with scripts/install.sh (what CI runs),
    ends as a non-root user with a HEALTHCHECK on /healthz, and installs
    every runtime library the build links (libmicrohttpd among them);
  - docker/bayeswatch.yaml passes `bayeswatch check-config`.

usage: ops_static_test.py SRC_DIR BAYESWATCH_BINARY
"""

import filecmp
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml


def fail(msg):
    raise SystemExit("ops_static_test: FAIL: " + msg)


def run(*cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        fail("%s: %s%s" % (" ".join(cmd), p.stdout, p.stderr))
    return p.stdout


def exported_metrics(src):
    names = set()
    for path in glob.glob(os.path.join(src, "src", "**", "*.c"),
                          recursive=True):
        with open(path) as fh:
            names |= set(re.findall(r'"(bayeswatch_[a-z0-9_]+)"', fh.read()))
    return names


def check_prometheus(src):
    prom = os.path.join(src, "ops", "prometheus")
    run("promtool", "check", "rules", os.path.join(prom, "rules.yml"))
    run("promtool", "test", "rules", os.path.join(prom, "rules_test.yml"))
    run("promtool", "check", "config", os.path.join(prom, "prometheus.yml"))


def check_dashboards(src, exported):
    gen = os.path.join(src, "ops", "grafana", "gen_dashboards.py")
    have = os.path.join(src, "ops", "grafana", "dashboards")
    with tempfile.TemporaryDirectory() as tmp:
        run(sys.executable, gen, tmp)
        cmp = filecmp.dircmp(tmp, have)
        if cmp.diff_files or cmp.left_only or cmp.right_only:
            fail("ops/grafana/dashboards differ from gen_dashboards.py's "
                 "output: %s" % (cmp.diff_files + cmp.left_only +
                                 cmp.right_only))
    uids = set()
    named = set()
    for path in sorted(glob.glob(os.path.join(have, "*.json"))):
        with open(path) as fh:
            d = json.load(fh)
        if d["uid"] in uids:
            fail("duplicate uid " + d["uid"])
        uids.add(d["uid"])
        for p in d["panels"]:
            if not p["targets"] or "gridPos" not in p:
                fail("%s: panel %s lacks a query or position"
                     % (path, p["title"]))
            for t in p["targets"]:
                named |= set(re.findall(r"bayeswatch_[a-z0-9_]+", t["expr"]))
    if len(uids) != 3:
        fail("expected 3 dashboards, found %d" % len(uids))
    with open(os.path.join(src, "ops", "prometheus", "rules.yml")) as fh:
        named |= set(re.findall(r"bayeswatch_[a-z0-9_]+", fh.read()))
    base = {re.sub(r"_(bucket|sum|count)$", "", n) for n in named}
    missing = sorted(n for n in base if n not in exported)
    if missing:
        fail("dashboards or rules name metrics the stage does not export: "
             + ", ".join(missing))
    return len(named)


def check_compose(src):
    docker = os.path.join(src, "docker")
    with open(os.path.join(docker, "compose.yaml")) as fh:
        comp = yaml.safe_load(fh)
    want = {"kafka", "topics", "bayeswatch", "feed", "prometheus", "grafana"}
    if set(comp["services"]) != want:
        fail("compose services %s, want %s" % (sorted(comp["services"]),
                                               sorted(want)))
    for name, svc in comp["services"].items():
        for vol in svc.get("volumes", []):
            host = vol.split(":")[0]
            if not os.path.exists(os.path.join(docker, host)):
                fail("compose %s mounts missing %s" % (name, host))
        build = svc.get("build")
        if build and not os.path.isfile(os.path.join(
                docker, build["context"], build["dockerfile"])):
            fail("compose %s builds from a missing Dockerfile" % name)
    cmd = comp["services"]["feed"]["command"]
    if "--feed" not in cmd:
        fail("the feed service does not run `bayeswatch demo --feed`")
    prov = os.path.join(src, "ops", "grafana", "provisioning")
    for path in glob.glob(os.path.join(prov, "*", "*.yml")):
        with open(path) as fh:
            doc = yaml.safe_load(fh)
        if doc.get("apiVersion") != 1:
            fail("%s: apiVersion 1 expected" % path)
    with open(os.path.join(prov, "dashboards", "bayeswatch.yml")) as fh:
        dash_path = yaml.safe_load(fh)["providers"][0]["options"]["path"]
    mounts = [v.split(":")[1] for v in comp["services"]["grafana"]["volumes"]]
    if dash_path not in mounts:
        fail("grafana provisioning reads %s, not mounted" % dash_path)


def check_dockerfile(src):
    with open(os.path.join(src, "docker", "Dockerfile")) as fh:
        text = fh.read()
    runs = re.findall(r"^RUN (.*)$", text, re.M)
    if "DESTDIR=/staging scripts/install.sh /usr /build" not in runs:
        fail("the Dockerfile does not build with scripts/install.sh")
    with open(os.path.join(src, "scripts", "build_matrix.sh")) as fh:
        if "scripts/install.sh" not in fh.read():
            fail("CI (scripts/build_matrix.sh) does not run "
                 "scripts/install.sh")
    if not re.search(r"^USER (?!root|0\b)\S+", text, re.M):
        fail("the final image does not run as a non-root user")
    if not re.search(r"^HEALTHCHECK .*probe.*/healthz", text, re.M | re.S):
        fail("no HEALTHCHECK on /healthz")
    with open(os.path.join(src, "CMakeLists.txt")) as fh:
        cm = fh.read()
    libs = {"RDKAFKA": "librdkafka1", "AVRO": "libavro23",
            "YAML": "libyaml-0-2", "GSL": "libgsl27",
            "MHD": "libmicrohttpd12", "CURL": "libcurl4",
            "JANSSON": "libjansson4"}
    for var, pkg in libs.items():
        if "pkg_check_modules(%s " % var in cm and pkg not in text:
            fail("the runtime image lacks %s (the build links %s)"
                 % (pkg, var))


def main(argv):
    src, binary = argv[1], argv[2]
    check_prometheus(src)
    n = check_dashboards(src, exported_metrics(src))
    check_compose(src)
    check_dockerfile(src)
    run(binary, "check-config", os.path.join(src, "docker", "bayeswatch.yaml"))
    print("ops_static_test: rules, rule tests, Prometheus config, 3 "
          "dashboards (%d metric names, all exported), compose, "
          "provisioning and Dockerfile ok" % n)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
