"""The cffi declarations against libkiln.so and the C headers they are copied from."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kiln import _ffi
from kiln._ffi import ffi, lib


def test_cdef_lists_functions() -> None:
    names = _ffi.cdef_functions()
    # a few that the package cannot work without, so the parser cannot silently find nothing
    for n in ("kiln_scene_load", "kiln_renderer_submit", "kiln_future_on_done", "kiln_version"):
        assert n in names, names


def test_every_declared_function_is_exported() -> None:
    missing = []
    for name in _ffi.cdef_functions():
        try:
            getattr(lib, name)
        except AttributeError:
            missing.append(name)
    assert missing == [], f"declared in _ffi.CDEF but not exported by {_ffi.library_path}"


def test_every_declared_function_is_in_a_header(source_dir: Path) -> None:
    headers = "".join(p.read_text() for p in (source_dir / "include" / "kiln").glob("*.h"))
    absent = [n for n in _ffi.cdef_functions() if not re.search(r"KILN_API[^;]*\b" + n + r"\(", headers)]
    assert absent == []


def _structs() -> list:
    text = re.sub(r"/\*.*?\*/", "", _ffi.CDEF, flags=re.S)
    return sorted(set(re.findall(r"}\s*(kiln_\w+)\s*;", text)) - {"kiln_gpu_log_level", "kiln_gpu_type",
                                                                   "kiln_renderer_scene_memory",
                                                                   "kiln_format", "kiln_shard_mode"})


def test_struct_layouts_match_the_headers(source_dir: Path, tmp_path: Path) -> None:
    """Sizes and field offsets of every struct in the cdef, as the C compiler lays them out."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to compare layouts with")
    lines = ['#include <stdio.h>', '#include <stddef.h>']
    lines += [f'#include "kiln/{h}.h"' for h in ("error", "sched", "scene", "image", "gpu", "render", "batch")]
    lines.append("int main(void) {")
    expected = []
    for s in _structs():
        t = ffi.typeof(s)
        lines.append(f'  printf("{s} %zu\\n", sizeof({s}));')
        expected.append(f"{s} {ffi.sizeof(t)}")
        for fname, f in t.fields:
            lines.append(f'  printf("{s}.{fname} %zu\\n", offsetof({s}, {fname}));')
            expected.append(f"{s}.{fname} {f.offset}")
    lines.append("  return 0;\n}")
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "layout"
    subprocess.run([cc, "-std=c11", "-I", str(source_dir / "include"), str(src), "-o", str(exe)],
                   check=True)
    got = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split("\n")
    assert [g for g in got if g] == expected


def test_enum_values_match(source_dir: Path) -> None:
    header = (source_dir / "include" / "kiln" / "error.h").read_text()
    for name, value in re.findall(r"X\((E\w+), (-\d+),", header):
        assert getattr(lib, "KILN_" + name) == int(value), name


def test_declared_enum_constants_match(source_dir: Path, tmp_path: Path) -> None:
    """The enum constants the binding declares have the values the C compiler gives them."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to compare enum values with")
    text = re.sub(r"/\*.*?\*/", "", _ffi.CDEF, flags=re.S)
    names = sorted(set(re.findall(r"\b(KILN_(?:GPU_TYPE|FORMAT|SHARD|PASS|RENDERER_SCENE)_\w+)\b", text)))
    assert names, "no enum constants found in the cdef"
    lines = ['#include <stdio.h>', '#include "kiln/batch.h"', "int main(void) {"]
    lines += [f'  printf("%lld\\n", (long long){n});' for n in names] + ["  return 0;", "}"]
    src = tmp_path / "enums.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "enums"
    subprocess.run([cc, "-std=c11", "-I", str(source_dir / "include"), str(src), "-o", str(exe)],
                   check=True)
    got = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
    assert [f"{n} {g}" for n, g in zip(names, got)] == [f"{n} {getattr(lib, n)}" for n in names]
