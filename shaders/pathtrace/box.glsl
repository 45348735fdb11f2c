// box.glsl: the ray / node-box slab test on the BVH's grid. Pure functions of their arguments
// (no bindings), so that tests/render compiles this file alone to check it.

// A ray's slab constants on the grid: the plane of grid step q along axis k is at
// t = t_origin[k] + q * t_step[k] along the ray. Its rounding differs from that of the plane's
// own coordinate by a few ulps, far less than the step of margin that every quantised box has
// around its primitives.
struct Slab { vec3 t_origin; vec3 t_step; };

// A direction component exactly 0 (an axis-parallel ray) is taken as 1e-30: its reciprocal is
// then large but finite, where 1 / 0 = inf made 0 * inf or inf - inf NaN below, and what min and
// max make of NaN differs between devices (a box could be missed, or its slab ignored). The ray
// then drifts 1e-30 per unit of t, nothing in a scene of extent under 1e8 (beyond that
// (grid - o) / 1e-30 overflows). Non-zero components give exactly the reciprocal as before.
Slab slab_setup(vec3 grid_origin, vec3 grid_step, vec3 o, vec3 d) {
  vec3 inv = 1.0 / mix(d, vec3(1e-30), equal(d, vec3(0.0)));
  Slab s;
  s.t_origin = (grid_origin - o) * inv;
  s.t_step = grid_step * inv;
  return s;
}

// Whether the ray's interval (tmin, tmax) meets node n's box (16-bit grid steps, see
// scene_access.glsl).
bool box_hit(uvec4 n, Slab s, float tmin, float tmax) {
  vec3 qlo = vec3(uvec3(n.x, n.x >> 16, n.y) & 0xffffu);
  vec3 qhi = vec3(uvec3(n.y >> 16, n.z, n.z >> 16) & 0xffffu);
  vec3 t0 = s.t_origin + qlo * s.t_step, t1 = s.t_origin + qhi * s.t_step;
  vec3 lo = min(t0, t1), hi = max(t0, t1);
  float a = max(max(lo.x, lo.y), max(lo.z, tmin));
  float b = min(min(hi.x, hi.y), min(hi.z, tmax));
  return a <= b;
}
