"""fit / evaluate / predict: what the command line runs, usable from Python too.

Each checks the names and options it is given (:func:`hcal.checks.check_config`) before it loads a
checkpoint or data. Run directories are :mod:`~hcal.engine.rundir`'s, DDP's environment
:mod:`~hcal.engine.distributed`'s, the Trainer :mod:`~hcal.engine.trainer`'s and ``predict``'s
inputs :mod:`~hcal.engine.predict_inputs`'.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from ..checks import check_config, check_monitor
from ..config import Config
from ..datasets import DATASETS, DataBundle, check_training_data, create_dataset
from ..errors import CheckpointError
from .checkpoint import atomic_write
from .data import HierarchicalDataModule, split_batch_augmentation
from .distributed import global_rank, share_run_dir, shared_run_dir
from .module import HierarchicalModule
from .predict_inputs import expand_inputs, load_inputs
from .progress import EpochSummary, InitCheckpoint
from .report import format_table
from .rng import RngStateCallback
from .rundir import (
    BEST,
    CHECKPOINTS,
    CONFIG_FILE,
    HIERARCHY_FILE,
    INIT,
    LAST,
    METRICS_FILE,
    RUN_INFO_FILE,
    RunDirectory,
    check_output,
    check_run_dir,
    default_run_dir,
    explain_failure,
    resumable_checkpoint,
    write_json,
)
from .stopping import StopAtSafePoint
from .trainer import augment_on_device, build_trainer, interactive_progress, monitor_mode

__all__ = ["fit", "evaluate", "predict", "FitResult", "load_bundle", "resolve_config"]


def load_bundle(config: Config) -> DataBundle:
    return create_dataset(
        config.dataset, config.data_dir, seed=config.seed, val_fraction=config.val_fraction, **config.dataset_args
    )


def resolve_config(config: Config, bundle: DataBundle) -> Config:
    """Fill in what depends on the data (the default backbone) and check the monitor metric's level."""
    check_monitor(config.monitor, bundle.hierarchy.num_levels)
    return config.replace(backbone=bundle.default_backbone) if config.backbone == "auto" else config


@dataclass
class FitResult:
    run_dir: Path
    metrics: dict[str, float]
    best_checkpoint: Path
    seconds: float
    table: str


def _silent(*args: Any, **kwargs: Any) -> None:
    pass


def fit(config: Config, *, resume: str | Path | None = None, overwrite: bool = False, echo=print) -> FitResult:
    """Train ``config`` (or continue the run in ``resume``, whose config it is), select on validation, test once.

    The run directory is locked while this runs. A fit that fails or is stopped before its first checkpoint leaves
    the directory as it found it (a run it was to replace is put back); later, the last checkpoint is kept for
    ``resume``. A stop (:class:`~hcal.errors.Stopped`) and a failed write (:class:`~hcal.errors.StorageError`)
    say how to continue."""
    check_config(config)
    main = global_rank() == 0  # under DDP, Lightning re-runs this command for ranks 1..N-1
    echo = echo if main else _silent
    run: RunDirectory | None = None  # rank 0's handle on the directory it writes
    last = None
    if resume is not None:
        run_dir = Path(resume)
        if main:
            run, last = RunDirectory.resume(run_dir)
        else:
            last = resumable_checkpoint(run_dir, clean=False)
    elif main:
        run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(config)
        check_run_dir(run_dir, overwrite)
    else:
        run_dir = shared_run_dir()
    phase = ["while loading the data"]
    try:
        L.seed_everything(config.seed, workers=True, verbose=False)
        bundle = load_bundle(config)
        check_training_data(bundle, quiet=not main)
        config = resolve_config(config, bundle).replace(run_dir=str(run_dir))
        # Build the model before touching the run directory: a backbone that does not fit the data leaves nothing.
        module = HierarchicalModule(config.to_dict(), bundle.hierarchy.to_dict(), bundle.input_spec.to_dict())
        module.check_batch_size(min(config.batch_size, len(bundle.train)))
        if main and resume is None:
            run = RunDirectory.create(run_dir, overwrite)
        if main and last is None:  # a new run, or one resumed from before its first checkpoint
            config.save(run_dir / CONFIG_FILE)
            bundle.hierarchy.to_json(run_dir / HIERARCHY_FILE)
        share_run_dir(run_dir)
        return _train(config, bundle, module, run_dir, last, run, main, echo, phase)
    except BaseException as e:
        raise explain_failure(e, run, resume is None, phase[0])
    finally:
        if run is not None:
            run.release()


def _train(config: Config, bundle: DataBundle, module: HierarchicalModule, run_dir: Path, last: Path | None,
           run: RunDirectory | None, main: bool, echo, phase: list[str]) -> FitResult:
    if augment_on_device(config):
        bundle, module.batch_augment = split_batch_augmentation(bundle)
    data = HierarchicalDataModule(bundle, config.batch_size, config.num_workers, config.seed)
    # Two callbacks: Lightning >= 2.5 refreshes save_last only when a top-k checkpoint was saved,
    # but resuming needs the latest epoch every time.
    checkpoints = ModelCheckpoint(dirpath=run_dir / CHECKPOINTS, filename=BEST.removesuffix(".ckpt"),
                                  monitor=config.monitor, mode=monitor_mode(config.monitor), save_top_k=1,
                                  enable_version_counter=False, auto_insert_metric_name=False)
    latest = ModelCheckpoint(dirpath=run_dir / CHECKPOINTS, filename=LAST.removesuffix(".ckpt"), monitor=None,
                             save_top_k=1, enable_version_counter=False)
    loggers = [
        CSVLogger(save_dir=str(run_dir / "logs"), name="", version="csv"),
        TensorBoardLogger(save_dir=str(run_dir / "logs"), name="", version="tensorboard", default_hp_metric=False),
    ]
    callbacks = [checkpoints, latest, RngStateCallback(), InitCheckpoint(run_dir / CHECKPOINTS / INIT),
                 StopAtSafePoint(run.checkpointed if run is not None else None)]
    if not interactive_progress(config):
        callbacks.append(EpochSummary(echo, keys=tuple(dict.fromkeys([config.monitor, "val/acc_l1", "val/hvr"]))))
    trainer = build_trainer(config, run_dir, callbacks, loggers)
    h = bundle.hierarchy
    echo(
        f"hcal fit: {config.method} on {config.dataset} ({bundle.source}; {len(bundle.train)} train / "
        f"{len(bundle.val)} val / {len(bundle.test)} test; levels {' > '.join(map(str, reversed(h.sizes)))} "
        f"classes), backbone {config.backbone}, {config.epochs} epochs, run dir {run_dir}"
    )
    phase[0] = "in training"
    start = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=str(last) if last else None)
    seconds = time.perf_counter() - start
    phase[0] = "while testing (training had finished)"
    best = Path(checkpoints.best_model_path) if checkpoints.best_model_path else run_dir / CHECKPOINTS / BEST
    trainer.test(module, datamodule=data, ckpt_path=str(best), verbose=False)
    metrics = dict(module.last_metrics["test"])
    best_score = checkpoints.best_model_score
    metrics[f"best_{config.monitor}"] = float(best_score) if best_score is not None else float("nan")
    metrics = {k: metrics[k] for k in sorted(metrics, key=lambda k: (not k.startswith("test/"), k))}
    if not main:
        return FitResult(run_dir, metrics, best, seconds, "")
    phase[0] = "while writing the results"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() and config.device != "cpu" else "no GPU used"
    write_json(run_dir / RUN_INFO_FILE, {
        "train_seconds": round(seconds, 1),
        "epochs_completed": trainer.current_epoch,
        "best_checkpoint": str(best),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {gpu}",
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "command": " ".join(sys.argv),
    })
    write_json(run_dir / METRICS_FILE, metrics)  # last: it marks the run finished
    title = f"test metrics (best checkpoint by {config.monitor}, {config.decode} decoding)"
    table = format_table(metrics, "test", h.num_levels, title=title)
    table += f"\ntrain time: {seconds:.0f} s\nrun dir: {run_dir}"
    echo(table)
    return FitResult(run_dir, metrics, best, seconds, table)


def evaluate(
    ckpt: str | Path,
    *,
    dataset: str | None = None,
    data_dir: str | None = None,
    decode: str | None = None,
    limit_batches: int | None = None,
    device: str = "auto",
    output: str | Path | None = None,
    overwrite: bool = False,
    echo=print,
) -> dict[str, float]:
    """Evaluate a checkpoint on a test set (its own dataset's by default)."""
    check_output(output, overwrite)
    if dataset is not None:
        DATASETS.get(dataset)
    module, _ = HierarchicalModule.from_checkpoint(ckpt)
    cfg = module.config
    changes: dict[str, Any] = {"device": device, "limit_batches": limit_batches, "progress": False}
    if dataset is not None and dataset != cfg.dataset:
        changes.update(dataset=dataset, dataset_args={})
    if data_dir is not None:
        changes["data_dir"] = data_dir
    if decode is not None:
        changes["decode"] = decode
        module.decode_mode = decode
    cfg = cfg.replace(**changes)
    check_config(cfg)
    bundle = load_bundle(cfg)
    check_compatible(ckpt, module, bundle)
    data = HierarchicalDataModule(bundle, cfg.batch_size, cfg.num_workers, cfg.seed)
    trainer = build_trainer(cfg, None, [], False)
    trainer.test(module, datamodule=data, verbose=False)
    metrics = dict(module.last_metrics["test"])
    if output is not None:
        write_json(Path(output), metrics)
    title = f"test metrics of {ckpt} on {cfg.dataset} ({cfg.decode} decoding)"
    echo(format_table(metrics, "test", bundle.hierarchy.num_levels, title=title))
    return metrics


def check_compatible(ckpt: Any, module: HierarchicalModule, bundle: DataBundle) -> None:
    h_ckpt, h_data = module.hierarchy, bundle.hierarchy
    if h_ckpt != h_data:
        raise CheckpointError(
            f"checkpoint {str(ckpt)!r} was trained on another hierarchy (classes per level, finest first: "
            f"{list(h_ckpt.sizes)}) than dataset {bundle.name!r} has ({list(h_data.sizes)}, "
            f"{'same sizes, other names or order' if h_ckpt.sizes == h_data.sizes else 'different sizes'})"
        )
    if module.input_spec != bundle.input_spec:
        raise CheckpointError(
            f"checkpoint {str(ckpt)!r} takes {module.input_spec.describe()} but dataset {bundle.name!r} gives "
            f"{bundle.input_spec.describe()}"
        )


def predict(
    ckpt: str | Path,
    inputs: Sequence[str],
    *,
    output: str | Path | None = None,
    decode: str | None = None,
    batch_size: int = 256,
    overwrite: bool = False,
    echo=print,
) -> list[dict[str, Any]]:
    """Predict a label and a score per level for every input; write a CSV (or print it)."""
    check_output(output, overwrite)
    module, _ = HierarchicalModule.from_checkpoint(ckpt)
    if decode is not None:
        module.decode_mode = decode
    names, x = load_inputs(expand_inputs(inputs, module.input_spec.kind), module.input_spec)
    h = module.hierarchy
    rows: list[dict[str, Any]] = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            preds, probs = module.predict_batch(x[start : start + batch_size])
            for i in range(preds.shape[0]):
                row: dict[str, Any] = {"input": names[start + i]}
                for k in range(h.num_levels):
                    row[f"label_l{k + 1}"] = h.classes[k][int(preds[i, k])]
                    row[f"score_l{k + 1}"] = round(float(probs[i, k]), 6)
                rows.append(row)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    if output is None:
        echo(buf.getvalue().rstrip("\n"))
    else:
        atomic_write(Path(output), lambda fh: fh.write(buf.getvalue().encode("utf-8")))
        echo(f"wrote {len(rows)} predictions to {output}")
    return rows
