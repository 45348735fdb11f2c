# Per-object means and 16-spp noise of kiln against Blender on noise.json / noise_scene.py:
# kref_{color,id}.npy (kiln, 1024 spp), k16_{0..3}_color.npy (kiln, 16 spp, seeds 0-3; old/: the
# same before the stratified Fresnel choice), bl_ref.npy and bl16_{1..4}.npy (Blender, via
# exr_to_npy.py). RMSE of each 16-spp image against its own renderer's 1024-spp reference.
import numpy as np
ids=np.load('kref_id.npy'); names={0:'sky',1:'floor',2:'glass',3:'plastic',4:'metal'}
kref=np.load('kref_color.npy').astype(np.float64); bref=np.load('bl_ref.npy').astype(np.float64)
# interior masks: the pixel and its 4 neighbours share the id (edges mix objects)
def interior(i):
    m=ids==i; mm=m.copy()
    mm[1:]&=m[:-1]; mm[:-1]&=m[1:]; mm[:,1:]&=m[:,:-1]; mm[:,:-1]&=m[:,1:]
    return mm
print('means at 1024 spp (kiln / blender):')
for i in range(5):
    mk=interior(i); print(f'  {names[i]:8s} n={mk.sum():4d} kiln {kref[mk].mean(0).round(4)} blender {bref[mk].mean(0).round(4)} ratio {kref[mk].mean()/bref[mk].mean():.4f}')
def rmse(imgs, ref, m): return np.mean([np.sqrt(((im-ref)[m]**2).mean()) for im in imgs])
k16=[np.load(f'k16_{s}_color.npy').astype(np.float64) for s in range(4)]
b16=[np.load(f'bl16_{s}.npy').astype(np.float64) for s in range(1,5)]
print('RMSE at 16 spp against the own 1024-spp reference (mean of 4 seeds):')
for i in range(1,5):
    m=interior(i); rk=rmse(k16,kref,m); rb=rmse(b16,bref,m)
    print(f'  {names[i]:8s} kiln {rk:.5f} blender {rb:.5f} ratio {rk/rb:.2f}')
m=ids>=0; rk=rmse(k16,kref,m); rb=rmse(b16,bref,m); print(f'  whole    kiln {rk:.5f} blender {rb:.5f} ratio {rk/rb:.2f}')
ko=[np.load(f'old/k16_{s}_color.npy').astype(np.float64) for s in range(4)]
print('before the stratified Fresnel choice:')
for i in range(1,5):
    m=interior(i); rk=rmse(ko,kref,m); rb=rmse(b16,bref,m)
    print(f'  {names[i]:8s} kiln {rk:.5f} blender {rb:.5f} ratio {rk/rb:.2f}')
# the Fresnel-bright part of the glass: glass pixels brighter than the sky's mean
m=interior(2)&(kref.mean(-1)>np.percentile(kref.mean(-1)[interior(2)],75))
print(f'  glass brightest quarter: old {rmse(ko,kref,m):.5f} new {rmse(k16,kref,m):.5f} blender {rmse(b16,bref,m):.5f} n={m.sum()}')
