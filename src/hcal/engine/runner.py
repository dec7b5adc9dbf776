"""fit / evaluate / predict: what the command line runs, usable from Python too (``fit`` is
:mod:`~hcal.engine.fitting`'s).

Each checks the names and options it is given (:func:`hcal.checks.check_config`) before it loads a
checkpoint or data. Run directories are :mod:`~hcal.engine.rundir`'s, DDP's environment
:mod:`~hcal.engine.distributed`'s, the Trainer :mod:`~hcal.engine.trainer`'s and ``predict``'s
inputs :mod:`~hcal.engine.predict_inputs`'.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..checks import check_config
from ..datasets import DATASETS, DataBundle
from ..errors import CheckpointError, ConfigError
from .class_report import write_class_report
from .data import HierarchicalDataModule
from .fitting import FitResult, fit, load_bundle, resolve_config
from .module import HierarchicalModule
from .predict_inputs import read_inputs
from .predictions import Predictor, csv_columns, output_format, prediction_rows, run_predictor, write_predictions
from .report import format_table
from .rundir import check_output, report_dir_of, write_json
from .trainer import build_trainer

__all__ = ["fit", "evaluate", "predict", "FitResult", "load_bundle", "resolve_config"]


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
