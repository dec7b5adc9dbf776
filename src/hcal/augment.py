"""Training augmentation for small images, per image (data loader) or per batch (training device).

:class:`PadCropFlip` is the torchvision (v2) pipeline a dataset applies to each image: a random
crop of the zero-padded image, a horizontal flip with probability 1/2 and optionally a random
rotation (nearest neighbour, zero fill). :meth:`PadCropFlip.batched` gives
:class:`BatchPadCropFlip`, the same random operations drawn independently for every image of a
batch but applied in a few tensor operations on whatever device the batch is on, so a GPU is not
starved by per-image Python work (``--augment-on device``). Both draw crop offsets, flips and
angles from the same distributions; ``tests/unit/test_augment.py`` checks that they agree.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

__all__ = ["PadCropFlip", "BatchPadCropFlip"]


class PadCropFlip(v2.Compose):
    """Per image: ``RandomCrop(size, padding)``, ``RandomHorizontalFlip()``, optional ``RandomRotation``."""

    def __init__(self, size: int, padding: int, rotation: float = 0.0) -> None:
        steps = [v2.RandomCrop(size, padding=padding), v2.RandomHorizontalFlip()]
        if rotation:
            steps.append(v2.RandomRotation(rotation))
        super().__init__(steps)
        self.size, self.padding, self.rotation = size, padding, float(rotation)

    def batched(self) -> "BatchPadCropFlip":
        return BatchPadCropFlip(self.size, self.padding, self.rotation)


class BatchPadCropFlip(nn.Module):
    """The same augmentation for a ``(B, C, H, W)`` batch, independent draws per image, on its device."""

    def __init__(self, size: int, padding: int, rotation: float = 0.0) -> None:
        super().__init__()
        self.size, self.padding, self.rotation = size, padding, float(rotation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        p, s = self.padding, self.size
        dev = x.device
        padded = F.pad(x, (p, p, p, p)) if p else x
        # crop: a top-left corner uniform over every position, per image
        top = torch.randint(0, h + 2 * p - s + 1, (b,), device=dev)
        left = torch.randint(0, w + 2 * p - s + 1, (b,), device=dev)
        ar = torch.arange(s, device=dev)
        rows = (top[:, None] + ar)[:, None, :, None]  # (B, 1, s, 1)
        cols = (left[:, None] + ar)[:, None, None, :]  # (B, 1, 1, s)
        batch = torch.arange(b, device=dev)[:, None, None, None]
        chans = torch.arange(x.shape[1], device=dev)[None, :, None, None]
        out = padded[batch, chans, rows, cols]
        # flip with probability 1/2, per image
        flip = torch.rand(b, device=dev) < 0.5
        out = torch.where(flip[:, None, None, None], out.flip(-1), out)
        if self.rotation:
            out = self._rotate(out)
        return out

    def _rotate(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        angle = (torch.rand(b, device=x.device) * 2 - 1) * math.radians(self.rotation)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # rotation about the image centre; nearest neighbour, zeros outside (torchvision's defaults)
        theta = torch.stack([torch.stack([cos, -sin, torch.zeros_like(cos)], 1),
                             torch.stack([sin, cos, torch.zeros_like(cos)], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(x.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
        return out.round().to(x.dtype) if not x.is_floating_point() else out
