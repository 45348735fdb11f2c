"""tools/bench/blender/cornell_orbit.py: the Blender side of the render benchmark.

Builds the Cornell box of the anchor (../shared/anchors/cornell, beside the repository: its
scene.json says how the anchor images were rendered in Blender 3.4.1) and renders an orbit of
N frames with Cycles on the CPU, as kiln's orbit job does, writing 8-bit sRGB PNGs.

    blender -b -P cornell_orbit.py -- --frames 50 --size 256 --spp 16 --bounces 4 \
        --threads 2 --out DIR

Scene (all from the anchor's scene.json): cornell.obj imported with its MTL (each OBJ object and
material by name), every material then made a pure Lambertian (Diffuse BSDF, roughness 0) of the
anchor's albedo; the one-sided area light with the anchor's Blender energy and colour, visible to
the camera; black world; pinhole camera with the anchor's vertical field of view, square image.

Render settings (the anchor's "render" section): Cycles, CPU, --spp samples, no adaptive
sampling, no denoising, no clamping, seed 0 (not animated), max bounces = --bounces (also the
diffuse, glossy and transmission limits), box pixel filter 1 px wide, 'Standard' view transform,
exposure 0, gamma 1, no dither, 8-bit RGB PNG. Persistent data is on (the BVH is built once and
kept between frames, as kiln keeps its scene on the device); --no-persistent turns it off.

The orbit. Coordinates are the OBJ's and kiln's (metres, +y up), converted to Blender's (+z up)
here. Frame i (0-based) puts the camera at

    a_i = start_deg + i * deg_per_frame     (with --end-deg: deg_per_frame = (end - start) / (frames - 1))
    position = center + radius * (cos a_i * e0 + sin a_i * e1) + height * (0, 1, 0)
    look_at = center, up = +y, vfov = --vfov (default: the anchor camera's)
    e0 = (0, 0, -1), e1 = (-1, 0, 0)        (a right-handed turn about +y through center)

which is the form of kiln's camera orbit (engine/jobfile.h: position = center + radius (cos a e0 +
sin a e1) + height axis, a = start_deg + deg_per_frame * frame) with axis +y and the first
frame at the anchor camera. The defaults are the anchor's 50-frame animation ("camera position
rotated by yaw = (f-1) * 0.2 deg about the +y axis through orbit_center, x' = x cos + z sin,
z' = -x sin + z cos"; its frame f is our frame f - 1): center (0.278, 0.273, 0.2796), radius
1.0796 (the anchor camera at (0.278, 0.273, -0.8)), height 0, start 0 deg, 0.2 deg per frame.

Timing, machine-readable: one line per event on stdout, "@bench " followed by a JSON object:
    {"event": "start", "startup_s": S}       S: from the process launch (KILN_BENCH_T0, seconds
                                              since the epoch, set by run.sh; else the process's
                                              start time from /proc) to this script's first line
    {"event": "setup", "setup_s": S}          building the scene
    {"event": "frame", "frame": i, "time_s": S, "file": PATH}      one per frame, in order
    {"event": "done", "frames": N, "width": W, "height": H, "spp": P, "bounces": B,
     "threads": T, "render_s": S, "script_s": S, "startup_s": S, "total_s": S}
total_s is from the launch to the end of the last frame; the wall time of the whole process (also
Blender's exit) is what run.sh measures around it.
"""

import argparse
import json
import math
import os
import sys
import time

T_SCRIPT = time.time()

import bpy  # noqa: E402  (Blender's module: after the timestamp above)
from mathutils import Vector  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ANCHOR = os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "shared",
                                               "anchors", "cornell"))


def process_start_time():
    """The launch time: KILN_BENCH_T0 if set, else this process's start from /proc (10 ms)."""
    t0 = os.environ.get("KILN_BENCH_T0")
    if t0:
        return float(t0)
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # starttime, ticks since boot
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return T_SCRIPT - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return T_SCRIPT


def bench(**fields):
    print("@bench " + json.dumps(fields), flush=True)


def vec3(text):
    parts = [float(x) for x in text.split(",")]
    if len(parts) != 3:
        raise argparse.ArgumentTypeError("expected X,Y,Z")
    return parts


def parse_args():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    p = argparse.ArgumentParser(prog="blender -b -P cornell_orbit.py --",
                                description="Renders an orbit of the anchor's Cornell box.")
    p.add_argument("--frames", type=int, default=50)
    p.add_argument("--size", type=int, default=256, help="width and height in pixels")
    p.add_argument("--spp", type=int, default=16)
    p.add_argument("--bounces", type=int, default=4, help="Cycles' max bounces (0: direct only)")
    p.add_argument("--threads", type=int, default=0, help="render threads; 0: all CPUs")
    p.add_argument("--out", required=True, help="folder for frame_NNNN.png (made if missing)")
    p.add_argument("--anchor", default=DEFAULT_ANCHOR,
                   help="the anchor folder (scene.json, cornell.obj, cornell.mtl)")
    p.add_argument("--center", type=vec3, default=[0.278, 0.273, 0.2796],
                   help="orbit centre and look-at point X,Y,Z (kiln's coordinates, +y up)")
    p.add_argument("--radius", type=float, default=1.0796, help="distance in the x-z plane")
    p.add_argument("--height", type=float, default=0.0, help="camera y minus center y")
    p.add_argument("--start-deg", type=float, default=0.0, help="angle of the first frame")
    p.add_argument("--deg-per-frame", type=float, default=0.2, help="angle step per frame")
    p.add_argument("--end-deg", type=float, default=None,
                   help="angle of the last frame (instead of --deg-per-frame)")
    p.add_argument("--vfov", type=float, default=None,
                   help="vertical field of view in degrees; default the anchor camera's")
    p.add_argument("--no-persistent", action="store_true",
                   help="rebuild the scene for every frame (Blender's default)")
    a = p.parse_args(argv)
    if a.frames < 1 or a.size < 1 or a.spp < 1 or a.bounces < 0 or a.threads < 0:
        p.error("frames, size and spp must be >= 1, bounces and threads >= 0")
    if a.end_deg is not None:
        a.deg_per_frame = (a.end_deg - a.start_deg) / (a.frames - 1) if a.frames > 1 else 0.0
    return a


def to_blender(p):
    """kiln/OBJ coordinates (+y up) to Blender's (+z up), as the OBJ importer's default
    forward=-Z, up=Y maps them (the inverse of the export that wrote cornell.obj)."""
    return Vector((p[0], -p[2], p[1]))


def import_geometry(anchor, spec):
    """cornell.obj with its MTL; then every material a Lambertian of the anchor's albedo."""
    bpy.ops.wm.obj_import(filepath=os.path.join(anchor, spec["geometry"]["file"]),
                          forward_axis="NEGATIVE_Z", up_axis="Y")
    meshes = [o for o in bpy.context.scene.objects if o.type == "MESH"]
    expected = spec["geometry"]["objects"]
    names = sorted(o.name for o in meshes)
    if names != sorted(expected):
        sys.exit("cornell_orbit.py: imported objects %s, expected %s" % (names, sorted(expected)))
    top = max((o.matrix_world @ v.co).z for o in meshes for v in o.data.vertices)
    ceiling = spec["light"]["center"][1]
    if abs(top - ceiling) > 1e-4:
        sys.exit("cornell_orbit.py: the box's top is at Blender z=%g, expected %g: axes differ"
                 % (top, ceiling))
    for o in meshes:
        name = expected[o.name]
        mat = o.material_slots[0].material
        if mat is None or mat.name.split(".")[0] != name:
            sys.exit("cornell_orbit.py: %s has material %s, expected %s"
                     % (o.name, mat and mat.name, name))
        make_diffuse(mat, spec["materials"][name]["albedo_linear_rgb"])


def make_diffuse(mat, albedo):
    mat.use_nodes = True
    nodes = mat.node_tree.nodes
    nodes.clear()
    bsdf = nodes.new("ShaderNodeBsdfDiffuse")
    bsdf.inputs["Color"].default_value = (*albedo, 1.0)
    bsdf.inputs["Roughness"].default_value = 0.0  # Lambert, not Oren-Nayar
    out = nodes.new("ShaderNodeOutputMaterial")
    mat.node_tree.links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])


def add_light(spec):
    light = spec["light"]
    b = light["blender"]
    data = bpy.data.lights.new("light", type="AREA")
    data.shape = "RECTANGLE"
    data.size, data.size_y = light["size_x_z"]  # local x = world x, local y = world -z (kiln)
    data.energy = b["energy_W"]
    data.color = b["color"]
    obj = bpy.data.objects.new("light", data)
    obj.location = to_blender(light["center"])  # an area light faces its local -Z: down
    obj.visible_camera = light.get("visible_to_camera", True)
    bpy.context.scene.collection.objects.link(obj)


def add_world(spec):
    world = bpy.data.worlds.new("black")
    world.use_nodes = True
    bg = world.node_tree.nodes["Background"]
    bg.inputs["Color"].default_value = (*spec["background_radiance_linear_rgb"], 1.0)
    bg.inputs["Strength"].default_value = 1.0
    bpy.context.scene.world = world


def add_camera(spec, vfov_deg):
    data = bpy.data.cameras.new("camera")
    data.type = "PERSP"
    data.sensor_fit = "VERTICAL"
    data.angle_y = math.radians(vfov_deg)
    data.clip_start = 1e-3
    obj = bpy.data.objects.new("camera", data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.scene.camera = obj
    return obj


def orbit(args, i):
    """Frame i's camera position (kiln's coordinates); see the module comment."""
    a = math.radians(args.start_deg + i * args.deg_per_frame)
    c, r = args.center, args.radius
    return [c[0] - r * math.sin(a), c[1] + args.height, c[2] - r * math.cos(a)]


def place_camera(cam, position, look_at):
    p, t = to_blender(position), to_blender(look_at)
    cam.location = p
    cam.rotation_mode = "QUATERNION"
    cam.rotation_quaternion = (t - p).to_track_quat("-Z", "Y")  # camera up (local y) towards Blender +z = kiln +y


def configure(args):
    s = bpy.context.scene
    s.render.engine = "CYCLES"
    c = s.cycles
    c.device = "CPU"
    c.samples = args.spp
    c.use_adaptive_sampling = False
    c.use_denoising = False
    c.seed = 0
    c.use_animated_seed = False
    c.max_bounces = args.bounces
    c.diffuse_bounces = c.glossy_bounces = c.transmission_bounces = args.bounces
    c.volume_bounces = 0
    c.transparent_max_bounces = args.bounces
    c.sample_clamp_direct = 0.0
    c.sample_clamp_indirect = 0.0
    c.caustics_reflective = c.caustics_refractive = True
    c.pixel_filter_type = "BOX"
    c.filter_width = 1.0
    s.render.resolution_x = s.render.resolution_y = args.size
    s.render.resolution_percentage = 100
    s.render.pixel_aspect_x = s.render.pixel_aspect_y = 1.0
    s.render.film_transparent = False
    s.render.use_persistent_data = not args.no_persistent
    if args.threads > 0:
        s.render.threads_mode = "FIXED"
        s.render.threads = args.threads
    s.render.dither_intensity = 0.0
    s.display_settings.display_device = "sRGB"
    s.view_settings.view_transform = "Standard"
    s.view_settings.look = "None"
    s.view_settings.exposure = 0.0
    s.view_settings.gamma = 1.0
    s.sequencer_colorspace_settings.name = "sRGB"
    img = s.render.image_settings
    img.file_format = "PNG"
    img.color_mode = "RGB"
    img.color_depth = "8"


def main():
    t0 = process_start_time()
    bench(event="start", startup_s=round(T_SCRIPT - t0, 4))
    args = parse_args()
    with open(os.path.join(args.anchor, "scene.json")) as f:
        spec = json.load(f)
    t_setup = time.time()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    import_geometry(args.anchor, spec)
    add_light(spec)
    add_world(spec)
    cam = add_camera(spec, args.vfov if args.vfov is not None else spec["camera"]["vfov_deg"])
    configure(args)
    os.makedirs(args.out, exist_ok=True)
    bench(event="setup", setup_s=round(time.time() - t_setup, 4))

    s = bpy.context.scene
    t_render = time.time()
    for i in range(args.frames):
        t = time.time()
        place_camera(cam, orbit(args, i), args.center)
        s.render.filepath = os.path.join(os.path.abspath(args.out), "frame_%04d.png" % i)
        bpy.ops.render.render(write_still=True)
        bench(event="frame", frame=i, time_s=round(time.time() - t, 4), file=s.render.filepath)
    t_end = time.time()
    bench(event="done", frames=args.frames, width=args.size, height=args.size, spp=args.spp,
          bounces=args.bounces, threads=s.render.threads, persistent=not args.no_persistent,
          render_s=round(t_end - t_render, 4), script_s=round(t_end - T_SCRIPT, 4),
          startup_s=round(T_SCRIPT - t0, 4), total_s=round(t_end - t0, 4))


main()
