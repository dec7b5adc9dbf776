"""``hcal predict``'s inputs: image files and folders, or ``.npy`` arrays of feature vectors, read into one batch.

Images are decoded as the image datasets decode them (:func:`hcal.datasets.read_image_file`) and
brought to the checkpoint's evaluation geometry (:meth:`~hcal.inputs.InputSpec.eval_geometry`), so a
model sees a new image exactly as evaluation saw the test set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..datasets import IMAGE_SUFFIXES, read_image_file
from ..errors import DataError
from ..inputs import InputSpec

__all__ = ["expand_inputs", "load_inputs"]


def expand_inputs(inputs: Sequence[str], kind: str) -> list[Path]:
    """Files given and the files of folders given (recursively: images, or ``.npy`` for vector models)."""
    suffixes = IMAGE_SUFFIXES if kind == "image" else {".npy"}
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)
            if not found:
                raise DataError(f"input folder {item!r} holds no {'image' if kind == 'image' else '.npy'} files")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"input {item!r} does not exist")
    return files


def _vectors(f: Path, spec: InputSpec) -> tuple[list[str], torch.Tensor]:
    if f.suffix.lower() != ".npy":
        raise DataError(f"input {str(f)!r}: this model takes {spec.dim}-d feature vectors; give .npy files "
                        "(one row per input)")
    try:
        arr = np.load(f, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"input {str(f)!r} cannot be read as .npy: {e}") from None
    single = arr.ndim == 1
    arr = arr.reshape(1, -1) if single else arr
    if arr.ndim != 2 or arr.shape[1] != spec.dim:
        raise DataError(f"input {str(f)!r} has shape {arr.shape}; expected ({spec.dim},) or (n, {spec.dim})")
    names = [str(f)] if single else [f"{f}:{i}" for i in range(arr.shape[0])]
    return names, torch.as_tensor(arr, dtype=torch.float32)


def load_inputs(files: list[Path], spec: InputSpec) -> tuple[list[str], torch.Tensor]:
    """One name per input (``FILE`` or ``FILE:ROW``) and the batch, as the model's evaluation takes it."""
    if spec.kind == "vector":
        parts = [_vectors(f, spec) for f in files]
        return [n for names, _ in parts for n in names], torch.cat([x for _, x in parts])
    geometry = spec.eval_geometry()
    return [str(f) for f in files], torch.stack([geometry(read_image_file(f, spec.channels)) for f in files])
