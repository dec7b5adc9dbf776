"""Every registered method trained and evaluated through the CLI, and the baselines' one-line errors."""

import csv
import json
import sys
from pathlib import Path

import pytest
import torch

from hcal.methods import METHODS, HardSharing
from tests.helpers import assert_one_line_error

# 432 training samples: 14 steps an epoch
FAST = ["--dataset", "synthetic", "--dataset-arg", "train_size=480", "--epochs", "3", "--batch-size", "32",
        "--no-progress", "--seed", "0"]


def epoch_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "logs" / "csv" / "metrics.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("train/loss_epoch")]
    return sorted(rows, key=lambda r: int(r["epoch"]))


@pytest.mark.parametrize("name", METHODS.names())
def test_method_trains_and_is_evaluated_through_the_cli(cli, tmp_path, name):
    """Loss goes down; consistent decoding gives HVR 0; `hcal test` scores the same checkpoint."""
    run_dir = tmp_path / "run"
    r = cli("fit", *FAST, "--method", name, "--decode", "consistent", "--scheduler", "cosine", "--run-dir", run_dir)
    assert r.code == 0, r
    rows = epoch_rows(run_dir)
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]
    first, last = float(rows[0]["train/loss_epoch"]), float(rows[-1]["train/loss_epoch"])
    assert last < first - 0.1 * abs(first), (first, last)  # (uncertainty weighting's total may go negative)
    level_sums = [sum(float(row[f"train/loss_l{k}"]) for k in (1, 2, 3)) for row in (rows[0], rows[-1])]
    assert level_sums[1] < 0.9 * level_sums[0], level_sums
    assert all(row[f"train/weight_l{k}"] for row in rows for k in (1, 2, 3))

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test/hvr"] == 0.0  # consistent decoding, whatever the method
    assert metrics["test/acc_l3"] > 0.75  # 2 root classes: chance is 0.5

    out = tmp_path / "nearest.json"
    r = cli("test", "--ckpt", run_dir / "checkpoints" / "best.ckpt", "--decode", "nearest", "--output", out)
    assert r.code == 0, r
    nearest = json.loads(out.read_text())
    expected = {f"test/acc_l{k}" for k in (1, 2, 3)} | {"test/hvr", "test/full_path_acc", "test/hp", "test/hr",
                                                        "test/hf1"}
    assert expected <= set(nearest)
    assert nearest["test/acc_l1"] > 0.3  # 8 leaves: chance is 0.125

    # the learning-rate schedule advanced once per finished epoch in both optimisation paths
    # (Lightning's for loss weightings, the module's own for gradient weightings)
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["lr_schedulers"][0]["last_epoch"] == ckpt["epoch"] + 1


@pytest.mark.parametrize("package", ["cvxpy", "ecos"])
def test_nashmtl_without_its_backend_stops_with_one_line(cli, monkeypatch, package):
    monkeypatch.setitem(sys.modules, package, None)
    r = cli("fit", "--dataset", "synthetic", "--method", "nashmtl", "--epochs", "1", "--no-progress")
    assert_one_line_error(r, "nashmtl: its optimisation backend is "
                             "missing", repr(package), "install it with: pip install")
    assert not list(Path("runs").glob("*")), "nothing was trained, nothing is left behind"


@pytest.mark.parametrize("method", ["cagrad", "uw"])
def test_non_finite_loss_guard_in_both_optimisation_paths(cli, tmp_path, monkeypatch, method):
    real = HardSharing.losses_and_features
    calls = {"n": 0}

    def poisoned(self, x, y):
        losses, features = real(self, x, y)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 16:  # epoch 1, after one checkpoint
                losses[1] = losses[1] * float("nan")
        return losses, features

    monkeypatch.setattr(HardSharing, "losses_and_features", poisoned)
    run_dir = tmp_path / "run"
    r = cli("fit", *FAST, "--method", method, "--run-dir", run_dir)
    assert r.code != 0 and "Traceback" not in r.err
    line = r.err.strip().splitlines()[-1]
    assert "non-finite loss at epoch 1, step 15" in line and "L_l2 = nan" in line, line
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    weights = [v for v in ckpt["state_dict"].values() if v.is_floating_point()]
    assert ckpt["epoch"] == 0 and all(torch.isfinite(v).all() for v in weights)


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--method", "ew", "--no-fa"], ["--no-fa", "does not apply to method 'ew'", "applies to hcal"]),
        (["--method", "mmoe", "--no-mtl"], ["--no-mtl", "method 'mmoe'", "--method single"]),
        (["--method", "cagrad", "--precision", "16-mixed"], ["--precision 16-mixed", "'cagrad'", "bf16-mixed"]),
    ],
)
def test_baseline_option_errors_are_one_line(cli, args, fragments):
    assert_one_line_error(cli("fit", "--dataset", "synthetic", *args), *fragments)
