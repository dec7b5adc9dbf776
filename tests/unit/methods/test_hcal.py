"""methods/hcal.py: HCAL's losses against independent re-computations."""

import importlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hcal.config import Config
from hcal.decoding import decode
from hcal.hierarchy import Hierarchy
from hcal.methods.hcal import HCAL
from hcal.weighting import weighting_from_config
from tests.helpers import Identity, manual_infonce


def _toy_hcal(toy, **kw):
    torch.manual_seed(0)
    model = HCAL(toy, lambda: Identity(4), embed_dim=4, **kw)
    with torch.no_grad():
        model.encoders[0].projection.weight.copy_(torch.eye(4))
        model.encoders[0].projection.bias.zero_()
    return model


class Linear4(nn.Linear):
    out_features = 4

    def __init__(self) -> None:
        super().__init__(4, 4)


CONCEPTS = [
    ("hcal.aggregation", "class_means"),
    ("hcal.perturbation", "perturb_prototypes"),
    ("hcal.prototype_loss", "prototype_infonce"),
]


def _loop_level_losses(f, protos_raw, y, tau, noise):
    """HCAL's per-level losses written independently: Python loops over samples and classes,
    ``log(sum exp)`` by hand, the perturbation formula spelled out."""
    losses = []
    offset = 0
    for k, raw in enumerate(protos_raw):
        c = raw.shape[0]
        unit = raw / raw.norm(dim=1, keepdim=True)
        p = unit + noise[offset : offset + c]
        p = p / p.norm(dim=1, keepdim=True)
        offset += c
        if k == 0:
            terms = [(f[i], int(y[i, 0])) for i in range(f.shape[0])]
        else:
            classes = sorted(set(y[:, k].tolist()))
            terms = [(torch.stack([f[i] for i in range(f.shape[0]) if int(y[i, k]) == cls]).mean(0),
                      cls) for cls in classes]
        total = 0
        for g, target in terms:
            sims = torch.stack([torch.dot(g, p[j]) / tau for j in range(c)])
            total = total + torch.log(torch.exp(sims).sum()) - sims[target]
        losses.append(total / len(terms))
    return torch.stack(losses)


def test_fresh_prototypes_have_the_authors_scale():
    """N(0, 0.01^2) per coordinate (the authors' code): |p| ~ 0.01 * sqrt(256) = 0.16 at d = 256."""
    torch.manual_seed(0)
    h = Hierarchy([(f"r{i % 10 % 2}", f"m{i % 10}", f"leaf{i}") for i in range(50)])
    norms = torch.cat([p.detach().norm(dim=1) for p in HCAL(h, lambda: Identity(8), embed_dim=256).prototypes])
    assert float(norms.mean()) == pytest.approx(0.16, rel=0.03)
    wide = HCAL(h, lambda: Identity(8), embed_dim=256, proto_init_std=1.0).prototypes[0].detach().norm(dim=1)
    assert float(wide.mean()) == pytest.approx(16.0, rel=0.03)  # the old N(0, 1), still an option


def test_hcal_without_awa_weights_every_level_one_over_m(toy):
    model = _toy_hcal(toy)
    spec = model.weighting_spec(Config(awa=False))
    assert spec == ("equal", {"mean": True})
    total, weights = weighting_from_config(spec[0], 4, Config(awa=False), **spec[1])(torch.tensor([1.0, 2.0, 3.0, 6.0]))
    assert weights.tolist() == [0.25] * 4 and float(total) == 3.0  # (1 + 2 + 3 + 6) / 4
    assert model.weighting_spec(Config()) == ("awa", {})
    assert weighting_from_config("awa", 3, Config(gamma=0.7)).gamma == 0.7  # AWA's gamma is --gamma


def test_hcal_loss_matches_independent_recomputation(toy):
    torch.manual_seed(1)
    x = torch.randn(6, 4)
    y = toy.encode_many(["x", "y", "z", "w", "x", "w"])
    model = _toy_hcal(toy, tau=0.1, epsilon=0.01)
    model.train()
    torch.manual_seed(123)
    losses = model.level_losses(x, y)

    # Independent: embeddings, the same noise draws (level by level), FA class means by hand.
    torch.manual_seed(123)
    f = F.normalize(x, dim=1)
    expected = []
    for k, p in enumerate(model.prototypes):
        u = (2 * torch.rand(p.shape) - 1) * 0.01
        protos = F.normalize(F.normalize(p.detach(), dim=1) + u, dim=1)
        if k == 0:
            feats, targets = f, y[:, 0]
        else:
            groups = {}
            for i, c in enumerate(y[:, k].tolist()):
                groups.setdefault(c, []).append(f[i])
            targets = torch.tensor(sorted(groups))
            feats = torch.stack([torch.stack(groups[c]).mean(0) for c in sorted(groups)])
        expected.append(manual_infonce(feats, protos, targets, 0.1))
    assert losses.tolist() == pytest.approx(expected, rel=1e-5)


def test_hcal_without_fa_uses_every_sample(toy):
    x = torch.randn(6, 4)
    y = toy.encode_many(["x", "y", "z", "w", "x", "w"])
    model = _toy_hcal(toy, tau=0.1, fa=False, pp=False)
    losses = model.level_losses(x, y)
    f = F.normalize(x, dim=1)
    for k, p in enumerate(model.prototypes):
        assert float(losses[k].detach()) == pytest.approx(manual_infonce(f, F.normalize(p.detach(), dim=1), y[:, k],
                                                                         0.1), rel=1e-5)


def test_fa_means_and_samples_averages_both_terms(toy):
    """--fa-mode means+samples (hcal's own): each coarse level's loss is the mean of FA's class-mean
    InfoNCE and the per-sample InfoNCE, by hand on a 6-sample batch."""
    x = torch.randn(6, 4)
    y = toy.encode_many(["x", "y", "z", "w", "x", "w"])
    model = _toy_hcal(toy, tau=0.1, pp=False, fa_mode="means+samples")
    losses = model.level_losses(x, y)
    f = F.normalize(x, dim=1)
    for k, p in enumerate(model.prototypes):
        protos = F.normalize(p.detach(), dim=1)
        per_sample = manual_infonce(f, protos, y[:, k], 0.1)
        if k == 0:
            assert float(losses[0].detach()) == pytest.approx(per_sample, rel=1e-5)
            continue
        classes = sorted(set(y[:, k].tolist()))
        means = torch.stack([f[y[:, k] == c].mean(0) for c in classes])
        class_mean = manual_infonce(means, protos, torch.tensor(classes), 0.1)
        assert float(losses[k].detach()) == pytest.approx((class_mean + per_sample) / 2, rel=1e-5)
    with pytest.raises(ValueError, match="fa_mode must be"):
        _toy_hcal(toy, fa_mode="medians")


def test_hcal_ps_trains_like_hcal_without_fa(toy):
    """hcal-ps is HCAL with per-sample coarse terms: its loss is hcal --no-fa's, and it predicts the same way."""
    from hcal.methods import create_method

    x, y = torch.randn(6, 4), toy.encode_many(["x", "y", "z", "w", "x", "w"])
    models = []
    for method, cfg in (("hcal-ps", Config()), ("hcal", Config(fa=False))):
        torch.manual_seed(0)
        models.append(create_method(method, toy, lambda: Identity(4), cfg.replace(embed_dim=4)).eval())
    assert not models[0].fa and models[1].fa is False
    torch.testing.assert_close(models[0].level_losses(x, y), models[1].level_losses(x, y))
    with_fa = _toy_hcal(toy, pp=False).eval()
    assert not torch.allclose(with_fa.level_losses(x, y)[1:], models[0].level_losses(x, y)[1:])


def test_no_perturbation_at_evaluation(toy):
    model = _toy_hcal(toy, epsilon=0.5)
    x = torch.randn(4, 4)
    y = toy.leaf_paths()
    model.eval()
    assert torch.equal(model.level_losses(x, y), model.level_losses(x, y))
    model.train()
    assert not torch.equal(model.level_losses(x, y), model.level_losses(x, y))


def test_nearest_prototype_prediction(toy):
    model = _toy_hcal(toy, tau=0.1)
    x = torch.randn(8, 4)
    logits = model(x)
    f = F.normalize(x, dim=1)
    for k, p in enumerate(model.prototypes):
        cos = f @ F.normalize(p.detach(), dim=1).t()
        assert torch.allclose(logits[k], cos / 0.1, atol=1e-5)
        assert torch.equal(decode(logits, toy, "nearest")[0][:, k], cos.argmax(1))


def test_mtl_off_gives_independent_models(toy):
    torch.manual_seed(0)
    model = HCAL(toy, lambda: Linear4(), embed_dim=4, mtl=False)
    assert len(model.encoders) == 3
    x, y = torch.randn(6, 4), toy.encode_many(["x", "y", "z", "w", "x", "w"])
    model.level_losses(x, y)[0].backward()  # the level-1 loss reaches only encoder 1
    grads = [sum(float(p.grad.abs().sum()) if p.grad is not None else 0.0 for p in e.parameters())
             for e in model.encoders]
    assert grads[0] > 0 and grads[1] == 0 and grads[2] == 0


def test_prototype_learning_rates_double_per_level(toy):
    groups = _toy_hcal(toy).param_groups(Config())
    assert [(g["name"], g["lr"]) for g in groups] == [
        ("encoder", 0.01), ("prototypes_l1", 0.05), ("prototypes_l2", 0.1), ("prototypes_l3", 0.2),
    ]


@pytest.mark.parametrize("module, name", CONCEPTS)
def test_training_runs_the_concept_modules(toy, monkeypatch, module, name):
    """The functions in prototype_loss.py, aggregation.py and perturbation.py are what training
    computes: replacing one there changes HCAL's training loss."""

    model = _toy_hcal(toy, tau=0.1, epsilon=0.01).train()
    x = torch.randn(6, 4)
    y = toy.encode_many(["x", "y", "z", "w", "x", "w"])
    torch.manual_seed(5)
    before = model.level_losses(x, y)
    original = getattr(importlib.import_module(module), name)
    calls = []

    def doubled(*args, **kwargs):  # the same function with its first output scaled by 2
        calls.append(name)
        out = original(*args, **kwargs)
        return (2 * out[0], *out[1:]) if isinstance(out, tuple) else 2 * out

    monkeypatch.setattr(importlib.import_module(module), name, doubled)
    torch.manual_seed(5)
    after = model.level_losses(x, y)
    assert calls and not torch.allclose(before, after)


@pytest.mark.parametrize("sizes", [(6, 3, 2), (40, 9, 3)])  # classes <= batch; more fine classes than samples
def test_hcal_losses_and_gradients_equal_a_loop_recomputation_in_float64(sizes):
    """Values and gradients (prototypes, projection) of HCAL's training loss, FA and PP on, against
    :func:`_loop_level_losses`, to 1e-12 in float64."""
    mid = [i * sizes[1] // sizes[0] for i in range(sizes[0])]
    h = Hierarchy([(f"r{m * sizes[2] // sizes[1]}", f"m{m}", f"leaf{i}") for i, m in enumerate(mid)])
    torch.manual_seed(0)
    model = HCAL(h, lambda: Identity(5), embed_dim=5, tau=0.2, epsilon=0.05).double().train()
    x = torch.randn(12, 5, dtype=torch.float64)
    y = h.leaf_paths()[torch.randint(sizes[0], (12,))]
    weights = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    torch.manual_seed(9)
    (model.level_losses(x, y) * weights).sum().backward()
    got = [p.grad.clone() for p in model.parameters()]
    torch.manual_seed(9)
    losses = model.level_losses(x, y).detach()

    model.zero_grad()
    torch.manual_seed(9)  # the same noise as the model draws: one uniform tensor for every level
    noise = torch.empty(sum(sizes), 5, dtype=torch.float64).uniform_(-0.05, 0.05)
    z = model.encoders[0].projection(x)
    f = z / z.norm(dim=1, keepdim=True)
    expected = _loop_level_losses(f, list(model.prototypes), y, 0.2, noise)
    (expected * weights).sum().backward()
    torch.testing.assert_close(losses, expected.detach(), rtol=1e-12, atol=1e-12)
    for a, (name, p) in zip(got, model.named_parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("fa", [False, True])
def test_path_weight_mixes_the_path_losses_into_every_level(toy, fa):
    """--path-weight w (hcal's own): each level's loss is (1 - w) x the level's own loss + w x the
    negative log of the true class's probability under the softmax over the tree's paths of the
    summed cos/tau, here by enumerating the paths in Python."""
    x = torch.randn(6, 4)
    y = toy.encode_many(["x", "y", "z", "w", "x", "w"])
    plain = _toy_hcal(toy, tau=0.1, pp=False, fa=fa).level_losses(x, y).detach()
    model = _toy_hcal(toy, tau=0.1, pp=False, fa=fa, path_weight=0.25)
    f = F.normalize(x, dim=1)
    logits = [f @ F.normalize(p.detach(), dim=1).t() / 0.1 for p in model.prototypes]
    paths = toy.leaf_paths().tolist()
    expected = []
    for k in range(toy.num_levels):
        total = 0.0
        for i in range(6):
            scores = torch.tensor([sum(float(logits[j][i, path[j]]) for j in range(toy.num_levels)) for path in paths])
            through = torch.tensor([path[k] == int(y[i, k]) for path in paths])
            total += float(torch.logsumexp(scores, 0) - torch.logsumexp(scores[through], 0)) / 6
        expected.append(0.75 * float(plain[k]) + 0.25 * total)
    assert model.level_losses(x, y).detach().tolist() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="path_weight must be in"):
        _toy_hcal(toy, path_weight=1.5)


@pytest.mark.parametrize("mtl", [True, False])
def test_ce_weight_mixes_a_linear_cross_entropy_head_into_loss_and_scores(toy, mtl):
    """--ce-weight w (hcal's own): a linear head per level on the projection before normalisation;
    each level's loss is (1 - w) x InfoNCE + w x cross-entropy, written out here with log-sum-exp by
    hand, and the scores both decodings read are (1 - w) log softmax(cos/tau) + w log softmax(linear)."""
    torch.manual_seed(3)
    x = torch.randn(6, 4)
    y = toy.encode_many(["x", "y", "z", "w", "x", "w"])
    model = HCAL(toy, lambda: Linear4(), embed_dim=4, tau=0.1, pp=False, fa=False, mtl=mtl, ce_weight=0.25)
    assert [tuple(h.weight.shape) for h in model.ce_heads] == [(n, 4) for n in toy.sizes]
    losses = model.level_losses(x, y).detach()
    scores = [s.detach() for s in model(x)]
    expected_losses = []
    for k, head in enumerate(model.ce_heads):
        enc = model.encoders[0 if mtl else k]
        raw = (x @ enc.backbone.weight.t() + enc.backbone.bias) @ enc.projection.weight.t() + enc.projection.bias
        raw = raw.detach()
        f = raw / raw.norm(dim=1, keepdim=True)
        protos = model.prototypes[k].detach()
        protos = protos / protos.norm(dim=1, keepdim=True)
        cos = f @ protos.t() / 0.1
        lin = raw @ head.weight.detach().t() + head.bias.detach()
        total = 0.0
        for i in range(6):
            t = int(y[i, k])
            infonce = float(torch.log(torch.exp(cos[i]).sum()) - cos[i, t])
            ce = float(torch.log(torch.exp(lin[i]).sum()) - lin[i, t])
            total += (0.75 * infonce + 0.25 * ce) / 6
        expected_losses.append(total)
        mixed = (0.75 * (cos - torch.logsumexp(cos, 1, keepdim=True))
                 + 0.25 * (lin - torch.logsumexp(lin, 1, keepdim=True)))
        torch.testing.assert_close(scores[k], mixed, rtol=1e-5, atol=1e-5)
    assert losses.tolist() == pytest.approx(expected_losses, rel=1e-5)
    model.level_losses(x, y).sum().backward()  # the heads train, with the encoder's learning rate
    assert all(h.weight.grad.abs().sum() > 0 for h in model.ce_heads)
    names = [g["name"] for g in model.param_groups(Config(ce_weight=0.25))]
    assert names == ["encoder", "ce_heads", "prototypes_l1", "prototypes_l2", "prototypes_l3"]


def test_ce_weight_zero_is_the_paper_model_and_out_of_range_is_refused(toy):
    """Off (the default) the model has no heads and its parameters are drawn exactly as before."""
    torch.manual_seed(0)
    plain = HCAL(toy, lambda: Linear4(), embed_dim=4)
    torch.manual_seed(0)
    off = HCAL(toy, lambda: Linear4(), embed_dim=4, ce_weight=0.0)
    assert off.ce_heads is None
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), off.state_dict().values()))
    with pytest.raises(ValueError, match="ce_weight must be in"):
        HCAL(toy, lambda: Linear4(), embed_dim=4, ce_weight=-0.1)


@pytest.mark.parametrize("mtl", [True, False])
def test_projection_none_puts_the_prototypes_on_the_backbones_normalised_features(toy, mtl):
    """--projection none (hcal's own): no linear projection, so the embedding is the backbone's
    features, normalised, and the prototypes have the backbone's width; the per-sample losses and
    nearest-prototype scores are recomputed by hand from the backbone's output."""
    torch.manual_seed(4)
    x = torch.randn(6, 4)
    y = toy.encode_many(["x", "y", "z", "w", "x", "w"])
    model = HCAL(toy, lambda: Linear4(), embed_dim=64, tau=0.1, pp=False, fa=False, mtl=mtl, projection="none")
    assert all(isinstance(enc.projection, nn.Identity) for enc in model.encoders)
    assert [tuple(p.shape) for p in model.prototypes] == [(n, 4) for n in toy.sizes]  # embed_dim 64 unused
    assert not any("projection" in name for name, _ in model.named_parameters())
    losses = model.level_losses(x, y).detach()
    scores = [s.detach() for s in model(x)]
    for k in range(toy.num_levels):
        enc = model.encoders[0 if mtl else k]
        feats = (x @ enc.backbone.weight.t() + enc.backbone.bias).detach()
        f = feats / feats.norm(dim=1, keepdim=True)
        protos = model.prototypes[k].detach()
        protos = protos / protos.norm(dim=1, keepdim=True)
        assert float(losses[k]) == pytest.approx(manual_infonce(f, protos, y[:, k], 0.1), rel=1e-5)
        torch.testing.assert_close(scores[k], f @ protos.t() / 0.1, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="projection must be 'linear' or 'none'"):
        HCAL(toy, lambda: Linear4(), embed_dim=4, projection="mlp")


def test_projection_none_drops_exactly_the_projections_parameters(toy):
    """The default (linear) is the paper's encoder; none removes its projection and nothing else."""
    linear = HCAL(toy, lambda: Linear4(), embed_dim=4, mtl=False)
    none = HCAL(toy, lambda: Linear4(), embed_dim=4, mtl=False, projection="none")
    assert all(isinstance(enc.projection, nn.Linear) for enc in linear.encoders)
    dropped = {f"encoders.{k}.projection.{w}" for k in range(toy.num_levels) for w in ("weight", "bias")}
    assert set(dict(linear.named_parameters())) - set(dict(none.named_parameters())) == dropped
    assert set(dict(none.named_parameters())) < set(dict(linear.named_parameters()))
