"""MMoE, multi-gate mixture-of-experts (Ma, Zhao, Yi, Chen, Hong, Chi, KDD 2018).

Over the backbone's features ``f`` (``d = backbone.out_features``): ``E = 3`` (``--experts``) shared experts
``e_i(f) = ReLU(W_i f)`` (``d -> 128``), one softmax gate per level ``g_k(f) = softmax(V_k f)``
(``d -> 3``) and one tower per level (``128 -> 256 -> ReLU -> C_k``) applied to the level's
mixture ``sum_i g_k(f)_i e_i(f)``. The widths are those of the authors' code, with the input
width adapted to the backbone. Trained with the per-level cross-entropies, equal weights.
"""

from __future__ import annotations

import torch

from ..config import Config
from ..hierarchy import Hierarchy
from ._base import METHODS, BackboneFactory
from ._classifier import PerLevelClassifier
from ._mixture import MultiGateMixture

__all__ = ["MMoE"]


class MMoE(PerLevelClassifier):
    def __init__(self, hierarchy: Hierarchy, backbone: BackboneFactory, experts: int = 3, expert_dim: int = 128,
                 tower_dim: int = 256) -> None:
        super().__init__(hierarchy)
        self.backbone = backbone()
        self.mixture = MultiGateMixture(self.backbone.out_features, hierarchy.sizes, experts, expert_dim,
                                        tower_dim)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.mixture(self.backbone(x))


@METHODS.register(
    "mmoe",
    description="shared backbone, 3 shared experts (-> 128), a softmax gate and a tower (128 -> 256 -> classes) "
    "per level",
    reference="Ma, Zhao, Yi, Chen, Hong, Chi: Modeling Task Relationships in Multi-task Learning with Multi-gate "
    "Mixture-of-Experts, KDD 2018",
    options=("experts",),
)
def build_mmoe(hierarchy: Hierarchy, backbone: BackboneFactory, config: Config) -> MMoE:
    return MMoE(hierarchy, backbone, experts=config.experts)
