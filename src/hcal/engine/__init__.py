"""The training engine (Lightning): module, data module, checkpoints, and fit/test/predict/export."""

from ..errors import NonFiniteLossError
from .checkpoint import AtomicCheckpointIO, load_checkpoint_file
from .data import HierarchicalDataModule
from .export import export
from .module import HierarchicalModule
from .runner import FitResult, evaluate, fit, predict

__all__ = [
    "AtomicCheckpointIO",
    "load_checkpoint_file",
    "HierarchicalDataModule",
    "HierarchicalModule",
    "NonFiniteLossError",
    "FitResult",
    "fit",
    "evaluate",
    "predict",
    "export",
]
