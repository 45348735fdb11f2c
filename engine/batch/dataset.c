/* dataset.c: the dataset writers' entry points (kiln__dataset_*, batch_internal.h), which hand
 * each call to the writer of the run's kind (coco.c, bop.c), and what those writers share: the
 * spool that keeps one record a frame until commit, files streamed under a temporary name, and
 * JSON numbers.
 *
 * Why a spool: writer tasks finish frames in any order, but a dataset's files list images by id,
 * and the same frames must give the same bytes however they were split into shards (kiln merge of
 * the shards' files equals one run's file). Holding the records in memory would grow with the
 * job; the spool writes them to an unlinked temporary file as they come and keeps only their
 * places (key, offset, lengths: 40 bytes a frame), sorted at commit. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch_internal.h"

/* ---- dispatch ------------------------------------------------------------------------------- */

struct kiln__dataset {
  kiln_writer kind;
  kiln__coco *coco;
  kiln__bop *bop;
};

int kiln__dataset_open(kiln_writer kind, const char *out_dir, const char *shard_tag,
                       const struct kiln__scene *s, bool durable, kiln__dataset **out, char *msg,
                       size_t msgcap) {
  *out = NULL;
  if (kind != KILN_WRITER_COCO && kind != KILN_WRITER_BOP) {
    kiln__say(msg, msgcap, "unknown dataset writer %d", (int)kind);
    return KILN_EINVAL;
  }
  kiln__dataset *d = calloc(1, sizeof *d);
  if (!d) {
    kiln__say(msg, msgcap, "out of memory");
    return KILN_ENOMEM;
  }
  d->kind = kind;
  int rc = kind == KILN_WRITER_COCO
               ? kiln__coco_open(out_dir, shard_tag, s, durable, &d->coco, msg, msgcap)
               : kiln__bop_open(out_dir, shard_tag, s, durable, &d->bop, msg, msgcap);
  if (rc) {
    free(d);
    return rc;
  }
  *out = d;
  return 0;
}

int kiln__dataset_frame(kiln__dataset *d, const kiln_job_frame *fr, const char *color_file,
                        const kiln__frame_gt *gt, const kiln_image *img, char *msg,
                        size_t msgcap) {
  return d->kind == KILN_WRITER_COCO
             ? kiln__coco_frame(d->coco, fr, color_file, gt, img, msg, msgcap)
             : kiln__bop_frame(d->bop, fr, color_file, gt, img, msg, msgcap);
}

int kiln__dataset_commit(kiln__dataset *d, bool keep, char *msg, size_t msgcap) {
  if (!d) return 0;
  int rc = d->kind == KILN_WRITER_COCO ? kiln__coco_commit(d->coco, keep, msg, msgcap)
                                       : kiln__bop_commit(d->bop, keep, msg, msgcap);
  free(d);
  return rc;
}

bool kiln__dataset_masks(kiln_writer kind) { return kind == KILN_WRITER_BOP; }

/* ---- the spool ------------------------------------------------------------------------------ */

typedef struct spool_entry {
  uint64_t key, seq, off;
  uint32_t len[KILN__SPOOL_PARTS];
} spool_entry;

struct kiln__spool {
  pthread_mutex_t mu; /* a leaf: guards everything below while records are added */
  int fd;
  uint64_t end; /* bytes written to fd */
  spool_entry *e;
  size_t n, cap;
  int err; /* the first failure (a KILN_E* code), returned by kiln__spool_each too */
  bool sorted;
};

int kiln__spool_open(const char *dir, kiln__spool **out, char *msg, size_t msgcap) {
  *out = NULL;
  kiln__spool *sp = calloc(1, sizeof *sp);
  if (!sp) {
    kiln__say(msg, msgcap, "out of memory");
    return KILN_ENOMEM;
  }
  char host[40], path[KILN__PATH_CAP];
  kiln__tmp_host(host, sizeof host);
  static _Atomic unsigned long counter;
  if (snprintf(path, sizeof path, "%s/.kiln-spool.tmp-%s-%ld-%lu", dir, host, (long)getpid(),
               atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed)) >= (int)sizeof path) {
    kiln__say(msg, msgcap, "output path too long: %s", dir);
    free(sp);
    return KILN_EINVAL;
  }
  sp->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (sp->fd < 0) {
    kiln__say(msg, msgcap, "cannot create %s: %s", path, strerror(errno));
    free(sp);
    return KILN_EIO;
  }
  unlink(path); /* read back through fd only: a killed run leaves nothing behind */
  pthread_mutex_init(&sp->mu, NULL);
  *out = sp;
  return 0;
}

static int write_all(int fd, const char *p, size_t len, uint64_t off) {
  while (len > 0) {
    ssize_t w = pwrite(fd, p, len, (off_t)off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 ? errno : EIO;
    p += w, len -= (size_t)w, off += (uint64_t)w;
  }
  return 0;
}

int kiln__spool_add(kiln__spool *sp, uint64_t key, const char *const *parts, const size_t *len,
                    size_t nparts) {
  spool_entry en = {.key = key};
  size_t total = 0;
  for (size_t i = 0; i < nparts && i < KILN__SPOOL_PARTS; i++) {
    if (len[i] > UINT32_MAX) return KILN_EINVAL;
    en.len[i] = (uint32_t)len[i], total += len[i];
  }
  /* the bytes go at the end, reserved under the lock and written outside it */
  pthread_mutex_lock(&sp->mu);
  int rc = sp->err;
  uint64_t off = sp->end;
  sp->end += total;
  pthread_mutex_unlock(&sp->mu);
  if (rc) return rc;
  en.off = off;
  int e = 0;
  for (size_t i = 0; i < nparts && i < KILN__SPOOL_PARTS && !e; i++)
    e = write_all(sp->fd, parts[i], len[i], off), off += len[i];
  /* entered only once its bytes are there: kiln__spool_each reads what the index names */
  pthread_mutex_lock(&sp->mu);
  rc = e ? KILN_EIO : 0;
  if (!rc && sp->n == sp->cap) {
    size_t cap = sp->cap ? 2 * sp->cap : 256;
    spool_entry *ne = realloc(sp->e, cap * sizeof *ne);
    if (ne) sp->e = ne, sp->cap = cap;
    else rc = KILN_ENOMEM;
  }
  if (!rc) en.seq = sp->n, sp->e[sp->n++] = en;
  if (rc && !sp->err) sp->err = rc;
  pthread_mutex_unlock(&sp->mu);
  return rc;
}

static int cmp_entry(const void *pa, const void *pb) {
  const spool_entry *a = pa, *b = pb;
  if (a->key != b->key) return a->key < b->key ? -1 : 1;
  return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Sorts by key and keeps the last record of each key. */
static void spool_sort(kiln__spool *sp) {
  if (sp->sorted) return;
  if (sp->n) qsort(sp->e, sp->n, sizeof *sp->e, cmp_entry); /* e is NULL when empty */
  size_t k = 0;
  for (size_t i = 0; i < sp->n; i++) {
    if (k && sp->e[k - 1].key == sp->e[i].key) k--;
    sp->e[k++] = sp->e[i];
  }
  sp->n = k, sp->sorted = true;
}

int kiln__spool_each(kiln__spool *sp, size_t part,
                     int (*fn)(void *arg, uint64_t key, const char *text, size_t len), void *arg) {
  if (sp->err) return sp->err;
  spool_sort(sp);
  char *buf = NULL;
  size_t cap = 0;
  int rc = 0;
  for (size_t i = 0; i < sp->n && !rc && part < KILN__SPOOL_PARTS; i++) {
    const spool_entry *en = &sp->e[i];
    uint64_t off = en->off;
    for (size_t p = 0; p < part; p++) off += en->len[p];
    size_t len = en->len[part];
    if (len + 1 > cap) {
      char *nb = realloc(buf, len + 1);
      if (!nb) {
        rc = KILN_ENOMEM;
        break;
      }
      buf = nb, cap = len + 1;
    }
    size_t got = 0;
    while (got < len && !rc) {
      ssize_t r = pread(sp->fd, buf + got, len - got, (off_t)(off + got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) rc = KILN_EIO;
      else got += (size_t)r;
    }
    if (rc) break;
    buf[len] = 0;
    rc = fn(arg, en->key, buf, len);
  }
  free(buf);
  return rc;
}

void kiln__spool_free(kiln__spool *sp) {
  if (!sp) return;
  close(sp->fd);
  free(sp->e);
  pthread_mutex_destroy(&sp->mu);
  free(sp);
}

/* ---- files written whole, renamed into place ------------------------------------------------ */

int kiln__outfile_open(kiln__outfile *o, const char *path, char *msg, size_t msgcap) {
  memset(o, 0, sizeof *o);
  char host[40];
  kiln__tmp_host(host, sizeof host);
  const char *slash = strrchr(path, '/');
  int dl = slash ? (int)(slash - path) + 1 : 0;
  if (snprintf(o->path, sizeof o->path, "%s", path) >= (int)sizeof o->path ||
      snprintf(o->tmp, sizeof o->tmp, "%.*s.%s.tmp-%s-%ld-0", dl, path, path + dl, host,
               (long)getpid()) >= (int)sizeof o->tmp) {
    kiln__say(msg, msgcap, "path too long: %s", path);
    return KILN_EINVAL;
  }
  int fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0 || !(o->f = fdopen(fd, "w"))) {
    kiln__say(msg, msgcap, "cannot create %s: %s", o->tmp, strerror(errno));
    if (fd >= 0) close(fd);
    return KILN_EIO;
  }
  return 0;
}

int kiln__outfile_commit(kiln__outfile *o, bool durable, bool keep, char *msg, size_t msgcap) {
  if (!o->f) return 0;
  int err = ferror(o->f) ? EIO : 0;
  if (keep && !err && fflush(o->f) != 0) err = errno;
  if (keep && !err && durable && fsync(fileno(o->f)) != 0) err = errno;
  if (fclose(o->f) != 0 && keep && !err) err = errno;
  o->f = NULL;
  if (keep && !err && rename(o->tmp, o->path) != 0) err = errno;
  if (!keep || err) unlink(o->tmp);
  if (keep && !err && durable) { /* the rename survives power loss once the folder is synced */
    char dir[KILN__PATH_CAP];
    const char *slash = strrchr(o->path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - o->path) : 1, slash ? o->path : ".");
    int dfd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) fsync(dfd), close(dfd);
  }
  if (err) {
    kiln__say(msg, msgcap, "cannot write %s: %s", o->path, strerror(err));
    return KILN_EIO;
  }
  return 0;
}

void kiln__json_number(char *buf, size_t cap, double v) {
  if (!isfinite(v)) {
    snprintf(buf, cap, "null");
    return;
  }
  if (v == 0) v = 0; /* -0 as 0 */
  for (int digits = 15; digits <= 17; digits++) {
    snprintf(buf, cap, "%.*g", digits, v);
    if (strtod(buf, NULL) == v) break;
  }
}
