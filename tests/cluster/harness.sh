#!/usr/bin/env bash
# cluster.harness: the cluster under the other tests works. Starts two single-node Slurms at once
# (as two runs on one machine would: their ports must not collide), then on one of them: an sbatch
# array whose tasks see SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT, `srun -n 2` whose tasks
# see SLURM_PROCID and SLURM_NTASKS; and, outside Slurm, `mpirun -n 3` whose processes see
# OMPI_COMM_WORLD_RANK and _SIZE: the variables `kiln render --shard auto` reads.
# Usage: harness.sh KILN SOURCE_DIR WORK_DIR
set -euo pipefail
KT_NAME=cluster.harness
# shellcheck source=slurm.sh
source "${2:?usage: $KT_NAME KILN SOURCE_DIR WORK_DIR}/tests/cluster/slurm.sh"
test_setup "$@"

# The other cluster: a child that starts one, says so, and keeps it up until told to stop (its own
# EXIT trap tears it down).
other_pid=
stop_other() {
  touch "$work/other.stop"
  [ -n "$other_pid" ] && wait "$other_pid" 2>/dev/null || true
}
KT_CLEANUP=stop_other
(
  KT_NAME=cluster.harness/other
  slurm_start "$work/other"
  touch "$work/other.ready"
  wait_for 120 "the test to finish" test -e "$work/other.stop"
) &
other_pid=$!
wait_for 30 "the other cluster to start" test -e "$work/other.ready"

t0=$(now)
slurm_start "$work/slurm"
say "started in $(elapsed_since "$t0") s while another cluster runs"
other_conf=$work/other/slurm.conf
SLURM_CONF=$other_conf scontrol ping | grep -q 'is UP' || fail "the other cluster is down"
[ "$(grep SlurmctldPort= "$SLURM_CONF")" != "$(grep SlurmctldPort= "$other_conf")" ] ||
  fail "both clusters chose one slurmctld port"

# sbatch --array: every task runs and sees its index and the array's size.
jid=$(sbatch --parsable --array=0-3 --output='env-%a.out' --wrap env)
wait_jobs 30 "$jid"
for k in 0 1 2 3; do
  grep -qx "SLURM_ARRAY_TASK_ID=$k" "env-$k.out" || fail "array task $k: no SLURM_ARRAY_TASK_ID=$k"
  grep -qx "SLURM_ARRAY_TASK_COUNT=4" "env-$k.out" || fail "array task $k: no SLURM_ARRAY_TASK_COUNT=4"
done
say "sbatch --array=0-3: each task sees its SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT=4"

# srun -n 2: two tasks, ranks 0 and 1 of 2.
got=$(timeout 30 srun -n 2 bash -c 'echo "$SLURM_PROCID/$SLURM_NTASKS"' | sort | tr '\n' ' ')
[ "$got" = "0/2 1/2 " ] || fail "srun -n 2: tasks printed '$got', not '0/2 1/2 '"
say "srun -n 2: SLURM_PROCID/SLURM_NTASKS = $got"

# mpirun -n 3 outside Slurm: ranks 0, 1, 2 of 3.
command -v mpirun >/dev/null || fail "mpirun not found: install openmpi-bin (tools/install-deps does)"
got=$(timeout 30 mpirun --allow-run-as-root --oversubscribe -n 3 \
  bash -c 'echo "$OMPI_COMM_WORLD_RANK/$OMPI_COMM_WORLD_SIZE"' | sort | tr '\n' ' ')
[ "$got" = "0/3 1/3 2/3 " ] || fail "mpirun -n 3: processes printed '$got', not '0/3 1/3 2/3 '"
say "mpirun -n 3: OMPI_COMM_WORLD_RANK/SIZE = $got"
