/* fuzz_job.c: job files (.json, docs/JOBS.md) through kiln_job_load and kiln_job_next, with their
 * output templates and per-frame scenes. The job's folder holds a fixed scene.json (objects ball,
 * crate; materials red, metal, white, green; lights key, light) and the lists list.jsonl and
 * dataset.jsonl, which a job may name. */
#include "job_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_asset("scene.json");
  fz_asset("list.jsonl");
  fz_asset("dataset.jsonl");
  fz_run_job(fz_write("job.json", data, size), NULL);
  return 0;
}
