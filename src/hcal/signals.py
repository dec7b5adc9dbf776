"""SIGINT (Ctrl-C) and SIGTERM (a batch scheduler's notice) as a stop at a safe point.

The command line installs :func:`stop_on_signals` for every command (signal handlers are
process-wide). The first signal asks to stop: while a section is :func:`deferred` (a training loop,
see :class:`hcal.engine.stopping.StopAtSafePoint`), the request is honoured at its next
:func:`check_stop`; outside one, and for a second signal, at once. Either way
:class:`~hcal.errors.Stopped` is raised. This module imports neither torch nor Lightning, so the
command line can install it before a command loads them.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

from .errors import Stopped

__all__ = ["stop_on_signals", "deferred", "check_stop", "REQUEST", "SIGNALS"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Request:
    """The process's pending stop: the signal received (None: none), and how many sections defer it."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.deferring = 0
        self.pid = 0  # the process that installed the handlers (forked data-loader workers inherit them)
        self.where = ""  # where training is, for a stop Lightning raises itself


REQUEST = _Request()


def _handler(signum: int, frame) -> None:
    if os.getpid() != REQUEST.pid:  # a forked worker: its parent decides
        return
    first = REQUEST.signum is None
    REQUEST.signum = signum
    if not first or REQUEST.deferring == 0:
        raise Stopped(signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`~hcal.errors.Stopped` (at the next safe point while training) in this block.

    Only the main thread may set signal handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    REQUEST.signum, REQUEST.deferring, REQUEST.pid, REQUEST.where = None, 0, os.getpid(), ""
    previous = {s: signal.signal(s, _handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        REQUEST.signum, REQUEST.deferring, REQUEST.where = None, 0, ""


@contextmanager
def deferred() -> Iterator[None]:
    """A section a first signal does not interrupt (it is honoured at the next :func:`check_stop`)."""
    REQUEST.deferring += 1
    try:
        yield
    finally:
        REQUEST.deferring -= 1


def check_stop(where: str = "") -> None:
    """A safe point: raise :class:`~hcal.errors.Stopped` if a stop was asked for."""
    if REQUEST.signum is not None:
        raise Stopped(REQUEST.signum, where)
