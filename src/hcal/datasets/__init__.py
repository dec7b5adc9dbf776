"""Datasets, registered by name in :data:`DATASETS`.

A dataset factory takes ``(data_dir, *, seed, val_fraction, **options)`` and returns a
:class:`DataBundle` (train/val/test splits, the hierarchy, the input spec and a default backbone);
``options`` are the ``--dataset-arg`` keys it registered (``options={KEY: type}``), checked by
:func:`create_dataset` before the factory runs. The validation split is carved from the training
set with ``seed`` unless the dataset has its own.

Plug-in modules (``folder.py``, ``cifar10.py``, ...) never import each other; what several of them
share lives in the private modules (``_base``, ``_labels``, ``_images``, ``_image_bundle``,
``_image_folder``).
"""

from __future__ import annotations

from typing import Any

from . import aircraft, cifar10, cifar100, fashion_mnist, features, folder, manifest, synthetic  # noqa: F401
from ._base import (
    DATASETS,
    SPLITS,
    DataBundle,
    TensorDataset,
    check_dataset_args,
    check_training_data,
    split_indices,
)
from ._images import IMAGE_SUFFIXES, read_image_file

__all__ = [
    "DATASETS",
    "SPLITS",
    "IMAGE_SUFFIXES",
    "DataBundle",
    "TensorDataset",
    "split_indices",
    "check_dataset_args",
    "check_training_data",
    "create_dataset",
    "read_image_file",
]


def create_dataset(
    name: str, data_dir: str | None = None, *, seed: int = 0, val_fraction: float = 0.1, **args: Any
) -> DataBundle:
    options = check_dataset_args(name, args)
    return DATASETS.create(name, data_dir, seed=seed, val_fraction=val_fraction, **options)
