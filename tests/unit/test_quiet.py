"""quiet.py: Lightning's noise off for a process (the CLI) or for one block (the estimator), then restored."""

import logging
import warnings

from hcal.quiet import LIGHTNING_LOGGERS, lightning_quietly


def test_the_block_silences_lightning_and_restores_everything():
    log = logging.getLogger(LIGHTNING_LOGGERS[0])
    level = log.level
    log.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with lightning_quietly():
                assert all(logging.getLogger(name).level == logging.WARNING for name in LIGHTNING_LOGGERS)
                warnings.warn("The 'train_dataloader' does not have many workers which may be a bottleneck.")
                warnings.warn("something hcal's user should see")
            assert log.level == logging.INFO
            warnings.warn("The 'val_dataloader' does not have many workers, outside the block")
        assert [str(w.message) for w in caught] == [
            "something hcal's user should see", "The 'val_dataloader' does not have many workers, outside the block"]
    finally:
        log.setLevel(level)
