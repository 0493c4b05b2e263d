#!/usr/bin/env python3
"""Soak of the Kafka stage on the real broker (scripts/soak.sh runs it).

The stage runs for SECONDS while kbench feeds the input at a steady RATE
(16 series, so no series is new after the first second) with a poison
record every POISON-th; half way through, the broker restarts
(scripts/kafka.sh restart). Every minute: the stage's resident memory, its
records in and the lag (fed so far minus records in). At the end, once the
stage has caught up: a read_committed count of the scores equals the good
records fed and of the dead letters the poison ones (exactly once across
the restart), and the memory after the first tenth of the run grew by less
than 10% (plus 16 MiB for librdkafka's buffers).

usage: soak.py BUILD_DIR SOURCE_DIR SECONDS RATE POISON
"""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafka_test as kt  # noqa: E402


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def records_in(log):
    log.seek(0)
    got = re.findall(r"progress: (\d+) records", log.read())
    return int(got[-1]) if got else 0


def count(build, topic):
    out = subprocess.run([f"{build}/bench/kbench", "count", kt.BROKERS, topic],
                         capture_output=True, text=True, timeout=600)
    kt.check(out.returncode == 0, f"count {topic}: {out.stderr}")
    return int(out.stdout)


def main():
    build, src = sys.argv[1], sys.argv[2]
    seconds, rate, poison = (int(x) for x in sys.argv[3:6])
    env = kt.Env(build, src, "soak", 4)
    try:
        config = env.config(extra="pipeline: {stats_interval_ms: 5000}")
        stage = env.start(config, "soak")
        kt.wait_log(stage, r"assigned [1-9][0-9]* partition", 60)
        n = seconds * rate
        feeder = subprocess.Popen(
            [f"{build}/bench/kbench", "feed", kt.BROKERS, env.topics["in"],
             str(n), str(rate), str(poison)],
            stdout=subprocess.PIPE, text=True)
        t0, restarted, samples = time.time(), False, []
        step = max(5, min(60, seconds // 20))
        while feeder.poll() is None:
            time.sleep(step)
            kt.check(stage.poll() is None, f"stage exited: {stage.returncode}")
            el = time.time() - t0
            got = records_in(stage.log)
            samples.append((el, rss_kib(stage.pid), got, min(n, el * rate) - got))
            print("soak: %6.0f s  RSS %7.1f MiB  records in %9d  lag %8.0f" %
                  (el, samples[-1][1] / 1024, got, samples[-1][3]), flush=True)
            if not restarted and el >= seconds / 2:
                print("soak: restarting the broker", flush=True)
                kt.kafka_sh(src, "restart")
                restarted = True
        fed = feeder.stdout.read().strip()
        bad = int(re.search(r"\((\d+) poison\)", fed).group(1))
        good = n - bad
        deadline = time.time() + 600
        while count(build, env.topics["scores"]) < good and time.time() < deadline:
            time.sleep(5)
        rc, log = env.stop(stage)
        kt.check(rc == 0, f"stage exit {rc}:\n{log[-3000:]}")
        scores = count(build, env.topics["scores"])
        dead = count(build, env.topics["dead_letters"])
        base = [s[1] for s in samples if s[0] >= seconds / 10]
        grew = (max(base) - base[0]) / base[0] if base else 0
        print(f"soak: {fed}; committed {scores} scores (good {good}), {dead} "
              f"dead letters (poison {bad}); RSS {base[0] / 1024:.1f} -> "
              f"{max(base) / 1024:.1f} MiB after the first tenth "
              f"({100 * grew:.1f}%); max lag {max(s[3] for s in samples):.0f}")
        kt.check(scores == good, f"scores {scores} != good inputs {good}")
        kt.check(dead == bad, f"dead letters {dead} != poison {bad}")
        kt.check(max(base) <= base[0] * 1.10 + 16 * 1024,
                 f"memory grew from {base[0]} to {max(base)} KiB")
        print("soak: ok")
    finally:
        env.close()


if __name__ == "__main__":
    try:
        main()
    except kt.Failure as e:
        print(f"FAIL soak: {e}")
        sys.exit(1)
