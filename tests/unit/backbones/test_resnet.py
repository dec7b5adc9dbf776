"""backbones/resnet.py: pretrained weights from a file or the torch hub cache."""

import pytest
import torch
from torchvision.models import resnet18

from hcal.backbones import create_backbone
from hcal.backbones import resnet as resnet_mod
from hcal.errors import ConfigError
from hcal.inputs import InputSpec


def test_pretrained_from_local_file(tmp_path):
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
