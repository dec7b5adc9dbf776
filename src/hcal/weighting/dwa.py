"""Dynamic weight average, DWA (Liu, Johns, Davison, CVPR 2019, Eq. 7).

The weights of epoch t follow how fast each level's loss fell over the two previous epochs::

    r_k = Lbar_k(t-1) / Lbar_k(t-2),    lambda_k(t) = m * softmax(r / T)_k

with ``Lbar_k`` a level's mean training loss over an epoch and temperature ``T`` (2 in the paper,
``--dwa-temperature``);
the first two epochs use ``lambda = 1``. A level whose loss falls slowly gets more weight.

The state (this epoch's running sum, the last two epochs' means, the number of finished epochs) is
kept in registered buffers, so it is checkpointed and a resumed run continues with the same
weights. The engine calls :meth:`new_epoch` when an epoch starts; that closes the previous one.
Losses are accumulated only in training mode.
"""

from __future__ import annotations

import torch

from ._base import WEIGHTINGS, Weighting

__all__ = ["DynamicWeightAverage"]


@WEIGHTINGS.register(
    "dwa",
    description="weights m * softmax(r / T) of the ratios r of each level's last two epoch losses",
    reference="Liu, Johns, Davison: End-to-End Multi-Task Learning with Attention, CVPR 2019",
    options={"temperature": "dwa_temperature"},
)
class DynamicWeightAverage(Weighting):
    def __init__(self, num_levels: int, temperature: float = 2.0) -> None:
        super().__init__(num_levels)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.register_buffer("epoch_loss_sum", torch.zeros(num_levels, dtype=torch.float64))
        self.register_buffer("epoch_batches", torch.zeros((), dtype=torch.long))
        self.register_buffer("epoch_means", torch.ones(2, num_levels, dtype=torch.float64))  # rows: t-2, t-1
        self.register_buffer("epochs_done", torch.zeros((), dtype=torch.long))

    def current_weights(self) -> torch.Tensor:
        if int(self.epochs_done) < 2:
            return torch.ones(self.num_levels, device=self.epoch_means.device)
        ratios = self.epoch_means[1] / self.epoch_means[0]
        return (self.num_levels * torch.softmax(ratios / self.temperature, dim=0)).float()

    def forward(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training:
            self.epoch_loss_sum += losses.detach().to(self.epoch_loss_sum.dtype)
            self.epoch_batches += 1
        weights = self.current_weights().to(losses.dtype)
        return (weights * losses).sum(), weights

    def new_epoch(self) -> None:
        if int(self.epoch_batches) == 0:
            return
        self.epoch_means[0] = self.epoch_means[1]
        self.epoch_means[1] = self.epoch_loss_sum / self.epoch_batches
        self.epochs_done += 1
        self.epoch_loss_sum.zero_()
        self.epoch_batches.zero_()
