"""fit: train a config (or continue a run), select on validation, test once, write the run's results.

The run directory is :mod:`~hcal.engine.rundir`'s (locked while a fit writes it, a replaced run kept
until the new one has a checkpoint), its record :mod:`~hcal.engine.sessions`', the stop at a safe
point :mod:`~hcal.engine.stopping`'s.
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
from ..datasets import DataBundle, check_training_data, create_dataset
from ..plots import plot_training_curves
from .data import HierarchicalDataModule, split_batch_augmentation
from .distributed import global_rank, share_run_dir, shared_run_dir
from .module import HierarchicalModule
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
    RunDirectory,
    check_run_dir,
    default_run_dir,
    explain_failure,
    resumable_checkpoint,
    write_json,
)
from .sessions import extend_run, finish_session, start_session
from .stopping import StopAtSafePoint
from .trainer import augment_on_device, build_loggers, build_trainer, interactive_progress, monitor_mode

__all__ = ["fit", "FitResult", "load_bundle", "resolve_config"]


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
            run, last = RunDirectory.resume(run_dir, config)
        else:
            last = resumable_checkpoint(run_dir, config, clean=False)
    elif main:
        run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(config)
        check_run_dir(run_dir, overwrite)
    else:
        run_dir = shared_run_dir()
    phase = ["while loading the data"]
    try:
        L.seed_everything(config.seed, workers=True, verbose=False)
        bundle = load_bundle(config) if bundle is None else bundle
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
        elif main:
            extend_run(run_dir, config)
        session = start_session(run_dir, command or shlex.join(sys.argv)) if main else {}
        share_run_dir(run_dir)
        return _train(config, bundle, module, run_dir, last, run, main, echo, phase, session)
    except BaseException as e:
        raise explain_failure(e, run, resume is None, phase[0])
    finally:
        if run is not None:
            run.release()


class RunCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint that follows its run directory when the run was moved or copied before a resume.

    Lightning keeps the best score only if the checkpoint folder has not changed since the checkpoint was
    written; otherwise the resumed run would forget epochs before the move (its first new epoch becomes "best")
    and test a best checkpoint in the old folder. Here the saved paths are moved onto the current folder first.
    """

    @property
    def state_key(self) -> str:  # ModelCheckpoint's: checkpoints written before this class still find their state
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old, new = state_dict.get("dirpath"), self.dirpath
        if old and new and old != new:
            def moved(path):
                return str(Path(new) / Path(path).name) if path and Path(path).parent == Path(old) else path
            state_dict = dict(state_dict, dirpath=new, best_model_path=moved(state_dict.get("best_model_path")),
                              kth_best_model_path=moved(state_dict.get("kth_best_model_path")),
                              last_model_path=moved(state_dict.get("last_model_path")),
                              best_k_models={moved(k): v for k, v in state_dict.get("best_k_models", {}).items()})
        super().load_state_dict(state_dict)


def _train(config: Config, bundle: DataBundle, module: HierarchicalModule, run_dir: Path, last: Path | None,
           run: RunDirectory | None, main: bool, echo, phase: list[str], session: dict[str, Any]) -> FitResult:
    if augment_on_device(config):
        bundle, module.batch_augment = split_batch_augmentation(bundle)
    data = HierarchicalDataModule(bundle, config.batch_size, config.num_workers, config.seed)
    # Two callbacks: Lightning >= 2.5 refreshes save_last only when a top-k checkpoint was saved,
    # but resuming needs the latest epoch every time.
    checkpoints = RunCheckpoint(dirpath=run_dir / CHECKPOINTS, filename=BEST.removesuffix(".ckpt"),
                                monitor=config.monitor, mode=monitor_mode(config.monitor), save_top_k=1,
                                enable_version_counter=False, auto_insert_metric_name=False)
    latest = RunCheckpoint(dirpath=run_dir / CHECKPOINTS, filename=LAST.removesuffix(".ckpt"), monitor=None,
                           save_top_k=1, enable_version_counter=False)
    clock = TrainingClock()
    keys = tuple(dict.fromkeys([config.monitor, "val/acc_l1", "val/hvr"]))
    callbacks = [checkpoints, latest, RngStateCallback(), InitCheckpoint(run_dir / CHECKPOINTS / INIT), clock,
                 StopAtSafePoint(run.checkpointed if run is not None else None),
                 ProgressBar(keys) if interactive_progress(config) else EpochSummary(echo, keys)]
    trainer = build_trainer(config, run_dir, callbacks, build_loggers(run_dir))
    h = bundle.hierarchy
    echo(
        f"hcal fit: {config.method} on {config.dataset} ({bundle.source}; {len(bundle.train)} train / "
        f"{len(bundle.val)} val / {len(bundle.test)} test; levels {' > '.join(map(str, reversed(h.sizes)))} "
        f"classes), backbone {config.backbone}, {config.epochs} epochs, run dir {run_dir}"
    )
    phase[0] = "in training"
    trainer.fit(module, datamodule=data, ckpt_path=str(last) if last else None)
    seconds, total_seconds = clock.session, clock.total  # before test() reloads the clock's state from best.ckpt
    phase[0] = "while testing (training had finished)"
    best = Path(checkpoints.best_model_path) if checkpoints.best_model_path else run_dir / CHECKPOINTS / BEST
    trainer.test(module, datamodule=data, ckpt_path=str(best), verbose=False)
    metrics = dict(module.last_metrics["test"])
    best_score = checkpoints.best_model_score
    metrics[f"best_{config.monitor}"] = float(best_score) if best_score is not None else float("nan")
    metrics = {k: metrics[k] for k in sorted(metrics, key=lambda k: (not k.startswith("test/"), k))}
    if not main:
        return FitResult(run_dir, metrics, best, total_seconds, "")
    phase[0] = "while writing the results"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() and config.device != "cpu" else "no GPU used"
    finish_session(run_dir, session, seconds=seconds, total_seconds=total_seconds, epochs=trainer.current_epoch,
                   best=best, gpu=gpu)
    plot_training_curves(run_dir / CURVES_FILE, run_dir / "logs" / "csv" / "metrics.csv", h.num_levels,
                         f"training curves: {config.method} on {config.dataset}, run dir {run_dir}",
                         weighting=module.method.weighting_spec(config)[0], monitor=config.monitor,
                         best_is_max=monitor_mode(config.monitor) == "max")
    write_json(run_dir / METRICS_FILE, metrics)  # last: it marks the run finished
    title = f"test metrics (best checkpoint by {config.monitor}, {config.decode} decoding)"
    table = format_table(metrics, "test", h.num_levels, title=title)
    sessions = len(session["history"])
    table += (f"\ntrain time: {format_duration(total_seconds)}"
              + (f" over {sessions} sessions (this one {format_duration(seconds)})" if sessions > 1 else "")
              + f"\ntraining curves: {run_dir / CURVES_FILE}\nrun dir: {run_dir}")
    echo(table)
    return FitResult(run_dir, metrics, best, total_seconds, table)
