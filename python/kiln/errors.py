"""kiln's exceptions, and ``check``, which turns a C return code into one.

Every exception carries kiln's own message: for an error located in a file (a scene, a job, a list
line) that is ``kiln_error_detail_format``'s "file:line:column: path: message", and the parts are
attributes (``file``, ``line``, ``column``, ``path``, ``message``; empty or 0 where they do not
apply). ``code`` is the negative KILN_E* code and ``code_name`` its symbol ("KILN_EPARSE").
"""

from __future__ import annotations

from typing import Any, Optional, Type

from ._ffi import ffi, lib

__all__ = [
    "KilnError",
    "SceneError",
    "JobError",
    "DeviceError",
    "RenderError",
    "check",
    "error_from_detail",
]


class KilnError(Exception):
    """Base of kiln's exceptions: a failed kiln call, or a refused use of the package."""

    code: int
    file: str
    line: int
    column: int
    path: str
    message: str

    def __init__(
        self,
        text: str,
        *,
        code: int = 0,
        file: str = "",
        line: int = 0,
        column: int = 0,
        path: str = "",
        message: Optional[str] = None,
    ) -> None:
        super().__init__(text)
        self.code = code
        self.file = file
        self.line = line
        self.column = column
        self.path = path
        self.message = text if message is None else message

    @property
    def code_name(self) -> str:
        """The symbolic name of ``code`` ("KILN_EPARSE"); "KILN_OK" when there is none."""
        if self.code == 0:
            return "KILN_OK"
        return ffi.string(lib.kiln_err_name(self.code)).decode()


class SceneError(KilnError):
    """A scene that cannot be loaded (syntax, a wrong value, a missing file it names)."""


class JobError(KilnError):
    """A job (or list line) that cannot be loaded or run."""


class DeviceError(KilnError):
    """No device as asked, or a device that cannot be opened (no Vulkan, no driver)."""


class RenderError(KilnError):
    """A frame that failed to render (device lost, out of memory)."""


def strerror(code: int) -> str:
    """kiln's message for a KILN_E* code."""
    return ffi.string(lib.kiln_strerror(code)).decode()


def error_from_detail(err: Any, error: Type[KilnError] = SceneError) -> KilnError:
    """An exception of class ``error`` from a filled ``kiln_error_detail *``."""
    buf = ffi.new("char[]", 1400)
    text = ffi.string(lib.kiln_error_detail_format(err, buf, len(buf))).decode(errors="replace")
    if not text:
        text = strerror(err.code)
    return error(
        text,
        code=err.code,
        file=ffi.string(err.file).decode(errors="replace"),
        line=err.line,
        column=err.column,
        path=ffi.string(err.path).decode(errors="replace"),
        message=ffi.string(err.message).decode(errors="replace") or strerror(err.code),
    )


def check(
    rc: int,
    err_detail: Any = None,
    error: Type[KilnError] = KilnError,
    what: str = "",
) -> None:
    """Raises ``error`` when ``rc`` is a failure (< 0); returns None for KILN_OK.

    ``err_detail`` (a ``kiln_error_detail *`` the call filled, or None) gives the located
    message; without one the message is ``what`` (the call that failed) and kiln's text for
    ``rc``."""
    if rc >= 0:
        return
    if err_detail is not None and err_detail != ffi.NULL and err_detail.code != 0:
        raise error_from_detail(err_detail, error)
    text = strerror(rc)
    raise error(f"{what}: {text}" if what else text, code=rc, message=text)
