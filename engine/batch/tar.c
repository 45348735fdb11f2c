/* tar.c: WebDataset-style tar shards (kiln_batch_config.tar_frames; batch_internal.h).
 *
 * A run's frames, numbered by their rank r among the frames it takes, go `per` at a time into
 * tar r / per. Frames finish out of order, so each tar is a temporary (".NAME.tmp-HOST-PID-K", the
 * name kiln__write_atomic's leftovers have, so the sweep and kiln verify's strays know it) that
 * members are appended to as frames are written: memory holds one frame's files, never a tar.
 * The driver settles every frame once (written, failed or skipped); when the last frame of a tar
 * is settled, the end-of-archive blocks are written and the temporary is renamed into place, so
 * a tar under its final name is always whole. A tar none of whose frames was written is never
 * made; one whose run stops before its last frame is removed by kiln__tars_close.
 *
 * The format is POSIX ustar (IEEE 1003.1-1988 headers: 512-byte blocks, octal fields, the
 * checksum of the header with its own field as spaces), with a pax extended header ('x', a
 * "path=" record) for a name longer than the 100 bytes a ustar name field holds.
 *
 * Lock: t->mu, a leaf, guards every open tar (its fd and whether it failed); the settled counts
 * belong to the driver thread. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "batch_internal.h"

enum { BLOCK = 512 };

typedef struct open_tar {
  uint64_t k;
  int fd;        /* the temporary, -1 until its first member */
  bool failed;   /* a write failed: the tar is abandoned */
  char err[256]; /* why */
  uint64_t settled;
  struct open_tar *next;
} open_tar;

struct kiln__tars {
  char dir[PATH_MAX];
  uint32_t shard, shards;
  uint64_t per, total;
  bool durable;
  pthread_mutex_t mu;
  open_tar *open; /* tars with a frame added or settled, not yet finished */
};

void kiln__tar_name(uint32_t shard, uint32_t shards, uint64_t k, char *out, size_t cap) {
  if (shards > 1) snprintf(out, cap, "shard-%03" PRIu32 "-%06" PRIu64 ".tar", shard, k);
  else snprintf(out, cap, "shard-%06" PRIu64 ".tar", k);
}

int kiln__tars_open(const char *out_dir, uint32_t shard, uint32_t shards, uint64_t per,
                    uint64_t total, bool durable, kiln__tars **out, char *msg, size_t msgcap) {
  *out = NULL;
  kiln__tars *t = calloc(1, sizeof *t);
  if (!t) {
    kiln__say(msg, msgcap, "out of memory");
    return KILN_ENOMEM;
  }
  if (snprintf(t->dir, sizeof t->dir, "%s", out_dir) >= (int)sizeof t->dir - 200) {
    free(t);
    kiln__say(msg, msgcap, "output path too long: %s", out_dir);
    return KILN_EINVAL;
  }
  t->shard = shard, t->shards = shards, t->per = per, t->total = total, t->durable = durable;
  pthread_mutex_init(&t->mu, NULL);
  *out = t;
  return 0;
}

static void paths(const kiln__tars *t, uint64_t k, char *final, char *tmp, size_t cap) {
  char name[64], host[40];
  kiln__tar_name(t->shard, t->shards, k, name, sizeof name);
  kiln__tmp_host(host, sizeof host);
  /* t->dir leaves room for both (kiln__tars_open) */
  if (snprintf(final, cap, "%s/%s", t->dir, name) >= (int)cap ||
      snprintf(tmp, cap, "%s/.%s.tmp-%s-%ld-%" PRIu64, t->dir, name, host, (long)getpid(), k) >=
          (int)cap)
    final[0] = tmp[0] = 0;
}

/* Tar k's entry, made when missing (t->mu held, or the driver's settle). NULL: out of memory. */
static open_tar *entry(kiln__tars *t, uint64_t k) {
  for (open_tar *o = t->open; o; o = o->next)
    if (o->k == k) return o;
  open_tar *o = calloc(1, sizeof *o);
  if (!o) return NULL;
  o->k = k, o->fd = -1, o->next = t->open;
  t->open = o;
  return o;
}

static int write_all(int fd, const void *p, size_t n) {
  const unsigned char *b = p;
  while (n > 0) {
    ssize_t w = write(fd, b, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 ? errno : EIO;
    b += w, n -= (size_t)w;
  }
  return 0;
}

static void octal(char *field, size_t width, uint64_t v) {
  snprintf(field, width, "%0*" PRIo64, (int)width - 1, v); /* NUL-terminated, zero-padded */
}

/* A header block for a member (type '0') or a pax record block (type 'x') of size bytes. */
static void header(unsigned char h[BLOCK], const char *name, uint64_t size, char type) {
  memset(h, 0, BLOCK);
  snprintf((char *)h, 100, "%s", name); /* a name of exactly 100 bytes needs no NUL: pax below */
  octal((char *)h + 100, 8, 0644);
  octal((char *)h + 108, 8, 0);
  octal((char *)h + 116, 8, 0);
  octal((char *)h + 124, 12, size);
  octal((char *)h + 136, 12, (uint64_t)time(NULL));
  h[156] = (unsigned char)type;
  memcpy(h + 257, "ustar", 6); /* magic "ustar\0", version "00" */
  memcpy(h + 263, "00", 2);
  memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < BLOCK; i++) sum += h[i];
  snprintf((char *)h + 148, 8, "%06o", sum); /* six digits, NUL, and the space left there */
  h[155] = ' ';
}

static int put_padded(int fd, const void *data, uint64_t n) {
  static const unsigned char zero[BLOCK];
  int e = write_all(fd, data, (size_t)n);
  if (!e && n % BLOCK) e = write_all(fd, zero, BLOCK - (size_t)(n % BLOCK));
  return e;
}

/* One member: a pax header first when the name does not fit ustar's 100 bytes. */
static int put_member(int fd, const char *name, const void *data, uint64_t n) {
  unsigned char h[BLOCK];
  size_t nl = strlen(name);
  int e = 0;
  if (nl >= 100) {
    /* "LEN path=NAME\n", LEN counting its own digits */
    size_t body = nl + 7, len = body + 1; /* " path=" and '\n' */
    for (size_t d; (d = (size_t)snprintf(NULL, 0, "%zu", len)) != len - body;) len = body + d;
    char *rec = malloc(len + 1);
    if (!rec) return ENOMEM;
    snprintf(rec, len + 1, "%zu path=%s\n", len, name);
    header(h, "PaxHeader", len, 'x');
    e = write_all(fd, h, BLOCK);
    if (!e) e = put_padded(fd, rec, len);
    free(rec);
  }
  header(h, name, n, '0');
  if (!e) e = write_all(fd, h, BLOCK);
  if (!e) e = put_padded(fd, data, n);
  return e;
}

int kiln__tars_add(kiln__tars *t, uint64_t r, char *const *names, void *const *data,
                   const size_t *len, int n, char *msg, size_t msgcap) {
  uint64_t k = r / t->per;
  char final[PATH_MAX], tmp[PATH_MAX];
  paths(t, k, final, tmp, sizeof final);
  pthread_mutex_lock(&t->mu);
  open_tar *o = entry(t, k);
  int rc = 0;
  if (!o) {
    kiln__say(msg, msgcap, "out of memory");
    rc = KILN_ENOMEM;
  } else if (o->failed) {
    kiln__say(msg, msgcap, "%s", o->err);
    rc = KILN_EIO;
  } else {
    int e = 0;
    if (o->fd < 0 && (o->fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666)) < 0)
      e = errno;
    for (int i = 0; i < n && !e; i++) e = put_member(o->fd, names[i], data[i], len[i]);
    if (e) {
      o->failed = true;
      snprintf(o->err, sizeof o->err, "cannot write %.180s: %s", final, strerror(e));
      kiln__say(msg, msgcap, "%s", o->err);
      rc = KILN_EIO;
    }
  }
  pthread_mutex_unlock(&t->mu);
  return rc;
}

static void drop(kiln__tars *t, open_tar *o) {
  for (open_tar **p = &t->open; *p; p = &(*p)->next)
    if (*p == o) {
      *p = o->next;
      break;
    }
  free(o);
}

/* Finishes tar o: the end of the archive (two zero blocks), then the rename. */
static int finish(kiln__tars *t, open_tar *o, char *msg, size_t msgcap) {
  char final[PATH_MAX], tmp[PATH_MAX];
  paths(t, o->k, final, tmp, sizeof final);
  int e = 0;
  if (o->fd < 0) return 0; /* no frame of it was written: no tar */
  if (!o->failed) {
    static const unsigned char zero[2 * BLOCK];
    e = write_all(o->fd, zero, sizeof zero);
    if (!e && t->durable && fsync(o->fd) != 0) e = errno;
  }
  if (close(o->fd) != 0 && !e) e = errno;
  o->fd = -1;
  if (!o->failed && !e && rename(tmp, final) != 0) e = errno;
  if (o->failed || e) {
    unlink(tmp);
    if (o->failed) kiln__say(msg, msgcap, "%s", o->err);
    else kiln__say(msg, msgcap, "cannot write %s: %s", final, strerror(e));
    return KILN_EIO;
  }
  if (t->durable) {
    int dfd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) fsync(dfd), close(dfd);
  }
  return 0;
}

int kiln__tars_settle(kiln__tars *t, uint64_t r, char *msg, size_t msgcap) {
  uint64_t k = r / t->per;
  uint64_t want = t->total - k * t->per < t->per ? t->total - k * t->per : t->per;
  pthread_mutex_lock(&t->mu); /* writer tasks may be adding to other tars */
  open_tar *o = entry(t, k);
  int rc = 0;
  if (!o) {
    kiln__say(msg, msgcap, "out of memory");
    rc = KILN_ENOMEM;
  } else if (++o->settled >= want) {
    rc = finish(t, o, msg, msgcap);
    drop(t, o);
  }
  pthread_mutex_unlock(&t->mu);
  return rc;
}

void kiln__tars_close(kiln__tars *t) {
  if (!t) return;
  while (t->open) {
    open_tar *o = t->open;
    if (o->fd >= 0) {
      char final[PATH_MAX], tmp[PATH_MAX];
      paths(t, o->k, final, tmp, sizeof final);
      close(o->fd);
      unlink(tmp); /* unfinished: never under its final name */
    }
    drop(t, o);
  }
  pthread_mutex_destroy(&t->mu);
  free(t);
}

/* ---- reading a tar's index back (kiln verify) ------------------------------------------------ */

static int bad(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *why, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, cap, fmt, ap);
  va_end(ap);
  return KILN__CHECK_CORRUPT;
}

static bool parse_octal(const unsigned char *f, size_t width, uint64_t *v) {
  size_t i = 0;
  *v = 0;
  while (i < width && f[i] == ' ') i++;
  size_t d = 0;
  for (; i < width && f[i] >= '0' && f[i] <= '7'; i++, d++) {
    if (*v >> 60) return false;
    *v = *v * 8 + (uint64_t)(f[i] - '0');
  }
  for (; i < width; i++)
    if (f[i] != 0 && f[i] != ' ') return false;
  return d > 0;
}

static int cmp_member(const void *a, const void *b) {
  return strcmp(((const kiln__tar_member *)a)->name, ((const kiln__tar_member *)b)->name);
}

void kiln__tar_index_free(kiln__tar_index *ix) {
  for (size_t i = 0; i < ix->n; i++) free(ix->m[i].name);
  free(ix->m);
  ix->m = NULL, ix->n = 0;
}

/* The "path" record of a pax header's body (n bytes), malloc'd, or NULL. */
static char *pax_path(const char *b, size_t n) {
  size_t p = 0;
  while (p < n) {
    char *end;
    unsigned long len = strtoul(b + p, &end, 10);
    if (len == 0 || len > n - p || *end != ' ') return NULL;
    const char *kv = end + 1, *stop = b + p + len - 1; /* the record's '\n' */
    if (kv > stop || *stop != '\n') return NULL;
    if ((size_t)(stop - kv) > 5 && !strncmp(kv, "path=", 5))
      return strndup(kv + 5, (size_t)(stop - kv - 5));
    p += len;
  }
  return NULL;
}

static int add_member(kiln__tar_index *ix, size_t *cap, char *name, uint64_t off, uint64_t size) {
  if (ix->n == *cap) {
    size_t c = *cap ? 2 * *cap : 64;
    kiln__tar_member *m = realloc(ix->m, c * sizeof *m);
    if (!m) return KILN_ENOMEM;
    ix->m = m, *cap = c;
  }
  ix->m[ix->n++] = (kiln__tar_member){name, off, size};
  return 0;
}

int kiln__tar_read_index(const char *path, kiln__tar_index *ix, char *why, size_t cap) {
  memset(ix, 0, sizeof *ix);
  why[0] = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return KILN__CHECK_MISSING;
    return bad(why, cap, "cannot open: %s", strerror(errno));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return bad(why, cap, "not a regular file");
  }
  uint64_t size = (uint64_t)st.st_size, off = 0;
  size_t mcap = 0;
  char *long_name = NULL;
  int rc = KILN__CHECK_OK;
  bool ended = false;
  unsigned char h[BLOCK];
  while (rc == KILN__CHECK_OK && !ended) {
    if (size - off < BLOCK) {
      rc = bad(why, cap, "the tar ends at byte %" PRIu64 " without its end-of-archive blocks "
               "(truncated)", off);
      break;
    }
    if (pread(fd, h, BLOCK, (off_t)off) != BLOCK) {
      rc = bad(why, cap, "cannot read the tar at byte %" PRIu64, off);
      break;
    }
    static const unsigned char zero[BLOCK];
    if (!memcmp(h, zero, BLOCK)) { /* the end: two zero blocks */
      ended = true;
      if (size - off < 2 * BLOCK) rc = bad(why, cap, "the tar's end-of-archive is cut short");
      break;
    }
    uint64_t msize, sum;
    unsigned got = 0;
    for (int i = 0; i < BLOCK; i++) got += i >= 148 && i < 156 ? ' ' : h[i];
    if (!parse_octal(h + 148, 8, &sum) || sum != got) {
      rc = bad(why, cap, "the tar header at byte %" PRIu64 " has a bad checksum", off);
      break;
    }
    if (!parse_octal(h + 124, 12, &msize) || msize > size - off - BLOCK) {
      rc = bad(why, cap, "the member at byte %" PRIu64 " runs past the end of the tar (truncated)",
               off);
      break;
    }
    uint64_t data = off + BLOCK, next = data + (msize + BLOCK - 1) / BLOCK * BLOCK;
    char type = (char)h[156];
    if (type == 'x' && msize > (1u << 20)) { /* kiln writes one path record: a few KiB */
      rc = bad(why, cap, "the pax header at byte %" PRIu64 " is %" PRIu64 " bytes long", off,
               msize);
    } else if (type == 'x') {
      char *body = malloc(msize + 1);
      if (!body) rc = KILN_ENOMEM;
      else if (pread(fd, body, msize, (off_t)data) != (ssize_t)msize)
        rc = bad(why, cap, "cannot read the pax header at byte %" PRIu64, off);
      else {
        body[msize] = 0;
        free(long_name);
        long_name = pax_path(body, msize);
      }
      free(body);
    } else if (type == '0' || type == 0) {
      char *name = long_name ? long_name : strndup((const char *)h, 100);
      long_name = NULL;
      if (!name || add_member(ix, &mcap, name, data, msize)) {
        free(name);
        rc = KILN_ENOMEM;
      }
    }
    off = next;
  }
  free(long_name);
  close(fd);
  if (rc != KILN__CHECK_OK) {
    kiln__tar_index_free(ix);
    return rc;
  }
  qsort(ix->m, ix->n, sizeof *ix->m, cmp_member);
  return KILN__CHECK_OK;
}

const kiln__tar_member *kiln__tar_find(const kiln__tar_index *ix, const char *name) {
  kiln__tar_member key = {(char *)name, 0, 0};
  return ix->n ? bsearch(&key, ix->m, ix->n, sizeof *ix->m, cmp_member) : NULL;
}
