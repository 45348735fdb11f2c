// scene_access.glsl: what the scene has and where it is read from. Every scene binding is
// declared here, and only here are the four scene-memory modes (storage buffers, a
// workgroup-shared copy, the SCENE uniform buffer, texel fetches for the traversal) spelled out:
// the shading code reads the scene through g, node_at, leaf_prim_at, tri_at, sphere_at, mat_at
// and light_at, and calls scene_begin() first.
// Layouts: layout.h (bindings, globals) and engine/render/pack.c (each buffer's words).
// Costs of each mode on lavapipe, measured: docs/PERFORMANCE.md (Rendering).

// What the scene has, specialised per scene (engine/render/renderer.c sets these constants in
// the SPIR-V; bit k of pack.c's features is constant_id k). lavapipe runs both sides of every
// branch under a lane mask, so code for what a scene lacks would cost on every bounce and every
// leaf; with the constant false the compiler drops it. Where a constant is true the code is the
// general one.
layout(constant_id = PT_SC_SPHERES) const bool HAS_SPHERES = true;
layout(constant_id = PT_SC_CONDUCTORS) const bool HAS_CONDUCTORS = true;
layout(constant_id = PT_SC_DIELECTRICS) const bool HAS_DIELECTRICS = true;
layout(constant_id = PT_SC_TEXTURES) const bool HAS_TEXTURES = true;
layout(constant_id = PT_SC_ENV_MAP) const bool HAS_ENV_MAP = true;
layout(constant_id = PT_SC_NORMALS) const bool HAS_NORMALS = true;
layout(constant_id = PT_SC_UV) const bool HAS_UV = true;
layout(constant_id = PT_SC_ENV_LIT) const bool ENV_LIT = true;
layout(constant_id = PT_SC_PLIGHTS) const bool HAS_PLIGHTS = true;  // punctual lights (lights.glsl)
layout(constant_id = PT_SC_PRINCIPLED) const bool HAS_PRINCIPLED = true;
layout(constant_id = PT_SC_VATTR) const bool HAS_VATTR = true;
layout(constant_id = PT_SC_ALPHA) const bool HAS_ALPHA = true;
layout(constant_id = PT_SC_INSTANCES) const bool HAS_INSTANCES = true;  // shared meshes (INST)

// SCENE_SHARED: the nodes, leaf records, triangles, materials and lights are read from one block
// laid out as binding SCENE holds them. Without SCENE_UNIFORM they fit PT_SHARED_VEC4S and each
// workgroup copies them into shared memory first: lavapipe (Mesa 22) loads shared memory lane by
// lane too, but without the storage buffer's bounds check and its branch per component. The
// same bits either way.
layout(constant_id = PT_SC_SCENE_SHARED) const bool SCENE_SHARED = false;
// The shared copy's length: PT_SHARED_VEC4S where the kernel makes the copy, else 1 (GLSL has
// no zero-length array; 16 bytes is as good as none), so that the other modes do not reserve
// 16 KiB of shared memory a workgroup (on a GPU that would cap the workgroups resident at once).
layout(constant_id = PT_SC_SHARED_VEC4S) const uint SHARED_VEC4S = 1u;
shared uvec4 sscene[SHARED_VEC4S];  // nodes | leaf records (3 each) | tris (3) | materials (3) | lights
uint sh_tris, sh_mats, sh_lights;  // where each starts in the block (the leaf records: at nnodes)
// With SCENE_UNIFORM too (renderer.c sets it on CPU devices) they come from that uniform buffer
// itself, UNIFORM_VEC4S words (up to 64 KiB): llvmpipe (Mesa 22) loads a uniform buffer at
// per-lane addresses as one gather, without the per-lane loop and branches of a shared or storage
// load. GPUs keep the shared copy (divergent uniform-buffer reads are slow on them).
layout(constant_id = PT_SC_SCENE_UNIFORM) const bool SCENE_UNIFORM = false;
layout(constant_id = PT_SC_UNIFORM_VEC4S) const uint UNIFORM_VEC4S = 1u;
layout(std140, set = 0, binding = PT_BIND_SCENE) uniform SceneU { uvec4 u[UNIFORM_VEC4S]; } uscene;
// SCENE_TEXEL (renderer.c's choice on CPU devices; with SCENE_UNIFORM where the scene fits it):
// the nodes and leaf records, the placements (the traversal's loads), a hit's triangle and its
// normals and uv, spheres, materials, lights, the textures' texels and the environment map's
// distribution, through texel fetches of the same buffers bound as texel buffers (RGBA32UI, or
// R32UI words for the float arrays; VATTR, vertex colours and tangents, stays in storage: the
// engine's 32 bindings would be full):
// llvmpipe fetches those with gathers too, faster still than its uniform loads and far faster
// than its storage loads, lane by lane (docs/PERFORMANCE.md). The materials and lights stay in
// the uniform block where it holds them.
layout(constant_id = PT_SC_SCENE_TEXEL) const bool SCENE_TEXEL = false;
layout(set = 0, binding = PT_BIND_TNODES) uniform usamplerBuffer tnodes;
layout(set = 0, binding = PT_BIND_TPRIMS) uniform usamplerBuffer tprims;
layout(set = 0, binding = PT_BIND_TINST) uniform usamplerBuffer tinst;
layout(set = 0, binding = PT_BIND_TTRIS) uniform usamplerBuffer ttris;
layout(set = 0, binding = PT_BIND_TATTR) uniform usamplerBuffer tattr;
layout(set = 0, binding = PT_BIND_TTEXELS) uniform usamplerBuffer ttexels;  // R32UI words
layout(set = 0, binding = PT_BIND_TTEXINFO) uniform usamplerBuffer ttexinfo;
layout(set = 0, binding = PT_BIND_TENVDIST) uniform usamplerBuffer tenvd;  // R32UI words
layout(set = 0, binding = PT_BIND_TMATS) uniform usamplerBuffer tmats;
layout(set = 0, binding = PT_BIND_TLIGHTS) uniform usamplerBuffer tlights;
layout(set = 0, binding = PT_BIND_TSPHERES) uniform usamplerBuffer tspheres;
layout(set = 0, binding = PT_BIND_TMATX) uniform usamplerBuffer tmatx;
layout(set = 0, binding = PT_BIND_TPLIGHTS) uniform usamplerBuffer tplights;

struct Tri { vec4 v0; vec4 v1; vec4 v2; };          // v0.w: material, v1.w: object, v2.w: instance (uint bits)
struct Sphere { vec4 cr; uvec4 ids; };              // ids: material, object, instance, light pick pdf (float bits)
struct Material { vec4 albedo_type; vec4 emission_rough; vec4 ior; };
// ior.y: texture (uint bits, PT_NONE: none); ior.z (emissive): luminance relative to the
// brightest emitter's, the factor of an emitter's area in its pick weight.
// Lights: one uvec4 each, read in one load: primitive (triangle, or ntris + sphere), cdf, area,
// the previous light's cdf (0 for the first); floats as uint bits.

// One uvec4 a node, one load (lavapipe loads storage buffers lane by lane, so each load counts):
// the box on the scene's grid (g.grid_origin + q * g.grid_step, 16 bits a bound, rounded
// outwards): bmin.x | bmin.y, bmin.z | bmax.x, bmax.y | bmax.z (low half first); and a link:
// leaf: bit 31, count - 1 in bits 27-30, first primitive in 0-26; interior: its skip link.
layout(std430, set = 0, binding = PT_BIND_NODES) readonly buffer Nodes { uvec4 n[]; } nodes;
// The leaves' primitives in leaf order, 3 vec4 each, so that a leaf test reads no index first:
// triangle v0, prim | v1 - v0 | v2 - v0 (the edges, as float differences); sphere centre, prim | radius.
layout(std430, set = 0, binding = PT_BIND_PRIMS) readonly buffer Prims { vec4 r[]; } prims;
layout(std430, set = 0, binding = PT_BIND_TRIS) readonly buffer Tris { Tri t[]; } tris;
layout(std430, set = 0, binding = PT_BIND_SPHERES) readonly buffer Spheres { Sphere s[]; } spheres;
layout(std430, set = 0, binding = PT_BIND_MATS) readonly buffer Materials { Material m[]; } mats;
layout(std430, set = 0, binding = PT_BIND_LIGHTS) readonly buffer Lights { uvec4 l[]; } lights;
layout(std430, set = 0, binding = PT_BIND_GLOBALS) readonly buffer GlobalsBuf { pt_globals v; } globals;
layout(std430, set = 0, binding = PT_BIND_ATTR) readonly buffer Attr { float f[]; } attr;  // 16 per triangle
layout(std430, set = 0, binding = PT_BIND_TEXINFO) readonly buffer TexInfo { uvec4 t[]; } texinfo;  // offset, w, h
layout(std430, set = 0, binding = PT_BIND_TEXELS) readonly buffer Texels { float f[]; } texels;  // RGB, top row first
layout(std430, set = 0, binding = PT_BIND_ENVDIST) readonly buffer EnvDist { float f[]; } envd;
// 4 vec4 a punctual light: position, type (uint bits) | direction of travel, radius | radiant
// intensity (sun: irradiance), cos inner | cos outer, pick CDF, pick probability, previous CDF.
layout(std430, set = 0, binding = PT_BIND_PLIGHTS) readonly buffer PLights { vec4 v[]; } plights;
// Principled materials' own words (4 per material) and the triangles' vertex colours and tangents
// (6 per triangle): read only where HAS_PRINCIPLED / HAS_VATTR (layout.h).
layout(std430, set = 0, binding = PT_BIND_MATX) readonly buffer MatX { vec4 v[]; } matx;
layout(std430, set = 0, binding = PT_BIND_VATTR) readonly buffer VAttr { vec4 v[]; } vattr;
// Shared meshes' placements (layout.h, PT_BIND_INST): header, top-level nodes, placements. Only
// with HAS_INSTANCES, whose scenes the kernel reads from the storage buffers or texel fetches
// (the shared copy and the uniform block hold the flat geometry only).
layout(std430, set = 0, binding = PT_BIND_INST) readonly buffer Inst { uvec4 v[]; } inst;

// A private copy of the globals, read once per invocation: lavapipe (Mesa 22) loads every
// storage-buffer word lane by lane in a loop, uniform address or not, so each g.x read inside
// the loops cost 8 loads.
pt_globals g;

uvec4 sc(uint i) { return SCENE_UNIFORM ? uscene.u[i] : sscene[i]; }

Tri tri_at(uint i) {
  if (SCENE_TEXEL) {
    int a = int(3u * i);
    return Tri(uintBitsToFloat(texelFetch(ttris, a)), uintBitsToFloat(texelFetch(ttris, a + 1)),
               uintBitsToFloat(texelFetch(ttris, a + 2)));
  }
  if (!SCENE_SHARED) return tris.t[i];
  uint a = sh_tris + 3u * i;
  return Tri(uintBitsToFloat(sc(a)), uintBitsToFloat(sc(a + 1u)), uintBitsToFloat(sc(a + 2u)));
}
// Materials and lights: from the block where it holds them (scenes without placements), else
// texel fetches, else storage.
Material mat_at(uint i) {
  if (SCENE_SHARED) {
    uint a = sh_mats + 3u * i;
    return Material(uintBitsToFloat(sc(a)), uintBitsToFloat(sc(a + 1u)),
                    uintBitsToFloat(sc(a + 2u)));
  }
  if (!SCENE_TEXEL) return mats.m[i];
  int a = int(3u * i);
  return Material(uintBitsToFloat(texelFetch(tmats, a)), uintBitsToFloat(texelFetch(tmats, a + 1)),
                  uintBitsToFloat(texelFetch(tmats, a + 2)));
}
uvec4 light_at(uint i) {
  return SCENE_SHARED ? sc(sh_lights + i) : SCENE_TEXEL ? texelFetch(tlights, int(i)) : lights.l[i];
}
Sphere sphere_at(uint i) {
  if (!SCENE_TEXEL) return spheres.s[i];
  int a = int(2u * i);
  return Sphere(uintBitsToFloat(texelFetch(tspheres, a)), texelFetch(tspheres, a + 1));
}
// MATX's vec4 i (principled materials' own words), PLIGHTS' vec4 i (punctual lights).
vec4 matx_at(uint i) { return SCENE_TEXEL ? uintBitsToFloat(texelFetch(tmatx, int(i))) : matx.v[i]; }
vec4 plights_at(uint i) {
  return SCENE_TEXEL ? uintBitsToFloat(texelFetch(tplights, int(i))) : plights.v[i];
}
uvec4 node_at(uint i) {
  return SCENE_TEXEL ? texelFetch(tnodes, int(i)) : SCENE_SHARED ? sc(i) : nodes.n[i];
}
// Triangle tri's ATTR words 4j to 4j + 3 (j < 4).
vec4 attr_at(uint tri, uint j) {
  if (SCENE_TEXEL) return uintBitsToFloat(texelFetch(tattr, int(4u * tri + j)));
  uint a = 16u * tri + 4u * j;
  return vec4(attr.f[a], attr.f[a + 1u], attr.f[a + 2u], attr.f[a + 3u]);
}
// TEXELS' floats i to i + 2 (a texel's RGB), TEXINFO's entry for texture t, ENVDIST's float i.
vec3 texels_at(uint i) {
  if (!SCENE_TEXEL) return vec3(texels.f[i], texels.f[i + 1u], texels.f[i + 2u]);
  int a = int(i);
  return uintBitsToFloat(uvec3(texelFetch(ttexels, a).x, texelFetch(ttexels, a + 1).x,
                               texelFetch(ttexels, a + 2).x));
}
uvec4 texinfo_at(uint t) { return SCENE_TEXEL ? texelFetch(ttexinfo, int(t)) : texinfo.t[t]; }
float envd_at(uint i) {
  return SCENE_TEXEL ? uintBitsToFloat(texelFetch(tenvd, int(i)).x) : envd.f[i];
}
// INST's uvec4 i: the top level's traversal and a hit's placement read it as the nodes are read.
uvec4 inst_at(uint i) { return SCENE_TEXEL ? texelFetch(tinst, int(i)) : inst.v[i]; }
// Leaf record k (PRIMS entry k): its three vec4s.
void leaf_prim_at(uint k, out vec4 r0, out vec4 r1, out vec4 r2) {
  if (SCENE_TEXEL) {
    r0 = uintBitsToFloat(texelFetch(tprims, int(3u * k)));
    r1 = uintBitsToFloat(texelFetch(tprims, int(3u * k + 1u)));
    r2 = uintBitsToFloat(texelFetch(tprims, int(3u * k + 2u)));
  } else if (SCENE_SHARED) {
    r0 = uintBitsToFloat(sc(g.nnodes + 3u * k));
    r1 = uintBitsToFloat(sc(g.nnodes + 3u * k + 1u));
    r2 = uintBitsToFloat(sc(g.nnodes + 3u * k + 2u));
  } else {
    r0 = prims.r[3u * k];
    r1 = prims.r[3u * k + 1u];
    r2 = prims.r[3u * k + 2u];
  }
}

// Reads the globals, and with SCENE_SHARED makes the workgroup's copy of the scene. Every
// invocation calls it first, before any returns: its barrier is the workgroup's.
void scene_begin() {
  g = globals.v;
  if (!SCENE_SHARED) return;
  uint nn = g.nnodes;
  sh_tris = nn + 3u * g.nleaf_prims;
  sh_mats = sh_tris + 3u * g.ntris;
  sh_lights = sh_mats + 3u * g.nmaterials;
  uint total = sh_lights + g.nlights;
  for (uint i = gl_LocalInvocationIndex; !SCENE_UNIFORM && i < total; i += gl_WorkGroupSize.x * gl_WorkGroupSize.y) {
    uvec4 v;
    if (i < nn) v = nodes.n[i];
    else if (i < sh_tris) v = floatBitsToUint(prims.r[i - nn]);
    else if (i < sh_mats) {
      uint j = i - sh_tris;
      Tri T = tris.t[j / 3u];
      v = floatBitsToUint(j % 3u == 0u ? T.v0 : j % 3u == 1u ? T.v1 : T.v2);
    } else if (i < sh_lights) {
      uint j = i - sh_mats;
      Material M = mats.m[j / 3u];
      v = floatBitsToUint(j % 3u == 0u ? M.albedo_type : j % 3u == 1u ? M.emission_rough : M.ior);
    } else {
      v = lights.l[i - sh_lights];
    }
    sscene[i] = v;
  }
  if (!SCENE_UNIFORM) {
    memoryBarrierShared();
    barrier();
  }
}
