"""plots.py: the training-curve PNG of a fit, from Lightning's metrics.csv (a resumed run's included)."""

import csv

import numpy as np
from PIL import Image

from hcal.plots import plot_training_curves, read_epoch_metrics

KEYS = ["epoch", "step", "train/loss_epoch", "train/loss_l1", "train/loss_l2", "train/weight_l1", "train/weight_l2",
        "val/acc_l1", "val/acc_l2", "val/full_path_acc", "val/hvr", "test/acc_l1"]


def _write_log(path, rows):
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=KEYS)
        writer.writeheader()
        writer.writerows(rows)


def _epoch_rows(epoch: int, loss: float, acc: float):
    """As Lightning logs an epoch: one row of validation metrics, one of training metrics."""
    return [{"epoch": epoch, "step": 10 * epoch + 9, "val/acc_l1": acc, "val/acc_l2": acc + 0.05,
             "val/full_path_acc": acc - 0.02, "val/hvr": 0.1 - acc / 10},
            {"epoch": epoch, "step": 10 * epoch + 9, "train/loss_epoch": loss, "train/loss_l1": loss * 1.5,
             "train/loss_l2": loss * 0.5, "train/weight_l1": 0.6, "train/weight_l2": 0.4}]


def test_read_epoch_metrics_counts_epochs_from_1_and_keeps_a_rerun_epochs_last_values(tmp_path):
    log = tmp_path / "metrics.csv"
    # epoch index 1 logged by a session killed before its checkpoint, then again by the resumed one
    _write_log(log, _epoch_rows(0, 1.0, 0.5) + _epoch_rows(1, 0.9, 0.55) + _epoch_rows(1, 0.8, 0.6)
               + [{"epoch": 2, "step": 29, "test/acc_l1": 0.61}])
    series = read_epoch_metrics(log)
    assert series["train/loss_epoch"] == {1: 1.0, 2: 0.8}
    assert series["val/acc_l1"] == {1: 0.5, 2: 0.6}
    assert series["test/acc_l1"] == {3: 0.61}


def test_training_curves_png_is_drawn(tmp_path):
    log = tmp_path / "metrics.csv"
    _write_log(log, [row for e, (loss, acc) in enumerate([(1.0, 0.5), (0.7, 0.7), (0.6, 0.65)])
                     for row in _epoch_rows(e, loss, acc)])
    png = plot_training_curves(tmp_path / "curves.png", log, 2, "training curves: hcal on toy", weighting="awa",
                               monitor="val/acc_l1", best_is_max=True)
    with Image.open(png) as img:
        assert img.format == "PNG" and img.size == (1200, 840)
        pixels = np.asarray(img.convert("RGB")).reshape(-1, 3)
        assert len(np.unique(pixels, axis=0)) > 100  # four panels of curves, not a blank canvas
