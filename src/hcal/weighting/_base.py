from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..registry import Registry

WEIGHTINGS: Registry = Registry("weighting")
"""A weighting registers ``options={KWARG: CONFIG_FIELD}``: the constructor arguments taken from the
:class:`~hcal.config.Config` (see :func:`hcal.weighting.weighting_from_config`)."""


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

    def new_epoch(self) -> None:
        """Called by the engine when a training epoch starts; weightings with per-epoch state override it."""


@dataclass
class SharedTrunk:
    """What a :class:`GradientWeighting` needs from a hard-sharing method, for one batch.

    ``features``: the last shared representation, read by every level's head (``(n, ...)``);
    ``parameters``: the shared parameters, whose per-level gradients are combined;
    ``last_layer``: the weights of the last shared layer (GradNorm measures gradient norms there).
    See :meth:`hcal.methods.HierarchicalMethod.losses_and_features`.
    """

    features: torch.Tensor
    parameters: list[nn.Parameter]
    last_layer: list[nn.Parameter]


class GradientWeighting(Weighting):
    """A weighting that combines the per-level *gradients* on the shared parameters, not the losses.

    The engine trains a method with such a weighting by Lightning's manual optimisation: each
    step it takes the method's per-level losses and shared trunk, zeroes the gradients, calls
    :meth:`backward` and steps the optimiser. :meth:`backward` fills the ``.grad`` of every
    trainable parameter behind the losses: the shared ones with the combined update, each level's
    own ones (its head) with that level's gradient, and the weighting's own parameters if any.
    It returns the ``(m,)`` weights: the coefficient of each level's gradient in the shared update.

    Called like a loss weighting, ``weighting(losses)`` returns the plain sum of the level losses
    (what the engine logs as ``train/loss``) and the weights of the latest :meth:`backward`.
    """

    def __init__(self, num_levels: int) -> None:
        super().__init__(num_levels)
        self.register_buffer("last_weights", torch.ones(num_levels), persistent=False)

    def forward(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return losses.sum(), self.last_weights.clone()

    def backward(self, losses: Sequence[torch.Tensor], trunk: SharedTrunk) -> torch.Tensor:
        """Fill the gradients for one step; return the ``(m,)`` weights used."""
        if len(losses) != self.num_levels or any(loss.ndim != 0 for loss in losses):
            shapes = [tuple(loss.shape) for loss in losses]
            raise ValueError(f"losses must be {self.num_levels} scalar tensors, got shapes {shapes}")
        if not trunk.parameters:
            raise ValueError("trunk.parameters must hold the shared parameters, got none")
        weights = self.combine(list(losses), trunk).detach()
        if weights.shape != (self.num_levels,):
            raise RuntimeError(f"{type(self).__name__}.combine returned weights of shape {tuple(weights.shape)}")
        self.last_weights.copy_(weights)
        return weights

    def combine(self, losses: list[torch.Tensor], trunk: SharedTrunk) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError
