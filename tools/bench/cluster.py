#!/usr/bin/env python3
"""cluster.py: what splitting one job between processes costs, on one machine.

On two cores scaling says nothing, so this measures overhead: the CPU time (user + system, all
processes, lavapipe's threads included) of a 400-frame job rendered

  baseline   by one `kiln render` process,
  shards     by 2 processes at once, `--shard 0/2` and `--shard 1/2`,
  claims     by 2 processes at once, `--claim --chunk 16`,
  array      (with --slurm) by a 2-task Slurm array, `--shard auto`, on a real single-node Slurm
             that tests/cluster/slurm.sh starts (and stops at the end), plus the time from
             `sbatch` to the first image,

each against the baseline measured in the same round. Rounds interleave the variants; the
medians and spreads (min-max) are printed. Target: CPU time within 5% of the baseline.

usage: tools/bench/cluster.py KILN_BINARY [--rounds N] [--frames N] [--size WxH] [--spp N]
                              [--slurm]
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def write_job(path, frames, size, spp):
    w, h = size.split("x")
    job = {
        "scene": os.path.join(ROOT, "examples/cornell/scene.json"),
        "width": int(w), "height": int(h), "spp": spp,
        "animation": {"frames": {"start": 0, "end": frames - 1},
                      "camera": {"orbit": {"center": [0.278, 0.273, 0.28], "radius": 1.08,
                                           "start_angle": 160, "degrees": 40}}},
    }
    with open(path, "w") as f:
        json.dump(job, f)


def run_procs(cmds):
    """Runs the commands at once; returns (wall s, CPU s of all of them)."""
    cpu0, t0 = children_cpu(), time.monotonic()
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in cmds]
    for p, c in zip(procs, cmds):
        _, err = p.communicate()
        if p.returncode != 0:
            sys.exit(f"cluster.py: {' '.join(c)} exited {p.returncode}:\n{err.decode()}")
    return time.monotonic() - t0, children_cpu() - cpu0


def count_pngs(d):
    return sum(1 for n in os.listdir(d) if n.endswith(".png")) if os.path.isdir(d) else 0


def slurm_array(kiln, job, out, work, frames):
    """A 2-task array on the running Slurm: (wall s, CPU s of both tasks, s from sbatch to the first
    image). Each task records its own CPU time with bash's `times`."""
    script = os.path.join(work, "task.sh")
    with open(script, "w") as f:
        f.write("#!/bin/bash\n"
                f"{kiln} render {job} -o {out} --shard auto --quiet || exit $?\n"
                f"times > {work}/cpu_$SLURM_ARRAY_TASK_ID\n")
    os.chmod(script, 0o755)
    t0 = time.monotonic()
    sub = subprocess.run(["sbatch", "--parsable", "--array=0-1", "-o", f"{work}/slurm-%a.out",
                          script], capture_output=True, text=True, check=True)
    jobid = sub.stdout.strip().split(";")[0]
    first = None
    deadline = t0 + 600
    while time.monotonic() < deadline:
        if first is None and count_pngs(out) > 0:
            first = time.monotonic() - t0
        q = subprocess.run(["squeue", "-h", "-j", jobid], capture_output=True, text=True)
        if q.returncode == 0 and not q.stdout.strip():
            break
        time.sleep(0.05)
    wall = time.monotonic() - t0
    if count_pngs(out) != frames:
        sys.exit(f"cluster.py: the array wrote {count_pngs(out)} of {frames} frames")
    cpu = 0.0
    for k in (0, 1):
        with open(f"{work}/cpu_{k}") as f:
            lines = f.read().split("\n")
        # line 2 of `times`: the children's user and system time, e.g. "0m3.120s 0m0.410s"
        for field in lines[1].split():
            m, s = field.rstrip("s").split("m")
            cpu += int(m) * 60 + float(s)
    return wall, cpu, first if first is not None else wall


def fmt(xs):
    return f"{statistics.median(xs):.3f} ({min(xs):.3f}-{max(xs):.3f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("kiln")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=400)
    ap.add_argument("--size", default="64x64")
    ap.add_argument("--spp", type=int, default=4)
    ap.add_argument("--slurm", action="store_true",
                    help="also a 2-task array on a local Slurm (root; tests/cluster/slurm.sh)")
    ap.add_argument("--slurm-up", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.slurm and not a.slurm_up:
        # again, under a shell that has started Slurm (slurm.sh's EXIT trap stops it after us)
        d = tempfile.mkdtemp(prefix="kbc-", dir="/tmp")
        os.chmod(d, 0o755)  # munged wants every folder above its socket open to all (o+x)
        sh = ('source "$1"; slurm_start "$2" >&2; shift 2; "$@"')
        rc = subprocess.run(["bash", "-c", sh, "_", os.path.join(ROOT, "tests/cluster/slurm.sh"),
                             os.path.join(d, "s"), sys.executable, *sys.argv, "--slurm-up"]).returncode
        shutil.rmtree(d, ignore_errors=True)
        sys.exit(rc)
    kiln = os.path.abspath(a.kiln)
    work = tempfile.mkdtemp(prefix="kiln-bench-cluster-")
    job = os.path.join(work, "job.json")
    write_job(job, a.frames, a.size, a.spp)
    slurm = a.slurm_up
    res = {k: {"wall": [], "cpu": []} for k in ("baseline", "shards", "claims", "array")}
    first = []
    for r in range(a.rounds):
        def out(name):
            d = os.path.join(work, f"{name}-{r}")
            shutil.rmtree(d, ignore_errors=True)
            return d
        variants = [
            ("baseline", lambda: run_procs([[kiln, "render", job, "-o", out("baseline"),
                                             "--quiet"]])),
            ("shards", lambda: run_procs([[kiln, "render", job, "-o", out("shards"), "--quiet",
                                           "--shard", f"{k}/2"] for k in (0, 1)])),
            ("claims", lambda: run_procs([[kiln, "render", job, "-o", out("claims"), "--quiet",
                                           "--claim", "--chunk", "16"] for _ in (0, 1)])),
        ]
        if slurm:
            def array():
                w, c, f = slurm_array(kiln, job, out("array"), work, a.frames)
                first.append(f)
                return w, c
            variants.append(("array", array))
        order = variants if r % 2 == 0 else variants[::-1]  # interleave
        for name, fn in order:
            w, c = fn()
            res[name]["wall"].append(w)
            res[name]["cpu"].append(c)
    print(f"kiln-bench-cluster: {a.frames} frames, {a.size}, {a.spp} spp, {a.rounds} rounds, "
          f"{os.cpu_count()} CPUs; medians (min-max)")
    base = res["baseline"]
    print(f"  {'variant':10} {'wall s':>22} {'CPU s':>22} {'CPU / baseline':>16}")
    for name in ("baseline", "shards", "claims", "array"):
        v = res[name]
        if not v["cpu"]:
            continue
        ratios = [c / b for c, b in zip(v["cpu"], base["cpu"])]
        print(f"  {name:10} {fmt(v['wall']):>22} {fmt(v['cpu']):>22} {fmt(ratios):>16}")
    if first:
        print(f"  sbatch to the first image: {fmt(first)} s")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
