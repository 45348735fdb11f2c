#!/usr/bin/env bash
# tools/bench/blender/run.sh: the Blender side of the render benchmark. Renders N frames of the
# anchor's Cornell box orbit (cornell_orbit.py) with Blender's Cycles on the CPU and prints
#
#   blender: N frames WxH SPPspp in T s = X images/s (start-up S s)
#   blender: render only R s = Y images/s; per frame min/median/max A/B/C s; setup U s
#
# T is the wall time of the whole blender process (start-up, scene setup, every frame, exit);
# S is the part from the launch to the first line of the script (Blender's own start-up).
#
# The cameras are those of kiln's orbit job, examples/cornell/orbit.json: its first N frames
# (JOB=FILE for another job; JOB=none for the anchor's own 50-frame animation).
#
# Usage: run.sh N SIZE SPP [cornell_orbit.py options...]
#   BOUNCES  max bounces (default 4)     THREADS  render threads (default: nproc)
#   OUT      keep the frames and blender.log in this folder (default: a temporary folder, removed)
#   BLENDER  the blender binary (default: blender; tools/bench/blender/install-blender installs it)
set -euo pipefail

n=${1:?usage: run.sh N SIZE SPP [cornell_orbit.py options...]}
size=${2:?usage: run.sh N SIZE SPP [cornell_orbit.py options...]}
spp=${3:?usage: run.sh N SIZE SPP [cornell_orbit.py options...]}
shift 3
here=$(cd "$(dirname "$0")" && pwd)
blender=${BLENDER:-blender}
bounces=${BOUNCES:-4}
threads=${THREADS:-$(nproc)}
job=${JOB:-$here/../../../examples/cornell/orbit.json}
job_args=()
if [ "$job" != none ]; then
  [ -f "$job" ] || { echo "run.sh: no job file $job (JOB=none: the anchor's animation)" >&2; exit 1; }
  job_args=(--job "$job")
fi

command -v "$blender" >/dev/null 2>&1 || {
  echo "run.sh: no $blender; install it with $here/install-blender" >&2
  exit 1
}

if [ -n "${OUT:-}" ]; then
  out=$OUT
  mkdir -p "$out"
else
  out=$(mktemp -d "${TMPDIR:-/tmp}/kiln-blender.XXXXXX")
  trap 'rm -rf "$out"' EXIT
fi
log=$out/blender.log

t0=$(date +%s.%N)
KILN_BENCH_T0=$t0 "$blender" -b --factory-startup -t "$threads" -P "$here/cornell_orbit.py" -- \
  --frames "$n" --size "$size" --spp "$spp" --bounces "$bounces" --threads "$threads" \
  --out "$out" "${job_args[@]}" "$@" >"$log" 2>&1 || {
  tail -n 30 "$log" >&2
  echo "run.sh: blender failed (log above: $log)" >&2
  exit 1
}
t1=$(date +%s.%N)

grep -q '^@bench {"event": "done"' "$log" || { tail -n 30 "$log" >&2; echo "run.sh: no timing" >&2; exit 1; }
frames=$(find "$out" -name 'frame_*.png' | wc -l)
[ "$frames" -eq "$n" ] || { echo "run.sh: $frames PNGs in $out, expected $n" >&2; exit 1; }

field() {  # field EVENT KEY: the number KEY of the @bench line of EVENT
  grep "^@bench {\"event\": \"$1\"" "$log" | head -n1 | grep -o "\"$2\": [0-9.e+-]*" | cut -d' ' -f2
}
startup=$(field start startup_s)
setup=$(field setup setup_s)
render=$(field done render_s)
stats=$(grep '^@bench {"event": "frame"' "$log" | grep -o '"time_s": [0-9.e+-]*' | cut -d' ' -f2 |
        sort -g | awk '{ t[NR] = $1 } END { printf "%.3f/%.3f/%.3f", t[1], t[int((NR + 1) / 2)], t[NR] }')

awk -v n="$n" -v s="$size" -v spp="$spp" -v t0="$t0" -v t1="$t1" -v up="$startup" 'BEGIN {
  t = t1 - t0
  printf "blender: %d frames %dx%d %dspp in %.2f s = %.2f images/s (start-up %.2f s)\n", n, s, s, spp, t, n / t, up
}'
awk -v n="$n" -v r="$render" -v st="$stats" -v su="$setup" -v job="$([ "$job" = none ] && echo "the anchor's animation" || echo "${JOB:-examples/cornell/orbit.json}")" 'BEGIN {
  printf "blender: render only %.2f s = %.2f images/s; per frame min/median/max %s s; setup %.2f s; orbit: %s\n", r, n / r, st, su, job
}'
