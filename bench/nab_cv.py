#!/usr/bin/env python3
"""k-fold cross-validated NAB evaluation of `bayeswatch replay`.

The whole-corpus NAB figure (bench/nab.sh) picks the detection threshold on
the very files it then scores, so it is a development figure.  This script
estimates what a (config, threshold) choice is worth on files it was not
chosen on:

  1. replay every labelled file once per candidate config (the shipped
     default, i.e. no --config, plus any --config NAME=FILE), cached under
     --work and re-used while binary, config and data are unchanged;
  2. split the files into k folds (seeded shuffle, stratified by category,
     window counts balanced across folds);
  3. for each fold and each NAB profile, pick the (config, threshold) with
     the best score on the other k-1 folds and score the held-out fold at
     that fixed threshold;
  4. pooled CV score: every file scored with its own fold's choice
     (binarised to 1/0 by that threshold, scored together at 0.5);
  5. next to it, the development figure: best choice made on all files.

Thresholds are either a fixed grid (--thresholds 0.5,0.9,...) or "opt":
the scorer's own exhaustive optimisation, run on the training folds only.
Selection runs in-process with the scorer's own functions (imported from
--scorer); every reported held-out, pooled and full-subset figure is then
re-scored by running the scorer itself (--threshold T, --json) and the two
must agree.  Standard library only.

usage: bench/nab_cv.py --data DATA_DIR --labels LABELS_JSON \
           --scorer nab_score.py [--bin build/bayeswatch] [--folds 4]
           [--seed 1] [--config NAME=FILE ...] [--no-default]
           [--thresholds 0.5,0.7,... | opt] [--work DIR] [--json OUT]
"""

import argparse
import copy
import csv
import hashlib
import importlib.util
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pages  # noqa: E402  (bench/pages.py: the paging rule)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_GRID = "0.5,0.7,0.8,0.9,0.95,0.97,0.98,0.99,0.995,0.999"
PROFILES = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"]
SHORT = {"standard": "standard", "reward_low_FP_rate": "low_FP",
         "reward_low_FN_rate": "low_FN"}
CACHE_VERSION = 1
TOL = 1e-6


def die(msg):
    raise SystemExit("nab_cv: error: " + msg)


def note(msg):
    print("nab_cv: " + msg, file=sys.stderr)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for blk in iter(lambda: fh.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


def load_scorer(path):
    spec = importlib.util.spec_from_file_location("nab_score_mod", path)
    if spec is None or spec.loader is None:
        die("cannot import scorer %s" % path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name in ("PROFILES", "load_corpus", "flatten", "sweep", "score_at"):
        if not hasattr(mod, name):
            die("scorer %s has no %s()" % (path, name))
    return mod


# ---------------------------------------------------------------- replay

def data_stamp(data, rels):
    out = []
    for rel in rels:
        st = os.stat(os.path.join(data, rel))
        out.append([rel, st.st_size, st.st_mtime_ns])
    return out


def replay_file(binpath, cfg, src, dst):
    cmd = [binpath, "replay"] + (["--config", cfg] if cfg else []) + [src]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    if p.returncode != 0:
        die("%s exited %d: %s" % (" ".join(cmd), p.returncode,
                                  p.stderr.strip()[-500:]))
    rows = list(csv.reader(p.stdout.splitlines()))
    if not rows or "anomaly_score" not in rows[0]:
        die("%s: no anomaly_score column in output" % " ".join(cmd))
    hdr = rows[0]
    it, iv, ia = (hdr.index("timestamp"), hdr.index("value"),
                  hdr.index("anomaly_score"))
    with open(src) as fh:
        n_in = sum(1 for line in fh if line.strip()) - 1
    body = [r for r in rows[1:] if r]
    if len(body) != n_in:
        die("%s: %d output rows for %d input rows" % (src, len(body), n_in))
    with open(dst, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["timestamp", "value", "anomaly_score"])
        for r in body:
            w.writerow([r[it], r[iv], r[ia]])


def replay_config(args, name, cfg, rels, bin_hash):
    """Results dir for one candidate config (re-used if the stamp matches)."""
    out = os.path.join(args.work, "results", name)
    stamp = {"version": CACHE_VERSION, "bin_sha256": bin_hash,
             "config": os.path.abspath(cfg) if cfg else None,
             "config_sha256": sha256(cfg) if cfg else None,
             "data": data_stamp(args.data, rels)}
    spath = os.path.join(out, ".stamp.json")
    if os.path.isfile(spath):
        with open(spath) as fh:
            if json.load(fh) == stamp:
                return out, False
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for rel in rels:
        os.makedirs(os.path.join(tmp, os.path.dirname(rel)), exist_ok=True)
        replay_file(args.bin, cfg, os.path.join(args.data, rel),
                    os.path.join(tmp, rel))
    with open(os.path.join(tmp, ".stamp.json"), "w") as fh:
        json.dump(stamp, fh, indent=1)
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    return out, True


# ----------------------------------------------------------------- folds

def make_folds(rels, nwin, k, seed):
    """Seeded, stratified by category, window counts balanced.

    Categories in sorted order; inside each, files are shuffled, then taken
    by window count (most first) and each goes to the fold with the fewest
    files of its category, then fewest windows, then fewest files, then a
    seeded fold order."""
    rng = random.Random(seed)
    pref = list(range(k))
    rng.shuffle(pref)
    rank = {f: i for i, f in enumerate(pref)}
    by_cat = {}
    for rel in rels:
        by_cat.setdefault(os.path.dirname(rel), []).append(rel)
    fold_of = {}
    wins = [0] * k
    nfiles = [0] * k
    for cat in sorted(by_cat):
        files = sorted(by_cat[cat])
        rng.shuffle(files)
        files.sort(key=lambda r: -nwin[r])      # stable: shuffle breaks ties
        in_cat = [0] * k
        for rel in files:
            f = min(range(k), key=lambda j: (in_cat[j], wins[j], nfiles[j],
                                             rank[j]))
            fold_of[rel] = f
            in_cat[f] += 1
            wins[f] += nwin[rel]
            nfiles[f] += 1
    return [sorted(r for r in rels if fold_of[r] == j) for j in range(k)]


# --------------------------------------------------------------- scoring

class Evaluator:
    """In-process scoring with the scorer's own functions.

    Per-file raw scores are additive, so a subset's raw score is the sum of
    its files' raw scores; normalisation is the scorer's:
    100 * (raw - null) / (perfect - null) over that subset."""

    def __init__(self, sc, data, labels):
        self.sc = sc
        self.data = data
        self.labels = labels
        self.files = {}      # config -> {rel: FileRows}
        self.pages = {}      # paged candidate -> (config, rearm ms)
        self.times = {}      # rel -> event times (ms)
        self.raw = {}        # (config, thr, profile) -> {rel: per-file dict}
        self.nulls = {}

    def load(self, name, results):
        ns = argparse.Namespace(labels=self.labels, results=results,
                                prefix=None, data=self.data, quiet=True,
                                strict=True)
        self.files[name] = {f.name: f for f in self.sc.load_corpus(ns)}

    def add_pages(self, base, rearm_ms):
        """A candidate that alerts like a pager on `base`'s scores."""
        name = "%s@%gh" % (base, rearm_ms / 3.6e6)
        self.pages[name] = (base, rearm_ms)
        for rel in self.files[base]:
            if rel not in self.times:
                col = self.sc.read_csv_columns(
                    os.path.join(self.data, rel), ["timestamp"])
                self.times[rel] = [pages.ms(t) for t in col["timestamp"]]
        return name

    def hits(self, name, rel, thr):
        """Per row: is it a detection at thr?  A paged candidate detects
        only the first alert (score >= thr) after `rearm` without one."""
        if thr is None:
            return [False] * len(self.files[self.pages.get(name, (name,))[0]]
                                 [rel].scores)
        if name not in self.pages:
            return [s >= thr for s in self.files[name][rel].scores]
        base, rearm = self.pages[name]
        return pages.page_hits(self.files[base][rel].scores, self.times[rel],
                               thr, rearm)

    def rows_at(self, name, thr):
        """FileRows whose scores are this candidate's detections at thr,
        scored at 0.5 (paged), or the config's own rows and thr."""
        if name not in self.pages:
            return list(self.files[name].values()), thr
        base = self.pages[name][0]
        out = []
        for rel, f in self.files[base].items():
            g = copy.copy(f)
            g.scores = [1.0 if h else 0.0 for h in self.hits(name, rel, thr)]
            out.append(g)
        return out, 0.5

    def per_file(self, name, thr, prof):
        key = (name, thr, prof)
        if key not in self.raw:
            fl, at = self.rows_at(name, thr)
            rows = self.sc.score_at(fl, at, self.sc.PROFILES[prof])
            self.raw[key] = {r["file"]: r for r in rows}
        return self.raw[key]

    def norm_terms(self, rels, prof):
        """(null, perfect) of a subset; independent of the detector."""
        key = (tuple(rels), prof)
        if key not in self.nulls:
            any_cfg = next(iter(self.files.values()))
            fl = [any_cfg[r] for r in rels]
            p = self.sc.PROFILES[prof]
            nrows, scorable, n_win = self.sc.flatten(fl, score_override=0.5)
            _, null = self.sc.sweep(nrows, n_win, scorable, p)
            self.nulls[key] = (null, p["tp"] * n_win)
        return self.nulls[key]

    def score(self, name, thr, rels, prof):
        pf = self.per_file(name, thr, prof)
        raw = sum(pf[r]["score"] for r in rels)
        null, perfect = self.norm_terms(rels, prof)
        return {"normalized": normalise(raw, null, perfect), "raw": raw,
                "null": null, "perfect": perfect,
                "windows_detected": sum(pf[r]["windows_detected"]
                                        for r in rels),
                "windows": sum(pf[r]["windows"] for r in rels),
                "fp_rows": sum(pf[r]["fp_rows"] for r in rels)}

    def optimise(self, name, rels, prof):
        """The scorer's threshold sweep on a subset: (thr or None, raw)."""
        fl = [self.files[name][r] for r in rels]
        rows, scorable, n_win = self.sc.flatten(fl)
        return self.sc.sweep(rows, n_win, scorable, self.sc.PROFILES[prof])


def normalise(raw, null, perfect):
    if perfect - null <= 0:
        return float("nan")
    return 100.0 * (raw - null) / (perfect - null)


def choose(ev, names, grid, rels, prof):
    """Best (config, thr) on rels. Ties: earlier config, higher threshold.
    thr None means 'detect nothing' (only from the scorer's sweep)."""
    best = None
    for name in names:
        if grid is None:
            cands = [ev.optimise(name, rels, prof)[0]]
        else:
            cands = sorted(grid, reverse=True)
        for thr in cands:
            s = ev.score(name, thr, rels, prof)
            if best is None or s["raw"] > best[2]["raw"] + 1e-9:
                best = (name, thr, s)
    return best


# ------------------------------------------------- scorer as a program

class Cli:
    def __init__(self, args):
        self.args = args
        self.n = 0

    def labels_file(self, tag, rels, labels):
        path = os.path.join(self.args.work, "labels", tag + ".json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            json.dump({r: labels[r] for r in rels}, fh, indent=1)
        return path

    def run_at(self, ev, res_dirs, labels_path, name, thr, profiles):
        """The scorer on one candidate at thr (paged: its detections)."""
        if name not in ev.pages:
            return self.run(labels_path, res_dirs[name], thr, profiles)
        out = os.path.join(self.args.work, "paged", name, fthr(thr))
        if not os.path.isdir(out):
            base = ev.pages[name][0]
            binarise(ev, res_dirs, {r: (name, thr) for r in ev.files[base]},
                     sorted(ev.files[base]), out)
        return self.run(labels_path, out, 0.5, profiles)

    def run(self, labels_path, results, thr, profiles, optimise=False):
        """Run the scorer; returns its JSON report ('profiles' per name)."""
        self.n += 1
        out = os.path.join(self.args.work, "scorer-%d.json" % self.n)
        cmd = [sys.executable, self.args.scorer, "--data", self.args.data,
               "--labels", labels_path, "--results", results, "--strict",
               "--quiet", "--json", out]
        if not optimise:
            cmd += ["--threshold", "inf" if thr is None else repr(thr)]
        for p in profiles:
            cmd += ["--profile", p]
        pr = subprocess.run(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)
        if pr.returncode != 0:
            die("scorer failed: %s\n%s" % (" ".join(cmd), pr.stderr))
        with open(out) as fh:
            rep = json.load(fh)
        os.remove(out)
        return rep["profiles"]


def check(tag, mine, cli):
    for key in ("raw", "null", "perfect"):
        if abs(mine[key] - cli[key]) > TOL:
            die("%s: in-process %s %.6f != scorer %.6f"
                % (tag, key, mine[key], cli[key]))


def binarise(ev, res_dirs, choice_of, rels, out):
    """Write 1.0/0.0 scores: each file thresholded by its fold's choice."""
    shutil.rmtree(out, ignore_errors=True)
    for rel in rels:
        name, thr = choice_of[rel]
        hits = ev.hits(name, rel, thr)
        src = res_dirs[ev.pages.get(name, (name,))[0]]
        with open(os.path.join(src, rel), newline="") as fh:
            rows = list(csv.reader(fh))[1:]
        rows = [r for r in rows if r]
        if len(rows) != len(hits):
            die("row count changed in %s" % rel)
        os.makedirs(os.path.join(out, os.path.dirname(rel)), exist_ok=True)
        with open(os.path.join(out, rel), "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["timestamp", "value", "anomaly_score"])
            for r, hit in zip(rows, hits):
                w.writerow([r[0], r[1], "1.0" if hit else "0.0"])


# ---------------------------------------------------------------- output

def fmt(x, nd=1):
    if x is None:
        return "-"
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    return "%.*f" % (nd, x)


def fthr(t):
    return "none" if t is None else ("%.10g" % t)


def mean_sd(xs):
    xs = [x for x in xs if not math.isnan(x)]
    if not xs:
        return float("nan"), float("nan")
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, float("nan")
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def print_report(rep, names, grid, ev, all_rels):
    print("NAB %d-fold cross-validation: %d files, %d windows, seed %d, "
          "thresholds %s, configs %s"
          % (rep["folds_k"], rep["files"], rep["windows"], rep["seed"],
             "opt (scorer sweep on training folds)" if grid is None
             else ",".join("%g" % t for t in grid), ", ".join(names)))
    print("binary %s (sha256 %s)" % (rep["bin"], rep["bin_sha256"][:12]))
    print()
    print("fold files win  config       thr          train  HELD-OUT  hit    fp"
          "  | low_FP thr   held | low_FN thr   held")
    for f in rep["folds"]:
        s, lp, ln = (f["profiles"][p] for p in PROFILES)
        print("%4d %5d %3d  %-12s %-11s %6s  %8s  %-5s %3d  | %-11s %6s | "
              "%-11s %6s"
              % (f["fold"], len(f["files"]), f["windows"], s["config"][:12],
                 fthr(s["threshold"]), fmt(s["train"]["normalized"]),
                 fmt(s["test"]["normalized"]),
                 "%d/%d" % (s["test"]["windows_detected"],
                            s["test"]["windows"]),
                 s["test"]["fp_rows"], fthr(lp["threshold"]),
                 fmt(lp["test"]["normalized"]), fthr(ln["threshold"]),
                 fmt(ln["test"]["normalized"])))
    for f in rep["folds"]:
        cats = {}
        for r in f["files"]:
            c = os.path.dirname(r)
            cats[c] = cats.get(c, 0) + 1
        print("  fold %d: %s" % (f["fold"], ", ".join(
            "%s %d" % (c, n) for c, n in sorted(cats.items()))))
    print("  train = in-sample score of the choice on the other folds")
    print()
    print("%-44s %9s %9s %9s" % ("", "standard", "low_FP", "low_FN"))
    row = lambda lab, vals: print("%-44s %9s %9s %9s" % ((lab,) + tuple(
        fmt(v) for v in vals)))
    row("CV pooled (each file at its fold's choice)",
        [rep["pooled"][p]["normalized"] for p in PROFILES])
    row("CV mean of fold scores",
        [rep["fold_mean"][p]["mean"] for p in PROFILES])
    row("CV sd of fold scores",
        [rep["fold_mean"][p]["sd"] for p in PROFILES])
    full = rep["full_subset"]
    if "grid_best" in full:
        row("full subset, best grid pair (development)",
            [full["grid_best"][p]["normalized"] for p in PROFILES])
    for name in (n for n in names if n not in ev.pages):
        row("full subset, %s, scorer-optimised (dev.)" % name[:8],
            [full["optimised"][name][p]["normalized"] for p in PROFILES])
    print("  development = chosen on all files, NOT cross-validated")
    if "grid_best" in full:
        print("  best grid pair: " + ", ".join(
            "%s %s@%s" % (SHORT[p], full["grid_best"][p]["config"],
                          fthr(full["grid_best"][p]["threshold"]))
            for p in PROFILES))
        print()
        print("development grid, standard score on all %d files:"
              % len(all_rels))
        print("%-12s " % "config" + " ".join("%6g" % t for t in grid))
        for name in names:
            print("%-12s " % name[:12] + " ".join(
                "%6s" % fmt(ev.score(name, t, all_rels,
                                     "standard")["normalized"])
                for t in grid))
    pooled = rep["pooled"]["standard"]
    print()
    print("pooled standard: raw %.4f, null %.1f, perfect %.1f, windows %d/%d,"
          " fp rows %d; one window missed = %.1f points pooled"
          % (pooled["raw"], pooled["null"], pooled["perfect"],
             pooled["windows_detected"], pooled["windows"], pooled["fp_rows"],
             200.0 / (pooled["perfect"] - pooled["null"])))


# ------------------------------------------------------------------ main

def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="k-fold cross-validated NAB evaluation of bayeswatch")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bayeswatch"),
                    help="bayeswatch binary (default: build/bayeswatch)")
    ap.add_argument("--data", required=True, help="NAB data dir (cat/f.csv)")
    ap.add_argument("--labels", required=True, help="combined_windows.json")
    ap.add_argument("--scorer", required=True, help="nab_score.py")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--config", action="append", default=[],
                    metavar="NAME=FILE", help="candidate config; repeatable")
    ap.add_argument("--no-default", action="store_true",
                    help="do not include the shipped default as a candidate")
    ap.add_argument("--thresholds", default=DEFAULT_GRID,
                    help="comma-separated grid, or 'opt' for the scorer's "
                         "own optimisation on the training folds "
                         "(default %s)" % DEFAULT_GRID)
    ap.add_argument("--rearm", default="",
                    help="comma-separated hours: also score each config as "
                         "pages (an alert counts only when no alert came in "
                         "the previous HOURS; see README, Evaluation)")
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "nab-cv"),
                    help="cache / scratch dir (default build/nab-cv)")
    ap.add_argument("--json", help="write the full report here")
    args = ap.parse_args(argv)
    for attr in ("bin", "data", "labels", "scorer", "work"):
        setattr(args, attr, os.path.abspath(getattr(args, attr)))
    return args


def candidates(args):
    cands = [] if args.no_default else [("default", None)]
    for spec in args.config:
        name, sep, path = spec.partition("=")
        if not sep or not re.match(r"^[A-Za-z0-9_.-]+$", name) or \
                name == "default":
            die("--config wants NAME=FILE with NAME in [A-Za-z0-9_.-] and "
                "not 'default', got %r" % spec)
        if not os.path.isfile(path):
            die("no config file %s" % path)
        if name in [c[0] for c in cands]:
            die("duplicate config name %s" % name)
        cands.append((name, os.path.abspath(path)))
    if not cands:
        die("no candidate configs")
    return cands


def main(argv=None):
    args = parse_args(argv)
    if args.thresholds.strip().lower() == "opt":
        grid = None
    else:
        try:
            grid = sorted({float(t) for t in args.thresholds.split(",")
                           if t.strip()})
        except ValueError:
            die("bad --thresholds %r" % args.thresholds)
        if not grid:
            die("empty --thresholds")
    if not os.access(args.bin, os.X_OK):
        die("no executable %s (build it first)" % args.bin)
    cands = candidates(args)
    names = [c[0] for c in cands]
    sc = load_scorer(args.scorer)
    with open(args.labels) as fh:
        labels = json.load(fh)
    rels = sorted(labels)
    for rel in rels:
        if not os.path.isfile(os.path.join(args.data, rel)):
            die("labelled file %s missing under %s" % (rel, args.data))
    if not 2 <= args.folds <= len(rels):
        die("--folds must be in [2, %d]" % len(rels))
    os.makedirs(args.work, exist_ok=True)

    bin_hash = sha256(args.bin)
    res_dirs = {}
    for name, cfg in cands:
        res_dirs[name], fresh = replay_config(args, name, cfg, rels, bin_hash)
        note("%s: %s %s" % (name, "replayed into" if fresh else "cached",
                            res_dirs[name]))
    sys.stderr.flush()
    if sha256(args.bin) != bin_hash:
        die("%s changed during the run (rebuilt?); run again" % args.bin)

    ev = Evaluator(sc, args.data, args.labels)
    for name in names:
        ev.load(name, res_dirs[name])
    try:
        rearm = [float(h) for h in args.rearm.split(",") if h.strip()]
    except ValueError:
        die("bad --rearm %r" % args.rearm)
    if rearm and grid is None:
        die("--rearm needs a threshold grid (pages depend on the threshold)")
    for name in list(names):
        names += [ev.add_pages(name, h * 3.6e6) for h in rearm]
    nwin = {r: len(labels[r]) for r in rels}
    folds = make_folds(rels, nwin, args.folds, args.seed)
    fold_of = {r: j for j, fs in enumerate(folds) for r in fs}
    cli = Cli(args)
    all_labels = cli.labels_file("all", rels, labels)

    rep = {"folds_k": args.folds, "seed": args.seed, "files": len(rels),
           "windows": sum(nwin.values()), "bin": args.bin,
           "bin_sha256": bin_hash,
           "configs": {n: c for n, c in cands},
           "thresholds": "opt" if grid is None else grid,
           "folds": [], "pooled": {}, "fold_mean": {}, "full_subset": {}}
    choice_of = {p: {} for p in PROFILES}
    for j, test in enumerate(folds):
        train = [r for r in rels if fold_of[r] != j]
        lab = cli.labels_file("fold%d-test" % (j + 1), test, labels)
        fr = {"fold": j + 1, "files": test, "windows": sum(nwin[r]
                                                          for r in test),
              "categories": sorted({os.path.dirname(r) for r in test}),
              "profiles": {}}
        for p in PROFILES:
            name, thr, tr = choose(ev, names, grid, train, p)
            te = ev.score(name, thr, test, p)
            cl = cli.run_at(ev, res_dirs, lab, name, thr, [p])[p]
            check("fold %d %s" % (j + 1, p), te, cl)
            te["normalized"] = cl["normalized"]
            fr["profiles"][p] = {"config": name, "threshold": thr,
                                 "train": tr, "test": te}
            for r in test:
                choice_of[p][r] = (name, thr)
        rep["folds"].append(fr)

    for p in PROFILES:
        out = os.path.join(args.work, "pooled", SHORT[p])
        binarise(ev, res_dirs, choice_of[p], rels, out)
        cl = cli.run(all_labels, out, 0.5, [p])[p]
        raw = sum(ev.per_file(*choice_of[p][r], p)[r]["score"] for r in rels)
        null, perfect = ev.norm_terms(rels, p)
        mine = {"raw": raw, "null": null, "perfect": perfect}
        check("pooled %s" % p, mine, cl)
        rep["pooled"][p] = {k: cl[k] for k in (
            "normalized", "raw", "null", "perfect", "windows_detected",
            "fp_rows")}
        rep["pooled"][p]["windows"] = rep["windows"]
        m, sd = mean_sd([f["profiles"][p]["test"]["normalized"]
                         for f in rep["folds"]])
        rep["fold_mean"][p] = {"mean": m, "sd": sd}

    full = rep["full_subset"]
    full["note"] = "development: chosen on all files, not cross-validated"
    if grid is not None:
        full["grid_best"] = {}
        for p in PROFILES:
            name, thr, s = choose(ev, names, grid, rels, p)
            cl = cli.run_at(ev, res_dirs, all_labels, name, thr, [p])[p]
            check("full %s" % p, s, cl)
            s["normalized"] = cl["normalized"]
            full["grid_best"][p] = dict(s, config=name, threshold=thr)
        full["grid"] = {name: {repr(t): ev.score(name, t, rels, "standard")
                               ["normalized"] for t in grid}
                        for name in names}
    full["optimised"] = {}
    for name in names:
        if name in ev.pages:
            continue
        cl = cli.run(all_labels, res_dirs[name], None, PROFILES,
                     optimise=True)
        full["optimised"][name] = {
            p: {k: cl[p][k] for k in ("normalized", "raw", "threshold",
                                      "windows_detected", "fp_rows")}
            for p in PROFILES}

    print_report(rep, names, grid, ev, rels)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rep, fh, indent=1, allow_nan=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
