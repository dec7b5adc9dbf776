"""The baselines: every registered method trained and evaluated through the CLI, and their parts."""

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hcal.backbones import BACKBONES, create_backbone
from hcal.config import Config
from hcal.hierarchy import Hierarchy
from hcal.inputs import InputSpec
from hcal.methods import CMT, DMT, METHODS, HardSharing, MMoE, SingleTask, create_method
from hcal.methods.cmt import implied_coarse_log_probs
from hcal.methods.dmt import backbone_tokens

from .test_hcal_components import Identity
from .conftest import assert_one_line_error

# 432 training samples: 14 steps an epoch
FAST = ["--dataset", "synthetic", "--dataset-arg", "train_size=480", "--epochs", "3", "--batch-size", "32",
        "--no-progress", "--seed", "0"]


def epoch_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "logs" / "csv" / "metrics.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("train/loss_epoch")]
    return sorted(rows, key=lambda r: int(r["epoch"]))


@pytest.mark.parametrize("name", METHODS.names())
def test_method_trains_and_is_evaluated_through_the_cli(cli, tmp_path, name):
    """Loss goes down; consistent decoding gives HVR 0; `hcal test` scores the same checkpoint."""
    run_dir = tmp_path / "run"
    r = cli("fit", *FAST, "--method", name, "--decode", "consistent", "--scheduler", "cosine", "--run-dir", run_dir)
    assert r.code == 0, r
    rows = epoch_rows(run_dir)
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]
    first, last = float(rows[0]["train/loss_epoch"]), float(rows[-1]["train/loss_epoch"])
    assert last < first - 0.1 * abs(first), (first, last)  # (uncertainty weighting's total may go negative)
    level_sums = [sum(float(row[f"train/loss_l{k}"]) for k in (1, 2, 3)) for row in (rows[0], rows[-1])]
    assert level_sums[1] < 0.9 * level_sums[0], level_sums
    assert all(row[f"train/weight_l{k}"] for row in rows for k in (1, 2, 3))

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test/hvr"] == 0.0  # consistent decoding, whatever the method
    assert metrics["test/acc_l3"] > 0.75  # 2 root classes: chance is 0.5

    out = tmp_path / "nearest.json"
    r = cli("test", "--ckpt", run_dir / "checkpoints" / "best.ckpt", "--decode", "nearest", "--output", out)
    assert r.code == 0, r
    nearest = json.loads(out.read_text())
    expected = {f"test/acc_l{k}" for k in (1, 2, 3)} | {"test/hvr", "test/full_path_acc", "test/hp", "test/hr", "test/hf1"}
    assert expected <= set(nearest)
    assert nearest["test/acc_l1"] > 0.3  # 8 leaves: chance is 0.125

    # the learning-rate schedule advanced once per finished epoch in both optimisation paths
    # (Lightning's for loss weightings, the module's own for gradient weightings)
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["lr_schedulers"][0]["last_epoch"] == ckpt["epoch"] + 1


@pytest.mark.parametrize("package", ["cvxpy", "ecos"])
def test_nashmtl_without_its_backend_stops_with_one_line(cli, monkeypatch, package):
    monkeypatch.setitem(sys.modules, package, None)
    r = cli("fit", "--dataset", "synthetic", "--method", "nashmtl", "--epochs", "1", "--no-progress")
    assert_one_line_error(r, "nashmtl: its optimisation backend is missing", repr(package), "install it with: pip install")
    assert not list(Path("runs").glob("*")), "nothing was trained, nothing is left behind"


@pytest.mark.parametrize("method", ["cagrad", "uw"])
def test_non_finite_loss_guard_in_both_optimisation_paths(cli, tmp_path, monkeypatch, method):
    real = HardSharing.losses_and_features
    calls = {"n": 0}

    def poisoned(self, x, y):
        losses, features = real(self, x, y)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 16:  # epoch 1, after one checkpoint
                losses[1] = losses[1] * float("nan")
        return losses, features

    monkeypatch.setattr(HardSharing, "losses_and_features", poisoned)
    run_dir = tmp_path / "run"
    r = cli("fit", *FAST, "--method", method, "--run-dir", run_dir)
    assert r.code != 0 and "Traceback" not in r.err
    line = r.err.strip().splitlines()[-1]
    assert "non-finite loss at epoch 1, step 15" in line and "L_l2 = nan" in line, line
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 0 and all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--method", "ew", "--no-fa"], ["--no-fa", "do not apply to method 'ew'"]),
        (["--method", "mmoe", "--no-mtl"], ["--no-mtl", "method 'mmoe'", "--method single"]),
        (["--method", "cagrad", "--precision", "16-mixed"], ["--precision 16-mixed", "'cagrad'", "bf16-mixed"]),
    ],
)
def test_baseline_option_errors_are_one_line(cli, args, fragments):
    assert_one_line_error(cli("fit", "--dataset", "synthetic", *args), *fragments)


# ------------------------------------------------------------------------------------ the parts


@pytest.mark.parametrize("name", BACKBONES.names())
def test_backbone_tokens(name):
    spec = (InputSpec(kind="image", channels=1, size=28) if "image" in BACKBONES.get(name).extra["inputs"]
            else InputSpec(kind="vector", dim=12))
    backbone = create_backbone(name, spec).eval()
    x = torch.randn(2, 1, 28, 28) if spec.kind == "image" else torch.randn(2, 12)
    tokens, pooled = backbone_tokens(backbone, x)
    assert torch.allclose(pooled, backbone(x), atol=1e-5)  # pool_tokens(forward_tokens(x)) == forward(x)
    width = backbone.token_features if hasattr(backbone, "forward_tokens") else backbone.out_features
    assert tokens.ndim == 3 and tokens.shape[0] == 2 and tokens.shape[2] == width
    expected_count = {"small-cnn": 49, "mlp": 8, "resnet18-cifar": 16, "resnet18": 1}.get(name)
    if expected_count is not None:
        assert tokens.shape[1] == expected_count, tokens.shape
    if name == "small-cnn":  # the tokens are the grid the pooled features are computed from
        assert torch.allclose(tokens.transpose(1, 2).flatten(1), backbone.features(x), atol=1e-6)
    if name == "mlp":  # 8 chunks of the output vector
        assert torch.allclose(tokens.flatten(1), backbone(x), atol=1e-6)


def test_dmt_runs_on_every_kind_of_backbone(toy):
    torch.manual_seed(0)
    spec = InputSpec(kind="image", channels=1, size=28)
    model = DMT(toy, lambda: create_backbone("small-cnn", spec))
    assert [z.shape for z in model(torch.randn(3, 1, 28, 28))] == [(3, 4), (3, 3), (3, 2)]
    fallback = DMT(toy, lambda: Identity(6))  # no forward_tokens: one token, the pooled features
    tokens, pooled = backbone_tokens(fallback.backbone, torch.randn(3, 6))
    assert tokens.shape == (3, 1, 6) and pooled.shape == (3, 6)
    assert [z.shape for z in fallback(torch.randn(3, 6))] == [(3, 4), (3, 3), (3, 2)]


def test_mmoe_has_the_authors_widths_and_softmax_gates(toy):
    model = MMoE(toy, lambda: Identity(512))
    mix = model.mixture
    assert len(mix.experts) == 3 and all(e[0].in_features == 512 and e[0].out_features == 128 for e in mix.experts)
    assert [(g.in_features, g.out_features) for g in mix.gates] == [(512, 3)] * 3
    assert [(t[0].in_features, t[0].out_features, t[2].out_features) for t in mix.towers] == [
        (128, 256, 4), (128, 256, 3), (128, 256, 2)]
    x = torch.randn(5, 512)
    for g in mix.gate_weights(x):
        assert g.shape == (5, 3) and torch.allclose(g.sum(1), torch.ones(5))
    # each level's tower reads its own gated mixture of the same experts
    experts = torch.stack([e(x) for e in mix.experts], dim=1)
    g0 = mix.gate_weights(x)[0]
    assert torch.allclose(model(x)[0], mix.towers[0]((g0.unsqueeze(2) * experts).sum(1)), atol=1e-5)


class Linear4(nn.Linear):
    out_features = 4

    def __init__(self) -> None:
        super().__init__(4, 4)


def test_single_task_models_share_nothing(toy):
    torch.manual_seed(0)
    model = SingleTask(toy, Linear4)
    assert len({id(b) for b in model.backbones}) == 3
    x, y = torch.randn(6, 4), toy.encode_many(["x", "y", "z", "w", "x", "w"])
    model.level_losses(x, y)[0].backward()  # the level-1 loss reaches only backbone 1
    grads = [float(b.weight.grad.abs().sum()) if b.weight.grad is not None else 0.0 for b in model.backbones]
    assert grads[0] > 0 and grads[1] == 0 and grads[2] == 0


def test_hard_sharing_exposes_its_trunk(toy):
    spec = InputSpec(kind="vector", dim=12)
    model = create_method("cagrad", toy, lambda: create_backbone("mlp", spec), Config())
    assert isinstance(model, HardSharing) and model.weighting_spec(Config()) == ("cagrad", {"c": 0.4})
    shared = model.shared_parameters()
    assert {id(p) for p in shared} == {id(p) for p in model.backbone.parameters()}
    assert not {id(p) for p in shared} & {id(p) for p in model.heads.parameters()}
    assert model.last_shared_parameters() == [model.backbone.net[3].weight]  # the last Linear
    losses, features = model.losses_and_features(torch.randn(5, 12), toy.leaf_paths()[[0, 1, 2, 3, 0]])
    assert len(losses) == 3 and all(l.ndim == 0 for l in losses) and features.shape == (5, 256)


def test_methods_without_a_trunk_say_so(toy):
    from hcal.errors import ConfigError

    model = MMoE(toy, lambda: Identity(4))
    with pytest.raises(ConfigError, match="method MMoE has no shared trunk"):
        model.shared_parameters()


# ----------------------------------------------------------------------------------------- CMT
def test_implied_coarse_posterior_is_the_sum_over_children(toy):
    torch.manual_seed(0)
    fine = torch.log_softmax(torch.randn(5, 4) * 5, dim=1)
    parent = toy.parent_tensor(0)  # x, y -> a1; z -> a2; w -> b1
    dense = torch.zeros(4, 3)
    dense[torch.arange(4), parent] = 1
    expected = torch.log(fine.exp() @ dense)
    assert torch.allclose(implied_coarse_log_probs(fine, parent, 3), expected, atol=1e-6)
    # stable where the probabilities underflow in float32
    extreme = torch.log_softmax(torch.tensor([[0.0, -200.0, -300.0, -400.0]]), dim=1)
    got = implied_coarse_log_probs(extreme, parent, 3)
    assert torch.isfinite(got).all() and float(got[0, 2]) == pytest.approx(-400.0, abs=1e-3)


def _kl(p, q):
    return float(np.sum(p * (np.log(p) - np.log(q))))


def test_cmt_losses_by_hand():
    h = Hierarchy([("A", "a"), ("A", "b"), ("B", "c")])  # 2 levels: fine a, b, c; coarse A, B
    model = CMT(h, lambda: Identity(3), lambda_dm=1.0, lambda_sca=0.5)
    fine_logits = torch.tensor([[1.0, 0.0, -1.0]])
    coarse_logits = torch.tensor([[0.2, 0.5]])
    dm, sca = model.regularisers([fine_logits, coarse_logits])

    pf = np.exp([1.0, 0.0, -1.0]) / np.exp([1.0, 0.0, -1.0]).sum()
    pc = np.exp([0.2, 0.5]) / np.exp([0.2, 0.5]).sum()
    q = np.array([pf[0] + pf[1], pf[2]])  # implied coarse posterior
    r = np.array([pc[0] * pf[0] / q[0], pc[0] * pf[1] / q[0], pc[1] * pf[2] / q[1]])  # coarse -> fine soft label
    assert r.sum() == pytest.approx(1.0)
    assert dm.tolist() == pytest.approx([0.0, 0.5 * (_kl(q, pc) + _kl(pc, q))], rel=1e-5)
    assert sca.tolist() == pytest.approx([_kl(r, pf), _kl(q, pc)], rel=1e-5)

    # the level losses add them to the cross-entropies with the documented weights
    x, y = torch.zeros(1, 3), torch.tensor([[0, 0]])
    model.backbone = Identity(3)
    with torch.no_grad():
        model.heads[0].weight.zero_(), model.heads[0].bias.copy_(fine_logits[0])
        model.heads[1].weight.zero_(), model.heads[1].bias.copy_(coarse_logits[0])
    ce = [-np.log(pf[0]), -np.log(pc[0])]
    expected = [ce[0] + 0.5 * _kl(r, pf), ce[1] + 1.0 * 0.5 * (_kl(q, pc) + _kl(pc, q)) + 0.5 * _kl(q, pc)]
    assert model.level_losses(x, y).tolist() == pytest.approx(expected, rel=1e-5)


def test_cmt_regularisers_vanish_when_the_heads_agree(toy):
    fine = torch.randn(4, 4)
    parent = toy.parent_tensor(0)
    coarse = implied_coarse_log_probs(torch.log_softmax(fine, 1), parent, 3)
    grand = implied_coarse_log_probs(coarse, toy.parent_tensor(1), 2)
    model = CMT(toy, lambda: Identity(4))
    dm, sca = model.regularisers([fine, coarse, grand])
    assert torch.allclose(dm, torch.zeros(3), atol=1e-6) and torch.allclose(sca, torch.zeros(3), atol=1e-6)
    dm, sca = model.regularisers([fine, coarse + torch.tensor([2.0, 0.0, 0.0]), grand])
    assert dm[1] > 1e-3 and sca[0] > 1e-3 and sca[1] > 1e-3
