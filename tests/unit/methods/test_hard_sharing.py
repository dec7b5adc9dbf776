"""methods/hard_sharing.py: the shared trunk gradient weightings read."""

import pytest
import torch

from hcal.backbones import create_backbone
from hcal.config import Config
from hcal.errors import ConfigError
from hcal.inputs import InputSpec
from hcal.methods import HardSharing, MMoE, create_method
from tests.helpers import Identity


def test_hard_sharing_exposes_its_trunk(toy):
    spec = InputSpec(kind="vector", dim=12)
    model = create_method("cagrad", toy, lambda: create_backbone("mlp", spec), Config())
    assert isinstance(model, HardSharing) and model.weighting_spec(Config()) == ("cagrad", {})
    shared = model.shared_parameters()
    assert {id(p) for p in shared} == {id(p) for p in model.backbone.parameters()}
    assert not {id(p) for p in shared} & {id(p) for p in model.heads.parameters()}
    assert model.last_shared_parameters() == [model.backbone.net[3].weight]  # the last Linear
    losses, features = model.losses_and_features(torch.randn(5, 12), toy.leaf_paths()[[0, 1, 2, 3, 0]])
    assert len(losses) == 3 and all(loss.ndim == 0 for loss in losses) and features.shape == (5, 256)


def test_methods_without_a_trunk_say_so(toy):
    model = MMoE(toy, lambda: Identity(4))
    with pytest.raises(ConfigError, match="method MMoE has no shared trunk"):
        model.shared_parameters()
