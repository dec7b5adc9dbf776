"""Crash safety: a run killed or stopped at any moment resumes to exactly the uninterrupted result; one writer per
run directory; a full or read-only disk is one line, with the last good checkpoint intact."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import hcal.engine.checkpoint as checkpoint_module
from hcal.datasets.synthetic import make_synthetic
from hcal.engine.progress import EpochSummary, InitCheckpoint
from hcal.methods.hcal import HCAL
from tests.helpers import CliResult, assert_one_line_error, run_hcal_subprocess

ARGS = [
    "fit", "--dataset", "synthetic", "--dataset-arg", "train_size=1000", "--epochs", "4", "--batch-size", "32",
    "--deterministic", "--seed", "7", "--no-progress",
]


# Runs the real CLI. Every checkpoint write announces itself with a numbered file in $SIGNAL_DIR;
# write number $PAUSE_AT waits between its temporary file and the rename, and with $HOLD_RESULTS the process waits
# before writing metrics.json (which marks a run finished), both until the test creates $SIGNAL_DIR/go-PID (or kills
# the process): a test can act inside a write, and a random-moment kill always lands before the run has finished.
LAUNCHER = textwrap.dedent(
    """
    import os, sys, time
    import hcal.engine.checkpoint as ck
    import hcal.engine.rundir as rd
    real = ck.atomic_write
    count = [0]
    signals = os.environ["SIGNAL_DIR"]
    def hold():
        go, end = os.path.join(signals, f"go-{os.getpid()}"), time.monotonic() + 300
        while not os.path.exists(go) and time.monotonic() < end:
            time.sleep(0.02)
    def slow(path, write):
        if os.environ.get("HOLD_RESULTS") and os.path.basename(str(path)) == "metrics.json":
            open(os.path.join(signals, f"held-{os.getpid()}"), "w").close()
            hold()
        if not str(path).endswith(".ckpt"):  # run.json (written as a session starts and ends), config.yaml
            return real(path, write)
        def wrapped(fh):
            write(fh)
            fh.flush()
            count[0] += 1
            open(os.path.join(signals, f"write-{os.getpid()}-{count[0]}"), "w").close()
            if str(count[0]) == os.environ.get("PAUSE_AT"):
                hold()
        return real(path, wrapped)
    ck.atomic_write = rd.atomic_write = slow
    from hcal.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def _start(args, signal_dir: Path, pause_at: int = 0, hold_results: bool = False) -> subprocess.Popen:
    env = {**os.environ, "SIGNAL_DIR": str(signal_dir), "PAUSE_AT": str(pause_at), "PYTHONWARNINGS": "ignore"}
    if hold_results:
        env["HOLD_RESULTS"] = "1"
    return subprocess.Popen([sys.executable, "-c", LAUNCHER, *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wrote(signal_dir: Path, proc: subprocess.Popen, n: int):
    return lambda: (signal_dir / f"write-{proc.pid}-{n}").exists()


def _wait_for(condition, proc, timeout=300.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    raise TimeoutError("condition not reached")


def _finish(proc) -> CliResult:
    out, err = proc.communicate(timeout=600)
    return CliResult(proc.returncode, out, err)


def _kill(proc) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


def _check_last_checkpoint(run_dir: Path) -> None:
    last = run_dir / "checkpoints" / "last.ckpt"
    assert last.is_file()
    assert "state_dict" in torch.load(last, weights_only=True)  # complete, never half-written


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run every interrupted one must reproduce. While it is held inside a checkpoint write, two
    other processes try to write its directory: ``--overwrite`` and ``--resume`` (see the concurrency test)."""
    tmp = tmp_path_factory.mktemp("reference")
    run_dir, signals = tmp / "run", tmp / "signals"
    signals.mkdir()
    proc = _start([*ARGS, "--run-dir", run_dir], signals, pause_at=3)  # inside epoch 1's last.ckpt write
    assert _wait_for(_wrote(signals, proc, 3), proc), proc.communicate()
    second = {"overwrite": run_hcal_subprocess(*ARGS, "--run-dir", run_dir, "--overwrite"),
              "resume": run_hcal_subprocess("fit", "--resume", run_dir)}
    (signals / f"go-{proc.pid}").touch()
    first = _finish(proc)
    assert first.code == 0, first
    return SimpleNamespace(run_dir=run_dir, pid=proc.pid, first=first, second=second, metrics=_metrics(run_dir))


def test_a_second_writer_is_refused_while_the_first_finishes_intact(reference):
    for how, r in reference.second.items():
        assert_one_line_error(r, str(reference.run_dir), "being written by another hcal process",
                              f"pid {reference.pid}")
        assert r.code == 2, (how, r)
    assert f"run dir: {reference.run_dir}" in reference.first.out
    assert set(reference.metrics) >= {"test/acc_l1", "test/hvr"}
    _check_last_checkpoint(reference.run_dir)
    assert not list(reference.run_dir.rglob(".*.tmp-*"))
    # the lock went with the process: the finished run can be replaced now
    again = run_hcal_subprocess(*ARGS, "--epochs", "1", "--run-dir", reference.run_dir)
    assert_one_line_error(again, "holds a run", "--overwrite")


def test_sigkill_at_random_points_then_resume_gives_identical_metrics(reference, tmp_path):
    rng = random.Random(int(os.environ.get("HCAL_KILL_SEED", "2024")))
    run_dir = tmp_path / "killed"
    signals = tmp_path / "signals"
    signals.mkdir()
    kills = []

    # 1. Killed inside a checkpoint write (its temporary file written, not yet renamed). Writes: init.ckpt, then per
    #    epoch best.ckpt (when better) and last.ckpt; the 5th is in epoch 1 or 2, after last.ckpt exists.
    proc = _start([*ARGS, "--run-dir", run_dir], signals, pause_at=5)
    assert _wait_for(_wrote(signals, proc, 5), proc), proc.communicate()
    assert list((run_dir / "checkpoints").glob(".*.tmp-*")), "the kill should land inside a write"
    _kill(proc)
    kills.append("inside a checkpoint write")
    _check_last_checkpoint(run_dir)

    # 2-3. Resumed, then killed at a random moment after its first checkpoint write: training, validation, testing,
    #      writing run.json; never after the run finished (it is held before metrics.json).
    for _ in range(2):
        proc = _start(["fit", "--resume", run_dir], signals, hold_results=True)
        # its first checkpoint write, or (when the last kill came after the last epoch's checkpoint) the hold
        # before metrics.json: a resume with no epoch left to train writes no checkpoint
        held = signals / f"held-{proc.pid}"
        assert _wait_for(lambda: _wrote(signals, proc, 1)() or held.exists(), proc), proc.communicate()
        time.sleep(rng.uniform(0.0, 0.6))
        assert proc.poll() is None, proc.communicate()
        _kill(proc)
        kills.append("at a random moment")
        _check_last_checkpoint(run_dir)

    done = run_hcal_subprocess("fit", "--resume", run_dir)
    assert done.code == 0, done
    assert not list(run_dir.rglob(".*.tmp-*"))
    assert _metrics(run_dir) == reference.metrics, kills


def test_killed_before_its_first_checkpoint_resume_starts_over(reference, tmp_path):
    run_dir, signals = tmp_path / "stub", tmp_path / "signals"
    signals.mkdir()
    proc = _start([*ARGS, "--run-dir", run_dir], signals, pause_at=1)  # init.ckpt: no last.ckpt yet
    assert _wait_for(_wrote(signals, proc, 1), proc), proc.communicate()
    _kill(proc)
    assert (run_dir / "config.yaml").is_file() and not (run_dir / "checkpoints" / "last.ckpt").exists()
    assert_one_line_error(run_hcal_subprocess(*ARGS, "--run-dir", run_dir), "holds a run", f"--resume {run_dir}")
    r = run_hcal_subprocess("fit", "--resume", run_dir)
    assert r.code == 0, r
    assert _metrics(run_dir) == reference.metrics


def test_sigterm_then_sigint_stop_at_a_safe_point_and_resume_gives_identical_metrics(reference, tmp_path):
    """A batch scheduler's SIGTERM and a Ctrl-C: each stops the real process with one line saying how to continue,
    exit status 143 / 130, and the resumed run ends exactly as the uninterrupted one."""
    run_dir, signals = tmp_path / "stopped", tmp_path / "signals"
    signals.mkdir()
    for n, (args, sig) in enumerate([([*ARGS, "--run-dir", run_dir], signal.SIGTERM),
                                     (["fit", "--resume", run_dir], signal.SIGINT)]):
        proc = _start(args, signals)
        # the first run after epoch 1's last.ckpt (its 3rd write), the resumed one after its first
        assert _wait_for(_wrote(signals, proc, 3 if n == 0 else 1), proc), proc.communicate()
        proc.send_signal(sig)
        r = _finish(proc)
        assert r.code == 128 + sig, r
        assert_one_line_error(r, f"stopped by {sig.name}", f"continue with: hcal fit --resume {run_dir}")
        assert not (run_dir / "metrics.json").exists()
        _check_last_checkpoint(run_dir)
    done = run_hcal_subprocess("fit", "--resume", run_dir)
    assert done.code == 0, done
    assert _metrics(run_dir) == reference.metrics


TINY = ["--dataset", "synthetic", "--epochs", "2", "--no-progress", "--deterministic", "--dataset-arg",
        "train_size=300"]


def _signal_at_train_start(monkeypatch, sig, when=lambda n: True):
    """Send ``sig`` to this process when training starts (after init.ckpt, before the first checkpoint)."""
    real, calls = InitCheckpoint.on_train_start, [0]

    def on_train_start(self, trainer, pl_module):
        real(self, trainer, pl_module)
        calls[0] += 1
        if when(calls[0]):
            os.kill(os.getpid(), sig)

    monkeypatch.setattr(InitCheckpoint, "on_train_start", on_train_start)
    return real


def test_stopped_before_its_first_checkpoint_a_fit_leaves_the_directory_as_it_found_it(cli, tmp_path, monkeypatch):
    old = tmp_path / "old"
    assert cli("fit", *TINY, "--run-dir", old).code == 0
    before = {p: p.read_bytes() for p in old.rglob("*") if p.is_file()}
    _signal_at_train_start(monkeypatch, signal.SIGTERM)
    new = cli("fit", *TINY, "--run-dir", tmp_path / "new")
    assert new.code == 143
    assert_one_line_error(new, "stopped by SIGTERM in epoch 1/2, before the first checkpoint", "nothing was kept",
                          "run the same command again")
    assert not (tmp_path / "new").exists()
    replacing = cli("fit", *TINY, "--seed", "5", "--run-dir", old, "--overwrite")
    assert replacing.code == 143
    assert_one_line_error(replacing, "before the first checkpoint", f"the run it was to replace is back in {old}")
    assert {p: p.read_bytes() for p in old.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "old"]


def test_a_stop_in_the_last_epoch_is_honoured_before_testing(cli, tmp_path, monkeypatch):
    assert cli("fit", *TINY, "--run-dir", tmp_path / "uninterrupted").code == 0
    real = EpochSummary.on_train_epoch_end

    def stop_in_the_last_epoch(self, trainer, pl_module):  # after its last batch: no batch or epoch follows
        real(self, trainer, pl_module)
        if trainer.current_epoch + 1 == trainer.max_epochs:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(EpochSummary, "on_train_epoch_end", stop_in_the_last_epoch)
    run_dir = tmp_path / "run"
    r = cli("fit", *TINY, "--run-dir", run_dir)
    assert r.code == 143
    assert_one_line_error(r, "stopped by SIGTERM after epoch 2/2", f"continue with: hcal fit --resume {run_dir}")
    assert "test metrics" not in r.out and not (run_dir / "metrics.json").exists()
    monkeypatch.setattr(EpochSummary, "on_train_epoch_end", real)
    assert cli("fit", "--resume", run_dir).code == 0
    assert _metrics(run_dir) == _metrics(tmp_path / "uninterrupted")


def test_a_failure_before_the_first_checkpoint_leaves_nothing(cli, tmp_path, monkeypatch):
    def out_of_memory(self, *args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(HCAL, "level_losses", out_of_memory)
    r = cli("fit", *TINY, "--run-dir", tmp_path / "run")
    assert_one_line_error(r, "internal error: RuntimeError: CUDA out of memory")
    assert not (tmp_path / "run").exists()


def test_an_experiment_stopped_by_a_signal_continues_when_run_again(cli, tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    args = ["experiment", "compare", *TINY, "--methods", "hcal,ew", "--seeds", "0", "--out", out]
    real = _signal_at_train_start(monkeypatch, signal.SIGINT, when=lambda n: n == 2)  # in the second run
    r = cli(*args)
    assert r.code == 130
    assert_one_line_error(r, "stopped by SIGINT in epoch 1/2", "run the same command again to continue")
    assert not (out / "results.md").exists()
    assert (out / "runs" / "hcal-seed0" / "metrics.json").is_file() and not (out / "runs" / "ew-seed0").exists()
    monkeypatch.setattr(InitCheckpoint, "on_train_start", real)
    again = cli(*args)
    assert again.code == 0, again
    assert again.out.count("finished earlier, skipped") == 1 and (out / "results.md").is_file()


def _mount_tmpfs(path: Path, options: str) -> None:
    path.mkdir(exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); test_atomic_write_leaves_the_old_file_on_a_"
                    "failed_write simulates a full disk")


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    _mount_tmpfs(mount, "size=24m")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_the_last_checkpoint_stays_intact(cli, small_disk, tmp_path, monkeypatch):
    args = [*TINY, "--epochs", "3"]
    assert cli("fit", *args, "--run-dir", tmp_path / "uninterrupted").code == 0
    run_dir = small_disk / "run"
    real = checkpoint_module.atomic_write
    filler = small_disk / "filler"

    def fill_after_first_last_ckpt(path, write):
        real(path, write)
        if Path(path).name == "last.ckpt" and not filler.exists():
            with open(filler, "wb") as fh:  # the disk fills up, as another job's output would
                try:
                    while True:
                        fh.write(b"\0" * 2**16)
                        fh.flush()
                except OSError:
                    pass

    monkeypatch.setattr(checkpoint_module, "atomic_write", fill_after_first_last_ckpt)
    r = cli("fit", *args, "--run-dir", run_dir)
    assert_one_line_error(r, "cannot write", "no space left on the device", "the last checkpoint",
                          f"continue with hcal fit --resume {run_dir}")
    assert r.code == 2
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0
    assert not list(run_dir.rglob(".*.tmp-*")) and not (run_dir / "metrics.json").exists()
    filler.unlink()
    monkeypatch.setattr(checkpoint_module, "atomic_write", real)
    resumed = cli("fit", "--resume", run_dir)
    assert resumed.code == 0, resumed
    assert _metrics(run_dir) == _metrics(tmp_path / "uninterrupted")


def test_a_read_only_folder_is_one_line_and_nothing_changes(cli, tmp_path):
    mount = tmp_path / "ro"
    _mount_tmpfs(mount, "size=8m")
    try:
        assert cli("fit", *TINY, "--epochs", "1", "--run-dir", mount / "run").code == 0
        before = {p: p.read_bytes() for p in (mount / "run").rglob("*") if p.is_file()}
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        for argv in (["--run-dir", mount / "new"], ["--run-dir", mount / "run", "--overwrite"]):
            r = cli("fit", *TINY, *argv)
            assert_one_line_error(r, "cannot write", "read-only file system", str(argv[1]))
            assert r.code == 2
        assert {p: p.read_bytes() for p in (mount / "run").rglob("*") if p.is_file()} == before
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_non_finite_loss_stops_with_the_step_and_level_losses(cli, tmp_path, monkeypatch):
    real = HCAL.level_losses
    calls = {"n": 0}

    def poisoned(self, x, y, *args, **kwargs):
        losses = real(self, x, y, *args, **kwargs)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 40:  # epoch 1 (33 steps per epoch), after one checkpoint
                return losses * torch.tensor([1.0, float("nan"), 1.0])
        return losses

    monkeypatch.setattr(HCAL, "level_losses", poisoned)
    run_dir = tmp_path / "run"
    r = cli("fit", "--dataset", "synthetic", "--epochs", "3", "--no-progress", "--run-dir", run_dir)
    assert r.code != 0 and "Traceback" not in r.err
    line = r.err.strip().splitlines()[-1]
    assert "non-finite loss at epoch 1, step 39" in line and "L_l2 = nan" in line and "L_l1 = " in line, line
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    weights = [v for v in ckpt["state_dict"].values() if v.is_floating_point()]
    assert ckpt["epoch"] == 0 and all(torch.isfinite(v).all() for v in weights)
    assert not (run_dir / "metrics.json").exists()


def test_checkpoint_from_another_hierarchy_is_rejected(cli, tmp_path):
    run_dir = tmp_path / "run"
    assert cli("fit", "--dataset", "synthetic", "--epochs", "1", "--no-progress", "--run-dir", run_dir).code == 0
    h, x, y, _, _ = make_synthetic(levels=3, branching=3, dim=16)
    np.savez(tmp_path / "other.npz", X=x.numpy(), paths=np.array([h.decode(r) for r in y.tolist()]))
    r = cli("test", "--ckpt", run_dir / "checkpoints" / "best.ckpt", "--dataset", "features", "--data-dir",
            tmp_path / "other.npz")
    assert_one_line_error(r, "trained on another hierarchy", "[8, 4, 2]", "[27, 9, 3]")
