#!/usr/bin/env bash
# tools/bench/gpu_kit.sh: kiln's GPU checks as one prepared call on a borrowed GPU machine (the
# workplace's device tool: a bare x86-64 machine with the NVIDIA driver, no network, 15 minutes of
# device time in all, the first call starting it cold). The first call must give a whole answer,
# or say exactly why not.
#
#   tools/bench/gpu_kit.sh pack [--build DIR] [--kit DIR]
#       here: a Release build with the benchmarks in build-gpukit (or the already built DIR,
#       which is left untouched), copies of its kiln, benchmarks and gpu/render/job/cli test
#       programs and vulkaninfo, each with its interpreter and RPATH pointed at a folder of
#       every shared library they load: this machine's glibc, the Vulkan loader (dlopen'd), the
#       validation layer, and the libraries the NVIDIA driver itself loads but a bare image may
#       lack (libGLdispatch, libX11, libXext, libxcb, libXau, libXdmcp, libbsd, libmd). All of it
#       goes into KIT/kit.tar.xz (KIT: .gpukit in the checkout unless --kit).
#   tools/bench/gpu_kit.sh run [--dry] [--kit DIR]
#       there (or here with --dry, on lavapipe): unpacks the kit and runs the steps below, each
#       under `timeout` and a total budget, writing to $OUT (default KIT/out):
#         report.txt   everything printed, step by step (a failed run says why here)
#         steps.tsv    one line per step: name, status (ok, fail rc=N, timeout, skipped: why), s
#         gate.log     driver, ICDs found, vulkaninfo, the Vulkan loader's own log
#         devices.json `kiln devices --json`
#         tests.log    the whole ctest log
#         util.csv     nvidia-smi's GPU utilisation every 200 ms during each batch (GPU only)
#       Steps: gate (hard: with no discrete device that opens, the run stops there, exit 3;
#       --dry accepts the CPU device), cornell (the Cornell box against Blender's reference means,
#       read from tests/render/test_render.c), limits (the device limits that choose where the
#       shader keeps the scene), scene_memory (kiln-bench-render: the frame per scene-memory
#       mode), batch_* (steady-state images/s from `kiln render --json`'s own timing, a batch
#       sized by a first short batch to last GPUKIT_BATCH_S seconds), bench_gpu (dispatch
#       latency), tests (ctest, labels gpu, render, job, cli; last, with what the budget has
#       left). Exit 0 when every step that ran passed, 1 when one failed or timed out, 2 when
#       there is no kit or it does not unpack, 3 when the gate stopped the run.
#
# Knobs (environment; --dry sets the small values in brackets unless they are set):
#   GPUKIT_BUDGET    seconds for the whole run, steps cut to fit (default 285 [120])
#   GPUKIT_TESTS     ctest -R regex of the tests to run (default all of the labels [gpu.cli_devices$])
#   GPUKIT_CORNELL   "SIZE SPP" of the Cornell check (default "256 1024" ["32 64"])
#   GPUKIT_BATCHES   SIZE:SPP of each steady-state batch (default "64:8 256:16 512:4" ["32:1"])
#   GPUKIT_BATCH_S   seconds each batch should last (default 12 [1])
#   GPUKIT_CTEST=py  run the tests with tools/bench/gpu_kit_ctest.py even where ctest exists
#   GPUKIT_KEEP=1    keep the unpacked kit (KIT/x) after the run
#   GPUKIT_ICD_DIRS  more folders to search for nvidia_icd*.json, first (space-separated)
#   GPUKIT_DRIVER_DIRS  more driver library folders, first (space-separated)
#   GPUKIT_XZ=0      pack: a plain tar (kit.tar) instead of xz, for a quick local pack
#   GPUKIT_SUITES    pack: the test suites whose programs are packed (default "gpu render job cli")
#
# Absolute paths: the test programs have the checkout's and the build's paths compiled in, and the
# packed programs the kit's. `run` makes all three resolve on the other machine through links
# (the checkout's path to this copy, the kit's path to KIT, the build's path to the unpacked
# build), and runs ctest on the unpacked copies. The device call, from the repository root
# (.gpukit is ignored, so carry the kit; only the kit, not a dry run's leftovers):
#   run(command="tools/bench/gpu_kit.sh run", carry=[".gpukit/kit.tar.xz"], timeout_s=420)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd -P)
# the driver's own libraries that a bare image may lack, packed beside the loader
nvidia_deps=(libGLdispatch.so.0 libX11.so.6 libXext.so.6 libxcb.so.1 libXau.so.6 libXdmcp.so.6
             libbsd.so.0 libmd.so.0)
# Where drivers' libraries live on the usual images (containers mount them under
# /usr/local/nvidia), beside the system's own folders, which the dynamic linker searches anyway
# and which stay off LD_LIBRARY_PATH: there they would come before other programs' RUNPATH (a
# Python of its own finding the system's libpython).
driver_dirs=(/usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu/nvidia/current
             /usr/lib/x86_64-linux-gnu/nvidia /usr/lib64/nvidia /usr/lib/nvidia /usr/lib64)
system_dirs=" /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu /usr/lib /lib "
icd_dirs=(/usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d
          /usr/local/nvidia/share/vulkan/icd.d /usr/local/nvidia/icd.d /usr/local/nvidia/etc/vulkan/icd.d
          /usr/share/nvidia /etc/nvidia)

die() { echo "gpu_kit: $*" >&2; exit 1; }

# The kit's folder, absolute (it need not exist yet).
kit_dir() {
  local k=${1:-$root/.gpukit}
  case $k in /*) ;; *) k=$PWD/$k ;; esac
  mkdir -p "$k" && (cd "$k" && pwd -P)
}

# ---- pack ----------------------------------------------------------------------------------------

# Copies the shared libraries that the given ELF files load (ldd's answer) into dir $1.
copy_deps() {
  local dir=$1
  shift
  local f
  for f in "$@"; do ldd "$f" 2>/dev/null | awk '$3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'; done |
    sort -u | while read -r l; do
      [ -e "$dir/$(basename "$l")" ] || cp -L "$l" "$dir/"
    done
}

# The path of a library by its soname, through the dynamic linker's cache.
lib_path() { ldconfig -p | awk -v n="$1" '$1 == n && /x86-64/ {print $NF; exit}'; }

pack() {
  local build="" kit=""
  while [ $# -gt 0 ]; do
    case $1 in
      --build) build=$2; shift 2 ;;
      --kit) kit=$2; shift 2 ;;
      *) die "pack: unknown argument $1" ;;
    esac
  done
  cd "$root" || exit 1
  local t
  for t in patchelf ldd strip tar ninja; do command -v $t >/dev/null || die "pack needs $t (tools/install-deps)"; done
  if [ -z "$build" ]; then
    build="build-gpukit"
    cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_BUILD_BENCH=ON >/dev/null ||
      die "configuring $build failed"
    # only what the kit holds: kiln, three benchmarks, the gpu/render/job/cli test programs
    local targets
    targets=$(ninja -C $build -t targets all | awk -F: '{print $1}' |
              grep -E '^(kiln-cli|kiln-bench-(gpu|render|batch)|(gpu|render|job|cli)_test_[A-Za-z0-9_]+)$' | sort -u)
    cmake --build $build --target $targets >/dev/null || die "the Release build in $build failed"
  fi
  local B K
  B=$(cd "$build" && pwd -P) || die "no build folder $build"
  [ -x "$B/tools/kiln" ] || die "$B/tools/kiln: not built"
  K=$(kit_dir "$kit")
  local S=$K/x lib=$K/x/lib
  rm -rf "$S" "$K"/kit.tar* && mkdir -p "$lib/layers" "$S/bin" "$S/build" || exit 1

  # the programs, copied at their places under the build (the build itself is left as it is)
  local rel elfs=() f suites=()
  for f in ${GPUKIT_SUITES:-gpu render job cli}; do suites+=("$B/tests/$f"/*_test_*); done
  for f in "$B"/tools/kiln "$B"/tools/bench/kiln-bench-{gpu,render,batch} "${suites[@]}"; do
    [ -f "$f" ] && [ -x "$f" ] || continue
    rel=${f#"$B"/}
    mkdir -p "$S/build/$(dirname "$rel")" && strip -o "$S/build/$rel" "$f" && elfs+=("$S/build/$rel")
  done
  f=$(command -v vulkaninfo) || die "pack needs vulkaninfo (tools/install-deps)"
  cp -L "$f" "$S/bin/" && elfs+=("$S/bin/vulkaninfo")
  # ctest's files, with the build's path made the unpacked copy's (CTestTestfile.cmake names each
  # program by its absolute path)
  (cd "$B" && find . -name CTestTestfile.cmake) | while read -r rel; do
    mkdir -p "$S/build/$(dirname "$rel")"
    sed "s|$B/|$S/build/|g; s|\"$B\"|\"$S/build\"|g" "$B/$rel" >"$S/build/$rel"
  done

  # Every library they load; glibc's whole set (a newer libc with the other machine's libpthread
  # or libdl would break); the Vulkan loader (dlopen'd), the validation layer; the driver's own
  # dependencies; then what those load in turn.
  copy_deps "$lib" "${elfs[@]}"
  dpkg -L libc6 | grep -E '^(/usr)?/lib/x86_64-linux-gnu/[^/]+\.so(\.[0-9]+)*$' | xargs -r cp -L -t "$lib"
  [ -f "$lib/ld-linux-x86-64.so.2" ] || die "no glibc found through dpkg -L libc6"
  local vl=/usr/lib/x86_64-linux-gnu
  cp -L $vl/libvulkan.so.1 $vl/libVkLayer_khronos_validation.so "$lib" || die "no Vulkan loader or validation layer"
  sed "s|\"library_path\": *\"[^\"]*\"|\"library_path\": \"$lib/libVkLayer_khronos_validation.so\"|" \
    /usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json >"$lib/layers/VkLayer_khronos_validation.json"
  local d p
  for d in "${nvidia_deps[@]}"; do
    p=$(lib_path "$d")
    [ -n "$p" ] || die "no $d on this machine (tools/install-deps installs its package)"
    cp -L "$p" "$lib/"
  done
  copy_deps "$lib" "$lib"/*.so*
  copy_deps "$lib" "$lib"/*.so*

  for f in "${elfs[@]}"; do
    patchelf --set-interpreter "$lib/ld-linux-x86-64.so.2" --force-rpath --set-rpath "$lib" "$f" ||
      die "patchelf $f failed"
  done
  printf '%s\n' "$root" >"$S/root"  # the checkout the tests were built from
  printf '%s\n' "$B" >"$S/build.path"
  printf '%s\n' "$K" >"$S/kit.path"
  # One xz stream with a dictionary larger than the kit: the test programs are 30 near-copies of
  # one static engine, which a window of 256 MiB finds again (230 MiB to 21 MiB in a minute at
  # preset 1, where the default preset and block size give 47 MiB in several).
  local tarball=$K/kit.tar.xz
  if [ "${GPUKIT_XZ:-1}" = 0 ]; then
    tarball=$K/kit.tar
    tar -c -f "$tarball" -C "$S" . || die "tar failed"
  else
    command -v xz >/dev/null || die "pack needs xz (tools/install-deps)"
    tar -c -C "$S" . | xz -T1 --lzma2=preset=1,dict=256MiB >"$tarball" || die "tar | xz failed"
  fi
  rm -rf "$S"
  echo "gpu_kit: $(du -h "$tarball" | cut -f1) in $tarball (${#elfs[@]} programs from $B)"
}

# ---- run -----------------------------------------------------------------------------------------

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }

# step NAME LIMIT CMD...: runs CMD under timeout (LIMIT seconds, less if the budget has less
# left), prints it under a header and records its status in steps.tsv. Returns CMD's status.
step() {
  local name=$1 limit=$2 left
  shift 2
  left=$((deadline - $(date +%s)))
  if [ $left -lt 5 ]; then
    record "$name" "skipped: budget spent" 0
    return 125
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (at most ${limit} s)"
  local t0 rc status
  t0=$(now)
  # a step may be one of this script's functions (exported to the shell that timeout starts)
  if declare -F "$1" >/dev/null; then
    timeout -k 5 "$limit" bash -c '"$@"' _ "$@"
  else
    timeout -k 5 "$limit" "$@"
  fi
  rc=$?
  case $rc in
    0) status=ok ;;
    124 | 137) status="timeout after ${limit} s" ;;
    *) status="fail rc=$rc" ;;
  esac
  record "$name" "$status" "$(elapsed "$t0")"
  return $rc
}

record() {
  printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$out/steps.tsv"
  echo "-- $1: $2 (${3} s)"
  case $2 in ok | skipped*) ;; *) failed=1 ;; esac
}

# Links that make the pack-time paths (checkout, kit, build) resolve here. Prints what it did.
link_paths() {
  local built=$1 kitpath=$2 buildpath=$3
  if [ ! -e "$built" ]; then
    mkdir -p "$(dirname "$built")" && ln -s "$root" "$built" && echo "link $built -> $root"
  fi
  if [ "$(readlink -f "$kitpath")" != "$K" ]; then
    [ -e "$kitpath" ] && die "$kitpath exists and is not this kit ($K)"
    mkdir -p "$(dirname "$kitpath")" && ln -s "$K" "$kitpath" && echo "link $kitpath -> $K"
  fi
  if [ ! -e "$buildpath" ]; then
    mkdir -p "$(dirname "$buildpath")" && ln -s "$K/x/build" "$buildpath" && echo "link $buildpath -> $K/x/build"
  fi
}

# The driver's library folders that exist, and the ICD files found, exported for the loader.
find_driver() {
  local d dirs=() icds=() f
  for d in ${GPUKIT_DRIVER_DIRS:-} "${driver_dirs[@]}"; do [ -d "$d" ] && dirs+=("$d"); done
  # wherever the driver's Vulkan library is, its folder too (and an ICD file beside it)
  while read -r f; do
    d=$(dirname "$f")
    case " ${dirs[*]} $system_dirs" in *" $d "*) ;; *) dirs+=("$d") ;; esac
  done < <(find /usr/lib /usr/lib64 /usr/local /lib /opt -maxdepth 5 -name 'libGLX_nvidia.so*' 2>/dev/null | sort -u)
  local search extra
  read -r -a extra <<<"${GPUKIT_ICD_DIRS:-}"
  search=("${extra[@]}" "${icd_dirs[@]}")
  for d in "${dirs[@]}"; do search+=("$d" "$d/../share/vulkan/icd.d" "$d/../../share/vulkan/icd.d"); done
  while read -r f; do
    case " ${icds[*]} " in *" $f "*) ;; *) icds+=("$f") ;; esac
  done < <(for d in "${search[@]}"; do [ -d "$d" ] && find "$d" -maxdepth 2 -name 'nvidia_icd*.json' 2>/dev/null | sort; done |
           xargs -r readlink -f | awk '!seen[$0]++')  # in the order searched, each once
  driver_path=$(IFS=:; echo "${dirs[*]}")
  icd_files=$(IFS=:; echo "${icds[*]}")
}

# The first usable, visible device of the wanted types (comma-separated) in kiln devices --json's
# file $1: "NUMBER<tab>NAME", or a message on stderr and status 1.
pick_device() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
try:
    devs = json.load(open(sys.argv[1]))["devices"]
except (OSError, ValueError, KeyError) as e:
    sys.exit("kiln devices gave no device list (%s): the loader's log above says why" % e)
for d in devs:
    if d["type"] in sys.argv[2].split(",") and d.get("usable") and d.get("visible", True):
        # --device counts in the visibility variable's numbering when one restricts it
        print(d.get("visible_number", d["index"]), d["name"], sep="\t")
        break
else:
    sys.exit("no usable %s device among %d: %s" % (sys.argv[2], len(devs),
             "; ".join("%s (%s%s)" % (d["name"], d["type"], "" if d.get("usable") else ", unusable: " + d.get("unusable_reason", "")) for d in devs)))
EOF
}

# The hard gate: the driver, the ICD files, vulkaninfo, and the loader's own log while kiln lists
# the devices, with each ICD file found on its own (two files naming one driver would show one GPU
# twice), then with the loader's own search; the first that gives a usable device of the wanted
# types must render a frame. Writes the device's number to $tmp/dev and the ICD file (- for the
# loader's search) to $tmp/icd.
gate() {
  local want=$1 f
  {
    echo "== driver"
    if command -v nvidia-smi >/dev/null; then
      timeout 30 nvidia-smi 2>&1
      timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total,pci.bus_id --format=csv 2>&1
    else
      echo "no nvidia-smi on this machine"
    fi
    echo "== driver library folders searched (LD_LIBRARY_PATH): $LD_LIBRARY_PATH"
    echo "== ICD files found: ${icd_files:-none}"
    for f in ${icd_files//:/ }; do echo "--- $f"; cat "$f"; done
    echo "== Vulkan ICD files present"
    ls -l $icd_dirs_list 2>/dev/null
    echo "== vulkaninfo --summary${icd_files:+ (VK_DRIVER_FILES=$icd_files)}"
    if [ -n "$icd_files" ]; then
      VK_DRIVER_FILES=$icd_files timeout 30 "$X/bin/vulkaninfo" --summary 2>&1
    else
      timeout 30 "$X/bin/vulkaninfo" --summary 2>&1
    fi
  } 2>&1 | tee "$out/gate.log"
  local pick="" why
  for f in ${icd_files//:/ } -; do
    {
      echo "== the loader's log: VK_LOADER_DEBUG=error,warn,driver kiln devices --json, VK_DRIVER_FILES=${f/#-/unset: the loader searches}"
      if [ "$f" = - ]; then
        VK_LOADER_DEBUG=error,warn,driver timeout 30 env -u VK_DRIVER_FILES -u VK_ICD_FILENAMES \
          "$kiln" devices --json 2>&1 >"$out/devices.json"
      else
        VK_LOADER_DEBUG=error,warn,driver VK_DRIVER_FILES=$f VK_ICD_FILENAMES=$f timeout 30 \
          "$kiln" devices --json 2>&1 >"$out/devices.json"
      fi
      echo "kiln devices: exit $?"
    } 2>&1 | tee -a "$out/gate.log"
    echo "== kiln devices --json"
    cat "$out/devices.json"
    why=$(pick_device "$out/devices.json" "$want" 2>&1) && { pick=$why; break; }
    echo "gate: $why"
  done
  [ -n "$pick" ] || return 1
  local dev=${pick%%$'\t'*}
  echo "gate: device $dev: ${pick#*$'\t'} (VK_DRIVER_FILES=${f/#-/unset})"
  if [ "$f" = - ]; then unset VK_DRIVER_FILES VK_ICD_FILENAMES; else export VK_DRIVER_FILES=$f VK_ICD_FILENAMES=$f; fi
  # it opens and renders: one small frame
  "$kiln" render examples/cornell/orbit.json --device "$dev" --frames 0:0 --size 32x32 --spp 1 \
    --passes color -o "$tmp/gate" --overwrite --quiet || { echo "gate: device $dev does not render"; return 1; }
  echo "gate: device $dev rendered a frame"
  echo "$dev" >"$tmp/dev"
  echo "$f" >"$tmp/icd"
}

# The Cornell box at SIZE, SPP twice (seeds 11, 12) as float NPY; each channel's mean of the two
# against Blender's means within 4 standard errors + the margin, as tests/render's check_means.
cornell() {
  local size=$1 spp=$2
  printf '{"name": "a", "seed": 11}\n{"name": "b", "seed": 12}\n' >"$tmp/cornell.jsonl"
  "$kiln" render "$tmp/cornell.jsonl" --scene examples/cornell/scene.json --device "$dev" \
    --size "${size}x$size" --spp "$spp" --passes color --format npy --template '{name}.{ext}' -o "$tmp/cornell" --overwrite \
    --quiet --json "$tmp/cornell.json" || return 1
  python3 - "$tmp/cornell" tests/render/test_render.c "${GPUKIT_CORNELL_MARGIN:-0.02}" "$tmp/cornell.json" "$spp" <<'EOF'
import array, ast, json, math, re, sys
d, src, margin = sys.argv[1], sys.argv[2], float(sys.argv[3])
m = re.search(r"cornell_ref\[3\]\s*=\s*\{([^}]*)\}", open(src).read())
if not m:
    sys.exit("no cornell_ref in %s" % src)
want = [float(x) for x in m.group(1).split(",")]
def npy(name):
    raw = open("%s/%s.npy" % (d, name), "rb").read()
    hlen = int.from_bytes(raw[8:10], "little")
    hdr = ast.literal_eval(raw[10:10 + hlen].decode())
    assert hdr["descr"] == "<f4" and len(hdr["shape"]) == 3, hdr
    a = array.array("f")
    a.frombytes(raw[10 + hlen:])
    return a, hdr["shape"]
(a, shape), (b, _) = npy("a"), npy("b")
n = shape[0] * shape[1]
s = json.load(open(sys.argv[4]))
print("cornell %dx%d, %s spp, seeds 11 and 12: %.2f s (batch wall), reference means from %s" %
      (shape[1], shape[0], sys.argv[5], s["wall_s"], src))
bad = 0
for k in range(3):
    x, y = a[k::3], b[k::3]
    mean = sum(0.5 * (p + q) for p, q in zip(x, y)) / n
    se = math.sqrt(sum((p - q) ** 2 / 4 for p, q in zip(x, y))) / n
    tol = 4 * se + margin * want[k]
    ok = abs(mean - want[k]) <= tol
    bad += not ok
    print("cornell channel %d: kiln %.5f, Blender %.5f, diff %+.2f%%, se %.5f, tol %.5f: %s" %
          (k, mean, want[k], 100 * (mean / want[k] - 1), se, tol, "pass" if ok else "FAIL"))
print("cornell check: %s" % ("passed" if not bad else "FAILED"))
sys.exit(1 if bad else 0)
EOF
}

tests() {
  local runner=("$ctest")
  if [ -n "$ctest" ]; then
    "$ctest" --version | head -1
  else
    echo "no ctest on this machine: tools/bench/gpu_kit_ctest.py runs the tests"
    runner=(python3 "$root/tools/bench/gpu_kit_ctest.py" .)
  fi
  # anchored: -L is a regex, and gpukit (this kit's own test) would match gpu
  local sel=(-L '^(gpu|render|job|cli)$' -LE '^install$')
  [ -n "${GPUKIT_TESTS:-}" ] && sel+=(-R "$GPUKIT_TESTS")
  # most of a test is the GPU's or waiting on it: more at once than half the cores
  local j=$(($(nproc) * 3 / 4))
  [ $j -lt 1 ] && j=1
  [ $j -gt 12 ] && j=12
  (cd "$X/build" && "${runner[@]}" "${sel[@]}" -j $j --output-on-failure --timeout 120) >"$out/tests.log" 2>&1
  local rc=$?
  grep -E 'tests passed|tests failed|\(Failed\)|\(Timeout\)|\*\*\*|Total Test time' "$out/tests.log"
  echo "(the whole log: tests.log)"
  return $rc
}

# The device limits that decide where the shader keeps the scene (engine/render/renderer.c's
# scene_memory: a shared-memory copy of PT_SHARED_VEC4S x 16 bytes, the uniform buffer, texel
# buffers), and the shader's own sizes.
limits() {
  "$X/bin/vulkaninfo" 2>/dev/null | grep -E -m 24 \
    'deviceName|deviceType|maxComputeSharedMemorySize|maxUniformBufferRange|maxTexelBufferElements|maxStorageBufferRange|maxComputeWorkGroupInvocations|subgroupSize ' || true
  grep -E '^#define PT_(SHARED_VEC4S|UNIFORM_VEC4S_MAX) ' shaders/pathtrace/layout.h
}

# One steady-state batch of the orbit at SIZE, SPP (colour PNG): a short batch measures the rate,
# then one sized to last about GPUKIT_BATCH_S seconds; images/s from kiln render's own summary
# (the batch's wall clock, not the process's), GPU utilisation sampled during the long one.
batch() {
  local size=$1 spp=$2 n=${3:-0}
  local name=batch_${size}_$spp
  if [ "$n" = 0 ]; then  # the short one
    n=$((size <= 64 ? 400 : size <= 256 ? 100 : 30))
    [ -n "$dry" ] && n=8
  fi
  printf '{"scene": "%s/examples/cornell/scene.json", "width": %d, "height": %d, "spp": %d,
"output": "{frame:06d}.{ext}", "animation": {"frames": %d, "camera": {"orbit": {"center": [0.278, 0.273, 0.2796],
"axis": [0, 1, 0], "start_angle": 165, "degrees": 30, "vfov": 42}}}}\n' "$root" "$size" "$size" "$spp" "$n" >"$tmp/$name.json"
  rm -rf "${tmp:?}/$name"
  local smi=""
  if command -v nvidia-smi >/dev/null; then
    echo "# $name, $n frames" >>"$out/util.csv"
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -lms 200 >>"$out/util.csv" 2>&1 &
    smi=$!
  fi
  "$kiln" render "$tmp/$name.json" --device "$dev" --passes color -o "$tmp/$name" --quiet --json "$tmp/$name.sum.json"
  local rc=$?
  [ -n "$smi" ] && kill "$smi" 2>/dev/null && wait "$smi" 2>/dev/null
  [ $rc = 0 ] || return $rc
  python3 - "$tmp/$name.sum.json" "$size" "$spp" "$out/util.csv" "$name" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
f = s["frames"]["written"]
util = ""
try:
    rows, on = [], False
    for line in open(sys.argv[4]):
        if line.startswith("#"):
            on = line.startswith("# %s, %d frames" % (sys.argv[5], f))
        elif on and "," in line:
            rows.append(float(line.split(",")[1].strip().rstrip(" %")))
    if rows:
        util = ", GPU busy %.0f%% mean, %.0f%% max (%d samples)" % (sum(rows) / len(rows), max(rows), len(rows))
except (OSError, ValueError):
    pass
# first_image_s counts from the process's start, wall_s from the batch's: after the first image
# (the kernel compiled, buffers made) the rate is the steady state
first = s["first_image_s"] - s["setup_s"]
steady = (f - 1) / (s["wall_s"] - first) if f > 1 and s["wall_s"] > first else 0
print("%sx%s, %s spp, %d frames: %.1f images/s steady (after the first image), %.1f images/s "
      "whole batch (batch wall %.2f s, set-up %.2f s, first image %.3f s, peak RSS %.0f MiB; stage "
      "seconds %s)%s" % (sys.argv[2], sys.argv[2], sys.argv[3], f, steady, s["images_per_s"],
      s["wall_s"], s["setup_s"], first, s["peak_rss_bytes"] / 2**20,
      " ".join("%s %.2f" % kv for kv in s["stages_s"].items()), util))
EOF
}

# The frames the long batch needs to last seconds s, from the short batch's rate.
batch_frames() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
f, first = s["frames"]["written"], s["first_image_s"] - s["setup_s"]
r = (f - 1) / (s["wall_s"] - first) if f > 1 and s["wall_s"] > first else s["images_per_s"]
print(max(10, min(200000, int(r * float(sys.argv[2])))))
EOF
}

run() {
  local kit="" mode=""
  while [ $# -gt 0 ]; do
    case $1 in
      --dry) mode=dry; shift ;;
      --kit) kit=$2; shift 2 ;;
      *) die "run: unknown argument $1" ;;
    esac
  done
  cd "$root" || exit 1
  dry=$mode
  K=$(kit_dir "$kit")
  X=$K/x
  out=${OUT:-$K/out}
  mkdir -p "$out" && out=$(cd "$out" && pwd -P)
  rm -f "$out"/{report.txt,steps.tsv,gate.log,devices.json,tests.log,util.csv}
  run_steps 2>&1 | tee "$out/report.txt"
  return "${PIPESTATUS[0]}"
}

run_steps() {
  local t_start budget
  t_start=$(now)
  budget=${GPUKIT_BUDGET:-$([ -n "$dry" ] && echo 120 || echo 285)}
  deadline=$(($(date +%s) + budget))
  failed=0
  echo "== gpu_kit run${dry:+ --dry}: $(date -u), $(uname -srm), $(nproc) cores, budget ${budget} s, kit $K, out $out"
  local tarball
  tarball=$(ls "$K"/kit.tar.xz "$K"/kit.tar 2>/dev/null | head -1)
  [ -n "$tarball" ] || { echo "gpu_kit: no kit in $K (tools/bench/gpu_kit.sh pack)"; return 2; }
  # python's tarfile where tar cannot (a bare image without xz)
  rm -rf "$X" && mkdir -p "$X" && { tar -xf "$tarball" -C "$X" 2>/dev/null ||
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$tarball" "$X"; } ||
    { echo "gpu_kit: unpacking $tarball failed"; return 2; }
  link_paths "$(cat "$X/root")" "$(cat "$X/kit.path")" "$(cat "$X/build.path")" || return 2
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/gpukit.XXXXXX")
  # the unpacked kit goes too (GPUKIT_KEEP=1 keeps it), so that carrying .gpukit again after a
  # dry run here does not carry hundreds of MiB
  if [ "${GPUKIT_KEEP:-0}" = 1 ]; then trap 'rm -rf "$tmp"' EXIT; else trap 'rm -rf "$tmp" "$X"' EXIT; fi
  kiln=$X/build/tools/kiln
  # the machine's own ctest (the GPU image has CMake; packing Debian's would add 40 MiB of its
  # libraries, ICU's data most of it), else gpu_kit_ctest.py
  ctest=$(command -v ctest) || ctest=""
  [ "${GPUKIT_CTEST:-}" = py ] && ctest=""
  find_driver
  [ -d /usr/local/nvidia/bin ] && export PATH=$PATH:/usr/local/nvidia/bin  # nvidia-smi in containers
  export LD_LIBRARY_PATH=$driver_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export VK_ADD_LAYER_PATH=$X/lib/layers
  "$kiln" --version
  # what the steps (run by timeout in their own shell) need
  icd_dirs_list="${icd_dirs[*]}"
  export root K X out tmp kiln ctest dry icd_files icd_dirs_list
  export -f now pick_device gate cornell tests limits batch

  # the gate: nothing else is worth the time without a device that renders
  local want=discrete
  [ -n "$dry" ] && want=discrete,cpu
  if ! step gate 90 gate "$want"; then
    echo "GATE FAILED: no usable $want device rendered (driver, ICDs and the loader's log above and in gate.log)"
    cat "$out/steps.tsv"
    return 3
  fi
  dev=$(cat "$tmp/dev")
  local icd
  icd=$(cat "$tmp/icd")
  [ "$icd" = - ] || export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd
  export dev

  local c=${GPUKIT_CORNELL:-$([ -n "$dry" ] && echo "32 64" || echo "256 1024")}
  step cornell 60 cornell $c
  step limits 30 limits
  local spp=1024  # frames long enough on a GPU that the submission's own cost is small
  [ -n "$dry" ] && spp=1
  if [ -x "$X/build/tools/bench/kiln-bench-render" ]; then
    # the frame per scene-memory mode; the CPU's BVH figures after it are not the GPU's
    step scene_memory 45 bash -c '"$1" examples/cornell/scene.json "$2" 2>&1 | grep -v "^bvh\|^cpu"' _ \
      "$X/build/tools/bench/kiln-bench-render" "$spp"
  else
    record scene_memory "skipped: kiln-bench-render not in the kit" 0
  fi
  local b s=${GPUKIT_BATCH_S:-$([ -n "$dry" ] && echo 1 || echo 12)}
  for b in ${GPUKIT_BATCHES:-$([ -n "$dry" ] && echo "32:1" || echo "64:8 256:16 512:4")}; do
    local size=${b%%:*} bspp=${b#*:}
    step "batch_${size}_${bspp}_short" 30 batch "$size" "$bspp" || continue
    step "batch_${size}_${bspp}" $((s * 2 + 20)) batch "$size" "$bspp" \
      "$(batch_frames "$tmp/batch_${size}_$bspp.sum.json" "$s")"
  done
  if [ -x "$X/build/tools/bench/kiln-bench-gpu" ]; then
    step bench_gpu 30 "$X/build/tools/bench/kiln-bench-gpu"
  else
    record bench_gpu "skipped: kiln-bench-gpu not in the kit" 0
  fi
  # last, with what the budget has left: ctest's log says how far it got if that is not enough
  [ -n "$dry" ] && export GPUKIT_TESTS=${GPUKIT_TESTS-^gpu\.cli_devices$}
  step tests 170 tests
  echo "== steps ($(elapsed "$t_start") s in all)"
  column -t -s $'\t' "$out/steps.tsv" 2>/dev/null || cat "$out/steps.tsv"
  [ $failed = 0 ] && echo "gpu_kit: every step passed" || echo "gpu_kit: some step failed"
  return $failed
}

main() {
  case ${1:-} in
    pack) shift; pack "$@" ;;
    run) shift; run "$@" ;;
    *) echo "usage: tools/bench/gpu_kit.sh pack [--build DIR] [--kit DIR] | run [--dry] [--kit DIR]" >&2; return 2 ;;
  esac
}
# one line: bash reads a script as it runs, so nothing after it is read once main has started
# (an edit to this file during a long pack cannot change what runs)
main "$@"; exit $?
