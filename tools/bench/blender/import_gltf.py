"""tools/bench/blender/import_gltf.py: Blender's glTF importer timed on one file, the Blender side
of kiln-bench-load --mesh (docs/PERFORMANCE.md, "Loading glTF").

    build/tools/bench/kiln-bench-load --sizes "" --mesh 1000000 --keep   # prints the .glb's path
    blender -b --factory-startup -P tools/bench/blender/import_gltf.py -- FILE.glb [--reps 3]

Each repetition starts from an empty scene (every object, mesh, material and image removed) and
times bpy.ops.import_scene.gltf(filepath=FILE) alone (wall and process CPU seconds), with the add-on's defaults (Blender 3.4's
io_scene_gltf2: shading from normals, no bone guessing). It prints one line per repetition and
an '@bench' JSON line with the median, the triangle count Blender built and its version.
"""
import json
import statistics
import sys
import time

import bpy
import numpy

# Blender 3.4's importer still says numpy.bool, which numpy 1.24 removed (Debian's numpy is newer
# than the Blender it packages): the alias it meant.
if "bool" not in vars(numpy):
    numpy.bool = bool


def clear():
    for o in list(bpy.data.objects):
        bpy.data.objects.remove(o, do_unlink=True)
    for coll in (bpy.data.meshes, bpy.data.materials, bpy.data.images, bpy.data.cameras,
                 bpy.data.lights):
        for b in list(coll):
            coll.remove(b)


def main():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    if not argv:
        sys.exit("usage: blender -b -P import_gltf.py -- FILE.glb [--reps N]")
    path, reps = argv[0], 3
    if "--reps" in argv:
        reps = int(argv[argv.index("--reps") + 1])
    times, cpus, tris = [], [], 0
    for r in range(reps):
        clear()
        t0, c0 = time.perf_counter(), time.process_time()
        bpy.ops.import_scene.gltf(filepath=path)
        t, c = time.perf_counter() - t0, time.process_time() - c0
        times.append(t)
        cpus.append(c)
        tris = sum(sum(len(p.vertices) - 2 for p in o.data.polygons)
                   for o in bpy.data.objects if o.type == "MESH")
        print("import %d: %.3f s (cpu %.3f s)" % (r, t, c))
    print("@bench " + json.dumps({"what": "blender_gltf_import", "file": path, "reps": reps,
                                  "median_s": statistics.median(times),
                                  "median_cpu_s": statistics.median(cpus), "triangles": tris,
                                  "blender": bpy.app.version_string}))


main()
