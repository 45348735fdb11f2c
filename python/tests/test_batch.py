"""kiln.render_job: batches from job files, dicts, kiln.Job and generators; progress; errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest

from kiln import batch as kbatch
from kiln.batch import DeviceError, JobError, render_job
from kiln.job import Job

SOURCE = Path(__file__).resolve().parents[2]
CORNELL = SOURCE / "examples" / "cornell"
ORBIT = CORNELL / "orbit.json"
SMALL: Dict[str, Any] = {"size": (32, 32), "spp": 1}


def files(folder: Path) -> List[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


# ---- layouts -------------------------------------------------------------------------------------


# (the struct layouts of batch.h are checked with the rest of the binding in test_core_ffi.py)


# ---- running jobs --------------------------------------------------------------------------------


def test_job_file_writes_the_selected_frames(tmp_path: Path) -> None:
    s = render_job(ORBIT, tmp_path, frames="0:3", **SMALL)
    names = files(tmp_path)
    assert names == sorted(f"orbit_{f:05d}_{p}.png" for f in range(4)
                           for p in ("color", "depth", "normal"))
    assert (s["total"], s["written"], s["failed"], s["skipped"], s["files"]) == (4, 4, 0, 0, 12)
    assert s["bytes"] == sum((tmp_path / n).stat().st_size for n in names)
    assert s["stopped"] is False and s["failures"] == []
    assert s["wall_s"] > 0 and s["images_per_s"] > 0 and s["peak_rss_bytes"] > 0
    assert set(kbatch.SUMMARY_FIELDS) | {"failures"} == set(s)
    with open(tmp_path / "orbit_00000_color.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_options_range_template_format_passes_resume(tmp_path: Path) -> None:
    s = render_job(ORBIT, tmp_path, frames=range(2, 9, 3), template="f{frame}_{pass}.{ext}",
                   format="npy", passes=["albedo"], **SMALL)
    assert files(tmp_path) == sorted(f"f{f}_{p}.npy" for f in (2, 5, 8)
                                     for p in ("color", "albedo"))
    assert s["written"] == 3
    again = render_job(ORBIT, tmp_path, frames=range(2, 9, 3), template="f{frame}_{pass}.{ext}",
                       format="npy", passes="albedo", resume=True, **SMALL)
    assert (again["written"], again["skipped"]) == (0, 3)


def test_tar_shards_and_multilayer_exr(tmp_path: Path) -> None:
    import tarfile
    s = render_job(ORBIT, tmp_path, frames="0:2", format="exr-multi", tar=2, exr_half=True,
                   exr_compression="piz", **SMALL)
    assert (s["written"], s["failed"]) == (3, 0)
    assert files(tmp_path) == ["shard-000000.tar", "shard-000001.tar"]
    with tarfile.open(tmp_path / "shard-000000.tar") as t:
        assert sorted(t.getnames()) == ["00000.layers.exr", "00001.layers.exr"]
        assert t.extractfile("00000.layers.exr").read(4) == b"\x76\x2f\x31\x01"
    with pytest.raises(ValueError, match="exr_compression"):
        render_job(ORBIT, tmp_path / "x", exr_compression="dwaa", **SMALL)


def test_manifest_and_shard(tmp_path: Path) -> None:
    s = render_job(ORBIT, tmp_path, frames="0:5", shard="1/2", manifest="m.jsonl", **SMALL)
    assert s["written"] == 3 and s["manifest_status"] == 0
    rows = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert sorted(r["frame"] for r in rows) == [1, 3, 5]


def test_annotations_go_into_the_default_manifest(tmp_path: Path) -> None:
    s = render_job(ORBIT, tmp_path, frames="0:1", annotations=True, **SMALL)
    assert s["written"] == 2 and s["manifest_status"] == 0
    rows = [json.loads(line) for line in (tmp_path / "annotations.jsonl").read_text().splitlines()]
    assert sorted(r["frame"] for r in rows) == [0, 1]
    ids = json.loads((tmp_path / "ids.json").read_text())
    assert len(rows[0]["instances"]) == len(ids["instances"]) > 0
    assert len(rows[0]["camera"]["K"]) == 3 and (rows[0]["width"], rows[0]["height"]) == (32, 32)
    assert sum(i["px_visib"] for i in rows[0]["instances"]) > 0


def test_writer_coco_and_bop(tmp_path: Path) -> None:
    s = render_job(ORBIT, tmp_path / "c", frames="0:1", writer="coco", **SMALL)
    assert s["written"] == 2 and s["writer_status"] == 0 and s["writer_message"] == ""
    coco = json.loads((tmp_path / "c" / "coco.json").read_text())
    assert [i["id"] for i in coco["images"]] == [1, 2]
    assert coco["annotations"] and coco["categories"]
    s = render_job(ORBIT, tmp_path / "b", frames="0:0", writer="bop", **SMALL)
    assert s["writer_status"] == 0
    gt = json.loads((tmp_path / "b" / "bop" / "000000" / "scene_gt.json").read_text())
    assert list(gt) == ["0"] and gt["0"][0]["obj_id"] >= 1
    with pytest.raises(ValueError):
        render_job(ORBIT, tmp_path / "x", writer="yolo", **SMALL)


def test_dict_job_resolves_paths_against_base_dir_or_cwd(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    doc = {"scene": "examples/cornell/scene.json", "output": "a{frame}_{pass}.{ext}",
           "animation": {"frames": 2}}
    s = render_job(doc, tmp_path / "one", base_dir=SOURCE, **SMALL)
    assert s["written"] == 2 and files(tmp_path / "one") == ["a0_color.png", "a1_color.png"]
    monkeypatch.chdir(SOURCE)
    s = render_job(doc, tmp_path / "two", **SMALL)
    assert files(tmp_path / "two") == ["a0_color.png", "a1_color.png"]


def test_job_object_with_a_generator_of_images(tmp_path: Path) -> None:
    def images() -> Iterator[Dict[str, Any]]:
        for i, x in enumerate((0.25, 0.3)):
            yield {"name": f"view{i}", "seed": i, "camera": {"position": [x, 0.273, -0.8]},
                   "materials": {"red": {"albedo": [0.1, 0.2, 0.9]}}}

    job = Job(scene="scene.json", images=images(), output="{name}_{pass}.{ext}",
              base_dir=CORNELL)
    s = render_job(job, tmp_path, **SMALL)
    assert s["written"] == 2
    assert files(tmp_path) == ["view0_color.png", "view1_color.png"]


def test_numpy_values_in_overrides(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    img = {"name": "np", "seed": np.uint32(7),
           "camera": {"position": np.array([0.278, 0.273, -0.8], dtype=np.float32)}}
    s = render_job({"scene": str(CORNELL / "scene.json"), "output": "{name}_{pass}.{ext}",
                    "images": iter([img])}, tmp_path, **SMALL)
    assert s["written"] == 1 and files(tmp_path) == ["np_color.png"]


def test_a_generator_of_100000_images_is_streamed_in_flat_memory(tmp_path: Path) -> None:
    n = 100_000
    consumed = [0]

    def images() -> Iterator[Dict[str, Any]]:
        for i in range(n):
            consumed[0] += 1
            yield {"name": f"img{i:06d}", "seed": i,
                   "camera": {"position": [0.278 + (i % 97) * 1e-4, 0.273, -0.8]}}

    limit = 16 << 20
    # what holding the images would cost: the limit must be below it for the test to mean much
    tracemalloc.start()
    held = list(images())
    held_peak = tracemalloc.get_traced_memory()[1]
    del held
    tracemalloc.stop()
    assert held_peak > 2 * limit
    consumed[0] = 0

    tracemalloc.start()
    try:
        s = render_job({"scene": str(CORNELL / "scene.json"), "output": "{name}_{pass}.{ext}",
                        "images": images()}, tmp_path, frames="0:1", **SMALL)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert consumed[0] == n
    assert s["total"] == 2 and s["written"] == 2
    assert files(tmp_path) == ["img000000_color.png", "img000001_color.png"]
    assert peak < limit, f"{peak} bytes traced while streaming {n} images"


# ---- progress ------------------------------------------------------------------------------------


def test_progress_gets_one_event_per_frame_on_the_batch_thread(tmp_path: Path) -> None:
    events: List[Dict[str, Any]] = []
    threads = set()

    def progress(ev: Dict[str, Any]) -> None:
        events.append(ev)
        threads.add(threading.get_ident())

    s = render_job(ORBIT, tmp_path, frames="10:14", progress=progress, **SMALL)
    assert s["written"] == 5 and len(events) == 5
    assert sorted(e["frame"] for e in events) == [10, 11, 12, 13, 14]
    assert [e["done"] for e in events] == [1, 2, 3, 4, 5]
    assert all(e["status"] == 0 and e["total"] == 5 and e["message"] == "" for e in events)
    assert all(e["where"].endswith(f"orbit.json: frame {e['frame']}") for e in events)
    assert {e["name"] for e in events} == {f"{f:05d}" for f in range(10, 15)}
    assert threading.get_ident() not in threads


def test_failed_frames_are_reported_and_the_batch_goes_on(tmp_path: Path) -> None:
    (tmp_path / "orbit_00002_color.png").write_bytes(b"not this run's")
    statuses: Dict[int, int] = {}

    def progress(ev: Dict[str, Any]) -> None:
        statuses[ev["frame"]] = ev["status"]

    s = render_job(ORBIT, tmp_path, frames="0:3", passes=[],
                   template="orbit_{frame:05d}_{pass}.{ext}", progress=progress, **SMALL)
    assert (s["written"], s["failed"]) == (3, 1)
    assert statuses[2] < 0 and statuses[0] == statuses[1] == statuses[3] == 0
    [failure] = s["failures"]
    assert failure["frame"] == 2 and failure["where"].endswith("frame 2")
    assert "orbit_00002_color.png" in failure["message"] and failure["code"] < 0


class Boom(Exception):
    pass


def test_an_exception_in_progress_stops_the_batch_and_is_raised(tmp_path: Path) -> None:
    calls = [0]

    def progress(ev: Dict[str, Any]) -> None:
        calls[0] += 1
        raise Boom("stop here")

    with pytest.raises(Boom, match="stop here") as info:
        render_job(ORBIT, tmp_path, frames="0:59", in_flight=1, progress=progress, **SMALL)
    summary = info.value.summary  # type: ignore[attr-defined]
    assert summary["stopped"] is True
    assert summary["written"] < 60
    assert calls[0] == 1  # not called again once it raised


def test_ctrl_c_stops_the_batch_and_raises_keyboard_interrupt(
    tmp_path: Path, ctrl_c_at_first_frame: Callable[[Dict[str, Any]], None]
) -> None:
    progress = ctrl_c_at_first_frame
    with pytest.raises(KeyboardInterrupt) as info:
        render_job(ORBIT, tmp_path, frames="0:59", in_flight=1, progress=progress, **SMALL)
    summary = info.value.summary  # type: ignore[attr-defined]
    assert summary["stopped"] is True and 1 <= summary["written"] < 60


def test_the_gil_is_released_while_the_batch_renders(tmp_path: Path) -> None:
    """A Python thread woken by the first frame's event runs before the last frame's event:
    possible only if no thread holds the GIL while the frames between them render."""
    go, ran = threading.Event(), threading.Event()
    seen: List[bool] = []

    def other() -> None:
        go.wait()
        ran.set()

    t = threading.Thread(target=other)
    t.start()

    def progress(ev: Dict[str, Any]) -> None:
        if ev["done"] == 1:
            go.set()
        elif ev["done"] == ev["total"]:
            seen.append(ran.is_set())

    try:
        render_job(ORBIT, tmp_path, frames="0:4", in_flight=1, size=(96, 96), spp=4,
                   progress=progress)
    finally:
        go.set()
        t.join()
    assert seen == [True]


# ---- errors --------------------------------------------------------------------------------------


def test_a_bad_job_file_raises_job_error_with_its_location(tmp_path: Path) -> None:
    job = tmp_path / "job.json"
    job.write_text('{\n  "scene": "%s",\n  "animation": {"frames": 2},\n  "passes": ["nromal"]\n}\n'
                   % (CORNELL / "scene.json"))
    with pytest.raises(JobError) as info:
        render_job(job, tmp_path / "out", **SMALL)
    e = info.value
    assert str(e).startswith(f"{job}:4:")
    assert (e.file, e.line, e.path) == (str(job), 4, "passes[0]")
    assert "normal" in e.detail and e.code == -13
    assert not (tmp_path / "out").exists()


def test_a_bad_image_in_a_generator_names_its_position(tmp_path: Path) -> None:
    def images() -> Iterator[Dict[str, Any]]:
        for i in range(5):
            yield {"materials": {"white": {"albedo": [2, 0, 0] if i == 3 else [0.5, 0.5, 0.5]}}}

    with pytest.raises(JobError) as info:
        render_job({"scene": str(CORNELL / "scene.json"), "images": images()}, tmp_path, **SMALL)
    assert str(info.value).startswith("images[3]: materials.white.albedo")
    assert info.value.file == "images[3]"


def test_nan_and_wrong_types_in_images_raise(tmp_path: Path) -> None:
    scene = str(CORNELL / "scene.json")
    with pytest.raises(JobError, match=r"images\[1\]"):
        render_job({"scene": scene, "images": [{}, {"camera": {"vfov": float("nan")}}]}, tmp_path)
    with pytest.raises(TypeError, match=r"images\[0\]"):
        render_job({"scene": scene, "images": ["front"]}, tmp_path)
    with pytest.raises(TypeError, match=r"images\[0\]"):
        render_job({"scene": scene, "images": [{"seed": object()}]}, tmp_path)
    with pytest.raises(TypeError, match="images"):
        render_job({"scene": scene, "images": 42}, tmp_path)


def test_a_missing_job_file_raises_job_error(tmp_path: Path) -> None:
    with pytest.raises(JobError, match="nope.json"):
        render_job(tmp_path / "nope.json", tmp_path)


@pytest.mark.parametrize("options, error", [
    ({"frames": "x"}, ValueError), ({"frames": 1.5}, TypeError),
    ({"frames": range(5, 0)}, ValueError), ({"frames": True}, TypeError),
    ({"size": (0, 4)}, ValueError), ({"size": "4by4"}, ValueError), ({"spp": True}, TypeError),
    ({"passes": "nromal"}, ValueError), ({"format": "tif"}, ValueError),
    ({"resume": True, "overwrite": True}, ValueError), ({"device": 3.5}, TypeError),
    ({"shard": "2/2"}, ValueError), ({"shard_mode": "random"}, ValueError),
    ({"threads": 0}, ValueError), ({"in_flight": "4"}, TypeError), ({"progress": 3}, TypeError),
])
def test_bad_options_raise(tmp_path: Path, options: Dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        render_job(ORBIT, tmp_path, **options)


def test_bad_job_types_raise(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        render_job(42, tmp_path)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="scene"):
        render_job({"scene": {"objects": []}, "animation": {"frames": 1}}, tmp_path)


def test_a_device_that_matches_nothing_raises_device_error(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="no-such-device-xyz"):
        render_job(ORBIT, tmp_path, frames=0, device="no-such-device-xyz", **SMALL)


def test_a_template_outside_the_output_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(JobError, match="template"):
        render_job(ORBIT, tmp_path / "out", frames=0, template="../{frame}_{pass}.{ext}", **SMALL)
    assert not (tmp_path / "0_color.png").exists()


def test_devices_follow_the_schedulers_visibility_list(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA_VISIBLE_DEVICES=0 on a machine whose only Vulkan device is a CPU driver: no GPU is
    visible, so device="gpu" raises, and "auto" renders on the CPU device (as kiln render)."""
    import kiln

    if any(d.type != "cpu" for d in kiln.devices()):
        pytest.skip("this machine has a Vulkan device that is not a CPU driver")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(kiln.DeviceError):
        render_job(ORBIT, tmp_path / "gpu", frames="0:0", device="gpu", **SMALL)
    s = render_job(ORBIT, tmp_path / "auto", frames="0:0", **SMALL)
    assert s["written"] == 1
