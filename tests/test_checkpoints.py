import os

import pytest
import torch

from hcal.backbones import create_backbone
from hcal.backbones import resnet as resnet_mod
from hcal.engine.checkpoint import atomic_torch_save, load_checkpoint_file
from hcal.errors import CheckpointError, ConfigError
from hcal.inputs import InputSpec


def test_atomic_save_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.ckpt"
    atomic_torch_save({"v": torch.ones(2)}, path)
    atomic_torch_save({"v": torch.zeros(2)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["v"], torch.zeros(2))
    assert os.listdir(tmp_path) == ["a.ckpt"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.ckpt"
    atomic_torch_save({"v": 1}, path)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_torch_save({"v": Boom()}, path)
    assert torch.load(path, weights_only=True) == {"v": 1}
    assert os.listdir(tmp_path) == ["a.ckpt"]


def test_truncated_foreign_and_unsafe_checkpoints(tmp_path):
    good = tmp_path / "good.ckpt"
    torch.save({"hcal_format": 1, "hyper_parameters": {}, "state_dict": {"w": torch.randn(100, 100)}}, good)
    assert load_checkpoint_file(good)["hcal_format"] == 1
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="cut.ckpt.*truncated or not a torch checkpoint"):
        load_checkpoint_file(cut)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"model": torch.zeros(1)}, foreign)
    with pytest.raises(CheckpointError, match="not written by hcal"):
        load_checkpoint_file(foreign)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    unsafe = tmp_path / "unsafe.ckpt"
    torch.save({"hcal_format": 1, "hyper_parameters": {}, "x": Evil()}, unsafe)
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_checkpoint_file(unsafe)
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint_file(tmp_path)


def test_pretrained_from_local_file(tmp_path):
    from torchvision.models import resnet18

    reference = resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(reference.state_dict(), path)
    spec = InputSpec(kind="image", channels=3, size=32)
    model = create_backbone("resnet18", spec, pretrained=str(path))
    assert torch.equal(model.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)
    cifar = create_backbone("resnet18-cifar", spec, pretrained=str(path))
    assert torch.equal(cifar.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
    assert cifar.conv1.weight.shape == (64, 3, 3, 3)  # the CIFAR stem stays its own
    with pytest.raises(ConfigError, match="does not exist"):
        create_backbone("resnet18", spec, pretrained=str(tmp_path / "missing.pth"))


def test_pretrained_offline_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    spec = InputSpec(kind="image", channels=3, size=32)
    with pytest.raises(ConfigError) as info:
        create_backbone("resnet18", spec, pretrained="imagenet")
    message = str(info.value)
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "could not be downloaded" in message and "--pretrained" in message
    assert resnet_mod.imagenet_weights_path() == tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
