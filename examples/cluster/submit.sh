#!/usr/bin/env bash
# examples/cluster/submit.sh: the whole pipeline on Slurm, as three jobs:
#
#   render.sbatch as an array of SHARDS tasks  (kiln render --shard auto --resume)
#     -> kiln verify JOB -o OUT                (--dependency=afterok: every task succeeded)
#     -> kiln merge of the shards' manifests   (--dependency=afterok: verify passed)
#
# Run it from the folder that holds the job (or set JOB and OUT):
#
#   SHARDS=64 KILN=/opt/kiln/bin/kiln JOB=job.json OUT=/scratch/$USER/run1 ./submit.sh
#
# Environment: SHARDS [4]; KILN, JOB, OUT, KILN_ARGS as render.sbatch reads them;
# SBATCH_ARGS: options for all three sbatch calls (e.g. "--partition=gpu --account=lab").
# Prints the three job ids ("array=ID verify=ID merge=ID"); the merged manifest is
# OUT/manifest.jsonl, the logs kiln-*.out in the folder this ran from.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SHARDS=${SHARDS:-4}
KILN=${KILN:-kiln}
JOB=$(realpath -m "${JOB:-job.json}")
OUT=$(realpath -m "${OUT:-out}")
export KILN JOB OUT KILN_ARGS=${KILN_ARGS:-}
# shellcheck disable=SC2206 # a list of options
extra=(${SBATCH_ARGS:-})

array=$(sbatch --parsable "${extra[@]}" --array="0-$((SHARDS - 1))" "$here/render.sbatch")
array=${array%%;*}
verify=$(sbatch --parsable "${extra[@]}" --job-name=kiln-verify --output=kiln-verify-%j.out \
  --dependency="afterok:$array" --kill-on-invalid-dep=yes \
  --wrap='"$KILN" verify "$JOB" -o "$OUT" ${KILN_ARGS:-}')
verify=${verify%%;*}
merge=$(sbatch --parsable "${extra[@]}" --job-name=kiln-merge --output=kiln-merge-%j.out \
  --dependency="afterok:$verify" --kill-on-invalid-dep=yes \
  --wrap='"$KILN" merge -o "$OUT/manifest.jsonl" "$OUT"/manifests/m_*.jsonl')
merge=${merge%%;*}
echo "array=$array verify=$verify merge=$merge"
