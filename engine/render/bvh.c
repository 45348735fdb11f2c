/* bvh.c: binned-SAH BVH construction and a CPU traversal (see render_internal.h). */
#include "render_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/error.h"

enum {
  NBINS = 16,
  LEAF_MAX = 2,             /* a node of at most this many primitives always becomes a leaf (2, not
                               4: on lavapipe a primitive test costs about two node tests) */
  CHUNK = 16384,            /* primitives per binning chunk */
  PARALLEL_MIN = 4 * CHUNK, /* nodes at least this large are binned with kiln_parallel_for */
  TASK_MIN = 8192           /* nodes at least this large build their two subtrees in parallel */
};

typedef struct aabb {
  float lo[3], hi[3];
} aabb;

static void box_empty(aabb *b) {
  for (int k = 0; k < 3; k++) b->lo[k] = FLT_MAX, b->hi[k] = -FLT_MAX;
}
/* Plain comparisons, not fminf/fmaxf: those are library calls unless NaN handling is off, and
 * the bounds of finite input have no NaN. */
static void box_grow(aabb *b, const float *lo, const float *hi) {
  for (int k = 0; k < 3; k++) {
    b->lo[k] = lo[k] < b->lo[k] ? lo[k] : b->lo[k];
    b->hi[k] = hi[k] > b->hi[k] ? hi[k] : b->hi[k];
  }
}
static float box_area(const aabb *b) {
  float d[3];
  for (int k = 0; k < 3; k++) d[k] = b->hi[k] - b->lo[k];
  if (d[0] < 0) return 0;
  return 2 * (d[0] * d[1] + d[1] * d[2] + d[2] * d[0]);
}

typedef struct bin {
  aabb box;
  uint32_t n;
} bin;

typedef struct builder {
  kiln_pool *pool;
  /* the top level: a leaf per placement where boxes allow (a placement's test is a whole tree's
   * walk, far more than a node's) */
  bool top;
  aabb *pbox;      /* bounds of primitive prims[i] at index i (kept in the order of prims, */
  float *cent;     /* like its centroid, 3 floats: partitions move them together, so the */
  uint32_t *prims; /* sweeps over a node read memory in order) */
  kiln__bvh_node *nodes;
  size_t nnodes, cap;
  /* parallel binning of one node */
  size_t lo, hi;
  float cmin[3], cscale[3];
  bin (*chunk_bins)[3][NBINS];
  aabb *chunk_cbox;
} builder;

static void bin_range(builder *b, size_t lo, size_t hi, bin bins[3][NBINS]) {
  for (size_t i = lo; i < hi; i++) {
    size_t p = i;
    for (int k = 0; k < 3; k++) {
      int j = (int)((b->cent[3 * p + k] - b->cmin[k]) * b->cscale[k]);
      j = j < 0 ? 0 : j >= NBINS ? NBINS - 1 : j;
      box_grow(&bins[k][j].box, b->pbox[p].lo, b->pbox[p].hi);
      bins[k][j].n++;
    }
  }
}

static void init_bins(bin bins[3][NBINS]) {
  for (int k = 0; k < 3; k++)
    for (int j = 0; j < NBINS; j++) box_empty(&bins[k][j].box), bins[k][j].n = 0;
}

static void bin_chunks(void *ctx, size_t lo, size_t hi) {
  builder *b = ctx;
  for (size_t c = lo; c < hi; c++) {
    init_bins(b->chunk_bins[c]);
    size_t s = b->lo + c * CHUNK, e = s + CHUNK < b->hi ? s + CHUNK : b->hi;
    bin_range(b, s, e, b->chunk_bins[c]);
  }
}

static void cbox_chunks(void *ctx, size_t lo, size_t hi) {
  builder *b = ctx;
  for (size_t c = lo; c < hi; c++) {
    aabb *cb = &b->chunk_cbox[c];
    aabb *nb = &b->chunk_cbox[c + (b->hi - b->lo + CHUNK - 1) / CHUNK];
    box_empty(cb), box_empty(nb);
    size_t s = b->lo + c * CHUNK, e = s + CHUNK < b->hi ? s + CHUNK : b->hi;
    for (size_t i = s; i < e; i++) {
      size_t p = i;
      box_grow(cb, &b->cent[3 * p], &b->cent[3 * p]);
      box_grow(nb, b->pbox[p].lo, b->pbox[p].hi);
    }
  }
}

static int push_node(builder *b, size_t *idx) {
  if (b->nnodes == b->cap) {
    size_t cap = b->cap ? 2 * b->cap : 64;
    kiln__bvh_node *n = realloc(b->nodes, cap * sizeof *n);
    if (!n) return KILN_ENOMEM;
    b->nodes = n, b->cap = cap;
  }
  *idx = b->nnodes++;
  return 0;
}

/* Node bounds and centroid bounds of prims[lo, hi). */
static int node_bounds(builder *b, size_t lo, size_t hi, aabb *nb, aabb *cb) {
  box_empty(nb), box_empty(cb);
  size_t n = hi - lo;
  if (b->pool && n >= PARALLEL_MIN) {
    size_t nch = (n + CHUNK - 1) / CHUNK;
    b->chunk_cbox = malloc(2 * nch * sizeof *b->chunk_cbox);
    if (!b->chunk_cbox) return KILN_ENOMEM;
    b->lo = lo, b->hi = hi;
    int rc = kiln_parallel_for(b->pool, 0, nch, 1, cbox_chunks, b);
    if (rc) {
      free(b->chunk_cbox);
      return rc;
    }
    for (size_t c = 0; c < nch; c++) {
      box_grow(cb, b->chunk_cbox[c].lo, b->chunk_cbox[c].hi);
      box_grow(nb, b->chunk_cbox[nch + c].lo, b->chunk_cbox[nch + c].hi);
    }
    free(b->chunk_cbox);
    return 0;
  }
  for (size_t i = lo; i < hi; i++) {
    size_t p = i;
    box_grow(cb, &b->cent[3 * p], &b->cent[3 * p]);
    box_grow(nb, b->pbox[p].lo, b->pbox[p].hi);
  }
  return 0;
}

static int build(builder *b, size_t lo, size_t hi);

/* Two subtrees built at once (kiln_parallel_for over the two children), each into its own node
 * array, then appended in order, left then right, exactly where the serial recursion puts them. */
typedef struct children {
  builder sub[2];
  size_t lo[2], hi[2];
  int rc[2];
} children;

static void build_child(void *ctx, size_t lo, size_t hi) {
  children *c = ctx;
  for (size_t i = lo; i < hi; i++) c->rc[i] = build(&c->sub[i], c->lo[i], c->hi[i]);
}

static int append_subtree(builder *b, const builder *sub) {
  if (b->nnodes + sub->nnodes > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->nnodes + sub->nnodes) cap *= 2;
    kiln__bvh_node *n = realloc(b->nodes, cap * sizeof *n);
    if (!n) return KILN_ENOMEM;
    b->nodes = n, b->cap = cap;
  }
  size_t base = b->nnodes;
  for (size_t i = 0; i < sub->nnodes; i++) {
    kiln__bvh_node nd = sub->nodes[i];
    if (nd.count == 0) nd.a += (uint32_t)base; /* a right child's index; leaves index prims */
    b->nodes[base + i] = nd;
  }
  b->nnodes += sub->nnodes;
  return 0;
}

static int build(builder *b, size_t lo, size_t hi) {
  size_t idx;
  int rc = push_node(b, &idx);
  if (rc) return rc;
  aabb nb, cb;
  if ((rc = node_bounds(b, lo, hi, &nb, &cb))) return rc;
  kiln__bvh_node *node = &b->nodes[idx];
  memcpy(node->bmin, nb.lo, sizeof nb.lo);
  memcpy(node->bmax, nb.hi, sizeof nb.hi);
  size_t n = hi - lo;
  size_t mid = lo;
  if (n > (b->top ? 1u : (size_t)LEAF_MAX)) {
    bin bins[3][NBINS];
    init_bins(bins);
    for (int k = 0; k < 3; k++) {
      float ext = cb.hi[k] - cb.lo[k];
      b->cmin[k] = cb.lo[k];
      b->cscale[k] = ext > 0 ? NBINS / ext : 0;
    }
    if (b->pool && n >= PARALLEL_MIN) {
      size_t nch = (n + CHUNK - 1) / CHUNK;
      b->chunk_bins = malloc(nch * sizeof *b->chunk_bins);
      if (!b->chunk_bins) return KILN_ENOMEM;
      b->lo = lo, b->hi = hi;
      rc = kiln_parallel_for(b->pool, 0, nch, 1, bin_chunks, b);
      if (rc) {
        free(b->chunk_bins);
        return rc;
      }
      for (size_t c = 0; c < nch; c++)
        for (int k = 0; k < 3; k++)
          for (int j = 0; j < NBINS; j++) {
            box_grow(&bins[k][j].box, b->chunk_bins[c][k][j].box.lo, b->chunk_bins[c][k][j].box.hi);
            bins[k][j].n += b->chunk_bins[c][k][j].n;
          }
      free(b->chunk_bins);
    } else {
      bin_range(b, lo, hi, bins);
    }
    /* SAH sweep: cost of splitting after bin j on axis k. */
    float best = INFINITY;
    int best_k = -1, best_j = -1;
    for (int k = 0; k < 3; k++) {
      if (b->cscale[k] == 0) continue;
      float right_cost[NBINS];
      aabb acc;
      box_empty(&acc);
      uint32_t cnt = 0;
      for (int j = NBINS - 1; j > 0; j--) {
        box_grow(&acc, bins[k][j].box.lo, bins[k][j].box.hi);
        cnt += bins[k][j].n;
        right_cost[j] = cnt ? box_area(&acc) * (float)cnt : 0;
      }
      box_empty(&acc);
      cnt = 0;
      for (int j = 0; j < NBINS - 1; j++) {
        box_grow(&acc, bins[k][j].box.lo, bins[k][j].box.hi);
        cnt += bins[k][j].n;
        if (cnt == 0 || cnt == n) continue;
        float c = box_area(&acc) * (float)cnt + right_cost[j + 1];
        if (c < best) best = c, best_k = k, best_j = j;
      }
    }
    float leaf_cost = box_area(&nb) * (float)n;
    if (best_k >= 0 && (best < leaf_cost || n > 16 || b->top)) {
      /* In-place partition (order of each side kept deterministic: a plain two-index swap). */
      size_t i = lo, j = hi;
      while (i < j) {
        size_t p = i;
        int bj = (int)((b->cent[3 * p + best_k] - b->cmin[best_k]) * b->cscale[best_k]);
        bj = bj < 0 ? 0 : bj >= NBINS ? NBINS - 1 : bj;
        if (bj <= best_j) {
          i++;
        } else {
          --j;
          uint32_t tp = b->prims[i];
          b->prims[i] = b->prims[j], b->prims[j] = tp;
          aabb tb = b->pbox[i];
          b->pbox[i] = b->pbox[j], b->pbox[j] = tb;
          for (int k = 0; k < 3; k++) {
            float tc = b->cent[3 * i + k];
            b->cent[3 * i + k] = b->cent[3 * j + k], b->cent[3 * j + k] = tc;
          }
        }
      }
      mid = i;
    } else if (n > 16) {
      mid = lo + n / 2; /* all centroids equal: split by index */
    }
  }
  if (mid == lo || mid == hi) {
    node = &b->nodes[idx];
    node->a = (uint32_t)lo;
    node->count = (uint32_t)n;
    return 0;
  }
  if (b->pool && n >= TASK_MIN) {
    children c = {0};
    for (int i = 0; i < 2; i++) {
      c.sub[i] = (builder){
          .pool = b->pool, .top = b->top, .pbox = b->pbox, .cent = b->cent, .prims = b->prims};
      c.lo[i] = i ? mid : lo;
      c.hi[i] = i ? hi : mid;
    }
    rc = kiln_parallel_for(b->pool, 0, 2, 1, build_child, &c);
    if (!rc) rc = c.rc[0] ? c.rc[0] : c.rc[1];
    if (!rc) rc = append_subtree(b, &c.sub[0]);
    size_t right = b->nnodes;
    if (!rc) rc = append_subtree(b, &c.sub[1]);
    free(c.sub[0].nodes), free(c.sub[1].nodes);
    if (rc) return rc;
    node = &b->nodes[idx];
    node->a = (uint32_t)right;
    node->count = 0;
    return 0;
  }
  if ((rc = build(b, lo, mid))) return rc;
  size_t right = b->nnodes;
  if ((rc = build(b, mid, hi))) return rc;
  node = &b->nodes[idx]; /* realloc may have moved it */
  node->a = (uint32_t)right;
  node->count = 0;
  return 0;
}

static void tri_box(const float *v, aabb *b) {
  box_empty(b);
  for (int i = 0; i < 3; i++) box_grow(b, v + 3 * i, v + 3 * i);
}

/* A tree over n primitives whose boxes are b->pbox (malloc'd, taken and freed here, like cent). */
static int build_tree(builder *b, size_t n, kiln__bvh_tree *out) {
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    b->prims[i] = (uint32_t)i;
    for (int k = 0; k < 3; k++) b->cent[3 * i + k] = 0.5f * (b->pbox[i].lo[k] + b->pbox[i].hi[k]);
  }
  if (n == 0) {
    if ((rc = push_node(b, &(size_t){0}))) goto fail;
    memset(b->nodes, 0, sizeof *b->nodes);
    for (int k = 0; k < 3; k++) b->nodes[0].bmin[k] = 1, b->nodes[0].bmax[k] = -1;
  } else if ((rc = build(b, 0, n))) {
    goto fail;
  }
  free(b->pbox), free(b->cent);
  out->nodes = b->nodes, out->nnodes = b->nnodes;
  out->prims = b->prims, out->nprims = n;
  return 0;
fail:
  free(b->pbox), free(b->cent), free(b->prims), free(b->nodes);
  return rc;
}

/* A builder with room for n primitives' boxes; 0 or KILN_ENOMEM (nothing held). */
static int builder_init(builder *b, kiln_pool *pool, size_t n) {
  *b = (builder){.pool = pool};
  b->pbox = malloc((n ? n : 1) * sizeof *b->pbox);
  b->cent = malloc((n ? n : 1) * 3 * sizeof *b->cent);
  b->prims = malloc((n ? n : 1) * sizeof *b->prims);
  if (b->pbox && b->cent && b->prims) return 0;
  free(b->pbox), free(b->cent), free(b->prims);
  return KILN_ENOMEM;
}

bool kiln__xform_invert(const float x[12], float inv[12]) {
  double m[3][3], c[3][3];
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) m[i][j] = x[4 * i + j];
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) {
      int i1 = (i + 1) % 3, i2 = (i + 2) % 3, j1 = (j + 1) % 3, j2 = (j + 2) % 3;
      c[i][j] = m[i1][j1] * m[i2][j2] - m[i1][j2] * m[i2][j1]; /* cofactor */
    }
  double det = m[0][0] * c[0][0] + m[0][1] * c[0][1] + m[0][2] * c[0][2];
  if (!(fabs(det) > 0) || !isfinite(det)) return false;
  double r[3][3];
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) r[i][j] = c[j][i] / det;
  for (int i = 0; i < 3; i++) {
    double t = -(r[i][0] * x[3] + r[i][1] * x[7] + r[i][2] * x[11]);
    for (int j = 0; j < 3; j++) inv[4 * i + j] = (float)r[i][j];
    inv[4 * i + 3] = (float)t;
  }
  return true;
}

static void xform_pt(const float x[12], const float p[3], float out[3]) {
  for (int i = 0; i < 3; i++)
    out[i] = x[4 * i] * p[0] + x[4 * i + 1] * p[1] + x[4 * i + 2] * p[2] + x[4 * i + 3];
}

/* The top level over s's placements: each one's world box is its mesh tree's root box
 * transformed (the box of its 8 corners). */
static int build_top(const kiln__scene *s, const kiln__bvh_tree *blas, kiln__bvh *out) {
  size_t n = s->nplacements;
  out->w2o = malloc((n ? n : 1) * 12 * sizeof(float));
  if (!out->w2o) return KILN_ENOMEM;
  builder b;
  if (builder_init(&b, NULL, n)) return KILN_ENOMEM;
  b.top = true;
  for (size_t i = 0; i < n; i++) {
    const kiln__placement *pl = &s->placements[i];
    const float *x = kiln__placement_xform(s, pl);
    if (!kiln__xform_invert(x, out->w2o + 12 * i)) {
      free(b.pbox), free(b.cent), free(b.prims);
      return KILN_EINVAL;
    }
    const kiln__bvh_tree *t = &blas[pl->mesh];
    box_empty(&b.pbox[i]);
    if (!t->nprims) { /* a mesh of no triangles: a point nothing hits */
      float o[3] = {x[3], x[7], x[11]};
      box_grow(&b.pbox[i], o, o);
      continue;
    }
    for (int c = 0; c < 8; c++) {
      float p[3], w[3];
      for (int k = 0; k < 3; k++) p[k] = (c >> k & 1) ? t->nodes[0].bmax[k] : t->nodes[0].bmin[k];
      xform_pt(x, p, w);
      box_grow(&b.pbox[i], w, w);
    }
  }
  return build_tree(&b, n, &out->tlas);
}

/* kiln__bvh_build, with the mesh trees blas (nblas) borrowed when not NULL. */
static int build_all(kiln_pool *pool, const kiln__scene *s, const kiln__bvh *blas_of,
                     kiln__bvh *out) {
  memset(out, 0, sizeof *out);
  size_t n = s->ntris + s->nspheres;
  if (n >= UINT32_MAX) return KILN_EINVAL;
  builder b;
  if (builder_init(&b, pool, n)) return KILN_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (i < s->ntris) {
      tri_box(s->pos + 9 * i, &b.pbox[i]);
    } else {
      const kiln__sphere *sp = &s->spheres[i - s->ntris];
      for (int k = 0; k < 3; k++) {
        b.pbox[i].lo[k] = sp->center[k] - sp->radius;
        b.pbox[i].hi[k] = sp->center[k] + sp->radius;
      }
    }
  }
  kiln__bvh_tree flat;
  int rc = build_tree(&b, n, &flat);
  if (rc) return rc;
  out->nodes = flat.nodes, out->nnodes = flat.nnodes, out->prims = flat.prims, out->nprims = n;
  if (!s->nplacements) return 0;
  if (blas_of) {
    out->blas = blas_of->blas, out->nblas = blas_of->nblas, out->blas_borrowed = true;
    if ((rc = build_top(s, out->blas, out))) kiln__bvh_free(out);
    return rc;
  }
  out->blas = calloc(s->nmeshes, sizeof *out->blas);
  if (!out->blas) return kiln__bvh_free(out), KILN_ENOMEM;
  out->nblas = s->nmeshes;
  for (size_t m = 0; m < s->nmeshes && !rc; m++) {
    const kiln__shared_mesh *me = &s->meshes[m];
    if (me->ntris >= UINT32_MAX) rc = KILN_EINVAL;
    else if (builder_init(&b, pool, me->ntris)) rc = KILN_ENOMEM;
    for (size_t i = 0; !rc && i < me->ntris; i++) tri_box(me->pos + 9 * i, &b.pbox[i]);
    if (!rc) rc = build_tree(&b, me->ntris, &out->blas[m]);
  }
  if (!rc) rc = build_top(s, out->blas, out);
  if (rc) kiln__bvh_free(out);
  return rc;
}

int kiln__bvh_build(kiln_pool *pool, const kiln__scene *s, kiln__bvh *out) {
  return build_all(pool, s, NULL, out);
}

int kiln__bvh_build_flat(kiln_pool *pool, const kiln__bvh *base, const kiln__scene *s,
                         kiln__bvh *out) {
  return build_all(pool, s, base, out);
}

int kiln__bvh_build_top(const kiln__bvh *base, const kiln__scene *s, kiln__bvh *out) {
  memset(out, 0, sizeof *out);
  out->nodes = base->nodes, out->nnodes = base->nnodes;
  out->prims = base->prims, out->nprims = base->nprims, out->flat_borrowed = true;
  out->blas = base->blas, out->nblas = base->nblas, out->blas_borrowed = true;
  int rc = build_top(s, base->blas, out);
  if (rc) kiln__bvh_free(out);
  return rc;
}

static void tree_free(kiln__bvh_tree *t) {
  free(t->nodes), free(t->prims);
  memset(t, 0, sizeof *t);
}

void kiln__bvh_free(kiln__bvh *b) {
  if (!b) return;
  if (b->flat_borrowed) b->nodes = NULL, b->prims = NULL;
  if (b->blas_borrowed) {
    b->blas = NULL;
  } else {
    for (size_t i = 0; i < b->nblas; i++) tree_free(&b->blas[i]);
    free(b->blas);
  }
  free(b->nodes), free(b->prims);
  tree_free(&b->tlas);
  free(b->w2o);
  memset(b, 0, sizeof *b);
}

/* ---- CPU traversal ----------------------------------------------------------------------- */

static void sub3(const float *a, const float *b, float *o) {
  for (int k = 0; k < 3; k++) o[k] = a[k] - b[k];
}
static void cross3(const float *a, const float *b, float *o) {
  o[0] = a[1] * b[2] - a[2] * b[1];
  o[1] = a[2] * b[0] - a[0] * b[2];
  o[2] = a[0] * b[1] - a[1] * b[0];
}
static float dot3(const float *a, const float *b) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

/* Möller–Trumbore; the same test as the shader's. */
static bool tri_hit(const float *v, const float *o, const float *d, float tmin, float *t) {
  float e1[3], e2[3], pv[3], tv[3], qv[3];
  sub3(v + 3, v, e1), sub3(v + 6, v, e2);
  cross3(d, e2, pv);
  float det = dot3(e1, pv);
  if (fabsf(det) < 1e-20f) return false;
  float inv = 1.0f / det;
  sub3(o, v, tv);
  float u = dot3(tv, pv) * inv;
  if (u < 0 || u > 1) return false;
  cross3(tv, e1, qv);
  float w = dot3(d, qv) * inv;
  if (w < 0 || u + w > 1) return false;
  float tt = dot3(e2, qv) * inv;
  if (tt > tmin && tt < *t) {
    *t = tt;
    return true;
  }
  return false;
}

static bool prim_hit(const kiln__scene *s, uint32_t p, const float *o, const float *d, float tmin,
                     float *t) {
  if (p < s->ntris) return tri_hit(s->pos + 9 * (size_t)p, o, d, tmin, t);
  const kiln__sphere *sp = &s->spheres[p - s->ntris];
  float oc[3];
  sub3(o, sp->center, oc);
  float a = dot3(d, d), hb = dot3(oc, d), c = dot3(oc, oc) - sp->radius * sp->radius;
  float disc = hb * hb - a * c;
  if (disc < 0) return false;
  float sq = sqrtf(disc);
  float t0 = (-hb - sq) / a, t1 = (-hb + sq) / a;
  float tt = t0 > tmin ? t0 : t1;
  if (tt > tmin && tt < *t) {
    *t = tt;
    return true;
  }
  return false;
}

static bool box_hit(const kiln__bvh_node *n, const float *o, const float *inv, float tmin,
                    float tmax) {
  for (int k = 0; k < 3; k++) {
    float t0 = (n->bmin[k] - o[k]) * inv[k], t1 = (n->bmax[k] - o[k]) * inv[k];
    if (t0 > t1) {
      float x = t0;
      t0 = t1, t1 = x;
    }
    tmin = t0 > tmin ? t0 : tmin;
    tmax = t1 < tmax ? t1 : tmax;
    if (tmin > tmax) return false;
  }
  return true;
}

/* The ray org + t dir in the object space of a placement whose inverse transform is w (the
 * direction not renormalised: t stays the world's). */
static void ray_to_object(const float w[12], const float *org, const float *dir, float *o,
                          float *d) {
  xform_pt(w, org, o);
  for (int i = 0; i < 3; i++)
    d[i] = w[4 * i] * dir[0] + w[4 * i + 1] * dir[1] + w[4 * i + 2] * dir[2];
}

/* Leaf visitor of walk(): tests primitive p (the tree's own index) and says whether it was hit. */
typedef bool (*leaf_fn)(const void *ctx, uint32_t p, const float *o, const float *d, float tmin,
                        float *t, uint32_t *prim, uint32_t *placement);

/* Closest hit over tree tr along o + t d. */
static bool walk(const kiln__bvh_tree *tr, leaf_fn leaf, const void *ctx, const float *o,
                 const float *d, float tmin, float *t, uint32_t *prim, uint32_t *placement) {
  if (tr->nprims == 0) return false; /* the root is then a placeholder, not a node */
  float inv[3];
  for (int k = 0; k < 3; k++) inv[k] = 1.0f / d[k];
  uint32_t stack[64];
  int sp = 0;
  stack[sp++] = 0;
  bool hit = false;
  while (sp) {
    const kiln__bvh_node *n = &tr->nodes[stack[--sp]];
    if (!box_hit(n, o, inv, tmin, *t)) continue;
    if (n->count) {
      for (uint32_t i = 0; i < n->count; i++)
        if (leaf(ctx, tr->prims[n->a + i], o, d, tmin, t, prim, placement)) hit = true;
    } else if (sp + 2 <= 64) {
      stack[sp++] = n->a;
      stack[sp++] = (uint32_t)(n - tr->nodes) + 1;
    }
  }
  return hit;
}

typedef struct query {
  const kiln__bvh *b;
  const kiln__scene *s;
  const kiln__shared_mesh *mesh; /* mesh_leaf's */
} query;

static bool flat_leaf(const void *ctx, uint32_t p, const float *o, const float *d, float tmin,
                      float *t, uint32_t *prim, uint32_t *placement) {
  const query *q = ctx;
  if (!prim_hit(q->s, p, o, d, tmin, t)) return false;
  *prim = p, *placement = UINT32_MAX;
  return true;
}

static bool mesh_leaf(const void *ctx, uint32_t p, const float *o, const float *d, float tmin,
                      float *t, uint32_t *prim, uint32_t *placement) {
  const query *q = ctx;
  (void)placement;
  if (!tri_hit(q->mesh->pos + 9 * (size_t)p, o, d, tmin, t)) return false;
  *prim = p;
  return true;
}

static bool top_leaf(const void *ctx, uint32_t p, const float *o, const float *d, float tmin,
                     float *t, uint32_t *prim, uint32_t *placement) {
  const query *q = ctx;
  const kiln__placement *pl = &q->s->placements[p];
  query mq = {.b = q->b, .s = q->s, .mesh = &q->s->meshes[pl->mesh]};
  float oo[3], od[3];
  ray_to_object(q->b->w2o + 12 * (size_t)p, o, d, oo, od);
  if (!walk(&q->b->blas[pl->mesh], mesh_leaf, &mq, oo, od, tmin, t, prim, placement)) return false;
  *placement = p;
  return true;
}

bool kiln__bvh_intersect_ex(const kiln__bvh *b, const kiln__scene *s, const float org[3],
                            const float dir[3], float tmin, float *t, uint32_t *prim,
                            uint32_t *placement) {
  uint32_t pl;
  if (!placement) placement = &pl;
  query q = {.b = b, .s = s};
  bool hit = walk(&(kiln__bvh_tree){b->nodes, b->nnodes, b->prims, b->nprims}, flat_leaf, &q, org,
                  dir, tmin, t, prim, placement);
  if (s->nplacements && walk(&b->tlas, top_leaf, &q, org, dir, tmin, t, prim, placement))
    hit = true;
  return hit;
}

bool kiln__bvh_intersect(const kiln__bvh *b, const kiln__scene *s, const float org[3],
                         const float dir[3], float tmin, float *t, uint32_t *prim) {
  return kiln__bvh_intersect_ex(b, s, org, dir, tmin, t, prim, NULL);
}

bool kiln__brute_intersect_ex(const kiln__scene *s, const float org[3], const float dir[3],
                              float tmin, float *t, uint32_t *prim, uint32_t *placement) {
  bool hit = false;
  uint32_t pl;
  if (!placement) placement = &pl;
  for (uint32_t p = 0; p < s->ntris + s->nspheres; p++)
    if (prim_hit(s, p, org, dir, tmin, t)) hit = true, *prim = p, *placement = UINT32_MAX;
  for (uint32_t k = 0; k < s->nplacements; k++) {
    float w[12], o[3], d[3];
    const kiln__shared_mesh *m = &s->meshes[s->placements[k].mesh];
    if (!kiln__xform_invert(kiln__placement_xform(s, &s->placements[k]), w)) continue;
    ray_to_object(w, org, dir, o, d);
    for (uint32_t p = 0; p < m->ntris; p++)
      if (tri_hit(m->pos + 9 * (size_t)p, o, d, tmin, t)) hit = true, *prim = p, *placement = k;
  }
  return hit;
}

bool kiln__brute_intersect(const kiln__scene *s, const float org[3], const float dir[3], float tmin,
                           float *t, uint32_t *prim) {
  return kiln__brute_intersect_ex(s, org, dir, tmin, t, prim, NULL);
}
