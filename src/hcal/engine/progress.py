"""Small callbacks: one line per epoch when no progress bar is shown; the model at initialisation."""

from __future__ import annotations

import time

from lightning.pytorch.callbacks import Callback

from .report import format_duration

__all__ = ["EpochSummary", "InitCheckpoint"]


class EpochSummary(Callback):
    """Prints ``epoch 3/10: train loss 0.412, val acc_l1 0.9123, val hvr 0.0412 (52 s, ~6m04s left)``."""

    def __init__(self, echo=print, keys: tuple[str, ...] = ("val/acc_l1", "val/hvr")) -> None:
        self.echo, self.keys = echo, keys
        self._start = self._epoch_start = 0.0
        self._first_epoch = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()
        self._first_epoch = trainer.current_epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        now = time.perf_counter()
        done = trainer.current_epoch + 1
        per_epoch = (now - self._start) / max(1, done - self._first_epoch)
        left = per_epoch * (trainer.max_epochs - done)
        parts = []
        if "train/loss_epoch" in metrics:
            parts.append(f"train loss {float(metrics['train/loss_epoch']):.4f}")
        parts += [f"{k.replace('/', ' ')} {float(metrics[k]):.4f}" for k in self.keys if k in metrics]
        self.echo(
            f"epoch {done}/{trainer.max_epochs}: {', '.join(parts)} "
            f"({now - self._epoch_start:.0f} s{f', ~{format_duration(left)} left' if left > 0 else ''})",
        )


class InitCheckpoint(Callback):
    """Saves the model before its first training step (``checkpoints/init.ckpt``), e.g. for the
    prototype maps at initialisation of ``hcal visualize``. Not rewritten on resume."""

    def __init__(self, path) -> None:
        self.path = path

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.global_step == 0 and not self.path.exists():
            trainer.save_checkpoint(self.path)
