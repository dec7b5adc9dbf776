"""The Lightning Trainer every command uses, built from a :class:`~hcal.config.Config`."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from ..config import Config
from ..errors import ConfigError
from .checkpoint import AtomicCheckpointIO

__all__ = ["build_trainer", "build_loggers", "augment_on_device", "interactive_progress", "monitor_mode",
           "terminal_columns"]


def _accelerator(device: str) -> str:
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu or auto")
        return "gpu"
    return {"auto": "auto", "cpu": "cpu"}[device]


def _uses_gpu(device: str) -> bool:
    return _accelerator(device) == "gpu" or (device == "auto" and torch.cuda.is_available())


def augment_on_device(config: Config) -> bool:
    """Whether small-image augmentation runs batch-wise on the training device (``--augment-on``)."""
    return _uses_gpu(config.device) if config.augment_on == "auto" else config.augment_on == "device"


def terminal_columns(stream: Any) -> int:
    """The width of the terminal ``stream`` writes to; 0 if it is not a terminal or the terminal has no size."""
    try:
        return os.get_terminal_size(stream.fileno()).columns if stream.isatty() else 0
    except (AttributeError, OSError, ValueError):
        return 0


def interactive_progress(config: Config) -> bool:
    """A live progress bar only on a terminal with a size (Lightning's bar writes to stdout); logs, pipes and
    terminals without a size (tqdm would draw nothing there) get one line per epoch instead."""
    return config.progress and terminal_columns(sys.stdout) > 0


def monitor_mode(monitor: str) -> str:
    return "min" if monitor.split("/")[-1].startswith("hvr") else "max"


class _KeepingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that it adds to an existing ``metrics.csv`` instead of deleting it."""

    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="", encoding="utf-8") as fh:
                self.metrics_keys = next(csv.reader(fh), [])  # the header: rows are appended in its order


class ResumableCSVLogger(CSVLogger):
    """``logs/csv/metrics.csv`` of every session of a run: a resumed run adds its epochs to the earlier ones
    (Lightning's CSVLogger would delete them)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(log_dir=self.log_dir)
        return self._experiment


def build_loggers(run_dir: Path) -> list:
    """``RUN_DIR/logs/csv/metrics.csv`` and ``RUN_DIR/logs/tensorboard/``."""
    return [ResumableCSVLogger(save_dir=str(run_dir / "logs"), name="", version="csv"),
            TensorBoardLogger(save_dir=str(run_dir / "logs"), name="", version="tensorboard", default_hp_metric=False)]


def build_trainer(config: Config, run_dir: Path | None, callbacks: list, loggers: Any) -> L.Trainer:
    limit = config.limit_batches if config.limit_batches is not None else 1.0
    distributed = config.devices * config.num_nodes > 1
    return L.Trainer(
        max_epochs=config.epochs,
        accelerator=_accelerator(config.device),
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy="ddp" if distributed or config.strategy == "ddp" else "auto",
        # Exact batch statistics over the global batch; SyncBatchNorm exists on GPUs only.
        sync_batchnorm=distributed and _uses_gpu(config.device),
        precision=config.precision,
        deterministic=config.deterministic,
        default_root_dir=str(run_dir) if run_dir else None,
        logger=loggers,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        enable_progress_bar=interactive_progress(config),
        enable_model_summary=False,
        limit_train_batches=limit,
        limit_val_batches=limit,
        limit_test_batches=limit,
        log_every_n_steps=min(50, config.limit_batches or 50),
        num_sanity_val_steps=0,
    )
