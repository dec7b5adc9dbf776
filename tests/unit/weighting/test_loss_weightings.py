"""weighting/awa.py, equal.py and every registered weighting: how level losses become one scalar."""

import math

import pytest
import torch

from hcal.config import Config
from hcal.weighting import WEIGHTINGS, AdaptiveWeightAdjustment, EqualWeighting, create_weighting, weighting_from_config


def test_awa_weights_and_gradient():
    losses = torch.tensor([1.0, 2.0, 0.5], requires_grad=True)
    total, weights = AdaptiveWeightAdjustment(3, gamma=0.5)(losses)
    e = [math.exp(v / 0.5) for v in (1.0, 2.0, 0.5)]
    expected = [v / sum(e) for v in e]
    assert weights.tolist() == pytest.approx(expected)
    assert float(total.detach()) == pytest.approx(sum(w * loss for w, loss in zip(expected, (1.0, 2.0, 0.5))))
    total.backward()  # stop-gradient: d total / d L_k = lambda_k exactly
    assert losses.grad.tolist() == pytest.approx(expected)
    assert not weights.requires_grad


def test_awa_weights_times_m_train_like_m_times_the_learning_rate(toy):
    """docs/results.md's claim: under SGD with momentum and weight decay, AWA's weights x m are
    learning rates x m and weight decay / m (the form the Fashion-MNIST check ran in): the same
    parameters after 5 steps of HCAL with one encoder per level (in float64: in float32 the
    normalisation of the small prototypes amplifies rounding to ~1e-4)."""
    from hcal.engine.module import create_optimizer
    from hcal.methods.hcal import HCAL
    from tests.helpers import Identity

    m = toy.num_levels
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = toy.encode_many(["x", "y", "z", "w"] * 2)

    def train(scale, config):
        torch.manual_seed(0)
        model = HCAL(toy, lambda: Identity(4), embed_dim=4, mtl=False, fa=False).double()
        start = torch.cat([p.detach().flatten() for p in model.parameters()])
        awa, optimizer = AdaptiveWeightAdjustment(m), create_optimizer(model.param_groups(config), config)
        for step in range(5):
            torch.manual_seed(100 + step)  # the same perturbation draws on both sides
            optimizer.zero_grad()
            (scale * awa(model.level_losses(x, y))[0]).backward()
            optimizer.step()
        return start, torch.cat([p.detach().flatten() for p in model.parameters()])

    start, scaled = train(m, Config())
    _, faster = train(1, Config(lr=0.01 * m, proto_lr=0.05 * m, weight_decay=1e-4 / m))
    assert float((scaled - faster).abs().max()) < 1e-10
    assert float((scaled - start).abs().max()) > 1e-3  # it trained
    _, plain = train(1, Config(lr=0.01 * m, proto_lr=0.05 * m))  # weight decay not divided: not the same
    assert float((scaled - plain).abs().max()) > 1e-6


def test_awa_gamma_controls_sharpness_and_equal_weights():
    losses = torch.tensor([1.0, 2.0])
    sharp = AdaptiveWeightAdjustment(2, gamma=0.1)(losses)[1]
    flat = AdaptiveWeightAdjustment(2, gamma=10.0)(losses)[1]
    assert sharp[1] > 0.99 and abs(float(flat[1]) - 0.5) < 0.03
    total, w = EqualWeighting(2)(losses)
    assert float(total) == 3.0 and w.tolist() == [1.0, 1.0]
    total, w = EqualWeighting(2, mean=True)(losses)
    assert float(total) == 1.5 and w.tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="gamma must be > 0, got 0"):
        AdaptiveWeightAdjustment(2, gamma=0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        EqualWeighting(2)(torch.ones(3))


@pytest.mark.parametrize("name", WEIGHTINGS.names())
def test_weighting_combines_level_losses(name):
    w = create_weighting(name, 3)
    losses = torch.tensor([0.5, 1.0, 2.0], requires_grad=True)
    total, weights = w(losses)
    assert total.ndim == 0 and weights.shape == (3,) and bool((weights >= 0).all())
    total.backward()
    assert bool((losses.grad > 0).all())  # every level is trained


def test_weightings_read_their_options_from_the_config():
    config = Config(gamma=0.7, cagrad_c=0.3, gradnorm_alpha=0.5, dwa_temperature=4.0, nashmtl_max_norm=2.0)
    assert weighting_from_config("awa", 3, config).gamma == 0.7
    assert weighting_from_config("cagrad", 3, config).c == 0.3
    assert weighting_from_config("gradnorm", 3, config).alpha == 0.5
    assert weighting_from_config("dwa", 3, config).temperature == 4.0
    assert weighting_from_config("nashmtl", 3, config).aggregator.weighting._max_norm == 2.0
    defaults = Config()  # the papers' values
    assert (weighting_from_config("cagrad", 3, defaults).c, weighting_from_config("gradnorm", 3, defaults).alpha,
            weighting_from_config("dwa", 3, defaults).temperature) == (0.4, 1.5, 2.0)
    assert weighting_from_config("equal", 3, config, mean=True).mean  # fixed arguments pass through
