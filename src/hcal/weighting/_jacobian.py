"""Shared machinery of the Jacobian-aggregation weightings (CAGrad, IMTL-G, Nash-MTL).

The solvers are TorchJD's (https://torchjd.org): :func:`torchjd.autojac.mtl_backward` computes,
in one backward pass, each level's gradient of its own head's parameters (accumulated in their
``.grad``) and the Jacobian ``J`` (``m x P``: one row per level) of the level losses with respect
to the shared parameters; :func:`torchjd.autojac.jac_to_grad` turns ``J`` into the shared
parameters' update ``J^T alpha`` with a TorchJD aggregator and returns the weights ``alpha``.

TorchJD is imported where it is used, after :func:`require_packages`: importing it imports its
solver backends (cvxpy, ECOS), and without them ``import hcal`` would fail instead of the one
method that needs them stopping with a one-line error.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ._base import GradientWeighting, SharedTrunk

__all__ = ["JacobianAggregation", "require_packages"]


def require_packages(name: str, packages: Sequence[str], install: str) -> None:
    """Raise a one-line :class:`ConfigError` if any of ``packages`` cannot be imported."""
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        listed = ", ".join(repr(p) for p in missing)
        raise ConfigError(
            f"{name}: its optimisation backend is missing (Python package{'s' if len(missing) > 1 else ''} "
            f"{listed} not installed); install it with: {install}"
        )


class JacobianAggregation(GradientWeighting):
    """Shared parameters get ``aggregator(J)``; each level's head gets its own gradient.

    Subclasses set :attr:`aggregator` (a TorchJD ``Aggregator`` that weights the rows of ``J``)
    and may override :meth:`scale_losses` (IMTL-L's learnable loss scales).
    """

    aggregator: nn.Module

    def scale_losses(self, losses: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The losses whose Jacobian is aggregated, and each one's factor on its raw level loss."""
        return losses, torch.ones(self.num_levels, device=losses[0].device)

    def combine(self, losses: list[torch.Tensor], trunk: SharedTrunk) -> torch.Tensor:
        from torchjd.autojac import jac_to_grad, mtl_backward  # deferred: see the module docstring

        scaled, factors = self.scale_losses(losses)
        mtl_backward(scaled, features=trunk.features, shared_params=trunk.parameters)
        weights = jac_to_grad(trunk.parameters, self.aggregator)
        return weights.to(factors.dtype) * factors.detach()
