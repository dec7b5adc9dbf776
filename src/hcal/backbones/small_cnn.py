"""A small CNN for small grey or colour images (Fashion-MNIST, 28x28): CPU-friendly."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..inputs import InputSpec
from ._base import BACKBONES, check_input_kind

__all__ = ["SmallCNN"]


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class SmallCNN(nn.Module):
    """conv32-pool, conv64-pool, a 7x7 grid, then a 256-unit hidden layer (``out_features = 256``)."""

    def __init__(self, in_channels: int = 1, width: int = 32, out_features: int = 256) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(in_channels, width), _block(width, 2 * width), nn.AdaptiveAvgPool2d(7), nn.Flatten()
        )
        self.head = nn.Sequential(
            nn.Linear(2 * width * 49, out_features, bias=False), nn.BatchNorm1d(out_features), nn.ReLU(inplace=True)
        )
        self.out_features = out_features
        self.token_features = 2 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The 7x7 grid after the conv blocks as 49 spatial tokens, row-major: ``(n, 49, token_features)``."""
        return self.features[:-1](x).flatten(2).transpose(1, 2)

    def pool_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """``forward(x) == pool_tokens(forward_tokens(x))``: the hidden layer on the flattened grid."""
        return self.head(tokens.transpose(1, 2).flatten(1))


@BACKBONES.register("small-cnn", description="2-block CNN for small images such as 28x28 Fashion-MNIST",
                    inputs=("image",))
def small_cnn(spec: InputSpec, pretrained: str | None = None) -> SmallCNN:
    check_input_kind("small-cnn", spec, ("image",))
    if pretrained:
        raise ConfigError("backbone 'small-cnn' has no pretrained weights; drop --pretrained")
    return SmallCNN(spec.channels)
