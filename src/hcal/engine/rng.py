"""Random-number-generator state in checkpoints, so a resumed run continues the same random streams.

Lightning restores weights, optimiser, scheduler, loops and callbacks; this callback adds the
states of Python's, NumPy's and torch's (CPU and CUDA) generators, which drive augmentation,
prototype perturbation and data-loader worker seeds. With the epoch-seeded data order
(:class:`~hcal.engine.data.EpochSeededSampler`), a run resumed from an end-of-epoch checkpoint
repeats exactly what the uninterrupted run would have done (bit for bit on CPU with
``--deterministic``). Every value is stored as a tensor or plain list, so checkpoints stay
loadable with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

__all__ = ["RngStateCallback", "capture_rng_state", "restore_rng_state"]


def capture_rng_state() -> dict[str, Any]:
    version, state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    out: dict[str, Any] = {
        "python": [version, list(state), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng_state(state: dict[str, Any]) -> None:
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


class RngStateCallback(Callback):
    """Saves the generators' states with every checkpoint and restores them on resume."""

    def state_dict(self) -> dict[str, Any]:
        return capture_rng_state()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        restore_rng_state(state_dict)
