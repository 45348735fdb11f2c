#!/usr/bin/env bash
# cluster.array_kill: the 4-task array of cluster.array (examples/cluster/render.sbatch) with
# bigger frames, and two tasks stopped while they render:
#   task 1: its kiln is SIGKILLed (a node dying): the task fails; `scontrol requeue` runs it again
#           and --resume renders what is missing;
#   task 2: its batch shell gets SIGTERM (what --signal=B:TERM@120 sends before the time limit):
#           the template passes it to kiln, which finishes the frames in flight and exits 143, and
#           the template requeues the task itself.
# Then every task COMPLETED after a restart, `kiln verify` decodes all 200 frames, every frame is
# in exactly one shard's manifest, and the folder holds nothing but the frames (and hidden
# temporaries of the killed writes).
# Usage: array_kill.sh KILN SOURCE_DIR WORK_DIR
set -euo pipefail
KT_NAME=cluster.array_kill
# shellcheck source=slurm.sh
source "${2:?usage: $KT_NAME KILN SOURCE_DIR WORK_DIR}/tests/cluster/slurm.sh"
test_setup "$@"
slurm_start "$work/slurm"

out=$work/out
# 64x64 at 32 spp: a shard's 50 frames take several seconds even on a quiet machine (at 8 spp
# a quiet machine wrote a whole shard before the test could find its kiln), so a stop lands
# mid-shard.
export KILN=$kiln JOB=$src/examples/cluster/job.json OUT=$out KILN_ARGS="--size 64x64 --spp 32"
jid=$(sbatch --parsable --array=0-3 "$src/examples/cluster/render.sbatch")

# shard_files K: frames of shard K (round-robin over 4: frame % 4 == K) on disk.
shard_files() {
  find "$out" -maxdepth 1 -name '[0-9][0-9][0-9][0-9][0-9]_color.png' -printf '%f\n' 2>/dev/null |
    awk -v k="$1" '{ if ((substr($0, 1, 5) + 0) % 4 == k) n++ } END { print n + 0 }'
}
# (or the array is over: then the checks below say what went wrong)
shard_started() { [ "$(shard_files "$1")" -ge 1 ] || jobs_done "$jid"; }

# Task 1: SIGKILL its kiln once it has written a frame.
wait_for 60 "array task 1 to write a frame" shard_started 1
[ "$(shard_files 1)" -ge 1 ] || fail "task 1 wrote no frame: $(cat "kiln-render-${jid}_1.out")"
victim=$(kiln_pid_of "SLURM_ARRAY_JOB_ID=$jid" "SLURM_ARRAY_TASK_ID=1") ||
  fail "no kiln process of array task 1 (it finished before it could be killed?)"
kill -KILL "$victim"
n1=$(shard_files 1)
say "SIGKILLed kiln (pid $victim) of task 1 with $n1 of its 50 frames written"
[ "$n1" -lt 50 ] || fail "task 1 had finished its shard when it was killed: nothing to resume"

# Task 2: SIGTERM to its batch shell once it has written a frame.
wait_for 60 "array task 2 to write a frame" shard_started 2
[ "$(shard_files 2)" -ge 1 ] || fail "task 2 wrote no frame: $(cat "kiln-render-${jid}_2.out")"
scancel --batch --signal=TERM "${jid}_2"
n2=$(shard_files 2)
say "SIGTERM to the batch shell of task 2 with $n2 of its 50 frames written"
[ "$n2" -lt 50 ] || fail "task 2 had finished its shard when it was stopped: nothing to resume"

task1_failed() { [ "$(job_field "${jid}_1" JobState)" = FAILED ]; }
wait_for 60 "task 1 to end FAILED after the SIGKILL (state: $(job_field "${jid}_1" JobState))" task1_failed
scontrol requeue "${jid}_1"
say "requeued task 1"

wait_jobs 90 "$jid"
for k in 1 2; do
  restarts=$(job_field "${jid}_$k" Restarts)
  [ "${restarts:-0}" -ge 1 ] || fail "task $k was not run again (Restarts=${restarts:-?})"
done
grep -q 'requeueing' "kiln-render-${jid}_2.out" ||
  fail "task 2's template did not requeue itself after SIGTERM: $(cat "kiln-render-${jid}_2.out")"

check_output "$out" 200
"$kiln" verify "$JOB" -o "$out" --size 64x64 || fail "kiln verify failed (exit $?)"
check_manifests 200 "$out"/manifests/m_*.jsonl
say "both stopped tasks ran again with --resume; 200 frames, each decodable and in one manifest"
