"""Datasets, registered by name in :data:`DATASETS`.

A dataset factory takes ``(data_dir, *, seed, val_fraction, **dataset_args)`` and returns a
:class:`DataBundle` (train/val/test splits, the hierarchy, the input spec and a default backbone).
The validation split is carved from the training set with ``seed`` unless the dataset has its own.
"""

from __future__ import annotations

from typing import Any

from . import aircraft, cifar10, cifar100, fashion_mnist, features, folder, manifest, synthetic  # noqa: F401  (registration)
from ._base import DATASETS, DataBundle, TensorDataset, split_indices

__all__ = ["DATASETS", "DataBundle", "TensorDataset", "split_indices", "create_dataset", "list_datasets"]


def create_dataset(
    name: str, data_dir: str | None = None, *, seed: int = 0, val_fraction: float = 0.1, **args: Any
) -> DataBundle:
    return DATASETS.create(name, data_dir, seed=seed, val_fraction=val_fraction, **args)


def list_datasets() -> list[str]:
    return DATASETS.names()
