"""HCAL (Jiang, Liu, Liu, Yu, CIKM 2025): per-level learnable prototypes on a shared embedding.

* an :class:`~hcal.methods._base.Encoder` gives one unit-norm embedding ``f`` per sample, shared by
  every level (``mtl=False``: an independent encoder per level, the paper's "MTL off");
* each level k has learnable prototypes ``P_k`` (``C_k x d``, drawn from ``N(0, proto_init_std^2)``
  as in the authors' code, L2-normalised when used);
* training loss per level (:meth:`HCAL.level_losses`, plain autograd through the concept modules):
  :func:`~hcal.prototype_loss.prototype_infonce` against the level's prototypes, perturbed by
  :func:`~hcal.perturbation.perturb_prototypes`; at coarse levels on the batch's class means
  (:func:`~hcal.aggregation.class_means`) when FA is on;
* hcal's own, off by default: ``path_weight`` w mixes each level's loss with the loss of the path
  distribution that consistent decoding reads, ``(1 - w) * InfoNCE_k + w * L_k`` (:mod:`hcal.path_loss`);
* hcal's own, off by default: ``ce_weight`` w adds a linear cross-entropy head per level on the
  encoder's projection (before normalisation): each level's loss ``(1 - w) * InfoNCE_k + w * CE_k``,
  its scores ``(1 - w) * log softmax(cos / tau) + w * log softmax(linear)`` (both decodings read them);
* hcal's own, off by default: ``projection="none"`` drops the encoder's linear projection, so the
  prototypes live in the backbone's feature space (``embed_dim`` is then the backbone's width);
* the level losses are combined by AWA (:mod:`hcal.weighting.awa`) or fixed weights ``1/m``;
* prediction: the nearest prototype per level (cosine) from each sample's own embedding,
  logits ``cos / tau``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import aggregation, path_loss, perturbation, prototype_loss
from ..config import Config
from ..hierarchy import Hierarchy
from ._base import METHODS, BackboneFactory, Encoder, Gather, HierarchicalMethod

__all__ = ["HCAL"]


class HCAL(HierarchicalMethod):
    gathers_batch = True  # FA's class means over the global batch under DDP

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
        proto_init_std: float = 0.01,
        fa_mode: str = "means",
        path_weight: float = 0.0,
        ce_weight: float = 0.0,
        projection: str = "linear",
    ) -> None:
        super().__init__(hierarchy)
        if fa_mode not in ("means", "means+samples"):
            raise ValueError(f"fa_mode must be 'means' or 'means+samples', got {fa_mode!r}")
        if not 0.0 <= path_weight <= 1.0:
            raise ValueError(f"path_weight must be in [0, 1], got {path_weight!r}")
        if not 0.0 <= ce_weight <= 1.0:
            raise ValueError(f"ce_weight must be in [0, 1], got {ce_weight!r}")
        self.tau, self.fa, self.mtl, self.fa_mode, self.path_weight = tau, fa, mtl, fa_mode, path_weight
        self.ce_weight = ce_weight
        self.epsilon = epsilon if pp else 0.0
        self.encoders = nn.ModuleList(
            Encoder(backbone(), embed_dim, projection) for _ in range(1 if mtl else hierarchy.num_levels)
        )
        embed_dim = self.encoders[0].embed_dim  # the backbone's out_features without a projection
        self.prototypes = nn.ParameterList(
            nn.Parameter(torch.randn(n, embed_dim) * proto_init_std) for n in hierarchy.sizes
        )
        self.register_buffer("leaf_paths", hierarchy.leaf_paths(), persistent=False)  # for the path term
        # hcal's own cross-entropy heads, only with ce_weight > 0 (the paper's model has no extra parameters)
        self.ce_heads = nn.ModuleList(nn.Linear(embed_dim, n) for n in hierarchy.sizes) if ce_weight else None

    def embed(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per level (finest first) the ``(n, d)`` unit-norm embeddings; one shared tensor when ``mtl``."""
        return self._unit(self.project(x))

    def project(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per level the encoder's ``(n, d)`` projection before normalisation (shared when ``mtl``)."""
        if self.mtl:
            return [self.encoders[0].project(x)] * self.num_levels
        return [enc.project(x) for enc in self.encoders]

    def _unit(self, raw: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.mtl:  # one normalisation of the shared projection
            return [F.normalize(raw[0], dim=1)] * self.num_levels
        return [F.normalize(r, dim=1) for r in raw]

    def level_prototypes(self, epsilon: float = 0.0) -> list[torch.Tensor]:
        """Every level's unit-norm prototypes, perturbed with half-width ``epsilon`` (PP; ``0``: none).

        All levels are normalised (and perturbed) in one pass, then split per level."""
        unit = perturbation.perturb_prototypes(torch.cat(list(self.prototypes)), epsilon)
        return list(unit.split(self.hierarchy.sizes))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        protos = self.level_prototypes()
        raw = self.project(x)
        embeds = self._unit(raw)
        if self.mtl:  # one similarity matrix against every level's prototypes, split per level
            logits = prototype_loss.prototype_logits(embeds[0], torch.cat(protos), self.tau)
            logits = list(logits.split(self.hierarchy.sizes, dim=1))
        else:
            logits = [prototype_loss.prototype_logits(f, p, self.tau) for f, p in zip(embeds, protos)]
        if not self.ce_weight:
            return logits
        w = self.ce_weight  # hcal's own: the two heads' log-probabilities, mixed
        return [(1 - w) * F.log_softmax(s, dim=1) + w * F.log_softmax(head(r), dim=1)
                for s, head, r in zip(logits, self.ce_heads, raw)]

    def level_losses(self, x: torch.Tensor, y: torch.Tensor, gather: Gather | None = None) -> torch.Tensor:
        """The ``(m,)`` per-level prototype losses of a batch, finest level first.

        ``gather`` (distributed training) maps a per-process tensor to the global batch's,
        keeping gradients; class means are then taken over the global batch. The concept
        functions are called through their modules (``aggregation.class_means``, ...), so
        replacing one there changes what training computes.
        """
        raw = self.project(x)
        if gather is not None:
            y = gather(y)
            raw = [gather(raw[0])] * self.num_levels if self.mtl else [gather(r) for r in raw]
        embeds = self._unit(raw)
        protos = self.level_prototypes(self.epsilon if self.training else 0.0)
        losses = []
        for k, (f, p) in enumerate(zip(embeds, protos)):
            if k == 0 or not self.fa:  # every sample is a term
                losses.append(prototype_loss.prototype_infonce(f, p, y[:, k], self.tau))
                continue
            # FA: every class of the batch is a term, the mean of its samples' embeddings
            means, classes, present = aggregation.class_means(f, y[:, k], p.shape[0])
            loss = prototype_loss.prototype_infonce(means, p, classes, self.tau, present)
            if self.fa_mode == "means+samples":  # hcal's own: prediction scores each sample, so train each too
                loss = (loss + prototype_loss.prototype_infonce(f, p, y[:, k], self.tau)) / 2
            losses.append(loss)
        losses = torch.stack(losses)
        if self.ce_weight:  # hcal's own: a linear cross-entropy head beside the prototypes
            ce = torch.stack([F.cross_entropy(head(r), y[:, k]) for k, (head, r) in enumerate(zip(self.ce_heads, raw))])
            losses = (1 - self.ce_weight) * losses + self.ce_weight * ce
        if self.path_weight:  # hcal's own: mix in the loss of the path distribution consistent decoding reads
            logits = [prototype_loss.prototype_logits(f, p, self.tau) for f, p in zip(embeds, protos)]
            paths = path_loss.path_level_nll(logits, y, self.leaf_paths)
            losses = (1 - self.path_weight) * losses + self.path_weight * paths
        return losses

    def param_groups(self, config: Config) -> list[dict]:
        groups = [{"name": "encoder", "params": list(self.encoders.parameters()), "lr": config.lr}]
        if self.ce_heads is not None:
            groups.append({"name": "ce_heads", "params": list(self.ce_heads.parameters()), "lr": config.lr})
        for k, p in enumerate(self.prototypes):
            lr = config.proto_lr * config.proto_lr_growth**k
            groups.append({"name": f"prototypes_l{k + 1}", "params": [p], "lr": lr})
        return groups

    def weighting_spec(self, config: Config) -> tuple[str, dict]:
        return ("awa", {}) if config.awa else ("equal", {"mean": True})


_HCAL_OPTIONS = (
    "embed_dim", "tau", "epsilon", "pp", "awa", "mtl", "proto_init_std", "proto_lr", "proto_lr_growth", "path_weight",
    "ce_weight", "projection",
)


@METHODS.register(
    "hcal",
    description="prototype InfoNCE per level with feature aggregation, prototype perturbation and adaptive weights",
    reference="Jiang, Liu, Liu, Yu: Hierarchy-Consistent Learning and Adaptive Loss Balancing for Hierarchical "
    "Multi-Label Classification, CIKM 2025",
    options=(*_HCAL_OPTIONS, "fa", "fa_mode"),
    weightings=("awa", "equal"),
)
def build_hcal(hierarchy: Hierarchy, backbone: BackboneFactory, config: Config) -> HCAL:
    return _build(hierarchy, backbone, config, fa=config.fa, fa_mode=config.fa_mode)


@METHODS.register(
    "hcal-ps",
    description="hcal's own: HCAL with per-sample coarse terms instead of FA's class means (recommended with "
    "--no-mtl --decode consistent: configs/recommended.yaml)",
    reference="hcal (docs/results.md), on Jiang et al., CIKM 2025",
    options=_HCAL_OPTIONS,
    weightings=("awa", "equal"),
)
def build_hcal_ps(hierarchy: Hierarchy, backbone: BackboneFactory, config: Config) -> HCAL:
    """HCAL whose coarse levels are trained on each sample's own embedding, as they are predicted
    (the training of ``hcal --no-fa``). FA's class-mean terms stop giving a gradient once a batch's
    class means are right, while single samples are still wrong; measured, they lower coarse
    accuracy (docs/results.md)."""
    return _build(hierarchy, backbone, config, fa=False)


def _build(hierarchy: Hierarchy, backbone: BackboneFactory, config: Config, **fa) -> HCAL:
    return HCAL(
        hierarchy,
        backbone,
        embed_dim=config.embed_dim,
        tau=config.tau,
        epsilon=config.epsilon,
        pp=config.pp,
        mtl=config.mtl,
        proto_init_std=config.proto_init_std,
        path_weight=config.path_weight,
        ce_weight=config.ce_weight,
        projection=config.projection,
        **fa,
    )
