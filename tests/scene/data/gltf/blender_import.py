"""Imports scene.gltf with Blender's glTF importer and prints where everything lands, in glTF's
axes (Blender is +Z up: (x, y, z) there is (x, -z, y) here), for blender_import.txt, which
test_gltf.c's expectations agree with (positions, camera, light directions and Blender watts).

    blender -b --factory-startup -P blender_import.py > blender_import.log
"""
import os

import bpy
import numpy
from mathutils import Vector

# Blender 3.4's importer still says numpy.bool, which numpy 1.24 removed.
if "bool" not in vars(numpy):
    numpy.bool = bool

for o in list(bpy.data.objects):
    bpy.data.objects.remove(o, do_unlink=True)
bpy.ops.import_scene.gltf(filepath=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                "scene.gltf"))


def yup(v):
    return "(%g, %g, %g)" % tuple(round(c, 4) + 0.0 for c in (v.x, v.z, -v.y))


for o in sorted(bpy.data.objects, key=lambda o: o.name):
    mw = o.matrix_world
    if o.type == "MESH":
        print("@", "mesh", o.name, " ".join(yup(mw @ v.co) for v in o.data.vertices))
    elif o.type in ("CAMERA", "LIGHT"):
        line = ["@", o.type.lower(), o.name, "position", yup(mw.translation),
                "direction", yup(mw.to_3x3() @ Vector((0, 0, -1)))]
        if o.type == "LIGHT":
            line += [o.data.type, "watts %.6g" % o.data.energy]
        print(*line)
