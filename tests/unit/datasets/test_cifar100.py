"""datasets/cifar100.py: the python release read without running pickled code."""

import numpy as np
import pytest
import torch

from hcal.datasets import create_dataset
from tests.fixtures import (
    CIFAR100_COARSE,
    CIFAR100_FINE,
    make_cifar100,
)


# ---------------------------------------------------------------------------------------- CIFAR-100
@pytest.mark.parametrize("style", ["py2", "bytes"])
def test_cifar100_reads_the_release_format(tmp_path, style):
    make_cifar100(tmp_path, n_train=40, n_test=20, style=style)
    b = create_dataset("cifar100", str(tmp_path), seed=0, val_fraction=0.1)
    assert (len(b.train), len(b.val), len(b.test)) == (36, 4, 20)
    h = b.hierarchy
    assert h.classes[0] == tuple(CIFAR100_FINE[:10]) and h.classes[1] == tuple(CIFAR100_COARSE[:2])
    x, y = b.test[0]  # test sample 0 has fine label 3 (under coarse 0)
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8
    assert h.decode(y.tolist()) == ("coarse00", "fine03")
    assert h.decode(b.test[4][1].tolist()) == ("coarse01", "fine07")
    # pixels: row i of 'data' is 1024 red, 1024 green, 1024 blue values
    raw = np.random.default_rng(0).integers(0, 256, (40, 3072), dtype=np.uint8)
    assert torch.equal(b.train.inputs[5], torch.from_numpy(raw[5].reshape(3, 32, 32)))
    assert b.input_spec.mean[0] == pytest.approx(0.5071) and b.default_backbone == "resnet18-cifar"
    transforms = [type(t).__name__ for t in b.train.transform.transforms]
    assert transforms == ["RandomCrop", "RandomHorizontalFlip",
                          "RandomRotation"] and b.train.transform.transforms[0].padding == [4, 4, 4, 4]
