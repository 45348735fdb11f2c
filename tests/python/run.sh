#!/usr/bin/env bash
# tests/python/run.sh: the Python package's pytest suite, against the build tree or an installed
# copy, with the interpreter the Python packages were installed for (Debian's /usr/bin/python3 by
# default: python3 on PATH may be another one, without cffi and numpy). Says which interpreter
# it used; fails, never skips, when that interpreter lacks cffi, numpy or pytest.
#
#   run.sh build     BUILD_DIR SOURCE_DIR PYTHON KILN_CLI TEST_FILE   python/kiln from the source tree,
#                                                                     libkiln.so from the build tree
#   run.sh installed BUILD_DIR SOURCE_DIR PYTHON KILN_CLI TEST_FILE   `cmake --install` into a
#                                                                     temporary prefix; the package
#                                                                     finds its library by itself
set -euo pipefail
mode=${1:?usage: run.sh build|installed BUILD_DIR SOURCE_DIR PYTHON KILN_CLI TEST_FILE}
build=${2:?} src=${3:?} py=${4:?} cli=${5:?} file=${6:?}

"$py" - <<'PYEOF' || { echo "FAIL: $py cannot import cffi, numpy and pytest (tools/install-deps installs python3-cffi, python3-numpy, python3-pytest for Debian's /usr/bin/python3; configure with -DKILN_PYTHON=... for another interpreter)" >&2; exit 1; }
import sys, cffi, numpy, pytest
print(f"python tests: {sys.executable} {sys.version.split()[0]}, cffi {cffi.__version__}, "
      f"numpy {numpy.__version__}, pytest {pytest.__version__}")
PYEOF

export KILN_CLI=$cli KILN_SOURCE_DIR=$src
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-python.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if [ "$mode" = build ]; then
  export PYTHONPATH=$src/python KILN_LIBRARY=$build/libkiln.so
else
  cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; exit 1; }
  site=$(find "$tmp/prefix" -type d -name kiln -path '*dist-packages*' | head -n1)
  [ -n "$site" ] || { echo "FAIL: the package kiln was not installed under $tmp/prefix" >&2; exit 1; }
  export PYTHONPATH=${site%/kiln}
  unset KILN_LIBRARY
  where=$(cd "$tmp" && "$py" -c 'import kiln, kiln._ffi as f; print(kiln.__file__); print(f.library_path)')
  echo "python tests: installed copy: $where"
  case "$where" in
    "$tmp/prefix"*"$tmp/prefix"*) ;;
    *) echo "FAIL: kiln or its library did not come from the installed copy: $where" >&2; exit 1 ;;
  esac
fi
# from a folder of its own, so that nothing is imported from the current folder by accident
cd "$tmp"
exec "$py" -m pytest -q -p no:cacheprovider -o "testpaths=" "$src/python/tests/$file"
