"""IMTL, impartial multi-task learning (Liu et al., ICLR 2021): IMTL-L loss scales + IMTL-G gradient weights.

IMTL-L: each level's loss is scaled by a learnable ``s_k`` (initialised to 0) as
``Lhat_k = exp(s_k) L_k - s_k``; ``s_k`` gets the plain gradient of ``Lhat_k`` (its optimum makes
every scaled loss equal to 1), like the level's head.

IMTL-G: the shared parameters move along ``g = sum_k alpha_k ghat_k`` (``ghat_k``: the gradient
of ``Lhat_k`` on the shared parameters) with ``sum_k alpha_k = 1`` and ``alpha`` chosen so that
``g`` has the same projection on every unit gradient ``ghat_k / ||ghat_k||``; in closed form
``alpha ∝ (Ghat)^+ d`` with ``Ghat`` the Gram matrix of the ``ghat_k`` and ``d_k = ||ghat_k||``.
Solver: TorchJD's :class:`~torchjd.aggregation.IMTLG`. The paper applies IMTL-G to the gradients
on the shared *features* to save time; here, as for CAGrad and Nash-MTL, on the shared
*parameters*. The reported weight of level k is ``alpha_k exp(s_k)``, its factor on ``dL_k``.
"""

from __future__ import annotations

import torch
from torch import nn

from ._base import WEIGHTINGS
from ._jacobian import JacobianAggregation

__all__ = ["ImpartialMTL"]


@WEIGHTINGS.register(
    "imtl",
    description="IMTL-L learnable loss scales exp(s)L - s, IMTL-G closed-form equal-projection gradient weights",
    reference="Liu et al.: Towards Impartial Multi-task Learning, ICLR 2021",
)
class ImpartialMTL(JacobianAggregation):
    def __init__(self, num_levels: int) -> None:
        super().__init__(num_levels)
        from torchjd.aggregation import IMTLG  # deferred (see _jacobian.py)

        self.log_scales = nn.Parameter(torch.zeros(num_levels))
        self.aggregator = IMTLG()

    def scale_losses(self, losses: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        # one graph per level (TorchJD backpropagates each level's loss separately, freeing its graph)
        scaled = [torch.exp(self.log_scales[k]) * loss - self.log_scales[k] for k, loss in enumerate(losses)]
        return scaled, torch.exp(self.log_scales.detach())
