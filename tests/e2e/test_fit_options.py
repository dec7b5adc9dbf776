"""The GPU-oriented switches through ``hcal fit`` on the CPU path: batch-wise augmentation on the device, bf16
mixed precision, channels-last."""

import json

import torch

from tests.fixtures import fake_fashion_mnist


def test_fit_with_augmentation_on_the_device(cli, tmp_path):
    fake_fashion_mnist(tmp_path / "fm", n_train=200, n_test=40)
    run = tmp_path / "run"
    r = cli("fit", "--data-dir", tmp_path / "fm", "--augment-on", "device", "--epochs", "1", "--batch-size", "16",
            "--no-progress", "--run-dir", run)
    assert r.code == 0, r
    assert (run / "metrics.json").is_file()


def test_bf16_mixed_precision_on_cpu(cli, tmp_path):
    run = tmp_path / "run"
    r = cli("fit", "--dataset", "synthetic", "--epochs", "2", "--precision", "bf16-mixed", "--no-progress",
            "--run-dir", run)
    assert r.code == 0, r
    assert json.loads((run / "metrics.json").read_text())["test/acc_l3"] > 0.9
    state = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())  # mixed: fp32 weights


def test_channels_last_images(cli, tmp_path):
    fake_fashion_mnist(tmp_path / "fm", n_train=120, n_test=20)
    r = cli("fit", "--data-dir", tmp_path / "fm", "--channels-last", "--epochs", "1", "--batch-size", "16",
            "--no-progress", "--run-dir", tmp_path / "run")
    assert r.code == 0, r

