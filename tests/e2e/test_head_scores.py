"""benchmarks/head_scores.py: an HCAL checkpoint with --ce-weight scored through one head alone."""

import json

import pytest

from hcal.methods.hcal import HCAL
from tests.helpers import load_benchmark

FIT = ("fit", "--dataset", "synthetic", "--method", "hcal-ps", "--no-mtl", "--epochs", "1", "--limit-batches", "3",
       "--no-progress")


@pytest.fixture
def head_scores(monkeypatch):
    monkeypatch.setattr(HCAL, "forward", HCAL.forward)  # the script patches it: restored after the test
    return load_benchmark("head_scores")


def _metrics(path):
    return {k: v for k, v in json.loads(path.read_text()).items() if k.startswith("test/")}


def _score(head_scores, monkeypatch, head, ckpt, out, decode="consistent"):
    monkeypatch.setattr(HCAL, "forward", HCAL.forward)
    code = head_scores.main(["--head", head, "--", "--ckpt", str(ckpt), "--decode", decode, "--no-report",
                             "--output", str(out)])
    return code


def test_each_head_is_scored_as_the_method_defines_it(cli, tmp_path, head_scores, monkeypatch, capsys):
    for w in ("0.5", "1"):
        assert cli(*FIT, "--ce-weight", w, "--run-dir", tmp_path / w).code == 0
    ckpt = {w: tmp_path / w / "checkpoints" / "best.ckpt" for w in ("0.5", "1")}
    plain = tmp_path / "plain.json"
    assert cli("test", "--ckpt", ckpt["0.5"], "--decode", "consistent", "--no-report", "--output", plain).code == 0
    # both: the method's own mixed scores, exactly what hcal test reports
    assert _score(head_scores, monkeypatch, "both", ckpt["0.5"], tmp_path / "both.json") == 0
    assert _metrics(tmp_path / "both.json") == _metrics(plain)
    # with w = 1 the mixture is the linear head's log-softmax: the linear head alone predicts the same
    for head in ("both", "ce"):
        assert _score(head_scores, monkeypatch, head, ckpt["1"], tmp_path / f"w1-{head}.json", "nearest") == 0
    assert _metrics(tmp_path / "w1-ce.json") == _metrics(tmp_path / "w1-both.json")
    # the prototypes alone give valid metrics of their own
    assert _score(head_scores, monkeypatch, "prototypes", ckpt["0.5"], tmp_path / "p.json") == 0
    assert 0 <= _metrics(tmp_path / "p.json")["test/full_path_acc"] <= 1


def test_a_checkpoint_without_heads(cli, tmp_path, head_scores, monkeypatch, capsys):
    """Without --ce-weight the scores are the prototypes': --head prototypes is hcal test, --head ce is refused."""
    assert cli(*FIT, "--run-dir", tmp_path / "run").code == 0
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    plain = tmp_path / "plain.json"
    assert cli("test", "--ckpt", ckpt, "--no-report", "--decode", "consistent", "--output", plain).code == 0
    assert _score(head_scores, monkeypatch, "prototypes", ckpt, tmp_path / "p.json") == 0
    assert _metrics(tmp_path / "p.json") == _metrics(plain)
    capsys.readouterr()
    assert _score(head_scores, monkeypatch, "ce", ckpt, tmp_path / "ce.json") == 2
    err = capsys.readouterr().err
    assert "--head ce" in err and str(ckpt) in err and "no cross-entropy heads" in err
    assert not (tmp_path / "ce.json").exists()


def test_head_forward_gives_one_head_s_scores(head_scores, toy):
    import torch

    from tests.unit.methods.test_hcal import Linear4

    torch.manual_seed(0)
    model = HCAL(toy, lambda: Linear4(), embed_dim=4, mtl=False, ce_weight=0.5)
    x = torch.randn(5, 4)
    ce = head_scores.head_forward("ce")(model, x)
    protos = head_scores.head_forward("prototypes")(model, x)
    both = head_scores.head_forward("both")(model, x)
    raw = [enc.projection(enc.backbone(x)) for enc in model.encoders]
    for k in range(toy.num_levels):
        torch.testing.assert_close(ce[k], model.ce_heads[k](raw[k]))
        unit = torch.nn.functional.normalize(model.prototypes[k], dim=1)
        torch.testing.assert_close(protos[k], torch.nn.functional.normalize(raw[k], dim=1) @ unit.t() / model.tau)
        mixed = 0.5 * protos[k].log_softmax(1) + 0.5 * ce[k].log_softmax(1)
        torch.testing.assert_close(both[k], mixed)
