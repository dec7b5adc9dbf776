from __future__ import annotations

import torch
from torchmetrics import Metric

from ..hierarchy import Hierarchy


def check_inputs(preds: torch.Tensor, target: torch.Tensor, num_levels: int) -> None:
    if preds.shape != target.shape or preds.ndim != 2 or preds.shape[1] != num_levels:
        raise ValueError(
            f"preds and target must both be (n, {num_levels}) class indices (finest level first), "
            f"got {tuple(preds.shape)} and {tuple(target.shape)}"
        )


class HierarchyMetric(Metric):
    """A torchmetrics Metric over ``(n, m)`` per-level class indices (finest first) that knows the tree.

    States are sums, reduced with ``"sum"`` across processes, so results are exact under DDP.
    """

    full_state_update = False
    higher_is_better: bool | None = None

    def __init__(self, hierarchy: Hierarchy, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_levels = hierarchy.num_levels
        for k in range(hierarchy.num_levels - 1):
            self.register_buffer(f"_parent_{k}", hierarchy.parent_tensor(k), persistent=False)

    def parent(self, k: int) -> torch.Tensor:
        return getattr(self, f"_parent_{k}")

    def violations(self, preds: torch.Tensor) -> torch.Tensor:
        """``(n, m-1)`` bool: column k is True where parent(pred on level k) != pred on level k+1."""
        return torch.stack(
            [self.parent(k)[preds[:, k]] != preds[:, k + 1] for k in range(self.num_levels - 1)], dim=1
        )
