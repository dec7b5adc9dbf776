from __future__ import annotations

import torch
from torch import nn

from ..registry import Registry

WEIGHTINGS: Registry = Registry("weighting")


class Weighting(nn.Module):
    """Combines the per-level losses ``(m,)`` of one step into the scalar that is minimised.

    Subclasses write :meth:`forward`, returning ``(total, weights)``; ``__call__`` checks the
    input first. Weightings are modules so that any state they keep (running averages,
    learnable scales) is saved in checkpoints and restored on resume.
    """

    def __init__(self, num_levels: int) -> None:
        super().__init__()
        if num_levels < 1:
            raise ValueError(f"num_levels must be >= 1, got {num_levels}")
        self.num_levels = num_levels

    def __call__(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if losses.ndim != 1 or losses.shape[0] != self.num_levels:
            raise ValueError(
                f"losses must have shape ({self.num_levels},), got {tuple(losses.shape)}"
            )
        return super().__call__(losses)

    def forward(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError
