#!/usr/bin/env bash
# tools/bench/rich/variants.sh: kiln's render time of each variant of the rich scene
# (variants.py: one feature taken out each), to see where the time goes.
#
# Usage: tools/bench/rich/variants.sh [KILN_BINARY]   (default build-bench/tools/kiln)
#   SIZE (128)  SPP (64)  ROUNDS (3)  NAMES (every variant)  OUT (a temporary folder)
#
# Each round renders every variant once, in order; the rounds rotate the order. The figure is
# `kiln render --json`'s render stage (the frame's dispatches, without loading, BVH and
# pipeline set-up), median and spread of ROUNDS, and the median against "full".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
kiln=$(realpath "${1:-$root/build-bench/tools/kiln}")
size=${SIZE:-128}
spp=${SPP:-64}
rounds=${ROUNDS:-3}
[ -x "$kiln" ] || { echo "variants.sh: no $kiln" >&2; exit 1; }
if [ -n "${OUT:-}" ]; then
  out=$(realpath -m "$OUT")
  mkdir -p "$out"
else
  out=$(mktemp -d "${TMPDIR:-/tmp}/kiln-rich-var.XXXXXX")
  trap 'rm -rf "$out"' EXIT
fi
names=${NAMES:-$(python3 "$here/variants.py" "$out/scenes" | tr '\n' ' ')}
[ -n "${NAMES:-}" ] && python3 "$here/variants.py" "$out/scenes" >/dev/null
read -r -a list <<<"$names"
echo "variants: ${size}x$size, $spp spp, $rounds rounds; load before: $(uptime)"
for r in $(seq 1 "$rounds"); do
  n=${#list[@]}
  for i in $(seq 0 $((n - 1))); do
    name=${list[$(((i + r - 1) % n))]}
    d=$out/run/$name
    rm -rf "$d"
    mkdir -p "$d"
    "$kiln" render "$here/job.json" --scene "$out/scenes/$name.json" -o "$d" --frames 1:1 \
      --size "${size}x$size" --spp "$spp" --json "$d/summary.json" --quiet
    grep -o '"render": [0-9.e+-]*' "$d/summary.json" | cut -d' ' -f2 >>"$out/$name.txt"
  done
done
full=$(sort -g "$out/full.txt" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
for name in "${list[@]}"; do
  sort -g "$out/$name.txt" | awk -v name="$name" -v full="$full" '{ v[NR] = $1 } END {
    m = v[int((NR + 1) / 2)]
    printf "%-12s %7.3f s  [%.3f, %.3f]  %5.2f of full\n", name, m, v[1], v[NR], m / full
  }'
done
echo "load after: $(uptime)"
