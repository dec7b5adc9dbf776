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


@pytest.mark.parametrize("name, key, value, expected", [
    ("synthetic", "levels", 4, 4),
    ("synthetic", "levels", "4", 4),
    ("synthetic", "levels", 4.0, 4),
    ("synthetic", "noise", 1, 1.0),
    ("synthetic", "noise", "1e-3", 0.001),
    ("folder", "verify", True, True),
    ("folder", "hierarchy", 12, "12"),
])
def test_dataset_options_take_values_of_their_type(name, key, value, expected):
    assert check_dataset_args(name, {key: value}) == {key: expected}


@pytest.mark.parametrize("name, key, value, wanted", [
    ("synthetic", "levels", 2.5, "an integer"),  # never truncated
    ("synthetic", "levels", True, "an integer"),
    ("synthetic", "noise", "nan", "a finite number"),
    ("synthetic", "noise", False, "a finite number"),
    ("folder", "verify", "maybe", "true or false"),  # a string is no switch
    ("folder", "verify", 1, "true or false"),
    ("folder", "hierarchy", ["a"], "a str"),
])
def test_dataset_options_refuse_other_values(name, key, value, wanted):
    with pytest.raises(ConfigError, match=f"option '{key}': expected {wanted}, got"):
        check_dataset_args(name, {key: value})
