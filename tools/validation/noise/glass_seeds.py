"""tools/validation/noise/glass_seeds.py: the smooth-glass noise of kiln and Cycles over seeds.

    PYTHONPATH=python KILN_LIBRARY=build/libkiln.so /usr/bin/python3 \
        tools/validation/noise/glass_seeds.py --cycles-ref DIR --cycles-low DIR_{seed} \
        [--seeds 1-8] [--spp 16] [--ref-spp 1024] [--kiln-only]

The noise table of docs/VALIDATION.md ("Noise at equal spp, per material") measures each renderer
at 16 spp against its own 1024-spp image from one render; this repeats it over several seeds for
noise_glass, so that the spread of the measurement itself is known. kiln renders the glass scene
of compare_gltf.py --noise (lightbox.glb plus glass_sphere.glb with kiln's dielectric, ior 1.5)
at 1024 spp with seed 0 and at SPP with each seed of SEEDS; Cycles' images are those of
gltf_corpus.py --noise --render --only noise_glass: --cycles-ref is the --out of the 1024-spp
render (seed 0), --cycles-low the --out of the SPP renders with '{seed}' standing for --seed.
The 1024-spp references use seed 0, the low renders seeds 1 and up, so that no low render shares
its first samples with its reference.

Per seed and renderer it prints the linear per-pixel RMSE over the image, over the sphere's
centre (r < 0.7) and over its rim (0.8 < r < 0.98), r being the distance from the image centre
in units of the sphere's projected radius; then per region the mean, the sample standard
deviation and the standard error of each renderer's mean, and the ratio of the means with its
standard error (first order, the two renderers' seeds independent).
"""

import argparse
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO, "python"))
os.environ.setdefault("KILN_LIBRARY", os.path.join(REPO, "build", "libkiln.so"))

import kiln  # noqa: E402

CAMERA = {"position": [0.0, 0.35, 2.4], "look_at": [0.0, 0.0, 0.0], "up": [0, 1, 0], "vfov": 38.0}
SPHERE_RADIUS = 0.8  # gltf_corpus.py's uv_sphere, centred on the camera's look_at point


def read_pfm(path):
    with open(path, "rb") as f:
        if f.readline().strip() != b"PF":
            sys.exit("%s: not a colour PFM" % path)
        w, h = (int(x) for x in f.readline().split())
        scale = float(f.readline())
        data = np.frombuffer(f.read(), dtype="<f4" if scale < 0 else ">f4")
    return data.reshape(h, w, 3)[::-1].astype(np.float64)  # rows top to bottom


def regions(size):
    # A sphere centred on the optical axis projects to a disc of radius tan(asin(R / d)) on the
    # image plane at distance 1, whose half height is tan(vfov / 2).
    d = math.sqrt(sum(x * x for x in CAMERA["position"]))
    r_px = (size / 2) * math.tan(math.asin(SPHERE_RADIUS / d)) / math.tan(
        math.radians(CAMERA["vfov"] / 2))
    y, x = np.mgrid[0:size, 0:size] + 0.5 - size / 2
    r = np.sqrt(x * x + y * y) / r_px
    return {"image": np.ones((size, size), bool), "centre": r < 0.7,
            "rim": (r > 0.8) & (r < 0.98)}


def rmse(a, b, mask):
    return float(np.sqrt(np.mean(((a - b) ** 2)[mask])))


def parse_seeds(s):
    if "-" in s:
        lo, hi = (int(x) for x in s.split("-"))
        return list(range(lo, hi + 1))
    return [int(x) for x in s.split(",")]


def kiln_images(a, seeds):
    objects = [{"type": "gltf", "file": "lightbox.glb"},
               {"type": "gltf", "file": "glass_sphere.glb",
                "material": {"type": "dielectric", "ior": 1.5}}]
    scene = kiln.Scene.from_dict({"camera": CAMERA, "objects": objects,
                                  "environment": {"type": "constant", "color": [0, 0, 0]}},
                                 base_dir=HERE)
    with kiln.Renderer(scene) as r:
        def render(spp, seed):
            return np.array(r.render(spp=spp, seed=seed, width=a.size, height=a.size,
                                     max_bounces=a.bounces).color, dtype=np.float64)
        ref = render(a.ref_spp, 0)
        return ref, [render(a.spp, s) for s in seeds]


def cycles_images(a, seeds):
    def name(spp):
        return "noise_glass_%dx%d_%dspp.pfm" % (a.size, a.size, spp)
    ref = read_pfm(os.path.join(a.cycles_ref, name(a.ref_spp)))
    return ref, [read_pfm(os.path.join(a.cycles_low.format(seed=s), name(a.spp))) for s in seeds]


def stats(xs):
    xs = np.array(xs)
    sd = float(xs.std(ddof=1)) if len(xs) > 1 else float("nan")
    return float(xs.mean()), sd, sd / math.sqrt(len(xs))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", default="1-8")
    p.add_argument("--spp", type=int, default=16)
    p.add_argument("--ref-spp", type=int, default=1024)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--bounces", type=int, default=4)
    p.add_argument("--cycles-ref", help="gltf_corpus.py's --out of the 1024-spp render")
    p.add_argument("--cycles-low", help="gltf_corpus.py's --out of the low renders, {seed}")
    p.add_argument("--kiln-only", action="store_true")
    a = p.parse_args()
    seeds = parse_seeds(a.seeds)
    masks = regions(a.size)
    runs = {"kiln": kiln_images(a, seeds)}
    if not a.kiln_only:
        runs["Cycles"] = cycles_images(a, seeds)
    errs = {}
    for who, (ref, lows) in runs.items():
        errs[who] = {k: [rmse(lo, ref, m) for lo in lows] for k, m in masks.items()}
        print("%s mean over the image at %d spp: %.5f" % (
            who, a.ref_spp, float(ref.mean())), flush=True)
        for k in masks:
            print("%-6s %-6s %s" % (who, k, " ".join("%.5f" % x for x in errs[who][k])),
                  flush=True)
    print()
    print("| region | kiln mean (sd, se) | Cycles mean (sd, se) | kiln / Cycles (se) |")
    print("| --- | --- | --- | --- |")
    for k in masks:
        km, ksd, kse = stats(errs["kiln"][k])
        if a.kiln_only:
            print("| %s | %.5f (%.5f, %.5f) | | |" % (k, km, ksd, kse))
            continue
        cm, csd, cse = stats(errs["Cycles"][k])
        ratio = km / cm
        rse = ratio * math.sqrt((kse / km) ** 2 + (cse / cm) ** 2)
        print("| %s | %.5f (%.5f, %.5f) | %.5f (%.5f, %.5f) | %.3f (%.3f) |" % (
            k, km, ksd, kse, cm, csd, cse, ratio, rse))


if __name__ == "__main__":
    main()
