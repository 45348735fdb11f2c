/* manifest.c: the run's manifest, one JSON object a line for every frame written or found complete
 * (--resume), in the order they finished:
 *
 *   {"index": 12, "position": 12, "frame": 12, "name": "00012", "seed": 7,
 *    "files": ["00012_color.png", "00012_depth.png"]}
 *
 * index: the frame's place in the job; position: its place in the selection (what shards and
 * chunks cut); files: relative to the output folder. With annotations, a rendered frame's line
 * also has its ground truth (records.c: width, height, camera, instances). Lines go to a
 * temporary file beside the manifest as frames finish (memory does not grow with the job), renamed
 * over the manifest when the run ends, so a manifest is whole or absent; a killed run leaves only
 * the temporary, which --resume sweeps, and a resumed run lists its skipped frames again, so its
 * manifest is whole. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch_internal.h"

struct kiln__manifest {
  char path[PATH_MAX], tmp[PATH_MAX + 64];
  FILE *f;
  int err; /* the first errno of a write */
};

int kiln__manifest_open(const char *path, kiln__manifest **out, char *msg, size_t msgcap) {
  *out = NULL;
  kiln__manifest *m = calloc(1, sizeof *m);
  if (!m) {
    kiln__say(msg, msgcap, "out of memory");
    return KILN_ENOMEM;
  }
  char host[40];
  kiln__tmp_host(host, sizeof host);
  const char *slash = strrchr(path, '/');
  int dl = slash ? (int)(slash - path) + 1 : 0;
  if (snprintf(m->path, sizeof m->path, "%s", path) >= (int)sizeof m->path ||
      snprintf(m->tmp, sizeof m->tmp, "%.*s.%s.tmp-%s-%ld-0", dl, path, path + dl, host,
               (long)getpid()) >= (int)sizeof m->tmp) {
    kiln__say(msg, msgcap, "manifest path too long: %s", path);
    free(m);
    return KILN_EINVAL;
  }
  int fd = open(m->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0 || !(m->f = fdopen(fd, "w"))) {
    kiln__say(msg, msgcap, "cannot create %s: %s", m->tmp, strerror(errno));
    if (fd >= 0) close(fd);
    free(m);
    return KILN_EIO;
  }
  *out = m;
  return 0;
}

int kiln__manifest_add(kiln__manifest *m, const kiln_job_frame *fr, uint64_t pos,
                       char files[][KILN__PATH_CAP], size_t nfiles) {
  return kiln__manifest_add_record(m, fr, pos, files, nfiles, NULL);
}

int kiln__manifest_add_record(kiln__manifest *m, const kiln_job_frame *fr, uint64_t pos,
                              char files[][KILN__PATH_CAP], size_t nfiles,
                              const kiln__frame_gt *gt) {
  cJSON *o = cJSON_CreateObject(), *list = cJSON_CreateArray();
  bool ok = o && list && cJSON_AddNumberToObject(o, "index", (double)fr->index) &&
            cJSON_AddNumberToObject(o, "position", (double)pos) &&
            cJSON_AddNumberToObject(o, "frame", (double)fr->frame) &&
            cJSON_AddStringToObject(o, "name", fr->name) &&
            cJSON_AddNumberToObject(o, "seed", (double)fr->seed);
  for (size_t i = 0; ok && i < nfiles; i++) {
    cJSON *f = cJSON_CreateString(files[i]);
    ok = f && cJSON_AddItemToArray(list, f);
    if (!ok) cJSON_Delete(f);
  }
  if (ok && (ok = cJSON_AddItemToObject(o, "files", list))) list = NULL; /* o owns it now */
  if (ok && gt) ok = kiln__gt_json(o, gt);
  char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  cJSON_Delete(list);
  if (!text) {
    if (!m->err) m->err = ENOMEM;
    return KILN_ENOMEM;
  }
  if ((fputs(text, m->f) < 0 || fputc('\n', m->f) == EOF) && !m->err) m->err = errno ? errno : EIO;
  free(text);
  return m->err ? KILN_EIO : 0;
}

int kiln__manifest_commit(kiln__manifest *m, bool durable, bool keep, char *msg, size_t msgcap) {
  if (!m) return 0;
  if (!keep) {
    fclose(m->f);
    unlink(m->tmp);
    free(m);
    return 0;
  }
  int err = m->err;
  if (fflush(m->f) != 0 && !err) err = errno;
  if (!err && durable && fsync(fileno(m->f)) != 0) err = errno;
  if (fclose(m->f) != 0 && !err) err = errno;
  if (!err && rename(m->tmp, m->path) != 0) err = errno;
  if (err) {
    unlink(m->tmp);
    kiln__say(msg, msgcap, "cannot write the manifest %s: %s", m->path,
              err == ENOMEM ? "out of memory" : strerror(err));
  }
  free(m);
  return err ? (err == ENOMEM ? KILN_ENOMEM : KILN_EIO) : 0;
}
