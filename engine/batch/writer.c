/* writer.c: a frame's files written through the kiln_io engine, all at once, then renamed into
 * place (writer.h says what is guaranteed and which test hooks there are). Nothing here prints. */
#define _GNU_SOURCE
#include "writer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "kiln/error.h"
#include "kiln/fiber.h"
#include "kiln/fiberio.h"

struct kiln__writer {
  kiln__writer_config cfg;
  kiln_pool *pool;
  kiln_io *io;            /* NULL when cfg.sync */
  _Atomic uint64_t files; /* files given to the writer so far (the fault hook counts them) */
};

static int parse_env(const char *name, double scale, double *out, char *msg, size_t msgcap) {
  const char *v = getenv(name);
  if (!v || !*v) return 0;
  char *end;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno || *end || v[0] == '-') {
    kiln__say(msg, msgcap, "%s=\"%.40s\": a whole number is expected", name, v);
    return KILN_EINVAL;
  }
  *out = (double)x * scale;
  return 0;
}

int kiln__writer_config_env(kiln__writer_config *cfg, char *msg, size_t msgcap) {
  memset(cfg, 0, sizeof *cfg);
  const char *mode = getenv("KILN_BATCH_WRITES");
  if (mode && *mode && strcmp(mode, "sync") != 0 && strcmp(mode, "async") != 0 &&
      strcmp(mode, "async-task") != 0) {
    kiln__say(msg, msgcap,
              "KILN_BATCH_WRITES=\"%.40s\": \"sync\", \"async\" or \"async-task\" is expected",
              mode);
    return KILN_EINVAL;
  }
  cfg->sync = mode && strcmp(mode, "sync") == 0;
  cfg->tasks = mode && strcmp(mode, "async-task") == 0;
  double fault = 0;
  int rc = parse_env("KILN_TEST_WRITE_DELAY_US", 1e-6, &cfg->delay_s, msg, msgcap);
  if (!rc) rc = parse_env("KILN_TEST_WRITE_FAULT", 1, &fault, msg, msgcap);
  cfg->fault_at = (uint64_t)fault;
  return rc;
}

int kiln__writer_open(const kiln__writer_config *cfg, kiln_pool *pool, kiln__writer **out,
                      char *msg, size_t msgcap) {
  *out = NULL;
  kiln__writer *w = calloc(1, sizeof *w);
  if (!w) {
    kiln__say(msg, msgcap, "out of memory");
    return KILN_ENOMEM;
  }
  w->cfg = *cfg, w->pool = pool;
  if (!cfg->sync) {
    int rc = kiln_io_create(NULL, &w->io);
    if (rc) {
      kiln__say(msg, msgcap, "cannot start the output writer's I/O engine: %s", kiln_strerror(rc));
      free(w);
      return rc;
    }
  }
  *out = w;
  return 0;
}

void kiln__writer_close(kiln__writer *w) {
  if (!w) return;
  kiln_io_destroy(w->io);
  free(w);
}

bool kiln__writer_async(const kiln__writer *w) { return w && w->io && !w->cfg.tasks; }

/* ---- the delay hook ----------------------------------------------------------------------- */

static int sleeper(void *arg, void **result) {
  *result = NULL;
  return kiln_sleep(*(const double *)arg);
}

static void sleep_thread(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* A future done delay_s from now that holds no worker meanwhile (a pool fiber asleep on the
 * timer), or NULL when there is no delay, no pool, or no memory: then the caller sleeps. */
static kiln_future *delay_start(kiln__writer *w) {
  kiln_future *f = NULL;
  if (w->cfg.delay_s > 0 && w->pool &&
      kiln_fiber_spawn(w->pool, sleeper, &w->cfg.delay_s, 16384, &f) != 0)
    f = NULL;
  return f;
}

static void delay_end(kiln__writer *w, kiln_future *f) {
  if (f) {
    (void)kiln_future_result(f, -1, NULL);
    kiln_future_release(f);
  } else if (w->cfg.delay_s > 0) {
    sleep_thread(w->cfg.delay_s);
  }
}

/* ---- the engine path ---------------------------------------------------------------------- */

typedef struct wfile {
  char tmp[PATH_MAX];
  size_t done;    /* bytes in the temporary */
  size_t limit;   /* bytes to write before the injected fault; len: none */
  kiln_future *f; /* the op in flight */
  bool created;   /* the temporary is ours: remove it unless renamed */
  bool renamed;
} wfile;

/* Waits for s's op (suspending, in a pool fiber), releases it, and returns its value in *n; on
 * failure records "cannot <what> <name>: <the op's message>" into msg unless an earlier failure
 * is there already. The wait is kiln_io_result's, which a kill of the fiber does not cut short
 * (kiln_await's would): the kernel may use the op's buffer until its future is done. */
static int finish_op(wfile *s, const char *what, const char *name, size_t *n, int *first, char *msg,
                     size_t msgcap) {
  kiln_future *f = s->f;
  s->f = NULL;
  if (!f) return 0;
  size_t v = 0;
  int rc = kiln_io_result(f, -1, &v);
  if (rc && !*first) {
    const char *m = NULL;
    kiln_future_error(f, 0, &m);
    kiln__say(msg, msgcap, "cannot %s %s: %s", what, name, m && *m ? m : kiln_strerror(rc));
    *first = rc == KILN_ENOMEM ? rc : KILN_EIO;
  }
  kiln_future_release(f);
  if (n) *n = v;
  return rc;
}

/* The folder of path, opened, fsynced and closed through the engine: the renames survive power
 * loss. Failures are ignored, as kiln__write_atomic ignores them. */
static void sync_folder(kiln__writer *w, const char *path) {
  const char *slash = strrchr(path, '/');
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%.*s", slash ? (slash == path ? 1 : (int)(slash - path)) : 1,
           slash ? path : ".");
  kiln_future *f = NULL;
  size_t fd = 0;
  if (kiln_io_open_async(w->io, AT_FDCWD, dir, O_RDONLY | O_DIRECTORY, 0, &f) != 0) return;
  int rc = kiln_io_result(f, -1, &fd);
  kiln_future_release(f);
  if (rc) return;
  if (kiln_io_fsync_async(w->io, (int)fd, false, &f) == 0) {
    (void)kiln_future_result(f, -1, NULL);
    kiln_future_release(f);
  }
  if (kiln_io_close_async(w->io, (int)fd, &f) == 0) {
    (void)kiln_future_result(f, -1, NULL);
    kiln_future_release(f);
  } else {
    close((int)fd);
  }
}

static int write_engine(kiln__writer *w, const kiln__wfile *files, int n, bool durable, char *msg,
                        size_t msgcap) {
  wfile *s = calloc((size_t)n, sizeof *s); /* off the stack: a fiber's is small */
  if (!s) {
    kiln__say(msg, msgcap, "cannot write %s: out of memory", files[0].path);
    return KILN_ENOMEM;
  }
  int first = 0;
  uint64_t base = atomic_fetch_add_explicit(&w->files, (uint64_t)n, memory_order_relaxed);
  for (int i = 0; i < n; i++) {
    s[i] = (wfile){.limit = files[i].len};
    if (w->cfg.fault_at == base + (uint64_t)i + 1) s[i].limit = files[i].len / 2;
  }
  /* every temporary whole, at once: one op a file (create, write, fsync when durable, close),
   * which removes its temporary itself when it fails; the delay hook runs beside them, so each
   * file's write takes at least the delay */
  for (int i = 0; i < n && !first; i++) {
    if (kiln__tmp_name(files[i].path, s[i].tmp, sizeof s[i].tmp)) {
      kiln__say(msg, msgcap, "cannot write %s: the path is too long", files[i].path);
      first = KILN_EINVAL;
      break;
    }
    int rc = kiln_io_create_file_async(w->io, AT_FDCWD, s[i].tmp, 0666, files[i].data, s[i].limit,
                                       durable, &s[i].f);
    if (rc) {
      kiln__say(msg, msgcap, "cannot write %s: %s", files[i].path, kiln_strerror(rc));
      first = rc == KILN_ENOMEM ? rc : KILN_EIO;
    }
  }
  if (!first) delay_end(w, delay_start(w));
  for (int i = 0; i < n; i++) {
    if (s[i].f && finish_op(&s[i], "write", files[i].path, &s[i].done, &first, msg, msgcap) == 0)
      s[i].created = true;
  }
  for (int i = 0; i < n && !first; i++)
    if (s[i].done < files[i].len) { /* only the fault hook stops a file short */
      kiln__say(msg, msgcap,
                "cannot write %s: injected fault after %zu of %zu bytes (KILN_TEST_WRITE_FAULT)",
                files[i].path, s[i].done, files[i].len);
      first = KILN_EIO;
    }
  /* every file complete: into place, one after the other */
  for (int i = 0; i < n && !first; i++) {
    if (rename(s[i].tmp, files[i].path) != 0) {
      kiln__say(msg, msgcap, "cannot write %s: %s", files[i].path, strerror(errno));
      first = KILN_EIO;
    } else {
      s[i].renamed = true;
    }
  }
  for (int i = 0; i < n; i++)
    if (s[i].created && !s[i].renamed) unlink(s[i].tmp);
  if (durable && !first)
    for (int i = 0; i < n; i++) {
      const char *a = strrchr(files[i].path, '/');
      bool seen = false; /* each folder once: a frame's files usually share one */
      for (int j = 0; j < i && !seen; j++) {
        const char *b = strrchr(files[j].path, '/');
        seen = (a ? a - files[i].path : -1) == (b ? b - files[j].path : -1) &&
               (!a || strncmp(files[i].path, files[j].path, (size_t)(a - files[i].path)) == 0);
      }
      if (!seen) sync_folder(w, files[i].path);
    }
  free(s);
  return first;
}

int kiln__writer_write(kiln__writer *w, const kiln__wfile *files, int n, bool durable, char *msg,
                       size_t msgcap) {
  if (msg && msgcap) msg[0] = 0;
  if (n < 0 || n > KILN__WRITER_MAX_FILES || (n && !files)) {
    kiln__say(msg, msgcap, "bad file list");
    return KILN_EINVAL;
  }
  if (n == 0) return 0;
  if (w && w->io) return write_engine(w, files, n, durable, msg, msgcap);
  int rc = 0;
  for (int i = 0; i < n && !rc; i++) {
    if (w && w->cfg.delay_s > 0) sleep_thread(w->cfg.delay_s);
    rc = kiln__write_atomic(files[i].path, files[i].data, files[i].len, durable, msg, msgcap);
  }
  return rc;
}
