/* obj.c: Wavefront OBJ (+ MTL) meshes, and the kiln__mesh helpers that ply.c shares.
 *
 * Read: v, vt, vn, f (v, v/vt, v//vn, v/vt/vn; negative indices count back from the last vertex;
 * polygons are fan-triangulated), o (each `o` with faces becomes its own group, i.e. its own scene
 * object), usemtl, mtllib (newmtl, Kd, Ke, map_Kd; other MTL statements are ignored). Statements
 * of the OBJ format kiln does not render (g, s, l, p, curves and surfaces) are skipped; anything
 * else, a malformed number, an index out of range or a face of fewer than three vertices is a
 * KILN_EPARSE naming the file and line. The file is read whole and tokenised in place. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/error.h"
#include "scene_internal.h"

void kiln__mesh_free(kiln__mesh *m) {
  if (!m) return;
  free(m->pos), free(m->nrm), free(m->uv), free(m->col), free(m->tan);
  free(m->tri_group), free(m->tri_mat);
  for (size_t i = 0; i < m->ngroups; i++) free(m->groups[i]);
  free(m->groups);
  for (size_t i = 0; i < m->nmat_names; i++) free(m->mat_names[i]);
  free(m->mat_names);
  for (size_t i = 0; i < m->nmtls; i++) free(m->mtls[i].name), free(m->mtls[i].map_kd);
  free(m->mtls);
  free(m->mtl_dir);
  memset(m, 0, sizeof *m);
}

int kiln__mesh_push(kiln__mesh *m, size_t *cap, const float p[9], const float *n, const float *uv,
                    uint32_t group, uint32_t mat) {
  size_t t = m->ntris;
  if (t == *cap) {
    size_t nc = *cap ? *cap * 2 : 256;
    float *pos = realloc(m->pos, nc * 9 * sizeof(float));
    if (pos) m->pos = pos;
    uint32_t *g = realloc(m->tri_group, nc * sizeof(uint32_t));
    if (g) m->tri_group = g;
    uint32_t *mt = realloc(m->tri_mat, nc * sizeof(uint32_t));
    if (mt) m->tri_mat = mt;
    float *nr = m->nrm ? realloc(m->nrm, nc * 9 * sizeof(float)) : NULL;
    if (nr) m->nrm = nr;
    float *u = m->uv ? realloc(m->uv, nc * 6 * sizeof(float)) : NULL;
    if (u) m->uv = u;
    if (!pos || !g || !mt || (m->nrm && !nr) || (m->uv && !u)) return KILN_ENOMEM;
    *cap = nc;
  }
  if (n && !m->nrm) { /* the first face with normals: the earlier ones get geometric normals */
    m->nrm = malloc(*cap * 9 * sizeof(float));
    if (!m->nrm) return KILN_ENOMEM;
    for (size_t k = 0; k < t; k++) {
      kiln__tri_normal(m->pos + 9 * k, m->nrm + 9 * k);
      memcpy(m->nrm + 9 * k + 3, m->nrm + 9 * k, 3 * sizeof(float));
      memcpy(m->nrm + 9 * k + 6, m->nrm + 9 * k, 3 * sizeof(float));
    }
  }
  if (uv && !m->uv) {
    m->uv = calloc(*cap * 6, sizeof(float));
    if (!m->uv) return KILN_ENOMEM;
  }
  memcpy(m->pos + 9 * t, p, 9 * sizeof(float));
  if (m->nrm) {
    if (n) {
      memcpy(m->nrm + 9 * t, n, 9 * sizeof(float));
    } else {
      kiln__tri_normal(p, m->nrm + 9 * t);
      memcpy(m->nrm + 9 * t + 3, m->nrm + 9 * t, 3 * sizeof(float));
      memcpy(m->nrm + 9 * t + 6, m->nrm + 9 * t, 3 * sizeof(float));
    }
  }
  if (m->uv) {
    if (uv) memcpy(m->uv + 6 * t, uv, 6 * sizeof(float));
    else memset(m->uv + 6 * t, 0, 6 * sizeof(float));
  }
  m->tri_group[t] = group, m->tri_mat[t] = mat;
  m->ntris++;
  return 0;
}

/* ---- the OBJ reader -------------------------------------------------------------------------- */

typedef struct objr {
  kiln__mesh *m;
  kiln__mesh_error *err;
  const char *file; /* for messages: the file being read (OBJ or MTL) */
  int line;
  float *v, *vt, *vn;
  size_t nv, nvt, nvn, cv, cvt, cvn, tri_cap;
  char *pending_group; /* the `o` name whose group is created by its first face */
  int64_t group;       /* current group index, -1 before the first face */
  uint32_t mat;        /* current mat_names index, UINT32_MAX before any usemtl */
} objr;

static int fail(objr *r, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  snprintf(r->err->file, sizeof r->err->file, "%s", r->file);
  r->err->line = r->line;
  vsnprintf(r->err->message, sizeof r->err->message, fmt, ap);
  va_end(ap);
  return code;
}

char *kiln__mesh_token(char **p) {
  char *s = *p;
  while (*s == ' ' || *s == '\t') s++;
  if (!*s) return *p = s, NULL;
  char *e = s;
  while (*e && *e != ' ' && *e != '\t') e++;
  if (*e) *e++ = '\0';
  *p = e;
  return s;
}

static bool parse_float(const char *tok, float *out) {
  if (!tok) return false;
  char *end;
  errno = 0;
  double d = strtod(tok, &end);
  if (end == tok || *end || !isfinite(d) || fabs(d) > 3.0e38) return false;
  *out = (float)d;
  return true;
}

/* Reads n floats (n_opt more may follow) into out. */
static int floats(objr *r, char **p, float *out, int n, int n_opt, const char *what) {
  for (int i = 0; i < n + n_opt; i++) {
    char *t = kiln__mesh_token(p);
    if (!t && i >= n) return 0;
    if (!parse_float(t, &out[i]))
      return fail(r, KILN_EPARSE, "%s: %s number %d: %s", what, t ? "bad" : "missing", i + 1,
                  t ? t : "end of line");
  }
  if (kiln__mesh_token(p)) return fail(r, KILN_EPARSE, "%s: too many numbers", what);
  return 0;
}

static int push3(float **arr, size_t *n, size_t *cap, const float *x, int k) {
  if (*n == *cap) {
    size_t nc = *cap ? *cap * 2 : 1024;
    float *a = realloc(*arr, nc * (size_t)k * sizeof(float));
    if (!a) return KILN_ENOMEM;
    *arr = a, *cap = nc;
  }
  memcpy(*arr + *n * (size_t)k, x, (size_t)k * sizeof(float));
  (*n)++;
  return 0;
}

/* Resolves a 1-based (or negative, relative) OBJ index against count; -1 if out of range. */
static int64_t resolve(const char *s, char **end, size_t count) {
  errno = 0;
  long long i = strtoll(s, end, 10);
  if (*end == s || errno) return -1;
  if (i > 0 && (unsigned long long)i <= count) return i - 1;
  if (i < 0 && (unsigned long long)(-(i + 1)) < count) return (int64_t)count + i;
  return -1;
}

typedef struct fvert {
  int64_t v, vt, vn; /* -1: absent */
} fvert;

static int parse_fvert(objr *r, const char *tok, fvert *fv) {
  char *e;
  fv->vt = fv->vn = -1;
  fv->v = resolve(tok, &e, r->nv);
  if (fv->v < 0)
    return fail(r, KILN_EPARSE, "face: vertex index '%s' out of range (%zu vertices)", tok, r->nv);
  if (*e == '/') {
    const char *s = e + 1;
    if (*s != '/') {
      fv->vt = resolve(s, &e, r->nvt);
      if (fv->vt < 0)
        return fail(r, KILN_EPARSE, "face: texture index in '%s' out of range (%zu)", tok, r->nvt);
    } else {
      e = (char *)s;
    }
    if (*e == '/') {
      s = e + 1;
      fv->vn = resolve(s, &e, r->nvn);
      if (fv->vn < 0)
        return fail(r, KILN_EPARSE, "face: normal index in '%s' out of range (%zu)", tok, r->nvn);
    }
  }
  if (*e) return fail(r, KILN_EPARSE, "face: malformed vertex '%s'", tok);
  return 0;
}

static int start_group(objr *r) {
  kiln__mesh *m = r->m;
  const char *name = r->pending_group ? r->pending_group : ""; /* faces before any `o` */
  char **g = realloc(m->groups, (m->ngroups + 1) * sizeof *g);
  if (!g) return KILN_ENOMEM;
  m->groups = g;
  size_t n = strlen(name);
  if (!(g[m->ngroups] = malloc(n + 1))) return KILN_ENOMEM;
  memcpy(g[m->ngroups], name, n + 1);
  r->group = (int64_t)m->ngroups++;
  free(r->pending_group), r->pending_group = NULL;
  return 0;
}

static void corner(const objr *r, const fvert *f, float *p, float *n, float *uv) {
  memcpy(p, r->v + 3 * f->v, 3 * sizeof(float));
  if (f->vn >= 0) memcpy(n, r->vn + 3 * f->vn, 3 * sizeof(float));
  if (f->vt >= 0) memcpy(uv, r->vt + 3 * f->vt, 2 * sizeof(float));
}

static int face(objr *r, char *p) {
  fvert f0, prev, cur;
  int count = 0, rc;
  for (char *t; (t = kiln__mesh_token(&p)); count++) {
    if ((rc = parse_fvert(r, t, &cur))) return rc;
    if (count == 0) f0 = cur;
    if (count >= 2) {
      if (r->group < 0 && (rc = start_group(r))) return rc;
      float pos[9], nrm[9], uv[6];
      const fvert *fv[3] = {&f0, &prev, &cur};
      bool has_n = true, has_uv = true;
      for (int k = 0; k < 3; k++) {
        corner(r, fv[k], pos + 3 * k, nrm + 3 * k, uv + 2 * k);
        has_n &= fv[k]->vn >= 0, has_uv &= fv[k]->vt >= 0;
      }
      if ((rc = kiln__mesh_push(r->m, &r->tri_cap, pos, has_n ? nrm : NULL, has_uv ? uv : NULL,
                                (uint32_t)r->group, r->mat)))
        return rc;
    }
    prev = cur;
  }
  if (count < 3) return fail(r, KILN_EPARSE, "face with %d vertices (at least 3 needed)", count);
  return 0;
}

static int usemtl(objr *r, char *p) {
  const char *name = kiln__mesh_token(&p);
  if (!name) return fail(r, KILN_EPARSE, "usemtl without a name");
  kiln__mesh *m = r->m;
  for (size_t i = 0; i < m->nmat_names; i++)
    if (strcmp(m->mat_names[i], name) == 0) return r->mat = (uint32_t)i, 0;
  char **a = realloc(m->mat_names, (m->nmat_names + 1) * sizeof *a);
  if (!a) return KILN_ENOMEM;
  m->mat_names = a;
  size_t n = strlen(name);
  if (!(a[m->nmat_names] = malloc(n + 1))) return KILN_ENOMEM;
  memcpy(a[m->nmat_names], name, n + 1);
  r->mat = (uint32_t)m->nmat_names++;
  return 0;
}

static char *dup_str(const char *s) {
  size_t n = strlen(s);
  char *c = malloc(n + 1);
  if (c) memcpy(c, s, n + 1);
  return c;
}

static int mtl_line(objr *r, char *p, const char *kw) {
  kiln__mesh *m = r->m;
  if (strcmp(kw, "newmtl") == 0) {
    const char *name = kiln__mesh_token(&p);
    if (!name) return fail(r, KILN_EPARSE, "newmtl without a name");
    kiln__mtl *a = realloc(m->mtls, (m->nmtls + 1) * sizeof *a);
    if (!a) return KILN_ENOMEM;
    m->mtls = a;
    kiln__mtl *t = &a[m->nmtls];
    memset(t, 0, sizeof *t);
    t->kd[0] = t->kd[1] = t->kd[2] = 0.8f;
    if (!(t->name = dup_str(name))) return KILN_ENOMEM;
    m->nmtls++;
    return 0;
  }
  bool kd = strcmp(kw, "Kd") == 0, ke = strcmp(kw, "Ke") == 0, map = strcmp(kw, "map_Kd") == 0;
  if (!kd && !ke && !map) return 0; /* Ns, Ka, Ks, Ni, d, illum, other maps: not used */
  if (m->nmtls == 0) return fail(r, KILN_EPARSE, "%s before any newmtl", kw);
  kiln__mtl *t = &m->mtls[m->nmtls - 1];
  if (map) { /* options may precede the file name, which is the last token */
    const char *last = NULL;
    for (const char *tk; (tk = kiln__mesh_token(&p));) last = tk;
    if (!last) return fail(r, KILN_EPARSE, "map_Kd without a file name");
    free(t->map_kd);
    char *dir = kiln__dirname(r->file); /* r->file: this MTL */
    t->map_kd = dir ? kiln__path_join(dir, last) : NULL;
    free(dir);
    return t->map_kd ? 0 : KILN_ENOMEM;
  }
  return floats(r, &p, kd ? t->kd : t->ke, 3, 0, kw);
}

static bool skipped(const char *kw) {
  static const char *const ok[] = {
      "g",      "s",     "l",          "p",         "mg",       "vp",       "cstype", "deg",
      "curv",   "curv2", "surf",       "parm",      "end",      "bmat",     "step",   "maplib",
      "usemap", "lod",   "shadow_obj", "trace_obj", "ctech",    "stech",    "con",    "sp",
      "hole",   "scrv",  "trim",       "bevel",     "c_interp", "d_interp", NULL};
  for (int i = 0; ok[i]; i++)
    if (strcmp(kw, ok[i]) == 0) return true;
  return false;
}

static int obj_file_line(objr *r, char *p, const char *kw);

/* Reads path line by line, calling obj_file_line (is_mtl false) or mtl_line. */
static int read_lines(objr *r, const char *path, bool is_mtl) {
  char *buf;
  size_t len;
  char msg[200];
  const char *outer_file = r->file;
  int outer_line = r->line;
  r->file = path, r->line = 0;
  int rc = kiln__read_file(path, &buf, &len, msg, sizeof msg);
  if (rc) return fail(r, rc, "%s", msg); /* out of memory too: this file is the one to blame */
  if (memchr(buf, '\0', len)) {
    r->line = 1;
    for (const char *c = buf; *c; c++) r->line += *c == '\n';
    rc = fail(r, KILN_EPARSE, "NUL byte: not a text file");
  }
  for (char *p = buf; !rc && p < buf + len;) {
    char *nl = strchr(p, '\n');
    char *next = nl ? nl + 1 : buf + len;
    if (nl) *nl = '\0';
    size_t l = strlen(p);
    if (l && p[l - 1] == '\r') p[l - 1] = '\0';
    r->line++;
    char *c = strchr(p, '#');
    if (c) *c = '\0';
    char *kw = kiln__mesh_token(&p);
    if (kw) rc = is_mtl ? mtl_line(r, p, kw) : obj_file_line(r, p, kw);
    p = next;
  }
  free(buf);
  if (!rc) r->file = outer_file, r->line = outer_line;
  return rc;
}

static int obj_file_line(objr *r, char *p, const char *kw) {
  float x[3] = {0, 0, 0};
  int rc;
  if (strcmp(kw, "v") == 0) {
    float xw[4]; /* v x y z [w]: w is read and ignored */
    return (rc = floats(r, &p, xw, 3, 1, "v")) ? rc : push3(&r->v, &r->nv, &r->cv, xw, 3);
  }
  if (strcmp(kw, "vt") == 0)
    return (rc = floats(r, &p, x, 1, 2, "vt")) ? rc : push3(&r->vt, &r->nvt, &r->cvt, x, 3);
  if (strcmp(kw, "vn") == 0)
    return (rc = floats(r, &p, x, 3, 0, "vn")) ? rc : push3(&r->vn, &r->nvn, &r->cvn, x, 3);
  if (strcmp(kw, "f") == 0) return face(r, p);
  if (strcmp(kw, "o") == 0) {
    const char *name = kiln__mesh_token(&p);
    free(r->pending_group);
    r->pending_group = dup_str(name ? name : "object");
    r->group = -1;
    return r->pending_group ? 0 : KILN_ENOMEM;
  }
  if (strcmp(kw, "usemtl") == 0) return usemtl(r, p);
  if (strcmp(kw, "mtllib") == 0) {
    for (const char *name; (name = kiln__mesh_token(&p));) {
      char *mp = kiln__path_join(r->m->mtl_dir, name);
      if (!mp) return KILN_ENOMEM;
      rc = read_lines(r, mp, true);
      if (rc) {
        if (!r->err->file[0]) snprintf(r->err->file, sizeof r->err->file, "%s", mp);
        free(mp);
        return rc;
      }
      free(mp);
    }
    return 0;
  }
  if (skipped(kw)) return 0;
  return fail(r, KILN_EPARSE, "unknown statement '%.40s'", kw);
}

int kiln__obj_load(const char *path, kiln__mesh *m, kiln__mesh_error *err) {
  memset(m, 0, sizeof *m);
  memset(err, 0, sizeof *err);
  objr r = {.m = m, .err = err, .file = path, .group = -1, .mat = UINT32_MAX};
  int rc = (m->mtl_dir = kiln__dirname(path)) ? 0 : KILN_ENOMEM;
  if (!rc) rc = read_lines(&r, path, false);
  if (!rc && m->ntris == 0) {
    snprintf(err->file, sizeof err->file, "%s", path);
    snprintf(err->message, sizeof err->message, "no faces");
    rc = KILN_EPARSE;
  }
  free(r.v), free(r.vt), free(r.vn), free(r.pending_group);
  if (rc) {
    if (rc == KILN_ENOMEM) snprintf(err->message, sizeof err->message, "out of memory");
    kiln__mesh_free(m);
  }
  return rc;
}
