"""kiln.render_job: render a batch job (docs/JOBS.md) from Python.

A job is a job file (``.json``, or a ``.jsonl`` list with ``scene=``), a job document as a dict,
or a :class:`kiln.Job`; per-image overrides may come from any iterable, a generator included,
which is streamed to a temporary JSONL file line by line and never held in memory.

The batch runs in the C library (``kiln_batch_run``) on a thread of its own, without the GIL:
other Python threads keep running. ``progress`` is called on that thread, once per frame.

Ctrl-C (SIGINT) while a batch runs stops it: no new frame is issued, the frames in flight finish
and are written (a further Ctrl-C while they finish is absorbed, so that no C memory is freed under
them), and ``KeyboardInterrupt`` is raised, carrying the summary as its ``summary`` attribute.
An exception raised by ``progress`` stops the batch in the same way and is re-raised.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import cffi

from . import _ffi as _ffi_module
from . import errors

from .job import Job

__all__ = ["render_job", "JobError", "DeviceError"]

PathLike = Union[str, "os.PathLike[str]"]
ProgressFn = Callable[[Dict[str, Any]], None]

# The summary's fields, in the order of kiln_batch_summary.
SUMMARY_FIELDS = (
    "total", "written", "failed", "skipped", "elsewhere", "chunks_claimed", "chunks_taken_over",
    "files", "bytes", "stopped", "wall_s", "first_image_s", "images_per_s", "prepare_s",
    "render_s", "readback_s", "encode_s", "write_s", "peak_rss_bytes", "manifest_status",
    "manifest_message", "contact_sheet_status", "contact_sheet_message",
)
# isolate=True's counters (zero without it); "incidents" becomes a list of lines
SUMMARY_FIELDS += ("worker_starts", "worker_crashes", "worker_hangs", "worker_lost",
                   "worker_recycles", "frames_retried", "incidents", "incidents_dropped")
# and the dataset writer's outcome
SUMMARY_FIELDS += ("writer_status", "writer_message")

# render_job(writer=): kiln_writer's values
_WRITERS = {"coco": 1, "bop": 2}

# At most this many failures are kept in the summary's "failures" (summary["failed"] counts all),
# so that a job of millions of failing frames still runs in bounded memory.
MAX_FAILURES_KEPT = 1000

_MAX_DEVICES = 16
_EBUSY = -17


class JobError(errors.JobError):
    """A job that cannot be loaded or run, with kiln's located message
    (``job.json:4:15: passes[1]: unknown pass 'nromal' (did you mean 'normal'?)``).

    A :class:`kiln.JobError`; besides its attributes, ``detail`` is the message without its
    location. For an ``images`` iterable, ``file`` is ``"images[N]"``, N the 0-based position of
    the item at fault."""

    def __init__(self, message: str, *, code: int = 0, file: str = "", line: int = 0,
                 column: int = 0, path: str = "", detail: str = "") -> None:
        super().__init__(message, code=code, file=file, line=line, column=column, path=path,
                         message=detail or message)
        self.detail = detail or message


class DeviceError(errors.DeviceError):
    """No Vulkan, or no device that matches ``device=``, or one that cannot be opened (a
    :class:`kiln.DeviceError`)."""

    def __init__(self, message: str, *, code: int = 0) -> None:
        super().__init__(message, code=code)


# ---- the library -------------------------------------------------------------------------------

def _api() -> Tuple[cffi.FFI, Any]:
    """The package's FFI and library (kiln._ffi declares batch.h with the rest of the API)."""
    return _ffi_module.ffi, _ffi_module.lib


# ---- options -----------------------------------------------------------------------------------


def _int_arg(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an integer, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name}={value}: expected {lo} to {hi}")
    return value


def _isolate_args(isolate: Any, frame_timeout: Any, recycle: Any) -> Tuple[bool, float, int]:
    """(isolate, frame_timeout_s, recycle) for kiln_batch_config: 0 means no limit, never."""
    if not isinstance(isolate, bool):
        raise TypeError(f"isolate: expected True or False, not {type(isolate).__name__}")
    if not isolate and (frame_timeout is not None or recycle is not None):
        raise ValueError("frame_timeout and recycle go with isolate=True")
    timeout = 0.0
    if frame_timeout is not None:
        if isinstance(frame_timeout, bool) or not isinstance(frame_timeout, (int, float)):
            raise TypeError(f"frame_timeout: expected seconds (a number) or None, not "
                            f"{type(frame_timeout).__name__}")
        if not 0 < frame_timeout < 1e9:  # NaN fails this too
            raise ValueError(f"frame_timeout={frame_timeout!r}: expected seconds > 0 (None: no "
                             "limit)")
        timeout = float(frame_timeout)
    frames = 0 if recycle is None else _int_arg("recycle", recycle, 1, 2**32 - 1)
    return isolate, timeout, frames


def _start_fork_server(ffi: cffi.FFI, lib: Any) -> None:
    """Starts the C library's fork server (idempotent), which forks isolate=True's workers. It is
    a fork of this interpreter that runs only kiln's C code, as do the workers it forks: so it is
    started before this call creates its threads or opens Vulkan."""
    rc = lib.kiln_forkserver_start()
    if rc:
        raise OSError(f"isolate=True: cannot start kiln's fork server: "
                      f"{_text(ffi, lib.kiln_strerror(rc))}")


def _frames_arg(frames: Any, long_min: int, long_max: int) -> Tuple[int, int, int]:
    """(first, last, step) of frames: an int N, a range, or "A:B[:STEP]" ("A:", ":B" open)."""
    if isinstance(frames, range):
        if len(frames) == 0 or frames.step < 0:
            raise ValueError(f"frames={frames!r}: expected a non-empty increasing range")
        return frames.start, frames[-1], frames.step
    if isinstance(frames, int) and not isinstance(frames, bool):
        return frames, frames, 1
    if not isinstance(frames, str):
        raise TypeError(f"frames: expected an int, a range or 'A:B[:STEP]', not "
                        f"{type(frames).__name__}")
    m = re.fullmatch(r"\s*(-?\d+)?\s*(?::\s*(-?\d+)?\s*(?::\s*(\d+)\s*)?)?", frames)
    if not m or frames.strip() == "" or (m.group(1) is None and ":" not in frames):
        raise ValueError(f"frames={frames!r}: expected N, A:B or A:B:STEP (A: and :B are open)")
    if ":" not in frames:
        n = int(m.group(1))
        return n, n, 1
    first = int(m.group(1)) if m.group(1) is not None else long_min
    last = int(m.group(2)) if m.group(2) is not None else long_max
    step = int(m.group(3)) if m.group(3) is not None else 1
    if step < 1 or last < first:
        raise ValueError(f"frames={frames!r}: expected A <= B and STEP >= 1")
    return first, last, step


def _size_arg(size: Any) -> Tuple[int, int]:
    if isinstance(size, str):
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", size)
        if not m:
            raise ValueError(f"size={size!r}: expected 'WxH' or (width, height)")
        size = (int(m.group(1)), int(m.group(2)))
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise TypeError("size: expected (width, height) or 'WxH'")
    return _int_arg("size[0]", size[0], 1, 16384), _int_arg("size[1]", size[1], 1, 16384)


def _shard_arg(shard: Any) -> Tuple[int, int]:
    if isinstance(shard, str):
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", shard)
        if not m:
            raise ValueError(f"shard={shard!r}: expected 'K/N' or (K, N), 0 <= K < N")
        shard = (int(m.group(1)), int(m.group(2)))
    if not isinstance(shard, (tuple, list)) or len(shard) != 2:
        raise TypeError("shard: expected (K, N) or 'K/N'")
    n = _int_arg("shard N", shard[1], 1, 2**32 - 1)
    return _int_arg("shard K", shard[0], 0, n - 1), n


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays (and anything else with tolist()) as JSON."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(value: Any, where: str) -> str:
    try:
        return json.dumps(value, allow_nan=False, default=_json_default, separators=(",", ":"))
    except ValueError as e:  # NaN or infinity: JSON has no such numbers, nor has kiln
        raise JobError(f"{where}: {e}", file=where, detail=str(e)) from None
    except TypeError as e:
        raise TypeError(f"{where}: {e}") from None


# ---- the job file ------------------------------------------------------------------------------


class _Names:
    """Maps the temporary files' names in kiln's messages to what the caller wrote."""

    def __init__(self) -> None:
        self.job: Optional[str] = None  # the temporary job document
        self.images: Optional[str] = None  # the temporary list

    def file(self, name: str, line: int) -> Tuple[str, int]:
        if self.images is not None and name == self.images:
            return f"images[{line - 1}]" if line > 0 else "images", 0
        if self.job is not None and name == self.job:
            return "<job>", 0
        return name, line

    def where(self, text: str) -> str:
        """A frame's "where" ("list.jsonl:37") as the caller knows it ("images[36]")."""
        if self.images is not None and text.startswith(self.images + ":"):
            tail = text[len(self.images) + 1:]
            if tail.isdigit():
                return f"images[{int(tail) - 1}]"
        if self.job is not None and text.startswith(self.job):
            return "<job>" + text[len(self.job):]
        return text


def _write_job(job: Union[Job, Mapping[str, Any]], tmp: str, base_dir: Optional[PathLike],
               names: _Names) -> str:
    """Writes a job given as a Job or dict to tmp/job.json (and tmp/images.jsonl for an iterable
    of images, streamed); returns the job file's path. Relative paths are made absolute against
    base_dir (else the Job's base_dir, else the current folder)."""
    if isinstance(job, Job):
        if base_dir is None:
            base_dir = job.base_dir
        doc = job.to_dict()
    else:
        doc = dict(job)
    base = os.path.abspath(os.fspath(base_dir) if base_dir is not None else os.getcwd())
    scene = doc.get("scene")
    if scene is not None:
        if not isinstance(scene, (str, os.PathLike)):
            raise TypeError(f"job 'scene': expected the path of a scene file, not "
                            f"{type(scene).__name__}")
        doc["scene"] = os.path.join(base, os.fspath(scene))
    images = doc.get("images")
    if isinstance(images, (str, os.PathLike)):
        doc["images"] = os.path.join(base, os.fspath(images))
    elif images is not None:
        if isinstance(images, (Mapping, bytes)) or not isinstance(images, Iterable):
            raise TypeError(f"job 'images': expected an iterable of dicts or a .jsonl path, not "
                            f"{type(images).__name__}")
        list_path = os.path.join(tmp, "images.jsonl")
        names.images = list_path
        with open(list_path, "w", encoding="utf-8", buffering=1 << 20) as f:
            for i, item in enumerate(images):
                if not isinstance(item, Mapping):
                    raise TypeError(f"images[{i}]: expected a dict of overrides, not "
                                    f"{type(item).__name__}")
                f.write(_dumps(item, f"images[{i}]"))
                f.write("\n")
        doc["images"] = list_path
    path = os.path.join(tmp, "job.json")
    names.job = path
    text = _dumps(doc, "job")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


# ---- errors ------------------------------------------------------------------------------------


def _text(ffi: cffi.FFI, chars: Any) -> str:
    return ffi.string(chars).decode("utf-8", "replace")


def _job_error(ffi: cffi.FFI, lib: Any, err: Any, rc: int, names: _Names) -> JobError:
    file, line = names.file(_text(ffi, err.file), err.line)
    column = err.column if line else 0
    path, detail = _text(ffi, err.path), _text(ffi, err.message)
    if not detail:
        detail = _text(ffi, lib.kiln_strerror(rc))
    parts = [file] if file else []
    if file and line:
        parts.append(str(line))
        if column:
            parts.append(str(column))
    located = ":".join(parts)
    msg = ": ".join(p for p in (located, path, detail) if p)
    return JobError(msg, code=rc, file=file, line=line, column=column, path=path, detail=detail)


# ---- the run -----------------------------------------------------------------------------------


class _Run:
    """State shared with the progress callback (which runs on the batch's thread)."""

    def __init__(self, ffi: cffi.FFI, lib: Any, progress: Optional[ProgressFn],
                 names: _Names) -> None:
        self.ffi, self.lib, self.progress, self.names = ffi, lib, progress, names
        self.batch: Any = ffi.NULL
        self.failures: List[Dict[str, Any]] = []
        self.error: Optional[BaseException] = None

    def on_event(self, ev: Any) -> None:
        ffi = self.ffi
        fr = ev.frame
        status = int(ev.status)
        where = self.names.where(_text(ffi, fr.where)) if fr != ffi.NULL else ""
        message = _text(ffi, ev.message) if ev.message != ffi.NULL else ""
        frame = int(fr.frame) if fr != ffi.NULL else -1
        if status < 0 and len(self.failures) < MAX_FAILURES_KEPT:
            self.failures.append({"frame": frame, "where": where, "message": message,
                                  "code": status})
        if self.progress is None or self.error is not None:
            return
        event = {
            "index": int(fr.index) if fr != ffi.NULL else -1,
            "frame": frame,
            "name": _text(ffi, fr.name) if fr != ffi.NULL else "",
            "where": where,
            "status": status,
            "message": message,
            "done": int(ev.done),
            "failed": int(ev.failed),
            "skipped": int(ev.skipped),
            "total": int(ev.total),
            "elapsed_s": float(ev.elapsed_s),
        }
        try:
            self.progress(event)
        except BaseException as e:  # noqa: B036 - re-raised by render_job
            self.error = e
            self.lib.kiln_batch_stop(self.batch)


def _summary(ffi: cffi.FFI, s: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for name in SUMMARY_FIELDS:
        value = getattr(s, name)
        if name.endswith("_message"):
            value = _text(ffi, value)
        elif name == "incidents":
            value = [line for line in _text(ffi, value).split("\n") if line]
        elif name == "stopped":
            value = bool(value)
        out[name] = value
    return out


def _open_devices(ffi: cffi.FFI, lib: Any, spec: str, gpu_out: Any) -> List[Any]:
    """Opens the devices spec selects (a CPU device twice, as kiln render does: it has one queue,
    and two frames at once fill the idle tail of each dispatch)."""
    rc = lib.kiln_gpu_create(ffi.NULL, gpu_out)
    if rc:
        raise DeviceError(f"no Vulkan: {_text(ffi, lib.kiln_strerror(rc))} (install a driver, e.g. "
                          f"mesa-vulkan-drivers)", code=rc)
    gpu = gpu_out[0]
    idx = ffi.new("uint32_t[]", _MAX_DEVICES)
    n = ffi.new("size_t *")
    err = ffi.new("kiln_error_detail *")
    # the GPUs the scheduler left to this process (CUDA_VISIBLE_DEVICES and its kin), read as
    # kiln.Renderer and kiln render read them
    from . import _core

    visible, _ = _core._visible(gpu)
    vis = ffi.new("uint32_t[]", visible) if visible is not None else ffi.NULL
    nvis = len(visible) if visible is not None else 0
    rc = lib.kiln_gpu_select_visible(gpu, spec.encode(), vis, nvis, idx, _MAX_DEVICES, n, err)
    if rc:
        why = _text(ffi, err.message) or _text(ffi, lib.kiln_strerror(rc))
        raise DeviceError(f"device={spec!r}: {why} (kiln devices lists them)", code=rc)
    chosen = [int(idx[i]) for i in range(n[0])]
    info = ffi.new("kiln_gpu_device_info *")
    for i in list(chosen):
        if len(chosen) < _MAX_DEVICES and not lib.kiln_gpu_get_device_info(gpu, i, info) and \
                info.type == lib.KILN_GPU_TYPE_CPU:
            chosen.append(i)
    return chosen


def render_job(job: Union[PathLike, Job, Mapping[str, Any]], output_dir: PathLike, *,
               scene: Optional[PathLike] = None,
               frames: Union[None, int, range, str] = None,
               size: Union[None, Tuple[int, int], str] = None,
               spp: Optional[int] = None,
               passes: Union[None, str, Iterable[str]] = None,
               format: Optional[str] = None,
               template: Optional[str] = None,
               resume: bool = False,
               overwrite: bool = False,
               device: Union[str, int] = "auto",
               threads: Optional[int] = None,
               in_flight: Optional[int] = None,
               shard: Union[None, str, Tuple[int, int]] = None,
               shard_mode: str = "round-robin",
               manifest: Optional[PathLike] = None,
               annotations: bool = False,
               tar: Optional[int] = None,
               exr_half: bool = False,
               exr_compression: Optional[str] = None,
               writer: Optional[str] = None,
               isolate: bool = False,
               frame_timeout: Optional[float] = None,
               recycle: Optional[int] = None,
               progress: Optional[ProgressFn] = None,
               base_dir: Optional[PathLike] = None) -> Dict[str, Any]:
    """Renders a job into output_dir, as ``kiln render`` does, and returns its summary.

    job: a job file's path (``.json``, or a ``.jsonl`` list with ``scene=``), a job document as a
    dict, or a :class:`kiln.Job`. In a dict or Job, ``images`` may be any iterable of override
    dicts (a generator included: it is streamed to a temporary ``.jsonl`` and never held in
    memory; numpy values are accepted), and relative paths resolve against ``base_dir`` (else
    the Job's, else the current folder).

    Options (``kiln render``'s, docs/JOBS.md): ``scene`` (a scene file instead of the job's),
    ``frames`` (an int, a ``range``, or ``"A:B[:STEP]"``: frame numbers, B inclusive), ``size``
    (``(w, h)`` or ``"WxH"``), ``spp``, ``passes`` (``"depth,normal"`` or a list), ``format``
    (``png``, ``png16``, ``jpg``, ``exr``, ``npy``, ``hdr``), ``template`` (output names, inside
    output_dir), ``resume`` (skip frames whose files exist), ``overwrite``, ``device`` (``auto``,
    ``cpu``, ``gpu``, ``all``, an index or a name), ``threads`` (worker threads), ``in_flight``
    (frames at once), ``shard`` (``(K, N)`` or ``"K/N"``) with ``shard_mode`` (``round-robin``
    or ``contiguous``), ``manifest`` (a JSONL file of what was written, in output_dir unless
    absolute), ``annotations`` (each rendered frame's ground truth in its manifest line, and
    ``ids.json`` in output_dir; the manifest defaults to ``annotations.jsonl``, or
    ``annotations_K.jsonl`` for shard K: docs/DATASETS.md), ``writer`` (``"coco"``: a COCO
    file ``coco.json``, ``coco_K.json`` for shard K; ``"bop"``: the BOP scene ``bop/00000K``;
    implies ``annotations``; the summary's ``writer_status`` and ``writer_message`` say whether
    it was written), ``tar`` (N frames a WebDataset tar shard, ``shard-000000.tar``, ...),
    ``exr_half`` and ``exr_compression`` (``none``, ``rle``, ``zips``, ``zip``, ``piz``) for EXR
    files; ``format="exr-multi"`` writes one multilayer EXR a frame (docs/JOBS.md, "Output
    layouts").

    isolate: render in worker processes, one per device lane, as ``kiln render --isolate``
    does (docs/PROCESSES.md, "Isolated rendering"): a worker that crashes, hangs past
    ``frame_timeout`` seconds (None: no limit) or loses its device is replaced and its frame sent
    once more to a fresh worker; a frame that fails twice fails alone (in ``failures``, with
    ``code`` KILN_EKILLED, KILN_EEXITED, KILN_ETIMEDOUT or KILN_EDEVICE_LOST) and the batch goes
    on. ``recycle``: replace each worker after that many frames (None: never). Both need
    ``isolate=True`` (else ValueError). The images are byte for byte those of an in-process run.
    The workers come from kiln's fork server, a fork of this interpreter started by the first
    ``isolate=True`` call (before that call opens Vulkan or starts threads); it and the workers
    run only kiln's C code, never Python, and die with this process. For tests, the
    ``KILN_FAULT`` environment variable injects faults into the workers exactly as for
    ``kiln render --isolate`` (``segv@50,hang@120,exit@7,lost@9``; a bad list raises
    ValueError); without ``isolate`` it is ignored.

    progress: called as ``progress(event)`` once per frame done, skipped or failed, on the
    batch's thread (not the caller's), with ``index``, ``frame``, ``name``, ``where``,
    ``status`` (0 written, 1 skipped, 2 rendered elsewhere, else the negative KILN_E* code),
    ``message``, ``done``, ``failed``, ``skipped``, ``total`` and ``elapsed_s``. An exception
    it raises stops the batch (frames in flight finish) and is re-raised here.

    Returns the fields of ``kiln_batch_summary`` (``total``, ``written``, ``failed``,
    ``skipped``, ``files``, ``bytes``, ``stopped``, ``wall_s``, ``images_per_s``, ...) and
    ``failures``: ``{frame, where, message, code}`` of the failed frames (the first
    MAX_FAILURES_KEPT). Failed frames do not raise: the batch goes on, as ``kiln render`` does.
    Isolation's keys are always there, zero (and ``incidents`` empty) without ``isolate``:
    ``worker_starts`` (workers started, replacements and recycling included),
    ``worker_crashes`` (killed by a signal or exited while holding a frame), ``worker_hangs``
    (killed past ``frame_timeout``), ``worker_lost`` (device lost), ``worker_recycles``,
    ``frames_retried`` (frames sent a second time), ``incidents`` (a list of str, one per
    incident in the order they happened: ``"frame 50: render worker 1234 killed by SIGSEGV"``)
    and ``incidents_dropped`` (incidents that did not fit in the list's 2 KiB of text).

    Raises JobError (a job that cannot be loaded, with kiln's located message, or a batch that
    cannot run: its output folder in use by another run, no frame selected, files that exist),
    DeviceError, TypeError and ValueError (bad options), OSError (libkiln.so not found, or
    isolate's fork server cannot start), and KeyboardInterrupt when Ctrl-C stopped the batch
    (its ``summary`` attribute holds the summary). The GIL is released while the batch runs.
    """
    ffi, lib = _api()
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other")
    if progress is not None and not callable(progress):
        raise TypeError("progress: expected a callable(event) or None")
    if isinstance(device, int) and not isinstance(device, bool):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device: expected a string such as 'auto' or 'cpu', not "
                        f"{type(device).__name__}")

    keep: List[Any] = []  # C strings the config borrows, alive until the batch is destroyed

    def cstr(value: Any, name: str) -> Any:
        if not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"{name}: expected a path or string, not {type(value).__name__}")
        s = ffi.new("char[]", os.fsencode(value))
        keep.append(s)
        return s

    cfg = ffi.new("kiln_batch_config *")
    lib.kiln_batch_config_default(cfg)
    cfg.out_dir = cstr(output_dir, "output_dir")
    if frames is not None:
        cfg.first, cfg.last, cfg.step = _frames_arg(frames, int(cfg.first), int(cfg.last))
    if size is not None:
        cfg.width, cfg.height = _size_arg(size)
    if spp is not None:
        cfg.spp = _int_arg("spp", spp, 1, 1 << 24)
    if passes is not None:
        if not isinstance(passes, str):
            passes = list(passes)
            if not all(isinstance(p, str) for p in passes):
                raise TypeError("passes: expected pass names")
            passes = ",".join(passes)
        bits = ffi.new("unsigned *")
        err = ffi.new("kiln_error_detail *")
        if lib.kiln_pass_parse(passes.encode(), bits, err):
            raise ValueError(f"passes={passes!r}: {_text(ffi, err.message)}")
        cfg.passes = bits[0]
    if format is not None:
        if not isinstance(format, str):
            raise TypeError("format: expected a name such as 'png' or 'exr'")
        fmt = ffi.new("kiln_format *")
        if lib.kiln_format_parse(format.encode(), fmt):
            raise ValueError(f"format={format!r}: expected png, png16, jpg, exr, npy, hdr "
                             "or exr-multi")
        cfg.format = fmt[0]
    if template is not None:
        cfg.output = cstr(template, "template")
    cfg.resume = bool(resume)
    cfg.overwrite = bool(overwrite)
    if in_flight is not None:
        cfg.in_flight = _int_arg("in_flight", in_flight, 1, 4096)
    if shard is not None:
        cfg.shard, cfg.shards = _shard_arg(shard)
    if not isinstance(shard_mode, str):
        raise TypeError("shard_mode: expected 'round-robin' or 'contiguous'")
    mode = ffi.new("kiln_shard_mode *")
    if lib.kiln_shard_mode_parse(shard_mode.encode(), mode):
        raise ValueError(f"shard_mode={shard_mode!r}: expected 'round-robin' or 'contiguous'")
    cfg.shard_mode = mode[0]
    if manifest is not None:
        cfg.manifest = cstr(manifest, "manifest")
    cfg.annotations = bool(annotations)
    if tar is not None:
        cfg.tar_frames = _int_arg("tar", tar, 1, 1 << 24)
    cfg.exr_half = bool(exr_half)
    if exr_compression is not None:
        codes = {"none": 1, "rle": 2, "zips": 3, "zip": 4, "piz": 5}  # kiln_exr_compression
        if exr_compression not in codes:
            raise ValueError(f"exr_compression={exr_compression!r}: expected none, rle, zips, "
                             "zip or piz")
        cfg.exr_compression = codes[exr_compression]
    if writer is not None:
        if writer not in _WRITERS:
            raise ValueError(f"writer={writer!r}: expected 'coco' or 'bop'")
        cfg.writer = _WRITERS[writer]
        cfg.annotations = True
    cfg.isolate, cfg.frame_timeout_s, cfg.recycle = _isolate_args(isolate, frame_timeout, recycle)
    # fault injection for tests, read as kiln render reads it: only with isolate, only here
    faults = os.environ.get("KILN_FAULT", "") if isolate else ""
    if faults:
        cfg.faults = cstr(faults, "KILN_FAULT")
    pc = ffi.new("kiln_pool_config *")
    lib.kiln_pool_config_default(pc)
    if threads is not None:
        pc.threads = _int_arg("threads", threads, 1, 1024)
    scene_c = cstr(scene, "scene") if scene is not None else ffi.NULL
    if isinstance(job, (str, os.PathLike)):
        pass
    elif not isinstance(job, (Job, Mapping)):
        raise TypeError(f"job: expected a path, a dict or a kiln.Job, not {type(job).__name__}")

    if isolate:
        _start_fork_server(ffi, lib)
    names = _Names()
    pool_p = ffi.new("kiln_pool **")
    job_p = ffi.new("kiln_job **")
    gpu_p = ffi.new("kiln_gpu **")
    devs = ffi.new("kiln_gpu_device *[]", _MAX_DEVICES)
    ndevs = 0
    batch_p = ffi.new("kiln_batch **")
    with tempfile.TemporaryDirectory(prefix="kiln-job-") as tmp:
        try:
            if isinstance(job, (str, os.PathLike)):
                job_path = os.fspath(job)
            else:
                job_path = _write_job(job, tmp, base_dir, names)
            rc = lib.kiln_pool_create(pc, pool_p)
            if rc:
                why = _text(ffi, lib.kiln_strerror(rc))
                raise OSError(f"cannot start the worker threads: {why}")
            err = ffi.new("kiln_error_detail *")
            jo = ffi.new("kiln_job_options *", {"scene": scene_c, "pool": pool_p[0]})
            rc = lib.kiln_job_load(os.fsencode(job_path), jo, err, job_p)
            if rc:
                raise _job_error(ffi, lib, err, rc, names)
            for i in _open_devices(ffi, lib, device, gpu_p):
                rc = lib.kiln_gpu_device_open(gpu_p[0], i, ffi.NULL, devs + ndevs)
                if rc:
                    why = _text(ffi, lib.kiln_strerror(rc))
                    raise DeviceError(f"cannot open device {i}: {why}", code=rc)
                ndevs += 1
            run = _Run(ffi, lib, progress, names)

            def on_event(_arg: Any, ev: Any) -> None:
                try:
                    run.on_event(ev)
                except BaseException as e:  # noqa: B036 - never let it unwind into C
                    if run.error is None:
                        run.error = e
                    lib.kiln_batch_stop(run.batch)

            callback = ffi.callback("kiln_batch_progress_fn", on_event)
            cfg.pool = pool_p[0]
            cfg.devs = devs
            cfg.ndevs = ndevs
            cfg.progress = callback
            rc = lib.kiln_batch_create(job_p[0], cfg, batch_p, err)
            if rc and faults and _text(ffi, err.message).startswith("bad fault"):
                raise ValueError(f"KILN_FAULT={faults!r}: {_text(ffi, err.message)}")
            if rc:
                if template is not None and _text(ffi, err.path) == "output":
                    raise JobError(f"template={template!r}: {_text(ffi, err.message)}", code=rc,
                                   path="output", detail=_text(ffi, err.message))
                raise _job_error(ffi, lib, err, rc, names)
            run.batch = batch_p[0]
            return _run(ffi, lib, run, names)
        finally:
            lib.kiln_batch_destroy(batch_p[0])
            lib.kiln_job_destroy(job_p[0])
            for i in range(ndevs):
                lib.kiln_gpu_device_close(devs[i])
            lib.kiln_gpu_destroy(gpu_p[0])
            lib.kiln_pool_destroy(pool_p[0])


def _run(ffi: cffi.FFI, lib: Any, run: _Run, names: _Names) -> Dict[str, Any]:
    """Runs the batch on a thread of its own (the call releases the GIL) and waits for it, so that
    Ctrl-C reaches the caller at once and stops the batch."""
    sum_ = ffi.new("kiln_batch_summary *")
    err = ffi.new("kiln_error_detail *")
    result: Dict[str, int] = {}
    finished = threading.Event()

    def body() -> None:
        try:
            result["rc"] = lib.kiln_batch_run(run.batch, sum_, err)
        finally:
            finished.set()

    thread = threading.Thread(target=body, name="kiln-batch")
    thread.start()
    interrupted: Optional[BaseException] = None
    while not finished.is_set():
        try:
            finished.wait()
        except BaseException as e:  # noqa: B036 - Ctrl-C: stop, let the frames in flight finish
            lib.kiln_batch_stop(run.batch)
            if interrupted is None:
                interrupted = e
    thread.join()
    summary = _summary(ffi, sum_)
    summary["failures"] = run.failures
    for e in (interrupted, run.error):
        if e is not None:
            try:
                setattr(e, "summary", summary)
            except AttributeError:
                pass
            raise e
    rc = result.get("rc", -10)
    if rc:
        raise _job_error(ffi, lib, err, rc, names)
    return summary
