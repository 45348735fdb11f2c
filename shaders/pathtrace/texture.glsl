// texture.glsl: texture lookups for albedo textures and the environment map: linear RGB floats,
// row 0 at the top (v = 1); bilinear between texel centres, repeating in u, and in v too
// (wrap_v) or clamped there (environment maps: no wrap over a pole).

vec3 texel(uint off, uint w, uint x, uint y) {
  return texels_at(off + 3u * (y * w + x));
}
uint wrap_index(float x, uint n) {  // x mod n, in [0, n)
  float m = x - float(n) * floor(x / float(n));
  return min(uint(max(m, 0.0)), n - 1u);
}
vec3 tex_bilinear(uint ti, vec2 uv, bool wrap_v) {
  uvec4 info = texinfo_at(ti);
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
  vec3 c = mix(a, b, f.y);
  if (HAS_PRINCIPLED && info.w != 0u)  // sRGB-encoded (KILN__TEX_SRGB_FILTERED): decode now
    c = mix(c / 12.92, pow((c + 0.055) / 1.055, vec3(2.4)), greaterThan(c, vec3(0.04045)));
  return c;
}
