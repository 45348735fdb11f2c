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

from wallclock import compare

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kiln")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--job", default=os.path.join(ROOT, "examples/cornell/orbit.json"))
    ap.add_argument("--frames", default="0:39")
    a = ap.parse_args()
    variants = [("plain", []), ("annotations", ["--annotations"]),
                ("coco", ["--annotations", "--writer", "coco"]), ("bop", ["--writer", "bop"])]
    compare(a.kiln, a.job, a.frames, a.rounds, variants, "datasets", ROOT)


if __name__ == "__main__":
    main()
