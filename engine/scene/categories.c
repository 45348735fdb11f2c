/* categories.c: object categories of a JSON scene (docs/SCENE.md, "Categories").
 *
 * A scene may declare its categories at the top level, as an array of names (ids 1..n in
 * order) or as an object {name: id}; objects and lights then name one ("category", or
 * "category_id" alone) and get its id, and a name or id the declaration lacks is an error. Without
 * a declaration, categories are whatever objects name: a name given with "category_id" has that
 * id, a name given alone gets the smallest id no other category has, in order of first
 * appearance, once every object is read (so an explicit id later in the file never collides with
 * one handed out earlier). One name has one id and one id one name, declared or not. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scene_internal.h"

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

int kiln__categories_find(const kiln__category *cats, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(cats[i].name, name) == 0) return (int)i;
  return -1;
}

void kiln__categories_free(kiln__category *cats, size_t n) {
  for (size_t i = 0; i < n; i++) free(cats[i].name);
  free(cats);
}

static int find_name(const kiln__sj_load *ld, const char *name) {
  return kiln__categories_find(ld->cats, ld->ncats, name);
}

static int find_id(const kiln__category *cats, size_t n, uint32_t id) {
  for (size_t i = 0; i < n; i++)
    if (cats[i].id == id) return (int)i;
  return -1;
}

/* Appends a category (name copied) to *cats. Its index, or -1 on ENOMEM. */
static int add(kiln__category **cats, size_t *n, size_t *cap, const char *name, uint32_t id) {
  if (*n == *cap) {
    size_t nc = *cap ? 2 * *cap : 8;
    kiln__category *a = realloc(*cats, nc * sizeof *a);
    if (!a) return -1;
    *cats = a, *cap = nc;
  }
  char *d = dup_str(name);
  if (!d) return -1;
  (*cats)[*n] = (kiln__category){d, id};
  return (int)(*n)++;
}

/* One declared category (at the current path): name, id. */
static int declare(kiln__sj_ctx *c, kiln__category **cats, size_t *n, size_t *cap, const char *name,
                   double id) {
  if (!name[0]) return kiln__sj_fail(c, "a category name must not be empty");
  if (kiln__categories_find(*cats, *n, name) >= 0)
    return kiln__sj_fail(c, "category '%s' is declared twice", name);
  int other = find_id(*cats, *n, (uint32_t)id);
  if (other >= 0)
    return kiln__sj_fail(c, "category id %.0f is category '%s' already", id, (*cats)[other].name);
  return add(cats, n, cap, name, (uint32_t)id) < 0 ? kiln__sj_nomem(c) : 0;
}

static int declaration(kiln__sj_ctx *c, const cJSON *o, kiln__category **cats, size_t *n) {
  size_t cap = 0;
  int rc = 0, i = 0;
  if (cJSON_IsArray(o)) {
    for (const cJSON *e = o->child; e && !rc; e = e->next, i++) {
      kiln__sj_push_index(c, i);
      rc = cJSON_IsString(e) ? declare(c, cats, n, &cap, e->valuestring, i + 1)
                             : kiln__sj_fail(c, "a category must be a string (its name)");
      if (!rc) kiln__sj_pop(c);
    }
  } else if (cJSON_IsObject(o)) {
    for (const cJSON *e = o->child; e && !rc; e = e->next) {
      kiln__sj_push_key(c, e->string);
      double id = cJSON_IsNumber(e) ? e->valuedouble : 0;
      if (!(id >= 1 && id <= 4294967295.0 && id == (double)(uint32_t)id))
        rc = kiln__sj_fail(c, "category '%s': its id must be an integer in [1, 4294967295]",
                           e->string);
      else rc = declare(c, cats, n, &cap, e->string, id);
      if (!rc) kiln__sj_pop(c);
    }
  } else {
    rc = kiln__sj_fail(c, "categories must be an array of names or an object {name: id}");
  }
  return rc;
}

int kiln__sj_categories(kiln__sj_ctx *c, const cJSON *o, kiln__category **out, size_t *n) {
  *out = NULL, *n = 0;
  int rc = declaration(c, o, out, n);
  if (rc) kiln__categories_free(*out, *n), *out = NULL, *n = 0;
  return rc;
}

int kiln__sj_parse_categories(kiln__sj_ctx *c, const cJSON *o) {
  if (!o) return 0;
  kiln__sj_push_key(c, "categories");
  int rc = kiln__sj_categories(c, o, &c->ld->cats, &c->ld->ncats);
  if (rc) return rc;
  kiln__sj_pop(c);
  c->ld->cats_cap = c->ld->ncats;
  c->ld->declared = true;
  return 0;
}

/* The declared category named name (at member "category" of the current object), with a did you
 * mean for a near miss. */
static int declared_name(kiln__sj_ctx *c, const char *name, int *out) {
  kiln__sj_load *ld = c->ld;
  if ((*out = find_name(ld, name)) >= 0) return 0;
  const char **names = malloc((ld->ncats + 1) * sizeof *names);
  if (!names) return kiln__sj_nomem(c);
  for (size_t i = 0; i < ld->ncats; i++) names[i] = ld->cats[i].name;
  names[ld->ncats] = NULL;
  const char *near = kiln__sj_closest(name, names);
  int rc = near ? kiln__sj_fail_at(c, "category", "unknown category '%s' (did you mean '%s'?)",
                                   name, near)
                : kiln__sj_fail_at(c, "category", "unknown category '%s': the scene declares %zu",
                                   name, ld->ncats);
  free(names);
  return rc;
}

/* A category the scene does not declare: name (and id when given, else 0). */
static int undeclared(kiln__sj_ctx *c, const char *name, bool has_id, uint32_t id, int *out) {
  kiln__sj_load *ld = c->ld;
  int k = find_name(ld, name), other = has_id ? find_id(ld->cats, ld->ncats, id) : -1;
  if (other >= 0 && other != k)
    return kiln__sj_fail_at(c, "category_id", "category id %u is category '%s' already", id,
                            ld->cats[other].name);
  if (k >= 0 && has_id && ld->cats[k].id && ld->cats[k].id != id)
    return kiln__sj_fail_at(c, "category_id", "category '%s' has id %u already, not %u", name,
                            ld->cats[k].id, id);
  if (k < 0 && (k = add(&ld->cats, &ld->ncats, &ld->cats_cap, name, 0)) < 0)
    return kiln__sj_nomem(c);
  if (has_id) ld->cats[k].id = id;
  *out = k;
  return 0;
}

int kiln__sj_object_category(kiln__sj_ctx *c, const cJSON *obj, uint32_t first, uint32_t last) {
  kiln__sj_load *ld = c->ld;
  const char *name = NULL;
  double id = 0;
  bool has_id = cJSON_GetObjectItemCaseSensitive(obj, "category_id") != NULL;
  int rc, k = -1;
  if ((cJSON_GetObjectItemCaseSensitive(obj, "category") &&
       (rc = kiln__sj_string(c, obj, "category", NULL, &name))) ||
      (has_id && (rc = kiln__sj_integer(c, obj, "category_id", 0, 1, 4294967295.0, &id))))
    return rc;
  if (!name && !has_id) return 0;
  if (ld->declared) {
    if (name && (rc = declared_name(c, name, &k))) return rc;
    if (!name && (k = find_id(ld->cats, ld->ncats, (uint32_t)id)) < 0)
      return kiln__sj_fail_at(c, "category_id", "no declared category has id %.0f", id);
    if (has_id && ld->cats[k].id != (uint32_t)id)
      return kiln__sj_fail_at(c, "category_id", "category '%s' is declared with id %u, not %.0f",
                              ld->cats[k].name, ld->cats[k].id, id);
  } else if (!name) {
    return kiln__sj_fail_at(c, "category_id",
                            "category_id without a category name needs the scene's top-level "
                            "\"categories\"");
  } else if ((rc = undeclared(c, name, has_id, (uint32_t)id, &k))) {
    return rc;
  }
  if (last > ld->obj_cat_cap) {
    size_t cap = ld->obj_cat_cap ? ld->obj_cat_cap : 16;
    while (cap < last) cap *= 2;
    int32_t *a = realloc(ld->obj_cat, cap * sizeof *a);
    if (!a) return kiln__sj_nomem(c);
    ld->obj_cat = a, ld->obj_cat_cap = cap;
  }
  for (size_t i = ld->obj_cat_n; i < last; i++) ld->obj_cat[i] = -1;
  if (last > ld->obj_cat_n) ld->obj_cat_n = last;
  for (uint32_t i = first; i <= last; i++) ld->obj_cat[i - 1] = k;
  return 0;
}

int kiln__sj_categories_finish(kiln__sj_ctx *c) {
  kiln__sj_load *ld = c->ld;
  kiln__scene *s = &ld->b.s;
  uint32_t next = 1;
  for (size_t i = 0; i < ld->ncats; i++) {
    if (ld->cats[i].id) continue;
    while (find_id(ld->cats, ld->ncats, next) >= 0) next++;
    ld->cats[i].id = next++;
  }
  if (ld->ncats) {
    if (!(s->category_names = calloc(ld->ncats, sizeof *s->category_names)) ||
        !(s->category_ids = malloc(ld->ncats * sizeof *s->category_ids)))
      return kiln__sj_nomem(c);
    s->ncategories = ld->ncats;
    for (size_t i = 0; i < ld->ncats; i++) {
      if (!(s->category_names[i] = dup_str(ld->cats[i].name))) return kiln__sj_nomem(c);
      s->category_ids[i] = ld->cats[i].id;
    }
  }
  if (!ld->obj_cat_n) return 0;
  if (!(s->object_category = calloc(s->nobjects, sizeof *s->object_category)) ||
      !(s->object_category_id = calloc(s->nobjects, sizeof *s->object_category_id)))
    return kiln__sj_nomem(c);
  for (size_t i = 0; i < ld->obj_cat_n && i < s->nobjects; i++) {
    int k = ld->obj_cat[i];
    if (k < 0) continue;
    if (!(s->object_category[i] = dup_str(ld->cats[k].name))) return kiln__sj_nomem(c);
    s->object_category_id[i] = ld->cats[k].id;
  }
  return 0;
}
