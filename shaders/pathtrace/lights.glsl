// lights.glsl: next-event estimation. It picks the environment (probability g.env_pick), a
// punctual light (g.plight_pick) or an emitter by power (area times luminance; LIGHTS holds their
// CDF): a triangle sampled uniformly on its area, a sphere uniformly in the cone it subtends; the
// environment as environment.glsl samples it. Each is combined with BSDF sampling by the power
// heuristic (Veach 1997); the pdfs here are also what a BSDF-sampled ray that hits an emitter is
// weighed against. Punctual lights (point, spot, sun; PLIGHTS holds them with their CDF by
// power) are reached by light samples only: no ray hits them, so they take no MIS weight.

// Solid-angle pdf of NEE picking this light point, from x towards a light triangle hit at dist t
// along d: n the triangle's unit geometric normal, rel its material's ior.z (the factor of its
// area in its pick weight). The caller has both from the hit (surface(), mat_at): on lavapipe
// every storage load is a loop over the lanes, run on every bounce whether a lane hit an
// emitter or not, so the triangle and its material are not read a second time here.
float light_pdf(vec3 n, float rel, vec3 d, float t) {
  float cosl = abs(dot(n, d));
  float share = 1.0 - g.env_pick;  // the emitters' part of the light samples
  if (HAS_PLIGHTS) share -= g.plight_pick;
  return t * t / (max(cosl, 1e-8) * g.light_weight) * rel * share;
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

// Solid-angle pdf of NEE choosing emitter hit h, seen from o along d; n: the hit's geometric
// normal (surface()'s s.n), rel: the ior.z of its material.
float emitter_pdf(Hit h, vec3 n, float rel, vec3 o, vec3 d) {
  return !HAS_SPHERES || h.prim < g.ntris ? light_pdf(n, rel, d, h.t)
                                          : sphere_light_pdf(h.prim - g.ntris, o);
}

// A direction uniformly in the cone about unit axis whose half-angle has 1 - cos = omc.
vec3 cone_dir(vec3 axis, float omc, vec2 u) {
  vec3 ta, tb;
  basis(axis, ta, tb);
  float ct = 1.0 - u.x * omc, st = sqrt(max(0.0, 1.0 - ct * ct)), phi = 2.0 * PI * u.y;
  return normalize(st * cos(phi) * ta + st * sin(phi) * tb + ct * axis);
}

// A punctual light sampled from p with the 2D sample u (u.x picks the light by PLIGHTS's CDF, and
// is reused within it): the direction wi towards it, the distance dist to it (1e30 for a sun),
// and w, what it sends to p along wi over the probability of this sample (the pick's included),
// so that a BSDF f (with its cosine) gives f * w. False when it sends nothing (p inside a sphere
// light). Point and spot: radiant intensity I; radius 0 a delta light (I / d^2 at p), radius
// r > 0 a sphere of radiance I / (pi r^2), sampled uniformly in the cone it subtends. Spot:
// glTF's falloff (KHR_lights_punctual): ((cos - cos outer) / (cos inner - cos outer))^2 clamped,
// of the angle between its axis and the way to p. Sun: irradiance E from the direction opposite
// its travel, or with angular radius a > 0 a disc of radiance E over its solid angle (Cycles'
// convention), sampled uniformly in its cone.
bool plight_sample(vec3 p, vec2 u, out vec3 wi, out float dist, out vec3 w) {
  uint lo = 0u, hi = g.nplights - 1u;
  while (lo < hi) { uint mid = (lo + hi) / 2u; if (plights_at(4u * mid + 3u).y < u.x) lo = mid + 1u; else hi = mid; }
  vec4 pt = plights_at(4u * lo), dr = plights_at(4u * lo + 1u), col = plights_at(4u * lo + 2u),
       pk = plights_at(4u * lo + 3u);
  u.x = clamp((u.x - pk.w) / max(pk.y - pk.w, 1e-30), 0.0, 1.0);  // keep the pick's strata
  float pick = g.plight_pick * pk.z;
  uint type = floatBitsToUint(pt.w);
  wi = -dr.xyz;
  dist = 1e30;
  w = col.xyz / pick;
  if (type == PT_LIGHT_SUN) {
    float s = sin(0.5 * dr.w);
    if (dr.w > 0.0) wi = cone_dir(-dr.xyz, 2.0 * s * s, u);
    return true;
  }
  vec3 dc = pt.xyz - p;
  float d2 = dot(dc, dc), r = dr.w;
  if (r > 0.0) {
    float omc = cone_1mcos(vec4(pt.xyz, r), p);
    if (omc <= 0.0) return false;
    wi = cone_dir(normalize(dc), omc, u);
    float b = dot(dc, wi);
    dist = b - sqrt(max(r * r - (d2 - b * b), 0.0));  // to the sphere's near side
    w *= 2.0 * omc / (r * r);  // radiance I / (pi r^2) over the pdf 1 / (2 pi omc)
  } else {
    dist = sqrt(d2);
    wi = dc / dist;
    w /= d2;
  }
  if (type == PT_LIGHT_SPOT) {
    float cd = dot(dr.xyz, -normalize(dc)), span = col.w - pk.x;
    float t = span > 0.0 ? clamp((cd - pk.x) / span, 0.0, 1.0) : (cd > pk.x ? 1.0 : 0.0);
    w *= t * t;
  }
  return true;
}

// One light sample at p (geometric normal n and shading normal ns on wo's side, material m of
// albedo alb, path throughput beta) from the 2D sample lu: *c the light it adds to the path,
// MIS-weighted; false when it adds none (nothing picked, below the surface, or occluded).
bool direct_light(Material m, vec3 alb, vec3 p, vec3 n, vec3 ns, vec3 wo, vec3 beta, vec2 lu,
                  out vec3 c) {
  float penv = ENV_LIT ? g.env_pick : 0.0;
  vec3 wi = vec3(0.0), Le = vec3(0.0);
  float dist = 1e30, lpdf = 0.0;
  float share = 1.0 - penv;  // the emitters' part
  if (HAS_PLIGHTS) {  // punctual lights take the top g.plight_pick of the first dimension
    float ppl = g.plight_pick;
    share -= ppl;
    if (lu.x >= 1.0 - ppl) {
      vec3 w;
      if (!plight_sample(p, vec2((lu.x - (1.0 - ppl)) / ppl, lu.y), wi, dist, w) ||
          !(dot(n, wi) > 0.0) || occluded(p, wi, 0.0, dist * (1.0 - 1e-4)))
        return false;
      float bpdf;
      c = beta * bsdf_eval(m, alb, ns, wo, wi, bpdf) * w;
      return true;
    }
    if (!(penv > 0.0)) lu.x /= share;
  }
  bool pick_env = false;
  if (penv > 0.0) {  // split the first dimension between the two (keeps its strata)
    pick_env = lu.x < penv;
    lu.x = pick_env ? lu.x / penv : (lu.x - penv) / share;
  }
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
    // The light's material is read once, after the triangle or sphere branch: both branches
    // run on lavapipe (under a lane mask), and so would two reads of it.
    uint lmat = 0u;
    vec2 luv = vec2(0.0);  // where the sample lands, for an emission texture (principled only)
    bool tri = !HAS_SPHERES || lp < g.ntris;
    float tpdf = 0.0;  // a triangle's pdf without its material's factor
    if (tri) {
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
        tpdf = dist * dist / (cosl * g.light_weight);
        lmat = floatBitsToUint(T.v0.w);
        if (HAS_PRINCIPLED) luv = tri_uv(lp, b1, b2);
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
          lmat = S.ids.x;
          if (HAS_PRINCIPLED) {  // an emission texture: its value where the sample lands
            vec2 ll = latlong(normalize(p + sh.t * wi - S.cr.xyz));
            luv = vec2(ll.x, 1.0 - ll.y);
          }
        }
      }
    }
    if (tpdf > 0.0 || lpdf > 0.0) {
      Material lm = mat_at(lmat);
      if (tri) lpdf = tpdf * lm.ior.z * share;
      Le = HAS_PRINCIPLED ? emission_at(lm, lmat, luv) : lm.emission_rough.xyz;
    }
  }
  if (!(lpdf > 0.0 && dot(n, wi) > 0.0) || occluded(p, wi, 0.0, dist * (1.0 - 1e-4))) return false;
  float bpdf;
  vec3 f = bsdf_eval(m, alb, ns, wo, wi, bpdf);
  c = beta * f * Le * power_heuristic(lpdf, bpdf) / lpdf;
  return true;
}
