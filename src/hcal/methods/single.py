"""Single-task learning: an independent backbone and linear head per level (the paper's "MTL off").

No parameter is shared; the level losses (cross-entropies) are summed, which trains each level's
model on its own loss alone. Compare with ``ew``, the same heads on one shared backbone.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import Config
from ..hierarchy import Hierarchy
from ._base import METHODS, BackboneFactory
from ._classifier import PerLevelClassifier

__all__ = ["SingleTask"]


class SingleTask(PerLevelClassifier):
    def __init__(self, hierarchy: Hierarchy, backbone: BackboneFactory) -> None:
        super().__init__(hierarchy)
        self.backbones = nn.ModuleList(backbone() for _ in hierarchy.sizes)
        self.heads = nn.ModuleList(nn.Linear(b.out_features, n) for b, n in zip(self.backbones, hierarchy.sizes))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [head(b(x)) for b, head in zip(self.backbones, self.heads)]


@METHODS.register(
    "single",
    description="an independent backbone and linear head per level, no sharing (the paper's MTL-off baseline)",
    reference="Jiang et al., CIKM 2025 (the MTL-off setting)",
)
def build_single(hierarchy: Hierarchy, backbone: BackboneFactory, config: Config) -> SingleTask:
    return SingleTask(hierarchy, backbone)
