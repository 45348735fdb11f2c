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

from wallclock import compare

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kiln")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--job", default=os.path.join(ROOT, "examples/cornell/orbit.json"))
    ap.add_argument("--frames", default="")
    a = ap.parse_args()
    variants = [("in-process", []), ("isolate", ["--isolate"]),
                ("recycle", ["--isolate", "--recycle", "30"])]
    compare(a.kiln, a.job, a.frames, a.rounds, variants, "isolate", ROOT)


if __name__ == "__main__":
    main()
