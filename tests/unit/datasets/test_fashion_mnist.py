"""datasets/fashion_mnist.py: the Seo & Shin hierarchy, idx files, lookups and errors."""


import pytest
import torch
import torchvision.datasets

from hcal.datasets import create_dataset
from hcal.datasets import fashion_mnist as fm
from hcal.errors import DataError
from tests.fixtures import fake_fashion_mnist


def test_fashion_mnist_hierarchy_is_seo_and_shin():
    h = fm.fashion_mnist_hierarchy()
    assert h.classes[2] == ("Clothes", "Goods")
    assert h.classes[1] == ("Tops", "Bottoms", "Dresses", "Outers", "Shoes", "Accessories")
    assert h.classes[0] == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                            "Ankle boot")
    assert h.encode("Shirt") == (6, 0, 0) and h.encode("Bag") == (8, 5, 1) and h.encode("Coat") == (4, 3, 0)
    assert h.decode(h.encode("Ankle boot")) == ("Goods", "Shoes", "Ankle boot")


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_from_data_dir(tmp_path, compress):
    fake_fashion_mnist(tmp_path / "FashionMNIST" / "raw", compress=compress)
    bundle = create_dataset("fashion-mnist", str(tmp_path), seed=1, val_fraction=0.25)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (30, 10, 20)
    x, y = bundle.test[1]
    assert x.shape == (1, 28, 28) and x.dtype == torch.uint8  # normalised batch-wise in the model
    assert y.tolist() == list(bundle.hierarchy.encode(bundle.hierarchy.classes[0][3]))  # label 3: Dress
    xt, _ = bundle.train[0]
    assert xt.shape == (1, 28, 28)
    assert bundle.input_spec.channels == 1 and bundle.default_backbone == "small-cnn"


def test_fashion_mnist_offline_error_names_the_fixes(tmp_path, monkeypatch):
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "nowhere")

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")


    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "download", offline)
    with pytest.raises(DataError, match="could not be downloaded.*dataset-fashion-mnist.*--data-dir"):
        create_dataset("fashion-mnist", str(tmp_path))


def test_fashion_mnist_bad_dirs_and_files(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(DataError, match="is a file, not a folder"):
        create_dataset("fashion-mnist", str(f))
    bad = tmp_path / "bad"
    fake_fashion_mnist(bad)
    (bad / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        create_dataset("fashion-mnist", str(bad))


@pytest.mark.skipif(not fm.SYSTEM_DIR.is_dir(), reason="Fashion-MNIST is not installed (apt-get install "
                                                       "dataset-fashion-mnist)")
def test_real_fashion_mnist_sizes():
    bundle = create_dataset("fashion-mnist", seed=0, val_fraction=0.1)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (54000, 6000, 10000)
    counts = torch.bincount(bundle.test.targets[:, 0], minlength=10)
    assert counts.tolist() == [1000] * 10
