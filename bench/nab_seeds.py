#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""NAB cross-validation repeated over engine seeds.

The particle filter's random numbers (engine.seed) are part of the model:
on NAB's 36 windows one window is 2.8 points, and a borderline window that
flips with the particles' draws moves the cross-validated score by several
points. A single-seed figure is therefore one draw from a spread. This
runs bench/nab_cv.py once per engine seed (the same files, folds and
threshold grid; only engine.seed differs), as states and, with --rearm,
as pages, and prints each seed's CV pooled scores with their mean and
sample sd over the seeds: the figure to quote for a default.

usage: bench/nab_seeds.py --data D --labels L --scorer S
           [--config FILE] [--engine-seeds 1-6] [--rearm 1,2,4,8,12,16,24]
           [--work DIR] [--json FILE]

--config FILE is the configuration to evaluate (default: the shipped
default); each seed's copy sets engine.seed, inserted under the file's
top-level `engine:` key (or as a new one).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

from nab_cv import PROFILES  # the scorer's profiles, as nab_cv reports them

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def die(msg):
    sys.stderr.write("nab_seeds: %s\n" % msg)
    sys.exit(2)


def parse_seeds(spec):
    seeds = []
    for part in spec.split(","):
        a, sep, b = part.strip().partition("-")
        try:
            seeds += list(range(int(a), int(b) + 1)) if sep else [int(a)]
        except ValueError:
            die("bad --engine-seeds %r (want e.g. 1-6 or 1,3,5)" % spec)
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        die("bad --engine-seeds %r" % spec)
    return seeds


def with_seed(text, seed):
    """The config text with engine.seed = seed (block-style YAML)."""
    lines = text.splitlines()
    top = [k for k, l in enumerate(lines) if re.match(r"^engine:\s*(#.*)?$", l)]
    if not top:
        return "engine:\n  seed: %d\n%s\n" % (seed, text)
    k = top[0]
    end = k + 1
    while end < len(lines) and (not lines[end].strip() or
                                lines[end].startswith((" ", "#"))):
        end += 1
    body = [l for l in lines[k + 1:end] if not re.match(r"^  seed:", l)]
    return "\n".join(lines[:k + 1] + ["  seed: %d" % seed] + body +
                     lines[end:]) + "\n"


def run_cv(args, cfg, work, rearm, out_json):
    cmd = [sys.executable, os.path.join(ROOT, "bench", "nab_cv.py"),
           "--bin", args.bin, "--data", args.data, "--labels", args.labels,
           "--scorer", args.scorer, "--work", work, "--no-default",
           "--config", "x=" + cfg, "--json", out_json]
    if rearm:
        cmd += ["--rearm", rearm]
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       universal_newlines=True)
    if p.returncode != 0:
        die("nab_cv failed (%s):\n%s" % (" ".join(cmd), p.stderr))
    with open(out_json) as fh:
        rep = json.load(fh)
    return {p: rep["pooled"][p]["normalized"] for p in PROFILES}


def summary(rows):
    out = {}
    for p in PROFILES:
        xs = [r[p] for r in rows]
        out[p] = {"mean": statistics.mean(xs),
                  "sd": statistics.stdev(xs) if len(xs) > 1 else 0.0,
                  "min": min(xs), "max": max(xs)}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bayeswatch"))
    ap.add_argument("--data", required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--scorer", required=True)
    ap.add_argument("--config", help="config to evaluate (default: shipped)")
    ap.add_argument("--engine-seeds", default="1-6")
    ap.add_argument("--rearm", default="1,2,4,8,12,16,24",
                    help="re-arm hours for the pages run ('' = states only)")
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "nab-seeds"))
    ap.add_argument("--json", help="write every seed's scores here")
    args = ap.parse_args()
    for a in ("bin", "data", "labels", "scorer", "work"):
        setattr(args, a, os.path.abspath(getattr(args, a)))
    text = ""
    if args.config:
        try:
            with open(args.config) as fh:
                text = fh.read()
        except OSError as e:
            die("%s: %s" % (args.config, e.strerror))
    seeds = parse_seeds(args.engine_seeds)
    os.makedirs(args.work, exist_ok=True)
    modes = [("state", "")] + ([("pages", args.rearm)] if args.rearm else [])
    rep = {"config": args.config or "(shipped default)", "seeds": seeds}
    for mode, rearm in modes:
        rows = []
        for s in seeds:
            d = os.path.join(args.work, "seed%d" % s)
            os.makedirs(d, exist_ok=True)
            cfg = os.path.join(d, "config.yaml")
            with open(cfg, "w") as fh:
                fh.write(with_seed(text, s))
            rows.append(run_cv(args, cfg, os.path.join(d, "cv"), rearm,
                               os.path.join(d, mode + ".json")))
            sys.stderr.write("nab_seeds: %s seed %d: %.1f\n" %
                             (mode, s, rows[-1]["standard"]))
        rep[mode] = {"per_seed": rows, "summary": summary(rows)}
    print("NAB 4-fold CV over engine seeds %s (config %s)" %
          (args.engine_seeds, rep["config"]))
    print("%-6s %-9s %s" % ("", "profile", " ".join("%6d" % s for s in seeds)) +
          "    mean     sd    min    max")
    for mode, _ in modes:
        sm = rep[mode]["summary"]
        for p in PROFILES:
            xs = " ".join("%6.1f" % r[p] for r in rep[mode]["per_seed"])
            print("%-6s %-9s %s  %6.1f %6.1f %6.1f %6.1f" % (
                mode, p.replace("reward_", "").replace("_rate", ""), xs,
                sm[p]["mean"], sm[p]["sd"], sm[p]["min"], sm[p]["max"]))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rep, fh, indent=1)


if __name__ == "__main__":
    main()
