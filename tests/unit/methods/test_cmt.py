"""methods/cmt.py: CMT's distribution matching and soft co-annotation, by hand."""

import numpy as np
import pytest
import torch

from hcal.config import Config
from hcal.hierarchy import Hierarchy
from hcal.methods import CMT, create_method
from hcal.methods.cmt import implied_coarse_log_probs
from tests.helpers import Identity


def _kl(p, q):
    return float(np.sum(p * (np.log(p) - np.log(q))))


# ----------------------------------------------------------------------------------------- CMT
def test_implied_coarse_posterior_is_the_sum_over_children(toy):
    torch.manual_seed(0)
    fine = torch.log_softmax(torch.randn(5, 4) * 5, dim=1)
    parent = toy.parent_tensor(0)  # x, y -> a1; z -> a2; w -> b1
    dense = torch.zeros(4, 3)
    dense[torch.arange(4), parent] = 1
    expected = torch.log(fine.exp() @ dense)
    assert torch.allclose(implied_coarse_log_probs(fine, parent, 3), expected, atol=1e-6)
    # stable where the probabilities underflow in float32
    extreme = torch.log_softmax(torch.tensor([[0.0, -200.0, -300.0, -400.0]]), dim=1)
    got = implied_coarse_log_probs(extreme, parent, 3)
    assert torch.isfinite(got).all() and float(got[0, 2]) == pytest.approx(-400.0, abs=1e-3)


def test_cmt_losses_by_hand():
    h = Hierarchy([("A", "a"), ("A", "b"), ("B", "c")])  # 2 levels: fine a, b, c; coarse A, B
    model = CMT(h, lambda: Identity(3), lambda_dm=1.0, lambda_sca=0.5)
    fine_logits = torch.tensor([[1.0, 0.0, -1.0]])
    coarse_logits = torch.tensor([[0.2, 0.5]])
    dm, sca = model.regularisers([fine_logits, coarse_logits])

    pf = np.exp([1.0, 0.0, -1.0]) / np.exp([1.0, 0.0, -1.0]).sum()
    pc = np.exp([0.2, 0.5]) / np.exp([0.2, 0.5]).sum()
    q = np.array([pf[0] + pf[1], pf[2]])  # implied coarse posterior
    r = np.array([pc[0] * pf[0] / q[0], pc[0] * pf[1] / q[0], pc[1] * pf[2] / q[1]])  # coarse -> fine soft label
    assert r.sum() == pytest.approx(1.0)
    assert dm.tolist() == pytest.approx([0.0, 0.5 * (_kl(q, pc) + _kl(pc, q))], rel=1e-5)
    assert sca.tolist() == pytest.approx([_kl(r, pf), _kl(q, pc)], rel=1e-5)

    # the level losses add them to the cross-entropies with the documented weights
    x, y = torch.zeros(1, 3), torch.tensor([[0, 0]])
    model.backbone = Identity(3)
    with torch.no_grad():
        model.heads[0].weight.zero_(), model.heads[0].bias.copy_(fine_logits[0])
        model.heads[1].weight.zero_(), model.heads[1].bias.copy_(coarse_logits[0])
    ce = [-np.log(pf[0]), -np.log(pc[0])]
    expected = [ce[0] + 0.5 * _kl(r, pf), ce[1] + 1.0 * 0.5 * (_kl(q, pc) + _kl(pc, q)) + 0.5 * _kl(q, pc)]
    assert model.level_losses(x, y).tolist() == pytest.approx(expected, rel=1e-5)


def test_cmt_regularisers_vanish_when_the_heads_agree(toy):
    fine = torch.randn(4, 4)
    parent = toy.parent_tensor(0)
    coarse = implied_coarse_log_probs(torch.log_softmax(fine, 1), parent, 3)
    grand = implied_coarse_log_probs(coarse, toy.parent_tensor(1), 2)
    model = CMT(toy, lambda: Identity(4))
    dm, sca = model.regularisers([fine, coarse, grand])
    assert torch.allclose(dm, torch.zeros(3), atol=1e-6) and torch.allclose(sca, torch.zeros(3), atol=1e-6)
    dm, sca = model.regularisers([fine, coarse + torch.tensor([2.0, 0.0, 0.0]), grand])
    assert dm[1] > 1e-3 and sca[0] > 1e-3 and sca[1] > 1e-3


def test_cmt_weights_are_options(toy):
    default = create_method("cmt", toy, lambda: Identity(4), Config(method="cmt"))
    assert (default.lambda_dm, default.lambda_sca) == (1.0, 0.5)
    tuned = create_method("cmt", toy, lambda: Identity(4), Config(method="cmt", cmt_lambda_dm=0.0, cmt_lambda_sca=2.0))
    assert (tuned.lambda_dm, tuned.lambda_sca) == (0.0, 2.0)
