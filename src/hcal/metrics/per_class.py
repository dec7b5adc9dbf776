"""Per-class results of each level: a confusion matrix per level and the precision, recall, F1 and support of
every class read off it (``hcal test``'s per-class report)."""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.classification import MulticlassConfusionMatrix

from ..hierarchy import Hierarchy
from ._base import check_inputs

__all__ = ["LevelConfusionMatrices", "per_class_scores"]


class LevelConfusionMatrices(nn.Module):
    """torchmetrics' confusion matrix of every level (exact under DDP): ``compute()`` gives one ``(n_k, n_k)``
    count matrix per level, finest first, rows the true class and columns the predicted one."""

    def __init__(self, hierarchy: Hierarchy) -> None:
        super().__init__()
        self.num_levels = hierarchy.num_levels
        self.levels = nn.ModuleList(MulticlassConfusionMatrix(n, validate_args=False) for n in hierarchy.sizes)

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        check_inputs(preds, target, self.num_levels)
        for k, matrix in enumerate(self.levels):
            matrix.update(preds[:, k], target[:, k])

    def compute(self) -> list[torch.Tensor]:
        return [matrix.compute() for matrix in self.levels]

    def reset(self) -> None:
        for matrix in self.levels:
            matrix.reset()


def per_class_scores(confusion: torch.Tensor) -> dict[str, torch.Tensor]:
    """Precision, recall, F1 (float64) and support (true samples) and predicted count of every class of one
    level's confusion matrix; a score whose denominator is 0 is 0, as scikit-learn's ``zero_division=0``."""
    c = confusion.double()
    tp, support, predicted = c.diagonal(), c.sum(dim=1), c.sum(dim=0)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), 0.0)
    recall = torch.where(support > 0, tp / support.clamp(min=1), 0.0)
    both = precision + recall
    f1 = torch.where(both > 0, 2 * precision * recall / both.clamp(min=1e-300), 0.0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.long(),
            "predicted": predicted.long()}
