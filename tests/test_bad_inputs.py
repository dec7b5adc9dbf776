"""The bad-input table: flags, YAML configs, hierarchies, datasets and checkpoints.

Each case must exit non-zero with one line on stderr that names the problem, and no traceback.
"""

import json

import numpy as np
import pytest
import torch

from .conftest import assert_one_line_error


def _features(tmp, paths, name="f.npz"):
    rows = [p for p in paths for _ in range(20)]
    np.savez(tmp / name, X=np.random.default_rng(0).normal(size=(len(rows), 4)).astype("float32"), paths=np.array(rows))
    return tmp / name


def _setup(tmp, kind):
    """Files a case needs; returns the argv with {tmp} filled in."""
    if kind == "config_folder":
        (tmp / "cfg").mkdir()
    elif kind == "config_binary":
        (tmp / "c.yaml").write_bytes(b"\xff\xfe\x00bad")
    elif kind == "config_list":
        (tmp / "c.yaml").write_text("- epochs\n- 3\n")
    elif kind == "config_type":
        (tmp / "c.yaml").write_text("batch_size: '32'\n")
    elif kind == "data_file":
        (tmp / "data.txt").write_text("not a folder")
    elif kind == "two_parents":
        _features(tmp, [("A", "m", "x"), ("B", "m", "y")])
    elif kind == "ragged":
        np.savez(tmp / "f.npz", X=np.zeros((3, 4), "float32"), paths=np.array([["A", "x"], ["A", "y"]]))
    elif kind == "bad_tree":
        _features(tmp, [("A", "m", "x")])
        (tmp / "tree.json").write_text('{"paths": [["A", "m", "x"], ["B", "m", "y"]]}')
    elif kind == "tree_not_json":
        _features(tmp, [("A", "m", "x")])
        (tmp / "tree.json").write_text("{paths: oops}")
    elif kind == "truncated_ckpt":
        torch.save({"w": torch.randn(200, 200)}, tmp / "m.ckpt")
        (tmp / "m.ckpt").write_bytes((tmp / "m.ckpt").read_bytes()[:3000])
    elif kind == "foreign_ckpt":
        torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp / "m.ckpt")
    elif kind == "text_ckpt":
        (tmp / "m.ckpt").write_text("hello")
    elif kind == "not_a_run":
        (tmp / "dir").mkdir()
    return kind


CASES = [
    # command-line flags
    ("flag", None, ["fit", "--epochs", "-1"], ["--epochs", ">= 1", "-1"]),
    ("flag", None, ["fit", "--batch-size", "0"], ["--batch-size", ">= 1", "0"]),
    ("flag", None, ["fit", "--epsilon", "-0.01"], ["--epsilon", ">= 0"]),
    ("flag", None, ["fit", "--gamma", "-1"], ["--gamma", "> 0"]),
    ("flag", None, ["fit", "--tau", "0"], ["--tau", "> 0"]),
    ("flag", None, ["fit", "--val-fraction", "1.5"], ["--val-fraction", "between 0 and 1", "1.5"]),
    ("flag", None, ["fit", "--momentum", "1"], ["--momentum", "[0, 1)"]),
    ("flag", None, ["fit", "--lr", "nan"], ["--lr", "nan"]),
    ("flag", None, ["fit", "--limit-batches", "0"], ["--limit-batches", ">= 1"]),
    ("flag", None, ["fit", "--precision", "8"], ["--precision", "one of 32, bf16-mixed, 16-mixed"]),
    ("flag", None, ["fit", "--seed", "1.5"], ["--seed", "invalid int value"]),
    ("flag", None, ["fit", "--no-such-flag"], ["unrecognized arguments", "--no-such-flag"]),
    ("flag", None, ["fit", "--dataset", "cifar1000"], ["unknown dataset 'cifar1000'", "fashion-mnist"]),
    ("flag", None, ["fit", "--dataset", "synthetic", "--method", "hcal2"], ["unknown method 'hcal2'"]),
    ("flag", None, ["fit", "--dataset", "synthetic", "--backbone", "resnet50"], ["unknown backbone 'resnet50'"]),
    ("flag", None, ["fit", "--dataset", "synthetic", "--dataset-arg", "levels"], ["--dataset-arg", "KEY=VALUE"]),
    ("flag", None, ["fit", "--dataset", "synthetic", "--dataset-arg", "levels=many"], ["'levels'", "expected int", "many"]),
    ("flag", None, ["fit", "--dataset", "synthetic", "--dataset-arg", "levels=1"], ["levels >= 2"]),
    # YAML configs
    ("config", "config_folder", ["fit", "--config", "{tmp}/cfg"], ["--config", "is a folder"]),
    ("config", "config_binary", ["fit", "--config", "{tmp}/c.yaml"], ["cannot read", "c.yaml"]),
    ("config", "config_list", ["fit", "--config", "{tmp}/c.yaml"], ["expected a mapping", "c.yaml"]),
    ("config", "config_type", ["fit", "--config", "{tmp}/c.yaml"], ["'batch_size'", "an integer", "'32'"]),
    # datasets and hierarchies
    ("data", "data_file", ["fit", "--data-dir", "{tmp}/data.txt"], ["--data-dir", "data.txt", "is a file, not a folder"]),
    ("data", None, ["fit", "--dataset", "features"], ["needs --data-dir"]),
    ("data", "two_parents", ["fit", "--dataset", "features", "--data-dir", "{tmp}/f.npz"], ["'m'", "two parents"]),
    ("data", "ragged", ["fit", "--dataset", "features", "--data-dir", "{tmp}/f.npz"], ["'X' has 3 rows but 'paths' has 2"]),
    ("hierarchy", "bad_tree", ["fit", "--dataset", "features", "--data-dir", "{tmp}/f.npz", "--dataset-arg", "hierarchy={tmp}/tree.json"],
     ["tree.json", "'m'", "two parents"]),
    ("hierarchy", "tree_not_json", ["fit", "--dataset", "features", "--data-dir", "{tmp}/f.npz", "--dataset-arg", "hierarchy={tmp}/tree.json"],
     ["tree.json", "not valid JSON"]),
    # checkpoints and run directories
    ("checkpoint", None, ["test", "--ckpt", "{tmp}/none.ckpt"], ["none.ckpt", "does not exist"]),
    ("checkpoint", "truncated_ckpt", ["test", "--ckpt", "{tmp}/m.ckpt"], ["m.ckpt", "truncated"]),
    ("checkpoint", "text_ckpt", ["predict", "--ckpt", "{tmp}/m.ckpt", "x.png"], ["m.ckpt", "not a torch checkpoint"]),
    ("checkpoint", "foreign_ckpt", ["test", "--ckpt", "{tmp}/m.ckpt"], ["m.ckpt", "not written by hcal"]),
    ("run", "not_a_run", ["fit", "--resume", "{tmp}/dir"], ["--resume", "not a run directory"]),
    ("run", None, ["fit", "--resume", "{tmp}/missing"], ["--resume", "not a run directory"]),
]


@pytest.mark.parametrize("category, setup, argv, fragments", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input(cli, tmp_path, category, setup, argv, fragments):
    _setup(tmp_path, setup)
    r = cli(*[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert_one_line_error(r, *fragments)


def test_table_covers_every_category():
    assert len(CASES) >= 20
    assert {c[0] for c in CASES} >= {"flag", "config", "data", "hierarchy", "checkpoint"}


def test_device_cuda_without_a_gpu(cli):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert_one_line_error(cli("fit", "--dataset", "synthetic", "--device", "cuda", "--no-progress"), "--device cuda", "no CUDA GPU")


def test_predict_input_errors(cli, tmp_path):
    run = tmp_path / "run"
    assert cli("fit", "--dataset", "synthetic", "--epochs", "1", "--no-progress", "--run-dir", run).code == 0
    ckpt = run / "checkpoints" / "best.ckpt"
    assert_one_line_error(cli("predict", "--ckpt", ckpt, tmp_path / "nothing.npy"), "nothing.npy", "does not exist")
    (tmp_path / "img.png").write_bytes(b"png?")
    assert_one_line_error(cli("predict", "--ckpt", ckpt, tmp_path / "img.png"), "img.png", ".npy")
    np.save(tmp_path / "wrong.npy", np.zeros((2, 5), "float32"))
    assert_one_line_error(cli("predict", "--ckpt", ckpt, tmp_path / "wrong.npy"), "wrong.npy", "(2, 5)", "16")
    np.save(tmp_path / "ok.npy", np.zeros((1, 16), "float32"))
    assert cli("predict", "--ckpt", ckpt, tmp_path / "ok.npy", "--output", tmp_path / "p.csv").code == 0
    assert_one_line_error(cli("predict", "--ckpt", ckpt, tmp_path / "ok.npy", "--output", tmp_path / "p.csv"), "exists", "--overwrite")


def test_worker_traceback_in_a_message_is_reduced_to_its_last_line():
    from hcal.cli import _one_line
    from hcal.errors import DataError

    wrapped = DataError("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
                        '  File "x.py", line 1\nhcal.errors.DataError: img/3.jpg: not a readable image; remove it')
    assert _one_line(wrapped) == "img/3.jpg: not a readable image; remove it"
    assert _one_line(DataError("plain")) == "plain"
