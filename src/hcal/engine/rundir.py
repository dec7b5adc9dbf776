"""Run directories: what they hold, how they are named, and the rules that protect them.

A run directory holds ``config.yaml`` (what makes it a run), ``hierarchy.json``,
``checkpoints/{init,best,last}.ckpt``, ``logs/``, and, once finished, ``metrics.json`` and ``run.json``.
A directory that holds a run is replaced only with ``overwrite``; one that is not a run, never.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import Config, load_yaml
from ..errors import ConfigError
from .checkpoint import atomic_write

__all__ = [
    "CONFIG_FILE",
    "METRICS_FILE",
    "RUN_INFO_FILE",
    "HIERARCHY_FILE",
    "CHECKPOINTS",
    "LAST",
    "BEST",
    "INIT",
    "RESUME_MAY_CHANGE",
    "default_run_dir",
    "check_run_dir",
    "prepare_run_dir",
    "check_output",
    "write_json",
    "resume_config",
    "resumable_checkpoint",
]

CONFIG_FILE, METRICS_FILE, RUN_INFO_FILE, HIERARCHY_FILE = "config.yaml", "metrics.json", "run.json", "hierarchy.json"
CHECKPOINTS = "checkpoints"
LAST, BEST, INIT = "last.ckpt", "best.ckpt", "init.ckpt"
RESUME_MAY_CHANGE = {"progress"}  # options a resumed run may take from the command line


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


def resumable_checkpoint(run_dir: Path, clean: bool = True) -> Path:
    """The checkpoint an unfinished run continues from; ``clean``: delete writes a crash interrupted."""
    last = run_dir / CHECKPOINTS / LAST
    if (run_dir / METRICS_FILE).is_file():
        raise ConfigError(f"--resume {str(run_dir)!r}: this run has finished ({METRICS_FILE} exists); "
                          "evaluate it with hcal test")
    if not last.is_file():
        raise ConfigError(f"--resume {str(run_dir)!r}: no checkpoint to resume from ({last} is missing)")
    for stale in last.parent.glob(".*.tmp-*") if clean else ():  # the old file is intact
        stale.unlink()
    return last

