"""Lightning's log lines and warnings that do not concern an hcal user, silenced.

For a whole command-line run (:func:`quiet_lightning`, called by :func:`hcal.cli.main`: the library
itself never changes process-wide settings) or for one block (:func:`lightning_quietly`: what
:class:`~hcal.HierarchicalClassifier` does while it fits, unless ``verbose``). Importing this module
imports neither torch nor Lightning (calling :func:`quiet_lightning` imports Lightning).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["LIGHTNING_NOISE", "LIGHTNING_LOGGERS", "quiet_lightning", "lightning_quietly"]

LIGHTNING_NOISE = (
    ".*does not have many workers.*",
    ".*Experiment logs directory.*exists and is not empty.*",
    ".*Checkpoint directory .* exists and is not empty.*",
    ".*The number of training batches .* is smaller than the logging interval.*",
    ".*on_epoch=True.* not.*",
    ".*GPU available but not used.*",
    ".*You are using `torch.load` with `weights_only=False`.*",
    ".*isinstance.treespec, LeafSpec.*",
    ".*It is recommended to use `self.log\\(.*sync_dist=True.*",  # torchmetrics already synced them
)
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning")


def quiet_lightning() -> None:
    """Lightning's INFO lines and the warnings that do not concern an hcal user, off for this process."""
    import lightning.pytorch  # noqa: F401 (importing it sets its loggers to INFO: import it first)

    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in LIGHTNING_NOISE:
        warnings.filterwarnings("ignore", message=pattern)


@contextmanager
def lightning_quietly() -> Iterator[None]:
    """The same, inside the ``with`` block only: log levels and warning filters are restored after it."""
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [log.level for log in loggers]
    with warnings.catch_warnings():
        try:
            quiet_lightning()
            yield
        finally:
            for log, level in zip(loggers, levels):
                log.setLevel(level)
