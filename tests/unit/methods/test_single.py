"""methods/single.py: independent models per level."""

import torch
from torch import nn

from hcal.methods import SingleTask


class Linear4(nn.Linear):
    out_features = 4

    def __init__(self) -> None:
        super().__init__(4, 4)


def test_single_task_models_share_nothing(toy):
    torch.manual_seed(0)
    model = SingleTask(toy, Linear4)
    assert len({id(b) for b in model.backbones}) == 3
    x, y = torch.randn(6, 4), toy.encode_many(["x", "y", "z", "w", "x", "w"])
    model.level_losses(x, y)[0].backward()  # the level-1 loss reaches only backbone 1
    grads = [float(b.weight.grad.abs().sum()) if b.weight.grad is not None else 0.0 for b in model.backbones]
    assert grads[0] > 0 and grads[1] == 0 and grads[2] == 0
