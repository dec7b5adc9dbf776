"""CMT: cross-level distribution matching and soft co-annotation (after Kollias, Sharmanska, Zafeiriou, AAAI 2024).

Kollias et al. let related classification tasks teach each other through their known relation:
one task's predictions imply a distribution over the other's classes, which is matched to that
task's own predictions (distribution matching), and soft labels for one task are derived from the
other (soft co-annotation). In a class tree the relation is exact: the coarse posterior implied by
the fine head is the sum of the fine probabilities over each coarse class's children.

Architecture: hard parameter sharing, as ``ew`` (a shared backbone, a linear head per level).
With ``p_k = softmax(z_k)`` the heads' distributions and, for each parent-child pair of levels
(fine k, coarse k+1), ``parent(j)`` the parent of fine class j:

* implied coarse posterior ``q(c) = sum_{j: parent(j) = c} p_k(j)`` (computed in log space);
* coarse -> fine soft labels ``r(j) = p_{k+1}(parent(j)) p_k(j) / q(parent(j))``: the coarse
  head's posterior shared among each class's children in the fine head's proportions;
* distribution matching ``DM_{k+1} = 1/2 [KL(q || p_{k+1}) + KL(p_{k+1} || q)]``, gradients into
  both heads;
* soft co-annotation, the neighbour's prediction as a fixed soft label:
  ``SCA_{k+1} += KL(sg(q) || p_{k+1})`` (the fine head annotates the coarse level) and
  ``SCA_k += KL(sg(r) || p_k)`` (the coarse head annotates the fine level); ``sg``: stop-gradient.

Level loss: ``L_k = CE(z_k, y_k) + lambda_dm DM_k + lambda_sca SCA_k`` (terms that do not exist
for a level are 0), with ``lambda_dm = 1`` and ``lambda_sca = 0.5`` by default (``--cmt-lambda-dm``,
``--cmt-lambda-sca``), our choice (not tuned; the adaptation to hierarchies is ours). Every sample
has every level's label here, so co-annotation
from ground truth would add nothing (the coarse label is the fine label's parent): the soft labels
come from the other head's predictions. Levels are combined with equal weights; prediction uses
the heads' logits, like ``ew``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import Config
from ..hierarchy import Hierarchy
from ._base import METHODS, BackboneFactory
from ._classifier import PerLevelClassifier, cross_entropies

__all__ = ["CMT", "implied_coarse_log_probs", "kl_div"]


def implied_coarse_log_probs(fine_log_probs: torch.Tensor, parent: torch.Tensor, num_coarse: int) -> torch.Tensor:
    """``log q`` with ``q(c) = sum_{j: parent[j] = c} p(j)``: a log-sum-exp over each class's children,
    ``(n, C_coarse)``."""
    n = fine_log_probs.shape[0]
    index = parent.unsqueeze(0).expand(n, -1)
    peak = torch.full((n, num_coarse), float("-inf"), device=fine_log_probs.device, dtype=fine_log_probs.dtype)
    peak = peak.scatter_reduce(1, index, fine_log_probs.detach(), reduce="amax", include_self=True)
    shifted = torch.exp(fine_log_probs - peak.gather(1, index))
    sums = torch.zeros_like(peak).index_add(1, parent, shifted)
    return peak + torch.log(sums)


def kl_div(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``KL(p || q) = sum p (log p - log q)``, from log-probabilities."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()


class CMT(PerLevelClassifier):
    def __init__(self, hierarchy: Hierarchy, backbone: BackboneFactory, lambda_dm: float = 1.0,
                 lambda_sca: float = 0.5) -> None:
        super().__init__(hierarchy)
        if lambda_dm < 0 or lambda_sca < 0:
            raise ValueError(f"lambda_dm and lambda_sca must be >= 0, got {lambda_dm} and {lambda_sca}")
        self.lambda_dm, self.lambda_sca = float(lambda_dm), float(lambda_sca)
        self.backbone = backbone()
        self.heads = nn.ModuleList(nn.Linear(self.backbone.out_features, n) for n in hierarchy.sizes)
        for k in range(hierarchy.num_levels - 1):
            self.register_buffer(f"parent_{k}", hierarchy.parent_tensor(k), persistent=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.backbone(x)
        return [head(features) for head in self.heads]

    def regularisers(self, logits: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(DM, SCA)``: per level (finest first) the distribution-matching and co-annotation terms, ``(m,)`` each."""
        log_p = [torch.log_softmax(z, dim=1) for z in logits]
        zero = logits[0].new_zeros(())
        dm, sca = [zero] * self.num_levels, [zero] * self.num_levels
        for k in range(self.num_levels - 1):
            parent = getattr(self, f"parent_{k}")
            fine, coarse = log_p[k], log_p[k + 1]
            log_q = implied_coarse_log_probs(fine, parent, coarse.shape[1])
            dm[k + 1] = dm[k + 1] + 0.5 * (kl_div(log_q, coarse) + kl_div(coarse, log_q))
            log_r = coarse[:, parent] + fine - log_q[:, parent]
            sca[k + 1] = sca[k + 1] + kl_div(log_q.detach(), coarse)
            sca[k] = sca[k] + kl_div(log_r.detach(), fine)
        return torch.stack(dm), torch.stack(sca)

    def losses_from_logits(self, logits: list[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        dm, sca = self.regularisers(logits)
        return torch.stack(cross_entropies(logits, y)) + self.lambda_dm * dm + self.lambda_sca * sca


@METHODS.register(
    "cmt",
    description="hard sharing + cross-level distribution matching and soft co-annotation (fine head's implied "
    "coarse posterior vs coarse head)",
    reference="Kollias, Sharmanska, Zafeiriou: Distribution Matching for Multi-Task Learning of Classification "
    "Tasks, AAAI 2024",
    options=("cmt_lambda_dm", "cmt_lambda_sca"),
)
def build_cmt(hierarchy: Hierarchy, backbone: BackboneFactory, config: Config) -> CMT:
    return CMT(hierarchy, backbone, lambda_dm=config.cmt_lambda_dm, lambda_sca=config.cmt_lambda_sca)
