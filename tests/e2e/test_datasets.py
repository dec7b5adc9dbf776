"""Every dataset through ``hcal fit`` on tiny fixtures in its on-disk format, and every bad-data case as
one line."""

import csv
import json
import os
import pickle

import numpy as np
import pytest
import torch
import torchvision.datasets

from hcal.datasets import cifar100 as c100
from hcal.datasets import create_dataset
from hcal.datasets.cifar10 import CIFAR10_PATHS, cifar10_hierarchy
from hcal.datasets.synthetic import make_synthetic
from hcal.errors import DataError, HierarchyError
from tests.fixtures import (
    CIFAR100_COARSE,
    FIT,
    NESTED_PATHS,
    dump_cifar,
    make_aircraft,
    make_cifar100,
    make_flat,
    make_nested,
    make_tar,
    write_hierarchy_csv,
    write_hierarchy_json,
    write_image,
)
from tests.helpers import assert_one_line_error


def _fit(cli, tmp_path, *args):
    run = tmp_path / "run"
    r = cli("fit", *args, *FIT, "--run-dir", run)
    assert r.code == 0, r
    return r, run, json.loads((run / "metrics.json").read_text())


LEAVES = [p[-1] for p in NESTED_PATHS]


# ------------------------------------------------------------------------------ folder: bad data
def _fit_error(cli, tmp_path, *args):
    return cli("fit", *args, *FIT, "--run-dir", tmp_path / "run")


# --------------------------------------------------------------------------------------------- csv
def _manifest(tmp_path, rows, header="path,group,animal,split"):
    (tmp_path / "m").mkdir(exist_ok=True)
    m = tmp_path / "m" / "labels.csv"
    m.write_text(header + "\n" + "\n".join(rows) + "\n")
    return m


def _csv_rows(tmp_path, n_per=4):
    rows = []
    for split in ("train", "test"):
        for k, (coarse, _, leaf) in enumerate(NESTED_PATHS):
            for i in range(n_per):
                name = f"img/{split}-{leaf}-{i}.png"
                write_image(tmp_path / "m" / name, k * 10 + i)
                rows.append(f"{name},{coarse},{leaf},{split}")
    return rows


@pytest.fixture
def mini_cifar10(tmp_path):
    leaves = [p[-1] for p in CIFAR10_PATHS]
    root = make_flat(tmp_path / "cifar10", leaves, per_class=2, size=(32, 32))
    return root, make_tar(root, tmp_path / "cifar10.tar.gz")


def test_features_dataset_trains(cli, tmp_path):
    h, x, y, _, _ = make_synthetic(levels=2, branching=3)
    paths = np.array([h.decode(row) for row in y.tolist()])
    np.savez(tmp_path / "feats.npz", X=x.numpy(), paths=paths)
    r = cli("fit", "--dataset", "features", "--data-dir", tmp_path / "feats.npz", "--epochs", "2", "--no-progress",
            "--run-dir", tmp_path / "run")
    assert r.code == 0, r
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics) >= {"test/acc_l1", "test/acc_l2", "test/hvr"} and "test/acc_l3" not in metrics
    assert metrics["test/acc_l2"] > 0.9


def test_cifar100_fit(cli, tmp_path):
    make_cifar100(tmp_path / "data", style="py2")
    r, run, metrics = _fit(cli, tmp_path, "--dataset", "cifar100", "--data-dir", tmp_path / "data" / "cifar-100-python")
    assert "levels 2 > 10 classes" in r.out
    assert {"test/acc_l1", "test/acc_l2", "test/hvr", "test/full_path_acc", "test/hf1"} <= set(metrics)
    tree = json.loads((run / "hierarchy.json").read_text())
    assert tree["levels"][0] == CIFAR100_COARSE[:2]


def test_cifar100_refuses_pickled_code(cli, tmp_path):
    folder = make_cifar100(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):

            return (os.system, (f"touch {marker}",))

    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": Evil(), b"coarse_label_names": []}))
    r = cli("fit", "--dataset", "cifar100", "--data-dir", tmp_path, *FIT, "--run-dir", tmp_path / "run")
    assert_one_line_error(r, str(folder / "meta"), "not a CIFAR-100 python-release file", "system")
    assert not marker.exists()
    obj = np.array([1, "a"], dtype=object)
    dump_cifar({b"fine_label_names": obj, b"coarse_label_names": []}, folder / "meta", "bytes")
    with pytest.raises(DataError, match="array of Python objects"):
        create_dataset("cifar100", str(tmp_path))


def test_cifar100_bad_files(cli, tmp_path):
    folder = make_cifar100(tmp_path)

    def fit_error():
        return cli("fit", "--dataset", "cifar100", "--data-dir", tmp_path, *FIT, "--run-dir", tmp_path / "run")

    good = (folder / "train").read_bytes()
    (folder / "train").write_bytes(good[:200])
    assert_one_line_error(fit_error(), str(folder / "train"), "fetch it again")
    dump_cifar({b"data": np.zeros((4, 3072), np.uint8), b"fine_labels": [0, 1, 2]}, folder / "train", "bytes")
    assert_one_line_error(fit_error(), str(folder / "train"), "missing key 'coarse_labels'")
    dump_cifar({b"data": np.zeros((4, 3072), np.uint8), b"fine_labels": [0, 1, 2], b"coarse_labels": [0, 0, 0]},
               folder / "train", "bytes")
    assert_one_line_error(fit_error(), "4 images but 3 fine and 3 coarse labels")
    dump_cifar({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 0], b"coarse_labels": [0, 1]},
               folder / "train", "bytes")
    assert_one_line_error(fit_error(), "fine class 'fine00' has two coarse classes")
    dump_cifar({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 100], b"coarse_labels": [0, 1]},
               folder / "train", "bytes")
    assert_one_line_error(fit_error(), "fine_labels has label 100", "0..99")
    dump_cifar({b"data": np.zeros((0, 3072), np.uint8), b"fine_labels": [], b"coarse_labels": []}, folder / "train",
               "bytes")
    assert_one_line_error(fit_error(), str(folder / "train"), "the split has no images")
    (folder / "test").unlink()
    assert_one_line_error(fit_error(), "CIFAR-100 is not in", "download=true")


def test_cifar100_offline_download_is_one_line(cli, tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(torchvision.datasets.CIFAR100, "download", offline)
    r = cli("fit", "--dataset", "cifar100", "--data-dir", tmp_path / "c", "--dataset-arg", "download=true", *FIT,
            "--run-dir", tmp_path / "run")
    assert_one_line_error(r, "could not be downloaded", "Name or service not known", "--data-dir")
    assert c100.DOWNLOAD_TIMEOUT_S <= 60


@pytest.mark.parametrize("levels", ["3", "2"])
def test_aircraft_fit(cli, tmp_path, levels):
    root = make_aircraft(tmp_path / "data", per_split=2)
    r, run, metrics = _fit(cli, tmp_path, "--dataset", "fgvc-aircraft", "--data-dir", root.parent,
                           "--dataset-arg", "size=32", "--dataset-arg", f"levels={levels}")
    assert ("levels 3 > 4 > 6 classes" if levels == "3" else "levels 3 > 4 classes") in r.out
    assert f"test/acc_l{levels}" in metrics and "test/hvr" in metrics
    tree = json.loads((run / "hierarchy.json").read_text())
    assert "F/A-18" in tree["levels"][-1]


def test_aircraft_bad_data(cli, tmp_path):
    root = make_aircraft(tmp_path, per_split=1)
    data = root / "data"

    def fit_error(*extra):
        return cli("fit", "--dataset", "fgvc-aircraft", "--data-dir", root, "--dataset-arg", "size=32", *extra, *FIT,
                   "--run-dir", tmp_path / "run", "--overwrite")

    assert_one_line_error(cli("fit", "--dataset", "fgvc-aircraft", "--data-dir", tmp_path / "x", *FIT),
                          "does not exist")
    assert_one_line_error(cli("fit", "--dataset", "fgvc-aircraft", "--data-dir", tmp_path / "cwd", *FIT),
                          "no FGVC-Aircraft release found", "fgvc-aircraft-2013b.tar.gz")
    assert_one_line_error(fit_error("--dataset-arg", "train_split=all"), "train_split='all'")
    assert_one_line_error(fit_error("--dataset-arg", "levels=4"), "levels=4")

    # a missing image
    victim = sorted((data / "images").iterdir())[0]
    victim_bytes = victim.read_bytes()
    victim.unlink()
    assert_one_line_error(fit_error(), f"{victim} is missing", "images_variant_trainval.txt")
    # a corrupt image stops training naming it
    victim.write_bytes(victim_bytes[: len(victim_bytes) // 3])
    assert_one_line_error(fit_error(), f"image {victim} cannot be read")
    assert_one_line_error(fit_error("--dataset-arg", "verify=true"), f"image {victim} cannot be read")
    victim.write_bytes(victim_bytes)

    # a malformed label line, an image missing from one level's file, a variant under two families
    f = data / "images_variant_test.txt"
    good = f.read_text()
    f.write_text(good + "1234567\n")
    assert_one_line_error(fit_error(), str(f), f"line {good.count(chr(10)) + 1}", "'<image id> <class name>'")
    f.write_text(good)
    fam = data / "images_family_test.txt"
    fam_good = fam.read_text()
    fam.write_text("\n".join(fam_good.splitlines()[1:]) + "\n")
    assert_one_line_error(fit_error(), str(fam), "is not listed there")
    first_id = fam_good.splitlines()[0].split()[0]
    fam.write_text(fam_good.replace(f"{first_id} Boeing 737", f"{first_id} Boeing 747"))
    assert_one_line_error(fit_error(), "variant '737-700' is under family 'Boeing 747'", "but under 'Boeing 737'")
    fam.write_text(fam_good)
    (data / "images_variant_test.txt").write_text("\n")
    assert_one_line_error(fit_error(), "images_variant_test.txt lists no images")
    (data / "images_variant_test.txt").unlink()
    assert_one_line_error(fit_error(), "images_variant_test.txt is missing", "unpack")
    assert create_dataset("fgvc-aircraft", str(root), levels=2,
                          size=32).hierarchy.num_levels == 2  # needs no variant files
    (data / "images_box.txt").write_text("1000000 1 2 x 4\n")
    assert_one_line_error(fit_error("--dataset-arg", "levels=2", "--dataset-arg", "bbox=true"), "images_box.txt, line "
                                                                                                "1")


# ------------------------------------------------------------------------------------------ folder
def test_folder_nested_fit_predict_and_class_names(cli, tmp_path):
    root = make_nested(tmp_path / "data", per_class=4)
    r, run, metrics = _fit(cli, tmp_path, "--dataset", "folder", "--data-dir", root, "--dataset-arg", "size=16")
    for key in ("test/acc_l1", "test/acc_l2", "test/acc_l3", "test/hvr", "test/full_path_acc", "test/hf1"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert "nested folders, 40 images" in r.out and "decoded into memory" in r.out
    tree = json.loads((run / "hierarchy.json").read_text())
    assert tree["levels"] == [["Animal", "Vehicle"], ["Pet", "Wild", "Road"], ["cat", "dog", "fox", "car", "truck"]]
    # class names flow into predictions
    out = tmp_path / "preds.csv"
    p = cli("predict", "--ckpt", run / "checkpoints" / "best.ckpt", root / "test" / "Animal" / "Pet" / "cat",
            "--output", out)
    assert p.code == 0, p
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4
    for row in rows:
        assert row["label_l1"] in LEAVES and row["label_l3"] in ("Animal", "Vehicle")


@pytest.mark.parametrize("fmt", ["json", "csv", "csv-noheader"])
def test_folder_flat_with_hierarchy_file(cli, tmp_path, fmt):
    root = make_flat(tmp_path / "data", LEAVES, per_class=4)
    if fmt == "json":
        tree = write_hierarchy_json(tmp_path / "tree.json")
    else:
        tree = write_hierarchy_csv(tmp_path / "tree.csv", header=fmt == "csv")
    b = create_dataset("folder", str(root), size=16, hierarchy=str(tree))
    assert b.hierarchy.sizes == (5, 3, 2) and b.hierarchy.classes[0] == tuple(LEAVES)  # the file's order
    assert b.hierarchy.decode(b.test[0][1].tolist()) == ("Vehicle", "Road", "car")  # sorted folders: car first
    if fmt == "json":
        r, run, metrics = _fit(cli, tmp_path, "--dataset", "folder", "--data-dir", root, "--dataset-arg", "size=16",
                               "--dataset-arg", f"hierarchy={tree}")
        assert f"class folders + hierarchy file '{tree}'" in r.out
        assert metrics["test/acc_l3"] >= 0.0


def test_folder_archive_with_top_folder(cli, tmp_path):
    src = make_flat(tmp_path / "src", LEAVES, per_class=4)
    archive = make_tar(src, tmp_path / "data.tar.gz", top="mydata")
    tree = write_hierarchy_csv(tmp_path / "tree.csv")
    b = create_dataset("folder", str(archive), size=16, hierarchy=str(tree))
    direct = create_dataset("folder", str(src), size=16, hierarchy=str(tree))
    assert torch.equal(b.test.inputs, direct.test.inputs) and torch.equal(b.test.targets, direct.test.targets)
    r, _, _ = _fit(cli, tmp_path, "--dataset", "folder", "--data-dir", archive, "--dataset-arg", "size=16",
                   "--dataset-arg", f"hierarchy={tree}")
    assert "data.tar.gz" in r.out


def test_folder_truncated_archive(cli, tmp_path):
    src = make_nested(tmp_path / "src", per_class=3)
    archive = make_tar(src, tmp_path / "d.tar.gz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    r = _fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", archive)
    assert_one_line_error(r, str(archive), "not a readable .tar/.tar.gz archive", "fetch it again")


def test_folder_missing_root_and_split(cli, tmp_path):
    assert_one_line_error(_fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", tmp_path / "nope"),
                          "hcal fit: error:", "nope", "does not exist")
    root = make_nested(tmp_path / "data", per_class=1, splits=("train",))
    assert_one_line_error(_fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", root),
                          str(root), "no 'test' folder", "ROOT/test/<class>")
    assert_one_line_error(_fit_error(cli, tmp_path, "--dataset", "folder"), "needs --data-dir")


def test_folder_split_with_no_images(cli, tmp_path):
    root = make_nested(tmp_path / "data", per_class=2)
    (root / "val" / "Animal").mkdir(parents=True)
    assert_one_line_error(_fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", root),
                          str(root / "val"), "'val' split has no images")


def test_folder_misnamed_split(cli, tmp_path):
    root = make_nested(tmp_path / "data", per_class=2, splits=("train", "validation", "test"))
    assert_one_line_error(_fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", root),
                          "'validation'", "rename it to 'val'")


def test_folder_corrupt_image_in_memory_stops_at_load(cli, tmp_path):
    root = make_nested(tmp_path / "data", per_class=3)
    bad = root / "train" / "Animal" / "Wild" / "fox" / "001.png"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated
    empty = root / "test" / "Vehicle" / "Road" / "car" / "000.png"
    empty.write_bytes(b"")
    r = _fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", root, "--dataset-arg", "size=16")
    assert_one_line_error(r, "2 of 30 images cannot be read", str(bad), "delete or replace")
    assert not (tmp_path / "run").exists()  # found before anything was written


@pytest.mark.parametrize("workers", [0, 2])
def test_folder_corrupt_image_read_per_item_stops_training_naming_it(cli, tmp_path, workers):
    root = make_nested(tmp_path / "data", per_class=2, size=(20, 20))
    bad = root / "train" / "Vehicle" / "Road" / "car" / "000.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    r = _fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", root, "--dataset-arg", "size=16",
                   "--dataset-arg", "in_memory=false", "--num-workers", workers)
    assert_one_line_error(r, f"image {bad} cannot be read", "delete or replace", "nothing was kept")
    assert not (tmp_path / "run").exists()  # found mid-epoch, before the first checkpoint: no stub left
    # verify=true finds it at load, before training
    r = _fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", root, "--dataset-arg", "size=16",
                   "--dataset-arg", "in_memory=false", "--dataset-arg", "verify=true", "--overwrite")
    assert_one_line_error(r, f"image {bad} cannot be read")


def test_a_class_without_training_samples_is_one_warning_line_shown_once(cli, tmp_path):
    root = make_nested(tmp_path / "data", per_class=2)
    write_image(root / "test" / "Animal" / "Wild" / "wolf" / "0.png", 7)  # a class only in the test split
    r = cli("experiment", "compare", "--dataset", "folder", "--data-dir", root, "--dataset-arg", "size=16",
            "--backbone", "small-cnn", "--epochs", "1", "--limit-batches", "1", "--no-progress", "--methods", "hcal",
            "--seeds", "0,1", "--out", tmp_path / "o")
    assert r.code == 0, r
    warned = [line for line in r.err.splitlines() if "warning" in line]
    assert warned == ["hcal experiment: warning: 1 class has no training sample, so the model cannot learn it: 'wolf' "
                      "(level 1) (an empty class folder, a class only in the test or validation split, or a hierarchy "
                      "file with classes the data lacks)"], r.err
    tree = write_hierarchy_json(tmp_path / "tree.json", [*NESTED_PATHS, ("Animal", "Wild", "wolf"),
                                                         ("Vehicle", "Rail", "tram")])
    flat = make_flat(tmp_path / "flat", LEAVES, per_class=2)  # no folder for wolf and tram: no images
    r = cli("fit", "--dataset", "folder", "--data-dir", flat, "--dataset-arg", f"hierarchy={tree}", *FIT, "--run-dir",
            tmp_path / "run")
    assert r.code == 0, r
    assert "warning: 3 classes have no training sample" in r.err and "'tram' (level 1), 'Rail' (level 2)" in r.err


def test_folder_leaf_under_two_parents(cli, tmp_path):
    root = make_nested(tmp_path / "data", per_class=2)
    write_image(root / "test" / "Vehicle" / "Road" / "cat" / "x.png", 1)
    r = _fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", root)
    assert_one_line_error(r, "class 'cat' (level 1)", "under 'Road' here but under 'Pet'", "rename one of the folders")
    with pytest.raises(HierarchyError, match=str(root / "test" / "Vehicle" / "Road" / "cat")):
        create_dataset("folder", str(root))


def test_folder_uneven_depth_and_flat_without_hierarchy(cli, tmp_path):
    root = make_nested(tmp_path / "data", per_class=2)
    write_image(root / "train" / "Animal" / "Pet" / "x.png", 1)
    assert_one_line_error(_fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", root),
                          "'x.png' is 2 folders below train/", "20 images are 3 deep", "one folder per level")
    flat = make_flat(tmp_path / "flat", LEAVES, per_class=2)
    assert_one_line_error(_fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", flat),
                          "one level of class folders", "--dataset-arg hierarchy=FILE")
    write_image(flat / "train" / "loose.png", 2)
    assert_one_line_error(_fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", flat),
                          "'loose.png' sits directly in the split folder")


def test_folder_label_not_in_hierarchy(cli, tmp_path):
    root = make_flat(tmp_path / "data", LEAVES + ["zebra"], per_class=2)
    tree = write_hierarchy_json(tmp_path / "tree.json")
    r = _fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", root, "--dataset-arg", f"hierarchy={tree}")
    assert_one_line_error(r, str(root / "train" / "zebra"), "folder 'zebra' is not a leaf "
                                                            "class", "tree.json", "rename the folder")


def test_hierarchy_file_errors(cli, tmp_path):
    root = make_flat(tmp_path / "data", LEAVES, per_class=2)
    bad = tmp_path / "tree.csv"
    bad.write_text("leaf,parent,grandparent\ncat,Pet,Animal\ndog,Pet,Animal\ncat,Wild,Animal\n")
    r = _fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", root, "--dataset-arg", f"hierarchy={bad}")
    assert_one_line_error(r, "line 4", "class 'cat' (level 1)", "under 'Wild' here but under 'Pet'", "line 2")
    bad.write_text("cat,Pet,Animal\ndog,Pet\n")
    r = _fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", root, "--dataset-arg", f"hierarchy={bad}")
    assert_one_line_error(r, "line 2", "2 levels")
    two = tmp_path / "two.json"
    two.write_text('{"parents": {"cat": "Pet", "cat": "Wild"}}')
    r = _fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", root, "--dataset-arg", f"hierarchy={two}")
    assert_one_line_error(r, "two.json", "'cat' appears twice")
    r = _fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", root, "--dataset-arg",
                   f"hierarchy={tmp_path / 'no.csv'}")
    assert_one_line_error(r, "no.csv", "does not exist")


def test_folder_bad_archive_and_options(cli, tmp_path):
    archive = tmp_path / "data.tar.gz"
    archive.write_bytes(b"\x1f\x8b\x08\x00" + b"\0" * 600)
    r = _fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", archive)
    assert r.code == 2
    assert_one_line_error(r, str(archive))
    root = make_nested(tmp_path / "data", per_class=2)
    assert_one_line_error(_fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", root, "--dataset-arg",
                                     "colour=1"),
                          "no option 'colour'")
    assert_one_line_error(_fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", root, "--dataset-arg",
                                     "channels=2"),
                          "channels=2")


def test_csv_manifest_fit(cli, tmp_path):
    m = _manifest(tmp_path, _csv_rows(tmp_path))
    r, run, metrics = _fit(cli, tmp_path, "--dataset", "csv", "--data-dir", m, "--dataset-arg", "size=16")
    assert "manifest, 40 images" in r.out
    tree = json.loads((run / "hierarchy.json").read_text())
    assert tree["levels"] == [["Animal", "Vehicle"], ["cat", "dog", "fox", "car", "truck"]]
    assert 0.0 <= metrics["test/hvr"] <= 1.0


@pytest.mark.parametrize(
    "header, row, fragments",
    [
        ("path,group,animal,split", "img/a.png,Animal,cat", ["line 3", "3 fields but the header has 4"]),
        ("path,group,animal,split", "img/a.png,Animal,cat,train,extra", ["line 3", "5 fields"]),
        ("path,group,animal,split", "img/a.png,Animal,,train", ["line 3", "'animal' field is empty"]),
        ("path,group,animal,split", "img/a.png,Animal,cat,dev", ["line 3", "split 'dev'"]),
        ("path,group,animal,split", "img/nothere.png,Animal,cat,train", ["line 3", "nothere.png", "does not exist"]),
        ("path,group,animal,split", "img/a.png,Vehicle,cat,test", ["line 3", "class 'cat' (level 1)",
                                                                   "under 'Vehicle' here",
                                                                     "under 'Animal' in", "line 2"]),
        ("file,group,animal", "img/a.png,Animal,cat", ["line 1", "no 'path' column", "path, one column per level"]),
        ("path,animal,split", "img/a.png,cat,train", ["line 1", "1 label column(s)", "at least 2"]),
        ("path,group,group", "img/a.png,Animal,cat", ["line 1", "'group' appears twice"]),
    ],
)
def test_csv_bad_rows_name_the_line(cli, tmp_path, header, row, fragments):
    write_image(tmp_path / "m" / "img" / "a.png", 0)
    m = _manifest(tmp_path, ["img/a.png,Animal,cat,train" if header.count(",") == 3 else "img/a.png,Animal,cat", row],
                  header=header)
    r = _fit_error(cli, tmp_path, "--dataset", "csv", "--data-dir", m)
    assert_one_line_error(r, str(m), *fragments)


def test_csv_split_missing_and_label_not_in_hierarchy(cli, tmp_path):
    write_image(tmp_path / "m" / "img" / "a.png", 0)
    m = _manifest(tmp_path, ["img/a.png,Animal,cat,train", "img/a.png,Animal,dog,train"])
    assert_one_line_error(_fit_error(cli, tmp_path, "--dataset", "csv", "--data-dir", m), "no row has split 'test'")
    m = _manifest(tmp_path, ["img/a.png,Animal,cat,train", "img/a.png,Animal,okapi,test"])
    tree = write_hierarchy_csv(tmp_path / "tree.csv", [p[::2] for p in NESTED_PATHS])
    r = _fit_error(cli, tmp_path, "--dataset", "csv", "--data-dir", m, "--dataset-arg", f"hierarchy={tree}")
    assert_one_line_error(r, "line 3", "'okapi' is not a class", "tree.csv")
    empty = _manifest(tmp_path, [])
    assert_one_line_error(_fit_error(cli, tmp_path, "--dataset", "csv", "--data-dir", empty), "no rows")


def test_cifar10_preset_folder_and_archive(cli, tmp_path, mini_cifar10):
    root, archive = mini_cifar10
    a = create_dataset("cifar10", str(root))
    b = create_dataset("cifar10", str(archive))
    assert a.hierarchy == cifar10_hierarchy() and a.default_backbone == "resnet18-cifar"
    assert torch.equal(a.train.inputs, b.train.inputs) and torch.equal(a.train.targets, b.train.targets)
    assert a.input_spec.size == 32 and a.input_spec.mean[0] == pytest.approx(0.4914)
    assert (len(a.train) + len(a.val), len(a.test)) == (20, 20)
    r, run, metrics = _fit(cli, tmp_path, "--dataset", "cifar10", "--data-dir", archive)
    assert "levels 2 > 7 > 10 classes" in r.out
    assert {"test/acc_l1", "test/acc_l2", "test/acc_l3", "test/hvr"} <= set(metrics)


def test_cifar10_unknown_class_folder(cli, tmp_path, mini_cifar10):
    root, _ = mini_cifar10
    write_image(root / "test" / "unicorn" / "0.jpg", 0, size=(32, 32))
    r = _fit_error(cli, tmp_path, "--dataset", "cifar10", "--data-dir", root)
    assert_one_line_error(r, "folder 'unicorn' is not a leaf class of the cifar10 preset's hierarchy")
