# Thin wrapper over CMake + CTest. The real build lives in CMakeLists.txt.
#   make deps    install missing system packages (tools/install-deps)
#   make build   configure + build ./build (gcc, RelWithDebInfo, -Werror)
#   make test    four builds (gcc; the runtime alone, without Vulkan; clang + TSan; clang +
#                ASan/UBSan), ctest in each
#   make run     build, then render examples/cornell/orbit.json into ./out (kiln render)
#   make bench   Release build with the benchmarks (./build-bench), run them all (the cluster one
#                on a local Slurm too when run as root)
#   make fuzz    clang + ASan/UBSan + libFuzzer build (./build-fuzz), each fuzz target of
#                tests/fuzz for FUZZ_SECONDS (default 600), then executions and coverage per target
#   make clean   remove the build folders

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.ONESHELL:

CMAKE ?= cmake
CTEST ?= ctest
JOBS  ?= 2
GEN   := -G Ninja

BUILD_FLAGS := -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_WERROR=ON \
               -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++
TSAN_FLAGS  := -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" \
               -DKILN_WERROR=ON -DKILN_SANITIZE=thread \
               -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++
RUNTIME_FLAGS := -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_WERROR=ON -DKILN_BUILD_ENGINE=OFF \
               -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++
ASAN_FLAGS  := -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" \
               -DKILN_WERROR=ON -DKILN_SANITIZE=address \
               -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++

.PHONY: all deps build test run bench fuzz clean

all: build

deps:
	@tools/install-deps

build: deps
	$(CMAKE) -S . -B build $(GEN) $(BUILD_FLAGS)
	$(CMAKE) --build build

# Runs all three suites even when one fails, then prints one summary line and fails if any did.
# A suite that does not build or whose ctest gives no summary counts as one failure.
test: deps
	@passed=0; failed=0; broken=""
	suite() {  # suite DIR ENV... -- CMAKE_FLAGS...
	  local dir=$$1; shift
	  local envs=()
	  while [ "$$1" != "--" ]; do envs+=("$$1"); shift; done; shift
	  echo "=== $$dir: configure + build"
	  if ! $(CMAKE) -S . -B "$$dir" $(GEN) "$$@" || ! $(CMAKE) --build "$$dir"; then
	    broken="$$broken $$dir(build)"; failed=$$((failed + 1)); return 0
	  fi
	  echo "=== $$dir: ctest"
	  local log="$$dir/ctest-summary.log" rc=0
	  env "$${envs[@]}" $(CTEST) --test-dir "$$dir" --output-on-failure -j$(JOBS) 2>&1 | tee "$$log" || rc=$$?
	  local line p f m
	  line=$$(sed -n 's/.*tests passed, \([0-9][0-9]*\) tests\{0,1\} failed out of \([0-9][0-9]*\).*/\1 \2/p' "$$log" | tail -n1)
	  if [ -z "$$line" ]; then
	    broken="$$broken $$dir(no ctest summary)"; failed=$$((failed + 1)); return 0
	  fi
	  read -r f m <<<"$$line"; p=$$((m - f))
	  passed=$$((passed + p)); failed=$$((failed + f))
	  if [ "$$rc" -ne 0 ] && [ "$$f" -eq 0 ]; then broken="$$broken $$dir(ctest rc=$$rc)"; failed=$$((failed + 1)); fi
	  return 0
	}
	suite build -- $(BUILD_FLAGS)
	suite build-runtime -- $(RUNTIME_FLAGS)
	suite build-tsan TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/tsan.supp -- $(TSAN_FLAGS)
	suite build-asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 -- $(ASAN_FLAGS)
	if [ -n "$$broken" ]; then echo "make test: broken:$$broken"; fi
	echo "make test: $$passed passed, $$failed failed"
	[ "$$failed" -eq 0 ] && [ -z "$$broken" ]

# The main job: 120 frames of the Cornell box (256x256, 16 spp, colour + depth + normal PNGs) into
# out/, with progress, a summary and a contact sheet. --overwrite: a second `make run` renders again.
run: build
	./build/tools/kiln render examples/cornell/orbit.json -o out --overwrite --contact-sheet contact_sheet.png

bench: deps
	@$(CMAKE) -S . -B build-bench $(GEN) -DCMAKE_BUILD_TYPE=Release -DKILN_BUILD_BENCH=ON
	$(CMAKE) --build build-bench
	for b in sched lock queue proc shm fiber gevent io png texture load gpu gpu-await render instances batch; do
	  exe=build-bench/tools/bench/kiln-bench-$$b
	  if [ -x "$$exe" ]; then echo "=== kiln-bench-$$b"; "$$exe"; fi
	done
	echo "=== kiln-bench-isolate"
	python3 tools/bench/isolate.py build-bench/tools/kiln
	echo "=== kiln-bench-overrides"
	python3 tools/bench/overrides.py build-bench/tools/kiln
	echo "=== kiln-bench-cluster"
	python3 tools/bench/cluster.py build-bench/tools/kiln $(if $(filter 0,$(shell id -u)),--slurm,)

# Every target of tests/fuzz/CMakeLists.txt in turn, one at a time, each for FUZZ_SECONDS with its
# dictionary; new inputs go to build-fuzz/corpus/<target> (the seeds and past findings are read,
# never written), crashes to build-fuzz/findings/<target>/. FUZZ_TARGETS picks some; FUZZ_ARGS
# adds libFuzzer options (FUZZ_ARGS="-fork=1 -ignore_crashes=1" goes on past findings). Fails if
# any target found something: move the input into tests/fuzz/regressions/<target>/ once it is
# fixed (tests/fuzz/README.md).
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= scene job joblist template obj ply gltf png jpeg hdr exr
FUZZ_ARGS    ?=
# the targets write each input to a file there: memory, where there is a tmpfs
FUZZ_TMPDIR  ?= $(if $(wildcard /dev/shm/.),/dev/shm,/tmp)
FUZZ_FLAGS := -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" \
              -DKILN_WERROR=ON -DKILN_SANITIZE=address -DKILN_FUZZ=ON \
              -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++
fuzz: deps
	@echo "=== build-fuzz: configure + build"
	$(CMAKE) -S . -B build-fuzz $(GEN) $(FUZZ_FLAGS)
	$(CMAKE) --build build-fuzz --target $(addprefix fuzz_,$(FUZZ_TARGETS))
	declare -A dict=([scene]=json [job]=json [joblist]=json [template]=template [obj]=obj [ply]=ply
	                 [gltf]=gltf [png]=png [jpeg]=jpeg [hdr]=hdr [exr]=exr)
	declare -A maxlen=([scene]=16384 [job]=8192 [joblist]=16384 [template]=512 [obj]=16384
	                   [ply]=16384 [gltf]=16384 [png]=16384 [jpeg]=16384 [hdr]=16384 [exr]=16384)
	summary=(); found=0
	for t in $(FUZZ_TARGETS); do
	  corpus=build-fuzz/corpus/$$t findings=build-fuzz/findings/$$t log=build-fuzz/fuzz-$$t.log
	  mkdir -p "$$corpus" "$$findings"
	  dirs=("$$corpus" tests/fuzz/seeds/$$t)
	  if [ -d tests/fuzz/regressions/$$t ]; then dirs+=(tests/fuzz/regressions/$$t); fi
	  echo "=== fuzz_$$t: $(FUZZ_SECONDS) s"
	  rc=0; stamp=build-fuzz/fuzz-$$t.start; touch "$$stamp"
	  TMPDIR=$(FUZZ_TMPDIR) ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    build-fuzz/tests/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	      -rss_limit_mb=2048 -max_len=$${maxlen[$$t]} -dict=tests/fuzz/dict/$${dict[$$t]}.dict \
	      -print_final_stats=1 -artifact_prefix=$$findings/ $(FUZZ_ARGS) \
	      "$${dirs[@]}" > "$$log" 2>&1 || rc=$$?
	  execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' "$$log" | tail -n1)
	  if [ -z "$$execs" ]; then execs=$$(grep -o '^#[0-9]*' "$$log" | tail -n1 | tr -d '#'); fi
	  cov=$$(grep -o 'cov: [0-9]*' "$$log" | tail -n1 | cut -d' ' -f2)
	  ft=$$(grep -o 'ft: [0-9]*' "$$log" | tail -n1 | cut -d' ' -f2)
	  corp=$$(ls "$$corpus" | wc -l)
	  status=ok
	  new=$$(find "$$findings" -type f -newer "$$stamp" | wc -l)
	  if [ "$$rc" -ne 0 ] || [ "$$new" -ne 0 ]; then
	    status="FOUND: $$new new inputs in $$findings/ (rc $$rc), see $$log"
	    found=$$((found + 1))
	    grep -m1 -E 'ERROR: |runtime error|Timeout|out-of-memory' "$$log" || true
	  fi
	  summary+=("$$(printf '%-9s %12s execs  cov %6s  ft %7s  corpus %6s  %s' \
	            "$$t" "$${execs:-?}" "$${cov:-?}" "$${ft:-?}" "$$corp" "$$status")")
	done
	echo "=== make fuzz: $(FUZZ_SECONDS) s per target"
	printf '%s\n' "$${summary[@]}"
	[ "$$found" -eq 0 ]

clean:
	rm -rf build build-runtime build-tsan build-asan build-bench build-fuzz
