/* cli.h: the commands of the kiln tool (tools/kiln/main.c dispatches to them). Each takes the
 * arguments after its name and returns the process's exit status. */
#ifndef KILN_TOOLS_CLI_H
#define KILN_TOOLS_CLI_H

int kiln_cli_render(int argc, char **argv);  /* tools/kiln/render.c */
int kiln_cli_devices(int argc, char **argv); /* tools/kiln/devices.c */
int kiln_cli_verify(int argc, char **argv);  /* tools/kiln/verify.c */
int kiln_cli_merge(int argc, char **argv);   /* tools/kiln/merge.c */

/* tools/kiln/merge_coco.c: kiln merge of COCO files (kiln render --writer coco). */
#include <stdbool.h>
#include <stddef.h>
/* Whether the file at path starts as a COCO file (an object whose first member is one of COCO's),
 * not a manifest (whose lines start {"index":). */
bool kiln_cli_is_coco(const char *path);
/* Merges the COCO files ins[0..nin) into out: the exit status (0, 1 cannot write, 2 bad input). */
int kiln_cli_merge_coco(const char *out, const char *const *ins, size_t nin, bool quiet);

/* tools/kiln/devsel.c: device selection that follows the scheduler's allocation. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/batch.h"
#include "kiln/gpu.h"

enum { KILN_CLI_MAX_VISIBLE = 64 };

/* What the environment makes visible (devsel.c's top comment has the variables and their order). */
typedef struct kiln_cli_visibility {
  const char *var;   /* the variable that decided, or NULL when none is set (every device) */
  const char *value; /* its value, borrowed from the environment */
  uint32_t vendor;   /* the vendor its indices count (0: every GPU) */
  bool restricted;   /* a variable is set: only idx[0..n) of the GPUs are visible */
  bool allocated;    /* the variable hands out at least one GPU (not "", "none", "-1", ...) */
  bool host_indices; /* NVIDIA_VISIBLE_DEVICES of host indices: every NVIDIA GPU is visible */
  size_t n;
  uint32_t idx[KILN_CLI_MAX_VISIBLE]; /* device indices, numbered 0.. by --device */
} kiln_cli_visibility;

/* Reads the visibility variables. 0, or 2 with the error in msg when the variable is malformed
 * (msg names the variable and quotes its value). */
int kiln_cli_visibility_read(kiln_gpu *gpu, kiln_cli_visibility *v, char *msg, size_t size);

/* "DDDD:BB:DD.F", or "no PCI address". Returns buf. */
const char *kiln_cli_pci_string(const kiln_gpu_device_info *d, char *buf, size_t size);

/* kiln_gpu_select_visible for --device SPEC under the environment's visibility list: writes up
 * to cap device indices to idx[] and their number to *n. Prints on stderr, prefixed with cmd
 * ("kiln render"): which variable decided and the GPUs it makes visible (unless quiet), and,
 * when the variable hands out a GPU but no visible GPU is usable, a multi-line WARNING (always)
 * on why that happens; "auto" then goes on with the CPU device. Returns 0; or an exit status
 * with the error in msg (one line, no prefix, not printed: the caller prints it): 2 when a
 * visibility variable or spec is malformed, 3 when no device matches what was asked (e.g.
 * --device gpu where only lavapipe is usable). */
int kiln_cli_pick_devices(kiln_gpu *gpu, const char *cmd, const char *spec, uint32_t *idx,
                          size_t cap, size_t *n, bool quiet, char *msg, size_t size);

/* tools/kiln/shard.c */
/* "K/N" with 0 <= K < N. */
bool kiln_cli_shard_parse(const char *s, uint32_t *k, uint32_t *n);
/* --shard auto: K and N from the launcher's environment (flag_n: --shards, 0 when not given),
 * with where they came from in from. 0, or -1 with err saying why. */
int kiln_cli_shard_auto(uint32_t flag_n, uint32_t *k, uint32_t *n, char *from, size_t fcap,
                        char *err, size_t cap);

/* tools/kiln/options.c: what the commands share to read options and write files */
#include <stdio.h>
/* A whole decimal number in lo..hi. */
bool kiln_cli_parse_long(const char *s, long lo, long hi, long *out);
/* --exr-compression: none, rle, zips, zip or piz. */
bool kiln_cli_exr_compression(const char *s, kiln_exr_compression *out);
/* "WxH", each 1..16384. */
bool kiln_cli_parse_size(const char *s, int32_t *w, int32_t *h);
/* --frames: "A:B[:STEP]", "A:", ":B", "N" (frame numbers may be negative; A <= B, STEP >= 1). */
bool kiln_cli_parse_frames(const char *s, long *first, long *last, long *step);
/* name with every "{shard}" replaced by shard, into buf; NULL when it does not fit. */
const char *kiln_cli_with_shard(const char *name, const char *shard, char *buf, size_t cap);
/* Why path, relative to the output folder, would leave it; NULL when it stays inside. */
const char *kiln_cli_leaves_folder(const char *path);
/* s as a JSON string, quoted and escaped. */
void kiln_cli_json_string(FILE *f, const char *s);
/* Opens a temporary beside path (".NAME.tmp-PID", its name into tmp) for writing; NULL with errno.
 * kiln_cli_atomic_commit closes it and, with keep and no error so far, syncs it and renames it over
 * path (else removes it): 0 or an errno value. */
FILE *kiln_cli_atomic_open(const char *path, char *tmp, size_t cap);
int kiln_cli_atomic_commit(FILE *f, const char *tmp, const char *path, bool keep);
/* A usage error of `kiln CMD`: the message on stderr with a pointer to --help; returns 2. */
int kiln_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
