#!/usr/bin/env bash
# tools/bench/rich_vs_cycles.sh: kiln against Blender Cycles (CPU) on the rich scene
# (tools/bench/rich/scene.json: a textured floor, a rough metal and a smooth glass sphere, four
# instances of a 3072-triangle PLY knot, an emissive sphere and a quad light, 8 bounces), at
# equal size, spp, bounces and threads, and the noise of each at that spp.
#
# Usage: tools/bench/rich_vs_cycles.sh [KILN_BINARY]   (default build-bench/tools/kiln)
#   SIZES     image sizes, square (default "128")        SPP      samples per pixel (default 128)
#   ROUNDS    runs of each, interleaved (default 3)      THREADS  threads of each (default 2)
#   REF_SPP   spp of the references (default 4096)       OUT      keep everything here (default:
#             a temporary folder; the references are made once per OUT and reused)
#   SCENE     another kiln scene of the same kind (default tools/bench/rich/scene.json)
#
# Each round runs kiln and then Cycles (every other round the other way round), each a whole
# process rendering one frame:
#   kiln    `kiln render tools/bench/rich/job.json --scene SCENE --frames R:R`, npy output;
#           render: its summary's render stage (--json stages_s.render: the frame's dispatches,
#           without loading, BVH, device and pipeline set-up); process: the wall time around it.
#           Round R renders frame R (the frame number seeds kiln's sampler).
#   Cycles  blender/rich_scene.py --seed R: render: Cycles' render call for the frame (after
#           Blender's start-up and the scene's set-up); process: the wall time around blender.
# Noise: each round's image against the same renderer's REF_SPP reference (linear per-pixel
# RMSE), so that a difference between the two renderers' models does not count as noise; the
# references' means are printed too (they should agree within about 1%). "Equal noise" is what
# the last columns say: time x RMSE^2 is the time each would need for a given RMSE (RMSE goes as
# 1/sqrt(spp)), so kiln/Cycles of it is the ratio at equal noise.
# Medians of ROUNDS; `uptime` before and after (the machine is shared).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
kiln=$(realpath "${1:-$root/build-bench/tools/kiln}")
sizes=${SIZES:-128}
spp=${SPP:-128}
rounds=${ROUNDS:-3}
threads=${THREADS:-2}
ref_spp=${REF_SPP:-4096}
scene=$(realpath "${SCENE:-$here/rich/scene.json}")
job=$here/rich/job.json
[ -x "$kiln" ] || { echo "rich_vs_cycles.sh: no $kiln (make bench builds it)" >&2; exit 1; }
command -v blender >/dev/null || { echo "rich_vs_cycles.sh: no blender; run $here/blender/install-blender" >&2; exit 1; }
if [ -n "${OUT:-}" ]; then
  out=$(realpath -m "$OUT")
  mkdir -p "$out"
else
  out=$(mktemp -d "${TMPDIR:-/tmp}/kiln-rich.XXXXXX")
  trap 'rm -rf "$out"' EXIT
fi

now() { date +%s.%N; }
blender_py() { blender -b --factory-startup -P "$@" 2>&1; }

# kiln SIZE SPP FRAME DIR: renders; prints "render_s process_s process_cpu_s"
run_kiln() {
  local t
  rm -rf "$4"
  mkdir -p "$4"
  t=$( { TIMEFORMAT='%R %U %S'; time "$kiln" render "$job" --scene "$scene" -o "$4" \
         --frames "$3:$3" --size "$1x$1" --spp "$2" --threads "$threads" \
         --json "$4/summary.json" --quiet; } 2>&1 ) || { echo "$t" >&2; exit 1; }
  local r
  r=$(grep -o '"render": [0-9.e+-]*' "$4/summary.json" | cut -d' ' -f2)
  awk -v r="$r" -v t="$t" 'BEGIN { split(t, a, " "); print r, a[1], a[2] + a[3] }'
}

# cycles SIZE SPP SEED DIR: renders; prints "render_s process_s process_cpu_s"
run_cycles() {
  local t log
  mkdir -p "$4"
  log=$4/blender.log
  t=$( { TIMEFORMAT='%R %U %S'; time blender -b --factory-startup -t "$threads" \
         -P "$here/blender/rich_scene.py" -- --scene "$scene" --size "$1" --spp "$2" \
         --threads "$threads" --seed "$3" --out "$4" >"$log" 2>&1; } 2>&1 ) ||
    { tail -n 20 "$log" >&2; echo "rich_vs_cycles.sh: blender failed" >&2; exit 1; }
  local r
  r=$(grep '^@bench {"event": "done"' "$log" | grep -o '"render_s": [0-9.e+-]*' | cut -d' ' -f2)
  awk -v r="$r" -v t="$t" 'BEGIN { split(t, a, " "); print r, a[1], a[2] + a[3] }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { grep '^@compare' | sed -n "s/.*\"$1\": \([0-9.e+-]*\).*/\1/p"; }

echo "rich_vs_cycles: $(basename "$scene"), spp $spp, $threads threads, $rounds rounds, references $ref_spp spp; $out"
echo "load before: $(uptime)"
for size in $sizes; do
  kref=$out/ref/kiln_$size/00000_color.npy   # frame 0 is never a timed round's (those are 1..)
  cref=$out/ref/cycles_$size/cycles_${size}_${ref_spp}spp_s0.npy
  if [ ! -f "$kref" ]; then
    echo "reference: kiln ${size}x$size $ref_spp spp ..."
    run_kiln "$size" "$ref_spp" 0 "$out/ref/kiln_$size" >/dev/null
  fi
  if [ ! -f "$cref" ]; then
    echo "reference: Cycles ${size}x$size $ref_spp spp ..."
    run_cycles "$size" "$ref_spp" 0 "$out/ref/cycles_$size" >/dev/null
  fi
  means=$(blender_py "$here/rich/compare.py" -- "$kref" "$cref" | grep '^@compare')
  echo "reference means (linear RGB), kiln then Cycles:"
  sed 's/^@compare /  /' <<<"$means"
  : >"$out/k_$size.txt"
  : >"$out/c_$size.txt"
  for r in $(seq 1 "$rounds"); do
    kd=$out/run/kiln_${size}_$r
    cd_=$out/run/cycles_${size}_$r
    if [ $((r % 2)) -eq 1 ]; then
      k=$(run_kiln "$size" "$spp" "$r" "$kd"); c=$(run_cycles "$size" "$spp" "$r" "$cd_")
    else
      c=$(run_cycles "$size" "$spp" "$r" "$cd_"); k=$(run_kiln "$size" "$spp" "$r" "$kd")
    fi
    ke=$(blender_py "$here/rich/compare.py" -- --ref "$kref" "$kd/$(printf '%05d' "$r")_color.npy" | field rmse)
    ce=$(blender_py "$here/rich/compare.py" -- --ref "$cref" "$cd_/cycles_${size}_${spp}spp_s$r.npy" | field rmse)
    echo "$k $ke" >>"$out/k_$size.txt"
    echo "$c $ce" >>"$out/c_$size.txt"
    read -r a b x <<<"$k"
    read -r p q y <<<"$c"
    echo "  round $r: kiln render $a s, process $b s ($x CPU-s), RMSE $ke;" \
         "Cycles render $p s, process $q s ($y CPU-s), RMSE $ce"
  done
  col() { cut -d' ' -f"$1" "$2" | median; }
  kr=$(col 1 "$out/k_$size.txt"); kp=$(col 2 "$out/k_$size.txt"); kc=$(col 3 "$out/k_$size.txt")
  ke=$(col 4 "$out/k_$size.txt")
  cr=$(col 1 "$out/c_$size.txt"); cp=$(col 2 "$out/c_$size.txt"); cc=$(col 3 "$out/c_$size.txt")
  ce=$(col 4 "$out/c_$size.txt")
  echo "medians of $rounds (kiln | Cycles | kiln/Cycles), ${size}x$size, $spp spp:"
  awk -v kr="$kr" -v cr="$cr" -v kp="$kp" -v cp="$cp" -v kc="$kc" -v cc="$cc" -v ke="$ke" -v ce="$ce" 'BEGIN {
    printf "  render only      %8.3f s | %8.3f s | %5.2fx\n", kr, cr, kr / cr
    printf "  whole process    %8.3f s | %8.3f s | %5.2fx\n", kp, cp, kp / cp
    printf "  process CPU      %8.3f s | %8.3f s | %5.2fx\n", kc, cc, kc / cc
    printf "  RMSE (own ref)   %8.5f   | %8.5f   | %5.2fx\n", ke, ce, ke / ce
    printf "  render x RMSE^2 (time at equal noise)       | %5.2fx\n", (kr * ke * ke) / (cr * ce * ce)
  }'
done
echo "load after: $(uptime)"
echo "(ratios are kiln / Cycles: below 1 kiln is faster or less noisy)"
