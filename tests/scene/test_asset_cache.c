/* test_asset_cache.c: the cache of decoded mesh and image files (asset_cache.c) gives a file's
 * current contents: a file rewritten with the same size, on the same inode, with the same
 * modification time (a rewrite within the file system's time resolution) is read again; a file
 * that did not change is decoded once. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>

#include "scene_internal.h"
#include "st_images.h"

/* Gives the file at path the times in st (as a rewrite within one tick of the clock would leave
 * them) and checks that its key (inode, size, time) is st's again. */
static void restore_times(const char *path, const struct stat *st) {
  struct timespec ts[2] = {st->st_atim, st->st_mtim};
  if (utimensat(AT_FDCWD, path, ts, 0) != 0) KT_FAIL("utimensat %s", path);
  struct stat now;
  KT_TRUE(stat(path, &now) == 0);
  KT_EQ((long long)now.st_ino, (long long)st->st_ino);
  KT_EQ((long long)now.st_size, (long long)st->st_size);
  KT_EQ((long long)now.st_mtim.tv_sec, (long long)st->st_mtim.tv_sec);
  KT_EQ((long long)now.st_mtim.tv_nsec, (long long)st->st_mtim.tv_nsec);
}

/* Rewrites path in place (same inode) with n bytes of data. */
static void rewrite(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "r+b");
  if (!f || fwrite(data, 1, n, f) != n) KT_FAIL("cannot rewrite %s", path);
  fclose(f);
}

static const char tri_a[] = "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n";
static const char tri_b[] = "v 0 0 0\nv 2 0 0\nv 0 1 0\nf 1 2 3\n"; /* the same length */

TEST(mesh_rewritten_with_the_same_key_is_read_again) {
  const char *dir = st_tmpdir();
  char path[1024];
  snprintf(path, sizeof path, "%s", st_write(dir, "tri.obj", tri_a, (size_t)-1));
  struct stat st;
  KT_TRUE(stat(path, &st) == 0);
  kiln__asset_cache *c;
  KT_CODE(kiln__asset_cache_create(&c), KILN_OK);
  kiln__mesh_error err;
  const kiln__mesh *m;
  KT_CODE(kiln__asset_cache_mesh(c, path, true, &m, &err), KILN_OK);
  KT_EQ(m->ntris, 1);
  KT_TRUE(m->pos[3] == 1.0f);
  /* unchanged: a hit, the same mesh */
  const kiln__mesh *m2;
  KT_CODE(kiln__asset_cache_mesh(c, path, true, &m2, &err), KILN_OK);
  KT_TRUE(m2 == m);
  uint64_t reads, hits;
  kiln__asset_cache_stats(c, &reads, &hits);
  KT_EQ(reads, 1);
  KT_EQ(hits, 1);
  /* rewritten, the key as it was */
  rewrite(path, tri_b, sizeof tri_b - 1);
  restore_times(path, &st);
  KT_CODE(kiln__asset_cache_mesh(c, path, true, &m2, &err), KILN_OK);
  KT_TRUE(m2->pos[3] == 2.0f);
  kiln__asset_cache_stats(c, &reads, &hits);
  KT_EQ(reads, 2);
  kiln__asset_cache_destroy(c);
  st_tmp_cleanup();
}

/* A file last changed long ago is decoded once however often it is asked for. */
TEST(old_file_is_decoded_once) {
  const char *dir = st_tmpdir();
  char path[1024];
  snprintf(path, sizeof path, "%s", st_write(dir, "tri.obj", tri_a, (size_t)-1));
  struct stat st;
  KT_TRUE(stat(path, &st) == 0);
  st.st_mtim.tv_sec -= 60, st.st_atim.tv_sec -= 60;
  restore_times(path, &st);
  kiln__asset_cache *c;
  KT_CODE(kiln__asset_cache_create(&c), KILN_OK);
  kiln__mesh_error err;
  const kiln__mesh *m, *m2;
  KT_CODE(kiln__asset_cache_mesh(c, path, true, &m, &err), KILN_OK);
  for (int i = 0; i < 3; i++) {
    KT_CODE(kiln__asset_cache_mesh(c, path, true, &m2, &err), KILN_OK);
    KT_TRUE(m2 == m);
  }
  uint64_t reads, hits;
  kiln__asset_cache_stats(c, &reads, &hits);
  KT_EQ(reads, 1);
  KT_EQ(hits, 3);
  kiln__asset_cache_destroy(c);
  st_tmp_cleanup();
}

TEST(texture_rewritten_with_the_same_key_is_read_again) {
  const char *dir = st_tmpdir();
  char path[1024];
  snprintf(path, sizeof path, "%s/px.png", dir);
  unsigned char a[12] = {255, 0, 0, 255, 0, 0, 255, 0, 0, 255, 0, 0};
  unsigned char b[12] = {0, 0, 255, 0, 0, 255, 0, 0, 255, 0, 0, 255};
  KT_TRUE(stbi_write_png(path, 2, 2, 3, a, 6) != 0);
  size_t na, nb;
  char *ba = st_read_file(path, &na);
  KT_TRUE(stbi_write_png(path, 2, 2, 3, b, 6) != 0);
  char *bb = st_read_file(path, &nb);
  /* the same size: the shorter padded after its IEND chunk, where a decoder stops reading */
  size_t len = na > nb ? na : nb;
  ba = realloc(ba, len), bb = realloc(bb, len);
  if (!ba || !bb) KT_FAIL("out of memory");
  memset(ba + na, 0, len - na), memset(bb + nb, 0, len - nb);
  rewrite(path, ba, len);
  struct stat st;
  KT_TRUE(stat(path, &st) == 0);
  kiln__asset_cache *c;
  KT_CODE(kiln__asset_cache_create(&c), KILN_OK);
  kiln__texture t;
  char msg[256];
  KT_CODE(kiln__asset_cache_texture(c, path, KILN__TEX_LINEAR, &t, NULL, msg, sizeof msg), KILN_OK);
  KT_TRUE(t.rgb[0] == 1.0f && t.rgb[2] == 0.0f);
  KT_TRUE(t.borrowed); /* the cache's texels, not a copy */
  kiln__texture_release(&t);
  rewrite(path, bb, len);
  restore_times(path, &st);
  KT_CODE(kiln__asset_cache_texture(c, path, KILN__TEX_LINEAR, &t, NULL, msg, sizeof msg), KILN_OK);
  KT_TRUE(t.rgb[0] == 0.0f && t.rgb[2] == 1.0f);
  kiln__texture_release(&t);
  uint64_t reads, hits;
  kiln__asset_cache_stats(c, &reads, &hits);
  KT_EQ(reads, 2);
  KT_EQ(hits, 0);
  kiln__asset_cache_destroy(c);
  free(ba), free(bb);
  st_tmp_cleanup();
}

/* A tetrahedron with non-unit vertex normals (a shared mesh holds them made unit) and uv. */
static const char tet_obj[] = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nvn 0 0 -2\nvn 0 3 0\n"
                              "vt 0 0\nvt 1 0\nvt 0 1\n"
                              "f 1/1/1 3/3/1 2/2/1\nf 1/1/2 2/2/2 4/3/2\nf 1/1/1 4/2/1 3/3/1\n"
                              "f 2/1/2 3/2/2 4/3/2\n";

static const char borrow_scene[] =
    "{\"camera\": {\"position\": [0, 1, -4], \"look_at\": [0, 0.8, 0], \"vfov\": 45},\n"
    " \"materials\": {\"red\": {\"type\": \"diffuse\", \"albedo\": [0.8, 0.1, 0.1]},\n"
    "  \"floor\": {\"type\": \"diffuse\", \"texture\": \"px.png\"}},\n"
    " \"objects\": [{\"type\": \"mesh\", \"name\": \"tet\", \"file\": \"tet.obj\",\n"
    "   \"material\": \"red\",\n"
    "   \"instances\": [{\"translate\": [0, 1, 0]}, {\"translate\": [2, 0, 0]}]},\n"
    "  {\"type\": \"quad\", \"corner\": [-5, 0, -5], \"u\": [0, 0, 10], \"v\": [10, 0, 0],\n"
    "   \"material\": \"floor\"}]}\n";

static kiln_scene *load_with(const char *dir, kiln__asset_cache *c) {
  kiln_scene *s = NULL;
  kiln_error_detail e;
  int rc = kiln__scene_load_string_cached(borrow_scene, dir, "borrow.json", NULL, c, &e, &s);
  if (rc) {
    char m[1400];
    KT_FAIL("load: %s", kiln_error_detail_format(&e, m, sizeof m));
  }
  return s;
}

/* Scenes loaded through a cache hold no copy of a shared mesh's triangles or of a texture's
 * texels: every load points at the cache's (the same pointers), which hold what a load without
 * a cache copies (unit normals included), and stay valid while a scene holds them, whenever the
 * cache's creator lets go of it. */
TEST(scenes_borrow_shared_meshes_and_texels) {
  const char *dir = st_tmpdir();
  st_write(dir, "tet.obj", tet_obj, (size_t)-1);
  st_write_png(dir, "px.png");
  kiln__asset_cache *c;
  KT_CODE(kiln__asset_cache_create(&c), KILN_OK);
  kiln_scene *a = load_with(dir, c), *b = load_with(dir, c), *own = load_with(dir, NULL);
  const kiln__scene *da = &a->data, *db = &b->data, *dn = &own->data;
  KT_EQ(da->nmeshes, 1);
  KT_EQ(dn->nmeshes, 1);
  const kiln__shared_mesh *qa = &da->meshes[0], *qb = &db->meshes[0], *qn = &dn->meshes[0];
  KT_TRUE(qa->source != NULL);
  KT_TRUE(qb->source == qa->source);
  KT_TRUE(qa->pos == qb->pos && qa->nrm == qb->nrm && qa->uv == qb->uv);
  KT_TRUE(qa->tri_slot == qb->tri_slot && qa->tri_group == qb->tri_group);
  KT_TRUE(qn->source == NULL); /* no cache: its own copies */
  KT_TRUE(qn->pos != qa->pos);
  KT_TRUE(da->ntextures == 1 && dn->ntextures == 1);
  KT_TRUE(da->textures[0].borrowed && db->textures[0].borrowed);
  KT_TRUE(da->textures[0].rgb == db->textures[0].rgb);
  KT_TRUE(!dn->textures[0].borrowed);
  uint64_t reads, hits;
  kiln__asset_cache_stats(c, &reads, &hits);
  KT_EQ(reads, 2);
  KT_EQ(hits, 2);
  kiln__asset_cache_destroy(c); /* the creator's reference: a and b keep the cache */
  kiln_scene_destroy(b);
  /* a's borrowed arrays hold what the load without a cache made */
  KT_EQ(qa->ntris, qn->ntris);
  KT_TRUE(qa->nrm && qn->nrm && qa->uv && qn->uv);
  KT_TRUE(memcmp(qa->pos, qn->pos, qn->ntris * 36) == 0);
  KT_TRUE(memcmp(qa->nrm, qn->nrm, qn->ntris * 36) == 0);
  KT_TRUE(memcmp(qa->uv, qn->uv, qn->ntris * 24) == 0);
  ST_NEAR(qa->nrm[0] * qa->nrm[0] + qa->nrm[1] * qa->nrm[1] + qa->nrm[2] * qa->nrm[2], 1, 1e-6);
  for (size_t t = 0; t < qn->ntris; t++) {
    KT_EQ(kiln__shared_mesh_material(qa, t), kiln__shared_mesh_material(qn, t));
    KT_EQ(kiln__shared_mesh_object(qa, t), kiln__shared_mesh_object(qn, t));
    KT_EQ(qa->tri_group[t], qn->tri_group[t]);
  }
  KT_TRUE(memcmp(da->textures[0].rgb, dn->textures[0].rgb, 2 * 1 * 12) == 0);
  kiln_scene_destroy(a); /* the last reference: the cache goes with it */
  kiln_scene_destroy(own);
  st_tmp_cleanup();
}

typedef struct loader {
  kiln__asset_cache *c;
  const char *dir;
  atomic_int *go;
  kiln_scene *s;
  int rc;
} loader;

static void *load_at_once(void *arg) {
  loader *l = arg;
  while (!atomic_load(l->go)) sched_yield();
  kiln_error_detail e;
  l->rc =
      kiln__scene_load_string_cached(borrow_scene, l->dir, "borrow.json", NULL, l->c, &e, &l->s);
  return NULL;
}

/* Loads on several threads at once, each the first to want what a shared mesh adds to its cache
 * entry (unit normals, group boxes and materials used): each is made once and every scene reads
 * the same, and the scenes keep the cache after its creator lets go. */
TEST(concurrent_loads_share_what_an_entry_makes) {
  const char *dir = st_tmpdir();
  st_write(dir, "tet.obj", tet_obj, (size_t)-1);
  st_write_png(dir, "px.png");
  kiln__asset_cache *c;
  KT_CODE(kiln__asset_cache_create(&c), KILN_OK);
  /* the entries first, as a load would find them, without what a scene of them adds */
  char path[1100], msg[256];
  snprintf(path, sizeof path, "%s/tet.obj", dir);
  const kiln__mesh *m;
  kiln__mesh_error err;
  KT_CODE(kiln__asset_cache_mesh(c, path, true, &m, &err), KILN_OK);
  snprintf(path, sizeof path, "%s/px.png", dir);
  kiln__texture t;
  KT_CODE(kiln__asset_cache_texture(c, path, KILN__TEX_SRGB, &t, NULL, msg, sizeof msg), KILN_OK);
  enum { N = 6 };
  atomic_int go;
  atomic_init(&go, 0);
  loader l[N];
  pthread_t th[N];
  for (int i = 0; i < N; i++) {
    l[i] = (loader){.c = c, .dir = dir, .go = &go};
    KT_TRUE(pthread_create(&th[i], NULL, load_at_once, &l[i]) == 0);
  }
  atomic_store(&go, 1);
  for (int i = 0; i < N; i++) KT_TRUE(pthread_join(th[i], NULL) == 0);
  kiln__asset_cache_destroy(c); /* the scenes keep it */
  uint64_t reads, hits;
  for (int i = 0; i < N; i++) {
    KT_CODE(l[i].rc, KILN_OK);
    const kiln__scene *d = &l[i].s->data, *d0 = &l[0].s->data;
    KT_EQ(d->nmeshes, 1);
    KT_TRUE(d->meshes[0].source == m && d->meshes[0].pos == m->pos);
    KT_TRUE(d->meshes[0].nrm != NULL && d->meshes[0].nrm == d0->meshes[0].nrm);
    KT_TRUE(d->ntextures == 1 && d->textures[0].borrowed && d->textures[0].rgb == t.rgb);
  }
  kiln__asset_cache_stats(l[0].s->data.assets, &reads, &hits);
  KT_EQ(reads, 2);
  KT_EQ(hits, 2 * N);
  const float *n0 = l[0].s->data.meshes[0].nrm;
  ST_NEAR(n0[0] * n0[0] + n0[1] * n0[1] + n0[2] * n0[2], 1, 1e-6);
  for (int i = 0; i < N; i++) kiln_scene_destroy(l[i].s);
  st_tmp_cleanup();
}

/* A load through the cache that fails after it borrowed a shared mesh and an image frees what it
 * owns only: the cache's entries stay whole, and the next load borrows them again. */
TEST(a_failed_load_leaves_the_cache_whole) {
  const char *dir = st_tmpdir();
  st_write(dir, "tet.obj", tet_obj, (size_t)-1);
  st_write_png(dir, "px.png");
  kiln__asset_cache *c;
  KT_CODE(kiln__asset_cache_create(&c), KILN_OK);
  const char *cut = strstr(borrow_scene, "]}\n");
  KT_TRUE(cut != NULL);
  char bad[2048];
  snprintf(bad, sizeof bad,
           "%.*s,\n  {\"type\": \"sphere\", \"center\": [0, 0, 0], \"radius\": -1,\n"
           "   \"material\": \"red\"}]}\n",
           (int)(cut - borrow_scene), borrow_scene);
  kiln_scene *s = NULL;
  kiln_error_detail e;
  KT_TRUE(kiln__scene_load_string_cached(bad, dir, "bad.json", NULL, c, &e, &s) != KILN_OK);
  KT_TRUE(s == NULL);
  KT_STR_CONTAINS(e.message, "radius");
  uint64_t reads, hits;
  kiln__asset_cache_stats(c, &reads, &hits);
  KT_EQ(reads, 2); /* the mesh and the image were read (and borrowed) before the error */
  kiln_scene *good = load_with(dir, c), *own = load_with(dir, NULL);
  kiln__asset_cache_destroy(c);
  const kiln__shared_mesh *q = &good->data.meshes[0], *qn = &own->data.meshes[0];
  KT_TRUE(q->source != NULL && q->ntris == qn->ntris);
  KT_TRUE(memcmp(q->pos, qn->pos, qn->ntris * 36) == 0);
  KT_TRUE(memcmp(q->nrm, qn->nrm, qn->ntris * 36) == 0);
  KT_TRUE(good->data.textures[0].borrowed);
  KT_TRUE(memcmp(good->data.textures[0].rgb, own->data.textures[0].rgb, 2 * 12) == 0);
  kiln_scene_destroy(good);
  kiln_scene_destroy(own);
  st_tmp_cleanup();
}
