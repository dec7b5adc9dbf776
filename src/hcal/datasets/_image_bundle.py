"""Image samples to a :class:`~hcal.datasets.DataBundle`: what every image dataset shares.

``folder``, ``csv``, ``cifar10`` and ``fgvc-aircraft`` each find their images and labels their own
way, describe them as :class:`ImageSamples` (names stored split after split, targets, each split's
rows, where they came from) and hand them to :func:`build_image_bundle`, which holds them one of
two ways:

* **in memory** (default for ``size <= 64``, always for archive members): every image decoded now
  into one uint8 tensor (:func:`~hcal.datasets._images.stack_images`), padded-crop + flip
  augmentation; a bad image stops the load;
* **from files**: decoded per item (:class:`~hcal.datasets._images.ImageFileDataset`), random
  resized crop + flip for training, the input spec's resize + centre crop for evaluation.

Decoded tensors are kept in :data:`DECODED`, an explicit one-entry cache of this process: an
experiment grid fits every (method, seed) on the same images and decodes them once.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..hierarchy import Hierarchy
from ..inputs import InputSpec
from ._base import SPLITS, DataBundle, TensorDataset
from ._images import (
    IN_MEMORY_MAX_SIZE,
    ImageFileDataset,
    pad_crop_flip,
    read_file_bytes,
    resized_crop_flip,
    stack_images,
)

__all__ = ["ImageSamples", "DecodeCache", "DECODED", "build_image_bundle", "check_image_options"]

MEMORY_LIMIT_BYTES = 16 * 2**30  # refuse to decode more than this into memory
MAX_SIZE = 4096  # model input side: one 4096 x 4096 RGB float image is 200 MB


@dataclass
class ImageSamples:
    """Images and their labels, stored split after split (train, [val,] test or the dataset's own order)."""

    names: list[str]  # per image: its file, or ``ARCHIVE:member`` (messages) when ``readers`` give the bytes
    targets: torch.Tensor  # (n, num_levels) class indices, finest first
    index: dict[str, torch.Tensor]  # each split's rows
    root: str  # the folder, archive or manifest they came from
    readers: list[Callable[[], bytes]] | None = None  # the encoded images, when they are not files
    boxes: torch.Tensor | None = None  # per image (left, top, right, bottom) crop, read from files only
    crop_bottom: int = 0  # rows cut from the bottom of every image, read from files only


class DecodeCache:
    """The decoded tensor of the last image set this process loaded, reused while the same set is loaded again.

    Keyed by the root (and its modification time), the image names and the input spec; one entry.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._value: torch.Tensor | None = None

    def get(self, samples: ImageSamples, spec: InputSpec, decode: Callable[[], torch.Tensor]) -> torch.Tensor:
        try:
            stamp = os.stat(samples.root).st_mtime_ns
        except OSError:
            stamp = None
        key = (samples.root, stamp, len(samples.names), hash(tuple(samples.names)), spec)
        if key != self._key:
            self._key, self._value = None, None  # free the old tensor before decoding the new one
            self._value, self._key = decode(), key
        return self._value

    def clear(self) -> None:
        self._key, self._value = None, None


DECODED = DecodeCache()


def check_image_options(name: str, size: int, channels: int) -> None:
    if not 8 <= size <= MAX_SIZE:
        raise ConfigError(f"dataset {name!r}: size={size} is too {'small' if size < 8 else 'large'}; give "
                          f"--dataset-arg size=N with 8 <= N <= {MAX_SIZE}")
    if channels not in (1, 3):
        raise ConfigError(f"dataset {name!r}: channels={channels}; use 1 (grey) or 3 (RGB)")


def _check_memory(n: int, spec: InputSpec, where: str) -> None:
    need = n * spec.channels * spec.size * spec.size
    if need > MEMORY_LIMIT_BYTES:
        raise DataError(
            f"{where}: holding {n} decoded {spec.size}x{spec.size} images in memory needs {need / 2**30:.0f} GiB; "
            "pass --dataset-arg in_memory=false (unpack an archive first) or a smaller --dataset-arg size"
        )


def build_image_bundle(
    name: str,
    samples: ImageSamples,
    hierarchy: Hierarchy,
    spec: InputSpec,
    *,
    source: str,
    in_memory: bool | None = None,
    verify: bool = False,
    ignored: int = 0,
    default_backbone: str | None = None,
    start: float | None = None,
    cache: DecodeCache | None = DECODED,
) -> DataBundle:
    """The samples as a DataBundle; ``source`` starts the log line (``"<root>, <layout>"``).

    ``in_memory=None``: in memory when ``spec.size <= 64`` or the images are archive members.
    ``cache=None`` decodes without keeping the tensor.
    """
    start = time.perf_counter() if start is None else start
    if in_memory is None:
        in_memory = samples.readers is not None or spec.size <= IN_MEMORY_MAX_SIZE
    n = len(samples.names)
    note = f"{source}, {n} images"
    if in_memory:
        if samples.boxes is not None or samples.crop_bottom:
            raise ValueError("build_image_bundle: crop boxes and crop_bottom apply to images read from files")
        _check_memory(n, spec, samples.root)
        readers = samples.readers or [functools.partial(read_file_bytes, f) for f in samples.names]

        def decode() -> torch.Tensor:
            return stack_images(zip(samples.names, readers), n, spec)[0]

        inputs = decode() if cache is None else cache.get(samples, spec, decode)
        train_tf = pad_crop_flip(spec.size)
        datasets = {s: TensorDataset(inputs, samples.targets, samples.index[s], train_tf if s == "train" else None)
                    for s in SPLITS}
        note += f", decoded into memory in {time.perf_counter() - start:.1f} s"
    else:
        if samples.readers is not None:
            raise DataError(f"{samples.root}: images in an archive are decoded into memory; "
                            "unpack it and pass the folder to use in_memory=false")
        train_tf, eval_tf = resized_crop_flip(spec.size), spec.eval_geometry()
        names = np.array(samples.names)  # one array of file names, shared by the splits

        def part(index: torch.Tensor | None, transform) -> ImageFileDataset:
            return ImageFileDataset(names, samples.targets, index, transform, spec.channels, samples.boxes,
                                    samples.crop_bottom)

        if verify:
            part(None, None).verify()
        datasets = {s: part(samples.index[s], train_tf if s == "train" else eval_tf) for s in SPLITS}
        note += f", indexed in {time.perf_counter() - start:.1f} s"
    if ignored:
        note += f", {ignored} non-image files ignored"
    if default_backbone is None:
        default_backbone = "resnet18-cifar" if spec.size <= IN_MEMORY_MAX_SIZE else "resnet18"
    return DataBundle(
        name=name,
        hierarchy=hierarchy,
        input_spec=spec,
        train=datasets["train"],
        val=datasets["val"],
        test=datasets["test"],
        default_backbone=default_backbone,
        source=note,
    )
