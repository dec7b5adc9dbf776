"""What the baselines share: per-level logits, per-level cross-entropy, one optimiser group.

Every baseline predicts one class per level with its own head and is trained with the
cross-entropy of each level's logits against that level's label; the logits are what
:meth:`~hcal.methods.HierarchicalMethod.forward` returns, so the engine decodes and scores them
exactly as HCAL's (``nearest`` or ``consistent``; the same metrics, HVR included).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ._base import Gather, HierarchicalMethod

__all__ = ["PerLevelClassifier", "cross_entropies", "last_layer_weights"]


class PerLevelClassifier(HierarchicalMethod):
    """A method whose forward gives per-level logits and whose level losses are their cross-entropies."""

    def level_losses(self, x: torch.Tensor, y: torch.Tensor, gather: Gather | None = None) -> torch.Tensor:
        logits = self(x)
        if gather is not None:
            logits, y = [gather(z) for z in logits], gather(y)
        return self.losses_from_logits(logits, y)

    def losses_from_logits(self, logits: list[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        """The ``(m,)`` level losses of per-level logits against ``(n, m)`` labels."""
        return torch.stack(cross_entropies(logits, y))

    def param_groups(self, config: Config) -> list[dict]:
        return [{"name": "model", "params": [p for p in self.parameters() if p.requires_grad], "lr": config.lr}]


def cross_entropies(logits: list[torch.Tensor], y: torch.Tensor) -> list[torch.Tensor]:
    """Per level (finest first) the mean cross-entropy of ``logits[k]`` against ``y[:, k]``."""
    return [F.cross_entropy(z, y[:, k]) for k, z in enumerate(logits)]


def last_layer_weights(module: nn.Module) -> list[nn.Parameter]:
    """The weight of the last linear or convolution layer of ``module`` (its last parameter if it has none)."""
    layers = [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    for layer in reversed(layers):
        if layer.weight.requires_grad:
            return [layer.weight]
    params = [p for p in module.parameters() if p.requires_grad]
    return params[-1:]
