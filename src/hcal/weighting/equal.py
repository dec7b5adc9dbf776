"""Fixed equal weights: ``total = sum_k w L_k`` with ``w = 1`` (hard-parameter-sharing baselines) or
``w = 1/m`` (``mean=True``: HCAL with AWA switched off, the paper's ablation, lambda_k = 1/m)."""

from __future__ import annotations

import torch

from ._base import WEIGHTINGS, Weighting

__all__ = ["EqualWeighting"]


@WEIGHTINGS.register("equal", description="fixed equal weights: 1 per level (sum), or 1/m (mean=True)")
class EqualWeighting(Weighting):
    def __init__(self, num_levels: int, mean: bool = False) -> None:
        super().__init__(num_levels)
        self.mean = bool(mean)

    def forward(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.full_like(losses, 1.0 / self.num_levels if self.mean else 1.0).detach()
        return torch.dot(weights, losses), weights
