"""Loss weightings: how the per-level losses of a step become one scalar.

Registered by name in :data:`WEIGHTINGS`; build one with :func:`create_weighting`.

Two kinds: a :class:`Weighting` maps the ``(m,)`` losses to the minimised scalar (equal, AWA,
uncertainty, DWA); a :class:`GradientWeighting` combines the levels' *gradients* on the shared
parameters (GradNorm, CAGrad, IMTL, Nash-MTL) and is trained by the engine's manual-optimisation
path (see :class:`~hcal.engine.HierarchicalModule`).
"""

from __future__ import annotations

from ..config import Config
from ._base import WEIGHTINGS, GradientWeighting, SharedTrunk, Weighting
from .awa import AdaptiveWeightAdjustment
from .cagrad import ConflictAverseGrad
from .dwa import DynamicWeightAverage
from .equal import EqualWeighting
from .gradnorm import GradNorm
from .imtl import ImpartialMTL
from .nash_mtl import NashMTLWeighting, NashSolverError
from .uncertainty import UncertaintyWeighting

__all__ = [
    "WEIGHTINGS",
    "Weighting",
    "GradientWeighting",
    "SharedTrunk",
    "AdaptiveWeightAdjustment",
    "ConflictAverseGrad",
    "DynamicWeightAverage",
    "EqualWeighting",
    "GradNorm",
    "ImpartialMTL",
    "NashMTLWeighting",
    "NashSolverError",
    "UncertaintyWeighting",
    "create_weighting",
    "weighting_from_config",
]


def create_weighting(name: str, num_levels: int, **kwargs) -> Weighting:
    return WEIGHTINGS.create(name, num_levels, **kwargs)


def weighting_from_config(name: str, num_levels: int, config: Config, **fixed) -> Weighting:
    """Weighting ``name`` with the options it registered read from ``config``, and ``fixed`` arguments
    (a method's :meth:`~hcal.methods.HierarchicalMethod.weighting_spec`)."""
    options = WEIGHTINGS.get(name).extra.get("options", {})
    return create_weighting(name, num_levels, **{kw: getattr(config, field) for kw, field in options.items()}, **fixed)
