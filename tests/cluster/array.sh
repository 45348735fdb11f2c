#!/usr/bin/env bash
# cluster.array: a 4-task Slurm array (examples/cluster/render.sbatch, as shipped) renders the
# 200 frames of examples/cluster/job.json with `kiln render --shard auto`; then every frame exists
# exactly once: 200 files, `kiln verify` passes, the shards' manifests together hold each index
# 0..199 exactly once (no frame written by two shards), and `kiln merge` of them has 200 lines.
# Prints the time from sbatch to the first image.
# Usage: array.sh KILN SOURCE_DIR WORK_DIR
set -euo pipefail
KT_NAME=cluster.array
# shellcheck source=slurm.sh
source "${2:?usage: $KT_NAME KILN SOURCE_DIR WORK_DIR}/tests/cluster/slurm.sh"
test_setup "$@"
slurm_start "$work/slurm"

out=$work/out
export KILN=$kiln JOB=$src/examples/cluster/job.json OUT=$out
t0=$(now)
jid=$(sbatch --parsable --array=0-3 "$src/examples/cluster/render.sbatch")
first_image() { [ -n "$(find "$out" -maxdepth 1 -name '*_color.png' -print -quit 2>/dev/null)" ]; }
first_or_over() { first_image || jobs_done "$jid"; }
wait_for 60 "the first image" first_or_over
first=$(elapsed_since "$t0")
first_image || { cat kiln-render-*.out >&2; fail "the array ended without writing an image"; }
wait_jobs 60 "$jid"
total=$(elapsed_since "$t0")
say "sbatch to the first image: $first s; to the whole 4-task array done: $total s (200 frames, 32x32, 1 spp)"
echo "sbatch_to_first_image_s=$first array_done_s=$total" >"$work/timing.txt"

for k in 0 1 2 3; do
  grep -q "shard $k/4 (from " kiln-render-"${jid}_$k".out ||
    fail "array task $k did not say it renders shard $k/4: $(cat kiln-render-"${jid}_$k".out)"
done
check_output "$out" 200
"$kiln" verify "$JOB" -o "$out" || fail "kiln verify failed (exit $?)"
check_manifests 200 "$out"/manifests/m_*.jsonl
[ "$(ls "$out"/manifests/m_*.jsonl | wc -l)" -eq 4 ] || fail "not 4 manifests: $(ls "$out/manifests")"
"$kiln" merge -o "$work/merged.jsonl" "$out"/manifests/m_*.jsonl || fail "kiln merge failed"
check_merged "$work/merged.jsonl" 200
say "4 shards, 200 frames, each exactly once; verify and merge agree"
