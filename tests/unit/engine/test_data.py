"""engine/data.py: moving per-image augmentation to the batch."""

import torch

from hcal.augment import BatchPadCropFlip
from hcal.datasets import create_dataset
from hcal.engine.data import split_batch_augmentation
from tests.fixtures import fake_fashion_mnist


def test_fashion_mnist_augmentation_is_batchable(tmp_path):
    bundle = create_dataset("fashion-mnist", str(fake_fashion_mnist(tmp_path / "fm")))
    plain, batch = split_batch_augmentation(bundle)
    assert isinstance(batch, BatchPadCropFlip) and (batch.size, batch.padding) == (28, 2)
    assert plain.train.transform is None and bundle.train.transform is not None  # the original is untouched
    x0, _ = plain.train[0]
    assert torch.equal(x0, plain.train.inputs[plain.train.indices[0]])
