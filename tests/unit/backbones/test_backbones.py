"""Every registered backbone, through its registry: a new one is covered as soon as it is registered."""

import pytest
import torch

from hcal.backbones import BACKBONES, create_backbone
from hcal.errors import ConfigError
from hcal.inputs import InputSpec

SPECS = {"image": InputSpec(kind="image", channels=3, size=32, mean=(0.5,) * 3, std=(0.25,) * 3),
         "vector": InputSpec(kind="vector", dim=12)}


def _example(spec: InputSpec, n: int = 4) -> torch.Tensor:
    return torch.randn(n, spec.channels, spec.size, spec.size) if spec.kind == "image" else torch.randn(n, spec.dim)


@pytest.mark.parametrize("name", BACKBONES.names())
def test_backbone_builds_and_runs(name):
    kinds = BACKBONES.get(name).extra["inputs"]
    spec = SPECS[kinds[0]]
    model = create_backbone(name, spec)
    out = model(_example(spec))
    assert out.shape == (4, model.out_features)
    other = "vector" if kinds[0] == "image" else "image"
    if other not in kinds:
        with pytest.raises(ConfigError, match=f"backbone '{name}' takes"):
            create_backbone(name, SPECS[other])


@pytest.mark.parametrize("name", BACKBONES.names())
def test_backbone_takes_grey_images_where_it_takes_images(name):
    if "image" not in BACKBONES.get(name).extra["inputs"]:
        pytest.skip(f"{name} takes no images")
    spec = InputSpec(kind="image", channels=1, size=28)
    assert create_backbone(name, spec)(torch.randn(2, 1, 28, 28)).ndim == 2


def test_linear_backbone_standardises_and_learns_nothing():
    """``linear``: the features standardised per column (batch statistics), no parameters: the
    method's own linear map is the whole model."""
    model = create_backbone("linear", InputSpec(kind="vector", dim=5)).train()
    assert model.out_features == 5 and not list(model.parameters())
    x = torch.randn(64, 5) * torch.tensor([1.0, 10.0, 0.1, 3.0, 7.0]) + 4.0
    out = model(x)
    torch.testing.assert_close(out.mean(0), torch.zeros(5), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.std(0, unbiased=False), torch.ones(5), atol=1e-3, rtol=0)
    model.eval()  # the running statistics then standardise single samples
    assert model(x[:1]).shape == (1, 5)
