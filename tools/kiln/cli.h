/* cli.h: the commands of the kiln tool (tools/kiln/main.c dispatches to them). Each takes the
 * arguments after its name and returns the process's exit status. */
#ifndef KILN_TOOLS_CLI_H
#define KILN_TOOLS_CLI_H

int kiln_cli_render(int argc, char **argv);  /* tools/kiln/render.c */
int kiln_cli_devices(int argc, char **argv); /* tools/kiln/devices.c */
int kiln_cli_verify(int argc, char **argv);  /* tools/kiln/verify.c */
int kiln_cli_merge(int argc, char **argv);   /* tools/kiln/merge.c */

/* tools/kiln/shard.c */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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

#endif
