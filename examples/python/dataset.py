#!/usr/bin/env python3
"""A synthetic dataset of the Cornell box: random camera poses and random wall colours.

Each image gets a camera on a sphere around the centre of the box (on the cap in front of its
open side, looking at the centre) and random albedos for the three wall materials, drawn from a
seeded numpy generator, so the same --seed gives the same dataset. The images are written as a
JSONL list, one line at a time (the list is never held in memory: --count 1000000 costs what
--count 10 does), kept beside the renders as their labels, and rendered with kiln.render_job.

    python3 examples/python/dataset.py --count 100 --out /tmp/cornell-dataset --size 128 --spp 16

writes OUT/images.jsonl (one line per image: name, seed, camera, materials), OUT/NAME_color.png
and the other passes (--passes), and OUT/manifest.jsonl (the files of each image).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any, Dict, Iterator

import numpy as np

import kiln

HERE = os.path.dirname(os.path.abspath(__file__))
SCENE = os.path.join(HERE, "..", "cornell", "scene.json")
CENTER = np.array([0.278, 0.273, 0.2796])  # the centre of the box: what every camera looks at
RADIUS = 1.0795  # the scene camera's distance from it


def poses(count: int, seed: int) -> Iterator[Dict[str, Any]]:
    """One override dict per image (docs/JOBS.md, "Lists of images"), generated lazily."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        # azimuth around -z (the open side) and elevation, in degrees: a cap of the sphere
        azimuth = math.radians(rng.uniform(-35.0, 35.0))
        elevation = math.radians(rng.uniform(-20.0, 20.0))
        radius = RADIUS * rng.uniform(0.9, 1.15)
        direction = np.array([math.sin(azimuth) * math.cos(elevation), math.sin(elevation),
                              -math.cos(azimuth) * math.cos(elevation)])
        position = CENTER + radius * direction
        colours = rng.uniform(0.05, 0.95, size=(3, 3))
        yield {
            "name": f"{i:06d}",
            "seed": int(rng.integers(0, 2**32)),
            "camera": {"position": position.round(5).tolist(),
                       "look_at": CENTER.tolist(),
                       "vfov": round(float(rng.uniform(35.0, 45.0)), 3)},
            "materials": {name: {"albedo": colours[k].round(4).tolist()}
                          for k, name in enumerate(("white", "red", "green"))},
        }


def write_list(path: str, images: Iterator[Dict[str, Any]]) -> int:
    """Streams images to a JSONL file, one line each; returns how many."""
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for image in images:
            f.write(json.dumps(image, separators=(",", ":")))
            f.write("\n")
            n += 1
    return n


def main(argv: Any = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=100, help="number of images (default 100)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--size", type=int, default=128, help="image width and height (default 128)")
    ap.add_argument("--spp", type=int, default=16, help="samples per pixel (default 16)")
    ap.add_argument("--seed", type=int, default=0, help="random seed of the dataset (default 0)")
    ap.add_argument("--passes", default="depth,normal", help="passes besides colour")
    ap.add_argument("--device", default="auto", help="kiln device (default auto)")
    ap.add_argument("--scene", default=SCENE, help="the Cornell box scene")
    args = ap.parse_args(argv)
    if args.count < 1:
        ap.error("--count must be at least 1")

    os.makedirs(args.out, exist_ok=True)
    images = os.path.join(args.out, "images.jsonl")
    write_list(images, poses(args.count, args.seed))

    def progress(ev: Dict[str, Any]) -> None:
        if ev["status"] < 0:
            print(f"{ev['where']}: {ev['message']}", file=sys.stderr)
        elif ev["done"] % 50 == 0 or ev["done"] == ev["total"]:
            print(f"  {ev['done']}/{ev['total']} images", file=sys.stderr)

    summary = kiln.render_job(images, args.out, scene=args.scene, template="{name}_{pass}.{ext}",
                              size=(args.size, args.size), spp=args.spp,
                              passes=args.passes or [], device=args.device, overwrite=True,
                              manifest="manifest.jsonl", progress=progress)
    print(f"{summary['written']} images written to {args.out} in {summary['wall_s']:.2f} s "
          f"({summary['images_per_s']:.1f} images/s), {summary['failed']} failed")
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
