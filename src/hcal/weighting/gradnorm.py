"""GradNorm (Chen, Badrinarayanan, Lee, Rabinovich, ICML 2018).

Learnable level weights ``w`` (initialised to 1). Each step, with ``W`` the last shared layer's
weights, ``G_k = || d(w_k L_k) / dW || = w_k ||dL_k/dW||``, ``Gbar`` their mean, the relative
inverse training rates ``r_k = Ltilde_k / mean(Ltilde)`` with ``Ltilde_k = L_k / L_k(0)`` (``L(0)``:
the first step's losses, kept in a buffer), and ``alpha`` the asymmetry (1.5 by default, ``--gradnorm-alpha``)::

    L_grad = sum_k | G_k - stop_grad(Gbar * r_k ** alpha) |

The model's parameters get the gradient of ``sum_k w_k L_k`` (weights held constant); ``w`` gets
only the gradient of ``L_grad`` and is updated by the optimiser with the model. Before each use
``w`` is renormalised to sum to ``m`` (and floored at 1e-3, so a weight cannot turn negative).

It needs per-level gradient norms, so it is a :class:`GradientWeighting`: the engine hands it the
method's shared trunk and lets it fill the gradients.
"""

from __future__ import annotations

import torch
from torch import nn

from ._base import WEIGHTINGS, GradientWeighting, SharedTrunk

__all__ = ["GradNorm"]

WEIGHT_FLOOR = 1e-3


@WEIGHTINGS.register(
    "gradnorm",
    description="learnable weights that equalise the levels' gradient norms at the last shared layer (alpha 1.5)",
    reference="Chen, Badrinarayanan, Lee, Rabinovich: GradNorm: Gradient Normalization for Adaptive Loss Balancing "
    "in Deep Multitask Networks, ICML 2018",
    options={"alpha": "gradnorm_alpha"},
)
class GradNorm(GradientWeighting):
    def __init__(self, num_levels: int, alpha: float = 1.5) -> None:
        super().__init__(num_levels)
        if not alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)
        self.level_weights = nn.Parameter(torch.ones(num_levels))
        self.register_buffer("initial_losses", torch.zeros(num_levels))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def combine(self, losses: list[torch.Tensor], trunk: SharedTrunk) -> torch.Tensor:
        if not trunk.last_layer:
            raise ValueError("trunk.last_layer must hold the last shared layer's weights, got none")
        w = self.level_weights
        with torch.no_grad():
            w.clamp_(min=WEIGHT_FLOOR).mul_(self.num_levels / w.sum())
        stacked = torch.stack([loss.detach() for loss in losses])
        if not bool(self.initialised):
            self.initial_losses.copy_(stacked)
            self.initialised.fill_(True)
        norms = torch.stack([
            torch.cat([g.flatten() for g in torch.autograd.grad(loss, trunk.last_layer, retain_graph=True)]).norm()
            for loss in losses
        ])
        grad_norms = w * norms  # || d(w_k L_k)/dW ||, differentiable in w only
        ratios = stacked / self.initial_losses.clamp(min=1e-12)
        target = (grad_norms.mean() * (ratios / ratios.mean()) ** self.alpha).detach()
        (w_grad,) = torch.autograd.grad((grad_norms - target).abs().sum(), w)
        (w.detach() * torch.stack(losses)).sum().backward()
        w.grad = w_grad if w.grad is None else w.grad + w_grad
        return w.detach().clone()
