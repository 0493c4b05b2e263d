#!/usr/bin/env python3
"""Integration tests of `bayeswatch run` against the secured listeners of
the test broker (scripts/kafka.sh: SASL_SSL on PORT+2, mTLS on PORT+3,
StandardAuthorizer, a throwaway CA). Every run holds exactly the minimal
ACL set of the README (`minimal_acls`) unless a test removes one.

usage: secure_test.py BUILD_DIR SOURCE_DIR TEST
tests: mtls, sasl_plain, scram, bad_password, untrusted_ca,
       hostname_mismatch, acl_missing
env:   BW_KAFKA_BROKERS (plaintext listener, 127.0.0.1:9092),
       BW_KAFKA_DIR (the broker's directory: tls/, secrets/;
       SOURCE_DIR/build/kafka)

SCRAM: librdkafka before 2.6.1 answers the SCRAM challenge with a nonce
that brokers with the CVE-2024-56128 fix (Kafka 3.7.2, 3.8.1, 3.9 and 4.x)
reject (confluentinc/librdkafka#4895). Debian 12's librdkafka is 2.0.2, so
the `scram` test checks that the stage says so when built against it, and
runs the SCRAM-SHA-512 and SCRAM-SHA-256 end-to-end runs with a fixed
librdkafka (the one bundled with the confluent-kafka wheel, same ABI) put
in front of the system's with LD_LIBRARY_PATH.
"""
import glob
import os
import re
import subprocess
import sys
import tempfile

import kafka_test as kt
from kafka_test import check

PORT = int(kt.BROKERS.rsplit(":", 1)[1])
SASL = f"localhost:{PORT + 2}"
MTLS = f"localhost:{PORT + 3}"
SCRAM_FIXED = (2, 6, 1)


def kdir(env):
    return os.environ.get("BW_KAFKA_DIR") or f"{env.src}/build/kafka"


def secret_file(env, user):
    return f"{kdir(env)}/secrets/{user}.password"


def secret(env, user):
    with open(secret_file(env, user)) as f:
        return f.read().strip()


def mtls_client(env, ca="ca"):
    t = f"{kdir(env)}/tls"
    return {"security.protocol": "ssl", "ssl.ca.location": f"{t}/{ca}.pem",
            "ssl.certificate.location": f"{t}/stage.crt",
            "ssl.key.location": f"{t}/stage.key",
            "broker.address.family": "v4"}


def sasl_client(env, mechanism, user="stage", password_file=None,
                ca="ca"):
    return {"security.protocol": "sasl_ssl", "sasl.mechanism": mechanism,
            "sasl.username": user,
            "sasl.password": "${file:%s}" % (password_file or
                                             secret_file(env, user)),
            "ssl.ca.location": f"{kdir(env)}/tls/{ca}.pem",
            "broker.address.family": "v4"}


def acl(env, *args):
    out = subprocess.run([f"{env.src}/scripts/kafka.sh", "acl", "--add",
                          *args], capture_output=True, text=True)
    check(out.returncode == 0, f"kafka-acls {args}: {out.stderr[-2000:]}")


def minimal_acls(env, principal, skip=(), eos=True):
    """The README's minimal ACL set for a stage of group env.tag reading
    env.topics['in'] and writing the four outputs; @p skip leaves out
    some of: read_input, group, write_output, transactional_id,
    changelog."""
    p = f"User:{principal}"
    t = env.topics
    if "read_input" not in skip:
        acl(env, "--allow-principal", p, "--operation", "Read",
            "--topic", t["in"])
    if "group" not in skip:
        acl(env, "--allow-principal", p, "--operation", "Read",
            "--group", env.tag)
    if "write_output" not in skip:
        acl(env, "--allow-principal", p, "--operation", "Write",
            *sum((["--topic", t[k]] for k in
                  ("scores", "threats", "dead_letters", "alerts")), []))
    if "changelog" not in skip:
        acl(env, "--allow-principal", p, "--operation", "Create",
            "--operation", "Read", "--operation", "Write", "--operation",
            "DescribeConfigs", "--topic", f"{env.tag}-model-state-changelog")
    if eos and "transactional_id" not in skip:
        acl(env, "--allow-principal", p, "--operation", "Write",
            "--transactional-id", f"bayeswatch-{env.tag}-",
            "--resource-pattern-type", "prefixed")


def fixed_librdkafka():
    """LD_LIBRARY_PATH entries that put a librdkafka >= 2.6.1 first, or
    None: the system's when it is new enough, else the confluent-kafka
    wheel's."""
    if linked_version() >= SCRAM_FIXED:
        return {}
    try:
        import confluent_kafka
    except ImportError:
        return None
    libs = glob.glob(os.path.join(os.path.dirname(confluent_kafka.__file__),
                                  os.pardir, "confluent_kafka.libs",
                                  "librdkafka*.so*"))
    if not libs:
        return None
    d = tempfile.mkdtemp(prefix="bw-rdkafka-")
    os.symlink(os.path.abspath(libs[0]), f"{d}/librdkafka.so.1")
    return {"LD_LIBRARY_PATH": d}


def linked_version():
    out = subprocess.run(["pkg-config", "--modversion", "rdkafka"],
                         capture_output=True, text=True).stdout.strip()
    return tuple(int(x) for x in re.findall(r"\d+", out)[:3])


def e2e(env, brokers, client, principal, what, proc_env=None):
    """The sample telemetry through the secured listener with only the
    minimal ACLs: every score and threat equal to one replay."""
    minimal_acls(env, principal)
    config = env.config(base=f"{env.src}/config/sample.yaml",
                        brokers=brokers, client=client)
    rows = kt.sample_rows(env.src)
    good, _ = env.feed(rows)
    stage = env.start(config, "secure", proc_env)
    env.wait_count("scores", good, 180, [stage])
    rc, log = env.stop(stage)
    check(rc == 0, f"{what}: stage exit {rc}:\n{log[-3000:]}")
    got_s = env.decode("scores", env.tap("scores"))
    got_t = env.decode("threats", env.tap("threats"))
    kt.equal_to_replay(env, got_s, got_t, rows, config, f"{what}: ")
    check(len(env.tap("alerts")) > 0, f"{what}: alerts written")
    return len(got_s), len(got_t), log


def refused(env, config, what, pattern, proc_env=None, secrets=(),
            timeout=90):
    """The stage must stop by itself with a fatal error matching
    @p pattern, and print none of @p secrets."""
    stage = env.start(config, "secure", proc_env)
    try:
        stage.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    rc, log = env.stop(stage)
    check(rc != 0, f"{what}: stage exit {rc}, wanted a failure:\n"
          f"{log[-3000:]}")
    fatal = [ln for ln in log.splitlines()
             if "fatal:" in ln or ln.startswith("bayeswatch: error:")]
    check(fatal and re.search(pattern, fatal[0]),
          f"{what}: the first error does not match {pattern!r}:\n"
          f"{log[-3000:]}")
    for s in secrets:
        check(s not in log, f"{what}: a secret appears in the output")
    return fatal[0]


def test_mtls(env):
    n, m, _ = e2e(env, MTLS, mtls_client(env), "stage", "mtls")
    print(f"mtls: {n} scores and {m} threats over mTLS (principal from "
          f"the certificate CN) equal to replay; minimal ACLs")


def test_sasl_plain(env):
    n, m, _ = e2e(env, SASL, sasl_client(env, "PLAIN"), "stage",
                  "sasl_plain")
    print(f"sasl_plain: {n} scores and {m} threats over SASL_SSL/PLAIN "
          f"equal to replay; minimal ACLs")


def test_scram(env):
    fixed = fixed_librdkafka()
    check(fixed is not None, "no librdkafka >= 2.6.1 to run SCRAM with "
          "(scripts/deps.sh test installs confluent-kafka)")
    said = ""
    if linked_version() < SCRAM_FIXED:
        config = env.config(name="old", brokers=SASL,
                            client=sasl_client(env, "SCRAM-SHA-512"))
        said = refused(env, config, "scram with the linked librdkafka",
                       r"[Aa]uthentication.*2\.6\.1",
                       secrets=[secret(env, "stage")])
    n, m, _ = e2e(env, SASL, sasl_client(env, "SCRAM-SHA-512"), "stage",
                  "scram-sha-512", fixed)
    env2 = kt.Env(env.build, env.src, "scram256", 1)
    try:
        n2, _, _ = e2e(env2, SASL, sasl_client(env2, "SCRAM-SHA-256",
                                               user="stage256"),
                       "stage256", "scram-sha-256", fixed)
    finally:
        env2.close()
    print(f"scram: SCRAM-SHA-512 {n} scores / {m} threats and SCRAM-SHA-256 "
          f"{n2} scores equal to replay (librdkafka >= 2.6.1); with the "
          f"linked {'.'.join(map(str, linked_version()))}: "
          f"{said.strip()[:160] or 'worked'}")


def test_bad_password(env):
    wrong = f"{env.dir}/wrong.password"
    bad = "not-" + secret(env, "stage")
    with open(wrong, "w") as f:
        f.write(bad + "\n")
    minimal_acls(env, "stage")
    config = env.config(brokers=SASL, client=sasl_client(
        env, "PLAIN", password_file=wrong))
    line = refused(env, config, "bad_password", r"[Aa]uthentication",
                   secrets=[bad, secret(env, "stage")])
    print(f"bad_password: {line.strip()[:200]}")


def test_untrusted_ca(env):
    minimal_acls(env, "stage")
    config = env.config(brokers=MTLS, client=mtls_client(env, "rogue-ca"))
    line = refused(env, config, "untrusted_ca",
                   r"certificate verify.*CA that ssl.ca.location does not trust")
    print(f"untrusted_ca: {line.strip()[:200]}")


def test_hostname_mismatch(env):
    minimal_acls(env, "stage")
    config = env.config(brokers=f"127.0.0.1:{PORT + 3}",
                        client=mtls_client(env))
    line = refused(env, config, "hostname_mismatch",
                   r"certificate verify.*(IP address|hostname) mismatch")
    print(f"hostname_mismatch: {line.strip()[:200]}")


# (ACL left out, extra config, what the first error must say)
NO_STATE = "state: {changelog: false}"
MISSING = [("read_input", "", r"Read on Topic {in}"),
           ("read_input", NO_STATE, r"Read on Topic {in}"),
           ("group", "", r"Read on Group {tag}"),
           ("write_output", "", r"Write on a Topic.*{scores} {threats} "
            r"{dead_letters} {alerts}"),
           ("transactional_id", "", r"Write on TransactionalId "
            r"bayeswatch-{tag}-secure.*prefix bayeswatch-{tag}-"),
           ("changelog", "", r"changelog topic {tag}-model-state-changelog"
            r".*Create on it")]


def test_acl_missing(env):
    """Each ACL of the minimal set left out in turn: the stage stops with
    an error that names the resource (and the ACL it needs)."""
    said = []
    for what, extra, pattern in MISSING:
        e = kt.Env(env.build, env.src, f"acl-{what}", 1)
        try:
            minimal_acls(e, "stage", skip=(what,))
            e.feed(kt.sample_rows(env.src)[:400])
            config = e.config(brokers=MTLS, client=mtls_client(e),
                              extra=extra)
            pat = pattern.format(tag=re.escape(e.tag), **{
                k: re.escape(v) for k, v in e.topics.items()})
            said.append((what + (" (no state)" if extra else ""),
                         refused(e, config, f"without {what}", pat)))
        finally:
            e.close()
    for what, line in said:
        print(f"acl_missing {what}: {line.strip()[:220]}")


TESTS = {"mtls": (test_mtls, 1), "sasl_plain": (test_sasl_plain, 1),
         "scram": (test_scram, 1), "bad_password": (test_bad_password, 1),
         "untrusted_ca": (test_untrusted_ca, 1),
         "hostname_mismatch": (test_hostname_mismatch, 1),
         "acl_missing": (test_acl_missing, 1)}

if __name__ == "__main__":
    sys.exit(kt.run_main(TESTS))
