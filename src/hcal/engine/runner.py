"""fit / evaluate / predict: what the command line runs, usable from Python too.

Each checks the names and options it is given (:func:`hcal.checks.check_config`) before it loads a
checkpoint or data. Run directories are :mod:`~hcal.engine.rundir`'s, DDP's environment
:mod:`~hcal.engine.distributed`'s, the Trainer :mod:`~hcal.engine.trainer`'s and ``predict``'s
inputs :mod:`~hcal.engine.predict_inputs`'.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from ..checks import check_config, check_monitor
from ..config import Config
from ..datasets import DATASETS, DataBundle, create_dataset
from ..errors import CheckpointError, ConfigError
from ..plots import plot_training_curves
from .class_report import write_class_report
from .data import HierarchicalDataModule, split_batch_augmentation
from .distributed import global_rank, share_run_dir, shared_run_dir
from .module import HierarchicalModule
from .predict_inputs import read_inputs
from .predictions import Predictor, csv_columns, output_format, prediction_rows, run_predictor, write_predictions
from .progress import EpochSummary, InitCheckpoint, ProgressBar, TrainingClock
from .report import format_duration, format_table
from .rng import RngStateCallback
from .rundir import (
    BEST,
    CHECKPOINTS,
    CONFIG_FILE,
    CURVES_FILE,
    HIERARCHY_FILE,
    INIT,
    LAST,
    METRICS_FILE,
    check_output,
    check_run_dir,
    default_run_dir,
    extend_run,
    finish_session,
    prepare_run_dir,
    report_dir_of,
    resumable_checkpoint,
    start_session,
    write_json,
)
from .trainer import augment_on_device, build_loggers, build_trainer, interactive_progress, monitor_mode

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


def fit(config: Config, *, resume: str | Path | None = None, overwrite: bool = False, echo=print,
        command: str | None = None, bundle: DataBundle | None = None) -> FitResult:
    """Train ``config`` (or continue the run in ``resume``, whose config it is; more epochs than the run's extend
    it), select on validation, test once. ``command``: what run.json records (default: this process's argv).
    ``bundle``: the data, instead of ``config.dataset``'s (:class:`~hcal.HierarchicalClassifier`'s arrays).
    """
    check_config(config)
    main = global_rank() == 0  # under DDP, Lightning re-runs this command for ranks 1..N-1
    echo = echo if main else _silent
    last = None
    if resume is not None:
        run_dir = Path(resume)
        last = resumable_checkpoint(run_dir, config, clean=main)
    elif main:
        run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(config)
        check_run_dir(run_dir, overwrite)
    else:
        run_dir = shared_run_dir()

    L.seed_everything(config.seed, workers=True, verbose=False)
    bundle = load_bundle(config) if bundle is None else bundle
    config = resolve_config(config, bundle).replace(run_dir=str(run_dir))
    # Build the model before touching the run directory: a backbone that does not fit the data leaves nothing.
    module = HierarchicalModule(config.to_dict(), bundle.hierarchy.to_dict(), bundle.input_spec.to_dict())
    if main and resume is None:
        prepare_run_dir(run_dir)
        config.save(run_dir / CONFIG_FILE)
        bundle.hierarchy.to_json(run_dir / HIERARCHY_FILE)
    elif main:
        extend_run(run_dir, config)
    session = start_session(run_dir, command or shlex.join(sys.argv)) if main else {}
    share_run_dir(run_dir)

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
    clock = TrainingClock()
    keys = tuple(dict.fromkeys([config.monitor, "val/acc_l1", "val/hvr"]))
    callbacks = [checkpoints, latest, RngStateCallback(), InitCheckpoint(run_dir / CHECKPOINTS / INIT), clock,
                 ProgressBar(keys) if interactive_progress(config) else EpochSummary(echo, keys)]
    trainer = build_trainer(config, run_dir, callbacks, build_loggers(run_dir))
    h = bundle.hierarchy
    echo(
        f"hcal fit: {config.method} on {config.dataset} ({bundle.source}; {len(bundle.train)} train / "
        f"{len(bundle.val)} val / {len(bundle.test)} test; levels {' > '.join(map(str, reversed(h.sizes)))} "
        f"classes), backbone {config.backbone}, {config.epochs} epochs, run dir {run_dir}"
    )
    trainer.fit(module, datamodule=data, ckpt_path=str(last) if last else None)
    seconds, total_seconds = clock.session, clock.total  # before test() reloads the clock's state from best.ckpt
    best = Path(checkpoints.best_model_path) if checkpoints.best_model_path else run_dir / CHECKPOINTS / BEST
    trainer.test(module, datamodule=data, ckpt_path=str(best), verbose=False)
    metrics = dict(module.last_metrics["test"])
    best_score = checkpoints.best_model_score
    metrics[f"best_{config.monitor}"] = float(best_score) if best_score is not None else float("nan")
    metrics = {k: metrics[k] for k in sorted(metrics, key=lambda k: (not k.startswith("test/"), k))}
    if not main:
        return FitResult(run_dir, metrics, best, total_seconds, "")
    write_json(run_dir / METRICS_FILE, metrics)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() and config.device != "cpu" else "no GPU used"
    finish_session(run_dir, session, seconds=seconds, total_seconds=total_seconds, epochs=trainer.current_epoch,
                   best=best, gpu=gpu)
    plot_training_curves(run_dir / CURVES_FILE, run_dir / "logs" / "csv" / "metrics.csv", h.num_levels,
                         f"training curves: {config.method} on {config.dataset}, run dir {run_dir}",
                         weighting=module.method.weighting_spec(config)[0], monitor=config.monitor,
                         best_is_max=monitor_mode(config.monitor) == "max")
    title = f"test metrics (best checkpoint by {config.monitor}, {config.decode} decoding)"
    table = format_table(metrics, "test", h.num_levels, title=title)
    sessions = len(session["history"])
    table += (f"\ntrain time: {format_duration(total_seconds)}"
              + (f" over {sessions} sessions (this one {format_duration(seconds)})" if sessions > 1 else "")
              + f"\ntraining curves: {run_dir / CURVES_FILE}\nrun dir: {run_dir}")
    echo(table)
    return FitResult(run_dir, metrics, best, total_seconds, table)


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
    report: bool = True,
    report_dir: str | Path | None = None,
    echo=print,
) -> dict[str, float]:
    """Evaluate a checkpoint on a test set (its own dataset's by default). ``report``: also write the per-class
    report (:mod:`~hcal.engine.class_report`) into ``report_dir``, by default the checkpoint's run's ``report/``."""
    check_output(output, overwrite)
    out = Path(report_dir) if report_dir is not None else report_dir_of(Path(ckpt))
    if report and out is not None and out.exists() and not out.is_dir():
        raise ConfigError(f"--report-dir {str(out)!r} is a file; give a folder (created if missing)")
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
    if report and out is None:
        echo(f"no per-class report: {ckpt} is not in a run directory's checkpoints/ (give --report-dir DIR)")
    elif report:
        samples = int(module.last_confusion[0].sum())
        files = write_class_report(out, module.last_confusion, bundle.hierarchy,
                                   f"Test split of {cfg.dataset} ({samples} samples), {cfg.decode} decoding; "
                                   f"checkpoint {ckpt}.")
        echo(f"per-class report in {out}: {', '.join(f.name for f in files)}")
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
    inputs: Any,
    *,
    output: str | Path | None = None,
    format: str | None = None,
    decode: str | None = None,
    top_k: int = 0,
    probabilities: bool = False,
    skip_bad: bool = False,
    batch_size: int = 256,
    overwrite: bool = False,
    echo=print,
) -> list[dict[str, Any]]:
    """Predict a label and a score per level for every input; write CSV or JSON lines (or print them).

    ``inputs``: paths of image files and folders (image models) or ``.npy`` files (vector models), or
    an array or tensor whose rows are the inputs. ``format``: ``csv`` or ``jsonl`` (default: from
    ``output``'s suffix). ``top_k``: also each level's K most probable classes; ``probabilities``:
    also each level's whole probability vector. An input that cannot be predicted stops, unless
    ``skip_bad``: then its row holds why, in an ``error`` field. Returns the rows
    (:mod:`hcal.engine.predictions` describes them).
    """
    check_output(output, overwrite)
    fmt = output_format(format, output)
    module, _ = HierarchicalModule.from_checkpoint(ckpt)
    predictor = Predictor(module, decode)
    batch = read_inputs(inputs, module.input_spec)
    batch.check(skip_bad)
    outputs = run_predictor(predictor, batch.x.split(batch_size))
    h = module.hierarchy
    rows = prediction_rows(batch, outputs, h, top_k, probabilities, skip_bad)
    write_predictions(rows, csv_columns(h, top_k, probabilities, skip_bad), fmt, output, echo)
    return rows
