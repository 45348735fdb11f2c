"""Scenes, devices, the renderer and its frames: the package's core, thin over libkiln.so.

Ownership. A rendered frame's image belongs to its C future (kiln/render.h: "owned by the
future"); a ``Frame`` and every numpy array taken from it view the image's planes in place and
hold one reference to that future, released when the last of them is collected. The image stays
valid after ``kiln_renderer_destroy`` (render.h), so arrays outlive the renderer.

Threads. C calls release the GIL (cffi does so for every call), so a render that blocks in
``kiln_future_result`` lets other Python threads run. ``submit``'s futures are completed by a
kiln thread (the renderer's finisher), which only builds the ``Frame`` (no pixel is touched) and
sets the ``concurrent.futures.Future``'s result; done-callbacks added with
``Future.add_done_callback`` run there too, so keep them short, and do not close the renderer from
one (that would wait for the very thread it runs on: refused with KilnError).

Fork. Threads do not survive ``fork()``: a Renderer made before a fork is refused in the child
(open one per process; for a PyTorch DataLoader, in ``worker_init_fn``). Objects inherited by the
child make no C calls when collected there (their memory is simply left to the child's exit).
"""

from __future__ import annotations

import concurrent.futures
import copy
import json
import math
import operator
import os
import threading
from dataclasses import dataclass, field
from typing import (
    Any,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Tuple,
    Union,
)

import numpy as np

from ._ffi import ffi, lib
from .errors import (
    DeviceError,
    KilnError,
    RenderError,
    SceneError,
    check,
    strerror,
)

__all__ = ["Camera", "Device", "Frame", "Renderer", "Scene", "devices"]

PathLike = Union[str, "os.PathLike[str]"]
Vec3 = Tuple[float, float, float]

FORK_MESSAGE = (
    "this Renderer was opened before fork(); open a Renderer in each process "
    "(DataLoader: worker_init_fn)"
)

# Value ranges, as the scene format and the job format give them (docs/SCENE.md, docs/JOBS.md).
_MAX_SIZE = 16384
_MAX_SPP = 1 << 24
_MAX_BOUNCES = 1024
_U32 = (1 << 32) - 1

_tls = threading.local()  # .in_done: the thread is running one of our done-callbacks


# ---- small validators -----------------------------------------------------------------------


def _int(name: str, value: Any, lo: int, hi: int) -> int:
    """value as an int in [lo, hi]: TypeError for a non-integer (bool included), else ValueError."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}") from None
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], not {v}")
    return v


def _real(name: str, value: Any) -> float:
    """value as a finite float: TypeError for a non-number, ValueError for NaN or infinity."""
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, not {v}")
    return v


def _vec3(name: str, value: Any) -> Vec3:
    """value as 3 finite floats (a list, tuple or numpy array)."""
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__len__"):
        raise TypeError(f"{name} must be a sequence of 3 numbers, not {type(value).__name__}")
    if len(value) != 3:
        raise ValueError(f"{name} must have 3 components, not {len(value)}")
    return (
        _real(f"{name}[0]", value[0]),
        _real(f"{name}[1]", value[1]),
        _real(f"{name}[2]", value[2]),
    )


def _fspath(name: str, value: Any) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), not {type(value).__name__}")
    p = os.fspath(value)
    if not isinstance(p, str):
        raise TypeError(f"{name} must be a str path, not {type(p).__name__}")
    if "\0" in p:
        raise ValueError(f"{name} contains a NUL character")
    return p


def _json_default(o: Any) -> Any:
    """json.dumps hook: numpy scalars and arrays become plain numbers and lists."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"a scene value of type {type(o).__name__} is not JSON")


def _dumps(doc: Mapping[str, Any]) -> str:
    try:
        return json.dumps(doc, default=_json_default, allow_nan=False)
    except ValueError as e:  # NaN or infinity
        raise ValueError(f"the scene holds a value JSON cannot: {e}") from None


def _c_str(b: Any) -> str:
    return ffi.string(b).decode(errors="replace")


# ---- cameras --------------------------------------------------------------------------------

_CAMERA_KEYS = (
    "type", "position", "look_at", "up", "vfov", "aperture", "focus_distance",
    "matrix", "convention", "fx", "fy", "cx", "cy", "K", "intrinsics_size",
)
_INTRINSIC_KEYS = ("fx", "fy", "cx", "cy", "K")
_ROT_TOL = 1e-4  # as the scene loader (engine/scene/camera_json.c)


def _pose_from_matrix(matrix: Any, convention: str) -> Tuple[Vec3, Vec3, Vec3]:
    """(position, look_at, up) of a camera-to-world matrix, as the scene loader makes them."""
    if convention not in ("opengl", "opencv"):
        raise ValueError(f"camera.convention must be 'opengl' or 'opencv', not {convention!r}")
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape == (4, 4):
        m = m.reshape(16)
    if m.shape != (16,) or not np.all(np.isfinite(m)):
        raise ValueError("camera.matrix must be 16 finite numbers (or 4x4), row-major")
    M = m.reshape(4, 4)
    if tuple(M[3]) != (0.0, 0.0, 0.0, 1.0):
        raise ValueError("camera.matrix: the last row must be 0 0 0 1")
    R = M[:3, :3]
    det = float(np.linalg.det(R))
    if abs(det) < 1e-9:
        raise ValueError(f"camera.matrix is singular (determinant {det:g})")
    if det < 0:
        raise ValueError(f"camera.matrix is mirrored (determinant {det:g}): it must be a rotation")
    for k in range(3):
        ln = float(np.linalg.norm(R[:, k]))
        if abs(ln - 1) > _ROT_TOL:
            raise ValueError(f"camera.matrix is scaled (column {k} has length {ln:g}, not 1)")
    for a, b in ((0, 1), (0, 2), (1, 2)):
        d = float(np.dot(R[:, a], R[:, b]))
        if abs(d) > _ROT_TOL:
            raise ValueError(f"camera.matrix is sheared (columns {a} and {b}: dot product {d:g})")
    s = -1.0 if convention == "opencv" else 1.0
    p = [float(M[k, 3]) for k in range(3)]
    f = [-s * float(M[k, 2]) for k in range(3)]
    # as the loader: look_at far enough ahead that float rounding keeps the view axis
    dist = max(1.0, math.sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2]))
    f32 = lambda v: float(np.float32(v))  # noqa: E731
    return (
        tuple(f32(p[k]) for k in range(3)),  # type: ignore[return-value]
        tuple(f32(p[k] + dist * f[k]) for k in range(3)),
        tuple(f32(s * float(M[k, 1])) for k in range(3)),
    )


def _intrinsics_from_dict(d: Mapping[str, Any]) -> Dict[str, Any]:
    """fx, fy, cx, cy (those given) from a camera dict's "fx".. or "K"."""
    if "K" not in d:
        return {k: d[k] for k in ("fx", "fy", "cx", "cy") if k in d}
    both = [k for k in ("fx", "fy", "cx", "cy") if k in d]
    if both:
        raise ValueError(f"camera: {both[0]} and K both give the intrinsics: keep one")
    k = np.asarray(d["K"], dtype=np.float64)
    if k.shape == (9,):
        k = k.reshape(3, 3)
    if k.shape != (3, 3) or not np.all(np.isfinite(k)):
        raise ValueError("camera.K must be 3x3 or 9 finite numbers, row-major")
    if k[0, 1] != 0:
        raise ValueError(f"camera.K has skew (K[0][1] = {k[0, 1]:g}): it must be 0")
    if k[1, 0] != 0 or tuple(k[2]) != (0.0, 0.0, 1.0):
        raise ValueError("camera.K must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]")
    return dict(fx=float(k[0, 0]), fy=float(k[1, 1]), cx=float(k[0, 2]), cy=float(k[1, 2]))


@dataclass(frozen=True)
class Camera:
    """A camera, as the scene format's ``camera`` (docs/SCENE.md).

    A thin lens when ``aperture`` is not None (lens diameter, >= 0), else a pinhole.
    ``focus_distance`` None means the distance from ``position`` to ``look_at``. Values are
    checked when the camera is made: finite numbers, ``vfov`` in (0, 180) degrees, ``look_at``
    not at ``position``, ``up`` neither zero nor parallel to the view direction.

    Intrinsics: ``fx`` (> 0) with ``fy`` (default ``fx``), ``cx``, ``cy`` (default the centre,
    ``(w - 1) / 2``, ``(h - 1) / 2``) in pixels of an image of ``intrinsics_size`` (w, h),
    OpenCV's convention (pixel centres at whole numbers); they replace ``vfov`` (which then
    holds their vertical field of view) and scale with the size rendered. A camera-to-world
    matrix is accepted by ``from_dict`` (``"matrix"``, ``"convention"``) and ``from_matrix``."""

    position: Vec3
    look_at: Vec3
    up: Vec3 = (0.0, 1.0, 0.0)
    vfov: Optional[float] = None  # None: 40, or the intrinsics' vertical field of view
    aperture: Optional[float] = None
    focus_distance: Optional[float] = None
    fx: Optional[float] = None
    fy: Optional[float] = None
    cx: Optional[float] = None
    cy: Optional[float] = None
    intrinsics_size: Optional[Tuple[int, int]] = None

    def __post_init__(self) -> None:
        pos = _vec3("camera.position", self.position)
        at = _vec3("camera.look_at", self.look_at)
        up = _vec3("camera.up", self.up)
        intr = self._check_intrinsics()
        if intr is not None and self.vfov is not None:
            raise ValueError("camera: vfov and the intrinsics (fx) both give the field of view")
        if intr is not None:
            vfov = math.degrees(2 * math.atan(0.5 * intr["intrinsics_size"][1] / intr["fy"]))
        else:
            vfov = 40.0 if self.vfov is None else _real("camera.vfov", self.vfov)
            if not 0 < vfov < 180:
                raise ValueError(f"camera.vfov must be in (0, 180) degrees, not {vfov:g}")
        ap = None if self.aperture is None else _real("camera.aperture", self.aperture)
        if ap is not None and ap < 0:
            raise ValueError(f"camera.aperture must be >= 0, not {ap:g}")
        fd = None
        if self.focus_distance is not None:
            fd = _real("camera.focus_distance", self.focus_distance)
            if fd <= 0:
                raise ValueError(f"camera.focus_distance must be > 0, not {fd:g}")
        f = np.subtract(at, pos)
        lf, lu = float(np.linalg.norm(f)), float(np.linalg.norm(up))
        if lf < 1e-12:
            raise ValueError("camera.look_at equals camera.position: no view direction")
        if lu < 1e-12:
            raise ValueError("camera.up has zero length")
        if float(np.linalg.norm(np.cross(f, up))) <= 1e-6 * lf * lu:
            raise ValueError("camera.up is parallel to the view direction (look_at - position)")
        for k, v in (("position", pos), ("look_at", at), ("up", up), ("vfov", vfov)):
            object.__setattr__(self, k, v)
        object.__setattr__(self, "aperture", ap)
        object.__setattr__(self, "focus_distance", fd)
        for k, v in (intr or {}).items():
            object.__setattr__(self, k, v)

    def _check_intrinsics(self) -> Optional[Dict[str, Any]]:
        given = [k for k in ("fx", "fy", "cx", "cy") if getattr(self, k) is not None]
        if not given:
            if self.intrinsics_size is not None:
                raise ValueError("camera.intrinsics_size is the size of intrinsics (fx...), "
                                 "which are not given")
            return None
        if self.fx is None:
            raise ValueError(f"camera: {given[0]} needs fx")
        if self.intrinsics_size is None:
            raise ValueError("camera: intrinsics need intrinsics_size, the (width, height) "
                             "they are in pixels of")
        sz = self.intrinsics_size
        if isinstance(sz, (str, bytes)) or not hasattr(sz, "__len__") or len(sz) != 2:
            raise TypeError("camera.intrinsics_size must be (width, height)")
        w = _int("camera.intrinsics_size[0]", sz[0], 1, 1 << 20)
        h = _int("camera.intrinsics_size[1]", sz[1], 1, 1 << 20)
        fx = _real("camera.fx", self.fx)
        fy = fx if self.fy is None else _real("camera.fy", self.fy)
        if fx <= 0 or fy <= 0:
            raise ValueError(f"camera: focal lengths must be > 0, not fx = {fx:g}, fy = {fy:g}")
        cx = 0.5 * (w - 1) if self.cx is None else _real("camera.cx", self.cx)
        cy = 0.5 * (h - 1) if self.cy is None else _real("camera.cy", self.cy)
        return dict(fx=fx, fy=fy, cx=cx, cy=cy, intrinsics_size=(w, h))

    @property
    def thin_lens(self) -> bool:
        """True for a thin-lens camera (``aperture`` given)."""
        return self.aperture is not None

    @property
    def has_intrinsics(self) -> bool:
        """True when ``fx``... replace ``vfov``."""
        return self.fx is not None

    @classmethod
    def from_matrix(cls, matrix: Any, convention: str = "opengl", **kw: Any) -> "Camera":
        """A camera at the pose of a camera-to-world ``matrix`` (16 numbers row-major, or
        4x4; a rotation and a translation) with ``convention`` "opengl" (x right, y up, looking
        along -z: kiln's, Blender's, NeRF's) or "opencv" (x right, y down, looking along +z);
        ``kw``: the other fields (vfov, intrinsics, lens)."""
        pos, at, up = _pose_from_matrix(matrix, convention)
        return cls(position=pos, look_at=at, up=up, **kw)

    @classmethod
    def from_dict(
        cls,
        d: Mapping[str, Any],
        base: Optional["Camera"] = None,
        size: Optional[Tuple[int, int]] = None,
    ) -> "Camera":
        """A camera from the scene format's keys. With ``base``, the keys given replace
        ``base``'s, as a list line's ``camera`` does (docs/JOBS.md): ``"type": "thin_lens"``
        needs an ``aperture`` unless ``base`` is a thin lens, and ``focus_distance`` stays
        ``base``'s only when neither ``position`` nor ``look_at`` moves. ``size``: the image
        size intrinsics are in pixels of when ``intrinsics_size`` is not given."""
        if not isinstance(d, Mapping):
            raise TypeError(f"camera must be a dict or a kiln.Camera, not {type(d).__name__}")
        unknown = sorted(set(d) - set(_CAMERA_KEYS))
        if unknown:
            raise ValueError(f"camera: unknown key(s) {unknown} (one of {list(_CAMERA_KEYS)})")
        has_matrix = "matrix" in d
        if has_matrix:
            clash = [k for k in ("position", "look_at", "up") if k in d]
            if clash:
                raise ValueError(f"camera: {clash[0]} and matrix both give the camera's pose")
        elif "convention" in d:
            raise ValueError("camera: convention is the axes of matrix, which is not given")
        if base is None and not has_matrix and ("position" not in d or "look_at" not in d):
            raise ValueError("camera: position and look_at are required")
        kind = d.get("type", "thin_lens" if base is not None and base.thin_lens else "pinhole")
        if kind not in ("pinhole", "thin_lens"):
            raise ValueError(f"camera.type must be 'pinhole' or 'thin_lens', not {kind!r}")
        kw: Dict[str, Any] = {}
        if base is not None:
            kw = dict(position=base.position, look_at=base.look_at, up=base.up)
            if base.has_intrinsics:
                kw.update(fx=base.fx, fy=base.fy, cx=base.cx, cy=base.cy,
                          intrinsics_size=base.intrinsics_size)
            else:
                kw.update(vfov=base.vfov)
        kw.update({k: d[k] for k in ("position", "look_at", "up") if k in d})
        if has_matrix:
            pos, at, up = _pose_from_matrix(d["matrix"], d.get("convention", "opengl"))
            kw.update(position=pos, look_at=at, up=up)
        if any(k in d for k in _INTRINSIC_KEYS):
            if "vfov" in d:
                raise ValueError("camera: vfov and the intrinsics both give the field of view")
            for k in ("fx", "fy", "cx", "cy", "vfov"):
                kw.pop(k, None)
            kw.update(_intrinsics_from_dict(d))
            sz = d.get("intrinsics_size", size)
            kw["intrinsics_size"] = tuple(sz) if sz is not None else None
        elif "intrinsics_size" in d:
            raise ValueError("camera: intrinsics_size is the size of intrinsics, not given")
        elif "vfov" in d:
            for k in ("fx", "fy", "cx", "cy", "intrinsics_size"):
                kw.pop(k, None)
            kw["vfov"] = d["vfov"]
        if kind == "thin_lens":
            moved = "position" in d or "look_at" in d or has_matrix
            ap = d.get("aperture", base.aperture if base is not None else None)
            if ap is None:
                raise ValueError("camera: a thin_lens camera needs an aperture")
            fd = d.get("focus_distance")
            if fd is None and base is not None and not moved:
                fd = base.focus_distance
            if fd is None and has_matrix:
                raise ValueError("camera: a thin_lens camera given by matrix needs focus_distance")
            kw.update(aperture=ap, focus_distance=fd)
        elif "aperture" in d or "focus_distance" in d:
            raise ValueError("camera: aperture and focus_distance are for a thin_lens camera")
        return cls(**kw)

    def to_dict(self) -> Dict[str, Any]:
        """The scene format's ``camera`` object for this camera."""
        d: Dict[str, Any] = {
            "type": "thin_lens" if self.thin_lens else "pinhole",
            "position": list(self.position),
            "look_at": list(self.look_at),
            "up": list(self.up),
        }
        if self.has_intrinsics:
            d.update(fx=self.fx, fy=self.fy, cx=self.cx, cy=self.cy,
                     intrinsics_size=list(self.intrinsics_size or ()))
        else:
            d["vfov"] = self.vfov
        if self.thin_lens:
            d["aperture"] = self.aperture
            if self.focus_distance is not None:
                d["focus_distance"] = self.focus_distance
        return d

    def _fill(self, c: Any) -> None:
        """Fills a ``kiln_camera *`` as the scene loader would from ``to_dict()``."""
        c.thin_lens = self.thin_lens
        c.position = list(self.position)
        c.look_at = list(self.look_at)
        c.up = list(self.up)
        c.vfov_deg = self.vfov
        if self.has_intrinsics:
            assert self.intrinsics_size is not None
            c.fx, c.fy, c.cx, c.cy = self.fx, self.fy, self.cx, self.cy
            c.k_width, c.k_height = self.intrinsics_size
        if self.thin_lens:
            c.aperture = self.aperture
            if self.focus_distance is not None:
                c.focus_distance = self.focus_distance
            else:  # as the loader: the length of the float difference
                f = np.subtract(np.float32(self.look_at), np.float32(self.position))
                c.focus_distance = math.sqrt(float(np.dot(f.astype(np.float64), f)))
        else:
            c.aperture = 0.0
            c.focus_distance = 0.0


CameraLike = Union[Camera, Mapping[str, Any]]


# ---- devices --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """A Vulkan physical device as kiln sees it (``kiln devices`` lists the same)."""

    index: int
    name: str
    type: str  # "discrete", "integrated", "virtual", "cpu" or "other"
    usable: bool
    unusable_reason: str
    vendor_id: int
    device_id: int
    api_version: str
    driver_name: str
    driver_info: str
    uuid: str
    device_local_memory: int  # bytes in device-local heaps
    pci: Optional[str]  # "DDDD:BB:DD.F", None when the driver does not say
    queue_families: Tuple[Dict[str, Any], ...] = field(default=(), repr=False)


def _device_from_info(d: Any) -> Device:
    buf = ffi.new("char[]", 64)
    api = _c_str(lib.kiln_gpu_version_string(d.api_version, buf, len(buf)))
    uuid = _c_str(lib.kiln_gpu_uuid_string(d.device_uuid, buf, len(buf)))
    heaps = [d.heaps[i] for i in range(min(d.heap_count, 16))]
    fams = tuple(
        {
            "queues": f.queues,
            "compute": bool(f.compute),
            "graphics": bool(f.graphics),
            "transfer": bool(f.transfer),
        }
        for f in (d.families[i] for i in range(min(d.family_count, 16)))
    )
    pci = None
    if d.has_pci:
        pci = f"{d.pci_domain:04x}:{d.pci_bus:02x}:{d.pci_device:02x}.{d.pci_function:x}"
    return Device(
        index=d.index,
        name=_c_str(d.name),
        type=_c_str(lib.kiln_gpu_type_name(d.type)),
        usable=bool(d.usable),
        unusable_reason=_c_str(d.unusable_reason),
        vendor_id=d.vendor_id,
        device_id=d.device_id,
        api_version=api,
        driver_name=_c_str(d.driver_name),
        driver_info=_c_str(d.driver_info),
        uuid=uuid,
        device_local_memory=sum(h.size for h in heaps if h.device_local),
        pci=pci,
        queue_families=fams,
    )


def _gpu_create() -> Any:
    out = ffi.new("kiln_gpu **")
    rc = lib.kiln_gpu_create(ffi.NULL, out)
    if rc:
        raise DeviceError(
            f"no Vulkan: {strerror(rc)} (install a loader and a driver, e.g. libvulkan1 and "
            "mesa-vulkan-drivers for the CPU device)",
            code=rc,
        )
    return out[0]


def _device_list(gpu: Any) -> List[Device]:
    info = ffi.new("kiln_gpu_device_info *")
    out = []
    for i in range(lib.kiln_gpu_get_device_count(gpu)):
        check(lib.kiln_gpu_get_device_info(gpu, i, info), what="kiln_gpu_get_device_info")
        out.append(_device_from_info(info))
    return out


def devices() -> List[Device]:
    """Every Vulkan device this machine lists (unusable ones too, with ``unusable_reason``).

    Raises DeviceError when Vulkan cannot be loaded. Ignores the visibility variables
    (CUDA_VISIBLE_DEVICES...), as ``kiln devices`` lists every device; ``Renderer`` applies
    them."""
    gpu = _gpu_create()
    try:
        return _device_list(gpu)
    finally:
        lib.kiln_gpu_destroy(gpu)


# The variables through which schedulers hand out GPUs; the first one set decides (as kiln render).
_VISIBILITY = (
    ("KILN_VISIBLE_DEVICES", 0),
    ("CUDA_VISIBLE_DEVICES", 0x10DE),
    ("NVIDIA_VISIBLE_DEVICES", 0x10DE),
    ("ROCR_VISIBLE_DEVICES", 0x1002),
    ("HIP_VISIBLE_DEVICES", 0x1002),
)


def _visible(gpu: Any) -> Tuple[Optional[List[int]], str]:
    """The device indices the environment leaves to this process (None: all) and the variable
    (``NAME=value``, "" when none is set)."""
    for var, vendor in _VISIBILITY:
        value = os.environ.get(var)
        if value is None:
            continue
        if var == "NVIDIA_VISIBLE_DEVICES" and any(c.isdigit() for c in value) and all(
            c.isdigit() or c in ", \t" for c in value
        ):
            # Host indices: the container runtime has already hidden the other GPUs.
            info = ffi.new("kiln_gpu_device_info *")
            idx = []
            for i in range(lib.kiln_gpu_get_device_count(gpu)):
                if (
                    not lib.kiln_gpu_get_device_info(gpu, i, info)
                    and info.type != lib.KILN_GPU_TYPE_CPU
                    and info.vendor_id == vendor
                ):
                    idx.append(i)
            return idx, f"{var}={value}"
        cap = 256
        indices = ffi.new("uint32_t[]", cap)
        n = ffi.new("size_t *")
        err = ffi.new("kiln_error_detail *")
        rc = lib.kiln_gpu_visible(gpu, value.encode(), vendor, indices, cap, n, err)
        if rc:
            raise DeviceError(f"{var}: {_c_str(err.message)}", code=rc)
        return [indices[i] for i in range(n[0])], f"{var}={value}"
    return None, ""


# ---- scenes ---------------------------------------------------------------------------------


class Scene:
    """A loaded, validated scene (docs/SCENE.md): immutable, shareable by any number of
    renderers and threads. Make one with ``Scene.load`` or ``Scene.from_dict``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("make a Scene with kiln.Scene.load(path) or kiln.Scene.from_dict(d)")

    @classmethod
    def _wrap(
        cls, ptr: Any, document: Optional[Dict[str, Any]], base_dir: str, name: str
    ) -> "Scene":
        self = object.__new__(cls)
        pid = os.getpid()
        self._ptr = ffi.gc(ptr, lambda p: lib.kiln_scene_destroy(p) if os.getpid() == pid else None)
        self._document = document
        self._base_dir = base_dir
        self._name = name
        info = ffi.new("kiln_scene_info *")
        lib.kiln_scene_get_info(ptr, info)
        self._info = {k: getattr(info, k) for k, _ in ffi.typeof("kiln_scene_info").fields}
        self._info["filmic"] = bool(self._info["filmic"])
        names = []
        for i in range(1, self._info["nobjects"] + 1):
            p = lib.kiln_scene_object_name(ptr, i)
            names.append(_c_str(p) if p != ffi.NULL else "")
        self._object_names = tuple(names)
        self._warnings = [
            _c_str(lib.kiln_scene_warning(ptr, i)) for i in range(lib.kiln_scene_warning_count(ptr))
        ]
        self._camera: Optional[Camera] = None
        return self

    @classmethod
    def load(cls, path: PathLike) -> "Scene":
        """Loads a scene file and every file it names (meshes, textures, maps).

        Raises SceneError with kiln's located message ("scene.json:14:49: objects[0]...":
        ``file``, ``line``, ``column``, ``path`` attributes) for a missing file, a syntax error or
        a bad value; TypeError when ``path`` is not a path."""
        p = _fspath("path", path)
        out = ffi.new("kiln_scene **")
        err = ffi.new("kiln_error_detail *")
        check(lib.kiln_scene_load(p.encode(), err, out), err, SceneError, what=p)
        document = None
        try:
            with open(p, "rb") as f:
                document = json.loads(f.read().decode("utf-8"))
        except (OSError, ValueError):
            pass  # kiln read it; only overrides and partial cameras need the document
        return cls._wrap(out[0], document, os.path.dirname(os.path.abspath(p)), p)

    @classmethod
    def from_dict(
        cls,
        d: Mapping[str, Any],
        base_dir: Optional[PathLike] = None,
        name: str = "<dict>",
    ) -> "Scene":
        """A scene from a Python dict of the scene format (numpy numbers and arrays allowed).

        File names in it are relative to ``base_dir`` (default: the current directory, taken
        now). Errors are SceneError, located in the JSON text ``json.dumps(d)`` and named
        ``name``; a value JSON cannot hold (NaN, infinity) is ValueError, a non-dict TypeError."""
        if not isinstance(d, Mapping):
            raise TypeError(f"a scene must be a dict, not {type(d).__name__}")
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        bd = os.path.abspath(_fspath("base_dir", base_dir) if base_dir is not None else os.getcwd())
        text = _dumps(d)
        return cls._load_string(text, json.loads(text), bd, name)

    @classmethod
    def _load_string(cls, text: str, document: Any, base_dir: str, name: str) -> "Scene":
        out = ffi.new("kiln_scene **")
        err = ffi.new("kiln_error_detail *")
        rc = lib.kiln_scene_load_string(text.encode(), base_dir.encode(), name.encode(), err, out)
        check(rc, err, SceneError, what=name)
        return cls._wrap(out[0], document, base_dir, name)

    def patched(self, overrides: Mapping[str, Any]) -> "Scene":
        """A new scene: this one with a list line's overrides of ``objects``, ``materials``,
        ``lights`` and ``environment`` applied (docs/JOBS.md, "Lists of images"); a full load
        (parse, meshes, validation). Other keys of a list line are refused here (``Renderer.render``
        takes them)."""
        extra = sorted(set(overrides) - set(_SCENE_OVERRIDE_KEYS)) if isinstance(
            overrides, Mapping
        ) else []
        if extra:
            raise ValueError(f"overrides: {extra} are not scene overrides (Renderer.render takes them)")
        doc = _patch_document(self._require_document(), overrides, self._name)
        return self._load_string(_dumps(doc), doc, self._base_dir, f"{self._name} (overrides)")

    def _require_document(self) -> Dict[str, Any]:
        if not isinstance(self._document, dict):
            raise KilnError(f"{self._name}: its JSON could not be read back by Python")
        return self._document

    @property
    def document(self) -> Dict[str, Any]:
        """A copy of the scene's JSON document (as loaded)."""
        return copy.deepcopy(self._require_document())

    @property
    def name(self) -> str:
        """The path it was loaded from, or the name given to ``from_dict``."""
        return self._name

    @property
    def base_dir(self) -> str:
        """The folder relative file names in the scene are resolved from."""
        return self._base_dir

    @property
    def width(self) -> int:
        """settings.width"""
        return int(self._info["width"])

    @property
    def height(self) -> int:
        """settings.height"""
        return int(self._info["height"])

    @property
    def spp(self) -> int:
        """settings.spp: samples per pixel"""
        return int(self._info["spp"])

    @property
    def max_bounces(self) -> int:
        """settings.max_bounces"""
        return int(self._info["max_bounces"])

    @property
    def seed(self) -> int:
        """settings.seed"""
        return int(self._info["seed"])

    @property
    def exposure(self) -> float:
        """settings.exposure, in stops"""
        return float(self._info["exposure"])

    @property
    def filmic(self) -> bool:
        """True when settings.tonemap is "filmic"."""
        return bool(self._info["filmic"])

    @property
    def info(self) -> Dict[str, Any]:
        """Every field of ``kiln_scene_info`` (counts of objects, triangles, spheres...)."""
        return dict(self._info)

    @property
    def object_names(self) -> Tuple[str, ...]:
        """Object names by id: ``object_names[id - 1]`` is the name of object id (the
        ``object_id`` pass's values)."""
        return self._object_names

    @property
    def warnings(self) -> List[str]:
        """What the loader accepted but kiln does not render as written (an MTL key without a
        meaning here, an ignored glTF feature), each distinct message once, in the order first
        met, each naming its file (and line). A copy: changing it changes nothing."""
        return list(self._warnings)

    @property
    def camera(self) -> Camera:
        """The scene's camera."""
        if self._camera is None:
            cam = self._require_document().get("camera")
            self._camera = Camera.from_dict(
                cam if isinstance(cam, Mapping) else {}, size=(self.width, self.height)
            )
        return self._camera

    def __repr__(self) -> str:
        return (
            f"<kiln.Scene {self._name!r} {self.width}x{self.height} spp={self.spp} "
            f"objects={len(self._object_names)}>"
        )


# ---- overrides (a list line's shape, docs/JOBS.md) --------------------------------------------

_SCENE_OVERRIDE_KEYS = ("objects", "materials", "lights", "environment")
_RENDER_OVERRIDE_KEYS = ("camera", "seed", "frame", "name")


def _fail(name: str, path: str, message: str) -> SceneError:
    return SceneError(f"{name}: {path}: {message}", file=name, path=path, message=message)


def _entry_name(entry: Any, kind: str) -> Optional[str]:
    if not isinstance(entry, Mapping):
        return None
    if isinstance(entry.get("name"), str):
        return entry["name"]
    if kind == "lights":
        return "light"
    if entry.get("type") == "mesh":
        return entry.get("file") if isinstance(entry.get("file"), str) else None
    return entry.get("type") if isinstance(entry.get("type"), str) else None


def _find_entry(doc: Dict[str, Any], kind: str, name: str, where: str) -> Dict[str, Any]:
    entries = doc.get(kind)
    hits = [e for e in entries if _entry_name(e, kind) == name] if isinstance(entries, list) else []
    if not hits:
        raise _fail(where, f"{kind}.{name}", f"the scene has no {kind[:-1]} named '{name}'")
    if len(hits) > 1:
        raise _fail(where, f"{kind}.{name}", f"{len(hits)} {kind} are named '{name}': name them apart")
    return hits[0]


def _keys_of(o: Any, path: str, where: str) -> Mapping[str, Any]:
    if not isinstance(o, Mapping):
        raise _fail(where, path, f"must be an object, not {type(o).__name__}")
    return o


def _patch_document(
    document: Dict[str, Any], overrides: Mapping[str, Any], where: str
) -> Dict[str, Any]:
    """document with the scene overrides applied (the document itself is not changed)."""
    if not isinstance(overrides, Mapping):
        raise TypeError(f"overrides must be a dict, not {type(overrides).__name__}")
    doc = copy.deepcopy(document)
    objs = _keys_of(overrides.get("objects", {}), "objects", where)
    for name, o in objs.items():
        o = _keys_of(o, f"objects.{name}", where)
        bad = sorted(set(o) - {"transform", "material"})
        if bad:
            raise _fail(where, f"objects.{name}", f"unknown key(s) {bad} (transform, material)")
        _find_entry(doc, "objects", name, where).update(copy.deepcopy(dict(o)))
    mats = _keys_of(overrides.get("materials", {}), "materials", where)
    for name, o in mats.items():
        o = _keys_of(o, f"materials.{name}", where)
        table = doc.get("materials")
        if not isinstance(table, dict) or not isinstance(table.get(name), dict):
            raise _fail(where, f"materials.{name}", f"the scene has no material named '{name}'")
        if "type" in o and o["type"] != table[name].get("type"):
            table[name] = copy.deepcopy(dict(o))
        else:
            table[name].update(copy.deepcopy(dict(o)))
    lights = _keys_of(overrides.get("lights", {}), "lights", where)
    for name, o in lights.items():
        o = _keys_of(o, f"lights.{name}", where)
        _find_entry(doc, "lights", name, where).update(copy.deepcopy(dict(o)))
    if "environment" in overrides:
        o = _keys_of(overrides["environment"], "environment", where)
        env = doc.get("environment")
        if not isinstance(env, dict) or ("type" in o and o["type"] != env.get("type")):
            doc["environment"] = copy.deepcopy(dict(o))
        else:
            env.update(copy.deepcopy(dict(o)))
    return doc


# ---- frames ---------------------------------------------------------------------------------


class _Image:
    """Holds one reference to a finished render's C future, which owns its kiln_image. Every
    plane array keeps this object alive (through a cffi gc'd pointer whose destructor refers to
    it); the future is released when this object is collected."""

    __slots__ = ("future", "image", "info", "__weakref__")

    def __init__(self, future: Any, image: Any) -> None:
        pid = os.getpid()
        self.future = ffi.gc(
            future, lambda f: lib.kiln_future_release(f) if os.getpid() == pid else None
        )
        self.image = image
        self.info = ffi.new("kiln_image_info *")
        lib.kiln_image_get_info(image, self.info)

    def _keep(self, _: Any) -> None:
        """Destructor of a plane's pointer: nothing to do, it only refers to self."""

    def plane(self, name: str, ctype: str, dtype: Any, channels: int) -> np.ndarray:
        w, h = self.info.width, self.info.height
        ptr = ffi.gc(ffi.cast(ctype, getattr(self.info, name)), self._keep)
        a = np.frombuffer(ffi.buffer(ptr, w * h * channels * 4), dtype=dtype)
        return a.reshape((h, w, channels) if channels > 1 else (h, w))


_PLANES = {
    "color": ("float *", np.float32, 3),
    "depth": ("float *", np.float32, 1),
    "normal": ("float *", np.float32, 3),
    "albedo": ("float *", np.float32, 3),
    "object_id": ("uint32_t *", np.uint32, 1),
    "instance_id": ("uint32_t *", np.uint32, 1),
    "uv": ("float *", np.float32, 2),
}


class Frame:
    """A rendered frame: its planes as numpy arrays that view kiln's image in place (no copy).

    ``color`` float32 (H, W, 3), linear radiance; ``depth`` float32 (H, W), distance along the
    camera axis, 0 for background; ``normal`` float32 (H, W, 3), world-space shading normal;
    ``albedo`` float32 (H, W, 3); ``object_id`` and ``instance_id`` uint32 (H, W), 1-based, 0
    for background (``Scene.object_names[id - 1]`` names an object); ``uv`` float32 (H, W, 2),
    the texture coordinates of the surface seen (0 for background). ``frame["color"]`` works
    too. The arrays are made on first access and keep the image alive on their own: they stay
    valid after the Frame, the Renderer and the Scene are gone. They are writable views of
    memory no one else reads (``np.copy`` one to keep it past the image's other planes)."""

    PLANES = tuple(_PLANES)

    def __init__(self, image: _Image, frame: int, seed: int, exposure: float, filmic: bool):
        self._image = image
        self._arrays: Dict[str, np.ndarray] = {}
        self.frame = frame
        self.seed = seed
        self._exposure = exposure
        self._filmic = filmic

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return int(self._image.info.width)

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return int(self._image.info.height)

    @property
    def spp(self) -> int:
        """Samples per pixel the colour averages."""
        return int(self._image.info.spp)

    def __getitem__(self, plane: str) -> np.ndarray:
        if plane not in _PLANES:
            raise KeyError(f"no plane {plane!r} (one of {', '.join(_PLANES)})")
        a = self._arrays.get(plane)
        if a is None:
            ctype, dtype, ch = _PLANES[plane]
            a = self._arrays[plane] = self._image.plane(plane, ctype, dtype, ch)
        return a

    def keys(self) -> Tuple[str, ...]:
        """The plane names."""
        return self.PLANES

    def __iter__(self) -> Iterator[str]:
        return iter(self.PLANES)

    def __len__(self) -> int:
        return len(self.PLANES)

    @property
    def color(self) -> np.ndarray:
        """float32 (H, W, 3): linear RGB radiance, the mean of the samples."""
        return self["color"]

    @property
    def depth(self) -> np.ndarray:
        """float32 (H, W): distance along the camera's forward axis; 0 for background."""
        return self["depth"]

    @property
    def normal(self) -> np.ndarray:
        """float32 (H, W, 3): world-space unit shading normal; 0 for background."""
        return self["normal"]

    @property
    def albedo(self) -> np.ndarray:
        """float32 (H, W, 3): the material's albedo at the surface seen; 0 for background."""
        return self["albedo"]

    @property
    def object_id(self) -> np.ndarray:
        """uint32 (H, W): 1-based object id; 0 for background."""
        return self["object_id"]

    @property
    def instance_id(self) -> np.ndarray:
        """uint32 (H, W): 1-based instance id; 0 for background."""
        return self["instance_id"]

    @property
    def uv(self) -> np.ndarray:
        """float32 (H, W, 2): texture coordinates (u, v) at the surface seen; 0 for background."""
        return self["uv"]

    def write_png(
        self, path: PathLike, exposure: Optional[float] = None, filmic: Optional[bool] = None
    ) -> None:
        """Writes the colour as an 8-bit sRGB PNG (exposure and tone mapping default to the
        scene's settings), atomically."""
        p = _fspath("path", path)
        e = self._exposure if exposure is None else _real("exposure", exposure)
        fm = self._filmic if filmic is None else bool(filmic)
        check(lib.kiln_image_write_png(self._image.image, p.encode(), e, fm), what=p)

    def write_pfm(self, path: PathLike) -> None:
        """Writes the colour as a float PFM, atomically."""
        p = _fspath("path", path)
        check(lib.kiln_image_write_pfm(self._image.image, p.encode()), what=p)

    def __repr__(self) -> str:
        return f"<kiln.Frame {self.width}x{self.height} spp={self.spp} frame={self.frame}>"


# ---- the renderer ---------------------------------------------------------------------------


class _Submission:
    """One submitted frame until its C future is done: keeps the cffi handle (the callback's
    argument) alive, then completes the Python future."""

    __slots__ = ("renderer", "cfuture", "pyfuture", "meta", "handle", "extra")

    def __init__(self, renderer: "Renderer", pyfuture: "concurrent.futures.Future[Frame]",
                 meta: Tuple[int, int]) -> None:
        self.renderer = renderer
        self.pyfuture = pyfuture
        self.meta = meta
        self.cfuture: Any = None
        self.handle = ffi.new_handle(self)
        self.extra: Any = None  # cdata the frame config points at, kept until submission


_submissions: "set[_Submission]" = set()  # alive until their done-callback has run


@ffi.callback("void(kiln_future *, void *)")
def _on_done(_f: Any, arg: Any) -> None:
    # Runs on a kiln thread (or in submit's thread when already done): completes the Python
    # future and nothing else; every exception goes into that future.
    sub: _Submission = ffi.from_handle(arg)
    _tls.in_done = True
    try:
        try:
            frame = sub.renderer._frame_from(sub.cfuture, sub.meta)
        except BaseException as e:  # noqa: B902 - handed to the caller through the future
            sub.pyfuture.set_exception(e)
        else:
            sub.pyfuture.set_result(frame)
    finally:
        _tls.in_done = False
        _submissions.discard(sub)
        sub.renderer._finished()


class Renderer:
    """Renders frames of one scene on one or more devices.

    ``device`` is a kiln device spec (``kiln render --device``): "auto" (the best usable device,
    the CPU device only when there is nothing else), "all", "gpu", "cpu", an index, or a name;
    within KILN_VISIBLE_DEVICES / CUDA_VISIBLE_DEVICES and the like when set. A CPU device
    (lavapipe) is opened twice, as ``kiln render`` does, so two frames render at once.
    ``threads``: the worker threads of kiln's CPU pool (BVH builds; default one per CPU).

    Use it as a context manager or call ``close()``; collection closes it too. A Renderer is
    bound to the process that made it: after ``fork()`` every method raises KilnError (open one
    in each process; for a PyTorch DataLoader, in ``worker_init_fn``)."""

    def __init__(
        self, scene: Scene, device: Union[str, int] = "auto", threads: Optional[int] = None
    ) -> None:
        self._pid = os.getpid()
        self._closed = True  # until everything below is open
        self._pool: Any = ffi.NULL
        self._gpu: Any = ffi.NULL
        self._devs: List[Any] = []
        self._r: Any = ffi.NULL
        self._executor: Optional[concurrent.futures.ThreadPoolExecutor] = None
        if not isinstance(scene, Scene):
            raise TypeError(f"scene must be a kiln.Scene, not {type(scene).__name__}")
        if isinstance(device, bool) or not isinstance(device, (str, int)):
            raise TypeError(f"device must be a str or an int, not {type(device).__name__}")
        spec = str(device)
        if "\0" in spec:
            raise ValueError("device contains a NUL character")
        nthreads = None if threads is None else _int("threads", threads, 1, 4096)
        self._scene = scene
        self._cond = threading.Condition()
        self._inflight = 0
        self._next_dev = 0
        try:
            self._open(spec, nthreads)
        except BaseException:
            self._destroy()
            raise
        self._closed = False

    def _open(self, spec: str, nthreads: Optional[int]) -> None:
        pc = ffi.new("kiln_pool_config *")
        lib.kiln_pool_config_default(pc)
        if nthreads is not None:
            pc.threads = nthreads
        self._pool_name = ffi.new("char[]", b"kiln-py")
        pc.name = self._pool_name
        out = ffi.new("kiln_pool **")
        check(lib.kiln_pool_create(pc, out), what="kiln_pool_create")
        self._pool = out[0]
        self._gpu = _gpu_create()
        visible, var = _visible(self._gpu)
        cap = 64
        idx = ffi.new("uint32_t[]", cap)
        n = ffi.new("size_t *")
        err = ffi.new("kiln_error_detail *")
        vis = ffi.new("uint32_t[]", visible) if visible else ffi.NULL
        rc = lib.kiln_gpu_select_visible(
            self._gpu, spec.encode(), vis, len(visible or ()), idx, cap, n, err
        )
        if rc:
            where = f"; {var}" if var else ""
            raise DeviceError(
                f"device {spec!r}: {_c_str(err.message) or strerror(rc)} "
                f"(kiln.devices() lists the devices{where})",
                code=rc,
            )
        chosen = [idx[i] for i in range(n[0])]
        info = ffi.new("kiln_gpu_device_info *")
        for i in list(chosen):
            if not lib.kiln_gpu_get_device_info(self._gpu, i, info) and info.type == lib.KILN_GPU_TYPE_CPU:
                chosen.append(i)
        for i in chosen:
            dev = ffi.new("kiln_gpu_device **")
            rc = lib.kiln_gpu_device_open(self._gpu, i, ffi.NULL, dev)
            if rc:
                raise DeviceError(f"cannot open device {i}: {strerror(rc)}", code=rc)
            self._devs.append(dev[0])
        self._devarray = ffi.new("kiln_gpu_device *[]", self._devs)
        self._r = self._create_renderer(self._scene, self._devarray, len(self._devs))

    def _create_renderer(self, scene: Scene, devs: Any, ndevs: int) -> Any:
        rc_ = ffi.new("kiln_renderer_config *")
        lib.kiln_renderer_config_default(rc_)
        rc_.pool = self._pool
        out = ffi.new("kiln_renderer **")
        check(
            lib.kiln_renderer_create(scene._ptr, devs, ndevs, rc_, out),
            error=RenderError,
            what="kiln_renderer_create",
        )
        return out[0]

    # -- lifetime --

    def _check(self) -> None:
        if os.getpid() != self._pid:
            raise KilnError(FORK_MESSAGE)
        if self._closed:
            raise KilnError("the Renderer is closed")

    def _admit(self) -> None:
        """Counts one more frame in flight, unless closed."""
        with self._cond:
            self._check()
            self._inflight += 1

    def _finished(self) -> None:
        with self._cond:
            self._inflight -= 1
            if self._inflight == 0:
                self._cond.notify_all()

    def close(self) -> None:
        """Waits for the frames in flight, then frees the renderer and its devices. Frames and
        arrays already returned stay valid. Idempotent. In a forked child it only forgets the
        parent's handles. Refused (KilnError) from a render's done-callback."""
        if os.getpid() != self._pid:
            self._closed = True
            self._r, self._devs, self._gpu, self._pool = ffi.NULL, [], ffi.NULL, ffi.NULL
            return
        if self._closed:
            return
        if getattr(_tls, "in_done", False):
            raise KilnError(
                "Renderer.close() from a render's done-callback would wait for the thread "
                "it runs on: close it from another thread"
            )
        with self._cond:
            if self._closed:
                return
            self._closed = True
            while self._inflight:
                self._cond.wait()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._destroy()

    def _destroy(self) -> None:
        if self._r != ffi.NULL:
            lib.kiln_renderer_destroy(self._r)
            self._r = ffi.NULL
        for d in self._devs:
            lib.kiln_gpu_device_close(d)
        self._devs = []
        if self._gpu != ffi.NULL:
            lib.kiln_gpu_destroy(self._gpu)
            self._gpu = ffi.NULL
        if self._pool != ffi.NULL:
            lib.kiln_pool_destroy(self._pool)
            self._pool = ffi.NULL

    def __enter__(self) -> "Renderer":
        self._check()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if getattr(self, "_closed", True) is False:
                self.close()
        except Exception:
            pass  # nothing can be reported from a finalizer

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._closed

    @property
    def scene(self) -> Scene:
        """The scene this renderer renders."""
        return self._scene

    @property
    def devices(self) -> List[Device]:
        """The opened devices (a CPU device opened twice is listed twice)."""
        self._check()
        info = ffi.new("kiln_gpu_device_info *")
        out = []
        for d in self._devs:
            lib.kiln_gpu_device_get_info(d, info)
            out.append(_device_from_info(info))
        return out

    # -- frames --

    def _frame_config(
        self,
        scene: Scene,
        camera: Optional[CameraLike],
        spp: Optional[int],
        seed: Optional[int],
        frame: int,
        width: Optional[int],
        height: Optional[int],
        max_bounces: Optional[int],
    ) -> Tuple[Any, Any, Tuple[int, int]]:
        """(kiln_frame_config *, the kiln_camera * it points at or None, (frame, seed))."""
        fc = ffi.new("kiln_frame_config *")
        fc.camera = ffi.NULL
        fc.device = -1
        fc.max_bounces = -1
        fnum = _int("frame", frame, -(1 << 31), _U32)
        fc.frame = fnum & _U32
        s = scene.seed if seed is None else _int("seed", seed, 0, _U32)
        fc.seed = s
        if spp is not None:
            fc.spp = _int("spp", spp, 1, _MAX_SPP)
        if width is not None:
            fc.width = _int("width", width, 1, _MAX_SIZE)
        if height is not None:
            fc.height = _int("height", height, 1, _MAX_SIZE)
        if max_bounces is not None:
            fc.max_bounces = _int("max_bounces", max_bounces, 0, _MAX_BOUNCES)
        cam = None
        if camera is not None:
            if isinstance(camera, Camera):
                c = camera
            elif isinstance(camera, Mapping):
                c = Camera.from_dict(camera, base=scene.camera, size=(scene.width, scene.height))
            else:
                raise TypeError(f"camera must be a dict or a kiln.Camera, not {type(camera).__name__}")
            cam = ffi.new("kiln_camera *")
            c._fill(cam)
            fc.camera = cam
        return fc, cam, (fnum, s)

    def _submit_c(self, r: Any, fc: Any) -> Any:
        out = ffi.new("kiln_future **")
        check(lib.kiln_renderer_submit(r, fc, out), error=RenderError, what="kiln_renderer_submit")
        return out[0]

    def _frame_from(self, cfuture: Any, meta: Tuple[int, int]) -> Frame:
        """The Frame of a done C future (takes over the caller's reference), or RenderError."""
        img = ffi.new("void **")
        rc = lib.kiln_future_result(cfuture, 0, img)
        if rc:
            msg = ffi.new("const char **")
            lib.kiln_future_error(cfuture, 0, msg)
            text = _c_str(msg[0]) if msg[0] != ffi.NULL else strerror(rc)
            lib.kiln_future_release(cfuture)
            raise RenderError(text, code=rc)
        image = _Image(cfuture, ffi.cast("kiln_image *", img[0]))
        return Frame(image, meta[0], meta[1], self._scene.exposure, self._scene.filmic)

    def _split_overrides(
        self, overrides: Optional[Mapping[str, Any]], camera: Any, seed: Any, frame: Any
    ) -> Tuple[Optional[Dict[str, Any]], Any, Any, Any]:
        """(scene overrides or None, camera, seed, frame): a list line's camera, seed and frame
        apply where the call does not give them."""
        if overrides is None:
            return None, camera, seed, frame
        if not isinstance(overrides, Mapping):
            raise TypeError(f"overrides must be a dict, not {type(overrides).__name__}")
        unknown = sorted(set(overrides) - set(_SCENE_OVERRIDE_KEYS) - set(_RENDER_OVERRIDE_KEYS))
        if unknown:
            keys = _SCENE_OVERRIDE_KEYS + _RENDER_OVERRIDE_KEYS
            raise ValueError(f"overrides: unknown key(s) {unknown} (one of {list(keys)})")
        if camera is None:
            camera = overrides.get("camera")
        if seed is None:
            seed = overrides.get("seed")
        if frame is None:
            frame = overrides.get("frame")
        scene_part = {k: overrides[k] for k in _SCENE_OVERRIDE_KEYS if k in overrides}
        return (scene_part or None), camera, seed, frame

    def render(
        self,
        camera: Optional[CameraLike] = None,
        spp: Optional[int] = None,
        seed: Optional[int] = None,
        frame: Optional[int] = None,
        width: Optional[int] = None,
        height: Optional[int] = None,
        overrides: Optional[Mapping[str, Any]] = None,
        max_bounces: Optional[int] = None,
    ) -> Frame:
        """Renders one frame and returns it (blocking, with the GIL released while it waits).

        Each argument left None is the scene's: ``camera`` (a kiln.Camera, or a dict of the
        scene format's camera keys, each replacing the scene camera's), ``spp``, ``seed``,
        ``width``, ``height``, ``max_bounces``; ``frame`` (default 0) is part of the random
        sequence, as ``kiln render``'s frame numbers. The image is a pure function of these:
        the same bits as ``kiln render`` for the same frame.

        ``overrides`` is a list line of a job (docs/JOBS.md, "Lists of images"): ``objects``,
        ``materials``, ``lights``, ``environment``, and ``camera``, ``seed``, ``frame`` (used
        where the arguments are None; ``name`` is ignored). Scene overrides cost a scene load
        and a renderer (BVH build, upload, kernel) for that frame: milliseconds for a small
        scene, far more than the render for a large one. For many variations of one scene,
        ``Scene.patched`` once and a Renderer per variation is cheaper.

        Raises TypeError / ValueError for bad arguments (before anything reaches kiln),
        SceneError for overrides the scene refuses, RenderError when the frame fails."""
        patch, camera, seed, frame = self._split_overrides(overrides, camera, seed, frame)
        if patch is not None:
            patched = self._scene.patched(patch)  # validates before counting the frame
            self._admit()
            try:
                return self._render_patched(patched, camera, spp, seed, frame, width, height,
                                            max_bounces)
            finally:
                self._finished()
        fc, _cam, meta = self._frame_config(
            self._scene, camera, spp, seed, 0 if frame is None else frame, width, height,
            max_bounces,
        )
        self._admit()
        try:
            cf = self._submit_c(self._r, fc)
            lib.kiln_future_result(cf, -1, ffi.NULL)  # the GIL is released while it waits
            return self._frame_from(cf, meta)
        finally:
            self._finished()

    def _render_patched(self, scene: Scene, camera: Any, spp: Any, seed: Any, frame: Any,
                        width: Any, height: Any, max_bounces: Any) -> Frame:
        fc, _cam, meta = self._frame_config(
            scene, camera, spp, seed, 0 if frame is None else frame, width, height, max_bounces
        )
        with self._cond:
            di = self._next_dev % len(self._devs)
            self._next_dev += 1
        devs = ffi.new("kiln_gpu_device *[]", [self._devs[di]])
        r = self._create_renderer(scene, devs, 1)
        try:
            cf = self._submit_c(r, fc)
            lib.kiln_future_result(cf, -1, ffi.NULL)
            return self._frame_from(cf, meta)
        finally:
            lib.kiln_renderer_destroy(r)

    def submit(
        self,
        camera: Optional[CameraLike] = None,
        spp: Optional[int] = None,
        seed: Optional[int] = None,
        frame: Optional[int] = None,
        width: Optional[int] = None,
        height: Optional[int] = None,
        overrides: Optional[Mapping[str, Any]] = None,
        max_bounces: Optional[int] = None,
    ) -> "concurrent.futures.Future[Frame]":
        """Submits one frame and returns at once: a ``concurrent.futures.Future`` whose result
        is the Frame (``as_completed`` and ``wait`` work on it). Arguments as ``render``; bad
        ones raise here, a failed frame through the future (RenderError).

        A submitted frame always runs to completion: ``cancel()`` returns False (kiln queues
        the GPU job at once and cannot recall it). Frames with scene overrides are prepared
        (scene load, renderer) on a Python thread per device, one after another; one of them
        still waiting there can be cancelled."""
        patch, camera, seed, frame = self._split_overrides(overrides, camera, seed, frame)
        if patch is not None:
            patched = self._scene.patched(patch)
            self._frame_config(patched, camera, spp, seed, 0 if frame is None else frame,
                               width, height, max_bounces)  # raises now for bad arguments
            self._admit()
            try:
                with self._cond:
                    if self._executor is None:
                        self._executor = concurrent.futures.ThreadPoolExecutor(
                            max_workers=len(self._devs), thread_name_prefix="kiln-overrides")
                    ex = self._executor
                pf = ex.submit(self._render_patched, patched, camera, spp, seed, frame, width,
                               height, max_bounces)
            except BaseException:
                self._finished()
                raise
            pf.add_done_callback(lambda _f: self._finished())
            return pf
        fc, cam, meta = self._frame_config(
            self._scene, camera, spp, seed, 0 if frame is None else frame, width, height,
            max_bounces,
        )
        pf = concurrent.futures.Future()
        pf.set_running_or_notify_cancel()  # from now on cancel() is False
        sub = _Submission(self, pf, meta)
        self._admit()
        try:
            sub.cfuture = self._submit_c(self._r, fc)
        except BaseException:
            self._finished()
            raise
        _submissions.add(sub)
        rc = lib.kiln_future_on_done(sub.cfuture, _on_done, sub.handle)
        if rc:  # no callback will come: wait here instead
            _submissions.discard(sub)
            lib.kiln_future_result(sub.cfuture, -1, ffi.NULL)
            try:
                pf.set_result(self._frame_from(sub.cfuture, meta))
            except RenderError as e:
                pf.set_exception(e)
            finally:
                self._finished()
        del cam
        return pf

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._devs)} device(s)"
        return f"<kiln.Renderer {self._scene.name!r} {state}>"
