"""User-facing errors.

Every problem caused by the user's input (a flag, a config file, a data file, a checkpoint)
raises a subclass of :class:`HcalError`. The command line prints such an error as one line and
exits non-zero; ``--debug`` shows the traceback. They subclass :class:`ValueError` so library
users can catch them the usual way.
"""

from __future__ import annotations

__all__ = ["HcalError", "ConfigError", "DataError", "HierarchyError", "CheckpointError"]


class HcalError(ValueError):
    """Base class of every error caused by user input."""


class ConfigError(HcalError):
    """A bad option, config file or combination of options."""


class DataError(HcalError):
    """A missing, unreadable or inconsistent data file or folder."""


class HierarchyError(HcalError):
    """A class tree that is not a valid hierarchy, or a label that is not in it."""


class CheckpointError(HcalError):
    """A checkpoint that is missing, truncated, foreign or incompatible."""
