"""The examples in examples/python/, run as users run them."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, List

import pytest

SOURCE = Path(__file__).resolve().parents[2]
EXAMPLES = SOURCE / "examples" / "python"


def run_example(name: str, *args: str) -> subprocess.CompletedProcess:
    """Runs an example with this interpreter; PYTHONPATH and KILN_LIBRARY pass through."""
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], env=dict(os.environ),
                          capture_output=True, text=True, timeout=300)


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name.replace(".py", ""), EXAMPLES / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def torch_missing() -> bool:
    return importlib.util.find_spec("torch") is None


def test_dataset_example_writes_its_images_labels_and_manifest(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    r = run_example("dataset.py", "--count", "3", "--out", str(out), "--size", "32", "--spp", "1")
    assert r.returncode == 0, r.stderr
    assert "3 images written" in r.stdout
    lines = [json.loads(s) for s in (out / "images.jsonl").read_text().splitlines()]
    assert [x["name"] for x in lines] == ["000000", "000001", "000002"]
    assert all(set(x) == {"name", "seed", "camera", "materials"} for x in lines)
    assert len({tuple(x["camera"]["position"]) for x in lines}) == 3
    expected = {f"{x['name']}_{p}.png" for x in lines for p in ("color", "depth", "normal")}
    assert expected <= {p.name for p in out.iterdir()}
    for name in expected:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = [json.loads(s) for s in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(m["name"] for m in manifest) == ["000000", "000001", "000002"]

    # the same seed gives the same dataset; another seed another one
    again = tmp_path / "again"
    assert run_example("dataset.py", "--count", "3", "--out", str(again), "--size", "32",
                       "--spp", "1").returncode == 0
    assert (again / "images.jsonl").read_bytes() == (out / "images.jsonl").read_bytes()
    other = tmp_path / "other"
    assert run_example("dataset.py", "--count", "3", "--out", str(other), "--size", "32",
                       "--spp", "1", "--seed", "5", "--passes", "").returncode == 0
    assert (other / "images.jsonl").read_bytes() != (out / "images.jsonl").read_bytes()
    assert not (other / "000000_depth.png").exists()


def test_dataset_example_refuses_a_bad_count(tmp_path: Path) -> None:
    r = run_example("dataset.py", "--count", "0", "--out", str(tmp_path))
    assert r.returncode == 2 and "--count" in r.stderr


def test_render_stream_keeps_n_renders_in_flight() -> None:
    kiln = pytest.importorskip("kiln")
    if not hasattr(kiln, "Renderer") or not hasattr(kiln, "Scene"):
        pytest.skip("kiln.Renderer and kiln.Scene (the core package) are not available")
    module = load_example("torch_dataset.py")
    stream = module.RenderStream(7, size=24, spp=1, in_flight=3)
    stream.open()
    real = stream.renderer
    outstanding: List[int] = []
    consumed = [0]
    submitted = [0]

    class Spy:
        def submit(self, **kw: Any) -> Any:
            submitted[0] += 1
            outstanding.append(submitted[0] - consumed[0])
            return real.submit(**kw)

    stream.renderer = Spy()
    images = []
    for color in stream:
        consumed[0] += 1
        images.append(color)
    assert len(images) == 7
    assert all(c.shape == (24, 24, 3) and str(c.dtype) == "float32" for c in images)
    assert max(outstanding) == 3


@pytest.mark.skipif(torch_missing(), reason="torch is not importable (Debian: python3-torch)")
def test_torch_example_in_the_main_process_and_in_workers(tmp_path: Path) -> None:
    for workers in ("0", "2"):
        r = run_example("torch_dataset.py", "--count", "8", "--batch", "4", "--workers", workers,
                        "--size", "16", "--spp", "1")
        assert r.returncode == 0, r.stderr
        assert "8 images as (3, 16, 16) tensors" in r.stdout
