"""Every registered method, through its registry: a new one is covered as soon as it is registered."""

import pytest
import torch

from hcal.backbones import create_backbone
from hcal.config import Config
from hcal.datasets.synthetic import make_synthetic
from hcal.inputs import InputSpec
from hcal.methods import METHODS, create_method
from hcal.weighting import weighting_from_config


@pytest.mark.parametrize("name", METHODS.names())
def test_method_learns_on_synthetic(name):
    """A few SGD steps on a fixed batch lower the weighted loss; predictions have one logit per class."""
    torch.manual_seed(0)
    h, x, y, _, _ = make_synthetic(train_size=256)
    spec = InputSpec(kind="vector", dim=x.shape[1])
    config = Config(method=name, dataset="synthetic", backbone="mlp")
    method = create_method(name, h, lambda: create_backbone("mlp", spec), config)
    name, fixed = method.weighting_spec(config)
    weighting = weighting_from_config(name, h.num_levels, config, **fixed)
    optimizer = torch.optim.SGD(method.param_groups(config), lr=0.01, momentum=0.9)

    def loss():
        return weighting(method.level_losses(x, y))[0]

    method.eval()
    with torch.no_grad():
        before = float(method.level_losses(x, y).sum())
    method.train()
    for _ in range(30):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    method.eval()
    with torch.no_grad():
        after = float(method.level_losses(x, y).sum())
        logits = method(x)
    assert after < 0.7 * before, (before, after)
    assert [z.shape for z in logits] == [(x.shape[0], n) for n in h.sizes]
