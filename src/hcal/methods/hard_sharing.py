"""Hard parameter sharing: one backbone shared by every level, one linear head per level.

The level losses are cross-entropies. The methods registered here differ only in how the levels
are balanced (:mod:`hcal.weighting`):

* ``ew`` fixed equal weights; ``uw`` uncertainty weighting; ``dwa`` dynamic weight average —
  loss weightings, trained with the engine's usual (automatic) optimisation;
* ``gradnorm``, ``cagrad``, ``imtl``, ``nashmtl`` — they combine the levels' gradients on the
  shared backbone (the heads get their own level's gradient), through the engine's
  manual-optimisation path; the shared trunk is the backbone, its output the shared features.

Hyper-parameters default to the papers': DWA T = 2 (``--dwa-temperature``), GradNorm alpha = 1.5
(``--gradnorm-alpha``), CAGrad c = 0.4 (``--cagrad-c``), Nash-MTL max_norm = 1 (``--nashmtl-max-norm``);
each weighting registers the options it reads (see its module).
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import Config
from ..hierarchy import Hierarchy
from ._base import METHODS, BackboneFactory, Gather
from ._classifier import PerLevelClassifier, cross_entropies, last_layer_weights

__all__ = ["HardSharing", "VARIANTS"]


class HardSharing(PerLevelClassifier):
    def __init__(self, hierarchy: Hierarchy, backbone: BackboneFactory, weighting: str = "equal") -> None:
        super().__init__(hierarchy)
        self.backbone = backbone()
        self.heads = nn.ModuleList(nn.Linear(self.backbone.out_features, n) for n in hierarchy.sizes)
        self.weighting_name = weighting

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.backbone(x)
        return [head(features) for head in self.heads]

    def losses_and_features(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        features = self.backbone(x)
        return cross_entropies([head(features) for head in self.heads], y), features

    def level_losses(self, x: torch.Tensor, y: torch.Tensor, gather: Gather | None = None) -> torch.Tensor:
        if gather is not None:
            return super().level_losses(x, y, gather)
        return torch.stack(self.losses_and_features(x, y)[0])

    def shared_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.backbone.parameters() if p.requires_grad]

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return last_layer_weights(self.backbone)

    def weighting_spec(self, config: Config) -> tuple[str, dict]:
        return self.weighting_name, {}


# method name -> (weighting name, description, reference)
VARIANTS: dict[str, tuple[str, str, str]] = {
    "ew": ("equal", "hard parameter sharing (shared backbone, a linear head per level), fixed equal weights",
           "Caruana: Multitask Learning, Machine Learning 28, 1997"),
    "uw": ("uncertainty", "hard sharing, levels weighted by learnable homoscedastic uncertainty",
           "Kendall, Gal, Cipolla: Multi-Task Learning Using Uncertainty to Weigh Losses, CVPR 2018"),
    "dwa": ("dwa", "hard sharing, dynamic weight average of the levels' loss descent rates (T 2)",
            "Liu, Johns, Davison: End-to-End Multi-Task Learning with Attention, CVPR 2019"),
    "gradnorm": ("gradnorm", "hard sharing, weights balancing the levels' gradient norms (alpha 1.5)",
                 "Chen, Badrinarayanan, Lee, Rabinovich: GradNorm: Gradient Normalization for Adaptive Loss "
                 "Balancing in Deep Multitask Networks, ICML 2018"),
    "cagrad": ("cagrad", "hard sharing, conflict-averse combination of the levels' shared gradients (c 0.4)",
               "Liu, Liu, Jin, Stone, Liu: Conflict-Averse Gradient Descent for Multi-task Learning, NeurIPS 2021"),
    "imtl": ("imtl", "hard sharing, IMTL-L learnable loss scales + IMTL-G closed-form gradient weights",
             "Liu et al.: Towards Impartial Multi-task Learning, ICLR 2021"),
    "nashmtl": ("nashmtl", "hard sharing, Nash bargaining combination of the levels' shared gradients",
                "Navon et al.: Multi-Task Learning as a Bargaining Game, ICML 2022"),
}


def _register(name: str, weighting: str, description: str, reference: str) -> None:
    @METHODS.register(name, description=description, reference=reference, weightings=(weighting,))
    def build(hierarchy: Hierarchy, backbone: BackboneFactory, config: Config) -> HardSharing:
        return HardSharing(hierarchy, backbone, weighting)


for _name, (_weighting, _description, _reference) in VARIANTS.items():
    _register(_name, _weighting, _description, _reference)
