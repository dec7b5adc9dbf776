"""The command line end to end on tiny data: fit, test, predict, resume, run-directory protection."""

import csv
import errno
import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import hcal.engine.checkpoint as checkpoint_module
from hcal import __version__
from hcal.datasets.synthetic import make_synthetic
from hcal.weighting import AdaptiveWeightAdjustment
from tests.helpers import ROOT, assert_one_line_error, run_hcal_subprocess

FAST = ["--dataset", "synthetic", "--epochs", "3", "--batch-size", "32", "--no-progress"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One real ``hcal fit`` through the console script, shared by the tests below."""
    run_dir = tmp_path_factory.mktemp("runs") / "syn"
    result = run_hcal_subprocess("fit", *FAST, "--run-dir", run_dir, "--seed", "3")  # how fast: benchmarks/
    assert result.code == 0, result
    return run_dir, result


CONCEPTS = [
    ("hcal.aggregation", "class_means"),
    ("hcal.perturbation", "perturb_prototypes"),
    ("hcal.prototype_loss", "prototype_infonce"),
]


def test_fit_end_to_end(trained_run):
    run_dir, result = trained_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("test/acc_l1", "test/acc_l2", "test/acc_l3", "test/hvr", "test/full_path_acc", "test/hf1"):
        assert 0.0 <= metrics[key] <= 1.0, key
    # the synthetic tree is easy: a working model must beat chance (1/8 leaves) by far
    assert metrics["test/acc_l1"] > 0.8 and metrics["test/acc_l3"] > 0.95
    assert metrics["best_val/acc_l1"] > 0.8
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["backbone"] == "mlp" and config["seed"] == 3 and "run_dir" not in config  # re-runnable elsewhere
    assert (run_dir / "checkpoints" / "best.ckpt").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "logs" / "csv" / "metrics.csv").is_file()
    assert list((run_dir / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    assert not list(run_dir.rglob(".*.tmp-*"))  # no temporary checkpoint left behind
    # the closing table: ACC per level, HVR, full-path accuracy, hF1, run dir
    for fragment in ("ACC^1", "ACC^3", "HVR", "full-path accuracy", "hierarchical F1", f"run dir: {run_dir}"):
        assert fragment in result.out
    assert f"{metrics['test/acc_l1']:.4f}" in result.out
    info = json.loads((run_dir / "run.json").read_text())
    assert info["hcal"] == __version__ and info["lightning"] and info["epochs_completed"] == 3
    assert [h["command"] for h in info["history"]] == [f"hcal fit {' '.join(FAST)} --run-dir {run_dir} --seed 3"]
    with Image.open(run_dir / "training_curves.png") as img:
        assert img.size == (1200, 840) and len(np.unique(np.asarray(img.convert("RGB")).reshape(-1, 3), axis=0)) > 100
    assert f"training curves: {run_dir / 'training_curves.png'}" in result.out


def test_checkpoint_loads_with_weights_only(trained_run):
    run_dir, _ = trained_run
    ckpt = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    assert ckpt["hcal_format"] == 1
    assert ckpt["hyper_parameters"]["hierarchy"]["levels"][0] == ["c0", "c1"]  # the hierarchy travels with it


def test_test_command_reproduces_fit_metrics(trained_run, cli, tmp_path):
    run_dir, _ = trained_run
    out = tmp_path / "m.json"
    r = cli("test", "--ckpt", run_dir / "checkpoints" / "best.ckpt", "--output", out)
    assert r.code == 0, r
    fit_metrics = json.loads((run_dir / "metrics.json").read_text())
    test_metrics = json.loads(out.read_text())
    for key, value in test_metrics.items():
        assert value == pytest.approx(fit_metrics[key], abs=1e-9), key
    assert "HVR" in r.out
    # the per-class report, in the run's report/: each level's recall weighted by support is its accuracy
    report = run_dir / "report"
    assert f"per-class report in {report}: per_class.csv, report.md, confusion_l1.png" in r.out
    rows = list(csv.DictReader(open(report / "per_class.csv")))
    for k in (1, 2, 3):
        level = [row for row in rows if row["level"] == str(k)]
        assert sum(int(row["support"]) for row in level) == 400
        recalled = sum(float(row["recall"]) * int(row["support"]) for row in level) / 400
        assert recalled == pytest.approx(test_metrics[f"test/acc_l{k}"], abs=1e-5)
        with Image.open(report / f"confusion_l{k}.png") as img:
            assert img.size[0] >= 600 and len(np.unique(np.asarray(img.convert("RGB")).reshape(-1, 3), axis=0)) > 20
    elsewhere = cli("test", "--ckpt", run_dir / "checkpoints" / "best.ckpt", "--report-dir", tmp_path / "rep",
                    "--decode", "consistent")
    assert elsewhere.code == 0 and (tmp_path / "rep" / "report.md").is_file()
    assert "consistent decoding" in (tmp_path / "rep" / "report.md").read_text()
    (tmp_path / "a-file").write_text("x")
    bad = cli("test", "--ckpt", run_dir / "checkpoints" / "best.ckpt", "--report-dir", tmp_path / "a-file")
    assert_one_line_error(bad, "--report-dir", "a-file", "is a file")
    assert bad.code == 2
    loose = tmp_path / "loose.ckpt"
    loose.write_bytes((run_dir / "checkpoints" / "best.ckpt").read_bytes())
    r = cli("test", "--ckpt", loose)
    assert r.code == 0 and "no per-class report" in r.out and "--report-dir" in r.out
    consistent = cli("test", "--ckpt", run_dir / "checkpoints" / "best.ckpt", "--decode", "consistent", "--output",
                     tmp_path / "c.json")
    assert consistent.code == 0, consistent
    assert json.loads((tmp_path / "c.json").read_text())["test/hvr"] == 0.0
    again = cli("test", "--ckpt", run_dir / "checkpoints" / "best.ckpt", "--output", out)
    assert_one_line_error(again, "--output", "exists", "--overwrite")


def test_predict_writes_one_row_per_input(trained_run, cli, tmp_path):
    run_dir, _ = trained_run

    h, _, _, x_test, y_test = make_synthetic()
    np.save(tmp_path / "batch.npy", x_test[:5].numpy())
    np.save(tmp_path / "one.npy", x_test[5].numpy())
    out = tmp_path / "preds.csv"
    r = cli("predict", "--ckpt", run_dir / "checkpoints" / "best.ckpt", tmp_path / "batch.npy", tmp_path / "one.npy",
            "--output", out)
    assert r.code == 0, r
    lines = out.read_text().splitlines()
    assert lines[0] == "input,label_l1,score_l1,label_l2,score_l2,label_l3,score_l3,path_score,consistent"
    assert len(lines) == 1 + 6
    assert lines[1].startswith(f"{tmp_path / 'batch.npy'}:0,") and lines[6].startswith(f"{tmp_path / 'one.npy'},")
    rows = [line.split(",") for line in lines[1:]]
    truth = [h.classes[0][i] for i in y_test[:6, 0].tolist()]
    assert sum(r[1] == t for r, t in zip(rows, truth)) >= 4  # a trained model gets most right
    assert all(0.0 <= float(r[k]) <= 1.0 for r in rows for k in (2, 4, 6))
    printed = cli("predict", "--ckpt", run_dir / "checkpoints" / "best.ckpt", tmp_path / "one.npy")
    assert printed.out.strip().splitlines()[1] == lines[6]


def test_run_dir_is_never_overwritten_silently(trained_run, cli):
    run_dir, _ = trained_run
    before = (run_dir / "metrics.json").read_text()
    r = cli("fit", *FAST, "--run-dir", run_dir)
    assert_one_line_error(r, str(run_dir), "--overwrite", "--resume")
    assert (run_dir / "metrics.json").read_text() == before
    finished = cli("fit", "--resume", run_dir)
    assert_one_line_error(finished, "finished")


def test_overwrite_replaces_a_run_but_never_a_foreign_folder(cli, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    assert cli("fit", *FAST, "--epochs", "1", "--run-dir", run_dir).code == 0
    old = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    # the new run cannot write its first checkpoint: the old run is kept, whole
    real = checkpoint_module.atomic_write

    def full_disk(path, write):
        if Path(path).name == "last.ckpt":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, write)

    monkeypatch.setattr(checkpoint_module, "atomic_write", full_disk)
    r = cli("fit", *FAST, "--epochs", "1", "--run-dir", run_dir, "--overwrite", "--seed", "5")
    assert_one_line_error(r, "last.ckpt': no space left on the device",
                          f"the run it was to replace is back in {run_dir}")
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == old
    monkeypatch.setattr(checkpoint_module, "atomic_write", real)
    r = cli("fit", *FAST, "--epochs", "1", "--run-dir", run_dir, "--overwrite", "--seed", "5")
    assert r.code == 0, r
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["seed"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "run"]  # the old run is gone, nothing aside
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    for overwrite in ([], ["--overwrite"]):
        r = cli("fit", *FAST, "--run-dir", foreign, *overwrite)
        assert_one_line_error(r, "not an hcal run", "never deletes")
        assert "--overwrite" not in r.err
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_resume_continues_from_last_checkpoint(cli, tmp_path):
    run_dir = tmp_path / "run"
    assert cli("fit", *FAST, "--epochs", "1", "--run-dir", run_dir).code == 0
    steps_per_epoch = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    # Pretend the run was stopped after epoch 1 of 2: drop its result, ask for 2 epochs.
    (run_dir / "metrics.json").unlink()
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["epochs"] = 2
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    r = cli("fit", "--resume", run_dir)
    assert r.code == 0, r
    info = json.loads((run_dir / "run.json").read_text())
    assert info["epochs_completed"] == 2
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2 * steps_per_epoch
    assert (run_dir / "metrics.json").is_file()
    differ = cli("fit", "--resume", run_dir, "--seed", "9")
    assert differ.code != 0


def test_resume_with_more_epochs_extends_a_finished_run(cli, tmp_path):
    run_dir = tmp_path / "run"
    first = [*FAST, "--epochs", "1", "--limit-batches", "3", "--deterministic", "--run-dir", run_dir]
    assert cli("fit", *first).code == 0
    shutil.copytree(run_dir, tmp_path / "moved")  # a user moves (or copies) a run, then extends it there
    r = cli("fit", "--resume", run_dir, "--epochs", "2", "--no-progress")
    assert r.code == 0, r
    assert "epoch 2/2:" in r.out and "epoch 1/2" not in r.out  # the new epoch only
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["epochs"] == 2
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
    info = json.loads((run_dir / "run.json").read_text())
    assert [(h["command"], h["epochs_completed"]) for h in info["history"]] == [
        (f"hcal fit {' '.join(map(str, first))}", 1), (f"hcal fit --resume {run_dir} --epochs 2 --no-progress", 2)]
    assert info["train_seconds"] >= info["history"][1]["train_seconds"] and info["sessions"] == 2
    assert "over 2 sessions" in r.out
    assert "callbacks used to create the checkpoint" not in r.err  # Lightning found the checkpoint callbacks' state
    # with the constant learning rate, the extended run is the run of 2 epochs from the start
    assert cli("fit", *first[:-1], tmp_path / "direct", "--epochs", "2").code == 0
    assert (run_dir / "metrics.json").read_text() == (tmp_path / "direct" / "metrics.json").read_text()
    assert cli("fit", "--resume", tmp_path / "moved", "--epochs", "2").code == 0
    assert (tmp_path / "moved" / "metrics.json").read_text() == (run_dir / "metrics.json").read_text()
    best = Path(json.loads((tmp_path / "moved" / "run.json").read_text())["best_checkpoint"])
    assert best.parent == tmp_path / "moved" / "checkpoints" and best.is_file()
    epochs = {row["epoch"] for row in csv.DictReader(open(run_dir / "logs" / "csv" / "metrics.csv"))
              if row["val/acc_l1"]}
    assert epochs == {"0", "1"}  # the first session's log is kept
    assert_one_line_error(cli("fit", "--resume", run_dir, "--epochs", "2"), "finished", "--epochs N")
    assert_one_line_error(cli("fit", "--resume", run_dir, "--epochs", "1"), "--epochs 1", "trained 2 epochs")
    cosine = tmp_path / "cosine"
    assert cli("fit", *FAST, "--epochs", "1", "--limit-batches", "2", "--scheduler", "cosine",
               "--run-dir", cosine).code == 0
    assert_one_line_error(cli("fit", "--resume", cosine, "--epochs", "3"), "--scheduler cosine", "cannot be extended")
    assert (cosine / "metrics.json").is_file()  # refused: the run is as it was


def test_help_starts_without_torch():
    """``hcal --help`` and each command's help import neither torch nor Lightning (the engine loads on use)."""
    code = ("import sys\nfrom hcal.cli import main\nfor argv in (['--help'], ['fit', '--help'], ['test', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'lightning', 'matplotlib'}))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "[]", r


def test_resume_with_disagreeing_flags_names_the_keys(cli, tmp_path):
    run_dir = tmp_path / "run"
    assert cli("fit", *FAST, "--epochs", "1", "--run-dir", run_dir).code == 0
    (run_dir / "metrics.json").unlink()
    r = cli("fit", "--resume", run_dir, "--seed", "9", "--lr", "0.5")
    assert_one_line_error(r, "seed: run has 0, flag gives 9", "lr: run has 0.01, flag gives 0.5")


def test_yaml_config_and_flag_precedence(cli, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("dataset: synthetic\nepochs: 1\nbatch_size: 64\nseed: 4\nprogress: false\n")
    run_dir = tmp_path / "run"
    r = cli("fit", "--config", cfg, "--seed", "8", "--run-dir", run_dir)
    assert r.code == 0, r
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (saved["batch_size"], saved["seed"], saved["epochs"]) == (64, 8, 1)


def test_consistent_decoding_through_fit(cli, tmp_path):
    r = cli("fit", *FAST, "--epochs", "1", "--decode", "consistent", "--run-dir", tmp_path / "r")
    assert r.code == 0, r
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["test/hvr"] == 0.0


def test_debug_shows_the_traceback(tmp_path):
    r = run_hcal_subprocess("fit", "--dataset", "nope", "--debug")
    assert r.code != 0 and "Traceback" in r.err and "unknown dataset 'nope'" in r.err


def test_listings(cli):
    for family, expected in (("methods", "hcal"), ("backbones", "resnet18-cifar"), ("datasets", "fashion-mnist"),
                             ("weightings", "awa")):
        r = cli(family)
        assert r.code == 0 and expected in r.out


def test_deterministic_runs_write_identical_metrics(cli, tmp_path):
    args = [*FAST, "--epochs", "2", "--deterministic", "--seed", "11"]
    assert cli("fit", *args, "--run-dir", tmp_path / "a").code == 0
    assert cli("fit", *args, "--run-dir", tmp_path / "b").code == 0
    a = (tmp_path / "a" / "metrics.json").read_text()
    assert a == (tmp_path / "b" / "metrics.json").read_text()
    assert cli("fit", *FAST, "--epochs", "2", "--deterministic", "--seed", "12", "--run-dir", tmp_path / "c").code == 0
    assert (tmp_path / "c" / "metrics.json").read_text() != a  # the seed matters: the check can fail


def test_fit_trains_through_the_concept_modules_and_awa(cli, tmp_path, monkeypatch):
    """A real ``hcal fit`` step calls every concept function and AWA (counted, not assumed)."""
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


def test_fit_with_path_weight_trains_through_the_path_loss(cli, tmp_path, monkeypatch):
    """--path-weight (hcal's own) reaches training: a real fit calls hcal.path_loss at every step, and
    not at all without it."""
    calls = {"path_level_nll": 0}
    module = importlib.import_module("hcal.path_loss")
    original = module.path_level_nll

    def counted(*args, **kwargs):
        calls["path_level_nll"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "path_level_nll", counted)
    common = ("fit", "--dataset", "synthetic", "--method", "hcal-ps", "--epochs", "1", "--limit-batches", "2",
              "--no-progress")
    assert cli(*common, "--run-dir", tmp_path / "off").code == 0 and calls["path_level_nll"] == 0
    r = cli(*common, "--path-weight", "0.5", "--run-dir", tmp_path / "on")
    assert r.code == 0, r
    assert calls["path_level_nll"] >= 2  # two training batches
    assert yaml.safe_load((tmp_path / "on" / "config.yaml").read_text())["path_weight"] == 0.5
    bad = cli(*common, "--path-weight", "2", "--run-dir", tmp_path / "bad")
    assert bad.code == 2 and "--path-weight" in bad.err and "in [0, 1]" in bad.err


def test_fit_with_ce_weight_trains_and_restores_the_cross_entropy_heads(cli, tmp_path):
    """--ce-weight (hcal's own) builds a linear head per level that training moves, the checkpoint
    keeps it and `hcal test` rebuilds the model from the checkpoint alone."""
    run_dir = tmp_path / "ce"
    r = cli("fit", "--dataset", "synthetic", "--method", "hcal-ps", "--no-mtl", "--ce-weight", "0.5", "--epochs", "1",
            "--limit-batches", "2", "--no-progress", "--run-dir", run_dir)
    assert r.code == 0, r
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    heads = sorted(k for k in state if ".ce_heads." in k)
    assert len(heads) == 2 * 3  # weight and bias of each of the synthetic tree's three levels
    tested = cli("test", "--ckpt", run_dir / "checkpoints" / "best.ckpt", "--output", tmp_path / "m.json")
    assert tested.code == 0, tested
    bad = cli("fit", "--dataset", "synthetic", "--method", "single", "--ce-weight", "0.5", "--run-dir", tmp_path / "b")
    assert bad.code == 2 and "--ce-weight" in bad.err and "hcal, hcal-ps" in bad.err and "Traceback" not in bad.err


def test_fit_with_projection_none_trains_prototypes_on_the_backbone_features(cli, tmp_path):
    """--projection none (hcal's own): the checkpoint has no projection and prototypes of the
    backbone's width; `hcal test` rebuilds that model from the checkpoint alone."""
    run_dir = tmp_path / "noproj"
    r = cli("fit", "--dataset", "synthetic", "--backbone", "linear", "--method", "hcal-ps", "--projection", "none",
            "--epochs", "1", "--limit-batches", "2", "--no-progress", "--run-dir", run_dir)
    assert r.code == 0, r
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert not [k for k in state if ".projection." in k]
    widths = {v.shape[1] for k, v in state.items() if ".prototypes." in k}
    assert widths == {16}  # the synthetic data's 16 features (the linear backbone), not the default embed_dim 256
    tested = cli("test", "--ckpt", run_dir / "checkpoints" / "best.ckpt", "--output", tmp_path / "m.json")
    assert tested.code == 0, tested
    bad = cli("fit", "--dataset", "synthetic", "--projection", "none", "--embed-dim", "8", "--run-dir", tmp_path / "b")
    assert bad.code == 2 and "--embed-dim 8" in bad.err and "--projection none" in bad.err
    assert len(bad.err.strip().splitlines()) == 1


def test_recommended_config_runs_on_any_dataset(cli, tmp_path):
    """configs/recommended.yaml names no dataset, backbone or epochs: they come from the command line."""
    run = tmp_path / "run"
    r = cli("fit", "--config", ROOT / "configs" / "recommended.yaml", "--dataset", "synthetic", "--epochs", "1",
            "--no-progress", "--run-dir", run)
    assert r.code == 0, r
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert (saved["method"], saved["decode"], saved["mtl"]) == ("hcal-ps", "consistent", False)
    assert saved["dataset"] == "synthetic"
    assert json.loads((run / "metrics.json").read_text())["test/hvr"] == 0.0

