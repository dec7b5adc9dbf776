"""Backbones for pre-computed feature vectors (frozen-backbone features, tabular data).

``mlp``: a multi-layer perceptron. ``linear``: no hidden layer, the features standardised by a
batch norm without learned parameters, so the method's own linear map (HCAL's projection to the
embedding, a baseline's per-level heads) is the whole model: a linear probe. On sentence
embeddings (``../shared/data/dbpedia-minilm.npz``) ``linear`` is the better choice for HCAL
(docs/results.md).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..inputs import InputSpec
from ._base import BACKBONES, check_input_kind

__all__ = ["MLP"]


class MLP(nn.Module):
    """``layers`` x (Linear, BatchNorm, ReLU) of ``hidden`` units (``out_features = hidden``);
    ``layers=0``: the inputs standardised per feature (batch statistics, no learned parameters;
    ``out_features = in_features``)."""

    def __init__(self, in_features: int, hidden: int = 256, layers: int = 2) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        for i in range(layers):
            linear = nn.Linear(in_features if i == 0 else hidden, hidden, bias=False)
            mods += [linear, nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
        if layers == 0:
            mods = [nn.BatchNorm1d(in_features, affine=False)]
        self.net = nn.Sequential(*mods)
        self.out_features = hidden if layers else in_features
        self.token_features = 32 if self.out_features % 32 == 0 else self.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """A vector has no spatial layout: the output features read as tokens of 32, ``(n, T, 32)``."""
        return self(x).unflatten(1, (-1, self.token_features))

    def pool_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """``forward(x) == pool_tokens(forward_tokens(x))``: the chunks joined again."""
        return tokens.flatten(1)


@BACKBONES.register("mlp", description="2-layer MLP (256 units) for pre-computed feature vectors", inputs=("vector",))
def mlp(spec: InputSpec, pretrained: str | None = None) -> MLP:
    check_input_kind("mlp", spec, ("vector",))
    if pretrained:
        raise ConfigError("backbone 'mlp' has no pretrained weights; drop --pretrained")
    return MLP(spec.dim)


@BACKBONES.register("linear", description="no hidden layer: standardised feature vectors (a linear probe)",
                    inputs=("vector",), parameters=False)
def linear(spec: InputSpec, pretrained: str | None = None) -> MLP:
    check_input_kind("linear", spec, ("vector",))
    if pretrained:
        raise ConfigError("backbone 'linear' has no pretrained weights; drop --pretrained")
    return MLP(spec.dim, layers=0)
