// intersect.glsl: rays against the scene: triangles (Moller-Trumbore), spheres, the stackless
// BVH traversal (trace, occluded), and what a hit is (surface).
#include "box.glsl"

// pl: the placement record (INST, in the top level's leaf order) whose mesh the triangle prim is
// of, PT_NONE for the flat geometry.
struct Hit { float t; uint prim; float u; float v; uint pl; };

bool tri_hit(vec3 v0, vec3 e1, vec3 e2, vec3 o, vec3 d, float tmin, inout Hit h) {  // e: v1 - v0, v2 - v0
  vec3 pv = cross(d, e2);
  float det = dot(e1, pv);
  if (abs(det) < 1e-20) return false;
  float inv = 1.0 / det;
  vec3 tv = o - v0;
  float u = dot(tv, pv) * inv;
  if (u < 0.0 || u > 1.0) return false;
  vec3 qv = cross(tv, e1);
  float w = dot(d, qv) * inv;
  if (w < 0.0 || u + w > 1.0) return false;
  float t = dot(e2, qv) * inv;
  if (t > tmin && t < h.t) { h.t = t; h.u = u; h.v = w; return true; }
  return false;
}

bool sphere_hit(vec4 cr, vec3 o, vec3 d, float tmin, inout Hit h) {
  vec3 oc = o - cr.xyz;
  float a = dot(d, d), hb = dot(oc, d), c = dot(oc, oc) - cr.w * cr.w;
  float disc = hb * hb - a * c;
  if (disc < 0.0) return false;
  float sq = sqrt(disc);
  float t0 = (-hb - sq) / a, t1 = (-hb + sq) / a;
  float t = t0 > tmin ? t0 : t1;
  if (t > tmin && t < h.t) { h.t = t; return true; }
  return false;
}

// The uv of triangle tri at barycentrics (u, v) (0 without uv).
vec2 tri_uv(uint tri, float u, float v) {
  if (!HAS_UV || g.has_uv == 0u) return vec2(0.0);
  vec4 a2 = attr_at(tri, 2u), a3 = attr_at(tri, 3u);  // words 9-14: the uv
  return (1.0 - u - v) * a2.yz + u * vec2(a2.w, a3.x) + v * a3.yz;
}

// A principled material's uv transform (MATX words 8-15) applied to uv.
vec2 mat_uv(uint mat, vec2 uv) {
  vec4 r0 = matx_at(4u * mat + 2u), r1 = matx_at(4u * mat + 3u);
  return vec2(dot(r0.xyz, vec3(uv, 1.0)), dot(r1.xyz, vec3(uv, 1.0)));
}

// Whether triangle tri's material cuts out a hole at barycentrics (u, v): its coverage there
// (alpha x the alpha texture) below its cutoff. MATX is zero for materials without one.
bool alpha_hole(uint tri, float u, float v) {
  uint mat = floatBitsToUint(tri_at(tri).v0.w);
  vec4 x0 = matx_at(4u * mat);
  if (x0.z <= 0.0) return false;
  float a = x0.y;
  uint at = floatBitsToUint(matx_at(4u * mat + 1u).w);
  if (at != PT_NONE) a *= tex_bilinear(at, mat_uv(mat, tri_uv(tri, u, v)), true).x;
  return a < x0.z;
}

// The nodes [ni, end) of one tree (the flat one, or a shared mesh's) against the ray o + t d on
// the grid of slab, into h. mesh: a shared mesh's tree (only triangles), hits of placement pl.
// Stackless: the nodes are in depth-first order (left child = i + 1), an interior node links to
// the node after its subtree (end after the last one), a leaf's subtree ends at i + 1. Nodes are
// visited in the order of a left-first stack traversal, so the hits are the same, without a
// per-invocation stack array. any: stop at the first hit found (shadow rays).
void walk(uint ni, uint end, Slab slab, vec3 o, vec3 d, float tmin, const bool any, const bool mesh,
          uint pl, inout Hit h) {
  while (ni < end) {
    // Nodes until a leaf whose box the ray enters (or the end), then that leaf's primitives: the
    // lanes' leaves are tested together (Aila and Laine 2009, "while-while"), so the primitive
    // test's code runs once per leaf reached, not under a mask at every node.
    uint first = 0u, count = 0u;
    while (ni < end) {
      uvec4 n = node_at(ni);
      bool in_box = box_hit(n, slab, tmin, h.t);
      bool leaf = (n.w & 0x80000000u) != 0u;
      ni = !leaf && !in_box ? n.w : ni + 1u;
      if (leaf && in_box) {
        first = n.w & 0x07ffffffu;
        count = ((n.w >> 27) & 15u) + 1u;
        break;
      }
    }
    for (uint k = first; k < first + count; k++) {
      vec4 r0, r1, r2;
      leaf_prim_at(k, r0, r1, r2);
      uint p = floatBitsToUint(r0.w);
      bool tri = mesh || !HAS_SPHERES || p < g.ntris;
      bool hit;
      if (HAS_ALPHA && tri) {  // a hole is no hit: the ray goes on
        Hit c = h;
        hit = tri_hit(r0.xyz, r1.xyz, r2.xyz, o, d, tmin, c) && !alpha_hole(p, c.u, c.v);
        if (hit) h = c;
      } else {
        hit = tri ? tri_hit(r0.xyz, r1.xyz, r2.xyz, o, d, tmin, h)
                  : sphere_hit(vec4(r0.xyz, r1.x), o, d, tmin, h);
      }
      if (hit) { h.prim = p; h.pl = pl; }
    }
    if (any && h.prim != PT_NONE) break;
  }
}

// The shared meshes: the top level over the placements (INST, on its own grid), and at a
// placement's leaf its mesh's tree against the ray taken into object space (the direction not
// renormalised, so that t stays the world's).
void walk_top(vec3 o, vec3 d, float tmin, const bool any, inout Hit h) {
  uvec4 head = inst_at(0u);
  uint ntop = head.x;
  if (head.y == 0u) return;
  Slab slab = slab_setup(uintBitsToFloat(inst_at(1u).xyz), uintBitsToFloat(inst_at(2u).xyz), o, d);
  uint ni = 0u;
  while (ni < ntop) {
    uvec4 n = inst_at(PT_INST_HEADER + ni);
    bool in_box = box_hit(n, slab, tmin, h.t);
    bool leaf = (n.w & 0x80000000u) != 0u;
    ni = !leaf && !in_box ? n.w : ni + 1u;
    if (!(leaf && in_box)) continue;
    uint first = n.w & 0x07ffffffu, count = ((n.w >> 27) & 15u) + 1u;
    for (uint k = first; k < first + count; k++) {
      uint b = PT_INST_HEADER + ntop + PT_INST_VEC4S * k;
      vec4 w0 = uintBitsToFloat(inst_at(b)), w1 = uintBitsToFloat(inst_at(b + 1u)),
           w2 = uintBitsToFloat(inst_at(b + 2u));
      vec3 oo = vec3(dot(w0.xyz, o) + w0.w, dot(w1.xyz, o) + w1.w, dot(w2.xyz, o) + w2.w);
      vec3 od = vec3(dot(w0.xyz, d), dot(w1.xyz, d), dot(w2.xyz, d));
      uvec4 r = inst_at(b + 3u);
      Slab ms = slab_setup(uintBitsToFloat(inst_at(b + 4u).xyz), uintBitsToFloat(inst_at(b + 5u).xyz),
                           oo, od);
      walk(r.x, r.y, ms, oo, od, tmin, any, true, k, h);
      if (any && h.prim != PT_NONE) break;  // a shadow ray: the leaf's other placements too
    }
    if (any && h.prim != PT_NONE) break;
  }
}

// Closest hit in (tmin, tmax); h.prim = PT_NONE when none. any: stop at the first hit found
// (shadow rays: only whether there is one matters). The flat tree first, then the placements.
Hit trace_impl(vec3 o, vec3 d, float tmin, float tmax, const bool any) {
  Hit h;
  h.t = tmax; h.prim = PT_NONE; h.u = 0.0; h.v = 0.0; h.pl = PT_NONE;
  if (g.ntris + g.nspheres != 0u)
    walk(0u, g.nnodes, slab_setup(g.grid_origin, g.grid_step, o, d), o, d, tmin, any, false, PT_NONE, h);
  if (HAS_INSTANCES && !(any && h.prim != PT_NONE)) walk_top(o, d, tmin, any, h);
  return h;
}
Hit trace(vec3 o, vec3 d, float tmin, float tmax) { return trace_impl(o, d, tmin, tmax, false); }
bool occluded(vec3 o, vec3 d, float tmin, float tmax) {
  return trace_impl(o, d, tmin, tmax, true).prim != PT_NONE;
}

// Surface data of a hit: geometric normal n (unit, as wound / outwards), shading normal ns (unit,
// the interpolated vertex normals, else n), uv, material, ids.
// col: the vertex colours there (white without), prim and (u, v) the hit's primitive and
// barycentrics.
struct Surf { vec3 p; vec3 n; vec3 ns; vec2 uv; uint mat; uint obj; uint inst; vec3 col; uint prim; vec2 bc; };
// v / |v|, or v where it is zero (a mesh without normals in a scene with some has zeros there)
vec3 unit_or_zero(vec3 v) {
  float l = length(v);
  return l > 0.0 ? v / l : v;
}

Surf surface(Hit h, vec3 o, vec3 d) {
  Surf s;
  s.p = o + h.t * d;
  s.uv = vec2(0.0);
  s.col = vec3(1.0);
  s.prim = h.prim;
  s.bc = vec2(h.u, h.v);
  bool placed = HAS_INSTANCES && h.pl != PT_NONE;
  // a shared mesh's triangle: object-space data, normals taken to the world by the inverse
  // transpose (the world-to-object rows, transposed), the instance id its placement's for the group
  vec3 w0 = vec3(1.0, 0.0, 0.0), w1 = vec3(0.0, 1.0, 0.0), w2 = vec3(0.0, 0.0, 1.0);
  uint first_inst = 0u;
  bool rescale = false;
  if (placed) {
    uint b = PT_INST_HEADER + inst_at(0u).x + PT_INST_VEC4S * h.pl;
    w0 = uintBitsToFloat(inst_at(b).xyz); w1 = uintBitsToFloat(inst_at(b + 1u).xyz);
    w2 = uintBitsToFloat(inst_at(b + 2u).xyz);
    first_inst = inst_at(b + 3u).z;
    rescale = inst_at(b + 3u).w != 0u;
  }
  if (placed || !HAS_SPHERES || h.prim < g.ntris) {
    Tri T = tri_at(h.prim);
    vec3 gn = cross(T.v1.xyz - T.v0.xyz, T.v2.xyz - T.v0.xyz);
    s.n = normalize(placed ? gn.x * w0 + gn.y * w1 + gn.z * w2 : gn);
    s.ns = s.n;
    s.mat = floatBitsToUint(T.v0.w); s.obj = floatBitsToUint(T.v1.w); s.inst = floatBitsToUint(T.v2.w);
    if (placed) s.inst += first_inst;  // TRIS holds the triangle's group there
    float bw0 = 1.0 - h.u - h.v;
    if (HAS_NORMALS && g.has_normals != 0u) {
      vec4 a0 = attr_at(h.prim, 0u), a1 = attr_at(h.prim, 1u), a2 = attr_at(h.prim, 2u);
      vec3 n0 = a0.xyz, n1 = vec3(a0.w, a1.xy), n2 = vec3(a1.zw, a2.x);
      if (placed) {  // each vertex's normal into the world, unit, before interpolating, as a
                     // baked copy's (object-space normals are unit: a rotation keeps them so)
        n0 = n0.x * w0 + n0.y * w1 + n0.z * w2;
        n1 = n1.x * w0 + n1.y * w1 + n1.z * w2;
        n2 = n2.x * w0 + n2.y * w1 + n2.z * w2;
        if (rescale) {
          n0 = unit_or_zero(n0);
          n1 = unit_or_zero(n1);
          n2 = unit_or_zero(n2);
        }
      }
      vec3 ns = bw0 * n0 + h.u * n1 + h.v * n2;
      float l = length(ns);
      if (l > 1e-12) s.ns = ns / l;  // opposite normals can cancel: keep the geometric one
    }
    if (HAS_UV && g.has_uv != 0u) {
      vec4 a2 = attr_at(h.prim, 2u), a3 = attr_at(h.prim, 3u);
      s.uv = bw0 * a2.yz + h.u * vec2(a2.w, a3.x) + h.v * a3.yz;
    }
    if (HAS_VATTR && g.has_col != 0u) {
      uint b = 6u * h.prim;
      s.col = bw0 * vattr.v[b].xyz + h.u * vattr.v[b + 1u].xyz + h.v * vattr.v[b + 2u].xyz;
    }
  } else {
    Sphere S = sphere_at(h.prim - g.ntris);
    s.n = normalize(s.p - S.cr.xyz);
    s.ns = s.n;
    vec2 ll = latlong(s.n);  // spheres: the environment's latitude-longitude mapping, world axes
    s.uv = vec2(ll.x, 1.0 - ll.y);
    s.mat = S.ids.x; s.obj = S.ids.y; s.inst = S.ids.z;
  }
  return s;
}
