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

The orbit is kiln's job orbit (engine/job_anim.c, a job's animation.camera.orbit), with the same
names, meanings and defaults, in kiln's coordinates (metres, +y up; converted to Blender's +z up
here). Frame f of the range start..end (step) puts the camera at

    a_f = start_angle + degrees_per_frame * (f - start)        (--degrees D: D / (end - start))
    position = center + radius * (cos a_f * e0 + sin a_f * e1) + height * axis
    look_at = center, up = axis, vfov = --vfov
    e0 = +z made perpendicular to axis (+x when axis is z), e1 = axis x e0

with defaults from the scene camera (the anchor's, which is examples/cornell's): center = its
look_at, axis +y, radius and height = the camera's distance from the axis and along it,
start_angle = the camera's angle (so frame `start` is the scene camera), vfov = its vfov. With
axis +y, e0 = +z and e1 = +x, and the anchor camera at (0.278, 0.273, -0.8) is at 180 degrees.
--frames N is kiln's "frames": N, the range 0..N-1. With neither --degrees nor
--degrees-per-frame, 0.2 degrees a frame: then 50 frames are the anchor's 50-frame animation
("camera position rotated by yaw = (f-1) * 0.2 deg about +y through orbit_center"; its frame f is
our frame f - 1). `--job FILE` reads all of this from a kiln job file (its "width", "height",
"spp", animation "frames" and camera "orbit"; not its scene: this is always the anchor's box);
options given on the command line win, and --frames N then renders the first N frames of the
job's range (with the job's degrees per frame).

Timing, machine-readable: one line per event on stdout, "@bench " followed by a JSON object:
    {"event": "start", "startup_s": S}       S: from the process launch (KILN_BENCH_T0, seconds
                                              since the epoch, set by run.sh; else the process's
                                              start time from /proc) to this script's first line
    {"event": "setup", "setup_s": S}          building the scene
    {"event": "orbit", ...}                   the resolved orbit, first and last camera position
    {"event": "frame", "frame": i, "job_frame": f, "time_s": S, "file": PATH}   one per frame
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
from mathutils import Matrix, Vector  # noqa: E402

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
    p.add_argument("--job", help="a kiln job file: frames, orbit, size and spp from it")
    p.add_argument("--frames", type=int, help="frame count: frames 0..N-1 (default 50)")
    p.add_argument("--size", type=int, help="width and height in pixels (default 256)")
    p.add_argument("--spp", type=int, help="samples per pixel (default 16)")
    p.add_argument("--bounces", type=int, default=4, help="Cycles' max bounces (0: direct only)")
    p.add_argument("--threads", type=int, default=0, help="render threads; 0: all CPUs")
    p.add_argument("--out", required=True, help="folder for frame_NNNN.png (made if missing)")
    p.add_argument("--anchor", default=DEFAULT_ANCHOR,
                   help="the anchor folder (scene.json, cornell.obj, cornell.mtl)")
    p.add_argument("--center", type=vec3, help="orbit centre, looked at: X,Y,Z")
    p.add_argument("--axis", type=vec3, help="orbit axis and camera up: X,Y,Z (default 0,1,0)")
    p.add_argument("--radius", type=float, help="distance from the axis")
    p.add_argument("--height", type=float, help="offset along the axis from center")
    p.add_argument("--start-angle", type=float, help="degrees at the first frame")
    p.add_argument("--degrees", type=float, help="degrees from the first frame to the last")
    p.add_argument("--degrees-per-frame", type=float, help="degrees a frame (default 0.2)")
    p.add_argument("--vfov", type=float, help="vertical field of view in degrees")
    p.add_argument("--no-persistent", action="store_true",
                   help="rebuild the scene for every frame (Blender's default)")
    a = p.parse_args(argv)
    if a.degrees is not None and a.degrees_per_frame is not None:
        p.error("give either --degrees or --degrees-per-frame, not both")
    return a


def resolve(a, camera):
    """Fills in what the command line left out: from --job, then from the scene camera, as
    kiln's job loader does. camera: the anchor's (kiln coordinates)."""
    job, orbit, frames = {}, {}, None
    if a.job:
        with open(a.job) as f:
            job = json.load(f)
        anim = job.get("animation", {})
        frames = anim.get("frames")
        orbit = anim.get("camera", {}).get("orbit", {})
        if not orbit:
            sys.exit("cornell_orbit.py: %s has no animation.camera.orbit" % a.job)
    def pick(name, key, default):
        v = getattr(a, name)
        return v if v is not None else orbit.get(key, default)
    # The job's range start..end (step), over which "degrees" is spread; --frames N renders its
    # first N frames (without a job: the range 0..N-1).
    a.start, a.step, range_end = 0, 1, None
    if isinstance(frames, dict):
        a.start, a.step = int(frames.get("start", 0)), int(frames.get("step", 1))
        range_end = int(frames["end"])
    elif frames is not None:
        range_end = int(frames) - 1
    if a.frames is None:
        a.frames = (range_end - a.start) // a.step + 1 if range_end is not None else 50
    a.end = a.start + (a.frames - 1) * a.step  # the last frame rendered
    if range_end is None:
        range_end = a.end
    if a.size is None:
        a.size = int(job.get("width", 256))
        if int(job.get("height", a.size)) != a.size:
            sys.exit("cornell_orbit.py: only square images (the job's width and height differ)")
    if a.spp is None:
        a.spp = int(job.get("spp", 16))
    if a.frames < 1 or a.size < 1 or a.spp < 1 or a.bounces < 0 or a.threads < 0:
        sys.exit("cornell_orbit.py: frames, size and spp must be >= 1, bounces and threads >= 0")

    a.axis = normalize(pick("axis", "axis", [0.0, 1.0, 0.0]))
    a.center = pick("center", "center", camera["look_at"])
    rel = [camera["position"][i] - a.center[i] for i in range(3)]
    z = [1.0, 0.0, 0.0] if abs(a.axis[2]) > 0.999 else [0.0, 0.0, 1.0]
    a.e0 = normalize([z[i] - dot(z, a.axis) * a.axis[i] for i in range(3)])
    a.e1 = cross(a.axis, a.e0)
    ha = dot(rel, a.axis)
    hor = [rel[i] - ha * a.axis[i] for i in range(3)]
    if "elevation" in orbit:  # on a sphere about center (the job only)
        r = orbit.get("radius", math.sqrt(dot(rel, rel)))
        el = math.radians(orbit["elevation"])
        a.radius = a.radius if a.radius is not None else r * math.cos(el)
        a.height = a.height if a.height is not None else r * math.sin(el)
    a.radius = pick("radius", "radius", math.sqrt(dot(hor, hor)))
    a.height = pick("height", "height", ha)
    a.start_angle = pick("start_angle", "start_angle",
                         math.degrees(math.atan2(dot(hor, a.e1), dot(hor, a.e0))))
    degrees = a.degrees if a.degrees is not None or a.degrees_per_frame is not None \
        else orbit.get("degrees")
    dpf = a.degrees_per_frame if a.degrees_per_frame is not None \
        else orbit.get("degrees_per_frame") if degrees is None else None
    if degrees is not None:
        dpf = degrees / (range_end - a.start) if range_end > a.start else 0.0
    a.degrees_per_frame = 0.2 if dpf is None else dpf
    a.vfov = pick("vfov", "vfov", camera["vfov_deg"])
    return a


def dot(u, v):
    return sum(x * y for x, y in zip(u, v))


def cross(u, v):
    return [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]]


def normalize(v):
    n = math.sqrt(dot(v, v))
    if n < 1e-12:
        sys.exit("cornell_orbit.py: a zero-length axis")
    return [x / n for x in v]


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


def orbit(a, f):
    """Frame f's camera position (kiln's coordinates); see the module comment."""
    t = math.radians(a.start_angle + a.degrees_per_frame * (f - a.start))
    return [a.center[i] + a.radius * (math.cos(t) * a.e0[i] + math.sin(t) * a.e1[i])
            + a.height * a.axis[i] for i in range(3)]


def place_camera(cam, position, look_at, up):
    """A camera at position looking at look_at with up as its up (all kiln coordinates)."""
    p, t, u = to_blender(position), to_blender(look_at), to_blender(up)
    forward = (t - p).normalized()
    right = forward.cross(u).normalized()
    if right.length < 0.5:
        sys.exit("cornell_orbit.py: the camera looks along its up axis")
    true_up = right.cross(forward)
    rot = Matrix((right, true_up, -forward)).transposed()  # columns: camera x, y, z
    cam.matrix_world = Matrix.Translation(p) @ rot.to_4x4()


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
    resolve(args, spec["camera"])
    t_setup = time.time()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    import_geometry(args.anchor, spec)
    add_light(spec)
    add_world(spec)
    cam = add_camera(spec, args.vfov)
    configure(args)
    os.makedirs(args.out, exist_ok=True)
    bench(event="setup", setup_s=round(time.time() - t_setup, 4))
    r6 = lambda v: [round(x, 6) for x in v]  # noqa: E731
    bench(event="orbit", frames=[args.start, args.end, args.step], center=r6(args.center),
          axis=r6(args.axis), radius=round(args.radius, 6), height=round(args.height, 6),
          start_angle=round(args.start_angle, 6), degrees_per_frame=args.degrees_per_frame,
          vfov=args.vfov, first=r6(orbit(args, args.start)), last=r6(orbit(args, args.end)))

    s = bpy.context.scene
    t_render = time.time()
    for i in range(args.frames):
        t = time.time()
        f = args.start + i * args.step
        place_camera(cam, orbit(args, f), args.center, args.axis)
        s.render.filepath = os.path.join(os.path.abspath(args.out), "frame_%04d.png" % i)
        bpy.ops.render.render(write_still=True)
        bench(event="frame", frame=i, job_frame=f, time_s=round(time.time() - t, 4), file=s.render.filepath)
    t_end = time.time()
    bench(event="done", frames=args.frames, width=args.size, height=args.size, spp=args.spp,
          bounces=args.bounces, threads=s.render.threads, persistent=not args.no_persistent,
          render_s=round(t_end - t_render, 4), script_s=round(t_end - T_SCRIPT, 4),
          startup_s=round(T_SCRIPT - t0, 4), total_s=round(t_end - t0, 4))


main()
