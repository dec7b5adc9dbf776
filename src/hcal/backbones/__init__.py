"""Feature extractors, registered by name in :data:`BACKBONES`.

A backbone factory takes the dataset's :class:`~hcal.inputs.InputSpec` and an optional
``pretrained`` source and returns an ``nn.Module`` mapping a batch to ``(n, out_features)``.
"""

from __future__ import annotations

from torch import nn

from ..inputs import InputSpec
from . import mlp, resnet, small_cnn  # noqa: F401  (registration)
from ._base import BACKBONES

__all__ = ["BACKBONES", "create_backbone"]


def create_backbone(name: str, spec: InputSpec, pretrained: str | None = None) -> nn.Module:
    model = BACKBONES.create(name, spec, pretrained)
    if not isinstance(getattr(model, "out_features", None), int):
        raise TypeError(f"backbone {name!r} must set an integer 'out_features'")
    return model

