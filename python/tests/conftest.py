"""Shared fixtures of the Python package's tests.

Paths come from this file's location, never from the current folder. The library is the one
KILN_LIBRARY names (the build tree's, or an installed copy's), else what kiln._ffi finds. The
CLI is KILN_CLI, else build/tools/kiln under the source folder."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator

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


@pytest.fixture
def ctrl_c_at_first_frame() -> Iterator[Callable[[Dict[str, Any]], None]]:
    """A progress callback that sends SIGINT to the process at the first frame's event and then
    holds the batch's event thread until the main thread has taken the signal, so that a fast
    batch cannot finish before Ctrl-C reaches it. Skips off the main thread (signals reach the
    main thread only). The previous SIGINT handler is restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    taken = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        taken.set()
        raise KeyboardInterrupt

    def progress(ev: Dict[str, Any]) -> None:
        if ev["done"] == 1:
            os.kill(os.getpid(), signal.SIGINT)
            assert taken.wait(60), "SIGINT not taken by the main thread within 60 s"

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield progress
    finally:
        signal.signal(signal.SIGINT, previous)
