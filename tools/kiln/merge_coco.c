/* merge_coco.c: `kiln merge -o coco.json coco_*.json`, one COCO file from the per-shard files of
 * kiln render --writer coco (engine/batch/coco.c writes them), in the layout that writer uses, so
 * that merging the shards of a job gives the bytes one unsharded run writes, whatever the order of
 * the inputs (docs/CLUSTER.md, "kiln merge"):
 *
 *   {"info":INFO,"licenses":[...],"images":[
 *   IMAGE,          one a line, sorted by id
 *   ...
 *   ],"annotations":[
 *   {"id":1,...},   renumbered 1..N in (image id, then the order of its input) order
 *   ...
 *   ],"categories":[
 *   CATEGORY,       sorted by id
 *   ...
 *   ]}
 *
 * every element compact, as cJSON prints it. The categories of every input must agree (else exit
 * 2, naming both files); an image in several inputs folds into one when it and its annotations
 * are equal, and otherwise keeps the one with more annotations, then the bytewise smaller, with a
 * warning naming both files; infos that differ keep the bytewise smallest, with a warning.
 * Every input is held in memory while it is read (a COCO file is one JSON document). */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"

/* One image of one input, with its annotations (printed without their ids). */
typedef struct group {
  double id;
  size_t input;
  char *image;
  char **anns;
  size_t nanns, cap;
} group;

typedef struct merged {
  group *g;
  size_t n, cap;
  char *info, *licenses, *categories; /* the kept ones */
  size_t info_from, cat_from;
  uint64_t folded, differ;
} merged;

static void groups_free(merged *m) {
  for (size_t i = 0; i < m->n; i++) {
    free(m->g[i].image);
    for (size_t k = 0; k < m->g[i].nanns; k++) free(m->g[i].anns[k]);
    free(m->g[i].anns);
  }
  free(m->g);
  free(m->info), free(m->licenses), free(m->categories);
}

static int cmp_cat(const void *pa, const void *pb) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(*(const cJSON *const *)pa, "id"),
              *b = cJSON_GetObjectItemCaseSensitive(*(const cJSON *const *)pb, "id");
  double x = cJSON_IsNumber(a) ? a->valuedouble : 0, y = cJSON_IsNumber(b) ? b->valuedouble : 0;
  return x < y ? -1 : x > y;
}

/* The categories' lines, sorted by id, as coco.c writes them; NULL when out of memory. */
static char *print_categories(const cJSON *cats) {
  int n = cJSON_GetArraySize(cats);
  const cJSON **c = calloc((size_t)n + 1, sizeof *c);
  if (!c) return NULL;
  int k = 0;
  for (const cJSON *e = cats->child; e; e = e->next) c[k++] = e;
  qsort(c, (size_t)n, sizeof *c, cmp_cat);
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  bool ok = f != NULL;
  for (int i = 0; i < n && ok; i++) {
    char *t = cJSON_PrintUnformatted(c[i]);
    ok = t && fprintf(f, "\n%s%s", t, i + 1 < n ? "," : "") >= 0;
    free(t);
  }
  if (f && fclose(f) != 0) ok = false;
  free(c);
  if (!ok) free(out), out = NULL;
  return out;
}

static bool whole_id(const cJSON *v) {
  return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 9007199254740992.0 &&
         v->valuedouble == (double)(uint64_t)v->valuedouble;
}

static int bad(const char *file, const char *why) {
  fprintf(stderr, "kiln merge: %s: %s; nothing written\n", file, why);
  return 2;
}

static int cmp_group_id(const void *pa, const void *pb) {
  const group *a = pa, *b = pb;
  return a->id < b->id ? -1 : a->id > b->id;
}

static group *find_group(group *g, size_t n, double id) {
  group key = {.id = id};
  return bsearch(&key, g, n, sizeof *g, cmp_group_id);
}

static int push_ann(group *g, char *text) {
  if (g->nanns == g->cap) {
    size_t cap = g->cap ? 2 * g->cap : 8;
    char **a = realloc(g->anns, cap * sizeof *a);
    if (!a) return -1;
    g->anns = a, g->cap = cap;
  }
  g->anns[g->nanns++] = text;
  return 0;
}

/* Info, licenses, categories of input `input` against those kept: 0, 2 (categories differ), -1. */
static int take_header(merged *m, const cJSON *doc, size_t input, const char *const *ins) {
  const cJSON *info = cJSON_GetObjectItemCaseSensitive(doc, "info"),
              *lic = cJSON_GetObjectItemCaseSensitive(doc, "licenses"),
              *cats = cJSON_GetObjectItemCaseSensitive(doc, "categories");
  char *c = print_categories(cats);
  char *i = info ? cJSON_PrintUnformatted(info) : strdup("{}");
  char *l = lic ? cJSON_PrintUnformatted(lic) : strdup("[]");
  int rc = c && i && l ? 0 : -1;
  if (!rc && m->categories && strcmp(m->categories, c) != 0) {
    fprintf(stderr, "kiln merge: the categories of %s and %s differ; nothing written\n",
            ins[m->cat_from], ins[input]);
    rc = 2;
  }
  if (!rc && !m->categories) m->categories = c, c = NULL, m->cat_from = input;
  if (!rc && m->info && strcmp(m->info, i) != 0)
    fprintf(stderr, "kiln merge: warning: the info of %s and %s differ; kept the smaller\n",
            ins[m->info_from], ins[input]);
  if (!rc && (!m->info || strcmp(i, m->info) < 0)) {
    free(m->info), free(m->licenses);
    m->info = i, m->licenses = l, i = l = NULL, m->info_from = input;
  }
  free(c), free(i), free(l);
  return rc;
}

/* The images of one input into m (as groups), then its annotations into them. 0, 2, -1. */
static int take_images(merged *m, cJSON *doc, size_t input, const char *file) {
  const cJSON *images = cJSON_GetObjectItemCaseSensitive(doc, "images");
  cJSON *anns = cJSON_GetObjectItemCaseSensitive(doc, "annotations");
  size_t first = m->n;
  for (const cJSON *im = images->child; im; im = im->next) {
    if (!cJSON_IsObject(im) || !whole_id(cJSON_GetObjectItemCaseSensitive(im, "id")))
      return bad(file, "an image without a whole \"id\"");
    if (m->n == m->cap) {
      size_t cap = m->cap ? 2 * m->cap : 1024;
      group *g = realloc(m->g, cap * sizeof *g);
      if (!g) return -1;
      m->g = g, m->cap = cap;
    }
    group *g = &m->g[m->n];
    memset(g, 0, sizeof *g);
    g->id = cJSON_GetObjectItemCaseSensitive(im, "id")->valuedouble, g->input = input;
    if (!(g->image = cJSON_PrintUnformatted(im))) return -1;
    m->n++;
  }
  size_t n = m->n - first;
  group *mine = n ? m->g + first : NULL; /* m->g is NULL while no input had an image */
  if (n) qsort(mine, n, sizeof *mine, cmp_group_id);
  for (size_t i = 1; i < n; i++)
    if (mine[i].id == mine[i - 1].id) return bad(file, "two images with one id");
  for (cJSON *a = anns->child; a; a = a->next) {
    const cJSON *iid = cJSON_IsObject(a) ? cJSON_GetObjectItemCaseSensitive(a, "image_id") : NULL;
    group *g = whole_id(iid) && n ? find_group(mine, n, iid->valuedouble) : NULL;
    if (!g) return bad(file, "an annotation whose \"image_id\" names no image of the file");
    cJSON_DeleteItemFromObjectCaseSensitive(a, "id"); /* renumbered when written */
    char *t = cJSON_PrintUnformatted(a);
    if (!t || push_ann(g, t)) {
      free(t);
      return -1;
    }
  }
  return 0;
}

static int read_input(merged *m, const char *const *ins, size_t input) {
  FILE *f = fopen(ins[input], "rb");
  char *text = NULL;
  size_t len = 0;
  if (f) {
    FILE *mem = open_memstream(&text, &len);
    char buf[65536];
    size_t r;
    while (mem && (r = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, r, mem);
    bool err = ferror(f) || !mem;
    fclose(f);
    if (mem) fclose(mem);
    if (err) free(text), text = NULL, errno = EIO;
  }
  if (!text) {
    fprintf(stderr, "kiln merge: cannot read %s: %s\n", ins[input], strerror(errno));
    return 2;
  }
  cJSON *doc = cJSON_ParseWithLength(text, len);
  free(text);
  int rc = 0;
  if (!doc || !cJSON_IsObject(doc)) rc = bad(ins[input], "not a JSON object");
  else if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(doc, "images")) ||
           !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(doc, "annotations")) ||
           !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(doc, "categories")))
    rc = bad(ins[input], "not a COCO file (no \"images\", \"annotations\" and \"categories\")");
  if (!rc) rc = take_header(m, doc, input, ins);
  if (!rc) rc = take_images(m, doc, input, ins[input]);
  cJSON_Delete(doc);
  return rc;
}

/* -1, 0, 1: which of two groups of one id to keep first (more annotations, then the smaller
 * image, then the smaller annotations), 0 when they are equal. */
static int cmp_content(const group *a, const group *b) {
  if (a->nanns != b->nanns) return a->nanns > b->nanns ? -1 : 1;
  int c = strcmp(a->image, b->image);
  for (size_t k = 0; !c && k < a->nanns; k++) c = strcmp(a->anns[k], b->anns[k]);
  return c;
}

static int cmp_group(const void *pa, const void *pb, void *ins) {
  const group *a = pa, *b = pb;
  if (a->id != b->id) return a->id < b->id ? -1 : 1;
  int c = cmp_content(a, b);
  return c ? c : strcmp(((const char *const *)ins)[a->input], ((const char *const *)ins)[b->input]);
}

static void fold(merged *m, const char *const *ins) {
  if (m->n) qsort_r(m->g, m->n, sizeof *m->g, cmp_group, (void *)ins);
  size_t k = 0;
  for (size_t i = 0; i < m->n; i++) {
    group *g = &m->g[i];
    if (k && m->g[k - 1].id == g->id) {
      m->folded++;
      if (cmp_content(&m->g[k - 1], g) != 0) {
        m->differ++;
        fprintf(stderr, "kiln merge: warning: image %.0f differs between %s and %s; kept %s's\n",
                g->id, ins[m->g[k - 1].input], ins[g->input], ins[m->g[k - 1].input]);
      }
      free(g->image);
      for (size_t a = 0; a < g->nanns; a++) free(g->anns[a]);
      free(g->anns);
      continue;
    }
    m->g[k++] = *g;
  }
  m->n = k;
}

static int write_coco(const char *out, const merged *m, uint64_t *nanns) {
  char tmp[PATH_MAX + 64];
  FILE *f = kiln_cli_atomic_open(out, tmp, sizeof tmp);
  if (!f) return errno;
  fprintf(f, "{\"info\":%s,\"licenses\":%s,\"images\":[", m->info, m->licenses);
  for (size_t i = 0; i < m->n; i++) fprintf(f, "%s%s", i ? ",\n" : "\n", m->g[i].image);
  fputs("\n],\"annotations\":[", f);
  uint64_t id = 0;
  for (size_t i = 0; i < m->n; i++)
    for (size_t k = 0; k < m->g[i].nanns; k++) {
      const char *t = m->g[i].anns[k];
      fprintf(f, "%s{\"id\":%llu%s%s", id ? ",\n" : "\n", (unsigned long long)(id + 1),
              t[1] == '}' ? "" : ",", t + 1);
      id++;
    }
  fprintf(f, "\n],\"categories\":[%s\n]}\n", m->categories);
  *nanns = id;
  return kiln_cli_atomic_commit(f, tmp, out, true);
}

bool kiln_cli_is_coco(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  char head[256];
  size_t n = fread(head, 1, sizeof head - 1, f);
  fclose(f);
  head[n] = 0;
  /* the first member's name: a manifest line's is "index", a COCO file's one of COCO's */
  const char *p = head + strspn(head, " \t\r\n");
  if (*p++ != '{') return false;
  p += strspn(p, " \t\r\n");
  static const char *const keys[] = {"\"info\"", "\"licenses\"", "\"images\"",
                                     "\"annotations\"", "\"categories\""};
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
    if (!strncmp(p, keys[i], strlen(keys[i]))) return true;
  return false;
}

int kiln_cli_merge_coco(const char *out, const char *const *ins, size_t nin, bool quiet) {
  merged m = {0};
  int rc = 0;
  for (size_t i = 0; i < nin && !rc; i++) rc = read_input(&m, ins, i);
  if (rc < 0) fprintf(stderr, "kiln merge: out of memory\n"), rc = 2;
  if (!rc) {
    size_t read = m.n;
    fold(&m, ins);
    uint64_t nanns = 0;
    int e = write_coco(out, &m, &nanns);
    if (e) fprintf(stderr, "kiln merge: cannot write %s: %s\n", out, strerror(e)), rc = 1;
    else if (!quiet)
      printf("kiln merge: %zu images and %llu annotations from %zu COCO files (%zu images read; "
             "%llu duplicates, %llu of them differing) into %s\n",
             m.n, (unsigned long long)nanns, nin, read, (unsigned long long)m.folded,
             (unsigned long long)m.differ, out);
  }
  groups_free(&m);
  return rc;
}
