# Means of kiln's and Blender's furnace spheres over the same pixels (k_mN_color.npy from kiln's
# npy output, bl_mN.npy from exr_to_npy.py), N the cases of docs/VALIDATION.md.
import numpy as np, math
W=64
th=math.tan(math.radians(20))
# pixel centre rays; camera at z=-4.5 looking +z (kiln); a pixel is inside when the ray's distance
# to the centre is < 0.97 (margin) -- both images are symmetric, so mirroring does not matter
ys,xs=np.mgrid[0:W,0:W]
dx=(2*(xs+0.5)/W-1)*th; dy=(1-2*(ys+0.5)/W)*th
d=np.stack([dx,dy,np.ones_like(dx)],-1); d/=np.linalg.norm(d,axis=-1,keepdims=True)
o=np.array([0,0,-4.5])
# distance from origin to the ray
t=-(d@o); closest=o+t[...,None]*d; dist=np.linalg.norm(closest,axis=-1)
for m in (0,1,2,3):
    k=np.load(f'k_m{m}_color.npy').astype(np.float64); b=np.load(f'bl_m{m}.npy').astype(np.float64)
    for name,lim in (('all sphere',0.97),('centre (r<0.7)',0.7)):
        mask=dist<lim
        print(f'metallic {m} {name}: kiln {k[mask].mean(0).round(5)} blender {b[mask].mean(0).round(5)} ratio {(k[mask].mean()/b[mask].mean()):.4f} n={mask.sum()}')
    ring=(dist>0.85)&(dist<0.97)
    print(f'metallic {m} rim 0.85-0.97: kiln {k[ring].mean():.5f} blender {b[ring].mean():.5f} ratio {k[ring].mean()/b[ring].mean():.4f}')
    print(' background kiln', k[dist>1.05].mean().round(5), 'blender', b[dist>1.05].mean().round(5))
