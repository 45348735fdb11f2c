#!/usr/bin/env bash
# tests/gpukit/run.sh BUILD SOURCE: tools/bench/gpu_kit.sh packs the built BUILD into a kit (a
# plain tar, for speed) and runs it dry on lavapipe, small; then the kit and its report are checked
# as the borrowed GPU machine's first call relies on them:
#   - the packed programs load only the kit's libraries (ldd resolves every one inside the kit, the
#     interpreter is the kit's), and the NVIDIA driver's own dependencies are in it;
#   - the gate printed its diagnostics (driver, ICDs, vulkaninfo, the loader's log, kiln devices
#     --json) and accepted the CPU device only because of --dry;
#   - every step recorded a status, and the gate, the Cornell check, the tests and the batches passed.
# Leaves its reports in BUILD/tests/gpukit/work (removed first), and the kit too if a check failed.
set -uo pipefail
build=$1 src=$2
work=$build/tests/gpukit/work
rm -rf "$work" && mkdir -p "$work/cache" || exit 1
export XDG_CACHE_HOME=$work/cache TMPDIR=$work
kit=$work/kit out=$work/out
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
has() { grep -q -E -- "$2" "$1" || fail "$1 lacks /$2/"; }

GPUKIT_XZ=0 GPUKIT_SUITES=gpu bash "$src/tools/bench/gpu_kit.sh" pack --build "$build" --kit "$kit" || { echo "FAIL: pack"; exit 1; }
[ -f "$kit/kit.tar" ] || fail "no kit.tar"
# A driver laid out as NVIDIA's: lavapipe's library as libGLX_nvidia.so.0 in a folder no cache
# knows, its nvidia_icd.json beside it naming it by file name only (so only the driver folders
# the kit puts on the search path find it), and a broken nvidia_icd.json in a folder searched
# first: the gate must try that one, then pick the driver and the later steps use it.
lvp=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["ICD"]["library_path"])' \
      /usr/share/vulkan/icd.d/lvp_icd.x86_64.json 2>/dev/null)
icd="" drv=""
if [ -f "$lvp" ]; then
  mkdir -p "$work/broken-icd" "$work/drv"
  cp "$lvp" "$work/drv/libGLX_nvidia.so.0"
  printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "%s", "api_version": "1.3.0"}}\n' \
    libnot_there.so.0 >"$work/broken-icd/nvidia_icd.json"
  printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "%s", "api_version": "1.3.0"}}\n' \
    libGLX_nvidia.so.0 >"$work/drv/nvidia_icd.json"
  icd=$work/broken-icd drv=$work/drv
fi
OUT=$out GPUKIT_ICD_DIRS=$icd GPUKIT_DRIVER_DIRS=$drv GPUKIT_KEEP=1 bash "$src/tools/bench/gpu_kit.sh" run --dry --kit "$kit"
rc=$?
[ $rc = 0 ] || fail "run --dry exited $rc"

# the packed programs and their libraries
x=$kit/x
for f in "$x"/build/tools/kiln "$x"/bin/vulkaninfo "$x"/build/tests/gpu/*_test_*; do
  [ -x "$f" ] || { fail "$f is not in the kit"; continue; }
  interp=$(patchelf --print-interpreter "$f")
  [ "$interp" = "$x/lib/ld-linux-x86-64.so.2" ] || fail "$f: interpreter $interp"
  # what the kit's own loader resolves (ldd's way, through the interpreter the program names)
  bad=$("$interp" --list "$f" | awk -v lib="$x/lib/" '/not found/ || ($2 == "=>" && index($3, lib) != 1)')
  [ -z "$bad" ] || fail "$f loads from outside the kit: $bad"
done
for l in libc.so.6 libvulkan.so.1 libVkLayer_khronos_validation.so libGLdispatch.so.0 libX11.so.6 \
         libXext.so.6 libxcb.so.1 libXau.so.6 libXdmcp.so.6 libbsd.so.0 libmd.so.0; do
  [ -f "$x/lib/$l" ] || fail "$l is not in the kit"
done
bad=$(cd "$x/lib" && for l in *.so*; do ldd "$l" 2>/dev/null | grep 'not found' | sed "s|^|$l: |"; done)
# and the packed ones come first for them too (RPATH before the system's), as the loader sees it
bad=$bad$("$x/lib/ld-linux-x86-64.so.2" --library-path "$x/lib" --list "$x/lib/libGLdispatch.so.0" |
          awk -v lib="$x/lib/" '/not found/ || ($2 == "=>" && index($3, lib) != 1)')
[ -z "$bad" ] || fail "a packed library needs one that is not packed: $bad"

# the runner for a machine without ctest, on the kit's copy of the build
python3 "$src/tools/bench/gpu_kit_ctest.py" "$x/build" -L '^(gpu|render|job|cli)$' -LE '^install$' \
  -R '^gpu\.cli_(devices|usage)$' -j 2 --output-on-failure --timeout 60 >"$work/pyctest.txt" 2>&1 ||
  fail "gpu_kit_ctest.py: $(cat "$work/pyctest.txt")"
has "$work/pyctest.txt" '^100% tests passed, 0 tests failed out of 2$'

# the gate's diagnostics
for f in report.txt steps.tsv gate.log devices.json tests.log; do [ -s "$out/$f" ] || fail "no $out/$f"; done
has "$out/gate.log" '^== driver'
has "$out/gate.log" '^== ICD files found'
has "$out/gate.log" '^== vulkaninfo --summary'
has "$out/gate.log" 'deviceType'                    # vulkaninfo ran
has "$out/gate.log" 'VK_LOADER_DEBUG=error,warn,driver'
has "$out/gate.log" '(DRIVER|INFO|WARNING|ERROR)'    # the loader's own log
has "$out/gate.log" '^kiln devices: exit 0'
python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))["devices"]; sys.exit(not d)' "$out/devices.json" ||
  fail "devices.json: no device list"
has "$out/report.txt" '^gate: device [0-9]+: .*'
if [ -n "$icd" ]; then
  has "$out/gate.log" "^== driver library folders searched \(LD_LIBRARY_PATH\): $drv(:|\$)"
  has "$out/gate.log" "^== ICD files found: $icd/nvidia_icd.json:$drv/nvidia_icd.json\$"
  has "$out/gate.log" "kiln devices --json, VK_DRIVER_FILES=$icd/nvidia_icd.json\$"
  has "$out/report.txt" "^gate: device [0-9]+: .* \(VK_DRIVER_FILES=$drv/nvidia_icd.json\)\$"
else
  fail "no lavapipe library found through /usr/share/vulkan/icd.d/lvp_icd.x86_64.json"
fi
has "$out/report.txt" '^gate: device [0-9]+ rendered a frame'

# every step's status
for s in gate cornell tests limits scene_memory batch_32_1_short batch_32_1 bench_gpu; do
  line=$(awk -F'\t' -v s="$s" '$1 == s' "$out/steps.tsv")
  [ -n "$line" ] || { fail "no status for step $s"; continue; }
  case $s in
    gate | cornell | tests | batch_*) [ "$(cut -f2 <<<"$line")" = ok ] || fail "step $s: $line" ;;
  esac
done
awk -F'\t' 'NF != 3 {exit 1}' "$out/steps.tsv" || fail "steps.tsv: a line without name, status and time"
has "$out/report.txt" '^cornell channel 2: kiln .*: pass$'
has "$out/report.txt" '^cornell check: passed'
has "$out/report.txt" 'reference means from tests/render/test_render.c'
has "$out/tests.log" '100% tests passed'
has "$out/report.txt" '^32x32, 1 spp, [0-9]+ frames: [0-9.]+ images/s steady \(after the first image\), [0-9.]+ images/s whole batch'
has "$out/report.txt" 'maxComputeSharedMemorySize'

# without --dry, the CPU device does not pass the gate: exit 3, and the diagnostics are still there
OUT=$work/out-gpu GPUKIT_BUDGET=60 bash "$src/tools/bench/gpu_kit.sh" run --kit "$kit" >"$work/gpu.txt" 2>&1
rc=$?
[ $rc = 3 ] || fail "a run without --dry on lavapipe exited $rc, not 3"
has "$work/gpu.txt" '^GATE FAILED'
has "$work/out-gpu/gate.log" 'VK_LOADER_DEBUG=error,warn,driver'
has "$work/out-gpu/steps.tsv" $'^gate\tfail'
[ ! -e "$work/out-gpu/tests.log" ] || fail "the tests ran after a failed gate"
[ ! -e "$kit/x" ] || fail "the unpacked kit is left after a run without GPUKIT_KEEP"

# the kit is 80 MiB: kept only when a check failed, beside the reports
[ $fails = 0 ] && rm -rf "$kit" "$work/drv" "$work/cache"
[ $fails = 0 ] && echo "gpukit: all checks passed" || echo "gpukit: $fails check(s) failed"
exit $((fails > 0))
