#version 450
// pathtrace: kiln's unidirectional path tracer, one dispatch = one tile x a few samples.
// Materials: diffuse (cosine sampling), GGX conductor (Heitz 2018 VNDF sampling), smooth
// dielectric (Fresnel reflect/refract; radiance is not scaled by 1/eta^2 on refraction, as in
// Cycles' sharp glass), emissive (front face only). Albedos may be textured (bilinear, repeat).
// Shading uses the interpolated vertex normals where the mesh has them; ray offsets and the
// side tests use the geometric normal. Next-event estimation picks the environment (probability
// in Globals) or an emitter by power (area times luminance): a triangle sampled uniformly on its
// area, a sphere uniformly in the cone it subtends; the environment by the map's luminance distribution (marginal row CDF,
// conditional column CDFs, Pharr et al., PBRT 3rd ed. 13.6.7 / 14.2.4) or uniformly on the sphere
// (constant, gradient). Both are combined with BSDF sampling by the power heuristic (Veach 1997);
// Russian roulette from the 4th vertex. max_bounces has Cycles' meaning: the emitters seen or
// sampled from vertex max_bounces are the last contribution.
// Samples: Owen-scrambled Sobol pairs for the pixel, the lens, the light and the BSDF (one
// pattern per bounce), a PCG stream for the rest (Fresnel choice, roulette).
// The random stream is a pure function of (seed, frame, pixel, sample): tiles and passes do not
// change the image, and samples are added to the accumulator one at a time in sample order.
//
// Bindings (std430; engine/render_pack.c writes them, engine/render_internal.h names them):
// 0 BVH nodes, 1 leaf primitive records, 2 triangles, 3 spheres, 4 materials, 5 lights, 6 globals, 7 accum (vec4 per
// pixel: colour sum), 8 aov (3 vec4 per pixel: depth+normal, albedo+object id, instance id),
// 9 triangle attributes (normals, uv), 10 texture info, 11 texels, 12 environment distribution;
// 13 (a uniform buffer, std140) the scene of a small scene as the shared copy holds it; 14, 15
// (uniform texel buffers, RGBA32UI) the nodes and leaf records again (see SCENE_TEXEL).
// Push constants: the camera and the tile / pass (see Push).
// Costs on lavapipe (Mesa 22), the CPU device, shape what follows: each storage-buffer load is a
// loop over the 8 SIMD lanes, and both sides of every branch run under a mask (docs/PERFORMANCE.md).
layout(local_size_x = 8, local_size_y = 8) in;

// What the scene has, specialised per scene (render.c sets these constants in the SPIR-V; bit k of
// render_pack.c's features is constant_id k). lavapipe runs both sides of every branch under a
// lane mask, so code for what a scene lacks would cost on every bounce and every leaf; with the
// constant false the compiler drops it. Where a constant is true the code is the general one.
layout(constant_id = 0) const bool HAS_SPHERES = true;
layout(constant_id = 1) const bool HAS_CONDUCTORS = true;
layout(constant_id = 2) const bool HAS_DIELECTRICS = true;
layout(constant_id = 3) const bool HAS_TEXTURES = true;    // a material with an albedo texture
layout(constant_id = 4) const bool HAS_ENV_MAP = true;
layout(constant_id = 5) const bool HAS_NORMALS = true;     // per-vertex shading normals
layout(constant_id = 6) const bool HAS_UV = true;
layout(constant_id = 7) const bool ENV_LIT = true;         // NEE may pick the environment
// SCENE_SHARED: the nodes, leaf records, triangles, materials and lights are read from one block
// laid out as binding 13 holds them. Without SCENE_UNIFORM they fit SHARED_VEC4S
// (render_internal.h's KILN__SHARED_VEC4S) and each workgroup copies them into shared memory
// first: lavapipe (Mesa 22) loads shared memory lane by lane too, but without the storage
// buffer's bounds check and its branch per component. The same bits either way.
layout(constant_id = 8) const bool SCENE_SHARED = false;
const uint SHARED_VEC4S = 1024u;
shared uvec4 sscene[SHARED_VEC4S];  // nodes | leaf records (3 each) | tris (3) | materials (3) | lights
uint sh_tris, sh_mats, sh_lights;  // where each starts in sscene (the leaf records: at the node count)
// With SCENE_UNIFORM too (render.c sets it on CPU devices) they come from that uniform buffer
// itself, UNIFORM_VEC4S words (up to 64 KiB): llvmpipe (Mesa 22) loads a uniform buffer at
// per-lane addresses as one gather, without the per-lane loop and branches of a shared or storage
// load. GPUs keep the shared copy (divergent uniform-buffer reads are slow on them).
layout(constant_id = 9) const bool SCENE_UNIFORM = false;
layout(constant_id = 10) const uint UNIFORM_VEC4S = 1u;
layout(std140, set = 0, binding = 13) uniform SceneU { uvec4 u[UNIFORM_VEC4S]; } uscene;
// SCENE_TEXEL (render.c's choice on CPU devices; with SCENE_UNIFORM where the scene fits it): the
// nodes and leaf records, the traversal's loads, through texel fetches of the same buffers bound
// as RGBA32UI texel buffers (bindings 14, 15): llvmpipe fetches those with gathers too, faster
// still than its uniform loads (docs/PERFORMANCE.md).
layout(constant_id = 11) const bool SCENE_TEXEL = false;
layout(set = 0, binding = 14) uniform usamplerBuffer tnodes;
layout(set = 0, binding = 15) uniform usamplerBuffer tprims;
uvec4 sc(uint i) { return SCENE_UNIFORM ? uscene.u[i] : sscene[i]; }
// Costs of each on lavapipe, measured: docs/PERFORMANCE.md (Rendering).

struct Tri { vec4 v0; vec4 v1; vec4 v2; };          // v0.w: material, v1.w: object, v2.w: instance (uint bits)
struct Sphere { vec4 cr; uvec4 ids; };              // ids: material, object, instance, light pick pdf (float bits)
struct Material { vec4 albedo_type; vec4 emission_rough; vec4 ior; };
// ior.y: texture (uint bits, ~0: none); ior.z (emissive): luminance relative to the brightest
// emitter's, the factor of an emitter's area in its pick weight
// Lights: one uvec4 each, read in one load: primitive (triangle, or ntris + sphere), cdf, area,
// the previous light's cdf (0 for the first); floats as uint bits.

// One uvec4 a node, one load (lavapipe loads storage buffers lane by lane, so each load counts):
// the box on the scene's grid (g.grid_origin + q * g.grid_step, 16 bits a bound, rounded
// outwards): bmin.x | bmin.y, bmin.z | bmax.x, bmax.y | bmax.z (low half first); and a link:
// leaf: bit 31, count - 1 in bits 27-30, first primitive in 0-26; interior: its skip link.
layout(std430, set = 0, binding = 0) readonly buffer Nodes { uvec4 n[]; } nodes;
// The leaves' primitives in leaf order, 3 vec4 each, so that a leaf test reads no index first:
// triangle v0, prim | v1 - v0 | v2 - v0 (the edges, as float differences); sphere centre, prim | radius.
layout(std430, set = 0, binding = 1) readonly buffer Prims { vec4 r[]; } prims;
layout(std430, set = 0, binding = 2) readonly buffer Tris { Tri t[]; } tris;
layout(std430, set = 0, binding = 3) readonly buffer Spheres { Sphere s[]; } spheres;
layout(std430, set = 0, binding = 4) readonly buffer Materials { Material m[]; } mats;
layout(std430, set = 0, binding = 5) readonly buffer Lights { uvec4 l[]; } lights;
struct Globals {
  uint ntris, nspheres, nlights, env_type;
  vec4 env_color;  // xyz radiance (already scaled by intensity)
  vec4 env_top;    // xyz; w: total pick weight of the emitters (area times relative luminance)
  uvec4 flags;     // has vertex normals, has uv, environment map texture (~0: none), map distribution present
  vec4 env_rot;    // cos, sin of the map's rotation about +y; probability that NEE picks the
                   // environment; w: BVH node count (uint bits)
  vec4 grid_origin;  // the node boxes' grid (xyz); w: leaf records (uint bits)
  vec4 grid_step;    // w: materials (uint bits)
};
layout(std430, set = 0, binding = 6) readonly buffer GlobalsBuf { Globals v; } globals;
// A private copy, read once per invocation: lavapipe (Mesa 22) loads every storage-buffer word
// lane by lane in a loop, uniform address or not, so each g.x read inside the loops cost 8 loads.
Globals g;
Tri tri_at(uint i) {
  if (!SCENE_SHARED) return tris.t[i];
  uint a = sh_tris + 3u * i;
  return Tri(uintBitsToFloat(sc(a)), uintBitsToFloat(sc(a + 1u)), uintBitsToFloat(sc(a + 2u)));
}
Material mat_at(uint i) {
  if (!SCENE_SHARED) return mats.m[i];
  uint a = sh_mats + 3u * i;
  return Material(uintBitsToFloat(sc(a)), uintBitsToFloat(sc(a + 1u)), uintBitsToFloat(sc(a + 2u)));
}
uvec4 light_at(uint i) { return SCENE_SHARED ? sc(sh_lights + i) : lights.l[i]; }
layout(std430, set = 0, binding = 7) buffer Accum { vec4 c[]; } accum;
layout(std430, set = 0, binding = 8) buffer Aov { vec4 v[]; } aov;
layout(std430, set = 0, binding = 9) readonly buffer Attr { float f[]; } attr;  // 16 per triangle
layout(std430, set = 0, binding = 10) readonly buffer TexInfo { uvec4 t[]; } texinfo;  // offset, w, h
layout(std430, set = 0, binding = 11) readonly buffer Texels { float f[]; } texels;  // RGB, top row first
layout(std430, set = 0, binding = 12) readonly buffer EnvDist { float f[]; } envd;

layout(push_constant) uniform Push {
  vec4 cam_pos;    // w: aperture (lens diameter; 0 = pinhole)
  vec4 cam_u;      // right * tan(vfov/2) * aspect; w: focus distance
  vec4 cam_v;      // up * tan(vfov/2)
  vec4 cam_w;      // forward (unit)
  ivec4 image;     // width, height, tile x0, tile y0
  uvec4 pass;      // tile w, tile h, first sample, sample count
  uvec4 frame;     // seed, frame, max bounces, unused
} pc;

const float PI = 3.14159265358979;
const float EPS = 1e-4;

// ---- random numbers: PCG hash (Jarzynski & Olano 2020) of a counter ----
uint pcg(uint v) {
  uint state = v * 747796405u + 2891336453u;
  uint word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}
uint rng;
float rnd() {
  rng = pcg(rng);
  return float(rng >> 8) * (1.0 / 16777216.0);
}

// ---- stratified 2D samples: Owen-scrambled Sobol (0,2)-sequence with a shuffled index
// (Burley 2020, "Practical Hash-based Owen Scrambling"). One independent pattern per dimension
// pair (pixel, lens, light and BSDF per bounce), seeded from the pixel's hash.
uint owen(uint x, uint seed) {  // nested uniform scramble of the bits of x, top bit first
  x = bitfieldReverse(x);
  x += seed;
  x ^= x * 0x6c50b47cu;
  x ^= x * 0xb82f1e52u;
  x ^= x * 0xc7afe638u;
  x ^= x * 0x8d22f6e6u;
  return bitfieldReverse(x);
}
// Sobol's second dimension (direction numbers v_k = v_{k-1} ^ v_{k-1} >> 1, v_0 = 2^31), bit
// reversed: bit j of the result is the parity of the bits k of i with j a subset of k (the
// direction matrix is Pascal's triangle mod 2; Lucas), a superset-sum over the five index bits in
// five shift-xor steps instead of a loop over the 32 bits of i.
uint sobol1_rev(uint i) {
  i ^= (i >> 1) & 0x55555555u;
  i ^= (i >> 2) & 0x33333333u;
  i ^= (i >> 4) & 0x0f0f0f0fu;
  i ^= (i >> 8) & 0x00ff00ffu;
  i ^= (i >> 16) & 0x0000ffffu;
  return i;
}
uint owen_rev(uint xr, uint seed) {  // owen(bitfieldReverse(xr), seed), without the two reversals
  xr += seed;
  xr ^= xr * 0x6c50b47cu;
  xr ^= xr * 0xb82f1e52u;
  xr ^= xr * 0xc7afe638u;
  xr ^= xr * 0x8d22f6e6u;
  return bitfieldReverse(xr);
}
uint pixel_seed;
uint sample_index;
vec2 sobol2(uint dim) {
  uint seed = pcg(pixel_seed + dim * 0x9e3779b9u);
  uint i = owen(sample_index, pcg(seed ^ 0xa511e9b3u));
  uint x = owen_rev(i, pcg(seed ^ 0x63d83595u));              // Sobol dimension 0: i reversed
  uint y = owen_rev(sobol1_rev(i), pcg(seed ^ 0x8f3a1c2du));  // dimension 1
  return vec2(float(x >> 8), float(y >> 8)) * (1.0 / 16777216.0);
}

// ---- intersection ----
struct Hit { float t; uint prim; float u; float v; };

bool tri_hit(vec3 v0, vec3 e1, vec3 e2, vec3 o, vec3 d, float tmin, inout Hit h) {  // e: v1 - v0, v2 - v0
  vec3 pv = cross(d, e2);
  float det = dot(e1, pv);
  if (abs(det) < 1e-20) return false;
  float inv = 1.0 / det;
  vec3 tv = o - v0;
  float u = dot(tv, pv) * inv;
  if (u < 0.0 || u > 1.0) return false;
  vec3 qv = cross(tv, e1);
  float w = dot(d, qv) * inv;
  if (w < 0.0 || u + w > 1.0) return false;
  float t = dot(e2, qv) * inv;
  if (t > tmin && t < h.t) { h.t = t; h.u = u; h.v = w; return true; }
  return false;
}

bool sphere_hit(vec4 cr, vec3 o, vec3 d, float tmin, inout Hit h) {
  vec3 oc = o - cr.xyz;
  float a = dot(d, d), hb = dot(oc, d), c = dot(oc, oc) - cr.w * cr.w;
  float disc = hb * hb - a * c;
  if (disc < 0.0) return false;
  float sq = sqrt(disc);
  float t0 = (-hb - sq) / a, t1 = (-hb + sq) / a;
  float t = t0 > tmin ? t0 : t1;
  if (t > tmin && t < h.t) { h.t = t; return true; }
  return false;
}

// The slab test on the grid: the plane of grid step q is at t = t_origin + q * t_step along the
// ray (both per ray). Its rounding differs from that of the plane's own coordinate by a few ulps,
// far less than the step of margin that every quantised box has around its primitives.
bool box_hit(uvec4 n, vec3 t_origin, vec3 t_step, float tmin, float tmax) {
  vec3 qlo = vec3(uvec3(n.x, n.x >> 16, n.y) & 0xffffu);
  vec3 qhi = vec3(uvec3(n.y >> 16, n.z, n.z >> 16) & 0xffffu);
  vec3 t0 = t_origin + qlo * t_step, t1 = t_origin + qhi * t_step;
  vec3 lo = min(t0, t1), hi = max(t0, t1);
  float a = max(max(lo.x, lo.y), max(lo.z, tmin));
  float b = min(min(hi.x, hi.y), min(hi.z, tmax));
  return a <= b;
}

// Closest hit in (tmin, tmax); h.prim = ~0u when none. any: stop at the first hit found (shadow
// rays: only whether there is one matters). Stackless: the nodes are in depth-first order (left
// child = i + 1), an interior node links to the node after its subtree (g.env_rot.w, the node
// count, after the last one), a leaf's subtree ends at i + 1. Nodes are visited in the order of a
// left-first stack traversal, so the hits are the same, without a per-invocation stack array.
Hit trace_impl(vec3 o, vec3 d, float tmin, float tmax, const bool any) {
  Hit h;
  h.t = tmax; h.prim = 0xffffffffu; h.u = 0.0; h.v = 0.0;
  if (g.ntris + g.nspheres == 0u) return h;
  vec3 inv = 1.0 / d;
  vec3 t_origin = (g.grid_origin.xyz - o) * inv, t_step = g.grid_step.xyz * inv;
  uint end = floatBitsToUint(g.env_rot.w);
  uint ni = 0u;
  while (ni < end) {
    // Nodes until a leaf whose box the ray enters (or the end), then that leaf's primitives: the
    // lanes' leaves are tested together (Aila and Laine 2009, "while-while"), so the primitive
    // test's code runs once per leaf reached, not under a mask at every node.
    uint first = 0u, count = 0u;
    while (ni < end) {
      uvec4 n = SCENE_TEXEL ? texelFetch(tnodes, int(ni)) : SCENE_SHARED ? sc(ni) : nodes.n[ni];
      bool in_box = box_hit(n, t_origin, t_step, tmin, h.t);
      bool leaf = (n.w & 0x80000000u) != 0u;
      ni = !leaf && !in_box ? n.w : ni + 1u;
      if (leaf && in_box) {
        first = n.w & 0x07ffffffu;
        count = ((n.w >> 27) & 15u) + 1u;
        break;
      }
    }
    for (uint k = first; k < first + count; k++) {
      vec4 r0, r1, r2;
      if (SCENE_TEXEL) {
        r0 = uintBitsToFloat(texelFetch(tprims, int(3u * k)));
        r1 = uintBitsToFloat(texelFetch(tprims, int(3u * k + 1u)));
        r2 = uintBitsToFloat(texelFetch(tprims, int(3u * k + 2u)));
      } else if (SCENE_SHARED) {
        r0 = uintBitsToFloat(sc(end + 3u * k));
        r1 = uintBitsToFloat(sc(end + 3u * k + 1u));
        r2 = uintBitsToFloat(sc(end + 3u * k + 2u));
      } else {
        r0 = prims.r[3u * k];
        r1 = prims.r[3u * k + 1u];
        r2 = prims.r[3u * k + 2u];
      }
      uint p = floatBitsToUint(r0.w);
      bool hit = !HAS_SPHERES || p < g.ntris
                     ? tri_hit(r0.xyz, r1.xyz, r2.xyz, o, d, tmin, h)
                     : sphere_hit(vec4(r0.xyz, r1.x), o, d, tmin, h);
      if (hit) h.prim = p;
    }
    if (any && h.prim != 0xffffffffu) break;
  }
  return h;
}
Hit trace(vec3 o, vec3 d, float tmin, float tmax) { return trace_impl(o, d, tmin, tmax, false); }
bool occluded(vec3 o, vec3 d, float tmin, float tmax) {
  return trace_impl(o, d, tmin, tmax, true).prim != 0xffffffffu;
}

// Orthonormal basis around unit n.
void basis(vec3 n, out vec3 t, out vec3 b) {  // Duff et al. 2017
  float s = n.z >= 0.0 ? 1.0 : -1.0;
  float a = -1.0 / (s + n.z), c = n.x * n.y * a;
  t = vec3(1.0 + s * n.x * n.x * a, s * c, -s * n.x);
  b = vec3(c, s + n.y * n.y * a, -n.y);
}

// ---- textures: linear RGB floats, row 0 at the top (v = 1); bilinear between texel centres,
// repeating in u, and in v too (wrap_v) or clamped there (environment maps: no wrap over a pole).
vec3 texel(uint off, uint w, uint x, uint y) {
  uint i = off + 3u * (y * w + x);
  return vec3(texels.f[i], texels.f[i + 1u], texels.f[i + 2u]);
}
uint wrap_index(float x, uint n) {  // x mod n, in [0, n)
  float m = x - float(n) * floor(x / float(n));
  return min(uint(max(m, 0.0)), n - 1u);
}
vec3 tex_bilinear(uint ti, vec2 uv, bool wrap_v) {
  uvec4 info = texinfo.t[ti];
  uint w = info.y, h = info.z;
  float fx = uv.x * float(w) - 0.5, fy = (1.0 - uv.y) * float(h) - 0.5;
  float x0f = floor(fx), y0f = floor(fy);
  vec2 f = vec2(fx - x0f, fy - y0f);
  uint x0 = wrap_index(x0f, w), x1 = wrap_index(x0f + 1.0, w), y0, y1;
  if (wrap_v) {
    y0 = wrap_index(y0f, h); y1 = wrap_index(y0f + 1.0, h);
  } else {
    y0 = uint(clamp(y0f, 0.0, float(h - 1u))); y1 = uint(clamp(y0f + 1.0, 0.0, float(h - 1u)));
  }
  vec3 a = mix(texel(info.x, w, x0, y0), texel(info.x, w, x1, y0), f.x);
  vec3 b = mix(texel(info.x, w, x0, y1), texel(info.x, w, x1, y1), f.x);
  return mix(a, b, f.y);
}

// Latitude-longitude coordinates of a unit direction (x: u in [0, 1], y: polar angle / pi from +y,
// i.e. image rows top to bottom). u = 0.5 looks towards -x, 0.75 towards -z, 0.25 towards +z:
// Blender's equirectangular mapping with Blender's +Z as +y and Blender's +Y as -z.
vec2 latlong(vec3 d) {
  return vec2(0.5 + atan(-d.z, -d.x) * (0.5 / PI), acos(clamp(d.y, -1.0, 1.0)) / PI);
}

// Surface data of a hit: geometric normal n (unit, as wound / outwards), shading normal ns (unit,
// the interpolated vertex normals, else n), uv, material, ids.
struct Surf { vec3 p; vec3 n; vec3 ns; vec2 uv; uint mat; uint obj; uint inst; };
Surf surface(Hit h, vec3 o, vec3 d) {
  Surf s;
  s.p = o + h.t * d;
  s.uv = vec2(0.0);
  if (!HAS_SPHERES || h.prim < g.ntris) {
    Tri T = tri_at(h.prim);
    s.n = normalize(cross(T.v1.xyz - T.v0.xyz, T.v2.xyz - T.v0.xyz));
    s.ns = s.n;
    s.mat = floatBitsToUint(T.v0.w); s.obj = floatBitsToUint(T.v1.w); s.inst = floatBitsToUint(T.v2.w);
    uint a = 16u * h.prim;
    float w0 = 1.0 - h.u - h.v;
    if (HAS_NORMALS && g.flags.x != 0u) {
      vec3 n0 = vec3(attr.f[a], attr.f[a + 1u], attr.f[a + 2u]);
      vec3 n1 = vec3(attr.f[a + 3u], attr.f[a + 4u], attr.f[a + 5u]);
      vec3 n2 = vec3(attr.f[a + 6u], attr.f[a + 7u], attr.f[a + 8u]);
      vec3 ns = w0 * n0 + h.u * n1 + h.v * n2;
      float l = length(ns);
      if (l > 1e-12) s.ns = ns / l;  // opposite normals can cancel: keep the geometric one
    }
    if (HAS_UV && g.flags.y != 0u)
      s.uv = w0 * vec2(attr.f[a + 9u], attr.f[a + 10u]) + h.u * vec2(attr.f[a + 11u], attr.f[a + 12u]) +
             h.v * vec2(attr.f[a + 13u], attr.f[a + 14u]);
  } else {
    Sphere S = spheres.s[h.prim - g.ntris];
    s.n = normalize(s.p - S.cr.xyz);
    s.ns = s.n;
    vec2 ll = latlong(s.n);  // spheres: the environment's latitude-longitude mapping, world axes
    s.uv = vec2(ll.x, 1.0 - ll.y);
    s.mat = S.ids.x; s.obj = S.ids.y; s.inst = S.ids.z;
  }
  return s;
}

// The material's albedo at uv: its constant albedo times its texture, if any.
vec3 albedo_at(Material m, vec2 uv) {
  uint ti = floatBitsToUint(m.ior.y);
  return !HAS_TEXTURES || ti == 0xffffffffu ? m.albedo_type.xyz : m.albedo_type.xyz * tex_bilinear(ti, uv, true);
}

// Direction d in the map's frame (the map is rotated by env_rot about +y, so undo it).
vec3 to_map(vec3 d) {
  float c = g.env_rot.x, s = g.env_rot.y;
  return vec3(c * d.x - s * d.z, d.y, s * d.x + c * d.z);
}

vec3 env(vec3 d) {
  if (g.env_type == 1u) return mix(g.env_color.xyz, g.env_top.xyz, 0.5 * (1.0 + d.y));
  if (HAS_ENV_MAP && g.env_type == 2u) {
    vec2 ll = latlong(to_map(d));
    return tex_bilinear(g.flags.z, vec2(ll.x, 1.0 - ll.y), false) * g.env_color.xyz;
  }
  return g.env_color.xyz;
}

// Solid-angle pdf of env_sample choosing direction d from a vertex of shading normal ns (the
// environment's own technique, before the probability of picking the environment).
float env_pdf(vec3 d, vec3 ns) {
  if (!HAS_ENV_MAP || g.env_type != 2u) return max(dot(d, ns), 0.0) / PI;
  uvec4 info = texinfo.t[g.flags.z];
  uint w = info.y, h = info.z;
  vec3 m = to_map(d);
  vec2 ll = latlong(m);
  float st = sqrt(max(0.0, 1.0 - m.y * m.y));
  if (st <= 0.0) return 0.0;
  uint x = wrap_index(ll.x * float(w), w), y = min(uint(ll.y * float(h)), h - 1u);
  float pmf = envd.f[h + w * h + y * w + x];
  return pmf * float(w) * float(h) / (2.0 * PI * PI * st);
}

// First index i in [first, first + n) with cdf[i] > u (the last entry is 1 > u).
uint cdf_find(uint first, uint n, float u) {
  uint lo = 0u, hi = n - 1u;
  while (lo < hi) { uint mid = (lo + hi) / 2u; if (envd.f[first + mid] <= u) lo = mid + 1u; else hi = mid; }
  return lo;
}

// A direction towards the environment and its pdf (as env_pdf). Maps: a pixel by the row and
// column CDFs, uniformly within it in (u, polar angle); constant and gradient: cosine-distributed
// about the shading normal ns (for a diffuse surface under a constant sky, the two techniques
// then agree and each sample is exact: the furnace test's zero variance is kept).
vec3 env_sample(vec2 u, vec3 ns, out float pdf) {
  if (!HAS_ENV_MAP || g.env_type != 2u) {
    vec3 t, b;
    basis(ns, t, b);
    float r = sqrt(u.x), phi = 2.0 * PI * u.y;
    vec3 d = r * cos(phi) * t + r * sin(phi) * b + sqrt(max(0.0, 1.0 - u.x)) * ns;
    pdf = max(dot(d, ns), 0.0) / PI;
    return d;
  }
  uvec4 info = texinfo.t[g.flags.z];
  uint w = info.y, h = info.z;
  uint y = cdf_find(0u, h, u.x);
  float r0 = y > 0u ? envd.f[y - 1u] : 0.0, r1 = envd.f[y];
  uint x = cdf_find(h + y * w, w, u.y);
  float c0 = x > 0u ? envd.f[h + y * w + x - 1u] : 0.0, c1 = envd.f[h + y * w + x];
  float fu = (float(x) + clamp((u.y - c0) / max(c1 - c0, 1e-30), 0.0, 1.0)) / float(w);
  float fv = (float(y) + clamp((u.x - r0) / max(r1 - r0, 1e-30), 0.0, 1.0)) / float(h);
  float theta = fv * PI, phi = 2.0 * PI * (fu - 0.5);
  float st = sin(theta);
  vec3 m = vec3(-st * cos(phi), cos(theta), -st * sin(phi));  // inverse of latlong
  float pmf = envd.f[h + w * h + y * w + x];
  pdf = st > 0.0 ? pmf * float(w) * float(h) / (2.0 * PI * PI * st) : 0.0;
  float c = g.env_rot.x, s = g.env_rot.y;
  return vec3(c * m.x + s * m.z, m.y, -s * m.x + c * m.z);  // back to world
}

// ---- BSDFs; directions in world space, n the shading normal facing wo ----

float ggx_d(float nh, float a2) {
  float k = nh * nh * (a2 - 1.0) + 1.0;
  return a2 / (PI * k * k);
}
float ggx_lambda(float cosv, float a2) {
  float c2 = max(cosv * cosv, 1e-12);
  return 0.5 * (-1.0 + sqrt(1.0 + a2 * (1.0 - c2) / c2));
}
vec3 schlick(vec3 f0, float c) { return f0 + (1.0 - f0) * pow(1.0 - clamp(c, 0.0, 1.0), 5.0); }

// Conductor: f * cos(wi) and the VNDF pdf of wi.
vec3 conductor_eval(vec3 f0, float alpha, vec3 n, vec3 wo, vec3 wi, out float pdf) {
  pdf = 0.0;
  float no = dot(n, wo), ni = dot(n, wi);
  if (no <= 0.0 || ni <= 0.0) return vec3(0.0);
  vec3 hv = normalize(wo + wi);
  float a2 = alpha * alpha, nh = max(dot(n, hv), 0.0), oh = max(dot(wo, hv), 0.0);
  float D = ggx_d(nh, a2), L1 = ggx_lambda(no, a2), L2 = ggx_lambda(ni, a2);
  float G1 = 1.0 / (1.0 + L1), G2 = 1.0 / (1.0 + L1 + L2);
  pdf = G1 * D / (4.0 * no);  // D_wo(h) / (4 wo.h) with D_wo = G1 wo.h D / cos_o
  return schlick(f0, oh) * D * G2 / (4.0 * no);
}

vec3 sample_vndf(vec3 wo_local, float alpha, float u1, float u2) {  // Heitz 2018
  vec3 vh = normalize(vec3(alpha * wo_local.x, alpha * wo_local.y, wo_local.z));
  float lensq = vh.x * vh.x + vh.y * vh.y;
  vec3 T1 = lensq > 0.0 ? vec3(-vh.y, vh.x, 0.0) * inversesqrt(lensq) : vec3(1.0, 0.0, 0.0);
  vec3 T2 = cross(vh, T1);
  float r = sqrt(u1), phi = 2.0 * PI * u2;
  float t1 = r * cos(phi), t2 = r * sin(phi);
  float s = 0.5 * (1.0 + vh.z);
  t2 = (1.0 - s) * sqrt(1.0 - t1 * t1) + s * t2;
  vec3 nh = t1 * T1 + t2 * T2 + sqrt(max(0.0, 1.0 - t1 * t1 - t2 * t2)) * vh;
  return normalize(vec3(alpha * nh.x, alpha * nh.y, max(0.0, nh.z)));
}

// BSDF value * cos for NEE (non-delta materials only) and its sampling pdf; n the shading normal,
// alb the (textured) albedo.
vec3 bsdf_eval(Material m, vec3 alb, vec3 n, vec3 wo, vec3 wi, out float pdf) {
  uint type = floatBitsToUint(m.albedo_type.w);
  if (!HAS_CONDUCTORS || type == 0u) {
    float c = dot(n, wi);
    pdf = max(c, 0.0) / PI;
    return c > 0.0 ? alb * c / PI : vec3(0.0);
  }
  float alpha = max(m.emission_rough.w * m.emission_rough.w, 1e-3);
  return conductor_eval(alb, alpha, n, wo, wi, pdf);
}

float power_heuristic(float a, float b) {
  float a2 = a * a;
  return a2 / (a2 + b * b);
}

// Solid-angle pdf of NEE picking this light point, from x towards a light triangle hit at dist t.
float light_pdf(uint tri, vec3 d, float t) {
  Tri T = tri_at(tri);
  vec3 c = cross(T.v1.xyz - T.v0.xyz, T.v2.xyz - T.v0.xyz);
  float cosl = abs(dot(normalize(c), d));
  float rel = mat_at(floatBitsToUint(T.v0.w)).ior.z;
  return t * t / (max(cosl, 1e-8) * g.env_top.w) * rel * (1.0 - g.env_rot.z);
}

// 1 - cos of the half-angle of the cone that sphere S subtends from x; 0 when x is inside.
float cone_1mcos(vec4 cr, vec3 x) {
  vec3 dc = cr.xyz - x;
  float d2 = dot(dc, dc), s2 = cr.w * cr.w / d2;
  if (s2 >= 1.0) return 0.0;
  return s2 / (1.0 + sqrt(1.0 - s2));  // 1 - sqrt(1 - s2) without cancellation
}

// Solid-angle pdf of NEE choosing a direction from x inside the cone of emissive sphere si.
float sphere_light_pdf(uint si, vec3 x) {
  Sphere S = spheres.s[si];
  float omc = cone_1mcos(S.cr, x);
  return omc > 0.0 ? uintBitsToFloat(S.ids.w) / (2.0 * PI * omc) : 0.0;
}

void main() {
  g = globals.v;
  if (SCENE_SHARED) {  // every invocation, before any returns: the barrier is the workgroup's
    uint nn = floatBitsToUint(g.env_rot.w);
    sh_tris = nn + 3u * floatBitsToUint(g.grid_origin.w);
    sh_mats = sh_tris + 3u * g.ntris;
    sh_lights = sh_mats + 3u * floatBitsToUint(g.grid_step.w);
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
  uvec2 lp = gl_GlobalInvocationID.xy;
  if (lp.x >= pc.pass.x || lp.y >= pc.pass.y) return;
  ivec2 px = ivec2(lp) + pc.image.zw;
  if (px.x >= pc.image.x || px.y >= pc.image.y) return;
  uint pixel = uint(px.y) * uint(pc.image.x) + uint(px.x);
  uint max_bounces = pc.frame.z;
  vec3 W = pc.cam_w.xyz;
  vec2 inv_size = 1.0 / vec2(pc.image.xy);

  // AOVs from a ray through the pixel centre, written with the first sample.
  if (pc.pass.z == 0u) {
    vec2 ndc = (vec2(px) + 0.5) * inv_size;
    vec3 d = normalize(W + (2.0 * ndc.x - 1.0) * pc.cam_u.xyz + (1.0 - 2.0 * ndc.y) * pc.cam_v.xyz);
    Hit h = trace(pc.cam_pos.xyz, d, 0.0, 1e30);
    vec4 a0 = vec4(0.0), a1 = vec4(0.0), a2 = vec4(0.0);
    if (h.prim != 0xffffffffu) {
      Surf s = surface(h, pc.cam_pos.xyz, d);
      Material m = mat_at(s.mat);
      a0 = vec4(h.t * dot(d, W), s.ns);
      a1 = vec4(albedo_at(m, s.uv), uintBitsToFloat(s.obj));
      a2 = vec4(uintBitsToFloat(s.inst), 0.0, 0.0, 0.0);
    } else {
      a1.w = uintBitsToFloat(0u);
      a2.x = uintBitsToFloat(0u);
    }
    aov.v[3u * pixel] = a0;
    aov.v[3u * pixel + 1u] = a1;
    aov.v[3u * pixel + 2u] = a2;
  }

  vec3 sum = pc.pass.z == 0u ? vec3(0.0) : accum.c[pixel].xyz;
  for (uint si = 0u; si < pc.pass.w; si++) {
    sample_index = pc.pass.z + si;
    pixel_seed = pcg(pc.frame.x ^ pcg(pc.frame.y ^ pcg(pixel)));
    rng = pcg(pixel_seed ^ pcg(sample_index));
    vec2 ndc = (vec2(px) + sobol2(0u)) * inv_size;
    vec3 d = normalize(W + (2.0 * ndc.x - 1.0) * pc.cam_u.xyz + (1.0 - 2.0 * ndc.y) * pc.cam_v.xyz);
    vec3 o = pc.cam_pos.xyz;
    if (pc.cam_pos.w > 0.0) {  // thin lens: focus on the plane at focus distance along W
      vec3 focus = o + d * (pc.cam_u.w / dot(d, W));
      vec2 lu = sobol2(1u);
      float r = 0.5 * pc.cam_pos.w * sqrt(lu.x), phi = 2.0 * PI * lu.y;
      o += r * cos(phi) * normalize(pc.cam_u.xyz) + r * sin(phi) * normalize(pc.cam_v.xyz);
      d = normalize(focus - o);
    }
    vec3 L = vec3(0.0), beta = vec3(1.0);
    float prev_pdf = 0.0;  // solid-angle pdf of the BSDF sample that led here; 0 = delta/camera
    vec3 prev_ns = vec3(0.0, 1.0, 0.0);  // the shading normal there (for the environment's pdf)
    Hit h = trace(o, d, 0.0, 1e30);
    for (uint depth = 0u;; depth++) {
      if (h.prim == 0xffffffffu) {
        float w = 1.0;
        if (ENV_LIT && prev_pdf > 0.0 && g.env_rot.z > 0.0) w = power_heuristic(prev_pdf, g.env_rot.z * env_pdf(d, prev_ns));
        L += beta * env(d) * w;
        break;
      }
      Surf s = surface(h, o, d);
      Material m = mat_at(s.mat);
      uint type = floatBitsToUint(m.albedo_type.w);
      vec3 wo = -d;
      bool front = dot(s.n, wo) > 0.0;
      if (type == 3u) {  // emitter: one-sided, black behind; absorbs
        if (front) {
          float w = 1.0;
          if (prev_pdf > 0.0 && g.nlights > 0u)
            w = power_heuristic(prev_pdf, !HAS_SPHERES || h.prim < g.ntris ? light_pdf(h.prim, d, h.t)
                                                           : sphere_light_pdf(h.prim - g.ntris, o));
          L += beta * m.emission_rough.xyz * w;
        }
        break;
      }
      if (depth >= max_bounces + 1u) break;  // this vertex only collected emission
      vec3 n = front ? s.n : -s.n;  // geometric, on wo's side: offsets and side tests
      vec3 ns = dot(s.ns, n) >= 0.0 ? s.ns : -s.ns;  // shading, on n's side (whatever the winding)
      if (dot(ns, wo) <= 0.0) ns = n;  // wo below the shading hemisphere: shade flat
      vec3 p = s.p + n * EPS * max(1.0, length(s.p));
      vec3 alb = albedo_at(m, s.uv);
      prev_ns = ns;

      // Next-event estimation (diffuse and conductor): the environment or one emitter.
      float penv = ENV_LIT ? g.env_rot.z : 0.0;
      if (type <= 1u && (g.nlights > 0u || penv > 0.0)) {
        vec2 lu = sobol2(2u + 3u * depth);
        bool pick_env = false;
        if (penv > 0.0) {  // split the first dimension between the two (keeps its strata)
          pick_env = lu.x < penv;
          lu.x = pick_env ? lu.x / penv : (lu.x - penv) / (1.0 - penv);
        }
        vec3 wi = vec3(0.0), Le = vec3(0.0);
        float dist = 1e30, lpdf = 0.0;
        if (pick_env) {
          wi = env_sample(lu, ns, lpdf);
          lpdf *= penv;
          if (lpdf > 0.0) Le = env(wi);
        } else {
          uint lo = 0u, hi = g.nlights - 1u;
          while (lo < hi) { uint mid = (lo + hi) / 2u; if (uintBitsToFloat(light_at(mid).y) < lu.x) lo = mid + 1u; else hi = mid; }
          uvec4 pick = light_at(lo);  // one load
          uint lp = pick.x;
          float c0 = uintBitsToFloat(pick.w), c1 = uintBitsToFloat(pick.y);
          float u1 = clamp((lu.x - c0) / max(c1 - c0, 1e-30), 0.0, 1.0);  // reuse the pick's strata
          if (!HAS_SPHERES || lp < g.ntris) {
            Tri T = tri_at(lp);
            float su = sqrt(u1), b1 = su * (1.0 - lu.y), b2 = su * lu.y;  // uniform on the triangle
            vec3 q = T.v0.xyz + b1 * (T.v1.xyz - T.v0.xyz) + b2 * (T.v2.xyz - T.v0.xyz);
            vec3 ln = normalize(cross(T.v1.xyz - T.v0.xyz, T.v2.xyz - T.v0.xyz));
            vec3 toL = q - p;
            dist = length(toL);
            wi = toL / dist;
            float cosl = dot(ln, -wi);
            if (cosl > 0.0) {
              Material lm = mat_at(floatBitsToUint(T.v0.w));
              lpdf = dist * dist / (cosl * g.env_top.w) * lm.ior.z * (1.0 - penv);
              Le = lm.emission_rough.xyz;
            }
          } else {  // uniform in the cone the sphere subtends (its visible, front side)
            Sphere S = spheres.s[lp - g.ntris];
            float omc = cone_1mcos(S.cr, p);
            if (omc > 0.0) {
              vec3 axis = normalize(S.cr.xyz - p), ta, tb;
              basis(axis, ta, tb);
              float ct = 1.0 - u1 * omc, st = sqrt(max(0.0, 1.0 - ct * ct)), phi = 2.0 * PI * lu.y;
              wi = normalize(st * cos(phi) * ta + st * sin(phi) * tb + ct * axis);
              Hit sh;
              sh.t = 1e30;
              if (sphere_hit(S.cr, p, wi, 0.0, sh)) {
                dist = sh.t;
                lpdf = uintBitsToFloat(S.ids.w) / (2.0 * PI * omc);
                Le = mat_at(S.ids.x).emission_rough.xyz;
              }
            }
          }
        }
        if (lpdf > 0.0 && dot(n, wi) > 0.0) {
          if (!occluded(p, wi, 0.0, dist * (1.0 - 1e-4))) {
            float bpdf;
            vec3 f = bsdf_eval(m, alb, ns, wo, wi, bpdf);
            L += beta * f * Le * power_heuristic(lpdf, bpdf) / lpdf;
          }
        }
      }

      // BSDF sampling, about the shading normal; a direction on the wrong side of the geometric
      // surface ends the path (it would leak through).
      vec3 t, b;
      basis(ns, t, b);
      vec3 wi;
      vec2 bu = sobol2(3u + 3u * depth);
      if (type == 0u || (!HAS_CONDUCTORS && !HAS_DIELECTRICS)) {
        float r = sqrt(bu.x), phi = 2.0 * PI * bu.y;
        wi = r * cos(phi) * t + r * sin(phi) * b + sqrt(max(0.0, 1.0 - r * r)) * ns;
        beta *= alb;  // f cos / pdf
        prev_pdf = max(dot(ns, wi), 1e-8) / PI;
        if (dot(n, wi) <= 0.0) break;
      } else if (!HAS_DIELECTRICS || (HAS_CONDUCTORS && type == 1u)) {
        float alpha = max(m.emission_rough.w * m.emission_rough.w, 1e-3);
        vec3 wl = vec3(dot(wo, t), dot(wo, b), dot(wo, ns));
        vec3 hl = sample_vndf(wl, alpha, bu.x, bu.y);
        vec3 hw = hl.x * t + hl.y * b + hl.z * ns;
        wi = reflect(-wo, hw);
        float pdf;
        vec3 f = conductor_eval(alb, alpha, ns, wo, wi, pdf);
        if (pdf <= 0.0 || dot(n, wi) <= 0.0) break;
        beta *= f / pdf;
        prev_pdf = pdf;
      } else {  // smooth dielectric
        float eta = front ? 1.0 / m.ior.x : m.ior.x;
        float ci = dot(ns, wo);
        float s2 = eta * eta * (1.0 - ci * ci);
        float F = 1.0;
        if (s2 < 1.0) {
          float ct = sqrt(1.0 - s2);
          float rs = (eta * ci - ct) / (eta * ci + ct), rp = (ci - eta * ct) / (ci + eta * ct);
          F = 0.5 * (rs * rs + rp * rp);
        }
        // Throughput F / F or (1 - F) / (1 - F) times the tint: no 1/eta^2 (Cycles' convention;
        // the importance/radiance asymmetry cancels on any path that leaves the glass again).
        if (rnd() < F) {
          wi = reflect(-wo, ns);
          if (dot(n, wi) <= 0.0) wi = reflect(-wo, n);
        } else {
          wi = refract(-wo, ns, eta);
          if (dot(n, wi) >= 0.0) wi = refract(-wo, n, eta);
          if (dot(n, wi) >= 0.0) break;  // total internal reflection about n: no transmission
          p = s.p - n * EPS * max(1.0, length(s.p));
          beta *= alb;
        }
        prev_pdf = 0.0;
      }
      if (depth >= 3u) {  // Russian roulette
        float q = min(max(beta.x, max(beta.y, beta.z)), 0.95);
        if (rnd() >= q) break;
        beta /= q;
      }
      o = p;
      d = wi;
      h = trace(o, d, 0.0, 1e30);
    }
    if (any(isnan(L)) || any(isinf(L))) L = vec3(0.0);
    sum += L;
  }
  accum.c[pixel] = vec4(sum, 0.0);
}
