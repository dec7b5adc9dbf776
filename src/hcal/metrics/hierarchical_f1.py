"""Hierarchical precision, recall and F1 over ancestor sets (Kiritchenko et al., 2006; HiClass).

Each sample's true set is its label path (one class per level). Its predicted set is the union
of the ancestor sets of the per-level predictions: every predicted class together with all its
ancestors, classes being distinct per level. Micro-averaged over samples::

    hP = sum_i |P_i & T_i| / sum_i |P_i|      hR = sum_i |P_i & T_i| / sum_i |T_i|
    hF1 = 2 hP hR / (hP + hR)

For predictions that form a path of the tree this is exactly HiClass's definition. Predictions
that violate the hierarchy enlarge the predicted set (two branches), lowering precision.
"""

from __future__ import annotations

import torch

from ..hierarchy import Hierarchy
from ._base import HierarchyMetric, check_inputs

__all__ = ["HierarchicalPrecisionRecallF1"]


class HierarchicalPrecisionRecallF1(HierarchyMetric):
    """Returns ``{"hp": ..., "hr": ..., "hf1": ...}``."""

    higher_is_better = True

    def __init__(self, hierarchy: Hierarchy, **kwargs) -> None:
        super().__init__(hierarchy, **kwargs)
        for k in range(hierarchy.num_levels):
            for j in range(k, hierarchy.num_levels):
                self.register_buffer(f"_anc_{k}_{j}", hierarchy.ancestor_tensor(k, j), persistent=False)
        self.add_state("intersection", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("predicted", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("true", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        check_inputs(preds, target, self.num_levels)
        for j in range(self.num_levels):
            # Level-j members of the predicted set: the level-j ancestors of predictions on levels <= j.
            members = torch.stack(
                [getattr(self, f"_anc_{k}_{j}")[preds[:, k]] for k in range(j + 1)], dim=1
            )
            ordered = members.sort(dim=1).values
            distinct = 1 + (ordered[:, 1:] != ordered[:, :-1]).sum(dim=1)
            self.predicted += distinct.sum()
            self.intersection += (members == target[:, j : j + 1]).any(dim=1).sum()
        self.true += target.shape[0] * self.num_levels

    def compute(self) -> dict[str, torch.Tensor]:
        hp = self.intersection.double() / self.predicted.clamp(min=1)
        hr = self.intersection.double() / self.true.clamp(min=1)
        hf1 = torch.where(hp + hr > 0, 2 * hp * hr / (hp + hr), torch.zeros_like(hp))
        return {"hp": hp, "hr": hr, "hf1": hf1}
