/* ply.c: PLY meshes, ascii and binary (little- and big-endian).
 *
 * Read: element vertex (x, y, z; optional nx, ny, nz, u, v / s, t / texture_u, texture_v, and a
 * colour red, green, blue) and element face (a list property vertex_indices or vertex_index of any
 * integer type; polygons are fan-triangulated). Other elements and properties, lists included,
 * are skipped whatever their types. Colours are sRGB-encoded as Blender's PLY importer takes them
 * (it keeps them in a byte colour layer, which Cycles decodes from sRGB): 8-bit values / 255,
 * 16-bit / 65535, float and double as they are, each in [0, 1], and stored linear; an alpha is
 * ignored. Every count and index is checked against the file: a header that promises more data
 * than the file holds, an index outside the vertex list or a face of fewer than three vertices is a
 * KILN_EPARSE naming the file and line (for a binary body, line 0 and the element in the message).
 * The whole mesh becomes one group (one scene object). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/error.h"
#include "scene_internal.h"

enum { T_NONE, T_I8, T_U8, T_I16, T_U16, T_I32, T_U32, T_F32, T_F64 };
enum { MAX_PROPS = 32, MAX_ELEMS = 16 };

typedef struct prop {
  char name[32];
  int type, list_count_type; /* list_count_type T_NONE: a scalar */
} prop;

typedef struct elem {
  char name[32];
  size_t count;
  int nprops;
  prop props[MAX_PROPS];
} elem;

typedef struct plyr {
  const char *path;
  kiln__mesh_error *err;
  char *buf, *p, *end; /* body cursor */
  bool binary, big_endian, in_body;
  int line;
  int nelems;
  elem elems[MAX_ELEMS];
} plyr;

static int fail(plyr *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  snprintf(r->err->file, sizeof r->err->file, "%s", r->path);
  r->err->line = r->binary && r->in_body ? 0 : r->line;
  vsnprintf(r->err->message, sizeof r->err->message, fmt, ap);
  va_end(ap);
  return KILN_EPARSE;
}

static int type_of(const char *s) {
  static const struct {
    const char *n;
    int t;
  } tab[] = {{"char", T_I8},   {"int8", T_I8},     {"uchar", T_U8},   {"uint8", T_U8},
             {"short", T_I16}, {"int16", T_I16},   {"ushort", T_U16}, {"uint16", T_U16},
             {"int", T_I32},   {"int32", T_I32},   {"uint", T_U32},   {"uint32", T_U32},
             {"float", T_F32}, {"float32", T_F32}, {"double", T_F64}, {"float64", T_F64}};
  for (size_t i = 0; s && i < sizeof tab / sizeof tab[0]; i++)
    if (strcmp(s, tab[i].n) == 0) return tab[i].t;
  return T_NONE;
}

static size_t type_size(int t) {
  static const size_t sz[] = {0, 1, 1, 2, 2, 4, 4, 4, 8};
  return sz[t];
}

/* Next line of the header (NUL-terminated in place), or NULL at the end of the buffer. */
static char *next_line(plyr *r) {
  if (r->p >= r->end) return NULL;
  char *s = r->p, *nl = memchr(s, '\n', (size_t)(r->end - s));
  r->p = nl ? nl + 1 : r->end;
  if (nl) *nl = '\0';
  size_t l = strlen(s); /* the buffer is NUL-terminated */
  if (l && s[l - 1] == '\r') s[l - 1] = '\0';
  r->line++;
  return s;
}

static int header_line(plyr *r, char *l, bool *done) {
  char *kw = kiln__mesh_token(&l);
  if (!kw || strcmp(kw, "comment") == 0 || strcmp(kw, "obj_info") == 0) return 0;
  if (strcmp(kw, "format") == 0) {
    const char *f = kiln__mesh_token(&l);
    if (f && strcmp(f, "ascii") == 0) return r->binary = false, 0;
    if (f && strcmp(f, "binary_little_endian") == 0) return r->binary = true, 0;
    if (f && strcmp(f, "binary_big_endian") == 0) return r->binary = r->big_endian = true, 0;
    return fail(r, "unsupported format '%s' (ascii, binary_little_endian and binary_big_endian)",
                f ? f : "");
  }
  if (strcmp(kw, "element") == 0) {
    const char *name = kiln__mesh_token(&l), *n = kiln__mesh_token(&l);
    char *e;
    if (!name || !n) return fail(r, "element needs a name and a count");
    unsigned long long c = strtoull(n, &e, 10);
    if (*e || n[0] == '-' || c > (1ull << 40)) return fail(r, "bad element count '%s'", n);
    if (r->nelems == MAX_ELEMS) return fail(r, "more than %d elements", MAX_ELEMS);
    elem *el = &r->elems[r->nelems++];
    snprintf(el->name, sizeof el->name, "%s", name);
    el->count = (size_t)c;
    return 0;
  }
  if (strcmp(kw, "property") == 0) {
    if (r->nelems == 0) return fail(r, "property before any element");
    elem *el = &r->elems[r->nelems - 1];
    if (el->nprops == MAX_PROPS) return fail(r, "more than %d properties", MAX_PROPS);
    prop *pr = &el->props[el->nprops];
    const char *t = kiln__mesh_token(&l);
    pr->list_count_type = T_NONE;
    if (t && strcmp(t, "list") == 0) {
      pr->list_count_type = type_of(kiln__mesh_token(&l));
      if (pr->list_count_type == T_NONE || pr->list_count_type >= T_F32)
        return fail(r, "bad list count type");
      t = kiln__mesh_token(&l);
    }
    pr->type = type_of(t);
    const char *name = kiln__mesh_token(&l);
    if (pr->type == T_NONE || !name) return fail(r, "bad property (type and name expected)");
    snprintf(pr->name, sizeof pr->name, "%s", name);
    el->nprops++;
    return 0;
  }
  if (strcmp(kw, "end_header") == 0) return *done = true, 0;
  return fail(r, "unknown header line '%.40s'", kw);
}

/* Reads one value of type t from the body. */
static int value(plyr *r, int t, double *out, char **line) {
  if (r->binary) {
    size_t n = type_size(t);
    if ((size_t)(r->end - r->p) < n) return fail(r, "truncated: the file ends inside the data");
    const unsigned char *b = (const unsigned char *)r->p;
    uint64_t u = 0;
    for (size_t i = 0; i < n; i++) u |= (uint64_t)b[i] << (8 * (r->big_endian ? n - 1 - i : i));
    r->p += n;
    switch (t) {
      case T_I8: *out = (int8_t)(uint8_t)u; break;
      case T_U8: *out = (uint8_t)u; break;
      case T_I16: *out = (int16_t)(uint16_t)u; break;
      case T_U16: *out = (uint16_t)u; break;
      case T_I32: *out = (int32_t)(uint32_t)u; break;
      case T_U32: *out = (uint32_t)u; break;
      case T_F32: {
        uint32_t w = (uint32_t)u;
        float f;
        memcpy(&f, &w, 4);
        *out = f;
        break;
      }
      default: {
        double d;
        memcpy(&d, &u, 8);
        *out = d;
        break;
      }
    }
  } else {
    const char *s = kiln__mesh_token(line);
    if (!s) return fail(r, "too few values on the line");
    char *e;
    *out = strtod(s, &e);
    if (*e) return fail(r, "bad number '%.40s'", s);
  }
  if (!isfinite(*out)) return fail(r, "not a finite number");
  return 0;
}

/* Starts the next item of an element: in ascii, its line. */
static int item_begin(plyr *r, char **line) {
  if (r->binary) return 0;
  for (;;) {
    char *l = next_line(r);
    if (!l) return fail(r, "truncated: fewer items than the header says");
    *line = l;
    while (*l == ' ' || *l == '\t') l++;
    if (*l) return 0;
  }
}

typedef struct vmap {
  int x, y, z, nx, ny, nz, u, v, r, g, b; /* property index, or -1 */
} vmap;

static int find_prop(const elem *el, const char *a, const char *b, const char *c) {
  for (int i = 0; i < el->nprops; i++) {
    const char *n = el->props[i].name;
    if (el->props[i].list_count_type == T_NONE &&
        (strcmp(n, a) == 0 || (b && strcmp(n, b) == 0) || (c && strcmp(n, c) == 0)))
      return i;
  }
  return -1;
}

/* Reads an item's properties; scalars into vals (by index), the face list into idx. */
static int read_item(plyr *r, const elem *el, double *vals, int face_prop, uint32_t **idx,
                     size_t *nidx, size_t *cap) {
  char *line = NULL;
  int rc = item_begin(r, &line);
  for (int i = 0; !rc && i < el->nprops; i++) {
    const prop *pr = &el->props[i];
    if (pr->list_count_type == T_NONE) {
      rc = value(r, pr->type, &vals[i], &line);
      continue;
    }
    double c;
    if ((rc = value(r, pr->list_count_type, &c, &line))) break;
    if (c < 0 || c > 1e6) return fail(r, "bad list length %g", c);
    if (i == face_prop && (size_t)c > *cap) {
      uint32_t *a = realloc(*idx, (size_t)c * sizeof *a);
      if (!a) return KILN_ENOMEM;
      *idx = a, *cap = (size_t)c;
    }
    for (size_t k = 0; !rc && k < (size_t)c; k++) {
      double d;
      rc = value(r, pr->type, &d, &line);
      if (!rc && i == face_prop) {
        if (d < 0 || d >= 4294967295.0 || d != floor(d)) return fail(r, "bad vertex index %g", d);
        (*idx)[k] = (uint32_t)d;
      }
    }
    if (i == face_prop) *nidx = (size_t)c;
  }
  if (!rc && !r->binary && kiln__mesh_token(&line))
    rc = fail(r, "more values on the line than properties");
  return rc;
}

/* What a colour property's values are divided by (0: a type colours do not come in). */
static double colour_scale(int type) {
  switch (type) {
    case T_U8: return 255;
    case T_U16: return 65535;
    case T_F32:
    case T_F64: return 1;
    default: return 0;
  }
}

/* Vertex k's colour from its values into out (linear), or KILN_EPARSE. */
static int vertex_colour(plyr *r, const elem *el, const vmap *vm, const double *vals, size_t k,
                         float *out) {
  const int at[3] = {vm->r, vm->g, vm->b};
  for (int i = 0; i < 3; i++) {
    double c = vals[at[i]] / colour_scale(el->props[at[i]].type);
    if (!(c >= 0 && c <= 1))
      return fail(r, "vertex %zu: colour component %s is %g: colours are in [0, 1]", k,
                  el->props[at[i]].name, c);
    out[i] = kiln__srgb_to_linear((float)c);
  }
  return 0;
}

static int read_body(plyr *r, kiln__mesh *m) {
  float *verts = NULL; /* 11 per vertex: position, normal, uv, colour */
  size_t nverts = 0, tri_cap = 0, icap = 0, nidx = 0;
  uint32_t *idx = NULL;
  bool has_n = false, has_uv = false, has_col = false, seen_vertex = false;
  double vals[MAX_PROPS];
  int rc = 0;
  for (int e = 0; !rc && e < r->nelems; e++) {
    const elem *el = &r->elems[e];
    bool is_v = strcmp(el->name, "vertex") == 0, is_f = strcmp(el->name, "face") == 0;
    vmap vm = {find_prop(el, "x", NULL, NULL),       find_prop(el, "y", NULL, NULL),
               find_prop(el, "z", NULL, NULL),       find_prop(el, "nx", NULL, NULL),
               find_prop(el, "ny", NULL, NULL),      find_prop(el, "nz", NULL, NULL),
               find_prop(el, "u", "s", "texture_u"), find_prop(el, "v", "t", "texture_v"),
               find_prop(el, "red", NULL, NULL),     find_prop(el, "green", NULL, NULL),
               find_prop(el, "blue", NULL, NULL)};
    int fp = -1;
    for (int i = 0; i < el->nprops; i++)
      if (el->props[i].list_count_type != T_NONE &&
          (strcmp(el->props[i].name, "vertex_indices") == 0 ||
           strcmp(el->props[i].name, "vertex_index") == 0))
        fp = i;
    /* every item takes at least one byte: a count beyond the file's size is a lie */
    if (el->count > (size_t)(r->end - r->p)) {
      rc = fail(r, "element '%s' has %zu items, more than the file can hold", el->name, el->count);
      break;
    }
    if (is_v) {
      if (vm.x < 0 || vm.y < 0 || vm.z < 0) {
        rc = fail(r, "vertex element without x, y, z");
        break;
      }
      has_n = vm.nx >= 0 && vm.ny >= 0 && vm.nz >= 0, has_uv = vm.u >= 0 && vm.v >= 0;
      has_col = vm.r >= 0 && vm.g >= 0 && vm.b >= 0;
      const int cidx[3] = {vm.r, vm.g, vm.b};
      for (int i = 0; has_col && i < 3; i++) {
        const prop *cp = &el->props[cidx[i]];
        if (!colour_scale(cp->type)) {
          rc =
              fail(r, "vertex property '%s': a colour is uchar, ushort, float or double", cp->name);
          break;
        }
      }
      if (rc) break;
      free(verts);
      if (!(verts = malloc((el->count ? el->count : 1) * 11 * sizeof(float)))) {
        rc = KILN_ENOMEM;
        break;
      }
      nverts = el->count, seen_vertex = true;
    }
    if (is_f && fp < 0) {
      rc = fail(r, "face element without vertex_indices");
      break;
    }
    if (is_f && !seen_vertex) {
      rc = fail(r, "face element before the vertex element");
      break;
    }
    for (size_t k = 0; !rc && k < el->count; k++) {
      rc = read_item(r, el, vals, is_f ? fp : -1, &idx, &nidx, &icap);
      if (rc) break;
      if (is_v) {
        float *v = verts + 11 * k;
        const int map[8] = {vm.x, vm.y, vm.z, vm.nx, vm.ny, vm.nz, vm.u, vm.v};
        for (int j = 0; j < 8; j++) v[j] = map[j] >= 0 ? (float)vals[map[j]] : 0.0f;
        if (has_col && (rc = vertex_colour(r, el, &vm, vals, k, v + 8))) break;
      } else if (is_f) {
        if (nidx < 3) {
          rc = fail(r, "face %zu has %zu vertices (at least 3 needed)", k, nidx);
          break;
        }
        for (size_t j = 2; !rc && j < nidx; j++) {
          const uint32_t c[3] = {idx[0], idx[j - 1], idx[j]};
          float p[9], n[9], uv[6], col[9];
          for (int q = 0; q < 3; q++) {
            if (c[q] >= nverts) {
              rc =
                  fail(r, "face %zu: vertex index %u out of range (%zu vertices)", k, c[q], nverts);
              break;
            }
            memcpy(p + 3 * q, verts + 11 * c[q], 3 * sizeof(float));
            memcpy(n + 3 * q, verts + 11 * c[q] + 3, 3 * sizeof(float));
            memcpy(uv + 2 * q, verts + 11 * c[q] + 6, 2 * sizeof(float));
            memcpy(col + 3 * q, verts + 11 * c[q] + 8, 3 * sizeof(float));
          }
          if (!rc)
            rc = kiln__mesh_push(m, &tri_cap, p, has_n ? n : NULL, has_uv ? uv : NULL, 0,
                                 UINT32_MAX);
          if (!rc && has_col) rc = kiln__mesh_push_col(m, tri_cap, col);
        }
      }
    }
  }
  free(verts), free(idx);
  if (!rc && m->ntris == 0) rc = fail(r, "no faces");
  return rc;
}

int kiln__ply_load(const char *path, kiln__mesh *m, kiln__mesh_error *err) {
  memset(m, 0, sizeof *m);
  memset(err, 0, sizeof *err);
  plyr r = {.path = path, .err = err};
  size_t len;
  int rc = kiln__read_file(path, &r.buf, &len, err->message, sizeof err->message);
  if (rc) {
    snprintf(err->file, sizeof err->file, "%s", path);
    return rc;
  }
  r.p = r.buf, r.end = r.buf + len;
  char *l = next_line(&r);
  if (!l || strcmp(l, "ply") != 0) rc = fail(&r, "not a PLY file (no 'ply' on the first line)");
  bool done = false;
  while (!rc && !done) {
    if (!(l = next_line(&r))) rc = fail(&r, "truncated header (no end_header)");
    else rc = header_line(&r, l, &done);
  }
  if (!rc) {
    m->groups = malloc(sizeof *m->groups);
    if (!m->groups || !(m->groups[0] = calloc(1, 1))) rc = KILN_ENOMEM; /* unnamed: "" */
    else m->ngroups = 1;
  }
  r.in_body = true;
  if (!rc) rc = read_body(&r, m);
  free(r.buf);
  if (rc) {
    if (rc == KILN_ENOMEM) snprintf(err->message, sizeof err->message, "out of memory");
    kiln__mesh_free(m);
  }
  return rc;
}
