"""The Lightning data module: loaders over a :class:`~hcal.datasets.DataBundle`."""

from __future__ import annotations

import copy
import dataclasses
from typing import Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler

from ..augment import PadCropFlip
from ..datasets import DataBundle, TensorDataset

__all__ = ["HierarchicalDataModule", "EpochSeededSampler"]

EVAL_BATCH_SIZE = 256


class EpochSeededSampler(Sampler[int]):
    """A random order that depends only on ``(seed, epoch)``: reproducible, and restorable on resume.

    Lightning calls :meth:`set_epoch` at the start of every training epoch.
    """

    def __init__(self, length: int, seed: int) -> None:
        self.length, self.seed, self.epoch = length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.length, generator=g).tolist())

    def __len__(self) -> int:
        return self.length


def split_batch_augmentation(bundle: DataBundle) -> tuple[DataBundle, "torch.nn.Module | None"]:
    """Move the training split's per-image augmentation to the batch, where it can be.

    Returns the bundle with an un-augmented training split and the batch-wise module
    (:class:`~hcal.augment.BatchPadCropFlip`), or the bundle unchanged and ``None`` when its
    augmentation has no batch form (e.g. random resized crops of images read from files).
    """
    train = bundle.train
    if not (isinstance(train, TensorDataset) and isinstance(train.transform, PadCropFlip)):
        return bundle, None
    plain = copy.copy(train)
    plain.transform = None
    return dataclasses.replace(bundle, train=plain), train.transform.batched()


class HierarchicalDataModule(L.LightningDataModule):
    def __init__(self, bundle: DataBundle, batch_size: int, num_workers: int = 0, seed: int = 0) -> None:
        super().__init__()
        self.bundle, self.batch_size, self.num_workers, self.seed = bundle, batch_size, num_workers, seed

    def _loader(self, dataset, batch_size: int, sampler=None, drop_last: bool = False) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            shuffle=False,
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        train = self.bundle.train
        # Dropping a last partial batch keeps batch norm away from a batch of one sample.
        return self._loader(
            train, self.batch_size, EpochSeededSampler(len(train), self.seed), drop_last=len(train) > self.batch_size
        )

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.bundle.val, max(self.batch_size, EVAL_BATCH_SIZE))

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.bundle.test, max(self.batch_size, EVAL_BATCH_SIZE))
