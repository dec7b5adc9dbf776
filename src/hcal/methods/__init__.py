"""Hierarchical classification methods, registered by name in :data:`METHODS`.

A method factory takes ``(hierarchy, backbone_factory, config)`` and returns a
:class:`HierarchicalMethod`. ``backbone_factory()`` builds a fresh backbone each call, so a
method may own several (one per level when multi-task learning is off).
"""

from __future__ import annotations

from ..config import Config
from ..hierarchy import Hierarchy
from . import hcal  # noqa: F401  (registration)
from ._base import METHODS, BackboneFactory, Encoder, HierarchicalMethod
from .hcal import HCAL

__all__ = ["METHODS", "HierarchicalMethod", "Encoder", "HCAL", "create_method", "list_methods"]


def create_method(name: str, hierarchy: Hierarchy, backbone: BackboneFactory, config: Config) -> HierarchicalMethod:
    return METHODS.create(name, hierarchy, backbone, config)


def list_methods() -> list[str]:
    return METHODS.names()
