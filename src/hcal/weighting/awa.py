"""Adaptive weight adjustment (AWA), HCAL Sec. 3.4.

At every step the level weights are a softmax of the current (detached) level losses::

    lambda = softmax(stop_gradient([L_1, ..., L_m]) / gamma),   total = sum_k lambda_k L_k

so the level that currently has the largest loss gets the largest weight; ``gamma`` (0.5 in the
paper) sets how sharply. The weights carry no gradient. They sum to 1, where the cross-entropy
baselines sum their level losses (weight 1 each); scaling them by ``m`` is the same as learning
rates x m and weight decay / m under SGD, and measured that way it changed nothing at
convergence (docs/results.md, "AWA's weights sum to 1").
"""

from __future__ import annotations

import torch

from ._base import WEIGHTINGS, Weighting

__all__ = ["AdaptiveWeightAdjustment"]


@WEIGHTINGS.register(
    "awa",
    description="softmax of the detached level losses over temperature gamma (HCAL's AWA)",
    reference="Jiang et al., CIKM 2025, Sec. 3.4",
    options={"gamma": "gamma"},
)
class AdaptiveWeightAdjustment(Weighting):
    def __init__(self, num_levels: int, gamma: float = 0.5) -> None:
        super().__init__(num_levels)
        if not gamma > 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        self.gamma = float(gamma)

    def forward(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.softmax(losses.detach() / self.gamma, dim=0)
        return torch.dot(weights, losses), weights
