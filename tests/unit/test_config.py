"""config.py and configs/*.yaml: every YAML in configs/ is a valid hcal config whose names and dataset
options exist."""

import pytest

from hcal.backbones import BACKBONES
from hcal.config import Config, flag, load_yaml, option_field, sweepable_options
from hcal.datasets import DATASETS, create_dataset
from hcal.datasets.cifar10 import CIFAR10_PATHS
from hcal.methods import METHODS
from tests.fixtures import make_aircraft, make_cifar100, make_flat
from tests.helpers import ROOT

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def _fixture(dataset, tmp_path):
    if dataset == "cifar100":
        make_cifar100(tmp_path)
        return tmp_path
    if dataset == "fgvc-aircraft":
        return make_aircraft(tmp_path)
    if dataset == "cifar10":

        return make_flat(tmp_path / "c10", [p[-1] for p in CIFAR10_PATHS], per_class=2, size=(32, 32))
    pytest.skip(f"no fixture for dataset {dataset!r}")


def test_the_paper_configs_are_there():
    names = {p.name for p in CONFIGS}
    assert {"cifar100.yaml", "cifar10.yaml", "fgvc-aircraft.yaml", "fgvc-aircraft-2level.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads(path):
    config = Config.from_dict(load_yaml(path), source=str(path))
    assert config.dataset in DATASETS and config.method in METHODS
    assert config.backbone == "auto" or config.backbone in BACKBONES
    assert config.batch_size == 32  # the paper's


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_dataset_options_are_accepted(path, tmp_path):
    config = Config.from_dict(load_yaml(path))
    bundle = create_dataset(config.dataset, str(_fixture(config.dataset, tmp_path)), **config.dataset_args)
    assert bundle.hierarchy.num_levels == config.dataset_args.get("levels", bundle.hierarchy.num_levels)
    if path.name == "fgvc-aircraft-2level.yaml":
        assert bundle.hierarchy.num_levels == 2
    if config.dataset == "fgvc-aircraft":
        assert bundle.input_spec.size == 224 and bundle.input_spec.resize == 256


def test_sweepable_options_and_flags():
    assert sweepable_options() == ("tau", "epsilon", "gamma", "path_weight", "ce_weight")
    assert [flag("batch_size"), flag("fa", False), flag("fa", True), flag("dataset_args")] == [
        "--batch-size", "--no-fa", "--fa", "--dataset-arg"]


def test_baseline_hyper_parameters_default_to_the_papers():
    c = Config()
    assert (c.cagrad_c, c.gradnorm_alpha, c.dwa_temperature, c.nashmtl_max_norm, c.experts) == (0.4, 1.5, 2.0, 1.0, 3)
    assert (c.cmt_lambda_dm, c.cmt_lambda_sca) == (1.0, 0.5)


def test_monitor_help_names_no_refused_metric():
    assert "val/loss" not in option_field("monitor").metadata["help"]


def test_a_relative_data_dir_is_relative_to_the_config_files_folder(tmp_path, monkeypatch):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "rel.yaml").write_text("dataset: features\ndata_dir: ../data/x.npz\n")
    (tmp_path / "cfg" / "abs.yaml").write_text(f"dataset: features\ndata_dir: {tmp_path / 'y.npz'}\n")
    monkeypatch.chdir(tmp_path / "cfg")
    assert load_yaml(tmp_path / "cfg" / "rel.yaml")["data_dir"] == str(tmp_path / "data" / "x.npz")
    assert load_yaml("rel.yaml")["data_dir"] == "../data/x.npz"  # the same file, from its own folder
    assert load_yaml("abs.yaml")["data_dir"] == str(tmp_path / "y.npz")


def test_a_saved_config_holds_no_run_dir_and_an_absolute_data_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Config(dataset="features", data_dir="x.npz", run_dir="runs/a", epochs=3).save(tmp_path / "c.yaml")
    saved = load_yaml(tmp_path / "c.yaml")
    assert "run_dir" not in saved and saved["data_dir"] == str(tmp_path / "x.npz") and saved["epochs"] == 3
    assert Config.from_dict(saved) == Config(dataset="features", data_dir=str(tmp_path / "x.npz"), epochs=3)


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_path_weight_outside_the_unit_interval_is_refused(value):
    from hcal.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        Config(path_weight=value)
    assert "path_weight" in str(info.value) and str(value) in str(info.value) and "in [0, 1]" in str(info.value)
    assert Config(path_weight=1.0).path_weight == 1.0 and Config().path_weight == 0.0  # the paper: off
