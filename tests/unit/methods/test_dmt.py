"""methods/dmt.py: backbone tokens and the Transformer + MMoE head on every kind of backbone."""

import pytest
import torch

from hcal.backbones import BACKBONES, create_backbone
from hcal.inputs import InputSpec
from hcal.methods import DMT
from hcal.methods.dmt import backbone_tokens
from tests.helpers import Identity


@pytest.mark.parametrize("name", BACKBONES.names())
def test_backbone_tokens(name):
    spec = (InputSpec(kind="image", channels=1, size=28) if "image" in BACKBONES.get(name).extra["inputs"]
            else InputSpec(kind="vector", dim=12))
    backbone = create_backbone(name, spec).eval()
    x = torch.randn(2, 1, 28, 28) if spec.kind == "image" else torch.randn(2, 12)
    tokens, pooled = backbone_tokens(backbone, x)
    assert torch.allclose(pooled, backbone(x), atol=1e-5)  # pool_tokens(forward_tokens(x)) == forward(x)
    width = backbone.token_features if hasattr(backbone, "forward_tokens") else backbone.out_features
    assert tokens.ndim == 3 and tokens.shape[0] == 2 and tokens.shape[2] == width
    expected_count = {"small-cnn": 49, "mlp": 8, "resnet18-cifar": 16, "resnet18": 1}.get(name)
    if expected_count is not None:
        assert tokens.shape[1] == expected_count, tokens.shape
    if name == "small-cnn":  # the tokens are the grid the pooled features are computed from
        assert torch.allclose(tokens.transpose(1, 2).flatten(1), backbone.features(x), atol=1e-6)
    if name == "mlp":  # 8 chunks of the output vector
        assert torch.allclose(tokens.flatten(1), backbone(x), atol=1e-6)


def test_dmt_runs_on_every_kind_of_backbone(toy):
    torch.manual_seed(0)
    spec = InputSpec(kind="image", channels=1, size=28)
    model = DMT(toy, lambda: create_backbone("small-cnn", spec))
    assert [z.shape for z in model(torch.randn(3, 1, 28, 28))] == [(3, 4), (3, 3), (3, 2)]
    fallback = DMT(toy, lambda: Identity(6))  # no forward_tokens: one token, the pooled features
    tokens, pooled = backbone_tokens(fallback.backbone, torch.randn(3, 6))
    assert tokens.shape == (3, 1, 6) and pooled.shape == (3, 6)
    assert [z.shape for z in fallback(torch.randn(3, 6))] == [(3, 4), (3, 3), (3, 2)]
