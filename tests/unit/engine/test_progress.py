"""engine/progress.py and the terminal test of engine/trainer.py: what the bar and the epoch lines show."""

import fcntl
import os
import struct
import termios
from types import SimpleNamespace

import pytest
import torch

from hcal.config import Config
from hcal.engine.progress import EpochSummary, ProgressBar, TrainingClock
from hcal.engine.trainer import interactive_progress, terminal_columns

METRICS = {"train/loss_step": torch.tensor(0.25), "train/loss_epoch": torch.tensor(0.5),
           "val/acc_l1": torch.tensor(0.9), "val/hvr": torch.tensor(0.04), "val/acc_l2": torch.tensor(0.95)}


def test_the_bar_shows_the_loss_and_validation_metrics_and_no_lightning_items():
    trainer = SimpleNamespace(callback_metrics=METRICS, loggers=["a logger: Lightning would add v_num"])
    assert ProgressBar().get_metrics(trainer, None) == {"loss": "0.2500", "val acc_l1": "0.9000",
                                                        "val hvr": "0.0400"}


def test_epoch_lines_count_from_1():
    lines = []
    summary = EpochSummary(lines.append)
    trainer = SimpleNamespace(current_epoch=0, max_epochs=3, sanity_checking=False, is_global_zero=True,
                              callback_metrics=METRICS)
    summary.on_train_start(trainer, None)
    summary.on_train_epoch_start(trainer, None)
    summary.on_train_epoch_end(trainer, None)
    assert lines[0].startswith("epoch 1/3: train loss 0.5000, val acc_l1 0.9000, val hvr 0.0400 (")


@pytest.fixture
def pty():
    master, slave = os.openpty()
    with open(slave, "w") as stream:
        yield stream
    os.close(master)


def test_a_terminal_without_a_size_gets_epoch_lines(pty, monkeypatch):
    fcntl.ioctl(pty, termios.TIOCSWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
    assert terminal_columns(pty) == 0
    monkeypatch.setattr("sys.stdout", pty)
    assert not interactive_progress(Config())
    fcntl.ioctl(pty, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 90, 0, 0))
    assert terminal_columns(pty) == 90
    assert interactive_progress(Config()) and not interactive_progress(Config(progress=False))


def test_not_a_terminal_has_no_columns(tmp_path, capsys):
    with open(tmp_path / "log", "w") as fh:
        assert terminal_columns(fh) == 0
    assert terminal_columns(object()) == 0  # no fileno at all


def test_training_clock_counts_on_from_its_checkpoint():
    clock = TrainingClock()
    clock.load_state_dict({"seconds": 100.0})  # what the checkpoint resumed from holds
    trainer = SimpleNamespace()
    clock.on_train_start(trainer, None)
    clock.on_train_end(trainer, None)
    session = clock.session
    assert 0 <= session and clock.total == 100.0 + session
    assert clock.state_dict() == {"seconds": clock.total}
    assert clock.session == session  # stopped: the time after training is not counted
