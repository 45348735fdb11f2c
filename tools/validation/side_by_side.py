"""tools/validation/side_by_side.py: kiln's and Cycles' corpus images in one PNG.

    blender -b -P tools/validation/side_by_side.py -- KILN_DIR CYCLES_DIR OUT.png [--spp 1024]
        [--size 64] [--scale 2] [--names a,b,...]

Row 1 kiln (compare_gltf.py --save KILN_DIR: NAME_SIZExSIZE_SPPspp_kiln.pfm), row 2 Cycles
(gltf_corpus.py --out CYCLES_DIR: NAME_SIZExSIZE_SPPspp.pfm), one column per scene in the order of
--names; linear values to 8-bit sRGB, clamped, no tone mapping, each pixel SCALE x SCALE. Blender
only writes the PNG (no other image library is at hand); it renders nothing.
"""

import argparse
import sys

import bpy
import numpy as np

NAMES = ["basecolor_texture", "metallic", "roughness_map", "normal_map", "emission",
         "emission_texture", "vertex_colors", "alpha_cutout", "instancing"]


def read_pfm(path):
    with open(path, "rb") as f:
        if f.readline().strip() != b"PF":
            sys.exit("%s: not a colour PFM" % path)
        w, h = (int(x) for x in f.readline().split())
        scale = float(f.readline())
        data = np.frombuffer(f.read(), dtype="<f4" if scale < 0 else ">f4")
    return data.reshape(h, w, 3).astype(np.float64)  # rows bottom to top, as Blender's pixels


def srgb(x):
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def main():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    p = argparse.ArgumentParser(prog="blender -b -P side_by_side.py --")
    p.add_argument("kiln")
    p.add_argument("cycles")
    p.add_argument("out")
    p.add_argument("--spp", type=int, default=1024)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--names", default=",".join(NAMES))
    a = p.parse_args(argv)
    names = a.names.split(",")
    t, gap = a.size * a.scale, 4
    w, h = len(names) * (t + gap) - gap, 2 * t + gap
    out = np.ones((h, w, 4))
    for c, name in enumerate(names):
        stem = "%s_%dx%d_%dspp" % (name, a.size, a.size, a.spp)
        for r, path in enumerate(["%s/%s_kiln.pfm" % (a.kiln, stem),
                                  "%s/%s.pfm" % (a.cycles, stem)]):
            img = np.kron(srgb(read_pfm(path)), np.ones((a.scale, a.scale, 1)))
            y0 = h - (r + 1) * t - r * gap  # Blender's rows run bottom to top: kiln on top
            out[y0:y0 + t, c * (t + gap):c * (t + gap) + t, :3] = img
    # Quantise here so that the PNG holds exactly these bytes (the image is a byte buffer).
    out = np.round(out * 255) / 255
    img = bpy.data.images.new("side_by_side", w, h, alpha=False)
    img.colorspace_settings.name = "Non-Color"  # the values are sRGB already
    img.pixels.foreach_set(out.astype(np.float32).ravel())
    img.filepath_raw = a.out
    img.file_format = "PNG"
    img.save()


main()
