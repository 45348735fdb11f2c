#!/usr/bin/env python3
"""tools/bench/rich/make_assets.py: the generated files of the rich benchmark scene (scene.json).

    python3 tools/bench/rich/make_assets.py [OUT_DIR]     (default: this script's folder)

Writes, deterministically (the same bytes every run; no third-party modules):

  floor.png  64x64 8-bit sRGB checkerboard, 8x8 squares of 8 pixels, two warm greys: the floor
             quad's albedo texture (repeats once over the quad: squares of 0.75 m on its 6 m).
  knot.ply   a (2,3) torus knot tube, 128 x 12 segments (3072 triangles, 1536 vertices with
             unit normals), binary little-endian, about 0.5 m across: the instanced mesh.

Both files are committed beside scene.json; this script is how they were made.
"""
import math
import os
import struct
import sys
import zlib


def png_rgb(path, w, h, rows):
    """An 8-bit RGB PNG of rows (h lists of w (r, g, b) byte triples), filter 0, zlib level 9."""
    raw = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in rows)

    def chunk(tag, data):
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def floor_png(path):
    light, dark = (200, 190, 170), (70, 66, 60)
    rows = [[light if ((x // 8) + (y // 8)) % 2 == 0 else dark for x in range(64)]
            for y in range(64)]
    png_rgb(path, 64, 64, rows)


def sub(a, b):
    return [a[i] - b[i] for i in range(3)]


def cross(a, b):
    return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]


def norm(a):
    n = math.sqrt(sum(x * x for x in a))
    return [x / n for x in a]


def knot_point(t):
    """The (2,3) torus knot, radius about 0.2 around the y axis, centred at y = 0.25."""
    r = 0.14 + 0.07 * math.cos(3 * t)
    return [r * math.cos(2 * t), 0.25 + 0.07 * math.sin(3 * t), r * math.sin(2 * t)]


def knot_ply(path, segs=128, sides=12, tube=0.045):
    verts, normals = [], []
    for i in range(segs):
        t = 2 * math.pi * i / segs
        p = knot_point(t)
        tangent = norm(sub(knot_point(t + 1e-4), knot_point(t - 1e-4)))
        a = norm(cross(tangent, [0.0, 1.0, 0.0]))  # never parallel: the knot winds about y
        b = cross(a, tangent)
        for j in range(sides):
            s = 2 * math.pi * j / sides
            n = [math.cos(s) * a[k] + math.sin(s) * b[k] for k in range(3)]
            verts.append([p[k] + tube * n[k] for k in range(3)])
            normals.append(n)
    faces = []
    for i in range(segs):
        for j in range(sides):
            a0 = i * sides + j
            a1 = i * sides + (j + 1) % sides
            b0 = ((i + 1) % segs) * sides + j
            b1 = ((i + 1) % segs) * sides + (j + 1) % sides
            faces.append((a0, b0, b1))  # counter-clockwise seen from outside the tube
            faces.append((a0, b1, a1))
    header = ("ply\nformat binary_little_endian 1.0\ncomment kiln rich benchmark: (2,3) torus knot\n"
              "element vertex %d\nproperty float x\nproperty float y\nproperty float z\n"
              "property float nx\nproperty float ny\nproperty float nz\n"
              "element face %d\nproperty list uchar int vertex_indices\nend_header\n"
              % (len(verts), len(faces)))
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        for v, n in zip(verts, normals):
            f.write(struct.pack("<6f", *v, *n))
        for tri in faces:
            f.write(struct.pack("<B3i", 3, *tri))
    return len(verts), len(faces)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    os.makedirs(out, exist_ok=True)
    floor_png(os.path.join(out, "floor.png"))
    nv, nf = knot_ply(os.path.join(out, "knot.ply"))
    print("make_assets: %s: floor.png 64x64, knot.ply %d vertices %d triangles" % (out, nv, nf))


if __name__ == "__main__":
    main()
