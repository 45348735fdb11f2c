"""tools/bench/blender/rich_scene.py: Blender Cycles' side of the rich benchmark scene.

    blender -b --factory-startup -P rich_scene.py -- --scene tools/bench/rich/scene.json \
        --size 128 --spp 128 --bounces 8 --threads 2 --out DIR [--renders N] [--seed S]

Builds the scene of a kiln scene JSON in Blender and renders it with Cycles on the CPU N times
(default 1), writing DIR/cycles_SIZE_SPPspp_sSEED.png (8-bit sRGB, 'Standard' view, as kiln's PNG)
and .npy (the first render's linear RGB as float32, rows top to bottom, as kiln's npy output).
Only what the rich scene uses is read; anything else in the file is an error, so the two sides
cannot silently differ:

  camera     pinhole: position, look_at, up, vfov (vertical, degrees)
  materials  diffuse (albedo x PNG texture: Diffuse BSDF, roughness 0, Image Texture of the
             PNG decoded to linear floats as kiln decodes it, linear, repeat), conductor (Principled BSDF, metallic 1, base colour = F0, the same
             roughness: docs/VALIDATION.md's "metallic_vs_conductor"), dielectric (Glass BSDF,
             sharp, the same ior and tint), emissive (Emission, strength 1, colour = radiance)
  objects    quad (a two-triangle mesh with kiln's uv), sphere (UV sphere, 128 x 64, smooth),
             mesh (binary little-endian PLY with x y z nx ny nz: its normals as custom split
             normals), each with transform and instances (linked duplicates: Cycles instances)
  lights     quad: a one-sided rectangle area light of the same radiance
             (Cycles 3.4: radiance = colour x energy / (4 x area)), visible to the camera
  environment constant colour: the world's Background

Render settings as tools/bench/blender/cornell_orbit.py (no adaptive sampling, no denoising, no
clamping, box filter 1 px, caustics on, every bounce limit = --bounces, persistent data);
--seed is Cycles' seed. Coordinates: kiln's +y up becomes Blender's +z up ((x, y, z) ->
(x, -z, y), a rotation). Timing, one JSON line each on stdout as cornell_orbit.py's:
  @bench {"event": "start", "startup_s": S}     @bench {"event": "setup", "setup_s": S}
  @bench {"event": "frame", "frame": i, "time_s": S}   (one per render)
  @bench {"event": "done", "render_s": S, "median_s": S, ...}
"""
import argparse
import json
import math
import os
import struct
import sys
import time

T_SCRIPT = time.time()

import bpy  # noqa: E402  (Blender's module: after the timestamp above)
import numpy as np  # noqa: E402
from mathutils import Matrix, Vector  # noqa: E402

C = Matrix(((1, 0, 0, 0), (0, 0, -1, 0), (0, 1, 0, 0), (0, 0, 0, 1)))  # kiln -> Blender


def bench(**fields):
    print("@bench " + json.dumps(fields), flush=True)


def fail(msg):
    sys.exit("rich_scene.py: " + msg)


def check_keys(what, d, allowed):
    extra = set(d) - set(allowed)
    if extra:
        fail("%s: keys %s are not read by this script" % (what, sorted(extra)))


def parse_args():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    p = argparse.ArgumentParser(prog="blender -b -P rich_scene.py --")
    p.add_argument("--scene", required=True, help="the kiln scene JSON")
    p.add_argument("--size", type=int, help="width and height (default: the scene's)")
    p.add_argument("--spp", type=int, help="samples per pixel (default: the scene's)")
    p.add_argument("--bounces", type=int, help="max bounces (default: the scene's)")
    p.add_argument("--threads", type=int, default=0, help="render threads; 0: all CPUs")
    p.add_argument("--seed", type=int, default=0, help="Cycles' seed")
    p.add_argument("--renders", type=int, default=1, help="render the frame this many times")
    p.add_argument("--out", required=True, help="folder for the PNG and the npy")
    return p.parse_args(argv)


def vec(v):
    return Vector((v[0], v[1], v[2]))


def kiln_transform(t):
    """kiln's transform (scene.json "transform" or an instance) as a 4x4 Matrix, kiln axes."""
    if t is None:
        return Matrix.Identity(4)
    check_keys("transform", t, ("translate", "rotate", "scale", "matrix"))
    if "matrix" in t:
        m = t["matrix"]
        return Matrix([m[0:4], m[4:8], m[8:12], m[12:16]])
    s = t.get("scale", 1.0)
    s = [s, s, s] if isinstance(s, (int, float)) else s
    S = Matrix.Diagonal((s[0], s[1], s[2], 1.0))
    r = t.get("rotate", [0, 0, 0])
    if isinstance(r, dict):
        R = Matrix.Rotation(math.radians(r["angle"]), 4, vec(r["axis"]).normalized())
    else:  # R = Rz Ry Rx
        R = (Matrix.Rotation(math.radians(r[2]), 4, "Z") @ Matrix.Rotation(math.radians(r[1]), 4, "Y")
             @ Matrix.Rotation(math.radians(r[0]), 4, "X"))
    T = Matrix.Translation(vec(t.get("translate", [0, 0, 0])))
    return T @ R @ S


def linear_image(path):
    """The 8-bit sRGB image at path decoded to linear floats texel by texel (the exact
    IEC 61966-2-1 curve), as kiln decodes a diffuse material's texture on load, so that Cycles'
    bilinear filter works on the same linear values as kiln's. (Cycles filters an 8-bit sRGB
    image's stored values and decodes after: across the checker's hard edges that is 1.3%
    darker over this scene.)"""
    src = bpy.data.images.load(path)
    src.colorspace_settings.name = "Non-Color"  # its pixels: the stored values / 255
    w, h = src.size
    px = np.array(src.pixels[:], dtype=np.float64).reshape(h * w, 4)
    rgb = px[:, :3]
    px[:, :3] = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    img = bpy.data.images.new(os.path.basename(path) + ".linear", w, h, alpha=False, float_buffer=True)
    img.colorspace_settings.name = "Linear"
    img.pixels[:] = px.astype(np.float32).ravel()
    img.pack()
    bpy.data.images.remove(src)
    return img


def make_material(name, spec, folder):
    check_keys("material " + name, spec,
               {"diffuse": ("type", "albedo", "texture"), "conductor": ("type", "albedo", "roughness"),
                "dielectric": ("type", "ior", "albedo"), "emissive": ("type", "emission")}
               .get(spec.get("type"), ("type",)))
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    out = nodes.new("ShaderNodeOutputMaterial")
    kind = spec["type"]
    albedo = spec.get("albedo", [0.8] * 3 if kind == "diffuse" else [1.0] * 3)
    if kind == "diffuse":
        bsdf = nodes.new("ShaderNodeBsdfDiffuse")
        bsdf.inputs["Roughness"].default_value = 0.0  # Lambert, not Oren-Nayar
        bsdf.inputs["Color"].default_value = (*albedo, 1.0)
        if "texture" in spec:
            tex = nodes.new("ShaderNodeTexImage")
            tex.image = linear_image(os.path.join(folder, spec["texture"]))
            tex.interpolation = "Linear"
            tex.extension = "REPEAT"
            mix = nodes.new("ShaderNodeMixRGB")
            mix.blend_type = "MULTIPLY"
            mix.inputs["Fac"].default_value = 1.0
            mix.inputs["Color1"].default_value = (*albedo, 1.0)
            links.new(tex.outputs["Color"], mix.inputs["Color2"])
            links.new(mix.outputs["Color"], bsdf.inputs["Color"])
        links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    elif kind == "conductor":
        bsdf = nodes.new("ShaderNodeBsdfPrincipled")
        bsdf.distribution = "GGX"
        bsdf.inputs["Base Color"].default_value = (*albedo, 1.0)
        bsdf.inputs["Metallic"].default_value = 1.0
        bsdf.inputs["Roughness"].default_value = spec.get("roughness", 0.0)
        bsdf.inputs["Specular"].default_value = 0.5
        links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    elif kind == "dielectric":
        bsdf = nodes.new("ShaderNodeBsdfGlass")
        bsdf.distribution = "SHARP"
        bsdf.inputs["IOR"].default_value = spec.get("ior", 1.5)
        bsdf.inputs["Color"].default_value = (*albedo, 1.0)
        links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    elif kind == "emissive":
        em = nodes.new("ShaderNodeEmission")
        em.inputs["Color"].default_value = (*spec["emission"], 1.0)
        em.inputs["Strength"].default_value = 1.0
        links.new(em.outputs["Emission"], out.inputs["Surface"])
    else:
        fail("material %s: type %r is not read by this script" % (name, kind))
    return mat


def read_ply(path):
    """Vertices, normals and triangles of a binary little-endian PLY with float x y z nx ny nz
    and a uchar/int face list: what make_assets.py writes."""
    with open(path, "rb") as f:
        data = f.read()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").split("\n")
    if "format binary_little_endian 1.0" not in header:
        fail("%s: only binary little-endian PLY" % path)
    props = [ln.split()[-1] for ln in header if ln.startswith("property float")]
    if props != ["x", "y", "z", "nx", "ny", "nz"]:
        fail("%s: vertex properties %s, expected x y z nx ny nz" % (path, props))
    nv = int(next(ln.split()[2] for ln in header if ln.startswith("element vertex")))
    nf = int(next(ln.split()[2] for ln in header if ln.startswith("element face")))
    v = np.frombuffer(data, dtype="<f4", count=6 * nv, offset=end).reshape(nv, 6)
    faces = np.frombuffer(data, dtype=np.dtype([("n", "u1"), ("i", "<i4", 3)]), count=nf,
                          offset=end + 24 * nv)
    if np.any(faces["n"] != 3):
        fail("%s: only triangles" % path)
    return v[:, :3].tolist(), v[:, 3:].tolist(), faces["i"].tolist()


def mesh_object(name, verts, faces, mat, normals=None, uvs=None, smooth=False):
    me = bpy.data.meshes.new(name)
    me.from_pydata(verts, [], faces)
    me.materials.append(mat)
    for poly in me.polygons:
        poly.use_smooth = smooth or normals is not None
    if uvs is not None:
        layer = me.uv_layers.new(name="UVMap")
        for loop in me.loops:
            layer.data[loop.index].uv = uvs[loop.vertex_index]
    if normals is not None:
        me.use_auto_smooth = True
        me.normals_split_custom_set_from_vertices(normals)
    me.validate()
    return me


def add_object(name, me, kiln_m):
    obj = bpy.data.objects.new(name, me)
    obj.matrix_world = C @ kiln_m
    bpy.context.scene.collection.objects.link(obj)
    return obj


def add_objects(spec, materials, folder):
    for i, o in enumerate(spec.get("objects", [])):
        check_keys("object %d" % i, o, ("type", "name", "material", "transform", "instances",
                                          "center", "radius", "corner", "u", "v", "file"))
        kind, name = o["type"], o.get("name", o["type"])
        mat = materials[o["material"]]
        if kind == "quad":
            c, u, v = vec(o["corner"]), vec(o["u"]), vec(o["v"])
            verts = [c, c + u, c + u + v, c + v]  # kiln's uv: (0,0) at corner, (1,0) at corner + u
            me = mesh_object(name, verts, [(0, 1, 2), (0, 2, 3)], mat,
                             uvs=[(0, 0), (1, 0), (1, 1), (0, 1)])
            base = Matrix.Identity(4)
        elif kind == "sphere":
            bm_name = name + "_sphere"
            bpy.ops.mesh.primitive_uv_sphere_add(segments=128, ring_count=64, radius=o["radius"])
            tmp = bpy.context.active_object
            me = tmp.data
            me.name = bm_name
            for poly in me.polygons:
                poly.use_smooth = True
            me.materials.append(mat)
            bpy.data.objects.remove(tmp)
            # The mesh was made in Blender's axes: undo C so that add_object's C @ M is right.
            base = Matrix.Translation(vec(o.get("center", [0, 0, 0]))) @ C.inverted()
        elif kind == "mesh":
            if not o["file"].endswith(".ply"):
                fail("object %s: only PLY meshes" % name)
            verts, normals, faces = read_ply(os.path.join(folder, o["file"]))
            me = mesh_object(name, verts, faces, mat, normals=normals)
            base = Matrix.Identity(4)
        else:
            fail("object %s: type %r is not read by this script" % (name, kind))
        m = kiln_transform(o.get("transform")) @ base
        for k, inst in enumerate(o.get("instances", [None])):
            add_object("%s.%d" % (name, k), me, kiln_transform(inst) @ m)


def add_lights(spec):
    for i, light in enumerate(spec.get("lights", [])):
        check_keys("light %d" % i, light, ("type", "name", "corner", "u", "v", "radiance"))
        if light["type"] != "quad":
            fail("light %d: only quad lights" % i)
        c, u, v = vec(light["corner"]), vec(light["u"]), vec(light["v"])
        if abs(u.dot(v)) > 1e-9 * u.length * v.length:
            fail("light %d: a rectangle only (u and v orthogonal)" % i)
        L = light["radiance"]
        area = u.cross(v).length
        peak = max(L)
        data = bpy.data.lights.new(light.get("name", "light"), type="AREA")
        data.shape = "RECTANGLE"
        data.size, data.size_y = u.length, v.length
        data.energy = 4.0 * area * peak  # Cycles 3.4: radiance = colour x energy / (4 area)
        data.color = [x / peak for x in L]
        # local x along u, local y along -v: local z = u x (-v) = -(emitting normal), and an
        # area light emits along its local -z.
        x, y = u.normalized(), -v.normalized()
        rot = Matrix((x, y, x.cross(y))).transposed().to_4x4()
        obj = bpy.data.objects.new(data.name, data)
        obj.matrix_world = C @ Matrix.Translation(c + 0.5 * (u + v)) @ rot
        obj.visible_camera = True
        bpy.context.scene.collection.objects.link(obj)


def add_world(spec):
    env = spec.get("environment", {"type": "constant", "color": [0, 0, 0]})
    if env.get("type") != "constant":
        fail("environment: only constant")
    world = bpy.data.worlds.new("world")
    world.use_nodes = True
    bg = world.node_tree.nodes["Background"]
    bg.inputs["Color"].default_value = (*env.get("color", [0, 0, 0]), 1.0)
    bg.inputs["Strength"].default_value = 1.0
    bpy.context.scene.world = world


def add_camera(cam):
    check_keys("camera", cam, ("type", "position", "look_at", "up", "vfov"))
    if cam.get("type", "pinhole") != "pinhole":
        fail("camera: only pinhole")
    data = bpy.data.cameras.new("camera")
    data.type = "PERSP"
    data.sensor_fit = "VERTICAL"
    data.angle_y = math.radians(cam.get("vfov", 40))
    data.clip_start = 1e-3
    obj = bpy.data.objects.new("camera", data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.scene.camera = obj
    p, t, up = vec(cam["position"]), vec(cam["look_at"]), vec(cam.get("up", [0, 1, 0]))
    forward = (t - p).normalized()
    right = forward.cross(up).normalized()
    true_up = right.cross(forward)
    rot = Matrix((right, true_up, -forward)).transposed().to_4x4()  # columns: camera x, y, z
    obj.matrix_world = C @ Matrix.Translation(p) @ rot


def configure(args, spec):
    s = bpy.context.scene
    s.render.engine = "CYCLES"
    c = s.cycles
    c.device = "CPU"
    c.samples = args.spp
    c.use_adaptive_sampling = False
    c.use_denoising = False
    c.seed = args.seed
    c.use_animated_seed = False
    c.max_bounces = args.bounces
    c.diffuse_bounces = c.glossy_bounces = c.transmission_bounces = args.bounces
    c.volume_bounces = 0
    c.transparent_max_bounces = args.bounces
    c.sample_clamp_direct = 0.0
    c.sample_clamp_indirect = 0.0
    c.blur_glossy = 0.0
    c.caustics_reflective = c.caustics_refractive = True
    c.pixel_filter_type = "BOX"
    c.filter_width = 1.0
    s.render.resolution_x = s.render.resolution_y = args.size
    s.render.resolution_percentage = 100
    s.render.film_transparent = False
    s.render.use_persistent_data = True
    if args.threads > 0:
        s.render.threads_mode = "FIXED"
        s.render.threads = args.threads
    s.render.dither_intensity = 0.0
    s.display_settings.display_device = "sRGB"
    s.view_settings.view_transform = "Standard"
    s.view_settings.look = "None"
    s.view_settings.exposure = 0.0
    s.view_settings.gamma = 1.0
    img = s.render.image_settings
    img.file_format = "OPEN_EXR"
    img.color_mode = "RGB"
    img.color_depth = "32"
    img.exr_codec = "NONE"


def main():
    t0 = float(os.environ.get("KILN_BENCH_T0", T_SCRIPT))
    bench(event="start", startup_s=round(T_SCRIPT - t0, 4))
    args = parse_args()
    with open(args.scene) as f:
        spec = json.load(f)
    folder = os.path.dirname(os.path.abspath(args.scene))
    settings = spec.get("settings", {})
    if settings.get("width", 256) != settings.get("height", 256) and args.size is None:
        fail("only square images (give --size)")
    args.size = args.size or settings.get("width", 256)
    args.spp = args.spp or settings.get("spp", 16)
    args.bounces = settings.get("max_bounces", 12) if args.bounces is None else args.bounces
    t_setup = time.time()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    materials = {n: make_material(n, m, folder) for n, m in spec.get("materials", {}).items()}
    add_objects(spec, materials, folder)
    add_lights(spec)
    add_world(spec)
    add_camera(spec["camera"])
    configure(args, spec)
    bench(event="setup", setup_s=round(time.time() - t_setup, 4))
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, "cycles_%d_%dspp_s%d" % (args.size, args.spp, args.seed))
    times = []
    for i in range(args.renders):
        t = time.time()
        bpy.ops.render.render(write_still=False)
        times.append(time.time() - t)
        bench(event="frame", frame=i, time_s=round(times[-1], 4))
    t_end = time.time()
    result = bpy.data.images["Render Result"]
    result.save_render(stem + ".exr")
    s = bpy.context.scene
    s.render.image_settings.file_format = "PNG"
    s.render.image_settings.color_depth = "8"
    result.save_render(stem + ".png")
    img = bpy.data.images.load(stem + ".exr")
    px = np.array(img.pixels[:], dtype=np.float32).reshape(args.size, args.size, 4)[::-1, :, :3]
    np.save(stem + ".npy", np.ascontiguousarray(px))
    bench(event="done", size=args.size, spp=args.spp, bounces=args.bounces, threads=args.threads,
          seed=args.seed, render_s=round(sum(times), 4),
          median_s=round(sorted(times)[len(times) // 2], 4), total_s=round(t_end - t0, 4),
          npy=stem + ".npy")


main()
