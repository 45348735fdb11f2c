#!/usr/bin/env bash
# cluster.pipeline: examples/cluster/submit.sh as shipped (parametrised only by its environment):
# render array -> kiln verify (afterok) -> kiln merge (afterok). All three jobs complete and the
# merged manifest holds the 200 frames in order. Then the same pipeline on a job that does not exist:
# the array fails (exit 2), so verify and merge never run.
# Usage: pipeline.sh KILN SOURCE_DIR WORK_DIR
set -euo pipefail
KT_NAME=cluster.pipeline
# shellcheck source=slurm.sh
source "${2:?usage: $KT_NAME KILN SOURCE_DIR WORK_DIR}/tests/cluster/slurm.sh"
test_setup "$@"
slurm_start "$work/slurm"

# ids OUTPUT: array, verify and merge job ids from submit.sh's "array=ID verify=ID merge=ID".
ids() {
  [[ $1 =~ ^array=([0-9]+)\ verify=([0-9]+)\ merge=([0-9]+)$ ]] ||
    fail "submit.sh printed '$1', not 'array=ID verify=ID merge=ID'"
  array=${BASH_REMATCH[1]} verify=${BASH_REMATCH[2]} merge=${BASH_REMATCH[3]}
}

ids "$(SHARDS=4 KILN=$kiln JOB=$src/examples/cluster/job.json OUT=$work/out \
  "$src/examples/cluster/submit.sh")"
wait_jobs 90 "$array" "$verify" "$merge"
check_output "$work/out" 200
check_merged "$work/out/manifest.jsonl" 200
say "array $array -> verify $verify -> merge $merge: 200 frames, merged manifest in order"

ids "$(SHARDS=2 KILN=$kiln JOB=$work/no-such-job.json OUT=$work/out-bad \
  "$src/examples/cluster/submit.sh")"
chain_over() { jobs_done "$array" && jobs_done "$verify" && jobs_done "$merge"; }
wait_for 60 "the failed pipeline to end" chain_over
[ "$(job_field "$array" ExitCode | sort -u)" = "2:0" ] ||
  fail "array on a missing job: exit codes $(job_field "$array" ExitCode | tr '\n' ' '), not 2:0"
for id in "$verify" "$merge"; do
  state=$(job_field "$id" JobState)
  [ "$state" = CANCELLED ] || fail "job $id ran after a failed array (state $state)"
done
say "a failed array stops the chain: verify and merge cancelled"
