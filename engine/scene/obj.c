/* obj.c: Wavefront OBJ (+ MTL) meshes, and the kiln__mesh helpers that ply.c shares.
 *
 * Read: v (with an optional colour: `v x y z r g b`), vt, vn, f (v, v/vt, v//vn, v/vt/vn; negative
 * indices count back from the last vertex; polygons are fan-triangulated), o (each `o` with faces
 * becomes its own group, i.e. its own scene object), usemtl, mtllib. A `\` ending a line continues
 * the statement on the next (in MTL files too). Statements of the OBJ format kiln does not render
 * (g, s, l, p, curves and surfaces) are skipped; anything else, a malformed number, an index out
 * of range or a face of fewer than three vertices is a KILN_EPARSE naming the file and line.
 * MTL: newmtl, Kd, Ke, Ks, Ka, Ns, d / Tr, illum, Ni, Pr, Pm and the maps of kiln__mtl (with
 * their -o, -s, -bm options) are read; what kiln does not render (other keys, maps and options)
 * becomes a warning on the material, naming the MTL file and line, which the scene reports once
 * when a scene uses the material (mtl.c maps the keys to a material). The file is read whole and
 * tokenised in place. */
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
  for (size_t i = 0; i < m->nmtls; i++) {
    kiln__mtl *t = &m->mtls[i];
    free(t->name);
    for (int k = 0; k < KILN__MTL_NMAPS; k++) free(t->maps[k].path);
    for (size_t k = 0; k < t->nwarnings; k++) free(t->warnings[k]);
    free(t->warnings);
  }
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
    float *cl = m->col ? realloc(m->col, nc * 9 * sizeof(float)) : NULL;
    if (cl) m->col = cl;
    if (!pos || !g || !mt || (m->nrm && !nr) || (m->uv && !u) || (m->col && !cl))
      return KILN_ENOMEM;
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
  if (m->col)
    for (int k = 0; k < 9; k++) m->col[9 * t + k] = 1.0f;
  m->tri_group[t] = group, m->tri_mat[t] = mat;
  m->ntris++;
  return 0;
}

int kiln__mesh_push_col(kiln__mesh *m, size_t cap, const float col[9]) {
  if (!m->col) {
    if (!(m->col = malloc(cap * 9 * sizeof(float)))) return KILN_ENOMEM;
    for (size_t i = 0; i < cap * 9; i++) m->col[i] = 1.0f;
  }
  memcpy(m->col + 9 * (m->ntris - 1), col, 9 * sizeof(float));
  return 0;
}

float kiln__srgb_to_linear(float x) {
  return x <= 0.04045f ? x / 12.92f : powf((x + 0.055f) / 1.055f, 2.4f);
}

/* ---- the OBJ reader -------------------------------------------------------------------------- */

typedef struct objr {
  kiln__mesh *m;
  kiln__mesh_error *err;
  const char *file; /* for messages: the file being read (OBJ or MTL) */
  int line;
  float *v, *vt, *vn;
  float *vc; /* per vertex an sRGB-decoded colour, once some vertex has one (white before) */
  size_t nv, nvt, nvn, nvc, cv, cvt, cvn, cvc, tri_cap;
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
      if (r->vc) {
        float col[9];
        for (int k = 0; k < 3; k++) memcpy(col + 3 * k, r->vc + 3 * fv[k]->v, 3 * sizeof(float));
        if ((rc = kiln__mesh_push_col(r->m, r->tri_cap, col))) return rc;
      }
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

/* ---- MTL ------------------------------------------------------------------------------------- */

/* Records "file:line: text" on t, for the scene's warnings when a scene uses t. */
static int mtl_warn(objr *r, kiln__mtl *t, const char *fmt, ...) KILN__PRINTF(3, 4);
static int mtl_warn(objr *r, kiln__mtl *t, const char *fmt, ...) {
  char text[400], *w;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  size_t n = strlen(r->file) + strlen(text) + 24;
  char **a = realloc(t->warnings, (t->nwarnings + 1) * sizeof *a);
  if (!a) return KILN_ENOMEM;
  t->warnings = a;
  if (!(w = malloc(n))) return KILN_ENOMEM;
  snprintf(w, n, "%s:%d: %s", r->file, r->line, text);
  t->warnings[t->nwarnings++] = w;
  return 0;
}

/* One number in [lo, hi] (the whole line). */
static int mtl_number(objr *r, char **p, const char *kw, float lo, float hi, float *out) {
  int rc = floats(r, p, out, 1, 0, kw);
  if (!rc && !(*out >= lo && *out <= hi))
    rc = fail(r, KILN_EPARSE, "%s must be in [%g, %g], not %g", kw, (double)lo, (double)hi,
              (double)*out);
  return rc;
}

/* Up to three numbers of a map option (at least one) into x; *p moves past them. */
static int option_numbers(objr *r, char **p, const char *kw, const char *opt, float *x) {
  int n = 0;
  for (char *save = *p, *t; n < 3 && (t = kiln__mesh_token(p)); save = *p, n++)
    if (!parse_float(t, &x[n])) {
      if (t + strlen(t) < *p) t[strlen(t)] = ' '; /* put the token back */
      *p = save;
      break;
    }
  if (n == 0) return fail(r, KILN_EPARSE, "%s: %s needs a number", kw, opt);
  return 0;
}

/* map_* [options] file: -o and -s give the map's uv transform, -bm a bump map's strength; the
 * other options are read and, where they ask for more than kiln does, warned about. */
static int mtl_map(objr *r, kiln__mtl *t, char *p, const char *kw, int which) {
  kiln__mtl_map *mp = &t->maps[which];
  float o[3] = {0, 0, 0}, sc[3] = {1, 1, 1}, x[3];
  int rc = 0;
  mp->bm = 1;
  for (;;) {
    while (*p == ' ' || *p == '\t') p++;
    char *end = p + strlen(p);
    while (end > p && (end[-1] == ' ' || end[-1] == '\t')) *--end = '\0';
    if (*p != '-' || !strpbrk(p, " \t")) break; /* the rest is the file name */
    const char *opt = kiln__mesh_token(&p);
    bool on_off = !strcmp(opt, "-clamp") || !strcmp(opt, "-blendu") || !strcmp(opt, "-blendv") ||
                  !strcmp(opt, "-cc");
    if (!strcmp(opt, "-o") || !strcmp(opt, "-s")) {
      float *d = opt[1] == 'o' ? o : sc;
      if ((rc = option_numbers(r, &p, kw, opt, d))) return rc;
    } else if (!strcmp(opt, "-bm")) {
      if ((rc = option_numbers(r, &p, kw, opt, x))) return rc;
      if (which == KILN__MTL_MAP_BUMP) mp->bm = x[0];
      else rc = mtl_warn(r, t, "%s: -bm applies to bump maps only: ignored", kw);
    } else if (on_off) {
      const char *v = kiln__mesh_token(&p);
      if (!v || (strcmp(v, "on") && strcmp(v, "off")))
        return fail(r, KILN_EPARSE, "%s: %s needs on or off", kw, opt);
      bool on = v[1] == 'n', on_by_default = opt[1] == 'b'; /* -blendu, -blendv */
      if (on != on_by_default)
        rc = mtl_warn(r, t, "%s: %s %s is not rendered (kiln's textures repeat and blend)", kw, opt,
                      v);
    } else if (!strcmp(opt, "-mm") || !strcmp(opt, "-boost") || !strcmp(opt, "-texres") ||
               !strcmp(opt, "-t")) {
      if ((rc = option_numbers(r, &p, kw, opt, x))) return rc;
      rc = mtl_warn(r, t, "%s: option %s is not rendered: ignored", kw, opt);
    } else if (!strcmp(opt, "-imfchan") || !strcmp(opt, "-type")) {
      if (!kiln__mesh_token(&p)) return fail(r, KILN_EPARSE, "%s: %s needs a value", kw, opt);
      rc = mtl_warn(r, t, "%s: option %s is not rendered: ignored", kw, opt);
    } else {
      rc = mtl_warn(r, t, "%s: unknown option '%.40s': ignored", kw, opt);
    }
    if (rc) return rc;
  }
  if (!*p) return fail(r, KILN_EPARSE, "%s without a file name", kw);
  free(mp->path);
  char *dir = kiln__dirname(r->file); /* r->file: this MTL */
  mp->path = dir ? kiln__path_join(dir, p) : NULL;
  free(dir);
  if (!mp->path) return KILN_ENOMEM;
  const float xf[6] = {sc[0], 0, o[0], 0, sc[1], o[1]};
  memcpy(mp->uv_xform, xf, sizeof xf);
  if (which == KILN__MTL_MAP_D &&
      (rc = mtl_warn(r, t,
                     "%s: kiln has no blending: coverage below 0.5 is a hole, the rest "
                     "opaque",
                     kw)))
    return rc;
  for (int k = 0; k < KILN__MTL_NMAPS; k++) /* one uv transform a material (scene_data.h) */
    if (k != which && t->maps[k].path && memcmp(t->maps[k].uv_xform, xf, sizeof xf) != 0)
      return mtl_warn(r, t,
                      "%s: its -o / -s differ from another map's of '%.100s': kiln uses one "
                      "uv transform a material (the first map's in map_Kd, map_Ke, map_Ns, "
                      "map_Pr, map_Pm, map_d, bump order)",
                      kw, t->name);
  return 0;
}

static int newmtl(objr *r, char *p) {
  kiln__mesh *m = r->m;
  const char *name = kiln__mesh_token(&p);
  if (!name) return fail(r, KILN_EPARSE, "newmtl without a name");
  kiln__mtl *a = realloc(m->mtls, (m->nmtls + 1) * sizeof *a);
  if (!a) return KILN_ENOMEM;
  m->mtls = a;
  kiln__mtl *t = &a[m->nmtls];
  memset(t, 0, sizeof *t);
  t->kd[0] = t->kd[1] = t->kd[2] = 0.8f;
  t->ks[0] = t->ka[0] = t->ns = t->d = t->pr = t->pm = -1;
  t->illum = -1;
  if (!(t->name = dup_str(name))) return KILN_ENOMEM;
  m->nmtls++;
  return 0;
}

enum { NOT_A_VALUE = 1 };

/* The MTL keys with numbers (Kd, Ke, Ks, Ka, Ni, Ns, Pr, Pm, d, Tr, illum) into t; NOT_A_VALUE
 * for any other kw. */
static int mtl_value(objr *r, kiln__mtl *t, char *p, const char *kw) {
  float x[3];
  int rc;
  t->kd_given |= !strcmp(kw, "Kd");
  if (!strcmp(kw, "Kd") || !strcmp(kw, "Ke"))
    return floats(r, &p, kw[1] == 'd' ? t->kd : t->ke, 3, 0, kw);
  if (!strcmp(kw, "Ks") || !strcmp(kw, "Ka")) {
    if ((rc = floats(r, &p, x, 3, 0, kw))) return rc;
    for (int i = 0; i < 3; i++)
      if (!(x[i] >= 0 && x[i] <= 1))
        return fail(r, KILN_EPARSE, "%s must be in [0, 1], not %g", kw, (double)x[i]);
    memcpy(kw[1] == 's' ? t->ks : t->ka, x, sizeof x);
    return 0;
  }
  if (!strcmp(kw, "Ni")) return floats(r, &p, x, 1, 0, kw); /* Blender: transmission only */
  float *one = !strcmp(kw, "Ns")   ? &t->ns
               : !strcmp(kw, "Pr") ? &t->pr
               : !strcmp(kw, "Pm") ? &t->pm
                                   : NULL;
  if (one) return mtl_number(r, &p, kw, 0, kw[0] == 'N' ? 1e30f : 1, one);
  if (!strcmp(kw, "d") || !strcmp(kw, "Tr")) {
    bool halo = kw[0] == 'd' && !strncmp(p + strspn(p, " \t"), "-halo", 5);
    if (halo) kiln__mesh_token(&p);
    if ((rc = mtl_number(r, &p, kw, 0, 1, x))) return rc;
    bool sets = kw[0] == 'd' || t->d < 0 || t->d_from_tr; /* a d wins over a Tr */
    if (sets) t->d = kw[0] == 'd' ? x[0] : 1 - x[0], t->d_from_tr = kw[0] == 'T';
    if (halo && (rc = mtl_warn(r, t, "d -halo: kiln renders a constant coverage"))) return rc;
    if (sets && t->d < 1)
      return mtl_warn(r, t,
                      "%s %g: kiln has no blending: coverage below 0.5 is a hole, the rest "
                      "opaque",
                      kw, (double)x[0]);
    return 0;
  }
  if (!strcmp(kw, "illum")) {
    if ((rc = mtl_number(r, &p, kw, 0, 10, x))) return rc;
    if (x[0] != floorf(x[0])) return fail(r, KILN_EPARSE, "illum must be a whole number");
    t->illum = (int)x[0];
    if (t->illum == 4 || t->illum == 6 || t->illum == 7 || t->illum == 9)
      return mtl_warn(r, t, "illum %d (transparency, refraction): kiln renders it opaque",
                      t->illum);
    return 0;
  }
  return NOT_A_VALUE;
}

static int mtl_line(objr *r, char *p, const char *kw) {
  static const struct {
    const char *kw;
    int map;
  } maps[] = {{"map_Kd", KILN__MTL_MAP_KD},     {"map_Ke", KILN__MTL_MAP_KE},
              {"map_Ns", KILN__MTL_MAP_NS},     {"map_Pr", KILN__MTL_MAP_PR},
              {"map_Pm", KILN__MTL_MAP_PM},     {"map_d", KILN__MTL_MAP_D},
              {"map_Bump", KILN__MTL_MAP_BUMP}, {"map_bump", KILN__MTL_MAP_BUMP},
              {"bump", KILN__MTL_MAP_BUMP},     {"norm", KILN__MTL_MAP_BUMP}};
  /* read, and not rendered: clearcoat, sheen, anisotropy, transmission, reflection maps, ... */
  static const char *const unrendered[] = {"Ps",     "Pc",        "Pcr",      "aniso",  "anisor",
                                           "Tf",     "sharpness", "map_Ka",   "map_Ks", "map_Ps",
                                           "map_Pc", "map_Pcr",   "map_aat",  "map_Tf", "refl",
                                           "disp",   "decal",     "map_disp", NULL};
  kiln__mesh *m = r->m;
  if (strcmp(kw, "newmtl") == 0) return newmtl(r, p);
  if (m->nmtls == 0) {
    if (!strcmp(kw, "Kd") || !strcmp(kw, "Ke") || !strcmp(kw, "map_Kd"))
      return fail(r, KILN_EPARSE, "%s before any newmtl", kw);
    return 0; /* nothing to apply it to */
  }
  kiln__mtl *t = &m->mtls[m->nmtls - 1];
  for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++)
    if (strcmp(kw, maps[i].kw) == 0) return mtl_map(r, t, p, kw, maps[i].map);
  int rc = mtl_value(r, t, p, kw);
  if (rc != NOT_A_VALUE) return rc;
  for (int i = 0; unrendered[i]; i++)
    if (strcmp(kw, unrendered[i]) == 0)
      return mtl_warn(r, t, "%s is not rendered by kiln: ignored", kw);
  return mtl_warn(r, t, "unknown statement '%.40s': ignored", kw);
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
    int joined = 0; /* a `\` ending a line joins the next to it (as a space); comments too */
    char *nl = strchr(p, '\n');
    for (char *e; nl; nl = strchr(nl + 1, '\n'), joined++) {
      e = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
      if (!(e > p && e[-1] == '\\')) break;
      memset(e - 1, ' ', (size_t)(nl - e) + 2);
    }
    char *next = nl ? nl + 1 : buf + len;
    if (nl) *nl = '\0';
    size_t l = strlen(p);
    if (l && p[l - 1] == '\r') p[l - 1] = '\0';
    r->line++; /* a joined statement's messages name its first line */
    char *c = strchr(p, '#');
    if (c) *c = '\0';
    char *kw = kiln__mesh_token(&p);
    if (kw) rc = is_mtl ? mtl_line(r, p, kw) : obj_file_line(r, p, kw);
    if (!rc) r->line += joined;
    p = next;
  }
  free(buf);
  if (!rc) r->file = outer_file, r->line = outer_line;
  return rc;
}

/* `v x y z [w]` (w, a rational curve's weight, is ignored), or `v x y z r g b [a]`: a colour as
 * MeshLab and Blender (3.5 on) write it, sRGB-encoded in [0, 1] (a seventh number, an alpha, is
 * ignored, as Blender does). Vertices without a colour are white once any vertex has one. */
static int vertex(objr *r, char *p) {
  static const float white[3] = {1, 1, 1};
  float x[7];
  int n = 0, rc;
  for (char *t; (t = kiln__mesh_token(&p)); n++) {
    if (n == 7) return fail(r, KILN_EPARSE, "v: too many numbers");
    if (!parse_float(t, &x[n])) return fail(r, KILN_EPARSE, "v: bad number %d: %s", n + 1, t);
  }
  if (n < 3) return fail(r, KILN_EPARSE, "v: missing number %d: end of line", n + 1);
  if (n == 5)
    return fail(r, KILN_EPARSE, "v: 5 numbers (x y z [w], or x y z r g b [a] with a colour)");
  if ((rc = push3(&r->v, &r->nv, &r->cv, x, 3))) return rc;
  if (n < 6 && !r->vc) return 0;
  for (int i = 3; i < 6 && n >= 6; i++) {
    if (!(x[i] >= 0 && x[i] <= 1))
      return fail(r, KILN_EPARSE, "v: colour component %d is %g: colours are in [0, 1]", i - 2,
                  (double)x[i]);
    x[i] = kiln__srgb_to_linear(x[i]);
  }
  while (r->nvc + 1 < r->nv) /* the first colour: the vertices before it are white */
    if ((rc = push3(&r->vc, &r->nvc, &r->cvc, white, 3))) return rc;
  return push3(&r->vc, &r->nvc, &r->cvc, n >= 6 ? x + 3 : white, 3);
}

static int obj_file_line(objr *r, char *p, const char *kw) {
  float x[3] = {0, 0, 0};
  int rc;
  if (strcmp(kw, "v") == 0) return vertex(r, p);
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
  free(r.v), free(r.vt), free(r.vn), free(r.vc), free(r.pending_group);
  if (rc) {
    if (rc == KILN_ENOMEM) snprintf(err->message, sizeof err->message, "out of memory");
    kiln__mesh_free(m);
  }
  return rc;
}
