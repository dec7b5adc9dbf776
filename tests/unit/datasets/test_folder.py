"""datasets/folder.py, _image_folder.py and _image_bundle.py: image folders and archives as bundles."""

import pytest
import torch
from PIL import Image

from hcal.datasets import create_dataset
from hcal.errors import HcalWarning, HierarchyError
from tests.fixtures import (
    make_flat,
    make_nested,
    make_tar,
    write_hierarchy_json,
)


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


def test_an_empty_class_folder_is_a_warning_not_a_class(tmp_path):
    root = make_nested(tmp_path / "data", per_class=2)
    (root / "train" / "Animal" / "Wild" / "wolf").mkdir()
    (root / "test" / "Animal" / "Wild" / "lynx").mkdir()
    (root / "test" / "Animal" / "Wild" / "lynx" / "notes.txt").write_text("no image")
    with pytest.warns(HcalWarning, match=r"data: 2 class folders hold no images, so they are left out of the classes: "
                                         r"'train/Animal/Wild/wolf', 'test/Animal/Wild/lynx'"):
        b = create_dataset("folder", str(root), size=16)
    assert b.hierarchy.sizes == (5, 3, 2)


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


def test_folder_flat_accepts_nested_folders_matching_the_file(tmp_path):
    root = make_nested(tmp_path / "data", per_class=2)
    b = create_dataset("folder", str(root), size=16, hierarchy=str(write_hierarchy_json(tmp_path / "t.json")))
    assert b.hierarchy.sizes == (5, 3, 2)


def test_folder_nested_archive_same_classes_as_folder(tmp_path):
    src = make_nested(tmp_path / "src", per_class=2)
    a = create_dataset("folder", str(src), size=16)
    b = create_dataset("folder", str(make_tar(src, tmp_path / "d.tar")), size=16)
    assert a.hierarchy == b.hierarchy and torch.equal(a.val.indices, b.val.indices)
    assert torch.equal(a.train.inputs, b.train.inputs) and torch.equal(a.train.targets, b.train.targets)


def test_folder_grey_channels(tmp_path):
    root = make_nested(tmp_path / "data", per_class=2)
    b = create_dataset("folder", str(root), size=16, channels=1)
    assert b.test[0][0].shape == (1, 16, 16) and b.input_spec.channels == 1


def test_a_hierarchy_csv_written_coarsest_first_is_named_as_such(tmp_path):
    root = make_flat(tmp_path / "data", ["cat", "car"], per_class=2)
    tree = tmp_path / "tree.csv"
    tree.write_text("Animal,Pet,cat\nVehicle,Road,car\n")  # coarsest first, yet a valid tree read finest first
    with pytest.raises(HierarchyError, match="folder 'car' is not a leaf .* may be written coarsest first"):
        create_dataset("folder", str(root), size=16, hierarchy=str(tree))
