# Blender 3.4 (Cycles, CPU): the per-material noise scene of docs/VALIDATION.md, kiln's
# noise.json in Blender's axes (kiln (x, y, z) = Blender (x, z, -y)). Arguments after --:
# OUT.exr SPP SEED.
import bpy, sys, math
from mathutils import Vector
out, spp, seed = sys.argv[sys.argv.index("--") + 1:]
bpy.ops.wm.read_factory_settings(use_empty=True)
sc = bpy.context.scene
sc.render.engine = 'CYCLES'
c = sc.cycles
c.device = 'CPU'; c.samples = int(spp); c.seed = int(seed)
c.use_denoising = False; c.use_adaptive_sampling = False
for k in ('max_bounces', 'diffuse_bounces', 'glossy_bounces', 'transmission_bounces', 'transparent_max_bounces'):
    setattr(c, k, 8)
c.sample_clamp_direct = 0; c.sample_clamp_indirect = 0
c.caustics_reflective = True; c.caustics_refractive = True; c.blur_glossy = 0
c.pixel_filter_type = 'BOX'; c.filter_width = 1.0
r = sc.render
r.resolution_x = r.resolution_y = 64; r.resolution_percentage = 100
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
mix.inputs[1].default_value = (0.1, 0.1, 0.1, 1); mix.inputs[2].default_value = (1.0, 1.1, 1.3, 1)
nt.links.new(mix.outputs[0], bg.inputs["Color"])
def mat(name, kind, **p):
    m = bpy.data.materials.new(name); m.use_nodes = True
    t = m.node_tree; o = t.nodes["Material Output"]; t.nodes.remove(t.nodes["Principled BSDF"])
    if kind == 'diffuse':
        b = t.nodes.new("ShaderNodeBsdfDiffuse"); b.inputs["Color"].default_value = p['color'] + (1,)
    elif kind == 'glass':
        b = t.nodes.new("ShaderNodeBsdfGlass"); b.distribution = 'SHARP'; b.inputs["IOR"].default_value = 1.5
        b.inputs["Color"].default_value = (1, 1, 1, 1)
    else:
        b = t.nodes.new("ShaderNodeBsdfPrincipled")
        b.inputs["Base Color"].default_value = p['color'] + (1,)
        b.inputs["Metallic"].default_value = p['metallic']; b.inputs["Roughness"].default_value = p['rough']
        b.inputs["Specular"].default_value = 0.5
    t.links.new(b.outputs[0], o.inputs["Surface"])
    return m
def sphere(center, radius, m):
    bpy.ops.mesh.primitive_uv_sphere_add(segments=192, ring_count=96, radius=radius, location=K(*center))
    bpy.ops.object.shade_smooth(); bpy.context.object.data.materials.append(m)
bpy.ops.mesh.primitive_plane_add(size=8, location=(0, 0, 0))
bpy.context.object.data.materials.append(mat("floor", 'diffuse', color=(0.6, 0.6, 0.6)))
sphere((-1.1, 0.5, 0), 0.5, mat("glass", 'glass'))
sphere((0, 0.5, 0.4), 0.5, mat("plastic", 'principled', color=(0.8, 0.2, 0.2), metallic=0, rough=0.3))
sphere((1.1, 0.5, 0), 0.5, mat("metal", 'principled', color=(0.9, 0.7, 0.4), metallic=1, rough=0.4))
cam = bpy.data.cameras.new("c"); cam.sensor_fit = 'VERTICAL'; cam.angle_y = math.radians(40)
co = bpy.data.objects.new("c", cam); sc.collection.objects.link(co); sc.camera = co
co.location = K(0, 1.2, -4)
co.rotation_euler = (K(0, 0.5, 0) - co.location).to_track_quat('-Z', 'Y').to_euler()
r.filepath = out
bpy.ops.render.render(write_still=True)
