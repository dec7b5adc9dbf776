"""Stopping a run at a safe point when SIGINT (Ctrl-C) or SIGTERM (a batch scheduler's notice) arrives.

The command line installs :func:`hcal.signals.stop_on_signals` (re-exported here; signal handlers
are process-wide). The first signal asks to stop: while a training loop runs, the
request is honoured at its next safe point, the end of a batch or of an epoch
(:class:`StopAtSafePoint`); outside one, and for a second signal, at once. Either way
:class:`~hcal.errors.Stopped` is raised. What is on disk is then only what completed atomic writes
left: the last end-of-epoch checkpoint, from which ``hcal fit --resume`` repeats the interrupted
epoch from its start exactly as an uninterrupted run would. No mid-epoch checkpoint is written:
the data loader has already drawn the next batch's augmentation, and per-epoch state (DWA's
loss sums, worker seeds) would not match, so resuming from it could not reproduce the run.
"""

from __future__ import annotations

import signal

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ..errors import Stopped
from ..signals import REQUEST, SIGNALS, check_stop, deferred, stop_on_signals

__all__ = ["stop_on_signals", "deferred", "check_stop", "as_stopped", "StopAtSafePoint", "REQUEST", "SIGNALS"]


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
