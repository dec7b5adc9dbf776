"""The PNGs hcal draws itself: a run's training curves (every fit) and a level's confusion matrix (``hcal test``).

matplotlib runs on the file-only Agg backend and is imported when the first figure is drawn
(:func:`pyplot`), so commands that draw nothing do not pay for it. Figures are sized and lettered
to be read when printed (ticks 8 pt and up, 120 dpi).
"""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["pyplot", "read_epoch_metrics", "plot_training_curves", "plot_confusion"]


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (deferred: it would slow every other start-up)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_epoch_metrics(metrics_csv: Path) -> dict[str, dict[int, float]]:
    """Lightning's ``logs/csv/metrics.csv`` as ``{key: {epoch (from 1): value}}``, the last value logged for each
    epoch (a resumed run may log an epoch twice; the rerun's value is the one kept)."""
    series: dict[str, dict[int, float]] = {}
    with open(metrics_csv, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            epoch = int(row["epoch"]) + 1
            for key, value in row.items():
                if key not in ("epoch", "step") and value not in ("", None):
                    series.setdefault(key, {})[epoch] = float(value)
    return series


def _curves(ax, series: dict[str, dict[int, float]], keys: Sequence[str], labels: Sequence[str], title: str,
            styles: Sequence[dict] = ()) -> bool:
    drawn = False
    for i, (key, label) in enumerate(zip(keys, labels)):
        if key in series:
            epochs = sorted(series[key])
            style = styles[i] if i < len(styles) else {"color": f"C{i}"}
            ax.plot(epochs, [series[key][e] for e in epochs], marker="o", markersize=4, label=label, **style)
            drawn = True
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("epoch", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
    else:
        ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, fontsize=9, color="grey")
    return drawn


def plot_training_curves(path: Path, metrics_csv: Path, num_levels: int, title: str, *, weighting: str,
                         monitor: str, best_is_max: bool) -> Path:
    """Four panels per epoch: each level's training loss (and the weighted total), the weights the ``weighting``
    gave the levels (AWA's softmax of the losses, ...), validation accuracy per level and full path, and validation
    HVR; a dotted line marks the epoch the ``monitor`` metric selected."""
    series = read_epoch_metrics(metrics_csv)
    plt = pyplot()
    levels = [f"l{k + 1}" for k in range(num_levels)]
    names = [f"level {k + 1}{' (finest)' if k == 0 else ''}" for k in range(num_levels)]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), dpi=120)
    total = {"color": "black", "linestyle": "--"}
    level_styles = [{"color": f"C{k}"} for k in range(num_levels)]
    _curves(axes[0, 0], series, [f"train/loss_{k}" for k in levels] + ["train/loss_epoch"], names + ["weighted total"],
            "training loss", level_styles + [total])
    _curves(axes[0, 1], series, [f"train/weight_{k}" for k in levels], names, f"level weights ({weighting})",
            level_styles)
    _curves(axes[1, 0], series, [f"val/acc_{k}" for k in levels] + ["val/full_path_acc"], names + ["full path"],
            "validation accuracy", level_styles + [total])
    _curves(axes[1, 1], series, ["val/hvr"], ["HVR (all links)"], "validation HVR (lower is better)",
            [{"color": "C3"}])
    if series.get(monitor):
        values = series[monitor]
        best = (max if best_is_max else min)(sorted(values), key=lambda e: values[e])
        for ax in axes[1]:
            ax.axvline(best, color="grey", linestyle=":", linewidth=1.2)
            ax.set_xlabel(f"epoch (dotted: {best}, the best by {monitor})", fontsize=9)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_confusion(path: Path, matrix: np.ndarray, names: Sequence[str], title: str) -> Path:
    """A confusion matrix (rows: true class, columns: predicted), shaded by the share of each true class, with
    the counts written in the cells."""
    plt = pyplot()
    n = len(names)
    side = min(10.0, max(5.0, 0.3 * n + 3.0))  # inches: a page's width at most
    fig, ax = plt.subplots(figsize=(side + 1.2, side), dpi=120)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    font = min(10.0, max(6.0, 0.3 * (side - 2.0) * 72 / n))  # about a third of a cell
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=font,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), names, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center", fontsize=font + 1)
    ax.set_yticks(range(n), names, fontsize=font + 1)
    ax.set_xlabel("predicted class", fontsize=10)
    ax.set_ylabel("true class", fontsize=10)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("share of the true class", fontsize=9)
    bar.ax.tick_params(labelsize=8)
    ax.set_title("\n".join(textwrap.fill(line, int(14 * side)) for line in title.split("\n")), fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path

