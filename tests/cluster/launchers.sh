#!/usr/bin/env bash
# cluster.launchers: `kiln render --shard auto` under the two other launchers it reads: `srun -n 2`
# (SLURM_PROCID/SLURM_NTASKS) and, outside Slurm, Open MPI's `mpirun -n 3`
# (OMPI_COMM_WORLD_RANK/_SIZE). Each time: kiln verify passes, the 200 frames are there, and the
# ranks' manifests hold every frame exactly once.
# Usage: launchers.sh KILN SOURCE_DIR WORK_DIR
set -euo pipefail
KT_NAME=cluster.launchers
# shellcheck source=slurm.sh
source "${2:?usage: $KT_NAME KILN SOURCE_DIR WORK_DIR}/tests/cluster/slurm.sh"
test_setup "$@"
slurm_start "$work/slurm"
job=$src/examples/cluster/job.json

# launched NAME SHARDS CMD...: CMD renders the job into out-NAME; then the checks.
launched() {
  local name=$1 n=$2 out=$work/out-$1 rc=0
  shift 2
  mkdir -p "$out/manifests"
  timeout 60 "$@" "$kiln" render "$job" -o "$out" --shard auto \
    --manifest 'manifests/m_{shard}.jsonl' >"$work/$name.log" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || { cat "$work/$name.log" >&2; fail "$name: exit $rc"; }
  local k
  for ((k = 0; k < n; k++)); do
    grep -q "shard $k/$n (from " "$work/$name.log" ||
      { cat "$work/$name.log" >&2; fail "$name: no process said it renders shard $k/$n"; }
  done
  check_output "$out" 200
  "$kiln" verify "$job" -o "$out" || fail "$name: kiln verify failed"
  [ "$(ls "$out/manifests" | wc -l)" -eq "$n" ] || fail "$name: not $n manifests: $(ls "$out/manifests")"
  check_manifests 200 "$out/manifests"/m_*.jsonl
  say "$name: $n shards, 200 frames, each exactly once"
}

launched srun 2 srun -n 2
command -v mpirun >/dev/null || fail "mpirun not found: install openmpi-bin (tools/install-deps does)"
# Outside Slurm: slurm_start removed every SLURM_* variable but SLURM_CONF, which Open MPI ignores.
launched mpirun 3 mpirun --allow-run-as-root --oversubscribe -n 3
