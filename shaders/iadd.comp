#version 450
// iadd: data[i] += value for i < n. The step of dependency-chain tests (CPU -> GPU -> CPU).
// Binding 0 = data (uint[]). Push constants: { uint n; uint value; }.
layout(local_size_x = 64) in;

layout(std430, set = 0, binding = 0) buffer Data { uint data[]; } buf;
layout(push_constant) uniform Push { uint n; uint value; } pc;

void main() {
  uint i = gl_GlobalInvocationID.x;
  if (i < pc.n) buf.data[i] += pc.value;
}
