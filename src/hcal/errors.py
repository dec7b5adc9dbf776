"""User-facing errors.

Every problem caused by the user's input (a flag, a config file, a data file, a checkpoint)
raises a subclass of :class:`HcalError`. The command line prints such an error as one line and
exits non-zero; ``--debug`` shows the traceback. They subclass :class:`ValueError` so library
users can catch them the usual way.
"""

from __future__ import annotations

import re

__all__ = [
    "HcalError",
    "ConfigError",
    "DataError",
    "ImageReadError",
    "HierarchyError",
    "CheckpointError",
    "NonFiniteLossError",
    "NashSolverError",
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
