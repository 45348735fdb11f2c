"""tools/validation/noise/skylit_seeds.py: per-object noise of kiln and Cycles over seeds on the
sky-lit scene of docs/VALIDATION.md's principled section (docs/validation/principled).

    for s in 0 1 2 ... 8; do  # seed 0 at 1024 spp, the others at 16
      blender -b -P docs/validation/principled/noise_scene.py -- DIR/bl16_$s.exr 16 $s; done
    blender -b -P docs/validation/principled/noise_scene.py -- DIR/bl_ref.exr 1024 0
    blender -b -P docs/validation/principled/exr_to_npy.py -- DIR/*.exr
    PYTHONPATH=python KILN_LIBRARY=build/libkiln.so /usr/bin/python3 \\
        tools/validation/noise/skylit_seeds.py --blender DIR [--seeds 1-8]

kiln renders noise.json at 1024 spp with seed 0 and at 16 spp with each seed of SEEDS; each
renderer's 16-spp images are measured against its own 1024-spp image (linear per-pixel RMSE) over
each object's interior pixels (the pixel and its 4 neighbours are that object in kiln's object
pass), and over the glass's brightest quarter. Printed: per object the mean over the seeds, the
standard error of each mean and the ratio of the means with its standard error.
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

SCENE = os.path.join(REPO, "docs", "validation", "principled", "noise.json")
NAMES = {1: "floor", 2: "glass", 3: "plastic", 4: "metal"}


def interior(ids, i):
    m = ids == i
    mm = m.copy()
    mm[1:] &= m[:-1]
    mm[:-1] &= m[1:]
    mm[:, 1:] &= m[:, :-1]
    mm[:, :-1] &= m[:, 1:]
    return mm


def rmse(a, b, m):
    return float(np.sqrt(np.mean(((a - b) ** 2)[m])))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--blender", required=True, help="bl_ref.npy and bl16_SEED.npy")
    p.add_argument("--seeds", default="1-8")
    a = p.parse_args()
    lo, hi = (int(x) for x in a.seeds.split("-"))
    seeds = list(range(lo, hi + 1))
    with kiln.Renderer(kiln.Scene.load(SCENE)) as r:
        f = r.render(spp=1024, seed=0)
        kref = np.array(f.color, dtype=np.float64)
        ids = np.array(f.object_id)
        klo = [np.array(r.render(spp=16, seed=s).color, dtype=np.float64) for s in seeds]
    bref = np.load(os.path.join(a.blender, "bl_ref.npy")).astype(np.float64)
    blo = [np.load(os.path.join(a.blender, "bl16_%d.npy" % s)).astype(np.float64) for s in seeds]
    masks = {NAMES[i]: interior(ids, i) for i in NAMES}
    g = masks["glass"]
    lum = kref.mean(-1)
    masks["glass, brightest quarter"] = g & (lum > np.percentile(lum[g], 75))
    masks["whole image"] = np.ones(ids.shape, bool)
    print("| region | kiln (se) | Cycles (se) | kiln / Cycles (se) | 1024-spp mean kiln / Cycles |")
    print("| --- | --- | --- | --- | --- |")
    for name, m in masks.items():
        ek = np.array([rmse(x, kref, m) for x in klo])
        eb = np.array([rmse(x, bref, m) for x in blo])
        km, kse = ek.mean(), ek.std(ddof=1) / math.sqrt(len(ek))
        bm, bse = eb.mean(), eb.std(ddof=1) / math.sqrt(len(eb))
        ratio = km / bm
        print("| %s | %.5f (%.5f) | %.5f (%.5f) | %.3f (%.3f) | %.4f |" % (
            name, km, kse, bm, bse, ratio, ratio * math.hypot(kse / km, bse / bm),
            kref[m].mean() / bref[m].mean()), flush=True)


if __name__ == "__main__":
    main()
