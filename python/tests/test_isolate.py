"""kiln.render_job(isolate=True): frames rendered in worker processes, which may crash, hang,
exit or lose their device; faults come from KILN_FAULT, as for ``kiln render --isolate``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest

from kiln import batch as kbatch
from kiln.batch import render_job

SOURCE = Path(__file__).resolve().parents[2]
ORBIT = SOURCE / "examples" / "cornell" / "orbit.json"
SMALL: Dict[str, Any] = {"size": (32, 32), "spp": 1}
ISOLATION = ("worker_starts", "worker_crashes", "worker_hangs", "worker_lost",
             "worker_recycles", "frames_retried", "incidents_dropped")
KILN_EKILLED = -18


def files(folder: Path) -> List[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def same_files(a: Path, b: Path) -> int:
    """How many files a and b hold, asserting the same names with the same bytes."""
    names = files(a)
    assert names == files(b)
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes(), n
    return len(names)


def children(pid: int) -> List[Tuple[int, str]]:
    """(pid, name) of the processes whose parent is pid, from /proc."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            out.append((int(d), name))
    return out


def workers() -> List[Tuple[int, str]]:
    """The processes the fork server of this interpreter runs (its workers)."""
    return [w for pid, name in children(os.getpid()) if name == "kiln-forkserver"
            for w in children(pid)]


@pytest.fixture(autouse=True)
def no_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KILN_FAULT", raising=False)


def test_isolate_writes_the_files_of_an_in_process_run(tmp_path: Path) -> None:
    ref = render_job(ORBIT, tmp_path / "ref", frames="0:3", **SMALL)
    events: List[Dict[str, Any]] = []
    s = render_job(ORBIT, tmp_path / "iso", frames="0:3", isolate=True, progress=events.append,
                   **SMALL)
    assert same_files(tmp_path / "ref", tmp_path / "iso") == 12
    assert (s["written"], s["failed"], s["failures"]) == (4, 0, [])
    assert set(kbatch.SUMMARY_FIELDS) | {"failures"} == set(s) == set(ref)
    # the keys are there without isolate too, zero
    assert [ref[k] for k in ISOLATION] == [0] * len(ISOLATION) and ref["incidents"] == []
    assert s["worker_starts"] >= 1
    assert [s[k] for k in ISOLATION[1:]] == [0] * (len(ISOLATION) - 1) and s["incidents"] == []
    assert sorted(e["frame"] for e in events) == [0, 1, 2, 3]
    assert [e["done"] for e in events] == [1, 2, 3, 4]
    assert all(e["status"] == 0 for e in events)
    # the fork server stays for later calls, the workers end with the call
    assert [n for _, n in children(os.getpid())] == ["kiln-forkserver"]
    assert workers() == []


def test_ctrl_c_stops_an_isolated_batch(
    tmp_path: Path, ctrl_c_at_first_frame: Callable[[Dict[str, Any]], None]
) -> None:
    progress = ctrl_c_at_first_frame
    with pytest.raises(KeyboardInterrupt) as info:
        render_job(ORBIT, tmp_path, frames="0:59", passes=[], in_flight=1, isolate=True,
                   progress=progress, **SMALL)
    summary = info.value.summary  # type: ignore[attr-defined]
    assert summary["stopped"] is True and 1 <= summary["written"] < 60
    assert summary["worker_starts"] >= 1 and summary["incidents"] == []
    assert len(files(tmp_path)) == summary["written"]
    assert workers() == []


def test_a_crash_and_a_hang_are_survived(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILN_FAULT", "segv@1,hang@4")
    ref = render_job(ORBIT, tmp_path / "ref", frames="0:5", passes=[], **SMALL)  # ignored here
    assert ref["written"] == 6 and ref["incidents"] == []
    s = render_job(ORBIT, tmp_path / "iso", frames="0:5", passes=[], isolate=True,
                   frame_timeout=8, **SMALL)
    assert same_files(tmp_path / "ref", tmp_path / "iso") == 6
    assert (s["written"], s["failed"], s["failures"]) == (6, 0, [])
    assert (s["worker_crashes"], s["worker_hangs"], s["frames_retried"]) == (1, 1, 2)
    assert s["worker_starts"] >= 3  # a worker per lane, and a replacement for each incident
    [crash] = [i for i in s["incidents"] if i.startswith("frame 1: ")]
    [hang] = [i for i in s["incidents"] if i.startswith("frame 4: ")]
    assert "render worker" in crash and "killed by SIGSEGV" in crash
    assert "hung (no answer in 8 s); killed" in hang
    assert len(s["incidents"]) == 2 and s["incidents_dropped"] == 0


def test_a_frame_failing_twice_fails_alone(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILN_FAULT", "segv!@2")
    statuses: Dict[int, int] = {}

    def progress(ev: Dict[str, Any]) -> None:
        statuses[ev["frame"]] = ev["status"]

    s = render_job(ORBIT, tmp_path, frames="0:3", passes=[], isolate=True, progress=progress,
                   **SMALL)
    assert (s["written"], s["failed"]) == (3, 1)
    assert files(tmp_path) == [f"orbit_{f:05d}_color.png" for f in (0, 1, 3)]
    [failure] = s["failures"]
    assert failure["frame"] == 2 and failure["code"] == KILN_EKILLED
    assert "killed by SIGSEGV (and again on a fresh worker)" in failure["message"]
    assert statuses == {0: 0, 1: 0, 2: KILN_EKILLED, 3: 0}
    assert (s["worker_crashes"], s["frames_retried"]) == (2, 1)


def test_exit_lost_device_and_recycling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILN_FAULT", "exit@3,lost@5")
    s = render_job(ORBIT, tmp_path, frames="0:7", passes=[], isolate=True, recycle=2, **SMALL)
    assert (s["written"], s["failed"]) == (8, 0)
    assert (s["worker_crashes"], s["worker_lost"], s["frames_retried"]) == (1, 1, 2)
    assert any(i.startswith("frame 3: ") and "exited with status 3" in i for i in s["incidents"])
    assert any(i.startswith("frame 5: ") and "lost its device" in i for i in s["incidents"])
    # 8 frames, each worker replaced after 2 of its own: at least 2 recycles, whatever the split
    assert s["worker_recycles"] >= 2
    assert s["worker_starts"] >= 3  # the lanes' workers, and replacements


@pytest.mark.parametrize("options, error, match", [
    ({"isolate": "yes"}, TypeError, "isolate"),
    ({"frame_timeout": 5}, ValueError, "isolate=True"),
    ({"recycle": 3}, ValueError, "isolate=True"),
    ({"isolate": True, "frame_timeout": 0}, ValueError, "frame_timeout"),
    ({"isolate": True, "frame_timeout": -1.5}, ValueError, "frame_timeout"),
    ({"isolate": True, "frame_timeout": float("nan")}, ValueError, "frame_timeout"),
    ({"isolate": True, "frame_timeout": "8"}, TypeError, "frame_timeout"),
    ({"isolate": True, "frame_timeout": True}, TypeError, "frame_timeout"),
    ({"isolate": True, "recycle": 0}, ValueError, "recycle"),
    ({"isolate": True, "recycle": 2.5}, TypeError, "recycle"),
])
def test_bad_isolation_options_raise(tmp_path: Path, options: Dict[str, Any], error: type,
                                     match: str) -> None:
    with pytest.raises(error, match=match):
        render_job(ORBIT, tmp_path / "out", frames="0:1", **options)
    assert not (tmp_path / "out").exists()


def test_a_bad_fault_list_raises_value_error(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILN_FAULT", "segv@x")
    with pytest.raises(ValueError, match=r"KILN_FAULT='segv@x': bad fault \"segv@x\""):
        render_job(ORBIT, tmp_path, frames="0:1", isolate=True, **SMALL)
    assert files(tmp_path) == []


FRESH = textwrap.dedent("""
    import sys, threading
    import numpy as np
    import kiln

    # threads besides the main one when the fork server starts: one busy in numpy, and the
    # threads of a live Renderer (lavapipe's too: Vulkan is already open)
    stop = threading.Event()

    def busy():
        a = np.full((96, 96), 1.0 / 96)
        while not stop.is_set():
            a = a @ a

    t = threading.Thread(target=busy)
    t.start()
    r = kiln.Renderer(kiln.Scene.load(sys.argv[3]))
    try:
        s = kiln.render_job(sys.argv[1], sys.argv[2], frames="0:1", size=(32, 32), spp=1,
                            passes=[], isolate=True)
    finally:
        stop.set()
        t.join()
        r.close()
    print("written", s["written"], "starts", s["worker_starts"], "crashes", s["worker_crashes"])
""")


def test_a_threaded_interpreter_with_vulkan_open_starts_its_workers(tmp_path: Path) -> None:
    """The fork server is a fork of the interpreter, started by the first isolate=True call: in a
    fresh interpreter (sys.executable, /usr/bin/python3 in make test) with numpy busy on another
    thread and a Renderer open, its workers still start and render."""
    script = tmp_path / "fresh.py"
    script.write_text(FRESH)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(script), str(ORBIT), str(out),
                        str(ORBIT.parent / "scene.json")],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    assert "written 2 starts" in r.stdout and "crashes 0" in r.stdout, r.stdout
    assert files(out) == ["orbit_00000_color.png", "orbit_00001_color.png"]
