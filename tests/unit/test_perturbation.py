"""perturbation.py: PP against its formula."""

import pytest
import torch
import torch.nn.functional as F

from hcal.perturbation import perturb_prototypes


def test_perturbation_is_the_formula_and_resampled():
    torch.manual_seed(0)
    p = torch.randn(6, 256, requires_grad=True)
    out = perturb_prototypes(p, 0.01, generator=torch.Generator().manual_seed(7))
    u = (2 * torch.rand(6, 256, generator=torch.Generator().manual_seed(7)) - 1) * 0.01
    assert u.abs().max() <= 0.01
    assert torch.allclose(out, F.normalize(F.normalize(p, dim=1) + u, dim=1), atol=1e-6)
    assert torch.allclose(out.norm(dim=1), torch.ones(6), atol=1e-6)
    # fresh noise each call; close to the unperturbed prototypes (cos ~ 1 - |u|^2/2 ~ 0.996)
    again = perturb_prototypes(p, 0.01)
    assert not torch.allclose(again, perturb_prototypes(p, 0.01))
    cos = (again * F.normalize(p, dim=1)).sum(1)
    assert bool(((cos > 0.98) & (cos < 1.0)).all())
    out.sum().backward()
    assert p.grad is not None and p.grad.abs().sum() > 0  # gradients flow to p
    assert torch.equal(perturb_prototypes(p, 0.0), F.normalize(p, dim=1))
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        perturb_prototypes(p, -0.1)
