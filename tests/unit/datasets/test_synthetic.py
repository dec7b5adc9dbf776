"""datasets/synthetic.py."""

import pytest
import torch

from hcal.datasets.synthetic import make_synthetic
from hcal.errors import ConfigError


def test_synthetic_is_seeded_and_hierarchical():
    h1, x1, y1, _, _ = make_synthetic(levels=4, branching=2, data_seed=5)
    h2, x2, y2, _, _ = make_synthetic(levels=4, branching=2, data_seed=5)
    assert h1 == h2 and torch.equal(x1, x2) and torch.equal(y1, y2)
    assert h1.sizes == (16, 8, 4, 2)
    assert bool(h1.is_consistent(y1).all())
    with pytest.raises(ConfigError, match="levels >= 2"):
        make_synthetic(levels=1)
