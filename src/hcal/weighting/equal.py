"""Fixed equal weights: ``total = sum_k L_k`` (AWA switched off; hard-parameter-sharing baseline)."""

from __future__ import annotations

import torch

from ._base import WEIGHTINGS, Weighting

__all__ = ["EqualWeighting"]


@WEIGHTINGS.register("equal", description="fixed weight 1 for every level (sum of the level losses)")
class EqualWeighting(Weighting):
    def forward(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.ones_like(losses).detach()
        return losses.sum(), weights
