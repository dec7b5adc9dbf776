"""The complete CIFAR-10 (JPEG archive kept in ../shared/data, outside the repository) through the
cifar10 preset: it loads with the right sizes and counts, and trains (how fast: benchmarks/bench.py).
Skips where the archive is absent (a user's machine)."""

import json

import pytest
import torch

import hcal.engine.fitting as fitting
from hcal.datasets import create_dataset
from tests.helpers import SHARED_DATA

CIFAR10_TAR = SHARED_DATA / "cifar10-jpeg.tar.gz"


@pytest.mark.skipif(not CIFAR10_TAR.is_file(), reason=f"the CIFAR-10 JPEG archive is not at {CIFAR10_TAR} (kept "
                                                      "outside the repository)")
def test_real_cifar10_archive_loads_and_fits(cli, tmp_path, monkeypatch):
    b = create_dataset("cifar10", str(CIFAR10_TAR), seed=0, val_fraction=0.1)
    assert (len(b.train), len(b.val), len(b.test)) == (45000, 5000, 10000)
    assert torch.bincount(b.test.targets[b.test.indices][:, 0], minlength=10).tolist() == [1000] * 10
    assert torch.bincount(b.train.targets[:, 2], minlength=2).tolist() == [24000, 36000]  # transport, animal
    assert b.train.inputs.shape == (60000, 3, 32, 32) and b.train.inputs.dtype == torch.uint8
    # one short fit on it, reusing the loaded data (the CLI would decode the archive again)

    monkeypatch.setattr(fitting, "create_dataset", lambda *a, **k: b)
    r = cli("fit", "--dataset", "cifar10", "--data-dir", CIFAR10_TAR, "--epochs", "1", "--limit-batches", "3",
            "--batch-size", "32", "--backbone", "small-cnn", "--no-progress", "--run-dir", tmp_path / "run")
    assert r.code == 0, r
    assert "45000 train / 5000 val / 10000 test; levels 2 > 7 > 10 classes" in r.out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["test/acc_l1"] <= 1.0 and 0.0 <= metrics["test/hvr"] <= 1.0
