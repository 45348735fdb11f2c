#!/usr/bin/env python3
"""datasets.py: what dataset output (`--annotations`, `--writer coco`, `--writer bop`) costs.

The Cornell orbit (examples/cornell/orbit.json: 256x256, 16 spp, colour, depth and normal PNGs)
rendered by

  plain        `kiln render JOB` (images only),
  annotations  `kiln render JOB --annotations` (each frame's ground truth in the manifest, ids.json),
  coco         `kiln render JOB --annotations --writer coco` (and coco.json with RLE masks),
  bop          `kiln render JOB --writer bop` (BOP's scene files, depth, masks),

each round running the variants one after the other, in a rotating order. For each: the wall
time of the whole command (start-up included); medians and spreads (min-max) over the rounds, and
each variant's ratio to the plain run of the same round. Target: `--annotations --writer coco` at
most 5% slower than plain.

usage: tools/bench/datasets.py KILN_BINARY [--rounds N] [--job FILE] [--frames A:B]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(kiln, job, out, extra, frames):
    shutil.rmtree(out, ignore_errors=True)
    cmd = [kiln, "render", job, "-o", out, "--quiet"] + extra
    if frames:
        cmd += ["--frames", frames]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"datasets.py: {' '.join(cmd)} exited {p.returncode}:\n{p.stderr}")
    return wall


def spread(xs):
    return f"{statistics.median(xs):8.3f} ({min(xs):.3f}-{max(xs):.3f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kiln")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--job", default=os.path.join(ROOT, "examples/cornell/orbit.json"))
    ap.add_argument("--frames", default="0:39")
    a = ap.parse_args()
    variants = [("plain", []), ("annotations", ["--annotations"]),
                ("coco", ["--annotations", "--writer", "coco"]), ("bop", ["--writer", "bop"])]
    wall = {n: [] for n, _ in variants}
    ratio = {n: [] for n, _ in variants}
    with tempfile.TemporaryDirectory(prefix="kiln-datasets-") as tmp:
        for r in range(a.rounds):
            order = variants[r % len(variants):] + variants[:r % len(variants)]
            got = {}
            for name, extra in order:
                got[name] = run(a.kiln, a.job, os.path.join(tmp, name), extra, a.frames)
                wall[name].append(got[name])
            for name, _ in variants:
                ratio[name].append(got[name] / got["plain"])
    print(f"kiln render {os.path.relpath(a.job, ROOT)}{' --frames ' + a.frames if a.frames else ''}"
          f", {a.rounds} rounds, {os.cpu_count()} CPUs")
    print(f"{'variant':<12} {'wall s: median (min-max)':>28} {'wall / plain':>24}")
    for name, _ in variants:
        print(f"{name:<12} {spread(wall[name]):>28} {spread(ratio[name]):>24}")


if __name__ == "__main__":
    main()
