"""CIFAR-100 and FGVC-Aircraft from miniature copies of their official releases."""

import json
import pickle

import numpy as np
import pytest
import torch

from hcal.datasets import create_dataset
from hcal.datasets import cifar100 as c100
from hcal.errors import DataError

from ._image_fixtures import (
    AIRCRAFT_PATHS,
    AIRCRAFT_SIZE,
    CIFAR100_COARSE,
    CIFAR100_FINE,
    FIT,
    dump_cifar,
    make_aircraft,
    make_cifar100,
)
from .conftest import assert_one_line_error


def _fit(cli, tmp_path, *args):
    run = tmp_path / "run"
    r = cli("fit", *args, *FIT, "--run-dir", run)
    assert r.code == 0, r
    return r, run, json.loads((run / "metrics.json").read_text())


# ---------------------------------------------------------------------------------------- CIFAR-100
@pytest.mark.parametrize("style", ["py2", "bytes"])
def test_cifar100_reads_the_release_format(tmp_path, style):
    make_cifar100(tmp_path, n_train=40, n_test=20, style=style)
    b = create_dataset("cifar100", str(tmp_path), seed=0, val_fraction=0.1)
    assert (len(b.train), len(b.val), len(b.test)) == (36, 4, 20)
    h = b.hierarchy
    assert h.classes[0] == tuple(CIFAR100_FINE[:10]) and h.classes[1] == tuple(CIFAR100_COARSE[:2])
    x, y = b.test[0]  # test sample 0 has fine label 3 (under coarse 0)
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8
    assert h.decode(y.tolist()) == ("coarse00", "fine03")
    assert h.decode(b.test[4][1].tolist()) == ("coarse01", "fine07")
    # pixels: row i of 'data' is 1024 red, 1024 green, 1024 blue values
    raw = np.random.default_rng(0).integers(0, 256, (40, 3072), dtype=np.uint8)
    assert torch.equal(b.train.inputs[5], torch.from_numpy(raw[5].reshape(3, 32, 32)))
    assert b.input_spec.mean[0] == pytest.approx(0.5071) and b.default_backbone == "resnet18-cifar"
    transforms = [type(t).__name__ for t in b.train.transform.transforms]
    assert transforms == ["RandomCrop", "RandomHorizontalFlip", "RandomRotation"] and b.train.transform.transforms[0].padding == [4, 4, 4, 4]


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
            import os

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
    dump_cifar({b"data": np.zeros((0, 3072), np.uint8), b"fine_labels": [], b"coarse_labels": []}, folder / "train", "bytes")
    assert_one_line_error(fit_error(), str(folder / "train"), "the split has no images")
    (folder / "test").unlink()
    assert_one_line_error(fit_error(), "CIFAR-100 is not in", "download=true")


def test_cifar100_offline_download_is_one_line(cli, tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(torchvision.datasets.CIFAR100, "download", offline)
    r = cli("fit", "--dataset", "cifar100", "--data-dir", tmp_path / "c", "--dataset-arg", "download=true", *FIT,
            "--run-dir", tmp_path / "run")
    assert_one_line_error(r, "could not be downloaded", "Name or service not known", "--data-dir")
    assert c100.DOWNLOAD_TIMEOUT_S <= 60


# ------------------------------------------------------------------------------------ FGVC-Aircraft
def test_aircraft_three_levels_banner_and_splits(tmp_path):
    root = make_aircraft(tmp_path, per_split=2)
    b = create_dataset("fgvc-aircraft", str(root), seed=0, val_fraction=0.25)
    h = b.hierarchy
    assert h.sizes == (6, 4, 3)
    assert h.classes[2] == ("Boeing", "McDonnell Douglas", "Airbus")  # manufacturers.txt order
    assert h.classes[0][0] == "A321"  # variants.txt order (reversed in the fixture)
    assert h.decode(h.encode("F/A-18")) == ("McDonnell Douglas", "F/A-18", "F/A-18")
    assert (len(b.train), len(b.val), len(b.test)) == (18, 6, 12)  # trainval 24, a quarter held out
    # the banner is gone: 20 rows fewer, none of its red left
    j = int(b.test.indices[0])
    x = b.test.load(j)
    w, hgt = AIRCRAFT_SIZE
    assert x.shape == (3, hgt - 20, w)
    assert int(x[0].max()) < 40 and int(x[2].min()) > 200
    from PIL import Image

    with Image.open(b.test.files[j]) as img:
        assert img.size == (w, hgt) and img.getpixel((5, hgt - 1))[0] > 200  # the file itself has it
    xe, y = b.test[0]
    assert xe.shape == (3, 224, 224) and b.input_spec.resize == 256 and b.default_backbone == "resnet18"
    assert h.decode(y.tolist()) == AIRCRAFT_PATHS[0]
    assert "manufacturer > family > variant, train split trainval" in b.source


def test_aircraft_two_levels_official_val_and_bbox(tmp_path):
    root = make_aircraft(tmp_path, per_split=2)
    b = create_dataset("fgvc-aircraft", str(root), levels=2, train_split="train", bbox=True, size=32)
    assert b.hierarchy.num_levels == 2 and b.hierarchy.classes[0] == ("Boeing 737", "Boeing 747", "F/A-18", "A320")
    assert (len(b.train), len(b.val), len(b.test)) == (12, 12, 12)
    x = b.train.load(int(b.train.indices[0]))
    assert x.shape == (3, 38, 26)  # box 5 3 30 40, 1-based inclusive
    assert b.train[0][0].shape == (3, 32, 32) and b.input_spec.resize == round(32 * 256 / 224)
    # a box reaching into the banner is clipped to the banner-free image
    data = root / "data"
    lines = (data / "images_box.txt").read_text().splitlines()
    first = lines[0].split()[0]
    (data / "images_box.txt").write_text("\n".join([f"{first} 1 1 48 64"] + lines[1:]) + "\n")
    b = create_dataset("fgvc-aircraft", str(root), levels=2, train_split="train", bbox=True, size=32)
    assert b.train.load(0).shape == (3, 44, 48)


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

    assert_one_line_error(cli("fit", "--dataset", "fgvc-aircraft", "--data-dir", tmp_path / "x", *FIT), "does not exist")
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
    assert create_dataset("fgvc-aircraft", str(root), levels=2, size=32).hierarchy.num_levels == 2  # needs no variant files
    (data / "images_box.txt").write_text("1000000 1 2 x 4\n")
    assert_one_line_error(fit_error("--dataset-arg", "levels=2", "--dataset-arg", "bbox=true"), "images_box.txt, line 1")
