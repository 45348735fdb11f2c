"""tools/validation/env_orientation/cycles_env.py: Cycles' side of kiln's environment-map checks.

    blender -b -P cycles_env.py -- [--spp 256] [--size 64] [--out DIR] [--exr-only 1]

Writes, next to this script (or into --out):
  sun.hdr       a 128x64 equirectangular map: a dim uniform sky (0.03) and one sun, a disc of 6
                degrees' radius and radiance (600, 450, 300), centred at u = 0.35 and 0.3 of the
                height from the top (36 degrees above the horizon). In Blender's axes the sun is
                towards (cos 36 cos 54, cos 36 sin 54, sin 36), +X +Y +Z; in kiln's (x, y, z) =
                (X, Z, -Y) it is towards +x, +y, -z. RGBE written as Radiance's writer does
                (mantissas truncated), flat scanlines.
  sun_*.exr     sun.hdr as Blender saves it in OpenEXR (OpenEXR's own writer, not tinyexr's):
                FLOAT ZIP, HALF PIZ, and HALF DWAA (a compression kiln refuses, by name)
  scene.json    the same scene for kiln, with "rotation" 0 (the test sets others)
  cycles.json   per-quadrant means of Cycles' renders (linear RGB; quadrants of the image: tl,
                tr, bl, br, rows from the top) for Mapping rotations about Z of 0 and 90 degrees,
                and what Blender's image loader gives for two texels of sun.hdr (its .hdr
                decoding: (m + 0.5) * 2^(e - 136))

The scene: a diffuse sphere (albedo 0.8, radius 1, at the origin) on a diffuse plane (albedo 0.8,
12 x 12, at Blender z = -1, kiln y = -1), seen from straight above (Blender (0, 0, 5) looking down
-Z with +Y up the image; kiln (0, 5, 0) looking at the origin with up (0, 0, -1), so that image
right is +X = +x in both), vertical field of view 30 degrees, 64x64, 256 spp, at most 4 bounces.
The world is an Environment Texture (equirectangular, linear interpolation, colour space Linear)
of sun.hdr behind a Mapping node (type Point) rotating its Generated coordinates about Z, into a
Background of strength 1. Cycles on the CPU, box filter 1 px, Standard view transform, no
denoising, no clamping; the render is saved as a float EXR and read back, so the means are linear.
With the axis mapping above, kiln's "rotation": R must give Cycles' numbers for a Mapping rotation
of R degrees about Z (tests/render/test_envmap.c checks it).
"""

import json
import math
import os
import struct
import sys

import bpy

argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
opt = {"--spp": "256", "--size": "64", "--out": os.path.dirname(os.path.abspath(__file__)),
       "--exr-only": "0"}
for i in range(0, len(argv) - 1, 2):
    opt[argv[i]] = argv[i + 1]
SPP, SIZE, OUT = int(opt["--spp"]), int(opt["--size"]), opt["--out"]
os.makedirs(OUT, exist_ok=True)

MW, MH = 128, 64
SKY = (0.03, 0.03, 0.03)
SUN = (600.0, 450.0, 300.0)
SUN_U, SUN_V, SUN_R = 0.35, 0.3, math.radians(6)


def blender_dir(u, v_top):
    """Blender's Environment Texture (equirectangular): the direction of map point (u, v) with v
    from the top: u = 0.5 towards +X, 0.25 towards +Y, rows from +Z down to -Z."""
    phi, el = (0.5 - u) * 2 * math.pi, (0.5 - v_top) * math.pi
    return (math.cos(el) * math.cos(phi), math.cos(el) * math.sin(phi), math.sin(el))


def rgbe(c):
    """Radiance's setcolr: the largest channel's exponent, mantissas truncated."""
    m = max(c)
    if m <= 1e-32:
        return bytes(4)
    f, e = math.frexp(m)
    d = f * 256.0 / m
    return bytes([min(255, int(x * d)) for x in c] + [e + 128])


def write_map(path):
    sun = blender_dir(SUN_U, SUN_V)
    rows = []
    for y in range(MH):
        row = b""
        for x in range(MW):
            d = blender_dir((x + 0.5) / MW, (y + 0.5) / MH)
            cosang = sum(a * b for a, b in zip(d, sun))
            row += rgbe(SUN if cosang > math.cos(SUN_R) else SKY)
        rows.append(row)
    with open(path, "wb") as f:
        f.write(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y %d +X %d\n" % (MH, MW))
        for r in rows:
            f.write(r)


def texel_check(path):
    """Two texels as Blender's loader decodes them, and their RGBE bytes."""
    img = bpy.data.images.load(path)
    px = list(img.pixels)
    out = []
    with open(path, "rb") as f:
        data = f.read()
    body = data.index(b"+X %d\n" % MW) + len(b"+X %d\n" % MW)
    for (x, y) in [(0, 0), (int(SUN_U * MW), int(SUN_V * MH))]:
        b = data[body + 4 * (y * MW + x): body + 4 * (y * MW + x) + 4]
        by = MH - 1 - y  # Blender's rows are bottom-up
        i = 4 * (by * MW + x)
        out.append({"x": x, "y": y, "rgbe": list(b), "blender": px[i:i + 3]})
    bpy.data.images.remove(img)
    return out


def diffuse(name):
    m = bpy.data.materials.new(name)
    m.use_nodes = True
    nt = m.node_tree
    nt.nodes.clear()
    bs = nt.nodes.new("ShaderNodeBsdfDiffuse")
    bs.inputs["Color"].default_value = (0.8, 0.8, 0.8, 1)
    bs.inputs["Roughness"].default_value = 0
    o = nt.nodes.new("ShaderNodeOutputMaterial")
    nt.links.new(bs.outputs[0], o.inputs["Surface"])
    return m


def build(map_path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    sc = bpy.context.scene
    sc.render.engine = "CYCLES"
    cy = sc.cycles
    cy.device = "CPU"
    cy.samples = SPP
    cy.use_adaptive_sampling = False
    cy.use_denoising = False
    cy.max_bounces = cy.diffuse_bounces = 4
    cy.glossy_bounces = cy.transmission_bounces = 4
    cy.sample_clamp_direct = cy.sample_clamp_indirect = 0
    cy.filter_type = "BOX"
    cy.filter_width = 1.0
    cy.seed = 0
    sc.render.threads_mode = "FIXED"
    sc.render.threads = 2
    sc.render.resolution_x = sc.render.resolution_y = SIZE
    sc.render.resolution_percentage = 100
    sc.view_settings.view_transform = "Standard"
    sc.render.image_settings.file_format = "OPEN_EXR"
    sc.render.image_settings.color_depth = "32"
    sc.render.image_settings.exr_codec = "ZIP"

    bpy.ops.mesh.primitive_uv_sphere_add(segments=128, ring_count=64, radius=1, location=(0, 0, 0))
    s = bpy.context.active_object
    bpy.ops.object.shade_smooth()
    s.data.materials.append(diffuse("sphere"))
    bpy.ops.mesh.primitive_plane_add(size=12, location=(0, 0, -1))
    bpy.context.active_object.data.materials.append(diffuse("floor"))

    cam = bpy.data.cameras.new("cam")
    cam.sensor_fit = "VERTICAL"
    cam.angle_y = math.radians(30)
    co = bpy.data.objects.new("cam", cam)
    sc.collection.objects.link(co)
    co.location = (0, 0, 5)
    co.rotation_euler = (0, 0, 0)
    sc.camera = co

    w = bpy.data.worlds.new("world")
    sc.world = w
    w.use_nodes = True
    nt = w.node_tree
    nt.nodes.clear()
    tc = nt.nodes.new("ShaderNodeTexCoord")
    mp = nt.nodes.new("ShaderNodeMapping")
    mp.vector_type = "POINT"
    env = nt.nodes.new("ShaderNodeTexEnvironment")
    env.image = bpy.data.images.load(map_path)
    env.image.colorspace_settings.name = "Linear"
    env.interpolation = "Linear"
    env.projection = "EQUIRECTANGULAR"
    bg = nt.nodes.new("ShaderNodeBackground")
    bg.inputs["Strength"].default_value = 1
    out = nt.nodes.new("ShaderNodeOutputWorld")
    nt.links.new(tc.outputs["Generated"], mp.inputs["Vector"])
    nt.links.new(mp.outputs["Vector"], env.inputs["Vector"])
    nt.links.new(env.outputs["Color"], bg.inputs["Color"])
    nt.links.new(bg.outputs[0], out.inputs["Surface"])
    return mp


def quadrants(path):
    img = bpy.data.images.load(path)
    W, H = img.size
    px = list(img.pixels)
    q = {k: [0.0, 0.0, 0.0] for k in ("tl", "tr", "bl", "br")}
    for by in range(H):
        y = H - 1 - by  # from the top
        for x in range(W):
            k = ("t" if y < H // 2 else "b") + ("l" if x < W // 2 else "r")
            for c in range(3):
                q[k][c] += px[4 * (by * W + x) + c]
    n = (W // 2) * (H // 2)
    bpy.data.images.remove(img)
    return {k: [v / n for v in q[k]] for k in q}


def save_exrs(map_path):
    """sun.hdr through Blender's image saving, as OpenEXR in three forms."""
    img = bpy.data.images.load(map_path)
    st = bpy.context.scene.render.image_settings
    for name, depth, codec in [("sun_zip_float", "32", "ZIP"), ("sun_piz_half", "16", "PIZ"),
                               ("sun_dwaa_half", "16", "DWAA")]:
        st.file_format, st.color_mode, st.color_depth, st.exr_codec = "OPEN_EXR", "RGB", depth, codec
        img.save_render(os.path.join(OUT, name + ".exr"), scene=bpy.context.scene)
    bpy.data.images.remove(img)


map_path = os.path.join(OUT, "sun.hdr")
if opt["--exr-only"] != "0":
    save_exrs(map_path)
    sys.exit(0)
write_map(map_path)
save_exrs(map_path)
texels = texel_check(map_path)
result = {"spp": SPP, "size": SIZE, "texels": texels, "renders": []}
for rot in (0, 90):
    mp = build(map_path)
    mp.inputs["Rotation"].default_value = (0, 0, math.radians(rot))
    path = os.path.join(OUT, "cycles_rot%d.exr" % rot)
    bpy.context.scene.render.filepath = path
    bpy.ops.render.render(write_still=True)
    result["renders"].append({"rotation": rot, "quadrants": quadrants(path)})
    os.remove(path)
with open(os.path.join(OUT, "cycles.json"), "w") as f:
    json.dump(result, f, indent=1)
scene = {
    "camera": {"position": [0, 5, 0], "look_at": [0, 0, 0], "up": [0, 0, -1], "vfov": 30},
    "settings": {"width": SIZE, "height": SIZE, "spp": SPP, "max_bounces": 4},
    "environment": {"type": "map", "file": "sun.hdr", "rotation": 0, "intensity": 1},
    "objects": [
        {"type": "sphere", "center": [0, 0, 0], "radius": 1,
         "material": {"type": "diffuse", "albedo": [0.8, 0.8, 0.8]}},
        {"type": "quad", "corner": [-6, -1, 6], "u": [12, 0, 0], "v": [0, 0, -12],
         "material": {"type": "diffuse", "albedo": [0.8, 0.8, 0.8]}},
    ],
}
with open(os.path.join(OUT, "scene.json"), "w") as f:
    json.dump(scene, f, indent=1)
print("@cycles_env", json.dumps(result))
