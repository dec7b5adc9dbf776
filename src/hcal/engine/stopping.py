"""Stopping a run at a safe point when SIGINT (Ctrl-C) or SIGTERM (a batch scheduler's notice) arrives.

The command line installs :func:`stop_on_signals` for ``hcal fit`` and the experiments (signal
handlers are process-wide). The first signal asks to stop: while a training loop runs, the
request is honoured at its next safe point, the end of a batch or of an epoch
(:class:`StopAtSafePoint`); outside one, and for a second signal, at once. Either way
:class:`~hcal.errors.Stopped` is raised. What is on disk is then only what completed atomic writes
left: the last end-of-epoch checkpoint, from which ``hcal fit --resume`` repeats the interrupted
epoch from its start exactly as an uninterrupted run would. No mid-epoch checkpoint is written:
the data loader has already drawn the next batch's augmentation, and per-epoch state (DWA's
loss sums, worker seeds) would not match, so resuming from it could not reproduce the run.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ..errors import Stopped

__all__ = ["stop_on_signals", "deferred", "check_stop", "as_stopped", "StopAtSafePoint"]

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


def as_stopped(e: BaseException) -> BaseException:
    """Lightning's own stop at its safe points (SIGTERM: ``SIGTERMException``, a ``SystemExit`` of status 0!) as
    :class:`~hcal.errors.Stopped`; any other exception as it is."""
    return Stopped(signal.SIGTERM, REQUEST.where) if isinstance(e, SIGTERMException) else e


class StopAtSafePoint(Callback):
    """Defers stop requests while ``trainer.fit`` runs; honours them after each training or validation batch and
    between epochs. ``on_checkpoint()`` is called once each epoch's checkpoint is written (ModelCheckpoint writes it
    in ``on_train_epoch_end``, after every other callback's hook: so at the next epoch's start, or the fit's end)."""

    def __init__(self, on_checkpoint=None) -> None:
        self.on_checkpoint = on_checkpoint
        self._deferring = False

    @staticmethod
    def _safe_point(trainer, between_epochs: bool = False) -> None:
        """Say where training is (for a stop Lightning raises itself), and stop there if asked to."""
        done, total = trainer.current_epoch, trainer.max_epochs
        between_epochs = between_epochs or done >= total
        REQUEST.where = f"after epoch {done}/{total}" if between_epochs and done else f"in epoch {done + 1}/{total}"
        check_stop(REQUEST.where)

    def on_fit_start(self, trainer, pl_module) -> None:
        REQUEST.deferring += 1
        self._deferring = True
        self._safe_point(trainer, between_epochs=True)

    def _undefer(self) -> None:
        if self._deferring:
            REQUEST.deferring -= 1
            self._deferring = False

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._undefer()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self.on_checkpoint is not None:
            self.on_checkpoint()
        self._safe_point(trainer, between_epochs=True)
        self._safe_point(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._safe_point(trainer)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0
                                ) -> None:
        self._safe_point(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # the epoch's checkpoint follows this hook
        REQUEST.where = f"after epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"

    def on_fit_end(self, trainer, pl_module) -> None:
        self._undefer()
        if self.on_checkpoint is not None:
            self.on_checkpoint()
        self._safe_point(trainer, between_epochs=True)  # a stop asked for in the last steps, before testing
