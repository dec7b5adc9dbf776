"""MMoE, multi-gate mixture-of-experts (Ma, Zhao, Yi, Chen, Hong, Chi, KDD 2018).

Over the backbone's features ``f`` (``d = backbone.out_features``): ``E = 3`` shared experts
``e_i(f) = ReLU(W_i f)`` (``d -> 128``), one softmax gate per level ``g_k(f) = softmax(V_k f)``
(``d -> 3``) and one tower per level (``128 -> 256 -> ReLU -> C_k``) applied to the level's
mixture ``sum_i g_k(f)_i e_i(f)``. The widths are those of the authors' code, with the input
width adapted to the backbone. Trained with the per-level cross-entropies, equal weights.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import Config
from ..hierarchy import Hierarchy
from ._base import METHODS, BackboneFactory
from ._classifier import PerLevelClassifier, check_no_hcal_switches

__all__ = ["MMoE", "MultiGateMixture"]


class MultiGateMixture(nn.Module):
    """Shared experts, one softmax gate and one tower per task: ``(n, d) -> [(n, C_k)]``."""

    def __init__(self, in_features: int, sizes: tuple[int, ...], experts: int = 3, expert_dim: int = 128,
                 tower_dim: int = 256) -> None:
        super().__init__()
        if experts < 1:
            raise ValueError(f"experts must be >= 1, got {experts}")
        self.experts = nn.ModuleList(nn.Sequential(nn.Linear(in_features, expert_dim), nn.ReLU()) for _ in range(experts))
        self.gates = nn.ModuleList(nn.Linear(in_features, experts) for _ in sizes)
        self.towers = nn.ModuleList(
            nn.Sequential(nn.Linear(expert_dim, tower_dim), nn.ReLU(), nn.Linear(tower_dim, n)) for n in sizes
        )

    def gate_weights(self, f: torch.Tensor) -> list[torch.Tensor]:
        """Per task the ``(n, E)`` softmax mixing weights of the experts."""
        return [torch.softmax(gate(f), dim=1) for gate in self.gates]

    def forward(self, f: torch.Tensor) -> list[torch.Tensor]:
        expert_out = torch.stack([e(f) for e in self.experts], dim=1)  # (n, E, expert_dim)
        return [
            tower(torch.einsum("ne,ned->nd", g, expert_out)) for g, tower in zip(self.gate_weights(f), self.towers)
        ]


class MMoE(PerLevelClassifier):
    def __init__(self, hierarchy: Hierarchy, backbone: BackboneFactory, experts: int = 3, expert_dim: int = 128,
                 tower_dim: int = 256) -> None:
        super().__init__(hierarchy)
        self.backbone = backbone()
        self.mixture = MultiGateMixture(self.backbone.out_features, hierarchy.sizes, experts, expert_dim, tower_dim)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.mixture(self.backbone(x))


@METHODS.register(
    "mmoe",
    description="shared backbone, 3 shared experts (-> 128), a softmax gate and a tower (128 -> 256 -> classes) per level",
    reference="Ma, Zhao, Yi, Chen, Hong, Chi: Modeling Task Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts, KDD 2018",
)
def build_mmoe(hierarchy: Hierarchy, backbone: BackboneFactory, config: Config) -> MMoE:
    check_no_hcal_switches("mmoe", config)
    return MMoE(hierarchy, backbone)
