#!/usr/bin/env python3
"""What the Python package costs per render, and what it saves over shelling out to kiln render.

1. Overhead per frame: N renders of the same 64x64, 1 spp frame, one at a time, through
   kiln.Renderer.render and through the C API (kiln_renderer_submit, kiln_future_result,
   kiln_image_get_info, kiln_future_release) called with cffi on libkiln.so from this process.
   The C side therefore includes cffi's per-call cost (about a microsecond a call): it is the C
   API as Python reaches it without the package's layer, a slight overestimate of pure C. Rounds
   are interleaved (Python, C, Python, C, ...) so that drift in the machine's speed hits both;
   the report gives the median and the spread (min to max) of the per-frame times over rounds,
   the overhead (Python - C) in microseconds and the ratio Python / C. Target: <= 5% or <= 50 us.
2. Images/s for a dataset: a loop that runs `kiln render` once per image and reads the PNG back
   (what users would do without the package), against kiln.Renderer.submit keeping 4 renders in
   flight and taking each result as a numpy array (what examples/python/torch_dataset.py does).

    KILN_LIBRARY=build/libkiln.so PYTHONPATH=python /usr/bin/python3 tools/bench/python_overhead.py

Options: --frames N (renders per round, default 200), --rounds R (default 7), --images M (images
for part 2, default 40), --kiln PATH (the CLI; default $KILN_CLI, then build/tools/kiln, then
kiln on PATH), --device SPEC.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import deque
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

import kiln

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCENE = os.path.join(SOURCE, "examples", "cornell", "scene.json")

def scene_doc(size: int, spp: int) -> Dict[str, Any]:
    with open(SCENE, encoding="utf-8") as f:
        doc = json.load(f)
    doc["settings"].update(width=size, height=size, spp=spp)
    return doc


class CRenderer:
    """The same frames through the C API, with cffi (ABI mode) on the same libkiln.so."""

    def __init__(self, doc: Dict[str, Any], device: str) -> None:
        from kiln import _ffi  # the package's own declaration of the C API, and its library

        self.ffi = ffi = _ffi.ffi
        self.lib = lib = _ffi.lib
        err = ffi.new("kiln_error_detail *")
        self.scene = ffi.new("kiln_scene **")
        self.gpu = ffi.new("kiln_gpu **")
        self.dev = ffi.new("kiln_gpu_device *[1]")
        self.r = ffi.new("kiln_renderer **")
        self._check(lib.kiln_scene_load_string(json.dumps(doc).encode(),
                                               os.path.dirname(SCENE).encode(), b"scene",
                                               err, self.scene))
        self._check(lib.kiln_gpu_create(ffi.NULL, self.gpu))
        idx, n = ffi.new("uint32_t[1]"), ffi.new("size_t *")
        self._check(lib.kiln_gpu_select_visible(self.gpu[0], device.encode(), ffi.NULL, 0, idx, 1,
                                                n, err))
        self._check(lib.kiln_gpu_device_open(self.gpu[0], idx[0], ffi.NULL, self.dev))
        self._check(lib.kiln_renderer_create(self.scene[0], self.dev, 1, ffi.NULL, self.r))
        self.fc = ffi.new("kiln_frame_config *")
        lib.kiln_frame_config_default(self.r[0], self.fc)
        self.fut = ffi.new("kiln_future **")
        self.val = ffi.new("void **")
        self.info = ffi.new("kiln_image_info *")

    def _check(self, rc: int) -> None:
        if rc:
            raise RuntimeError(self.ffi.string(self.lib.kiln_strerror(rc)).decode())

    def render(self, seed: int) -> None:
        lib, fc = self.lib, self.fc
        fc.seed = seed
        self._check(lib.kiln_renderer_submit(self.r[0], fc, self.fut))
        self._check(lib.kiln_future_result(self.fut[0], -1.0, self.val))
        lib.kiln_image_get_info(self.ffi.cast("kiln_image *", self.val[0]), self.info)
        lib.kiln_future_release(self.fut[0])

    def close(self) -> None:
        self.lib.kiln_renderer_destroy(self.r[0])
        self.lib.kiln_gpu_device_close(self.dev[0])
        self.lib.kiln_gpu_destroy(self.gpu[0])
        self.lib.kiln_scene_destroy(self.scene[0])


def per_frame(fn: Callable[[int], Any], n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t0) / n


def spread(xs: List[float], scale: float) -> str:
    return f"{statistics.median(xs) * scale:9.1f}  [{min(xs) * scale:.1f} .. {max(xs) * scale:.1f}]"


def read_png(path: str) -> np.ndarray:
    """An 8-bit RGB/RGBA PNG as a uint8 array: zlib and the five row filters (no dependency)."""
    with open(path, "rb") as f:
        data = f.read()
    pos, idat, w = 8, [], 0
    h = ch = 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8, "8-bit PNGs only"
            ch = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(h, 1 + w * ch)
    out = np.zeros((h, w * ch), np.int32)
    prev = np.zeros(w * ch, np.int32)
    for y in range(h):
        ftype, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if ftype in (0, 2):
            cur = line if ftype == 0 else (line + prev) & 255
        else:  # sub, average and Paeth need the pixel to the left: byte by byte
            cur = np.zeros_like(line)
            for x in range(w * ch):
                a = cur[x - ch] if x >= ch else 0
                b, c = prev[x], prev[x - ch] if x >= ch else 0
                if ftype == 1:
                    pred = a
                elif ftype == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[x] = (line[x] + pred) & 255
        out[y] = prev = cur
    return out.astype(np.uint8).reshape(h, w, ch)


def png_reader() -> Tuple[str, Callable[[str], np.ndarray]]:
    try:
        from PIL import Image  # optional: what most users would read PNGs with
        return "Pillow", lambda p: np.asarray(Image.open(p))
    except ImportError:
        return "a pure-Python decoder (Pillow is not installed)", read_png


def find_cli(given: str) -> str:
    for cand in (given, os.environ.get("KILN_CLI"), os.path.join(SOURCE, "build", "tools", "kiln"),
                 shutil.which("kiln")):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise SystemExit("kiln (the CLI) not found: pass --kiln PATH or set KILN_CLI")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--spp", type=int, default=1)
    ap.add_argument("--kiln", default="")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    doc = scene_doc(args.size, args.spp)
    print(f"python {sys.version.split()[0]} ({sys.executable}), {args.size}x{args.size}, "
          f"{args.spp} spp, device {args.device}")

    # ---- 1. overhead per frame ----
    scene = kiln.Scene.from_dict(doc, base_dir=os.path.dirname(SCENE))
    py = kiln.Renderer(scene, device=args.device)
    c = CRenderer(doc, args.device)
    for i in range(10):  # warm-up: pipelines, buffers, caches
        py.render(seed=i)
        c.render(i)
    t_py, t_c = [], []
    for _ in range(args.rounds):
        t_py.append(per_frame(lambda i: py.render(seed=i), args.frames))
        t_c.append(per_frame(c.render, args.frames))
    c.close()
    over = [p - q for p, q in zip(t_py, t_c)]
    ratio = [p / q for p, q in zip(t_py, t_c)]
    print(f"\n1. per frame, {args.rounds} interleaved rounds of {args.frames} renders "
          f"(median [min .. max])")
    print(f"   kiln.Renderer.render        {spread(t_py, 1e6)} us")
    print(f"   C API through cffi          {spread(t_c, 1e6)} us")
    print(f"   Python overhead             {spread(over, 1e6)} us per frame")
    print(f"   ratio Python / C            {spread(ratio, 1.0)}")

    # ---- 2. images/s: kiln render per image + PNG read, against Renderer.submit x4 ----
    cli = find_cli(args.kiln)
    reader_name, reader = png_reader()
    n = args.images
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as tmp:
        with open(os.path.join(tmp, "scene.json"), "w", encoding="utf-8") as f:
            json.dump(doc, f)
        for name in ("cornell.obj", "cornell.mtl"):
            shutil.copy(os.path.join(os.path.dirname(SCENE), name), tmp)
        read_s = 0.0
        t0 = time.perf_counter()
        for i in range(n):
            job = os.path.join(tmp, "one.json")
            with open(job, "w", encoding="utf-8") as f:
                json.dump({"scene": "scene.json", "output": "img_{pass}.{ext}",
                           "images": [{"name": str(i), "seed": i}]}, f)
            subprocess.run([cli, "render", job, "-o", os.path.join(tmp, "out"), "--quiet",
                            "--overwrite", "--device", args.device], check=True)
            t1 = time.perf_counter()
            reader(os.path.join(tmp, "out", "img_color.png"))
            read_s += time.perf_counter() - t1
        cli_ips = n / (time.perf_counter() - t0)
    pending: deque = deque()
    t0 = time.perf_counter()
    for i in range(n):
        pending.append(py.submit(seed=i))
        if len(pending) >= 4:
            np.asarray(pending.popleft().result().color)
    while pending:
        np.asarray(pending.popleft().result().color)
    sub_ips = n / (time.perf_counter() - t0)
    print(f"\n2. images/s over {n} images")
    print(f"   kiln render per image + read the PNG   {cli_ips:8.1f}   (reading: {reader_name}, "
          f"{read_s / n * 1e3:.1f} ms an image of it)")
    print(f"   kiln.Renderer.submit, 4 in flight      {sub_ips:8.1f}   ({sub_ips / cli_ips:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
