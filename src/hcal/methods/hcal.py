"""HCAL (Jiang, Liu, Liu, Yu, CIKM 2025): per-level learnable prototypes on a shared embedding.

* an :class:`~hcal.methods._base.Encoder` gives one unit-norm embedding ``f`` per sample, shared by
  every level (``mtl=False``: an independent encoder per level, the paper's "MTL off");
* each level k has learnable prototypes ``P_k`` (``C_k x d``, random init, L2-normalised when used);
* training loss per level: :func:`~hcal.prototype_loss.prototype_infonce` against the level's
  (perturbed, :mod:`hcal.perturbation`) prototypes; at coarse levels on the class means of the
  batch (:mod:`hcal.aggregation`) when FA is on;
* the level losses are combined by AWA (:mod:`hcal.weighting.awa`) or fixed equal weights;
* prediction: the nearest prototype per level (cosine), logits ``cos / tau``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..hierarchy import Hierarchy
from ..perturbation import perturbation_noise
from ..prototype_loss import prototype_logits
from ._hcal_loss import hcal_level_losses
from ._base import METHODS, BackboneFactory, Encoder, HierarchicalMethod

__all__ = ["HCAL"]

Gather = Callable[[torch.Tensor], torch.Tensor]


class HCAL(HierarchicalMethod):
    gathers_batch = True  # level_losses takes ``gather`` for distributed training
    def __init__(
        self,
        hierarchy: Hierarchy,
        backbone: BackboneFactory,
        *,
        embed_dim: int = 256,
        tau: float = 0.1,
        epsilon: float = 0.01,
        fa: bool = True,
        pp: bool = True,
        mtl: bool = True,
    ) -> None:
        super().__init__(hierarchy)
        self.tau, self.fa, self.mtl = tau, fa, mtl
        self.epsilon = epsilon if pp else 0.0
        self.encoders = nn.ModuleList(
            Encoder(backbone(), embed_dim) for _ in range(1 if mtl else hierarchy.depth)
        )
        self.prototypes = nn.ParameterList(nn.Parameter(torch.randn(n, embed_dim)) for n in hierarchy.sizes)

    def embed(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per level (finest first) the ``(n, d)`` unit-norm embeddings; one shared tensor when ``mtl``."""
        if self.mtl:
            return [self.encoders[0](x)] * self.num_levels
        return [enc(x) for enc in self.encoders]

    def unit_prototypes(self) -> list[torch.Tensor]:
        """Every level's prototypes, L2-normalised, in one pass."""
        return list(F.normalize(torch.cat(list(self.prototypes)), dim=1).split(self.hierarchy.sizes))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        protos = self.unit_prototypes()
        if self.mtl:  # one similarity matrix against every level's prototypes, split per level
            return list(prototype_logits(self.embed(x)[0], torch.cat(protos), self.tau).split(self.hierarchy.sizes, dim=1))
        return [prototype_logits(f, p, self.tau) for f, p in zip(self.embed(x), protos)]

    def level_losses(self, x: torch.Tensor, y: torch.Tensor, gather: Gather | None = None) -> torch.Tensor:
        """The ``(m,)`` per-level prototype losses of a batch.

        ``gather`` (distributed training) maps a per-process tensor to the global batch's,
        keeping gradients; class means are then taken over the global batch. The losses are
        computed by one fused autograd node (:mod:`hcal.methods._hcal_loss`), the same maths as
        :mod:`hcal.prototype_loss`, :mod:`hcal.aggregation` and :mod:`hcal.perturbation`.
        """
        projections = [enc.project(x) for enc in self.encoders]  # normalised inside the fused loss
        if gather is not None:
            y = gather(y)
            projections = [gather(z) for z in projections]
        eps = self.epsilon if self.training else 0.0
        noise = None
        if eps > 0:  # one draw for every level's prototypes, as perturb_prototypes would
            p = self.prototypes[0]
            noise = perturbation_noise((sum(self.hierarchy.sizes), p.shape[1]), eps, dtype=p.dtype, device=p.device)
        return hcal_level_losses(projections, list(self.prototypes), y, tau=self.tau, fa=self.fa, noise=noise)

    def param_groups(self, config: Config) -> list[dict]:
        groups = [{"name": "encoder", "params": list(self.encoders.parameters()), "lr": config.lr}]
        for k, p in enumerate(self.prototypes):
            lr = config.proto_lr * config.proto_lr_growth**k
            groups.append({"name": f"prototypes_l{k + 1}", "params": [p], "lr": lr})
        return groups

    @staticmethod
    def weighting_spec(config: Config) -> tuple[str, dict]:
        return ("awa", {"gamma": config.gamma}) if config.awa else ("equal", {})


@METHODS.register(
    "hcal",
    description="prototype InfoNCE per level with feature aggregation, prototype perturbation and adaptive weights",
    reference="Jiang, Liu, Liu, Yu: Hierarchy-Consistent Learning and Adaptive Loss Balancing for Hierarchical Multi-Label Classification, CIKM 2025",
)
def build_hcal(hierarchy: Hierarchy, backbone: BackboneFactory, config: Config) -> HCAL:
    return HCAL(
        hierarchy,
        backbone,
        embed_dim=config.embed_dim,
        tau=config.tau,
        epsilon=config.epsilon,
        fa=config.fa,
        pp=config.pp,
        mtl=config.mtl,
    )
