#!/usr/bin/env python3
"""overrides.py: what per-frame scene overrides cost against camera-only frames.

Two JSONL jobs over the Cornell box (examples/cornell/scene.json, with a sphere and a box added,
at SIZE x SIZE and SPP samples, colour PNG only), LINES lines each:

  camera     every line moves the camera a little (a jitter around the scene's camera);
  overrides  the same cameras, and every line also moves every object (the room's mesh, the
             sphere, the box) and changes a material's albedo: a scene variant per frame.

With --scene meshes, the domain-randomisation shape instead: OBJECTS meshes of about TRIS
triangles each (bumpy spheres, one binary PLY per object), each placed once, on a floor under a
quad light; the overrides job's every line gives every object a random rotation and position and
every object's material a random albedo. With --share the meshes are given "share": true (each
kept once in object space under one placement, so that a line that moves it builds a top level
over the placements instead of a BVH; docs/SCENE.md); without it they are copied into the world.

A third job, posed, separates what the overrides' frames cost to set up from what their different
pictures cost to trace: the camera job's lines over a copy of the scene in which every object and
material already is as the overrides job's first line makes it (a static scene: no frame changes
anything but the camera). overrides / posed near 1 means the per-frame changes cost nothing beyond
the pictures they make; posed / camera is what those pictures cost to trace.

With --parts (--scene meshes), three more jobs keep one kind of the overrides job's changes from
every line: rotations (each object turned as there, at its own place in the scene), positions
(moved as there, not turned) and materials (the albedos only).

Each round renders the jobs with `kiln render JOB`, one after the other in a rotating order; for
each, the wall time of the whole command (start-up included) and the CPU time of the process (user
+ system), as medians and spreads (min-max) over the rounds, and the overrides job's ratio to the
camera job of the same round. Target: overrides <= 1.1x camera. With --before KILN, a second
binary (e.g. a build of an older commit) runs the same jobs in the same rounds.

usage: tools/bench/overrides.py KILN_BINARY [--before KILN] [--rounds N] [--lines N]
                                [--size S] [--spp N] [--scene cornell|meshes]
                                [--objects N] [--tris N] [--share] [--parts]
"""
import argparse
import array
import json
import math
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PARTS = ("rotations", "positions", "materials")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_job(tmp, kind, scene_file, lines):
    """tmp/KIND.jsonl (the lines) and tmp/KIND.json, the job rendering them over scene_file."""
    with open(os.path.join(tmp, kind + ".jsonl"), "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
    with open(os.path.join(tmp, kind + ".json"), "w") as f:
        json.dump({"scene": scene_file, "images": kind + ".jsonl",
                   "output": "{name}.{ext}", "format": "png"}, f)


def part(line, scene, keep):
    """line with one kind of its changes kept: "rotations", "positions" or "materials"."""
    line = json.loads(json.dumps(line))
    if keep == "materials":
        line.pop("objects", None)
        return line
    line.pop("materials", None)
    home = {o["name"]: o.get("transform", {}).get("translate", [0, 0, 0])
            for o in scene["objects"]}
    for n, o in line.get("objects", {}).items():
        t = o["transform"]
        if keep == "rotations":
            t["translate"] = home[n]
        else:
            t.pop("rotate", None)
    return line


def write_scene_and_jobs(tmp, scene, lines, jitter, overrides, parts=False):
    """tmp/scene.json, and the camera and overrides jobs over it: each line moves the camera by up
    to jitter (the same in both jobs); overrides(r, line) adds the overrides job's changes, its
    numbers drawn from r. Also the posed job, and with parts the rotations, positions and
    materials jobs (the module's text)."""
    with open(os.path.join(tmp, "scene.json"), "w") as f:
        json.dump(scene, f)
    cam = scene["camera"]["position"]
    made = {}
    for kind in ("camera", "overrides"):
        r = random.Random(2)  # the overrides' numbers; each line's camera from its own
        made[kind] = []
        for i in range(lines):
            c = random.Random(i)
            line = {"name": f"f{i:05d}", "seed": i,
                    "camera": {"position": [cam[0] + c.uniform(-jitter, jitter),
                                            cam[1] + c.uniform(-jitter, jitter), cam[2]]}}
            if kind == "overrides":
                overrides(r, line)
            made[kind].append(line)
        write_job(tmp, kind, "scene.json", made[kind])
    for keep in PARTS if parts else ():
        write_job(tmp, keep, "scene.json", [part(x, scene, keep) for x in made["overrides"]])
    first = made["overrides"][0]
    posed = json.loads(json.dumps(scene))  # the first overrides line made static
    for o in posed["objects"]:
        o.update(first.get("objects", {}).get(o.get("name"), {}))
    for n, m in first.get("materials", {}).items():
        posed["materials"][n].update(m)
    with open(os.path.join(tmp, "scene_posed.json"), "w") as f:
        json.dump(posed, f)
    write_job(tmp, "posed", "scene_posed.json", made["camera"])


def write_jobs(tmp, lines, size, spp):
    with open(os.path.join(ROOT, "examples/cornell/scene.json")) as f:
        scene = json.load(f)
    scene["settings"].update({"width": size, "height": size, "spp": spp})
    room = scene["objects"][0]
    room["name"] = "room"
    room["file"] = os.path.join(ROOT, "examples/cornell", room["file"])
    scene["objects"] += [
        {"type": "sphere", "name": "ball", "center": [0.15, 0.06, 0.15], "radius": 0.06,
         "material": "red"},
        {"type": "box", "name": "crate", "min": [0.35, 0.0, 0.05], "max": [0.45, 0.1, 0.15],
         "material": "green"},
    ]
    def overrides(r, line):
        def move(d):
            return {"transform": {"translate": [r.uniform(-d, d), 0, r.uniform(-d, d)]}}
        line["objects"] = {"room": move(0.005), "ball": move(0.05), "crate": move(0.05)}
        line["materials"] = {"white": {"albedo": [r.uniform(0.5, 0.8)] * 3}}
    write_scene_and_jobs(tmp, scene, lines, 0.02, overrides)


def write_bumpy_sphere(path, tris, seed):
    """A binary PLY of a sphere of radius 0.3 with bumps (2 q (q - 1) triangles, about tris)."""
    q = max(4, int(math.sqrt(tris / 4)))
    r = random.Random(seed)
    fa, fb, fc = r.uniform(4, 9), r.uniform(4, 9), r.uniform(0, math.pi)
    verts = array.array("f")
    for i in range(q + 1):  # rings, pole to pole
        th = math.pi * i / q
        for j in range(2 * q):
            ph = 2 * math.pi * j / (2 * q)
            rad = 0.3 * (1 + 0.06 * math.sin(fa * th + fc) * math.cos(fb * ph))
            verts.extend((rad * math.sin(th) * math.cos(ph), rad * math.cos(th),
                          rad * math.sin(th) * math.sin(ph)))
    faces = bytearray()
    n = 0
    for i in range(q):
        for j in range(2 * q):
            a, b = i * 2 * q + j, i * 2 * q + (j + 1) % (2 * q)
            c, d = a + 2 * q, b + 2 * q
            for t in ((a, c, b), (b, c, d)):
                if (i == 0 and t == (a, c, b)) or (i == q - 1 and t == (b, c, d)):
                    continue  # the poles' degenerate halves
                faces += bytes([3]) + array.array("i", t).tobytes()
                n += 1
    with open(path, "wb") as f:
        f.write((f"ply\nformat binary_little_endian 1.0\nelement vertex {len(verts) // 3}\n"
                 "property float x\nproperty float y\nproperty float z\n"
                 f"element face {n}\nproperty list uchar int vertex_indices\nend_header\n")
                .encode())
        f.write(verts.tobytes())
        f.write(faces)
    return n


def write_mesh_jobs(tmp, lines, size, spp, objects, tris, share, parts):
    names = [f"obj{k}" for k in range(objects)]
    total = sum(write_bumpy_sphere(os.path.join(tmp, n + ".ply"), tris, k)
                for k, n in enumerate(names))
    cols = math.ceil(math.sqrt(objects))
    def home(k):
        return [0.8 * (k % cols - (cols - 1) / 2), 0.3, 0.8 * (k // cols - (cols - 1) / 2)]
    scene = {
        "settings": {"width": size, "height": size, "spp": spp, "max_bounces": 4},
        "camera": {"position": [0, 1.6, -2.4], "look_at": [0, 0.2, 0], "vfov": 45},
        "materials": {"floor": {"type": "diffuse", "albedo": [0.6, 0.6, 0.6]}},
        "objects": [{"type": "quad", "name": "floor", "corner": [-3, 0, -3], "u": [0, 0, 6],
                     "v": [6, 0, 0], "material": "floor"}],
        "lights": [{"type": "quad", "name": "key", "corner": [-0.5, 2.5, -0.5],
                    "u": [1, 0, 0], "v": [0, 0, 1], "radiance": [8, 8, 8]}],
        "environment": {"type": "constant", "color": [0.15, 0.15, 0.2]},
    }
    for k, n in enumerate(names):
        scene["materials"][n] = {"type": "diffuse", "albedo": [0.7, 0.5, 0.3]}
        scene["objects"].append({"type": "mesh", "name": n, "file": n + ".ply", "material": n,
                                 "transform": {"translate": home(k)}})
        if share:
            scene["objects"][-1]["share"] = True
    def overrides(r, line):
        line["objects"] = {
            n: {"transform": {"translate": [h + r.uniform(-0.1, 0.1) for h in home(k)],
                              "rotate": [r.uniform(0, 360) for _ in range(3)]}}
            for k, n in enumerate(names)}
        line["materials"] = {n: {"albedo": [r.uniform(0.1, 0.9) for _ in range(3)]}
                             for n in names}
    write_scene_and_jobs(tmp, scene, lines, 0.05, overrides, parts)
    return total


def run(kiln, job, out):
    shutil.rmtree(out, ignore_errors=True)
    cmd = [kiln, "render", job, "-o", out, "--quiet"]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f"overrides: {' '.join(cmd)} exited {p.returncode}:\n{p.stderr}")
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def spread(xs):
    return f"{statistics.median(xs):8.3f} ({min(xs):.3f}-{max(xs):.3f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kiln")
    ap.add_argument("--before", default="")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lines", type=int, default=40)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--spp", type=int, default=16)
    ap.add_argument("--scene", choices=("cornell", "meshes"), default="cornell")
    ap.add_argument("--objects", type=int, default=4)
    ap.add_argument("--tris", type=int, default=100000)
    ap.add_argument("--share", action="store_true")
    ap.add_argument("--parts", action="store_true")
    a = ap.parse_args()
    if a.parts and a.scene != "meshes":
        ap.error("--parts is for --scene meshes")
    bins = [("", a.kiln)] + ([("before ", a.before)] if a.before else [])
    kinds = ("camera", "overrides", "posed") + (PARTS if a.parts else ())
    variants = [(p + kind, k, kind) for p, k in bins for kind in kinds]
    wall = {v[0]: [] for v in variants}
    cpu = {v[0]: [] for v in variants}
    ratio = {v[0]: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="kiln-overrides-") as tmp:
        if a.scene == "meshes":
            total = write_mesh_jobs(tmp, a.lines, a.size, a.spp, a.objects, a.tris, a.share,
                                    a.parts)
            what = (f"{a.objects} meshes each placed once ({total} triangles"
                    f"{', shared' if a.share else ''}), every line moving "
                    "every object and changing every object's material")
        else:
            write_jobs(tmp, a.lines, a.size, a.spp)
            what = "the Cornell box with a sphere and a box"
        for r in range(a.rounds):
            order = variants[r % len(variants):] + variants[:r % len(variants)]
            got = {}
            for name, kiln, kind in order:
                w, c = run(kiln, os.path.join(tmp, kind + ".json"), os.path.join(tmp, "out"))
                got[name] = w
                wall[name].append(w)
                cpu[name].append(c)
            for p, _ in bins:
                for kind in kinds:
                    ratio[p + kind].append(got[p + kind] / got[p + "camera"])
                ratio[p + "overrides/posed"] = ratio.get(p + "overrides/posed", []) + [
                    got[p + "overrides"] / got[p + "posed"]]
    print(f"kiln render: {a.lines} lines of {what}, "
          f"{a.size}x{a.size}, {a.spp} spp, colour PNG; {a.rounds} rounds, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"{'variant':<18} {'wall s: median (min-max)':>28} {'CPU s: median (min-max)':>28} "
          f"{'wall / camera':>24}")
    for name, _, _ in variants:
        print(f"{name:<18} {spread(wall[name]):>28} {spread(cpu[name]):>28} "
              f"{spread(ratio[name]):>24}")
    for p, _ in bins:
        print(f"{p}overrides / posed, wall: {spread(ratio[p + 'overrides/posed'])}; CPU: "
              f"{statistics.median(cpu[p + 'overrides']) / statistics.median(cpu[p + 'posed']):.3f}"
              " (medians' ratio)")


if __name__ == "__main__":
    main()
