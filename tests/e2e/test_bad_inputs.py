"""The bad-input table: flags, YAML configs, hierarchies, datasets, checkpoints and run directories.

Each case must exit non-zero (2 for user errors) with one line on stderr that names the problem, and no
traceback; a fit leaves no run directory. No message ever suggests loading a file unsafely."""

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.fixtures import NESTED_PATHS, make_flat, make_nested, write_image
from tests.helpers import assert_one_line_error


class Absent(str):
    """A fragment the error line must not contain."""


UNSAFE = ("allow_pickle", "weights_only")  # never suggested: loading an unknown file so can run its code


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
    elif kind == "foreign_folder":
        (tmp / "mine").mkdir()
        (tmp / "mine" / "thesis.tex").write_text("precious")
    elif kind == "eight_bytes_ckpt":
        (tmp / "m.ckpt").write_text("12345678")
    elif kind in ("manifest_relabelled", "manifest_leak"):
        for i in range(4):
            write_image(tmp / "img" / f"{i}.png", i)
        rows = ["img/0.png,A,x,train", "img/1.png,B,y,train", "img/2.png,A,x,test", "img/3.png,B,y,test"]
        rows.append("img/0.png,B,y,train" if kind == "manifest_relabelled" else "img/1.png,B,y,test")
        (tmp / "m.csv").write_text("path,group,leaf,split\n" + "\n".join(rows) + "\n")
    elif kind == "single_class_level":
        _features(tmp, [("All", "m", "x"), ("All", "n", "y")])
    elif kind in ("complex_features", "no_columns"):
        x = np.ones((40, 3), complex) if kind == "complex_features" else np.ones((40, 0), "float32")
        np.savez(tmp / "f.npz", X=x, paths=np.array([("A", "x")] * 20 + [("B", "y")] * 20))
    elif kind == "text_npz":
        (tmp / "f.npz").write_text("label,x\ncat,1\n")
    elif kind == "one_sample_npz":
        np.savez(tmp / "f.npz", X=np.ones((1, 3), "float32"), paths=np.array([("A", "x")]))
    elif kind == "reversed_tree":
        make_flat(tmp / "data", [p[-1] for p in NESTED_PATHS], per_class=2)
        (tmp / "tree.csv").write_text("".join(",".join(p) + "\n" for p in NESTED_PATHS))  # coarsest first
    elif kind == "self_loop_tree":
        make_flat(tmp / "data", ["cat", "dog"], per_class=2)
        (tmp / "tree.json").write_text('{"parents": {"cat": "cat", "dog": "Pet", "Pet": "Animal"}}')
    elif kind == "bad_image_mid_epoch":
        root = make_nested(tmp / "data", per_class=2, size=(20, 20))
        (root / "train" / "Vehicle" / "Road" / "car" / "000.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    return kind


MISSING = "/does/not/exist"  # a data path that fails as soon as anything opens it: errors above it come first
TREE = ["--dataset-arg", "hierarchy={tmp}/tree.json"]
FEATURES = ["fit", "--dataset", "features", "--data-dir", "{tmp}/f.npz"]
FOLDER = ["fit", "--dataset", "folder", "--data-dir", "{tmp}/data", "--dataset-arg", "size=16", "--backbone",
          "small-cnn", "--epochs", "1", "--no-progress"]

CASES = [
    # values of command-line flags (config.py's checks)
    ("flag", None, ["fit", "--epochs", "-1"], ["--epochs", ">= 1", "-1"]),
    ("flag", None, ["fit", "--epochs", "two"], ["--epochs", "invalid int value", "'two'"]),
    ("flag", None, ["fit", "--batch-size", "0"], ["--batch-size", ">= 1", "got 0"]),
    ("flag", None, ["fit", "--epsilon", "-0.01"], ["--epsilon", ">= 0", "-0.01"]),
    ("flag", None, ["fit", "--gamma", "0"], ["--gamma", "> 0", "got 0.0"]),
    ("flag", None, ["fit", "--tau", "0"], ["--tau", "> 0"]),
    ("flag", None, ["fit", "--val-fraction", "1.5"], ["--val-fraction", "between 0 and 1", "1.5"]),
    ("flag", None, ["fit", "--momentum", "1"], ["--momentum", "[0, 1)"]),
    ("flag", None, ["fit", "--cagrad-c", "1"], ["--cagrad-c", "[0, 1)"]),
    ("flag", None, ["fit", "--experts", "0"], ["--experts", ">= 1"]),
    ("flag", None, ["fit", "--lr", "nan"], ["--lr", "nan"]),
    ("flag", None, ["fit", "--limit-batches", "0"], ["--limit-batches", ">= 1"]),
    ("flag", None, ["fit", "--precision", "8"], ["--precision", "one of 32, bf16-mixed, 16-mixed"]),
    ("flag", None, ["fit", "--decode", "greedy"], ["--decode", "one of nearest, consistent", "greedy"]),
    ("flag", None, ["fit", "--seed", "1.5"], ["--seed", "invalid int value"]),
    ("flag", None, ["fit", "--no-such-flag"], ["unrecognized arguments", "--no-such-flag"]),
    ("flag", None, ["fit", "--dataset", "synthetic", "--dataset-arg", "levels"], ["--dataset-arg", "KEY=VALUE"]),
    ("flag", None, ["test", "--ckpt", "{tmp}/none.ckpt", "--decode", "greedy"], ["--decode", "one of nearest"]),
    ("flag", None, ["test", "--ckpt", "{tmp}/none.ckpt", "--device", "tpu"], ["--device", "one of auto, cpu, cuda"]),
    ("flag", None, ["test", "--ckpt", "{tmp}/none.ckpt", "--limit-batches", "0"], ["--limit-batches", ">= 1"]),
    ("flag", None, ["predict", "--ckpt", "{tmp}/none.ckpt", "x.npy", "--batch-size", "0"], ["--batch-size", ">= 1"]),
    ("flag", None, ["experiment", "sweep", "--param", "lr", "--values", "1"], ["--param", "invalid choice", "gamma"]),
    # names and options, checked before any data or checkpoint is opened
    ("names", None, ["fit", "--method", "no-such", "--dataset", "folder", "--data-dir", MISSING],
     ["unknown method 'no-such'", "choose one of", "cagrad", "hcal", "uw"]),
    ("names", None, ["fit", "--dataset", "cifar1000", "--data-dir", MISSING],
     ["unknown dataset 'cifar1000'", "fashion-mnist", "synthetic"]),
    ("names", None, ["fit", "--dataset", "synthetic", "--method", "hcal2"], ["unknown method 'hcal2'", "hcal"]),
    ("names", None, ["fit", "--dataset", "folder", "--data-dir", MISSING, "--backbone", "resnet50"],
     ["unknown backbone 'resnet50'", "resnet18-cifar", "small-cnn"]),
    ("names", None, ["fit", "--dataset", "folder", "--data-dir", MISSING, "--dataset-arg", "colour=red"],
     ["dataset 'folder' has no option 'colour'", "hierarchy"]),
    ("names", None, ["fit", "--dataset", "synthetic", "--dataset-arg", "levels=many"],
     ["'levels'", "expected an integer", "many"]),
    ("names", None, ["fit", "--dataset", "folder", "--data-dir", MISSING, "--monitor", "val/accuracy"],
     ["--monitor", "val/accuracy", "val/acc_l1"]),
    ("names", None, ["fit", "--dataset", "folder", "--data-dir", MISSING, "--method", "ew", "--tau", "0.2"],
     ["--tau", "does not apply to method 'ew'", "applies to hcal"]),
    ("names", None, ["fit", "--dataset", "folder", "--data-dir", MISSING, "--cagrad-c", "0.3", "--experts", "4"],
     ["--cagrad-c, --experts", "do not apply to method 'hcal'", "--cagrad-c applies to cagrad",
      "--experts applies to dmt, mmoe"]),
    ("names", None, ["test", "--ckpt", "{tmp}/none.ckpt", "--dataset", "no-such"], ["unknown dataset 'no-such'"]),
    ("names", None, ["experiment", "compare", "--methods", "hcal,no-such", "--dataset", "folder", "--data-dir", MISSING,
                     "--out", "{tmp}/o"], ["unknown method 'no-such'"]),
    ("names", None, ["experiment", "compare", "--methods", "hcal,ew", "--dataset", "folder", "--data-dir", MISSING,
                     "--gamma", "1", "--out", "{tmp}/o"], ["--gamma", "does not apply to method 'ew'"]),
    ("names", None, ["experiment", "sweep", "--param", "tau", "--values", "0.1", "--dataset", "folder", "--data-dir",
                     MISSING, "--backbone", "vgg99", "--out", "{tmp}/o"], ["unknown backbone 'vgg99'"]),
    # values that need the data
    ("data", None, ["fit", "--dataset", "synthetic", "--backbone", "small-cnn"],
     ["backbone 'small-cnn' takes image inputs", "16-d feature vectors"]),
    ("data", None, ["fit", "--dataset", "synthetic", "--monitor", "val/acc_l4"], ["--monitor", "val/acc_l4",
                                                                                  "val/acc_l3"]),
    ("data", None, ["fit", "--dataset", "synthetic", "--dataset-arg", "levels=1"], ["levels >= 2"]),
    # YAML configs
    ("config", None, ["fit", "--config", "/no/such.yaml"], ["--config", "/no/such.yaml", "does not exist"]),
    ("config", "config_folder", ["fit", "--config", "{tmp}/cfg"], ["--config", "is a folder"]),
    ("config", "config_binary", ["fit", "--config", "{tmp}/c.yaml"], ["cannot read", "c.yaml"]),
    ("config", "config_list", ["fit", "--config", "{tmp}/c.yaml"], ["expected a mapping", "c.yaml"]),
    ("config", "config_type", ["fit", "--config", "{tmp}/c.yaml"], ["'batch_size'", "an integer", "'32'"]),
    # datasets and hierarchies
    ("data", None, ["fit", "--data-dir", "/no/such/folder"], ["--data-dir", "/no/such/folder", "does not exist"]),
    ("data", "data_file", ["fit", "--data-dir", "{tmp}/data.txt"], ["--data-dir", "data.txt",
                                                                    "is a file, not a folder"]),
    ("data", None, ["fit", "--dataset", "features"], ["needs --data-dir"]),
    ("data", "two_parents", ["fit", "--dataset", "features", "--data-dir", "{tmp}/f.npz"], ["'m'", "two parents"]),
    ("data", "ragged", ["fit", "--dataset", "features", "--data-dir", "{tmp}/f.npz"],
     ["'X' has 3 rows but 'paths' has 2"]),
    ("hierarchy", "bad_tree", ["fit", "--dataset", "features", "--data-dir", "{tmp}/f.npz", *TREE],
     ["tree.json", "'m'", "two parents"]),
    ("hierarchy", "tree_not_json", ["fit", "--dataset", "features", "--data-dir", "{tmp}/f.npz", *TREE],
     ["tree.json", "not valid JSON"]),
    # checkpoints and run directories
    ("checkpoint", None, ["test", "--ckpt", "{tmp}/none.ckpt"], ["none.ckpt", "does not exist"]),
    ("checkpoint", "truncated_ckpt", ["test", "--ckpt", "{tmp}/m.ckpt"], ["m.ckpt", "truncated"]),
    ("checkpoint", "text_ckpt", ["predict", "--ckpt", "{tmp}/m.ckpt", "x.png"], ["m.ckpt", "not a torch checkpoint"]),
    ("checkpoint", "foreign_ckpt", ["test", "--ckpt", "{tmp}/m.ckpt"], ["m.ckpt", "not written by hcal"]),
    ("run", "not_a_run", ["fit", "--resume", "{tmp}/dir"], ["--resume", "not a run directory"]),
    ("run", None, ["fit", "--resume", "{tmp}/missing"], ["--resume", "not a run directory"]),
    # limits checked up front, before anything large is allocated
    ("flag", None, ["fit", "--seed", "-5"], ["--seed", "in [0, 4294967295]", "-5"]),
    ("flag", None, ["fit", "--seed", str(10**23)], ["--seed", "in [0, 4294967295]", str(10**23)]),
    ("flag", None, ["experiment", "compare", "--seeds=-1,2", "--dataset", "synthetic", "--out", "{tmp}/o"],
     ["--seeds", "in [0, 4294967295]", "-1"]),
    ("data", None, ["fit", "--dataset", "synthetic", "--batch-size", "1"],
     ["--batch-size 1", "backbone 'mlp' uses batch normalisation", "--batch-size 2 or more"]),
    ("data", None, ["fit", "--dataset", "synthetic", "--dataset-arg", "levels=1000"],
     ["levels=1000", "2**1000 leaf classes", "at most 100000"]),
    ("data", None, ["fit", "--dataset", "synthetic", "--dataset-arg", "dim=1000000000"],
     ["dim=1000000000", "GiB of memory", "at most 4 GiB"]),
    ("data", None, ["fit", "--dataset", "folder", "--data-dir", MISSING, "--dataset-arg", "size=100000"],
     ["size=100000 is too large", "N <= 4096"]),
    # dataset options of the wrong type: never truncated, never any string taken for true
    ("names", None, ["fit", "--dataset", "synthetic", "--dataset-arg", "levels=2.5"],
     ["option 'levels'", "expected an integer", "2.5"]),
    ("names", None, ["fit", "--dataset", "folder", "--data-dir", MISSING, "--dataset-arg", "verify=maybe"],
     ["option 'verify'", "expected true or false", "'maybe'"]),
    ("names", None, ["fit", "--dataset", "synthetic", "--dataset-arg", "levels=true"],
     ["option 'levels'", "expected an integer", "True"]),
    # bad data that used to be accepted silently
    ("data", "manifest_relabelled", ["fit", "--dataset", "csv", "--data-dir", "{tmp}/m.csv"],
     ["m.csv, line 6", "img/0.png", "with labels B > y here but A > x on line 2", "one label path"]),
    ("data", "manifest_leak", ["fit", "--dataset", "csv", "--data-dir", "{tmp}/m.csv"],
     ["m.csv, line 6", "img/1.png", "in split 'test' here and 'train' on line 3", "leaks the test set"]),
    ("data", "single_class_level", FEATURES, ["level 3 of 3 has one class only ('All')", "inflates the mean"]),
    ("data", "complex_features", FEATURES, ["f.npz", "complex numbers", "real features"]),
    ("data", "no_columns", FEATURES, ["f.npz", "0 columns", "at least one feature"]),
    ("hierarchy", "reversed_tree", [*FOLDER, "--dataset-arg", "hierarchy={tmp}/tree.csv"],
     ["tree.csv', line 1", "coarsest first (Animal,Pet,cat)", "finest first", "(cat,Pet,Animal)", Absent("under")]),
    ("hierarchy", "self_loop_tree", [*FOLDER, *TREE], ["tree.json", "'cat' is its own parent", Absent("not a leaf")]),
    # messages that used to mislead
    ("data", "text_npz", FEATURES, ["f.npz", "not an .npz archive", "np.savez"]),
    ("data", "one_sample_npz", FEATURES,
     ["--dataset-arg test_fraction=0.2 of 1 sample", "for test", Absent("val_fraction"), Absent("--val-fraction")]),
    ("checkpoint", "eight_bytes_ckpt", ["test", "--ckpt", "{tmp}/m.ckpt"], ["m.ckpt", "not a torch checkpoint",
                                                                            "8 bytes"]),
    ("run", "foreign_folder", ["fit", "--dataset", "synthetic", "--run-dir", "{tmp}/mine"],
     ["'" + "{tmp}/mine" + "'", "not an hcal run", "never deletes", Absent("--overwrite")]),
    ("checkpoint", "text_ckpt", ["visualize", "--ckpt", "{tmp}/m.ckpt", "--init-ckpt", "{tmp}/none.ckpt"],
     ["--init-ckpt", "none.ckpt", "does not exist"]),
    # a bad image found mid-epoch, before the first checkpoint: one line, and the run directory removed
    ("data", "bad_image_mid_epoch", [*FOLDER, "--dataset-arg", "in_memory=false"],
     ["car/000.png cannot be read", "nothing was kept in runs/folder-hcal-"]),
]


def _npz(path, paths, n_per=30, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    rows = [p for p in paths for _ in range(n_per)]
    x = rng.normal(size=(len(rows), dim)).astype(np.float32)
    np.savez(path, X=x, paths=np.array(rows))
    return path


@pytest.mark.parametrize("category, setup, argv, fragments", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input(cli, tmp_path, category, setup, argv, fragments):
    _setup(tmp_path, setup)
    r = cli(*[a.replace("{tmp}", str(tmp_path)) for a in argv])
    fragments = [type(f)(f.replace("{tmp}", str(tmp_path))) for f in fragments]
    assert_one_line_error(r, *[f for f in fragments if not isinstance(f, Absent)])
    for fragment in [f for f in fragments if isinstance(f, Absent)] + list(UNSAFE):
        assert fragment not in r.err, (fragment, r.err)
    assert r.code == 2, r
    assert not any(p.is_dir() for p in Path("runs").glob("*")), "a failed fit left a run directory"
    assert not (tmp_path / "o").exists(), "a failed experiment left its folder"


def test_table_covers_every_category():
    assert len(CASES) >= 20
    assert {c[0] for c in CASES} >= {"flag", "names", "config", "data", "hierarchy", "checkpoint", "run"}


def test_device_cuda_without_a_gpu(cli):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    r = cli("fit", "--dataset", "synthetic", "--device", "cuda", "--no-progress")
    assert_one_line_error(r, "--device cuda", "no CUDA GPU")


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
    again = cli("predict", "--ckpt", ckpt, tmp_path / "ok.npy", "--output", tmp_path / "p.csv")
    assert_one_line_error(again, "exists", "--overwrite")
    # rows that cannot be predicted: one line naming the file and row by default, an error column with --skip-bad
    rows = np.ones((3, 16), "float32")
    rows[1, 4] = np.nan
    np.save(tmp_path / "nan.npy", rows)
    np.save(tmp_path / "none.npy", np.zeros((0, 16), "float32"))
    r = cli("predict", "--ckpt", ckpt, tmp_path / "nan.npy", tmp_path / "none.npy")
    assert_one_line_error(r, f"{tmp_path / 'nan.npy'}:1", "non-finite value (nan)", "2 inputs in all", "--skip-bad")
    assert r.code == 2
    assert_one_line_error(cli("predict", "--ckpt", ckpt, tmp_path / "none.npy"), "none.npy", "holds no rows")
    r = cli("predict", "--ckpt", ckpt, tmp_path / "nan.npy", tmp_path / "none.npy", "--skip-bad")
    assert r.code == 0, r
    table = list(csv.DictReader(io.StringIO(r.out)))
    assert [row["error"] != "" for row in table] == [False, True, False, True]
    assert table[3]["input"] == str(tmp_path / "none.npy") and table[3]["label_l1"] == ""
    assert_one_line_error(cli("predict", "--ckpt", ckpt, tmp_path / "ok.npy", "--top-k", "-2"), "--top-k -2", ">= 0")


def test_bad_yaml_config(cli, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("epochs: 3\nlearning_rate: 0.1\n")
    assert_one_line_error(cli("fit", "--config", cfg), "unknown key 'learning_rate'", str(cfg))
    cfg.write_text("epochs: [3\n")
    assert_one_line_error(cli("fit", "--config", cfg), "not valid YAML", "line")
    cfg.write_text("gamma: -1\n")
    assert_one_line_error(cli("fit", "--config", cfg), "'gamma'", "> 0", "-1")


def test_features_dataset_with_a_class_under_two_parents(cli, tmp_path):
    f = _npz(tmp_path / "f.npz", [("A", "a1", "x"), ("B", "a1", "y")])
    assert_one_line_error(cli("fit", "--dataset", "features", "--data-dir", f), "f.npz", "'a1'", "two parents")


def test_features_dataset_with_a_label_not_in_the_hierarchy(cli, tmp_path):
    f = _npz(tmp_path / "f.npz", [("A", "a1", "x"), ("A", "a1", "q")])
    tree = tmp_path / "tree.json"
    tree.write_text(json.dumps({"paths": [["A", "a1", "x"], ["A", "a2", "y"]]}))
    r = cli("fit", "--dataset", "features", "--data-dir", f, "--dataset-arg", f"hierarchy={tree}")
    assert_one_line_error(r, "f.npz", "label 'q' is not a class of level 1")
