/* asset_cache.c: mesh and image files decoded once for many loads of related scenes (a job's
 * frames with overrides), see scene_data.h.
 *
 * An entry is keyed by the file's path and how it is read (a mesh as OBJ or PLY; an image in a
 * mode, with or without its alpha plane), and is valid while the file's device, inode, size and
 * modification time (to the nanosecond) are those it was read with: a file replaced or rewritten
 * between two loads is read again. A file's times have the file system's resolution (a clock
 * tick on ext4 and tmpfs, a second or two on others), so a file rewritten with the same size
 * within that resolution of its last change keeps its key: an entry read while its file's
 * modification time was that recent ("racy", as git calls it) also holds a hash of the file's
 * bytes, and a hit on it reads the file and compares them until the file's time is older than
 * the resolution can hide (RACY_NS), when the entry stops being racy. Entries are never freed
 * before the cache: a mesh or an image handed out is borrowed by every scene loaded with it (each
 * holds a reference on the cache, so the cache outlives them all, whenever its creator drops its
 * own), and the renderers of a job compare their scenes' meshes and images by these pointers. A
 * miss reads the file without the lock, so two loads that miss the same file at once both read
 * it, and the second entry stays unused (correct, and rare: a job's frames miss only their first
 * time).
 *
 * Threads: every call may run concurrently with the others (one mutex over the lists and the
 * entries' unit normals and facts, which are made on first use). */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "scene_internal.h"

typedef struct file_key {
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
} file_key;

/* How recent a file's modification time may be, compared with when it was read, for a rewrite of
 * the same size to leave the time unchanged: the coarsest resolution kiln expects (FAT's 2 s). */
#define RACY_NS 2000000000ll

typedef struct mesh_item {
  char *path;
  bool is_obj;
  file_key key;
  _Atomic bool racy; /* read while the file's time was recent: check hash on a hit */
  uint64_t hash;     /* FNV-1a of the file's bytes when it was read (racy entries) */
  kiln__mesh mesh;
  /* made on first use, under the mutex, then read-only: */
  float *unit_nrm;        /* mesh.nrm made unit, for shared meshes */
  kiln__mesh_facts facts; /* what every load reads of the file (facts.box NULL: not made yet) */
} mesh_item;

typedef struct tex_item {
  char *path;
  kiln__tex_mode mode;
  bool want_alpha;
  file_key key;
  _Atomic bool racy; /* as mesh_item's */
  uint64_t hash;
  kiln__texture t, a; /* a.rgb NULL: no alpha plane (or not asked for) */
} tex_item;

struct kiln__asset_cache {
  pthread_mutex_t mu;
  mesh_item **meshes; /* pointers: items stay where they are while the array grows */
  size_t nmeshes;
  tex_item **texs;
  size_t ntexs;
  atomic_ullong reads, hits; /* relaxed: statistics, ordered with nothing else */
  atomic_size_t refs;
};

int kiln__asset_cache_create(kiln__asset_cache **out) {
  *out = NULL;
  kiln__asset_cache *c = calloc(1, sizeof *c);
  if (!c) return KILN_ENOMEM;
  if (pthread_mutex_init(&c->mu, NULL)) {
    free(c);
    return KILN_ENOMEM;
  }
  atomic_init(&c->reads, 0);
  atomic_init(&c->hits, 0);
  atomic_init(&c->refs, 1);
  *out = c;
  return 0;
}

kiln__asset_cache *kiln__asset_cache_retain(kiln__asset_cache *c) {
  /* relaxed: the caller already holds a reference, which keeps c alive across this */
  atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
  return c;
}

void kiln__asset_cache_destroy(kiln__asset_cache *c) {
  /* acq_rel: every holder's last use happens before the free (release by each, acquire by the
   * last) */
  if (!c || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1) return;
  for (size_t i = 0; i < c->nmeshes; i++) {
    kiln__mesh_free(&c->meshes[i]->mesh);
    free(c->meshes[i]->unit_nrm);
    kiln__mesh_facts_free(&c->meshes[i]->facts);
    free(c->meshes[i]->path), free(c->meshes[i]);
  }
  for (size_t i = 0; i < c->ntexs; i++) {
    free(c->texs[i]->t.rgb), free(c->texs[i]->a.rgb);
    free(c->texs[i]->path), free(c->texs[i]);
  }
  free(c->meshes), free(c->texs);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

void kiln__asset_cache_stats(kiln__asset_cache *c, uint64_t *reads, uint64_t *hits) {
  *reads = atomic_load_explicit(&c->reads, memory_order_relaxed);
  *hits = atomic_load_explicit(&c->hits, memory_order_relaxed);
}

/* The key of the file at path now; false when it cannot be stat'ed (the reader then reports). */
static bool key_of(const char *path, file_key *k) {
  struct stat st;
  memset(k, 0, sizeof *k);
  if (stat(path, &st) != 0) return false;
  k->dev = st.st_dev, k->ino = st.st_ino, k->size = st.st_size, k->mtime = st.st_mtim;
  return true;
}

/* Whether a file whose key is k, looked at now, may yet be rewritten without k changing. */
static bool key_racy(const file_key *k) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  long long age = ((long long)now.tv_sec - (long long)k->mtime.tv_sec) * 1000000000ll +
                  (now.tv_nsec - k->mtime.tv_nsec);
  return age < RACY_NS;
}

/* FNV-1a of the bytes of the file at path into *h; false when it cannot be read. */
static bool hash_file(const char *path, uint64_t *h) {
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  uint64_t x = 1469598103934665603ull;
  unsigned char buf[16384];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    for (size_t i = 0; i < n; i++) x = (x ^ buf[i]) * 1099511628211ull;
  bool ok = !ferror(f);
  fclose(f);
  *h = x;
  return ok;
}

/* Whether a hit on an entry (racy, with hash) read from the file at path, whose key is k now,
 * still holds the file's bytes; an entry found to be no longer racy is marked so. */
static bool still_valid(_Atomic bool *racy, uint64_t hash, const char *path, const file_key *k) {
  /* relaxed: a hint; a stale true only costs one more hash */
  if (!atomic_load_explicit(racy, memory_order_relaxed)) return true;
  bool recent = key_racy(k); /* before hashing: a rewrite after this changes the key */
  uint64_t h;
  if (!hash_file(path, &h) || h != hash) return false;
  if (!recent) atomic_store_explicit(racy, false, memory_order_relaxed);
  return true;
}

static bool same_key(const file_key *a, const file_key *b) {
  return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
         a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* Before a miss reads the file at path (key k): whether the entry will be racy, and if so the
 * hash of the file's bytes in *before (false: unreadable, *before 0). */
static bool racy_before(const char *path, const file_key *k, bool keyed, uint64_t *before) {
  *before = 0;
  if (!keyed || !key_racy(k)) return false;
  if (!hash_file(path, before)) *before = 0;
  return true;
}

/* After the read: a racy entry keeps the hash taken before it; one whose file changed while it
 * was read (its key or its bytes now differ) gets a key no file has, so that it never hits. */
static void racy_after(const char *path, file_key *k, bool racy, uint64_t before,
                       _Atomic bool *flag, uint64_t *hash) {
  atomic_init(flag, racy);
  *hash = before;
  if (!racy) return;
  file_key now;
  uint64_t h;
  if (!key_of(path, &now) || !same_key(&now, k) || !hash_file(path, &h) || h != before)
    memset(k, 0, sizeof *k);
}

/* Appends m / e to the cache's list; false on ENOMEM. Under c->mu. */
static bool append_mesh(kiln__asset_cache *c, mesh_item *m) {
  mesh_item **a = realloc(c->meshes, (c->nmeshes + 1) * sizeof *a);
  if (!a) return false;
  a[c->nmeshes++] = m;
  c->meshes = a;
  return true;
}

static bool append_tex(kiln__asset_cache *c, tex_item *e) {
  tex_item **a = realloc(c->texs, (c->ntexs + 1) * sizeof *a);
  if (!a) return false;
  a[c->ntexs++] = e;
  c->texs = a;
  return true;
}

int kiln__asset_cache_mesh(kiln__asset_cache *c, const char *path, bool is_obj,
                           const kiln__mesh **out, kiln__mesh_error *err) {
  *out = NULL;
  file_key k;
  bool keyed = key_of(path, &k);
  mesh_item *found = NULL;
  pthread_mutex_lock(&c->mu);
  for (size_t i = c->nmeshes; keyed && i-- > 0 && !found;) {
    mesh_item *m = c->meshes[i];
    if (m->is_obj == is_obj && same_key(&m->key, &k) && strcmp(m->path, path) == 0) found = m;
  }
  pthread_mutex_unlock(&c->mu);
  if (found && still_valid(&found->racy, found->hash, path, &k)) *out = &found->mesh;
  if (*out) {
    atomic_fetch_add_explicit(&c->hits, 1, memory_order_relaxed);
    return 0;
  }
  atomic_fetch_add_explicit(&c->reads, 1, memory_order_relaxed);
  mesh_item *m = calloc(1, sizeof *m);
  size_t len = strlen(path);
  if (!m || !(m->path = malloc(len + 1))) {
    free(m);
    snprintf(err->file, sizeof err->file, "%s", path);
    err->line = 0;
    snprintf(err->message, sizeof err->message, "out of memory");
    return KILN_ENOMEM;
  }
  memcpy(m->path, path, len + 1);
  m->is_obj = is_obj, m->key = k;
  uint64_t before;
  bool racy = racy_before(path, &k, keyed, &before);
  int rc = is_obj ? kiln__obj_load(path, &m->mesh, err) : kiln__ply_load(path, &m->mesh, err);
  racy_after(path, &m->key, racy, before, &m->racy, &m->hash);
  pthread_mutex_lock(&c->mu);
  bool kept = !rc && keyed && append_mesh(c, m);
  pthread_mutex_unlock(&c->mu);
  if (!rc && !kept) { /* not kept (unkeyed, or no room to list it): handed out nowhere */
    kiln__mesh_free(&m->mesh);
    rc = KILN_ENOMEM;
    snprintf(err->file, sizeof err->file, "%s", path);
    err->line = 0;
    snprintf(err->message, sizeof err->message, "out of memory");
  }
  if (rc) {
    free(m->path), free(m);
    return rc;
  }
  *out = &m->mesh;
  return 0;
}

/* The entry whose mesh m is. */
static mesh_item *item_of(const kiln__mesh *m) {
  return (mesh_item *)(void *)((const char *)m - offsetof(mesh_item, mesh));
}

int kiln__asset_cache_mesh_facts(kiln__asset_cache *c, const kiln__mesh *m,
                                 const kiln__mesh_facts **out) {
  mesh_item *e = item_of(m);
  int rc = 0;
  pthread_mutex_lock(&c->mu); /* as unit normals */
  if (!e->facts.box) rc = kiln__mesh_facts_make(m, &e->facts);
  pthread_mutex_unlock(&c->mu);
  *out = rc ? NULL : &e->facts;
  return rc;
}

int kiln__asset_cache_unit_normals(kiln__asset_cache *c, const kiln__mesh *m, const float **out) {
  *out = NULL;
  if (!m->nrm) return 0;
  mesh_item *e = item_of(m);
  int rc = 0;
  /* under the mutex: made once per entry and job, and loads that want it at once wait for it */
  pthread_mutex_lock(&c->mu);
  if (!e->unit_nrm && !(e->unit_nrm = kiln__unit_normals(m->nrm, m->ntris))) rc = KILN_ENOMEM;
  *out = e->unit_nrm;
  pthread_mutex_unlock(&c->mu);
  return rc;
}

/* Entry e's texels as kiln__texture_load_ex would have given them, borrowed. */
static void give(const tex_item *e, kiln__texture *t, kiln__texture *alpha) {
  *t = e->t, t->borrowed = true;
  if (alpha) *alpha = e->a, alpha->borrowed = alpha->rgb != NULL;
}

int kiln__asset_cache_texture(kiln__asset_cache *c, const char *path, kiln__tex_mode mode,
                              kiln__texture *t, kiln__texture *alpha, char *msg, size_t msgsz) {
  memset(t, 0, sizeof *t);
  if (alpha) memset(alpha, 0, sizeof *alpha);
  file_key k;
  bool keyed = key_of(path, &k);
  tex_item *hit = NULL;
  int rc = 0;
  pthread_mutex_lock(&c->mu);
  for (size_t i = c->ntexs; keyed && i-- > 0 && !hit;) {
    tex_item *e = c->texs[i];
    if (e->mode == mode && e->want_alpha == (alpha != NULL) && same_key(&e->key, &k) &&
        strcmp(e->path, path) == 0)
      hit = e;
  }
  pthread_mutex_unlock(&c->mu);
  if (hit && !still_valid(&hit->racy, hit->hash, path, &k)) hit = NULL;
  if (hit) { /* entries never change once listed (but for racy), nor go before the cache */
    give(hit, t, alpha);
    atomic_fetch_add_explicit(&c->hits, 1, memory_order_relaxed);
    return 0;
  }
  atomic_fetch_add_explicit(&c->reads, 1, memory_order_relaxed);
  uint64_t before;
  bool racy = racy_before(path, &k, keyed, &before);
  if ((rc = kiln__texture_load_ex(path, mode, t, alpha, msg, msgsz)) || !keyed) return rc;
  tex_item *e = calloc(1, sizeof *e);
  size_t len = strlen(path);
  bool kept = false;
  if (e && (e->path = malloc(len + 1))) { /* the texels move into the entry */
    memcpy(e->path, path, len + 1);
    e->mode = mode, e->want_alpha = alpha != NULL, e->key = k;
    e->t = *t;
    if (alpha) e->a = *alpha;
    racy_after(path, &e->key, racy, before, &e->racy, &e->hash);
    pthread_mutex_lock(&c->mu);
    kept = append_tex(c, e);
    pthread_mutex_unlock(&c->mu);
  }
  if (kept) {
    give(e, t, alpha);
  } else if (e) { /* the caller keeps its own texels: only the cache missed out */
    free(e->path), free(e);
  }
  return 0;
}
