"""Every registered plug-in, tested through its registry: a new one is covered automatically."""

import pytest
import torch

from hcal.backbones import BACKBONES, create_backbone
from hcal.config import Config
from hcal.datasets import DATASETS
from hcal.datasets.synthetic import make_synthetic
from hcal.errors import ConfigError
from hcal.inputs import InputSpec
from hcal.methods import METHODS, create_method
from hcal.registry import Registry
from hcal.weighting import WEIGHTINGS, create_weighting

SPECS = {"image": InputSpec(kind="image", channels=3, size=32, mean=(0.5,) * 3, std=(0.25,) * 3),
         "vector": InputSpec(kind="vector", dim=12)}


def _example(spec: InputSpec, n: int = 4) -> torch.Tensor:
    return torch.randn(n, spec.channels, spec.size, spec.size) if spec.kind == "image" else torch.randn(n, spec.dim)


@pytest.mark.parametrize("name", BACKBONES.names())
def test_backbone_builds_and_runs(name):
    kinds = BACKBONES.get(name).extra["inputs"]
    spec = SPECS[kinds[0]]
    model = create_backbone(name, spec)
    out = model(_example(spec))
    assert out.shape == (4, model.out_features)
    other = "vector" if kinds[0] == "image" else "image"
    if other not in kinds:
        with pytest.raises(ConfigError, match=f"backbone '{name}' takes"):
            create_backbone(name, SPECS[other])


@pytest.mark.parametrize("name", BACKBONES.names())
def test_backbone_takes_grey_images_where_it_takes_images(name):
    if "image" not in BACKBONES.get(name).extra["inputs"]:
        pytest.skip(f"{name} takes no images")
    spec = InputSpec(kind="image", channels=1, size=28)
    assert create_backbone(name, spec)(torch.randn(2, 1, 28, 28)).ndim == 2


@pytest.mark.parametrize("name", METHODS.names())
def test_method_learns_on_synthetic(name):
    """A few SGD steps on a fixed batch lower the weighted loss; predictions have one logit per class."""
    torch.manual_seed(0)
    h, x, y, _, _ = make_synthetic(train_size=256)
    spec = InputSpec(kind="vector", dim=x.shape[1])
    config = Config(method=name, dataset="synthetic", backbone="mlp")
    method = create_method(name, h, lambda: create_backbone("mlp", spec), config)
    weighting = create_weighting(*method.weighting_spec(config)[:1], h.num_levels, **method.weighting_spec(config)[1])
    optimizer = torch.optim.SGD(method.param_groups(config), lr=0.01, momentum=0.9)

    def loss():
        return weighting(method.level_losses(x, y))[0]

    method.eval()
    with torch.no_grad():
        before = float(method.level_losses(x, y).sum())
    method.train()
    for _ in range(30):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    method.eval()
    with torch.no_grad():
        after = float(method.level_losses(x, y).sum())
        logits = method(x)
    assert after < 0.7 * before, (before, after)
    assert [z.shape for z in logits] == [(x.shape[0], n) for n in h.sizes]


@pytest.mark.parametrize("name", WEIGHTINGS.names())
def test_weighting_combines_level_losses(name):
    w = create_weighting(name, 3)
    losses = torch.tensor([0.5, 1.0, 2.0], requires_grad=True)
    total, weights = w(losses)
    assert total.ndim == 0 and weights.shape == (3,) and bool((weights >= 0).all())
    total.backward()
    assert bool((losses.grad > 0).all())  # every level is trained


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_is_described(name):
    entry = DATASETS.get(name)
    assert len(entry.description) > 10


def test_registry_basics():
    reg = Registry("widget")

    @reg.register("b", description="the b widget")
    def b():
        return "built b"

    @reg.register("a", description="the a widget", reference="somebody 2020", colour="red")
    def a():
        return "built a"

    assert reg.names() == ["a", "b"] and "a" in reg and len(reg) == 2
    assert reg.create("b") == "built b" and reg.get("a").extra == {"colour": "red"}
    with pytest.raises(ConfigError, match="unknown widget 'c'; choose one of: a, b"):
        reg.get("c")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", description="again")(a)
