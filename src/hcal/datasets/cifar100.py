"""CIFAR-100 (Krizhevsky, 2009): 100 fine classes under 20 superclasses, the paper's 2-level set-up.

Reads the python release, ``cifar-100-python/{train,test,meta}``: ``--data-dir`` is that folder
or the one holding it (default ``~/.cache/hcal``). ``--dataset-arg download=true`` fetches it with
torchvision when it is missing (169 MB; a 30 s network timeout, a one-line error offline).
The two levels and every class name come from the files themselves (``fine_labels``,
``coarse_labels``, ``meta``'s ``fine_label_names`` and ``coarse_label_names``); class order is the
label order of the release.

The files are pickles. hcal never runs code from them: they are read with an unpickler that
refuses every global except numpy's array reconstruction (``_reconstruct``/``_frombuffer``,
``ndarray``, ``dtype``), which is all the release holds besides dicts, lists, strings and numbers;
object arrays are refused too. Keys may be ``str`` or ``bytes`` (``b'data'``, as the release,
pickled by Python 2, gives them to ``pickle.load(..., encoding="bytes")``).

The 60,000 32x32 images are held in memory as one uint8 tensor. Training augmentation, as in
the paper: random crop 32 with padding 4, horizontal flip, rotation up to 15 degrees; CIFAR-100
mean/std (applied batch-wise in the model). Default backbone ``resnet18-cifar``.
"""

from __future__ import annotations

import io
import pickle
import socket
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError, HierarchyError
from ..hierarchy import Hierarchy
from ..inputs import InputSpec
from ._base import DATASETS, DataBundle, TensorDataset, split_indices
from ._images import pad_crop_flip

__all__ = ["load_cifar_pickle", "locate_cifar100"]

FOLDER = "cifar-100-python"
MEAN, STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
DOWNLOAD_TIMEOUT_S = 30
URL = "https://www.cs.toronto.edu/~kriz/cifar.html"

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


def _numpy_global(module: str, name: str) -> Any:
    if name in ("ndarray", "dtype"):
        return getattr(np, name)
    try:  # numpy >= 2 keeps these in numpy._core; numpy.core is a deprecated alias
        from numpy._core import multiarray, numeric
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    return getattr(multiarray if module.endswith("multiarray") else numeric, name)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings, numbers and numpy arrays; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return _numpy_global(module, name)
        raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR file never holds")


def _text(value: Any) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def load_cifar_pickle(path: Path) -> dict[str, Any]:
    """A CIFAR python-release pickle as a dict with ``str`` keys, without executing pickled code."""
    try:
        with open(path, "rb") as fh:
            data = _NumpyOnlyUnpickler(io.BufferedReader(fh), encoding="latin1").load()
    except FileNotFoundError:
        raise DataError(f"{path} does not exist; the CIFAR-100 python release has train, test and meta in "
                        f"{FOLDER}/") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError,
            OSError) as e:
        raise DataError(f"{path} is not a CIFAR-100 python-release file ({e}); fetch it again from {URL}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} holds a {type(data).__name__}, not the dict of a CIFAR-100 file; fetch it again from "
                        f"{URL}")
    out = {_text(k): v for k, v in data.items()}
    for key, value in out.items():
        if isinstance(value, np.ndarray) and value.dtype == object:
            raise DataError(f"{path}: {key!r} is an array of Python objects, which a CIFAR file never holds; fetch it "
                            f"again from {URL}")
    return out


def _find(folder: Path) -> Path | None:
    for candidate in (folder, folder / FOLDER):
        if all((candidate / f).is_file() for f in ("train", "test", "meta")):
            return candidate
    return None


def _download(root: Path) -> Path:
    from torchvision.datasets import CIFAR100  # deferred: only a download needs torchvision.datasets

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        root.mkdir(parents=True, exist_ok=True)
        CIFAR100(str(root), train=True, download=True)
    except Exception as e:
        raise DataError(
            f"CIFAR-100 could not be downloaded into {root} ({type(e).__name__}: {e}); download the python version "
            f"from {URL} on a machine with internet, unpack it and pass --data-dir to the {FOLDER} folder"
        ) from None
    finally:
        socket.setdefaulttimeout(old)
    found = _find(root)
    if found is None:
        raise DataError(f"torchvision's download into {root} did not leave {FOLDER}/{{train,test,meta}}")
    return found


def locate_cifar100(data_dir: str | None, download: bool) -> Path:
    root = Path(data_dir) if data_dir is not None else Path.home() / ".cache" / "hcal"
    if data_dir is not None and root.exists() and not root.is_dir():
        raise DataError(f"--data-dir {data_dir!r} is a file; give the {FOLDER} folder (holding train, test, meta) or "
                        "its parent")
    found = _find(root) if root.is_dir() else None
    if found is not None:
        return found
    if download:
        return _download(root)
    raise DataError(
        f"CIFAR-100 is not in {root}: expected {FOLDER}/train, test and meta (the python version from {URL}); "
        "pass --data-dir to that folder, or add --dataset-arg download=true to fetch it (169 MB)"
    )


def _split_arrays(path: Path, d: dict[str, Any], n_fine: int, n_coarse: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    for key in ("data", "fine_labels", "coarse_labels"):
        if key not in d:
            raise DataError(f"{path}: missing key {key!r} (has {sorted(d)}); this is not a CIFAR-100 python-release "
                            "file")
    try:
        data = np.asarray(d["data"])
        fine = np.asarray(d["fine_labels"], dtype=np.int64)
        coarse = np.asarray(d["coarse_labels"], dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise DataError(f"{path}: labels are not integers ({e})") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: 'data' must be (n, 3072) uint8 (32x32 RGB rows), got {data.shape} of {data.dtype}")
    n = data.shape[0]
    if n == 0:
        raise DataError(f"{path}: the split has no images")
    if fine.shape != (n,) or coarse.shape != (n,):
        raise DataError(f"{path}: {n} images but {fine.size} fine and {coarse.size} coarse labels; they must match")
    for name, labels, count in (("fine_labels", fine, n_fine), ("coarse_labels", coarse, n_coarse)):
        bad = labels[(labels < 0) | (labels >= count)]
        if bad.size:
            raise DataError(f"{path}: {name} has label {int(bad[0])}, but meta names {count} classes (0..{count - 1}); "
                            f"fetch the release again from {URL}")
    return data.reshape(n, 3, 32, 32), fine, coarse


@DATASETS.register(
    "cifar100",
    description="CIFAR-100 python release, 2 levels: 20 superclasses > 100 classes; --dataset-arg download=true",
    reference="Krizhevsky 2009",
    options={"download": bool},
)
def cifar100(data_dir: str | None = None, *, seed: int = 0, val_fraction: float = 0.1, download: bool = False
             ) -> DataBundle:
    folder = locate_cifar100(data_dir, download)
    meta = load_cifar_pickle(folder / "meta")
    for key in ("fine_label_names", "coarse_label_names"):
        if key not in meta:
            raise DataError(f"{folder / 'meta'}: missing key {key!r} (has {sorted(meta)}); fetch the release again "
                            f"from {URL}")
    fine_names = [_text(n) for n in meta["fine_label_names"]]
    coarse_names = [_text(n) for n in meta["coarse_label_names"]]
    arrays = {s: _split_arrays(folder / s, load_cifar_pickle(folder / s), len(fine_names), len(coarse_names))
              for s in ("train", "test")}

    parent: dict[int, int] = {}
    for split, (_, fine, coarse) in arrays.items():
        pairs = np.unique(np.stack([fine, coarse], 1), axis=0)
        for f, c in pairs.tolist():
            if parent.setdefault(f, c) != c:
                raise HierarchyError(
                    f"{folder / split}: fine class {fine_names[f]!r} has two coarse classes, "
                    f"{coarse_names[parent[f]]!r} "
                    f"and {coarse_names[c]!r}; the files are damaged, fetch them again from {URL}"
                )
    fines = sorted(parent)
    coarses = sorted(set(parent.values()))
    try:
        hierarchy = Hierarchy(
            [(coarse_names[parent[f]], fine_names[f]) for f in fines],
            levels=[[coarse_names[c] for c in coarses], [fine_names[f] for f in fines]],
        )
    except HierarchyError as e:
        raise HierarchyError(f"{folder / 'meta'}: {e}") from None
    table = torch.zeros((len(fine_names), 2), dtype=torch.long)
    table[torch.tensor(fines)] = hierarchy.encode_many([(coarse_names[parent[f]], fine_names[f]) for f in fines])

    x_train, x_test = (torch.from_numpy(np.ascontiguousarray(arrays[s][0])) for s in ("train", "test"))
    y_train, y_test = (table[torch.from_numpy(arrays[s][1])] for s in ("train", "test"))
    train_idx, val_idx = split_indices(x_train.shape[0], val_fraction, seed)
    train_tf = pad_crop_flip(32, padding=4, rotation=15)
    return DataBundle(
        name="cifar100",
        hierarchy=hierarchy,
        input_spec=InputSpec(kind="image", channels=3, size=32, mean=MEAN, std=STD),
        train=TensorDataset(x_train, y_train, train_idx, train_tf),
        val=TensorDataset(x_train, y_train, val_idx),
        test=TensorDataset(x_test, y_test),
        default_backbone="resnet18-cifar",
        source=str(folder),
    )
