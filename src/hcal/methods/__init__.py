"""Hierarchical classification methods, registered by name in :data:`METHODS`.

A method factory takes ``(hierarchy, backbone_factory, config)`` and returns a
:class:`HierarchicalMethod`. ``backbone_factory()`` builds a fresh backbone each call, so a
method may own several (one per level when multi-task learning is off).

Besides ``hcal``: the baselines of the paper's Table 1 and common multi-task weightings, each
predicting one class per level with a per-level head trained with cross-entropy
(:mod:`~hcal.methods.hard_sharing`: ``ew``, ``uw``, ``dwa``, ``gradnorm``, ``cagrad``, ``imtl``,
``nashmtl``; :mod:`~hcal.methods.single`; :mod:`~hcal.methods.mmoe`; :mod:`~hcal.methods.dmt`;
:mod:`~hcal.methods.cmt`).
"""

from __future__ import annotations

from ..config import Config
from ..hierarchy import Hierarchy
from . import cmt, dmt, hard_sharing, hcal, mmoe, single  # noqa: F401  (registration)
from ._base import METHODS, BackboneFactory, Encoder, HierarchicalMethod
from ._classifier import PerLevelClassifier
from .cmt import CMT
from .dmt import DMT
from .hard_sharing import HardSharing
from .hcal import HCAL
from .mmoe import MMoE
from .single import SingleTask

__all__ = [
    "METHODS",
    "HierarchicalMethod",
    "PerLevelClassifier",
    "Encoder",
    "HCAL",
    "HardSharing",
    "SingleTask",
    "MMoE",
    "DMT",
    "CMT",
    "create_method",
]


def create_method(name: str, hierarchy: Hierarchy, backbone: BackboneFactory, config: Config) -> HierarchicalMethod:
    return METHODS.create(name, hierarchy, backbone, config)

