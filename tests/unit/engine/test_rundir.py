"""engine/rundir.py, sessions.py and lock.py: what resuming and extending a run require, what a run directory may
be replaced by and when, one writer at a time, and what run.json records."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning
import pytest
import torch
import yaml

from hcal import __version__
from hcal.config import Config
from hcal.engine.checkpoint import FORMAT
from hcal.engine.lock import RunLock
from hcal.engine.rundir import (
    RunDirectory,
    check_output,
    check_run_dir,
    report_dir_of,
    resumable_checkpoint,
    resume_config,
)
from hcal.engine.sessions import extend_run, finish_session, start_session
from hcal.errors import ConfigError, StorageError


def _run(tmp_path: Path, epochs_done: int = 2, **config) -> Path:
    """A run directory whose last checkpoint holds ``epochs_done`` epochs."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    Config(dataset="synthetic", **config).save(run / "config.yaml")
    torch.save({"hcal_format": FORMAT, "hyper_parameters": {}, "epoch": epochs_done - 1},
               run / "checkpoints" / "last.ckpt")
    return run


def test_resume_takes_the_runs_config_and_only_progress_and_epochs_from_flags(tmp_path):
    run = _run(tmp_path, epochs=4)
    assert resume_config(run, {"progress": False, "epochs": 4}).replace(progress=True) == resume_config(run, {})
    assert resume_config(run, {"progress": False}).progress is False
    assert resume_config(run, {"epochs": 6}).epochs == 6
    with pytest.raises(ConfigError, match="seed: run has 0, flag gives 5"):
        resume_config(run, {"seed": 5})
    with pytest.raises(ConfigError, match="not a run directory"):
        resume_config(tmp_path, {})


def test_resumable_checkpoint(tmp_path):
    run = _run(tmp_path, epochs=4)
    config = resume_config(run, {})
    stale = run / "checkpoints" / ".last.ckpt.tmp-123"
    stale.write_bytes(b"half")
    assert resumable_checkpoint(run, config) == run / "checkpoints" / "last.ckpt" and not stale.exists()
    (run / "metrics.json").write_text("{}")
    with pytest.raises(ConfigError, match="this run has finished .* train it longer with --epochs N"):
        resumable_checkpoint(run, config)
    (run / "metrics.json").unlink()
    (run / "checkpoints" / "last.ckpt").unlink()
    assert resumable_checkpoint(run, config) is None  # stopped before its first checkpoint: it starts over
    assert resumable_checkpoint(run, config.replace(epochs=9)) is None  # to any number of epochs


def test_extending_a_finished_run(tmp_path):
    run = _run(tmp_path, epochs_done=4, epochs=4)
    (run / "metrics.json").write_text("{}")
    config = resume_config(run, {"epochs": 10})
    assert resumable_checkpoint(run, config) == run / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match="--epochs 3: the run has trained 4 epochs; extending it needs --epochs "
                                          "above 4"):
        resumable_checkpoint(run, config.replace(epochs=3))
    extend_run(run, config)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["epochs"] == 10 and "run_dir" not in saved
    assert not (run / "metrics.json").exists()  # an unfinished run of 10 epochs now: a plain --resume continues it
    assert resumable_checkpoint(run, resume_config(run, {})) == run / "checkpoints" / "last.ckpt"


def test_a_cosine_schedule_is_not_extended(tmp_path):
    run = _run(tmp_path, epochs_done=2, epochs=4, scheduler="cosine")
    assert resumable_checkpoint(run, resume_config(run, {}))  # resuming to its own length is fine
    with pytest.raises(ConfigError, match="--scheduler cosine has decayed the learning rate .*allowed: runs with "
                                          "--scheduler none"):
        resumable_checkpoint(run, resume_config(run, {"epochs": 8}))


def test_run_json_records_every_session(tmp_path):
    run = _run(tmp_path)
    info = start_session(run, "hcal fit --run-dir run")
    first = json.loads((run / "run.json").read_text())  # on record before training: a killed session shows
    assert first["history"][0]["command"] == "hcal fit --run-dir run"
    assert (first["history"][0]["hcal"], first["history"][0]["lightning"]) == (__version__, lightning.__version__)
    finish_session(run, info, seconds=5.0, total_seconds=5.0, epochs=2, best=run / "b.ckpt", gpu="no GPU used")
    info = start_session(run, "hcal fit --resume run --epochs 4")
    finish_session(run, info, seconds=4.04, total_seconds=9.0, epochs=4, best=run / "b.ckpt", gpu="no GPU used")
    final = json.loads((run / "run.json").read_text())
    assert (final["train_seconds"], final["epochs_completed"], final["sessions"]) == (9.0, 4, 2)
    assert (final["hcal"], final["lightning"], final["torch"]) == (__version__, lightning.__version__,
                                                                   torch.__version__)
    assert final["command"] == "hcal fit --resume run --epochs 4"
    assert [(h["command"], h["epochs_completed"], h["train_seconds"]) for h in final["history"]] == [
        ("hcal fit --run-dir run", 2, 5.0), ("hcal fit --resume run --epochs 4", 4, 4.0)]


def test_report_dir_of_a_checkpoint(tmp_path):
    run = _run(tmp_path)
    assert report_dir_of(run / "checkpoints" / "best.ckpt") == run / "report"
    assert report_dir_of(tmp_path / "loose.ckpt") is None


def test_run_dirs_are_protected(tmp_path):
    run = _run(tmp_path)
    with pytest.raises(ConfigError, match="holds a run"):
        check_run_dir(run, overwrite=False)
    check_run_dir(run, overwrite=True)
    new = RunDirectory.create(run, overwrite=True)
    assert [p.name for p in run.iterdir()] == [".lock"]
    new.release()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match="not an hcal run") as info:
            check_run_dir(tmp_path / "mine", overwrite=overwrite)
        assert "--overwrite" not in str(info.value)  # never suggested for a folder hcal will not replace
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        check_run_dir(tmp_path / "file", overwrite=True)
    with pytest.raises(ConfigError, match="--output .* exists; pass --overwrite"):
        check_output(tmp_path / "file", overwrite=False)
    check_output(tmp_path / "file", overwrite=True)


HOLDER = "import sys; from hcal.engine.lock import RunLock; RunLock(sys.argv[1]); print('locked', flush=True); input()"


def test_a_run_directory_has_one_writer_and_a_dead_one_leaves_no_lock(tmp_path):
    run = _run(tmp_path)
    saved = (run / "checkpoints" / "last.ckpt").read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        for refused in (lambda: RunLock(run), lambda: check_run_dir(run, overwrite=True),
                        lambda: RunDirectory.resume(run, resume_config(run, {})),
                        lambda: RunDirectory.create(run, overwrite=True)):
            with pytest.raises(ConfigError, match=f"being written by another hcal process \\(pid {holder.pid}\\)"):
                refused()
        assert (run / "checkpoints" / "last.ckpt").read_bytes() == saved  # nothing touched
    finally:
        holder.kill()
        holder.wait()
    RunLock(run).release()  # the kernel released the killed holder's lock


def test_a_forked_child_does_not_keep_its_parents_lock(tmp_path):
    run = _run(tmp_path)
    lock = RunLock(run)
    ready, started = os.pipe()
    child = os.fork()  # as a data-loader worker is
    if child == 0:  # fork's after-child hooks have run when os.fork() returns here
        os.write(started, b"x")
        time.sleep(30)
        os._exit(0)
    try:
        assert os.read(ready, 1) == b"x"
        lock.release()
        RunLock(run).release()  # free, though the child still runs
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


def test_overwrite_keeps_the_old_run_until_the_new_one_has_a_checkpoint(tmp_path):
    run = _run(tmp_path)
    (run / "metrics.json").write_text("{}")
    new = RunDirectory.create(run, overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == [".lock"]
    aside = tmp_path / f".run.replaced-{os.getpid()}"
    assert (aside / "metrics.json").is_file()
    new.checkpointed()  # no checkpoint yet: the old run stays
    assert aside.is_dir()
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"new")
    new.checkpointed()
    assert not aside.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    new.release()


def test_undo_puts_the_replaced_run_back(tmp_path):
    run = _run(tmp_path)
    saved = (run / "checkpoints" / "last.ckpt").read_bytes()
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    new = RunDirectory.create(run, overwrite=True)
    (run / "config.yaml").write_text("new")
    assert new.undo() == f"the run it was to replace is back in {run}"
    new.release()
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == sorted([*before, ".lock"])  # + the lock file
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == saved
    fresh = RunDirectory.create(tmp_path / "fresh", overwrite=False)
    assert fresh.undo() == f"nothing was kept in {tmp_path / 'fresh'}"
    assert not (tmp_path / "fresh").exists()
    (tmp_path / "empty").mkdir()  # a folder the user made stays, empty
    RunDirectory.create(tmp_path / "empty", overwrite=False).undo()
    assert (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())


def test_a_run_that_cannot_be_moved_aside_is_left_as_it_is(tmp_path, monkeypatch):
    run = _run(tmp_path)
    saved = (run / "checkpoints" / "last.ckpt").read_bytes()

    def refuse(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", str(src))

    monkeypatch.setattr(os, "rename", refuse)
    with pytest.raises(StorageError, match=f"--run-dir: cannot write {str(run)!r}: permission denied; nothing was "
                                           "changed"):
        RunDirectory.create(run, overwrite=True)
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == saved


def test_resuming_a_run_without_a_checkpoint_starts_it_over(tmp_path):
    run = _run(tmp_path)
    (run / "checkpoints" / "last.ckpt").unlink()
    (run / "checkpoints" / "init.ckpt").write_bytes(b"init")
    (run / "hierarchy.json").write_text("{}")
    (run / "run.json").write_text('{"history": []}')  # the stopped session stays on record
    handle, last = RunDirectory.resume(run, resume_config(run, {}))
    handle.release()
    assert last is None and sorted(p.name for p in run.iterdir()) == [".lock", "config.yaml", "run.json"]
