"""User-facing errors.

Every problem caused by the user's input (a flag, a config file, a data file, a checkpoint)
or environment (a full disk, a read-only folder) raises a subclass of :class:`HcalError`. The
command line prints such an error as one line and exits non-zero; ``--debug`` shows the traceback.
They subclass :class:`ValueError` so library users can catch them the usual way.

A run stopped by a signal raises :class:`Stopped` (a ``BaseException``, as ``KeyboardInterrupt``,
so no ``except Exception`` swallows it); what the user must know but need not stop for is an
:class:`HcalWarning`, issued with :func:`warn`.
"""

from __future__ import annotations

import contextlib
import errno
import re
import signal
import sys
import warnings

__all__ = [
    "HcalError",
    "ConfigError",
    "DataError",
    "ImageReadError",
    "HierarchyError",
    "CheckpointError",
    "NonFiniteLossError",
    "NashSolverError",
    "StorageError",
    "storage_error",
    "Stopped",
    "HcalWarning",
    "warn",
    "one_line_warnings",
]

_CLASS_PREFIX = re.compile(r"^[\w.]+(Error|Exception): ")


class HcalError(ValueError):
    """Base class of every error caused by user input; its message is one line.

    An error raised in a data-loader worker is re-raised by PyTorch in the main process with the
    worker's whole traceback as its message (``...Original Traceback...\\nhcal.errors.DataError:
    <message>``); the constructor keeps only the original message, so it still prints as one line.
    """

    def __init__(self, message: str = "") -> None:
        if "Original Traceback" in message:
            lines = [line for line in message.strip().splitlines() if line.strip()]
            message = _CLASS_PREFIX.sub("", lines[-1])
        super().__init__(message)


class ConfigError(HcalError):
    """A bad option, config file or combination of options."""


class DataError(HcalError):
    """A missing, unreadable or inconsistent data file or folder."""


class ImageReadError(DataError):
    """An image file that cannot be opened or decoded; the message names the file."""


class HierarchyError(HcalError):
    """A class tree that is not a valid hierarchy, or a label that is not in it."""


class CheckpointError(HcalError):
    """A checkpoint that is missing, truncated, foreign or incompatible."""


class NonFiniteLossError(HcalError):
    """A training step produced a NaN or infinite loss."""


class NashSolverError(HcalError):
    """Nash-MTL's solver found no weights where no previous ones exist."""


class StorageError(HcalError):
    """A file or folder hcal must write cannot be written: no space left, a read-only file system, no permission."""


STORAGE_CAUSES = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the file system (or the ulimit -f file-size limit)",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def storage_error(e: BaseException, path: object = None) -> StorageError | None:
    """``e`` as a one-line :class:`StorageError` naming ``path`` (default: the file the OS names) and the cause,
    or None when ``e`` (or what caused it) is not a write failure of the user's environment."""
    seen = 0
    while e is not None and not (isinstance(e, OSError) and e.errno in STORAGE_CAUSES) and seen < 10:
        e, seen = e.__cause__ or e.__context__, seen + 1
    if not isinstance(e, OSError) or e.errno not in STORAGE_CAUSES:
        return None
    where = path if path is not None else e.filename
    # a missing permission may be a read's; the others happen to writes only
    verb = "write" if path is not None or e.errno not in (errno.EACCES, errno.EPERM) else "access"
    cause = STORAGE_CAUSES[e.errno]
    return StorageError(f"cannot {verb} {str(where)!r}: {cause}" if where is not None else f"cannot {verb}: {cause}")


class Stopped(BaseException):
    """A run stopped by a signal (SIGINT, SIGTERM) at a safe point.

    ``str()`` is one line: ``stopped by SIGTERM in epoch 3/10; <hint: how to continue>``; ``exit_code`` follows the
    shell's convention, 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, signum: int, where: str = "", hint: str = "") -> None:
        self.signum, self.where, self.hint = signum, where, hint
        super().__init__(f"stopped by {signal.Signals(signum).name}{f' {where}' if where else ''}"
                         f"{f'; {hint}' if hint else ''}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def with_hint(self, hint: str, where: str | None = None) -> "Stopped":
        return Stopped(self.signum, self.where or where or "", hint)


class HcalWarning(UserWarning):
    """Something the user must see but that need not stop the run (a class without training samples, ...);
    the command line prints each as one line, once."""


def warn(message: str) -> None:
    """Issue ``message`` as an :class:`HcalWarning`."""
    warnings.warn(message, HcalWarning, stacklevel=2)


@contextlib.contextmanager
def one_line_warnings(prefix: str):
    """In this block, each :class:`HcalWarning` text is printed once, as ``PREFIX: warning: TEXT`` on stderr (whatever
    PYTHONWARNINGS says); other warnings as Python shows them. The command line uses it."""
    show = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, HcalWarning):
            print(f"{prefix}: warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("default", HcalWarning)
        warnings.showwarning = showwarning
        yield
