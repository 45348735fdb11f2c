"""kiln: a Vulkan compute path tracer, from Python.

Thin over libkiln.so (cffi, ABI mode: no compiler needed). Works with any CPython >= 3.9 that has
numpy and cffi. The library is found through KILN_LIBRARY (a path to libkiln.so), next to an
installed package, or the dynamic loader's search path.

    import kiln
    scene = kiln.Scene.load("examples/cornell/scene.json")
    with kiln.Renderer(scene) as r:
        frame = r.render(spp=4, camera={"position": [0.3, 0.3, -0.7]})
        rgb = frame.color          # float32 (H, W, 3), linear, a view of kiln's image

Fork safety: a Renderer is bound to its process; open one per DataLoader worker in
``worker_init_fn``.
"""

from ._core import Camera, Device, Frame, Renderer, Scene, devices
from . import _ffi
from .errors import DeviceError, JobError, KilnError, RenderError, SceneError
from .batch import render_job
from .job import Job


def _version() -> str:
    s = _ffi.ffi.new("const char **")
    _ffi.lib.kiln_version(s)
    return _ffi.ffi.string(s[0]).decode()


__version__: str = _version()

__all__ = [
    "Camera",
    "Device",
    "DeviceError",
    "Frame",
    "Job",
    "JobError",
    "KilnError",
    "RenderError",
    "Renderer",
    "Scene",
    "SceneError",
    "__version__",
    "devices",
    "render_job",
]
