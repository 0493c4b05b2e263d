#!/usr/bin/env python3
"""Helpers of the evaluation scripts under bench/: nab_seeds.py's per-seed
config (engine.seed set, everything else kept, and still a valid config
for `bayeswatch check-config`), its seed lists, and score_fleet.py's
false-alarm episodes.
usage: bench_tools_test.py BAYESWATCH_BINARY SOURCE_DIR"""

import os
import subprocess
import sys
import tempfile

BIN, SRC = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(SRC, "bench"))
sys.path.insert(0, os.path.join(SRC, "bench", "fleet"))
import nab_seeds  # noqa: E402
import score_fleet  # noqa: E402


def check(got, want, what):
    if got != want:
        raise SystemExit("bench_tools_test: %s: got %r, want %r" %
                         (what, got, want))


def effective(text):
    """`bayeswatch dump-config` of text: the config the binary reads."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        p = subprocess.run([BIN, "check-config", f.name],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True)
        check(p.returncode, 0, "check-config of\n%s\n%s" % (text, p.stderr))
        p = subprocess.run([BIN, "dump-config", f.name], check=True,
                           stdout=subprocess.PIPE, universal_newlines=True)
        return p.stdout
    finally:
        os.unlink(f.name)


def seed_of(dump):
    lines = dump.splitlines()
    k = next(i for i, l in enumerate(lines) if l.startswith("engine:"))
    for l in lines[k + 1:]:
        if not l.startswith(" "):
            break
        if l.strip().startswith("seed:"):
            return int(l.split(":")[1].split("#")[0])
    raise SystemExit("bench_tools_test: no engine.seed in dump-config")


def main():
    check(nab_seeds.parse_seeds("1-3,7"), [1, 2, 3, 7], "seed list")
    # the shipped default: a config of engine.seed alone
    check(seed_of(effective(nab_seeds.with_seed("", 5))), 5, "empty config")
    # an existing engine section: its seed replaced, its other keys kept
    fleet = open(os.path.join(SRC, "bench", "fleet", "fleet.yaml")).read()
    want = effective(fleet).replace("seed: 7", "seed: 4", 1)
    got = effective(nab_seeds.with_seed(fleet, 4))
    check(seed_of(got), 4, "fleet config's seed")
    check(got, want, "fleet config otherwise unchanged")
    # a config without an engine section gets one
    pf = "model:\n  pf:\n    particles: 16\n"
    got = effective(nab_seeds.with_seed(pf, 2))
    check(seed_of(got), 2, "engine section added")
    check("particles: 16" in got, True, "model section kept")

    # false-alarm episodes: flags at most EPISODE_GAP minutes apart join
    g = score_fleet.EPISODE_GAP
    t = [10, 11, 11 + g, 12 + 2 * g + 1, 500]
    check(score_fleet.episode_spans(t), [(10, 3), (12 + 2 * g + 1, 1),
                                         (500, 1)], "episode spans")
    check(len(score_fleet.episode_spans(t)), score_fleet.episodes(t),
          "spans agree with the episode count")
    check(score_fleet.episode_spans([]), [], "no flags")
    print("bench_tools_test: ok")


if __name__ == "__main__":
    main()
