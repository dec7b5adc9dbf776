"""datasets/_base.py: seeded splits."""

import pytest
import torch

from hcal.datasets import split_indices
from hcal.errors import ConfigError


def test_split_is_seeded_and_disjoint():
    a_train, a_val = split_indices(100, 0.1, seed=3)
    b_train, b_val = split_indices(100, 0.1, seed=3)
    c_train, c_val = split_indices(100, 0.1, seed=4)
    assert torch.equal(a_val, b_val) and not torch.equal(a_val, c_val)
    assert len(a_val) == 10 and set(a_train.tolist()).isdisjoint(a_val.tolist())
    assert sorted(a_train.tolist() + a_val.tolist()) == list(range(100))
    with pytest.raises(ConfigError, match="val_fraction"):
        split_indices(3, 0.1, 0)
