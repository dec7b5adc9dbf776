"""Image datasets from folders, archives and CSV manifests, and the CIFAR-10 preset: tiny fixtures
in each layout, a short ``hcal fit`` through the CLI on each, and every bad-data case as one line."""

import csv
import json

import pytest
import torch
from PIL import Image

from hcal.datasets import create_dataset
from hcal.errors import ImageReadError
from hcal.datasets.cifar10 import CIFAR10_PATHS, cifar10_hierarchy
from hcal.errors import DataError, HierarchyError

from ._image_fixtures import (
    FIT,
    NESTED_PATHS,
    make_flat,
    make_nested,
    make_tar,
    write_hierarchy_csv,
    write_hierarchy_json,
    write_image,
)
from .conftest import assert_one_line_error

LEAVES = [p[-1] for p in NESTED_PATHS]


def _fit(cli, tmp_path, *args):
    run = tmp_path / "run"
    r = cli("fit", *args, *FIT, "--run-dir", run)
    assert r.code == 0, r
    metrics = json.loads((run / "metrics.json").read_text())
    return r, run, metrics


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
    p = cli("predict", "--ckpt", run / "checkpoints" / "best.ckpt", root / "test" / "Animal" / "Pet" / "cat", "--output", out)
    assert p.code == 0, p
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4
    for row in rows:
        assert row["label_l1"] in LEAVES and row["label_l3"] in ("Animal", "Vehicle")


def test_folder_nested_bundle_contents(tmp_path):
    root = make_nested(tmp_path / "data", per_class=5, size=(20, 14))
    (root / "train" / "notes.txt").write_text("not an image")
    (root / "train" / "Animal" / "Pet" / "cat" / ".DS_Store").write_bytes(b"\0")
    b = create_dataset("folder", str(root), seed=3, val_fraction=0.2, size=16)
    assert (len(b.train), len(b.val), len(b.test)) == (20, 5, 25)
    assert b.hierarchy.sizes == (5, 3, 2)
    assert "1 non-image files ignored" in b.source
    x, y = b.test[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.uint8
    assert b.hierarchy.decode(y.tolist()) == ("Animal", "Pet", "cat")
    assert b.input_spec.size == 16 and b.input_spec.resize == 0 and b.default_backbone == "resnet18-cifar"
    again = create_dataset("folder", str(root), seed=3, val_fraction=0.2, size=16)
    other = create_dataset("folder", str(root), seed=4, val_fraction=0.2, size=16)
    assert torch.equal(b.val.indices, again.val.indices) and not torch.equal(b.val.indices, other.val.indices)
    assert set(b.train.indices.tolist()).isdisjoint(b.val.indices.tolist())


def test_folder_own_val_split_and_large_images_read_per_item(tmp_path):
    root = make_nested(tmp_path / "data", per_class=2, splits=("train", "val", "test"), size=(90, 70))
    b = create_dataset("folder", str(root), size=72)
    assert (len(b.train), len(b.val), len(b.test)) == (10, 10, 10)
    assert type(b.train).__name__ == "ImageFileDataset"  # size > 64: decoded per item
    assert b.input_spec.resize == round(72 * 8 / 7) and b.default_backbone == "resnet18"
    x, _ = b.val[0]
    # evaluation geometry is exactly the input spec's, i.e. what hcal predict applies
    with Image.open(b.val.files[int(b.val.indices[0])]) as img:
        expected = b.input_spec.eval_transform()(img.convert("RGB"))
    assert torch.equal(x, expected)
    xt, _ = b.train[0]
    assert xt.shape == (3, 72, 72)
    mem = create_dataset("folder", str(root), size=72, in_memory=True)
    assert type(mem.train).__name__ == "TensorDataset" and torch.equal(mem.val[0][0], x)


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


def test_folder_flat_accepts_nested_folders_matching_the_file(tmp_path):
    root = make_nested(tmp_path / "data", per_class=2)
    b = create_dataset("folder", str(root), size=16, hierarchy=str(write_hierarchy_json(tmp_path / "t.json")))
    assert b.hierarchy.sizes == (5, 3, 2)


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


def test_folder_nested_archive_same_classes_as_folder(tmp_path):
    src = make_nested(tmp_path / "src", per_class=2)
    a = create_dataset("folder", str(src), size=16)
    b = create_dataset("folder", str(make_tar(src, tmp_path / "d.tar")), size=16)
    assert a.hierarchy == b.hierarchy and torch.equal(a.val.indices, b.val.indices)
    assert torch.equal(a.train.inputs, b.train.inputs) and torch.equal(a.train.targets, b.train.targets)


def test_folder_truncated_archive(cli, tmp_path):
    src = make_nested(tmp_path / "src", per_class=3)
    archive = make_tar(src, tmp_path / "d.tar.gz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    r = _fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", archive)
    assert_one_line_error(r, str(archive), "not a readable .tar/.tar.gz archive", "fetch it again")


def test_folder_grey_channels(tmp_path):
    root = make_nested(tmp_path / "data", per_class=2)
    b = create_dataset("folder", str(root), size=16, channels=1)
    assert b.test[0][0].shape == (1, 16, 16) and b.input_spec.channels == 1


# ------------------------------------------------------------------------------ folder: bad data
def _fit_error(cli, tmp_path, *args):
    return cli("fit", *args, *FIT, "--run-dir", tmp_path / "run")


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
    assert_one_line_error(r, f"image {bad} cannot be read", "delete or replace")
    # verify=true finds it at load, before training
    r = _fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", root, "--dataset-arg", "size=16",
                   "--dataset-arg", "in_memory=false", "--dataset-arg", "verify=true", "--overwrite")
    assert_one_line_error(r, f"image {bad} cannot be read")


def test_image_error_survives_a_worker_reraise():
    from torch._utils import ExceptionWrapper

    try:
        raise ImageReadError("image /d/x.png cannot be read (truncated); delete or replace the file")
    except ImageReadError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 1")
    with pytest.raises(ImageReadError) as info:
        wrapped.reraise()
    assert str(info.value) == "image /d/x.png cannot be read (truncated); delete or replace the file"
    assert isinstance(info.value, DataError)


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
    assert_one_line_error(r, str(root / "train" / "zebra"), "folder 'zebra' is not a leaf class", "tree.json", "rename the folder")


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
    r = _fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", root, "--dataset-arg", f"hierarchy={tmp_path / 'no.csv'}")
    assert_one_line_error(r, "no.csv", "does not exist")


def test_folder_bad_archive_and_options(cli, tmp_path):
    archive = tmp_path / "data.tar.gz"
    archive.write_bytes(b"\x1f\x8b\x08\x00" + b"\0" * 600)
    r = _fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", archive)
    assert r.code == 2
    assert_one_line_error(r, str(archive))
    root = make_nested(tmp_path / "data", per_class=2)
    assert_one_line_error(_fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", root, "--dataset-arg", "colour=1"),
                          "no option 'colour'")
    assert_one_line_error(_fit_error(cli, tmp_path, "--dataset", "folder", "--data-dir", root, "--dataset-arg", "channels=2"),
                          "channels=2")


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


def test_csv_manifest_fit(cli, tmp_path):
    m = _manifest(tmp_path, _csv_rows(tmp_path))
    r, run, metrics = _fit(cli, tmp_path, "--dataset", "csv", "--data-dir", m, "--dataset-arg", "size=16")
    assert "manifest, 40 images" in r.out
    tree = json.loads((run / "hierarchy.json").read_text())
    assert tree["levels"] == [["Animal", "Vehicle"], ["cat", "dog", "fox", "car", "truck"]]
    assert 0.0 <= metrics["test/hvr"] <= 1.0


def test_csv_manifest_columns_anywhere_and_no_split(tmp_path):
    rows = [",".join([lvl, f"img/{i}.png", leaf]) for i, (lvl, _, leaf) in enumerate(NESTED_PATHS * 4)]
    for i in range(20):
        write_image(tmp_path / "m" / "img" / f"{i}.png", i)
    m = _manifest(tmp_path, rows, header="kingdom,path,species")
    b = create_dataset("csv", str(tmp_path / "m"), seed=0, size=16)  # the folder holding one .csv
    assert (len(b.train) + len(b.val), len(b.test)) == (16, 4)
    assert b.hierarchy.classes[1] == ("Animal", "Vehicle")
    # the stored order follows the manifest: sample i of the whole set has row i's labels
    x, y = b.train[0]
    assert x.shape == (3, 16, 16)
    assert b.hierarchy.decode(y.tolist())[0] in ("Animal", "Vehicle")
    assert m.is_file()


def test_csv_quoted_fields_and_hierarchy_file(tmp_path):
    rows = _csv_rows(tmp_path, n_per=2)
    rows = [r.replace(",cat,", ',"cat",') for r in rows]
    m = _manifest(tmp_path, rows)
    tree = tmp_path / "tree.json"
    tree.write_text(json.dumps({"paths": [["Animal", "cat"], ["Animal", "dog"], ["Animal", "fox"], ["Vehicle", "car"],
                                          ["Vehicle", "truck"], ["Vehicle", "bus"]]}))
    b = create_dataset("csv", str(m), size=16, hierarchy=str(tree))
    assert b.hierarchy.classes[0][-1] == "bus"  # the file's tree, including a leaf without images


@pytest.mark.parametrize(
    "header, row, fragments",
    [
        ("path,group,animal,split", "img/a.png,Animal,cat", ["line 3", "3 fields but the header has 4"]),
        ("path,group,animal,split", "img/a.png,Animal,cat,train,extra", ["line 3", "5 fields"]),
        ("path,group,animal,split", "img/a.png,Animal,,train", ["line 3", "'animal' field is empty"]),
        ("path,group,animal,split", "img/a.png,Animal,cat,dev", ["line 3", "split 'dev'"]),
        ("path,group,animal,split", "img/nothere.png,Animal,cat,train", ["line 3", "nothere.png", "does not exist"]),
        ("path,group,animal,split", "img/a.png,Vehicle,cat,test", ["line 3", "class 'cat' (level 1)", "under 'Vehicle' here",
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


# ----------------------------------------------------------------------------------- cifar10 preset
def test_cifar10_hierarchy_is_bcnn():
    h = cifar10_hierarchy()
    assert h.classes[2] == ("transport", "animal")
    assert h.classes[1] == ("sky", "water", "road", "bird", "reptile", "pet", "medium")
    assert h.classes[0] == ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    assert h.decode(h.encode("frog")) == ("animal", "reptile", "frog")
    assert h.decode(h.encode("truck")) == ("transport", "road", "truck")
    assert h.decode(h.encode("bird")) == ("animal", "bird", "bird")  # 'bird' on two levels
    assert len(CIFAR10_PATHS) == 10


@pytest.fixture
def mini_cifar10(tmp_path):
    leaves = [p[-1] for p in CIFAR10_PATHS]
    root = make_flat(tmp_path / "cifar10", leaves, per_class=2, size=(32, 32))
    return root, make_tar(root, tmp_path / "cifar10.tar.gz")


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
