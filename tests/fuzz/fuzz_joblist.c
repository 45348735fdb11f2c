/* fuzz_joblist.c: image lists (.jsonl, docs/JOBS.md), one JSON object a line, through
 * kiln_job_load with the fixed scene of tests/fuzz/assets/scene.json, and kiln_job_next, which
 * reads the list again line by line; with their output names and per-frame scenes. */
#include <stdio.h>

#include "job_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_asset("scene.json");
  char scene[512];
  snprintf(scene, sizeof scene, "%s/scene.json", fz_tmpdir());
  kiln_job_options opt = {scene, NULL};
  fz_run_job(fz_write("list.jsonl", data, size), &opt);
  return 0;
}
