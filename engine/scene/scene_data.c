/* scene_data.c: freeing and wrapping the flattened scene of scene_data.h. */
#include "scene_data.h"

#include <stdlib.h>
#include <string.h>

#include "kiln/scene.h"

void kiln__scene_free(kiln__scene *s) {
  if (!s) return;
  free(s->pos), free(s->nrm), free(s->uv), free(s->col), free(s->tan);
  free(s->tri_material), free(s->tri_object), free(s->tri_instance);
  for (size_t i = 0; i < s->nmeshes; i++) kiln__shared_mesh_free(&s->meshes[i]);
  free(s->meshes), free(s->placements);
  free(s->spheres);
  for (size_t i = 0; i < s->nmaterials; i++) free(s->materials[i].name);
  free(s->materials);
  for (size_t i = 0; i < s->ntextures; i++) kiln__texture_release(&s->textures[i]);
  free(s->textures);
  for (size_t i = 0; i < s->nobjects; i++) free(s->object_names[i]);
  free(s->object_names);
  if (s->object_category)
    for (size_t i = 0; i < s->nobjects; i++) free(s->object_category[i]);
  free(s->object_category), free(s->object_category_id);
  for (size_t i = 0; i < s->ncategories; i++) free(s->category_names[i]);
  free(s->category_names), free(s->category_ids);
  free(s->instances);
  free(s->plights);
  for (size_t i = 0; i < s->nwarnings; i++) free(s->warnings[i]);
  free(s->warnings);
  kiln__asset_cache_destroy(s->assets); /* last: what the scene borrowed is gone with it */
  memset(s, 0, sizeof *s);
}

void kiln__shared_mesh_free(kiln__shared_mesh *m) {
  if (!m->source) { /* owned: malloc'd by the builder (the const is for readers) */
    free((void *)m->pos), free((void *)m->nrm), free((void *)m->uv), free((void *)m->col);
    free((void *)m->tan), free((void *)m->tri_slot), free((void *)m->tri_group);
  }
  free(m->slot_material), free(m->group_object);
  memset(m, 0, sizeof *m);
}

void kiln__texture_release(kiln__texture *t) {
  if (!t->borrowed) free(t->rgb);
  memset(t, 0, sizeof *t);
}

size_t kiln__scene_triangles(const kiln__scene *s) {
  size_t n = s->ntris;
  for (size_t i = 0; i < s->nplacements; i++) n += s->meshes[s->placements[i].mesh].ntris;
  return n;
}

struct kiln_scene *kiln__scene_wrap(kiln__scene *data) {
  struct kiln_scene *h = calloc(1, sizeof *h);
  if (!h) {
    kiln__scene_free(data);
    return NULL;
  }
  h->data = *data;
  memset(data, 0, sizeof *data);
  return h;
}

size_t kiln_scene_warning_count(const kiln_scene *s) { return s->data.nwarnings; }

const char *kiln_scene_warning(const kiln_scene *s, size_t i) {
  return i < s->data.nwarnings ? s->data.warnings[i] : NULL;
}

void kiln_scene_destroy(kiln_scene *s) {
  if (!s) return;
  kiln__scene_free(&s->data);
  free(s);
}
