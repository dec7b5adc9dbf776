"""What a model consumes: images of a given size and channel count, or feature vectors.

A dataset describes its inputs with an :class:`InputSpec`; backbones are built for it, and it is
saved in every checkpoint so ``hcal predict`` can prepare new inputs exactly as in evaluation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from torchvision.transforms import v2

__all__ = ["InputSpec"]


@dataclass(frozen=True)
class InputSpec:
    kind: str  # "image" or "vector"
    channels: int = 0  # images: 1 (grey) or 3 (RGB)
    size: int = 0  # images: side of the square model input, in pixels
    dim: int = 0  # vectors: feature dimension
    mean: tuple[float, ...] = field(default_factory=tuple)  # images: per-channel normalisation
    std: tuple[float, ...] = field(default_factory=tuple)
    resize: int = 0  # images: evaluation resize of the shorter side before the centre crop (0: size)

    def __post_init__(self) -> None:
        if self.kind not in ("image", "vector"):
            raise ValueError(f"InputSpec.kind must be 'image' or 'vector', got {self.kind!r}")
        if self.kind == "image" and (self.channels not in (1, 3) or self.size <= 0):
            raise ValueError(f"image inputs need channels 1 or 3 and size > 0, got {self.channels}, {self.size}")
        if self.kind == "vector" and self.dim <= 0:
            raise ValueError(f"vector inputs need dim > 0, got {self.dim}")
        object.__setattr__(self, "mean", tuple(float(x) for x in self.mean))
        object.__setattr__(self, "std", tuple(float(x) for x in self.std))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "InputSpec":
        return cls(**{**d, "mean": tuple(d.get("mean", ())), "std": tuple(d.get("std", ()))})

    def describe(self) -> str:
        if self.kind == "vector":
            return f"{self.dim}-d feature vectors"
        return f"{self.size}x{self.size} {'grey' if self.channels == 1 else 'RGB'} images"

    def eval_geometry(self) -> v2.Compose:
        """The evaluation geometry of images, on uint8 ``(C, H, W)`` tensors: resize of the shorter side
        to ``resize`` (``size`` when 0), centre crop to ``size``. The test set and ``hcal predict``'s
        inputs both go through it.

        Scaling to [0, 1] and normalising with ``mean``/``std`` are the model's first step
        (``HierarchicalModule.prepare_inputs``), batch-wise on its device.
        """
        return v2.Compose([v2.Resize(self.resize or self.size, antialias=True), v2.CenterCrop(self.size)])

    def eval_transform(self) -> v2.Compose:
        """From a PIL image to the ``(channels, size, size)`` uint8 tensor a model takes at evaluation."""
        return v2.Compose([v2.ToImage(), v2.Grayscale(1) if self.channels == 1 else v2.RGB(), self.eval_geometry()])
