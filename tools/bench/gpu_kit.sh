#!/usr/bin/env bash
# tools/bench/gpu_kit.sh: kiln's GPU checks as one prepared run on a borrowed GPU machine (the
# workplace's device tool: a bare x86-64 machine that fetches nothing, 15 minutes in all).
#
#   tools/bench/gpu_kit.sh pack   here: a Release build (tests, tools, benchmarks) in build-gpukit,
#                                 every ELF's interpreter and RPATH pointed at a folder of the
#                                 shared libraries it loads, this machine's glibc, Vulkan loader
#                                 and validation layer included (so the other machine's own
#                                 libraries do not matter), all packed into .gpukit/kit.tar.xz
#   tools/bench/gpu_kit.sh run    there (or here, as a dry run): unpacks the kit, runs the gpu,
#                                 render, job and cli tests through ctest and the benchmarks, and
#                                 writes the report to $OUT (default: .gpukit/out). QUICK=1 renders
#                                 a tenth of the frames (a dry run on lavapipe)
#
# The build's absolute paths stay valid there through a link from this checkout's path to the
# copy's. The device call, from the repository root (.gpukit is ignored, so carry it):
#   run(command="tools/bench/gpu_kit.sh run", carry=[".gpukit"], timeout_s=540)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd -P)
build=build-gpukit
kit=.gpukit

pack() {
  cd "$root"
  command -v patchelf >/dev/null || apt-get install -y -qq patchelf >/dev/null
  cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_BUILD_BENCH=ON >/dev/null
  cmake --build $build >/dev/null
  local lib=$build/kitlib
  rm -rf "$lib" && mkdir -p "$lib/layers" $kit
  local elfs=($build/tools/kiln $build/tools/bench/kiln-bench-* $build/tests/{gpu,render,job,cli}/*_test_*)
  # Every library the binaries load, glibc's whole set (a newer libc with the other machine's
  # libpthread or libdl would break), the Vulkan loader (dlopen'd) and the validation layer.
  for f in "${elfs[@]}"; do ldd "$f" | awk '$3 ~ /^\// {print $3}'; done | sort -u | xargs -r cp -L -t "$lib"
  dpkg -L libc6 | grep -E '^(/usr)?/lib/x86_64-linux-gnu/[^/]+\.so(\.[0-9]+)*$' | xargs -r cp -L -t "$lib"
  [ -f "$lib/ld-linux-x86-64.so.2" ] || { echo "gpu_kit: no glibc found through dpkg -L libc6" >&2; exit 1; }
  local vl=/usr/lib/x86_64-linux-gnu
  cp -L $vl/libvulkan.so.1 $vl/libVkLayer_khronos_validation.so "$lib"
  sed "s|\"library_path\": *\"[^\"]*\"|\"library_path\": \"$root/$lib/libVkLayer_khronos_validation.so\"|" \
    /usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json >"$lib/layers/VkLayer_khronos_validation.json"
  for f in "${elfs[@]}"; do
    strip "$f"
    patchelf --set-interpreter "$root/$lib/ld-linux-x86-64.so.2" --force-rpath --set-rpath "$root/$lib" "$f"
  done
  # ctest's files and the binaries, not the object files
  find $build -name CTestTestfile.cmake >$kit/files
  printf '%s\n' "${elfs[@]}" "$lib" >>$kit/files
  echo "$root" >$kit/root
  tar -cJf $kit/kit.tar.xz -T $kit/files
  echo "gpu_kit: $(du -h $kit/kit.tar.xz | cut -f1) in $kit/kit.tar.xz (built from $root)"
}

run() {
  cd "$root"
  local out=${OUT:-$root/$kit/out} built
  built=$(cat $kit/root)
  mkdir -p "$out"
  if [ "$(readlink -f "$built")" != "$root" ]; then  # a second run finds its own link
    [ -e "$built" ] && { echo "gpu_kit: $built exists and is not this checkout" >&2; exit 1; }
    mkdir -p "$(dirname "$built")" && ln -s "$root" "$built"
  fi
  python3 -c "import tarfile, sys; tarfile.open(sys.argv[1]).extractall('.')" $kit/kit.tar.xz
  export VK_ADD_LAYER_PATH=$built/$build/kitlib/layers
  local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  [ -f $icd ] && export VK_DRIVER_FILES=$icd
  local report=$out/report.txt kiln=$build/tools/kiln q=${QUICK:+10}
  q=${q:-1}
  {
    echo "== $(date -u) $(uname -srm), $(nproc) cores"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
    $kiln --version && $kiln devices || true
    command -v ctest >/dev/null || echo "gpu_kit: no ctest on this machine: the tests are skipped"
    echo "== tests"
    (cd $build && ctest -L 'gpu|render|job|cli' -LE install -j4 --output-on-failure --timeout 300 2>&1) | tail -40 || true
    echo "== kiln-bench-gpu" && $build/tools/bench/kiln-bench-gpu 2>&1 || true
    echo "== kiln-bench-render" && $build/tools/bench/kiln-bench-render 2>&1 | grep -v '^bvh\|^cpu' || true
    echo "== kiln-bench-batch 64x64 8 spp" && $build/tools/bench/kiln-bench-batch --frames $((1000 / q)) --spp 8 2>&1 || true
    echo "== kiln-bench-batch 256x256 16 spp" && $build/tools/bench/kiln-bench-batch --frames $((300 / q)) --size 256 --spp 16 2>&1 | sed -n '1,6p' || true
    echo "== kiln render, 50 frames of the orbit, whole process (Blender 3.4.1, 2 threads, on the 2-core dev machine: ~1.0 / ~18 / ~1.0 images/s)"
    for cfg in "256 16" "64 8" "512 4"; do
      read -r size spp <<<"$cfg"
      t0=$(date +%s.%N)
      $kiln render examples/cornell/orbit.json -o /tmp/kit-$size --frames 0:$((50 / q - 1)) --size ${size}x$size \
        --spp $spp --passes color --overwrite --quiet || { echo "${size}x$size: kiln render failed"; continue; }
      t1=$(date +%s.%N)
      python3 -c "import sys; print('%sx%s, %s spp: %.2f images/s' % (sys.argv[1], sys.argv[1], sys.argv[2], int(sys.argv[5]) / (float(sys.argv[4]) - float(sys.argv[3]))))" $size $spp $t0 $t1 $((50 / q))
    done
    echo "== make run's job (120 frames, 256x256, 16 spp, colour + depth + normal)"
    /usr/bin/time -f '%e s wall, %M KiB peak' $kiln render examples/cornell/orbit.json -o /tmp/kit-run \
      --frames 0:$((120 / q - 1)) --overwrite --quiet 2>&1 || true
  } 2>&1 | tee "$report"
}

case ${1:-} in
  pack) pack ;;
  run) run ;;
  *) echo "usage: tools/bench/gpu_kit.sh pack|run" >&2; exit 2 ;;
esac
