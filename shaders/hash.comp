#version 450
// hash: dst[i] = pcg(src[i] + seed) for i < n. An integer kernel with an exact CPU reference
// (kiln's tests and examples check GPU results bit for bit against it).
// Bindings: 0 = src (uint[]), 1 = dst (uint[]). Push constants: { uint n; uint seed; }.
layout(local_size_x = 64) in;

layout(std430, set = 0, binding = 0) readonly buffer Src { uint data[]; } src;
layout(std430, set = 0, binding = 1) writeonly buffer Dst { uint data[]; } dst;
layout(push_constant) uniform Push { uint n; uint seed; } pc;

// PCG-RXS-M-XS 32 (O'Neill 2014), as in Jarzynski & Olano, "Hash Functions for GPU Rendering".
uint pcg(uint v) {
  uint state = v * 747796405u + 2891336453u;
  uint word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

void main() {
  uint i = gl_GlobalInvocationID.x;
  if (i < pc.n) dst.data[i] = pcg(src.data[i] + pc.seed);
}
