"""datasets/_base.py and create_dataset: seeded splits, options declared with the registry."""

import inspect

import pytest
import torch

from hcal.datasets import DATASETS, check_dataset_args, split_indices
from hcal.datasets.synthetic import make_synthetic
from hcal.errors import ConfigError


def test_split_is_seeded_and_disjoint():
    a_train, a_val = split_indices(100, 0.1, seed=3)
    b_train, b_val = split_indices(100, 0.1, seed=3)
    c_train, c_val = split_indices(100, 0.1, seed=4)
    assert torch.equal(a_val, b_val) and not torch.equal(a_val, c_val)
    assert len(a_val) == 10 and set(a_train.tolist()).isdisjoint(a_val.tolist())
    assert sorted(a_train.tolist() + a_val.tolist()) == list(range(100))
    with pytest.raises(ConfigError, match="--val-fraction 0.1 of 3 sample"):
        split_indices(3, 0.1, 0)


@pytest.mark.parametrize("name", DATASETS.names())
def test_registered_options_are_the_factory_keywords(name):
    """What --dataset-arg accepts (the registry entry) is what the factory takes."""
    entry = DATASETS.get(name)
    params = inspect.signature(entry.obj).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):  # synthetic hands them on
        params = inspect.signature(make_synthetic).parameters
    keywords = {n for n, p in params.items() if p.default is not p.empty} - {"data_dir", "seed", "val_fraction"}
    assert set(entry.extra.get("options", {})) == keywords


def test_dataset_options_are_checked_against_the_registry():
    assert check_dataset_args("folder", {"size": "32", "verify": True}) == {"size": 32, "verify": True}
    with pytest.raises(ConfigError, match="dataset 'fashion-mnist' has no option 'size'; allowed: none"):
        check_dataset_args("fashion-mnist", {"size": 32})
