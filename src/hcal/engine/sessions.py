"""``run.json``, a run's record: every command that trained the run (``history``, written as each
starts), the versions of hcal, Lightning and torch, and the training time summed over the
sessions; and extending a finished or unfinished run to more epochs (:func:`extend_run`)."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import lightning
import torch
import yaml

from .. import __version__
from ..config import Config, load_yaml
from .checkpoint import atomic_write
from .rundir import CONFIG_FILE, METRICS_FILE, RUN_INFO_FILE, write_json

__all__ = ["extend_run", "start_session", "finish_session"]


def extend_run(run_dir: Path, config: Config) -> None:
    """``hcal fit --resume RUN_DIR --epochs N`` (checked by :func:`.rundir.resumable_checkpoint`: N above the epochs
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
