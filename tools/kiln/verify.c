/* verify.c: `kiln verify`, whether every file a run writes for the selected frames is there and
 * decodes (kiln_batch_verify): the `afterok` step after the array of a cluster pipeline
 * (docs/CLUSTER.md). It reads the same options as kiln render for what decides the files (the job,
 * --scene, --frames, --shard, --template, --passes, --format, --size) and needs no Vulkan device.
 *
 * Exit status: 0 when every file is present and decodes, 1 when some are missing or corrupt (each
 * listed, the first 50, then a count), 2 for a usage or job error. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/batch.h"
#include "cli.h"

enum { SHOWN = 50, KEPT_FOR_JSON = 1000 };

static void verify_usage(FILE *to) {
  fprintf(to,
          "usage: kiln verify JOB -o DIR [options]\n"
          "\n"
          "Checks that every file kiln render writes for the selected frames of JOB is in DIR,\n"
          "complete and decodable (PNG, JPEG, EXR, NPY, HDR: each decoded in full, at the run's\n"
          "size, bit depth and channels). Needs no GPU. Give the options the render was given:\n"
          "\n"
          "  -o, --output-dir DIR    the run's output folder (default: .)\n"
          "  --scene FILE            the scene of a .jsonl list (or instead of the job's)\n"
          "  --frames A:B[:STEP]     frames A to B inclusive, every STEP-th (A: and :B are open)\n"
          "  --shard K/N | auto      only the K-th of N parts (auto: from the launcher)\n"
          "  --shards N              N for --shard auto in a Kubernetes Indexed Job\n"
          "  --shard-mode M          round-robin (default) or contiguous\n"
          "  --template T            output names (default: the job's)\n"
          "  --tar N                 the run wrote tar shards of N frames (kiln render --tar)\n"
          "  --passes LIST           extra passes: depth,normal,albedo,id,instance,uv,position,\n"
          "                          objcoord,nocs,category,flow_fwd,flow_bwd,\n"
          "                          motion_fwd,motion_bwd\n"
          "  --format F              png, png16, jpg, exr, npy, hdr or exr-multi (default: the\n"
          "                          job's)\n"
          "  --size WxH              the image size the run used (default: the job's / scene's)\n"
          "  --allow-outside-output  as for kiln render\n"
          "  --threads N             decoding threads (default: one per CPU)\n"
          "  --json FILE             write the result as JSON ({shard} becomes K)\n"
          "  --quiet                 no summary line (problems are still listed)\n"
          "  -h, --help              this text\n"
          "\n"
          "kiln render's options that do not change which files are written (--spp, --device,\n"
          "--in-flight, --contact-sheet, --manifest, --chunk, --claim-timeout, --resume,\n"
          "--overwrite, --durable, --claim) are accepted and ignored, so that one list of options\n"
          "serves both commands (--claim: every frame is checked).\n"
          "\n"
          "exit status: 0 every file present and decodable, 1 some missing or corrupt (listed),\n"
          "2 usage or job error. Stray temporaries (.NAME.tmp-HOST-PID-N) are listed but do not\n"
          "change the exit status.\n");
}

#define usage_error(...) kiln_cli_usage_error("verify", __VA_ARGS__)

typedef struct kept {
  kiln_verify_kind kind;
  long frame;
  uint64_t index;
  char pass[16];
  char *path, *reason;
} kept;

typedef struct report {
  uint64_t bad, strays;
  kept *keep; /* the first KEPT_FOR_JSON problems, for --json */
  size_t nkeep;
} report;

static const char *kind_name(kiln_verify_kind k) {
  return k == KILN_VERIFY_MISSING ? "missing" : k == KILN_VERIFY_CORRUPT ? "corrupt" : "stray";
}

static void on_problem(void *arg, const kiln_verify_problem *p) {
  report *r = arg;
  bool stray = p->kind == KILN_VERIFY_STRAY;
  uint64_t n = stray ? r->strays++ : r->bad++;
  if (n < SHOWN) {
    printf("%s: %s (frame %ld, %s)%s%s\n", kind_name(p->kind), p->path, p->frame->frame,
           p->frame->where, p->reason[0] && !stray ? ": " : "", stray ? "" : p->reason);
  } else if (n == SHOWN) {
    printf("%s\n", stray ? "(more stray temporaries are not listed)"
                         : "(more missing or corrupt files are not listed)");
  }
  if (r->keep && r->nkeep < KEPT_FOR_JSON) {
    kept *k = &r->keep[r->nkeep];
    *k = (kept){p->kind, p->frame->frame, p->frame->index, "", strdup(p->path), strdup(p->reason)};
    snprintf(k->pass, sizeof k->pass, "%s", p->pass);
    if (k->path && k->reason) r->nkeep++;
    else free(k->path), free(k->reason);
  }
}

static int write_json(const char *path, const char *job, const kiln_batch_config *bc,
                      const kiln_batch_verify_summary *s, const report *r, int code,
                      const char *error) {
  char tmp[PATH_MAX + 64];
  FILE *f = kiln_cli_atomic_open(path, tmp, sizeof tmp);
  if (!f) return errno;
  fprintf(f, "{\n  \"job\": ");
  kiln_cli_json_string(f, job);
  fprintf(f, ",\n  \"output_dir\": ");
  kiln_cli_json_string(f, bc->out_dir);
  fprintf(f, ",\n  \"exit_code\": %d,\n", code);
  if (error) {
    fprintf(f, "  \"error\": ");
    kiln_cli_json_string(f, error);
    fprintf(f, "\n}\n");
    return kiln_cli_atomic_commit(f, tmp, path, true);
  }
  if (bc->shards > 1)
    fprintf(f, "  \"shard\": {\"index\": %u, \"count\": %u, \"mode\": \"%s\"},\n", bc->shard,
            bc->shards, bc->shard_mode == KILN_SHARD_CONTIGUOUS ? "contiguous" : "round-robin");
  else fprintf(f, "  \"shard\": null,\n");
  fprintf(f,
          "  \"frames\": {\"selected\": %llu, \"complete\": %llu},\n"
          "  \"files\": {\"expected\": %llu, \"ok\": %llu, \"missing\": %llu, \"corrupt\": %llu},\n"
          "  \"strays\": %llu,\n  \"bytes\": %llu,\n  \"wall_s\": %.6f,\n  \"problems\": [",
          (unsigned long long)s->frames, (unsigned long long)s->complete,
          (unsigned long long)s->files, (unsigned long long)s->ok, (unsigned long long)s->missing,
          (unsigned long long)s->corrupt, (unsigned long long)s->strays,
          (unsigned long long)s->bytes, s->wall_s);
  for (size_t i = 0; i < r->nkeep; i++) {
    const kept *k = &r->keep[i];
    fprintf(f,
            "%s\n    {\"kind\": \"%s\", \"frame\": %ld, \"index\": %llu, \"pass\": \"%s\", "
            "\"path\": ",
            i ? "," : "", kind_name(k->kind), k->frame, (unsigned long long)k->index, k->pass);
    kiln_cli_json_string(f, k->path);
    fprintf(f, ", \"reason\": ");
    kiln_cli_json_string(f, k->reason);
    fputc('}', f);
  }
  fprintf(f, "%s]\n}\n", r->nkeep ? "\n  " : "");
  return kiln_cli_atomic_commit(f, tmp, path, true);
}

typedef struct options {
  const char *job, *scene, *json;
  long threads;
  bool quiet, shard_auto;
  uint32_t flag_shards;
} options;

/* Reads argv into o and bc: 0, 1 for --help (shown), or 2 (a usage error, told). */
static int parse(int argc, char **argv, options *o, kiln_batch_config *bc) {
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    static const char *const valued[] = {
        "-o",       "--output-dir", "--scene", "--frames", "--size",   "--threads",    "--passes",
        "--format", "--template",   "--json",  "--shard",  "--shards", "--shard-mode", "--tar",
        NULL};
    /* kiln render's options that change no file name or content: one option list for both */
    static const char *const ignored_valued[] = {"--spp",           "--device",   "--in-flight",
                                                 "--contact-sheet", "--manifest", "--chunk",
                                                 "--claim-timeout", "--exr-compression",
                                                 NULL};
    /* (--exr-half: verify takes half or float channels alike) */
    static const char *const ignored_flags[] = {"--resume", "--overwrite", "--durable", "--claim",
                                                "--exr-half", NULL};
    bool ignored = false, ignored_takes = false;
    for (int k = 0; ignored_valued[k]; k++)
      ignored_takes = ignored_takes || !strcmp(a, ignored_valued[k]);
    for (int k = 0; ignored_flags[k]; k++) ignored = ignored || !strcmp(a, ignored_flags[k]);
    if (ignored_takes && !v) return usage_error("%s needs a value", a);
    if (ignored || ignored_takes) {
      i += ignored_takes;
      continue;
    }
    bool takes = false;
    for (int k = 0; valued[k]; k++) takes = takes || !strcmp(a, valued[k]);
    if (takes && !v) return usage_error("%s needs a value", a);
    long n;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      verify_usage(stdout);
      return 1;
    } else if (!strcmp(a, "-o") || !strcmp(a, "--output-dir")) {
      bc->out_dir = v;
    } else if (!strcmp(a, "--scene")) {
      o->scene = v;
    } else if (!strcmp(a, "--frames")) {
      if (!kiln_cli_parse_frames(v, &bc->first, &bc->last, &bc->step))
        return usage_error("--frames %s: expected A:B, A:B:STEP, A:, :B or N (A <= B, STEP >= 1)",
                           v);
    } else if (!strcmp(a, "--size")) {
      if (!kiln_cli_parse_size(v, &bc->width, &bc->height))
        return usage_error("--size %s: expected WxH, e.g. 256x256 (1..16384)", v);
    } else if (!strcmp(a, "--threads")) {
      if (!kiln_cli_parse_long(v, 1, 1024, &o->threads))
        return usage_error("--threads %s: expected 1..1024", v);
    } else if (!strcmp(a, "--passes")) {
      kiln_error_detail pe;
      if (kiln_pass_parse(v, &bc->passes, &pe))
        return usage_error("--passes %s: %s", v, pe.message);
    } else if (!strcmp(a, "--format")) {
      if (kiln_format_parse(v, &bc->format))
        return usage_error("--format %s: expected png, png16, jpg, exr, npy, hdr or exr-multi",
                           v);
    } else if (!strcmp(a, "--template")) {
      bc->output = v;
    } else if (!strcmp(a, "--tar")) {
      if (!kiln_cli_parse_long(v, 1, 1 << 24, &n))
        return usage_error("--tar %s: expected 1..16777216 frames a tar", v);
      bc->tar_frames = (uint32_t)n;
    } else if (!strcmp(a, "--json")) {
      o->json = v;
    } else if (!strcmp(a, "--shard")) {
      if (!strcmp(v, "auto")) o->shard_auto = true;
      else if (!kiln_cli_shard_parse(v, &bc->shard, &bc->shards))
        return usage_error("--shard %s: expected K/N with 0 <= K < N, or auto", v);
    } else if (!strcmp(a, "--shards")) {
      if (!kiln_cli_parse_long(v, 1, UINT32_MAX, &n))
        return usage_error("--shards %s: expected 1..%u", v, UINT32_MAX);
      o->flag_shards = (uint32_t)n;
    } else if (!strcmp(a, "--shard-mode")) {
      if (kiln_shard_mode_parse(v, &bc->shard_mode))
        return usage_error("--shard-mode %s: expected round-robin or contiguous", v);
    } else if (!strcmp(a, "--allow-outside-output")) {
      bc->allow_outside_out_dir = true;
    } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
      o->quiet = true;
    } else if (a[0] == '-' && a[1]) {
      return usage_error("unknown option %s", a);
    } else if (!o->job) {
      o->job = a;
    } else {
      return usage_error("one job at a time (got %s and %s)", o->job, a);
    }
    if (takes) i++;
  }
  if (!o->job) return usage_error("no job given");
  if (o->flag_shards && !o->shard_auto) return usage_error("--shards goes with --shard auto");
  const char *why;
  if (bc->output && !bc->allow_outside_out_dir && (why = kiln_cli_leaves_folder(bc->output)))
    return usage_error("--template %s: %s (--allow-outside-output allows it)", bc->output, why);
  return 0;
}

int kiln_cli_verify(int argc, char **argv) {
  options o = {0};
  kiln_batch_config bc;
  kiln_batch_config_default(&bc);
  int code = parse(argc, argv, &o, &bc);
  if (code) return code == 1 ? 0 : code;
  if (!bc.out_dir) bc.out_dir = ".";
  char from[600] = "", why[512];
  if (o.shard_auto &&
      kiln_cli_shard_auto(o.flag_shards, &bc.shard, &bc.shards, from, sizeof from, why, sizeof why))
    return usage_error("--shard auto: %s", why);
  char shard_name[32], json_buf[PATH_MAX];
  snprintf(shard_name, sizeof shard_name, "%u", bc.shard);
  if (o.json && !(o.json = kiln_cli_with_shard(o.json, shard_name, json_buf, sizeof json_buf)))
    return usage_error("--json: the name is too long");
  if (bc.shards > 1 && !o.quiet)
    fprintf(stderr, "kiln verify: shard %u/%u (%s%s)\n", bc.shard, bc.shards,
            from[0] ? "from " : "--shard", from);

  kiln_pool *pool = NULL;
  kiln_job *job = NULL;
  report rep = {0, 0, calloc(KEPT_FOR_JSON, sizeof(kept)), 0};
  kiln_batch_verify_summary sum;
  memset(&sum, 0, sizeof sum);
  char msg[2048] = "";
  kiln_error_detail err;
  kiln_pool_config pc;
  kiln_pool_config_default(&pc);
  if (o.threads) pc.threads = (int)o.threads;
  int rc = rep.keep ? kiln_pool_create(&pc, &pool) : KILN_ENOMEM;
  if (rc) {
    snprintf(msg, sizeof msg, "cannot start the worker threads: %s", kiln_strerror(rc));
    goto out;
  }
  kiln_job_options jo = {o.scene, pool};
  if ((rc = kiln_job_load(o.job, &jo, &err, &job))) {
    kiln_error_detail_format(&err, msg, sizeof msg);
    goto out;
  }
  bc.pool = pool;
  if ((rc = kiln_batch_verify(job, &bc, on_problem, &rep, &sum, &err))) {
    if (bc.output && !strcmp(err.path, "output"))
      snprintf(msg, sizeof msg, "--template %s: %s", bc.output, err.message);
    else kiln_error_detail_format(&err, msg, sizeof msg);
    goto out;
  }
  code = sum.missing + sum.corrupt ? 1 : 0;
  if (rep.bad > SHOWN)
    printf("... %llu missing or corrupt files in all\n", (unsigned long long)rep.bad);
  if (!o.quiet)
    printf("kiln verify: %llu of %llu frames complete; %llu files: %llu ok, %llu missing, %llu "
           "corrupt; %llu stray temporar%s; in %s (%.2f s)\n",
           (unsigned long long)sum.complete, (unsigned long long)sum.frames,
           (unsigned long long)sum.files, (unsigned long long)sum.ok,
           (unsigned long long)sum.missing, (unsigned long long)sum.corrupt,
           (unsigned long long)sum.strays, sum.strays == 1 ? "y" : "ies", bc.out_dir, sum.wall_s);
out:
  if (msg[0]) {
    code = 2;
    size_t n = strlen(msg);
    if (n && msg[n - 1] == '\n') msg[n - 1] = 0;
    fprintf(stderr, "kiln verify: %s\n", msg);
  }
  if (o.json) {
    int e = write_json(o.json, o.job, &bc, &sum, &rep, code, msg[0] ? msg : NULL);
    if (e) {
      fprintf(stderr, "kiln verify: cannot write %s: %s\n", o.json, strerror(e));
      if (code == 0) code = 1;
    }
  }
  for (size_t i = 0; i < rep.nkeep; i++) free(rep.keep[i].path), free(rep.keep[i].reason);
  free(rep.keep);
  kiln_job_destroy(job);
  kiln_pool_destroy(pool);
  return code;
}
