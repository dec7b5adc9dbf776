"""Pre-computed feature vectors from an ``.npz`` file: frozen-backbone features, text or tabular embeddings.

Keys: ``X`` (n x d floats), ``paths`` (n x m strings, coarsest level first) and optionally
``split`` (n strings, each ``train``, ``val`` or ``test``). Without ``split``, a seeded
``test_fraction`` (default 0.2) of the samples is held out for test; without ``val`` samples,
``val_fraction`` of the training samples is held out for validation.

The hierarchy is read from the label paths themselves, or from ``--dataset-arg hierarchy=FILE.json``
(then every path must be one of its paths). Default backbone: ``mlp``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, HierarchyError
from ..hierarchy import Hierarchy
from ..inputs import InputSpec
from ._base import DATASETS, SPLITS, DataBundle, TensorDataset, resolve_data_file, split_indices

SAVE_HINT = "np.savez(file, X=features, paths=label_paths, split=splits)"


def _check_is_npz(path: Path) -> None:
    """An .npz is a zip archive; anything else is refused before np.load guesses at it (and suggests pickle)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None
    if head.startswith(b"PK\x03\x04"):
        return
    what = "a single .npy array" if head.startswith(b"\x93NUMPY") else "not an .npz archive (not a zip file)"
    raise DataError(f"{path}: {what}; save the features with {SAVE_HINT}")


def _load(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    _check_is_npz(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("X", "paths") if k not in npz.files]
            if missing:
                raise DataError(f"{path}: missing key {missing[0]!r} (has {sorted(npz.files)}); save it with "
                                f"{SAVE_HINT}")
            x, paths = npz["X"], npz["paths"]
            split = npz["split"] if "split" in npz.files else None
    except DataError:
        raise
    except ValueError:  # an object array: hcal never unpickles (a pickle can run code)
        raise DataError(f"{path}: an entry is an array of Python objects, which hcal does not load; save labels as "
                        f"strings (np.asarray(paths, dtype=str)) with {SAVE_HINT}") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{path}: 'X' must be an (n, d) numeric array, got shape {x.shape} of {x.dtype}")
    if np.iscomplexobj(x):
        raise DataError(f"{path}: 'X' holds complex numbers ({x.dtype}); give real features (e.g. the real and "
                        "imaginary parts as separate columns)")
    if x.shape[1] == 0:
        raise DataError(f"{path}: 'X' has {x.shape[0]} rows but 0 columns; every sample needs at least one feature")
    if paths.ndim != 2 or paths.shape[1] < 2:
        raise DataError(f"{path}: 'paths' must be (n, m) label names with m >= 2 levels, coarsest first; got shape "
                        f"{paths.shape}")
    if paths.shape[0] != x.shape[0]:
        raise DataError(f"{path}: 'X' has {x.shape[0]} rows but 'paths' has {paths.shape[0]}; they must match")
    if split is not None and split.shape != (x.shape[0],):
        raise DataError(f"{path}: 'split' must have one entry per row of 'X' ({x.shape[0]}), got shape {split.shape}")
    if not np.isfinite(x).all():
        row = int(np.argwhere(~np.isfinite(x))[0][0])
        raise DataError(f"{path}: 'X' has a non-finite value in row {row}")
    return x, paths.astype(str), None if split is None else split.astype(str)


@DATASETS.register(
    "features",
    description="pre-computed feature vectors in an .npz (X, paths, optional split); --data-dir FILE.npz",
    options={"hierarchy": str, "test_fraction": float},
)
def features(data_dir: str | None = None, *, seed: int = 0, val_fraction: float = 0.1, hierarchy: str | None = None,
             test_fraction: float = 0.2) -> DataBundle:
    path = resolve_data_file(data_dir, dataset="features", suffix=".npz", what=".npz",
                             usage="FILE.npz (keys X, paths, optional split)")
    x, paths, split = _load(path)
    rows = [tuple(map(str, p)) for p in paths.tolist()]
    try:
        tree = Hierarchy.from_json(hierarchy) if hierarchy is not None else Hierarchy(rows)
        targets = tree.encode_many(rows)
    except HierarchyError as e:
        raise HierarchyError(f"{path}: {e}") from None
    inputs = torch.as_tensor(x, dtype=torch.float32)
    if split is None:
        rest, test_idx = split_indices(len(rows), test_fraction, seed + 1, "test", "--dataset-arg test_fraction=")
        index = {"train": rest, "test": test_idx, "val": torch.empty(0, dtype=torch.long)}
    else:
        bad = sorted(set(split.tolist()) - set(SPLITS))
        if bad:
            raise DataError(f"{path}: 'split' has value {bad[0]!r}; allowed: {', '.join(SPLITS)}")
        index = {s: torch.as_tensor(np.flatnonzero(split == s), dtype=torch.long) for s in SPLITS}
        for s in ("train", "test"):
            if len(index[s]) == 0:
                raise DataError(f"{path}: the {s!r} split has no samples")
    if len(index["val"]) == 0:
        sub_train, sub_val = split_indices(len(index["train"]), val_fraction, seed)
        index["train"], index["val"] = index["train"][sub_train], index["train"][sub_val]
    return DataBundle(
        name="features",
        hierarchy=tree,
        input_spec=InputSpec(kind="vector", dim=x.shape[1]),
        train=TensorDataset(inputs, targets, index["train"]),
        val=TensorDataset(inputs, targets, index["val"]),
        test=TensorDataset(inputs, targets, index["test"]),
        default_backbone="mlp",
        source=str(path),
    )
