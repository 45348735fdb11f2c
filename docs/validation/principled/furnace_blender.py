# Blender 3.4 (Cycles, CPU): a unit sphere of Principled BSDF in a white world of radiance 1,
# 64x64, box filter 1 px, the camera of kiln's furnace scene (docs/VALIDATION.md, "The principled
# material against Cycles"). Arguments after --: METALLIC OUT.exr SPP [ROUGHNESS [R,G,B]].
import bpy, sys, math
argv = sys.argv[sys.argv.index("--")+1:]
metal = float(argv[0]); out = argv[1]; spp = int(argv[2]); rough = float(argv[3]) if len(argv) > 3 else 0.5; base = tuple(float(x) for x in argv[4].split(",")) if len(argv) > 4 else (1, 1, 1)
bpy.ops.wm.read_factory_settings(use_empty=True)
sc = bpy.context.scene
sc.render.engine = 'CYCLES'
sc.cycles.device = 'CPU'
sc.cycles.samples = spp
sc.cycles.use_denoising = False
sc.cycles.use_adaptive_sampling = False
sc.cycles.max_bounces = 32; sc.cycles.diffuse_bounces = 32; sc.cycles.glossy_bounces = 32
sc.cycles.transparent_max_bounces = 32; sc.cycles.transmission_bounces = 32
sc.cycles.sample_clamp_direct = 0; sc.cycles.sample_clamp_indirect = 0
sc.cycles.caustics_reflective = True; sc.cycles.caustics_refractive = True
sc.cycles.blur_glossy = 0
sc.cycles.pixel_filter_type = 'BOX'; sc.cycles.filter_width = 1.0
sc.render.resolution_x = 64; sc.render.resolution_y = 64; sc.render.resolution_percentage = 100
sc.render.threads_mode = 'FIXED'; sc.render.threads = 2
sc.view_settings.view_transform = 'Standard'
sc.render.image_settings.file_format = 'OPEN_EXR'; sc.render.image_settings.color_depth = '32'
w = bpy.data.worlds.new("w"); sc.world = w; w.use_nodes = True
w.node_tree.nodes["Background"].inputs[0].default_value = (1,1,1,1)
w.node_tree.nodes["Background"].inputs[1].default_value = 1.0
bpy.ops.mesh.primitive_uv_sphere_add(segments=256, ring_count=128, radius=1)
ob = bpy.context.object
bpy.ops.object.shade_smooth()
m = bpy.data.materials.new("p"); m.use_nodes = True
b = m.node_tree.nodes["Principled BSDF"]
b.inputs["Base Color"].default_value = base + (1,)
b.inputs["Metallic"].default_value = metal
b.inputs["Roughness"].default_value = rough
b.inputs["Specular"].default_value = 0.5
ob.data.materials.append(m)
cam = bpy.data.cameras.new("c"); cam.sensor_fit = 'VERTICAL'; cam.angle_y = math.radians(40)
co = bpy.data.objects.new("c", cam); sc.collection.objects.link(co); sc.camera = co
co.location = (0, -4.5, 0); co.rotation_euler = (math.radians(90), 0, 0)
sc.render.filepath = out
bpy.ops.render.render(write_still=True)
