# plights.py: the Cycles side of kiln's punctual-light units (tests/render/test_plights.c,
# matches_cycles; docs/SCENE.md, "Punctual lights").
#
#   blender -b --factory-startup -P tools/bench/blender/plights.py -- [--out DIR] [--spp N]
#
# A 4 x 4 plane (Diffuse BSDF, colour 0.8, roughness 0) at z = 0 seen straight down from 3 m with
# a 30-degree vertical field of view, 64x64, a black world, the Standard view transform, 2 threads;
# one lamp at a time. Prints, per lamp, a line `@plights {"lamp": ..., "all": mean, "centre":
# mean of the central 4x4 pixels}` (linear, from a 32-bit EXR). Blender's Z is kiln's Y. The
# `visible` case puts a sphere lamp (radius 0.5) in front of the camera with nothing else: its
# means are 0 when Cycles hides lamps from camera rays.
import json
import math
import os
import sys
import tempfile

import bpy

args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
out = args[args.index("--out") + 1] if "--out" in args else tempfile.mkdtemp()
spp = int(args[args.index("--spp") + 1]) if "--spp" in args else 64
W = 64

LAMPS = {
    "point": ("POINT", dict(energy=100.0, shadow_soft_size=0.0), (0, 0, 1), (0, 0, 0)),
    "point r 0.25": ("POINT", dict(energy=100.0, shadow_soft_size=0.25), (0, 0, 1), (0, 0, 0)),
    "spot 120": ("SPOT", dict(energy=100.0, shadow_soft_size=0.0, spot_size=math.radians(120),
                              spot_blend=0.0), (0, 0, 1), (0, 0, 0)),
    "sun": ("SUN", dict(energy=3.0, angle=0.0), (0, 0, 0), (math.radians(30), 0, 0)),
    "sun angle 20": ("SUN", dict(energy=3.0, angle=math.radians(20)), (0, 0, 0),
                     (math.radians(30), 0, 0)),
    "visible": ("POINT", dict(energy=100.0, shadow_soft_size=0.5), (0, 0, 0), (0, 0, 0)),
}


def scene(lamp):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    sc = bpy.context.scene
    sc.render.engine = "CYCLES"
    sc.cycles.device = "CPU"
    sc.cycles.samples = spp
    sc.cycles.use_denoising = False
    sc.cycles.max_bounces = 4
    sc.render.resolution_x = sc.render.resolution_y = W
    sc.render.resolution_percentage = 100
    sc.view_settings.view_transform = "Standard"
    sc.view_settings.look = "None"
    sc.render.image_settings.file_format = "OPEN_EXR"
    sc.render.image_settings.color_depth = "32"
    sc.render.threads_mode = "FIXED"
    sc.render.threads = 2
    sc.world = bpy.data.worlds.new("black")
    sc.world.use_nodes = True
    sc.world.node_tree.nodes["Background"].inputs[1].default_value = 0.0
    if lamp != "visible":
        bpy.ops.mesh.primitive_plane_add(size=4, location=(0, 0, 0))
        mat = bpy.data.materials.new("plane")
        mat.use_nodes = True
        nt = mat.node_tree
        for n in list(nt.nodes):
            nt.nodes.remove(n)
        o, d = nt.nodes.new("ShaderNodeOutputMaterial"), nt.nodes.new("ShaderNodeBsdfDiffuse")
        d.inputs[0].default_value = (0.8, 0.8, 0.8, 1)
        d.inputs[1].default_value = 0.0
        nt.links.new(d.outputs[0], o.inputs[0])
        bpy.context.active_object.data.materials.append(mat)
    cam = bpy.data.cameras.new("camera")
    cam.sensor_fit = "VERTICAL"
    cam.angle_y = math.radians(30)
    co = bpy.data.objects.new("camera", cam)
    sc.collection.objects.link(co)
    sc.camera = co
    co.location = (0, 0, 3)  # looks down -z
    kind, props, loc, rot = LAMPS[lamp]
    light = bpy.data.lights.new("lamp", kind)
    for k, v in props.items():
        setattr(light, k, v)
    ob = bpy.data.objects.new("lamp", light)
    sc.collection.objects.link(ob)
    ob.location, ob.rotation_euler = loc, rot
    return sc


def means(path):
    px = list(bpy.data.images.load(path).pixels)  # RGBA, bottom row first

    def block(lo, hi):
        s = sum(px[4 * (y * W + x)] for y in range(lo, hi) for x in range(lo, hi))
        return s / ((hi - lo) * (hi - lo))

    return block(0, W), block(W // 2 - 2, W // 2 + 2)


for lamp in LAMPS:
    sc = scene(lamp)
    sc.render.filepath = os.path.join(out, lamp.replace(" ", "_") + ".exr")
    bpy.ops.render.render(write_still=True)
    a, c = means(sc.render.filepath)
    print("@plights " + json.dumps({"lamp": lamp, "spp": spp, "all": a, "centre": c}))
