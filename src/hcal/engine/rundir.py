"""Run directories: what they hold, how they are named, and the rules that protect them.

A run directory holds ``config.yaml`` (what makes it a run), ``hierarchy.json``, ``run.json``
(:mod:`~hcal.engine.sessions`), ``checkpoints/{init,best,last}.ckpt``, ``logs/``, once finished
``metrics.json`` and ``training_curves.png``, and after ``hcal test`` the per-class ``report/``.
A directory that holds a run is replaced only with ``overwrite``; one that is not a run, never.

One process at a time writes a run directory (:class:`~hcal.engine.lock.RunLock`). A fit writes its
run through :class:`RunDirectory`: a run it replaces is moved aside and deleted only once the new
run has its first checkpoint, and a fit that fails or stops before that leaves the directory as it
found it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import Config, load_yaml
from ..errors import ConfigError, HcalError, Stopped, StorageError, storage_error, warn
from .checkpoint import atomic_write, load_checkpoint_file
from .lock import LOCK_FILE, RunLock, check_not_in_use
from .stopping import as_stopped, deferred

__all__ = [
    "CONFIG_FILE",
    "CURVES_FILE",
    "REPORT_DIR",
    "METRICS_FILE",
    "RUN_INFO_FILE",
    "HIERARCHY_FILE",
    "CHECKPOINTS",
    "LAST",
    "BEST",
    "INIT",
    "RESUME_MAY_CHANGE",
    "RunDirectory",
    "default_run_dir",
    "check_run_dir",
    "check_output",
    "report_dir_of",
    "write_json",
    "resume_config",
    "resumable_checkpoint",
    "explain_failure",
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
    """Refuse a file, a folder holding something that is not a run, a run without ``overwrite``, and a run another
    process is writing."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {str(run_dir)!r} is a file, not a folder")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        check_not_in_use(run_dir)  # refused now, before any data is loaded, if another process writes it
        if not (run_dir / CONFIG_FILE).is_file():
            raise ConfigError(
                f"--run-dir {str(run_dir)!r} is not empty and is not an hcal run (no {CONFIG_FILE}); choose another "
                "--run-dir (hcal never deletes a folder that is not a run)"
            )
        if not overwrite:
            raise ConfigError(
                f"--run-dir {str(run_dir)!r} is not empty (it holds a run); continue it with --resume {run_dir}, or "
                "pass --overwrite to replace it, or choose another --run-dir"
            )


def _remove_contents(folder: Path, keep: tuple[str, ...] = ()) -> None:
    for child in folder.iterdir():
        if child.name in keep:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


class RunDirectory:
    """The run directory a fit writes, locked while it does (:meth:`create` a new run, or :meth:`resume` one).

    :meth:`create` moves a run it replaces aside (``.NAME.replaced-PID`` beside it). Once the new run has its first
    checkpoint, :meth:`checkpointed` deletes the old one; a fit that fails or stops before that calls :meth:`undo`,
    which removes what it wrote and puts the old run back.
    """

    def __init__(self, path: Path, lock: RunLock, created: bool = False, replaced: Path | None = None,
                 replaced_lock: RunLock | None = None) -> None:
        self.path, self.lock, self.created = path, lock, created
        self.replaced, self._replaced_lock = replaced, replaced_lock

    @classmethod
    def create(cls, path: Path, overwrite: bool) -> "RunDirectory":
        """A new, empty, locked run directory at ``path`` (:func:`check_run_dir` is asked again first)."""
        check_run_dir(path, overwrite)
        with deferred():  # no signal between moving the old run aside and holding the new directory
            old_lock = replaced = None
            created = made = False
            try:
                if path.is_dir() and any(path.iterdir()):  # a run: check_run_dir allows only that, with overwrite
                    old_lock = RunLock(path)
                    replaced = path.with_name(f".{path.name}.replaced-{os.getpid()}")
                    os.rename(path, replaced)
                created = not path.is_dir()
                path.mkdir(parents=True, exist_ok=True)
                made = True
                try:
                    lock = RunLock(path)
                except ConfigError:  # another process made and holds it meanwhile: not ours to delete
                    made = False
                    raise
                return cls(path, lock, created, replaced, old_lock)
            except BaseException as e:
                if made and created:
                    shutil.rmtree(path, ignore_errors=True)
                if replaced is not None and not path.exists():
                    os.rename(replaced, path)
                if old_lock is not None:
                    old_lock.release()
                error = storage_error(e, path) if isinstance(e, OSError) else None
                if error is not None:
                    raise StorageError(f"--run-dir: {error}; nothing was changed") from None
                raise

    @classmethod
    def resume(cls, path: Path, config: Config) -> tuple["RunDirectory", Path | None]:
        """The locked run in ``path`` and its checkpoint to continue from (:func:`resumable_checkpoint`): None for a
        run stopped before its first (whose files, but its config and run.json's history, are then removed: it
        starts from the beginning)."""
        lock = RunLock(path)
        try:
            last = resumable_checkpoint(path, config)
            if last is None:
                _remove_contents(path, keep=(CONFIG_FILE, RUN_INFO_FILE, LOCK_FILE))
        except BaseException:
            lock.release()
            raise
        return cls(path, lock), last

    @property
    def has_checkpoint(self) -> bool:
        return (self.path / CHECKPOINTS / LAST).is_file()

    def checkpointed(self) -> None:
        """Called after each epoch's checkpoint: once the new run has one, the run it replaced is deleted."""
        if self.replaced is None or not self.has_checkpoint:
            return
        with deferred():
            replaced, self.replaced = self.replaced, None
            try:
                shutil.rmtree(replaced)
            except OSError as e:
                warn(f"the run replaced by {self.path} could not be deleted ({e.strerror}); delete {replaced} "
                     "yourself")
            self._replaced_lock.release()

    def undo(self) -> str:
        """After a failure before the first checkpoint: remove what this fit wrote, restore the run it replaced;
        returns what was done, for the message."""
        with deferred():
            try:
                if self.created:
                    shutil.rmtree(self.path)
                else:  # a folder that was there (empty) stays
                    _remove_contents(self.path)
                if self.replaced is not None:
                    os.rename(self.replaced, self.path)
                    self._replaced_lock.release()
                    self.replaced = None
                    return f"the run it was to replace is back in {self.path}"
            except OSError as e:
                kept = f"; the replaced run is in {self.replaced}" if self.replaced is not None else ""
                return f"cleaning up {self.path} failed ({e.strerror}){kept}"
        return f"nothing was kept in {self.path}"

    def release(self) -> None:
        self.lock.release()
        if self._replaced_lock is not None:
            self._replaced_lock.release()


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


def resumable_checkpoint(run_dir: Path, config: Config, clean: bool = True) -> Path | None:
    """The checkpoint the run in ``run_dir`` continues from, up to ``config.epochs`` epochs (another number than
    the run's own extends it, see :func:`~hcal.engine.sessions.extend_run`); None: the run stopped before its
    first checkpoint (it starts over). ``clean`` (the main process): delete writes a crash interrupted."""
    last = run_dir / CHECKPOINTS / LAST
    if last.is_file() and config.epochs != Config.from_dict(load_yaml(run_dir / CONFIG_FILE)).epochs:
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
    for stale in [*run_dir.glob(".*.tmp-*"), *last.parent.glob(".*.tmp-*")] if clean else ():  # old files intact
        stale.unlink()
    return last if last.is_file() else None


def explain_failure(e: BaseException, run: RunDirectory | None, new: bool, phase: str) -> BaseException:
    """The exception a failed or stopped fit raises. A ``new`` run without a checkpoint is undone; a stop or a failed
    write gets one line saying what is kept and how to continue. ``run`` is None before the directory is written."""
    kept = run is not None and run.has_checkpoint
    undone = run.undo() if new and run is not None and not kept else None
    e = as_stopped(e)
    resume = f"hcal fit --resume {run.path}" if run is not None else ""
    if isinstance(e, Stopped):
        if undone is not None:
            return Stopped(e.signum, f"{e.where or phase}, before the first checkpoint",
                           f"{undone}; run the same command again to start over")
        if run is None:
            return e.with_hint("nothing was written", phase)
        return e.with_hint(f"continue with: {resume}" + ("" if kept else " (it starts over)"), phase)
    error = e if isinstance(e, StorageError) else storage_error(e) if isinstance(e, Exception) else None
    if error is not None and run is not None:
        if undone is not None:
            return StorageError(f"{error}; {undone}")
        state = f"the last checkpoint {run.path / CHECKPOINTS / LAST} is intact" if kept else "no checkpoint yet"
        return StorageError(f"{error}; {state}; once it can be written, continue with {resume}")
    if undone is not None and isinstance(e, HcalError):
        return type(e)(f"{e}; {undone}")
    return error or e
