"""Per-level accuracy ACC^k and full-path accuracy (every level right)."""

from __future__ import annotations

import torch
from torchmetrics import Metric

from ._base import check_inputs

__all__ = ["LevelAccuracy", "FullPathAccuracy"]


class LevelAccuracy(Metric):
    """ACC^k for every level k: ``(m,)`` tensor, index 0 = level 1 (finest)."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_levels: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_levels = num_levels
        self.add_state("correct", default=torch.zeros(num_levels, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        check_inputs(preds, target, self.num_levels)
        self.correct += (preds == target).sum(dim=0)
        self.total += target.shape[0]

    def compute(self) -> torch.Tensor:
        return self.correct.double() / self.total.clamp(min=1)


class FullPathAccuracy(Metric):
    """Fraction of samples with every level predicted correctly."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_levels: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_levels = num_levels
        self.add_state("correct", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        check_inputs(preds, target, self.num_levels)
        self.correct += (preds == target).all(dim=1).sum()
        self.total += target.shape[0]

    def compute(self) -> torch.Tensor:
        return self.correct.double() / self.total.clamp(min=1)
