#version 450
#extension GL_GOOGLE_include_directive : require
// pathtrace_null: the path tracer's stand-in for an infinitely fast GPU. It has pathtrace.comp's
// bindings and push constants and writes what a frame reads back (the colour sums and the AOV
// planes asked for) without tracing anything, so a benchmark run with it measures the CPU side
// of a frame alone: submission, read-back, conversion, encoding and writing. The colour is a
// gradient with per-pixel noise, about as hard for the PNG encoder as a rendered frame.
layout(local_size_x = 8, local_size_y = 8) in;

#include "layout.h"

layout(push_constant) uniform PushBlock { pt_push pc; };
layout(std430, set = 0, binding = PT_BIND_ACCUM) buffer Accum { vec4 c[]; } accum;
layout(std430, set = 0, binding = PT_BIND_AOV) buffer Aov { vec4 v[]; } aov;

uint hash(uint v) {  // PCG (Jarzynski & Olano 2020)
  uint state = v * 747796405u + 2891336453u;
  uint word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

void main() {
  uvec2 lp = gl_GlobalInvocationID.xy;
  if (lp.x >= pc.pass.x || lp.y >= pc.pass.y) return;
  ivec2 px = ivec2(lp) + pc.image.zw;
  if (px.x >= pc.image.x || px.y >= pc.image.y) return;
  uint pixel = uint(px.y) * uint(pc.image.x) + uint(px.x);
  vec2 uv = (vec2(px) + 0.5) / vec2(pc.image.xy);
  uint want = pc.frame.w, npix = uint(pc.image.x) * uint(pc.image.y), at = pixel;
  if (pc.pass.z == 0u) {
    if ((want & PT_AOV_DEPTH_NORMAL) != 0u) {
      aov.v[at] = vec4(1.0 + uv.x, 0.0, 0.0, 1.0);
      at += npix;
    }
    if ((want & PT_AOV_ALBEDO_ID) != 0u) {
      aov.v[at] = vec4(uv, 0.5, uintBitsToFloat(1u + uint(uv.x * 4.0)));
      at += npix;
    }
    if ((want & PT_AOV_INSTANCE_UV) != 0u) aov.v[at] = vec4(uintBitsToFloat(1u), uv, 0.0);
  }
  // the pass's samples at once: one noise value for them all
  float n = float(hash(pixel ^ hash(pc.frame.y * 65537u + pc.pass.z)) >> 8) / 16777216.0;
  vec3 sum = pc.pass.z == 0u ? vec3(0.0) : accum.c[pixel].xyz;
  sum += vec3(uv.x, uv.y, 0.5) * ((0.6 + 0.4 * n) * float(pc.pass.w));
  accum.c[pixel] = vec4(sum, 0.0);
}
