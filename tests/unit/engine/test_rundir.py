"""engine/rundir.py and lock.py: what resuming a run requires, what a run directory may be replaced by and when,
and one writer at a time."""

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hcal.config import Config
from hcal.engine.lock import RunLock
from hcal.engine.rundir import RunDirectory, check_output, check_run_dir, resumable_checkpoint, resume_config
from hcal.errors import ConfigError, StorageError


def _run(tmp_path: Path, **config) -> Path:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    Config(dataset="synthetic", **config).save(run / "config.yaml")
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    return run


def test_resume_takes_the_runs_config_and_only_progress_from_flags(tmp_path):
    run = _run(tmp_path, epochs=4)
    assert resume_config(run, {"progress": False, "epochs": 4}).replace(progress=True) == resume_config(run, {})
    assert resume_config(run, {"progress": False}).progress is False
    with pytest.raises(ConfigError, match="epochs: run has 4, flag gives 5"):
        resume_config(run, {"epochs": 5})
    with pytest.raises(ConfigError, match="not a run directory"):
        resume_config(tmp_path, {})


def test_resumable_checkpoint(tmp_path):
    run = _run(tmp_path)
    stale = run / "checkpoints" / ".last.ckpt.tmp-123"
    stale.write_bytes(b"half")
    assert resumable_checkpoint(run) == run / "checkpoints" / "last.ckpt" and not stale.exists()
    (run / "checkpoints" / "last.ckpt").unlink()
    assert resumable_checkpoint(run) is None  # stopped before its first checkpoint: it starts over
    (run / "metrics.json").write_text("{}")
    with pytest.raises(ConfigError, match="this run has finished"):
        resumable_checkpoint(run)


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
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        for refused in (lambda: RunLock(run), lambda: check_run_dir(run, overwrite=True),
                        lambda: RunDirectory.resume(run), lambda: RunDirectory.create(run, overwrite=True)):
            with pytest.raises(ConfigError, match=f"being written by another hcal process \\(pid {holder.pid}\\)"):
                refused()
        assert (run / "checkpoints" / "last.ckpt").read_bytes() == b"x"  # nothing touched
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
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    new = RunDirectory.create(run, overwrite=True)
    (run / "config.yaml").write_text("new")
    assert new.undo() == f"the run it was to replace is back in {run}"
    new.release()
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == sorted([*before, ".lock"])  # + the lock file
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == b"x"
    fresh = RunDirectory.create(tmp_path / "fresh", overwrite=False)
    assert fresh.undo() == f"nothing was kept in {tmp_path / 'fresh'}"
    assert not (tmp_path / "fresh").exists()
    (tmp_path / "empty").mkdir()  # a folder the user made stays, empty
    RunDirectory.create(tmp_path / "empty", overwrite=False).undo()
    assert (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())


def test_a_run_that_cannot_be_moved_aside_is_left_as_it_is(tmp_path, monkeypatch):
    run = _run(tmp_path)

    def refuse(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", str(src))

    monkeypatch.setattr(os, "rename", refuse)
    with pytest.raises(StorageError, match=f"--run-dir: cannot write {str(run)!r}: permission denied; nothing was "
                                           "changed"):
        RunDirectory.create(run, overwrite=True)
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == b"x"


def test_resuming_a_run_without_a_checkpoint_starts_it_over(tmp_path):
    run = _run(tmp_path)
    (run / "checkpoints" / "last.ckpt").unlink()
    (run / "checkpoints" / "init.ckpt").write_bytes(b"init")
    (run / "hierarchy.json").write_text("{}")
    handle, last = RunDirectory.resume(run)
    handle.release()
    assert last is None and sorted(p.name for p in run.iterdir()) == [".lock", "config.yaml"]
