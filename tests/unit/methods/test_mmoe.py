"""methods/mmoe.py and methods/_mixture.py: the authors' widths, softmax gates, the number of experts."""

import pytest
import torch

from hcal.backbones import create_backbone
from hcal.config import Config
from hcal.inputs import InputSpec
from hcal.methods import MMoE, create_method
from tests.helpers import Identity


def test_mmoe_has_the_authors_widths_and_softmax_gates(toy):
    model = MMoE(toy, lambda: Identity(512))
    mix = model.mixture
    assert len(mix.experts) == 3 and all(e[0].in_features == 512 and e[0].out_features == 128 for e in mix.experts)
    assert [(g.in_features, g.out_features) for g in mix.gates] == [(512, 3)] * 3
    assert [(t[0].in_features, t[0].out_features, t[2].out_features) for t in mix.towers] == [
        (128, 256, 4), (128, 256, 3), (128, 256, 2)]
    x = torch.randn(5, 512)
    for g in mix.gate_weights(x):
        assert g.shape == (5, 3) and torch.allclose(g.sum(1), torch.ones(5))
    # each level's tower reads its own gated mixture of the same experts
    experts = torch.stack([e(x) for e in mix.experts], dim=1)
    g0 = mix.gate_weights(x)[0]
    assert torch.allclose(model(x)[0], mix.towers[0]((g0.unsqueeze(2) * experts).sum(1)), atol=1e-5)


@pytest.mark.parametrize("name", ["mmoe", "dmt"])
def test_the_number_of_experts_is_an_option(toy, name):
    spec = InputSpec(kind="vector", dim=12)
    for experts in (3, 5):  # 3: the authors' default
        model = create_method(name, toy, lambda: create_backbone("mlp", spec), Config(method=name, experts=experts))
        assert len(model.mixture.experts) == experts and model.mixture.gates[0].out_features == experts
