#!/usr/bin/env bash
# tools/bench/batch_vs_blender.sh: `kiln render` against Blender Cycles (CPU) on the same Cornell
# orbit (examples/cornell/orbit.json; tools/bench/blender/cornell_orbit.py renders the same cameras),
# same size, spp and bounces, colour only, in one run. Both are timed as whole processes, start-up
# included, and print images/s; the last column is kiln/Blender.
#
# Usage: tools/bench/batch_vs_blender.sh [KILN_BINARY]   (default build-bench/tools/kiln)
#   FRAMES  frames per size (default 50)    THREADS  Blender's render threads (default: nproc)
# Blender comes from Debian: tools/bench/blender/install-blender installs it (as root or via sudo).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
kiln=${1:-$root/build-bench/tools/kiln}
frames=${FRAMES:-50}
[ -x "$kiln" ] || { echo "batch_vs_blender.sh: no $kiln (make bench builds it)" >&2; exit 1; }
command -v blender >/dev/null || { echo "batch_vs_blender.sh: no blender; run $here/blender/install-blender" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-vs-blender.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
printf '%-14s %12s %12s %10s\n' "size, spp" "kiln img/s" "Blender img/s" "ratio"
for cfg in "256 16" "64 8" "512 4"; do
  read -r size spp <<<"$cfg"
  t0=$(date +%s.%N)
  "$kiln" render "$root/examples/cornell/orbit.json" -o "$tmp/kiln-$size" --frames "0:$((frames - 1))" \
    --size "${size}x${size}" --spp "$spp" --passes color --quiet
  t1=$(date +%s.%N)
  kiln_ips=$(echo "$frames / ($t1 - $t0)" | bc -l)
  out=$(JOB="$root/examples/cornell/orbit.json" "$here/blender/run.sh" "$frames" "$size" "$spp")
  line=${out%%$'\n'*}
  blender_ips=$(sed -n 's/.* = \([0-9.]*\) images\/s.*/\1/p' <<<"$line")
  printf '%-14s %12.2f %12.2f %9.2fx\n' "${size}x${size}, $spp" "$kiln_ips" "$blender_ips" \
    "$(echo "$kiln_ips / $blender_ips" | bc -l)"
done
