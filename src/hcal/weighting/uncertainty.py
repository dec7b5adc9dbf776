"""Uncertainty weighting (Kendall, Gal, Cipolla, CVPR 2018).

Each level k has a learnable log-variance ``s_k = log sigma_k^2`` (initialised to 0). For a
classification loss the paper's objective ``L_k / sigma_k^2 + log sigma_k`` reads::

    total = sum_k exp(-s_k) L_k + s_k / 2,      weights = exp(-s_k)

``s_k`` is trained with the model (the engine puts the weighting's parameters in the optimiser);
its optimum for a fixed loss is ``exp(-s_k) = 1 / (2 L_k)``, so levels with a large loss are
weighted down. The weights' state is the parameter ``log_vars``, saved in checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn

from ._base import WEIGHTINGS, Weighting

__all__ = ["UncertaintyWeighting"]


@WEIGHTINGS.register(
    "uncertainty",
    description="learnable per-level log-variances s: sum exp(-s) L + s/2 (homoscedastic uncertainty)",
    reference="Kendall, Gal, Cipolla: Multi-Task Learning Using Uncertainty to Weigh Losses, CVPR 2018",
)
class UncertaintyWeighting(Weighting):
    def __init__(self, num_levels: int) -> None:
        super().__init__(num_levels)
        self.log_vars = nn.Parameter(torch.zeros(num_levels))

    def forward(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        precision = torch.exp(-self.log_vars)
        total = (precision * losses + 0.5 * self.log_vars).sum()
        return total, precision.detach()
