"""Run directories: what they hold, how they are named, and the rules that protect them.

A run directory holds ``config.yaml`` (what makes it a run), ``hierarchy.json``, ``run.json``,
``checkpoints/{init,best,last}.ckpt``, ``logs/``, once finished ``metrics.json`` and
``training_curves.png``, and after ``hcal test`` the per-class ``report/``.
A directory that holds a run is replaced only with ``overwrite``; one that is not a run, never.
``run.json`` records every command that trained the run (``history``, written as each starts), the
versions of hcal, Lightning and torch, and the training time summed over the sessions.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning
import torch
import yaml

from .. import __version__
from ..config import Config, load_yaml
from ..errors import ConfigError
from .checkpoint import atomic_write, load_checkpoint_file

__all__ = [
    "CONFIG_FILE",
    "METRICS_FILE",
    "RUN_INFO_FILE",
    "HIERARCHY_FILE",
    "CURVES_FILE",
    "REPORT_DIR",
    "CHECKPOINTS",
    "LAST",
    "BEST",
    "INIT",
    "RESUME_MAY_CHANGE",
    "default_run_dir",
    "check_run_dir",
    "prepare_run_dir",
    "check_output",
    "report_dir_of",
    "write_json",
    "resume_config",
    "resumable_checkpoint",
    "extend_run",
    "start_session",
    "finish_session",
]

CONFIG_FILE, METRICS_FILE, RUN_INFO_FILE, HIERARCHY_FILE = "config.yaml", "metrics.json", "run.json", "hierarchy.json"
CURVES_FILE, REPORT_DIR = "training_curves.png", "report"
CHECKPOINTS = "checkpoints"
LAST, BEST, INIT = "last.ckpt", "best.ckpt", "init.ckpt"
RESUME_MAY_CHANGE = {"progress", "epochs"}  # options a resumed run may take from the command line (epochs: extend)


def default_run_dir(config: Config) -> Path:
    """``runs/<dataset>-<method>-<time>``, with a number appended if that exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{config.dataset}-{config.method}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def check_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Refuse a file, a folder holding something that is not a run, and a run without ``overwrite``."""
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


def prepare_run_dir(run_dir: Path) -> None:
    """Create ``run_dir`` empty, replacing the run it holds (:func:`check_run_dir` said it may)."""
    if run_dir.is_dir() and any(run_dir.iterdir()):
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def check_output(output: str | Path | None, overwrite: bool, flag: str = "--output") -> None:
    """An output file (``--output``, or ``flag``) is never replaced without ``--overwrite``."""
    if output is not None and Path(output).exists() and not overwrite:
        raise ConfigError(f"{flag} {str(output)!r} exists; pass --overwrite to replace it")


def report_dir_of(ckpt: Path) -> Path | None:
    """``RUN_DIR/report`` for a checkpoint in ``RUN_DIR/checkpoints/``; None for one elsewhere."""
    run_dir = ckpt.parent.parent
    return run_dir / REPORT_DIR if ckpt.parent.name == CHECKPOINTS and (run_dir / CONFIG_FILE).is_file() else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def resume_config(run_dir: str | Path, flags: Mapping[str, Any]) -> Config:
    """The config of the run in ``run_dir``, with ``flags`` (options given again) applied: they must agree
    with the run's, except those in :data:`RESUME_MAY_CHANGE`."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"--resume {str(run_dir)!r}: not a run directory (no {CONFIG_FILE})")
    saved = Config.from_dict(load_yaml(path), source=str(path))
    differ = [k for k, v in flags.items() if k not in RESUME_MAY_CHANGE and getattr(saved, k) != v]
    if differ:
        detail = ", ".join(f"{k}: run has {getattr(saved, k)!r}, flag gives {flags[k]!r}" for k in differ)
        raise ConfigError(f"--resume {str(run_dir)!r}: flags disagree with the run's config ({detail})")
    return saved.replace(**{k: v for k, v in flags.items() if k in RESUME_MAY_CHANGE})


def resumable_checkpoint(run_dir: Path, config: Config, clean: bool = True) -> Path:
    """The checkpoint the run in ``run_dir`` continues from, up to ``config.epochs`` epochs (another number than
    the run's own extends it, see :func:`extend_run`); ``clean`` (the main process): delete writes a crash
    interrupted."""
    last = run_dir / CHECKPOINTS / LAST
    if not last.is_file():
        raise ConfigError(f"--resume {str(run_dir)!r}: no checkpoint to resume from ({last} is missing)")
    if config.epochs != Config.from_dict(load_yaml(run_dir / CONFIG_FILE)).epochs:
        done = int(load_checkpoint_file(last)["epoch"]) + 1  # saved at the end of epoch index "epoch"
        where = f"--resume {str(run_dir)!r} --epochs {config.epochs}"
        if config.epochs <= done:
            raise ConfigError(f"{where}: the run has trained {done} epochs; extending it needs --epochs above {done}")
        if config.scheduler != "none":
            raise ConfigError(f"{where}: the run's --scheduler {config.scheduler} has decayed the learning rate over "
                              "its own epochs, so it cannot be extended (allowed: runs with --scheduler none); "
                              "start a new run with more --epochs")
    elif (run_dir / METRICS_FILE).is_file():
        raise ConfigError(f"--resume {str(run_dir)!r}: this run has finished ({METRICS_FILE} exists); "
                          "evaluate it with hcal test, or train it longer with --epochs N")
    for stale in last.parent.glob(".*.tmp-*") if clean else ():  # the old file is intact
        stale.unlink()
    return last


def extend_run(run_dir: Path, config: Config) -> None:
    """``hcal fit --resume RUN_DIR --epochs N`` (checked by :func:`resumable_checkpoint`: N above the epochs
    trained, schedule ``none``): the run, finished or not, trains on from its last checkpoint to N epochs. Its
    config.yaml then says N and a finished run's metrics.json goes (the test at the end writes the new one), so a
    plain ``--resume`` continues an extension that was stopped. The default schedule (``none``) keeps the learning
    rate constant, so it goes on as before; a cosine schedule has decayed over the run's own epochs and is not
    extended. Does nothing when N is the run's own number of epochs."""
    saved = Config.from_dict(load_yaml(run_dir / CONFIG_FILE))
    if config.epochs == saved.epochs:
        return
    (run_dir / METRICS_FILE).unlink(missing_ok=True)  # first: stopped in between, the run is an unfinished one
    text = yaml.safe_dump(saved.replace(epochs=config.epochs).to_file_dict(), sort_keys=False)
    atomic_write(run_dir / CONFIG_FILE, lambda fh: fh.write(text.encode("utf-8")))


def _versions() -> dict[str, str]:
    return {"hcal": __version__, "lightning": lightning.__version__, "torch": torch.__version__,
            "python": sys.version.split()[0]}


def start_session(run_dir: Path, command: str) -> dict[str, Any]:
    """Add ``command`` to run.json's history, written now so that a session stopped early is on record too;
    returns run.json's content for :func:`finish_session`."""
    path = run_dir / RUN_INFO_FILE
    info = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    info.setdefault("history", []).append(
        {"command": command, "started": time.strftime("%Y-%m-%d %H:%M:%S"), **_versions()})
    write_json(path, info)
    return info


def finish_session(run_dir: Path, info: dict[str, Any], *, seconds: float, total_seconds: float, epochs: int,
                   best: Path, gpu: str) -> None:
    """run.json at the end of a session: the training time over all sessions, the epochs, the machine, the
    versions, the last command, and the history with this session's epochs and time."""
    info["history"][-1].update(epochs_completed=epochs, train_seconds=round(seconds, 1))
    write_json(run_dir / RUN_INFO_FILE, {
        "train_seconds": round(total_seconds, 1),
        "epochs_completed": epochs,
        "best_checkpoint": str(best),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {gpu}",
        **_versions(),
        "command": info["history"][-1]["command"],
        "sessions": len(info["history"]),
        "history": info["history"],
    })
