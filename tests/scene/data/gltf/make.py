#!/usr/bin/env python3
"""Writes the glTF files of tests/scene/test_gltf.c (and the seeds of tests/fuzz/seeds/gltf).

Small hand-made files, each for one feature or one error: buffers are base64 data: URIs (one file
uses an external .bin, one is a .glb). Run it from anywhere; it writes beside itself and into the
fuzz seeds, and the test suite reads what it wrote (commit both). Plain Python 3, no packages.
"""
import base64
import json
import math
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, "..", "..", "..", "fuzz", "seeds", "gltf")

FLOAT, U8, U16, U32 = 5126, 5121, 5123, 5125


def png(w, h, rows, alpha):
    """An 8-bit RGB(A) PNG; rows: h lists of w tuples."""
    raw = b"".join(b"\0" + bytes(c for px in row for c in px) for row in rows)
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6 if alpha else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


class G:
    """A glTF under construction: one binary buffer, views and accessors appended to it."""

    def __init__(self):
        self.bin = bytearray()
        self.j = {"asset": {"version": "2.0", "generator": "kiln tests/scene/data/gltf/make.py"},
                  "bufferViews": [], "accessors": []}

    def view(self, data, stride=None):
        while len(self.bin) % 4:
            self.bin.append(0)
        v = {"buffer": 0, "byteOffset": len(self.bin), "byteLength": len(data)}
        if stride:
            v["byteStride"] = stride
        self.bin += data
        self.j["bufferViews"].append(v)
        return len(self.j["bufferViews"]) - 1

    def acc(self, ctype, typ, values, normalized=False, view=None, offset=0, count=None):
        fmt = {FLOAT: "f", U8: "B", U16: "H", U32: "I"}[ctype]
        if view is None:
            view = self.view(struct.pack("<%d%s" % (len(values), fmt), *values))
        n = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}[typ]
        a = {"bufferView": view, "componentType": ctype, "type": typ,
             "count": count if count is not None else len(values) // n}
        if offset:
            a["byteOffset"] = offset
        if normalized:
            a["normalized"] = True
        if typ == "VEC3" and ctype == FLOAT and values:
            a["min"] = [min(values[i::3]) for i in range(3)]
            a["max"] = [max(values[i::3]) for i in range(3)]
        self.j["accessors"].append(a)
        return len(self.j["accessors"]) - 1

    def image(self, data):
        self.j.setdefault("images", []).append(
            {"uri": "data:image/png;base64," + base64.b64encode(data).decode()})
        return len(self.j["images"]) - 1

    def texture(self, image, sampler=None):
        t = {"source": image}
        if sampler is not None:
            t["sampler"] = sampler
        self.j.setdefault("textures", []).append(t)
        return len(self.j["textures"]) - 1

    def buffers(self, uri=None):
        b = {"byteLength": len(self.bin)}
        if uri is not False:
            b["uri"] = uri or ("data:application/octet-stream;base64," +
                               base64.b64encode(bytes(self.bin)).decode())
        self.j["buffers"] = [b]

    def write(self, name, seed=True):
        text = json.dumps(self.j, indent=1) + "\n"
        for d in [HERE] + ([SEEDS] if seed else []):
            with open(os.path.join(d, name), "w") as f:
                f.write(text)

    def write_glb(self, name, lie=0):
        self.buffers(uri=False)
        self.j["buffers"][0]["byteLength"] += lie
        js = json.dumps(self.j).encode()
        js += b" " * (-len(js) % 4)
        bn = bytes(self.bin) + b"\0" * (-len(self.bin) % 4)
        out = (struct.pack("<III", 0x46546C67, 2, 12 + 8 + len(js) + 8 + len(bn)) +
               struct.pack("<II", len(js), 0x4E4F534A) + js + struct.pack("<II", len(bn), 0x004E4942) + bn)
        for d in (HERE, SEEDS):
            with open(os.path.join(d, name), "wb") as f:
                f.write(out)


QUAD_POS = [0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0]


def quad(g, with_attrs=True):
    """Mesh attributes of the unit quad in z = 0 (indices 0 1 2, 0 2 3)."""
    attrs = {"POSITION": g.acc(FLOAT, "VEC3", QUAD_POS)}
    if with_attrs:
        attrs["NORMAL"] = g.acc(FLOAT, "VEC3", [0, 0, 1] * 4)
        attrs["TEXCOORD_0"] = g.acc(FLOAT, "VEC2", [0, 0, 1, 0, 1, 1, 0, 1])
        # red, green, blue, white as normalised bytes with alpha
        attrs["COLOR_0"] = g.acc(U8, "VEC4", [255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255,
                                              255, 255, 255, 255], normalized=True)
        attrs["TANGENT"] = g.acc(FLOAT, "VEC4", [1, 0, 0, 1] * 4)
    return attrs, g.acc(U16, "SCALAR", [0, 1, 2, 0, 2, 3])


def scene_file():
    """scene.gltf: hierarchy, instancing, interleaving, normalised uv, sparse, camera, lights."""
    g = G()
    attrs, idx = quad(g)
    # mesh 1: one triangle, not indexed; POSITION and NORMAL interleaved (stride 24); uv as
    # normalised u16; POSITION sparse: vertex 2 moved from (0, 1, 0) to (0, 2, 0)
    inter = struct.pack("<18f", 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1)
    v = g.view(inter, stride=24)
    pos = g.acc(FLOAT, "VEC3", [], view=v, count=3)
    g.j["accessors"][pos].update({"min": [0, 0, 0], "max": [1, 2, 0]})
    nrm = g.acc(FLOAT, "VEC3", [], view=v, offset=12, count=3)
    uv = g.acc(U16, "VEC2", [0, 0, 65535, 0, 0, 65535], normalized=True)
    si = g.view(struct.pack("<B", 2))
    sv = g.view(struct.pack("<3f", 0, 2, 0))
    g.j["accessors"][pos]["sparse"] = {"count": 1,
                                       "indices": {"bufferView": si, "componentType": U8},
                                       "values": {"bufferView": sv}}
    g.j["meshes"] = [{"name": "quad", "primitives": [{"attributes": attrs, "indices": idx}]},
                     {"name": "tri", "primitives": [{"attributes": {"POSITION": pos, "NORMAL": nrm,
                                                                   "TEXCOORD_0": uv}}]}]
    s45 = math.sqrt(0.5)
    g.j["nodes"] = [
        {"name": "root", "translation": [10, 0, 0], "children": [1, 2]},
        {"name": "a", "mesh": 0, "scale": [2, 2, 2]},
        {"name": "b", "mesh": 0, "matrix": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 5, 1]},
        {"name": "t", "mesh": 1, "rotation": [0, 0, s45, s45]},
        {"name": "cam", "camera": 0, "translation": [0, 0, 10]},
        {"name": "lamp", "translation": [0, 5, 0], "extensions": {"KHR_lights_punctual": {"light": 0}}},
        # a spot pointing down -y: its -z turned by -90 degrees about x
        {"name": "spot", "translation": [0, 3, 0], "rotation": [-s45, 0, 0, s45],
         "extensions": {"KHR_lights_punctual": {"light": 1}}},
        {"name": "sun", "extensions": {"KHR_lights_punctual": {"light": 2}}},
        {"name": "unused", "mesh": 1},
    ]
    g.j["cameras"] = [{"type": "perspective",
                       "perspective": {"yfov": math.radians(30), "znear": 0.1, "aspectRatio": 1.5}}]
    g.j["extensionsUsed"] = ["KHR_lights_punctual"]
    g.j["extensions"] = {"KHR_lights_punctual": {"lights": [
        {"type": "point", "intensity": 100, "color": [1, 0.5, 0.25]},
        {"type": "spot", "intensity": 50, "spot": {"innerConeAngle": 0.25, "outerConeAngle": 0.5}},
        {"type": "directional", "intensity": 683}]}}
    g.j["scenes"] = [{"nodes": [8]}, {"nodes": [0, 3, 4, 5, 6, 7]}]
    g.j["scene"] = 1
    g.buffers()
    g.write("scene.gltf")
    # the same as a .glb, and with an external buffer
    g.write_glb("scene.glb")
    g.buffers(uri="scene.bin")
    with open(os.path.join(HERE, "scene.bin"), "wb") as f:
        f.write(bytes(g.bin))
    g.write("external.gltf", seed=False)


def material_file():
    """material.gltf: a quad with every material feature, and one with glTF's default."""
    g = G()
    attrs, idx = quad(g)
    # base colour: 2x2 RGBA (top row red / green, bottom blue / white; alpha 255, 128, 0, 255)
    bc = g.image(png(2, 2, [[(255, 0, 0, 255), (0, 255, 0, 128)],
                             [(0, 0, 255, 0), (255, 255, 255, 255)]], True))
    mr = g.image(png(2, 2, [[(0, 128, 255)] * 2] * 2, False))
    nm = g.image(png(2, 2, [[(128, 128, 255)] * 2] * 2, False))
    g.j["samplers"] = [{"wrapS": 33071, "wrapT": 10497}]
    t_bc, t_mr, t_nm = g.texture(bc, sampler=0), g.texture(mr), g.texture(nm)
    g.j["materials"] = [{
        "name": "everything",
        "pbrMetallicRoughness": {
            "baseColorFactor": [0.5, 0.6, 0.7, 0.8],
            "baseColorTexture": {"index": t_bc, "extensions": {"KHR_texture_transform": {
                "offset": [0.5, 0], "scale": [2, 2]}}},
            "metallicFactor": 0.25, "roughnessFactor": 0.75,
            "metallicRoughnessTexture": {"index": t_mr}},
        "normalTexture": {"index": t_nm, "scale": 0.5},
        "occlusionTexture": {"index": t_mr},
        "emissiveFactor": [1, 0.5, 0.25],
        "emissiveTexture": {"index": t_bc},
        "alphaMode": "MASK", "alphaCutoff": 0.3,
        "extensions": {"KHR_materials_emissive_strength": {"emissiveStrength": 4},
                       "KHR_materials_ior": {"ior": 1.33}}},
        {"name": "blend", "alphaMode": "BLEND"},
        {"name": "rotated", "pbrMetallicRoughness": {"baseColorTexture": {
            "index": t_mr, "texCoord": 1, "extensions": {"KHR_texture_transform": {
                "offset": [0.1, 0.2], "rotation": 0.3, "scale": [1.5, 0.5]}}}}}]
    attrs2, idx2 = quad(g, with_attrs=False)
    g.j["meshes"] = [{"primitives": [{"attributes": attrs, "indices": idx, "material": 0},
                                     {"attributes": attrs2, "indices": idx2},
                                     {"attributes": attrs2, "indices": idx2, "material": 1},
                                     {"attributes": attrs2, "indices": idx2, "material": 2}]}]
    g.j["nodes"] = [{"name": "m", "mesh": 0}]
    g.j["scenes"] = [{"nodes": [0]}]
    g.j["extensionsUsed"] = ["KHR_texture_transform", "KHR_materials_emissive_strength",
                             "KHR_materials_ior", "EXT_unknown_thing"]
    g.buffers()
    g.write("material.gltf")


def bad_files():
    """One error each: what test_gltf.c expects of it is beside it there."""
    def base():
        g = G()
        attrs, idx = quad(g, with_attrs=False)
        g.j["meshes"] = [{"primitives": [{"attributes": attrs, "indices": idx}]}]
        g.j["nodes"] = [{"mesh": 0}]
        g.j["scenes"] = [{"nodes": [0]}]
        return g

    g = base()
    g.j["meshes"][0]["primitives"][0]["mode"] = 5
    g.buffers()
    g.write("bad_mode.gltf")

    g = base()
    g.j["accessors"][1]["count"] = 3
    ib = g.view(struct.pack("<3H", 0, 1, 7))
    g.j["accessors"][1]["bufferView"] = ib
    g.buffers()
    g.write("bad_index.gltf")

    g = base()
    g.j["accessors"][0]["count"] = 40  # 480 bytes from a 48-byte view
    g.buffers()
    g.write("bad_view.gltf")

    g = base()
    g.buffers(uri="missing.bin")
    g.write("bad_buffer.gltf")

    g = base()
    g.j["extensionsUsed"] = g.j["extensionsRequired"] = ["KHR_draco_mesh_compression"]
    g.buffers()
    g.write("bad_ext.gltf")

    g = base()
    g.buffers()
    g.j["buffers"][0]["byteLength"] += 64  # a buffer length lie
    g.write("bad_length.gltf")

    g = base()
    g.write_glb("bad_length.glb", lie=64)

    g = base()
    g.j["nodes"] = [{"mesh": 0, "children": [1]}, {"children": [0]}]  # a cycle
    g.buffers()
    g.write("bad_cycle.gltf")


if __name__ == "__main__":
    os.makedirs(SEEDS, exist_ok=True)
    scene_file()
    material_file()
    bad_files()
