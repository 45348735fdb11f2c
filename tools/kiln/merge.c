/* merge.c: `kiln merge -o OUT.jsonl IN.jsonl...`, one manifest from the per-shard (or per-claimer)
 * manifests of kiln render --manifest (engine/batch/manifest.c has the format), sorted by index,
 * the same bytes whatever the order of the inputs (docs/CLUSTER.md, "Verifying and merging").
 *
 * Every input is read line by line; each line must be a JSON object with a whole "index" >= 0 and
 * a "files" array of strings (a bad line is reported as FILE:LINE: reason, and nothing is written:
 * exit 2). A frame may be in several inputs (a run re-sharded with another N and resumed lists the
 * frames it found complete): records equal as JSON fold into one silently; records that differ keep
 * the one with more files, then the smaller line (bytewise), and a warning names both. With
 * --job JOB (and the render's --scene and --frames), every index the job selects must be there:
 * the missing ones are listed and the exit status is 1 (the merged manifest is written all the same).
 *
 * Memory: the records are held (each line as compact JSON plus ~40 bytes), about 200 MB for 10^6
 * frames with a few files each; the inputs are not sorted, so nothing less can sort them without
 * an external merge. The output is written atomically (a temporary beside it, then rename).
 * COCO files (kiln render --writer coco) are merged by merge_coco.c. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kiln/batch.h"
#include "cli.h"

enum { MAX_BAD_SHOWN = 20, MISSING_SHOWN = 50 };

static void merge_usage(FILE *to) {
  fprintf(to,
          "usage: kiln merge -o OUT.jsonl IN.jsonl... [--job JOB [--scene S] [--frames A:B[:S]]]\n"
          "       kiln merge -o coco.json coco_*.json\n"
          "\n"
          "Merges the manifests of kiln render --manifest (one per shard or process) into one,\n"
          "sorted by index, the same whatever the order of the inputs. A frame listed twice keeps\n"
          "one record (the one with more files, then the smaller line; a warning names both when\n"
          "they differ).\n"
          "\n"
          "Merges COCO files of kiln render --writer coco (coco_<shard>.json; recognised by their\n"
          "content) into one, as one unsharded run writes it: images sorted by id, annotation ids\n"
          "renumbered 1..N; the inputs' categories must agree.\n"
          "\n"
          "  -o FILE              the merged manifest (written atomically)\n"
          "  --job JOB            check that every frame the job selects is in it (exit 1 if not)\n"
          "  --scene FILE         with --job: the scene of a .jsonl list\n"
          "  --frames A:B[:STEP]  with --job: the render's --frames\n"
          "  --quiet              no summary line\n"
          "  -h, --help           this text\n"
          "\n"
          "exit status: 0 merged, 1 merged but frames are missing (--job) or it cannot be written,\n"
          "2 usage error or a bad line in an input (FILE:LINE: reason; nothing is written).\n");
}

#define usage_error(...) kiln_cli_usage_error("merge", __VA_ARGS__)

typedef struct record {
  uint64_t index;
  size_t nfiles;
  char *line; /* compact JSON, as cJSON prints it */
  const char *file;
  long lineno;
} record;

typedef struct records {
  record *r;
  size_t n, cap;
  uint64_t bad;
} records;

static void bad_line(records *rs, const char *file, long lineno, const char *why) {
  if (rs->bad++ < MAX_BAD_SHOWN) fprintf(stderr, "%s:%ld: %s\n", file, lineno, why);
}

/* Reads one line's record into rs: 0, or -1 out of memory. A bad line is noted. */
static int add_line(records *rs, const char *file, long lineno, const char *text) {
  const char *end = NULL;
  cJSON *o = cJSON_ParseWithOpts(text, &end, false);
  const char *why = NULL;
  const cJSON *idx = o ? cJSON_GetObjectItemCaseSensitive(o, "index") : NULL;
  const cJSON *files = o ? cJSON_GetObjectItemCaseSensitive(o, "files") : NULL;
  while (end && isspace((unsigned char)*end)) end++;
  if (!o) why = "not JSON";
  else if (end && *end) why = "text after the JSON object";
  else if (!cJSON_IsObject(o)) why = "not a JSON object";
  else if (!cJSON_IsNumber(idx)) why = "no \"index\" number";
  else if (!(idx->valuedouble >= 0 && idx->valuedouble <= 9007199254740992.0) ||
           idx->valuedouble != (double)(uint64_t)idx->valuedouble)
    why = "\"index\" is not a whole number >= 0";
  else if (!cJSON_IsArray(files)) why = "no \"files\" array";
  for (const cJSON *f = files && !why ? files->child : NULL; f; f = f->next)
    if (!cJSON_IsString(f)) why = "\"files\" holds something other than strings";
  if (why) {
    cJSON_Delete(o);
    bad_line(rs, file, lineno, why);
    return 0;
  }
  record r = {(uint64_t)idx->valuedouble, (size_t)cJSON_GetArraySize(files),
              cJSON_PrintUnformatted(o), file, lineno};
  cJSON_Delete(o);
  if (!r.line) return -1;
  if (rs->n == rs->cap) {
    size_t cap = rs->cap ? 2 * rs->cap : 1024;
    record *p = realloc(rs->r, cap * sizeof *p);
    if (!p) {
      free(r.line);
      return -1;
    }
    rs->r = p, rs->cap = cap;
  }
  rs->r[rs->n++] = r;
  return 0;
}

/* Reads the manifest at path into rs, line by line. 0, 2 (cannot open: told), -1 (memory). */
static int read_manifest(records *rs, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "kiln merge: cannot open %s: %s\n", path, strerror(errno));
    return 2;
  }
  char *line = NULL;
  size_t cap = 0;
  long lineno = 0;
  ssize_t n;
  int rc = 0;
  while (!rc && (n = getline(&line, &cap, f)) >= 0) {
    lineno++;
    if (strlen(line) != (size_t)n) {
      bad_line(rs, path, lineno, "a NUL byte in the line");
      continue;
    }
    size_t k = strspn(line, " \t\r\n");
    if (line[k] == 0) continue; /* a blank line holds no record */
    rc = add_line(rs, path, lineno, line);
  }
  if (!rc && ferror(f)) {
    fprintf(stderr, "kiln merge: cannot read %s: %s\n", path, strerror(errno));
    rc = 2;
  }
  free(line);
  fclose(f);
  return rc;
}

/* Index; then the record to keep first (more files, then the smaller line); then the file and
 * line, so that the order, and the warnings, do not depend on the order of the inputs. */
static int cmp_record(const void *pa, const void *pb) {
  const record *a = pa, *b = pb;
  if (a->index != b->index) return a->index < b->index ? -1 : 1;
  if (a->nfiles != b->nfiles) return a->nfiles > b->nfiles ? -1 : 1;
  int c = strcmp(a->line, b->line);
  if (c) return c;
  if ((c = strcmp(a->file, b->file))) return c;
  return a->lineno < b->lineno ? -1 : a->lineno > b->lineno;
}

/* Sorts rs and folds records of one index into the first: *n the records kept (at the front). */
static void fold(records *rs, uint64_t *dups, uint64_t *differ) {
  qsort(rs->r, rs->n, sizeof *rs->r, cmp_record);
  size_t k = 0;
  for (size_t i = 0; i < rs->n; i++) {
    record *r = &rs->r[i];
    if (k && rs->r[k - 1].index == r->index) {
      const record *kept = &rs->r[k - 1];
      (*dups)++;
      if (strcmp(kept->line, r->line) != 0) {
        (*differ)++;
        fprintf(stderr,
                "kiln merge: warning: index %llu differs between %s:%ld and %s:%ld; kept %s:%ld "
                "(%s)\n",
                (unsigned long long)r->index, kept->file, kept->lineno, r->file, r->lineno,
                kept->file, kept->lineno,
                kept->nfiles > r->nfiles ? "more files" : "the smaller line");
      }
      free(r->line);
      continue;
    }
    rs->r[k++] = *r;
  }
  rs->n = k;
}

static int write_merged(const char *out, const records *rs) {
  char tmp[PATH_MAX + 64];
  FILE *f = kiln_cli_atomic_open(out, tmp, sizeof tmp);
  if (!f) return errno;
  for (size_t i = 0; i < rs->n; i++) {
    fputs(rs->r[i].line, f);
    fputc('\n', f);
  }
  return kiln_cli_atomic_commit(f, tmp, out, true);
}

/* ---- --job: the indices the job selects --------------------------------------------------------- */

typedef struct expected {
  const records *rs;
  size_t at;          /* the next merged record to compare (both go up by index) */
  uint64_t missing, selected;
} expected;

static void on_selected(void *arg, const kiln_job_frame *fr, uint64_t pos) {
  (void)pos;
  expected *e = arg;
  e->selected++;
  while (e->at < e->rs->n && e->rs->r[e->at].index < fr->index) e->at++;
  if (e->at < e->rs->n && e->rs->r[e->at].index == fr->index) return;
  if (e->missing++ < MISSING_SHOWN)
    fprintf(stderr, "kiln merge: missing: index %llu (frame %ld, %s)\n",
            (unsigned long long)fr->index, fr->frame, fr->where);
}

/* 0 every selected index is there, 1 some are missing (listed), 2 the job cannot be read. */
static int check_job(const records *rs, const char *job_path, const char *scene,
                     const kiln_batch_config *bc) {
  kiln_job *job = NULL;
  kiln_error_detail err;
  kiln_job_options jo = {scene, NULL};
  char msg[2048];
  int rc = kiln_job_load(job_path, &jo, &err, &job);
  expected e = {rs, 0, 0, 0};
  if (!rc) rc = kiln_batch_walk(job, bc, on_selected, &e, &err);
  kiln_job_destroy(job);
  if (rc) {
    fprintf(stderr, "kiln merge: %s\n", kiln_error_detail_format(&err, msg, sizeof msg));
    return 2;
  }
  if (e.missing > MISSING_SHOWN)
    fprintf(stderr, "kiln merge: ... %llu missing in all\n", (unsigned long long)e.missing);
  if (e.missing)
    fprintf(stderr, "kiln merge: %llu of the %llu frames %s selects are missing\n",
            (unsigned long long)e.missing, (unsigned long long)e.selected, job_path);
  return e.missing ? 1 : 0;
}

int kiln_cli_merge(int argc, char **argv) {
  const char *out = NULL, *job = NULL, *scene = NULL;
  bool quiet = false, frames = false;
  const char **ins = calloc((size_t)argc + 1, sizeof *ins);
  size_t nin = 0;
  kiln_batch_config bc;
  kiln_batch_config_default(&bc);
  if (!ins) return usage_error("out of memory");
  int code = 0;
  for (int i = 0; i < argc && !code; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    bool valued = !strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--job") ||
                  !strcmp(a, "--scene") || !strcmp(a, "--frames");
    if (valued && !v) code = usage_error("%s needs a value", a);
    else if (!strcmp(a, "-h") || !strcmp(a, "--help")) merge_usage(stdout), code = -1;
    else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
    else if (!strcmp(a, "--job")) job = v;
    else if (!strcmp(a, "--scene")) scene = v;
    else if (!strcmp(a, "--frames")) {
      frames = true;
      if (!kiln_cli_parse_frames(v, &bc.first, &bc.last, &bc.step))
        code = usage_error("--frames %s: expected A:B, A:B:STEP, A:, :B or N", v);
    } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) quiet = true;
    else if (a[0] == '-' && a[1]) code = usage_error("unknown option %s", a);
    else ins[nin++] = a;
    if (valued) i++;
  }
  if (!code && !out) code = usage_error("no output given (-o OUT.jsonl)");
  if (!code && nin == 0) code = usage_error("no input manifests given");
  if (!code && (scene || frames) && !job) code = usage_error("--scene and --frames go with --job");
  bool coco = !code && nin && kiln_cli_is_coco(ins[0]);
  if (!code && coco && job) code = usage_error("--job checks manifests, not COCO files");
  if (!code && coco) code = kiln_cli_merge_coco(out, ins, nin, quiet);
  if (code || coco) {
    free(ins);
    return code < 0 ? 0 : code;
  }
  records rs = {0};
  for (size_t i = 0; i < nin && !code; i++) code = read_manifest(&rs, ins[i]);
  if (code < 0) fprintf(stderr, "kiln merge: out of memory\n"), code = 2;
  if (!code && rs.bad) {
    if (rs.bad > MAX_BAD_SHOWN)
      fprintf(stderr, "kiln merge: ... %llu bad lines in all\n", (unsigned long long)rs.bad);
    fprintf(stderr, "kiln merge: nothing written\n");
    code = 2;
  }
  uint64_t dups = 0, differ = 0;
  if (!code) {
    size_t read = rs.n;
    fold(&rs, &dups, &differ);
    int e = write_merged(out, &rs);
    if (e) fprintf(stderr, "kiln merge: cannot write %s: %s\n", out, strerror(e)), code = 1;
    if (!code && job) code = check_job(&rs, job, scene, &bc);
    if (!quiet && !e)
      printf("kiln merge: %zu records from %zu manifests (%zu lines; %llu duplicates, %llu of "
             "them differing) into %s\n",
             rs.n, nin, read, (unsigned long long)dups, (unsigned long long)differ, out);
  }
  for (size_t i = 0; i < rs.n; i++) free(rs.r[i].line);
  free(rs.r);
  free(ins);
  return code;
}
