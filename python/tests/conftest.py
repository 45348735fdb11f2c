"""Shared fixtures of the Python package's tests.

Paths come from this file's location, never from the current folder. The library is the one
KILN_LIBRARY names (the build tree's, or an installed copy's), else what kiln._ffi finds. The
CLI is KILN_CLI, else build/tools/kiln under the source folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

SOURCE_DIR = Path(__file__).resolve().parents[2]


def pytest_report_header(config: pytest.Config) -> str:
    import kiln._ffi

    return f"kiln: python {sys.executable} ({sys.version.split()[0]}), library {kiln._ffi.library_path}"


@pytest.fixture(scope="session")
def source_dir() -> Path:
    """The kiln source folder."""
    return SOURCE_DIR


@pytest.fixture(scope="session")
def cornell(source_dir: Path) -> Path:
    """examples/cornell/scene.json"""
    return source_dir / "examples" / "cornell" / "scene.json"


@pytest.fixture(scope="session")
def kiln_cli(source_dir: Path) -> Path:
    """The kiln CLI (KILN_CLI, else build/tools/kiln); skips when there is none."""
    p = Path(os.environ.get("KILN_CLI") or source_dir / "build" / "tools" / "kiln")
    if not (p.is_file() and os.access(p, os.X_OK)):
        pytest.skip(f"no kiln CLI at {p} (set KILN_CLI)")
    return p


@pytest.fixture(scope="session")
def cornell_scene(cornell: Path):
    import kiln

    return kiln.Scene.load(cornell)


@pytest.fixture(scope="module")
def renderer(cornell_scene) -> Iterator[object]:
    """One Renderer of the Cornell box for a test module."""
    import kiln

    r = kiln.Renderer(cornell_scene)
    yield r
    r.close()
