#!/usr/bin/env bash
# cluster.devices: on a machine whose only Vulkan device is a CPU driver (lavapipe), a scheduler
# that allocated a GPU (CUDA_VISIBLE_DEVICES=0) gets: `kiln render --device gpu` failing at once
# with exit 3 and nothing written, and `kiln render` (auto) rendering on the CPU device with a
# WARNING on stderr. Without CUDA_VISIBLE_DEVICES there is no warning.
# Usage: devices.sh KILN SOURCE_DIR WORK_DIR
set -euo pipefail
KT_NAME=cluster.devices
# shellcheck source=slurm.sh
source "${2:?usage: $KT_NAME KILN SOURCE_DIR WORK_DIR}/tests/cluster/slurm.sh"
test_setup "$@"
job=$src/examples/cluster/job.json
unset CUDA_VISIBLE_DEVICES NVIDIA_VISIBLE_DEVICES ROCR_VISIBLE_DEVICES HIP_VISIBLE_DEVICES KILN_VISIBLE_DEVICES

"$kiln" devices >devices.txt || fail "kiln devices failed"
if grep -E '^[0-9]+: ' devices.txt | grep -qv '(cpu)$'; then
  cat devices.txt
  echo "cluster.devices: this machine has a Vulkan device that is not a CPU driver; the test needs lavapipe alone"
  exit 77
fi

rc=0
CUDA_VISIBLE_DEVICES=0 "$kiln" render "$job" -o out-gpu --frames 0:1 --device gpu 2>gpu.err || rc=$?
[ "$rc" -eq 3 ] || { cat gpu.err >&2; fail "--device gpu with only lavapipe: exit $rc, not 3"; }
[ -s gpu.err ] || fail "--device gpu failed without a word on stderr"
[ -z "$(ls -A out-gpu 2>/dev/null)" ] || fail "--device gpu wrote files: $(ls -A out-gpu)"
say "--device gpu: exit 3: $(head -n 1 gpu.err)"

CUDA_VISIBLE_DEVICES=0 "$kiln" render "$job" -o out-auto --frames 0:1 2>auto.err ||
  { cat auto.err >&2; fail "kiln render (auto) with CUDA_VISIBLE_DEVICES=0: exit $?"; }
grep -q WARNING auto.err || { cat auto.err >&2; fail "no WARNING on stderr with CUDA_VISIBLE_DEVICES=0 and only lavapipe"; }
[ "$(count_frames out-auto)" -eq 2 ] || fail "kiln render (auto) did not write its 2 frames"
say "auto: rendered on lavapipe, warned: $(grep WARNING auto.err | head -n 1)"

"$kiln" render "$job" -o out-plain --frames 0:1 2>plain.err || { cat plain.err >&2; fail "kiln render without CUDA_VISIBLE_DEVICES failed"; }
! grep -q WARNING plain.err || { cat plain.err >&2; fail "a WARNING without any GPU allocated"; }
