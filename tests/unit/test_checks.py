"""checks.py: names, dataset options, the monitor's form and every method's options, before any data is loaded."""

import pytest

from hcal.backbones import create_backbone
from hcal.checks import check_config, check_monitor, method_options, method_weightings
from hcal.config import Config, option_fields
from hcal.errors import ConfigError
from hcal.hierarchy import Hierarchy
from hcal.inputs import InputSpec
from hcal.methods import METHODS, create_method
from tests.helpers import TOY_PATHS


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_passes_with_the_defaults_and_declares_what_it_uses(name):
    check_config(Config(method=name, dataset="synthetic"))
    fields = {f.name for f in option_fields()}
    assert method_options(name) <= fields  # every declared option is a Config field
    spec = InputSpec(kind="vector", dim=6)
    for config in (Config(method=name), Config(method=name, awa=False) if name == "hcal" else Config(method=name)):
        method = create_method(name, Hierarchy(TOY_PATHS), lambda: create_backbone("mlp", spec), config)
        assert method.weighting_spec(config)[0] in method_weightings(name)  # the weighting it trains with is declared


REFUSED = [
    ({"method": "ew", "tau": 0.2}, ["--tau: does not apply to method 'ew'", "--tau applies to hcal", "drop it"]),
    ({"method": "ew", "fa": False}, ["--no-fa: does not apply to method 'ew'"]),
    ({"method": "mmoe", "mtl": False}, ["--no-mtl", "method 'mmoe'", "--method single"]),
    ({"method": "uw", "gamma": 1.0}, ["--gamma", "applies to hcal"]),
    ({"method": "dmt", "epsilon": 0.1, "embed_dim": 8}, ["--embed-dim, --epsilon: do not apply to method 'dmt'"]),
    ({"method": "single", "proto_lr": 0.1}, ["--proto-lr"]),
    ({"method": "cmt", "proto_lr_growth": 3.0}, ["--proto-lr-growth"]),
    ({"method": "nashmtl", "proto_init_std": 1.0}, ["--proto-init-std"]),
    ({"method": "hcal", "cagrad_c": 0.3}, ["--cagrad-c", "method 'hcal'", "--cagrad-c applies to cagrad"]),
    ({"method": "ew", "gradnorm_alpha": 1.0}, ["--gradnorm-alpha applies to gradnorm"]),
    ({"method": "gradnorm", "dwa_temperature": 1.0}, ["--dwa-temperature applies to dwa"]),
    ({"method": "cagrad", "nashmtl_max_norm": 2.0}, ["--nashmtl-max-norm applies to nashmtl"]),
    ({"method": "cmt", "experts": 4}, ["--experts applies to dmt, mmoe"]),
    ({"method": "mmoe", "cmt_lambda_dm": 0.0}, ["--cmt-lambda-dm applies to cmt"]),
    ({"method": "imtl", "cmt_lambda_sca": 0.0}, ["--cmt-lambda-sca applies to cmt"]),
]
REFUSED += [
    ({"method": "hcal-ps", "fa": False}, ["--no-fa", "hcal-ps"]),  # hcal-ps has no FA to switch off
    ({"method": "hcal-ps", "fa_mode": "means+samples"}, ["--fa-mode", "hcal-ps"]),
    ({"method": "ew", "fa_mode": "means+samples"}, ["--fa-mode", "ew"]),
    ({"method": "cmt", "path_weight": 0.5}, ["--path-weight", "cmt", "applies to hcal, hcal-ps"]),
    ({"method": "single", "ce_weight": 0.5}, ["--ce-weight", "single", "applies to hcal, hcal-ps"]),
    ({"method": "ew", "projection": "none"}, ["--projection", "ew", "applies to hcal, hcal-ps"]),
    ({"method": "hcal-ps", "projection": "none", "embed_dim": 64}, ["--embed-dim 64", "--projection none"]),
    ({"method": "hcal", "awa": False, "gamma": 1.0}, ["--gamma 1.0", "AWA's option", "--no-awa"]),
]
ACCEPTED = [
    {"method": "hcal", "fa_mode": "means+samples"},
    {"method": "hcal-ps", "path_weight": 0.5},
    {"method": "hcal", "path_weight": 1.0},
    {"method": "hcal-ps", "mtl": False, "ce_weight": 0.5},
    {"method": "hcal-ps", "mtl": False, "projection": "none"},
    {"method": "hcal-ps", "tau": 0.2, "awa": False},
    {"method": "hcal-ps", "mtl": False, "gamma": 1.0},
    {"method": "hcal", "gamma": 1.0, "fa": False, "tau": 0.2, "embed_dim": 8},
    {"method": "ew", "tau": 0.1},  # the default value is no choice of the user
    {"method": "cagrad", "cagrad_c": 0.3},
    {"method": "gradnorm", "gradnorm_alpha": 0.5},
    {"method": "dwa", "dwa_temperature": 1.0},
    {"method": "nashmtl", "nashmtl_max_norm": 2.0},
    {"method": "dmt", "experts": 5},
    {"method": "mmoe", "experts": 2},
    {"method": "cmt", "cmt_lambda_dm": 0.0, "cmt_lambda_sca": 2.0},
]


@pytest.mark.parametrize("options, fragments", REFUSED)
def test_an_option_the_method_ignores_is_refused(options, fragments):
    with pytest.raises(ConfigError) as info:
        check_config(Config(dataset="synthetic", **options))
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize("options", ACCEPTED)
def test_an_option_the_method_uses_is_accepted(options):
    check_config(Config(dataset="synthetic", **options))


@pytest.mark.parametrize("options, message", [
    ({"method": "magic"}, "unknown method 'magic'; choose one of: cagrad, cmt"),
    ({"backbone": "vgg"}, "unknown backbone 'vgg'"),
    ({"dataset": "imagenet"}, "unknown dataset 'imagenet'"),
    ({"dataset": "synthetic", "dataset_args": {"colour": "red"}}, "dataset 'synthetic' has no option 'colour'"),
    ({"dataset": "synthetic", "dataset_args": {"levels": "many"}}, "option 'levels': expected an integer, got 'many'"),
    ({"monitor": "val/accuracy"}, "--monitor 'val/accuracy' is not a validation metric"),
])
def test_unknown_names_are_refused(options, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        check_config(Config(**options))


def test_monitor_form_then_its_level():
    for ok in ("val/acc_l1", "val/acc_l7", "val/hvr", "val/hvr_l2_l3", "val/hf1", "val/full_path_acc"):
        check_monitor(ok)
    for bad in ("val/accuracy", "acc_l1", "val/loss", "val/acc_lx", "test/acc_l1"):
        with pytest.raises(ConfigError, match="is not a validation metric"):
            check_monitor(bad)
    check_monitor("val/acc_l3", 3)
    with pytest.raises(ConfigError, match="choose one of: val/acc_l1, val/acc_l2, val/acc_l3, val/acc_mean"):
        check_monitor("val/acc_l4", 3)


GRADIENT_METHODS = {"cagrad", "gradnorm", "imtl", "nashmtl"}  # they combine per-level gradients on the backbone


@pytest.mark.parametrize("name", METHODS.names())
def test_a_backbone_without_parameters_refuses_only_the_gradient_methods(name):
    config = Config(method=name, dataset="features", backbone="linear")
    if name in GRADIENT_METHODS:
        with pytest.raises(ConfigError, match=f"method '{name}' combines the levels' gradients.*backbone 'linear' "
                                              "has none"):
            check_config(config)
        return
    check_config(config)
    spec = InputSpec(kind="vector", dim=6)
    method = create_method(name, Hierarchy(TOY_PATHS), lambda: create_backbone("linear", spec), config)
    assert any(p.requires_grad for p in method.parameters())  # its heads: what a parameter-free backbone leaves
