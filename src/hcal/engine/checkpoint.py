"""Checkpoint files: written atomically, read without executing pickled code.

A checkpoint is written to a temporary file beside its target, flushed to disk (fsync) and then
renamed over the target, so a crash at any moment leaves either the old or the new file, never a
half-written one; a write that fails (a full disk, a read-only folder) raises a one-line
:class:`~hcal.errors.StorageError` and leaves the old file as it was. Loading always uses
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..errors import CheckpointError, storage_error

__all__ = ["AtomicCheckpointIO", "atomic_torch_save", "load_checkpoint_file", "FORMAT"]

FORMAT = 1  # bump when the layout of hcal's checkpoint entries changes
TORCH_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save's zip archive; the legacy format is a pickle (protocol >= 2)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write) -> None:
    """Call ``write(file_handle)`` on a temporary file, fsync it, then rename it to ``path``.

    A failure of the file system (no space, read-only, no permission) raises :class:`~hcal.errors.StorageError`
    naming ``path``; ``path`` itself is untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        error = storage_error(e, path)
        if error is not None:
            raise error from None
        raise
    _fsync_dir(path.parent)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    # Serialised in memory first: torch's writer reports a failed file write as a bare RuntimeError
    # ("unexpected pos ..."); Python's file write raises the OSError that names the cause.
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, lambda fh: fh.write(buf.getbuffer()))


def load_checkpoint_file(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load an hcal checkpoint safely, with one-line errors for missing, damaged or foreign files."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is a folder; give the .ckpt file (e.g. checkpoints/best.ckpt)")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as e:
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read: {e.strerror}") from None
    if not head.startswith(TORCH_MAGIC):
        size = path.stat().st_size
        raise CheckpointError(f"checkpoint {str(path)!r} is not a torch checkpoint ({size} bytes that do not start as "
                              "one: a .ckpt file is a zip archive written by torch.save)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        what = f" such as {found.group(1)}" if found else ""
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds Python objects{what} that hcal does not load (it loads tensors and plain "
            "values only, so that a file cannot run code); it was not written by hcal"
        ) from None
    except Exception as e:  # truncated zip, an old pickle: whatever torch.load raises
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or not a torch checkpoint ({type(e).__name__}: "
            f"{str(e).strip().splitlines()[0] if str(e).strip() else 'no detail'})"
        ) from None
    if not isinstance(ckpt, dict) or "hcal_format" not in ckpt or "hyper_parameters" not in ckpt:
        raise CheckpointError(f"checkpoint {str(path)!r} was not written by hcal (no hcal entries)")
    if ckpt["hcal_format"] != FORMAT:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has hcal format {ckpt['hcal_format']}; this hcal reads format {FORMAT}"
        )
    return ckpt


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O with atomic writes and ``weights_only`` reads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: Any = None) -> dict[str, Any]:
        return load_checkpoint_file(path, map_location=map_location or "cpu")
