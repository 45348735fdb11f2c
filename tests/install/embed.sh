#!/usr/bin/env bash
# install.embed: installs a kiln build into a temporary prefix, then builds examples/embed/embed.c
# against it four ways -- pkg-config shared and static, find_package(kiln) shared (kiln::engine)
# and static (kiln::engine_static) -- runs each on the Vulkan device "auto" picks (lavapipe on a
# machine without a GPU) to render 2 frames of examples/cornell at 32x32, 2 spp, and checks every
# PNG with png_check (signature, IHDR bytes: 32x32 8-bit RGB; decodes; not black).
# Usage: embed.sh <kiln build dir> <kiln source dir> <png_check binary> [C compiler]
set -euo pipefail

build=${1:?usage: embed.sh BUILD_DIR SOURCE_DIR PNG_CHECK [CC]}
root=${2:?usage: embed.sh BUILD_DIR SOURCE_DIR PNG_CHECK [CC]}
png_check=${3:?usage: embed.sh BUILD_DIR SOURCE_DIR PNG_CHECK [CC]}
cc=${4:-cc}
src=$root/examples/embed
scene=$root/examples/cornell/scene.json
size=32

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-embed.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
# The pipeline cache of the four runs: the first compiles the path tracer, the others reuse it.
export XDG_CACHE_HOME=$tmp/cache

echo "== cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; exit 1; }
pc=$(find "$prefix" -name kiln.pc -path '*/pkgconfig/*' | head -n1)
[ -n "$pc" ] || { echo "FAIL: no kiln.pc installed under $prefix" >&2; exit 1; }
libdir=$(dirname "$(dirname "$pc")")
export PKG_CONFIG_PATH=$libdir/pkgconfig

run() {  # run LABEL BINARY: 2 frames into a fresh folder, then check both PNGs
  local out=$tmp/out-$1
  mkdir -p "$out"
  echo "-- $1: $2 $scene 2 $out --size $size --spp 2"
  "$2" "$scene" 2 "$out" --size $size --spp 2 || { echo "FAIL: $1: embed exited with $?" >&2; exit 1; }
  for f in 0 1; do
    "$png_check" "$out/frame_000$f.png" $size $size
  done
  local n
  n=$(find "$out" -name '*.png' | wc -l)
  [ "$n" -eq 2 ] || { echo "FAIL: $1: $n PNGs in $out, expected 2" >&2; exit 1; }
}

needs_libkiln_so() {  # needs_libkiln_so BINARY: true when it is linked to libkiln.so
  readelf -d "$1" | grep -q 'NEEDED.*libkiln\.so'
}

echo "== (a) pkg-config, shared"
flags=$(pkg-config --cflags --libs kiln)
echo "pkg-config --cflags --libs kiln: $flags"
# shellcheck disable=SC2086  # flags are meant to split
"$cc" -std=c11 -Wall -Wextra -o "$tmp/embed_pc" "$src/embed.c" $flags -lm -Wl,-rpath,"$libdir"
needs_libkiln_so "$tmp/embed_pc" || { echo "FAIL: embed_pc is not linked to libkiln.so" >&2; exit 1; }
run pkgconfig-shared "$tmp/embed_pc"

echo "== (b) pkg-config --static (libkiln.a and the libraries it needs)"
# pkg-config names the library -lkiln, which the linker resolves to libkiln.so when both are
# installed: -l:libkiln.a asks for the archive (examples/embed/README.md).
flags=$(pkg-config --static --cflags --libs kiln | sed -E 's/-lkiln(-sched)?( |$)/-l:libkiln\1.a\2/g')
echo "pkg-config --static --cflags --libs kiln (archive): $flags"
# shellcheck disable=SC2086
"$cc" -std=c11 -Wall -Wextra -o "$tmp/embed_pc_static" "$src/embed.c" $flags -lm
if needs_libkiln_so "$tmp/embed_pc_static"; then
  echo "FAIL: embed_pc_static is linked to libkiln.so" >&2; exit 1
fi
run pkgconfig-static "$tmp/embed_pc_static"

for kind in shared static; do
  echo "== ($([ $kind = shared ] && echo c || echo d)) find_package(kiln COMPONENTS engine), $kind"
  static=OFF
  [ "$kind" = static ] && static=ON
  cmake -S "$src" -B "$tmp/cmake-$kind" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_BUILD_TYPE=Release -DEMBED_STATIC=$static >"$tmp/cmake.log" 2>&1 \
    || { cat "$tmp/cmake.log"; exit 1; }
  cmake --build "$tmp/cmake-$kind" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
  if [ "$kind" = shared ] && ! needs_libkiln_so "$tmp/cmake-$kind/embed"; then
    echo "FAIL: kiln::engine did not link libkiln.so" >&2; exit 1
  fi
  if [ "$kind" = static ] && needs_libkiln_so "$tmp/cmake-$kind/embed"; then
    echo "FAIL: kiln::engine_static linked libkiln.so" >&2; exit 1
  fi
  run "findpackage-$kind" "$tmp/cmake-$kind/embed"
done

echo "ok install.embed"
