"""tools/validation/compare_gltf.py: kiln against Cycles on the glTF corpus.

    PYTHONPATH=python KILN_LIBRARY=build/libkiln.so /usr/bin/python3 \
        tools/validation/compare_gltf.py [--spp 1024] [--size 64] [--cycles DIR] [--only A,B]
        [--noise-spp 16 --cycles-noise DIR]

Renders each tests/render/data/gltf/NAME.glb with kiln (the scene as the file says, loaded by
kiln_scene_load; max bounces 4, seed 0, as the Cycles references) and prints, per scene and
channel, kiln's mean, Cycles' (tests/render/data/gltf/cycles_means.json) and the difference, with
the render time. With --cycles DIR (gltf_corpus.py's --out, holding NAME_SIZExSIZE_SPPspp.pfm),
also the linear per-pixel RMSE between the two 1024-spp images; --save DIR keeps kiln's images
(PFM).

With --noise: the noise set of tools/validation/noise instead (gltf_corpus.py --noise), each
file included as an object of a kiln JSON scene with the corpus camera and a black environment
(kiln lights a glTF without lights by a white sky when it is the whole scene: inside the closed
box that changes nothing but wastes light samples); noise_glass is lightbox.glb plus
glass_sphere.glb with kiln's dielectric (ior 1.5) as its material.

With --noise-spp N and --cycles-noise DIR (gltf_corpus.py --render --spp N --out DIR): the noise
table. For each scene, kiln at N spp against kiln's own 1024-spp image and Cycles at N spp
against Cycles' own 1024-spp image (both linear per-pixel RMSE over the three channels), and
their ratio: the noise at equal spp, independent of any difference between the two models.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
DATA = os.path.join(REPO, "tests", "render", "data", "gltf")
NOISE = os.path.join(HERE, "noise")
sys.path.insert(0, os.path.join(REPO, "python"))
os.environ.setdefault("KILN_LIBRARY", os.path.join(REPO, "build", "libkiln.so"))

import kiln  # noqa: E402


def read_pfm(path):
    with open(path, "rb") as f:
        if f.readline().strip() != b"PF":
            sys.exit("%s: not a colour PFM" % path)
        w, h = (int(x) for x in f.readline().split())
        scale = float(f.readline())
        data = np.frombuffer(f.read(), dtype="<f4" if scale < 0 else ">f4")
    return data.reshape(h, w, 3)[::-1].astype(np.float64)  # rows top to bottom


# The corpus camera in kiln's coordinates (gltf_corpus.py's, +z up, turned to glTF's +y up).
CAMERA = {"position": [0.0, 0.35, 2.4], "look_at": [0.0, 0.0, 0.0], "up": [0, 1, 0], "vfov": 38.0}


def load(name, noise):
    if not noise:
        return kiln.Scene.load(os.path.join(DATA, name + ".glb"))
    if name == "noise_glass":
        objects = [{"type": "gltf", "file": "lightbox.glb"},
                   {"type": "gltf", "file": "glass_sphere.glb",
                    "material": {"type": "dielectric", "ior": 1.5}}]
    else:
        objects = [{"type": "gltf", "file": name + ".glb"}]
    return kiln.Scene.from_dict({"camera": CAMERA, "objects": objects,
                                 "environment": {"type": "constant", "color": [0, 0, 0]}},
                                base_dir=NOISE)


def write_pfm(path, rgb):
    h, w = rgb.shape[:2]
    with open(path, "wb") as f:
        f.write(b"PF\n%d %d\n-1.0\n" % (w, h))
        f.write(np.ascontiguousarray(rgb[::-1], dtype="<f4").tobytes())


def rmse(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--spp", type=int, default=1024)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--bounces", type=int, default=4)
    p.add_argument("--only")
    p.add_argument("--noise", action="store_true", help="the noise set (tools/validation/noise)")
    p.add_argument("--cycles", help="gltf_corpus.py's --out of the 1024-spp renders")
    p.add_argument("--noise-spp", type=int)
    p.add_argument("--cycles-noise", help="gltf_corpus.py's --out of the --noise-spp renders")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", help="a folder for kiln's images (NAME_SIZExSIZE_SPPspp_kiln.pfm)")
    a = p.parse_args()
    with open(os.path.join(NOISE if a.noise else DATA, "cycles_means.json")) as f:
        refs = json.load(f)
    names = a.only.split(",") if a.only else list(refs["means"])
    rows, noise = [], []
    for name in names:
        scene = load(name, a.noise)
        with kiln.Renderer(scene) as r:
            t0 = time.time()
            f = r.render(spp=a.spp, seed=a.seed, width=a.size, height=a.size,
                         max_bounces=a.bounces)
            img = np.array(f.color, dtype=np.float64)
            dt = time.time() - t0
            if a.save:
                os.makedirs(a.save, exist_ok=True)
                write_pfm(os.path.join(a.save, "%s_%dx%d_%dspp_kiln.pfm" % (
                    name, a.size, a.size, a.spp)), img)
            want = refs["means"][name]
            got = [float(img[..., k].mean()) for k in range(3)]
            px = ""
            ref_pfm = a.cycles and os.path.join(
                a.cycles, "%s_%dx%d_%dspp.pfm" % (name, a.size, a.size, a.spp))
            if ref_pfm and os.path.exists(ref_pfm):
                px = "%.5f" % rmse(img, read_pfm(ref_pfm))
            rows.append((name, got, want, dt, px))
            print("%-18s kiln %s Cycles %s diff %s  %.1f s  rmse %s" % (
                name, " ".join("%.5f" % x for x in got), " ".join("%.5f" % x for x in want),
                " ".join("%+.2f%%" % (100 * (g / w - 1)) for g, w in zip(got, want)), dt, px),
                flush=True)
            if a.noise_spp and a.cycles_noise and a.cycles:
                low = np.array(r.render(spp=a.noise_spp, seed=a.seed + 1, width=a.size,
                                        height=a.size, max_bounces=a.bounces).color,
                               dtype=np.float64)
                c_hi = read_pfm(ref_pfm)
                c_lo = read_pfm(os.path.join(a.cycles_noise, "%s_%dx%d_%dspp.pfm" % (
                    name, a.size, a.size, a.noise_spp)))
                k_n, c_n = rmse(low, img), rmse(c_lo, c_hi)
                noise.append((name, k_n, c_n))
                print("%-18s noise at %d spp: kiln %.5f Cycles %.5f ratio %.2f" % (
                    name, a.noise_spp, k_n, c_n, k_n / c_n), flush=True)
    print()
    print("| scene | channel | kiln (%d spp) | Cycles (%d spp) | difference |" % (
        a.spp, refs["settings"]["spp"]))
    print("| --- | --- | --- | --- | --- |")
    for name, got, want, dt, px in rows:
        for k, ch in enumerate("RGB"):
            print("| %s | %s | %.5f | %.5f | %+.2f%% |" % (
                name if k == 0 else "", ch, got[k], want[k], 100 * (got[k] / want[k] - 1)))
    if noise:
        print()
        print("| scene | kiln RMSE | Cycles RMSE | kiln / Cycles |")
        print("| --- | --- | --- | --- |")
        for name, k_n, c_n in noise:
            print("| %s | %.5f | %.5f | %.2f |" % (name, k_n, c_n, k_n / c_n))


main()
