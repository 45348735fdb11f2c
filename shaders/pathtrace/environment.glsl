// environment.glsl: the environment's radiance (constant, gradient, or an equirectangular map
// rotated about +y), and its sampling for next-event estimation: a map by its luminance
// distribution (marginal row CDF, conditional column CDFs; Pharr et al., PBRT 3rd ed. 13.6.7 /
// 14.2.4), constant and gradient cosine-distributed about the shading normal.

// Direction d in the frame latlong() reads the map in: d turned right-handed about +y by the
// angle g.env_cos / g.env_sin give (the scene's rotation plus half a turn, pack.c), so that the
// map is Blender's Environment Texture behind a Mapping node rotating Z by `rotation`.
vec3 to_map(vec3 d) {
  float c = g.env_cos, s = g.env_sin;
  return vec3(c * d.x + s * d.z, d.y, -s * d.x + c * d.z);
}

vec3 env(vec3 d) {
  if (g.env_type == PT_ENV_GRADIENT) return mix(g.env_color, g.env_top, 0.5 * (1.0 + d.y));
  if (HAS_ENV_MAP && g.env_type == PT_ENV_MAP) {
    vec2 ll = latlong(to_map(d));
    return tex_bilinear(g.env_texture, vec2(ll.x, 1.0 - ll.y), false) * g.env_color;
  }
  return g.env_color;
}

// Solid-angle pdf of env_sample choosing direction d from a vertex of shading normal ns (the
// environment's own technique, before the probability of picking the environment).
float env_pdf(vec3 d, vec3 ns) {
  if (!HAS_ENV_MAP || g.env_type != PT_ENV_MAP) return max(dot(d, ns), 0.0) / PI;
  uvec4 info = texinfo_at(g.env_texture);
  uint w = info.y, h = info.z;
  vec3 m = to_map(d);
  vec2 ll = latlong(m);
  float st = sqrt(max(0.0, 1.0 - m.y * m.y));
  if (st <= 0.0) return 0.0;
  uint x = wrap_index(ll.x * float(w), w), y = min(uint(ll.y * float(h)), h - 1u);
  float pmf = envd_at(h + w * h + y * w + x);
  return pmf * float(w) * float(h) / (2.0 * PI * PI * st);
}

// First index i in [first, first + n) with cdf[i] > u (the last entry is 1 > u).
uint cdf_find(uint first, uint n, float u) {
  uint lo = 0u, hi = n - 1u;
  while (lo < hi) {
    uint mid = (lo + hi) / 2u;
    if (envd_at(first + mid) <= u) lo = mid + 1u; else hi = mid;
  }
  return lo;
}

// A direction towards the environment and its pdf (as env_pdf). Maps: a pixel by the row and
// column CDFs, uniformly within it in (u, polar angle); constant and gradient: cosine-distributed
// about the shading normal ns (for a diffuse surface under a constant sky, the two techniques
// then agree and each sample is exact: the furnace test's zero variance is kept).
vec3 env_sample(vec2 u, vec3 ns, out float pdf) {
  if (!HAS_ENV_MAP || g.env_type != PT_ENV_MAP) {
    vec3 t, b;
    basis(ns, t, b);
    float r = sqrt(u.x), phi = 2.0 * PI * u.y;
    vec3 d = r * cos(phi) * t + r * sin(phi) * b + sqrt(max(0.0, 1.0 - u.x)) * ns;
    pdf = max(dot(d, ns), 0.0) / PI;
    return d;
  }
  uvec4 info = texinfo_at(g.env_texture);
  uint w = info.y, h = info.z;
  uint y = cdf_find(0u, h, u.x);
  float r0 = y > 0u ? envd_at(y - 1u) : 0.0, r1 = envd_at(y);
  uint x = cdf_find(h + y * w, w, u.y);
  float c0 = x > 0u ? envd_at(h + y * w + x - 1u) : 0.0, c1 = envd_at(h + y * w + x);
  float fu = (float(x) + clamp((u.y - c0) / max(c1 - c0, 1e-30), 0.0, 1.0)) / float(w);
  float fv = (float(y) + clamp((u.x - r0) / max(r1 - r0, 1e-30), 0.0, 1.0)) / float(h);
  float theta = fv * PI, phi = 2.0 * PI * (fu - 0.5);
  float st = sin(theta);
  vec3 m = vec3(-st * cos(phi), cos(theta), -st * sin(phi));  // inverse of latlong
  float pmf = envd_at(h + w * h + y * w + x);
  pdf = st > 0.0 ? pmf * float(w) * float(h) / (2.0 * PI * PI * st) : 0.0;
  float c = g.env_cos, s = g.env_sin;
  return vec3(c * m.x - s * m.z, m.y, s * m.x + c * m.z);  // back to world: to_map's inverse
}
