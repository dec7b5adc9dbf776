"""Hierarchical Violation Rate (HVR), HCAL Sec. 4, as the authors' code computes it.

A sample's predictions violate the hierarchy when, for some adjacent pair of levels, the
parent of the finer prediction is not the coarser prediction: ``parent(y^_{k-1}) != y^_k``.
HVR is the fraction of samples with at least one such violation. The per-link rates give the
fraction of samples violating each adjacent link separately (``hvr_l1_l2`` = levels 1-2).
Ground truth is not needed: HVR measures consistency, not correctness.
"""

from __future__ import annotations

import torch

from ._base import HierarchyMetric, check_inputs

__all__ = ["HierarchicalViolationRate", "LinkViolationRate"]


class HierarchicalViolationRate(HierarchyMetric):
    """Fraction of samples whose per-level predictions break at least one parent-child link."""

    higher_is_better = False

    def __init__(self, hierarchy, **kwargs) -> None:
        super().__init__(hierarchy, **kwargs)
        self.add_state("violating", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor | None = None) -> None:
        if target is not None:
            check_inputs(preds, target, self.num_levels)
        self.violating += self.violations(preds).any(dim=1).sum()
        self.total += preds.shape[0]

    def compute(self) -> torch.Tensor:
        return self.violating.double() / self.total.clamp(min=1)


class LinkViolationRate(HierarchyMetric):
    """``(m-1,)`` fraction of samples violating each link; index k = levels k+1 and k+2."""

    higher_is_better = False

    def __init__(self, hierarchy, **kwargs) -> None:
        super().__init__(hierarchy, **kwargs)
        self.add_state(
            "violating", default=torch.zeros(hierarchy.num_levels - 1, dtype=torch.long), dist_reduce_fx="sum"
        )
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor | None = None) -> None:
        if target is not None:
            check_inputs(preds, target, self.num_levels)
        self.violating += self.violations(preds).sum(dim=0)
        self.total += preds.shape[0]

    def compute(self) -> torch.Tensor:
        return self.violating.double() / self.total.clamp(min=1)
