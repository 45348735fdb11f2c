/* names.c: output-name templates and contact sheets (batch_internal.h). */
#include "batch_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/error.h"

/* Quotes tmpl into out, cut to a window around byte col (1-based) when it is long, so that the
 * message stays short enough to keep its reason whatever the template's length. */
static void quote(char *out, size_t cap, const char *tmpl, size_t col) {
  enum { SIDE = 40 };
  size_t n = strlen(tmpl), at = col ? col - 1 : 0;
  size_t a = at > SIDE ? at - SIDE : 0, b = n - at > SIDE ? at + SIDE : n;
  if (n <= 2 * SIDE + 8) a = 0, b = n;
  snprintf(out, cap, "\"%s%.*s%s\"", a ? "..." : "", (int)(b - a), tmpl + a, b < n ? "..." : "");
}

/* "<what>[ {field}], at column col of template \"...\"" (col 0: "; template \"...\""): the
 * reason first. */
static void say_hint(char *msg, size_t cap, const char *tmpl, size_t col, const char *what,
                     const char *field, size_t flen, const char *hint) {
  if (!msg || !cap) return;
  char q[128];
  quote(q, sizeof q, tmpl, col);
  if (field && flen > 40) flen = 40;
  char at[48] = "; template";
  if (col) snprintf(at, sizeof at, ", at column %zu of template", col);
  snprintf(msg, cap, "%s%s%.*s%s%s%s %s", what, field ? " {" : "", (int)flen, field ? field : "",
           field ? "}" : "", hint, at, q);
}

static void say(char *msg, size_t cap, const char *tmpl, size_t col, const char *what,
                const char *field, size_t flen) {
  say_hint(msg, cap, tmpl, col, what, field, flen, "");
}

typedef struct sink {
  char *out;
  size_t cap, len;
} sink;

static void put(sink *s, const char *p, size_t n) {
  if (s->out && s->len + n < s->cap) memcpy(s->out + s->len, p, n);
  s->len += n;
}

typedef enum { F_FRAME, F_INDEX, F_NAME, F_PASS, F_EXT } field_kind;

/* One {field}: {frame}, {index}, either divided ({frame//1000}) and zero-padded ({frame:05d},
 * {index//100:03d}); {name}, {pass}, {ext}. */
typedef struct field {
  field_kind kind;
  int width;      /* 0: as printed */
  long long div;  /* 1: not divided */
} field;

/* A positive decimal number in [p, e) of at most max: its value, else 0. */
static long long decimal(const char *p, const char *e, long long max) {
  long long n = 0;
  if (p == e) return 0;
  for (; p < e; p++) {
    if (*p < '0' || *p > '9') return 0;
    n = n * 10 + (*p - '0');
    if (n > max) return 0; /* past max it is an error: stop before it overflows */
  }
  return n;
}

static int parse_field(const char *tmpl, const char *f, size_t flen, size_t col, field *fd,
                       char *msg, size_t msgcap) {
  const char *end = f + flen;
  const char *colon = memchr(f, ':', flen);
  const char *nend = colon ? colon : end;
  const char *slash = memchr(f, '/', (size_t)(nend - f));
  size_t nlen = (size_t)((slash ? slash : nend) - f);
  static const char *const names[] = {"frame", "index", "name", "pass", "ext"};
  int k = -1;
  for (int i = 0; i < 5; i++)
    if (strlen(names[i]) == nlen && !strncmp(f, names[i], nlen)) k = i;
  if (k < 0) {
    say_hint(msg, msgcap, tmpl, col, "unknown field", f, flen,
             " (fields: frame, frame:05d, frame//1000, index, name, pass, ext)");
    return KILN_EPARSE;
  }
  *fd = (field){(field_kind)k, 0, 1};
  bool number = k == F_FRAME || k == F_INDEX;
  if (slash) {
    if (!number) {
      say(msg, msgcap, tmpl, col, "only {frame} and {index} divide (into folders), not", f, flen);
      return KILN_EPARSE;
    }
    /* KILN__BUCKET_MAX: a bucket of every frame a long can number is one folder anyway */
    if (slash + 1 >= nend || slash[1] != '/' ||
        !(fd->div = decimal(slash + 2, nend, KILN__BUCKET_MAX))) {
      say(msg, msgcap, tmpl, col, "bad division (use {frame//1000}, a divisor 1 to 10^15) in", f,
          flen);
      return KILN_EPARSE;
    }
  }
  if (colon) { /* only {frame:0Nd} and {index:0Nd} */
    const char *q = colon + 1;
    if (!number || q[0] != '0' || q + 1 >= end) {
      say(msg, msgcap, tmpl, col, "bad format in", f, flen);
      return KILN_EPARSE;
    }
    fd->width = (int)decimal(q + 1, end - 1, 12);
    if (end[-1] != 'd' || fd->width < 1) {
      say(msg, msgcap, tmpl, col, "bad format (use {frame:05d}) in", f, flen);
      return KILN_EPARSE;
    }
  }
  return 0;
}

/* Python's floor division, so that frames -1 .. -N share the folder before frame 0's. */
static long long floor_div(long long a, long long d) {
  long long q = a / d;
  return (a % d != 0 && a < 0) ? q - 1 : q;
}

static void number(field fd, const kiln__outname_vars *v, char *out, size_t cap) {
  if (fd.kind == F_INDEX)
    snprintf(out, cap, "%0*llu", fd.width, (unsigned long long)(v->index / (uint64_t)fd.div));
  else
    snprintf(out, cap, "%0*lld", fd.width, floor_div(v->frame, fd.div));
}

/* One pass for both check (v NULL) and expand. */
static int run(const char *tmpl, const kiln__outname_vars *v, sink *s, char *msg, size_t msgcap) {
  for (const char *p = tmpl; *p;) {
    if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
      put(s, p, 1);
      p += 2;
      continue;
    }
    if (*p == '}') {
      say(msg, msgcap, tmpl, (size_t)(p - tmpl) + 1, "unmatched '}' (write }} for a brace)", NULL,
          0);
      return KILN_EPARSE;
    }
    if (*p != '{') {
      put(s, p, 1);
      p++;
      continue;
    }
    const char *end = strchr(p, '}');
    size_t col = (size_t)(p - tmpl) + 1;
    if (!end) {
      say(msg, msgcap, tmpl, col, "unmatched '{' (write {{ for a brace)", NULL, 0);
      return KILN_EPARSE;
    }
    const char *f = p + 1;
    size_t flen = (size_t)(end - f);
    field fd;
    int rc = parse_field(tmpl, f, flen, col, &fd, msg, msgcap);
    if (rc) return rc;
    char num[48];
    const char *val = NULL;
    if (fd.kind == F_FRAME || fd.kind == F_INDEX) {
      if (v) number(fd, v, num, sizeof num);
      val = num;
    } else if (fd.kind == F_NAME) {
      if (v && v->name) val = v->name;
      else {
        if (v) snprintf(num, sizeof num, "%05ld", v->frame);
        val = num;
      }
    } else if (fd.kind == F_PASS) {
      val = v && v->pass ? v->pass : "";
    } else {
      val = v && v->ext ? v->ext : "";
    }
    if (v) put(s, val, strlen(val));
    p = end + 1;
  }
  return 0;
}

int kiln__outname_check(const char *tmpl, char *msg, size_t msgcap) {
  if (msg && msgcap) msg[0] = 0;
  sink s = {NULL, 0, 0};
  return run(tmpl, NULL, &s, msg, msgcap);
}

int kiln__outname_expand(const char *tmpl, const kiln__outname_vars *v, char *out, size_t cap,
                         char *msg, size_t msgcap) {
  if (msg && msgcap) msg[0] = 0;
  if (cap) out[0] = 0;
  sink s = {out, cap, 0};
  int rc = run(tmpl, v, &s, msg, msgcap);
  if (rc) return rc;
  if (s.len >= cap) {
    say(msg, msgcap, tmpl, 0, "the name is too long", NULL, 0);
    return KILN_EINVAL;
  }
  out[s.len] = 0;
  return 0;
}

bool kiln__path_inside(const char *rel) {
  if (!rel[0] || rel[0] == '/') return false;
  for (const char *p = rel; *p;) {
    size_t n = strcspn(p, "/");
    if (n == 2 && p[0] == '.' && p[1] == '.') return false;
    p += n;
    if (*p) p++;
  }
  return true;
}

/* A value substituted into a template is never empty, "." or "..", and holds no '/' (frame
 * numbers, pass names, extensions; list names are refused otherwise by job_list.c), so whether
 * an expansion stays inside the output folder depends on the template's own text only, and one
 * expansion with sample values answers for all of them. */
int kiln__outname_confined(const char *tmpl, char *msg, size_t msgcap) {
  if (msg && msgcap) msg[0] = 0;
  char x[4096];
  kiln__outname_vars v = {0, "a", "color", "png", 0};
  int rc = kiln__outname_expand(tmpl, &v, x, sizeof x, msg, msgcap);
  if (rc) return rc;
  if (!kiln__path_inside(x)) {
    say(msg, msgcap, tmpl, 0,
        !x[0]         ? "the template is empty"
        : x[0] == '/' ? "an absolute path would write outside the output folder"
                      : "a '..' component would write outside the output folder",
        NULL, 0);
    return KILN_EPARSE;
  }
  return 0;
}

void kiln__box_downscale(const uint8_t *rgb, int w, int h, int f, uint8_t *out) {
  int tw = w / f > 0 ? w / f : 1, th = h / f > 0 ? h / f : 1;
  for (int y = 0; y < th; y++)
    for (int x = 0; x < tw; x++)
      for (int c = 0; c < 3; c++) {
        unsigned sum = 0, cnt = 0;
        for (int dy = 0; dy < f && y * f + dy < h; dy++)
          for (int dx = 0; dx < f && x * f + dx < w; dx++, cnt++)
            sum += rgb[((size_t)(y * f + dy) * (size_t)w + (size_t)(x * f + dx)) * 3 + (size_t)c];
        out[((size_t)y * (size_t)tw + (size_t)x) * 3 + (size_t)c] =
            (uint8_t)((sum + cnt / 2) / cnt);
      }
}

int kiln__contact_sheet(const uint8_t *const *images, size_t n, int w, int h, int thumb,
                        int columns, uint8_t **out, int *out_w, int *out_h) {
  *out = NULL, *out_w = *out_h = 0;
  if (!images || n == 0 || w < 1 || h < 1 || thumb < 1 || columns < 0) return KILN_EINVAL;
  int big = w > h ? w : h;
  int f = (big + thumb - 1) / thumb; /* integer box-filter factor */
  int tw = w / f > 0 ? w / f : 1, th = h / f > 0 ? h / f : 1;
  int cols = columns ? columns : (int)ceil(sqrt((double)n));
  int rows = (int)((n + (size_t)cols - 1) / (size_t)cols);
  const int gap = 2;
  int W = cols * tw + (cols + 1) * gap, H = rows * th + (rows + 1) * gap;
  uint8_t *sheet = malloc((size_t)W * (size_t)H * 3), *t = malloc((size_t)tw * (size_t)th * 3);
  if (!sheet || !t) {
    free(sheet), free(t);
    return KILN_ENOMEM;
  }
  memset(sheet, 32, (size_t)W * (size_t)H * 3);
  for (size_t i = 0; i < n; i++) {
    int ox = gap + (int)(i % (size_t)cols) * (tw + gap),
        oy = gap + (int)(i / (size_t)cols) * (th + gap);
    kiln__box_downscale(images[i], w, h, f, t);
    for (int y = 0; y < th; y++)
      memcpy(sheet + ((size_t)(oy + y) * (size_t)W + (size_t)ox) * 3,
             t + (size_t)y * (size_t)tw * 3, (size_t)tw * 3);
  }
  free(t);
  *out = sheet, *out_w = W, *out_h = H;
  return 0;
}
