"""wallclock.py: what tools/bench's command-line benchmarks share: `kiln render` variants run
one after the other in each round, in a rotating order (so every variant sees the same load),
timed whole (start-up included), with medians, spreads (min-max) and each variant's ratio to the
baseline of the same round."""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def run(kiln, job, out, extra, frames, who):
    shutil.rmtree(out, ignore_errors=True)
    cmd = [kiln, "render", job, "-o", out, "--quiet"] + extra
    if frames:
        cmd += ["--frames", frames]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"{who}: {' '.join(cmd)} exited {p.returncode}:\n{p.stderr}")
    return wall


def spread(xs):
    return f"{statistics.median(xs):8.3f} ({min(xs):.3f}-{max(xs):.3f})"


def compare(kiln, job, frames, rounds, variants, who, root):
    """variants: [(name, extra args)], the first the baseline. Prints the table."""
    base = variants[0][0]
    wall = {n: [] for n, _ in variants}
    ratio = {n: [] for n, _ in variants}
    with tempfile.TemporaryDirectory(prefix=f"kiln-{who}-") as tmp:
        for r in range(rounds):
            order = variants[r % len(variants):] + variants[:r % len(variants)]
            got = {}
            for name, extra in order:
                got[name] = run(kiln, job, os.path.join(tmp, name), extra, frames, who)
                wall[name].append(got[name])
            for name, _ in variants:
                ratio[name].append(got[name] / got[base])
    print(f"kiln render {os.path.relpath(job, root)}{' --frames ' + frames if frames else ''}"
          f", {rounds} rounds, {os.cpu_count()} CPUs")
    print(f"{'variant':<12} {'wall s: median (min-max)':>28} {'wall / ' + base:>24}")
    for name, _ in variants:
        print(f"{name:<12} {spread(wall[name]):>28} {spread(ratio[name]):>24}")
