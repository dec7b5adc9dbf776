"""torchvision ResNet-18 with the ImageNet stem or the CIFAR stem used by the HCAL paper.

CIFAR stem: conv1 is 3x3 with stride 1 and there is no max-pool, so 32x32 inputs keep their
resolution in the first stage. The classification layer is removed (``out_features = 512``).

ImageNet weights (``pretrained="imagenet"``) come from torch hub's cache
(``$TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth``), downloaded there when online; or give a
local file path. With the CIFAR stem or a grey input, the first convolution stays randomly
initialised (its shape differs from the ImageNet one).
"""

from __future__ import annotations

import socket
from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet18_Weights
from torchvision.models.resnet import BasicBlock, ResNet

from ..errors import ConfigError
from ..inputs import InputSpec
from ._base import BACKBONES, check_input_kind

__all__ = ["ResNet18", "build_resnet18", "imagenet_weights_path"]

_WEIGHTS = ResNet18_Weights.IMAGENET1K_V1
DOWNLOAD_TIMEOUT_S = 30


def imagenet_weights_path() -> Path:
    """Where torch hub keeps (and hcal looks for) the ImageNet ResNet-18 weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(_WEIGHTS.url).name


def _load_state(pretrained: str) -> dict[str, torch.Tensor]:
    if pretrained == "imagenet":
        path = imagenet_weights_path()
        if not path.is_file():
            old = socket.getdefaulttimeout()
            socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.hub.download_url_to_file(_WEIGHTS.url, str(path), progress=False)
            except Exception as e:  # offline, proxy, disk: all end the same way
                raise ConfigError(
                    f"ImageNet weights for resnet18 are not at {path} and could not be downloaded "
                    f"({type(e).__name__}: {e}); download {_WEIGHTS.url} on a machine with internet and "
                    f"put it at {path}, or pass --pretrained /path/to/resnet18.pth"
                ) from None
            finally:
                socket.setdefaulttimeout(old)
    else:
        path = Path(pretrained)
        if not path.is_file():
            raise ConfigError(f"--pretrained: weights file {str(path)!r} does not exist (or pass 'imagenet')")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(f"--pretrained: cannot read weights file {str(path)!r}: {e}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigError(f"--pretrained: {str(path)!r} holds no state dict")
    return state


class ResNet18(ResNet):
    """torchvision's ResNet-18 (the same layers and state-dict keys) that can also return spatial tokens."""

    token_features = 512

    def __init__(self) -> None:
        super().__init__(BasicBlock, [2, 2, 2, 2])

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature grid as spatial tokens, row-major: ``(n, h * w, 512)``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.flatten(2).transpose(1, 2)

    def pool_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """``forward(x) == pool_tokens(forward_tokens(x))``: the global average pool."""
        return tokens.mean(dim=1)


def build_resnet18(spec: InputSpec, stem: str, pretrained: str | None = None) -> nn.Module:
    model = ResNet18()
    if stem == "cifar":
        model.conv1 = nn.Conv2d(spec.channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif spec.channels != 3:
        model.conv1 = nn.Conv2d(spec.channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    if pretrained:
        state = {k: v for k, v in _load_state(pretrained).items() if not k.startswith("fc.")}
        own = model.state_dict()
        skipped = {k for k, v in state.items() if k in own and own[k].shape != v.shape}
        missing, unexpected = model.load_state_dict({k: v for k, v in state.items() if k not in skipped}, strict=False)
        missing = [k for k in missing if not k.startswith("fc.") and k not in skipped]
        if missing or unexpected:
            raise ConfigError(
                f"--pretrained {pretrained!r} does not fit resnet18: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
    model.fc = nn.Identity()
    model.out_features = 512
    return model


@BACKBONES.register(
    "resnet18-cifar",
    description="torchvision ResNet-18 with the CIFAR stem (3x3 stride-1 conv1, no max-pool), as in the paper",
    reference="He et al., CVPR 2016",
    inputs=("image",),
)
def resnet18_cifar(spec: InputSpec, pretrained: str | None = None) -> nn.Module:
    check_input_kind("resnet18-cifar", spec, ("image",))
    return build_resnet18(spec, "cifar", pretrained)


@BACKBONES.register(
    "resnet18",
    description="torchvision ResNet-18 with the ImageNet stem (7x7 stride-2 conv1, max-pool); --pretrained imagenet",
    reference="He et al., CVPR 2016",
    inputs=("image",),
)
def resnet18_imagenet(spec: InputSpec, pretrained: str | None = None) -> nn.Module:
    check_input_kind("resnet18", spec, ("image",))
    return build_resnet18(spec, "imagenet", pretrained)
