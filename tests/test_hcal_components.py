"""HCAL's paper concepts, each against an independent re-computation."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hcal.aggregation import class_means
from hcal.decoding import decode
from hcal.hierarchy import Hierarchy
from hcal.methods.hcal import HCAL
from hcal.metrics import HierarchicalViolationRate
from hcal.perturbation import perturb_prototypes
from hcal.prototype_loss import prototype_infonce
from hcal.weighting import AdaptiveWeightAdjustment, EqualWeighting


class Identity(nn.Module):
    """A backbone that passes vectors through (so embeddings are known in closed form)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.out_features = dim

    def forward(self, x):
        return x


class Linear4(nn.Linear):
    out_features = 4

    def __init__(self) -> None:
        super().__init__(4, 4)


def manual_infonce(features, prototypes, targets, tau):
    """-log softmax of <f, p_y>/tau, written out with plain Python loops."""
    total = 0.0
    for f, t in zip(features.tolist(), targets.tolist()):
        sims = [sum(a * b for a, b in zip(f, p)) / tau for p in prototypes.tolist()]
        log_z = math.log(sum(math.exp(s) for s in sims))
        total += log_z - sims[t]
    return total / len(features)


def test_prototype_infonce_matches_formula():
    torch.manual_seed(0)
    f = F.normalize(torch.randn(5, 4), dim=1)
    p = F.normalize(torch.randn(3, 4), dim=1)
    t = torch.tensor([0, 2, 1, 1, 0])
    assert float(prototype_infonce(f, p, t, 0.1)) == pytest.approx(manual_infonce(f, p, t, 0.1), rel=1e-5)


def test_class_means_by_hand():
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [4.0, 0.0]], requires_grad=True)
    labels = torch.tensor([1, 0, 1, 1])
    means, classes, present = class_means(feats, labels, 3)  # 3 classes <= 4 samples: row c is class c
    assert classes.tolist() == [0, 1, 2] and present.tolist() == [True, True, False]
    assert means.flatten().tolist() == pytest.approx([0.0, 1.0, 7 / 3, 2 / 3, 0.0, 0.0])
    means.sum().backward()  # each sample's gradient is 1 / (size of its class)
    assert feats.grad[:, 0].tolist() == pytest.approx([1 / 3, 1.0, 1 / 3, 1 / 3])


def test_class_means_with_more_classes_than_samples():
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 3.0]])
    labels = torch.tensor([40, 7, 40])  # 50 classes, 3 samples: rows are the distinct classes, ascending
    means, classes, present = class_means(feats, labels, 50)
    assert means.shape == (3, 2) and present.tolist() == [True, True, False]
    assert classes[:2].tolist() == [7, 40]
    assert means[:2].tolist() == [[0.0, 1.0], [2.0, 1.5]]
    assert means[2].tolist() == [0.0, 0.0]


def test_prototype_infonce_keeps_only_present_terms():
    torch.manual_seed(0)
    f = torch.randn(4, 3)
    p = F.normalize(torch.randn(5, 3), dim=1)
    t = torch.tensor([0, 4, 2, 1])
    present = torch.tensor([True, False, True, True])
    expected = manual_infonce(f[present], p, t[present], 0.2)  # the mean over the 3 present rows
    assert float(prototype_infonce(f, p, t, 0.2, present)) == pytest.approx(expected, rel=1e-5)


def test_fresh_prototypes_have_the_authors_scale():
    """N(0, 0.01^2) per coordinate (the authors' code): |p| ~ 0.01 * sqrt(256) = 0.16 at d = 256."""
    torch.manual_seed(0)
    h = Hierarchy([(f"r{i % 10 % 2}", f"m{i % 10}", f"leaf{i}") for i in range(50)])
    norms = torch.cat([p.detach().norm(dim=1) for p in HCAL(h, lambda: Identity(8), embed_dim=256).prototypes])
    assert float(norms.mean()) == pytest.approx(0.16, rel=0.03)
    wide = HCAL(h, lambda: Identity(8), embed_dim=256, proto_init_std=1.0).prototypes[0].detach().norm(dim=1)
    assert float(wide.mean()) == pytest.approx(16.0, rel=0.03)  # the old N(0, 1), still an option


def test_hcal_without_awa_weights_every_level_one_over_m():
    from hcal.config import Config
    from hcal.weighting import create_weighting

    spec = HCAL.weighting_spec(Config(awa=False))
    assert spec == ("equal", {"mean": True})
    total, weights = create_weighting(spec[0], 4, **spec[1])(torch.tensor([1.0, 2.0, 3.0, 6.0]))
    assert weights.tolist() == [0.25] * 4 and float(total) == 3.0  # (1 + 2 + 3 + 6) / 4
    assert HCAL.weighting_spec(Config()) == ("awa", {"gamma": 0.5})


def test_awa_weights_and_gradient():
    losses = torch.tensor([1.0, 2.0, 0.5], requires_grad=True)
    total, weights = AdaptiveWeightAdjustment(3, gamma=0.5)(losses)
    e = [math.exp(v / 0.5) for v in (1.0, 2.0, 0.5)]
    expected = [v / sum(e) for v in e]
    assert weights.tolist() == pytest.approx(expected)
    assert float(total.detach()) == pytest.approx(sum(w * l for w, l in zip(expected, (1.0, 2.0, 0.5))))
    total.backward()  # stop-gradient: d total / d L_k = lambda_k exactly
    assert losses.grad.tolist() == pytest.approx(expected)
    assert not weights.requires_grad


def test_awa_gamma_controls_sharpness_and_equal_weights():
    losses = torch.tensor([1.0, 2.0])
    sharp = AdaptiveWeightAdjustment(2, gamma=0.1)(losses)[1]
    flat = AdaptiveWeightAdjustment(2, gamma=10.0)(losses)[1]
    assert sharp[1] > 0.99 and abs(float(flat[1]) - 0.5) < 0.03
    total, w = EqualWeighting(2)(losses)
    assert float(total) == 3.0 and w.tolist() == [1.0, 1.0]
    total, w = EqualWeighting(2, mean=True)(losses)
    assert float(total) == 1.5 and w.tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="gamma must be > 0, got 0"):
        AdaptiveWeightAdjustment(2, gamma=0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        EqualWeighting(2)(torch.ones(3))


def test_perturbation_is_the_formula_and_resampled():
    torch.manual_seed(0)
    p = torch.randn(6, 256, requires_grad=True)
    out = perturb_prototypes(p, 0.01, generator=torch.Generator().manual_seed(7))
    u = (2 * torch.rand(6, 256, generator=torch.Generator().manual_seed(7)) - 1) * 0.01
    assert u.abs().max() <= 0.01
    assert torch.allclose(out, F.normalize(F.normalize(p, dim=1) + u, dim=1), atol=1e-6)
    assert torch.allclose(out.norm(dim=1), torch.ones(6), atol=1e-6)
    # fresh noise each call; close to the unperturbed prototypes (cos ~ 1 - |u|^2/2 ~ 0.996)
    again = perturb_prototypes(p, 0.01)
    assert not torch.allclose(again, perturb_prototypes(p, 0.01))
    cos = (again * F.normalize(p, dim=1)).sum(1)
    assert bool(((cos > 0.98) & (cos < 1.0)).all())
    out.sum().backward()
    assert p.grad is not None and p.grad.abs().sum() > 0  # gradients flow to p
    assert torch.equal(perturb_prototypes(p, 0.0), F.normalize(p, dim=1))
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        perturb_prototypes(p, -0.1)


def _toy_hcal(toy, **kw):
    torch.manual_seed(0)
    model = HCAL(toy, lambda: Identity(4), embed_dim=4, **kw)
    with torch.no_grad():
        model.encoders[0].projection.weight.copy_(torch.eye(4))
        model.encoders[0].projection.bias.zero_()
    return model


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
        assert float(losses[k].detach()) == pytest.approx(manual_infonce(f, F.normalize(p.detach(), dim=1), y[:, k], 0.1), rel=1e-5)


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
    grads = [sum(float(p.grad.abs().sum()) if p.grad is not None else 0.0 for p in e.parameters()) for e in model.encoders]
    assert grads[0] > 0 and grads[1] == 0 and grads[2] == 0


def test_prototype_learning_rates_double_per_level(toy):
    from hcal.config import Config

    groups = _toy_hcal(toy).param_groups(Config())
    assert [(g["name"], g["lr"]) for g in groups] == [
        ("encoder", 0.01), ("prototypes_l1", 0.05), ("prototypes_l2", 0.1), ("prototypes_l3", 0.2),
    ]


def _brute_force_best_path(logits, h):
    best = []
    for i in range(logits[0].shape[0]):
        scores = {}
        for leaf in range(h.sizes[0]):
            path = h.leaf_paths()[leaf]
            scores[leaf] = sum(float(torch.log_softmax(z[i], 0)[path[k]]) for k, z in enumerate(logits))
        best.append(h.leaf_paths()[max(scores, key=scores.get)].tolist())
    return best


@pytest.mark.parametrize("seed", range(5))
def test_consistent_decoding_never_violates_and_is_the_best_path(seed):
    torch.manual_seed(seed)
    h = Hierarchy([(f"r{i % 7 % 3}", f"m{i % 7}", f"leaf{i}") for i in range(21)])
    logits = [torch.randn(40, n) * 3 for n in h.sizes]
    preds, probs = decode(logits, h, "consistent")
    hvr = HierarchicalViolationRate(h)
    hvr.update(preds)
    assert float(hvr.compute()) == 0.0
    assert bool(h.is_consistent(preds).all())
    assert preds.tolist() == _brute_force_best_path(logits, h)
    nearest, _ = decode(logits, h, "nearest")
    assert not bool(h.is_consistent(nearest).all())  # random logits do violate: the test can fail
    for k in range(h.num_levels):
        expected = torch.softmax(logits[k], 1).gather(1, preds[:, k : k + 1]).squeeze(1)
        assert torch.allclose(probs[:, k], expected, atol=1e-6)


CONCEPTS = [
    ("hcal.aggregation", "class_means"),
    ("hcal.perturbation", "perturb_prototypes"),
    ("hcal.prototype_loss", "prototype_infonce"),
]


@pytest.mark.parametrize("module, name", CONCEPTS)
def test_training_runs_the_concept_modules(toy, monkeypatch, module, name):
    """The functions in prototype_loss.py, aggregation.py and perturbation.py are what training
    computes: replacing one there changes HCAL's training loss."""
    import importlib

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


def test_fit_trains_through_the_concept_modules_and_awa(cli, tmp_path, monkeypatch):
    """A real ``hcal fit`` step calls every concept function and AWA (counted, not assumed)."""
    import importlib

    calls: dict[str, int] = {}
    for module, name in CONCEPTS:
        original = getattr(importlib.import_module(module), name)

        def counted(*args, _original=original, _name=name, **kwargs):
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(importlib.import_module(module), name, counted)
    awa_forward = AdaptiveWeightAdjustment.forward

    def counted_awa(self, losses):
        calls["awa"] = calls.get("awa", 0) + 1
        return awa_forward(self, losses)

    monkeypatch.setattr(AdaptiveWeightAdjustment, "forward", counted_awa)
    r = cli("fit", "--dataset", "synthetic", "--epochs", "1", "--limit-batches", "2", "--no-progress",
            "--run-dir", tmp_path / "run")
    assert r.code == 0, r
    assert calls.get("class_means", 0) >= 2 * 2  # two coarse levels with FA, two training batches
    assert calls.get("prototype_infonce", 0) >= 3 * 2 and calls.get("perturb_prototypes", 0) >= 2
    assert calls.get("awa", 0) >= 2


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
            terms = [(torch.stack([f[i] for i in range(f.shape[0]) if int(y[i, k]) == cls]).mean(0), cls) for cls in classes]
        total = 0
        for g, target in terms:
            sims = torch.stack([torch.dot(g, p[j]) / tau for j in range(c)])
            total = total + torch.log(torch.exp(sims).sum()) - sims[target]
        losses.append(total / len(terms))
    return torch.stack(losses)


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


def test_compile_compiles_the_whole_training_loss(toy):
    """``--compile``: the module's training loss is one torch.compile'd function of the whole
    method (backbone and head), giving the eager numbers; state-dict keys are unchanged."""
    from hcal.config import Config
    from hcal.engine.module import HierarchicalModule
    from hcal.inputs import InputSpec

    cfg = Config(dataset="synthetic", backbone="mlp", embed_dim=8, compile=True, pp=False)
    spec = InputSpec(kind="vector", dim=6)
    torch.manual_seed(0)
    compiled = HierarchicalModule(cfg.to_dict(), toy.to_dict(), spec.to_dict())
    torch.manual_seed(0)
    eager = HierarchicalModule(cfg.replace(compile=False).to_dict(), toy.to_dict(), spec.to_dict())
    assert list(compiled.state_dict()) == list(eager.state_dict())
    assert compiled._level_losses is not compiled.method.level_losses  # the compiled wrapper
    x, y = torch.randn(8, 6), toy.leaf_paths()[torch.arange(8) % 4]
    torch.testing.assert_close(compiled._level_losses(x, y), eager._level_losses(x, y), rtol=1e-5, atol=1e-6)
