"""kiln.Job: a batch job built in Python, whose images may come from a generator.

A job names a scene and its frames (docs/JOBS.md): an animation, or a list of images, each a dict
of overrides (``name``, ``frame``, ``seed``, ``camera``, ``objects``, ``materials``, ``lights``,
``environment``). :func:`kiln.render_job` takes a ``Job`` (or the same as a dict) and renders it.
``images`` may be any iterable, a generator included: it is streamed to a temporary JSONL file
one line at a time and never held in memory as a whole, so a job of millions of images costs
the memory of one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Union

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["Job"]


@dataclass
class Job:
    """A job: one scene and many frames, as a Python object.

    Attributes mirror the keys of a job file (docs/JOBS.md): ``scene`` (a scene file path),
    ``images`` (an iterable of per-image override dicts, e.g. a generator; or the name of a
    ``.jsonl`` file) or ``animation`` (a dict), ``output`` (the file-name template), ``passes``
    (names besides colour), ``format``, ``width``, ``height``, ``spp``, ``description``.
    ``base_dir``: the folder relative paths (``scene``, an ``images`` file) resolve against;
    None: the current folder when the job is rendered.

    ``images`` is iterated once, when the job is rendered: a generator makes a job that can be
    rendered once.
    """

    scene: Optional[PathLike] = None
    images: Optional[Union[Iterable[Mapping[str, Any]], PathLike]] = None
    animation: Optional[Mapping[str, Any]] = None
    output: Optional[str] = None
    passes: Optional[Sequence[str]] = None
    format: Optional[str] = None
    width: Optional[int] = None
    height: Optional[int] = None
    spp: Optional[int] = None
    description: Optional[str] = None
    base_dir: Optional[PathLike] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        """The job as a job document (a dict), leaving out what is None.

        ``images`` stays as given (an iterable is not consumed); ``extra`` keys are added as
        they are (kiln refuses unknown keys when the job is loaded)."""
        d: Dict[str, Any] = {}
        for key in ("scene", "images", "animation", "output", "passes", "format", "width",
                    "height", "spp", "description"):
            value = getattr(self, key)
            if value is not None:
                d[key] = os.fspath(value) if key == "scene" else value
        d.update(self.extra)
        return d
