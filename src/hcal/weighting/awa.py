"""Adaptive weight adjustment (AWA), HCAL Sec. 3.4.

At every step the level weights are a softmax of the current (detached) level losses::

    lambda = softmax(stop_gradient([L_1, ..., L_m]) / gamma),   total = sum_k lambda_k L_k

so the level that currently has the largest loss gets the largest weight; ``gamma`` (0.5 in the
paper) sets how sharply. The weights carry no gradient.

hcal's own, off by default: ``total="levels"`` multiplies the weights by ``m`` (``--awa-total
levels``), so that they average 1, as the cross-entropy baselines' sum of level losses does. The
paper's weights sum to 1, which scales every level's gradient by about ``1/m`` against those
baselines; with one encoder per level (``--no-mtl``) nothing is shared and the weights only set
each level's effective learning rate (weight ``lambda_k`` = learning rate ``lambda_k x lr``).
"""

from __future__ import annotations

import torch

from ._base import WEIGHTINGS, Weighting

__all__ = ["AdaptiveWeightAdjustment"]


@WEIGHTINGS.register(
    "awa",
    description="softmax of the detached level losses over temperature gamma (HCAL's AWA)",
    reference="Jiang et al., CIKM 2025, Sec. 3.4",
    options={"gamma": "gamma", "total": "awa_total"},
)
class AdaptiveWeightAdjustment(Weighting):
    TOTALS = ("one", "levels")

    def __init__(self, num_levels: int, gamma: float = 0.5, total: str = "one") -> None:
        super().__init__(num_levels)
        if not gamma > 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        if total not in self.TOTALS:
            raise ValueError(f"total must be one of {self.TOTALS}, got {total!r}")
        self.gamma, self.total = float(gamma), total
        self.scale = float(num_levels) if total == "levels" else 1.0

    def forward(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = self.scale * torch.softmax(losses.detach() / self.gamma, dim=0)
        return torch.dot(weights, losses), weights
