"""Image decoding shared by the image datasets, and the two ways they hold their samples.

* **In memory** (CIFAR-sized images): every image is decoded once at load, brought to the
  evaluation geometry of the :class:`~hcal.inputs.InputSpec` (resize of the shorter side, centre
  crop) and stacked into one ``(n, C, size, size)`` uint8 tensor served by
  :class:`~hcal.datasets.TensorDataset`. A bad image is found at load, before training starts.
* **From files** (:class:`ImageFileDataset`): one image is decoded per item (in the data-loader
  workers), for datasets too large to hold decoded.

Decoding uses torchvision's decoders (JPEG, PNG, WebP, GIF; pixel-identical to PIL on JPEG and
several times faster, JPEGs in batches when held in memory) and falls back to PIL for every
other format PIL reads. torchvision 0.29 marks these decoders deprecated in favour of TorchCodec;
hcal silences that warning, uses them while torchvision has them and PIL otherwise. Either
way samples are uint8 ``(C, H, W)`` tensors: scaling and normalisation happen batch-wise in the
model (``HierarchicalModule.prepare_inputs``) from the input spec's mean and std, and the
evaluation geometry is the input spec's own (``InputSpec.eval_geometry``), and ``hcal predict``
reads new images with :func:`read_image_file`, so it sees them exactly as evaluation saw the test set.

An image that cannot be read raises :class:`~hcal.errors.ImageReadError` (a
:class:`~hcal.errors.DataError`) naming the file; hcal never silently skips data.
"""

from __future__ import annotations

import io
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms import v2

from ..augment import PadCropFlip
from ..errors import ImageReadError
from ..inputs import InputSpec

__all__ = [
    "IMAGE_SUFFIXES",
    "IN_MEMORY_MAX_SIZE",
    "ImageFileDataset",
    "decode_image_bytes",
    "read_file_bytes",
    "read_image_file",
    "pad_crop_flip",
    "resized_crop_flip",
    "stack_images",
    "image_spec",
]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
IN_MEMORY_MAX_SIZE = 64  # images up to this side are decoded once at load and held in memory
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
GREY_MEAN, GREY_STD = (0.449,), (0.226,)


def _bad_image(name: str, reason: str) -> ImageReadError:
    return ImageReadError(
        f"image {name} cannot be read ({reason}); delete or replace the file (hcal stops at unreadable images)"
    )


def _torchvision_io():
    """torchvision's image decoders, or None where this torchvision has none."""
    try:
        from torchvision import io as tvio

        if hasattr(tvio, "decode_image") and hasattr(tvio, "decode_jpeg") and tvio.image._has_image_ops():
            return tvio
    except (ImportError, AttributeError):  # pragma: no cover - a torchvision without them
        pass
    return None


_TVIO = _torchvision_io()


@contextmanager
def _quiet_deprecation():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def decode_image_bytes(data: bytes, name: str, channels: int = 3) -> torch.Tensor:
    """Decode an encoded image to a ``(channels, H, W)`` uint8 tensor; ``name`` is for messages."""
    if not data:
        raise _bad_image(name, "the file is empty")
    if _TVIO is not None:
        mode = _TVIO.ImageReadMode.RGB if channels == 3 else _TVIO.ImageReadMode.GRAY
        try:
            with _quiet_deprecation():
                x = _TVIO.decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=mode)
            if x.ndim == 4:  # animated GIF: first frame
                x = x[0]
            if x.dtype == torch.uint8 and x.shape[0] == channels:
                return x
        except RuntimeError:
            pass  # a format torchvision does not decode: let PIL try (and explain)
    try:
        with Image.open(io.BytesIO(data)) as img:
            arr = np.asarray(img.convert("RGB" if channels == 3 else "L"))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as e:
        raise _bad_image(name, str(e) or type(e).__name__) from None
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def read_image_file(path: str | Path, channels: int = 3) -> torch.Tensor:
    return decode_image_bytes(read_file_bytes(path), str(path), channels)


def pad_crop_flip(size: int, padding: int | None = None, rotation: float = 0.0) -> PadCropFlip:
    """Training augmentation for small images already at ``size``: padded random crop, flip (, rotation);
    it can also run batch-wise on the training device (:mod:`hcal.augment`)."""
    return PadCropFlip(size, max(1, size // 8) if padding is None else padding, rotation)


def resized_crop_flip(size: int) -> v2.Compose:
    """Training augmentation for full-size images: random resized crop to ``size``, flip."""
    return v2.Compose([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()])


def image_spec(size: int, channels: int = 3, mean=None, std=None, resize: int | None = None) -> InputSpec:
    """An image input spec; default normalisation ImageNet's, default evaluation resize ``size * 8 / 7``
    for large images (256 for 224) and none for small ones."""
    if mean is None:
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else (GREY_MEAN, GREY_STD)
    if resize is None:
        resize = 0 if size <= IN_MEMORY_MAX_SIZE else round(size * 8 / 7)
    return InputSpec(kind="image", channels=channels, size=size, mean=mean, std=std, resize=resize)


JPEG_MAGIC = b"\xff\xd8\xff"
BATCH = 512


def _decode_batch(names: list[str], blobs: list[bytes], channels: int) -> list[torch.Tensor | ImageReadError]:
    """Decode many images; JPEGs in one batched torchvision call (several times faster per image)."""
    out: list[torch.Tensor | ImageReadError | None] = [None] * len(blobs)
    jpegs = [i for i, b in enumerate(blobs) if b[:3] == JPEG_MAGIC] if _TVIO is not None else []
    if jpegs:
        mode = _TVIO.ImageReadMode.RGB if channels == 3 else _TVIO.ImageReadMode.GRAY
        try:
            with _quiet_deprecation():
                buffers = [torch.frombuffer(bytearray(blobs[i]), dtype=torch.uint8) for i in jpegs]
                decoded = _TVIO.decode_jpeg(buffers, mode=mode)
        except RuntimeError:
            decoded = None  # at least one is bad: decode one by one below to name it
        if decoded is not None:
            for i, x in zip(jpegs, decoded):
                out[i] = x
    for i, x in enumerate(out):
        if x is None:
            try:
                out[i] = decode_image_bytes(blobs[i], names[i], channels)
            except ImageReadError as e:
                out[i] = e
    return out  # type: ignore[return-value]


def stack_images(
    sources: Iterable[tuple[str, Callable[[], bytes]]], n: int, spec: InputSpec
) -> tuple[torch.Tensor, float]:
    """Decode ``n`` images, given as ``(name, read bytes)`` pairs, into one ``(n, C, size, size)`` uint8 tensor.

    Each image is brought to the spec's evaluation geometry. Every image is tried; if any fails,
    one error names how many failed and the first of them. Returns the tensor and the seconds it took.
    """
    start = time.perf_counter()
    geometry = spec.eval_geometry()
    images: list[torch.Tensor] = []
    bad: list[str] = []

    def flush(names: list[str], blobs: list[bytes]) -> None:
        for x in _decode_batch(names, blobs, spec.channels):
            if isinstance(x, ImageReadError):
                bad.append(str(x))
                images.append(torch.zeros((spec.channels, spec.size, spec.size), dtype=torch.uint8))
            else:
                images.append(x if x.shape[-2:] == (spec.size, spec.size) else geometry(x))

    names: list[str] = []
    blobs: list[bytes] = []
    for name, read in sources:
        try:
            data = read()
        except ImageReadError as e:
            bad.append(str(e))
            data = b""
        names.append(name)
        blobs.append(data)
        if len(blobs) == BATCH:
            flush(names, blobs)
            names, blobs = [], []
    flush(names, blobs)
    if len(images) != n:
        raise RuntimeError(f"stack_images: expected {n} images, got {len(images)}")  # a bug, not bad data
    if bad:
        if len(bad) == 1:
            raise ImageReadError(bad[0])
        raise ImageReadError(f"{len(bad)} of {n} images cannot be read; the first: {bad[0]}")
    empty = torch.empty((0, spec.channels, spec.size, spec.size), dtype=torch.uint8)
    return (torch.stack(images) if images else empty), time.perf_counter() - start


def read_file_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise _bad_image(str(path), e.strerror or str(e)) from None


class ImageFileDataset(Dataset):
    """Images decoded from their files per item; ``(x, y)`` with ``x`` a uint8 ``(C, size, size)`` tensor.

    ``crop_bottom`` rows are cut from the bottom of every image (FGVC-Aircraft's copyright banner),
    then ``boxes`` (optional, ``(n, 4)`` ints left, top, right, bottom, 0-based, right/bottom
    exclusive, clipped to the image) crops each one, before the transform. File names are kept in one
    numpy array, so forked data-loader workers share them instead of copying Python strings.
    """

    def __init__(
        self,
        files: Sequence[str],
        targets: torch.Tensor,
        indices: torch.Tensor | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        channels: int = 3,
        boxes: torch.Tensor | None = None,
        crop_bottom: int = 0,
    ) -> None:
        if len(files) != targets.shape[0]:
            raise ValueError(f"{len(files)} files but {targets.shape[0]} targets")
        self.files = files if isinstance(files, np.ndarray) else np.array([str(f) for f in files])
        self.targets, self.transform, self.channels, self.boxes = targets, transform, channels, boxes
        self.crop_bottom = crop_bottom
        self.indices = torch.arange(len(files)) if indices is None else indices

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def load(self, j: int) -> torch.Tensor:
        """Sample ``j`` decoded and cropped, before the transform."""
        path = str(self.files[j])
        x = read_image_file(path, self.channels)
        if self.crop_bottom:
            if x.shape[-2] <= self.crop_bottom:
                raise ImageReadError(
                    f"image {path} is {x.shape[-2]} pixels high, no more than the {self.crop_bottom}-pixel banner "
                    "cut from its bottom; replace the file"
                )
            x = x[:, : x.shape[-2] - self.crop_bottom]
        if self.boxes is not None:
            left, top, right, bottom = (int(v) for v in self.boxes[j])
            h, w = x.shape[-2:]
            right, bottom = min(right, w), min(bottom, h)
            if right - left < 1 or bottom - top < 1:
                raise ImageReadError(
                    f"image {path} is {w}x{h} pixels, too small for its crop box ({left}, {top}, {right}, {bottom}); "
                    "replace the file or fix its box"
                )
            x = x[:, top:bottom, left:right]
        return x

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = int(self.indices[i])
        x = self.load(j)
        if self.transform is not None:
            x = self.transform(x)
        return x, self.targets[j]

    def verify(self) -> None:
        """Decode every image once (``--dataset-arg verify=true``): all bad files reported up front."""
        bad = []
        for j in range(len(self.files)):
            try:
                self.load(j)
            except ImageReadError as e:
                bad.append(str(e))
        if len(bad) == 1:
            raise ImageReadError(bad[0])
        if bad:
            raise ImageReadError(f"{len(bad)} of {len(self.files)} images cannot be read; the first: {bad[0]}")
