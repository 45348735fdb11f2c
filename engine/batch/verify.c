/* verify.c: kiln_batch_walk (the frames a configuration selects) and kiln_batch_verify (whether
 * every file a run writes for them is there and decodes: the `afterok` step of a cluster pipeline,
 * docs/CLUSTER.md).
 *
 * The walk is a batch opened only to be looked at (kiln__batch_open without pool or devices), so
 * the selection, output folder, template, passes and format are resolved exactly as kiln render
 * resolves them. kiln_batch_verify walks the job once, in job order: each selected frame gets a
 * context (its files' paths, computed on the walking thread, and the temporaries found beside
 * them), then a pool task decodes its files (decode_check.c). At most `window` frames are in
 * flight; the oldest is waited for, reported and freed before another is issued, so the callback
 * sees frames in job order and memory stays flat whatever the number of frames. Without a pool
 * the frame is checked on the calling thread. Nothing here prints. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch_internal.h"

enum { NPASS = KILN__NPASS, WINDOW_PER_THREAD = 4, MAX_WINDOW = 256, STRAY_DIRS = 8 };

/* ---- temporaries ------------------------------------------------------------------------------ */

/* Whether name is ".NAME.tmp-HOST-PID-N" (HOST without '-', PID and N digits): the length of
 * ".NAME" when it is, else 0. */
static size_t temporary_stem(const char *name) {
  if (name[0] != '.') return 0;
  const char *t = NULL;
  for (const char *p = name; (p = strstr(p, ".tmp-")); p++) t = p;
  if (!t || t == name) return 0;
  const char *host = t + 5, *d1 = strchr(host, '-');
  if (!d1 || d1 == host) return 0;
  const char *pid = d1 + 1, *d2 = strchr(pid, '-');
  if (!d2 || d2 == pid || strspn(pid, "0123456789") != (size_t)(d2 - pid)) return 0;
  const char *n = d2 + 1;
  if (!*n || strspn(n, "0123456789") != strlen(n)) return 0;
  return (size_t)(t - name);
}

typedef struct stray_dir {
  char *dir;
  char **names; /* the folder's temporaries, sorted */
  size_t n;
  uint64_t used; /* when last looked in (the least recently used folder is dropped) */
} stray_dir;

struct kiln__strays {
  stray_dir dirs[STRAY_DIRS];
  uint64_t clock;
};

int kiln__strays_new(kiln__strays **out) {
  *out = calloc(1, sizeof **out);
  return *out ? 0 : KILN_ENOMEM;
}

static void dir_clear(stray_dir *d) {
  for (size_t i = 0; i < d->n; i++) free(d->names[i]);
  free(d->names);
  free(d->dir);
  memset(d, 0, sizeof *d);
}

void kiln__strays_free(kiln__strays *s) {
  if (!s) return;
  for (int i = 0; i < STRAY_DIRS; i++) dir_clear(&s->dirs[i]);
  free(s);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads folder dir's temporaries into d (a folder that cannot be read has none). */
static int dir_scan(stray_dir *d, const char *dir) {
  if (!(d->dir = strdup(dir))) return KILN_ENOMEM;
  DIR *h = opendir(dir);
  if (!h) return 0;
  size_t cap = 0;
  int rc = 0;
  struct dirent *e;
  while (!rc && (e = readdir(h))) {
    if (!temporary_stem(e->d_name)) continue;
    if (d->n == cap) {
      cap = cap ? 2 * cap : 16;
      char **p = realloc(d->names, cap * sizeof *p);
      if (!p) {
        rc = KILN_ENOMEM;
        break;
      }
      d->names = p;
    }
    if (!(d->names[d->n] = strdup(e->d_name))) rc = KILN_ENOMEM;
    else d->n++;
  }
  closedir(h);
  if (d->n) qsort(d->names, d->n, sizeof *d->names, cmp_str);
  return rc;
}

static int dir_of(kiln__strays *s, const char *dir, stray_dir **out) {
  stray_dir *lru = &s->dirs[0];
  for (int i = 0; i < STRAY_DIRS; i++) {
    stray_dir *d = &s->dirs[i];
    if (d->dir && strcmp(d->dir, dir) == 0) {
      d->used = ++s->clock;
      *out = d;
      return 0;
    }
    if (!d->dir || (lru->dir && d->used < lru->used)) lru = d;
  }
  dir_clear(lru);
  int rc = dir_scan(lru, dir);
  if (rc) {
    dir_clear(lru);
    return rc;
  }
  lru->used = ++s->clock;
  *out = lru;
  return 0;
}

int kiln__strays_of(kiln__strays *s, const char *path, void (*fn)(void *arg, const char *tmp),
                    void *arg) {
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  char dir[KILN__PATH_CAP];
  snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
  if (slash == path) snprintf(dir, sizeof dir, "/");
  stray_dir *d;
  int rc = dir_of(s, dir, &d);
  if (rc || !d->n) return rc;
  char prefix[KILN__PATH_CAP];
  int pl = snprintf(prefix, sizeof prefix, ".%s.tmp-", base);
  if (pl < 0 || pl >= (int)sizeof prefix) return 0;
  /* the temporaries of base are the names from the first >= prefix on that start with it */
  size_t lo = 0, hi = d->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp(d->names[mid], prefix) < 0) lo = mid + 1;
    else hi = mid;
  }
  for (size_t i = lo; i < d->n && strncmp(d->names[i], prefix, (size_t)pl) == 0; i++) {
    if (temporary_stem(d->names[i]) != (size_t)pl - 5) continue; /* ".NAME" is all of base */
    char tmp[KILN__PATH_CAP + 256];
    snprintf(tmp, sizeof tmp, "%s/%s", strcmp(dir, "/") ? dir : "", d->names[i]);
    fn(arg, tmp);
  }
  return 0;
}

/* ---- the walk ------------------------------------------------------------------------------- */

/* Calls each(arg, fr, pos) for every selected frame of b's job, in job order; each owns fr (must
 * clear it) and may stop the walk by returning non-zero, which is returned. */
typedef int (*each_fn)(void *arg, kiln_job_frame *fr, uint64_t pos);

static int walk(kiln_batch *b, each_fn each, void *arg, kiln_error_detail *err) {
  kiln_job *job = kiln__batch_job(b);
  kiln__selection *sel = kiln__batch_selection(b);
  int rc = kiln_job_rewind(job);
  if (rc) {
    kiln__say(err->message, sizeof err->message, "cannot read the job again: %s",
              kiln_strerror(rc));
    return err->code = rc;
  }
  uint64_t total = kiln__selection_count(sel, job);
  if (kiln__selection_by_number(sel) && total == 0) {
    kiln_job_info ji;
    kiln_job_get_info(job, &ji);
    kiln__say(err->message, sizeof err->message,
              "the frame selection matches none of the job's %llu frames",
              (unsigned long long)ji.count);
    return err->code = KILN_EINVAL;
  }
  for (;;) {
    kiln_job_frame fr;
    rc = kiln_job_next(job, &fr, err);
    if (rc == KILN_EEOF) return 0;
    if (rc) return err->code = rc;
    uint64_t pos = 0;
    if (!kiln__selection_next(sel, fr.frame, &pos)) {
      kiln_job_frame_clear(&fr);
      continue;
    }
    if ((rc = each(arg, &fr, pos))) return rc;
  }
}

/* cfg as kiln verify reads it: every frame of the selection (no claiming), nothing written. */
static kiln_batch_config look_only(const kiln_batch_config *cfg) {
  kiln_batch_config c = *cfg;
  c.claim = false, c.chunk = 0, c.claim_timeout_s = 0;
  c.contact_sheet = NULL, c.manifest = NULL;
  c.progress = NULL, c.progress_arg = NULL;
  c.resume = c.overwrite = false;
  return c;
}

typedef struct walk_arg {
  kiln_batch_walk_fn fn;
  void *arg;
} walk_arg;

static int walk_one(void *arg, kiln_job_frame *fr, uint64_t pos) {
  walk_arg *w = arg;
  w->fn(w->arg, fr, pos);
  kiln_job_frame_clear(fr);
  return 0;
}

int kiln_batch_walk(kiln_job *job, const kiln_batch_config *cfg, kiln_batch_walk_fn fn, void *arg,
                    kiln_error_detail *err) {
  kiln_error_detail dummy;
  if (!err) err = &dummy;
  memset(err, 0, sizeof *err);
  if (!cfg || !fn) {
    kiln__say(err->message, sizeof err->message, "cfg and fn must not be NULL");
    return err->code = KILN_EINVAL;
  }
  kiln_batch_config c = look_only(cfg);
  kiln_batch *b = NULL;
  int rc = kiln__batch_open(job, &c, false, &b, err);
  if (rc) return rc;
  walk_arg w = {fn, arg};
  rc = walk(b, walk_one, &w, err);
  kiln_batch_destroy(b);
  if (!rc) memset(err, 0, sizeof *err);
  return rc;
}

/* ---- verification --------------------------------------------------------------------------- */

typedef struct vframe {
  kiln_job_frame fr;
  uint64_t pos;
  const kiln__expect *expect; /* per slot, the verifier's */
  int npass, pass[NPASS];     /* its files' slots (kiln__frame_files) */
  char path[NPASS][KILN__PATH_CAP];
  bool named[NPASS]; /* its path could be made (else it is corrupt without a look) */
  char tar[KILN__PATH_CAP];   /* tar mode: the tar its files are members of, else "" */
  uint64_t off[NPASS], size[NPASS]; /* tar mode: where each member's data is */
  struct stray {
    char *path;
    int pass;
  } *strays; /* temporaries found beside its files */
  size_t nstrays;
  int noting; /* the pass whose temporaries are being noted */
  bool nomem; /* out of memory noting them */
  /* written by the check, read once it is done */
  int status[NPASS]; /* KILN__CHECK_* */
  char why[NPASS][300];
  uint64_t bytes;
  int rc; /* KILN_ENOMEM when a decode ran out of memory */
  kiln_future *task;
} vframe;

typedef struct verifier {
  kiln_batch *b;
  const kiln_batch_config *cfg;
  kiln__expect expect[NPASS + 1]; /* by slot (KILN__LAYERS last) */
  unsigned passes;
  kiln_format format;
  uint32_t tar_frames; /* tar mode: frames per tar, else 0 */
  kiln__tar_index ix;  /* tar mode: the members of tar ix_k, as read */
  uint64_t ix_k;
  bool ix_read;
  int ix_status; /* KILN__CHECK_* of the tar itself */
  char ix_why[300];
  kiln_batch_verify_fn fn;
  void *arg;
  kiln_batch_verify_summary *sum;
  kiln_error_detail *err;
  kiln__strays *strays;
  vframe **ring; /* frames in flight, oldest at head */
  size_t window, head, n;
} verifier;

static void vframe_free(vframe *f) {
  if (!f) return;
  kiln_future_release(f->task);
  for (size_t i = 0; i < f->nstrays; i++) free(f->strays[i].path);
  free(f->strays);
  kiln_job_frame_clear(&f->fr);
  free(f);
}

/* Member i of frame f's tar, read and decoded. */
static int check_member(vframe *f, int i) {
  int fd = open(f->tar, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(f->why[i], sizeof f->why[i], "cannot open the tar: %s", strerror(errno));
    return KILN__CHECK_CORRUPT;
  }
  unsigned char *b = malloc(f->size[i] ? f->size[i] : 1);
  int r = KILN_ENOMEM;
  if (b && pread(fd, b, f->size[i], (off_t)f->off[i]) != (ssize_t)f->size[i]) {
    snprintf(f->why[i], sizeof f->why[i], "cannot read the member from the tar");
    r = KILN__CHECK_CORRUPT;
  } else if (b) {
    f->bytes += f->size[i];
    r = kiln__check_bytes(b, f->size[i], &f->expect[f->pass[i]], f->why[i], sizeof f->why[i]);
  }
  free(b);
  close(fd);
  return r;
}

static void check_frame(vframe *f) {
  for (int i = 0; i < f->npass && !f->rc; i++) {
    if (!f->named[i]) continue;
    int r = f->tar[0] ? check_member(f, i)
                      : kiln__check_file(f->path[i], &f->expect[f->pass[i]], &f->bytes, f->why[i],
                                         sizeof f->why[i]);
    if (r < 0) f->rc = r;
    else f->status[i] = r;
  }
}

static int check_task(void *arg, void **result) {
  *result = NULL;
  check_frame(arg);
  return 0;
}

static void note_stray(void *arg, const char *tmp) {
  vframe *f = arg;
  struct stray *p = realloc(f->strays, (f->nstrays + 1) * sizeof *p);
  char *s = p ? strdup(tmp) : NULL;
  if (p) f->strays = p;
  if (!s) {
    f->nomem = true;
    return;
  }
  f->strays[f->nstrays++] = (struct stray){s, f->noting};
}

/* Reports frame f (checked) through the callback and the sums. */
static int report(verifier *v, vframe *f) {
  kiln_batch_verify_summary *sum = v->sum;
  if (f->rc || f->nomem) {
    kiln__say(v->err->message, sizeof v->err->message, "out of memory checking %s", f->fr.where);
    return v->err->code = KILN_ENOMEM;
  }
  kiln_verify_problem p = {&f->fr, f->pos, NULL, NULL, KILN_VERIFY_STRAY, ""};
  for (size_t i = 0; i < f->nstrays; i++) {
    sum->strays++;
    p.path = f->strays[i].path, p.pass = kiln__slot_name(f->strays[i].pass);
    p.reason = "a temporary file: a write that was killed, or is in flight";
    if (v->fn) v->fn(v->arg, &p);
  }
  bool complete = true;
  for (int i = 0; i < f->npass; i++) {
    sum->files++;
    if (f->status[i] == KILN__CHECK_OK) {
      sum->ok++;
      continue;
    }
    complete = false;
    bool missing = f->status[i] == KILN__CHECK_MISSING;
    missing ? sum->missing++ : sum->corrupt++;
    p.pass = kiln__slot_name(f->pass[i]), p.path = f->path[i];
    p.kind = missing ? KILN_VERIFY_MISSING : KILN_VERIFY_CORRUPT;
    p.reason = missing ? "" : f->why[i];
    if (v->fn) v->fn(v->arg, &p);
  }
  sum->frames++;
  sum->complete += complete;
  sum->bytes += f->bytes;
  return 0;
}

/* Waits for the oldest frame in flight, reports and frees it. */
static int retire_oldest(verifier *v) {
  vframe *f = v->ring[v->head];
  v->ring[v->head] = NULL;
  v->head = (v->head + 1) % v->window, v->n--;
  if (f->task) kiln_future_result(f->task, -1, NULL);
  int rc = report(v, f);
  vframe_free(f);
  return rc;
}

/* Tar mode: reads the index of tar k (once for its frames, which come one after another) and
 * notes its temporaries for frame f, the first of it. */
static int tar_load(verifier *v, uint64_t k, vframe *f, const char *path) {
  if (v->ix_read && v->ix_k == k) return 0;
  kiln__tar_index_free(&v->ix);
  v->ix_k = k, v->ix_read = true;
  v->ix_status = kiln__tar_read_index(path, &v->ix, v->ix_why, sizeof v->ix_why);
  if (v->ix_status < 0) return v->ix_status;
  f->noting = f->npass ? f->pass[0] : 0;
  int rc = kiln__strays_of(v->strays, path, note_stray, f);
  return rc ? rc : f->nomem ? KILN_ENOMEM : 0;
}

/* Frame f's files in tar mode: members <name>.<pass>.<ext> of its tar. */
static int tar_frame_new(verifier *v, vframe *f, vframe **out) {
  kiln__selection *sel = kiln__batch_selection(v->b);
  uint64_t k = kiln__selection_rank(sel, f->pos) / v->tar_frames;
  const char *out_dir, *tmpl;
  unsigned passes;
  kiln_format format;
  kiln__batch_outputs(v->b, &passes, &format, &out_dir, &tmpl);
  char name[64];
  kiln__tar_name(sel->shard, sel->shards, k, name, sizeof name);
  if (snprintf(f->tar, sizeof f->tar, "%s/%s", out_dir, name) >= (int)sizeof f->tar) f->tar[0] = 0;
  f->npass = kiln__frame_files(format, passes, f->pass);
  int rc = tar_load(v, k, f, f->tar);
  if (rc) {
    vframe_free(f);
    kiln__say(v->err->message, sizeof v->err->message, "out of memory");
    return v->err->code = KILN_ENOMEM;
  }
  for (int i = 0; i < f->npass; i++) {
    int pi = f->pass[i];
    char member[KILN__PATH_CAP / 2];
    snprintf(member, sizeof member, "%s.%s.%s", f->fr.name, kiln__slot_name(pi),
             kiln__pass_ext(format, pi));
    snprintf(f->path[i], sizeof f->path[i], "%.2000s/%.2000s", f->tar, member);
    const kiln__tar_member *m = v->ix_status == KILN__CHECK_OK ? kiln__tar_find(&v->ix, member)
                                                               : NULL;
    if (strchr(f->fr.name, '.') || !f->tar[0]) {
      f->status[i] = KILN__CHECK_CORRUPT; /* a name no run writes into a tar */
      snprintf(f->why[i], sizeof f->why[i], "the name holds a '.': no tar member has it");
    } else if (v->ix_status != KILN__CHECK_OK) {
      f->status[i] = v->ix_status;
      snprintf(f->why[i], sizeof f->why[i], "%s", v->ix_why);
    } else if (!m) {
      f->status[i] = KILN__CHECK_MISSING;
    } else {
      f->named[i] = true, f->off[i] = m->offset, f->size[i] = m->size;
    }
  }
  *out = f;
  return 0;
}

/* A new context for the selected frame fr (moved into it): its paths and temporaries. */
static int frame_new(verifier *v, kiln_job_frame *fr, uint64_t pos, vframe **out) {
  vframe *f = calloc(1, sizeof *f);
  if (!f) {
    kiln_job_frame_clear(fr);
    kiln__say(v->err->message, sizeof v->err->message, "out of memory");
    return v->err->code = KILN_ENOMEM;
  }
  f->fr = *fr, f->pos = pos, f->expect = v->expect;
  memset(fr, 0, sizeof *fr);
  if (v->tar_frames) return tar_frame_new(v, f, out);
  int slots[NPASS], ns = kiln__frame_files(v->format, v->passes, slots);
  for (int k = 0; k < ns; k++) {
    int pi = slots[k];
    int i = f->npass++;
    f->pass[i] = pi;
    if (kiln__batch_pass_path(v->b, &f->fr, pi, f->path[i], sizeof f->path[i], f->why[i],
                              sizeof f->why[i])) {
      f->status[i] = KILN__CHECK_CORRUPT; /* a name too long to write, so never written */
      continue;
    }
    f->named[i] = true, f->noting = pi;
    int rc = kiln__strays_of(v->strays, f->path[i], note_stray, f);
    if (rc || f->nomem) {
      vframe_free(f);
      kiln__say(v->err->message, sizeof v->err->message, "out of memory");
      return v->err->code = KILN_ENOMEM;
    }
  }
  *out = f;
  return 0;
}

static int verify_one(void *arg, kiln_job_frame *fr, uint64_t pos) {
  verifier *v = arg;
  vframe *f;
  int rc = frame_new(v, fr, pos, &f);
  if (rc) return rc;
  if (v->n == v->window && (rc = retire_oldest(v))) {
    vframe_free(f);
    return rc;
  }
  v->ring[(v->head + v->n) % v->window] = f, v->n++;
  if (!v->cfg->pool || kiln_submit(v->cfg->pool, check_task, f, &f->task) != 0) {
    f->task = NULL;
    check_frame(f);
  }
  return 0;
}

int kiln_batch_verify(kiln_job *job, const kiln_batch_config *cfg, kiln_batch_verify_fn fn,
                      void *arg, kiln_batch_verify_summary *sum, kiln_error_detail *err) {
  kiln_error_detail dummy;
  kiln_batch_verify_summary sdummy;
  if (!err) err = &dummy;
  if (!sum) sum = &sdummy;
  memset(err, 0, sizeof *err);
  memset(sum, 0, sizeof *sum);
  double t0 = kiln__now();
  if (!job || !cfg) {
    kiln__say(err->message, sizeof err->message, "job and cfg must not be NULL");
    return err->code = KILN_EINVAL;
  }
  kiln_batch_config c = look_only(cfg);
  verifier v = {.cfg = &c, .fn = fn, .arg = arg, .sum = sum, .err = err};
  int rc = kiln__batch_open(job, &c, false, &v.b, err);
  if (rc) return rc;
  kiln_format format;
  const char *out_dir, *tmpl;
  kiln__batch_outputs(v.b, &v.passes, &format, &out_dir, &tmpl);
  v.format = format, v.tar_frames = kiln__batch_tar_frames(v.b);
  /* the size every frame is rendered at: kiln_batch_create's (the job's settings are the scene's) */
  kiln_scene_info si;
  kiln_scene_get_info(kiln_job_scene(job), &si);
  int32_t w = c.width ? c.width : si.width, h = c.height ? c.height : si.height;
  for (int pi = 0; pi <= NPASS; pi++) kiln__expect_slot(format, v.passes, pi, w, h, &v.expect[pi]);
  v.window = 1;
  if (c.pool) v.window = (size_t)kiln_pool_threads(c.pool) * WINDOW_PER_THREAD;
  if (v.window > MAX_WINDOW) v.window = MAX_WINDOW;
  if (v.window < 1) v.window = 1;
  if (!(v.ring = calloc(v.window, sizeof *v.ring)) || kiln__strays_new(&v.strays)) {
    kiln__say(err->message, sizeof err->message, "out of memory");
    rc = err->code = KILN_ENOMEM;
  }
  if (!rc) rc = walk(v.b, verify_one, &v, err);
  while (v.n) { /* every frame in flight is waited for, also after an error */
    int r = retire_oldest(&v);
    if (!rc) rc = r;
  }
  free(v.ring);
  kiln__tar_index_free(&v.ix);
  kiln__strays_free(v.strays);
  kiln_batch_destroy(v.b);
  sum->wall_s = kiln__now() - t0;
  if (!rc) memset(err, 0, sizeof *err);
  return err->code = rc;
}
