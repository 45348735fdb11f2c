/* test_asset_cache.c: the cache of decoded mesh and image files (asset_cache.c) gives a file's
 * current contents: a file rewritten with the same size, on the same inode, with the same
 * modification time (a rewrite within the file system's time resolution) is read again; a file
 * that did not change is decoded once. */
#define _GNU_SOURCE
#include <fcntl.h>
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
  free(t.rgb);
  rewrite(path, bb, len);
  restore_times(path, &st);
  KT_CODE(kiln__asset_cache_texture(c, path, KILN__TEX_LINEAR, &t, NULL, msg, sizeof msg), KILN_OK);
  KT_TRUE(t.rgb[0] == 0.0f && t.rgb[2] == 1.0f);
  free(t.rgb);
  uint64_t reads, hits;
  kiln__asset_cache_stats(c, &reads, &hits);
  KT_EQ(reads, 2);
  KT_EQ(hits, 0);
  kiln__asset_cache_destroy(c);
  free(ba), free(bb);
  st_tmp_cleanup();
}
