"""Hierarchical classification metrics, as torchmetrics Metrics (exact under DDP).

All take ``preds`` and ``target`` as ``(n, m)`` class indices, finest level first.
:class:`HierarchicalMetrics` bundles them and reports a flat dict with the names used in
``metrics.json``: ``acc_l1..acc_lm``, ``acc_mean``, ``full_path_acc``, ``hvr``,
``hvr_l1_l2..``, ``hp``, ``hr``, ``hf1`` (hcal's, over ancestor sets) and ``hp_hiclass``,
``hr_hiclass``, ``hf1_hiclass`` (HiClass's; see :mod:`~hcal.metrics.hierarchical_f1`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..hierarchy import Hierarchy
from .accuracy import FullPathAccuracy, LevelAccuracy
from .hierarchical_f1 import HiClassPrecisionRecallF1, HierarchicalPrecisionRecallF1
from .hvr import HierarchicalViolationRate, LinkViolationRate

__all__ = [
    "LevelAccuracy",
    "FullPathAccuracy",
    "HierarchicalViolationRate",
    "LinkViolationRate",
    "HierarchicalPrecisionRecallF1",
    "HiClassPrecisionRecallF1",
    "HierarchicalMetrics",
    "metric_names",
]


def metric_names(num_levels: int) -> list[str]:
    """The keys :class:`HierarchicalMetrics` reports for a ``num_levels``-level hierarchy, in table order."""
    return (
        [f"acc_l{k + 1}" for k in range(num_levels)]
        + ["acc_mean", "hvr"]
        + [f"hvr_l{k + 1}_l{k + 2}" for k in range(num_levels - 1)]
        + ["full_path_acc", "hp", "hr", "hf1", "hp_hiclass", "hr_hiclass", "hf1_hiclass"]
    )


class HierarchicalMetrics(nn.Module):
    """Every metric of hcal in one object: ``update(preds, target)``, ``compute()``, ``reset()``."""

    def __init__(self, hierarchy: Hierarchy) -> None:
        super().__init__()
        self.num_levels = hierarchy.num_levels
        self.accuracy = LevelAccuracy(hierarchy.num_levels)
        self.full_path = FullPathAccuracy(hierarchy.num_levels)
        self.hvr = HierarchicalViolationRate(hierarchy)
        self.links = LinkViolationRate(hierarchy)
        self.hprf = HierarchicalPrecisionRecallF1(hierarchy)
        self.hiclass = HiClassPrecisionRecallF1(hierarchy.num_levels)

    def _metrics(self):
        return (self.accuracy, self.full_path, self.hvr, self.links, self.hprf, self.hiclass)

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        for m in self._metrics():
            m.update(preds, target)

    def compute(self) -> dict[str, float]:
        acc = self.accuracy.compute()
        links = self.links.compute().reshape(-1)  # torchmetrics squeezes a single link to 0-d
        out = {f"acc_l{k + 1}": float(acc[k]) for k in range(self.num_levels)}
        out["acc_mean"] = float(acc.mean())
        out["hvr"] = float(self.hvr.compute())
        out.update({f"hvr_l{k + 1}_l{k + 2}": float(links[k]) for k in range(self.num_levels - 1)})
        out["full_path_acc"] = float(self.full_path.compute())
        out.update({k: float(v) for k, v in (self.hprf.compute() | self.hiclass.compute()).items()})
        return {k: out[k] for k in metric_names(self.num_levels)}

    def reset(self) -> None:
        for m in self._metrics():
            m.reset()
