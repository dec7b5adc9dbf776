"""DMT, deep multifaceted transformers (Gu et al., CIKM 2020), adapted to images as in the HCAL paper.

DMT encodes each of a user's behaviour sequences with a Transformer and feeds the encodings,
together with the other features, to an MMoE multi-task layer. Here the sequence is the
backbone's grid of spatial features:

1. tokens ``(n, T, C)`` from ``backbone.forward_tokens(x)`` (small CNN: its 7x7 grid, 49 tokens of
   64; ResNet-18: the last stage's grid, e.g. 4x4 tokens of 512 on 28-32 px inputs). Vector
   backbones have no spatial layout: the MLP reads its 256 output features as 8 tokens of 32, and
   a backbone without ``forward_tokens`` gives one token, its pooled output;
2. a linear map to ``d_model = 128`` plus fixed sinusoidal position codes (any ``T``);
3. one pre-norm Transformer encoder layer (4 heads, feed-forward 256, dropout 0.1), a final
   LayerNorm, and the mean over tokens;
4. that encoding, concatenated with the backbone's pooled features (DMT's "other features";
   ``backbone.pool_tokens(tokens)``, so the backbone runs once), goes to
   :class:`~hcal.methods._mixture.MultiGateMixture` (3 experts, ``--experts``, -> 128, a softmax gate and a tower
   128 -> 256 -> C_k per level).

Trained with the per-level cross-entropies, equal weights.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import Config
from ..hierarchy import Hierarchy
from ._base import METHODS, BackboneFactory
from ._classifier import PerLevelClassifier
from ._mixture import MultiGateMixture

__all__ = ["DMT", "backbone_tokens", "sinusoidal_positions"]


def backbone_tokens(backbone: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tokens (n, T, C), pooled (n, out_features))`` from one pass of the backbone.

    With ``forward_tokens``: its tokens, pooled by ``pool_tokens`` (else by a second, plain pass);
    without: the pooled output is the only token.
    """
    if hasattr(backbone, "forward_tokens"):
        tokens = backbone.forward_tokens(x)
        pooled = backbone.pool_tokens(tokens) if hasattr(backbone, "pool_tokens") else backbone(x)
        return tokens, pooled
    pooled = backbone(x)
    return pooled.unsqueeze(1), pooled


def token_width(backbone: nn.Module) -> int:
    return backbone.token_features if hasattr(backbone, "forward_tokens") else backbone.out_features


def sinusoidal_positions(length: int, dim: int, device=None, dtype=None) -> torch.Tensor:
    """``(length, dim)`` fixed position codes: sin/cos of ``pos / 10000^(2i/dim)`` (Vaswani et al.)."""
    pos = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    codes = torch.zeros(length, dim, device=device)
    codes[:, 0::2] = torch.sin(pos * freq)
    codes[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return codes.to(dtype) if dtype is not None else codes


class DMT(PerLevelClassifier):
    def __init__(self, hierarchy: Hierarchy, backbone: BackboneFactory, d_model: int = 128, heads: int = 4,
                 layers: int = 1, feedforward: int = 256, dropout: float = 0.1, experts: int = 3) -> None:
        super().__init__(hierarchy)
        self.backbone = backbone()
        self.embed = nn.Linear(token_width(self.backbone), d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, feedforward, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        in_features = d_model + self.backbone.out_features
        self.mixture = MultiGateMixture(in_features, hierarchy.sizes, experts=experts, expert_dim=128, tower_dim=256)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, d_model + out_features)``: the mean of the encoded tokens, and the pooled backbone features."""
        tokens, pooled = backbone_tokens(self.backbone, x)
        tokens = self.embed(tokens)
        tokens = tokens + sinusoidal_positions(tokens.shape[1], tokens.shape[2], tokens.device, tokens.dtype)
        return torch.cat([self.norm(self.encoder(tokens)).mean(dim=1), pooled], dim=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.mixture(self.encode(x))


@METHODS.register(
    "dmt",
    description="Transformer encoder over the backbone's spatial tokens, with its pooled features, feeding an "
    "MMoE layer",
    reference="Gu et al.: Deep Multifaceted Transformers for Multi-objective Ranking in Large-Scale E-commerce "
    "Recommender Systems, CIKM 2020",
    options=("experts",),
)
def build_dmt(hierarchy: Hierarchy, backbone: BackboneFactory, config: Config) -> DMT:
    return DMT(hierarchy, backbone, experts=config.experts)
