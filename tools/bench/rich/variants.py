#!/usr/bin/env python3
"""tools/bench/rich/variants.py: scene variants of the rich benchmark scene, one feature taken
out each, to see where kiln's time goes (docs/PERFORMANCE.md, "A richer scene").

    python3 tools/bench/rich/variants.py OUT_DIR

Writes OUT_DIR/NAME.json for each variant below (and links floor.png and knot.ply beside them),
printing the names. Each variant changes one thing, so that its render time against "full"
is that thing's cost (with what it does to the paths, e.g. glass made diffuse also ends
paths sooner):

  full         the scene as it is
  no_texture   the floor a constant albedo (the texture's mean, in linear RGB)
  no_glass     the glass sphere a white diffuse one
  no_metal     the copper sphere a diffuse one of its colour
  no_knots     the four knot instances left out (12288 triangles)
  no_lamp      the emissive sphere left out (the quad light stays)
  bounces_N    max_bounces N, for N in 0 1 2 4
  diffuse_all  every material diffuse (no glass, no metal, no texture)
"""
import copy
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def srgb_to_linear(c):
    c /= 255.0
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def variants(base):
    # The floor texture's mean albedo in linear RGB (make_assets.py: half light, half dark).
    light, dark = (200, 190, 170), (70, 66, 60)
    mean = [round(0.5 * (srgb_to_linear(a) + srgb_to_linear(b)), 4) for a, b in zip(light, dark)]
    out = {"full": base}

    v = copy.deepcopy(base)
    v["materials"]["floor"] = {"type": "diffuse", "albedo": mean}
    out["no_texture"] = v

    v = copy.deepcopy(base)
    v["materials"]["glass"] = {"type": "diffuse", "albedo": [0.8, 0.8, 0.8]}
    out["no_glass"] = v

    v = copy.deepcopy(base)
    v["materials"]["copper"] = {"type": "diffuse", "albedo": base["materials"]["copper"]["albedo"]}
    out["no_metal"] = v

    v = copy.deepcopy(base)
    v["objects"] = [o for o in v["objects"] if o.get("name") != "knot"]
    out["no_knots"] = v

    v = copy.deepcopy(base)
    v["objects"] = [o for o in v["objects"] if o.get("name") != "lamp"]
    del v["materials"]["lamp"]
    out["no_lamp"] = v

    for n in (0, 1, 2, 4):
        v = copy.deepcopy(base)
        v["settings"]["max_bounces"] = n
        out["bounces_%d" % n] = v

    v = copy.deepcopy(out["no_texture"])
    v["materials"]["glass"] = out["no_glass"]["materials"]["glass"]
    v["materials"]["copper"] = out["no_metal"]["materials"]["copper"]
    out["diffuse_all"] = v
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: variants.py OUT_DIR")
    dest = sys.argv[1]
    os.makedirs(dest, exist_ok=True)
    with open(os.path.join(HERE, "scene.json")) as f:
        base = json.load(f)
    for asset in ("floor.png", "knot.ply"):
        link = os.path.join(dest, asset)
        if not os.path.exists(link):
            os.symlink(os.path.join(HERE, asset), link)
    for name, scene in variants(base).items():
        scene["name"] = "rich_" + name
        with open(os.path.join(dest, name + ".json"), "w") as f:
            json.dump(scene, f, indent=1)
        print(name)


if __name__ == "__main__":
    main()
