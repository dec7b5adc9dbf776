"""Crash safety: a run killed at any moment resumes to exactly the uninterrupted result."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import torch

from hcal.datasets.synthetic import make_synthetic
from hcal.methods.hcal import HCAL
from tests.helpers import assert_one_line_error

ARGS = [
    "fit", "--dataset", "synthetic", "--dataset-arg", "train_size=2000", "--epochs", "4", "--batch-size", "32",
    "--deterministic", "--seed", "7", "--no-progress",
]


# Runs the real CLI; every checkpoint write announces itself with a numbered file in $SIGNAL_DIR,
# and write number $PAUSE_AT pauses between its temporary file and the rename, so a test can kill
# the process inside that write.
LAUNCHER = textwrap.dedent(
    """
    import os, sys, time
    import hcal.engine.checkpoint as ck
    real = ck.atomic_write
    count = [0]
    def slow(path, write):
        def wrapped(fh):
            write(fh)
            fh.flush()
            count[0] += 1
            open(os.path.join(os.environ["SIGNAL_DIR"], f"write-{os.getpid()}-{count[0]}"), "w").close()
            if str(count[0]) == os.environ.get("PAUSE_AT"):
                time.sleep(60)
        return real(path, wrapped)
    ck.atomic_write = slow
    from hcal.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def _start(args, signal_dir: Path, pause_at: int = 0) -> subprocess.Popen:
    env = {**os.environ, "SIGNAL_DIR": str(signal_dir), "PAUSE_AT": str(pause_at), "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-c", LAUNCHER, *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, proc, timeout=300.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    raise TimeoutError("condition not reached")


def _kill(proc) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


def _check_last_checkpoint(run_dir: Path) -> None:
    last = run_dir / "checkpoints" / "last.ckpt"
    assert last.is_file()
    assert "state_dict" in torch.load(last, weights_only=True)  # complete, never half-written


def test_sigkill_at_random_points_then_resume_gives_identical_metrics(tmp_path):
    rng = random.Random(int(os.environ.get("HCAL_KILL_SEED", "2024")))
    reference = tmp_path / "reference"
    ref = subprocess.run([sys.executable, "-m", "hcal", *ARGS, "--run-dir", reference], capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-2000:]

    run_dir = tmp_path / "killed"
    signals = tmp_path / "signals"
    signals.mkdir()
    kills = []

    # 1. Killed inside a checkpoint write (its temporary file written, not yet renamed). Writes:
    #    init.ckpt, then per epoch best.ckpt (when better) and last.ckpt; the 5th is in epoch 1 or 2,
    #    after last.ckpt exists.
    proc = _start([*ARGS, "--run-dir", run_dir], signals, pause_at=5)
    assert _wait_for(lambda: (signals / f"write-{proc.pid}-5").exists(), proc), proc.communicate()
    assert list((run_dir / "checkpoints").glob(".*.tmp-*")), "the kill should land inside a write"
    _kill(proc)
    kills.append("inside a checkpoint write")
    _check_last_checkpoint(run_dir)

    # 2-3. Resumed, then killed at a random moment of the next epoch (training or validation).
    for _ in range(2):
        if (run_dir / "metrics.json").exists():  # the last kill landed after the run had finished
            break
        proc = _start(["fit", "--resume", run_dir], signals)
        if _wait_for(lambda: (signals / f"write-{proc.pid}-1").exists(), proc):
            time.sleep(rng.uniform(0.0, 0.6))
        if proc.poll() is None:
            _kill(proc)
            kills.append("at a random moment")
            _check_last_checkpoint(run_dir)
        else:
            out, err = proc.communicate()
            assert proc.returncode == 0, err[-2000:]
            break

    if not (run_dir / "metrics.json").exists():
        done = subprocess.run([sys.executable, "-m", "hcal", "fit", "--resume", run_dir], capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr[-2000:]
    assert len(kills) >= 2, kills
    assert not list((run_dir / "checkpoints").glob(".*.tmp-*"))
    a = json.loads((reference / "metrics.json").read_text())
    b = json.loads((run_dir / "metrics.json").read_text())
    assert a == b, (kills, a, b)


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
    r = cli("test", "--ckpt", run_dir / "checkpoints" / "best.ckpt", "--dataset", "fashion-mnist",
            "--data-dir", tmp_path)
    # either the data is absent (one-line data error) or the hierarchy check fires; with the
    # hierarchy below we force the hierarchy check:
    h, x, y, _, _ = make_synthetic(levels=3, branching=3, dim=16)
    np.savez(tmp_path / "other.npz", X=x.numpy(), paths=np.array([h.decode(r) for r in y.tolist()]))
    r = cli("test", "--ckpt", run_dir / "checkpoints" / "best.ckpt", "--dataset", "features", "--data-dir",
            tmp_path / "other.npz")

    assert_one_line_error(r, "trained on another hierarchy", "[8, 4, 2]", "[27, 9, 3]")
