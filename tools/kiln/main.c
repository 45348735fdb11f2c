/* kiln: the command-line tool.
 *
 *   kiln render JOB [options]           render a job (tools/kiln/render.c; docs/JOBS.md)
 *   kiln devices [--json] [--verbose]   list the Vulkan devices kiln can see (tools/kiln/devices.c)
 *   kiln verify JOB -o DIR [options]    check a run's files (tools/kiln/verify.c; docs/CLUSTER.md)
 *   kiln merge -o OUT IN...             merge per-shard manifests (tools/kiln/merge.c)
 *   kiln --version, kiln help           the version, this text
 *
 * Exit status: 0 on success, 1 when the command failed (the reason is on stderr), 2 on a usage
 * error; `kiln render`, `kiln verify` and `kiln merge` say what theirs mean (their --help). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/version.h"
#include "cli.h"

static void usage(FILE *to) {
  fprintf(to,
          "usage: kiln <command> [options]\n"
          "\n"
          "commands:\n"
          "  render JOB [options]          render the frames of a job (kiln render --help)\n"
          "  devices [--json] [--verbose]  list the Vulkan devices (physical devices) kiln sees\n"
          "  verify JOB -o DIR [options]   check that a run's files are all there and decode\n"
          "  merge -o OUT IN...            merge per-shard manifests into one, sorted by index\n"
          "  help, --help                  show this text\n"
          "  --version                     print kiln's version\n");
}

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
      strcmp(argv[1], "-h") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
    const char *v;
    kiln_version(&v);
    printf("kiln %s\n", v);
    return 0;
  }
  if (strcmp(argv[1], "render") == 0) return kiln_cli_render(argc - 2, argv + 2);
  if (strcmp(argv[1], "devices") == 0) return kiln_cli_devices(argc - 2, argv + 2);
  if (strcmp(argv[1], "verify") == 0) return kiln_cli_verify(argc - 2, argv + 2);
  if (strcmp(argv[1], "merge") == 0) return kiln_cli_merge(argc - 2, argv + 2);
  fprintf(stderr, "kiln: unknown command %s\n", argv[1]);
  usage(stderr);
  return 2;
}
