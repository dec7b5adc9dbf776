"""Tiny datasets in each official on-disk format, written into a test's tmp_path."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

# coarsest first: 2 roots, 3 mid classes, 5 leaves
NESTED_PATHS = [
    ("Animal", "Pet", "cat"),
    ("Animal", "Pet", "dog"),
    ("Animal", "Wild", "fox"),
    ("Vehicle", "Road", "car"),
    ("Vehicle", "Road", "truck"),
]
FIT = ["--epochs", "1", "--limit-batches", "2", "--batch-size", "8", "--no-progress", "--backbone", "small-cnn"]


def colour_image(seed: int, size=(12, 12), base=(128, 128, 128)) -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(base)[None, None, :] + rng.integers(-40, 40, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def write_image(path: Path, seed: int, size=(12, 12), fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    colour_image(seed, size, base=(40 * (seed % 6), 200 - 30 * (seed % 5), 120)).save(path, format=fmt)
    return path


def make_nested(root: Path, paths=NESTED_PATHS, per_class: int = 4, splits=("train", "test"), size=(12, 12),
                ext=".png") -> Path:
    seed = 0
    for split in splits:
        for path in paths:
            for i in range(per_class):
                write_image(root / split / Path(*path) / f"{i:03d}{ext}", seed, size)
                seed += 1
    return root


def make_flat(root: Path, leaves, per_class: int = 4, splits=("train", "test"), size=(12, 12),
              ext=".jpg") -> Path:
    return make_nested(root, [(leaf,) for leaf in leaves], per_class, splits, size, ext)


def write_hierarchy_json(path: Path, paths=NESTED_PATHS) -> Path:
    path.write_text(json.dumps({"paths": [list(p) for p in paths]}))
    return path


def write_hierarchy_csv(path: Path, paths=NESTED_PATHS, header: bool = True) -> Path:
    rows = (["leaf,parent,grandparent"] if header else []) + [",".join(reversed(p)) for p in paths]
    path.write_text("\n".join(rows) + "\n")
    return path


def make_tar(folder: Path, archive: Path, top: str | None = None) -> Path:
    with tarfile.open(archive, "w:gz") as tf:
        for f in sorted(folder.rglob("*")):
            rel = f.relative_to(folder).as_posix()
            tf.add(f, arcname=f"{top}/{rel}" if top else rel, recursive=False)
    return archive


# ------------------------------------------------------------------------------------- Fashion-MNIST
def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> None:
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def fake_fashion_mnist(folder: Path, n_train: int = 40, n_test: int = 20, compress: bool = True) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if compress else ""
    write_idx(folder / f"train-images-idx3-ubyte{ext}", rng.integers(0, 256, (n_train, 28, 28)), compress)
    write_idx(folder / f"train-labels-idx1-ubyte{ext}", np.arange(n_train) % 10, compress)
    write_idx(folder / f"t10k-images-idx3-ubyte{ext}", rng.integers(0, 256, (n_test, 28, 28)), compress)
    write_idx(folder / f"t10k-labels-idx1-ubyte{ext}", (np.arange(n_test) * 3) % 10, compress)
    return folder


# ---------------------------------------------------------------------------------------- CIFAR-100
CIFAR100_FINE = [f"fine{i:02d}" for i in range(100)]
CIFAR100_COARSE = [f"coarse{i:02d}" for i in range(20)]


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` (SHORT_BINSTRING/BINSTRING), as the real release was pickled."""

    def save_bytes(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_bytes


def dump_cifar(obj, path: Path, style: str) -> None:
    """``style``: ``py2`` (Python 2 strings, numpy.core globals, protocol 2, like the release) or
    ``bytes`` (bytes keys, protocol 4)."""
    if style == "py2":
        buf = io.BytesIO()
        _Py2Pickler(buf, protocol=2).dump(obj)
        path.write_bytes(buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))
    else:
        path.write_bytes(pickle.dumps(obj, protocol=4))


def make_cifar100(root: Path, n_train: int = 40, n_test: int = 20, style: str = "bytes", n_fine: int = 10) -> Path:
    """``root/cifar-100-python/{train,test,meta}``; fine class f (< n_fine) sits under coarse f // 5."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def split(n, offset):
        fine = [(i + offset) % n_fine for i in range(n)]
        return {
            b"filenames": [f"img{i}.png".encode() for i in range(n)],
            b"batch_label": b"training batch 1 of 1",
            b"fine_labels": fine,
            b"coarse_labels": [f // 5 for f in fine],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        }

    dump_cifar(split(n_train, 0), folder / "train", style)
    dump_cifar(split(n_test, 3), folder / "test", style)
    dump_cifar({b"fine_label_names": [n.encode() for n in CIFAR100_FINE],
                b"coarse_label_names": [n.encode() for n in CIFAR100_COARSE]}, folder / "meta", style)
    return folder


# ------------------------------------------------------------------------------------ FGVC-Aircraft
# (manufacturer, family, variant): names with spaces and slashes, as in the release
AIRCRAFT_PATHS = [
    ("Boeing", "Boeing 737", "737-700"),
    ("Boeing", "Boeing 737", "737-800"),
    ("Boeing", "Boeing 747", "747-400"),
    ("McDonnell Douglas", "F/A-18", "F/A-18"),
    ("Airbus", "A320", "A320"),
    ("Airbus", "A320", "A321"),
]
BANNER_RGB, BODY_RGB = (255, 0, 0), (0, 0, 255)
AIRCRAFT_SIZE = (48, 64)  # width, height: the banner is the bottom 20 rows


def aircraft_image(path: Path, seed: int) -> None:
    w, h = AIRCRAFT_SIZE
    arr = np.empty((h, w, 3), dtype=np.uint8)
    arr[:] = BODY_RGB
    arr[: h - 20, :, 1] = (seed * 37) % 200  # something per image
    arr[h - 20 :] = BANNER_RGB
    Image.fromarray(arr).save(path, format="JPEG", quality=95, subsampling=0)


def make_aircraft(root: Path, per_split: int = 2, paths=AIRCRAFT_PATHS) -> Path:
    """``root/fgvc-aircraft-2013b/data/...``: ``per_split`` images per variant in train, val and test."""
    data = root / "fgvc-aircraft-2013b" / "data"
    (data / "images").mkdir(parents=True)
    lines: dict[tuple[str, str], list[str]] = {}
    boxes = []
    n = 0
    for split in ("train", "val", "test"):
        for manufacturer, family, variant in paths:
            for _ in range(per_split):
                image_id = f"{1000000 + n:07d}"
                aircraft_image(data / "images" / f"{image_id}.jpg", n)
                for level, name in (("variant", variant), ("family", family), ("manufacturer", manufacturer)):
                    lines.setdefault((level, split), []).append(f"{image_id} {name}")
                    if split in ("train", "val"):
                        lines.setdefault((level, "trainval"), []).append(f"{image_id} {name}")
                boxes.append(f"{image_id} 5 3 30 40")
                n += 1
    for (level, split), rows in lines.items():
        (data / f"images_{level}_{split}.txt").write_text("\n".join(rows) + "\n")
    (data / "images_box.txt").write_text("\n".join(boxes) + "\n")
    (data / "variants.txt").write_text("\n".join(dict.fromkeys(p[2] for p in reversed(paths))) + "\n")
    (data / "families.txt").write_text("\n".join(dict.fromkeys(p[1] for p in paths)) + "\n")
    (data / "manufacturers.txt").write_text("\n".join(dict.fromkeys(p[0] for p in paths)) + "\n")
    return root / "fgvc-aircraft-2013b"
