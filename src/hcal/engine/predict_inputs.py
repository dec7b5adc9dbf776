"""``hcal predict``'s inputs: image files and folders, ``.npy`` arrays of feature vectors, or arrays in memory.

Images are decoded as the image datasets decode them (:func:`hcal.datasets.read_image_file`) and
brought to the checkpoint's evaluation geometry (:meth:`~hcal.inputs.InputSpec.eval_geometry`), so a
model sees a new image exactly as evaluation saw the test set.

An input that cannot be predicted (an image that cannot be decoded, a ``.npy`` file that cannot be
read, has the wrong shape or no rows, a row with a non-finite value) does not stop the reading: it
is recorded in :attr:`Inputs.errors`, and :meth:`Inputs.check` stops unless such inputs are to be
skipped. What is wrong with the command itself (a path that does not exist, an empty folder, a file
of the wrong kind) stops at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..datasets import IMAGE_SUFFIXES, read_image_file
from ..errors import DataError, ImageReadError
from ..inputs import InputSpec

__all__ = ["Inputs", "expand_inputs", "load_inputs", "array_inputs", "read_inputs"]


@dataclass
class Inputs:
    names: list[Any]  # every input, in order: FILE, FILE:ROW, or the row number of an array
    errors: list[str | None]  # why each input cannot be predicted, or None
    x: torch.Tensor  # the inputs without an error, in order, as the model's evaluation takes them

    def check(self, skip_bad: bool) -> None:
        """Stop at the first input that cannot be predicted, unless ``skip_bad``."""
        bad = [(n, e) for n, e in zip(self.names, self.errors) if e is not None]
        if bad and not skip_bad:
            (name, error), more = bad[0], f" ({len(bad)} inputs in all)" if len(bad) > 1 else ""
            raise DataError(f"input {str(name)!r}: {error}{more}; pass --skip-bad to record such inputs in the "
                            "output's error column and predict the others")


def _failed(name: Any, error: str, spec: InputSpec) -> Inputs:
    empty = (torch.empty((0, spec.dim)) if spec.kind == "vector"
             else torch.empty((0, spec.channels, spec.size, spec.size), dtype=torch.uint8))
    return Inputs([name], [error], empty)


def _join(parts: list[Inputs]) -> Inputs:
    return Inputs([n for p in parts for n in p.names], [e for p in parts for e in p.errors],
                  torch.cat([p.x for p in parts]))


def _finite_rows(names: list[Any], x: torch.Tensor, what: str) -> Inputs:
    """``x``'s rows (vectors or images); one holding a NaN or an infinity is an error."""
    finite = torch.isfinite(x.flatten(1)).all(dim=1) if x.is_floating_point() else torch.ones(len(x), dtype=bool)
    errors: list[str | None] = [None] * len(names)
    for i in torch.nonzero(~finite).flatten().tolist():
        value = x[i].flatten()[~torch.isfinite(x[i].flatten())][0]
        errors[i] = f"holds a non-finite value ({float(value)}); {what} must be finite numbers"
    return Inputs(names, errors, x[finite])


def expand_inputs(inputs: Sequence[str], kind: str) -> list[Path]:
    """Files given and the files of folders given (recursively: images, or ``.npy`` for vector models)."""
    suffixes = IMAGE_SUFFIXES if kind == "image" else {".npy"}
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)
            if not found:
                raise DataError(f"input folder {str(item)!r} holds no {'image' if kind == 'image' else '.npy'} files")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"input {str(item)!r} does not exist")
    return files


def _vectors(f: Path, spec: InputSpec) -> Inputs:
    if f.suffix.lower() != ".npy":
        raise DataError(f"input {str(f)!r}: this model takes {spec.dim}-d feature vectors; give .npy files "
                        "(one row per input)")
    try:
        arr = np.load(f, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        return _failed(str(f), f"cannot be read as .npy ({e})", spec)
    single = arr.ndim == 1
    arr = arr.reshape(1, -1) if single else arr
    if arr.ndim != 2 or arr.shape[1] != spec.dim or not np.issubdtype(arr.dtype, np.number):
        return _failed(str(f), f"has shape {arr.shape} of {arr.dtype}; expected numbers of shape ({spec.dim},) or "
                               f"(n, {spec.dim})", spec)
    if arr.shape[0] == 0:
        return _failed(str(f), f"holds no rows (shape {arr.shape})", spec)
    names = [str(f)] if single else [f"{f}:{i}" for i in range(arr.shape[0])]
    return _finite_rows(names, torch.as_tensor(arr, dtype=torch.float32), "features")


def _image(f: Path, spec: InputSpec) -> Inputs:
    try:
        image = read_image_file(f, spec.channels)
    except ImageReadError as e:
        return _failed(str(f), str(e), spec)
    return Inputs([str(f)], [None], spec.eval_geometry()(image)[None])


def load_inputs(files: list[Path], spec: InputSpec) -> Inputs:
    """Every file's inputs (``FILE`` or ``FILE:ROW``), as the model's evaluation takes them."""
    return _join([_vectors(f, spec) if spec.kind == "vector" else _image(f, spec) for f in files])


def array_inputs(x: Any, spec: InputSpec) -> Inputs:
    """Inputs given in memory: feature vectors ``(n, d)`` or ``(d,)``; images ``(n, C, H, W)`` or ``(C, H, W)``,
    uint8 or floats in [0, 1], at any size (brought to the evaluation geometry). Names are row numbers."""
    arr = x.numpy(force=True) if isinstance(x, torch.Tensor) else np.asarray(x)
    if spec.kind == "vector":
        arr = arr.reshape(1, -1) if arr.ndim == 1 else arr
        shape, ok = f"({spec.dim},) or (n, {spec.dim})", arr.ndim == 2 and arr.shape[1] == spec.dim
        ok = ok and (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool)
    else:
        arr = arr[None] if arr.ndim == 3 else arr
        shape, ok = f"(n, {spec.channels}, H, W) or ({spec.channels}, H, W)", arr.ndim == 4
        ok = ok and arr.shape[1] == spec.channels and (arr.dtype == np.uint8 or np.issubdtype(arr.dtype, np.floating))
    if not ok:
        allowed = "numbers" if spec.kind == "vector" else "uint8 or floats in [0, 1]"
        raise DataError(f"inputs: an array of shape {arr.shape} and dtype {arr.dtype}; this model takes "
                        f"{spec.describe()}: {allowed} of shape {shape}")
    if arr.shape[0] == 0:
        raise DataError(f"inputs: an array with no rows (shape {arr.shape})")
    names = list(range(arr.shape[0]))
    if spec.kind == "vector":
        return _finite_rows(names, torch.as_tensor(arr, dtype=torch.float32), "features")
    t = torch.as_tensor(arr if arr.dtype == np.uint8 else arr.astype(np.float32))
    return _finite_rows(names, spec.eval_geometry()(t), "pixels")


def read_inputs(inputs: Any, spec: InputSpec) -> Inputs:
    """Paths (files and folders: :func:`expand_inputs`) or an array or tensor (:func:`array_inputs`)."""
    if isinstance(inputs, (np.ndarray, torch.Tensor)):
        return array_inputs(inputs, spec)
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    return load_inputs(expand_inputs(inputs, spec.kind), spec)
