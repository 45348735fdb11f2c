"""tools/bench/rich/compare.py: means, RMSE and a side-by-side of linear float images (.npy,
H x W x 3 float32, rows top to bottom: kiln's npy output and rich_scene.py's).

    blender -b --factory-startup -P tools/bench/rich/compare.py -- [--ref REF.npy]
        [--side OUT.png] IMAGE.npy...

Prints one line per image: `@compare {"image": ..., "mean": [r, g, b], "rmse": x}`, rmse the
linear per-pixel RMSE (over every channel of every pixel) against REF when given. --side writes
the images in a row (8-bit sRGB, clamped, no tone mapping, each pixel 2 x 2). Blender is the
interpreter only because it carries numpy and a PNG writer; nothing is rendered.
"""
import argparse
import json
import sys

import bpy
import numpy as np


def srgb(x):
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def main():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    p = argparse.ArgumentParser(prog="blender -b -P compare.py --")
    p.add_argument("--ref")
    p.add_argument("--side")
    p.add_argument("images", nargs="+")
    a = p.parse_args(argv)
    ref = np.load(a.ref).astype(np.float64) if a.ref else None
    imgs = []
    for path in a.images:
        img = np.load(path).astype(np.float64)[:, :, :3]
        imgs.append(img)
        line = {"image": path, "mean": [round(float(m), 5) for m in img.reshape(-1, 3).mean(0)]}
        if ref is not None:
            if ref.shape[:2] != img.shape[:2]:
                sys.exit("compare.py: %s is %s, the reference %s" % (path, img.shape, ref.shape))
            line["rmse"] = round(float(np.sqrt(np.mean((img - ref[:, :, :3]) ** 2))), 6)
        print("@compare " + json.dumps(line), flush=True)
    if a.side:
        h = max(i.shape[0] for i in imgs)
        row = np.concatenate([np.pad(i, ((0, h - i.shape[0]), (0, 4), (0, 0))) for i in imgs], 1)
        row = np.repeat(np.repeat(srgb(row), 2, 0), 2, 1)
        H, W = row.shape[:2]
        out = bpy.data.images.new("side", W, H, alpha=False)
        out.alpha_mode = "NONE"
        rgba = np.concatenate([row[::-1], np.ones((H, W, 1))], 2).astype(np.float32)
        out.colorspace_settings.name = "Non-Color"  # the values are sRGB-encoded already
        out.pixels[:] = rgba.ravel()
        out.filepath_raw = a.side
        out.file_format = "PNG"
        out.save()


main()
