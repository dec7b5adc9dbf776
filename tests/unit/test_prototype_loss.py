"""prototype_loss.py: the prototype InfoNCE loss (Eq. 6-7) against the formula."""


import pytest
import torch
import torch.nn.functional as F

from hcal.prototype_loss import prototype_infonce
from tests.helpers import manual_infonce


def test_prototype_infonce_matches_formula():
    torch.manual_seed(0)
    f = F.normalize(torch.randn(5, 4), dim=1)
    p = F.normalize(torch.randn(3, 4), dim=1)
    t = torch.tensor([0, 2, 1, 1, 0])
    assert float(prototype_infonce(f, p, t, 0.1)) == pytest.approx(manual_infonce(f, p, t, 0.1), rel=1e-5)


def test_prototype_infonce_keeps_only_present_terms():
    torch.manual_seed(0)
    f = torch.randn(4, 3)
    p = F.normalize(torch.randn(5, 3), dim=1)
    t = torch.tensor([0, 4, 2, 1])
    present = torch.tensor([True, False, True, True])
    expected = manual_infonce(f[present], p, t[present], 0.2)  # the mean over the 3 present rows
    assert float(prototype_infonce(f, p, t, 0.2, present)) == pytest.approx(expected, rel=1e-5)
