"""Fashion-MNIST (Xiao et al., 2017) with the three-level hierarchy of Seo & Shin (2019).

Level 3: Clothes, Goods. Level 2: Tops, Bottoms, Dresses, Outers (Clothes); Shoes, Accessories
(Goods). Level 1: the ten classes.

The idx files (``train-images-idx3-ubyte[.gz]`` ...) are looked up in order:

1. ``--data-dir`` (the files directly, or torchvision's ``FashionMNIST/raw`` below it);
2. ``/usr/share/datasets/fashion-mnist`` (Debian/Ubuntu package ``dataset-fashion-mnist``);
3. a torchvision download into ``--data-dir`` or ``~/.cache/hcal`` (a clear error when offline).
"""

from __future__ import annotations

import gzip
import socket
from pathlib import Path

import numpy as np
import torch

from ..augment import PadCropFlip
from ..errors import DataError
from ..hierarchy import Hierarchy
from ..inputs import InputSpec
from ._base import DATASETS, DataBundle, TensorDataset, split_indices

__all__ = ["FASHION_MNIST_PATHS", "fashion_mnist_hierarchy", "read_idx"]

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MEAN, STD = (0.2860,), (0.3530,)
DOWNLOAD_TIMEOUT_S = 30

# Leaf paths, coarsest first, in the dataset's label order 0..9.
FASHION_MNIST_PATHS = [
    ("Clothes", "Tops", "T-shirt/top"),
    ("Clothes", "Bottoms", "Trouser"),
    ("Clothes", "Tops", "Pullover"),
    ("Clothes", "Dresses", "Dress"),
    ("Clothes", "Outers", "Coat"),
    ("Goods", "Shoes", "Sandal"),
    ("Clothes", "Tops", "Shirt"),
    ("Goods", "Shoes", "Sneaker"),
    ("Goods", "Accessories", "Bag"),
    ("Goods", "Shoes", "Ankle boot"),
]


def fashion_mnist_hierarchy() -> Hierarchy:
    return Hierarchy(
        FASHION_MNIST_PATHS,
        levels=[
            ["Clothes", "Goods"],
            ["Tops", "Bottoms", "Dresses", "Outers", "Shoes", "Accessories"],
            [p[-1] for p in FASHION_MNIST_PATHS],
        ],
    )


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (plain or gzipped) into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path}: {e}; the file is damaged, delete it and fetch it again") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not an idx file of unsigned bytes (bad header)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated: header says {shape}, found {body.size} values")
    return body.reshape(shape)


def _find(folder: Path) -> dict[str, Path] | None:
    found = {}
    for key, stem in FILES.items():
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            return None
    return found


def _download(root: Path) -> dict[str, Path]:
    from torchvision.datasets import FashionMNIST  # deferred: only a download needs torchvision.datasets

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        root.mkdir(parents=True, exist_ok=True)
        FashionMNIST(str(root), train=True, download=True)
        FashionMNIST(str(root), train=False, download=True)
    except Exception as e:
        raise DataError(
            f"Fashion-MNIST was not found and could not be downloaded ({type(e).__name__}: {e}). Install the "
            "package dataset-fashion-mnist (apt-get install dataset-fashion-mnist), or put "
            f"{', '.join(FILES.values())} "
            f"(.gz or not) into a folder and pass --data-dir FOLDER"
        ) from None
    finally:
        socket.setdefaulttimeout(old)
    found = _find(root / "FashionMNIST" / "raw")
    if found is None:
        raise DataError(f"torchvision's download into {root} did not leave the idx files in FashionMNIST/raw")
    return found


def locate_files(data_dir: str | None) -> dict[str, Path]:
    candidates = []
    if data_dir is not None:
        root = Path(data_dir)
        if not root.exists():
            raise DataError(f"--data-dir {data_dir!r} does not exist")
        if not root.is_dir():
            raise DataError(f"--data-dir {data_dir!r} is a file, not a folder")
        candidates += [root, root / "FashionMNIST" / "raw", root / "fashion-mnist"]
    candidates.append(SYSTEM_DIR)
    for folder in candidates:
        found = _find(folder)
        if found:
            return found
    return _download(Path(data_dir) if data_dir else Path.home() / ".cache" / "hcal")


@DATASETS.register(
    "fashion-mnist",
    description="Fashion-MNIST, 70k 28x28 grey images, 3 levels: 2 > 6 > 10 (Seo & Shin, 2019)",
    reference="Xiao et al. 2017; hierarchy: Seo & Shin 2019",
)
def fashion_mnist(data_dir: str | None = None, *, seed: int = 0, val_fraction: float = 0.1) -> DataBundle:
    files = locate_files(data_dir)
    arrays = {k: read_idx(p) for k, p in files.items()}
    for split in ("train", "test"):
        if arrays[f"{split}_images"].shape[0] != arrays[f"{split}_labels"].shape[0]:
            raise DataError(f"{files[split + '_images']}: image and label counts differ")
    hierarchy = fashion_mnist_hierarchy()
    paths = hierarchy.leaf_paths()

    def tensors(split: str):
        images = torch.from_numpy(arrays[f"{split}_images"].copy()).unsqueeze(1)  # (n, 1, 28, 28) uint8
        labels = torch.from_numpy(arrays[f"{split}_labels"].astype(np.int64))
        if labels.numel() and int(labels.max()) > 9:
            raise DataError(f"{files[split + '_labels']}: label {int(labels.max())} is not one of Fashion-MNIST's 0..9")
        return images, paths[labels]

    x_train, y_train = tensors("train")
    x_test, y_test = tensors("test")
    # Geometric augmentation per image on uint8; scaling and normalisation happen batch-wise in
    # the model (HierarchicalModule.prepare_inputs) from the input spec's mean and std.
    train_tf = PadCropFlip(28, padding=2)
    eval_tf = None
    train_idx, val_idx = split_indices(x_train.shape[0], val_fraction, seed)
    return DataBundle(
        name="fashion-mnist",
        hierarchy=hierarchy,
        input_spec=InputSpec(kind="image", channels=1, size=28, mean=MEAN, std=STD),
        train=TensorDataset(x_train, y_train, train_idx, train_tf),
        val=TensorDataset(x_train, y_train, val_idx, eval_tf),
        test=TensorDataset(x_test, y_test, None, eval_tf),
        default_backbone="small-cnn",
        source=str(files["train_images"].parent),
    )
