"""Hierarchical precision, recall and F1, micro-averaged over samples, in two definitions::

    hP = sum_i |P_i & T_i| / sum_i |P_i|      hR = sum_i |P_i & T_i| / sum_i |T_i|
    hF1 = 2 hP hR / (hP + hR)

Each sample's true set ``T_i`` is its label path (one class per level); classes are distinct per
level. The two differ in the predicted set ``P_i``:

* hcal's ``hp``/``hr``/``hf1`` (Kiritchenko et al., 2006): the union of the ancestor sets of the
  per-level predictions, every predicted class with all its ancestors. Predictions that violate
  the hierarchy enlarge the set (two branches), lowering precision.
* ``hp_hiclass``/``hr_hiclass``/``hf1_hiclass``: what HiClass's ``hiclass.metrics.precision``,
  ``recall`` and ``f1`` (micro) compute from the same per-level predictions: the predicted classes
  themselves, no ancestors added, so ``|P_i| = |T_i| = m`` and the three equal the mean of the
  per-level accuracies. (HiClass compares names as given; hcal compares classes per level, which is
  the same wherever no name appears on two levels.)

For predictions that form a path of the tree the two definitions agree.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from ..hierarchy import Hierarchy
from ._base import HierarchyMetric, check_inputs

__all__ = ["HierarchicalPrecisionRecallF1", "HiClassPrecisionRecallF1"]


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
        return _prf(self.intersection, self.predicted, self.true, "")


class HiClassPrecisionRecallF1(Metric):
    """HiClass's definition: returns ``{"hp_hiclass": ..., "hr_hiclass": ..., "hf1_hiclass": ...}``."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_levels: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_levels = num_levels
        self.add_state("intersection", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        check_inputs(preds, target, self.num_levels)
        self.intersection += (preds == target).sum()  # |P_i & T_i|: the levels predicted right
        self.total += target.numel()  # sum_i |P_i| = sum_i |T_i| = n m

    def compute(self) -> dict[str, torch.Tensor]:
        return _prf(self.intersection, self.total, self.total, "_hiclass")


def _prf(intersection: torch.Tensor, predicted: torch.Tensor, true: torch.Tensor, suffix: str
         ) -> dict[str, torch.Tensor]:
    hp = intersection.double() / predicted.clamp(min=1)
    hr = intersection.double() / true.clamp(min=1)
    hf1 = torch.where(hp + hr > 0, 2 * hp * hr / (hp + hr), torch.zeros_like(hp))
    return {f"hp{suffix}": hp, f"hr{suffix}": hr, f"hf1{suffix}": hf1}
