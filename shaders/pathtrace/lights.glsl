// lights.glsl: next-event estimation. It picks the environment (probability g.env_pick) or an
// emitter by power (area times luminance; LIGHTS holds their CDF): a triangle sampled uniformly on
// its area, a sphere uniformly in the cone it subtends; the environment as environment.glsl
// samples it. Each is combined with BSDF sampling by the power heuristic (Veach 1997); the pdfs
// here are also what a BSDF-sampled ray that hits an emitter is weighed against.

// Solid-angle pdf of NEE picking this light point, from x towards a light triangle hit at dist t.
float light_pdf(uint tri, vec3 d, float t) {
  Tri T = tri_at(tri);
  vec3 c = cross(T.v1.xyz - T.v0.xyz, T.v2.xyz - T.v0.xyz);
  float cosl = abs(dot(normalize(c), d));
  float rel = mat_at(floatBitsToUint(T.v0.w)).ior.z;
  return t * t / (max(cosl, 1e-8) * g.light_weight) * rel * (1.0 - g.env_pick);
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
  Sphere S = sphere_at(si);
  float omc = cone_1mcos(S.cr, x);
  return omc > 0.0 ? uintBitsToFloat(S.ids.w) / (2.0 * PI * omc) : 0.0;
}

// Solid-angle pdf of NEE choosing emitter hit h, seen from o along d.
float emitter_pdf(Hit h, vec3 o, vec3 d) {
  return !HAS_SPHERES || h.prim < g.ntris ? light_pdf(h.prim, d, h.t)
                                          : sphere_light_pdf(h.prim - g.ntris, o);
}

// One light sample at p (geometric normal n and shading normal ns on wo's side, material m of
// albedo alb, path throughput beta) from the 2D sample lu: *c the light it adds to the path,
// MIS-weighted; false when it adds none (nothing picked, below the surface, or occluded).
bool direct_light(Material m, vec3 alb, vec3 p, vec3 n, vec3 ns, vec3 wo, vec3 beta, vec2 lu,
                  out vec3 c) {
  float penv = ENV_LIT ? g.env_pick : 0.0;
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
      if (HAS_ALPHA && alpha_hole(lp, b1, b2)) cosl = 0.0;  // a hole emits nothing, as rays see it
      if (cosl > 0.0) {
        Material lm = mat_at(floatBitsToUint(T.v0.w));
        lpdf = dist * dist / (cosl * g.light_weight) * lm.ior.z * (1.0 - penv);
        Le = HAS_PRINCIPLED ? emission_at(lm, floatBitsToUint(T.v0.w), tri_uv(lp, b1, b2)) : lm.emission_rough.xyz;
      }
    } else {  // uniform in the cone the sphere subtends (its visible, front side)
      Sphere S = sphere_at(lp - g.ntris);
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
          if (HAS_PRINCIPLED) {  // an emission texture: its value where the sample lands
            vec2 ll = latlong(normalize(p + sh.t * wi - S.cr.xyz));
            Le = emission_at(mat_at(S.ids.x), S.ids.x, vec2(ll.x, 1.0 - ll.y));
          }
        }
      }
    }
  }
  if (!(lpdf > 0.0 && dot(n, wi) > 0.0) || occluded(p, wi, 0.0, dist * (1.0 - 1e-4))) return false;
  float bpdf;
  vec3 f = bsdf_eval(m, alb, ns, wo, wi, bpdf);
  c = beta * f * Le * power_heuristic(lpdf, bpdf) / lpdf;
  return true;
}
