"""Prototype perturbation (PP), HCAL Sec. 3.3.

During training every level's prototypes are jittered by uniform noise before the loss::

    p~ = normalise(normalise(p) + u),   u ~ U(-eps, eps)^d

with fresh noise at every step and level. Gradients flow through to ``p``. Evaluation uses
``normalise(p)`` (no noise). ``eps = 0`` switches PP off.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["perturb_prototypes", "perturbation_noise"]


def perturb_prototypes(
    prototypes: torch.Tensor, epsilon: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Unit-norm prototypes with uniform noise of half-width ``epsilon`` added before renormalising.

    Args:
        prototypes: ``(c, d)`` raw (unnormalised) prototype parameters.
        epsilon: noise half-width, ``>= 0``; ``0`` returns ``normalise(prototypes)``.
        generator: optional random generator (the global one otherwise).
    """
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    unit = F.normalize(prototypes, dim=-1)
    if epsilon == 0:
        return unit
    noise = perturbation_noise(unit.shape, epsilon, dtype=unit.dtype, device=unit.device, generator=generator)
    return F.normalize(unit + noise, dim=-1)


def perturbation_noise(
    size: tuple[int, ...] | torch.Size,
    epsilon: float,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The noise ``u ~ U(-epsilon, epsilon)`` of the given size (no gradient)."""
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    return torch.empty(size, dtype=dtype, device=device).uniform_(-epsilon, epsilon, generator=generator)
