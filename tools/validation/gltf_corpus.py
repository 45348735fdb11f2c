"""tools/validation/gltf_corpus.py: the glTF corpus written by Blender, and its Cycles references.

    blender -b -P tools/validation/gltf_corpus.py -- [--export] [--render] [--only NAME,...]
        [--size 64] [--spp 1024] [--bounces 4] [--threads 2] [--out DIR] [--data DIR]

--export builds each scene in Blender 3.4 and writes it with Blender's glTF exporter to
DATA/NAME.glb (default DATA: tests/render/data/gltf beside this script's repository), and
basecolor_texture also as DATA/separate/basecolor_texture.gltf with its .bin and .png. --render
imports each DATA/NAME.glb into an empty scene (so that Cycles sees what the file says, not what
the exporter was given) and renders it with Cycles, writing OUT/NAME_SIZExSIZE_SPPspp.pfm (linear
float RGB, rows bottom to top as PFM stores them; the .exr beside it is Cycles' own output), an
8-bit sRGB preview (.png, 'Standard', no tone mapping), and the per-channel means to
DATA/cycles_means.json (merged with what is there: --only renders a few; renders at other than
1024 spp write DATA/cycles_means_SPPspp.json instead). Neither flag: both.

Every scene is a subject inside a light box: a closed cube of 6 inward-facing emissive quads, each
its own colour (the top white, the sides dim red, green, blue and grey, the bottom near black), so
that the light is defined by emission alone (glTF cannot carry a world colour; a Cycles world is
black here) and no BSDF other than the subject's matters much (the walls' base colour is black; a
black metallic-roughness surface still reflects the 4% of its dielectric specular, in both
renderers). Emission factors are at most 1, so no KHR_materials_emissive_strength is written.
The camera is a perspective camera inside the box, square, aimed at the subject, which fills most
of the image. One scene per feature, each on its own:

    basecolor_texture  a quad with a 64x64 sRGB base colour texture (roughness 0.5)
    metallic           a sphere, metallic 1, base colour (0.9, 0.6, 0.3), roughness 0.3
    roughness_map      a sphere, base colour (0.9, 0.5, 0.2), roughness and metallic from a
                       metallic-roughness texture (G: 8 bands of roughness 0.05 ... 0.95 along
                       v; B: 8 stripes along u, metal and dielectric in turn)
    normal_map         a quad with a 64x64 tangent-space normal map (sawtooth ridges leaning
                       0 ... 60 degrees up and towards the red wall) and tangents in the file
    emission           a sphere emitting (0.8, 0.5, 0.2) over a grey base colour
    emission_texture   a quad whose emission is a 64x64 sRGB texture (factor 1), base black
    vertex_colors      a subdivided quad with per-vertex linear colours (COLOR_0), base white
    alpha_cutout       a quad whose RGBA base colour texture has holes (alpha 0 or 1, MASK,
                       cutoff 0.5) in front of a diffuse panel
    instancing         one mesh (a cube) under six nodes, two of them children of a rotated,
                       scaled empty, with a diffuse floor panel

--noise builds and renders the noise set instead (in tools/validation/noise, not used by make
test): a UV sphere of one material in the same box, for the per-material noise table of
docs/VALIDATION.md: noise_diffuse (base 0.8, roughness 1), noise_rough_metal (metallic 1, base
0.9, roughness 0.5), noise_principled (base (0.8, 0.2, 0.2), roughness 0.3), noise_glass
(transmission 1, IOR 1.5, roughness 0: KHR_materials_transmission); and for kiln's side of the
glass, glass_sphere.glb (the sphere alone) and lightbox.glb (the box and camera alone).

Cycles settings (those of the Cornell anchor, ../shared/anchors/cornell): CPU, SPP samples, no
adaptive sampling, no denoising, no clamping, seed 0, max bounces BOUNCES (also the diffuse,
glossy, transmission and volume limits; transparent bounces 64, so that alpha holes are not
counted as bounces, as kiln does not count them), box pixel filter 1 px, Filter Glossy 0,
caustics on, 'Standard' view transform, look None, exposure 0, gamma 1. After the import, each
material whose glTF alphaMode is MASK (the importer marks it blend_method CLIP, which Cycles
ignores: it would blend) gets its alpha thresholded at the cutoff, as glTF defines MASK.

The mean of box-filtered pixels is the average radiance over the image plane, whatever the
resolution: a 32x32 render's mean estimates the same number as the 64x64 reference's.
"""

import argparse
import json
import math
import os
import sys

import bpy
import numpy as np
from mathutils import Vector

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
DEFAULT_DATA = os.path.join(REPO, "tests", "render", "data", "gltf")

# The light box (Blender coordinates, +z up): inward-facing emissive quads, linear emission.
BOX_MIN, BOX_MAX = (-3.0, -3.0, -1.5), (3.0, 3.0, 4.5)
WALLS = {  # name: (axis, side, emission)
    "top": (2, 1, (1.0, 0.95, 0.9)),
    "bottom": (2, 0, (0.04, 0.04, 0.04)),
    "left": (0, 0, (0.5, 0.12, 0.1)),
    "right": (0, 1, (0.12, 0.45, 0.12)),
    "back": (1, 1, (0.12, 0.15, 0.5)),
    "front": (1, 0, (0.3, 0.3, 0.3)),
}
CAMERA_POS, CAMERA_AT, CAMERA_VFOV = (0.0, -2.4, 0.35), (0.0, 0.0, 0.0), 38.0

SCENES = ["basecolor_texture", "metallic", "roughness_map", "normal_map", "emission",
          "emission_texture", "vertex_colors", "alpha_cutout", "instancing"]
# Also written as DATA/separate/NAME.gltf with its .bin and .png beside it.
SEPARATE = ["basecolor_texture"]
# The noise set (--noise): a sphere of one material in the same box; glass_sphere (the sphere
# alone) and lightbox (the box and camera alone) are what kiln's side of noise_glass includes, the
# glass being kiln's dielectric (kiln's glTF reader does not read KHR_materials_transmission).
NOISE_SCENES = ["noise_diffuse", "noise_rough_metal", "noise_principled", "noise_glass"]
NOISE_PARTS = ["glass_sphere", "lightbox"]


def parse_args():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    p = argparse.ArgumentParser(prog="blender -b -P gltf_corpus.py --")
    p.add_argument("--export", action="store_true", help="write DATA/NAME.glb")
    p.add_argument("--render", action="store_true", help="render DATA/NAME.glb with Cycles")
    p.add_argument("--only", help="comma-separated scene names (default: all)")
    p.add_argument("--noise", action="store_true",
                   help="the noise set instead, in NOISE_DATA")
    p.add_argument("--noise-data", default=os.path.join(HERE, "noise"),
                   help="the noise set's folder")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--spp", type=int, default=1024)
    p.add_argument("--bounces", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=DEFAULT_DATA, help="the corpus folder")
    p.add_argument("--out", default=os.path.join(REPO, "build", "gltf_cycles"),
                   help="folder for the Cycles PFMs")
    a = p.parse_args(argv)
    if not a.export and not a.render:
        a.export = a.render = True
    known = NOISE_SCENES if a.noise else SCENES
    a.names = a.only.split(",") if a.only else known
    for n in a.names:
        if n not in known:
            p.error("unknown scene %s (one of %s)" % (n, ", ".join(known)))
    if a.noise:
        a.data = a.noise_data
    return a


# ---- building -------------------------------------------------------------------------------

def empty_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = 64
    scene.render.resolution_percentage = 100
    return scene


def link(scene, obj):
    scene.collection.objects.link(obj)
    return obj


def principled(name, base=(0.8, 0.8, 0.8), metallic=0.0, roughness=0.5, emission=None):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*base, 1.0)
    bsdf.inputs["Metallic"].default_value = metallic
    bsdf.inputs["Roughness"].default_value = roughness
    if emission is not None:
        bsdf.inputs["Emission"].default_value = (*emission, 1.0)
        bsdf.inputs["Emission Strength"].default_value = 1.0
    return mat, bsdf


def image_node(mat, img, colorspace):
    img.colorspace_settings.name = colorspace
    node = mat.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = img
    node.interpolation = "Linear"
    return node


def make_image(name, pixels, tmpdir):
    """pixels: (h, w, 4) floats in [0, 1], row 0 at the top; stored as 8-bit values, as given
    (no colour conversion: the colour space is the texture's use)."""
    h, w = pixels.shape[:2]
    img = bpy.data.images.new(name, w, h, alpha=True, float_buffer=False)
    img.pixels.foreach_set(np.ascontiguousarray(pixels[::-1]).ravel().astype(np.float32))
    img.filepath_raw = os.path.join(tmpdir, name + ".png")
    img.file_format = "PNG"
    img.save()
    return img


def mesh_object(scene, name, verts, faces, mat, uvs=None):
    """A mesh of quads/triangles; uvs: per face corner, in face order."""
    me = bpy.data.meshes.new(name)
    me.from_pydata(verts, [], faces)
    if uvs is not None:
        layer = me.uv_layers.new(name="UVMap")
        for i, uv in enumerate(uvs):
            layer.data[i].uv = uv
    me.materials.append(mat)
    me.update()
    return link(scene, bpy.data.objects.new(name, me))


def quad_xz(scene, name, mat, half=0.85, y=0.0, zc=0.0, subdiv=1):
    """A square in the plane y = const facing -y (the camera), uv (0,0) at its bottom left."""
    verts, faces, uvs = [], [], []
    n = subdiv
    for j in range(n + 1):
        for i in range(n + 1):
            u, v = i / n, j / n
            verts.append((-half + 2 * half * u, y, zc - half + 2 * half * v))
    for j in range(n):
        for i in range(n):
            a = j * (n + 1) + i
            f = (a, a + 1, a + n + 2, a + n + 1)  # counter-clockwise seen from -y
            faces.append(f)
            for k in f:
                uvs.append(((k % (n + 1)) / n, (k // (n + 1)) / n))
    return mesh_object(scene, name, verts, faces, mat, uvs)


def light_box(scene):
    lo, hi = BOX_MIN, BOX_MAX
    for name, (axis, side, emission) in WALLS.items():
        mat, bsdf = principled("wall_" + name, base=(0, 0, 0), roughness=1.0, emission=emission)
        c = hi[axis] if side else lo[axis]
        a1, a2 = [k for k in range(3) if k != axis]
        corners = []
        for s1, s2 in ((0, 0), (1, 0), (1, 1), (0, 1)):
            p = [0.0, 0.0, 0.0]
            p[axis] = c
            p[a1] = hi[a1] if s1 else lo[a1]
            p[a2] = hi[a2] if s2 else lo[a2]
            corners.append(tuple(p))
        # Facing into the box: the normal (right-handed winding) points away from the wall.
        e1 = Vector(corners[1]) - Vector(corners[0])
        e2 = Vector(corners[2]) - Vector(corners[0])
        inward = -1.0 if side else 1.0
        if e1.cross(e2)[axis] * inward < 0:
            corners.reverse()
        mesh_object(scene, "wall_" + name, corners, [(0, 1, 2, 3)], mat)


def camera(scene):
    data = bpy.data.cameras.new("camera")
    data.sensor_fit = "VERTICAL"
    data.angle_y = math.radians(CAMERA_VFOV)
    data.clip_start = 0.01
    cam = link(scene, bpy.data.objects.new("camera", data))
    cam.location = CAMERA_POS
    d = Vector(CAMERA_AT) - Vector(CAMERA_POS)
    cam.rotation_euler = d.to_track_quat("-Z", "Y").to_euler()
    scene.camera = cam


def uv_sphere(scene, name, mat, radius=0.8, center=(0, 0, 0)):
    bpy.ops.mesh.primitive_uv_sphere_add(segments=48, ring_count=24, radius=radius,
                                         location=center)
    obj = bpy.context.active_object
    obj.name = name
    bpy.ops.object.shade_smooth()
    obj.data.materials.append(mat)
    return obj


def build(name, tmpdir):
    scene = empty_scene()
    if name != "glass_sphere":
        light_box(scene)
        camera(scene)
    getattr(sys.modules[__name__], "scene_" + name)(scene, tmpdir)
    return scene


def scene_basecolor_texture(scene, tmpdir):
    mat, bsdf = principled("textured", roughness=0.5)
    y, x = np.mgrid[0:64, 0:64] / 63.0
    px = np.zeros((64, 64, 4))
    check = ((np.mgrid[0:64, 0:64] // 8).sum(axis=0) % 2).astype(float)
    px[..., 0] = 0.15 + 0.8 * x
    px[..., 1] = 0.15 + 0.7 * y * check + 0.1 * (1 - check)
    px[..., 2] = 0.9 - 0.7 * x * y
    px[..., 3] = 1
    tex = image_node(mat, make_image("basecolor", px, tmpdir), "sRGB")
    mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    quad_xz(scene, "panel", mat)


def scene_metallic(scene, tmpdir):
    mat, _ = principled("gold", base=(0.9, 0.6, 0.3), metallic=1.0, roughness=0.3)
    uv_sphere(scene, "ball", mat)


def scene_roughness_map(scene, tmpdir):
    mat, bsdf = principled("banded_metal", base=(0.9, 0.5, 0.2), metallic=1.0, roughness=1.0)
    px = np.zeros((64, 64, 4))
    band = (np.arange(64) // 8)[:, None] * np.ones((1, 64))  # 8 bands along v
    px[..., 1] = 0.05 + 0.9 * band / 7.0
    px[..., 2] = (np.arange(64)[None, :] // 8 % 2) * np.ones((64, 1))  # metal, then dielectric
    px[..., 3] = 1.0
    tex = image_node(mat, make_image("metal_rough", px, tmpdir), "Non-Color")
    sep = mat.node_tree.nodes.new("ShaderNodeSeparateColor")
    mat.node_tree.links.new(tex.outputs["Color"], sep.inputs["Color"])
    mat.node_tree.links.new(sep.outputs["Green"], bsdf.inputs["Roughness"])
    mat.node_tree.links.new(sep.outputs["Blue"], bsdf.inputs["Metallic"])
    uv_sphere(scene, "ball", mat)


def scene_normal_map(scene, tmpdir):
    mat, bsdf = principled("ridged", base=(0.8, 0.8, 0.8), roughness=0.5)
    px = np.zeros((64, 64, 4))
    # Sawtooth ridges along v (8 periods): the normal leans towards -u (the red wall) and +v (the
    # white top) by 0 ... 40 degrees, so that the map moves both the brightness and the colour.
    t = ((np.arange(64)[::-1] % 8) / 7.0)[:, None] * np.ones((1, 64))
    ang = np.radians(40.0) * t
    n = np.stack([-np.sin(ang) * 0.8, np.sin(ang) * 0.6, np.cos(ang)], axis=-1)
    px[..., :3] = n * 0.5 + 0.5
    px[..., 3] = 1.0
    tex = image_node(mat, make_image("normal", px, tmpdir), "Non-Color")
    nm = mat.node_tree.nodes.new("ShaderNodeNormalMap")
    nm.space = "TANGENT"
    nm.uv_map = "UVMap"
    mat.node_tree.links.new(tex.outputs["Color"], nm.inputs["Color"])
    mat.node_tree.links.new(nm.outputs["Normal"], bsdf.inputs["Normal"])
    quad_xz(scene, "panel", mat)


def scene_emission(scene, tmpdir):
    mat, _ = principled("glow", base=(0.3, 0.3, 0.3), roughness=0.5, emission=(0.8, 0.5, 0.2))
    uv_sphere(scene, "ball", mat)


def scene_emission_texture(scene, tmpdir):
    mat, bsdf = principled("screen", base=(0, 0, 0), roughness=0.5, emission=(1, 1, 1))
    yy, xx = np.mgrid[0:64, 0:64]
    r = np.hypot(xx - 31.5, yy - 31.5) / 45.0
    px = np.zeros((64, 64, 4))
    px[..., 0] = np.clip(1.0 - r, 0, 1)
    px[..., 1] = 0.5 + 0.5 * np.cos(xx / 64.0 * 6 * math.pi)
    px[..., 2] = (yy // 16 % 2) * 0.8
    px[..., 3] = 1
    tex = image_node(mat, make_image("emission", px, tmpdir), "sRGB")
    mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Emission"])
    quad_xz(scene, "panel", mat)


def scene_vertex_colors(scene, tmpdir):
    mat, _ = principled("painted", base=(1, 1, 1), roughness=0.5)
    obj = quad_xz(scene, "panel", mat, subdiv=6)
    me = obj.data
    attr = me.color_attributes.new("Col", "FLOAT_COLOR", "POINT")
    for i, v in enumerate(me.vertices):
        u = (v.co.x + 0.85) / 1.7
        w = (v.co.z + 0.85) / 1.7
        attr.data[i].color = (0.1 + 0.85 * u, 0.1 + 0.8 * (1 - abs(2 * w - 1)),
                              0.9 - 0.8 * u * w, 1.0)
    me.color_attributes.active_color = attr
    me.color_attributes.render_color_index = 0


def scene_alpha_cutout(scene, tmpdir):
    back, _ = principled("backing", base=(0.7, 0.7, 0.7), roughness=0.5)
    quad_xz(scene, "backing", back, half=1.3, y=0.6)
    mat, bsdf = principled("stencil", roughness=0.5)
    yy, xx = np.mgrid[0:64, 0:64]
    px = np.zeros((64, 64, 4))
    px[..., 0] = 0.9
    px[..., 1] = 0.25 + 0.5 * yy / 63.0
    px[..., 2] = 0.1
    holes = (np.hypot((xx % 16) - 7.5, (yy % 16) - 7.5) < 5.0)
    px[..., 3] = np.where(holes, 0.0, 1.0)
    tex = image_node(mat, make_image("stencil", px, tmpdir), "sRGB")
    mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    mat.node_tree.links.new(tex.outputs["Alpha"], bsdf.inputs["Alpha"])
    mat.blend_method = "CLIP"
    mat.alpha_threshold = 0.5
    quad_xz(scene, "stencil", mat)


def scene_instancing(scene, tmpdir):
    floor, _ = principled("floor", base=(0.6, 0.6, 0.6), roughness=0.5)
    verts = [(-1.5, -1.5, -0.6), (1.5, -1.5, -0.6), (1.5, 1.5, -0.6), (-1.5, 1.5, -0.6)]
    mesh_object(scene, "floor", verts, [(0, 1, 2, 3)], floor)
    mat, _ = principled("brick", base=(0.8, 0.3, 0.2), roughness=0.5)
    bpy.ops.mesh.primitive_cube_add(size=0.4)
    proto = bpy.context.active_object
    proto.name = "cube_0"
    proto.data.materials.append(mat)
    proto.location = (-0.55, 0.0, -0.4)
    me = proto.data
    placements = [((0.0, 0.1, -0.4), (0, 0, 0.4), 1.0), ((0.55, 0.0, -0.4), (0, 0, 0.8), 1.0),
                  ((-0.3, 0.5, 0.2), (0.3, 0.2, 0.0), 0.8)]
    for k, (loc, rot, s) in enumerate(placements, start=1):
        o = link(scene, bpy.data.objects.new("cube_%d" % k, me))
        o.location, o.rotation_euler, o.scale = loc, rot, (s, s, s)
    parent = link(scene, bpy.data.objects.new("group", None))
    parent.location = (0.0, 0.4, 0.45)
    parent.rotation_euler = (0.0, 0.5, 0.3)
    parent.scale = (1.3, 1.3, 1.3)
    for k, loc in enumerate([(-0.3, 0, 0), (0.3, 0, 0)], start=4):
        o = link(scene, bpy.data.objects.new("cube_%d" % k, me))
        o.parent = parent
        o.location = loc
        o.scale = (0.6, 0.6, 0.6)


def noise_sphere(scene, **kw):
    mat, bsdf = principled("sphere", **kw)
    uv_sphere(scene, "ball", mat)
    return mat, bsdf


def scene_noise_diffuse(scene, tmpdir):
    noise_sphere(scene, base=(0.8, 0.8, 0.8), roughness=1.0)


def scene_noise_rough_metal(scene, tmpdir):
    noise_sphere(scene, base=(0.9, 0.9, 0.9), metallic=1.0, roughness=0.5)


def scene_noise_principled(scene, tmpdir):
    noise_sphere(scene, base=(0.8, 0.2, 0.2), roughness=0.3)


def scene_noise_glass(scene, tmpdir):
    _, bsdf = noise_sphere(scene, base=(1, 1, 1), roughness=0.0)
    bsdf.inputs["Transmission"].default_value = 1.0
    bsdf.inputs["IOR"].default_value = 1.5


def scene_glass_sphere(scene, tmpdir):
    scene_noise_glass(scene, tmpdir)


def scene_lightbox(scene, tmpdir):
    pass


def export(name, path, fmt="GLB"):
    bpy.ops.export_scene.gltf(filepath=path, export_format=fmt, export_cameras=True,
                              export_lights=False, export_tangents=(name == "normal_map"),
                              export_colors=True, export_yup=True, export_apply=False,
                              export_animations=False, export_extras=False)


# ---- rendering ------------------------------------------------------------------------------

def threshold_masks():
    """glTF MASK: opaque where alpha >= cutoff, a hole elsewhere. The importer leaves the alpha
    linked to the Principled BSDF (Cycles blends by it) and marks the material CLIP."""
    for mat in bpy.data.materials:
        if not mat.use_nodes or mat.blend_method != "CLIP":
            continue
        tree = mat.node_tree
        for bsdf in [n for n in tree.nodes if n.type == "BSDF_PRINCIPLED"]:
            sock = bsdf.inputs["Alpha"]
            cut = tree.nodes.new("ShaderNodeMath")
            cut.operation = "GREATER_THAN"
            cut.inputs[1].default_value = mat.alpha_threshold - 1e-6
            if sock.is_linked:
                tree.links.new(sock.links[0].from_socket, cut.inputs[0])
            else:
                cut.inputs[0].default_value = sock.default_value
            tree.links.new(cut.outputs["Value"], sock)


def render(a, name, glb):
    # Debian's Blender 3.4.1 importer asks for np.bool (gltf2_blender_mesh.py), which numpy 1.24
    # removed; it meant the builtin.
    if not hasattr(np, "bool"):
        np.bool = bool
    scene = empty_scene()
    bpy.ops.import_scene.gltf(filepath=glb)
    threshold_masks()
    cams = [o for o in scene.objects if o.type == "CAMERA"]
    if len(cams) != 1:
        sys.exit("gltf_corpus.py: %s has %d cameras" % (glb, len(cams)))
    scene.camera = cams[0]
    world = bpy.data.worlds.new("black")
    world.use_nodes = False
    world.color = (0, 0, 0)
    scene.world = world
    r = scene.render
    r.engine = "CYCLES"
    r.resolution_x = r.resolution_y = a.size
    r.resolution_percentage = 100
    r.threads_mode = "FIXED"
    r.threads = max(1, a.threads)
    r.film_transparent = False
    r.dither_intensity = 0
    c = scene.cycles
    c.device = "CPU"
    c.samples = a.spp
    c.use_adaptive_sampling = False
    c.use_denoising = False
    c.seed = a.seed
    c.use_animated_seed = False
    c.max_bounces = c.diffuse_bounces = c.glossy_bounces = a.bounces
    c.transmission_bounces = c.volume_bounces = a.bounces
    c.transparent_max_bounces = 64
    c.sample_clamp_direct = c.sample_clamp_indirect = 0
    c.blur_glossy = 0
    c.caustics_reflective = c.caustics_refractive = True
    c.pixel_filter_type = "BOX"
    c.filter_width = 1.0
    v = scene.view_settings
    v.view_transform, v.look, v.exposure, v.gamma = "Standard", "None", 0, 1
    scene.display_settings.display_device = "sRGB"
    os.makedirs(a.out, exist_ok=True)
    exr = os.path.join(a.out, "%s_%dx%d_%dspp.exr" % (name, a.size, a.size, a.spp))
    r.image_settings.file_format = "OPEN_EXR"
    r.image_settings.color_depth = "32"
    r.image_settings.exr_codec = "ZIP"
    r.filepath = exr
    bpy.ops.render.render(write_still=True)
    r.image_settings.file_format = "PNG"  # a preview: 8-bit sRGB, 'Standard', no tone mapping
    r.image_settings.color_depth = "8"
    bpy.data.images["Render Result"].save_render(exr[:-4] + ".png", scene=scene)
    img = bpy.data.images.load(exr)
    px = np.empty(a.size * a.size * img.channels, dtype=np.float32)
    img.pixels.foreach_get(px)
    rgb = px.reshape(a.size, a.size, img.channels)[..., :3]  # rows bottom to top
    pfm = exr[:-4] + ".pfm"
    with open(pfm, "wb") as f:
        f.write(b"PF\n%d %d\n-1.0\n" % (a.size, a.size))
        f.write(rgb.astype("<f4").tobytes())
    means = [float(rgb[..., k].astype(np.float64).mean()) for k in range(3)]
    print("@corpus %s" % json.dumps({"scene": name, "means": means, "pfm": pfm}), flush=True)
    return means


def main():
    a = parse_args()
    os.makedirs(a.data, exist_ok=True)
    tmpdir = os.path.join(a.out, "textures")
    os.makedirs(tmpdir, exist_ok=True)
    if a.export:
        for name in a.names + (NOISE_PARTS if a.noise else []):
            build(name, tmpdir)
            export(name, os.path.join(a.data, name + ".glb"))
            if name in SEPARATE:  # also as .gltf + .bin + .png, the form of most asset folders
                os.makedirs(os.path.join(a.data, "separate"), exist_ok=True)
                export(name, os.path.join(a.data, "separate", name + ".gltf"), "GLTF_SEPARATE")
    if a.render:
        # The references are the 1024-spp means; other spp go beside them, named by their spp.
        refs_path = os.path.join(a.data, "cycles_means.json" if a.spp == 1024
                                 else "cycles_means_%dspp.json" % a.spp)
        refs = {}
        if os.path.exists(refs_path):
            with open(refs_path) as f:
                refs = json.load(f)
        refs.setdefault("settings", {})
        refs["settings"] = {"blender": bpy.app.version_string, "size": a.size, "spp": a.spp,
                            "max_bounces": a.bounces, "seed": a.seed,
                            "pixel_filter": "box 1 px", "view_transform": "Standard"}
        refs.setdefault("means", {})
        for name in a.names:
            refs["means"][name] = render(a, name, os.path.join(a.data, name + ".glb"))
        tmp = refs_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(refs, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, refs_path)


main()
