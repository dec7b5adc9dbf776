"""The multi-gate mixture of experts layer of MMoE (Ma et al., KDD 2018), shared by ``mmoe`` and ``dmt``."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MultiGateMixture"]


class MultiGateMixture(nn.Module):
    """Shared experts, one softmax gate and one tower per task: ``(n, d) -> [(n, C_k)]``."""

    def __init__(self, in_features: int, sizes: tuple[int, ...], experts: int = 3, expert_dim: int = 128,
                 tower_dim: int = 256) -> None:
        super().__init__()
        if experts < 1:
            raise ValueError(f"experts must be >= 1, got {experts}")
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(in_features, expert_dim), nn.ReLU()) for _ in range(experts))
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
