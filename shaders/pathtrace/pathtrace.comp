#version 450
#extension GL_GOOGLE_include_directive : require
// pathtrace: kiln's unidirectional path tracer; one dispatch = one tile x a few samples.
// main() below is the algorithm; the includes beside it hold its parts:
//   layout.h          bindings, push constants, globals, codes (shared with the C side)
//   scene_access.glsl what the scene has and where it is read from (the scene-memory modes)
//   rng.glsl          Owen-scrambled Sobol samples and a PCG stream
//   common.glsl       constants, orthonormal basis, latitude-longitude, the power heuristic
//   box.glsl          the ray / node-box slab test
//   texture.glsl      bilinear texture lookups
//   intersect.glsl    triangles, spheres, the BVH traversal (alpha cut-outs), a hit's surface
//   environment.glsl  the environment's radiance and its sampling
//   bsdf.glsl         the materials: evaluation and sampling
//   lights.glsl       next-event estimation
//   camera.glsl       camera rays
//   groups.glsl       which part of the tile a workgroup renders (CPU devices)
// Shading uses the interpolated vertex normals where the mesh has them; ray offsets and the side
// tests use the geometric normal. Light sampling and BSDF sampling are combined by the power
// heuristic; Russian roulette from the 4th vertex (survival min(max beta, 0.95), or Cycles'
// min(sqrt(max beta), 1) once the path has passed a smooth dielectric). max_bounces has Cycles'
// meaning: the emitters seen or sampled from vertex max_bounces are the last contribution.
// Samples are added to the accumulator one at a time in sample order, so tiles and passes do
// not change the image.
// Costs on lavapipe (Mesa 22), the CPU device, shape what follows: each storage-buffer load is a
// loop over the 8 SIMD lanes, and both sides of every branch run under a mask (docs/PERFORMANCE.md).
layout(local_size_x = 8, local_size_y = 8) in;

#include "layout.h"

layout(push_constant) uniform PushBlock { pt_push pc; };
layout(std430, set = 0, binding = PT_BIND_ACCUM) buffer Accum { vec4 c[]; } accum;
layout(std430, set = 0, binding = PT_BIND_AOV) buffer Aov { vec4 v[]; } aov;

#include "scene_access.glsl"
#include "rng.glsl"
#include "common.glsl"
#include "texture.glsl"
#include "intersect.glsl"
#include "environment.glsl"
#include "bsdf.glsl"
#include "lights.glsl"
#include "camera.glsl"
#include "groups.glsl"

// The first-hit planes of pixel px that pc.frame.w asks for (PT_AOV_*), from a ray through its
// centre (written with the first sample): each a plane of AOV, those asked for one after the
// other in bit order.
void write_aovs(ivec2 px, uint pixel, vec2 inv_size) {
  uint want = pc.frame.w;
  if (want == 0u) return;
  vec3 d = camera_dir((vec2(px) + 0.5) * inv_size);
  Hit h = trace(pc.cam_pos.xyz, d, 0.0, 1e30);
  vec4 a0 = vec4(0.0), a1 = vec4(0.0), a2 = vec4(0.0);
  if (h.prim != PT_NONE) {
    Surf s = surface(h, pc.cam_pos.xyz, d);
    Material m = mat_at(s.mat);
    vec3 alb = shade_setup(m, s);  // the normal map too
    a0 = vec4(h.t * dot(d, pc.cam_w.xyz), s.ns);
    a1 = vec4(alb, uintBitsToFloat(s.obj));
    a2 = vec4(uintBitsToFloat(s.inst), s.uv, 0.0);
  } else {
    a1.w = uintBitsToFloat(0u);
    a2.x = uintBitsToFloat(0u);
  }
  uint npix = uint(pc.image.x) * uint(pc.image.y), at = pixel;
  if ((want & PT_AOV_DEPTH_NORMAL) != 0u) {
    aov.v[at] = a0;
    at += npix;
  }
  if ((want & PT_AOV_ALBEDO_ID) != 0u) {
    aov.v[at] = a1;
    at += npix;
  }
  if ((want & PT_AOV_INSTANCE_UV) != 0u) aov.v[at] = a2;
}

// The radiance one path from o along d brings back.
vec3 radiance(vec3 o, vec3 d, uint max_bounces) {
  vec3 L = vec3(0.0), beta = vec3(1.0);
  float prev_pdf = 0.0;  // solid-angle pdf of the BSDF sample that led here; 0 = delta/camera
  vec3 prev_ns = vec3(0.0, 1.0, 0.0);  // the shading normal there (for the environment's pdf)
  bool through_glass = false;  // a smooth dielectric (the only delta lobes) on the path so far
  Hit h = trace(o, d, 0.0, 1e30);
  for (uint depth = 0u;; depth++) {
    if (h.prim == PT_NONE) {  // escaped: the environment, weighed against its light sample
      float w = 1.0;
      if (ENV_LIT && prev_pdf > 0.0 && g.env_pick > 0.0) w = power_heuristic(prev_pdf, g.env_pick * env_pdf(d, prev_ns));
      L += beta * env(d) * w;
      break;
    }
    Surf s = surface(h, o, d);
    Material m = mat_at(s.mat);
    uint type = floatBitsToUint(m.albedo_type.w);
    vec3 wo = -d;
    bool front = dot(s.n, wo) > 0.0;
    if (type == PT_MAT_EMISSIVE) {  // emitter: one-sided, black behind; absorbs
      if (front) {
        float w = 1.0;
        if (prev_pdf > 0.0 && g.nlights > 0u) w = power_heuristic(prev_pdf, emitter_pdf(h, s.n, m.ior.z, o, d));
        L += beta * m.emission_rough.xyz * w;
      }
      break;
    }
    vec3 alb;
    bool principled = HAS_PRINCIPLED && type == PT_MAT_PRINCIPLED;
    if (principled) {  // emits (front face) as well as it scatters
      alb = shade_setup(m, s);
      if (front && m.ior.z > 0.0) {  // ior.z > 0: it emits, and is in LIGHTS
        float w = 1.0;
        if (prev_pdf > 0.0) w = power_heuristic(prev_pdf, emitter_pdf(h, s.n, m.ior.z, o, d));
        L += beta * m.emission_rough.xyz * w;
      }
    }
    if (depth >= max_bounces + 1u) break;  // this vertex only collected emission
    vec3 n = front ? s.n : -s.n;  // geometric, on wo's side: offsets and side tests
    vec3 ns = dot(s.ns, n) >= 0.0 ? s.ns : -s.ns;  // shading, on n's side (whatever the winding)
    if (dot(ns, wo) <= 0.0) ns = n;  // wo below the shading hemisphere: shade flat
    if (principled) shade_n0 = ns == n ? n : dot(shade_n0, n) >= 0.0 ? shade_n0 : -shade_n0;
    vec3 p = s.p + n * EPS * max(1.0, length(s.p));
    if (!principled) alb = shade_setup(m, s);
    prev_ns = ns;

    // Next-event estimation (diffuse, conductor, principled): the environment, one emitter or one
    // punctual light.
    if ((type <= PT_MAT_CONDUCTOR || principled) &&
        (g.nlights > 0u || (ENV_LIT ? g.env_pick : 0.0) > 0.0 || (HAS_PLIGHTS && g.nplights > 0u))) {
      vec3 c;
      if (direct_light(m, alb, p, n, ns, wo, beta, sobol2(dim_light(depth)), c)) L += c;
    }
    vec3 wi;
    if (!bsdf_sample(m, alb, front, depth == 0u, s.p, n, ns, wo, sobol2(dim_bsdf(depth)), p, beta, wi, prev_pdf))
      break;
    through_glass = through_glass || prev_pdf == 0.0;
    // Russian roulette. Behind smooth glass it keeps Cycles' gentler survival, which ends no path
    // whose throughput is >= 1 and spares the dim ones more: with kiln's own, the deep caustic
    // and wall-reflection paths that glass leads to left a glass sphere in a light box 2.4%
    // noisier than Cycles at 16 spp (now 0.9% less; without any roulette 1.4% less). Paths
    // that meet no glass keep kiln's, so images without a dielectric are unchanged.
    if (depth >= 3u) {
      float bmax = max(beta.x, max(beta.y, beta.z));
      float q = through_glass ? min(sqrt(bmax), 1.0) : min(bmax, 0.95);
      if (rnd() >= q) break;
      beta /= q;
    }
    o = p;
    d = wi;
    h = trace(o, d, 0.0, 1e30);
  }
  return L;
}

// CPU devices (renderer.c sets it): the workgroups spread over their tile (groups.glsl).
layout(constant_id = PT_SC_SPREAD_GROUPS) const bool SPREAD_GROUPS = false;

void main() {
  scene_begin();  // every invocation, before any returns: it may hold the workgroup's barrier
  uvec2 cell = gl_WorkGroupID.xy;
  if (SPREAD_GROUPS) cell = spread_cell(cell, gl_NumWorkGroups.xy);
  uvec2 lp = cell * gl_WorkGroupSize.xy + gl_LocalInvocationID.xy;
  if (lp.x >= pc.pass.x || lp.y >= pc.pass.y) return;
  ivec2 px = ivec2(lp) + pc.image.zw;
  if (px.x >= pc.image.x || px.y >= pc.image.y) return;
  uint pixel = uint(px.y) * uint(pc.image.x) + uint(px.x);
  vec2 inv_size = 1.0 / vec2(pc.image.xy);
  if (pc.pass.z == 0u) write_aovs(px, pixel, inv_size);

  vec3 sum = pc.pass.z == 0u ? vec3(0.0) : accum.c[pixel].xyz;
  for (uint si = 0u; si < pc.pass.w; si++) {
    rng_start(pc.frame.x, pc.frame.y, pixel, pc.pass.z + si);
    vec3 o, d;
    camera_ray(px, inv_size, o, d);
    vec3 L = radiance(o, d, pc.frame.z);
    if (any(isnan(L)) || any(isinf(L))) L = vec3(0.0);
    sum += L;
  }
  accum.c[pixel] = vec4(sum, 0.0);
}
