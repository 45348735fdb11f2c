#!/usr/bin/env python3
"""isolate.py: what rendering in worker processes (`kiln render --isolate`) costs.

The Cornell orbit (examples/cornell/orbit.json: 120 frames, 256x256, 16 spp, colour, depth and
normal PNGs) rendered by

  in-process   `kiln render JOB` (the default batch),
  isolate      `kiln render JOB --isolate` (a worker process per device lane, planes sent back
               to the parent over a connection, files written by the parent),
  recycle      `kiln render JOB --isolate --recycle 30` (each worker replaced every 30 frames),

each round running the variants one after the other, in a rotating order. For each: the wall
time of the whole command (start-up included); medians and spreads (min-max) over the rounds, and
each variant's ratio to the in-process run of the same round. Target: --isolate at most 10%
slower than in-process. (No CPU time: the workers are children of kiln's fork server, which
reaps them, so their time never reaches this script's resource usage.)

usage: tools/bench/isolate.py KILN_BINARY [--rounds N] [--job FILE] [--frames A:B]
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
        sys.exit(f"isolate.py: {' '.join(cmd)} exited {p.returncode}:\n{p.stderr}")
    return wall


def spread(xs):
    return f"{statistics.median(xs):8.3f} ({min(xs):.3f}-{max(xs):.3f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kiln")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--job", default=os.path.join(ROOT, "examples/cornell/orbit.json"))
    ap.add_argument("--frames", default="")
    a = ap.parse_args()
    variants = [("in-process", []), ("isolate", ["--isolate"]),
                ("recycle", ["--isolate", "--recycle", "30"])]
    wall = {n: [] for n, _ in variants}
    ratio = {n: [] for n, _ in variants}
    with tempfile.TemporaryDirectory(prefix="kiln-isolate-") as tmp:
        for r in range(a.rounds):
            order = variants[r % len(variants):] + variants[:r % len(variants)]
            got = {}
            for name, extra in order:
                got[name] = run(a.kiln, a.job, os.path.join(tmp, name), extra, a.frames)
                wall[name].append(got[name])
            for name, _ in variants:
                ratio[name].append(got[name] / got["in-process"])
    print(f"kiln render {os.path.relpath(a.job, ROOT)}{' --frames ' + a.frames if a.frames else ''}"
          f", {a.rounds} rounds, {os.cpu_count()} CPUs")
    print(f"{'variant':<12} {'wall s: median (min-max)':>28} {'wall / in-process':>24}")
    for name, _ in variants:
        print(f"{name:<12} {spread(wall[name]):>28} {spread(ratio[name]):>24}")


if __name__ == "__main__":
    main()
