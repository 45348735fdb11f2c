// bsdf.glsl: the materials' scattering. Diffuse (cosine sampling), GGX conductor (Heitz 2018
// VNDF sampling), smooth dielectric (Fresnel reflect / refract; radiance is not scaled by
// 1/eta^2 on refraction, as in Cycles' sharp glass); emitters absorb (pathtrace.comp).
// Directions in world space; n the shading normal facing wo unless said otherwise.

// The material's albedo at uv: its constant albedo times its texture, if any.
vec3 albedo_at(Material m, vec2 uv) {
  uint ti = floatBitsToUint(m.ior.y);
  return !HAS_TEXTURES || ti == PT_NONE ? m.albedo_type.xyz : m.albedo_type.xyz * tex_bilinear(ti, uv, true);
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
  if (!HAS_CONDUCTORS || type == PT_MAT_DIFFUSE) {
    float c = dot(n, wi);
    pdf = max(c, 0.0) / PI;
    return c > 0.0 ? alb * c / PI : vec3(0.0);
  }
  float alpha = max(m.emission_rough.w * m.emission_rough.w, 1e-3);
  return conductor_eval(alb, alpha, n, wo, wi, pdf);
}

// Samples the next direction wi at a vertex of material m (not an emitter) from the 2D sample
// bu, about the shading normal ns; n is the geometric normal on wo's side, sp the hit point.
// Multiplies beta by f cos / pdf, sets pdf (solid angle; 0 for the dielectric's delta lobes)
// and, on refraction, moves the ray origin p to the far side. False ends the path: a direction
// on the wrong side of the geometric surface (it would leak through), or no transmission.
bool bsdf_sample(Material m, vec3 alb, bool front, vec3 sp, vec3 n, vec3 ns, vec3 wo, vec2 bu,
                 inout vec3 p, inout vec3 beta, out vec3 wi, out float pdf) {
  uint type = floatBitsToUint(m.albedo_type.w);
  vec3 t, b;
  basis(ns, t, b);
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
  // Throughput F / F or (1 - F) / (1 - F) times the tint: no 1/eta^2 (Cycles' convention;
  // the importance/radiance asymmetry cancels on any path that leaves the glass again).
  pdf = 0.0;
  if (rnd() < F) {
    wi = reflect(-wo, ns);
    if (dot(n, wi) <= 0.0) wi = reflect(-wo, n);
  } else {
    wi = refract(-wo, ns, eta);
    if (dot(n, wi) >= 0.0) wi = refract(-wo, n, eta);
    if (dot(n, wi) >= 0.0) return false;  // total internal reflection about n: no transmission
    p = sp - n * EPS * max(1.0, length(sp));
    beta *= alb;
  }
  return true;
}
