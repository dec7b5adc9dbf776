"""Loss weightings: how the per-level losses of a step become one scalar.

Registered by name in :data:`WEIGHTINGS`; build one with :func:`create_weighting`.
"""

from __future__ import annotations

from ._base import WEIGHTINGS, Weighting
from .awa import AdaptiveWeightAdjustment
from .equal import EqualWeighting

__all__ = [
    "WEIGHTINGS",
    "Weighting",
    "AdaptiveWeightAdjustment",
    "EqualWeighting",
    "create_weighting",
    "list_weightings",
]


def create_weighting(name: str, num_levels: int, **kwargs) -> Weighting:
    return WEIGHTINGS.create(name, num_levels, **kwargs)


def list_weightings() -> list[str]:
    return WEIGHTINGS.names()
