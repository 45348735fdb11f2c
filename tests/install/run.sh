#!/usr/bin/env bash
# install.pkgconfig_and_cmake: installs a kiln build into a temporary prefix, then builds
# consumer.c (the task runtime alone) against it twice -- through pkg-config kiln-sched and through
# find_package(kiln) with kiln::sched -- and checks that both programs print 42. First, every
# installed header compiles alone with only the installed include folder (an engine-less build
# installs only the runtime's headers, and none of them may include one it did not install).
# Usage: run.sh <kiln build dir> <this folder> [C compiler]
set -euo pipefail

build=${1:?usage: run.sh BUILD_DIR SRC_DIR [CC]}
src=${2:?usage: run.sh BUILD_DIR SRC_DIR [CC]}
cc=${3:-cc}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

echo "== cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; exit 1; }

libdir=$(dirname "$(find "$prefix" -name kiln-sched.pc -path '*/pkgconfig/*' | head -n1)")
libdir=${libdir%/pkgconfig}
[ -n "$libdir" ] || { echo "FAIL: no kiln-sched.pc installed under $prefix" >&2; exit 1; }

echo "== every installed header compiles alone against the installed tree"
incdir=$prefix/include
n=0
for h in "$incdir"/kiln/*.h; do
  printf '#include "kiln/%s"\n' "$(basename "$h")" >"$tmp/hdr.c"
  if ! "$cc" -std=c11 -Wall -Wextra -Werror -fsyntax-only -I"$incdir" "$tmp/hdr.c" 2>"$tmp/hdr.log"; then
    echo "FAIL: installed kiln/$(basename "$h") does not compile with only the installed headers:" >&2
    cat "$tmp/hdr.log" >&2
    exit 1
  fi
  n=$((n + 1))
done
echo "$n installed headers compile alone"

check() {  # check LABEL BINARY
  local out
  out=$("$2")
  echo "$1: $out"
  if [ "$out" != "42" ]; then
    echo "FAIL: $1 printed '$out', expected 42" >&2
    exit 1
  fi
}

echo "== (a) pkg-config"
flags=$(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs kiln-sched)
echo "pkg-config --cflags --libs kiln-sched: $flags"
# shellcheck disable=SC2086  # flags are meant to split
"$cc" -std=c11 -Wall -Wextra -o "$tmp/consumer_pc" "$src/consumer.c" $flags -Wl,-rpath,"$libdir"
check "pkg-config consumer" "$tmp/consumer_pc"

echo "== (b) find_package(kiln)"
cmake -S "$src" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_BUILD_TYPE=Release >"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; exit 1; }
cmake --build "$tmp/cmake-build" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
check "find_package consumer" "$tmp/cmake-build/consumer"

echo "ok install.pkgconfig_and_cmake"
