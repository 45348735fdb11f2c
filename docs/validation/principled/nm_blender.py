# Blender 3.4 (Cycles, CPU): two quads of Principled BSDF with a constant tangent-space normal map
# (n.png through a Normal Map node, UV tangents), under kiln's gradient sky; kiln's nm.json in
# Blender's axes. Arguments after --: OUT.exr SPP.
import bpy, sys, math, os
from mathutils import Vector
out, spp = sys.argv[sys.argv.index("--") + 1:]
here = os.path.dirname(os.path.abspath(__file__))
bpy.ops.wm.read_factory_settings(use_empty=True)
sc = bpy.context.scene
sc.render.engine = 'CYCLES'
c = sc.cycles
c.device = 'CPU'; c.samples = int(spp); c.use_denoising = False; c.use_adaptive_sampling = False
for k in ('max_bounces', 'diffuse_bounces', 'glossy_bounces', 'transmission_bounces'):
    setattr(c, k, 8)
c.sample_clamp_direct = 0; c.sample_clamp_indirect = 0; c.blur_glossy = 0
c.pixel_filter_type = 'BOX'; c.filter_width = 1.0
r = sc.render
r.resolution_x = 96; r.resolution_y = 48; r.resolution_percentage = 100
r.threads_mode = 'FIXED'; r.threads = 2
sc.view_settings.view_transform = 'Standard'
r.image_settings.file_format = 'OPEN_EXR'; r.image_settings.color_depth = '32'
def K(x, y, z): return Vector((x, -z, y))
w = bpy.data.worlds.new("w"); sc.world = w; w.use_nodes = True
nt = w.node_tree; bg = nt.nodes["Background"]
tc = nt.nodes.new("ShaderNodeTexCoord"); sep = nt.nodes.new("ShaderNodeSeparateXYZ")
mr = nt.nodes.new("ShaderNodeMapRange"); mix = nt.nodes.new("ShaderNodeMixRGB")
nt.links.new(tc.outputs["Generated"], sep.inputs[0]); nt.links.new(sep.outputs["Z"], mr.inputs["Value"])
mr.inputs["From Min"].default_value = -1; mr.inputs["From Max"].default_value = 1
nt.links.new(mr.outputs["Result"], mix.inputs["Fac"])
mix.inputs[1].default_value = (0.0, 0.0, 0.0, 1); mix.inputs[2].default_value = (1.0, 1.0, 1.0, 1)
nt.links.new(mix.outputs[0], bg.inputs["Color"])
m = bpy.data.materials.new("p"); m.use_nodes = True
t = m.node_tree; b = t.nodes["Principled BSDF"]
b.inputs["Base Color"].default_value = (0.8, 0.8, 0.8, 1); b.inputs["Roughness"].default_value = 0.5
b.inputs["Specular"].default_value = 0.5
img = t.nodes.new("ShaderNodeTexImage"); img.image = bpy.data.images.load(os.path.join(here, "n.png"))
img.image.colorspace_settings.name = 'Non-Color'; img.interpolation = 'Closest'
nm = t.nodes.new("ShaderNodeNormalMap"); nm.space = 'TANGENT'; nm.uv_map = "UVMap"
t.links.new(img.outputs["Color"], nm.inputs["Color"]); t.links.new(nm.outputs["Normal"], b.inputs["Normal"])
def quad(corner, u, v):
    P = [Vector(corner), Vector(corner) + Vector(u), Vector(corner) + Vector(u) + Vector(v), Vector(corner) + Vector(v)]
    me = bpy.data.meshes.new("q"); me.from_pydata([K(*p) for p in P], [], [(0, 1, 2, 3)])
    uvl = me.uv_layers.new(name="UVMap")
    for i, uv in enumerate([(0, 0), (1, 0), (1, 1), (0, 1)]): uvl.data[i].uv = uv
    ob = bpy.data.objects.new("q", me); sc.collection.objects.link(ob); me.materials.append(m)
quad((-1.3, -0.6, 0), (0, 1.2, 0), (1.2, 0, 0))
quad((1.3, -0.6, 0), (-1.2, 0, 0), (0, 1.2, 0))
cam = bpy.data.cameras.new("c"); cam.sensor_fit = 'VERTICAL'; cam.angle_y = math.radians(25)
co = bpy.data.objects.new("c", cam); sc.collection.objects.link(co); sc.camera = co
co.location = K(0, 0, -4)
co.rotation_euler = (K(0, 0, 0) - co.location).to_track_quat('-Z', 'Y').to_euler()
r.filepath = out
bpy.ops.render.render(write_still=True)
