"""The method contract (:class:`HierarchicalMethod`), the shared encoder, and the :data:`METHODS` registry.

A method registers ``options`` (the :class:`~hcal.config.Config` fields it reads besides the ones
every method shares, such as ``lr`` or ``epochs``) and ``weightings`` (the names its
:meth:`~HierarchicalMethod.weighting_spec` may return, whose own options count as the method's).
An option no registered method of this kind reads, set away from its default, is refused before any
data is loaded (:func:`hcal.checks.check_config`).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..errors import ConfigError
from ..hierarchy import Hierarchy
from ..registry import Registry

METHODS: Registry = Registry("method")

Gather = Callable[[torch.Tensor], torch.Tensor]
"""Distributed training: a per-process tensor to the global batch's (all processes'), gradients flowing back."""


class HierarchicalMethod(nn.Module):
    """A model that predicts one class per level, and its per-level training losses.

    Subclasses implement:

    * :meth:`forward` — per-level logits ``[(n, C_1), ..., (n, C_m)]``, finest first; prediction
      decodes these (``nearest`` or ``consistent``), so every method is evaluated by one code path;
    * :meth:`level_losses` — the ``(m,)`` tensor of this batch's per-level losses; the engine's
      :class:`~hcal.weighting.Weighting` turns it into the minimised scalar;
    * :meth:`param_groups` — optimiser groups (name, params, lr);
    * :meth:`weighting_spec` — the name of the loss weighting to use, and its fixed arguments.

    ``gathers_batch``: whether, under DDP, the engine hands :meth:`level_losses` a ``gather`` so that
    the losses are those of the global batch (HCAL's class means need every process's samples);
    a method whose loss is a mean of per-sample terms needs no gathering (DDP averages gradients).

    Methods with a shared trunk (hard parameter sharing) also implement, for the weightings that
    combine per-level gradients (:class:`~hcal.weighting.GradientWeighting`: GradNorm, CAGrad,
    IMTL, Nash-MTL):

    * :meth:`losses_and_features` — the per-level losses as a list of scalars and the last shared
      representation they were computed from (every level's head reads it);
    * :meth:`shared_parameters` — the trunk's trainable parameters, those whose per-level
      gradients the weighting combines (every other parameter belongs to one level);
    * :meth:`last_shared_parameters` — the last shared layer's weights (GradNorm's ``W``).
    """

    gathers_batch: bool = False

    def __init__(self, hierarchy: Hierarchy) -> None:
        super().__init__()
        self.hierarchy = hierarchy
        self.num_levels = hierarchy.num_levels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def level_losses(self, x: torch.Tensor, y: torch.Tensor, gather: Gather | None = None) -> torch.Tensor:
        """The ``(m,)`` per-level losses of a batch, finest first; with ``gather``, of the global batch."""
        raise NotImplementedError  # pragma: no cover - abstract

    def param_groups(self, config: Config) -> list[dict]:  # pragma: no cover - abstract
        raise NotImplementedError

    def weighting_spec(self, config: Config) -> tuple[str, dict]:
        """``(name, fixed kwargs)`` of the :mod:`~hcal.weighting` that combines this method's level losses;
        the weighting's own options come from ``config`` (see :func:`hcal.weighting.weighting_from_config`)."""
        return "equal", {}

    # ------------------------------------------------------------------ shared trunk (gradient weightings)
    def losses_and_features(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``([L_1, ..., L_m], features)``: the level losses (scalars, finest first) and the shared features."""
        raise self._no_trunk()

    def shared_parameters(self) -> list[nn.Parameter]:
        """The shared trunk's trainable parameters (the backbone's, for hard parameter sharing)."""
        raise self._no_trunk()

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The weights of the trunk's last layer."""
        raise self._no_trunk()

    def _no_trunk(self) -> ConfigError:
        return ConfigError(
            f"method {type(self).__name__} has no shared trunk, so it cannot be trained with a weighting "
            "that combines per-level gradients (gradnorm, cagrad, imtl, nashmtl)"
        )


class Encoder(nn.Module):
    """backbone -> linear projection to ``d`` -> L2 normalisation: one unit-norm embedding per sample.

    ``projection="none"`` (hcal's own): no projection, the backbone's features are normalised as they
    are and ``embed_dim`` is the backbone's ``out_features`` (the argument is not used)."""

    def __init__(self, backbone: nn.Module, embed_dim: int, projection: str = "linear") -> None:
        super().__init__()
        if projection not in ("linear", "none"):
            raise ValueError(f"projection must be 'linear' or 'none', got {projection!r}")
        self.backbone = backbone
        self.embed_dim = embed_dim if projection == "linear" else backbone.out_features
        self.projection = nn.Linear(backbone.out_features, embed_dim) if projection == "linear" else nn.Identity()

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The projection before normalisation, ``(n, d)``."""
        return self.projection(self.backbone(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.project(x), dim=1)


BackboneFactory = Callable[[], nn.Module]
