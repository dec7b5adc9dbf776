"""Small callbacks: the progress bar on a terminal, or one line per epoch; the model at initialisation;
the training time across resumes."""

from __future__ import annotations

import time
from collections.abc import Mapping

from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import convert_inf

from .report import format_duration

__all__ = ["EpochSummary", "ProgressBar", "InitCheckpoint", "TrainingClock"]


NAMES = {"train/loss_epoch": "train loss", "train/loss_step": "loss"}


def _shown(metrics: Mapping, keys: tuple[str, ...]) -> dict[str, str]:
    """``{"val acc_l1": "0.9123", ...}``: the metrics of ``keys`` that exist, as epoch lines and the bar show them."""
    return {NAMES.get(k, k.replace("/", " ")): f"{float(metrics[k]):.4f}" for k in keys if k in metrics}


class ProgressBar(TQDMProgressBar):
    """Lightning's bar, one line left per epoch, counted from 1 (``epoch 3/10``) as :class:`EpochSummary`'s lines,
    with the running training loss and the last validation's ``keys``; none of Lightning's own items (``v_num``)."""

    def __init__(self, keys: tuple[str, ...] = ("val/acc_l1", "val/hvr")) -> None:
        super().__init__(leave=True)
        self.keys = keys

    def on_train_start(self, *args) -> None:
        pass  # a bar per epoch, from on_train_epoch_start (Lightning's would leave an empty "Training" bar)

    def on_train_epoch_start(self, trainer, *args) -> None:
        self.train_progress_bar = self.init_train_tqdm()
        self.train_progress_bar.reset(total=convert_inf(self.total_train_batches))
        self.train_progress_bar.set_description(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")

    def get_metrics(self, trainer, pl_module) -> dict[str, str]:
        return _shown(trainer.callback_metrics, ("train/loss_step", *self.keys))


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
        parts = [f"{name} {value}" for name, value in _shown(metrics, ("train/loss_epoch", *self.keys)).items()]
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


class TrainingClock(Callback):
    """Training time (Lightning's training and validation loop) over all of a run's sessions: each checkpoint
    holds the time up to it, so a resumed run counts on from there (a killed session's time after its last
    checkpoint, whose work is redone, is not counted)."""

    def __init__(self) -> None:
        self.earlier = 0.0  # the sessions before this one, up to the checkpoint it resumed from
        self._start: float | None = None
        self._stop: float | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self._start, self._stop = time.perf_counter(), None

    def on_train_end(self, trainer, pl_module) -> None:
        self._stop = time.perf_counter()

    @property
    def session(self) -> float:
        """Seconds of this session's training."""
        return 0.0 if self._start is None else (self._stop or time.perf_counter()) - self._start

    @property
    def total(self) -> float:
        return self.earlier + self.session

    def state_dict(self) -> dict[str, float]:
        return {"seconds": self.total}

    def load_state_dict(self, state_dict: dict[str, float]) -> None:
        self.earlier = float(state_dict["seconds"])
