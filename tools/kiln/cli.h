/* cli.h: the commands of the kiln tool (tools/kiln/main.c dispatches to them). Each takes the
 * arguments after its name and returns the process's exit status. */
#ifndef KILN_TOOLS_CLI_H
#define KILN_TOOLS_CLI_H

int kiln_cli_render(int argc, char **argv);  /* tools/kiln/render.c */
int kiln_cli_devices(int argc, char **argv); /* tools/kiln/devices.c */

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

#endif
