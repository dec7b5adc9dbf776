"""fit / test / predict: what the command line runs, usable from Python too."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import platform
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..config import Config
from ..datasets import DataBundle, create_dataset
from ..errors import CheckpointError, ConfigError, DataError
from ..metrics import metric_names
from .checkpoint import atomic_write
from .report import format_table

__all__ = ["fit", "evaluate", "predict", "FitResult", "resolve_config"]

CONFIG_FILE, METRICS_FILE, RUN_INFO_FILE = "config.yaml", "metrics.json", "run.json"
LAST, BEST = "last.ckpt", "best.ckpt"


def _quiet_lightning() -> None:
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (
        ".*does not have many workers.*",
        ".*Experiment logs directory.*exists and is not empty.*",
        ".*Checkpoint directory .* exists and is not empty.*",
        ".*The number of training batches .* is smaller than the logging interval.*",
        ".*on_epoch=True.* not.*",
        ".*GPU available but not used.*",
        ".*You are using `torch.load` with `weights_only=False`.*",
        ".*isinstance.treespec, LeafSpec.*",
        ".*It is recommended to use `self.log\\(.*sync_dist=True.*",  # torchmetrics already synced them
    ):
        warnings.filterwarnings("ignore", message=pattern)


def _accelerator(device: str) -> str:
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu or auto")
        return "gpu"
    return {"auto": "auto", "cpu": "cpu"}[device]


def load_bundle(config: Config) -> DataBundle:
    return create_dataset(
        config.dataset, config.data_dir, seed=config.seed, val_fraction=config.val_fraction, **config.dataset_args
    )


def resolve_config(config: Config, bundle: DataBundle) -> Config:
    """Fill in what depends on the data (the default backbone) and check the monitor metric."""
    if config.backbone == "auto":
        config = config.replace(backbone=bundle.default_backbone)
    allowed = [f"val/{k}" for k in metric_names(bundle.hierarchy.depth)]
    if config.monitor not in allowed:
        raise ConfigError(f"--monitor {config.monitor!r} is not a validation metric; choose one of: {', '.join(allowed)}")
    return config


def _monitor_mode(monitor: str) -> str:
    return "min" if monitor.split("/")[-1].startswith("hvr") else "max"


RUN_DIR_ENV = "HCAL_RUN_DIR"


def _global_rank() -> int:
    """This process's rank in a DDP run started by Lightning (0 when not distributed)."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    local, node = int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("NODE_RANK", 0))
    return node * max(1, int(os.environ.get("LOCAL_WORLD_SIZE", 1))) + local if local or node else 0


def _silent(*args: Any, **kwargs: Any) -> None:
    pass


def default_run_dir(config: Config) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{config.dataset}-{config.method}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def prepare_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Create ``run_dir``; never replace an existing run unless ``overwrite``, never delete a non-run."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {str(run_dir)!r} is a file, not a folder")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        is_run = (run_dir / CONFIG_FILE).is_file()
        if not overwrite:
            hint = f"; continue it with --resume {run_dir}, or" if is_run else ";"
            raise ConfigError(
                f"--run-dir {str(run_dir)!r} is not empty{' (it holds a run)' if is_run else ''}{hint} "
                "pass --overwrite to replace it, or choose another --run-dir"
            )
        if not is_run:
            raise ConfigError(
                f"--run-dir {str(run_dir)!r} is not empty and is not an hcal run (no {CONFIG_FILE}); "
                "refusing to delete it even with --overwrite"
            )
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


@dataclass
class FitResult:
    run_dir: Path
    metrics: dict[str, float]
    best_checkpoint: Path
    seconds: float
    table: str


def _augment_on_device(config: Config) -> bool:
    if config.augment_on == "auto":
        return _accelerator(config.device) == "gpu" or (config.device == "auto" and torch.cuda.is_available())
    return config.augment_on == "device"


def _interactive_progress(config: Config) -> bool:
    """A live progress bar only on a terminal; logs get one line per epoch instead."""
    return config.progress and sys.stderr.isatty()


def _build_trainer(config: Config, run_dir: Path | None, callbacks: list, loggers: Any):
    import lightning as L

    from .checkpoint import AtomicCheckpointIO

    limit = config.limit_batches if config.limit_batches is not None else 1.0
    accelerator = _accelerator(config.device)
    distributed = config.devices * config.num_nodes > 1
    gpu = accelerator == "gpu" or (accelerator == "auto" and torch.cuda.is_available())
    return L.Trainer(
        max_epochs=config.epochs,
        accelerator=accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy="ddp" if distributed or config.strategy == "ddp" else "auto",
        # Exact batch statistics over the global batch; SyncBatchNorm exists on GPUs only.
        sync_batchnorm=distributed and gpu,
        precision=config.precision,
        deterministic=config.deterministic,
        default_root_dir=str(run_dir) if run_dir else None,
        logger=loggers,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        enable_checkpointing=any(type(c).__name__ == "ModelCheckpoint" for c in callbacks),
        enable_progress_bar=_interactive_progress(config),
        enable_model_summary=False,
        limit_train_batches=limit,
        limit_val_batches=limit,
        limit_test_batches=limit,
        log_every_n_steps=min(50, config.limit_batches or 50),
        num_sanity_val_steps=0,
    )


def fit(
    config: Config,
    *,
    resume: str | Path | None = None,
    overwrite: bool = False,
    echo=print,
) -> FitResult:
    """Train ``config`` (or continue the run in ``resume``), select on validation, test once."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from .data import HierarchicalDataModule, split_batch_augmentation
    from .module import HierarchicalModule
    from .progress import EpochSummary, InitCheckpoint
    from .rng import RngStateCallback

    _quiet_lightning()
    main = _global_rank() == 0  # under DDP, Lightning re-runs this command for ranks 1..N-1
    if not main:
        echo = _silent
    if resume is not None:
        run_dir = Path(resume)
        last = run_dir / "checkpoints" / LAST
        if not (run_dir / CONFIG_FILE).is_file():
            raise ConfigError(f"--resume {str(run_dir)!r}: not a run directory (no {CONFIG_FILE})")
        if (run_dir / METRICS_FILE).is_file():
            raise ConfigError(f"--resume {str(run_dir)!r}: this run has finished ({METRICS_FILE} exists); evaluate it with hcal test")
        if not last.is_file():
            raise ConfigError(f"--resume {str(run_dir)!r}: no checkpoint to resume from ({last} is missing)")
        for stale in last.parent.glob(".*.tmp-*") if main else ():  # a write a crash interrupted; the old file is intact
            stale.unlink()
    elif not main:
        run_dir, last = Path(os.environ[RUN_DIR_ENV]), None  # the directory rank 0 prepared
    else:
        run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(config)
        last = None

    L.seed_everything(config.seed, workers=True, verbose=False)
    bundle = load_bundle(config)
    config = resolve_config(config, bundle).replace(run_dir=str(run_dir))
    # Build the model before touching the run directory: a bad method or backbone leaves nothing behind.
    module = HierarchicalModule(config.to_dict(), bundle.hierarchy.to_dict(), bundle.input_spec.to_dict())
    if resume is None and main:
        prepare_run_dir(run_dir, overwrite)
        config.save(run_dir / CONFIG_FILE)
        bundle.hierarchy.to_json(run_dir / "hierarchy.json")
    os.environ[RUN_DIR_ENV] = str(run_dir)  # inherited by the DDP processes Lightning starts

    if _augment_on_device(config):
        bundle, module.batch_augment = split_batch_augmentation(bundle)
    data = HierarchicalDataModule(bundle, config.batch_size, config.num_workers, config.seed)
    # Two callbacks: Lightning >= 2.5 refreshes save_last only when a top-k checkpoint was saved,
    # but resuming needs the latest epoch every time.
    checkpoints = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor=config.monitor,
        mode=_monitor_mode(config.monitor),
        save_top_k=1,
        enable_version_counter=False,
        auto_insert_metric_name=False,
    )
    latest = ModelCheckpoint(
        dirpath=run_dir / "checkpoints", filename="last", monitor=None, save_top_k=1, enable_version_counter=False
    )
    loggers = [
        CSVLogger(save_dir=str(run_dir / "logs"), name="", version="csv"),
        TensorBoardLogger(save_dir=str(run_dir / "logs"), name="", version="tensorboard", default_hp_metric=False),
    ]
    callbacks = [checkpoints, latest, RngStateCallback(), InitCheckpoint(run_dir / "checkpoints" / "init.ckpt")]
    if not _interactive_progress(config):
        callbacks.append(EpochSummary(echo, keys=tuple(dict.fromkeys([config.monitor, "val/acc_l1", "val/hvr"]))))
    trainer = _build_trainer(config, run_dir, callbacks, loggers)
    h = bundle.hierarchy
    echo(
        f"hcal fit: {config.method} on {config.dataset} ({bundle.source}; {len(bundle.train)} train / "
        f"{len(bundle.val)} val / {len(bundle.test)} test; levels {' > '.join(map(str, reversed(h.sizes)))} classes), "
        f"backbone {config.backbone}, {config.epochs} epochs, run dir {run_dir}"
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=str(last) if last else None)
    seconds = time.perf_counter() - start
    best = Path(checkpoints.best_model_path) if checkpoints.best_model_path else run_dir / "checkpoints" / BEST
    trainer.test(module, datamodule=data, ckpt_path=str(best), verbose=False)
    metrics = dict(module.last_metrics["test"])
    best_score = checkpoints.best_model_score
    metrics[f"best_{config.monitor}"] = float(best_score) if best_score is not None else float("nan")
    metrics = {k: metrics[k] for k in sorted(metrics, key=lambda k: (not k.startswith("test/"), k))}
    if not main:
        return FitResult(run_dir, metrics, best, seconds, "")
    _write_json(run_dir / METRICS_FILE, metrics)
    _write_json(
        run_dir / RUN_INFO_FILE,
        {
            "train_seconds": round(seconds, 1),
            "epochs_completed": trainer.current_epoch,
            "best_checkpoint": str(best),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
            + (torch.cuda.get_device_name(0) if torch.cuda.is_available() and config.device != "cpu" else "no GPU used"),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "command": " ".join(sys.argv),
        },
    )
    table = format_table(metrics, "test", h.depth, title=f"test metrics (best checkpoint by {config.monitor}, {config.decode} decoding)")
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
    from .data import HierarchicalDataModule
    from .module import HierarchicalModule

    _quiet_lightning()
    if output is not None and Path(output).exists() and not overwrite:
        raise ConfigError(f"--output {str(output)!r} exists; pass --overwrite to replace it")
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
    bundle = load_bundle(cfg)
    check_compatible(ckpt, module, bundle)
    data = HierarchicalDataModule(bundle, cfg.batch_size, cfg.num_workers, cfg.seed)
    trainer = _build_trainer(cfg, None, [], False)
    trainer.test(module, datamodule=data, verbose=False)
    metrics = dict(module.last_metrics["test"])
    if output is not None:
        _write_json(Path(output), metrics)
    echo(format_table(metrics, "test", bundle.hierarchy.depth, title=f"test metrics of {ckpt} on {cfg.dataset} ({cfg.decode} decoding)"))
    return metrics


def check_compatible(ckpt: Any, module: Any, bundle: DataBundle) -> None:
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


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def _expand_inputs(inputs: Sequence[str], kind: str) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in (IMAGE_SUFFIXES if kind == "image" else {".npy"}))
            if not found:
                raise DataError(f"input folder {item!r} holds no {'image' if kind == 'image' else '.npy'} files")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"input {item!r} does not exist")
    return files


def _load_inputs(files: list[Path], spec) -> tuple[list[str], torch.Tensor]:
    names: list[str] = []
    tensors: list[torch.Tensor] = []
    if spec.kind == "vector":
        import numpy as np

        for f in files:
            if f.suffix.lower() != ".npy":
                raise DataError(f"input {str(f)!r}: this model takes {spec.dim}-d feature vectors; give .npy files (one row per input)")
            try:
                arr = np.load(f, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise DataError(f"input {str(f)!r} cannot be read as .npy: {e}") from None
            single = arr.ndim == 1
            arr = arr.reshape(1, -1) if single else arr
            if arr.ndim != 2 or arr.shape[1] != spec.dim:
                raise DataError(f"input {str(f)!r} has shape {arr.shape}; expected ({spec.dim},) or (n, {spec.dim})")
            tensors.append(torch.as_tensor(arr, dtype=torch.float32))
            names += [str(f)] if single else [f"{f}:{i}" for i in range(arr.shape[0])]
        return names, torch.cat(tensors)
    from PIL import Image, UnidentifiedImageError

    transform = spec.eval_transform()
    for f in files:
        try:
            with Image.open(f) as img:
                tensors.append(transform(img.convert("RGB")))
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"input {str(f)!r} is not a readable image ({e}); remove it or fix it") from None
        names.append(str(f))
    return names, torch.stack(tensors)


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
    from .module import HierarchicalModule

    if output is not None and Path(output).exists() and not overwrite:
        raise ConfigError(f"--output {str(output)!r} exists; pass --overwrite to replace it")
    module, _ = HierarchicalModule.from_checkpoint(ckpt)
    if decode is not None:
        module.decode_mode = decode
    files = _expand_inputs(inputs, module.input_spec.kind)
    names, x = _load_inputs(files, module.input_spec)
    h = module.hierarchy
    rows: list[dict[str, Any]] = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            preds, probs = module.predict_batch(x[start : start + batch_size])
            for i in range(preds.shape[0]):
                row: dict[str, Any] = {"input": names[start + i]}
                for k in range(h.depth):
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
