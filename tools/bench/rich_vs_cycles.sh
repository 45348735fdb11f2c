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
#   BEFORE    a second kiln binary (an older build) timed in the same rounds, its noise
#             against the same kiln reference
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
# RMSE; over the rounds, the root of the mean squared error), so that a difference between the two renderers' models does not count as noise; the
# references' means are printed too (they should agree within about 1%). "Equal noise" is what
# the last figure says: render time x RMSE^2 is proportional to the time each needs for a given
# RMSE (RMSE goes as 1/sqrt(spp)), so kiln/Cycles of it is the time ratio at equal noise.
# Medians of ROUNDS; `uptime` before and after (the machine is shared).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
kiln=$(realpath "${1:-$root/build-bench/tools/kiln}")
kiln_after=$kiln
before=${BEFORE:+$(realpath "$BEFORE")}
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
  echo "${means//@compare /  }"
  names=(kiln cycles)
  [ -n "$before" ] && names=(kiln before cycles)
  for n in "${names[@]}"; do : >"$out/${n}_$size.txt"; done
  for r in $(seq 1 "$rounds"); do
    line="  round $r:"
    for i in $(seq 0 $((${#names[@]} - 1))); do  # the order rotates from round to round
      n=${names[$(((i + r) % ${#names[@]}))]}
      d=$out/run/${n}_${size}_$r
      case $n in
        kiln) t=$(kiln=$kiln_after run_kiln "$size" "$spp" "$r" "$d"); img=$d/$(printf '%05d' "$r")_color.npy; ref=$kref ;;
        before) t=$(kiln=$before run_kiln "$size" "$spp" "$r" "$d"); img=$d/$(printf '%05d' "$r")_color.npy; ref=$kref ;;
        cycles) t=$(run_cycles "$size" "$spp" "$r" "$d"); img=$d/cycles_${size}_${spp}spp_s$r.npy; ref=$cref ;;
      esac
      e=$(blender_py "$here/rich/compare.py" -- --ref "$ref" "$img" | field rmse)
      echo "$t $e" >>"$out/${n}_$size.txt"
      read -r a b x <<<"$t"
      line="$line $n render $a s, process $b s ($x CPU-s), RMSE $e;"
    done
    echo "$line"
  done
  col() { cut -d' ' -f"$1" "$2" | median; }
  rms() { awk '{ s += $4 * $4 } END { print sqrt(s / NR) }' "$1"; }  # sqrt of the mean MSE
  echo "${size}x$size, $spp spp, medians of $rounds rounds (RMSE: root of the mean squared error over the rounds' images):"
  printf '  %-8s %10s %10s %10s %9s %14s\n' "" "render s" "process s" "CPU s" RMSE "render x MSE"
  for n in "${names[@]}"; do
    f=$out/${n}_$size.txt
    printf '  %-8s %10.3f %10.3f %10.3f %9.5f %14.3e\n' "$n" "$(col 1 "$f")" "$(col 2 "$f")" \
      "$(col 3 "$f")" "$(rms "$f")" "$(echo "$(col 1 "$f") * $(rms "$f")^2" | bc -l)"
  done
  k=$out/kiln_$size.txt
  c=$out/cycles_$size.txt
  awk -v kr="$(col 1 "$k")" -v cr="$(col 1 "$c")" -v kp="$(col 2 "$k")" -v cp="$(col 2 "$c")" \
      -v kc="$(col 3 "$k")" -v cc="$(col 3 "$c")" -v ke="$(rms "$k")" -v ce="$(rms "$c")" 'BEGIN {
    printf "  kiln / Cycles: render %.2fx, process %.2fx, CPU %.2fx, RMSE %.2fx, time at equal noise (render x MSE) %.2fx\n",
      kr / cr, kp / cp, kc / cc, ke / ce, (kr * ke * ke) / (cr * ce * ce)
  }'
done
echo "load after: $(uptime)"
echo "(ratios are kiln / Cycles: below 1 kiln is faster or less noisy)"
