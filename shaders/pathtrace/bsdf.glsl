// bsdf.glsl: the materials' scattering. Diffuse (cosine sampling), GGX conductor (Heitz 2018
// VNDF sampling), smooth dielectric (Fresnel reflect / refract; radiance is not scaled by
// 1/eta^2 on refraction, as in Cycles' sharp glass), principled (Blender 3.4 Cycles' Principled
// BSDF v1 as its glTF importer sets it up: Cycles' principled diffuse weighted 1 - metallic plus
// a GGX specular with Cycles' Fresnel colour; lobes picked by an estimate of their weight and
// combined by their pdfs); emitters absorb (pathtrace.comp). What a material is at a hit
// (textures, vertex colours, the normal map) is shade_setup's.
// Directions in world space; n the shading normal facing wo unless said otherwise.

// The material's albedo at uv: its constant albedo times its texture, if any.
vec3 albedo_at(Material m, vec2 uv) {
  uint ti = floatBitsToUint(m.ior.y);
  return !HAS_TEXTURES || ti == PT_NONE ? m.albedo_type.xyz : m.albedo_type.xyz * tex_bilinear(ti, uv, true);
}

// ---- a principled material at a hit ----

// Tangent (xyz, along +u) and bitangent sign (w: bitangent = w cross(normal, tangent)) at s: the
// mesh's own (VATTR) where it has them, else the triangle's from its uv (what MikkTSpace gives
// on a flat face), on spheres along +u of their latitude-longitude uv; w = 0: none (no uv, or
// degenerate).
vec4 surf_tangent(Surf s) {
  if (HAS_SPHERES && s.prim >= g.ntris) {
    vec3 t = vec3(-s.n.z, 0.0, s.n.x);  // d(position)/du; +v (up) is -cross(n, t)
    float l = length(t);
    return l > 1e-8 ? vec4(t / l, -1.0) : vec4(0.0);
  }
  if (HAS_VATTR && g.has_tan != 0u) {
    uint b = 6u * s.prim + 3u;
    vec4 t0 = vattr.v[b], t1 = vattr.v[b + 1u], t2 = vattr.v[b + 2u];
    vec3 t = (1.0 - s.bc.x - s.bc.y) * t0.xyz + s.bc.x * t1.xyz + s.bc.y * t2.xyz;
    if (dot(t, t) > 1e-12) return vec4(t, t0.w < 0.0 ? -1.0 : 1.0);
  }
  if (!HAS_UV || g.has_uv == 0u) return vec4(0.0);
  Tri T = tri_at(s.prim);
  vec3 e1 = T.v1.xyz - T.v0.xyz, e2 = T.v2.xyz - T.v0.xyz;
  vec4 a2 = attr_at(s.prim, 2u), a3 = attr_at(s.prim, 3u);  // words 9-14: the uv
  vec2 uv0 = a2.yz;
  vec2 d1 = vec2(a2.w, a3.x) - uv0, d2 = a3.yz - uv0;
  float det = d1.x * d2.y - d2.x * d1.y;
  if (abs(det) < 1e-20) return vec4(0.0);
  vec3 t = (e1 * d2.y - e2 * d1.y) / det, b = (e2 * d1.x - e1 * d2.x) / det;
  return vec4(t, dot(cross(s.ns, t), b) < 0.0 ? -1.0 : 1.0);
}

// The hit's interpolated normal before its normal map bent it (shade_setup), turned by the path
// loop to the side of the shading normal that bsdf_eval and bsdf_sample get: Cycles' bump
// shadowing term compares the two.
vec3 shade_n0;

// s's shading normal bent by the tangent-space normal map value c (linear, +y along +v), its x
// and y scaled by scale (glTF's normalTexture.scale): the tangent made orthogonal to the
// interpolated normal (Gram-Schmidt), the bitangent w cross(n, t).
vec3 normal_map(Surf s, vec3 c, float scale) {
  vec4 t = surf_tangent(s);
  vec3 n = s.ns, T = t.xyz - n * dot(n, t.xyz);
  float l = length(T);
  if (t.w == 0.0 || l < 1e-12) return n;
  T /= l;
  vec3 m = c * 2.0 - 1.0;
  vec3 r = scale * m.x * T + scale * m.y * t.w * cross(n, T) + m.z * n;
  float rl = length(r);
  return rl > 1e-12 ? r / rl : n;
}

// The material's albedo at s: its albedo_at, times the vertex colours. For a principled material
// the base colour (times its texture, at the material's transformed uv), and m's words become
// the hit's: emission_rough.xyz the emission (times its texture), emission_rough.w the roughness
// and ior.w the metallic (times the metallic-roughness texture's G and B); the normal map bends
// s.ns.
vec3 shade_setup(inout Material m, inout Surf s) {
  vec3 alb;
  if (HAS_PRINCIPLED && floatBitsToUint(m.albedo_type.w) == PT_MAT_PRINCIPLED) {
    vec4 x0 = matx_at(4u * s.mat);
    uvec4 tx = floatBitsToUint(matx_at(4u * s.mat + 1u));
    vec2 uv = mat_uv(s.mat, s.uv);
    uint bt = floatBitsToUint(m.ior.y);
    alb = bt == PT_NONE ? m.albedo_type.xyz : m.albedo_type.xyz * tex_bilinear(bt, uv, true);
    m.ior.w = x0.x;
    if (tx.x != PT_NONE) {
      vec3 mr = tex_bilinear(tx.x, uv, true);
      m.emission_rough.w *= mr.y;
      m.ior.w *= mr.z;
    }
    if (tx.z != PT_NONE) m.emission_rough.xyz *= tex_bilinear(tx.z, uv, true);
    shade_n0 = s.ns;
    if (tx.y != PT_NONE) s.ns = normal_map(s, tex_bilinear(tx.y, uv, true), x0.w);
  } else {
    alb = albedo_at(m, s.uv);
  }
  if (HAS_VATTR && g.has_col != 0u) alb *= s.col;
  return alb;
}

// What material mat (m) emits at uv (its emission texture's value times the emission where it
// is principled and has one).
vec3 emission_at(Material m, uint mat, vec2 uv) {
  if (HAS_PRINCIPLED && floatBitsToUint(m.albedo_type.w) == PT_MAT_PRINCIPLED) {
    uint et = floatBitsToUint(matx_at(4u * mat + 1u).z);
    if (et != PT_NONE) return m.emission_rough.xyz * tex_bilinear(et, mat_uv(mat, uv), true);
  }
  return m.emission_rough.xyz;
}

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

// ---- principled: m as shade_setup left it (emission_rough.w roughness, ior.w metallic) ----

float pow5_1m(float c) {  // (1 - c)^5, c clamped to [0, 1]
  float x = 1.0 - clamp(c, 0.0, 1.0), x2 = x * x;
  return x2 * x2 * x;
}
// The Fresnel reflectance of a dielectric of relative ior eta at cosine c (Cycles'
// fresnel_dielectric_cos: unpolarised, exact).
float fresnel_dielectric(float c, float eta) {
  c = abs(c);
  float g2 = eta * eta - 1.0 + c * c;
  if (g2 <= 0.0) return 1.0;
  float gg = sqrt(g2);
  float A = (gg - c) / (gg + c), B = (c * (gg + c) - 1.0) / (c * (gg - c) + 1.0);
  return 0.5 * A * A * (1.0 + B * B);
}
// The specular's colour at cosine lh between wi and the microfacet normal: Cycles 3.4's
// interpolate_fresnel_color: the dielectric curve of ior, rescaled from [F0, 1] onto [cspec0, 1],
// where cspec0 = mix(F0, base colour, metallic).
vec3 principled_fresnel(vec3 alb, float metal, float ior, float lh) {
  float f0 = fresnel_dielectric(1.0, ior);
  float fh = f0 < 1.0 ? max(fresnel_dielectric(lh, ior) - f0, 0.0) / (1.0 - f0) : 1.0;
  return mix(mix(vec3(f0), alb, metal), vec3(1.0), fh);
}
// The probability of sampling the specular lobe: its estimated weight (the Schlick-interpolated
// specular colour at wo) over the sum with the diffuse's ((1 - metallic) x base colour), by
// luminance, at least 0.1 (a dim but sharp highlight still gets samples); 1 for a metal.
float principled_spec_prob(vec3 alb, float metal, float ior, float no) {
  const vec3 LUM = vec3(0.2126, 0.7152, 0.0722);
  float f0 = fresnel_dielectric(1.0, ior);
  float ws = dot(mix(mix(vec3(f0), alb, metal), vec3(1.0), pow5_1m(no)), LUM);
  float wd = dot(alb, LUM) * (1.0 - metal);
  return wd > 0.0 ? max(ws / (ws + wd), 0.1) : 1.0;
}
// Cycles' bump shadowing term (Conty Estevez et al. 2019, "A Microfacet-Based Shadowing Function
// to Solve the Bump Terminator Problem"), which Cycles applies to diffuse lobes whose normal n a
// normal map bent away from the interpolated normal n0: light at grazing angles to n0 fades out
// smoothly instead of lighting the bent side in full.
float bump_shadowing(vec3 n0, vec3 n, vec3 wi) {
  float d = dot(n, wi) * dot(n0, n);
  float g = d != 0.0 ? dot(n0, wi) / d : 0.0;
  if (g >= 1.0) return 1.0;
  if (g < 0.0) return 0.0;
  return g * (1.0 + g - g * g);
}
// f * cos(wi) of the principled BSDF and the pdf of principled sampling choosing wi.
vec3 principled_eval(Material m, vec3 alb, vec3 n, vec3 wo, vec3 wi, out float pdf) {
  pdf = 0.0;
  float no = dot(n, wo), ni = dot(n, wi);
  if (no <= 0.0 || ni <= 0.0) return vec3(0.0);
  float rough = m.emission_rough.w, metal = m.ior.w, ior = m.ior.x;
  // Cycles' principled diffuse (PRINCIPLED_DIFFUSE_FULL): Burley's Lambert part and his
  // retro-reflection, with 2 cos^2(theta_d) written as 1 + wi.wo
  float fo = pow5_1m(no), fi = pow5_1m(ni), rr = rough * (1.0 + dot(wi, wo));
  float fd = (1.0 - 0.5 * fo) * (1.0 - 0.5 * fi) + rr * (fo + fi + fo * fi * (rr - 1.0));
  if (any(notEqual(shade_n0, n))) fd *= bump_shadowing(shade_n0, n, wi);  // a normal map's
  vec3 f = alb * ((1.0 - metal) * fd * ni / PI);
  // GGX with height-correlated Smith shadowing (as the conductor; Cycles 3.4's is separable)
  float alpha = max(rough * rough, 1e-3), a2 = alpha * alpha;
  vec3 hv = normalize(wo + wi);
  float nh = max(dot(n, hv), 0.0), lh = max(dot(wi, hv), 0.0);
  float D = ggx_d(nh, a2), L1 = ggx_lambda(no, a2), L2 = ggx_lambda(ni, a2);
  f += principled_fresnel(alb, metal, ior, lh) * (D / (4.0 * no * (1.0 + L1 + L2)));
  float ps = principled_spec_prob(alb, metal, ior, no);
  pdf = ps * D / (4.0 * no * (1.0 + L1)) + (1.0 - ps) * ni / PI;
  return f;
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
  if (HAS_PRINCIPLED && type == PT_MAT_PRINCIPLED) return principled_eval(m, alb, n, wo, wi, pdf);
  if (!HAS_CONDUCTORS || type == PT_MAT_DIFFUSE) {
    float c = dot(n, wi);
    pdf = max(c, 0.0) / PI;
    return c > 0.0 ? alb * c / PI : vec3(0.0);
  }
  float alpha = max(m.emission_rough.w * m.emission_rough.w, 1e-3);
  return conductor_eval(alb, alpha, n, wo, wi, pdf);
}

// Samples the next direction wi at a vertex of material m (not an emitter) from the 2D sample
// bu, about the shading normal ns; n is the geometric normal on wo's side, sp the hit point;
// first: the vertex is the camera ray's hit. Multiplies beta by f cos / pdf, sets pdf (solid
// angle; 0 for the dielectric's delta lobes) and, on refraction, moves the ray origin p to the
// far side. False ends the path: a direction on the wrong side of the geometric surface (it
// would leak through), or no transmission.
bool bsdf_sample(Material m, vec3 alb, bool front, bool first, vec3 sp, vec3 n, vec3 ns, vec3 wo,
                 vec2 bu, inout vec3 p, inout vec3 beta, out vec3 wi, out float pdf) {
  uint type = floatBitsToUint(m.albedo_type.w);
  vec3 t, b;
  basis(ns, t, b);
  if (HAS_PRINCIPLED && type == PT_MAT_PRINCIPLED) {  // one lobe by bu.x (remapped: keeps its strata)
    float ps = principled_spec_prob(alb, m.ior.w, m.ior.x, dot(ns, wo));
    if (bu.x < ps) {
      float alpha = max(m.emission_rough.w * m.emission_rough.w, 1e-3);
      vec3 hl = sample_vndf(vec3(dot(wo, t), dot(wo, b), dot(wo, ns)), alpha, bu.x / ps, bu.y);
      wi = reflect(-wo, hl.x * t + hl.y * b + hl.z * ns);
    } else {
      float r = sqrt((bu.x - ps) / (1.0 - ps)), phi = 2.0 * PI * bu.y;
      wi = r * cos(phi) * t + r * sin(phi) * b + sqrt(max(0.0, 1.0 - r * r)) * ns;
    }
    vec3 f = principled_eval(m, alb, ns, wo, wi, pdf);
    if (pdf <= 0.0 || dot(n, wi) <= 0.0) return false;
    beta *= f / pdf;
    return true;
  }
  if (type == PT_MAT_DIFFUSE || (!HAS_CONDUCTORS && !HAS_DIELECTRICS)) {
    float r = sqrt(bu.x), phi = 2.0 * PI * bu.y;
    wi = r * cos(phi) * t + r * sin(phi) * b + sqrt(max(0.0, 1.0 - r * r)) * ns;
    beta *= alb;  // f cos / pdf
    pdf = max(dot(ns, wi), 1e-8) / PI;
    return dot(n, wi) > 0.0;
  }
  if (!HAS_DIELECTRICS || (HAS_CONDUCTORS && type == PT_MAT_CONDUCTOR)) {
    float alpha = max(m.emission_rough.w * m.emission_rough.w, 1e-3);
    vec3 wl = vec3(dot(wo, t), dot(wo, b), dot(wo, ns));
    vec3 hl = sample_vndf(wl, alpha, bu.x, bu.y);
    vec3 hw = hl.x * t + hl.y * b + hl.z * ns;
    wi = reflect(-wo, hw);
    vec3 f = conductor_eval(alb, alpha, ns, wo, wi, pdf);
    if (pdf <= 0.0 || dot(n, wi) <= 0.0) return false;
    beta *= f / pdf;
    return true;
  }
  // Smooth dielectric.
  float eta = front ? 1.0 / m.ior.x : m.ior.x;
  float ci = dot(ns, wo);
  float s2 = eta * eta * (1.0 - ci * ci);
  float F = 1.0;
  if (s2 < 1.0) {
    float ct = sqrt(1.0 - s2);
    float rs = (eta * ci - ct) / (eta * ci + ct), rp = (ci - eta * ct) / (ci + eta * ct);
    F = 0.5 * (rs * rs + rp * rp);
  }
  // Reflection with probability pr, refraction with 1 - pr; throughput F / pr or
  // (1 - F) / (1 - pr) times the tint: no 1/eta^2 (Cycles' convention; the importance/radiance
  // asymmetry cancels on any path that leaves the glass again). pr is F, except at the camera
  // ray's hit, where each lobe gets at least 1/8 of the weight (Cycles 3.4's defensive sampling
  // of the closures at the first bounce): glass seen head-on (F = 0.04) reflects in 1 sample
  // in 9 instead of 1 in 25, which at 16 spp made its reflection 4x noisier than Cycles'. The
  // choice takes the BSDF's stratified dimension, which a smooth interface has no other use for
  // (an independent random number here made smooth glass ~1.8x noisier than Cycles).
  float pr = F;
  if (first && F < 1.0) {
    float r = max(F, 0.125), t = max(1.0 - F, 0.125);
    pr = r / (r + t);
  }
  pdf = 0.0;
  if (bu.x < pr) {
    wi = reflect(-wo, ns);
    if (dot(n, wi) <= 0.0) wi = reflect(-wo, n);
    if (pr != F) beta *= F / pr;
  } else {
    wi = refract(-wo, ns, eta);
    if (dot(n, wi) >= 0.0) wi = refract(-wo, n, eta);
    if (dot(n, wi) >= 0.0) return false;  // total internal reflection about n: no transmission
    p = sp - n * EPS * max(1.0, length(sp));
    beta *= pr != F ? alb * ((1.0 - F) / (1.0 - pr)) : alb;
  }
  return true;
}
