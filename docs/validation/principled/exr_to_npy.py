# Blender's Python: each EXR named after -- to a .npy beside it (float32 RGB, top row first).
import bpy, sys, numpy as np
argv = sys.argv[sys.argv.index("--")+1:]
for p in argv:
    im = bpy.data.images.load(p)
    w, h = im.size
    a = np.array(im.pixels[:], dtype=np.float32).reshape(h, w, 4)[::-1, :, :3]  # top row first
    np.save(p.replace('.exr', '.npy'), a)
