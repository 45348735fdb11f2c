#!/usr/bin/env bash
# examples/cluster/mpirun.sh: kiln on an Open MPI launcher (inside a Slurm or PBS allocation
# mpirun uses the allocation's hosts; outside one, -n processes on this machine or --hostfile).
# kiln links no MPI library: each process reads OMPI_COMM_WORLD_RANK and _SIZE (or PMI_RANK and
# PMI_SIZE under MPICH/Intel MPI's launchers) through --shard auto. The one line that matters:
#
#   mpirun -n 8 kiln render job.json -o out --shard auto --resume --manifest 'manifests/m_{shard}.jsonl'
#
# Environment: NP [4], KILN, JOB, OUT, KILN_ARGS as in render.sbatch; MPIRUN_ARGS: more mpirun
# options (e.g. "--hostfile hosts"; as root, Open MPI also wants "--allow-run-as-root").
set -euo pipefail
KILN=${KILN:-kiln}
JOB=${JOB:-job.json}
OUT=${OUT:-out}
mkdir -p "$OUT/manifests"
# shellcheck disable=SC2086 # lists of options
mpirun ${MPIRUN_ARGS:-} -n "${NP:-4}" "$KILN" render "$JOB" -o "$OUT" --shard auto --resume \
  --manifest 'manifests/m_{shard}.jsonl' ${KILN_ARGS:-}
"$KILN" verify "$JOB" -o "$OUT"
"$KILN" merge -o "$OUT/manifest.jsonl" "$OUT"/manifests/m_*.jsonl
