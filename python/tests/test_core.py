"""kiln's Python core: devices, scenes, the renderer, frames, futures, fork and memory safety."""

from __future__ import annotations

import concurrent.futures
import gc
import json
import os
import subprocess
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

import kiln

SMALL = dict(width=24, height=16, spp=2)


# ---- package and devices ---------------------------------------------------------------------


def test_version_is_the_library_version(source_dir: Path) -> None:
    header = (source_dir / "include" / "kiln" / "version.h").read_text()
    parts = [header.split(f"#define KILN_VERSION_{k} ")[1].split()[0] for k in ("MAJOR", "MINOR", "PATCH")]
    assert kiln.__version__ == ".".join(parts)


def test_public_names_have_docstrings() -> None:
    for name in kiln.__all__:
        if name.startswith("__"):
            continue
        obj = getattr(kiln, name)
        assert obj.__doc__, name


def test_devices_lists_a_usable_device() -> None:
    devs = kiln.devices()
    assert devs and all(isinstance(d, kiln.Device) for d in devs)
    assert [d.index for d in devs] == list(range(len(devs)))
    assert any(d.usable for d in devs)
    for d in devs:
        assert d.type in ("discrete", "integrated", "virtual", "cpu", "other")
        assert d.name and d.api_version.count(".") == 2 and d.uuid.startswith("GPU-")


def test_renderer_reports_its_devices(renderer: kiln.Renderer) -> None:
    opened = renderer.devices
    assert opened and all(d.usable for d in opened)
    if opened[0].type == "cpu":  # opened twice, as kiln render does
        assert len(opened) == 2 and opened[0].index == opened[1].index


def test_unknown_device_raises(cornell_scene: kiln.Scene) -> None:
    with pytest.raises(kiln.DeviceError, match="nosuchdevice"):
        kiln.Renderer(cornell_scene, device="nosuchdevice")


# ---- scenes ----------------------------------------------------------------------------------


def test_scene_load_properties(cornell: Path) -> None:
    s = kiln.Scene.load(cornell)
    doc = json.loads(cornell.read_text())
    assert (s.width, s.height, s.spp) == (doc["settings"]["width"], doc["settings"]["height"],
                                          doc["settings"]["spp"])
    assert s.seed == doc["settings"]["seed"] and s.max_bounces == doc["settings"]["max_bounces"]
    assert len(s.object_names) == s.info["nobjects"] > 0
    assert "floor" in s.object_names
    assert s.camera.position == tuple(doc["camera"]["position"])
    assert s.document == doc
    assert s.base_dir == str(cornell.parent)


def test_scene_from_dict_with_base_dir_and_numpy_values(cornell: Path) -> None:
    doc = json.loads(cornell.read_text())
    doc["settings"]["width"] = np.int64(40)
    doc["camera"]["position"] = np.array(doc["camera"]["position"], dtype=np.float32)
    s = kiln.Scene.from_dict(doc, base_dir=cornell.parent)
    assert s.width == 40
    assert s.object_names == kiln.Scene.load(cornell).object_names  # the mesh was found


def test_scene_from_dict_relative_mesh_needs_base_dir(cornell: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(kiln.SceneError) as e:
        kiln.Scene.from_dict(json.loads(cornell.read_text()))
    assert "cornell.obj" in str(e.value)


def _broken_scene(cornell: Path, tmp_path: Path) -> Path:
    text = cornell.read_text()
    needle = '"albedo": [0.63, 0.065, 0.05]'
    assert needle in text
    p = tmp_path / "scene.json"
    p.write_text(text.replace(needle, needle + ', "roughness": 2'))
    return p


def test_located_scene_error(cornell: Path, tmp_path: Path) -> None:
    p = _broken_scene(cornell, tmp_path)
    line = next(i for i, l in enumerate(p.read_text().split("\n"), 1) if '"roughness": 2' in l)
    with pytest.raises(kiln.SceneError) as e:
        kiln.Scene.load(p)
    err = e.value
    assert (err.file, err.line, err.path) == (str(p), line, "materials.red.roughness")
    assert err.column > 0
    assert str(err).startswith(f"{p}:{line}:{err.column}: materials.red.roughness: ")
    assert err.code_name == "KILN_EPARSE" and isinstance(err, kiln.KilnError)


def test_scene_from_dict_error_is_located_in_its_name() -> None:
    with pytest.raises(kiln.SceneError) as e:
        kiln.Scene.from_dict({"camera": {"position": [0, 0, 0]}}, name="gen.json")
    assert e.value.file == "gen.json" and e.value.line == 1 and e.value.path == "camera"


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(kiln.SceneError, match="cannot open") as e:
        kiln.Scene.load(tmp_path / "nope.json")
    assert e.value.code_name == "KILN_EIO"


@pytest.mark.parametrize("bad", [None, 3, b"scene.json", ["scene.json"]])
def test_scene_load_wrong_type(bad: Any) -> None:
    with pytest.raises(TypeError):
        kiln.Scene.load(bad)


def test_scene_from_dict_refuses_bad_input() -> None:
    with pytest.raises(TypeError):
        kiln.Scene.from_dict([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="JSON"):
        kiln.Scene.from_dict({"settings": {"exposure": float("nan")}})
    with pytest.raises(TypeError):
        kiln.Scene()


# ---- rendering -------------------------------------------------------------------------------


def test_scene_warnings_name_the_mtl_line(tmp_path: Path) -> None:
    (tmp_path / "m.mtl").write_text("newmtl a\nKd 0.5 0.5 0.5\nPs 0.3\nPs 0.3\n")
    (tmp_path / "m.obj").write_text("mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nusemtl a\nf 1 2 3\n")
    d = {"camera": {"position": [0, 0, -3], "look_at": [0, 0, 0]},
         "objects": [{"type": "mesh", "file": "m.obj"}, {"type": "mesh", "file": "m.obj"}]}
    s = kiln.Scene.from_dict(d, base_dir=tmp_path)
    mtl = str(tmp_path / "m.mtl")
    assert s.warnings == [f"{mtl}:3: Ps is not rendered by kiln: ignored",
                          f"{mtl}:4: Ps is not rendered by kiln: ignored"]
    s.warnings.clear()
    assert len(s.warnings) == 2
    d["objects"][0]["material"] = d["objects"][1]["material"] = {"type": "diffuse"}
    assert kiln.Scene.from_dict(d, base_dir=tmp_path).warnings == []  # the MTL is not used


def test_render_planes_shapes_and_dtypes(renderer: kiln.Renderer) -> None:
    f = renderer.render(**SMALL)
    h, w = SMALL["height"], SMALL["width"]
    expect = {"color": ((h, w, 3), np.float32), "depth": ((h, w), np.float32),
              "normal": ((h, w, 3), np.float32), "albedo": ((h, w, 3), np.float32),
              "object_id": ((h, w), np.uint32), "instance_id": ((h, w), np.uint32),
              "uv": ((h, w, 2), np.float32)}
    for name, (shape, dtype) in expect.items():
        a = getattr(f, name)
        assert a.shape == shape and a.dtype == dtype, name
        assert f[name] is a  # one view per plane
    assert (f.width, f.height, f.spp) == (w, h, SMALL["spp"])
    assert f.object_id.max() >= 1 and np.isfinite(f.color).all()
    assert set(f.keys()) == set(expect)
    assert (f.uv[f.object_id == 0] == 0).all()  # background


def test_arrays_view_the_image_without_a_copy(renderer: kiln.Renderer) -> None:
    f = renderer.render(**SMALL)
    assert not f.color.flags.owndata
    ptr = kiln._ffi.ffi.cast("uintptr_t", f._image.info.color)
    assert f.color.__array_interface__["data"][0] == int(ptr)


def _cli_frames(kiln_cli: Path, tmp_path: Path, cornell: Path, images: List[Dict[str, Any]],
                spp: int, size: str) -> Path:
    job = {"scene": str(cornell), "output": "{name}_{pass}.{ext}", "format": "npy",
           "passes": ["depth", "normal", "albedo", "id", "instance"], "images": images}
    jp = tmp_path / "job.json"
    jp.write_text(json.dumps(job))
    out = tmp_path / "out"
    subprocess.run([str(kiln_cli), "render", str(jp), "-o", str(out), "--spp", str(spp),
                    "--size", size, "--quiet"], check=True, timeout=300)
    return out


def test_same_bits_as_kiln_render(renderer: kiln.Renderer, kiln_cli: Path, tmp_path: Path,
                                  cornell: Path) -> None:
    cam = {"position": [0.3, 0.28, -0.7], "vfov": 35}
    ovr = {"materials": {"red": {"albedo": [0.1, 0.2, 0.9]}},
           "lights": {"light": {"radiance": [8, 8, 8]}}}
    images = [{"name": "plain", "frame": 2},
              {"name": "cam", "frame": 3, "seed": 11, "camera": cam},
              dict({"name": "ovr", "frame": 5}, **ovr)]
    out = _cli_frames(kiln_cli, tmp_path, cornell, images, spp=3, size="20x12")
    ours = {
        "plain": renderer.render(frame=2, spp=3, width=20, height=12),
        "cam": renderer.render(frame=3, seed=11, camera=cam, spp=3, width=20, height=12),
        "ovr": renderer.render(overrides=dict({"frame": 5}, **ovr), spp=3, width=20, height=12),
    }
    files = {"color": "color", "depth": "depth", "normal": "normal", "albedo": "albedo",
             "object_id": "id", "instance_id": "instance"}
    for name, f in ours.items():
        for plane, suffix in files.items():
            theirs = np.load(out / f"{name}_{suffix}.npy")
            assert theirs.dtype == f[plane].dtype and theirs.shape == f[plane].shape
            assert np.array_equal(theirs, f[plane]), (name, plane)
    assert not np.array_equal(ours["plain"].color, ours["ovr"].color)


def test_render_arguments_change_the_image(renderer: kiln.Renderer) -> None:
    base = renderer.render(**SMALL).color
    assert np.array_equal(base, renderer.render(**SMALL).color)  # deterministic
    assert not np.array_equal(base, renderer.render(seed=1, **SMALL).color)
    assert not np.array_equal(base, renderer.render(frame=1, **SMALL).color)
    moved = renderer.render(camera={"position": [0.2, 0.3, -0.75]}, **SMALL)
    assert not np.array_equal(base, moved.color)
    same = renderer.render(camera=renderer.scene.camera, **SMALL)
    assert np.array_equal(base, same.color)


def test_camera_dataclass_and_thin_lens(renderer: kiln.Renderer) -> None:
    c = kiln.Camera(position=(0.278, 0.273, -0.8), look_at=(0.278, 0.273, 0.28), aperture=0.02)
    assert c.thin_lens and c.to_dict()["type"] == "thin_lens"
    f = renderer.render(camera=c, **SMALL)
    assert np.isfinite(f.color).all()
    pin = kiln.Camera.from_dict({"type": "pinhole"}, base=c)
    assert not pin.thin_lens


def test_render_overrides_unknown_names_raise(renderer: kiln.Renderer) -> None:
    with pytest.raises(kiln.SceneError, match="no object named 'bal'"):
        renderer.render(overrides={"objects": {"bal": {"material": "red"}}}, **SMALL)
    with pytest.raises(ValueError, match="unknown key"):
        renderer.render(overrides={"objetcs": {}}, **SMALL)
    with pytest.raises(kiln.SceneError, match="roughness"):
        renderer.render(overrides={"materials": {"red": {"roughness": 3}}}, **SMALL)


def test_scene_patched_keeps_the_original(cornell_scene: kiln.Scene) -> None:
    p = cornell_scene.patched({"environment": {"color": [1, 1, 1]}})
    assert p.document["environment"]["color"] == [1, 1, 1]
    assert cornell_scene.document["environment"]["color"] == [0, 0, 0]


NAN = float("nan")


@pytest.mark.parametrize(
    "kwargs, exc",
    [
        (dict(spp="4"), TypeError),
        (dict(spp=1.5), TypeError),
        (dict(spp=True), TypeError),
        (dict(spp=0), ValueError),
        (dict(width=-1), ValueError),
        (dict(height=20000), ValueError),
        (dict(seed=-1), ValueError),
        (dict(seed=1 << 32), ValueError),
        (dict(frame=1 << 40), ValueError),
        (dict(camera={"position": [NAN, 0, 0]}), ValueError),
        (dict(camera={"position": [float("inf"), 0, 0]}), ValueError),
        (dict(camera={"position": [0, 0]}), ValueError),
        (dict(camera={"position": "abc"}), TypeError),
        (dict(camera={"position": [0, "a", 0]}), TypeError),
        (dict(camera={"vfov": 180}), ValueError),
        (dict(camera={"vfov": NAN}), ValueError),
        (dict(camera={"look_at": [0.278, 0.273, -0.8]}), ValueError),  # at position
        (dict(camera={"up": [0, 0, 1]}), ValueError),  # parallel to the view
        (dict(camera={"focal": 3}), ValueError),
        (dict(camera=[1, 2, 3]), TypeError),
        (dict(camera={"type": "thin_lens"}), ValueError),  # no aperture
        (dict(overrides=[1]), TypeError),
        (dict(overrides={"materials": {"red": 3}}), kiln.SceneError),
    ],
)
def test_bad_input_raises(renderer: kiln.Renderer, kwargs: Dict[str, Any], exc: type) -> None:
    with pytest.raises(exc):
        renderer.render(**kwargs)
    with pytest.raises(exc):
        renderer.submit(**kwargs)


def test_renderer_bad_arguments(cornell_scene: kiln.Scene) -> None:
    with pytest.raises(TypeError):
        kiln.Renderer("scene.json")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        kiln.Renderer(cornell_scene, device=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        kiln.Renderer(cornell_scene, threads=0)


def test_frame_writes_png(renderer: kiln.Renderer, tmp_path: Path) -> None:
    f = renderer.render(**SMALL)
    f.write_png(tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- futures ---------------------------------------------------------------------------------


def test_submit_as_completed_and_wait(renderer: kiln.Renderer) -> None:
    futs = {renderer.submit(frame=i, **SMALL): i for i in range(6)}
    assert all(isinstance(f, concurrent.futures.Future) for f in futs)
    seen = []
    for f in concurrent.futures.as_completed(futs, timeout=120):
        frame = f.result()
        seen.append(frame.frame)
        assert frame.frame == futs[f]
        assert np.array_equal(frame.color, renderer.render(frame=futs[f], **SMALL).color)
    assert sorted(seen) == list(range(6))
    more = [renderer.submit(seed=s, **SMALL) for s in range(3)]
    done, not_done = concurrent.futures.wait(more, timeout=120)
    assert len(done) == 3 and not not_done


def test_submit_with_overrides_matches_render(renderer: kiln.Renderer) -> None:
    ovr = {"lights": {"light": {"radiance": [3, 3, 3]}}, "frame": 4}
    fut = renderer.submit(overrides=ovr, **SMALL)
    assert np.array_equal(fut.result(timeout=120).color, renderer.render(overrides=ovr, **SMALL).color)


def test_cancel_is_refused_and_the_frame_still_arrives(renderer: kiln.Renderer) -> None:
    fut = renderer.submit(**SMALL)
    assert fut.cancel() is False
    assert not fut.cancelled()
    assert fut.result(timeout=120).color.shape == (16, 24, 3)


def test_done_callbacks_run(renderer: kiln.Renderer) -> None:
    got: List[Any] = []
    ev = threading.Event()
    fut = renderer.submit(**SMALL)
    fut.add_done_callback(lambda f: (got.append(f.result().width), ev.set()))
    assert ev.wait(120) and got == [24]


# ---- lifetimes and memory ---------------------------------------------------------------------


def test_arrays_outlive_the_renderer(cornell_scene: kiln.Scene) -> None:
    r = kiln.Renderer(cornell_scene)
    f = r.render(**SMALL)
    fut = r.submit(seed=3, **SMALL)
    color, ids = f.color, f.object_id
    expect_c, expect_i = color.copy(), ids.copy()
    image = weakref.ref(f._image)
    r.close()
    del f, r
    gc.collect()
    assert np.array_equal(color, expect_c) and np.array_equal(ids, expect_i)
    assert fut.result().depth.shape == (16, 24)  # done before close returned
    assert image() is not None  # the arrays keep the image
    del color
    gc.collect()
    assert image() is not None
    del ids
    gc.collect()
    assert image() is None  # and nothing else does


def test_closed_renderer_refuses(cornell_scene: kiln.Scene) -> None:
    with kiln.Renderer(cornell_scene) as r:
        r.render(**SMALL)
    assert r.closed
    with pytest.raises(kiln.KilnError, match="closed"):
        r.render(**SMALL)
    r.close()  # idempotent


def test_collected_renderer_with_frames_in_flight(cornell_scene: kiln.Scene) -> None:
    r = kiln.Renderer(cornell_scene)
    futs = [r.submit(frame=i, **SMALL) for i in range(4)]
    del r
    gc.collect()
    assert [f.result(timeout=120).frame for f in futs] == [0, 1, 2, 3]


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc/self/statm")
def test_rss_stays_flat(renderer: kiln.Renderer) -> None:
    at_1000 = 0
    for i in range(10_000):
        f = renderer.render(width=16, height=16, spp=1, frame=i)
        assert f.color[0, 0, 0] >= 0
        if i == 999:
            gc.collect()
            at_1000 = _rss()
    gc.collect()
    at_10000 = _rss()
    # each leaked frame would hold 12 KiB of image: 10 MiB over the 9,000 renders
    assert at_10000 <= at_1000 * 1.10 + 8 * 2**20, (at_1000, at_10000)


# ---- fork and the GIL ------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_renderer_is_refused_after_fork(renderer: kiln.Renderer) -> None:
    renderer.render(**SMALL)  # its threads are running
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        code = 10
        try:
            try:
                renderer.render(**SMALL)
            except kiln.KilnError as e:
                code = 0 if ("fork" in str(e) and "worker_init_fn" in str(e)) else 11
            try:
                renderer.submit(**SMALL)
                code = 12
            except kiln.KilnError:
                pass
            renderer.close()  # forgets, never waits on the parent's threads
        except BaseException:
            code = 13
        os._exit(code)
    deadline = time.monotonic() + 60
    done, status = 0, 0
    while not done and time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if not done:
            time.sleep(0.01)  # polling a child process's exit, with a deadline
    if not done:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung using the parent's Renderer")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    assert renderer.render(**SMALL).width == 24  # the parent's is untouched


def test_gil_is_released_while_rendering(renderer: kiln.Renderer) -> None:
    stamps: List[float] = []
    stop = threading.Event()

    def count() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            if n % 200 == 0:
                stamps.append(time.monotonic())

    t = threading.Thread(target=count)
    t.start()
    try:
        deadline = time.monotonic() + 30
        while not stamps and time.monotonic() < deadline:
            pass  # the counter is running
        t0 = time.monotonic()
        renderer.render(width=128, height=128, spp=32)
        t1 = time.monotonic()
    finally:
        stop.set()
        t.join()
    assert t1 - t0 > 0.1, "the render was too short to tell"
    # With the GIL held during the call, the counter could run at most one switch interval
    # (5 ms) into it; released, it runs throughout.
    inside = [s for s in stamps if t0 + 0.05 < s < t1]
    assert len(inside) >= 10, (len(inside), t1 - t0)


def test_close_from_a_done_callback_is_refused(cornell_scene: kiln.Scene) -> None:
    r = kiln.Renderer(cornell_scene)
    got: List[Any] = []
    ev = threading.Event()

    def on_done(_f: Any) -> None:
        try:
            r.close()
            got.append(("closed", threading.current_thread() is threading.main_thread()))
        except kiln.KilnError as e:
            got.append(("refused", str(e)))
        ev.set()

    fut = r.submit(width=128, height=128, spp=32)  # long enough to add the callback first
    fut.add_done_callback(on_done)
    assert ev.wait(120)
    if got[0] == ("closed", True):
        r.close()
        pytest.skip("the frame finished before the callback was added")
    assert got[0][0] == "refused" and "done-callback" in got[0][1]
    r.close()
    assert r.closed
